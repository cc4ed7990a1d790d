/*
 * The transport interface: per-peer ordered channels between the nodes of
 * one cluster, carrying frames (rpc/frame.h). One peer state machine
 * (rpc/peer.c: handshake, heartbeats, Goodbye, failures, the send path's
 * rules) implements it over two link back ends, TCP (rpc/tcp_transport.c)
 * and RDMA verbs (rpc/verbs_transport.c); the DSM runtime and the tools
 * only see this.
 *
 * Thread model
 * ------------
 * A transport lives on one libuv loop, run by one thread that its owner
 * creates (for the DSM, the runtime's loop thread). That thread owns the
 * sockets, the listen socket, timers, the receive buffers and all peer
 * state; every callback below runs on it.
 *
 * rpc_transport_send() may be called from ANY thread: it takes the peer's
 * send mutex and writes the frame at once (TCP: sendmsg(); RDMA:
 * ibv_post_send()), with no hop to the loop thread, so a thread that needs
 * an answer pays no extra wake-up. What cannot go at once (a full socket,
 * no RDMA credit) is copied to the peer's queue and flushed by the loop
 * thread. Frames to one peer are never reordered.
 *
 * Lock order: a peer's send mutex is a leaf lock; no callback is invoked
 * while it is held.
 */
#ifndef DISCO_RPC_TRANSPORT_H
#define DISCO_RPC_TRANSPORT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster-config/cluster_config.h"
#include "rpc/frame.h"

struct rpc_transport;

enum rpc_peer_state {
	RPC_PEER_CONNECTING,    /* dialling / waiting for it to dial us and prove the key */
	RPC_PEER_AUTHENTICATING,/* we dialled it, challenge-response running (a peer
				 * that dials us goes from CONNECTING to UP: until
				 * its proof, its connection is anonymous) */
	RPC_PEER_UP,            /* authenticated: frames flow */
	RPC_PEER_LEFT,          /* said goodbye */
	RPC_PEER_FAILED,        /* bad frame, bad proof, lost connection, silent too long */
};

struct rpc_callbacks {
	/* An authenticated frame from @peer (never HELLO/AUTH/HEARTBEAT). */
	void (*on_frame)(void *opaque, int peer, const struct rpc_frame_view *frame);
	/* @peer finished authentication. */
	void (*on_peer_up)(void *opaque, int peer);
	/* @peer is gone: state LEFT or FAILED, @why says what happened. Called
	 * once per peer; a failed peer is not reconnected (its DSM pages are lost). */
	void (*on_peer_down)(void *opaque, int peer, enum rpc_peer_state state, const char *why);
};

struct rpc_transport_ops {
	const char *name;
	int (*start)(struct rpc_transport *t);
	int (*send)(struct rpc_transport *t, int peer, uint16_t type, const void *body,
		    size_t body_len, const void *page);
	enum rpc_peer_state (*peer_state)(struct rpc_transport *t, int peer);
	/* Why the last attempt to authenticate a connection to or from @peer
	 * failed (one line naming the connection's real address; text the
	 * other end sent is escaped) into @buf; returns its length, 0 when
	 * there was none. Any thread. For messages about a peer that did not
	 * come up: before a peer proved the key, a failed handshake only
	 * closes that connection, so it is not an on_peer_down. */
	size_t (*handshake_error)(struct rpc_transport *t, int peer, char *buf, size_t len);
	/* Close the connection to @peer and mark it FAILED (loop thread): for a
	 * peer that sent a frame that is well-formed but makes no sense. */
	void (*fail_peer)(struct rpc_transport *t, int peer, const char *why);
	void (*stop)(struct rpc_transport *t);    /* goodbye to all peers, close sockets (loop thread) */
	void (*destroy)(struct rpc_transport *t); /* after the loop has finished */

