/*
 * One connection of the verbs link back end: the RC queue pair and its
 * registered buffers, the receive path, the write path and the credits
 * that keep the peer's receive queue from ever running dry. What a
 * connection means (handshake, dispatch, failures) is the peer machine's
 * (rpc/peer.c); this file only moves frames. Threads: verbs_internal.h and
 * rpc/peer.h.
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
 * in order, in the link's pending list, which the loop thread flushes when
 * credits arrive.
 *
 * Send completions land in a per-connection CQ without a channel; senders
 * reap it under send_mu before posting (it frees slots in completion
 * order, which on an RC queue pair is posting order), so no thread is
 * woken for them.
 */
#include "verbs_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc/log.h"

/* ------------------------------------------------------------------ */
/* Connections (loop thread)                                            */

struct verbs_link *verbs_link_new(struct verbs_transport *t, struct rdma_cm_id *id, int peer,
				  bool dialled, const struct sockaddr *remote)
{
	struct verbs_link *l = calloc(1, sizeof(*l));

	if (!l || rpc_conn_init(&l->conn, &t->peers, peer, dialled, RPC_CONN_LINKING, remote) < 0) {
		disco_log(DISCO_LOG_ERROR, "out of memory for a connection");
		free(l);
		return NULL;
	}
	l->id = id;
	l->serial = ++t->next_serial;
	id->context = l;
	return l;
}

static int post_recv(struct verbs_link *l, uint32_t idx)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(l->recv_buf + (size_t)idx * VERBS_SLOT_SIZE),
		.length = VERBS_SLOT_SIZE,
		.lkey = l->recv_mr->lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = ((uint64_t)l->serial << 32) | idx, .sg_list = &sge, .num_sge = 1,
	}, *bad;
	return -ibv_post_recv(l->id->qp, &wr, &bad);
}

/* Create the queue pair, register the buffers and post every receive, so
 * the peer may send as soon as the connection is established. */
int verbs_link_setup_qp(struct verbs_link *l)
{
	struct verbs_transport *t = verbs_of(l->conn.t);
	char desc[RPC_REMOTE_MAX + 32];
	struct ibv_qp_init_attr attr = {
		.qp_type = IBV_QPT_RC,
		.sq_sig_all = 1,
		.cap = { .max_send_wr = VERBS_SQ_DEPTH + VERBS_READ_DEPTH,
			 .max_recv_wr = VERBS_RECVS, .max_send_sge = 3, .max_recv_sge = 1,
			 .max_inline_data = VERBS_MAX_INLINE },
	};
	int r;

	snprintf(desc, sizeof(desc), "connection %s %s", l->conn.dialled ? "to" : "from",
		 l->conn.remote);
	if (l->id->verbs != t->verbs) {
		disco_log(DISCO_LOG_ERROR, "%s: the route uses rdma device %s, not %s", desc,
			  ibv_get_device_name(l->id->verbs->device),
			  ibv_get_device_name(t->verbs->device));
		return -ENODEV;
	}
	l->recv_buf = aligned_alloc(4096, (size_t)VERBS_RECVS * VERBS_SLOT_SIZE);
	l->send_buf = aligned_alloc(4096, (size_t)VERBS_SEND_SLOTS * VERBS_SLOT_SIZE);
	if (!l->recv_buf || !l->send_buf)
		return -ENOMEM;
	l->recv_mr = ibv_reg_mr(t->pd, l->recv_buf, (size_t)VERBS_RECVS * VERBS_SLOT_SIZE,
				IBV_ACCESS_LOCAL_WRITE);
	l->send_mr = ibv_reg_mr(t->pd, l->send_buf, (size_t)VERBS_SEND_SLOTS * VERBS_SLOT_SIZE, 0);
	if (!l->recv_mr || !l->send_mr) {
		r = -errno;
		disco_log(DISCO_LOG_ERROR, "%s: cannot register %zu KiB of buffers: %s (is the "
			  "locked-memory limit, `ulimit -l`, high enough?)", desc,
			  (size_t)(VERBS_RECVS + VERBS_SEND_SLOTS) * VERBS_SLOT_SIZE / 1024,
			  strerror(-r));
		return r;
	}
	l->send_cq = ibv_create_cq(t->verbs, VERBS_SQ_DEPTH + VERBS_READ_DEPTH, NULL, NULL, 0);
	if (!l->send_cq)
		return -errno ? -errno : -ENOMEM;
	attr.send_cq = l->send_cq;
	attr.recv_cq = t->recv_cq;
	if (rdma_create_qp(l->id, t->pd, &attr) < 0) {
		/* Some devices take less inline data; ask again without. */
		attr.cap.max_inline_data = 0;
		if (rdma_create_qp(l->id, t->pd, &attr) < 0) {
			r = -errno;
			disco_log(DISCO_LOG_ERROR, "%s: cannot create a queue pair: %s", desc,
				  strerror(-r));
			return r;
		}
	}
	l->max_inline = attr.cap.max_inline_data;
	for (uint32_t i = 0; i < VERBS_RECVS; i++)
		if ((r = post_recv(l, i)) < 0)
			return r;
	return 0;
}

