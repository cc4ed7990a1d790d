/*
 * RDMA transport: the peer state machine (rpc/peer.c) over the verbs link
 * back end, on rdma-core. Connections are set up with the RDMA CM
 * (librdmacm); frames travel as two-sided SEND/RECV on RC queue pairs with
 * pre-posted receive buffers and credit-based flow control (verbs_link.c);
 * membership (Hello and AuthProof before anything else, heartbeats,
 * Goodbye) is the peer machine's, the same as over TCP. This file holds
 * what is the verbs back end's own about a transport: the device checks,
 * the RDMA CM events (dialling, accepting), the completion and async-event
 * dispatch, the flush timer, the link ops table and create(); verbs_link.c
 * holds one connection, verbs_read.c one-sided reads, verbs_internal.h the
 * structs. docs/transport.md describes the protocol. Our names start with
 * verbs_ (rdma_* is librdmacm's).
 *
 * Thread model
 * ------------
 * As for TCP (rpc/peer.h): the owner creates the loop and its thread,
 * calls start() on that thread and runs uv_run() there. The loop thread
 * owns the RDMA CM event channel, the listening id, every link (id, queue
 * pair, buffers), the receive completion queue and its channel, the
 * device's async events and the flush timer, besides what the peer machine
 * owns; every callback of struct rpc_callbacks runs on it. It is woken
 * through three file descriptors watched with uv_poll: the CM event
 * channel, the receive CQ's completion channel, and the device's
 * async-event fd (and through the peer machine's async).
 *
 * Any thread may call send() and peer_state(). send() reaches
 * verbs_link_write() under the peer's send_mu: it reaps the link's send
 * completions and posts the frame at once (ibv_post_send: no system call,
 * no hop to the loop thread), so a faulting thread's request costs what it
 * costs over TCP minus the socket call. A frame without a credit waits in
 * the link's pending list and the loop thread posts it when credits come
 * back; a sender wakes the loop through the async only for that, or when a
 * post failed. send_mu is a leaf lock; no callback runs under it. The loop
 * thread withdraws a link from its peer under send_mu before it destroys
 * the queue pair.
 *
 * Receive completions wake only the loop thread, which hands every frame
 * to the peer machine where it lies in its registered buffer (no copy),
 * reposts the buffer and hands the credit back. The fault path therefore
 * has the same thread hops as over TCP: the faulting thread blocks in the
 * kernel, the loop thread posts the request, the peer's loop thread
 * answers, ours installs the page and wakes the faulting thread.
 *
 * Connections
 * -----------
 * The dialler resolves the peer's address from its own (rdma_resolve_addr,
 * rdma_resolve_route) and connects with its node index in the private
 * data (struct verbs_connect_data). A connect request only claims the
 * node it names: it is rejected when that node should not dial us or is
 * up already (rpc_peers_acceptable()), or arrives on another device, and
 * otherwise becomes an anonymous connection like an accepted TCP socket
 * (rpc/peer.h), attached to its peer only once the peer proved the key.
 * Its source address is the CM's (rdma_get_peer_addr()). ESTABLISHED
 * hands the link to the peer machine (rpc_conn_linked()). Before a peer
 * was UP, anything that goes wrong (a rejected or unreachable connect, a
 * CM error, a bad frame or proof) closes that connection only and the
 * dialler retries. Once UP, DISCONNECTED
 * without Goodbye, a completion with an error status, flushed work
 * requests and a queue-pair async error fail the peer. A device error or
 * removal fails every peer.
 */
#include "verbs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"

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

/* ------------------------------------------------------------------ */
/* Dialling (loop thread)                                               */