	/* One-sided reads; NULL where the transport has none (TCP). */
	/* Register [addr, addr+len) once, for peers to read (their reads need
	 * @rkey, which the caller sends them after they authenticated) and as
	 * the destination of our reads. Before any read; after start(). */
	int (*register_memory)(struct rpc_transport *t, void *addr, size_t len, uint32_t *rkey);
	/* Post a read of @len bytes at @remote_addr (@rkey) of @peer into
	 * @local (inside registered memory). @fence: not before every earlier
	 * read to @peer has completed. @ticket identifies it for read_wait().
	 * -EAGAIN when too many reads are in flight (do it another way). */
	int (*read)(struct rpc_transport *t, int peer, void *local, size_t len,
		    uint64_t remote_addr, uint32_t rkey, bool fence, uint64_t *ticket);
	/* Wait until read @ticket (and every earlier one) to @peer completed:
	 * 0; -EIO if one failed (the peer is then failed, as for any work
	 * request error); -ETIMEDOUT after @timeout_ms. Polls: for the short
	 * wait of a read already on the wire. */
	int (*read_wait)(struct rpc_transport *t, int peer, uint64_t ticket, unsigned timeout_ms);
};

/* Counters, updated by whichever thread sends/receives; read with
 * __atomic loads. */
struct rpc_transport_stats {
	uint64_t frames_sent, frames_received;
	uint64_t bytes_sent, bytes_received;
	uint64_t send_queued; /* sends the socket did not take at once */
};

struct rpc_transport {
	const struct rpc_transport_ops *ops;
	const struct cluster_config *cfg;
	int self;              /* our node index */
	struct rpc_callbacks cb;
	void *opaque;
	uv_loop_t *loop;
	struct rpc_transport_stats stats;
};

/* Create a TCP transport for node @self of @cfg on @loop (not started). */
int rpc_tcp_transport_create(uv_loop_t *loop, const struct cluster_config *cfg, int self,
			     const struct rpc_callbacks *cb, void *opaque,
			     struct rpc_transport **out);

/* Create an RDMA (verbs) transport for node @self of @cfg on @loop (not
 * started); the device is opened and checked by start(). */
int rpc_rdma_transport_create(uv_loop_t *loop, const struct cluster_config *cfg, int self,
			      const struct rpc_callbacks *cb, void *opaque,
			      struct rpc_transport **out);

static inline int rpc_transport_start(struct rpc_transport *t) { return t->ops->start(t); }
static inline int rpc_transport_send(struct rpc_transport *t, int peer, uint16_t type,
				     const void *body, size_t body_len, const void *page)
{
	return t->ops->send(t, peer, type, body, body_len, page);
}
static inline enum rpc_peer_state rpc_transport_peer_state(struct rpc_transport *t, int peer)
{
	return t->ops->peer_state(t, peer);
}
static inline size_t rpc_transport_handshake_error(struct rpc_transport *t, int peer, char *buf,
						   size_t len)
{
	return t->ops->handshake_error(t, peer, buf, len);
}
static inline void rpc_transport_fail_peer(struct rpc_transport *t, int peer, const char *why)
{
	t->ops->fail_peer(t, peer, why);
}
static inline bool rpc_transport_can_read(const struct rpc_transport *t)
{
	return t->ops->read != NULL;
}
static inline int rpc_transport_register_memory(struct rpc_transport *t, void *addr, size_t len,
						uint32_t *rkey)
{
	return t->ops->register_memory ? t->ops->register_memory(t, addr, len, rkey) : -EOPNOTSUPP;
}
static inline int rpc_transport_read(struct rpc_transport *t, int peer, void *local, size_t len,
				     uint64_t remote_addr, uint32_t rkey, bool fence,
				     uint64_t *ticket)
{
	return t->ops->read ? t->ops->read(t, peer, local, len, remote_addr, rkey, fence, ticket)
			    : -EOPNOTSUPP;
}
static inline int rpc_transport_read_wait(struct rpc_transport *t, int peer, uint64_t ticket,
					  unsigned timeout_ms)
{
	return t->ops->read_wait ? t->ops->read_wait(t, peer, ticket, timeout_ms) : -EOPNOTSUPP;
}
static inline void rpc_transport_stop(struct rpc_transport *t) { t->ops->stop(t); }
static inline void rpc_transport_destroy(struct rpc_transport *t) { t->ops->destroy(t); }

const char *rpc_peer_state_name(enum rpc_peer_state s);

#endif
