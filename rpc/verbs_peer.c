/*
 * One connection and one peer's channel of the RDMA transport: the queue
 * pair and its registered buffers, the handshake, the receive path, the
 * send path and the credits that keep the peer's receive queue from ever
 * running dry. The thread model is described at the top of
 * verbs_transport.c; which thread touches which field, in verbs_internal.h.
 *
 * Messages. Every frame (rpc/frame.h: header, body, optional page) is one
 * two-sided SEND_WITH_IMM into one receive buffer of VERBS_SLOT_SIZE bytes.
 * The immediate carries credits handed back (below). A frame that fits in
 * the work request's inline data (requests, acks, heartbeats: up to
 * VERBS_MAX_INLINE bytes) is posted straight from the caller's stack; a
 * larger one (a page) is copied once into a registered send slot. The copy
 * is deliberate: the DSM may drop or change a page right after sending it,
 * so the HCA must not read guest memory after the send call returned.
 *
 * Credits. Each side keeps VERBS_RECVS receives posted per connection:
 * RPC_RDMA_CREDITS for frames and VERBS_CREDIT_SPARE for credit-only
 * messages. A sender spends one credit per frame. The receiver reposts a
 * buffer as soon as the frame has been handled and owes the sender a
 * credit for it; what it owes rides in the immediate of its next frame to
 * that sender, or, once it owes half the credits and has nothing to send,
 * in a zero-length credit-only message that costs no credit. At most two
 * credit-only messages can be unhandled at the receiver: each hands back
 * at least CREDITS/2, and the sender can have received no more than
 * CREDITS frames' worth of returns it has not seen yet. So a receive is
 * always posted (no RNR), and a blocked sender always gets its credits:
 * all it sent is eventually handled, and the receiver returns credits once
 * it owes half of them. Frames that find no credit (or no send slot) wait,
 * in order, in the peer's pending list, which the loop thread flushes when
 * credits arrive.
 *
 * Send completions land in a per-connection CQ without a channel; senders
 * reap it under send_mu before posting (it frees slots in completion
 * order, which on an RC queue pair is posting order), so no thread is
 * woken for them.
 */
#include "rpc/verbs_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc/log.h"
#include "rpc/membership.h"
#include "rpc/transport_common.h"

/* ------------------------------------------------------------------ */
/* Peer state changes (loop thread)                                     */

void verbs_peer_down(struct verbs_transport *t, struct verbs_peer *p, enum rpc_peer_state state,
		    const char *fmt, ...)
{
	char why[VERBS_WHY_MAX + 400];
	va_list ap;

	if (verbs_state_final(verbs_get_state(p)))
		return;
	va_start(ap, fmt);
	rpc_compose_why(why, sizeof(why), p->desc, fmt, ap);
	va_end(ap);
	verbs_set_state(p, state);
	if (p->conn)
		verbs_conn_close(p->conn);
	if (t->started && !t->stopping)
		uv_timer_stop(&p->dial_timer);
	disco_log(state == RPC_PEER_FAILED ? DISCO_LOG_ERROR : DISCO_LOG_INFO, "%s%s",
		  state == RPC_PEER_FAILED ? "peer failed: " : "peer left: ", why);
	if (t->base.cb.on_peer_down)
		t->base.cb.on_peer_down(t->base.opaque, p->index, state, why);
}

/*
 * Something went wrong on connection @c. @fatal (an authentication failure
 * or a protocol fault) fails the peer; otherwise, before the peer was UP,
 * the connection is closed and the dialler tries again after its backoff.
 * Any fault of an UP peer is fatal.
 */
