/*
 * Internals of the TCP transport, shared by tcp_transport.c (lifecycle,
 * dialling, accepting, timers) and tcp_peer.c (one connection: handshake,
 * receive path, send path). Nothing outside rpc/ includes this.
 *
 * Which thread may touch what is written beside each field; the thread
 * model as a whole is described at the top of tcp_transport.c.
 */
#ifndef DISCO_RPC_TCP_INTERNAL_H
#define DISCO_RPC_TCP_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rpc/auth.h"
#include "rpc/tcp_transport.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define READS_PER_WAKE 8  /* read() calls per readable event before yielding */
#define ACCEPTS_PER_WAKE 16
#define OUTQ_KEEP (1u << 20) /* an empty queue keeps at most this much memory */
#define WHY_MAX 512
/* Accepted connections whose Hello has not named a peer yet; more are
 * refused (each holds a receive buffer; the handshake timeout reaps them). */
#define MAX_ANON_CONNS (2 * CLUSTER_MAX_NODES)

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
	bool closing;     /* rpc_tcp_conn_close() ran; the struct lives until the close callback */
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
	int n_anon;    /* accepted connections not yet named by a Hello */
	bool started;  /* start() succeeded: handles exist */
	bool stopping; /* stop/abort ran on the loop thread */
	int stop_req;  /* atomic: stop() asked from another thread */
};

static inline struct tcp_transport *tcp_of(struct rpc_transport *t)
{
	return (struct tcp_transport *)t;
}

static inline const struct cluster_config *tcp_cfg(struct tcp_transport *t)
{
	return t->base.cfg;
}

static inline bool on_loop_thread(struct tcp_transport *t)
{
	uv_thread_t self = uv_thread_self();
	return uv_thread_equal(&self, &t->loop_tid);
}

static inline void stat_add(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static inline enum rpc_peer_state get_state(struct tcp_peer *p)
{
	return (enum rpc_peer_state)__atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
}

static inline void set_state(struct tcp_peer *p, enum rpc_peer_state s)
{
	__atomic_store_n(&p->state, (int)s, __ATOMIC_RELEASE);
}

static inline bool state_final(enum rpc_peer_state s)
{
	return s == RPC_PEER_LEFT || s == RPC_PEER_FAILED;
}

/* tcp_peer.c: connections (loop thread). */
struct tcp_conn *rpc_tcp_conn_new(struct tcp_transport *t, int fd, int peer, bool dialled,
				  const char *remote, int events);
void rpc_tcp_conn_attach(struct tcp_conn *c, struct tcp_peer *p);
void rpc_tcp_conn_close(struct tcp_conn *c);
void rpc_tcp_conn_set_events(struct tcp_conn *c, bool writable);
void rpc_tcp_conn_fail(struct tcp_conn *c, bool fatal, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void rpc_tcp_peer_down(struct tcp_transport *t, struct tcp_peer *p, enum rpc_peer_state state,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void rpc_tcp_flush_queue(struct tcp_conn *c);

/* tcp_peer.c: the send path (any thread). @internal: a membership frame
 * from the loop thread, allowed before the peer is UP. */
int rpc_tcp_peer_send(struct tcp_transport *t, struct tcp_peer *p, uint16_t type,
		      const void *body, size_t body_len, const void *page, bool internal);

/* tcp_transport.c: dial @p again after its backoff (loop thread). */
void rpc_tcp_schedule_dial(struct tcp_transport *t, struct tcp_peer *p);

#endif
