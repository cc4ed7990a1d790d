/*
 * One connection and one peer's channel of the TCP transport: the
 * handshake, the receive path (read, parse in place, dispatch) and the send
 * path (direct sendmsg under the peer's send mutex, else the out-queue that
 * the loop thread flushes). The thread model is described at the top of
 * tcp_transport.c; which thread touches which field, in tcp_internal.h.
 *
 * Receive: the loop thread read()s into the connection's 256 KiB buffer,
 * parses every whole frame where it lies and hands the owner a view into
 * the buffer (no copy); the partial frame left over moves to the front.
 * Any fault closes the connection with one log line naming the peer.
 *
 * Send: the caller encodes the 8-byte header on its stack and, under
 * send_mu, writes header, body and page with one sendmsg() when nothing is
 * queued. What the socket does not take (or the whole frame, when bytes are
 * already queued) is copied to the peer's out-queue, and the loop thread is
 * asked to arm UV_WRITABLE: directly when the caller is the loop thread,
 * through the transport's uv_async otherwise. Order is kept because a frame
 * only goes straight to the socket when the queue is empty.
 */
#include "rpc/tcp_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include "rpc/log.h"
#include "rpc/membership.h"
#include "rpc/transport_common.h"

/* How messages name a connection: its peer, or its remote address. */
static const char *conn_desc(struct tcp_conn *c, char *buf, size_t len)
{
	if (c->peer >= 0)
		return c->t->peers[c->peer].desc;
	snprintf(buf, len, "connection from %s", c->remote);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Peer state changes (loop thread)                                     */

/*
 * The peer is gone for good: record @state (LEFT or FAILED), close its
 * connection, stop dialling, log one line and tell the owner, once.
 */
void rpc_tcp_peer_down(struct tcp_transport *t, struct tcp_peer *p, enum rpc_peer_state state,
		      const char *fmt, ...)
{
	char why[WHY_MAX + 400];
	va_list ap;

	if (state_final(get_state(p)))
		return;
	va_start(ap, fmt);
	rpc_compose_why(why, sizeof(why), p->desc, fmt, ap);
	va_end(ap);
	set_state(p, state);
	if (p->conn)
		rpc_tcp_conn_close(p->conn);
	if (t->started && !t->stopping)
		uv_timer_stop(&p->dial_timer);
	disco_log(state == RPC_PEER_FAILED ? DISCO_LOG_ERROR : DISCO_LOG_INFO, "%s%s",
		  state == RPC_PEER_FAILED ? "peer failed: " : "peer left: ", why);
	if (t->base.cb.on_peer_down)
		t->base.cb.on_peer_down(t->base.opaque, p->index, state, why);
}

/*
 * Something went wrong on connection @c. @fatal: an authentication failure
 * or protocol fault, which fails the named peer; otherwise (connection
 * refused/lost/stalled before UP) the connection is closed and the peer
 * waits for, or makes, the next attempt. Any fault of an UP peer is fatal.
 */
void rpc_tcp_conn_fail(struct tcp_conn *c, bool fatal, const char *fmt, ...)
{
	struct tcp_transport *t = c->t;
	char why[WHY_MAX + 400], db[INET6_ADDRSTRLEN + 32];
	va_list ap;

	if (c->closing)
		return;
	va_start(ap, fmt);
	rpc_compose_why(why, sizeof(why), conn_desc(c, db, sizeof(db)), fmt, ap);
	va_end(ap);

	if (!c->attached) {
		disco_log(DISCO_LOG_WARN, "closing %s", why);
		rpc_tcp_conn_close(c);
		return;
	}
	struct tcp_peer *p = &t->peers[c->peer];
	if (fatal || get_state(p) == RPC_PEER_UP) {
		rpc_tcp_peer_down(t, p, RPC_PEER_FAILED, "%s", why);
		return;
	}
	disco_log(c->dialled ? DISCO_LOG_DEBUG : DISCO_LOG_INFO, "%s (will %s)", why,
		  c->dialled ? "retry" : "wait for the next attempt");
	rpc_tcp_conn_close(c);
	if (t->stopping)
		return;
	if (c->dialled) {
		set_state(p, RPC_PEER_CONNECTING);
		rpc_tcp_schedule_dial(t, p);
	} else {
		set_state(p, RPC_PEER_CONNECTING);
	}
}

/* ------------------------------------------------------------------ */
/* Connections (loop thread)                                            */

static void on_conn_poll(uv_poll_t *h, int status, int events);

static void on_conn_closed(uv_handle_t *h)
{
	struct tcp_conn *c = h->data;
	struct tcp_transport *t = c->t;

	if (c->fd >= 0)
		close(c->fd);
	if (c->peer < 0)
		t->n_anon--;
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->rbuf);
	free(c);
}