void verbs_conn_fail(struct verbs_conn *c, bool fatal, const char *fmt, ...)
{
	struct verbs_transport *t = c->t;
	struct verbs_peer *p = &t->peers[c->peer];
	char why[VERBS_WHY_MAX + 400];
	va_list ap;

	if (c->closing)
		return;
	va_start(ap, fmt);
	rpc_compose_why(why, sizeof(why), p->desc, fmt, ap);
	va_end(ap);
	if (!c->attached) {
		disco_log(DISCO_LOG_WARN, "closing %s", why);
		verbs_conn_close(c);
		return;
	}
	if (fatal || verbs_get_state(p) == RPC_PEER_UP) {
		verbs_peer_down(t, p, RPC_PEER_FAILED, "%s", why);
		return;
	}
	disco_log(c->dialled ? DISCO_LOG_DEBUG : DISCO_LOG_INFO, "%s (will %s)", why,
		  c->dialled ? "retry" : "wait for the next attempt");
	bool dialled = c->dialled;
	/* The state first: the peer may see the disconnect at once. */
	verbs_set_state(p, RPC_PEER_CONNECTING);
	verbs_conn_close(c);
	if (dialled && !t->stopping)
		verbs_schedule_dial(t, p);
}

/* ------------------------------------------------------------------ */
/* Connections (loop thread)                                            */

struct verbs_conn *verbs_conn_new(struct verbs_transport *t, struct rdma_cm_id *id, int peer,
				bool dialled)
{
	struct verbs_conn *c = calloc(1, sizeof(*c));

	if (!c || rpc_auth_init(&c->auth, verbs_cfg(t), t->base.self) < 0) {
		disco_log(DISCO_LOG_ERROR, "out of memory for a connection");
		free(c);
		return NULL;
	}
	c->t = t;
	c->id = id;
	c->serial = ++t->next_serial;
	c->peer = peer;
	c->dialled = dialled;
	c->phase = dialled ? VERBS_CONN_RESOLVING : VERBS_CONN_CONNECTING;
	c->opened_ms = uv_now(t->base.loop);
	id->context = c;
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	return c;
}

static int post_recv(struct verbs_conn *c, uint32_t idx)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(c->recv_buf + (size_t)idx * VERBS_SLOT_SIZE),
		.length = VERBS_SLOT_SIZE,
		.lkey = c->recv_mr->lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = ((uint64_t)c->serial << 32) | idx, .sg_list = &sge, .num_sge = 1,
	}, *bad;
	return -ibv_post_recv(c->id->qp, &wr, &bad);
}

/* Create the queue pair, register the buffers and post every receive, so
 * the peer may send as soon as the connection is established. */
int verbs_conn_setup_qp(struct verbs_conn *c)
{
	struct verbs_transport *t = c->t;
	struct ibv_qp_init_attr attr = {
		.qp_type = IBV_QPT_RC,
		.sq_sig_all = 1,
		.cap = { .max_send_wr = VERBS_SQ_DEPTH + VERBS_READ_DEPTH, .max_recv_wr = VERBS_RECVS,
			 .max_send_sge = 3, .max_recv_sge = 1, .max_inline_data = VERBS_MAX_INLINE },
	};
	int r;

	if (c->id->verbs != t->verbs) {
		disco_log(DISCO_LOG_ERROR, "%s: the route uses rdma device %s, not %s",
			  t->peers[c->peer].desc, ibv_get_device_name(c->id->verbs->device),
			  ibv_get_device_name(t->verbs->device));
		return -ENODEV;
	}
	c->recv_buf = aligned_alloc(4096, (size_t)VERBS_RECVS * VERBS_SLOT_SIZE);
	c->send_buf = aligned_alloc(4096, (size_t)VERBS_SEND_SLOTS * VERBS_SLOT_SIZE);
	if (!c->recv_buf || !c->send_buf)
		return -ENOMEM;
	c->recv_mr = ibv_reg_mr(t->pd, c->recv_buf, (size_t)VERBS_RECVS * VERBS_SLOT_SIZE,
				IBV_ACCESS_LOCAL_WRITE);
	c->send_mr = ibv_reg_mr(t->pd, c->send_buf, (size_t)VERBS_SEND_SLOTS * VERBS_SLOT_SIZE, 0);
	if (!c->recv_mr || !c->send_mr) {
		r = -errno;
		disco_log(DISCO_LOG_ERROR, "%s: cannot register %zu KiB of buffers: %s (is the "
			  "locked-memory limit, `ulimit -l`, high enough?)", t->peers[c->peer].desc,
			  (size_t)(VERBS_RECVS + VERBS_SEND_SLOTS) * VERBS_SLOT_SIZE / 1024, strerror(-r));
		return r;
	}
	c->send_cq = ibv_create_cq(t->verbs, VERBS_SQ_DEPTH + VERBS_READ_DEPTH, NULL, NULL, 0);
	if (!c->send_cq)
		return -errno ? -errno : -ENOMEM;
	attr.send_cq = c->send_cq;
	attr.recv_cq = t->recv_cq;
	if (rdma_create_qp(c->id, t->pd, &attr) < 0) {
		/* Some devices take less inline data; ask again without. */
		attr.cap.max_inline_data = 0;
		if (rdma_create_qp(c->id, t->pd, &attr) < 0) {
			r = -errno;
			disco_log(DISCO_LOG_ERROR, "%s: cannot create a queue pair: %s",
				  t->peers[c->peer].desc, strerror(-r));
			return r;
		}
	}
	c->max_inline = attr.cap.max_inline_data;
	for (uint32_t i = 0; i < VERBS_RECVS; i++)
		if ((r = post_recv(c, i)) < 0)
			return r;
	return 0;
}

