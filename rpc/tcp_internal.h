/*
 * Internals of the TCP link back end, shared by tcp_transport.c (the
 * listener, dialling, accepting, the link ops table) and tcp_link.c (one
 * socket: the receive path and the write path with its out-queue). The
 * peer state machine above it is rpc/peer.h. Nothing outside rpc/
 * includes this.
 *
 * Which thread may touch what is written beside each field; the thread
 * model as a whole is in rpc/peer.h and at the top of tcp_transport.c.
 */
#ifndef DISCO_RPC_TCP_INTERNAL_H
#define DISCO_RPC_TCP_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "peer.h"
#include "rpc/tcp_transport.h"

#define READS_PER_WAKE 8  /* read() calls per readable event before yielding */
#define ACCEPTS_PER_WAKE 16
#define OUTQ_KEEP (1u << 20) /* an empty queue keeps at most this much memory */
/* Accepted connections whose peer has not proven the key yet, in all and
 * from one source address; a new one evicts an older one (rpc/peer.h).
 * Each holds a receive buffer (malloc'd, touched only as bytes arrive). */
#define TCP_MAX_ANON (2 * CLUSTER_MAX_NODES)
#define TCP_MAX_ANON_PER_SOURCE 8

/*
 * One socket. Loop thread only, except the write state, which is guarded
 * by the peer's send_mu while this link is attached to the peer (peer.h:
 * rpc_conn_lock_send()), and is the loop thread's before and after. Freed in the poll handle's
 * close callback.
 */
struct tcp_link {
	struct rpc_conn conn; /* first: the handshake, the claimed peer */
	uv_poll_t poll;
	bool write_armed; /* UV_WRITABLE is in the poll's events */
	uint8_t *rbuf;    /* RPC_TCP_RBUF_SIZE; frames parse in place */
	size_t rstart, rend;

	/* Write state (send_mu), away from the receive state the loop thread
	 * writes for every read: senders on other threads touch it for every
	 * frame. fd is set once, before any sender can see the link. */
	int fd __attribute__((aligned(64)));
	uint8_t *outq; /* bytes [out_off, out_len) await the socket */
	size_t out_off, out_len, out_cap;
};

/* Where to dial node i (resolved once). Loop thread. */
struct tcp_dial_addr {
	bool resolved;
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct tcp_transport {
	struct rpc_peers peers; /* first */
	struct tcp_dial_addr dial_addrs[CLUSTER_MAX_NODES]; /* indexed by node */
	int listen_fd;
	uv_poll_t listen_poll;
};

static inline struct tcp_transport *tcp_of(struct rpc_peers *t)
{
	return (struct tcp_transport *)t;
}

static inline struct tcp_link *tcp_link_of(struct rpc_conn *c)
{
	return container_of(c, struct tcp_link, conn);
}

/* tcp_link.c (loop thread unless said otherwise). */
/* A link on socket @fd, watched for @events; NULL on failure (fd closed). */
struct tcp_link *tcp_link_new(struct tcp_transport *t, int fd, int peer, bool dialled,
			      const struct sockaddr *remote, int events);
void tcp_link_set_events(struct tcp_link *l, bool writable);
void tcp_link_flush(struct tcp_link *l);
/* rpc_link_ops entries. */
int tcp_link_write(struct rpc_conn *c, const struct iovec *iov, int n, size_t total); /* any thread */
void tcp_link_flush_soon(struct rpc_conn *c);
void tcp_link_wake(struct rpc_peer *p, bool flush_wanted);
void tcp_link_farewell(struct rpc_peer *p);
void tcp_link_close(struct rpc_conn *c);

#endif
