// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer harness: the frame parser and the handshake, driven over a
 * real loopback TCP connection to a real transport (rpc/peer.c over
 * rpc/tcp_*.c), the way a client on the cluster network would.
 *
 * Every input gets a fresh transport on a loop this thread runs (so
 * nothing carries over from one input to the next), and one connection:
 *
 *   byte 0, mode % 4:
 *     0  a client to node 0 (acceptor) of a 3-node cluster; the rest of
 *        the input is its bytes: Hellos, proofs, garbage;
 *     1  the same client first proves the key as node 2 (the harness has
 *        the key), so the rest is frames from an authenticated peer;
 *     2  the harness listens as node 0 of a 2-node cluster and the
 *        transport, node 1, dials it; after node 1's Hello the rest of
 *        the input is what "node 0" answers;
 *     3  as 2, but the harness first answers with a genuine Hello and
 *        proof, so the rest is frames to the dialler, which is UP.
 *   byte 1: the input goes out in chunks of (byte1 % 64) bytes, the loop
 *        running between them (0: all at once), so frames arrive split.
 *
 * Then EOF. The transport must close the connection (a refusal, a peer
 * failure, or a client that went away) without a crash, a sanitizer
 * report, a leak or a hang (5 s: abort()). Frames that reach the owner
 * are echoed back, and one whose body starts with 'F' makes the owner
 * fail the peer, so the send path and fail_peer run too.
 *
 * Thousands of connections a second would use up the loopback's port
 * pairs for minutes (TIME_WAIT): the harness connects from, and the
 * dialling transport connects to, one of LOOPBACKS addresses of
 * 127.0.0.0/8 in turn, and closes its end with a reset.
 *
 * The nodes listen on ports below the kernel's ephemeral range, so no
 * outgoing connection (the dialling transport's, the harness's) can hold
 * a node's port when the next input's transport binds it: with ports from
 * that range, a TIME_WAIT left by a dial from 127.0.0.1 on the same port
 * makes that bind fail even with SO_REUSEADDR (the dialling socket had
 * none), and the harness aborted. CI saw one such abort (or the EINTR of
 * connect_to below: the harness did not say which) after ~10^5 inputs.
 *
 * Run with -close_fd_mask=2 (tests/fuzz/run-fuzzer.sh does): the
 * transport logs every refusal, and its lines go to /dev/null while
 * libFuzzer's own output and sanitizer reports stay visible. The
 * harness's own reasons to abort go to a copy of stderr it keeps.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "rpc/auth.h"
#include "rpc/frame.h"
#include "rpc/transport.h"

#define LOOPBACKS 32 /* 127.0.0.2 ... */

static struct cluster_config cfg3, cfg2; /* modes 0-1, modes 2-3 */
static int listen_fds[LOOPBACKS];        /* node 0 of cfg2 (modes 2-3), per address */
static unsigned turn;                    /* which loopback address this input uses */
static int report_fd = 2;                /* stderr, kept from -close_fd_mask */

/* The harness cannot go on: say why (where libFuzzer's output goes) and
 * abort, which libFuzzer reports with the input that did it. */
static void harness_fail(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int saved = errno;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(report_fd, "fuzz harness: %s (errno %d: %s)\n", msg, saved, strerror(saved));
	abort();
}

static void loopback(unsigned i, char *buf, size_t len)
{
	snprintf(buf, len, "127.0.0.%u", 2 + i % LOOPBACKS);
}

static struct sockaddr_in loopback_addr(unsigned i, int port)
{
	char ip[32];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	loopback(i, ip, sizeof(ip));
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

/* Close with a reset: no TIME_WAIT left behind. */
static void close_hard(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port of 20000..(first ephemeral port - 1) that 127.0.0.1 can bind
 * now: the next one after the last returned, the first at a place the pid
 * picks so that two fuzzers running at once differ. */
static int next_port = 0;
static int free_port(void)
{
	int lo = 32768, hi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%d %d", &lo, &hi) != 2)
			lo = 32768;
		fclose(f);
	}
	if (lo <= 20000 + 64)
		harness_fail("the ephemeral range starts at %d, too low to listen below it", lo);
	if (!next_port)
		next_port = 20000 + (int)(getpid() % (unsigned)(lo - 20000));
	for (int tries = 0; tries < lo - 20000; tries++) {
		int port = next_port++;
		if (next_port >= lo)
			next_port = 20000;
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			harness_fail("socket");
		int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	harness_fail("no free port in 20000..%d", lo - 1);
	return -1;
}

static void make_cfg(struct cluster_config *c, int n)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "fuzz");
	c->key_len = 32;
	memset(c->key, 0x42, c->key_len);
	c->heartbeat_ms = 1000;
	c->peer_timeout_ms = 5000;
	c->connect_timeout_ms = 5000;
	c->hello_timeout_ms = 5000;
	c->proof_timeout_ms = 5000;
	c->n_nodes = n;
	for (int i = 0; i < n; i++) {
		snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "n%d", i);
		snprintf(c->nodes[i].address, sizeof(c->nodes[i].address), "127.0.0.1");
		c->nodes[i].port = free_port();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* libFuzzer applies -close_fd_mask after this: keep stderr. */
	int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (fd >= 0)
		report_fd = fd;
	make_cfg(&cfg3, 3);
	make_cfg(&cfg2, 2);
	for (unsigned i = 0; i < LOOPBACKS; i++) {
		struct sockaddr_in a = loopback_addr(i, cfg2.nodes[0].port);
		int one = 1;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)
			harness_fail("listen on %s port %d", inet_ntoa(a.sin_addr), cfg2.nodes[0].port);
		listen_fds[i] = fd;
	}
	return 0;
}

