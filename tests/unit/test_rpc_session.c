/*
 * The session layer (rpc/session.h) against hostile clients: members of
 * a 2- and a 3-node cluster, each a session with its own loop thread in
 * this process, join while clients without the key pose as the node that
 * is still missing (a Hello naming it, then a bad proof, garbage, EOF or
 * a replayed proof).
 * rpc_session_start() must return 0 on every member once the real node
 * arrives, never "a peer failed while joining". And a join that times out
 * names why the missing node's last handshake failed (here: a wrong key).
 *
 * The config is YAML (cluster_config_load_string()), so the defaults of
 * cluster.hello_timeout_ms and proof_timeout_ms are the real ones; ports
 * are free ports the kernel picked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include "raw_peer.h"
#include "rpc/frame.h"
#include "rpc/session.h"

#define MAXN 3

static char keydir[] = "/tmp/disco-test-session-XXXXXX";

static void write_key(const char *name, uint8_t byte)
{
	char path[256];
	uint8_t key[32];
	memset(key, byte, sizeof(key));
	snprintf(path, sizeof(path), "%s/%s", keydir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(key, 1, sizeof(key), f), sizeof(key));
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
}

/* A port nobody listens on now (the kernel's choice). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static struct cluster_config *make_config(int count, const int *ports, const char *key,
					  unsigned connect_timeout_ms)
{
	char yaml[2048], err[512];
	struct cluster_config *cfg = NULL;
	size_t o = (size_t)snprintf(yaml, sizeof(yaml),
				    "cluster:\n  name: hostile\n  auth: { key_file: %s/%s }\n"
				    "  heartbeat_ms: 100\n  peer_timeout_ms: 2000\n"
				    "  connect_timeout_ms: %u\nnodes:\n",
				    keydir, key, connect_timeout_ms);
	for (int i = 0; i < count; i++)
		o += (size_t)snprintf(yaml + o, sizeof(yaml) - o,
				      "  - { name: n%d, address: 127.0.0.1, port: %d }\n", i, ports[i]);
	if (cluster_config_load_string(yaml, "test.yaml", &cfg, err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	return cfg;
}

/* A member: rpc_session_start() runs on a thread of its own, since it
 * returns only once every peer joined. */
struct member {
	struct rpc_session *s;
	pthread_t th;
	int rc;
	char err[1024];
};

static void *start_main(void *arg)
{
	struct member *m = arg;
	m->rc = rpc_session_start(m->s, m->err, sizeof(m->err));
	return NULL;
}

static void member_start(struct member *m, const struct cluster_config *cfg, int self)
{
	assert_int_equal(rpc_session_create(cfg, self, &m->s), 0);
	pthread_create(&m->th, NULL, start_main, m);
}

/* Wait until @port accepts connections. */
static void wait_listening(int port)
{
	for (int i = 0; i < 500; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
		close(fd);
		if (r == 0)
			return;
		usleep(10 * 1000);
	}
	fail_msg("nobody listens on port %d", port);
}

static void join_past_impostors(int count)
{
	int ports[MAXN], last = count - 1;
	struct member m[MAXN] = { 0 };

	for (int i = 0; i < count; i++)
		ports[i] = free_port();
	struct cluster_config *cfg = make_config(count, ports, "key", 15000);
	for (int i = 0; i < last; i++)
		member_start(&m[i], cfg, i);
	for (int i = 0; i < last; i++)
		wait_listening(ports[i]);
	for (int i = 0; i < last; i++)
		for (int k = 0; k < RAW_N_TRICKS; k++)
			assert_true(raw_impostor(cfg, i, last, (enum raw_trick)k, 3000));
	member_start(&m[last], cfg, last);
	for (int i = 0; i < count; i++) {
		pthread_join(m[i].th, NULL);
		if (m[i].rc != 0)
			fail_msg("node n%d: rpc_session_start: %s (%s)", i, strerror(-m[i].rc),
				 m[i].err);
		assert_int_equal(rpc_session_peers_down(m[i].s), 0);
	}
	print_message("%d sessions joined past %d impostors\n", count, RAW_N_TRICKS * last);
	for (int i = 0; i < count; i++)
		rpc_session_stop(m[i].s);
	for (int i = 0; i < count; i++)
		rpc_session_destroy(m[i].s);
	cluster_config_free(cfg);
}

static void test_two_members_join_past_impostors(void **state)
{
	join_past_impostors(2);
}

static void test_three_members_join_past_impostors(void **state)
{
	join_past_impostors(3);
}

/* Node 1 has another key: the join times out (it does not fail at the
 * first refused proof, since an impostor could send one), and the error
 * names the reason. */
static void test_timeout_names_the_handshake_error(void **state)
{
	int ports[2] = { free_port(), free_port() };
	struct cluster_config *c0 = make_config(2, ports, "key", 1500);
	struct cluster_config *c1 = make_config(2, ports, "other.key", 1500);
	struct member m[2] = { 0 };

	member_start(&m[0], c0, 0);
	member_start(&m[1], c1, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(m[i].th, NULL);
		print_message("n%d: %s\n", i, m[i].err);
		assert_int_equal(m[i].rc, -ETIMEDOUT);
		assert_non_null(strstr(m[i].err, "wrong key (bad HMAC)"));
		rpc_session_destroy(m[i].s);
	}
	assert_non_null(strstr(m[0].err, "waiting for n1 (127.0.0.1:"));
	assert_non_null(strstr(m[0].err, "[last handshake: connection from 127.0.0.1:"));
	cluster_config_free(c0);
	cluster_config_free(c1);
}

static int setup(void **state)
{
	if (!mkdtemp(keydir))
		return -1;
	write_key("key", 0x5a);
	write_key("other.key", 0xa5);
	return 0;
}

static int teardown(void **state)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/key", keydir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/other.key", keydir);
	unlink(path);
	rmdir(keydir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_members_join_past_impostors),
		cmocka_unit_test(test_three_members_join_past_impostors),
		cmocka_unit_test(test_timeout_names_the_handshake_error),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
