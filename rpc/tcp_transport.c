/*
 * TCP transport: the implementation of transport.h on plain non-blocking
 * sockets watched by libuv (uv_poll_t, not uv_tcp_t streams), so that any
 * thread can write a frame with one sendmsg() and no hop to the loop thread.
 * docs/transport.md describes the protocol; this comment the code. This
 * file holds the lifecycle, dialling, accepting and the timers; tcp_peer.c
 * one connection (handshake, receive path, send path); tcp_internal.h the
 * structs, with which thread may touch each field.
 *
 * Thread model
 * ------------
 * The owner creates the loop and the thread that runs it, calls start() on
 * that thread (it records the thread id) and runs uv_run() there. That loop
 * thread owns everything but the send state: the listen socket, every
 * connection (struct tcp_conn: its poll handle, receive buffer, auth state),
 * the timers, the async handle and each peer's membership state. Every
 * callback of struct rpc_callbacks runs on it.
 *
 * Any thread may call send() and peer_state(). send() touches only the
 * peer's send state (struct tcp_peer, "guarded by send_mu" below): it takes
 * send_mu, writes at once when nothing is queued, and queues what the socket
 * did not take. If the loop thread must react (arm UV_WRITABLE to flush the
 * queue, or fail the peer after a socket error), the sender wakes it with
 * uv_async_send() while still holding send_mu; on the loop thread itself it
 * arms the poll directly. stop() may also be called from any thread (it is
 * forwarded through the same async); rpc_tcp_transport_abort() and
 * destroy() may not.
 *
 * send_mu is a leaf lock: nothing else is locked while it is held and no
 * callback runs under it. The loop thread changes send_fd only under it, so
 * a sender never writes to a socket that is being closed: conn_close() sets
 * send_fd = -1 under the lock before the descriptor is closed.
 *
 * Connections
 * -----------
 * Node i dials every node j < i and accepts from every j > i, so each pair
 * has one connection and no tie-break is needed. A dialled connection
 * belongs to its peer from the start; an accepted one is anonymous until its
 * Hello names a node that should dial us and has no connection yet. The
 * dialler sends Hello as soon as the TCP connection is up; the acceptor
 * answers with its Hello and its AuthProof once the dialler's Hello checks
 * out, so an unknown client learns nothing (not even a nonce) before naming
 * a member. Each side is UP when it has verified the other's proof.
 *
 * Failures. Before a peer was UP, a refused or dropped connection, or a
 * handshake that stalls longer than peer_timeout_ms, only closes that
 * connection: the dialler retries (50 ms doubling to 1 s) and the acceptor
 * waits for the next dial; the owner decides when to stop waiting. A
 * failed authentication or a protocol fault on a connection that names a
 * peer marks the peer FAILED; the same on an anonymous connection only
 * closes it. Once UP, any fault (EOF without Goodbye, reset, bad frame,
 * silence) marks the peer FAILED; Goodbye marks it LEFT. FAILED and LEFT are
 * final: on_peer_down runs once, and the peer is never reconnected.
 */
#include "rpc/tcp_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include "rpc/log.h"
#include "rpc/membership.h"
#include "rpc/transport_common.h"

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(buf, len, "%s:%d", host, port);
}

/* ------------------------------------------------------------------ */
/* Dialling (loop thread)                                               */

static int resolve(const char *host, int port, int flags, struct addrinfo **out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = flags | AI_NUMERICSERV };
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", port);
	return getaddrinfo(host, ports, &hints, out);
}

static void on_dial_timer(uv_timer_t *h);

void rpc_tcp_schedule_dial(struct tcp_transport *t, struct tcp_peer *p)
{
	if (t->stopping || state_final(get_state(p)))
		return;
	uv_timer_start(&p->dial_timer, on_dial_timer, p->backoff_ms, 0);
	p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void dial(struct tcp_transport *t, struct tcp_peer *p)
{
	const struct cluster_node *n = &tcp_cfg(t)->nodes[p->index];
	char remote[INET6_ADDRSTRLEN + 8];

	if (t->stopping || state_final(get_state(p)) || p->conn)
		return;
	if (!p->resolved) {
		/* Blocking for a host name; addresses are numeric in practice. */
		struct addrinfo *ai;
		int r = resolve(n->address, n->port, 0, &ai);
		if (r != 0) {
			disco_log(DISCO_LOG_WARN, "%s: cannot resolve: %s", p->desc,
				  gai_strerror(r));
			rpc_tcp_schedule_dial(t, p);
			return;
		}
		memcpy(&p->addr, ai->ai_addr, ai->ai_addrlen);
		p->addrlen = ai->ai_addrlen;
		p->resolved = true;
		freeaddrinfo(ai);
	}
	int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		disco_log(DISCO_LOG_ERROR, "%s: socket: %s", p->desc, strerror(errno));
		rpc_tcp_schedule_dial(t, p);
		return;
	}
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&p->addr, p->addrlen) < 0 && errno != EINPROGRESS) {
		disco_log(DISCO_LOG_DEBUG, "%s: connect: %s", p->desc, strerror(errno));
		close(fd);
		rpc_tcp_schedule_dial(t, p);
		return;
	}
	format_addr((struct sockaddr *)&p->addr, remote, sizeof(remote));
	struct tcp_conn *c = rpc_tcp_conn_new(t, fd, p->index, true, remote, UV_WRITABLE);
	if (!c) {
		rpc_tcp_schedule_dial(t, p);
		return;
	}
	rpc_tcp_conn_attach(c, p);
	c->write_armed = true;
}

