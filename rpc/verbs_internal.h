/*
 * Internals of the RDMA transport, shared by verbs_transport.c (lifecycle,
 * the RDMA CM: dialling, accepting; timers; completion dispatch) and
 * verbs_peer.c (one connection: queue pair and buffers, handshake, receive
 * path, send path, credits). Nothing outside rpc/ includes this.
 *
 * Which thread may touch what is written beside each field; the thread
 * model as a whole is described at the top of verbs_transport.c.
 */
#ifndef DISCO_RPC_VERBS_INTERNAL_H
#define DISCO_RPC_VERBS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "rpc/auth.h"
#include "rpc/verbs_transport.h"

#define VERBS_BACKOFF_MIN_MS 50
#define VERBS_BACKOFF_MAX_MS 1000
#define VERBS_RESOLVE_TIMEOUT_MS 2000
#define VERBS_WHY_MAX 512
/* Receive buffers per connection: one per credit, plus spares that only
 * credit-only messages use (two can be in flight, see verbs_peer.c). */
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
/* Private data of a connect request: who is dialling. */
#define VERBS_CONNECT_MAGIC 0x4f435344u /* "DSCO" */
#define VERBS_CONNECT_VERSION 1

struct verbs_connect_data {
	uint32_t magic;   /* VERBS_CONNECT_MAGIC, little-endian */
	uint8_t version;  /* VERBS_CONNECT_VERSION */
	uint8_t reserved;
	uint16_t node;    /* the dialler's node index, little-endian */
};

#define verbs_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

enum verbs_conn_phase {
	VERBS_CONN_RESOLVING, /* dialled: address and route resolution */
	VERBS_CONN_CONNECTING,/* connect sent / accept sent, not ESTABLISHED yet */
	VERBS_CONN_HANDSHAKE, /* established: Hello / AuthProof exchange */
	VERBS_CONN_UP,        /* authenticated */
};

/* One RDMA CM id and its queue pair. Loop thread only, except what the
 * peer's send state points at (guarded by send_mu there). Freed by
 * verbs_conn_close(). */
struct verbs_conn {
	struct verbs_transport *t;
	struct verbs_conn *prev, *next; /* t->conns */
	struct rdma_cm_id *id;         /* id->context == this */
	uint32_t serial;               /* tags receive work requests (wr_id) */
	int peer;                      /* dialled node, or the one the connect request named */
	bool dialled;
	bool attached;                 /* t->peers[peer].conn == this */
	bool established;              /* ESTABLISHED seen: rdma_disconnect() on close */
	bool closing;                  /* closed: on t->dead until the current callback returns */
	enum verbs_conn_phase phase;
	uint64_t opened_ms;
	struct rpc_auth auth;
	struct ibv_cq *send_cq;        /* no channel: senders reap it under send_mu */
	uint8_t *recv_buf;             /* VERBS_RECVS * VERBS_SLOT_SIZE */
	uint8_t *send_buf;             /* VERBS_SEND_SLOTS * VERBS_SLOT_SIZE */
	struct ibv_mr *recv_mr, *send_mr;
	uint32_t max_inline;
};

/* A frame that waits for a credit or a send slot (heap copy). */
struct verbs_pending {
	struct verbs_pending *next;
	size_t len;
	uint8_t bytes[]; /* header, body, page */
};

struct verbs_peer {
	int index;
	char desc[400]; /* "node n1 (10.0.0.2:7401)", for messages */

	/* Loop thread only (state is also read by any thread, atomically). */
	int state; /* enum rpc_peer_state */
	struct verbs_conn *conn;
	uv_timer_t dial_timer;
	unsigned backoff_ms;
	uint64_t last_rx_ms;

	/* Guarded by send_mu (leaf lock). */
	pthread_mutex_t send_mu;
	struct ibv_qp *qp;          /* the attached connection's, once it may send; else NULL */
	struct verbs_conn *send_conn;/* its buffers */
	bool sendable;              /* UP: rpc_transport_send() may post */
	int send_err;               /* post or completion error (negative errno); loop fails the peer */
	const char *send_why;       /* static text saying what failed */
	uint32_t credits;           /* messages we may still send */
	uint32_t owed;              /* receive buffers reposted but not yet credited back */
	uint32_t sq_used;           /* send work requests not yet reaped */
	uint32_t slot_head, slots_used; /* send slots: ring, freed in completion order */
	struct verbs_pending *pend_head, *pend_tail;
	size_t pend_bytes;
	bool flush_wanted;          /* pending frames wait; the loop was asked to flush */
	uint64_t reads_posted;      /* one-sided reads: tickets given out (1, 2, ...) */
	uint64_t reads_done;        /* ... and completed, in order (RC completes in order) */
};

