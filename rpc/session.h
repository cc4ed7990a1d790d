/*
 * A node's session with its cluster: the layer between the transports
 * (rpc/transport.h) and everything that talks over them.
 *
 *   rpc_session_create()      the loop and the transport the config names
 *   rpc_session_add_client()  the DSM region, the VM layer in QEMU, ...:
 *                             each takes one range of frame types
 *   rpc_session_start()       the loop thread, the join: returns once
 *                             every peer is authenticated, or names who
 *                             is missing
 *   ... rpc_session_send() from any thread, rpc_session_barrier(),
 *       rpc_session_call() to run something on the loop thread ...
 *   rpc_session_stop()        goodbye to every peer, the loop thread ends
 *   rpc_session_destroy()
 *
 * It owns, for every client at once: the loop thread and its polling
 * (rpc/loop_settings.h), the transport, membership (which peers are up,
 * which were lost), cluster-wide barriers, the call table that blocking
 * threads wait on (rpc/call.h), and the raw round-trip probe the
 * benchmarks and the NUMA-distance measurement use. Frames are handed to
 * clients by type range (rpc/frame.h):
 *
 *   1-15    membership: the transport's own (never reach a client)
 *   16-31   the DSM region (dsm/region.c)
 *   32-47   the round-trip probe (rpc/session_probe.c, a built-in client)
 *   48-63   the session's own: barriers
 *   64-127  the spanning VM (node-monitor/qemu/src/disco-msg.c)
 *
 * A frame of a type no client took fails its peer, as any frame that
 * makes no sense does.
 *
 * Threads
 * -------
 * The loop thread (created by rpc_session_start(), named "disco-loop")
 * runs the libuv loop with the transport's sockets and timers, the
 * session's command async, and whatever handles clients add to
 * rpc_session_loop() from their on_loop_start. Every client callback runs
 * on it, and must not block: under QEMU a vCPU holding the big lock may
 * be blocked in a page fault that only this thread can serve, so it never
 * takes the BQL. It sleeps only in epoll, and not even there while an
 * answer is due (see run_loop() in session.c).
 * Any thread may call rpc_session_send() (the transport's per-peer send
 * mutex, no hop), rpc_session_rtt_probe(), and the call table functions.
 * API threads call start, barrier, call, stop: they post a command to the
 * loop thread and wait on the session's condition variable.
 *
 * Locking: `mu` (peer sets, barrier arrivals, the command list, the
 * stopping flag) is a leaf lock, never held across a callback, a send or
 * a blocking call except pthread_cond_wait on `cond`. The transport's
 * send mutexes and the call table's mutex are leaf locks too; no thread
 * holds two of these at once.
 */
#ifndef DISCO_RPC_SESSION_H
#define DISCO_RPC_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster-config/cluster_config.h"
#include "rpc/call.h"
#include "rpc/frame.h"
#include "rpc/transport.h"

struct rpc_session;

/* What a client tells the loop at each turn (on_loop_turn). */
enum rpc_loop_need {
	RPC_LOOP_IDLE,    /* nothing: sleep in epoll unless lingering */
	RPC_LOOP_WAITING, /* an answer is due: poll, for at most poll_us */
	RPC_LOOP_BUSY,    /* work is timed to expire soon: poll */
};

/*
 * A user of the session. Every callback is optional and runs on the loop
 * thread; @opaque is passed back. The struct is copied at add time.
 */
struct rpc_session_client {
	const char *name;               /* in messages; must outlive the session */
	uint16_t type_first, type_last; /* frame types it takes; 0, 0: none */
	void *opaque;
	/* First thing on the loop thread, before the transport starts: add
	 * handles to rpc_session_loop(). < 0 stops the session's start. */
	int (*on_loop_start)(void *opaque);
	/* The transport listens (and may register memory). < 0 stops the
	 * session's start, which then fails naming the client. */
	int (*on_transport_started)(void *opaque);
	/* A frame in the client's range; its bytes are valid during the call. */
	void (*on_frame)(void *opaque, int peer, const struct rpc_frame_view *f);
	void (*on_peer_up)(void *opaque, int peer);
	/* @peer failed or left, @why says how; @stopping: during
	 * rpc_session_stop(), when peers leaving is expected. */
	void (*on_peer_down)(void *opaque, int peer, const char *why, bool stopping);
	/* Every turn of the loop; @now_ns is uv_hrtime(). */
	enum rpc_loop_need (*on_loop_turn)(void *opaque, uint64_t now_ns);
	/* The session stops: the last call before the loop closes every
	 * handle (the client's too). */
	void (*on_stop)(void *opaque);
};