static void on_dial_timer(uv_timer_t *h)
{
	struct tcp_peer *p = container_of(h, struct tcp_peer, dial_timer);
	dial(h->data, p);
}

/* ------------------------------------------------------------------ */
/* Accepting (loop thread)                                              */

static void on_listen_poll(uv_poll_t *h, int status, int events)
{
	struct tcp_transport *t = h->data;

	if (status < 0) {
		disco_log(DISCO_LOG_ERROR, "listen socket: %s", uv_strerror(status));
		return;
	}
	for (int i = 0; i < ACCEPTS_PER_WAKE && !t->stopping; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char remote[INET6_ADDRSTRLEN + 8];
		int fd = accept4(t->listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				disco_log(DISCO_LOG_ERROR, "accept: %s", strerror(errno));
			return;
		}
		format_addr((struct sockaddr *)&ss, remote, sizeof(remote));
		if (t->n_anon >= MAX_ANON_CONNS) {
			disco_log(DISCO_LOG_WARN, "refusing connection from %s: %d connections "
				  "have not said who they are yet", remote, t->n_anon);
			close(fd);
			continue;
		}
		set_nodelay(fd);
		disco_log(DISCO_LOG_DEBUG, "connection from %s", remote);
		rpc_tcp_conn_new(t, fd, -1, false, remote, UV_READABLE);
	}
}