struct verbs_transport {
	struct rpc_transport base;
	struct verbs_peer *peers;           /* cfg->n_nodes entries; peers[self] unused */
	struct verbs_conn *conns;           /* every open connection */
	struct verbs_conn *dead;            /* closed ones whose memory a frame view may still
					    * point into; freed by verbs_free_dead() */
	uint32_t next_serial;
	struct ibv_context **devices;      /* rdma_get_devices(), freed at destroy */
	struct ibv_context *verbs;         /* the configured device */
	struct ibv_pd *pd;
	struct ibv_comp_channel *channel;  /* the receive CQ's events */
	struct ibv_cq *recv_cq;            /* every connection's receives */
	struct rdma_event_channel *ec;
	struct rdma_cm_id *listen_id;
	uv_poll_t cm_poll, cq_poll, async_poll;
	uv_timer_t hb_timer, flush_timer;
	uv_async_t async;
	uv_thread_t loop_tid;
	uint64_t last_tick_ms;
	uint8_t rd_atomic;                 /* reads in flight per QP, both ways (<= VERBS_READ_DEPTH) */
	pthread_mutex_t mr_mu;             /* guards mrs / n_mrs (leaf) */
	struct ibv_mr *mrs[VERBS_MAX_MRS];  /* register_memory(), freed at destroy */
	int n_mrs;
	bool started;
	bool stopping;
	int stop_req; /* atomic: stop() asked from another thread */
};

static inline struct verbs_transport *verbs_of(struct rpc_transport *t)
{
	return (struct verbs_transport *)t;
}

static inline const struct cluster_config *verbs_cfg(struct verbs_transport *t)
{
	return t->base.cfg;
}

static inline bool verbs_on_loop_thread(struct verbs_transport *t)
{
	uv_thread_t self = uv_thread_self();
	return uv_thread_equal(&self, &t->loop_tid);
}

static inline void verbs_stat_add(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static inline enum rpc_peer_state verbs_get_state(struct verbs_peer *p)
{
	return (enum rpc_peer_state)__atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
}

static inline void verbs_set_state(struct verbs_peer *p, enum rpc_peer_state s)
{
	__atomic_store_n(&p->state, (int)s, __ATOMIC_RELEASE);
}

static inline bool verbs_state_final(enum rpc_peer_state s)
{
	return s == RPC_PEER_LEFT || s == RPC_PEER_FAILED;
}

/* verbs_peer.c: connections (loop thread). */
struct verbs_conn *verbs_conn_new(struct verbs_transport *t, struct rdma_cm_id *id, int peer,
				bool dialled);
int verbs_conn_setup_qp(struct verbs_conn *c);
void verbs_conn_attach(struct verbs_conn *c);
void verbs_conn_close(struct verbs_conn *c);
void verbs_conn_established(struct verbs_conn *c);
void verbs_conn_fail(struct verbs_conn *c, bool fatal, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void verbs_peer_down(struct verbs_transport *t, struct verbs_peer *p, enum rpc_peer_state state,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void verbs_free_dead(struct verbs_transport *t);
struct verbs_conn *verbs_conn_by_serial(struct verbs_transport *t, uint32_t serial);
struct verbs_conn *verbs_conn_by_qp(struct verbs_transport *t, const struct ibv_qp *qp);
int verbs_conn_on_recv(struct verbs_conn *c, const struct ibv_wc *wc);
/* After a batch of receives of which @reposted held frames: owe those
 * credits, push pending frames, hand credits back. */
void verbs_peer_after_recv(struct verbs_transport *t, struct verbs_peer *p, uint32_t reposted);
/* Push pending frames if credits and slots allow (loop thread). */
void verbs_peer_flush(struct verbs_transport *t, struct verbs_peer *p);
/* Wait up to @timeout_ms for every posted send to complete (stop). */
void verbs_peer_drain_sends(struct verbs_peer *p, unsigned timeout_ms);

/* verbs_peer.c: the send path (any thread). @internal: a membership frame
 * from the loop thread, allowed before the peer is UP. */
int verbs_peer_send(struct verbs_transport *t, struct verbs_peer *p, uint16_t type,
		   const void *body, size_t body_len, const void *page, bool internal);

/* verbs_peer.c: reap send completions (send_mu held). */
void verbs_peer_reap_sends(struct verbs_peer *p);

/* verbs_read.c: the one-sided ops of rpc_transport_ops. */
int verbs_register_memory(struct rpc_transport *bt, void *addr, size_t len, uint32_t *rkey);
int verbs_read(struct rpc_transport *bt, int peer, void *local, size_t len, uint64_t remote_addr,
	      uint32_t rkey, bool fence, uint64_t *ticket);
int verbs_read_wait(struct rpc_transport *bt, int peer, uint64_t ticket, unsigned timeout_ms);
void verbs_release_memory(struct verbs_transport *t);

/* verbs_transport.c: dial @p again after its backoff (loop thread). */
void verbs_schedule_dial(struct verbs_transport *t, struct verbs_peer *p);
/* verbs_transport.c: try the pending frames again in 1 ms (loop thread). */
void verbs_arm_flush_timer(struct verbs_transport *t);
/* verbs_transport.c: wake the loop thread (any thread). */
void verbs_kick_loop(struct verbs_transport *t);

#endif