void verbs_conn_attach(struct verbs_conn *c)
{
	struct verbs_peer *p = &c->t->peers[c->peer];
	p->conn = c;
	c->attached = true;
}

static void free_pending(struct verbs_peer *p)
{
	for (struct verbs_pending *q = p->pend_head, *next; q; q = next) {
		next = q->next;
		free(q);
	}
	p->pend_head = p->pend_tail = NULL;
	p->pend_bytes = 0;
}

/* Close @c (idempotent): detach it from its peer under send_mu, so no
 * sender posts to it any more, then tear the queue pair and the CM id
 * down. The struct and its buffers wait on t->dead, because a frame view
 * handed to a callback higher up the stack may point into them. Never
 * calls owner callbacks. */
void verbs_conn_close(struct verbs_conn *c)
{
	struct verbs_transport *t = c->t;

	if (c->closing)
		return;
	c->closing = true;
	if (c->attached) {
		struct verbs_peer *p = &t->peers[c->peer];
		pthread_mutex_lock(&p->send_mu);
		p->qp = NULL;
		p->send_conn = NULL;
		p->sendable = false;
		p->send_err = 0;
		p->flush_wanted = false;
		free_pending(p);
		pthread_mutex_unlock(&p->send_mu);
		p->conn = NULL;
		c->attached = false;
	}
	if (c->established)
		rdma_disconnect(c->id);
	if (c->id->qp)
		rdma_destroy_qp(c->id);
	if (c->send_cq)
		ibv_destroy_cq(c->send_cq);
	if (c->recv_mr)
		ibv_dereg_mr(c->recv_mr);
	if (c->send_mr)
		ibv_dereg_mr(c->send_mr);
	c->send_cq = NULL;
	c->recv_mr = c->send_mr = NULL;
	rdma_destroy_id(c->id);
	c->id = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = t->dead;
	t->dead = c;
}

void verbs_free_dead(struct verbs_transport *t)
{
	for (struct verbs_conn *c = t->dead, *next; c; c = next) {
		next = c->next;
		free(c->recv_buf);
		free(c->send_buf);
		free(c);
	}
	t->dead = NULL;
}

