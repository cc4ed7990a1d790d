/*
 * RDMA transport: the implementation of transport.h on rdma-core verbs.
 * Connections are set up with the RDMA CM (librdmacm), frames travel as
 * two-sided SEND/RECV on RC queue pairs with pre-posted receive buffers
 * and credit-based flow control (verbs_peer.c), and membership (Hello and
 * AuthProof before anything else, heartbeats, Goodbye) is the same as over
 * TCP. docs/transport.md describes the protocol; this comment the code.
 * This file holds the lifecycle, the device checks, the RDMA CM events,
 * the completion and async-event dispatch and the timers; verbs_peer.c one
 * connection; verbs_internal.h the structs, with who may touch each field.
 *
 * Thread model
 * ------------
 * As for TCP: the owner creates the loop and its thread, calls start() on
 * that thread and runs uv_run() there. The loop thread owns the RDMA CM
 * event channel, the listening id, every connection (id, queue pair,
 * buffers, auth state), the receive completion queue and its channel, the
 * device's async events, the timers and each peer's membership state;
 * every callback of struct rpc_callbacks runs on it. It is woken through
 * three file descriptors watched with uv_poll: the CM event channel, the
 * receive CQ's completion channel, and the device's async-event fd.
 *
 * Any thread may call send() and peer_state(). send() takes the peer's
 * send_mu, reaps the connection's send completions and posts the frame at
 * once (ibv_post_send: no system call, no hop to the loop thread), so a
 * faulting thread's request costs what it costs over TCP minus the socket
 * call. A frame without a credit waits in the peer's pending list and the
 * loop thread posts it when credits come back; a sender wakes the loop with
 * uv_async_send() only for that, or when a post failed. send_mu is a leaf
 * lock; no callback runs under it. The loop thread detaches a connection
 * (qp = NULL) under send_mu before it destroys the queue pair.
 *
 * Receive completions wake only the loop thread, which handles every frame
 * where it lies in its registered buffer (no copy), reposts the buffer and
 * hands the credit back. The fault path therefore has the same thread hops
 * as over TCP: the faulting thread blocks in the kernel, the loop thread
 * posts the request, the peer's loop thread answers, ours installs the page
 * and wakes the faulting thread.
 *
 * Connections
 * -----------
 * Node i dials every node j < i (rdma_resolve_addr from its own address,
 * rdma_resolve_route, rdma_connect with its node index in the private
 * data) and accepts from every j > i, as over TCP. A connect request that
 * names a node which should not dial us, or one that already has a
 * connection, is rejected. After ESTABLISHED the dialler sends Hello; the
 * acceptor answers a valid Hello with its Hello and AuthProof; each side is
 * UP once it has verified the other's proof; nothing but Hello and
 * AuthProof is accepted before that.
 *
 * Failures. Before a peer was UP, a rejected or unreachable connect, a CM
 * error or a handshake slower than peer_timeout_ms closes that connection
 * and the dialler retries (50 ms doubling to 1 s). A failed authentication
 * or protocol fault, and once UP any fault (DISCONNECTED without Goodbye, a
 * completion with an error status, flushed work requests, a queue-pair
 * async error, silence longer than peer_timeout_ms) marks the peer FAILED,
 * for good. A device error or removal fails every peer.
 */
#include "rpc/verbs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "rpc/membership.h"
#include "rpc/transport_common.h"

