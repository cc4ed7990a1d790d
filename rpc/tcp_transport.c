/*
 * TCP transport: the peer state machine (rpc/peer.c) over the TCP link back
 * end. This file holds what is TCP's own about a transport: the listening
 * socket, dialling (non-blocking connect()), accepting, the link ops table
 * and create(); tcp_link.c holds one socket (receive path, write path and
 * out-queue); tcp_internal.h the structs. docs/transport.md describes the
 * protocol.
 *
 * Thread model
 * ------------
 * The owner creates the loop and the thread that runs it, calls start() on
 * that thread (it records the thread id) and runs uv_run() there. That loop
 * thread owns the listen socket and every link (its poll handle, receive
 * buffer and, through struct rpc_conn, its auth state), besides what the
 * peer machine owns (timers, async handle, each peer's membership state).
 * Every callback of struct rpc_callbacks runs on it.
 *
 * Any thread may call send() and peer_state(); send() reaches
 * tcp_link_write() under the peer's send_mu (rpc/peer.h, peer_send.c),
 * which touches only the link's socket and out-queue. stop() may also be
 * called from any thread; rpc_tcp_transport_abort() and destroy() may not.
 * send_mu is a leaf lock. The loop thread withdraws a link from its peer
 * under send_mu before the descriptor is closed, so a sender never writes
 * to a socket that is being closed.
 *
 * Connections. Every socket has TCP_NODELAY. An accepted socket is
 * anonymous until its peer proved the key; at most TCP_MAX_ANON are kept,
 * TCP_MAX_ANON_PER_SOURCE from one address (each holds a receive buffer):
 * a new one evicts an older one (rpc/peer.c, admit()), it is never
 * refused.
 */
#include "tcp_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include "rpc/log.h"

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int resolve(const char *host, int port, int flags, struct addrinfo **out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = flags | AI_NUMERICSERV };
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", port);
	return getaddrinfo(host, ports, &hints, out);
}

/* ------------------------------------------------------------------ */
/* Dialling (loop thread)                                               */

/* rpc_link_ops.dial: a non-blocking connect(); the link reports when it
 * finished (tcp_link.c, on_connected). */
static int tcp_dial(struct rpc_peers *bt, struct rpc_peer *p)
{
	struct tcp_transport *t = tcp_of(bt);
	struct tcp_dial_addr *a = &t->dial_addrs[p->index];
	const struct cluster_node *n = &rpc_peers_cfg(bt)->nodes[p->index];

	if (!a->resolved) {
		/* Blocking for a host name; addresses are numeric in practice. */
		struct addrinfo *ai;
		int r = resolve(n->address, n->port, 0, &ai);
		if (r != 0) {
			disco_log(DISCO_LOG_WARN, "%s: cannot resolve: %s", p->desc,
				  gai_strerror(r));
			return -EADDRNOTAVAIL;
		}
		memcpy(&a->addr, ai->ai_addr, ai->ai_addrlen);
		a->addrlen = ai->ai_addrlen;
		a->resolved = true;
		freeaddrinfo(ai);
	}
	int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int err = -errno;
		disco_log(DISCO_LOG_ERROR, "%s: socket: %s", p->desc, strerror(-err));
		return err;
	}
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&a->addr, a->addrlen) < 0 && errno != EINPROGRESS) {
		int err = -errno;
		disco_log(DISCO_LOG_DEBUG, "%s: connect: %s", p->desc, strerror(-err));
		close(fd);
		return err;
	}
	struct tcp_link *l = tcp_link_new(t, fd, p->index, true, (struct sockaddr *)&a->addr,
					  UV_WRITABLE);
	if (!l)
		return -ENOMEM;
	rpc_conn_attach(&l->conn, p);
	return 0;
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
	for (int i = 0; i < ACCEPTS_PER_WAKE && !t->peers.stopping; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(t->listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) /* e.g. EMFILE, again and again */
				disco_log_limited(&t->peers.anon_log, DISCO_LOG_ERROR, "accept: %s",
						  strerror(errno));
			return;
		}
		set_nodelay(fd);
		tcp_link_new(t, fd, -1, false, (struct sockaddr *)&ss, UV_READABLE);
	}
}