/* A new connection on socket @fd, watched for @events. NULL on failure (fd
 * closed). */
struct tcp_conn *rpc_tcp_conn_new(struct tcp_transport *t, int fd, int peer, bool dialled,
				 const char *remote, int events)
{
	struct tcp_conn *c = calloc(1, sizeof(*c));
	uint8_t *rbuf = malloc(RPC_TCP_RBUF_SIZE);
	int r;

	if (!c || !rbuf || rpc_auth_init(&c->auth, tcp_cfg(t), t->base.self) < 0) {
		disco_log(DISCO_LOG_ERROR, "out of memory for a connection");
		goto fail;
	}
	r = uv_poll_init(t->base.loop, &c->poll, fd);
	if (r < 0) {
		disco_log(DISCO_LOG_ERROR, "uv_poll_init: %s", uv_strerror(r));
		goto fail;
	}
	c->t = t;
	c->poll.data = c;
	c->fd = fd;
	c->peer = peer;
	c->dialled = dialled;
	c->rbuf = rbuf;
	c->phase = dialled ? CONN_DIALLING : CONN_HANDSHAKE;
	c->opened_ms = uv_now(t->base.loop);
	snprintf(c->remote, sizeof(c->remote), "%s", remote);
	if (peer < 0)
		t->n_anon++;
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	r = uv_poll_start(&c->poll, events, on_conn_poll);
	if (r < 0) {
		disco_log(DISCO_LOG_ERROR, "uv_poll_start: %s", uv_strerror(r));
		rpc_tcp_conn_close(c);
		return NULL;
	}
	return c;
fail:
	free(rbuf);
	free(c);
	close(fd);
	return NULL;
}

/* Close @c (idempotent): detach it from its peer under send_mu, so no
 * sender can write to it any more, and stop watching it. The memory and the
 * descriptor go in the close callback. Never calls owner callbacks. */
void rpc_tcp_conn_close(struct tcp_conn *c)
{
	struct tcp_transport *t = c->t;

	if (c->closing)
		return;
	c->closing = true;
	if (c->attached) {
		struct tcp_peer *p = &t->peers[c->peer];
		pthread_mutex_lock(&p->send_mu);
		p->send_fd = -1;
		p->sendable = false;
		p->send_err = 0;
		p->flush_wanted = false;
		p->out_off = p->out_len = 0;
		if (p->out_cap > OUTQ_KEEP) {
			free(p->outq);
			p->outq = NULL;
			p->out_cap = 0;
		}
		pthread_mutex_unlock(&p->send_mu);
		p->conn = NULL;
		c->attached = false;
	}
	uv_poll_stop(&c->poll);
	uv_close((uv_handle_t *)&c->poll, on_conn_closed);
}

void rpc_tcp_conn_attach(struct tcp_conn *c, struct tcp_peer *p)
{
	if (c->peer < 0)
		c->t->n_anon--;
	p->conn = c;
	c->peer = p->index;
	c->attached = true;
	if (c->phase != CONN_DIALLING) {
		pthread_mutex_lock(&p->send_mu);
		p->send_fd = c->fd;
		pthread_mutex_unlock(&p->send_mu);
	}
}

void rpc_tcp_conn_set_events(struct tcp_conn *c, bool writable)
{
	int r = uv_poll_start(&c->poll, UV_READABLE | (writable ? UV_WRITABLE : 0), on_conn_poll);
	if (r < 0) {
		rpc_tcp_conn_fail(c, false, "uv_poll_start: %s", uv_strerror(r));
		return;
	}
	c->write_armed = writable;
}

/* ------------------------------------------------------------------ */
/* Handshake and frame dispatch (loop thread)                           */

