/* A raw client for the transport tests (raw_peer.h). */
#include "raw_peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sodium.h>

#include "membership.pb-c.h"
#include "rpc/frame.h"

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int socket_from(const char *src_ip, const char *ip, int port, struct sockaddr_in *dst)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (src_ip) {
		struct sockaddr_in src = { .sin_family = AF_INET };
		assert_int_equal(inet_pton(AF_INET, src_ip, &src.sin_addr), 1);
		assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
	}
	*dst = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	assert_int_equal(inet_pton(AF_INET, ip, &dst->sin_addr), 1);
	return fd;
}

int raw_connect_from(const char *src_ip, const char *ip, int port)
{
	struct sockaddr_in dst;
	int fd = socket_from(src_ip, ip, port, &dst);
	assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
	return fd;
}

int raw_connect(int port)
{
	return raw_connect_from(NULL, "127.0.0.1", port);
}

int raw_connect_nowait(const char *src_ip, const char *ip, int port)
{
	struct sockaddr_in dst;
	int fd = socket_from(src_ip, ip, port, &dst);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	int r = connect(fd, (struct sockaddr *)&dst, sizeof(dst));
	assert_true(r == 0 || errno == EINPROGRESS);
	return fd;
}

void raw_write(int fd, const void *b, size_t n)
{
	assert_int_equal(write(fd, b, n), (ssize_t)n);
}

void raw_send_frame(int fd, uint16_t type, const void *body, size_t len)
{
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	rpc_frame_header_encode(hdr, type, 0, (uint32_t)len);
	raw_write(fd, hdr, sizeof(hdr));
	if (len)
		raw_write(fd, body, len);
}

/* Exactly @n bytes into @buf by @deadline; false on EOF, error, timeout. */
static bool read_all(int fd, uint8_t *buf, size_t n, int64_t deadline)
{
	size_t got = 0;
	while (got < n) {
		int left = (int)(deadline - mono_ms());
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

long raw_recv_frame(int fd, int ms, uint16_t *type, uint8_t *body, size_t cap)
{
	int64_t dl = mono_ms() + ms;
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	if (!read_all(fd, hdr, sizeof(hdr), dl))
		return -1;
	uint32_t len = (uint32_t)hdr[4] | (uint32_t)hdr[5] << 8 | (uint32_t)hdr[6] << 16 |
		       (uint32_t)hdr[7] << 24;
	*type = (uint16_t)(hdr[2] | hdr[3] << 8);
	if (len > cap || !read_all(fd, body, len, dl))
		return -1;
	return (long)len;
}

bool raw_closed(int fd, int ms)
{
	int64_t dl = mono_ms() + ms;
	uint8_t buf[4096];
	for (;;) {
		int left = (int)(dl - mono_ms());
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

bool raw_hello(int fd, const struct cluster_config *cfg, int claim, int member,
	       struct rpc_auth *a)
{
	uint8_t buf[1024];
	uint16_t type;
	char err[512];

	rpc_auth_init(a, cfg, claim);
	long n = rpc_auth_make_hello(a, buf, sizeof(buf));
	assert_true(n > 0);
	raw_send_frame(fd, RPC_MSG_HELLO, buf, (size_t)n);
	n = raw_recv_frame(fd, 5000, &type, buf, sizeof(buf));
	if (n < 0 || type != RPC_MSG_HELLO)
		return false;
	if (rpc_auth_on_hello(a, buf, (size_t)n, member, err, sizeof(err)) != member)
		fail_msg("the member's Hello: %s", err);
	n = raw_recv_frame(fd, 5000, &type, buf, sizeof(buf));
	return n > 0 && type == RPC_MSG_AUTH;
}

void raw_send_proof(int fd, const uint8_t *mac)
{
	Disco__AuthProof p = DISCO__AUTH_PROOF__INIT;
	uint8_t buf[64];
	p.mac.data = (uint8_t *)mac;
	p.mac.len = RPC_AUTH_MAC_LEN;
	raw_send_frame(fd, RPC_MSG_AUTH, buf, disco__auth_proof__pack(&p, buf));
}

const char *const raw_trick_names[RAW_N_TRICKS] = { "bad proof", "garbage", "EOF",
						    "replayed proof" };

bool raw_impostor(const struct cluster_config *cfg, int m, int claim, enum raw_trick trick,
		  int ms)
{
	struct rpc_auth a;
	uint8_t proof[RPC_AUTH_PROOF_MAX], mac[RPC_AUTH_MAC_LEN];
	long plen = 0;
	int fd;

	if (trick == RAW_REPLAY) {
		fd = raw_connect(cfg->nodes[m].port);
		assert_true(raw_hello(fd, cfg, claim, m, &a));
		plen = rpc_auth_make_proof(&a, proof, sizeof(proof)); /* right for that connection */
		assert_true(plen > 0);
		close(fd);
	}
	fd = raw_connect(cfg->nodes[m].port);
	assert_true(raw_hello(fd, cfg, claim, m, &a));
	switch (trick) {
	case RAW_BAD_PROOF:
		randombytes_buf(mac, sizeof(mac));
		raw_send_proof(fd, mac);
		break;
	case RAW_GARBAGE:
		raw_write(fd, "\xff\xfe garbage after a Hello\r\n", 26);
		break;
	case RAW_EOF:
		shutdown(fd, SHUT_WR);
		break;
	case RAW_REPLAY:
		raw_send_frame(fd, RPC_MSG_AUTH, proof, (size_t)plen);
		break;
	default:
		break;
	}
	bool closed = raw_closed(fd, ms);
	close(fd);
	return closed;
}

static int saved_stderr = -1;
static FILE *capture;

void stderr_capture_begin(void)
{
	capture = tmpfile();
	assert_non_null(capture);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
}

const char *stderr_capture_end(void)
{
	static char text[256 * 1024];
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	rewind(capture);
	size_t n = fread(text, 1, sizeof(text) - 1, capture);
	text[n] = '\0';
	fclose(capture);
	ssize_t w = write(STDERR_FILENO, text, n);
	(void)w;
	return text;
}

int count_lines(const char *text)
{
	int n = 0;
	for (; *text; text++)
		n += *text == '\n';
	return n;
}
