/*
 * The peer state machine that both transports share (rpc/peer.c,
 * rpc/peer_send.c), and the interface of the link back ends it drives:
 * TCP on libuv-watched sockets (tcp_*.c) and RDMA verbs (verbs_*.c).
 * Internal to rpc/; users see only rpc/transport.h.
 *
 * Who does what
 * -------------
 * The peer machine holds the cluster's membership protocol, once: who
 * dials whom and the dial backoff, the handshake on every connection
 * (Hello, AuthProof), when a peer is UP, LEFT or FAILED and the one
 * on_peer_down per peer, heartbeats and silence timeouts, Goodbye, which
 * frames reach the owner, the send mutex and the rules of the send path,
 * start, stop and fail_peer. It never touches a socket or a queue pair.
 *
 * A link back end holds one kind of connection: how it is set up (connect
 * and accept; the RDMA CM), how a frame's bytes leave (sendmsg and an
 * out-queue; SEND work requests with credits and slots), how whole frames
 * arrive (read and parse in place; receive completions), and for verbs
 * registered memory and one-sided reads. It reports to the machine with
 * rpc_conn_linked(), rpc_conn_frame(), rpc_conn_closed_by_peer() and
 * rpc_conn_fail(); the machine calls it through struct rpc_link_ops.
 *
 * Objects
 * -------
 *   struct rpc_peers  one transport: struct rpc_transport (first), the
 *                     peers, every connection, the heartbeat timer and the
 *                     async handle. A back end's transport struct embeds
 *                     it as its first member.
 *   struct rpc_peer   one member node: state, the connection attached to
 *                     it, dial timer and backoff, last receive time, and
 *                     the send state other threads see (send_mu).
 *   struct rpc_conn   one connection and its handshake, the first member of
 *                     the back end's link (struct tcp_link, verbs_link).
 *
 * A connection is not a peer. One we dialled is attached to its peer from
 * the start (rpc_conn_attach()): we chose whom to call, and there is one
 * dial at a time. One we accepted is anonymous until the other end has
 * proven the key: its Hello (TCP) or connect request (RDMA) only makes it
 * claim a node (c->peer), and any number of anonymous connections may
 * claim the same node at once, so an impostor cannot keep the real node
 * out. The first whose proof verifies attaches to the peer, if the node
 * should dial us and is not up (rpc_peers_acceptable()). A peer has at
 * most one attached connection, and only an attached connection carries
 * the peer's frames or changes the peer's state.
 *
 * Before the proof, nothing a connection does reaches the peer: a refused
 * Hello or proof, a bad frame, EOF, a reset or a deadline closes that
 * connection only (the dialler dials again after its backoff) and is
 * recorded as the peer's last handshake error, which the owner may show
 * (rpc_transport_handshake_error()). Once UP, any fault fails the peer.
 *
 * Anonymous connections are capped (the back end's max_anon, and
 * max_anon_per_source per source address: an IPv4 address or an IPv6 /64).
 * A new one is never refused: it evicts the oldest anonymous connection of
 * its own source when that source is at its cap, else, when all slots are
 * taken, the oldest of the source that holds the most. So a real node,
 * which opens one connection at a time from its own address, gets in
 * however many connections others hold. Each must say Hello within
 * cluster.hello_timeout_ms of being accepted and prove the key within
 * cluster.proof_timeout_ms after the Hellos.
 *
 * Logging. Messages about a connection name its real source address next
 * to what it claims ("connection from 10.0.0.9:4711: claims to be node
 * n2: wrong key (bad HMAC)"), never the configured node's address alone.
 * What an unauthenticated client can trigger at will goes through a rate
 * limit (rpc/log.h: one line a second with the count), per claimed node and
 * one for connections that claim nothing yet.
 *
 * Thread model
 * ------------
 * One loop thread (the one that called start(); rpc_peers.loop_tid) owns
 * every connection, the timers, the async handle and each peer's
 * membership fields ("loop thread" below); every rpc_callbacks callback
 * and every rpc_link_ops function except write() runs on it. Any thread
 * may call send() (rpc_peer_send()), peer_state() (an atomic load) and
 * stop() (forwarded through the async handle).
 *
 * Lock rules. A peer's send_mu guards the fields marked so below and, while
 * a connection is attached to the peer, that connection's send state (the
 * back end says which fields; rpc_conn_lock_send()); an anonymous
 * connection's send state is the loop thread's alone, since no sender can
 * reach it. send_mu is a leaf lock: nothing else is taken
 * while it is held (the verbs back end's mr_mu is never held with it) and
 * no callback runs under it. The loop thread publishes a connection as
 * send_conn, and withdraws it, only under send_mu, so a sender never
 * writes to a connection that is closing. A sender that needs the loop
 * thread (a queued frame to flush, a broken link to fail) wakes it with
 * uv_async_send() while still holding send_mu: stop() closes the async
 * handle only after it detached every connection under its send_mu.
 */