/* rpc_link_ops.dial: resolve the address; the CM events do the rest. */
static int verbs_dial(struct rpc_peers *bt, struct rpc_peer *p)
{
	struct verbs_transport *t = verbs_of(bt);
	const struct cluster_config *cfg = rpc_peers_cfg(bt);
	const struct cluster_node *self = &cfg->nodes[bt->base.self], *n = &cfg->nodes[p->index];
	struct sockaddr_storage src, dst;
	struct rdma_cm_id *id;
	int r;

	/* Blocking for a host name; addresses are numeric in practice. */
	if ((r = resolve(n->address, n->port, 0, &dst)) != 0 ||
	    (r = resolve(self->address, 0, 0, &src)) != 0) {
		disco_log(DISCO_LOG_WARN, "%s: cannot resolve: %s", p->desc, gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	if (rdma_create_id(t->ec, &id, NULL, RDMA_PS_TCP) < 0) {
		r = -errno;
		disco_log(DISCO_LOG_ERROR, "%s: rdma_create_id: %s", p->desc, strerror(-r));
		return r;
	}
	struct verbs_link *l = verbs_link_new(t, id, p->index, true, (struct sockaddr *)&dst);
	if (!l) {
		rdma_destroy_id(id);
		return -ENOMEM;
	}
	rpc_conn_attach(&l->conn, p);
	if (rdma_resolve_addr(id, (struct sockaddr *)&src, (struct sockaddr *)&dst,
			      VERBS_RESOLVE_TIMEOUT_MS) < 0)
		rpc_conn_fail(&l->conn, false, "rdma_resolve_addr: %s", strerror(errno));
	return 0;
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

static void on_route_resolved(struct verbs_link *l)
{
	struct verbs_transport *t = verbs_of(l->conn.t);
	struct verbs_connect_data cd = {
		.magic = htole32(VERBS_CONNECT_MAGIC),
		.version = VERBS_CONNECT_VERSION,
		.node = htole16((uint16_t)t->peers.base.self),
	};
	int r = verbs_link_setup_qp(l);

	if (r < 0) {
		/* Not a passing fault (wrong device, no memory to pin): no retry. */
		rpc_conn_fail(&l->conn, true, "setting up the queue pair: %s", strerror(-r));
		return;
	}
	struct rdma_conn_param param = conn_param(t, &cd);
	if (rdma_connect(l->id, &param) < 0)
		rpc_conn_fail(&l->conn, false, "rdma_connect: %s", strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Accepting (loop thread)                                              */

/* Reject a connect request before it became a connection: one line,
 * rate-limited (anyone can send connect requests), naming its source. */
static void reject(struct verbs_transport *t, struct rdma_cm_id *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reject(struct verbs_transport *t, struct rdma_cm_id *id, const char *fmt, ...)
{
	char msg[512], from[RPC_REMOTE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rpc_format_addr(rdma_get_peer_addr(id), from, sizeof(from));
	disco_log_limited(&t->peers.anon_log, DISCO_LOG_WARN,
			  "rejecting an rdma connection from %s: %s", from, msg);
	rdma_reject(id, NULL, 0);
	rdma_destroy_id(id);
}

static void on_connect_request(struct verbs_transport *t, struct rdma_cm_id *id,
			       const void *pdata, size_t plen)
{
	struct verbs_connect_data cd;
	char why[RPC_WHY_MAX];

	if (t->peers.stopping) {
		reject(t, id, "node stopping");
		return;
	}
	if (plen < sizeof(cd)) {
		reject(t, id, "not a disco node (%zu bytes of private data)", plen);
		return;
	}
	memcpy(&cd, pdata, sizeof(cd));
	if (le32toh(cd.magic) != VERBS_CONNECT_MAGIC || cd.version != VERBS_CONNECT_VERSION) {
		reject(t, id, "not a disco node, or another version (%u)", cd.version);
		return;
	}
	/* The private data only claims a node: the connection stays anonymous
	 * until its proof (rpc/peer.h), and others may claim the same node. */
	struct rpc_peer *p = rpc_peers_acceptable(&t->peers, le16toh(cd.node), why, sizeof(why));
	if (!p) {
		reject(t, id, "%s", why);
		return;
	}
	if (id->verbs != t->verbs) {
		reject(t, id, "claims to be node %s: arrived on rdma device %s, not %s",
		       rpc_peers_cfg(&t->peers)->nodes[p->index].name,
		       ibv_get_device_name(id->verbs->device),
		       ibv_get_device_name(t->verbs->device));
		return;
	}
	struct verbs_link *l = verbs_link_new(t, id, p->index, false, rdma_get_peer_addr(id));
	if (!l) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	int r = verbs_link_setup_qp(l);
	if (r < 0) {
		rdma_reject(id, NULL, 0);
		rpc_conn_fail(&l->conn, false, "setting up the queue pair: %s", strerror(-r));
		return;
	}
	struct rdma_conn_param param = conn_param(t, NULL);
	if (rdma_accept(id, &param) < 0)
		rpc_conn_fail(&l->conn, false, "rdma_accept: %s", strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Event dispatch (loop thread)                                         */

static void drain_receives(struct verbs_transport *t);

static void on_link_cm_event(struct verbs_link *l, enum rdma_cm_event_type type, int status)
{
	int r;

	switch (type) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (rdma_resolve_route(l->id, VERBS_RESOLVE_TIMEOUT_MS) < 0)
			rpc_conn_fail(&l->conn, false, "rdma_resolve_route: %s", strerror(errno));
		return;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		on_route_resolved(l);
		return;
	case RDMA_CM_EVENT_ESTABLISHED:
		verbs_link_established(l);
		return;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_REJECTED:
		r = status < 0 ? -status : status;
		rpc_conn_fail(&l->conn, false, "%s (status %d)", rdma_event_str(type), r);
		return;
	case RDMA_CM_EVENT_DISCONNECTED:
		/* The CM event channel and the completion channel are separate
		 * file descriptors: what the peer sent before it disconnected
		 * (its AuthProof, a Goodbye) may still wait in the receive
		 * queue. Handle it first, so the peer's last word, not the
		 * disconnect, says why the connection ended. */
		drain_receives(verbs_of(l->conn.t));
		rpc_conn_closed_by_peer(&l->conn);
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
	while (!t->peers.stopping && rdma_get_cm_event(t->ec, &ev) == 0) {
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
			rpc_peers_fail_all(&t->peers, "rdma device removed");
			continue;
		}
		if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
			on_connect_request(t, id, pdata, plen);
			continue;
		}
		if (id == t->listen_id || !id->context)
			continue;
		on_link_cm_event(id->context, type, ev_status);
	}
	verbs_free_dead(t);
}

/* Hand every receive completion there is to its link. Closed links stay
 * on t->dead: the caller frees them once it no longer holds one. */
static void drain_receives(struct verbs_transport *t)
{
	struct ibv_wc wc[32];
	struct verbs_link *batch = NULL; /* links that received in this batch */
	int n = 0;

	while (!t->peers.stopping && (n = ibv_poll_cq(t->recv_cq, 32, wc)) > 0) {
		for (int i = 0; i < n && !t->peers.stopping; i++) {
			struct verbs_link *l = verbs_link_by_serial(t, (uint32_t)(wc[i].wr_id >> 32));
			if (!l)
				continue; /* a connection closed since: its flushed receives */
			if (wc[i].status != IBV_WC_SUCCESS) {
				rpc_conn_fail(&l->conn, false, "receive completion: %s",
					      ibv_wc_status_str(wc[i].status));
				continue;
			}
			if (!l->in_batch) {
				l->in_batch = true;
				l->batch_reposted = 0;
				l->batch_next = batch;
				batch = l;
			}
			l->batch_reposted += (uint32_t)verbs_link_on_recv(l, &wc[i]);
		}
	}
	if (n < 0)
		rpc_peers_fail_all(&t->peers, "polling the receive completion queue failed");
	/* A link closed meanwhile is on t->dead, not freed yet: the caller
	 * frees the dead after this returns. */
	for (struct verbs_link *l = batch, *next; l; l = next) {
		next = l->batch_next;
		l->in_batch = false;
		if (!t->peers.stopping)
			verbs_link_after_recv(l, l->batch_reposted);
	}
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
	while (!t->peers.stopping && ibv_get_async_event(t->verbs, &ev) == 0) {
		enum ibv_event_type type = ev.event_type;
		struct ibv_qp *qp = ev.element.qp;
		ibv_ack_async_event(&ev);
		switch (type) {
		case IBV_EVENT_QP_FATAL:
		case IBV_EVENT_QP_REQ_ERR:
		case IBV_EVENT_QP_ACCESS_ERR:
		case IBV_EVENT_PATH_MIG_ERR: {
			struct verbs_link *l = verbs_link_by_qp(t, qp);
			if (l)
				rpc_conn_fail(&l->conn, false, "queue pair error: %s",
					      ibv_event_type_str(type));
			break;
		}
		case IBV_EVENT_CQ_ERR:
		case IBV_EVENT_DEVICE_FATAL:
		case IBV_EVENT_PORT_ERR: {
			char why[128];
			snprintf(why, sizeof(why), "rdma device %s: %s",
				 ibv_get_device_name(t->verbs->device), ibv_event_type_str(type));
			rpc_peers_fail_all(&t->peers, why);
			break;
		}
		default:
			break;
		}
	}
	verbs_free_dead(t);
}

static void on_flush_timer(uv_timer_t *h)
{
	struct verbs_transport *t = h->data;
	for (int i = 0; i < rpc_peers_cfg(&t->peers)->n_nodes && !t->peers.stopping; i++)
		if (i != t->peers.base.self)
			verbs_peer_flush(&t->peers.peers[i]);
}

void verbs_arm_flush_timer(struct verbs_transport *t)
{
	if (!t->peers.stopping && !uv_is_active((uv_handle_t *)&t->flush_timer))
		uv_timer_start(&t->flush_timer, on_flush_timer, 1, 0);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */

/* Find the configured device and check its port and GID; one error line
 * naming the device otherwise. */
static int open_device(struct verbs_transport *t)
{
	const struct cluster_config *cfg = rpc_peers_cfg(&t->peers);
	const struct cluster_node *n = &cfg->nodes[t->peers.base.self];
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
			  "found: %s%s", want, t->peers.base.self, cfg->path[0] ? cfg->path : "the config",
			  count ? "this machine has " : "",
			  count ? have : "this machine has no RDMA device (is the driver loaded? "
			  "`ibv_devices` lists them)");
		return -ENODEV;
	}
	struct ibv_port_attr pa;
	if (ibv_query_port(t->verbs, (uint8_t)n->rdma.port, &pa) != 0) {
		disco_log(DISCO_LOG_ERROR, "rdma device %s has no port %d (nodes[%d].rdma.port)",
			  want, n->rdma.port, t->peers.base.self);
		return -ENODEV;
	}
	if (pa.state != IBV_PORT_ACTIVE) {
		disco_log(DISCO_LOG_ERROR, "rdma device %s port %d is %s, not ACTIVE", want,
			  n->rdma.port, ibv_port_state_str(pa.state));
		return -ENETDOWN;
	}
	union ibv_gid gid, zero = { 0 };
	if (ibv_query_gid(t->verbs, (uint8_t)n->rdma.port, n->rdma.gid_index, &gid) != 0 ||
	    !memcmp(&gid, &zero, sizeof(gid))) {
		disco_log(DISCO_LOG_ERROR, "rdma device %s port %d has no GID at index %d "
			  "(nodes[%d].rdma.gid_index; `ibv_devinfo -v` lists them)", want,
			  n->rdma.port, n->rdma.gid_index, t->peers.base.self);
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
	const struct cluster_config *cfg = rpc_peers_cfg(&t->peers);
	const struct cluster_node *n = &cfg->nodes[t->peers.base.self];
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


/* rpc_link_ops.open: the device, the listening id, then the handles. */
static int verbs_open(struct rpc_peers *bt)
{
	struct verbs_transport *t = verbs_of(bt);
	const struct cluster_node *n = &rpc_peers_cfg(bt)->nodes[bt->base.self];
	uv_loop_t *loop = bt->base.loop;
	int r;

	if ((r = open_device(t)) < 0 || (r = open_listener(t)) < 0)
		return r;
	uv_poll_init(loop, &t->cm_poll, t->ec->fd);
	uv_poll_init(loop, &t->cq_poll, t->channel->fd);
	uv_poll_init(loop, &t->async_poll, t->verbs->async_fd);
	t->cm_poll.data = t->cq_poll.data = t->async_poll.data = t;
	uv_poll_start(&t->cm_poll, UV_READABLE, on_cm_events);
	uv_poll_start(&t->cq_poll, UV_READABLE, on_cq_events);
	uv_poll_start(&t->async_poll, UV_READABLE, on_async_events);
	uv_timer_init(loop, &t->flush_timer);
	t->flush_timer.data = t;
	disco_log(DISCO_LOG_INFO, "listening on rdma %s port %d at %s:%d, %d peers",
		  n->rdma.device, n->rdma.port, n->address, n->port,
		  rpc_peers_cfg(bt)->n_nodes - 1);
	return 0;
}

static void verbs_close_handles(struct rpc_peers *bt)
{
	struct verbs_transport *t = verbs_of(bt);

	if (t->listen_id) {
		rdma_destroy_id(t->listen_id);
		t->listen_id = NULL;
	}
	uv_close((uv_handle_t *)&t->cm_poll, NULL);
	uv_close((uv_handle_t *)&t->cq_poll, NULL);
	uv_close((uv_handle_t *)&t->async_poll, NULL);
	uv_close((uv_handle_t *)&t->flush_timer, NULL);
}

static void verbs_after_event(struct rpc_peers *bt)
{
	verbs_free_dead(verbs_of(bt));
}

void rpc_rdma_transport_abort(struct rpc_transport *bt)
{
	rpc_peers_stop_now(rpc_peers_of(bt), false);
}

static void verbs_destroy(struct rpc_peers *bt)
{
	struct verbs_transport *t = verbs_of(bt);

	while (bt->conns)
		rpc_conn_close(bt->conns);
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
}

static void verbs_init(struct rpc_peers *bt)
{
	pthread_mutex_init(&verbs_of(bt)->mr_mu, NULL);
}

static const struct rpc_transport_ops verbs_ops = {
	.name = "rdma",
	RPC_PEERS_TRANSPORT_OPS,
	.register_memory = verbs_register_memory,
	.read = verbs_read,
	.read_wait = verbs_read_wait,
};

static const struct rpc_link_ops verbs_link_ops = {
	.transport = &verbs_ops,
	.size = sizeof(struct verbs_transport),
	.max_body = RPC_RDMA_MAX_BODY,
	.max_anon = VERBS_MAX_ANON,
	.max_anon_per_source = VERBS_MAX_ANON_PER_SOURCE,
	.init = verbs_init,
	.open = verbs_open,
	.dial = verbs_dial,
	.write = verbs_link_write,
	.wake = verbs_link_wake,
	.tick = verbs_link_tick,
	.farewell = verbs_link_farewell,
	.settle = verbs_link_settle,
	.close = verbs_link_close,
	.close_handles = verbs_close_handles,
	.after_event = verbs_after_event,
	.destroy = verbs_destroy,
};

int rpc_rdma_transport_create(uv_loop_t *loop, const struct cluster_config *cfg, int self,
			      const struct rpc_callbacks *cb, void *opaque,
			      struct rpc_transport **out)
{
	return rpc_peers_create(&verbs_link_ops, loop, cfg, self, cb, opaque, out);
}