static int open_listener(struct tcp_transport *t)
{
	const struct cluster_node *n = &tcp_cfg(t)->nodes[t->base.self];
	struct addrinfo *ai, *a;
	int r = resolve(n->address, n->port, AI_PASSIVE, &ai), err = 0;

	if (r != 0) {
		disco_log(DISCO_LOG_ERROR, "cannot resolve our address %s: %s", n->address,
			  gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	for (a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		int one = 1;
		if (fd < 0) {
			err = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) {
			freeaddrinfo(ai);
			t->listen_fd = fd;
			return 0;
		}
		err = -errno;
		close(fd);
	}
	freeaddrinfo(ai);
	disco_log(DISCO_LOG_ERROR, "cannot listen on %s:%d: %s", n->address, n->port,
		  strerror(-err));
	return err ? err : -EADDRNOTAVAIL;
}

/* ------------------------------------------------------------------ */
/* Heartbeats and timeouts (loop thread)                                */

static void send_heartbeat(struct tcp_transport *t, struct tcp_peer *p)
{
	uint8_t buf[RPC_HEARTBEAT_MAX];
	size_t n = rpc_pack_heartbeat(uv_hrtime(), buf);
	/* An error reaches the loop through the async; nothing to do here. */
	rpc_tcp_peer_send(t, p, RPC_MSG_HEARTBEAT, buf, n, NULL, true);
}

static void on_tick(uv_timer_t *h)
{
	struct tcp_transport *t = h->data;
	const struct cluster_config *cfg = tcp_cfg(t);
	uint64_t now = uv_now(t->base.loop);
	/* If this loop itself stalled, the silence we measured is ours:
	 * restart the clocks instead of failing every peer. */
	bool stalled = now - t->last_tick_ms > cfg->heartbeat_ms + cfg->peer_timeout_ms / 2;

	if (stalled)
		disco_log(DISCO_LOG_WARN, "loop stalled for %" PRIu64 " ms; peer timeouts restart",
			  now - t->last_tick_ms);
	t->last_tick_ms = now;
	for (int i = 0; i < cfg->n_nodes && !t->stopping; i++) {
		struct tcp_peer *p = &t->peers[i];
		if (i == t->base.self || get_state(p) != RPC_PEER_UP)
			continue;
		if (stalled)
			p->last_rx_ms = now;
		if (now - p->last_rx_ms > cfg->peer_timeout_ms)
			rpc_tcp_peer_down(t, p, RPC_PEER_FAILED, "no frame for %" PRIu64 " ms",
				  now - p->last_rx_ms);
		else
			send_heartbeat(t, p);
	}
	for (struct tcp_conn *c = t->conns, *next; c && !t->stopping; c = next) {
		next = c->next;
		if (!c->closing && c->phase != CONN_UP && now - c->opened_ms > cfg->peer_timeout_ms)
			rpc_tcp_conn_fail(c, false, "%s not finished after %" PRIu64 " ms",
				  c->phase == CONN_DIALLING ? "connect" : "handshake",
				  now - c->opened_ms);
	}
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */

static void do_stop(struct tcp_transport *t, bool goodbye);

static void on_async(uv_async_t *h)
{
	struct tcp_transport *t = h->data;

	if (__atomic_load_n(&t->stop_req, __ATOMIC_ACQUIRE)) {
		do_stop(t, true);
		return;
	}
	for (int i = 0; i < tcp_cfg(t)->n_nodes && !t->stopping; i++) {
		struct tcp_peer *p = &t->peers[i];
		struct tcp_conn *c = p->conn;
		if (i == t->base.self || !c || c->closing)
			continue;
		pthread_mutex_lock(&p->send_mu);
		int err = p->send_err;
		bool want = p->flush_wanted;
		pthread_mutex_unlock(&p->send_mu);
		if (err)
			rpc_tcp_conn_fail(c, false, "send: %s", strerror(-err));
		else if (want && !c->write_armed && c->phase != CONN_DIALLING)
			rpc_tcp_conn_set_events(c, true);
	}
}

static void on_listen_closed(uv_handle_t *h)
{
	struct tcp_transport *t = h->data;
	close(t->listen_fd);
	t->listen_fd = -1;
}

static int tcp_start(struct rpc_transport *bt)
{
	struct tcp_transport *t = tcp_of(bt);
	const struct cluster_config *cfg = tcp_cfg(t);
	uv_loop_t *loop = t->base.loop;
	int r;

	if (t->started)
		return -EALREADY;
	disco_log_set_thread_node(cfg->nodes[t->base.self].name);
	r = open_listener(t);
	if (r < 0)
		return r;
	t->loop_tid = uv_thread_self();
	uv_poll_init(loop, &t->listen_poll, t->listen_fd);
	t->listen_poll.data = t;
	uv_poll_start(&t->listen_poll, UV_READABLE, on_listen_poll);
	uv_async_init(loop, &t->async, on_async);
	t->async.data = t;
	uv_timer_init(loop, &t->hb_timer);
	t->hb_timer.data = t;
	uv_timer_start(&t->hb_timer, on_tick, cfg->heartbeat_ms, cfg->heartbeat_ms);
	t->last_tick_ms = uv_now(loop);
	for (int i = 0; i < cfg->n_nodes; i++) {
		if (i == t->base.self)
			continue;
		uv_timer_init(loop, &t->peers[i].dial_timer);
		t->peers[i].dial_timer.data = t;
	}
	t->started = true;
	disco_log(DISCO_LOG_INFO, "listening on %s:%d, %d peers", cfg->nodes[t->base.self].address,
		  cfg->nodes[t->base.self].port, cfg->n_nodes - 1);
	for (int i = 0; i < t->base.self; i++)
		dial(t, &t->peers[i]);
	return 0;
}

static void do_stop(struct tcp_transport *t, bool goodbye)
{
	const struct cluster_config *cfg = tcp_cfg(t);

	if (!t->started || t->stopping)
		return;
	for (int i = 0; goodbye && i < cfg->n_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];
		if (i == t->base.self || get_state(p) != RPC_PEER_UP)
			continue;
		uint8_t buf[RPC_GOODBYE_MAX];
		size_t n = rpc_pack_goodbye(buf);
		rpc_tcp_peer_send(t, p, RPC_MSG_GOODBYE, buf, n, NULL, true);
		/* Best effort: push what the socket takes now; then FIN. */
		if (p->conn)
			rpc_tcp_flush_queue(p->conn);
		if (p->conn) {
			/* FIN after the Goodbye; drain what the peer sent so
			 * close() sends no reset that could overtake it. */
			uint8_t sink[4096];
			shutdown(p->conn->fd, SHUT_WR);
			while (read(p->conn->fd, sink, sizeof(sink)) > 0)
				;
		}
	}
	t->stopping = true;
	for (int i = 0; i < cfg->n_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];
		if (i == t->base.self)
			continue;
		if (!state_final(get_state(p)))
			set_state(p, RPC_PEER_LEFT);
		uv_close((uv_handle_t *)&p->dial_timer, NULL);
	}
	for (struct tcp_conn *c = t->conns; c; c = c->next)
		rpc_tcp_conn_close(c);
	uv_poll_stop(&t->listen_poll);
	uv_close((uv_handle_t *)&t->listen_poll, on_listen_closed);
	uv_close((uv_handle_t *)&t->hb_timer, NULL);
	uv_close((uv_handle_t *)&t->async, NULL);
	disco_log(DISCO_LOG_DEBUG, "transport stopped");
}

static void tcp_stop(struct rpc_transport *bt)
{
	struct tcp_transport *t = tcp_of(bt);

	if (!t->started)
		return;
	if (on_loop_thread(t)) {
		do_stop(t, true);
		return;
	}
	int expected = 0;
	if (__atomic_compare_exchange_n(&t->stop_req, &expected, 1, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		uv_async_send(&t->async);
}

void rpc_tcp_transport_abort(struct rpc_transport *bt)
{
	struct tcp_transport *t = tcp_of(bt);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (!t->started || t->stopping)
		return;
	for (struct tcp_conn *c = t->conns; c; c = c->next)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	do_stop(t, false);
}

static int tcp_send(struct rpc_transport *bt, int peer, uint16_t type, const void *body,
		    size_t body_len, const void *page)
{
	struct tcp_transport *t = tcp_of(bt);
	int r = rpc_transport_check_send(bt, peer, type, body, body_len, RPC_FRAME_MAX_BODY);

	if (r < 0)
		return r;
	return rpc_tcp_peer_send(t, &t->peers[peer], type, body, body_len, page, false);
}

/* The owner found a well-formed frame from @peer that makes no sense: the
 * peer is failed like one that broke the protocol (loop thread). */
static void tcp_fail_peer(struct rpc_transport *bt, int peer, const char *why)
{
	struct tcp_transport *t = tcp_of(bt);

	if (peer < 0 || peer >= tcp_cfg(t)->n_nodes || peer == t->base.self || t->stopping)
		return;
	rpc_tcp_peer_down(t, &t->peers[peer], RPC_PEER_FAILED, "%s", why ? why : "failed by owner");
}

static enum rpc_peer_state tcp_peer_state(struct rpc_transport *bt, int peer)
{
	struct tcp_transport *t = tcp_of(bt);
	if (peer < 0 || peer >= tcp_cfg(t)->n_nodes)
		return RPC_PEER_FAILED;
	if (peer == t->base.self)
		return RPC_PEER_UP; /* we are, as far as we can tell */
	return get_state(&t->peers[peer]);
}

static void tcp_destroy(struct rpc_transport *bt)
{
	struct tcp_transport *t = tcp_of(bt);

	if (!t)
		return;
	/* Connections whose close callback never ran (loop not run after
	 * stop): their handles are dead with the loop; free the rest. */
	for (struct tcp_conn *c = t->conns, *next; c; c = next) {
		next = c->next;
		if (c->fd >= 0)
			close(c->fd);
		free(c->rbuf);
		free(c);
	}
	if (t->listen_fd >= 0)
		close(t->listen_fd);
	for (int i = 0; i < tcp_cfg(t)->n_nodes; i++) {
		pthread_mutex_destroy(&t->peers[i].send_mu);
		free(t->peers[i].outq);
	}
	free(t->peers);
	free(t);
}

static const struct rpc_transport_ops tcp_ops = {
	.name = "tcp",
	.start = tcp_start,
	.send = tcp_send,
	.peer_state = tcp_peer_state,
	.fail_peer = tcp_fail_peer,
	.stop = tcp_stop,
	.destroy = tcp_destroy,
};

int rpc_tcp_transport_create(uv_loop_t *loop, const struct cluster_config *cfg, int self,
			     const struct rpc_callbacks *cb, void *opaque,
			     struct rpc_transport **out)
{
	struct tcp_transport *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	if (!out || (r = rpc_transport_base_init(&t->base, &tcp_ops, loop, cfg, self, cb,
						 opaque)) < 0) {
		free(t);
		return -EINVAL;
	}
	t->peers = calloc((size_t)cfg->n_nodes, sizeof(*t->peers));
	if (!t->peers) {
		free(t);
		return -ENOMEM;
	}
	t->listen_fd = -1;
	for (int i = 0; i < cfg->n_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];
		p->index = i;
		rpc_auth_describe_node(cfg, i, p->desc, sizeof(p->desc));
		p->state = RPC_PEER_CONNECTING;
		p->backoff_ms = BACKOFF_MIN_MS;
		p->send_fd = -1;
		pthread_mutex_init(&p->send_mu, NULL);
	}
	*out = &t->base;
	return 0;
}
