/*
 * One TCP connection of the TCP link back end: a non-blocking socket
 * watched with a uv_poll_t (not a uv_tcp_t stream), so that any thread can
 * write a frame with one sendmsg() and no hop to the loop thread. What a
 * connection means (handshake, dispatch, failures) is the peer machine's
 * (rpc/peer.c); this file only moves bytes. Threads: tcp_internal.h and
 * rpc/peer.h.
 *
 * Receive: the loop thread read()s into the link's 256 KiB buffer, parses
 * every whole frame where it lies and hands it to rpc_conn_frame() as a
 * view into the buffer (no copy); the partial frame left over moves to the
 * front. Any fault is reported with rpc_conn_fail(), which logs one line
 * naming the peer.
 *
 * Write (rpc_link_ops.write, send_mu held, any thread): header, body and
 * page go out with one sendmsg() when nothing is queued. What the socket
 * does not take (or the whole frame, when bytes are already queued) is
 * copied to the link's out-queue; the peer machine then has UV_WRITABLE
 * armed, directly on the loop thread (flush_soon) or through its async
 * (wake), and the loop thread flushes the queue when the socket drains.
 * Order is kept because a frame only goes straight to the socket when the
 * queue is empty.
 */
#include "tcp_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc/log.h"

static void on_poll(uv_poll_t *h, int status, int events);

static void on_closed(uv_handle_t *h)
{
	struct tcp_link *l = h->data;

	if (l->fd >= 0)
		close(l->fd);
	rpc_conn_unlink(&l->conn);
	free(l->rbuf);
	free(l->outq);
	free(l);
}

struct tcp_link *tcp_link_new(struct tcp_transport *t, int fd, int peer, bool dialled,
			      const struct sockaddr *remote, int events)
{
	struct tcp_link *l = rpc_zalloc_lines(sizeof(*l));
	uint8_t *rbuf = malloc(RPC_TCP_RBUF_SIZE);
	int r;

	if (!l || !rbuf) {
		disco_log(DISCO_LOG_ERROR, "out of memory for a connection");
		goto fail;
	}
	if (rpc_conn_init(&l->conn, &t->peers, peer, dialled,
			  dialled ? RPC_CONN_LINKING : RPC_CONN_HANDSHAKE, remote) < 0) {
		disco_log(DISCO_LOG_ERROR, "cannot prepare the authentication of a connection");
		goto fail;
	}
	r = uv_poll_init(t->peers.base.loop, &l->poll, fd);
	if (r < 0) {
		disco_log(DISCO_LOG_ERROR, "uv_poll_init: %s", uv_strerror(r));
		rpc_conn_unlink(&l->conn);
		goto fail;
	}
	l->poll.data = l;
	l->fd = fd;
	l->rbuf = rbuf;
	r = uv_poll_start(&l->poll, events, on_poll);
	if (r < 0) {
		disco_log(DISCO_LOG_ERROR, "uv_poll_start: %s", uv_strerror(r));
		rpc_conn_close(&l->conn);
		return NULL;
	}
	l->write_armed = events & UV_WRITABLE;
	return l;
fail:
	free(rbuf);
	free(l);
	close(fd);
	return NULL;
}

/* rpc_link_ops.close: @c is detached; stop watching it. The memory and
 * the descriptor go in the close callback. */
void tcp_link_close(struct rpc_conn *c)
{
	struct tcp_link *l = tcp_link_of(c);

	uv_poll_stop(&l->poll);
	uv_close((uv_handle_t *)&l->poll, on_closed);
}

void tcp_link_set_events(struct tcp_link *l, bool writable)
{
	int r = uv_poll_start(&l->poll, UV_READABLE | (writable ? UV_WRITABLE : 0), on_poll);
	if (r < 0) {
		rpc_conn_fail(&l->conn, false, "uv_poll_start: %s", uv_strerror(r));
		return;
	}
	l->write_armed = writable;
}

/* ------------------------------------------------------------------ */
/* Receive path (loop thread)                                           */

/* Parse and hand over every whole frame in the receive buffer. */
static void parse_frames(struct tcp_link *l)
{
	struct rpc_frame_view f;
	char err[256];

	while (!l->conn.closing) {
		long n = rpc_frame_parse(l->rbuf + l->rstart, l->rend - l->rstart, &f, err,
					 sizeof(err));
		if (n == 0)
			break;
		if (n < 0) {
			rpc_conn_fail(&l->conn, true, "%s", err);
			return;
		}
		l->rstart += (size_t)n;
		rpc_conn_frame(&l->conn, &f);
	}
	if (l->conn.closing)
		return;
	/* Keep the partial frame at the front: the buffer (>= 3 maximal
	 * frames) then always has room for the rest of it. */
	if (l->rstart == l->rend) {
		l->rstart = l->rend = 0;
	} else if (l->rstart > 0) {
		memmove(l->rbuf, l->rbuf + l->rstart, l->rend - l->rstart);
		l->rend -= l->rstart;
		l->rstart = 0;
	}
}

static void on_eof(struct tcp_link *l)
{
	size_t partial = l->rend - l->rstart;

	if (partial)
		rpc_conn_fail(&l->conn, true,
			      "connection closed in the middle of a frame (%zu bytes pending)",
			      partial);
	else
		rpc_conn_closed_by_peer(&l->conn);
}

