// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Blocking frames over one control connection (control.h), each call
 * bounded by a deadline: poll() before every read and write, so a peer
 * that stops talking halfway costs a timeout, never a hung thread.
 * Frames are checked by rpc_frame_parse() as the transport checks its own
 * (version, flags, type, length) before a byte of the body is trusted.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "rpc/frame.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before @deadline (-1: none), at least 0. */
static int left(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t l = deadline - now_ms();
	return l < 0 ? 0 : (int)l;
}

void control_conn_init(struct control_conn *c, int fd, const char *peer)
{
	*c = (struct control_conn){.fd = fd};
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
}

void control_conn_close(struct control_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->cap = 0;
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = ev};

	for (;;) {
		int r = poll(&p, 1, left(deadline));

		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int write_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
	while (n) {
		int r = wait_fd(fd, POLLOUT, deadline);
		ssize_t w;

		if (r < 0)
			return r;
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, uint8_t *p, size_t n, int64_t deadline, bool first)
{
	size_t got = 0;

	while (got < n) {
		int r = wait_fd(fd, POLLIN, deadline);
		ssize_t k;

		if (r < 0)
			return r;
		k = recv(fd, p + got, n - got, MSG_DONTWAIT);
		if (k == 0)
			return first && got == 0 ? -ECONNRESET : -EPIPE;
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		got += (size_t)k;
	}
	return 0;
}

int control_send(struct control_conn *c, uint16_t type, const void *body, size_t len, int timeout_ms)
{
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int r;

	if (len > RPC_FRAME_MAX_BODY)
		return -EMSGSIZE;
	rpc_frame_header_encode(hdr, type, 0, (uint32_t)len);
	if ((r = write_all(c->fd, hdr, sizeof(hdr), deadline)) < 0)
		return r;
	return len ? write_all(c->fd, body, len, deadline) : 0;
}

int control_send_msg(struct control_conn *c, uint16_t type, const ProtobufCMessage *m, int timeout_ms)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf;
	int r;

	if (len > RPC_FRAME_MAX_BODY)
		return -EMSGSIZE;
	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(m, buf);
	r = control_send(c, type, buf, len, timeout_ms);
	free(buf);
	return r;
}

int control_recv(struct control_conn *c, uint16_t *type, const uint8_t **body, size_t *len,
		 int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct rpc_frame_view v;
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	uint32_t body_len;
	long n;
	int r;

	if ((r = read_all(c->fd, hdr, sizeof(hdr), deadline, true)) < 0)
		goto fail;
	/* the header alone: 0 (more needed) unless it is bad or the body empty */
	n = rpc_frame_parse(hdr, sizeof(hdr), &v, err, errlen);
	if (n < 0)
		return -EPROTO;
	if (hdr[1] != 0) {
		snprintf(err, errlen, "%s: a control frame with flags 0x%02x", c->peer, hdr[1]);
		return -EPROTO;
	}
	body_len = (uint32_t)hdr[4] | (uint32_t)hdr[5] << 8 | (uint32_t)hdr[6] << 16 |
		   (uint32_t)hdr[7] << 24;
	if (c->cap < sizeof(hdr) + body_len) {
		uint8_t *nb = realloc(c->buf, sizeof(hdr) + body_len);

		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = sizeof(hdr) + body_len;
	}
	memcpy(c->buf, hdr, sizeof(hdr));
	if (body_len && (r = read_all(c->fd, c->buf + sizeof(hdr), body_len, deadline, false)) < 0)
		goto fail;
	n = rpc_frame_parse(c->buf, sizeof(hdr) + body_len, &v, err, errlen);
	if (n <= 0)
		return -EPROTO;
	*type = v.type;
	*body = v.body;
	*len = v.body_len;
	return 0;
fail:
	if (r == -ETIMEDOUT)
		snprintf(err, errlen, "%s: no answer within %d ms", c->peer, timeout_ms);
	else if (r == -ECONNRESET)
		snprintf(err, errlen, "%s closed the connection", c->peer);
	else
		snprintf(err, errlen, "%s: %s", c->peer, strerror(-r));
	return r;
}
