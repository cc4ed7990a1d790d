// SPDX-License-Identifier: GPL-2.0-or-later
/* Frame header encoding and parsing (rpc/frame.c), including a fuzz run. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/frame.h"

/* A whole frame in @buf: header, @body_len bytes of body pattern, then a
 * page pattern if @page. Returns the frame size. */
static size_t build(uint8_t *buf, uint16_t type, size_t body_len, int page)
{
	rpc_frame_header_encode(buf, type, page ? RPC_FRAME_FLAG_PAGE : 0, (uint32_t)body_len);
	for (size_t i = 0; i < body_len; i++)
		buf[RPC_FRAME_HEADER_SIZE + i] = (uint8_t)(i * 7 + 1);
	size_t n = RPC_FRAME_HEADER_SIZE + body_len;
	if (page) {
		for (size_t i = 0; i < RPC_PAGE_SIZE; i++)
			buf[n + i] = (uint8_t)(i ^ 0x5a);
		n += RPC_PAGE_SIZE;
	}
	return n;
}

static void test_header_layout(void **state)
{
	uint8_t h[8];
	rpc_frame_header_encode(h, 0x0102, RPC_FRAME_FLAG_PAGE, 0x0a0b0c0d);
	const uint8_t want[8] = { RPC_FRAME_VERSION, 0x01, 0x02, 0x01, 0x0d, 0x0c, 0x0b, 0x0a };
	assert_memory_equal(h, want, 8);
}

static void round_trip(size_t body_len, int page)
{
	uint8_t *buf = malloc(RPC_FRAME_HEADER_SIZE + body_len + RPC_PAGE_SIZE);
	size_t n = build(buf, RPC_MSG_DSM, body_len, page);
	struct rpc_frame_view v;
	char err[128];

	memset(&v, 0xee, sizeof(v));
	assert_int_equal(rpc_frame_parse(buf, n, &v, err, sizeof(err)), (long)n);
	assert_int_equal(v.type, RPC_MSG_DSM);
	assert_int_equal(v.flags, page ? RPC_FRAME_FLAG_PAGE : 0);
	assert_int_equal(v.body_len, body_len);
	assert_ptr_equal(v.body, buf + RPC_FRAME_HEADER_SIZE);
	if (page) {
		assert_ptr_equal(v.page, buf + RPC_FRAME_HEADER_SIZE + body_len);
		assert_int_equal(v.page[4095], (uint8_t)(4095 ^ 0x5a));
	} else {
		assert_null(v.page);
	}
	/* Trailing bytes of a next frame do not change the answer. */
	uint8_t *big = malloc(n + 3);
	memcpy(big, buf, n);
	memset(big + n, RPC_FRAME_VERSION, 3);
	assert_int_equal(rpc_frame_parse(big, n + 3, &v, NULL, 0), (long)n);
	free(big);
	free(buf);
}

static void test_round_trip(void **state)
{
	round_trip(0, 0);
	round_trip(0, 1);
	round_trip(64, 0);
	round_trip(64, 1);
	round_trip(RPC_FRAME_MAX_BODY, 0);
	round_trip(RPC_FRAME_MAX_BODY, 1);
}

static void test_truncated(void **state)
{
	for (int page = 0; page <= 1; page++) {
		uint8_t buf[8 + 100 + 4096];
		size_t n = build(buf, RPC_MSG_PONG, 100, page);
		for (size_t len = 0; len < n; len++) {
			struct rpc_frame_view v;
			assert_int_equal(rpc_frame_parse(buf, len, &v, NULL, 0), 0);
		}
		assert_int_equal(rpc_frame_parse(buf, n, NULL, NULL, 0), (long)n);
	}
}

static void expect_fault(const uint8_t *buf, size_t len, long code, const char *word)
{
	char err[128] = "";
	struct rpc_frame_view v;
	assert_int_equal(rpc_frame_parse(buf, len, &v, err, sizeof(err)), code);
	assert_non_null(strstr(err, word));
}