struct verbs_conn *verbs_conn_by_serial(struct verbs_transport *t, uint32_t serial)
{
	for (struct verbs_conn *c = t->conns; c; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

struct verbs_conn *verbs_conn_by_qp(struct verbs_transport *t, const struct ibv_qp *qp)
{
	for (struct verbs_conn *c = t->conns; c; c = c->next)
		if (c->id && c->id->qp == qp)
			return c;
	return NULL;
}

static int send_hello(struct verbs_conn *c)
{
	uint8_t buf[RPC_AUTH_HELLO_MAX];
	long n = rpc_auth_make_hello(&c->auth, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return verbs_peer_send(c->t, &c->t->peers[c->peer], RPC_MSG_HELLO, buf, (size_t)n, NULL,
			      true);
}

static int send_proof(struct verbs_conn *c)
{
	uint8_t buf[RPC_AUTH_PROOF_MAX];
	long n = rpc_auth_make_proof(&c->auth, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return verbs_peer_send(c->t, &c->t->peers[c->peer], RPC_MSG_AUTH, buf, (size_t)n, NULL,
			      true);
}

/* The RDMA CM says the connection is up: the queue pair may send. The
 * dialler speaks first (Hello); the acceptor answers only a valid Hello. */
void verbs_conn_established(struct verbs_conn *c)
{
	struct verbs_transport *t = c->t;
	struct verbs_peer *p = &t->peers[c->peer];
	int r;

	if (c->established)
		return; /* a receive got here before the CM event (below) */
	c->established = true;
	c->phase = VERBS_CONN_HANDSHAKE;
	pthread_mutex_lock(&p->send_mu);
	p->qp = c->id->qp;
	p->send_conn = c;
	p->credits = RPC_RDMA_CREDITS;
	p->owed = 0;
	p->sq_used = 0;
	p->slot_head = p->slots_used = 0;
	pthread_mutex_unlock(&p->send_mu);
	verbs_set_state(p, RPC_PEER_AUTHENTICATING);
	disco_log(DISCO_LOG_DEBUG, "%s: rdma connection established, authenticating", p->desc);
	if (c->dialled && (r = send_hello(c)) < 0)
		verbs_conn_fail(c, false, "sending Hello: %s", strerror(-r));
}

/* ------------------------------------------------------------------ */
/* Handshake and frame dispatch (loop thread)                           */

static void peer_up(struct verbs_conn *c)
{
	struct verbs_transport *t = c->t;
	struct verbs_peer *p = &t->peers[c->peer];

	c->phase = VERBS_CONN_UP;
	p->last_rx_ms = uv_now(t->base.loop);
	p->backoff_ms = VERBS_BACKOFF_MIN_MS;
	pthread_mutex_lock(&p->send_mu);
	p->sendable = true;
	pthread_mutex_unlock(&p->send_mu);
	verbs_set_state(p, RPC_PEER_UP);
	disco_log(DISCO_LOG_INFO, "%s: up over rdma (%s)", p->desc,
		  c->dialled ? "dialled" : "accepted");
	if (t->base.cb.on_peer_up)
		t->base.cb.on_peer_up(t->base.opaque, p->index);
}

static void on_handshake_frame(struct verbs_conn *c, const struct rpc_frame_view *f)
{
	char err[VERBS_WHY_MAX];
	int r;

	switch (f->type) {
	case RPC_MSG_HELLO:
		r = rpc_auth_on_hello(&c->auth, f->body, f->body_len, c->peer, err, sizeof(err));
		if (r < 0) {
			verbs_conn_fail(c, true, "%s", err);
			return;
		}
		if ((!c->dialled && (r = send_hello(c)) < 0) || (r = send_proof(c)) < 0)
			verbs_conn_fail(c, false, "sending handshake: %s", strerror(-r));
		return;
	case RPC_MSG_AUTH:
		r = rpc_auth_check_proof(&c->auth, f->body, f->body_len, err, sizeof(err));
		if (r < 0) {
			/* Our own proof may still be in the send queue, and a
			 * disconnect would flush it: let it reach the peer, so
			 * that the peer, too, learns the keys differ. */
			if (c->attached)
				verbs_peer_drain_sends(&c->t->peers[c->peer], 200);
			verbs_conn_fail(c, true, "%s", err);
			return;
		}
		peer_up(c);
		return;
	default:
		verbs_conn_fail(c, true, "frame type %u before authentication", f->type);
		return;
	}
}

static void on_goodbye(struct verbs_conn *c, const struct rpc_frame_view *f)
{
	struct verbs_transport *t = c->t;
	char reason[128];

	rpc_goodbye_reason(f->body, f->body_len, reason, sizeof(reason));
	verbs_peer_down(t, &t->peers[c->peer], RPC_PEER_LEFT, "said goodbye (%s)", reason);
}

static void dispatch(struct verbs_conn *c, const struct rpc_frame_view *f)
{
	struct verbs_transport *t = c->t;

	if (c->phase != VERBS_CONN_UP) {
		on_handshake_frame(c, f);
		return;
	}
	switch (rpc_classify_up_frame(f->type)) {
	case RPC_UP_PROTOCOL_ERROR:
		verbs_conn_fail(c, true, "handshake frame type %u after authentication", f->type);
		return;
	case RPC_UP_IGNORE:
		return; /* a heartbeat: its arrival refreshed last_rx_ms */
	case RPC_UP_GOODBYE:
		on_goodbye(c, f);
		return;
	case RPC_UP_DELIVER:
		if (t->base.cb.on_frame)
			t->base.cb.on_frame(t->base.opaque, c->peer, f);
	}
}

/* One receive completion of @c (status SUCCESS). Handles the credits it
 * carries and its frame, then reposts the buffer. Returns 1 when that
 * buffer held a frame (a credit is owed for it; verbs_peer_after_recv()
 * adds the batch's under one lock), else 0. @c may be closed when this
 * returns. */
int verbs_conn_on_recv(struct verbs_conn *c, const struct ibv_wc *wc)
{
	struct verbs_transport *t = c->t;
	struct verbs_peer *p = &t->peers[c->peer];
	uint32_t idx = (uint32_t)(wc->wr_id & 0xffffffffu);
	const uint8_t *buf = c->recv_buf + (size_t)idx * VERBS_SLOT_SIZE;
	struct rpc_frame_view f;
	char err[256];
	int r;

	if (wc->opcode != IBV_WC_RECV || idx >= VERBS_RECVS) {
		verbs_conn_fail(c, true, "unexpected receive completion (opcode %d)", wc->opcode);
		return 0;
	}
	/* The receive CQ and the CM event channel are separate fds: the
	 * dialler's Hello may come before our ESTABLISHED event. rdma_accept()
	 * already moved the queue pair to RTS, so it may answer. */
	if (!c->established)
		verbs_conn_established(c);
	p->last_rx_ms = uv_now(t->base.loop);
	uint32_t back = wc->wc_flags & IBV_WC_WITH_IMM ? ntohl(wc->imm_data) : 0;
	if (back) { /* before the frame: what it makes the owner send may need them */
		bool bad;
		pthread_mutex_lock(&p->send_mu);
		bad = back > RPC_RDMA_CREDITS || p->credits + back > RPC_RDMA_CREDITS;
		if (!bad)
			p->credits += back;
		pthread_mutex_unlock(&p->send_mu);
		if (bad) {
			verbs_conn_fail(c, true, "handed back %u credits, more than it could owe", back);
			return 0;
		}
	}
	if (wc->byte_len == 0) { /* credit-only: not a frame, not credited back */
		if ((r = post_recv(c, idx)) < 0)
			verbs_conn_fail(c, false, "repost receive: %s", strerror(-r));
		return 0;
	}
	long n = rpc_frame_parse(buf, wc->byte_len, &f, err, sizeof(err));
	if (n <= 0 || (size_t)n != wc->byte_len) {
		verbs_conn_fail(c, true, "%s", n < 0 ? err : "message is not exactly one frame");
		return 0;
	}
	verbs_stat_add(&t->base.stats.frames_received, 1);
	verbs_stat_add(&t->base.stats.bytes_received, wc->byte_len);
	dispatch(c, &f);
	if (c->closing)
		return 0;
	if ((r = post_recv(c, idx)) < 0) {
		verbs_conn_fail(c, false, "repost receive: %s", strerror(-r));
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Send path (any thread)                                               */

/* Reap send completions (send_mu held): frees slots and queue entries,
 * counts finished reads; an error is recorded for the loop to fail the
 * peer. */
void verbs_peer_reap_sends(struct verbs_peer *p)
{
	struct verbs_conn *c = p->send_conn;
	struct ibv_wc wc[16];
	int n;

	if (!c || !c->send_cq)
		return;
	while ((n = ibv_poll_cq(c->send_cq, 16, wc)) > 0) {
		for (int i = 0; i < n; i++) {
			uint64_t id = wc[i].wr_id;
			p->sq_used--;
			if (id != VERBS_WR_NO_SLOT && (id & VERBS_WR_READ_TAG)) {
				if (wc[i].status == IBV_WC_SUCCESS) /* else: send_err below */
					p->reads_done = id & ~VERBS_WR_READ_TAG;
			} else if (id != VERBS_WR_NO_SLOT) {
				p->slots_used--;
			}
			if (wc[i].status != IBV_WC_SUCCESS && !p->send_err) {
				p->send_err = -EIO;
				p->send_why = ibv_wc_status_str(wc[i].status);
			}
		}
	}
	if (n < 0 && !p->send_err) {
		p->send_err = -EIO;
		p->send_why = "polling the send completion queue failed";
	}
}

/* Post one frame given as @n pieces (send_mu held; a credit, a work
 * request and, unless it goes inline, a slot are free). */
static int post_frame(struct verbs_peer *p, const struct ibv_sge *pieces, int n, size_t total)
{
	struct verbs_conn *c = p->send_conn;
	struct ibv_sge sge[3];
	struct ibv_send_wr wr = { .opcode = IBV_WR_SEND_WITH_IMM, .send_flags = IBV_SEND_SIGNALED },
			   *bad;

	if (total <= c->max_inline) {
		memcpy(sge, pieces, sizeof(*pieces) * (size_t)n);
		wr.num_sge = n;
		wr.send_flags |= IBV_SEND_INLINE;
		wr.wr_id = VERBS_WR_NO_SLOT;
	} else {
		uint32_t slot = p->slot_head;
		uint8_t *dst = c->send_buf + (size_t)slot * VERBS_SLOT_SIZE;
		size_t off = 0;
		for (int i = 0; i < n; i++) {
			memcpy(dst + off, (const void *)(uintptr_t)pieces[i].addr, pieces[i].length);
			off += pieces[i].length;
		}
		sge[0] = (struct ibv_sge){ .addr = (uintptr_t)dst, .length = (uint32_t)total,
					   .lkey = c->send_mr->lkey };
		wr.num_sge = 1;
		wr.wr_id = slot;
	}
	wr.sg_list = sge;
	wr.imm_data = htonl(p->owed);
	int r = ibv_post_send(p->qp, &wr, &bad);
	if (r) {
		p->send_err = -r;
		p->send_why = "posting a send failed";
		return -r;
	}
	p->owed = 0;
	p->credits--;
	p->sq_used++;
	if (wr.wr_id != VERBS_WR_NO_SLOT) {
		p->slot_head = (p->slot_head + 1) % VERBS_SEND_SLOTS;
		p->slots_used++;
	}
	return 0;
}

static bool can_post(struct verbs_peer *p, size_t total)
{
	return p->credits > 0 && p->sq_used < VERBS_SQ_DEPTH &&
	       (total <= p->send_conn->max_inline || p->slots_used < VERBS_SEND_SLOTS);
}

/* Send what is owed in a zero-length message (send_mu held). */
static void post_credit_only(struct verbs_peer *p)
{
	struct ibv_send_wr wr = { .opcode = IBV_WR_SEND_WITH_IMM, .wr_id = VERBS_WR_NO_SLOT,
				  .send_flags = IBV_SEND_SIGNALED }, *bad;
	if (!p->qp || p->send_err || p->sq_used >= VERBS_SQ_DEPTH)
		return;
	wr.imm_data = htonl(p->owed);
	int r = ibv_post_send(p->qp, &wr, &bad);
	if (r) {
		p->send_err = -r;
		p->send_why = "posting a credit message failed";
		return;
	}
	p->owed = 0;
	p->sq_used++;
}

/* What send() returns once the peer's queue pair failed. */
static int send_error(int err)
{
	return err == -ECONNRESET ? err : -EPIPE;
}

int verbs_peer_send(struct verbs_transport *t, struct verbs_peer *p, uint16_t type,
		   const void *body, size_t body_len, const void *page, bool internal)
{
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	struct ibv_sge pieces[3];
	int n = 0, ret = 0;
	size_t total = 0;
	bool kick = false;

	rpc_frame_header_encode(hdr, type, page ? RPC_FRAME_FLAG_PAGE : 0, (uint32_t)body_len);
	pieces[n++] = (struct ibv_sge){ .addr = (uintptr_t)hdr, .length = sizeof(hdr) };
	if (body_len)
		pieces[n++] = (struct ibv_sge){ .addr = (uintptr_t)body, .length = (uint32_t)body_len };
	if (page)
		pieces[n++] = (struct ibv_sge){ .addr = (uintptr_t)page, .length = RPC_PAGE_SIZE };
	for (int i = 0; i < n; i++)
		total += pieces[i].length;

	pthread_mutex_lock(&p->send_mu);
	if (p->send_err) {
		ret = send_error(p->send_err);
		goto out;
	}
	if (!p->qp || (!internal && !p->sendable)) {
		ret = -ENOTCONN;
		goto out;
	}
	verbs_peer_reap_sends(p);
	if (!p->pend_head && !p->send_err && can_post(p, total)) {
		ret = post_frame(p, pieces, n, total);
		if (ret < 0) {
			ret = send_error(ret);
			kick = true; /* the loop fails the peer */
			goto out;
		}
		goto sent;
	}
	if (p->pend_bytes + total > RPC_RDMA_PENDING_MAX) {
		ret = -ENOBUFS;
		goto out;
	}
	struct verbs_pending *q = malloc(sizeof(*q) + total);
	if (!q) {
		ret = -ENOMEM;
		goto out;
	}
	q->next = NULL;
	q->len = total;
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		memcpy(q->bytes + off, (const void *)(uintptr_t)pieces[i].addr, pieces[i].length);
		off += pieces[i].length;
	}
	if (p->pend_tail)
		p->pend_tail->next = q;
	else
		p->pend_head = q;
	p->pend_tail = q;
	p->pend_bytes += total;
	verbs_stat_add(&t->base.stats.send_queued, 1);
	if (!p->flush_wanted) {
		p->flush_wanted = true;
		kick = true;
	}
sent:
	verbs_stat_add(&t->base.stats.frames_sent, 1);
	verbs_stat_add(&t->base.stats.bytes_sent, total);
out:
	/* Woken under send_mu: stop() closes the async only after every
	 * connection was detached under its send_mu (qp == NULL). */
	if (kick)
		verbs_kick_loop(t);
	pthread_mutex_unlock(&p->send_mu);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Credits and pending frames (loop thread)                            */

/* Push pending frames (send_mu held). True if some are still waiting for
 * a slot or a work request (not for a credit: those wait for the peer). */
static bool flush_locked(struct verbs_peer *p)
{
	verbs_peer_reap_sends(p);
	while (p->pend_head && !p->send_err && can_post(p, p->pend_head->len)) {
		struct verbs_pending *q = p->pend_head;
		struct ibv_sge one = { .addr = (uintptr_t)q->bytes, .length = (uint32_t)q->len };
		if (post_frame(p, &one, 1, q->len) < 0)
			break;
		p->pend_head = q->next;
		if (!p->pend_head)
			p->pend_tail = NULL;
		p->pend_bytes -= q->len;
		free(q);
	}
	if (!p->pend_head)
		p->flush_wanted = false;
	return p->pend_head && p->credits > 0 && !p->send_err;
}

void verbs_peer_flush(struct verbs_transport *t, struct verbs_peer *p)
{
	bool again = false;

	pthread_mutex_lock(&p->send_mu);
	if (p->qp)
		again = flush_locked(p);
	pthread_mutex_unlock(&p->send_mu);
	if (again)
		verbs_arm_flush_timer(t);
}

void verbs_peer_after_recv(struct verbs_transport *t, struct verbs_peer *p, uint32_t reposted)
{
	bool again = false;

	pthread_mutex_lock(&p->send_mu);
	if (p->qp) {
		p->owed += reposted;
		again = flush_locked(p);
		if (p->owed >= RPC_RDMA_CREDITS / 2)
			post_credit_only(p);
	}
	pthread_mutex_unlock(&p->send_mu);
	if (again)
		verbs_arm_flush_timer(t);
}

/* Wait (briefly, at stop) until the peer's HCA acknowledged every send,
 * so a Goodbye is not flushed away by the disconnect behind it. */
void verbs_peer_drain_sends(struct verbs_peer *p, unsigned timeout_ms)
{
	struct timespec start, now, nap = { 0, 200 * 1000 };

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pthread_mutex_lock(&p->send_mu);
		verbs_peer_reap_sends(p);
		bool done = !p->qp || p->sq_used == 0 || p->send_err;
		pthread_mutex_unlock(&p->send_mu);
		if (done)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >=
		    (long)timeout_ms)
			return;
		nanosleep(&nap, NULL);
	}
}