/* rpc_link_ops.open: bind and listen on our own address:port. */
static int tcp_open(struct rpc_peers *bt)
{
	struct tcp_transport *t = tcp_of(bt);
	const struct cluster_node *n = &rpc_peers_cfg(bt)->nodes[bt->base.self];
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
			t->listen_fd = fd;
			break;
		}
		err = -errno;
		close(fd);
	}
	freeaddrinfo(ai);
	if (t->listen_fd < 0) {
		disco_log(DISCO_LOG_ERROR, "cannot listen on %s:%d: %s", n->address, n->port,
			  strerror(-err));
		return err ? err : -EADDRNOTAVAIL;
	}
	uv_poll_init(bt->base.loop, &t->listen_poll, t->listen_fd);
	t->listen_poll.data = t;
	uv_poll_start(&t->listen_poll, UV_READABLE, on_listen_poll);
	disco_log(DISCO_LOG_INFO, "listening on %s:%d, %d peers", n->address, n->port,
		  rpc_peers_cfg(bt)->n_nodes - 1);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */

static void on_listen_closed(uv_handle_t *h)
{
	struct tcp_transport *t = h->data;
	close(t->listen_fd);
	t->listen_fd = -1;
}

static void tcp_close_handles(struct rpc_peers *bt)
{
	struct tcp_transport *t = tcp_of(bt);

	uv_poll_stop(&t->listen_poll);
	uv_close((uv_handle_t *)&t->listen_poll, on_listen_closed);
}

void rpc_tcp_transport_abort(struct rpc_transport *bt)
{
	struct rpc_peers *t = rpc_peers_of(bt);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (!t->started || t->stopping)
		return;
	for (struct rpc_conn *c = t->conns; c; c = c->next)
		setsockopt(tcp_link_of(c)->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	rpc_peers_stop_now(t, false);
}

static void tcp_destroy(struct rpc_peers *bt)
{
	struct tcp_transport *t = tcp_of(bt);

	/* Links whose close callback never ran (loop not run after stop):
	 * their handles are dead with the loop; free the rest. */
	for (struct rpc_conn *c = bt->conns, *next; c; c = next) {
		struct tcp_link *l = tcp_link_of(c);
		next = c->next;
		if (l->fd >= 0)
			close(l->fd);
		free(l->rbuf);
		free(l->outq);
		free(l);
	}
	bt->conns = NULL;
	if (t->listen_fd >= 0)
		close(t->listen_fd);
}

static void tcp_init(struct rpc_peers *bt)
{
	tcp_of(bt)->listen_fd = -1;
}

static const struct rpc_transport_ops tcp_ops = { .name = "tcp", RPC_PEERS_TRANSPORT_OPS };

static const struct rpc_link_ops tcp_link_ops = {
	.transport = &tcp_ops,
	.size = sizeof(struct tcp_transport),
	.max_body = RPC_FRAME_MAX_BODY,
	.max_anon = TCP_MAX_ANON,
	.max_anon_per_source = TCP_MAX_ANON_PER_SOURCE,
	.init = tcp_init,
	.open = tcp_open,
	.dial = tcp_dial,
	.write = tcp_link_write,
	.flush_soon = tcp_link_flush_soon,
	.wake = tcp_link_wake,
	.farewell = tcp_link_farewell,
	.close = tcp_link_close,
	.close_handles = tcp_close_handles,
	.destroy = tcp_destroy,
};

int rpc_tcp_transport_create(uv_loop_t *loop, const struct cluster_config *cfg, int self,
			     const struct rpc_callbacks *cb, void *opaque,
			     struct rpc_transport **out)
{
	return rpc_peers_create(&tcp_link_ops, loop, cfg, self, cb, opaque, out);
}