#define RPC_SESSION_MAX_CLIENTS 8

/* A session for node @self of @cfg (which must outlive it), with its
 * transport created but not started. */
int rpc_session_create(const struct cluster_config *cfg, int self, struct rpc_session **out);
/* Before rpc_session_start(). -EBUSY when @c's types overlap another
 * client's, -ENOSPC beyond RPC_SESSION_MAX_CLIENTS. */
int rpc_session_add_client(struct rpc_session *s, const struct rpc_session_client *c);
/* Start the loop thread and join: 0 once every peer is authenticated;
 * else stops the session and returns -ETIMEDOUT after
 * cfg->connect_timeout_ms (@err names every missing node, its address
 * and why its last handshake failed, if it tried), -ECONNREFUSED when a
 * peer failed while joining (a device error: before its proof, nothing a
 * connection does fails a peer), -EIO when the loop could not start
 * (logged). */
int rpc_session_start(struct rpc_session *s, char *err, size_t errlen);
/* Goodbye to every peer, close every handle, join the loop thread. */
void rpc_session_stop(struct rpc_session *s);
/* After rpc_session_stop() (or a failed start), and after its clients
 * are done with it. */
void rpc_session_destroy(struct rpc_session *s);

/* Wait until every node reached barrier @id (ids must grow by call).
 * -EHOSTDOWN if a peer that had not reached it is lost, -ETIMEDOUT after
 * @timeout_ms. */
int rpc_session_barrier(struct rpc_session *s, uint32_t id, uint32_t timeout_ms);
/* Run @fn(@arg) on the loop thread and return its result (-ESHUTDOWN when
 * no loop runs). Not from the loop thread. */
int rpc_session_call(struct rpc_session *s, int (*fn)(void *arg), void *arg);
/* Any thread: a frame to @peer (rpc_transport_send()). */
int rpc_session_send(struct rpc_session *s, int peer, uint16_t type, const void *body,
		     size_t len, const void *page);
/* Raw round trip to @peer: a 64-byte request answered by a 4 KiB page,
 * sent from the calling thread. For benchmarks and NUMA distances. */
int rpc_session_rtt_probe(struct rpc_session *s, int peer, uint64_t *rtt_ns);

/* The table blocking threads wait on for answers (I/O forwarding, clock
 * requests, probes); the session fails every pending call with
 * -EHOSTDOWN when a peer is lost. Thread-safe. */
struct rpc_call_table *rpc_session_calls(struct rpc_session *s);

const struct cluster_config *rpc_session_config(const struct rpc_session *s);
int rpc_session_self(const struct rpc_session *s);
int rpc_session_n_nodes(const struct rpc_session *s);
const char *rpc_session_node_name(const struct rpc_session *s, int node);
void rpc_session_transport_stats(struct rpc_session *s, struct rpc_transport_stats *out);

/* ---- for clients, on the loop thread --------------------------------- */

uv_loop_t *rpc_session_loop(struct rpc_session *s);
struct rpc_transport *rpc_session_transport(struct rpc_session *s);
/* Close @peer's connection and mark it FAILED: it sent nonsense. */
void rpc_session_fail_peer(struct rpc_session *s, int peer, const char *why);
/* Something happened (a fault): the loop lingers in its polling. */
void rpc_session_note_activity(struct rpc_session *s, uint64_t now_ns);
/* Peers lost so far (any thread). */
uint64_t rpc_session_peers_down(struct rpc_session *s);
/* rpc_session_stop() has begun (any thread). */
bool rpc_session_stopping(struct rpc_session *s);

#endif