static int set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int resolve(const char *host, int port, int flags, struct sockaddr_storage *out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = flags | AI_NUMERICSERV };
	struct addrinfo *ai;
	char ports[16];

	snprintf(ports, sizeof(ports), "%d", port);
	int r = getaddrinfo(host, ports, &hints, &ai);
	if (r != 0)
		return r;
	memcpy(out, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

void verbs_kick_loop(struct verbs_transport *t)
{
	uv_async_send(&t->async);
}

/* ------------------------------------------------------------------ */
/* Dialling (loop thread)                                               */

static void on_dial_timer(uv_timer_t *h);

void verbs_schedule_dial(struct verbs_transport *t, struct verbs_peer *p)
{
	if (t->stopping || verbs_state_final(verbs_get_state(p)))
		return;
	uv_timer_start(&p->dial_timer, on_dial_timer, p->backoff_ms, 0);
	p->backoff_ms = p->backoff_ms * 2 > VERBS_BACKOFF_MAX_MS ? VERBS_BACKOFF_MAX_MS
								 : p->backoff_ms * 2;
}

static void dial(struct verbs_transport *t, struct verbs_peer *p)
{
	const struct cluster_config *cfg = verbs_cfg(t);
	const struct cluster_node *self = &cfg->nodes[t->base.self], *n = &cfg->nodes[p->index];
	struct sockaddr_storage src, dst;
	struct rdma_cm_id *id;
	int r;

	if (t->stopping || verbs_state_final(verbs_get_state(p)) || p->conn)
		return;
	/* Blocking for a host name; addresses are numeric in practice. */
	if ((r = resolve(n->address, n->port, 0, &dst)) != 0 ||
	    (r = resolve(self->address, 0, 0, &src)) != 0) {
		disco_log(DISCO_LOG_WARN, "%s: cannot resolve: %s", p->desc, gai_strerror(r));
		verbs_schedule_dial(t, p);
		return;
	}
	if (rdma_create_id(t->ec, &id, NULL, RDMA_PS_TCP) < 0) {
		disco_log(DISCO_LOG_ERROR, "%s: rdma_create_id: %s", p->desc, strerror(errno));
		verbs_schedule_dial(t, p);
		return;
	}
	struct verbs_conn *c = verbs_conn_new(t, id, p->index, true);
	if (!c) {
		rdma_destroy_id(id);
		verbs_schedule_dial(t, p);
		return;
	}
	verbs_conn_attach(c);
	if (rdma_resolve_addr(id, (struct sockaddr *)&src, (struct sockaddr *)&dst,
			      VERBS_RESOLVE_TIMEOUT_MS) < 0)
		verbs_conn_fail(c, false, "rdma_resolve_addr: %s", strerror(errno));
}

static void on_dial_timer(uv_timer_t *h)
{
	struct verbs_peer *p = verbs_container_of(h, struct verbs_peer, dial_timer);
	dial(h->data, p);
}

static struct rdma_conn_param conn_param(struct verbs_transport *t,
					       const struct verbs_connect_data *cd)
{
	return (struct rdma_conn_param){
		.private_data = cd,
		.private_data_len = cd ? sizeof(*cd) : 0,
		/* one-sided reads in flight, both ways (verbs_read.c) */
		.responder_resources = t->rd_atomic,
		.initiator_depth = t->rd_atomic,
		.retry_count = 7,
		.rnr_retry_count = 7, /* credits make RNR impossible; never fail on one */
	};
}

static void on_route_resolved(struct verbs_conn *c)
{
	struct verbs_transport *t = c->t;
	struct verbs_connect_data cd = {
		.magic = htole32(VERBS_CONNECT_MAGIC),
		.version = VERBS_CONNECT_VERSION,
		.node = htole16((uint16_t)t->base.self),
	};
	int r = verbs_conn_setup_qp(c);

	if (r < 0) {
		/* Not a passing fault (wrong device, no memory to pin): no retry. */
		verbs_conn_fail(c, true, "setting up the queue pair: %s", strerror(-r));
		return;
	}
	struct rdma_conn_param param = conn_param(t, &cd);
	if (rdma_connect(c->id, &param) < 0) {
		verbs_conn_fail(c, false, "rdma_connect: %s", strerror(errno));
		return;
	}
	c->phase = VERBS_CONN_CONNECTING;
}

/* ------------------------------------------------------------------ */
/* Accepting (loop thread)                                              */

static void reject(struct rdma_cm_id *id, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reject(struct rdma_cm_id *id, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	disco_log(DISCO_LOG_WARN, "rejecting an rdma connection: %s", msg);
	rdma_reject(id, NULL, 0);
	rdma_destroy_id(id);
}

static void on_connect_request(struct verbs_transport *t, struct rdma_cm_id *id,
			       const void *pdata, size_t plen)
{
	const struct cluster_config *cfg = verbs_cfg(t);
	struct verbs_connect_data cd;

	if (t->stopping) {
		reject(id, "node stopping");
		return;
	}
	if (plen < sizeof(cd)) {
		reject(id, "not a disco node (%zu bytes of private data)", plen);
		return;
	}
	memcpy(&cd, pdata, sizeof(cd));
	int node = le16toh(cd.node);
	if (le32toh(cd.magic) != VERBS_CONNECT_MAGIC || cd.version != VERBS_CONNECT_VERSION) {
		reject(id, "not a disco node, or another version (%u)", cd.version);
		return;
	}
	if (node <= t->base.self || node >= cfg->n_nodes) {
		reject(id, "it says it is node %d (only nodes with a higher index than %d "
		       "dial us)", node, t->base.self);
		return;
	}
	struct verbs_peer *p = &t->peers[node];
	enum rpc_peer_state st = verbs_get_state(p);
	if (st != RPC_PEER_CONNECTING || p->conn) {
		reject(id, "%s: second connection refused (peer is %s)", p->desc,
		       rpc_peer_state_name(st));
		return;
	}
	if (id->verbs != t->verbs) {
		reject(id, "%s: arrived on rdma device %s, not %s", p->desc,
		       ibv_get_device_name(id->verbs->device),
		       ibv_get_device_name(t->verbs->device));
		return;
	}
	struct verbs_conn *c = verbs_conn_new(t, id, node, false);
	if (!c) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	verbs_conn_attach(c);
	int r = verbs_conn_setup_qp(c);
	if (r < 0) {
		rdma_reject(id, NULL, 0);
		verbs_conn_fail(c, true, "setting up the queue pair: %s", strerror(-r));
		return;
	}
	struct rdma_conn_param param = conn_param(c->t, NULL);
	if (rdma_accept(id, &param) < 0)
		verbs_conn_fail(c, false, "rdma_accept: %s", strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Event dispatch (loop thread)                                         */

static void fail_all(struct verbs_transport *t, const char *why)
{
	for (int i = 0; i < verbs_cfg(t)->n_nodes; i++)
		if (i != t->base.self)
			verbs_peer_down(t, &t->peers[i], RPC_PEER_FAILED, "%s", why);
}

static void drain_receives(struct verbs_transport *t);

static void on_conn_cm_event(struct verbs_conn *c, enum rdma_cm_event_type type, int status)
{
	int r;

	switch (type) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (rdma_resolve_route(c->id, VERBS_RESOLVE_TIMEOUT_MS) < 0)
			verbs_conn_fail(c, false, "rdma_resolve_route: %s", strerror(errno));
		return;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		on_route_resolved(c);
		return;
	case RDMA_CM_EVENT_ESTABLISHED:
		verbs_conn_established(c);
		return;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_REJECTED:
		r = status < 0 ? -status : status;
		verbs_conn_fail(c, false, "%s (status %d)", rdma_event_str(type), r);
		return;
	case RDMA_CM_EVENT_DISCONNECTED:
		/* The CM event channel and the completion channel are separate
		 * file descriptors: what the peer sent before it disconnected
		 * (its AuthProof, a Goodbye) may still wait in the receive
		 * queue. Handle it first, so the peer's last word, not the
		 * disconnect, says why the connection ended. */
		drain_receives(c->t);
		if (c->closing)
			return;
		if (c->phase == VERBS_CONN_UP)
			verbs_conn_fail(c, true, "connection closed without Goodbye");
		else
			verbs_conn_fail(c, false, "disconnected during the handshake");
		return;
	default:
		return; /* TIMEWAIT_EXIT, ADDR_CHANGE, ...: nothing to do */
	}
}

static void on_cm_events(uv_poll_t *h, int status, int events)
{
	struct verbs_transport *t = h->data;
	struct rdma_cm_event *ev;
	(void)events;

	if (status < 0) {
		disco_log(DISCO_LOG_ERROR, "rdma cm event channel: %s", uv_strerror(status));
		return;
	}
	while (!t->stopping && rdma_get_cm_event(t->ec, &ev) == 0) {
		/* Copy, then ack at once: destroying an id waits for the acks
		 * of its events, and handling may destroy it. */
		enum rdma_cm_event_type type = ev->event;
		int ev_status = ev->status;
		struct rdma_cm_id *id = ev->id;
		uint8_t pdata[64];
		size_t plen = 0;
		if (type == RDMA_CM_EVENT_CONNECT_REQUEST && ev->param.conn.private_data) {
			plen = ev->param.conn.private_data_len < sizeof(pdata)
				       ? ev->param.conn.private_data_len : sizeof(pdata);
			memcpy(pdata, ev->param.conn.private_data, plen);
		}
		rdma_ack_cm_event(ev);
		if (type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
			fail_all(t, "rdma device removed");
			continue;
		}
		if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
			on_connect_request(t, id, pdata, plen);
			continue;
		}
		if (id == t->listen_id || !id->context)
			continue;
		on_conn_cm_event(id->context, type, ev_status);
	}
	verbs_free_dead(t);
}

/* Handle every receive completion there is. Closed connections stay on
 * t->dead: the caller frees them once it no longer holds one. */
static void drain_receives(struct verbs_transport *t)
{
	struct ibv_wc wc[32];
	int n = 0;
	bool touched[CLUSTER_MAX_NODES] = { false };
	uint32_t reposted[CLUSTER_MAX_NODES] = { 0 };

	while (!t->stopping && (n = ibv_poll_cq(t->recv_cq, 32, wc)) > 0) {
		for (int i = 0; i < n && !t->stopping; i++) {
			struct verbs_conn *c = verbs_conn_by_serial(t, (uint32_t)(wc[i].wr_id >> 32));
			if (!c)
				continue; /* a connection closed since: its flushed receives */
			if (wc[i].status != IBV_WC_SUCCESS) {
				verbs_conn_fail(c, false, "receive completion: %s",
					       ibv_wc_status_str(wc[i].status));
				continue;
			}
			touched[c->peer] = true;
			reposted[c->peer] += (uint32_t)verbs_conn_on_recv(c, &wc[i]);
		}
	}
	if (n < 0)
		fail_all(t, "polling the receive completion queue failed");
	for (int i = 0; i < verbs_cfg(t)->n_nodes && !t->stopping; i++)
		if (touched[i])
			verbs_peer_after_recv(t, &t->peers[i], reposted[i]);
}

static void on_cq_events(uv_poll_t *h, int status, int events)
{
	struct verbs_transport *t = h->data;
	struct ibv_cq *cq;
	void *ctx;
	unsigned nev = 0;
	(void)events;

	if (status < 0) {
		disco_log(DISCO_LOG_ERROR, "rdma completion channel: %s", uv_strerror(status));
		return;
	}
	while (ibv_get_cq_event(t->channel, &cq, &ctx) == 0)
		nev++;
	if (nev)
		ibv_ack_cq_events(t->recv_cq, nev);
	/* Re-arm before draining, so a completion that lands after the last
	 * poll still raises an event. */
	ibv_req_notify_cq(t->recv_cq, 0);
	drain_receives(t);
	verbs_free_dead(t);
}

static void on_async_events(uv_poll_t *h, int status, int events)
{
	struct verbs_transport *t = h->data;
	struct ibv_async_event ev;
	(void)events;

	if (status < 0)
		return;
	while (!t->stopping && ibv_get_async_event(t->verbs, &ev) == 0) {
		enum ibv_event_type type = ev.event_type;
		struct ibv_qp *qp = ev.element.qp;
		ibv_ack_async_event(&ev);
		switch (type) {
		case IBV_EVENT_QP_FATAL:
		case IBV_EVENT_QP_REQ_ERR:
		case IBV_EVENT_QP_ACCESS_ERR:
		case IBV_EVENT_PATH_MIG_ERR: {
			struct verbs_conn *c = verbs_conn_by_qp(t, qp);
			if (c)
				verbs_conn_fail(c, false, "queue pair error: %s",
					       ibv_event_type_str(type));
			break;
		}
		case IBV_EVENT_CQ_ERR:
		case IBV_EVENT_DEVICE_FATAL:
		case IBV_EVENT_PORT_ERR: {
			char why[128];
			snprintf(why, sizeof(why), "rdma device %s: %s",
				 ibv_get_device_name(t->verbs->device), ibv_event_type_str(type));
			fail_all(t, why);
			break;
		}
		default:
			break;
		}
	}
	verbs_free_dead(t);
}

/* ------------------------------------------------------------------ */
/* Heartbeats, timeouts, flushing (loop thread)                        */

static void on_tick(uv_timer_t *h)
{
	struct verbs_transport *t = h->data;
	const struct cluster_config *cfg = verbs_cfg(t);
	uint64_t now = uv_now(t->base.loop);
	/* If this loop itself stalled, the silence we measured is ours. */
	bool stalled = now - t->last_tick_ms > cfg->heartbeat_ms + cfg->peer_timeout_ms / 2;

	if (stalled)
		disco_log(DISCO_LOG_WARN, "loop stalled for %" PRIu64 " ms; peer timeouts restart",
			  now - t->last_tick_ms);
	t->last_tick_ms = now;
	for (int i = 0; i < cfg->n_nodes && !t->stopping; i++) {
		struct verbs_peer *p = &t->peers[i];
		if (i == t->base.self || verbs_get_state(p) != RPC_PEER_UP)
			continue;
		if (stalled)
			p->last_rx_ms = now;
		if (now - p->last_rx_ms > cfg->peer_timeout_ms) {
			verbs_peer_down(t, p, RPC_PEER_FAILED, "no frame for %" PRIu64 " ms",
				       now - p->last_rx_ms);
			continue;
		}
		uint8_t buf[RPC_HEARTBEAT_MAX];
		size_t n = rpc_pack_heartbeat(uv_hrtime(), buf);
		verbs_peer_send(t, p, RPC_MSG_HEARTBEAT, buf, n, NULL, true);
		verbs_peer_flush(t, p); /* also reaps completions nobody else reaps */
	}
	for (struct verbs_conn *c = t->conns, *next; c && !t->stopping; c = next) {
		next = c->next;
		if (c->phase != VERBS_CONN_UP && now - c->opened_ms > cfg->peer_timeout_ms)
			verbs_conn_fail(c, false, "connection set-up not finished after %" PRIu64 " ms",
				       now - c->opened_ms);
	}
	verbs_free_dead(t);
}

static void on_flush_timer(uv_timer_t *h)
{
	struct verbs_transport *t = h->data;
	for (int i = 0; i < verbs_cfg(t)->n_nodes && !t->stopping; i++)
		if (i != t->base.self)
			verbs_peer_flush(t, &t->peers[i]);
}

void verbs_arm_flush_timer(struct verbs_transport *t)
{
	if (!t->stopping && !uv_is_active((uv_handle_t *)&t->flush_timer))
		uv_timer_start(&t->flush_timer, on_flush_timer, 1, 0);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */

static void do_stop(struct verbs_transport *t, bool goodbye);

static void on_async(uv_async_t *h)
{
	struct verbs_transport *t = h->data;

	if (__atomic_load_n(&t->stop_req, __ATOMIC_ACQUIRE)) {
		do_stop(t, true);
		return;
	}
	for (int i = 0; i < verbs_cfg(t)->n_nodes && !t->stopping; i++) {
		struct verbs_peer *p = &t->peers[i];
		struct verbs_conn *c = p->conn;
		if (i == t->base.self || !c)
			continue;
		pthread_mutex_lock(&p->send_mu);
		int err = p->send_err;
		const char *why = p->send_why;
		pthread_mutex_unlock(&p->send_mu);
		if (err)
			verbs_conn_fail(c, false, "send: %s", why ? why : strerror(-err));
		else
			verbs_peer_flush(t, p);
	}
	verbs_free_dead(t);
}

static const char *port_state_name(enum ibv_port_state s)
{
	return ibv_port_state_str(s);
}

/* Find the configured device and check its port and GID; one error line
 * naming the device otherwise. */
static int open_device(struct verbs_transport *t)
{
	const struct cluster_config *cfg = verbs_cfg(t);
	const struct cluster_node *n = &cfg->nodes[t->base.self];
	const char *want = n->rdma.device;
	char have[512] = "";
	size_t off = 0;
	int count = 0;

	t->devices = rdma_get_devices(&count);
	for (int i = 0; t->devices && i < count; i++) {
		const char *name = ibv_get_device_name(t->devices[i]->device);
		if (!strcmp(name, want))
			t->verbs = t->devices[i];
		if (off < sizeof(have))
			off += (size_t)snprintf(have + off, sizeof(have) - off, "%s%s",
						off ? ", " : "", name);
	}
	if (!t->verbs) {
		disco_log(DISCO_LOG_ERROR, "rdma device \"%s\" (nodes[%d].rdma.device of %s) not "
			  "found: %s%s", want, t->base.self, cfg->path[0] ? cfg->path : "the config",
			  count ? "this machine has " : "",
			  count ? have : "this machine has no RDMA device (is the driver loaded? "
			  "`ibv_devices` lists them)");
		return -ENODEV;
	}
	struct ibv_port_attr pa;
	if (ibv_query_port(t->verbs, (uint8_t)n->rdma.port, &pa) != 0) {
		disco_log(DISCO_LOG_ERROR, "rdma device %s has no port %d (nodes[%d].rdma.port)",
			  want, n->rdma.port, t->base.self);
		return -ENODEV;
	}
	if (pa.state != IBV_PORT_ACTIVE) {
		disco_log(DISCO_LOG_ERROR, "rdma device %s port %d is %s, not ACTIVE", want,
			  n->rdma.port, port_state_name(pa.state));
		return -ENETDOWN;
	}
	union ibv_gid gid, zero = { 0 };
	if (ibv_query_gid(t->verbs, (uint8_t)n->rdma.port, n->rdma.gid_index, &gid) != 0 ||
	    !memcmp(&gid, &zero, sizeof(gid))) {
		disco_log(DISCO_LOG_ERROR, "rdma device %s port %d has no GID at index %d "
			  "(nodes[%d].rdma.gid_index; `ibv_devinfo -v` lists them)", want,
			  n->rdma.port, n->rdma.gid_index, t->base.self);
		return -EADDRNOTAVAIL;
	}
	struct ibv_device_attr da;
	t->rd_atomic = 1;
	if (ibv_query_device(t->verbs, &da) == 0) {
		int depth = da.max_qp_rd_atom < da.max_qp_init_rd_atom ? da.max_qp_rd_atom
								      : da.max_qp_init_rd_atom;
		t->rd_atomic = (uint8_t)(depth < 1 ? 1 : depth > (int)VERBS_READ_DEPTH ? (int)VERBS_READ_DEPTH : depth);
	}
	t->pd = ibv_alloc_pd(t->verbs);
	t->channel = ibv_create_comp_channel(t->verbs);
	/* Room for every posted receive twice over: a connection that is
	 * closed flushes its receives into the queue while its successor's
	 * complete. An overflow would be a device error. */
	int cqe = 2 * (cfg->n_nodes - 1) * (int)VERBS_RECVS + 64;
	t->recv_cq = t->channel ? ibv_create_cq(t->verbs, cqe, NULL, t->channel, 0) : NULL;
	if (!t->pd || !t->recv_cq) {
		disco_log(DISCO_LOG_ERROR, "rdma device %s: cannot allocate a protection domain "
			  "or completion queue: %s", want, strerror(errno));
		return -ENOMEM;
	}
	if (ibv_req_notify_cq(t->recv_cq, 0) != 0 || set_nonblocking(t->channel->fd) < 0 ||
	    set_nonblocking(t->verbs->async_fd) < 0)
		return -EIO;
	return 0;
}

static int open_listener(struct verbs_transport *t)
{
	const struct cluster_config *cfg = verbs_cfg(t);
	const struct cluster_node *n = &cfg->nodes[t->base.self];
	struct sockaddr_storage sa;
	int r;

	t->ec = rdma_create_event_channel();
	if (!t->ec || set_nonblocking(t->ec->fd) < 0) {
		disco_log(DISCO_LOG_ERROR, "cannot open the rdma cm event channel: %s",
			  strerror(errno));
		return -EIO;
	}
	if ((r = resolve(n->address, n->port, AI_PASSIVE, &sa)) != 0) {
		disco_log(DISCO_LOG_ERROR, "cannot resolve our address %s: %s", n->address,
			  gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	if (rdma_create_id(t->ec, &t->listen_id, NULL, RDMA_PS_TCP) < 0 ||
	    rdma_bind_addr(t->listen_id, (struct sockaddr *)&sa) < 0) {
		r = -errno;
		disco_log(DISCO_LOG_ERROR, "cannot bind rdma to %s:%d: %s", n->address, n->port,
			  strerror(-r));
		return r;
	}
	if (!t->listen_id->verbs || t->listen_id->verbs != t->verbs) {
		disco_log(DISCO_LOG_ERROR, "address %s is not on rdma device %s%s%s", n->address,
			  n->rdma.device, t->listen_id->verbs ? " but on " : "",
			  t->listen_id->verbs ? ibv_get_device_name(t->listen_id->verbs->device)
					      : "");
		return -EADDRNOTAVAIL;
	}
	if (rdma_listen(t->listen_id, 2 * CLUSTER_MAX_NODES) < 0) {
		r = -errno;
		disco_log(DISCO_LOG_ERROR, "rdma_listen on %s:%d: %s", n->address, n->port,
			  strerror(-r));
		return r;
	}
	return 0;
}

static int verbs_start(struct rpc_transport *bt)
{
	struct verbs_transport *t = verbs_of(bt);
	const struct cluster_config *cfg = verbs_cfg(t);
	uv_loop_t *loop = t->base.loop;
	int r;

	if (t->started)
		return -EALREADY;
	disco_log_set_thread_node(cfg->nodes[t->base.self].name);
	if ((r = open_device(t)) < 0 || (r = open_listener(t)) < 0)
		return r;
	t->loop_tid = uv_thread_self();
	uv_poll_init(loop, &t->cm_poll, t->ec->fd);
	uv_poll_init(loop, &t->cq_poll, t->channel->fd);
	uv_poll_init(loop, &t->async_poll, t->verbs->async_fd);
	t->cm_poll.data = t->cq_poll.data = t->async_poll.data = t;
	uv_poll_start(&t->cm_poll, UV_READABLE, on_cm_events);
	uv_poll_start(&t->cq_poll, UV_READABLE, on_cq_events);
	uv_poll_start(&t->async_poll, UV_READABLE, on_async_events);
	uv_async_init(loop, &t->async, on_async);
	t->async.data = t;
	uv_timer_init(loop, &t->hb_timer);
	uv_timer_init(loop, &t->flush_timer);
	t->hb_timer.data = t->flush_timer.data = t;
	uv_timer_start(&t->hb_timer, on_tick, cfg->heartbeat_ms, cfg->heartbeat_ms);
	t->last_tick_ms = uv_now(loop);
	for (int i = 0; i < cfg->n_nodes; i++) {
		if (i == t->base.self)
			continue;
		uv_timer_init(loop, &t->peers[i].dial_timer);
		t->peers[i].dial_timer.data = t;
	}
	t->started = true;
	disco_log(DISCO_LOG_INFO, "listening on rdma %s port %d at %s:%d, %d peers",
		  cfg->nodes[t->base.self].rdma.device, cfg->nodes[t->base.self].rdma.port,
		  cfg->nodes[t->base.self].address, cfg->nodes[t->base.self].port,
		  cfg->n_nodes - 1);
	for (int i = 0; i < t->base.self; i++)
		dial(t, &t->peers[i]);
	return 0;
}

static void do_stop(struct verbs_transport *t, bool goodbye)
{
	const struct cluster_config *cfg = verbs_cfg(t);

	if (!t->started || t->stopping)
		return;
	for (int i = 0; goodbye && i < cfg->n_nodes; i++) {
		struct verbs_peer *p = &t->peers[i];
		if (i == t->base.self || verbs_get_state(p) != RPC_PEER_UP)
			continue;
		uint8_t buf[RPC_GOODBYE_MAX];
		size_t n = rpc_pack_goodbye(buf);
		verbs_peer_flush(t, p);
		verbs_peer_send(t, p, RPC_MSG_GOODBYE, buf, n, NULL, true);
		verbs_peer_drain_sends(p, 200);
	}
	t->stopping = true;
	for (int i = 0; i < cfg->n_nodes; i++) {
		struct verbs_peer *p = &t->peers[i];
		if (i == t->base.self)
			continue;
		if (!verbs_state_final(verbs_get_state(p)))
			verbs_set_state(p, RPC_PEER_LEFT);
		uv_close((uv_handle_t *)&p->dial_timer, NULL);
	}
	while (t->conns)
		verbs_conn_close(t->conns);
	if (t->listen_id) {
		rdma_destroy_id(t->listen_id);
		t->listen_id = NULL;
	}
	uv_close((uv_handle_t *)&t->cm_poll, NULL);
	uv_close((uv_handle_t *)&t->cq_poll, NULL);
	uv_close((uv_handle_t *)&t->async_poll, NULL);
	uv_close((uv_handle_t *)&t->hb_timer, NULL);
	uv_close((uv_handle_t *)&t->flush_timer, NULL);
	uv_close((uv_handle_t *)&t->async, NULL);
	disco_log(DISCO_LOG_DEBUG, "rdma transport stopped");
}

static void verbs_stop(struct rpc_transport *bt)
{
	struct verbs_transport *t = verbs_of(bt);

	if (!t->started)
		return;
	if (verbs_on_loop_thread(t)) {
		do_stop(t, true);
		return;
	}
	int expected = 0;
	if (__atomic_compare_exchange_n(&t->stop_req, &expected, 1, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		uv_async_send(&t->async);
}

void rpc_rdma_transport_abort(struct rpc_transport *bt)
{
	do_stop(verbs_of(bt), false);
}

static int verbs_send(struct rpc_transport *bt, int peer, uint16_t type, const void *body,
		     size_t body_len, const void *page)
{
	struct verbs_transport *t = verbs_of(bt);
	int r = rpc_transport_check_send(bt, peer, type, body, body_len, RPC_RDMA_MAX_BODY);

	if (r < 0)
		return r;
	return verbs_peer_send(t, &t->peers[peer], type, body, body_len, page, false);
}

static void verbs_fail_peer(struct rpc_transport *bt, int peer, const char *why)
{
	struct verbs_transport *t = verbs_of(bt);

	if (peer < 0 || peer >= verbs_cfg(t)->n_nodes || peer == t->base.self || t->stopping)
		return;
	verbs_peer_down(t, &t->peers[peer], RPC_PEER_FAILED, "%s", why ? why : "failed by owner");
}

static enum rpc_peer_state verbs_peer_state(struct rpc_transport *bt, int peer)
{
	struct verbs_transport *t = verbs_of(bt);
	if (peer < 0 || peer >= verbs_cfg(t)->n_nodes)
		return RPC_PEER_FAILED;
	if (peer == t->base.self)
		return RPC_PEER_UP;
	return verbs_get_state(&t->peers[peer]);
}

static void verbs_destroy(struct rpc_transport *bt)
{
	struct verbs_transport *t = verbs_of(bt);

	if (!t)
		return;
	while (t->conns)
		verbs_conn_close(t->conns);
	verbs_free_dead(t);
	if (t->listen_id)
		rdma_destroy_id(t->listen_id);
	if (t->recv_cq)
		ibv_destroy_cq(t->recv_cq);
	if (t->channel)
		ibv_destroy_comp_channel(t->channel);
	verbs_release_memory(t);
	pthread_mutex_destroy(&t->mr_mu);
	if (t->pd)
		ibv_dealloc_pd(t->pd);
	if (t->ec)
		rdma_destroy_event_channel(t->ec);
	if (t->devices)
		rdma_free_devices(t->devices);
	for (int i = 0; i < verbs_cfg(t)->n_nodes; i++)
		pthread_mutex_destroy(&t->peers[i].send_mu);
	free(t->peers);
	free(t);
}

static const struct rpc_transport_ops verbs_ops = {
	.name = "rdma",
	.start = verbs_start,
	.send = verbs_send,
	.peer_state = verbs_peer_state,
	.fail_peer = verbs_fail_peer,
	.stop = verbs_stop,
	.destroy = verbs_destroy,
	.register_memory = verbs_register_memory,
	.read = verbs_read,
	.read_wait = verbs_read_wait,
};

int rpc_rdma_transport_create(uv_loop_t *loop, const struct cluster_config *cfg, int self,
			      const struct rpc_callbacks *cb, void *opaque,
			      struct rpc_transport **out)
{
	struct verbs_transport *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	if (!out || rpc_transport_base_init(&t->base, &verbs_ops, loop, cfg, self, cb, opaque) < 0) {
		free(t);
		return -EINVAL;
	}
	t->peers = calloc((size_t)cfg->n_nodes, sizeof(*t->peers));
	if (!t->peers) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->mr_mu, NULL);
	for (int i = 0; i < cfg->n_nodes; i++) {
		struct verbs_peer *p = &t->peers[i];
		p->index = i;
		rpc_auth_describe_node(cfg, i, p->desc, sizeof(p->desc));
		p->state = RPC_PEER_CONNECTING;
		p->backoff_ms = VERBS_BACKOFF_MIN_MS;
		pthread_mutex_init(&p->send_mu, NULL);
	}
	*out = &t->base;
	return 0;
}
