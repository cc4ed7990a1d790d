/* Challenge-response authentication (rpc/auth.c), both sides in memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "membership.pb-c.h"
#include "rpc/auth.h"
#include "rpc/frame.h"

static struct cluster_config *make_cfg(int n, const char *cluster, uint8_t key_byte)
{
	struct cluster_config *c = calloc(1, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", cluster);
	c->key_len = 32;
	memset(c->key, key_byte, c->key_len);
	c->heartbeat_ms = 200;
	c->peer_timeout_ms = 3000;
	c->n_nodes = n;
	for (int i = 0; i < n; i++) {
		snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "n%d", i);
		snprintf(c->nodes[i].address, sizeof(c->nodes[i].address), "127.0.0.1");
		c->nodes[i].port = 7400 + i;
	}
	return c;
}

struct msg {
	uint8_t b[256];
	size_t n;
};

static struct msg hello(const struct rpc_auth *a)
{
	struct msg m;
	long n = rpc_auth_make_hello(a, m.b, sizeof(m.b));
	assert_true(n > 0);
	m.n = (size_t)n;
	return m;
}

static struct msg proof(const struct rpc_auth *a)
{
	struct msg m;
	long n = rpc_auth_make_proof(a, m.b, sizeof(m.b));
	assert_true(n > 0);
	m.n = (size_t)n;
	return m;
}

/* A Hello with chosen fields, as a hostile or misconfigured peer sends. */
static struct msg craft_hello(uint32_t version, const char *cluster, const char *name,
			      uint32_t index, size_t nonce_len)
{
	struct msg m;
	uint8_t nonce[64];
	Disco__Hello h = DISCO__HELLO__INIT;
	memset(nonce, 0x42, sizeof(nonce));
	h.protocol_version = version;
	h.cluster_name = (char *)cluster;
	h.node_name = (char *)name;
	h.node_index = index;
	h.nonce.data = nonce;
	h.nonce.len = nonce_len;
	m.n = disco__hello__pack(&h, m.b);
	return m;
}

/* The dialler (node 1) and the acceptor (node 0) exchange Hellos. */
static void exchange_hellos(struct rpc_auth *acc, struct rpc_auth *dial)
{
	char err[512];
	struct msg ha = hello(acc), hd = hello(dial);
	assert_int_equal(rpc_auth_on_hello(acc, hd.b, hd.n, -1, err, sizeof(err)), dial->self);
	assert_int_equal(rpc_auth_on_hello(dial, ha.b, ha.n, acc->self, err, sizeof(err)),
			 acc->self);
}

static void test_success(void **state)
{
	struct cluster_config *cfg = make_cfg(2, "lab", 0x11);
	struct rpc_auth a, b;
	char err[512];

	assert_int_equal(rpc_auth_init(&a, cfg, 0), 0);
	assert_int_equal(rpc_auth_init(&b, cfg, 1), 0);
	assert_memory_not_equal(a.nonce, b.nonce, RPC_AUTH_NONCE_LEN);
	exchange_hellos(&a, &b);
	assert_false(rpc_auth_done(&a));
	struct msg pa = proof(&a), pb = proof(&b);
	assert_int_equal(rpc_auth_check_proof(&a, pb.b, pb.n, err, sizeof(err)), 0);
	assert_int_equal(rpc_auth_check_proof(&b, pa.b, pa.n, err, sizeof(err)), 0);
	assert_true(rpc_auth_done(&a));
	assert_true(rpc_auth_done(&b));
	/* A second proof on the same connection is a protocol fault. */
	assert_int_equal(rpc_auth_check_proof(&a, pb.b, pb.n, err, sizeof(err)), -EPROTO);
	free(cfg);
}

/* The MAC is exactly HMAC-SHA256(key, "disco-auth-v1" || receiver_nonce ||
 * sender_nonce || u32le sender || u32le receiver), as documented. */
static void test_mac_input(void **state)
{
	struct cluster_config *cfg = make_cfg(3, "lab", 0x33);
	struct rpc_auth a, b;
	uint8_t in[13 + 32 + 32 + 8], mac[32];

	rpc_auth_init(&a, cfg, 0);
	rpc_auth_init(&b, cfg, 2);
	exchange_hellos(&a, &b);
	struct msg pb = proof(&b); /* sender 2, receiver 0 */
	Disco__AuthProof *p = disco__auth_proof__unpack(NULL, pb.n, pb.b);
	assert_non_null(p);
	assert_int_equal(p->mac.len, 32);
	memcpy(in, "disco-auth-v1", 13);
	memcpy(in + 13, a.nonce, 32);
	memcpy(in + 45, b.nonce, 32);
	const uint8_t idx[8] = { 2, 0, 0, 0, 0, 0, 0, 0 };
	memcpy(in + 77, idx, 8);
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, cfg->key, cfg->key_len);
	crypto_auth_hmacsha256_update(&st, in, sizeof(in));
	crypto_auth_hmacsha256_final(&st, mac);
	assert_memory_equal(p->mac.data, mac, 32);
	disco__auth_proof__free_unpacked(p, NULL);
	free(cfg);
}