/* ---- the transport and what it hands its owner ---- */

struct run {
	uv_loop_t loop;
	struct rpc_transport *t;
};

static void on_frame(void *opaque, int peer, const struct rpc_frame_view *f)
{
	struct run *r = opaque;
	if (f->body_len && f->body[0] == 'F') {
		rpc_transport_fail_peer(r->t, peer, "fuzz: the owner fails the peer");
		return;
	}
	rpc_transport_send(r->t, peer, f->type, f->body_len ? f->body : NULL, f->body_len,
			   f->page);
}

static const struct rpc_callbacks callbacks = { .on_frame = on_frame };

static void run_open(struct run *r, const struct cluster_config *cfg, int self)
{
	int rc = uv_loop_init(&r->loop);
	if (rc == 0)
		rc = rpc_tcp_transport_create(&r->loop, cfg, self, &callbacks, r, &r->t);
	if (rc == 0)
		rc = rpc_transport_start(r->t);
	if (rc < 0) {
		errno = -rc;
		harness_fail("node %d's transport did not start on port %d", self,
			     cfg->nodes[self].port);
	}
}

static void run_close(struct run *r)
{
	rpc_transport_stop(r->t);
	uv_run(&r->loop, UV_RUN_DEFAULT); /* until every handle closed */
	rpc_transport_destroy(r->t);
	if (uv_loop_close(&r->loop) != 0)
		harness_fail("a handle outlived the transport");
}

/* ---- the harness's end of the connection ---- */

/* Read what is there; false once the transport closed the connection. */
static bool drain(int fd)
{
	uint8_t sink[16384];
	for (;;) {
		ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0)
			return false;
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	}
}

/* Run the loop until one whole frame arrived on @fd: its type and body
 * (at most @cap bytes). False if the connection closed first. */
static bool recv_frame(struct run *r, int fd, uint16_t *type, uint8_t *body, size_t cap,
		       size_t *len)
{
	uint8_t buf[RPC_FRAME_HEADER_SIZE + 1024];
	size_t have = 0;
	int64_t start = now_ms();
	struct rpc_frame_view v;

	for (;;) {
		long n = rpc_frame_parse(buf, have, &v, NULL, 0);
		if (n > 0) {
			if (v.body_len > cap)
				return false;
			memcpy(body, v.body, v.body_len);
			*type = v.type;
			*len = v.body_len;
			return true;
		}
		if (n < 0 || have == sizeof(buf))
			return false;
		uv_run(&r->loop, UV_RUN_NOWAIT);
		ssize_t got = recv(fd, buf + have, 1, MSG_DONTWAIT); /* one frame, no more */
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return false;
		if (got > 0)
			have += (size_t)got;
		if (now_ms() - start > 5000)
			harness_fail("hang: no handshake frame from the transport");
	}
}

static void send_all(int fd, uint16_t type, const uint8_t *body, size_t len)
{
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	rpc_frame_header_encode(hdr, type, 0, (uint32_t)len);
	if (send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) != (ssize_t)sizeof(hdr) ||
	    send(fd, body, len, MSG_NOSIGNAL) != (ssize_t)len)
		harness_fail("send of a handshake frame"); /* a fresh socket takes it */
}

/* Our Hello as node @self of @cfg (auth state @a, fresh). */
static void say_hello(int fd, const struct cluster_config *cfg, int self, struct rpc_auth *a)
{
	uint8_t buf[RPC_AUTH_HELLO_MAX];
	rpc_auth_init(a, cfg, self);
	long n = rpc_auth_make_hello(a, buf, sizeof(buf));
	if (n < 0)
		harness_fail("make a Hello");
	send_all(fd, RPC_MSG_HELLO, buf, (size_t)n);
}

