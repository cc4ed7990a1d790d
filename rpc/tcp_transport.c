/*
 * TCP transport: the implementation of transport.h on plain non-blocking
 * sockets watched by libuv (uv_poll_t, not uv_tcp_t streams), so that any
 * thread can write a frame with one sendmsg() and no hop to the loop thread.
 * docs/transport.md describes the protocol; this comment the code.
 *
 * Thread model
 * ------------
 * The owner creates the loop and the thread that runs it, calls start() on
 * that thread (it records the thread id) and runs uv_run() there. That loop
 * thread owns everything but the send state: the listen socket, every
 * connection (struct tcp_conn: its poll handle, receive buffer, auth state),
 * the timers, the async handle and each peer's membership state. Every
 * callback of struct rpc_callbacks runs on it.
 *
 * Any thread may call send() and peer_state(). send() touches only the
 * peer's send state (struct tcp_peer, "guarded by send_mu" below): it takes
 * send_mu, writes at once when nothing is queued, and queues what the socket
 * did not take. If the loop thread must react (arm UV_WRITABLE to flush the
 * queue, or fail the peer after a socket error), the sender wakes it with
 * uv_async_send() while still holding send_mu; on the loop thread itself it
 * arms the poll directly. stop() may also be called from any thread (it is
 * forwarded through the same async); rpc_tcp_transport_abort() and
 * destroy() may not.
 *
 * send_mu is a leaf lock: nothing else is locked while it is held and no
 * callback runs under it. The loop thread changes send_fd only under it, so
 * a sender never writes to a socket that is being closed: conn_close() sets
 * send_fd = -1 under the lock before the descriptor is closed.
 *
 * Connections
 * -----------
 * Node i dials every node j < i and accepts from every j > i, so each pair
 * has one connection and no tie-break is needed. A dialled connection
 * belongs to its peer from the start; an accepted one is anonymous until its
 * Hello names a node that should dial us and has no connection yet. The
 * dialler sends Hello as soon as the TCP connection is up; the acceptor
 * answers with its Hello and its AuthProof once the dialler's Hello checks
 * out, so an unknown client learns nothing (not even a nonce) before naming
 * a member. Each side is UP when it has verified the other's proof.
 *
 * Failures. Before a peer was UP, a refused or dropped connection, or a
 * handshake that stalls longer than peer_timeout_ms, only closes that
 * connection: the dialler retries (50 ms doubling to 1 s) and the acceptor
 * waits for the next dial; the owner decides when to stop waiting. A
 * failed authentication or a protocol fault on a connection that names a
 * peer marks the peer FAILED; the same on an anonymous connection only
 * closes it. Once UP, any fault (EOF without Goodbye, reset, bad frame,
 * silence) marks the peer FAILED; Goodbye marks it LEFT. FAILED and LEFT are
 * final: on_peer_down runs once, and the peer is never reconnected.
 */
#include "rpc/tcp_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "membership.pb-c.h"
#include "rpc/auth.h"
#include "rpc/log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define READS_PER_WAKE 8  /* read() calls per readable event before yielding */
#define ACCEPTS_PER_WAKE 16
#define OUTQ_KEEP (1u << 20) /* an empty queue keeps at most this much memory */
#define WHY_MAX 512

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

enum conn_phase {
	CONN_DIALLING,  /* non-blocking connect() in progress */
	CONN_HANDSHAKE, /* Hello / AuthProof exchange */
	CONN_UP,        /* authenticated */
};

/* One socket. Loop thread only. Freed in the poll handle's close callback. */
struct tcp_conn {
	struct tcp_transport *t;
	struct tcp_conn *prev, *next; /* t->conns */
	uv_poll_t poll;
	int fd;
	int peer;         /* node index once known: dialled, or named by its Hello; else -1 */
	bool dialled;     /* we called connect() */
	bool attached;    /* t->peers[peer].conn == this */
	bool closing;     /* conn_close() ran; the struct lives until the close callback */
	bool write_armed; /* UV_WRITABLE is in the poll's events */
	enum conn_phase phase;
	uint64_t opened_ms; /* uv_now() when the connection was created */
	char remote[INET6_ADDRSTRLEN + 8];
	struct rpc_auth auth;
	uint8_t *rbuf; /* RPC_TCP_RBUF_SIZE; frames parse in place */
	size_t rstart, rend;
};

struct tcp_peer {
	int index;
	char desc[400]; /* "node n1 (10.0.0.2:7401)", for messages */

	/* Loop thread only (state is also read by any thread, atomically). */
	int state; /* enum rpc_peer_state */
	struct tcp_conn *conn; /* attached connection, or NULL */
	uv_timer_t dial_timer;
	unsigned backoff_ms;
	uint64_t last_rx_ms; /* uv_now() of the last frame received */
	bool resolved;
	struct sockaddr_storage addr;
	socklen_t addrlen;

	/* Guarded by send_mu (leaf lock). */
	pthread_mutex_t send_mu;
	int send_fd;       /* the attached connection's socket once connected, else -1 */
	bool sendable;     /* UP: rpc_transport_send() may write */
	int send_err;      /* socket error seen by a sender (negative errno); the loop fails the peer */
	bool flush_wanted; /* queue not empty; loop asked to flush it (arms UV_WRITABLE) */
	uint8_t *outq;     /* bytes [out_off, out_len) await the socket */
	size_t out_off, out_len, out_cap;
};

