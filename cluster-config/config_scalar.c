// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Syntax of the scalar values in a cluster file: integers, memory sizes,
 * names and network addresses. Pure string functions with no YAML and no
 * messages, so they are easy to test and reuse.
 *
 * Addresses: an IPv4 or IPv6 literal as inet_pton() takes it, or a DNS
 * host name made of RFC 1123 labels. A name whose last label is all digits
 * is refused (RFC 1123 2.1: such a name could be confused with an address),
 * which is what turns typos like "10.0.0." or "10.0.0.256" into errors
 * instead of DNS look-ups that fail at run time.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

bool cfg_parse_uint(const char *s, uint64_t *out)
{
	uint64_t x = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*out = x;
	return true;
}

bool cfg_parse_size(const char *s, uint64_t *out)
{
	size_t n = s ? strlen(s) : 0;
	char digits[32];
	unsigned shift = 0;
	uint64_t x;

	if (n == 0 || n >= sizeof(digits))
		return false;
	switch (s[n - 1]) {
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	case 'T': case 't': shift = 40; break;
	default: break;
	}
	if (shift)
		n--;
	memcpy(digits, s, n);
	digits[n] = '\0';
	if (!cfg_parse_uint(digits, &x) || x > (UINT64_MAX >> shift))
		return false;
	*out = x << shift;
	return true;
}

bool cfg_valid_name(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++) {
		unsigned char ch = (unsigned char)s[n];

		if (!isascii(ch) || !(isalnum(ch) || ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return n >= 1 && n <= CLUSTER_NAME_MAX - 1;
}

static bool is_literal(const char *s, int *family, unsigned char bin[16])
{
	if (inet_pton(AF_INET, s, bin) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, bin) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

static bool valid_host_name(const char *s)
{
	size_t n = strlen(s);
	const char *label = s;
	bool all_digits = true;

	if (n > 0 && s[n - 1] == '.') /* fully qualified: "host.example.com." */
		n--;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		unsigned char ch = i < n ? (unsigned char)s[i] : '.';

		if (ch == '.') {
			size_t len = (size_t)(s + i - label);

			if (len == 0 || len > 63 || label[0] == '-' || label[len - 1] == '-')
				return false;
			if (i == n && all_digits)
				return false; /* numeric top label: a broken address */
			label = s + i + 1;
			all_digits = true;
		} else if (isascii(ch) && (isalnum(ch) || ch == '-')) {
			if (!isdigit(ch))
				all_digits = false;
		} else {
			return false;
		}
	}
	return true;
}

bool cfg_valid_address(const char *s)
{
	int family;
	unsigned char bin[16];

	return is_literal(s, &family, bin) || valid_host_name(s);
}

bool cfg_same_address(const char *a, const char *b)
{
	int fa, fb;
	unsigned char ba[16], bb[16];
	size_t la = strlen(a), lb = strlen(b);

	if (is_literal(a, &fa, ba) && is_literal(b, &fb, bb))
		return fa == fb && !memcmp(ba, bb, fa == AF_INET ? 4 : 16);
	/* "Host.example." and "host.example" are the same name. */
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && !strncasecmp(a, b, la);
}