/* Check the transport's Hello (it is node @peer) with @a. */
static bool take_hello(struct run *r, int fd, struct rpc_auth *a, int peer)
{
	uint8_t body[RPC_AUTH_HELLO_MAX];
	uint16_t type;
	size_t len;
	return recv_frame(r, fd, &type, body, sizeof(body), &len) && type == RPC_MSG_HELLO &&
	       rpc_auth_on_hello(a, body, len, peer, NULL, 0) == peer;
}

static void send_proof(int fd, const struct rpc_auth *a)
{
	uint8_t buf[RPC_AUTH_PROOF_MAX];
	long n = rpc_auth_make_proof(a, buf, sizeof(buf));
	if (n < 0)
		harness_fail("make a proof");
	send_all(fd, RPC_MSG_AUTH, buf, (size_t)n);
}

/* The input goes out in chunks; EOF; wait for the transport to close. */
static void drive(struct run *r, int fd, const uint8_t *data, size_t len, size_t chunk)
{
	size_t off = 0;
	bool shut = false;
	int64_t start = now_ms();

	for (;;) {
		if (off < len) {
			size_t n = chunk && chunk < len - off ? chunk : len - off;
			ssize_t w = send(fd, data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				off = len; /* the transport closed already */
		} else if (!shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		uv_run(&r->loop, UV_RUN_NOWAIT);
		if (!drain(fd))
			return;
		if (now_ms() - start > 5000)
			harness_fail("hang: the transport kept a connection 5 s after its EOF");
	}
}

/* Connect to 127.0.0.1:@port from this input's loopback address, the
 * loop running meanwhile. Non-blocking: a loopback connect is nearly
 * always at once, but one in ~10^5 waited for a SYN retransmit (1 s),
 * and a blocking connect() then failed with EINTR when libFuzzer's
 * -timeout alarm went off. */
static int connect_to(struct run *r, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)port) };
	struct sockaddr_in src = loopback_addr(turn, 0);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
		harness_fail("bind to %s", inet_ntoa(src.sin_addr));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (errno != EINPROGRESS)
		harness_fail("connect to port %d from %s", port, inet_ntoa(src.sin_addr));
	int64_t start = now_ms();
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		uv_run(&r->loop, UV_RUN_NOWAIT);
		if (poll(&p, 1, 1) == 1) {
			int err = 0;
			socklen_t len = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err == 0)
				return fd;
			errno = err;
			harness_fail("connect to port %d from %s", port, inet_ntoa(src.sin_addr));
		}
		if (now_ms() - start > 5000)
			harness_fail("hang: connect to port %d from %s", port,
				     inet_ntoa(src.sin_addr));
	}
}

/* The transport (node 1) dials us: accept it. */
static int accept_dial(struct run *r)
{
	int64_t start = now_ms();
	for (;;) {
		uv_run(&r->loop, UV_RUN_NOWAIT);
		int fd = accept4(listen_fds[turn % LOOPBACKS], NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (now_ms() - start > 5000)
			harness_fail("hang: node 1 never dialled");
		usleep(100);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run r;
	struct rpc_auth a;
	int fd;

	if (size < 2)
		return 0;
	int mode = data[0] % 4;
	size_t chunk = data[1] % 64;
	data += 2;
	size -= 2;
	turn++;

	if (mode <= 1) {
		run_open(&r, &cfg3, 0);
		fd = connect_to(&r, cfg3.nodes[0].port);
		if (mode == 1) {
			say_hello(fd, &cfg3, 2, &a);
			if (!take_hello(&r, fd, &a, 0))
				harness_fail("node 0 did not answer a genuine Hello");
			uint8_t body[RPC_AUTH_PROOF_MAX];
			uint16_t type;
			size_t len;
			if (!recv_frame(&r, fd, &type, body, sizeof(body), &len) || type != RPC_MSG_AUTH)
				harness_fail("node 0 sent no proof after its Hello");
			send_proof(fd, &a);
		}
	} else {
		int stale, lfd = listen_fds[turn % LOOPBACKS];
		while ((stale = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
			close_hard(stale); /* dials left over from an earlier input */
		loopback(turn, cfg2.nodes[0].address, sizeof(cfg2.nodes[0].address));
		run_open(&r, &cfg2, 1);
		fd = accept_dial(&r);
		rpc_auth_init(&a, &cfg2, 0);
		if (!take_hello(&r, fd, &a, 1))
			harness_fail("node 1 did not say Hello first");
		if (mode == 3) {
			uint8_t buf[RPC_AUTH_HELLO_MAX];
			long n = rpc_auth_make_hello(&a, buf, sizeof(buf));
			send_all(fd, RPC_MSG_HELLO, buf, (size_t)n);
			send_proof(fd, &a);
		}
	}
	drive(&r, fd, data, size, chunk);
	close_hard(fd);
	run_close(&r);
	return 0;
}