#ifndef DISCO_RPC_PEER_H
#define DISCO_RPC_PEER_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "rpc/auth.h"
#include "rpc/transport.h"
#include "rpc/log.h"

/* Dial backoff: 50 ms doubling to 1 s, for as long as a peer was never up. */
#define RPC_BACKOFF_MIN_MS 50
#define RPC_BACKOFF_MAX_MS 1000
/* Room for one failure reason (a peer's description comes on top). */
#define RPC_WHY_MAX 512
#define RPC_REMOTE_MAX 56 /* "[IPv6]:port" of a connection, for messages */
#define RPC_SOURCE_LEN 16 /* a source key: IPv4 address or IPv6 /64, zero-padded */

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct rpc_peers;
struct rpc_peer;

enum rpc_conn_phase {
	RPC_CONN_LINKING,   /* the back end is connecting (connect(), RDMA CM) */
	RPC_CONN_HANDSHAKE, /* frames flow: Hello / AuthProof exchange */
	RPC_CONN_UP,        /* the peer proved the key */
};

/* One connection. Loop thread only. */
struct rpc_conn {
	struct rpc_peers *t;
	struct rpc_conn *prev, *next; /* t->conns, until the back end unlinks it */
	int peer;         /* node index it claims (dialled, or named by its Hello or
			   * connect request; proven only once attached); else -1 */
	bool dialled;     /* we initiated it */
	bool attached;    /* t->peers[peer].conn == this */
	bool anon;        /* counted in t->n_anon: accepted, not attached, open */
	bool closing;     /* rpc_conn_close() ran; the back end frees it later */
	enum rpc_conn_phase phase;
	uint64_t opened_ms;          /* uv_now() at creation */
	uint64_t deadline_ms;        /* uv_now() by which the current step of the
				      * handshake must be over (on_tick) */
	char remote[RPC_REMOTE_MAX]; /* the other end's real address, for messages */
	uint8_t source[RPC_SOURCE_LEN]; /* the other end's address, for the cap */
	struct rpc_auth auth;        /* fresh per connection */

	/* Send state (with the back end's own, e.g. the TCP out-queue): the
	 * loop thread's while no sender can reach the connection; guarded by
	 * its peer's send_mu once it is attached (rpc_conn_lock_send()). */
	int send_err;         /* the link broke under a sender (negative errno);
			       * the loop thread fails the connection */
	const char *send_why; /* static text naming that failure, or NULL */
	bool flush_wanted;    /* a frame is queued; the loop was asked to flush */
};

/* What a link's write() did with a frame. */
enum {
	RPC_LINK_SENT = 0,   /* all of it handed to the socket / the HCA */
	RPC_LINK_QUEUED = 1, /* (part of) it waits in the link's queue */
};

struct rpc_peer {
	struct rpc_peers *t;
	int index;
	char desc[400]; /* "node n1 (10.0.0.2:7401)", for messages */

	/* Loop thread only (state is also read by any thread, atomically). */
	int state;             /* enum rpc_peer_state */
	struct rpc_conn *conn; /* attached connection, or NULL */
	uv_timer_t dial_timer;
	unsigned backoff_ms;
	uint64_t last_rx_ms;   /* uv_now() of the last frame received */
	struct disco_log_limit hs_log; /* handshake failures of connections claiming it */