struct tcp_transport {
	struct rpc_transport base;
	struct tcp_peer *peers; /* cfg->n_nodes entries; peers[self] unused */
	struct tcp_conn *conns; /* every open or closing connection */
	int listen_fd;
	uv_poll_t listen_poll;
	uv_timer_t hb_timer;
	uv_async_t async;
	uv_thread_t loop_tid;
	uint64_t last_tick_ms;
	bool started;  /* start() succeeded: handles exist */
	bool stopping; /* stop/abort ran on the loop thread */
	int stop_req;  /* atomic: stop() asked from another thread */
};

static const char *const state_names[] = {
	[RPC_PEER_CONNECTING] = "connecting", [RPC_PEER_AUTHENTICATING] = "authenticating",
	[RPC_PEER_UP] = "up",                 [RPC_PEER_LEFT] = "left",
	[RPC_PEER_FAILED] = "failed",
};

const char *rpc_peer_state_name(enum rpc_peer_state s)
{
	if ((unsigned)s < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[s];
	return "?";
}

static struct tcp_transport *TT(struct rpc_transport *t)
{
	return (struct tcp_transport *)t;
}

static const struct cluster_config *CFG(struct tcp_transport *t)
{
	return t->base.cfg;
}

static bool on_loop_thread(struct tcp_transport *t)
{
	uv_thread_t self = uv_thread_self();
	return uv_thread_equal(&self, &t->loop_tid);
}

static void stat_add(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static enum rpc_peer_state get_state(struct tcp_peer *p)
{
	return (enum rpc_peer_state)__atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
}

static void set_state(struct tcp_peer *p, enum rpc_peer_state s)
{
	__atomic_store_n(&p->state, (int)s, __ATOMIC_RELEASE);
}

static bool state_final(enum rpc_peer_state s)
{
	return s == RPC_PEER_LEFT || s == RPC_PEER_FAILED;
}

/* How messages name a connection: its peer, or its remote address. */
static const char *conn_desc(struct tcp_conn *c, char *buf, size_t len)
{
	if (c->peer >= 0)
		return c->t->peers[c->peer].desc;
	snprintf(buf, len, "connection from %s", c->remote);
	return buf;
}

/* Format "<desc>: <reason>" into @out, unless @reason already starts with
 * the description (the auth module's messages do). */
static void compose(char *out, size_t len, const char *desc, const char *fmt, va_list ap)
{
	char reason[WHY_MAX];
	vsnprintf(reason, sizeof(reason), fmt, ap);
	if (!strncmp(reason, desc, strlen(desc)))
		snprintf(out, len, "%s", reason);
	else
		snprintf(out, len, "%s: %s", desc, reason);
}

static void conn_close(struct tcp_conn *c);
static void schedule_dial(struct tcp_transport *t, struct tcp_peer *p);
static int peer_send(struct tcp_transport *t, struct tcp_peer *p, uint16_t type,
		     const void *body, size_t body_len, const void *page, bool internal);

/* ------------------------------------------------------------------ */
/* Peer state changes (loop thread)                                     */

/*
 * The peer is gone for good: record @state (LEFT or FAILED), close its
 * connection, stop dialling, log one line and tell the owner, once.
 */
static void peer_down(struct tcp_transport *t, struct tcp_peer *p, enum rpc_peer_state state,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void peer_down(struct tcp_transport *t, struct tcp_peer *p, enum rpc_peer_state state,
		      const char *fmt, ...)
{
	char why[WHY_MAX + 400];
	va_list ap;

	if (state_final(get_state(p)))
		return;
	va_start(ap, fmt);
	compose(why, sizeof(why), p->desc, fmt, ap);
	va_end(ap);
	set_state(p, state);
	if (p->conn)
		conn_close(p->conn);
	if (t->started && !t->stopping)
		uv_timer_stop(&p->dial_timer);
	disco_log(state == RPC_PEER_FAILED ? DISCO_LOG_ERROR : DISCO_LOG_INFO, "%s%s",
		  state == RPC_PEER_FAILED ? "peer failed: " : "peer left: ", why);
	if (t->base.cb.on_peer_down)
		t->base.cb.on_peer_down(t->base.opaque, p->index, state, why);
}

/*
 * Something went wrong on connection @c. @fatal: an authentication failure
 * or protocol fault, which fails the named peer; otherwise (connection
 * refused/lost/stalled before UP) the connection is closed and the peer
 * waits for, or makes, the next attempt. Any fault of an UP peer is fatal.
 */
static void conn_fail(struct tcp_conn *c, bool fatal, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void conn_fail(struct tcp_conn *c, bool fatal, const char *fmt, ...)
{
	struct tcp_transport *t = c->t;
	char why[WHY_MAX + 400], db[INET6_ADDRSTRLEN + 32];
	va_list ap;

	if (c->closing)
		return;
	va_start(ap, fmt);
	compose(why, sizeof(why), conn_desc(c, db, sizeof(db)), fmt, ap);
	va_end(ap);

	if (!c->attached) {
		disco_log(DISCO_LOG_WARN, "closing %s", why);
		conn_close(c);
		return;
	}
	struct tcp_peer *p = &t->peers[c->peer];
	if (fatal || get_state(p) == RPC_PEER_UP) {
		peer_down(t, p, RPC_PEER_FAILED, "%s", why);
		return;
	}
	disco_log(c->dialled ? DISCO_LOG_DEBUG : DISCO_LOG_INFO, "%s (will %s)", why,
		  c->dialled ? "retry" : "wait for the next attempt");
	conn_close(c);
	if (t->stopping)
		return;
	if (c->dialled) {
		set_state(p, RPC_PEER_CONNECTING);
		schedule_dial(t, p);
	} else {
		set_state(p, RPC_PEER_CONNECTING);
	}
}

/* ------------------------------------------------------------------ */
/* Connections (loop thread)                                            */

static void on_conn_poll(uv_poll_t *h, int status, int events);

static void on_conn_closed(uv_handle_t *h)
{
	struct tcp_conn *c = h->data;
	struct tcp_transport *t = c->t;

	if (c->fd >= 0)
		close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->rbuf);
	free(c);
}

/* A new connection on socket @fd, watched for @events. NULL on failure (fd
 * closed). */
static struct tcp_conn *conn_new(struct tcp_transport *t, int fd, int peer, bool dialled,
				 const char *remote, int events)
{
	struct tcp_conn *c = calloc(1, sizeof(*c));
	uint8_t *rbuf = malloc(RPC_TCP_RBUF_SIZE);
	int r;

	if (!c || !rbuf || rpc_auth_init(&c->auth, CFG(t), t->base.self) < 0) {
		disco_log(DISCO_LOG_ERROR, "out of memory for a connection");
		goto fail;
	}
	r = uv_poll_init(t->base.loop, &c->poll, fd);
	if (r < 0) {
		disco_log(DISCO_LOG_ERROR, "uv_poll_init: %s", uv_strerror(r));
		goto fail;
	}
	c->t = t;
	c->poll.data = c;
	c->fd = fd;
	c->peer = peer;
	c->dialled = dialled;
	c->rbuf = rbuf;
	c->phase = dialled ? CONN_DIALLING : CONN_HANDSHAKE;
	c->opened_ms = uv_now(t->base.loop);
	snprintf(c->remote, sizeof(c->remote), "%s", remote);
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	r = uv_poll_start(&c->poll, events, on_conn_poll);
	if (r < 0) {
		disco_log(DISCO_LOG_ERROR, "uv_poll_start: %s", uv_strerror(r));
		conn_close(c);
		return NULL;
	}
	return c;
fail:
	free(rbuf);
	free(c);
	close(fd);
	return NULL;
}

/* Close @c (idempotent): detach it from its peer under send_mu, so no
 * sender can write to it any more, and stop watching it. The memory and the
 * descriptor go in the close callback. Never calls owner callbacks. */
static void conn_close(struct tcp_conn *c)
{
	struct tcp_transport *t = c->t;

	if (c->closing)
		return;
	c->closing = true;
	if (c->attached) {
		struct tcp_peer *p = &t->peers[c->peer];
		pthread_mutex_lock(&p->send_mu);
		p->send_fd = -1;
		p->sendable = false;
		p->send_err = 0;
		p->flush_wanted = false;
		p->out_off = p->out_len = 0;
		if (p->out_cap > OUTQ_KEEP) {
			free(p->outq);
			p->outq = NULL;
			p->out_cap = 0;
		}
		pthread_mutex_unlock(&p->send_mu);
		p->conn = NULL;
		c->attached = false;
	}
	uv_poll_stop(&c->poll);
	uv_close((uv_handle_t *)&c->poll, on_conn_closed);
}

static void conn_attach(struct tcp_conn *c, struct tcp_peer *p)
{
	p->conn = c;
	c->peer = p->index;
	c->attached = true;
	if (c->phase != CONN_DIALLING) {
		pthread_mutex_lock(&p->send_mu);
		p->send_fd = c->fd;
		pthread_mutex_unlock(&p->send_mu);
	}
}

static void conn_set_events(struct tcp_conn *c, bool writable)
{
	int r = uv_poll_start(&c->poll, UV_READABLE | (writable ? UV_WRITABLE : 0), on_conn_poll);
	if (r < 0) {
		conn_fail(c, false, "uv_poll_start: %s", uv_strerror(r));
		return;
	}
	c->write_armed = writable;
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(buf, len, "%s:%d", host, port);
}

/* ------------------------------------------------------------------ */
/* Handshake and frame dispatch (loop thread)                           */

static int send_hello(struct tcp_conn *c)
{
	uint8_t buf[RPC_AUTH_HELLO_MAX];
	long n = rpc_auth_make_hello(&c->auth, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return peer_send(c->t, &c->t->peers[c->peer], RPC_MSG_HELLO, buf, (size_t)n, NULL, true);
}

static int send_proof(struct tcp_conn *c)
{
	uint8_t buf[RPC_AUTH_PROOF_MAX];
	long n = rpc_auth_make_proof(&c->auth, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return peer_send(c->t, &c->t->peers[c->peer], RPC_MSG_AUTH, buf, (size_t)n, NULL, true);
}

/* Hello on an accepted connection: it names the peer. */
static void on_anonymous_hello(struct tcp_conn *c, const struct rpc_frame_view *f)
{
	struct tcp_transport *t = c->t;
	char err[WHY_MAX];
	int r, idx = rpc_auth_on_hello(&c->auth, f->body, f->body_len, -1, err, sizeof(err));

	if (idx < 0) {
		conn_fail(c, false, "%s", err);
		return;
	}
	struct tcp_peer *p = &t->peers[idx];
	if (idx < t->base.self) {
		conn_fail(c, false, "%s: dials us, but we dial it (lower index)", p->desc);
		return;
	}
	enum rpc_peer_state st = get_state(p);
	if (st != RPC_PEER_CONNECTING || p->conn) {
		conn_fail(c, false, "%s: second connection refused (peer is %s)", p->desc,
			  rpc_peer_state_name(st));
		return;
	}
	conn_attach(c, p);
	set_state(p, RPC_PEER_AUTHENTICATING);
	if ((r = send_hello(c)) < 0 || (r = send_proof(c)) < 0)
		conn_fail(c, false, "sending handshake: %s", strerror(-r));
}

static void peer_up(struct tcp_transport *t, struct tcp_conn *c)
{
	struct tcp_peer *p = &t->peers[c->peer];

	c->phase = CONN_UP;
	p->last_rx_ms = uv_now(t->base.loop);
	pthread_mutex_lock(&p->send_mu);
	p->sendable = true;
	pthread_mutex_unlock(&p->send_mu);
	set_state(p, RPC_PEER_UP);
	disco_log(DISCO_LOG_INFO, "%s: up (%s)", p->desc, c->dialled ? "dialled" : "accepted");
	if (t->base.cb.on_peer_up)
		t->base.cb.on_peer_up(t->base.opaque, p->index);
}

static void on_handshake_frame(struct tcp_conn *c, const struct rpc_frame_view *f)
{
	struct tcp_transport *t = c->t;
	char err[WHY_MAX];
	int r;

	if (c->peer < 0) {
		if (f->type == RPC_MSG_HELLO)
			on_anonymous_hello(c, f);
		else
			conn_fail(c, false, "frame type %u before Hello", f->type);
		return;
	}
	switch (f->type) {
	case RPC_MSG_HELLO:
		r = rpc_auth_on_hello(&c->auth, f->body, f->body_len, c->peer, err, sizeof(err));
		if (r < 0) {
			conn_fail(c, true, "%s", err);
			return;
		}
		if ((r = send_proof(c)) < 0)
			conn_fail(c, false, "sending proof: %s", strerror(-r));
		return;
	case RPC_MSG_AUTH:
		r = rpc_auth_check_proof(&c->auth, f->body, f->body_len, err, sizeof(err));
		if (r < 0) {
			conn_fail(c, true, "%s", err);
			return;
		}
		/* Our proof went out when we accepted its Hello. */
		peer_up(t, c);
		return;
	default:
		conn_fail(c, true, "frame type %u before authentication", f->type);
		return;
	}
}

static void on_goodbye(struct tcp_conn *c, const struct rpc_frame_view *f)
{
	struct tcp_transport *t = c->t;
	Disco__Goodbye *g = disco__goodbye__unpack(NULL, f->body_len, f->body);
	char reason[128];

	snprintf(reason, sizeof(reason), "%s", g && g->reason[0] ? g->reason : "no reason given");
	if (g)
		disco__goodbye__free_unpacked(g, NULL);
	peer_down(t, &t->peers[c->peer], RPC_PEER_LEFT, "said goodbye (%s)", reason);
}

static void dispatch(struct tcp_conn *c, const struct rpc_frame_view *f)
{
	struct tcp_transport *t = c->t;

	if (c->phase != CONN_UP) {
		on_handshake_frame(c, f);
		return;
	}
	switch (f->type) {
	case RPC_MSG_HELLO:
	case RPC_MSG_AUTH:
		conn_fail(c, true, "handshake frame type %u after authentication", f->type);
		return;
	case RPC_MSG_HEARTBEAT:
		return; /* its arrival refreshed last_rx_ms */
	case RPC_MSG_GOODBYE:
		on_goodbye(c, f);
		return;
	default:
		if (f->type < RPC_MSG_DSM) {
			disco_log(DISCO_LOG_DEBUG, "%s: ignoring membership frame type %u",
				  t->peers[c->peer].desc, f->type);
			return;
		}
		if (t->base.cb.on_frame)
			t->base.cb.on_frame(t->base.opaque, c->peer, f);
	}
}

/* Parse and dispatch every whole frame in the receive buffer. */
static void parse_frames(struct tcp_conn *c)
{
	struct tcp_transport *t = c->t;
	struct rpc_frame_view f;
	char err[256];

	while (!c->closing) {
		long n = rpc_frame_parse(c->rbuf + c->rstart, c->rend - c->rstart, &f, err,
					 sizeof(err));
		if (n == 0)
			break;
		if (n < 0) {
			conn_fail(c, true, "%s", err);
			return;
		}
		c->rstart += (size_t)n;
		stat_add(&t->base.stats.frames_received, 1);
		if (c->attached)
			t->peers[c->peer].last_rx_ms = uv_now(t->base.loop);
		dispatch(c, &f);
	}
	if (c->closing)
		return;
	/* Keep the partial frame at the front: the buffer (>= 3 maximal
	 * frames) then always has room for the rest of it. */
	if (c->rstart == c->rend) {
		c->rstart = c->rend = 0;
	} else if (c->rstart > 0) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
}

static void on_eof(struct tcp_conn *c)
{
	size_t partial = c->rend - c->rstart;

	if (partial)
		conn_fail(c, true, "connection closed in the middle of a frame (%zu bytes pending)",
			  partial);
	else if (c->phase == CONN_UP)
		conn_fail(c, true, "connection closed without Goodbye");
	else if (c->peer < 0)
		conn_close(c); /* a client that went away: nothing to report */
	else
		conn_fail(c, false, "connection closed during the handshake");
}

static void do_read(struct tcp_conn *c)
{
	struct tcp_transport *t = c->t;

	for (int i = 0; i < READS_PER_WAKE && !c->closing; i++) {
		size_t room = RPC_TCP_RBUF_SIZE - c->rend;
		ssize_t n = read(c->fd, c->rbuf + c->rend, room);
		if (n > 0) {
			c->rend += (size_t)n;
			stat_add(&t->base.stats.bytes_received, (uint64_t)n);
			parse_frames(c);
			if ((size_t)n < room)
				return; /* drained */
			continue;
		}
		if (n == 0) {
			on_eof(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		conn_fail(c, false, "read: %s", strerror(errno));
		return;
	}
}

/* ------------------------------------------------------------------ */
/* Send path (any thread) and queue flushing (loop thread)              */

/* Append @iov (skipping its first @skip bytes) to the queue (send_mu held). */
static int outq_append(struct tcp_peer *p, const struct iovec *iov, int n, size_t skip)
{
	size_t add = 0;
	for (int i = 0; i < n; i++)
		add += iov[i].iov_len;
	add -= skip;
	if (p->out_off > 0 && p->out_len + add > p->out_cap) {
		memmove(p->outq, p->outq + p->out_off, p->out_len - p->out_off);
		p->out_len -= p->out_off;
		p->out_off = 0;
	}
	if (p->out_len + add > p->out_cap) {
		size_t cap = p->out_cap ? p->out_cap : 64 * 1024;
		while (cap < p->out_len + add)
			cap *= 2;
		uint8_t *q = realloc(p->outq, cap);
		if (!q)
			return -ENOMEM;
		p->outq = q;
		p->out_cap = cap;
	}
	for (int i = 0; i < n; i++) {
		size_t len = iov[i].iov_len;
		const uint8_t *base = iov[i].iov_base;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		memcpy(p->outq + p->out_len, base + skip, len - skip);
		p->out_len += len - skip;
		skip = 0;
	}
	return 0;
}

/*
 * Write one frame to @p: directly when nothing is queued, else behind the
 * queue. @internal: a handshake/membership frame from the loop thread,
 * allowed before the peer is UP.
 */
static int peer_send(struct tcp_transport *t, struct tcp_peer *p, uint16_t type,
		     const void *body, size_t body_len, const void *page, bool internal)
{
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	struct iovec iov[3];
	int n = 0, ret = 0;
	size_t total = 0;
	bool kick = false, queued = false, loop = on_loop_thread(t);

	rpc_frame_header_encode(hdr, type, page ? RPC_FRAME_FLAG_PAGE : 0, (uint32_t)body_len);
	iov[n++] = (struct iovec){ hdr, sizeof(hdr) };
	if (body_len)
		iov[n++] = (struct iovec){ (void *)body, body_len };
	if (page)
		iov[n++] = (struct iovec){ (void *)page, RPC_PAGE_SIZE };
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;

	pthread_mutex_lock(&p->send_mu);
	if (p->send_err) {
		ret = p->send_err;
		goto out;
	}
	if (p->send_fd < 0 || (!internal && !p->sendable)) {
		ret = -ENOTCONN;
		goto out;
	}
	size_t done = 0;
	if (p->out_off == p->out_len) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w;
		do
			w = sendmsg(p->send_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				ret = errno == EPIPE || errno == ECONNRESET ? -errno : -EPIPE;
				p->send_err = -errno;
				kick = true; /* the loop fails the peer */
				goto out;
			}
			w = 0;
		}
		done = (size_t)w;
		if (done == total)
			goto sent;
	} else if (p->out_len - p->out_off + total > RPC_TCP_OUTQ_MAX) {
		ret = -ENOBUFS;
		goto out;
	}
	if (outq_append(p, iov, n, done) < 0) {
		ret = -ENOMEM;
		if (done > 0) { /* half a frame is on the wire: the stream is lost */
			p->send_err = -ENOMEM;
			kick = true;
		}
		goto out;
	}
	queued = true;
	if (!p->flush_wanted) {
		p->flush_wanted = true;
		kick = true;
	}
sent:
	stat_add(&t->base.stats.frames_sent, 1);
	stat_add(&t->base.stats.bytes_sent, total);
	if (queued)
		stat_add(&t->base.stats.send_queued, 1);
out:
	/* Woken under send_mu: stop() closes the async handle only after it
	 * took every send_mu and saw send_fd == -1. An error is always
	 * reported through the async, so on_peer_down never runs inside
	 * send(), even on the loop thread. */
	bool failed = p->send_err != 0;
	if (kick && (!loop || failed))
		uv_async_send(&t->async);
	pthread_mutex_unlock(&p->send_mu);
	if (kick && loop && !failed) {
		struct tcp_conn *c = p->conn;
		if (c && !c->closing && c->phase != CONN_DIALLING && !c->write_armed)
			conn_set_events(c, true);
	}
	return ret;
}

/* The socket of @c is writable: push out the queue. */
static void flush_queue(struct tcp_conn *c)
{
	struct tcp_peer *p = &c->t->peers[c->peer];
	int err = 0;
	bool empty = false;

	pthread_mutex_lock(&p->send_mu);
	while (p->out_off < p->out_len && !p->send_err) {
		ssize_t w = send(p->send_fd, p->outq + p->out_off, p->out_len - p->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				p->send_err = -errno;
			break;
		}
		p->out_off += (size_t)w;
	}
	err = p->send_err;
	if (p->out_off == p->out_len) {
		p->out_off = p->out_len = 0;
		p->flush_wanted = false;
		empty = true;
		if (p->out_cap > OUTQ_KEEP) {
			free(p->outq);
			p->outq = NULL;
			p->out_cap = 0;
		}
	}
	pthread_mutex_unlock(&p->send_mu);
	if (err)
		conn_fail(c, false, "send: %s", strerror(-err));
	else if (empty && c->write_armed)
		conn_set_events(c, false);
}

/* ------------------------------------------------------------------ */
/* Dialling (loop thread)                                               */

static int resolve(const char *host, int port, int flags, struct addrinfo **out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = flags | AI_NUMERICSERV };
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", port);
	return getaddrinfo(host, ports, &hints, out);
}

static void on_dial_timer(uv_timer_t *h);

static void schedule_dial(struct tcp_transport *t, struct tcp_peer *p)
{
	if (t->stopping || state_final(get_state(p)))
		return;
	uv_timer_start(&p->dial_timer, on_dial_timer, p->backoff_ms, 0);
	p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void dial(struct tcp_transport *t, struct tcp_peer *p)
{
	const struct cluster_node *n = &CFG(t)->nodes[p->index];
	char remote[INET6_ADDRSTRLEN + 8];

	if (t->stopping || state_final(get_state(p)) || p->conn)
		return;
	if (!p->resolved) {
		/* Blocking for a host name; addresses are numeric in practice. */
		struct addrinfo *ai;
		int r = resolve(n->address, n->port, 0, &ai);
		if (r != 0) {
			disco_log(DISCO_LOG_WARN, "%s: cannot resolve: %s", p->desc,
				  gai_strerror(r));
			schedule_dial(t, p);
			return;
		}
		memcpy(&p->addr, ai->ai_addr, ai->ai_addrlen);
		p->addrlen = ai->ai_addrlen;
		p->resolved = true;
		freeaddrinfo(ai);
	}
	int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		disco_log(DISCO_LOG_ERROR, "%s: socket: %s", p->desc, strerror(errno));
		schedule_dial(t, p);
		return;
	}
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&p->addr, p->addrlen) < 0 && errno != EINPROGRESS) {
		disco_log(DISCO_LOG_DEBUG, "%s: connect: %s", p->desc, strerror(errno));
		close(fd);
		schedule_dial(t, p);
		return;
	}
	format_addr((struct sockaddr *)&p->addr, remote, sizeof(remote));
	struct tcp_conn *c = conn_new(t, fd, p->index, true, remote, UV_WRITABLE);
	if (!c) {
		schedule_dial(t, p);
		return;
	}
	conn_attach(c, p);
	c->write_armed = true;
}

static void on_dial_timer(uv_timer_t *h)
{
	struct tcp_peer *p = container_of(h, struct tcp_peer, dial_timer);
	dial(h->data, p);
}

/* connect() finished on a dialled connection. */
static void on_connected(struct tcp_conn *c)
{
	struct tcp_peer *p = &c->t->peers[c->peer];
	int soerr = 0, r;
	socklen_t len = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		conn_fail(c, false, "connect: %s", strerror(soerr));
		return;
	}
	c->phase = CONN_HANDSHAKE;
	pthread_mutex_lock(&p->send_mu);
	p->send_fd = c->fd;
	pthread_mutex_unlock(&p->send_mu);
	set_state(p, RPC_PEER_AUTHENTICATING);
	disco_log(DISCO_LOG_DEBUG, "%s: connected, authenticating", p->desc);
	conn_set_events(c, false);
	if (!c->closing && (r = send_hello(c)) < 0)
		conn_fail(c, false, "sending Hello: %s", strerror(-r));
}

static void on_conn_poll(uv_poll_t *h, int status, int events)
{
	struct tcp_conn *c = h->data;

	if (c->closing)
		return;
	if (c->phase == CONN_DIALLING) {
		on_connected(c); /* SO_ERROR tells whether it worked */
		return;
	}
	if (status < 0) {
		/* libuv reports a socket error (POLLERR, e.g. a reset) as
		 * UV_EBADF and stops the poll. Read what arrived before it
		 * (a Goodbye may be there), then report the real error. */
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		do_read(c);
		if (!c->closing)
			conn_fail(c, false, "connection lost (%s)",
				  soerr ? strerror(soerr) : uv_strerror(status));
		return;
	}
	if ((events & UV_WRITABLE) && c->attached)
		flush_queue(c);
	if ((events & UV_READABLE) && !c->closing)
		do_read(c);
}

/* ------------------------------------------------------------------ */
/* Accepting (loop thread)                                              */

static void on_listen_poll(uv_poll_t *h, int status, int events)
{
	struct tcp_transport *t = h->data;

	if (status < 0) {
		disco_log(DISCO_LOG_ERROR, "listen socket: %s", uv_strerror(status));
		return;
	}
	for (int i = 0; i < ACCEPTS_PER_WAKE && !t->stopping; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char remote[INET6_ADDRSTRLEN + 8];
		int fd = accept4(t->listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				disco_log(DISCO_LOG_ERROR, "accept: %s", strerror(errno));
			return;
		}
		set_nodelay(fd);
		format_addr((struct sockaddr *)&ss, remote, sizeof(remote));
		disco_log(DISCO_LOG_DEBUG, "connection from %s", remote);
		conn_new(t, fd, -1, false, remote, UV_READABLE);
	}
}

static int open_listener(struct tcp_transport *t)
{
	const struct cluster_node *n = &CFG(t)->nodes[t->base.self];
	struct addrinfo *ai, *a;
	int r = resolve(n->address, n->port, AI_PASSIVE, &ai), err = 0;

	if (r != 0) {
		disco_log(DISCO_LOG_ERROR, "cannot resolve our address %s: %s", n->address,
			  gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	for (a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		int one = 1;
		if (fd < 0) {
			err = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) {
			freeaddrinfo(ai);
			t->listen_fd = fd;
			return 0;
		}
		err = -errno;
		close(fd);
	}
	freeaddrinfo(ai);
	disco_log(DISCO_LOG_ERROR, "cannot listen on %s:%d: %s", n->address, n->port,
		  strerror(-err));
	return err ? err : -EADDRNOTAVAIL;
}

/* ------------------------------------------------------------------ */
/* Heartbeats and timeouts (loop thread)                                */

static void send_heartbeat(struct tcp_transport *t, struct tcp_peer *p)
{
	Disco__Heartbeat hb = DISCO__HEARTBEAT__INIT;
	uint8_t buf[16];
	hb.sent_ns = uv_hrtime();
	size_t n = disco__heartbeat__pack(&hb, buf);
	/* An error reaches the loop through the async; nothing to do here. */
	peer_send(t, p, RPC_MSG_HEARTBEAT, buf, n, NULL, true);
}

static void on_tick(uv_timer_t *h)
{
	struct tcp_transport *t = h->data;
	const struct cluster_config *cfg = CFG(t);
	uint64_t now = uv_now(t->base.loop);
	/* If this loop itself stalled, the silence we measured is ours:
	 * restart the clocks instead of failing every peer. */
	bool stalled = now - t->last_tick_ms > cfg->heartbeat_ms + cfg->peer_timeout_ms / 2;

	if (stalled)
		disco_log(DISCO_LOG_WARN, "loop stalled for %" PRIu64 " ms; peer timeouts restart",
			  now - t->last_tick_ms);
	t->last_tick_ms = now;
	for (int i = 0; i < cfg->n_nodes && !t->stopping; i++) {
		struct tcp_peer *p = &t->peers[i];
		if (i == t->base.self || get_state(p) != RPC_PEER_UP)
			continue;
		if (stalled)
			p->last_rx_ms = now;
		if (now - p->last_rx_ms > cfg->peer_timeout_ms)
			peer_down(t, p, RPC_PEER_FAILED, "no frame for %" PRIu64 " ms",
				  now - p->last_rx_ms);
		else
			send_heartbeat(t, p);
	}
	for (struct tcp_conn *c = t->conns, *next; c && !t->stopping; c = next) {
		next = c->next;
		if (!c->closing && c->phase != CONN_UP && now - c->opened_ms > cfg->peer_timeout_ms)
			conn_fail(c, false, "%s not finished after %" PRIu64 " ms",
				  c->phase == CONN_DIALLING ? "connect" : "handshake",
				  now - c->opened_ms);
	}
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */

static void do_stop(struct tcp_transport *t, bool goodbye);

static void on_async(uv_async_t *h)
{
	struct tcp_transport *t = h->data;

	if (__atomic_load_n(&t->stop_req, __ATOMIC_ACQUIRE)) {
		do_stop(t, true);
		return;
	}
	for (int i = 0; i < CFG(t)->n_nodes && !t->stopping; i++) {
		struct tcp_peer *p = &t->peers[i];
		struct tcp_conn *c = p->conn;
		if (i == t->base.self || !c || c->closing)
			continue;
		pthread_mutex_lock(&p->send_mu);
		int err = p->send_err;
		bool want = p->flush_wanted;
		pthread_mutex_unlock(&p->send_mu);
		if (err)
			conn_fail(c, false, "send: %s", strerror(-err));
		else if (want && !c->write_armed && c->phase != CONN_DIALLING)
			conn_set_events(c, true);
	}
}

static void on_listen_closed(uv_handle_t *h)
{
	struct tcp_transport *t = h->data;
	close(t->listen_fd);
	t->listen_fd = -1;
}

static int tcp_start(struct rpc_transport *bt)
{
	struct tcp_transport *t = TT(bt);
	const struct cluster_config *cfg = CFG(t);
	uv_loop_t *loop = t->base.loop;
	int r;

	if (t->started)
		return -EALREADY;
	disco_log_set_thread_node(cfg->nodes[t->base.self].name);
	r = open_listener(t);
	if (r < 0)
		return r;
	t->loop_tid = uv_thread_self();
	uv_poll_init(loop, &t->listen_poll, t->listen_fd);
	t->listen_poll.data = t;
	uv_poll_start(&t->listen_poll, UV_READABLE, on_listen_poll);
	uv_async_init(loop, &t->async, on_async);
	t->async.data = t;
	uv_timer_init(loop, &t->hb_timer);
	t->hb_timer.data = t;
	uv_timer_start(&t->hb_timer, on_tick, cfg->heartbeat_ms, cfg->heartbeat_ms);
	t->last_tick_ms = uv_now(loop);
	for (int i = 0; i < cfg->n_nodes; i++) {
		if (i == t->base.self)
			continue;
		uv_timer_init(loop, &t->peers[i].dial_timer);
		t->peers[i].dial_timer.data = t;
	}
	t->started = true;
	disco_log(DISCO_LOG_INFO, "listening on %s:%d, %d peers", cfg->nodes[t->base.self].address,
		  cfg->nodes[t->base.self].port, cfg->n_nodes - 1);
	for (int i = 0; i < t->base.self; i++)
		dial(t, &t->peers[i]);
	return 0;
}

static void do_stop(struct tcp_transport *t, bool goodbye)
{
	const struct cluster_config *cfg = CFG(t);

	if (!t->started || t->stopping)
		return;
	for (int i = 0; goodbye && i < cfg->n_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];
		if (i == t->base.self || get_state(p) != RPC_PEER_UP)
			continue;
		Disco__Goodbye g = DISCO__GOODBYE__INIT;
		uint8_t buf[64];
		g.reason = "node stopping";
		size_t n = disco__goodbye__pack(&g, buf);
		peer_send(t, p, RPC_MSG_GOODBYE, buf, n, NULL, true);
		/* Best effort: push what the socket takes now; then FIN. */
		if (p->conn)
			flush_queue(p->conn);
		if (p->conn) {
			/* FIN after the Goodbye; drain what the peer sent so
			 * close() sends no reset that could overtake it. */
			uint8_t sink[4096];
			shutdown(p->conn->fd, SHUT_WR);
			while (read(p->conn->fd, sink, sizeof(sink)) > 0)
				;
		}
	}
	t->stopping = true;
	for (int i = 0; i < cfg->n_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];
		if (i == t->base.self)
			continue;
		if (!state_final(get_state(p)))
			set_state(p, RPC_PEER_LEFT);
		uv_close((uv_handle_t *)&p->dial_timer, NULL);
	}
	for (struct tcp_conn *c = t->conns; c; c = c->next)
		conn_close(c);
	uv_poll_stop(&t->listen_poll);
	uv_close((uv_handle_t *)&t->listen_poll, on_listen_closed);
	uv_close((uv_handle_t *)&t->hb_timer, NULL);
	uv_close((uv_handle_t *)&t->async, NULL);
	disco_log(DISCO_LOG_DEBUG, "transport stopped");
}

static void tcp_stop(struct rpc_transport *bt)
{
	struct tcp_transport *t = TT(bt);

	if (!t->started)
		return;
	if (on_loop_thread(t)) {
		do_stop(t, true);
		return;
	}
	int expected = 0;
	if (__atomic_compare_exchange_n(&t->stop_req, &expected, 1, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		uv_async_send(&t->async);
}

void rpc_tcp_transport_abort(struct rpc_transport *bt)
{
	struct tcp_transport *t = TT(bt);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (!t->started || t->stopping)
		return;
	for (struct tcp_conn *c = t->conns; c; c = c->next)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	do_stop(t, false);
}

static int tcp_send(struct rpc_transport *bt, int peer, uint16_t type, const void *body,
		    size_t body_len, const void *page)
{
	struct tcp_transport *t = TT(bt);

	if (peer < 0 || peer >= CFG(t)->n_nodes || peer == t->base.self)
		return -EINVAL;
	if (type == 0 || type > RPC_MSG_TYPE_MAX || (body_len && !body))
		return -EINVAL;
	if (body_len > RPC_FRAME_MAX_BODY)
		return -EMSGSIZE;
	return peer_send(t, &t->peers[peer], type, body, body_len, page, false);
}

static enum rpc_peer_state tcp_peer_state(struct rpc_transport *bt, int peer)
{
	struct tcp_transport *t = TT(bt);
	if (peer < 0 || peer >= CFG(t)->n_nodes || peer == t->base.self)
		return RPC_PEER_FAILED;
	return get_state(&t->peers[peer]);
}

static void tcp_destroy(struct rpc_transport *bt)
{
	struct tcp_transport *t = TT(bt);

	if (!t)
		return;
	/* Connections whose close callback never ran (loop not run after
	 * stop): their handles are dead with the loop; free the rest. */
	for (struct tcp_conn *c = t->conns, *next; c; c = next) {
		next = c->next;
		if (c->fd >= 0)
			close(c->fd);
		free(c->rbuf);
		free(c);
	}
	if (t->listen_fd >= 0)
		close(t->listen_fd);
	for (int i = 0; i < CFG(t)->n_nodes; i++) {
		pthread_mutex_destroy(&t->peers[i].send_mu);
		free(t->peers[i].outq);
	}
	free(t->peers);
	free(t);
}

static const struct rpc_transport_ops tcp_ops = {
	.name = "tcp",
	.start = tcp_start,
	.send = tcp_send,
	.peer_state = tcp_peer_state,
	.stop = tcp_stop,
	.destroy = tcp_destroy,
};

int rpc_tcp_transport_create(uv_loop_t *loop, const struct cluster_config *cfg, int self,
			     const struct rpc_callbacks *cb, void *opaque,
			     struct rpc_transport **out)
{
	if (!loop || !cfg || !out || self < 0 || self >= cfg->n_nodes ||
	    cfg->n_nodes > CLUSTER_MAX_NODES || cfg->heartbeat_ms == 0 ||
	    cfg->peer_timeout_ms == 0)
		return -EINVAL;
	struct tcp_transport *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->peers = calloc((size_t)cfg->n_nodes, sizeof(*t->peers));
	if (!t->peers) {
		free(t);
		return -ENOMEM;
	}
	t->base.ops = &tcp_ops;
	t->base.cfg = cfg;
	t->base.self = self;
	if (cb)
		t->base.cb = *cb;
	t->base.opaque = opaque;
	t->base.loop = loop;
	t->listen_fd = -1;
	for (int i = 0; i < cfg->n_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];
		p->index = i;
		rpc_auth_describe_node(cfg, i, p->desc, sizeof(p->desc));
		p->state = RPC_PEER_CONNECTING;
		p->backoff_ms = BACKOFF_MIN_MS;
		p->send_fd = -1;
		pthread_mutex_init(&p->send_mu, NULL);
	}
	*out = &t->base;
	return 0;
}
