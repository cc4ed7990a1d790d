/*
 * Internals of the verbs link back end, shared by verbs_transport.c (the
 * device, the RDMA CM: dialling, accepting; completion and async-event
 * dispatch; the link ops table), verbs_link.c (one connection: queue pair
 * and buffers, receive path, write path, credits) and verbs_read.c
 * (registered memory, one-sided reads). The peer state machine above it is
 * rpc/peer.h. Nothing outside rpc/ includes this.
 *
 * Which thread may touch what is written beside each field; the thread
 * model as a whole is in rpc/peer.h and at the top of verbs_transport.c.
 */
#ifndef DISCO_RPC_VERBS_INTERNAL_H
#define DISCO_RPC_VERBS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "peer.h"
#include "rpc/verbs_transport.h"

#define VERBS_RESOLVE_TIMEOUT_MS 2000
/* Connections from connect requests whose peer has not proven the key
 * yet, in all and from one source address (rpc/peer.h: a new one evicts
 * an older one). Each has a queue pair and about 1 MiB of registered
 * buffers, so fewer than over TCP: one per possible peer. */
#define VERBS_MAX_ANON CLUSTER_MAX_NODES
#define VERBS_MAX_ANON_PER_SOURCE 4
/* Receive buffers per connection: one per credit, plus spares that only
 * credit-only messages use (two can be in flight, see verbs_link.c). */
#define VERBS_CREDIT_SPARE 2u
#define VERBS_RECVS (RPC_RDMA_CREDITS + VERBS_CREDIT_SPARE)
/* Registered send buffers per connection. A frame that fits in a work
 * request's inline data needs none; one with a page does. */
#define VERBS_SEND_SLOTS (RPC_RDMA_CREDITS + RPC_RDMA_CREDITS / 2)
#define VERBS_SLOT_SIZE (RPC_FRAME_HEADER_SIZE + RPC_RDMA_MAX_BODY + RPC_PAGE_SIZE)
/* Send work requests in flight: every slot, plus inline and credit-only
 * sends. One-sided reads have VERBS_READ_DEPTH more entries of their own. */
#define VERBS_SQ_DEPTH (VERBS_SEND_SLOTS + 32u)
/* One-sided reads in flight per connection at most (also what the queue
 * pair asks of the device as initiator depth and responder resources). */
#define VERBS_READ_DEPTH 8u
/* Registered memory regions for one-sided access (the DSM: one per
 * segment view, and its version words). */
#define VERBS_MAX_MRS 16
/* wr_id of a read: this tag | its ticket (slot sends use the slot index,
 * other sends VERBS_WR_NO_SLOT). */
#define VERBS_WR_READ_TAG (1ull << 62)
#define VERBS_MAX_INLINE 256u
#define VERBS_WR_NO_SLOT UINT64_MAX

/* A frame that waits for a credit or a send slot (heap copy). */
struct verbs_pending {
	struct verbs_pending *next;
	size_t len;
	uint8_t bytes[]; /* header, body, page */
};

/*
 * One RDMA CM id and its RC queue pair. Loop thread only, except the send
 * state, which is guarded by the peer's send_mu while this link is
 * attached to the peer (peer.h: rpc_conn_lock_send()). Freed by verbs_free_dead() once no frame view
 * can point into its buffers any more.
 */
struct verbs_link {
	struct rpc_conn conn;          /* first: the handshake, the claimed peer */
	struct verbs_link *dead_next;  /* t->dead, once closed */
	struct rdma_cm_id *id;         /* id->context == this; NULL once closed */
	uint32_t serial;               /* tags receive work requests (wr_id) */
	struct ibv_cq *send_cq;        /* no channel: senders reap it under send_mu */
	uint8_t *recv_buf;             /* VERBS_RECVS * VERBS_SLOT_SIZE */
	uint8_t *send_buf;             /* VERBS_SEND_SLOTS * VERBS_SLOT_SIZE */
	struct ibv_mr *recv_mr, *send_mr;
	uint32_t max_inline;
	uint32_t batch_reposted;       /* drain_receives(): frames of this batch */
	struct verbs_link *batch_next; /* drain_receives(): links of this batch */
	bool in_batch;