	/* Guarded by send_mu (leaf lock). On a cache line of its own: senders
	 * on other threads take it for every frame, while the loop thread
	 * writes last_rx_ms for every frame it receives. send_mu also guards
	 * the send state of the connection attached to the peer. */
	pthread_mutex_t send_mu __attribute__((aligned(64)));
	struct rpc_conn *send_conn; /* the attached connection once it carries frames */
	bool sendable;              /* UP: rpc_transport_send() may write */
	char hs_error[RPC_WHY_MAX]; /* why the last handshake of a connection that
				     * claimed it failed, or "" */
};

/*
 * A link back end. Every function runs on the loop thread except write()
 * (any thread, send_mu held). Optional entries may be NULL.
 */
struct rpc_link_ops {
	const struct rpc_transport_ops *transport; /* what users call (RPC_PEERS_TRANSPORT_OPS) */
	size_t size;     /* of the back end's transport struct, struct rpc_peers first */
	size_t max_body; /* largest frame body send() accepts */
	int max_anon;            /* anonymous (accepted, unproven) connections kept */
	int max_anon_per_source; /* of them from one source address */
	/* Optional: create(): set the back end's fields that are not zero at
	 * rest. Nothing may fail here. */
	void (*init)(struct rpc_peers *t);
	/* start(): open the listener (and device) and the back end's own
	 * handles; log one line that says where we listen. */
	int (*open)(struct rpc_peers *t);
	/* Connect to @p: create a connection that claims it (rpc_conn_init(),
	 * rpc_conn_attach()) or return a negative errno, after which the
	 * machine dials again after the backoff. A failure after the
	 * connection exists is reported with rpc_conn_fail(). */
	int (*dial)(struct rpc_peers *t, struct rpc_peer *p);
	/* @c's send state locked (rpc_conn_lock_send()): write the frame in
	 * @iov (@n pieces, @total bytes) at once, or queue what does not fit
	 * behind what is queued. RPC_LINK_SENT, RPC_LINK_QUEUED, or a negative
	 * errno; when the link itself broke it also sets c->send_err (and
	 * send_why). Any thread for a peer's send_conn; the loop thread for a
	 * connection no sender can reach (the handshake of an accepted one). */
	int (*write)(struct rpc_conn *c, const struct iovec *iov, int n, size_t total);
	/* Optional: a write on the loop thread queued; flush as soon as the
	 * link can take more (send state not locked). NULL: through the
	 * async, or the next tick for a connection that is not attached. */
	void (*flush_soon)(struct rpc_conn *c);
	/* The async woke the loop and @p's link has no error: push what is
	 * queued (@flush_wanted: a sender asked for it). */
	void (*wake)(struct rpc_peer *p, bool flush_wanted);
	/* Optional: every heartbeat tick, after the Heartbeat to UP peer @p. */
	void (*tick)(struct rpc_peer *p);
	/* stop(), after our Goodbye to @p: push it out before the close. */
	void (*farewell)(struct rpc_peer *p);
	/* Optional: wait up to @ms for what was posted on @c to leave (before
	 * a refused AuthProof closes the link, so the peer, too, learns). */
	void (*settle)(struct rpc_conn *c, unsigned ms);
	/* Tear @c down; it is detached already. The back end unlinks
	 * (rpc_conn_unlink()) and frees it once nothing can point into it. */
	void (*close)(struct rpc_conn *c);
	/* stop(): close the back end's own handles. */
	void (*close_handles)(struct rpc_peers *t);
	/* Optional: at the end of each of the machine's loop callbacks. */
	void (*after_event)(struct rpc_peers *t);
	/* destroy(): free the back end's resources; rpc_peers frees the rest. */
	void (*destroy)(struct rpc_peers *t);
};