static void do_read(struct tcp_link *l)
{
	struct rpc_transport *bt = &l->conn.t->base;

	for (int i = 0; i < READS_PER_WAKE && !l->conn.closing; i++) {
		size_t room = RPC_TCP_RBUF_SIZE - l->rend;
		ssize_t n = read(l->fd, l->rbuf + l->rend, room);
		if (n > 0) {
			l->rend += (size_t)n;
			rpc_stat_add(&bt->stats.bytes_received, (uint64_t)n);
			parse_frames(l);
			if ((size_t)n < room)
				return; /* drained */
			continue;
		}
		if (n == 0) {
			on_eof(l);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		rpc_conn_fail(&l->conn, false, "read: %s", strerror(errno));
		return;
	}
}

/* ------------------------------------------------------------------ */
/* Write path (any thread, send_mu held) and queue flushing             */

/* Append @iov (skipping its first @skip bytes) to the queue. */
static int outq_append(struct tcp_link *l, const struct iovec *iov, int n, size_t skip)
{
	size_t add = 0;
	for (int i = 0; i < n; i++)
		add += iov[i].iov_len;
	add -= skip;
	if (l->out_off > 0 && l->out_len + add > l->out_cap) {
		memmove(l->outq, l->outq + l->out_off, l->out_len - l->out_off);
		l->out_len -= l->out_off;
		l->out_off = 0;
	}
	if (l->out_len + add > l->out_cap) {
		size_t cap = l->out_cap ? l->out_cap : 64 * 1024;
		while (cap < l->out_len + add)
			cap *= 2;
		uint8_t *q = realloc(l->outq, cap);
		if (!q)
			return -ENOMEM;
		l->outq = q;
		l->out_cap = cap;
	}
	for (int i = 0; i < n; i++) {
		size_t len = iov[i].iov_len;
		const uint8_t *base = iov[i].iov_base;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		memcpy(l->outq + l->out_len, base + skip, len - skip);
		l->out_len += len - skip;
		skip = 0;
	}
	return 0;
}

int tcp_link_write(struct rpc_conn *c, const struct iovec *iov, int n, size_t total)
{
	struct tcp_link *l = tcp_link_of(c);
	size_t done = 0;

	if (l->out_off == l->out_len) {
		struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
		ssize_t w;
		do
			w = sendmsg(l->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				c->send_err = -errno;
				return rpc_send_error(c->send_err);
			}
			w = 0;
		}
		done = (size_t)w;
		if (done == total)
			return RPC_LINK_SENT;
	} else if (l->out_len - l->out_off + total > RPC_TCP_OUTQ_MAX) {
		return -ENOBUFS;
	}
	if (outq_append(l, iov, n, done) < 0) {
		if (done > 0) /* half a frame is on the wire: the stream is lost */
			c->send_err = -ENOMEM;
		return -ENOMEM;
	}
	return RPC_LINK_QUEUED;
}

/* The socket of @l is writable: push out the queue (loop thread). */
void tcp_link_flush(struct tcp_link *l)
{
	struct rpc_conn *c = &l->conn;
	int err = 0;
	bool empty = false;

	rpc_conn_lock_send(c);
	while (l->out_off < l->out_len && !c->send_err) {
		ssize_t w = send(l->fd, l->outq + l->out_off, l->out_len - l->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->send_err = -errno;
			break;
		}
		l->out_off += (size_t)w;
	}
	err = c->send_err;
	if (l->out_off == l->out_len) {
		l->out_off = l->out_len = 0;
		c->flush_wanted = false;
		empty = true;
		if (l->out_cap > OUTQ_KEEP) {
			free(l->outq);
			l->outq = NULL;
			l->out_cap = 0;
		}
	}
	rpc_conn_unlock_send(c);
	if (err)
		rpc_conn_fail(c, false, "send: %s", strerror(-err));
	else if (empty && l->write_armed)
		tcp_link_set_events(l, false);
}

/* A write on the loop thread queued: arm UV_WRITABLE now. */
void tcp_link_flush_soon(struct rpc_conn *c)
{
	if (c && !c->closing && c->phase != RPC_CONN_LINKING && !tcp_link_of(c)->write_armed)
		tcp_link_set_events(tcp_link_of(c), true);
}

void tcp_link_wake(struct rpc_peer *p, bool flush_wanted)
{
	if (flush_wanted)
		tcp_link_flush_soon(p->conn);
}

/* stop(): push the Goodbye out, then FIN; drain what the peer sent so
 * close() sends no reset that could overtake it. */
void tcp_link_farewell(struct rpc_peer *p)
{
	uint8_t sink[4096];

	if (p->conn)
		tcp_link_flush(tcp_link_of(p->conn));
	if (!p->conn)
		return;
	int fd = tcp_link_of(p->conn)->fd;
	shutdown(fd, SHUT_WR);
	while (read(fd, sink, sizeof(sink)) > 0)
		;
}

/* ------------------------------------------------------------------ */
/* Events (loop thread)                                                 */

/* connect() finished on a dialled link. */
static void on_connected(struct tcp_link *l)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		rpc_conn_fail(&l->conn, false, "connect: %s", strerror(soerr));
		return;
	}
	tcp_link_set_events(l, false);
	rpc_conn_linked(&l->conn);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct tcp_link *l = h->data;

	if (l->conn.closing)
		return;
	if (l->conn.phase == RPC_CONN_LINKING) {
		on_connected(l); /* SO_ERROR tells whether it worked */
		return;
	}
	if (status < 0) {
		/* libuv reports a socket error (POLLERR, e.g. a reset) as
		 * UV_EBADF and stops the poll. Read what arrived before it
		 * (a Goodbye may be there), then report the real error. */
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		do_read(l);
		if (!l->conn.closing)
			rpc_conn_fail(&l->conn, false, "connection lost (%s)",
				      soerr ? strerror(soerr) : uv_strerror(status));
		return;
	}
	if (events & UV_WRITABLE)
		tcp_link_flush(l);
	if ((events & UV_READABLE) && !l->conn.closing)
		do_read(l);
}