static int send_hello(struct tcp_conn *c)
{
	uint8_t buf[RPC_AUTH_HELLO_MAX];
	long n = rpc_auth_make_hello(&c->auth, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return rpc_tcp_peer_send(c->t, &c->t->peers[c->peer], RPC_MSG_HELLO, buf, (size_t)n, NULL,
				 true);
}

static int send_proof(struct tcp_conn *c)
{
	uint8_t buf[RPC_AUTH_PROOF_MAX];
	long n = rpc_auth_make_proof(&c->auth, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return rpc_tcp_peer_send(c->t, &c->t->peers[c->peer], RPC_MSG_AUTH, buf, (size_t)n, NULL,
				 true);
}

/* Hello on an accepted connection: it names the peer. */
static void on_anonymous_hello(struct tcp_conn *c, const struct rpc_frame_view *f)
{
	struct tcp_transport *t = c->t;
	char err[WHY_MAX];
	int r, idx = rpc_auth_on_hello(&c->auth, f->body, f->body_len, -1, err, sizeof(err));

	if (idx < 0) {
		rpc_tcp_conn_fail(c, false, "%s", err);
		return;
	}
	struct tcp_peer *p = &t->peers[idx];
	if (idx < t->base.self) {
		rpc_tcp_conn_fail(c, false, "%s: dials us, but we dial it (lower index)", p->desc);
		return;
	}
	enum rpc_peer_state st = get_state(p);
	if (st != RPC_PEER_CONNECTING || p->conn) {
		rpc_tcp_conn_fail(c, false, "%s: second connection refused (peer is %s)", p->desc,
			  rpc_peer_state_name(st));
		return;
	}
	rpc_tcp_conn_attach(c, p);
	set_state(p, RPC_PEER_AUTHENTICATING);
	if ((r = send_hello(c)) < 0 || (r = send_proof(c)) < 0)
		rpc_tcp_conn_fail(c, false, "sending handshake: %s", strerror(-r));
}

static void peer_up(struct tcp_transport *t, struct tcp_conn *c)
{
	struct tcp_peer *p = &t->peers[c->peer];

	c->phase = CONN_UP;
	p->last_rx_ms = uv_now(t->base.loop);
	pthread_mutex_lock(&p->send_mu);
	p->sendable = true;
	pthread_mutex_unlock(&p->send_mu);
	set_state(p, RPC_PEER_UP);
	disco_log(DISCO_LOG_INFO, "%s: up (%s)", p->desc, c->dialled ? "dialled" : "accepted");
	if (t->base.cb.on_peer_up)
		t->base.cb.on_peer_up(t->base.opaque, p->index);
}

static void on_handshake_frame(struct tcp_conn *c, const struct rpc_frame_view *f)
{
	struct tcp_transport *t = c->t;
	char err[WHY_MAX];
	int r;

	if (c->peer < 0) {
		if (f->type == RPC_MSG_HELLO)
			on_anonymous_hello(c, f);
		else
			rpc_tcp_conn_fail(c, false, "frame type %u before Hello", f->type);
		return;
	}
	switch (f->type) {
	case RPC_MSG_HELLO:
		r = rpc_auth_on_hello(&c->auth, f->body, f->body_len, c->peer, err, sizeof(err));
		if (r < 0) {
			rpc_tcp_conn_fail(c, true, "%s", err);
			return;
		}
		if ((r = send_proof(c)) < 0)
			rpc_tcp_conn_fail(c, false, "sending proof: %s", strerror(-r));
		return;
	case RPC_MSG_AUTH:
		r = rpc_auth_check_proof(&c->auth, f->body, f->body_len, err, sizeof(err));
		if (r < 0) {
			rpc_tcp_conn_fail(c, true, "%s", err);
			return;
		}
		/* Our proof went out when we accepted its Hello. */
		peer_up(t, c);
		return;
	default:
		rpc_tcp_conn_fail(c, true, "frame type %u before authentication", f->type);
		return;
	}
}

static void on_goodbye(struct tcp_conn *c, const struct rpc_frame_view *f)
{
	struct tcp_transport *t = c->t;
	char reason[128];

	rpc_goodbye_reason(f->body, f->body_len, reason, sizeof(reason));
	rpc_tcp_peer_down(t, &t->peers[c->peer], RPC_PEER_LEFT, "said goodbye (%s)", reason);
}

static void dispatch(struct tcp_conn *c, const struct rpc_frame_view *f)
{
	struct tcp_transport *t = c->t;

	if (c->phase != CONN_UP) {
		on_handshake_frame(c, f);
		return;
	}
	switch (rpc_classify_up_frame(f->type)) {
	case RPC_UP_PROTOCOL_ERROR:
		rpc_tcp_conn_fail(c, true, "handshake frame type %u after authentication", f->type);
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

/* Parse and dispatch every whole frame in the receive buffer. */
static void parse_frames(struct tcp_conn *c)
{
	struct tcp_transport *t = c->t;
	struct rpc_frame_view f;
	char err[256];

	while (!c->closing) {
		long n = rpc_frame_parse(c->rbuf + c->rstart, c->rend - c->rstart, &f, err,
					 sizeof(err));
		if (n == 0)
			break;
		if (n < 0) {
			rpc_tcp_conn_fail(c, true, "%s", err);
			return;
		}
		c->rstart += (size_t)n;
		stat_add(&t->base.stats.frames_received, 1);
		if (c->attached)
			t->peers[c->peer].last_rx_ms = uv_now(t->base.loop);
		dispatch(c, &f);
	}
	if (c->closing)
		return;
	/* Keep the partial frame at the front: the buffer (>= 3 maximal
	 * frames) then always has room for the rest of it. */
	if (c->rstart == c->rend) {
		c->rstart = c->rend = 0;
	} else if (c->rstart > 0) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
}

static void on_eof(struct tcp_conn *c)
{
	size_t partial = c->rend - c->rstart;

	if (partial)
		rpc_tcp_conn_fail(c, true,
				  "connection closed in the middle of a frame (%zu bytes pending)",
				  partial);
	else if (c->phase == CONN_UP)
		rpc_tcp_conn_fail(c, true, "connection closed without Goodbye");
	else if (c->peer < 0)
		rpc_tcp_conn_close(c); /* a client that went away: nothing to report */
	else
		rpc_tcp_conn_fail(c, false, "connection closed during the handshake");
}

static void do_read(struct tcp_conn *c)
{
	struct tcp_transport *t = c->t;

	for (int i = 0; i < READS_PER_WAKE && !c->closing; i++) {
		size_t room = RPC_TCP_RBUF_SIZE - c->rend;
		ssize_t n = read(c->fd, c->rbuf + c->rend, room);
		if (n > 0) {
			c->rend += (size_t)n;
			stat_add(&t->base.stats.bytes_received, (uint64_t)n);
			parse_frames(c);
			if ((size_t)n < room)
				return; /* drained */
			continue;
		}
		if (n == 0) {
			on_eof(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		rpc_tcp_conn_fail(c, false, "read: %s", strerror(errno));
		return;
	}
}

/* ------------------------------------------------------------------ */
/* Send path (any thread) and queue flushing (loop thread)              */

/* Append @iov (skipping its first @skip bytes) to the queue (send_mu held). */
static int outq_append(struct tcp_peer *p, const struct iovec *iov, int n, size_t skip)
{
	size_t add = 0;
	for (int i = 0; i < n; i++)
		add += iov[i].iov_len;
	add -= skip;
	if (p->out_off > 0 && p->out_len + add > p->out_cap) {
		memmove(p->outq, p->outq + p->out_off, p->out_len - p->out_off);
		p->out_len -= p->out_off;
		p->out_off = 0;
	}
	if (p->out_len + add > p->out_cap) {
		size_t cap = p->out_cap ? p->out_cap : 64 * 1024;
		while (cap < p->out_len + add)
			cap *= 2;
		uint8_t *q = realloc(p->outq, cap);
		if (!q)
			return -ENOMEM;
		p->outq = q;
		p->out_cap = cap;
	}
	for (int i = 0; i < n; i++) {
		size_t len = iov[i].iov_len;
		const uint8_t *base = iov[i].iov_base;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		memcpy(p->outq + p->out_len, base + skip, len - skip);
		p->out_len += len - skip;
		skip = 0;
	}
	return 0;
}

/* What send() returns once the socket failed with @err: the owner sees
 * -ECONNRESET or -EPIPE; the log line names the real error. */
static int send_error(int err)
{
	return err == -ECONNRESET ? err : -EPIPE;
}

/*
 * Write one frame to @p: directly when nothing is queued, else behind the
 * queue. @internal: a handshake/membership frame from the loop thread,
 * allowed before the peer is UP.
 */
int rpc_tcp_peer_send(struct tcp_transport *t, struct tcp_peer *p, uint16_t type,
		     const void *body, size_t body_len, const void *page, bool internal)
{
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	struct iovec iov[3];
	int n = 0, ret = 0;
	size_t total = 0;
	bool kick = false, queued = false, loop = on_loop_thread(t);

	rpc_frame_header_encode(hdr, type, page ? RPC_FRAME_FLAG_PAGE : 0, (uint32_t)body_len);
	iov[n++] = (struct iovec){ hdr, sizeof(hdr) };
	if (body_len)
		iov[n++] = (struct iovec){ (void *)body, body_len };
	if (page)
		iov[n++] = (struct iovec){ (void *)page, RPC_PAGE_SIZE };
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;

	pthread_mutex_lock(&p->send_mu);
	if (p->send_err) {
		ret = send_error(p->send_err);
		goto out;
	}
	if (p->send_fd < 0 || (!internal && !p->sendable)) {
		ret = -ENOTCONN;
		goto out;
	}
	size_t done = 0;
	if (p->out_off == p->out_len) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w;
		do
			w = sendmsg(p->send_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				p->send_err = -errno;
				ret = send_error(p->send_err);
				kick = true; /* the loop fails the peer */
				goto out;
			}
			w = 0;
		}
		done = (size_t)w;
		if (done == total)
			goto sent;
	} else if (p->out_len - p->out_off + total > RPC_TCP_OUTQ_MAX) {
		ret = -ENOBUFS;
		goto out;
	}
	if (outq_append(p, iov, n, done) < 0) {
		ret = -ENOMEM;
		if (done > 0) { /* half a frame is on the wire: the stream is lost */
			p->send_err = -ENOMEM;
			kick = true;
		}
		goto out;
	}
	queued = true;
	if (!p->flush_wanted) {
		p->flush_wanted = true;
		kick = true;
	}
sent:
	stat_add(&t->base.stats.frames_sent, 1);
	stat_add(&t->base.stats.bytes_sent, total);
	if (queued)
		stat_add(&t->base.stats.send_queued, 1);
out:
	/* Woken under send_mu: stop() closes the async handle only after it
	 * took every send_mu and saw send_fd == -1. An error is always
	 * reported through the async, so on_peer_down never runs inside
	 * send(), even on the loop thread. */
	bool failed = p->send_err != 0;
	if (kick && (!loop || failed))
		uv_async_send(&t->async);
	pthread_mutex_unlock(&p->send_mu);
	if (kick && loop && !failed) {
		struct tcp_conn *c = p->conn;
		if (c && !c->closing && c->phase != CONN_DIALLING && !c->write_armed)
			rpc_tcp_conn_set_events(c, true);
	}
	return ret;
}

/* The socket of @c is writable: push out the queue. */
void rpc_tcp_flush_queue(struct tcp_conn *c)
{
	struct tcp_peer *p = &c->t->peers[c->peer];
	int err = 0;
	bool empty = false;

	pthread_mutex_lock(&p->send_mu);
	while (p->out_off < p->out_len && !p->send_err) {
		ssize_t w = send(p->send_fd, p->outq + p->out_off, p->out_len - p->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				p->send_err = -errno;
			break;
		}
		p->out_off += (size_t)w;
	}
	err = p->send_err;
	if (p->out_off == p->out_len) {
		p->out_off = p->out_len = 0;
		p->flush_wanted = false;
		empty = true;
		if (p->out_cap > OUTQ_KEEP) {
			free(p->outq);
			p->outq = NULL;
			p->out_cap = 0;
		}
	}
	pthread_mutex_unlock(&p->send_mu);
	if (err)
		rpc_tcp_conn_fail(c, false, "send: %s", strerror(-err));
	else if (empty && c->write_armed)
		rpc_tcp_conn_set_events(c, false);
}

/* connect() finished on a dialled connection. */
static void on_connected(struct tcp_conn *c)
{
	struct tcp_peer *p = &c->t->peers[c->peer];
	int soerr = 0, r;
	socklen_t len = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		rpc_tcp_conn_fail(c, false, "connect: %s", strerror(soerr));
		return;
	}
	c->phase = CONN_HANDSHAKE;
	pthread_mutex_lock(&p->send_mu);
	p->send_fd = c->fd;
	pthread_mutex_unlock(&p->send_mu);
	set_state(p, RPC_PEER_AUTHENTICATING);
	disco_log(DISCO_LOG_DEBUG, "%s: connected, authenticating", p->desc);
	rpc_tcp_conn_set_events(c, false);
	if (!c->closing && (r = send_hello(c)) < 0)
		rpc_tcp_conn_fail(c, false, "sending Hello: %s", strerror(-r));
}

static void on_conn_poll(uv_poll_t *h, int status, int events)
{
	struct tcp_conn *c = h->data;

	if (c->closing)
		return;
	if (c->phase == CONN_DIALLING) {
		on_connected(c); /* SO_ERROR tells whether it worked */
		return;
	}
	if (status < 0) {
		/* libuv reports a socket error (POLLERR, e.g. a reset) as
		 * UV_EBADF and stops the poll. Read what arrived before it
		 * (a Goodbye may be there), then report the real error. */
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		do_read(c);
		if (!c->closing)
			rpc_tcp_conn_fail(c, false, "connection lost (%s)",
				  soerr ? strerror(soerr) : uv_strerror(status));
		return;
	}
	if ((events & UV_WRITABLE) && c->attached)
		rpc_tcp_flush_queue(c);
	if ((events & UV_READABLE) && !c->closing)
		do_read(c);
}