struct rpc_peers {
	struct rpc_transport base;
	const struct rpc_link_ops *link;
	struct rpc_peer *peers; /* cfg->n_nodes entries; peers[self] unused */
	struct rpc_conn *conns; /* every connection the back end has not unlinked */
	int n_anon;             /* accepted connections not attached yet (c->anon) */
	struct disco_log_limit anon_log; /* connections that claim no node, evictions */
	uv_timer_t hb_timer;
	uv_async_t async;
	uv_thread_t loop_tid;
	uint64_t last_tick_ms;
	bool started;  /* start() succeeded: the handles exist */
	bool stopping; /* stop/abort ran on the loop thread */
	int stop_req;  /* atomic: stop() asked from another thread */
};

/* Zeroed memory for @size bytes of a struct with cache-line-aligned
 * members (calloc only promises 16 bytes), or NULL. */
static inline void *rpc_zalloc_lines(size_t size)
{
	size_t rounded = (size + 63) & ~(size_t)63;
	void *m = aligned_alloc(64, rounded);
	if (m)
		memset(m, 0, rounded);
	return m;
}

static inline struct rpc_peers *rpc_peers_of(struct rpc_transport *t)
{
	return (struct rpc_peers *)t;
}

static inline const struct cluster_config *rpc_peers_cfg(const struct rpc_peers *t)
{
	return t->base.cfg;
}

static inline bool rpc_on_loop_thread(const struct rpc_peers *t)
{
	uv_thread_t self = uv_thread_self();
	return uv_thread_equal(&self, &t->loop_tid);
}

