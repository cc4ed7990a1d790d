/*
 * Unit tests of the scalar syntax helpers of cluster-config: integers,
 * memory sizes, names, addresses (the "looks numeric but isn't an IPv4"
 * rule in particular), address equality and the quoting used in messages.
 * These are table-driven so adding a case is one line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config_internal.h"

static void test_parse_uint(void **state)
{
	uint64_t x = 7;

	assert_true(cfg_parse_uint("0", &x));
	assert_int_equal(x, 0);
	assert_true(cfg_parse_uint("18446744073709551615", &x));
	assert_true(x == UINT64_MAX);
	assert_false(cfg_parse_uint("18446744073709551616", &x)); /* overflow */
	assert_false(cfg_parse_uint("", &x));
	assert_false(cfg_parse_uint("-1", &x));
	assert_false(cfg_parse_uint("+1", &x));
	assert_false(cfg_parse_uint("1 ", &x));
	assert_false(cfg_parse_uint("0x10", &x));
	assert_false(cfg_parse_uint("1e3", &x));
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t bytes;
	} ok[] = {
		{"1048576", 1048576}, {"512M", 512ull << 20}, {"2G", 2ull << 30},
		{"64G", 64ull << 30}, {"1T", 1ull << 40},     {"4K", 4096},
		{"2m", 2ull << 20},   {"0", 0},
	};
	static const char *const bad[] = {"",   "12Q", "M",  "1.5G", "-2M", "2 M",
					  "2MB", "2Mi", "0x2M", "16777216T", "99999999999999999999"};
	uint64_t x;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_true(cfg_parse_size(ok[i].s, &x));
		assert_true(x == ok[i].bytes);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cfg_parse_size(bad[i], &x))
			fail_msg("size \"%s\" accepted", bad[i]);
	}
}

static void test_valid_name(void **state)
{
	char max[64], over[65];

	memset(max, 'a', 63);
	max[63] = '\0';
	memset(over, 'a', 64);
	over[64] = '\0';
	assert_true(cfg_valid_name("n0"));
	assert_true(cfg_valid_name("local-2node"));
	assert_true(cfg_valid_name("a.b_c-D9"));
	assert_true(cfg_valid_name(max));
	assert_false(cfg_valid_name(over));
	assert_false(cfg_valid_name(""));
	assert_false(cfg_valid_name("with space"));
	assert_false(cfg_valid_name("slash/"));
	assert_false(cfg_valid_name("caf\xc3\xa9"));
}

static void test_valid_address(void **state)
{
	static const char *const ok[] = {
		"127.0.0.1", "10.0.1.11", "::1", "fe80::1", "2001:db8::42", "::ffff:10.0.0.1",
		"localhost", "node-1", "n1.rack.example.com", "n1.rack.example.com.", "a",
		"1host", "host.1a",
	};
	static const char *const bad[] = {
		"10.0.0.", "10.0.0", "10.0.0.256", "1.2.3.4.5", "256.1.1.1", "", ".",
		"-host", "host-", "a..b", "ho_st", "host name", "[::1]", "::1%eth0",
		"example.123", "::g",
	};
	char long_label[80];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!cfg_valid_address(ok[i]))
			fail_msg("address \"%s\" refused", ok[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cfg_valid_address(bad[i]))
			fail_msg("address \"%s\" accepted", bad[i]);
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	assert_false(cfg_valid_address(long_label)); /* labels are at most 63 */
	strcpy(long_label + 63, ".com");
	assert_true(cfg_valid_address(long_label));
}

static void test_same_address(void **state)
{
	assert_true(cfg_same_address("127.0.0.1", "127.0.0.1"));
	assert_true(cfg_same_address("::1", "0:0::1"));
	assert_true(cfg_same_address("Host.Example", "host.example."));
	assert_false(cfg_same_address("127.0.0.1", "127.0.0.2"));
	assert_false(cfg_same_address("::ffff:127.0.0.1", "127.0.0.1")); /* not resolved */
	assert_false(cfg_same_address("host", "host2"));
}

static void test_quote(void **state)
{
	char buf[CFG_QUOTE_MAX], tiny[12];
	char longs[300];

	assert_string_equal(cfg_quote(buf, sizeof(buf), "10.0.0."), "\"10.0.0.\"");
	assert_string_equal(cfg_quote(buf, sizeof(buf), "a\"b\\c\n\x01"),
			    "\"a\\\"b\\\\c\\n\\x01\"");
	assert_string_equal(cfg_quote(tiny, sizeof(tiny), "abcdefghijkl"), "\"abcdef...\"");
	/* DEL, ESC and every byte >= 0x80 (here UTF-8 for "\u00e9") are escapes:
	 * a message is one line of printable ASCII. */
	assert_string_equal(cfg_quote(buf, sizeof(buf), "x\x7f\x1b[2J\xc3\xa9\xff"),
			    "\"x\\x7f\\x1b[2J\\xc3\\xa9\\xff\"");
	memset(longs, 'x', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	cfg_quote(buf, sizeof(buf), longs);
	assert_true(strlen(buf) < sizeof(buf));
	assert_string_equal(buf + strlen(buf) - 4, "...\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_uint),    cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_valid_name),    cmocka_unit_test(test_valid_address),
		cmocka_unit_test(test_same_address),  cmocka_unit_test(test_quote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