static void test_bad_headers(void **state)
{
	uint8_t buf[8];

	rpc_frame_header_encode(buf, RPC_MSG_DSM, 0, 4);
	buf[0] = 2;
	expect_fault(buf, 8, -EPROTO, "version");
	expect_fault(buf, 1, -EPROTO, "version"); /* refused before the header is whole */
	buf[0] = 0;
	expect_fault(buf, 8, -EPROTO, "version");

	rpc_frame_header_encode(buf, RPC_MSG_DSM, 0x02, 4);
	expect_fault(buf, 8, -EPROTO, "flag");
	rpc_frame_header_encode(buf, RPC_MSG_DSM, 0x81, 4);
	expect_fault(buf, 8, -EPROTO, "flag");

	rpc_frame_header_encode(buf, 0, 0, 4);
	expect_fault(buf, 8, -EPROTO, "type");
	rpc_frame_header_encode(buf, 200, 0, 4);
	expect_fault(buf, 8, -EPROTO, "type");
	rpc_frame_header_encode(buf, 128, 0, 4);
	expect_fault(buf, 8, -EPROTO, "type");
	rpc_frame_header_encode(buf, 0xffff, 0, 4);
	expect_fault(buf, 4, -EPROTO, "type");
	rpc_frame_header_encode(buf, RPC_MSG_TYPE_MAX, 0, 0);
	assert_int_equal(rpc_frame_parse(buf, 8, NULL, NULL, 0), 8);

	rpc_frame_header_encode(buf, RPC_MSG_DSM, 0, RPC_FRAME_MAX_BODY + 1);
	expect_fault(buf, 8, -EMSGSIZE, "exceeds");
	rpc_frame_header_encode(buf, RPC_MSG_DSM, RPC_FRAME_FLAG_PAGE, 0xffffffffu);
	expect_fault(buf, 8, -EMSGSIZE, "exceeds");
	/* A NULL err buffer is fine. */
	assert_int_equal(rpc_frame_parse(buf, 8, NULL, NULL, 0), -EMSGSIZE);
}

/* xorshift64*: a fixed seed makes a failure reproducible. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void test_fuzz(void **state)
{
	enum { N = 100000, MAXLEN = 128 };
	long counts[3] = { 0 }; /* need more, error, frame */

	for (int i = 0; i < N; i++) {
		size_t len = rnd() % (MAXLEN + 1);
		/* Exact-size heap buffer so ASan catches any overread. */
		uint8_t *buf = malloc(len ? len : 1);
		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)rnd();
		/* Bias half the inputs towards plausible headers so the
		 * deeper checks get exercised too. */
		if (i & 1) {
			if (len > 0)
				buf[0] = RPC_FRAME_VERSION;
			if (len > 1)
				buf[1] &= 0x03;
			if (len > 3)
				buf[3] = 0;
			if (len > 7 && (i & 2)) {
				buf[5] = buf[6] = buf[7] = 0;
				buf[4] &= 0x3f;
			}
		}
		struct rpc_frame_view v;
		char err[64];
		long r = rpc_frame_parse(buf, len, &v, err, sizeof(err));
		if (r > 0) {
			assert_true((size_t)r <= len);
			assert_true(r >= RPC_FRAME_HEADER_SIZE);
			assert_true(v.type >= 1 && v.type <= RPC_MSG_TYPE_MAX);
			assert_int_equal((size_t)r, RPC_FRAME_HEADER_SIZE + v.body_len +
							    (v.page ? RPC_PAGE_SIZE : 0));
			assert_true(v.body == buf + RPC_FRAME_HEADER_SIZE);
			counts[2]++;
		} else if (r == 0) {
			counts[0]++;
		} else {
			assert_true(r == -EPROTO || r == -EMSGSIZE);
			assert_true(strlen(err) > 0);
			counts[1]++;
		}
		free(buf);
	}
	/* The biased half must reach every outcome. */
	assert_true(counts[0] > 0);
	assert_true(counts[1] > 0);
	assert_true(counts[2] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_layout), cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncated),     cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_fuzz),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