static inline void rpc_stat_add(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static inline enum rpc_peer_state rpc_peer_get_state(const struct rpc_peer *p)
{
	return (enum rpc_peer_state)__atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
}

static inline bool rpc_peer_state_final(enum rpc_peer_state s)
{
	return s == RPC_PEER_LEFT || s == RPC_PEER_FAILED;
}

static inline struct rpc_peer *rpc_conn_peer(const struct rpc_conn *c)
{
	return c->peer >= 0 ? &c->t->peers[c->peer] : NULL;
}

/* The lock of @c's send state: its peer's send_mu once @c is attached
 * (senders may reach it), none before (only the loop thread can). Taken
 * and released on the loop thread, which alone attaches connections. */
static inline void rpc_conn_lock_send(struct rpc_conn *c)
{
	if (c->attached)
		pthread_mutex_lock(&rpc_conn_peer(c)->send_mu);
}

static inline void rpc_conn_unlock_send(struct rpc_conn *c)
{
	if (c->attached)
		pthread_mutex_unlock(&rpc_conn_peer(c)->send_mu);
}

/* What send() returns once the link failed with @err: the owner sees
 * -ECONNRESET or -EPIPE; the log line names the real error. */
static inline int rpc_send_error(int err)
{
	return err == -ECONNRESET ? err : -EPIPE;
}

/* ---- peer.c: the transport (the back end's create() and ops table) ---- */

/* The back end's create(): check the arguments, allocate link->size
 * bytes (zeroed) and fill struct rpc_peers: -EINVAL (no @out, node index
 * out of range, too many nodes, a zero heartbeat or timeout), -ENOMEM. */
int rpc_peers_create(const struct rpc_link_ops *link, uv_loop_t *loop,
		     const struct cluster_config *cfg, int self, const struct rpc_callbacks *cb,
		     void *opaque, struct rpc_transport **out);
/* rpc_transport_ops entries, the same for every back end. */
#define RPC_PEERS_TRANSPORT_OPS                                                             \
	.start = rpc_peers_start, .send = rpc_peers_send, .peer_state = rpc_peers_peer_state, \
	.handshake_error = rpc_peers_handshake_error, .fail_peer = rpc_peers_fail_peer,     \
	.stop = rpc_peers_stop, .destroy = rpc_peers_destroy
int rpc_peers_start(struct rpc_transport *t);
int rpc_peers_send(struct rpc_transport *t, int peer, uint16_t type, const void *body,
		   size_t body_len, const void *page);
enum rpc_peer_state rpc_peers_peer_state(struct rpc_transport *t, int peer);
size_t rpc_peers_handshake_error(struct rpc_transport *t, int peer, char *buf, size_t len);
void rpc_peers_fail_peer(struct rpc_transport *t, int peer, const char *why);
void rpc_peers_stop(struct rpc_transport *t);
void rpc_peers_destroy(struct rpc_transport *t);
/* Stop on the loop thread; @goodbye false: as a crash (tests' abort). */
void rpc_peers_stop_now(struct rpc_peers *t, bool goodbye);
/* Fail every peer (a device error). Loop thread. */
void rpc_peers_fail_all(struct rpc_peers *t, const char *why);
/* Wake the loop thread (any thread; see the lock rules above). */
void rpc_peers_wake(struct rpc_peers *t);
/* The reason why a connection that claims node @node, opened to us, may
 * not attach to it (now, or once it proved the key) in @why, or NULL
 * when it may: the peer to attach to. Loop thread. */
struct rpc_peer *rpc_peers_acceptable(struct rpc_peers *t, int node, char *why, size_t len);
/* "10.0.0.2:7401" or "[fe80::1]:7401" for @sa into @buf. */
void rpc_format_addr(const struct sockaddr *sa, char *buf, size_t len);

/* ---- peer.c: connections (loop thread) ---- */

/* Fill @c (zeroed by the caller) and put it on t->conns. @peer: the node
 * it claims (dialled: the one we call; accepted: what an RDMA connect
 * request named), or -1; @remote: the other end's address. An accepted
 * connection is anonymous: it takes a slot, evicting another anonymous
 * connection when its source or the transport is at its cap (peer.h, top).
 * -EIO when the auth state cannot be prepared. */
int rpc_conn_init(struct rpc_conn *c, struct rpc_peers *t, int peer, bool dialled,
		  enum rpc_conn_phase phase, const struct sockaddr *remote);
/* Take @c off t->conns (the back end, when it frees @c). */
void rpc_conn_unlink(struct rpc_conn *c);
/* @c becomes @p's connection (a dialled one at once; an accepted one
 * once its proof verified). */
void rpc_conn_attach(struct rpc_conn *c, struct rpc_peer *p);
/* A handshake frame on @c: through its peer's send path once attached,
 * else straight to the link (loop thread). 0 or a negative errno. */
int rpc_conn_send(struct rpc_conn *c, uint16_t type, const void *body, size_t body_len);
/* The link can carry frames: the handshake starts (a dialler says Hello). */
void rpc_conn_linked(struct rpc_conn *c);
/* One whole frame arrived on @c (valid until this returns). @c may be
 * closed when it returns. */
void rpc_conn_frame(struct rpc_conn *c, const struct rpc_frame_view *f);
/* The other end closed @c between frames (EOF, DISCONNECTED). */
void rpc_conn_closed_by_peer(struct rpc_conn *c);
/* Close @c (idempotent) without failing anyone: detach it from its peer
 * under send_mu, then hand it to the back end's close(). */
void rpc_conn_close(struct rpc_conn *c);
/*
 * Something went wrong on @c. Once @c is UP, its peer fails. Before, only
 * @c closes, whatever went wrong: the peer waits for (or dials) the next
 * attempt, and the reason becomes its last handshake error. @refused: the
 * other end broke the protocol or was refused (a bad frame, Hello or
 * proof), logged as a warning; otherwise a link event (connect refused,
 * EOF, a reset, a deadline), logged quietly.
 */
void rpc_conn_fail(struct rpc_conn *c, bool refused, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- peer.c: peers (loop thread) ---- */

/* @p is gone for good: record @state (LEFT or FAILED), close its
 * connection, stop dialling, log one line and call on_peer_down, once. */
void rpc_peer_down(struct rpc_peer *p, enum rpc_peer_state state, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- peer_send.c: the send path (any thread) ---- */

/* Send one frame to @p. @internal: a handshake or membership frame from
 * the loop thread, allowed before the peer is UP. */
int rpc_peer_send(struct rpc_peer *p, uint16_t type, const void *body, size_t body_len,
		  const void *page, bool internal);

#endif
