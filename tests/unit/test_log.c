/*
 * rpc/log.c: escaping of text a peer sent, the last-line-of-defence
 * escaping in disco_log(), and the rate limit for warnings an anonymous
 * client can trigger at will. stderr is redirected to a temporary file
 * while a test logs, and read back (raw_peer.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpc/log.h"
#include "raw_peer.h"

static void test_escape(void **state)
{
	char buf[64];

	assert_string_equal(disco_escape_str(buf, sizeof(buf), "plain name-1.x"), "plain name-1.x");
	assert_string_equal(disco_escape_str(buf, sizeof(buf), "a\nb\x1b[2J\x7f\xc3\xa9\"\\"),
			    "a\\x0ab\\x1b[2J\\x7f\\xc3\\xa9\\\"\\\\");
	assert_string_equal(disco_escape(buf, sizeof(buf), "a\0b", 3), "a\\x00b");
	assert_string_equal(disco_escape_str(buf, sizeof(buf), NULL), "");
	/* Cut at a whole escape, marked. */
	assert_string_equal(disco_escape_str(buf, 12, "abcdefghijklmnop"), "abcdefgh...");
	assert_string_equal(disco_escape_str(buf, 12, "abcde\x01\x02"), "abcde...");
	assert_string_equal(disco_escape_str(buf, 4, "abc"), "");
	char big[200];
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	disco_escape_str(buf, sizeof(buf), big);
	assert_true(strlen(buf) < sizeof(buf));
	assert_string_equal(buf + strlen(buf) - 3, "...");
}

/* Whatever reaches disco_log() becomes one line of printable ASCII. */
static void test_log_line_is_one_line(void **state)
{
	disco_log_set_thread_node("n0");
	stderr_capture_begin();
	disco_log(DISCO_LOG_WARN, "hello from %s", "evil\ndisco[n0]: info: node n1 up\x1b[0m\xff");
	const char *out = stderr_capture_end();
	assert_string_equal(out, "disco[n0]: warn: hello from "
				 "evil\\x0adisco[n0]: info: node n1 up\\x1b[0m\\xff\n");
	/* A message longer than a line is cut, still ending in one newline. */
	char huge[3000];
	memset(huge, 'y', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	stderr_capture_begin();
	disco_log(DISCO_LOG_WARN, "%s", huge);
	out = stderr_capture_end();
	assert_int_equal(count_lines(out), 1);
	assert_true(strlen(out) <= 1024);
	assert_string_equal(out + strlen(out) - 4, "...\n");
}

/* A thousand warnings in a burst print one line; once the second is over,
 * a flush prints the count and the last of them. */
static void test_rate_limit(void **state)
{
	struct disco_log_limit lim = { 0 };

	disco_log_set_thread_node("n0");
	stderr_capture_begin();
	for (int i = 0; i < 1000; i++)
		disco_log_limited(&lim, DISCO_LOG_WARN, "refusing connection %d", i);
	disco_log_limit_flush(&lim); /* too early: nothing */
	const char *out = stderr_capture_end();
	assert_string_equal(out, "disco[n0]: warn: refusing connection 0\n");

	usleep(1100 * 1000);
	stderr_capture_begin();
	disco_log_limit_flush(&lim);
	disco_log_limit_flush(&lim); /* nothing left to say */
	out = stderr_capture_end();
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "disco[n0]: warn: 999 more like this in "));
	assert_non_null(strstr(out, "not shown; the last: refusing connection 999\n"));

	/* The next line after a quiet second is printed at once, and counts
	 * what came in between. */
	usleep(1100 * 1000);
	stderr_capture_begin();
	disco_log_limited(&lim, DISCO_LOG_WARN, "again");
	disco_log_limited(&lim, DISCO_LOG_WARN, "again");
	out = stderr_capture_end();
	assert_string_equal(out, "disco[n0]: warn: again\n");
	usleep(1100 * 1000);
	stderr_capture_begin();
	disco_log_limited(&lim, DISCO_LOG_WARN, "third");
	out = stderr_capture_end();
	assert_non_null(strstr(out, "disco[n0]: warn: third (and 1 more like this in "));
	assert_int_equal(count_lines(out), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_log_line_is_one_line),
		cmocka_unit_test(test_rate_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