static void test_wrong_key(void **state)
{
	struct cluster_config *ca = make_cfg(3, "lab", 0x11), *cb = make_cfg(3, "lab", 0x12);
	struct rpc_auth a, b;
	char err[512] = "";

	rpc_auth_init(&a, ca, 0);
	rpc_auth_init(&b, cb, 2);
	exchange_hellos(&a, &b); /* Hellos carry no secret: they pass */
	struct msg pa = proof(&a), pb = proof(&b);
	/* Node 0 accepted node 2's connection: until the proof, node 2 only
	 * claims who it is, and the message says so (not the configured
	 * address, which may not be where the connection came from). */
	assert_int_equal(rpc_auth_check_proof(&a, pb.b, pb.n, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "claims to be node n2: wrong key (bad HMAC)");
	/* Node 2 dialled node 0's configured address. */
	assert_int_equal(rpc_auth_check_proof(&b, pa.b, pa.n, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "node n0 (127.0.0.1:7400): wrong key (bad HMAC)");
	assert_false(rpc_auth_done(&a));
	assert_false(rpc_auth_done(&b));
	free(ca);
	free(cb);
}

static void test_wrong_cluster(void **state)
{
	struct cluster_config *ca = make_cfg(2, "lab", 0x11), *cb = make_cfg(2, "prod", 0x11);
	struct rpc_auth a, b;
	char err[512] = "";

	rpc_auth_init(&a, ca, 0);
	rpc_auth_init(&b, cb, 1);
	struct msg ha = hello(&a), hb = hello(&b);
	assert_int_equal(rpc_auth_on_hello(&a, hb.b, hb.n, -1, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "node n1"));
	assert_non_null(strstr(err, "\"prod\""));
	assert_int_equal(rpc_auth_on_hello(&b, ha.b, ha.n, 0, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "\"lab\""));
	/* No proof can be made without an accepted Hello. */
	uint8_t buf[64];
	assert_int_equal(rpc_auth_make_proof(&a, buf, sizeof(buf)), -EPROTO);
	free(ca);
	free(cb);
}

static void test_index_mismatch(void **state)
{
	struct cluster_config *cfg = make_cfg(3, "lab", 0x11);
	struct rpc_auth dialler, wrong;
	char err[512] = "";

	/* Node 2 dialled node 0, but node 1 answered. */
	rpc_auth_init(&dialler, cfg, 2);
	rpc_auth_init(&wrong, cfg, 1);
	struct msg h = hello(&wrong);
	assert_int_equal(rpc_auth_on_hello(&dialler, h.b, h.n, 0, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "node n0"));
	assert_non_null(strstr(err, "not the node we dialled"));
	/* The same Hello is fine when node 1 is the one we dialled. */
	assert_int_equal(rpc_auth_on_hello(&dialler, h.b, h.n, 1, err, sizeof(err)), 1);
	free(cfg);
}

static void test_bad_hellos(void **state)
{
	struct cluster_config *cfg = make_cfg(3, "lab", 0x11);
	struct rpc_auth a;
	char err[512];
	struct {
		struct msg m;
		int want;
		const char *word;
	} cases[] = {
		{ craft_hello(2, "lab", "n1", 1, 32), -EPROTO, "version" },
		{ craft_hello(1, "lab", "n1", 1, 31), -EPROTO, "nonce" },
		{ craft_hello(1, "lab", "n1", 1, 0), -EPROTO, "nonce" },
		{ craft_hello(1, "lab", "n1", 1, 33), -EPROTO, "nonce" },
		{ craft_hello(1, "lab", "evil", 1, 32), -EPERM, "\"evil\"" },
		{ craft_hello(1, "lab", "n0", 0, 32), -EPERM, "this node" },
		{ craft_hello(1, "lab", "n9", 9, 32), -EPERM, "out of range" },
		{ craft_hello(1, "lab", "x", 0xffffffffu, 32), -EPERM, "out of range" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rpc_auth_init(&a, cfg, 0);
		err[0] = 0;
		assert_int_equal(rpc_auth_on_hello(&a, cases[i].m.b, cases[i].m.n, -1, err,
						   sizeof(err)),
				 cases[i].want);
		if (!strstr(err, cases[i].word))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].word);
	}
	/* Truncated and garbage bodies. */
	struct msg good = craft_hello(1, "lab", "n1", 1, 32);
	for (size_t n = 0; n < good.n; n++) {
		rpc_auth_init(&a, cfg, 0);
		int r = rpc_auth_on_hello(&a, good.b, n, -1, err, sizeof(err));
		assert_true(r < 0);
	}
	rpc_auth_init(&a, cfg, 0);
	assert_int_equal(rpc_auth_on_hello(&a, good.b, good.n, -1, NULL, 0), 1);
	/* A second Hello is refused. */
	assert_int_equal(rpc_auth_on_hello(&a, good.b, good.n, -1, err, sizeof(err)), -EPROTO);
	free(cfg);
}

/* Names a peer sends reach messages escaped: a newline or a terminal
 * escape cannot forge a log line, and a long name is cut. */
static void test_hostile_names(void **state)
{
	struct cluster_config *cfg = make_cfg(3, "lab", 0x11);
	struct rpc_auth a;
	char err[512], longname[151]; /* a Hello still fits struct msg */

	rpc_auth_init(&a, cfg, 0);
	struct msg m = craft_hello(1, "lab\n\x1b[2Jdisco[n0]: info: \"x\\", "n1", 1, 32);
	assert_int_equal(rpc_auth_on_hello(&a, m.b, m.n, -1, err, sizeof(err)), -EPERM);
	assert_string_equal(err, "claims to be node n1: belongs to cluster "
				 "\"lab\\x0a\\x1b[2Jdisco[n0]: info: \\\"x\\\\\", we are \"lab\"");
	rpc_auth_init(&a, cfg, 0);
	m = craft_hello(1, "lab", "n1\r\x7f\xc3\xa9", 1, 32);
	assert_int_equal(rpc_auth_on_hello(&a, m.b, m.n, -1, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "calls itself \"n1\\x0d\\x7f\\xc3\\xa9\""));
	memset(longname, 'z', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	rpc_auth_init(&a, cfg, 0);
	m = craft_hello(1, longname, "n1", 1, 32);
	assert_int_equal(rpc_auth_on_hello(&a, m.b, m.n, -1, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "zzz...\", we are"));
	assert_true(strlen(err) < 200);
	free(cfg);
}

static void test_reflection_and_replay(void **state)
{
	struct cluster_config *cfg = make_cfg(2, "lab", 0x11);
	struct rpc_auth a, b, a2, b2;
	char err[512];

	/* Proof before Hello. */
	rpc_auth_init(&a, cfg, 0);
	uint8_t junk[34] = { 0x0a, 32 };
	assert_int_equal(rpc_auth_check_proof(&a, junk, sizeof(junk), err, sizeof(err)), -EPROTO);

	rpc_auth_init(&a, cfg, 0);
	rpc_auth_init(&b, cfg, 1);
	exchange_hellos(&a, &b);
	/* Reflection: A's own proof sent back to A. */
	struct msg pa = proof(&a), pb = proof(&b);
	assert_int_equal(rpc_auth_check_proof(&a, pa.b, pa.n, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "bad HMAC"));

	/* Replay: B's proof from the first connection on a second one. */
	rpc_auth_init(&a2, cfg, 0);
	rpc_auth_init(&b2, cfg, 1);
	exchange_hellos(&a2, &b2);
	assert_int_equal(rpc_auth_check_proof(&a2, pb.b, pb.n, err, sizeof(err)), -EACCES);

	/* A MAC of the wrong length, and a malformed proof. */
	Disco__AuthProof p = DISCO__AUTH_PROOF__INIT;
	uint8_t mac[31] = { 0 }, buf[64];
	p.mac.data = mac;
	p.mac.len = sizeof(mac);
	size_t n = disco__auth_proof__pack(&p, buf);
	rpc_auth_init(&a, cfg, 0);
	rpc_auth_init(&b, cfg, 1);
	exchange_hellos(&a, &b);
	assert_int_equal(rpc_auth_check_proof(&a, buf, n, err, sizeof(err)), -EPROTO);
	uint8_t bad[3] = { 0x0a, 0x20, 0x01 };
	assert_int_equal(rpc_auth_check_proof(&a, bad, sizeof(bad), err, sizeof(err)), -EPROTO);
	/* After the failures the genuine proof still verifies. */
	pb = proof(&b);
	assert_int_equal(rpc_auth_check_proof(&a, pb.b, pb.n, err, sizeof(err)), 0);
	free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success),
		cmocka_unit_test(test_mac_input),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_wrong_cluster),
		cmocka_unit_test(test_index_mismatch),
		cmocka_unit_test(test_bad_hellos),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_reflection_and_replay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