/* rpc_link_ops.close: @c is detached (no sender can reach it); tear the
 * queue pair and the CM id down. The struct and its buffers wait on
 * t->dead, because a frame view handed to a callback higher up the stack
 * may point into them. */
void verbs_link_close(struct rpc_conn *c)
{
	struct verbs_transport *t = verbs_of(c->t);
	struct verbs_link *l = verbs_link_of(c);

	if (c->phase != RPC_CONN_LINKING)
		rdma_disconnect(l->id);
	if (l->id->qp)
		rdma_destroy_qp(l->id);
	if (l->send_cq)
		ibv_destroy_cq(l->send_cq);
	if (l->recv_mr)
		ibv_dereg_mr(l->recv_mr);
	if (l->send_mr)
		ibv_dereg_mr(l->send_mr);
	l->send_cq = NULL;
	l->recv_mr = l->send_mr = NULL;
	rdma_destroy_id(l->id);
	l->id = NULL;
	rpc_conn_unlink(c);
	l->dead_next = t->dead;
	t->dead = l;
}

void verbs_free_dead(struct verbs_transport *t)
{
	for (struct verbs_link *l = t->dead, *next; l; l = next) {
		next = l->dead_next;
		for (struct verbs_pending *q = l->pend_head, *qn; q; q = qn) {
			qn = q->next;
			free(q);
		}
		free(l->recv_buf);
		free(l->send_buf);
		free(l);
	}
	t->dead = NULL;
}

struct verbs_link *verbs_link_by_serial(struct verbs_transport *t, uint32_t serial)
{
	for (struct rpc_conn *c = t->peers.conns; c; c = c->next)
		if (verbs_link_of(c)->serial == serial)
			return verbs_link_of(c);
	return NULL;
}

struct verbs_link *verbs_link_by_qp(struct verbs_transport *t, const struct ibv_qp *qp)
{
	for (struct rpc_conn *c = t->peers.conns; c; c = c->next)
		if (verbs_link_of(c)->id && verbs_link_of(c)->id->qp == qp)
			return verbs_link_of(c);
	return NULL;
}

/* The RDMA CM says the connection is up: the queue pair may send, with a
 * full set of credits (the peer posted its receives before it accepted). */
void verbs_link_established(struct verbs_link *l)
{
	if (l->conn.phase != RPC_CONN_LINKING)
		return; /* a receive got here before the CM event (below) */
	l->credits = RPC_RDMA_CREDITS;
	rpc_conn_linked(&l->conn); /* publishes the link under send_mu */
}

/* ------------------------------------------------------------------ */
/* Receive path (loop thread)                                           */

/* One receive completion of @l (status SUCCESS). Takes the credits it
 * carries, hands its frame to the peer machine, then reposts the buffer.
 * Returns 1 when that buffer held a frame (a credit is owed for it;
 * verbs_peer_after_recv() adds the batch's under one lock), else 0. @l may
 * be closed when this returns. */