	/* Send state (send_mu). */
	uint32_t credits;              /* messages we may still send */
	uint32_t owed;                 /* receive buffers reposted but not yet credited back */
	uint32_t sq_used;              /* send work requests not yet reaped */
	uint32_t slot_head, slots_used;/* send slots: ring, freed in completion order */
	struct verbs_pending *pend_head, *pend_tail;
	size_t pend_bytes;
};

/* One-sided reads to one peer: tickets given out (1, 2, ...) and those
 * completed, in order (RC completes in order). Guarded by that peer's
 * send_mu; they outlive its connections. */
struct verbs_reads {
	uint64_t posted, done;
};

struct verbs_transport {
	struct rpc_peers peers;            /* first */
	struct verbs_reads reads[CLUSTER_MAX_NODES]; /* indexed by node */
	struct verbs_link *dead;           /* closed links whose memory a frame view may
					    * still point into; freed by verbs_free_dead() */
	uint32_t next_serial;
	struct ibv_context **devices;      /* rdma_get_devices(), freed at destroy */
	struct ibv_context *verbs;         /* the configured device */
	struct ibv_pd *pd;
	struct ibv_comp_channel *channel;  /* the receive CQ's events */
	struct ibv_cq *recv_cq;            /* every connection's receives */
	struct rdma_event_channel *ec;
	struct rdma_cm_id *listen_id;
	uv_poll_t cm_poll, cq_poll, async_poll;
	uv_timer_t flush_timer;
	uint8_t rd_atomic;                 /* reads in flight per QP, both ways (<= VERBS_READ_DEPTH) */
	pthread_mutex_t mr_mu;             /* guards mrs / n_mrs (leaf, never with send_mu) */
	struct ibv_mr *mrs[VERBS_MAX_MRS]; /* register_memory(), freed at destroy */
	int n_mrs;
};

static inline struct verbs_transport *verbs_of(struct rpc_peers *t)
{
	return (struct verbs_transport *)t;
}

static inline struct verbs_link *verbs_link_of(struct rpc_conn *c)
{
	return container_of(c, struct verbs_link, conn);
}

/* verbs_link.c: connections (loop thread). */
struct verbs_link *verbs_link_new(struct verbs_transport *t, struct rdma_cm_id *id, int peer,
				  bool dialled, const struct sockaddr *remote);
int verbs_link_setup_qp(struct verbs_link *l);
void verbs_link_established(struct verbs_link *l);
void verbs_free_dead(struct verbs_transport *t);
struct verbs_link *verbs_link_by_serial(struct verbs_transport *t, uint32_t serial);
struct verbs_link *verbs_link_by_qp(struct verbs_transport *t, const struct ibv_qp *qp);
int verbs_link_on_recv(struct verbs_link *l, const struct ibv_wc *wc);
/* After a batch of receives of @l of which @reposted held frames: owe
 * those credits, push pending frames, hand credits back. */
void verbs_link_after_recv(struct verbs_link *l, uint32_t reposted);
/* Push pending frames if credits and slots allow (loop thread). */
void verbs_peer_flush(struct rpc_peer *p);
/* Reap @l's send completions (its send state locked). */
void verbs_link_reap_sends(struct verbs_link *l);
/* rpc_link_ops entries. */
int verbs_link_write(struct rpc_conn *c, const struct iovec *iov, int n, size_t total); /* any thread */
void verbs_link_wake(struct rpc_peer *p, bool flush_wanted);
void verbs_link_tick(struct rpc_peer *p);
void verbs_link_farewell(struct rpc_peer *p);
void verbs_link_settle(struct rpc_conn *c, unsigned timeout_ms);
void verbs_link_close(struct rpc_conn *c);

/* verbs_read.c: the one-sided ops of rpc_transport_ops. */
int verbs_register_memory(struct rpc_transport *bt, void *addr, size_t len, uint32_t *rkey);
int verbs_read(struct rpc_transport *bt, int peer, void *local, size_t len, uint64_t remote_addr,
	       uint32_t rkey, bool fence, uint64_t *ticket);
int verbs_read_wait(struct rpc_transport *bt, int peer, uint64_t ticket, unsigned timeout_ms);
void verbs_release_memory(struct verbs_transport *t);

/* verbs_transport.c: try the pending frames again in 1 ms (loop thread). */
void verbs_arm_flush_timer(struct verbs_transport *t);

#endif