int verbs_link_on_recv(struct verbs_link *l, const struct ibv_wc *wc)
{
	struct rpc_peers *t = l->conn.t;
	struct rpc_conn *c = &l->conn;
	uint32_t idx = (uint32_t)(wc->wr_id & 0xffffffffu);
	const uint8_t *buf = l->recv_buf + (size_t)idx * VERBS_SLOT_SIZE;
	struct rpc_frame_view f;
	char err[256];
	int r;

	if (wc->opcode != IBV_WC_RECV || idx >= VERBS_RECVS) {
		rpc_conn_fail(&l->conn, true, "unexpected receive completion (opcode %d)",
			      wc->opcode);
		return 0;
	}
	/* The receive CQ and the CM event channel are separate fds: the
	 * dialler's Hello may come before our ESTABLISHED event. rdma_accept()
	 * already moved the queue pair to RTS, so it may answer. */
	verbs_link_established(l);
	if (c->closing)
		return 0;
	if (c->phase == RPC_CONN_UP) /* a credit-only message counts as a sign of life */
		rpc_conn_peer(c)->last_rx_ms = uv_now(t->base.loop);
	uint32_t back = wc->wc_flags & IBV_WC_WITH_IMM ? ntohl(wc->imm_data) : 0;
	if (back) { /* before the frame: what it makes the owner send may need them */
		bool bad;
		rpc_conn_lock_send(c);
		bad = back > RPC_RDMA_CREDITS || l->credits + back > RPC_RDMA_CREDITS;
		if (!bad)
			l->credits += back;
		rpc_conn_unlock_send(c);
		if (bad) {
			rpc_conn_fail(&l->conn, true, "handed back %u credits, more than it could owe",
				      back);
			return 0;
		}
	}
	if (wc->byte_len == 0) { /* credit-only: not a frame, not credited back */
		if ((r = post_recv(l, idx)) < 0)
			rpc_conn_fail(&l->conn, false, "repost receive: %s", strerror(-r));
		return 0;
	}
	long n = rpc_frame_parse(buf, wc->byte_len, &f, err, sizeof(err));
	if (n <= 0 || (size_t)n != wc->byte_len) {
		rpc_conn_fail(&l->conn, true, "%s", n < 0 ? err : "message is not exactly one frame");
		return 0;
	}
	rpc_stat_add(&t->base.stats.bytes_received, wc->byte_len);
	rpc_conn_frame(&l->conn, &f);
	if (l->conn.closing)
		return 0;
	if ((r = post_recv(l, idx)) < 0) {
		rpc_conn_fail(&l->conn, false, "repost receive: %s", strerror(-r));
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Write path (any thread, send_mu held)                                */

void verbs_link_reap_sends(struct verbs_link *l)
{
	struct rpc_conn *c = &l->conn;
	/* Reads are posted only on a peer's attached connection. */
	struct verbs_reads *reads = c->attached ? &verbs_of(c->t)->reads[c->peer] : NULL;
	struct ibv_wc wc[16];
	int n;

	if (!l->send_cq)
		return;
	while ((n = ibv_poll_cq(l->send_cq, 16, wc)) > 0) {
		for (int i = 0; i < n; i++) {
			uint64_t id = wc[i].wr_id;
			l->sq_used--;
			if (id != VERBS_WR_NO_SLOT && (id & VERBS_WR_READ_TAG)) {
				if (wc[i].status == IBV_WC_SUCCESS && reads) /* else: send_err below */
					reads->done = id & ~VERBS_WR_READ_TAG;
			} else if (id != VERBS_WR_NO_SLOT) {
				l->slots_used--;
			}
			if (wc[i].status != IBV_WC_SUCCESS && !c->send_err) {
				c->send_err = -EIO;
				c->send_why = ibv_wc_status_str(wc[i].status);
			}
		}
	}
	if (n < 0 && !c->send_err) {
		c->send_err = -EIO;
		c->send_why = "polling the send completion queue failed";
	}
}

/* Post one frame given as @n pieces (a credit, a work request and, unless
 * it goes inline, a slot are free). */
static int post_frame(struct verbs_link *l, const struct iovec *pieces, int n, size_t total)
{
	struct ibv_sge sge[3];
	struct ibv_send_wr wr = { .opcode = IBV_WR_SEND_WITH_IMM, .send_flags = IBV_SEND_SIGNALED },
			   *bad;

	if (total <= l->max_inline) {
		for (int i = 0; i < n; i++)
			sge[i] = (struct ibv_sge){ .addr = (uintptr_t)pieces[i].iov_base,
						   .length = (uint32_t)pieces[i].iov_len };
		wr.num_sge = n;
		wr.send_flags |= IBV_SEND_INLINE;
		wr.wr_id = VERBS_WR_NO_SLOT;
	} else {
		uint32_t slot = l->slot_head;
		uint8_t *dst = l->send_buf + (size_t)slot * VERBS_SLOT_SIZE;
		size_t off = 0;
		for (int i = 0; i < n; i++) {
			memcpy(dst + off, pieces[i].iov_base, pieces[i].iov_len);
			off += pieces[i].iov_len;
		}
		sge[0] = (struct ibv_sge){ .addr = (uintptr_t)dst, .length = (uint32_t)total,
					   .lkey = l->send_mr->lkey };
		wr.num_sge = 1;
		wr.wr_id = slot;
	}
	wr.sg_list = sge;
	wr.imm_data = htonl(l->owed);
	int r = ibv_post_send(l->id->qp, &wr, &bad);
	if (r) {
		l->conn.send_err = -r;
		l->conn.send_why = "posting a send failed";
		return -r;
	}
	l->owed = 0;
	l->credits--;
	l->sq_used++;
	if (wr.wr_id != VERBS_WR_NO_SLOT) {
		l->slot_head = (l->slot_head + 1) % VERBS_SEND_SLOTS;
		l->slots_used++;
	}
	return 0;
}

static bool can_post(const struct verbs_link *l, size_t total)
{
	return l->credits > 0 && l->sq_used < VERBS_SQ_DEPTH &&
	       (total <= l->max_inline || l->slots_used < VERBS_SEND_SLOTS);
}

/* Send what is owed in a zero-length message. */
static void post_credit_only(struct verbs_link *l)
{
	struct ibv_send_wr wr = { .opcode = IBV_WR_SEND_WITH_IMM, .wr_id = VERBS_WR_NO_SLOT,
				  .send_flags = IBV_SEND_SIGNALED }, *bad;
	if (l->conn.send_err || l->sq_used >= VERBS_SQ_DEPTH)
		return;
	wr.imm_data = htonl(l->owed);
	int r = ibv_post_send(l->id->qp, &wr, &bad);
	if (r) {
		l->conn.send_err = -r;
		l->conn.send_why = "posting a credit message failed";
		return;
	}
	l->owed = 0;
	l->sq_used++;
}

int verbs_link_write(struct rpc_conn *c, const struct iovec *iov, int n, size_t total)
{
	struct verbs_link *l = verbs_link_of(c);
	int r;

	verbs_link_reap_sends(l);
	if (!l->pend_head && !c->send_err && can_post(l, total)) {
		r = post_frame(l, iov, n, total);
		return r < 0 ? rpc_send_error(r) : RPC_LINK_SENT;
	}
	if (l->pend_bytes + total > RPC_RDMA_PENDING_MAX)
		return -ENOBUFS;
	struct verbs_pending *q = malloc(sizeof(*q) + total);
	if (!q)
		return -ENOMEM;
	q->next = NULL;
	q->len = total;
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		memcpy(q->bytes + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	if (l->pend_tail)
		l->pend_tail->next = q;
	else
		l->pend_head = q;
	l->pend_tail = q;
	l->pend_bytes += total;
	return RPC_LINK_QUEUED;
}

/* ------------------------------------------------------------------ */
/* Credits and pending frames (loop thread)                            */

/* Push pending frames (send state locked). True if some are still waiting
 * for a slot or a work request (not for a credit: those wait for the peer). */
static bool flush_locked(struct verbs_link *l)
{
	struct rpc_conn *c = &l->conn;

	verbs_link_reap_sends(l);
	while (l->pend_head && !c->send_err && can_post(l, l->pend_head->len)) {
		struct verbs_pending *q = l->pend_head;
		struct iovec one = { .iov_base = q->bytes, .iov_len = q->len };
		if (post_frame(l, &one, 1, q->len) < 0)
			break;
		l->pend_head = q->next;
		if (!l->pend_head)
			l->pend_tail = NULL;
		l->pend_bytes -= q->len;
		free(q);
	}
	if (!l->pend_head)
		c->flush_wanted = false;
	return l->pend_head && l->credits > 0 && !c->send_err;
}

void verbs_peer_flush(struct rpc_peer *p)
{
	bool again = false;

	pthread_mutex_lock(&p->send_mu);
	if (p->send_conn)
		again = flush_locked(verbs_link_of(p->send_conn));
	pthread_mutex_unlock(&p->send_mu);
	if (again)
		verbs_arm_flush_timer(verbs_of(p->t));
}

void verbs_link_after_recv(struct verbs_link *l, uint32_t reposted)
{
	struct rpc_conn *c = &l->conn;
	bool again;

	if (c->closing)
		return;
	rpc_conn_lock_send(c);
	l->owed += reposted;
	again = flush_locked(l);
	if (l->owed >= RPC_RDMA_CREDITS / 2)
		post_credit_only(l);
	rpc_conn_unlock_send(c);
	if (again)
		verbs_arm_flush_timer(verbs_of(c->t));
}

/* The async woke the loop: flush (also reaps completions nobody else
 * reaps, like every tick). */
void verbs_link_wake(struct rpc_peer *p, bool flush_wanted)
{
	(void)flush_wanted;
	verbs_peer_flush(p);
}

void verbs_link_tick(struct rpc_peer *p)
{
	verbs_peer_flush(p);
}

/* Wait (briefly) until the peer's HCA acknowledged every send, so a
 * Goodbye or an AuthProof is not flushed away by the disconnect behind it. */
void verbs_link_settle(struct rpc_conn *c, unsigned timeout_ms)
{
	struct verbs_link *l = verbs_link_of(c);
	struct timespec start, now, nap = { 0, 200 * 1000 };

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		rpc_conn_lock_send(c);
		bool done = c->closing || c->send_err || !l->send_cq;
		if (!done) {
			verbs_link_reap_sends(l);
			done = l->sq_used == 0 || c->send_err;
		}
		rpc_conn_unlock_send(c);
		if (done)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >=
		    (long)timeout_ms)
			return;
		nanosleep(&nap, NULL);
	}
}

/* stop(), after our Goodbye: post what waits, then let it leave. */
void verbs_link_farewell(struct rpc_peer *p)
{
	verbs_peer_flush(p);
	if (p->conn)
		verbs_link_settle(p->conn, 200);
}
