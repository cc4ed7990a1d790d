/*
 * Unit tests of cluster-config through its public API: the three example
 * files load with the fields they promise, defaults are filled in, node
 * names given in YAML order pick the default master, the initial page
 * homes follow the NUMA / interleave / node rules, and the edges of the
 * API (missing file, empty input, tiny error buffers, key file sizes and
 * relative paths) behave as documented. Invalid files are covered by the
 * corpus test (test_config_corpus.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster-config/cluster_config.h"

#define EX CONFIG_EXAMPLES_DIR "/"
#define MIB (1ull << 20)
#define GIB (1ull << 30)

static const char demo_key[] = "disco-demo-key-NOT-FOR-PRODUCTIO"; /* 32 bytes */

static struct cluster_config *load_ok(const char *path)
{
	struct cluster_config *cfg = NULL;
	char err[1024] = "";
	int r = cluster_config_load(path, &cfg, err, sizeof(err));

	if (r != 0)
		fail_msg("%s: %d: %s", path, r, err);
	assert_non_null(cfg);
	return cfg;
}

/* YAML with a valid key: relative paths of load_string resolve against the
 * cwd, so the header names the example key by its absolute path. */
static struct cluster_config *load_string_ok(const char *body)
{
	struct cluster_config *cfg = NULL;
	char yaml[8192], err[1024] = "";

	snprintf(yaml, sizeof(yaml),
		 "cluster:\n  name: t\n  auth: {key_file: %slocal.key}\n%s", EX, body);
	int r = cluster_config_load_string(yaml, "t.yaml", &cfg, err, sizeof(err));
	if (r != 0)
		fail_msg("%d: %s\n%s", r, err, yaml);
	return cfg;
}

static int load_string_err(const char *body, char *err, size_t len)
{
	struct cluster_config *cfg = NULL;
	char yaml[8192];

	snprintf(yaml, sizeof(yaml),
		 "cluster:\n  name: t\n  auth: {key_file: %slocal.key}\n%s", EX, body);
	int r = cluster_config_load_string(yaml, "t.yaml", &cfg, err, len);
	assert_null(cfg);
	return r;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

static void test_local_2node(void **state)
{
	struct cluster_config *cfg = load_ok(EX "local-2node.yaml");
	const struct cluster_vm *vm;

	assert_string_equal(cfg->path, EX "local-2node.yaml");
	assert_string_equal(cfg->name, "local-2node");
	assert_int_equal(cfg->transport, CLUSTER_TRANSPORT_TCP);
	assert_true(cfg->key_file[0] == '/');
	assert_true(ends_with(cfg->key_file, "/examples/local.key"));
	assert_int_equal(cfg->key_len, 32);
	assert_memory_equal(cfg->key, demo_key, 32);
	assert_int_equal(cfg->heartbeat_ms, 200);
	assert_int_equal(cfg->peer_timeout_ms, 3000);
	assert_int_equal(cfg->connect_timeout_ms, 30000);
	assert_int_equal(cfg->hello_timeout_ms, 1000);
	assert_int_equal(cfg->proof_timeout_ms, 1000);
	assert_int_equal(cfg->loop.poll_us, 100);
	assert_int_equal(cfg->loop.poll_linger_us, 50);
	assert_true(cfg->loop.poll_yield);
	assert_int_equal(cfg->loop.priority, RPC_LOOP_PRIORITY_NICE);

	assert_int_equal(cfg->n_nodes, 2);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(cfg->nodes[i].address, "127.0.0.1");
		assert_int_equal(cfg->nodes[i].port, 7400 + i);
		assert_int_equal(cfg->nodes[i].transport, CLUSTER_TRANSPORT_TCP);
	}
	assert_string_equal(cfg->nodes[0].name, "n0");
	assert_string_equal(cfg->nodes[1].name, "n1");
	assert_int_equal(cluster_config_find_node(cfg, "n1"), 1);
	assert_int_equal(cluster_config_find_node(cfg, "n2"), -1);

	assert_int_equal(cfg->n_vms, 1);
	assert_int_equal(cluster_config_find_vm(cfg, "demo"), 0);
	assert_int_equal(cluster_config_find_vm(cfg, "nope"), -1);
	vm = &cfg->vms[0];
	assert_string_equal(vm->name, "demo");
	assert_true(vm->memory_bytes == 256 * MIB);
	assert_int_equal(vm->vcpus, 2);
	assert_int_equal(vm->vcpus_per_node[0], 1);
	assert_int_equal(vm->vcpus_per_node[1], 1);
	assert_true(vm->node_mask == 3);
	assert_int_equal(vm->master_node, 0);
	assert_true(vm->kernel[0] == '/');
	assert_true(ends_with(vm->kernel, "/examples/../../build/guest/vmlinuz"));
	assert_true(ends_with(vm->initrd, "/examples/../../build/guest/initrd.img"));
	assert_string_equal(vm->cmdline, "console=ttyS0 panic=-1 tsc=reliable");
	/* dsm defaults */
	assert_int_equal(vm->dsm.placement, DSM_PLACEMENT_NUMA);
	assert_int_equal(vm->dsm.policy, DSM_POLICY_STATIC);
	assert_int_equal(vm->dsm.fault_timeout_ms, 5000);
	assert_int_equal(vm->dsm.min_hold_us, 0);
	assert_int_equal(vm->dsm.knobs.interval_ms, 100);
	assert_int_equal(vm->dsm.knobs.trigger, 32);
	assert_int_equal(vm->dsm.knobs.sharing, 8);
	assert_int_equal(vm->dsm.knobs.write_share, 2);
	assert_int_equal(vm->dsm.knobs.move_cap, 4);
	cluster_config_free(cfg);
}

static void test_local_4node(void **state)
{
	struct cluster_config *cfg = load_ok(EX "local-4node.yaml");
	const struct cluster_vm *vm = &cfg->vms[0];

	assert_string_equal(cfg->name, "local-4node");
	assert_int_equal(cfg->n_nodes, 4);
	for (int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "n%d", i);
		assert_string_equal(cfg->nodes[i].name, name);
		assert_string_equal(cfg->nodes[i].address, "127.0.0.1");
		assert_int_equal(cfg->nodes[i].port, 7410 + i);
		assert_int_equal(vm->vcpus_per_node[i], 1);
	}
	assert_int_equal(cfg->n_vms, 1);
	assert_string_equal(vm->name, "demo");
	assert_true(vm->memory_bytes == 512 * MIB);
	assert_int_equal(vm->vcpus, 4);
	assert_int_equal(vm->master_node, 0); /* default: first listed with vCPUs */
	assert_true(vm->node_mask == 0xf);
	cluster_config_free(cfg);
}

static void test_rack_8node(void **state)
{
	struct cluster_config *cfg = load_ok(EX "rack-8node.yaml");
	const struct cluster_vm *vm = &cfg->vms[0];

	assert_string_equal(cfg->name, "rack-8node");
	assert_int_equal(cfg->transport, CLUSTER_TRANSPORT_RDMA);
	assert_string_equal(cluster_transport_name(cfg->transport), "rdma");
	assert_int_equal(cfg->n_nodes, 8);
	for (int i = 0; i < 8; i++) {
		const struct cluster_node *n = &cfg->nodes[i];
		char addr[32];

		snprintf(addr, sizeof(addr), "10.0.1.%d", 11 + i);
		assert_string_equal(n->address, addr);
		assert_int_equal(n->port, 7400);
		assert_int_equal(n->transport, CLUSTER_TRANSPORT_RDMA);
		assert_string_equal(n->rdma.device, "mlx5_0");
		assert_int_equal(n->rdma.port, 1);
		assert_int_equal(n->rdma.gid_index, 3);
		assert_int_equal(vm->vcpus_per_node[i], 8);
	}
	assert_string_equal(vm->name, "big");
	assert_true(vm->memory_bytes == 64 * GIB);
	assert_int_equal(vm->vcpus, 64);
	assert_int_equal(vm->master_node, 0);
	assert_int_equal(vm->dsm.policy, DSM_POLICY_DISCO);
	assert_int_equal(vm->dsm.placement, DSM_PLACEMENT_NUMA);
	/* 64 GiB over 8 equal nodes: 8 GiB (2097152 pages) each */
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 0), 0);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 2097151), 0);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 2097152), 1);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 16 * 1048576 - 1), 7);
	cluster_config_free(cfg);
}

static void test_home_numa_halves(void **state)
{
	struct cluster_config *cfg = load_ok(EX "local-2node.yaml");
	const struct cluster_vm *vm = &cfg->vms[0];
	const uint64_t pages = 256 * MIB / 4096;
	uint64_t first, n;

	assert_int_equal(cluster_vm_initial_home(cfg, vm, 0), 0);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, pages / 2 - 1), 0);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, pages / 2), 1);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, pages - 1), 1);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, pages), -EINVAL);
	assert_int_equal(cluster_vm_numa_range(cfg, vm, 1, &first, &n), 0);
	assert_true(first == pages / 2 && n == pages / 2);
	assert_int_equal(cluster_vm_numa_range(cfg, vm, 2, &first, &n), -EINVAL);
	cluster_config_free(cfg);
}

static const char four_nodes[] = "nodes:\n"
				 "  - {name: n0, address: 127.0.0.1, port: 7400}\n"
				 "  - {name: n1, address: 127.0.0.1, port: 7401}\n"
				 "  - {name: n2, address: 127.0.0.1, port: 7402}\n"
				 "  - {name: n3, address: 127.0.0.1, port: 7403}\n";

static struct cluster_config *four_node_vm(const char *vm_body)
{
	char body[4096];

	snprintf(body, sizeof(body), "%svms:\n  - name: v\n%s", four_nodes, vm_body);
	return load_string_ok(body);
}

/* 2 MiB = 512 pages over three 1-vCPU nodes: 170, 170, and the remainder
 * 172 on the last; a node without vCPUs homes nothing. */
static void test_home_numa_remainder(void **state)
{
	struct cluster_config *cfg = four_node_vm("    memory: 2M\n    vcpus: 3\n"
						  "    vcpu_placement: {n0: 1, n1: 0, n2: 1, n3: 1}\n");
	const struct cluster_vm *vm = &cfg->vms[0];
	uint64_t first, n;

	assert_int_equal(cluster_vm_initial_home(cfg, vm, 0), 0);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 169), 0);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 170), 2);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 339), 2);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 340), 3);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 511), 3);
	assert_int_equal(cluster_vm_numa_range(cfg, vm, 1, &first, &n), -ENOENT);
	assert_int_equal(cluster_vm_numa_range(cfg, vm, 3, &first, &n), 0);
	assert_true(first == 340 && n == 172);
	cluster_config_free(cfg);
}

/* Proportional: 1 + 2 + 1 vCPUs over 1024 pages is 256, 512, 256. */
static void test_home_numa_weighted(void **state)
{
	struct cluster_config *cfg = four_node_vm("    memory: 4M\n    vcpus: 4\n"
						  "    vcpu_placement: {n0: 1, n1: 2, n3: 1}\n");
	const struct cluster_vm *vm = &cfg->vms[0];

	assert_int_equal(cluster_vm_initial_home(cfg, vm, 255), 0);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 256), 1);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 767), 1);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 768), 3);
	/* every page has exactly the home its node's range says */
	for (int node = 0; node < 4; node++) {
		uint64_t first, n;

		if (cluster_vm_numa_range(cfg, vm, node, &first, &n) < 0)
			continue;
		for (uint64_t p = first; p < first + n; p++)
			assert_int_equal(cluster_vm_initial_home(cfg, vm, p), node);
	}
	cluster_config_free(cfg);
}

static void test_home_interleave(void **state)
{
	struct cluster_config *cfg = four_node_vm("    memory: 2M\n    vcpus: 3\n"
						  "    vcpu_placement: {n0: 1, n1: 0, n2: 1, n3: 1}\n"
						  "    dsm: {placement: interleave}\n");
	const struct cluster_vm *vm = &cfg->vms[0];
	static const int want[] = {0, 2, 3, 0, 2, 3, 0};

	assert_int_equal(vm->dsm.placement, DSM_PLACEMENT_INTERLEAVE);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(cluster_vm_initial_home(cfg, vm, i), want[i]);
	assert_int_equal(cluster_vm_initial_home(cfg, vm, 511), 2); /* 511 % 3 == 1: n2 */
	cluster_config_free(cfg);
}

/* node:<name> may name a node that is listed with 0 vCPUs (a memory node). */
static void test_home_node(void **state)
{
	struct cluster_config *cfg = four_node_vm("    memory: 2M\n    vcpus: 2\n"
						  "    vcpu_placement: {n0: 2, n2: 0}\n"
						  "    dsm: {placement: \"node:n2\", policy: disco,"
						  " trigger: 8, sharing: 8}\n");
	const struct cluster_vm *vm = &cfg->vms[0];

	assert_int_equal(vm->dsm.placement, DSM_PLACEMENT_NODE);
	assert_int_equal(vm->dsm.placement_node, 2);
	assert_true(vm->node_mask == ((1u << 0) | (1u << 2)));
	for (uint64_t p = 0; p < 512; p += 97)
		assert_int_equal(cluster_vm_initial_home(cfg, vm, p), 2);
	cluster_config_free(cfg);
}

static void test_default_master_yaml_order(void **state)
{
	struct cluster_config *cfg = four_node_vm("    memory: 2M\n    vcpus: 3\n"
						  "    vcpu_placement: {n3: 0, n2: 1, n0: 2}\n");

	/* n3 has no vCPUs; n2 comes before n0 in the file */
	assert_int_equal(cfg->vms[0].master_node, 2);
	cluster_config_free(cfg);
}

static void test_nulls_mean_defaults(void **state)
{
	struct cluster_config *cfg = load_string_ok("nodes:\n"
						     "  - name: only\n"
						     "    address: ::1\n"
						     "    port: 1\n"
						     "    transport:\n"
						     "    rdma:\n"
						     "vms:\n");

	assert_int_equal(cfg->n_nodes, 1);
	assert_int_equal(cfg->nodes[0].transport, CLUSTER_TRANSPORT_TCP);
	assert_int_equal(cfg->nodes[0].rdma.port, 1);
	assert_int_equal(cfg->n_vms, 0);
	assert_null(cfg->vms);
	cluster_config_free(cfg);
}

static void test_missing_file(void **state)
{
	struct cluster_config *cfg = (void *)1;
	char err[256];

	assert_int_equal(cluster_config_load("/nonexistent/x.yaml", &cfg, err, sizeof(err)), -ENOENT);
	assert_null(cfg);
	assert_string_equal(err, "/nonexistent/x.yaml: cannot open: No such file or directory");
}

static void test_empty_input(void **state)
{
	struct cluster_config *cfg = NULL;
	char err[256], dir[] = "/tmp/disco-config-XXXXXX", path[64];
	int fd;

	assert_int_equal(cluster_config_load_string("", "e.yaml", &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "e.yaml:1:1: the file is empty; expected a mapping with keys "
				 "\"cluster\", \"nodes\" and optionally \"vms\"");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/zero.yaml", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(cluster_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
	assert_null(cfg);
	assert_true(strstr(err, ":1:1: the file is empty;") != NULL);
	unlink(path);
	rmdir(dir);
}

/* Messages are cut to the buffer, and no buffer at all is fine. */
static void test_small_error_buffers(void **state)
{
	struct cluster_config *cfg = NULL;
	char err[12];

	memset(err, 'Z', sizeof(err));
	assert_int_equal(cluster_config_load_string("nodes: [", "abcdefghijkl", &cfg, err, 8), -EINVAL);
	assert_string_equal(err, "abcdefg");
	assert_true(err[9] == 'Z');
	assert_int_equal(cluster_config_load_string("nodes: [", "x", &cfg, NULL, 0), -EINVAL);
	assert_int_equal(cluster_config_load_string("x: 1", "x", &cfg, err, 0), -EINVAL);
	assert_int_equal(cluster_config_load("/nonexistent", &cfg, NULL, 0), -ENOENT);
	cluster_config_free(NULL);
}

static void write_bytes(const char *path, const char *bytes, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, n), (ssize_t)n);
	close(fd);
}

/* Key files of 16 and 64 bytes are taken as raw bytes (a trailing newline
 * is key material), relative to the YAML file's folder; 15 and 65 are not. */
static void test_key_sizes(void **state)
{
	static const char yaml[] = "cluster: {name: k, auth: {key_file: sub/k.key}}\n"
				   "nodes: [{name: n0, address: localhost, port: 9}]\n";
	char dir[] = "/tmp/disco-config-XXXXXX", path[128], key[128], err[512];
	char bytes[65];
	struct cluster_config *cfg;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.yaml", dir);
	write_bytes(path, yaml, sizeof(yaml) - 1);
	snprintf(key, sizeof(key), "%s/sub", dir);
	assert_int_equal(mkdir(key, 0700), 0);
	snprintf(key, sizeof(key), "%s/sub/k.key", dir);
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (char)i; /* includes NUL bytes: the key is binary */
	bytes[15] = '\n';

	static const struct {
		size_t len;
		int r;
	} cases[] = {{16, 0}, {64, 0}, {15, -EINVAL}, {65, -EINVAL}, {0, -EINVAL}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_bytes(key, bytes, cases[i].len);
		cfg = NULL;
		int r = cluster_config_load(path, &cfg, err, sizeof(err));
		if (r != cases[i].r)
			fail_msg("key of %zu bytes: %d (%s)", cases[i].len, r, err);
		if (r == 0) {
			assert_int_equal(cfg->key_len, cases[i].len);
			assert_memory_equal(cfg->key, bytes, cases[i].len);
			assert_true(ends_with(cfg->key_file, "/sub/k.key"));
			cluster_config_free(cfg);
		} else {
			assert_true(strstr(err, "cluster.auth.key_file: expected a key file of 16..64 "
						"bytes") != NULL);
		}
	}
	unlink(key);
	snprintf(key, sizeof(key), "%s/sub", dir);
	rmdir(key);
	unlink(path);
	rmdir(dir);
}

/* load_string resolves relative paths against the current directory. */
static void test_string_relative_to_cwd(void **state)
{
	char old[PATH_MAX], err[512];
	struct cluster_config *cfg = NULL;

	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(CONFIG_EXAMPLES_DIR), 0);
	int r = cluster_config_load_string("cluster: {name: s, auth: {key_file: local.key}}\n"
					   "nodes: [{name: n0, address: 127.0.0.1, port: 1}]\n"
					   "vms: [{name: v, memory: 2097152, vcpus: 1,"
					   " vcpu_placement: {n0: 1}, kernel: k/vmlinuz,"
					   " initrd: /abs/initrd}]\n",
					   NULL, &cfg, err, sizeof(err));
	assert_int_equal(chdir(old), 0);
	if (r)
		fail_msg("%s", err);
	assert_string_equal(cfg->path, "<string>");
	assert_true(ends_with(cfg->key_file, "/examples/local.key"));
	assert_true(ends_with(cfg->vms[0].kernel, "/examples/k/vmlinuz"));
	assert_string_equal(cfg->vms[0].initrd, "/abs/initrd");
	assert_true(cfg->vms[0].memory_bytes == 2 * MIB);
	cluster_config_free(cfg);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A FIFO as the config file or as the key file: refused at once (it used
 * to block the loader for ever), naming what it is. */
static void test_fifo_refused_at_once(void **state)
{
	char dir[] = "/tmp/disco-test-fifo-XXXXXX", path[256], key[256], yaml[1024];
	char err[1024];
	struct cluster_config *cfg = NULL;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/cluster.yaml", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	double t0 = now_s();
	assert_int_equal(cluster_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
	assert_true(now_s() - t0 < 1.0);
	assert_non_null(strstr(err, "cannot read: a FIFO, not a regular file"));
	unlink(path);

	snprintf(key, sizeof(key), "%s/k.key", dir);
	assert_int_equal(mkfifo(key, 0600), 0);
	snprintf(yaml, sizeof(yaml), "cluster: {name: f, auth: {key_file: %s}}\n"
		 "nodes: [{name: n0, address: 127.0.0.1, port: 1}]\n", key);
	write_bytes(path, yaml, strlen(yaml));
	t0 = now_s();
	assert_int_equal(cluster_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
	assert_true(now_s() - t0 < 1.0);
	assert_non_null(strstr(err, "cluster.auth.key_file: cannot read"));
	assert_non_null(strstr(err, "it is a FIFO, not a regular file"));
	unlink(key);
	unlink(path);
	rmdir(dir);
}

/* 1 MiB of anchors and aliases, or of list items: refused at once (libyaml
 * took ~30 s to load the anchors), naming the limit. */
static void test_hostile_yaml_shapes_refused_fast(void **state)
{
	size_t cap = 1u << 20, o = 0;
	char *y = malloc(cap + 64), err[1024];
	struct cluster_config *cfg = NULL;

	o += (size_t)snprintf(y + o, cap - o, "cluster:\n  name: a\n  x:\n");
	for (int i = 0; o + 32 < cap; i++)
		o += (size_t)snprintf(y + o, cap - o, "  - &a%d v\n  - *a%d\n", i, i);
	y[o] = 0;
	double t0 = now_s();
	assert_int_equal(cluster_config_load_string(y, "anchors.yaml", &cfg, err, sizeof(err)),
			 -EINVAL);
	print_message("anchors: %.3f s: %s\n", now_s() - t0, err);
	assert_true(now_s() - t0 < 1.0);
	assert_non_null(strstr(err, "more than 1000 anchors and aliases"));

	o = (size_t)snprintf(y, cap, "cluster: [");
	while (o + 8 < cap)
		o += (size_t)snprintf(y + o, cap - o, "1,");
	snprintf(y + o, cap - o, "1]\n");
	t0 = now_s();
	assert_int_equal(cluster_config_load_string(y, "items.yaml", &cfg, err, sizeof(err)),
			 -EINVAL);
	print_message("items: %.3f s: %s\n", now_s() - t0, err);
	assert_true(now_s() - t0 < 2.0); /* the scan up to the limit, on a loaded host */
	assert_non_null(strstr(err, "more than 100000 YAML nodes"));
	free(y);
}

/* cluster.loop and dsm.hot_pages_report: the runtime's tuning, in the YAML. */
static void test_loop_and_diagnostics(void **state)
{
	char old[PATH_MAX], err[512];
	struct cluster_config *cfg = NULL;

	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(CONFIG_EXAMPLES_DIR), 0);
	int r = cluster_config_load_string(
		"cluster: {name: s, auth: {key_file: local.key},"
		" loop: {poll_us: 0, poll_linger_us: 7, poll_yield: false, priority: fifo}}\n"
		"nodes: [{name: n0, address: 127.0.0.1, port: 1}]\n"
		"vms: [{name: v, memory: 2097152, vcpus: 1, vcpu_placement: {n0: 1},"
		" dsm: {hot_pages_report: 5}}]\n",
		NULL, &cfg, err, sizeof(err));
	assert_int_equal(chdir(old), 0);
	if (r)
		fail_msg("%s", err);
	assert_int_equal(cfg->loop.poll_us, 0);
	assert_int_equal(cfg->loop.poll_linger_us, 7);
	assert_false(cfg->loop.poll_yield);
	assert_int_equal(cfg->loop.priority, RPC_LOOP_PRIORITY_FIFO);
	assert_int_equal(cfg->vms[0].dsm.hot_pages_report, 5);
	cluster_config_free(cfg);
}

/* 64 nodes is the limit and fine; the validator's messages point at the
 * right entry even when names contain dots. */
static void test_64_nodes_and_dotted_names(void **state)
{
	char body[8192], err[512];
	size_t o = 0;
	struct cluster_config *cfg;

	o += (size_t)snprintf(body + o, sizeof(body) - o, "nodes:\n");
	for (int i = 0; i < 64; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o,
				      "  - {name: h.%d, address: 10.0.0.%d, port: 7400}\n", i, i + 1);
	cfg = load_string_ok(body);
	assert_int_equal(cfg->n_nodes, 64);
	assert_int_equal(cluster_config_find_node(cfg, "h.63"), 63);
	cluster_config_free(cfg);

	assert_int_equal(load_string_err("nodes:\n"
					 "  - {name: a.b, address: 127.0.0.1, port: 1}\n"
					 "  - {name: a, address: 127.0.0.1, port: 2}\n"
					 "vms:\n"
					 "  - name: v\n"
					 "    memory: 2M\n"
					 "    vcpus: 1\n"
					 "    vcpu_placement: {a: 1, a.b: 0}\n"
					 "    master: a.b\n",
					 err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "t.yaml:12:13: vms[0].master: node \"a.b\" has no vCPUs in "
				 "vcpu_placement, but the master runs vCPU 0");
}

/* debian-2node.yaml: its disk and NIC, and the defaults of the keys it
 * leaves out. */
static void test_debian_2node_devices(void **state)
{
	struct cluster_config *cfg = load_ok(EX "debian-2node.yaml");
	const struct cluster_vm *vm = &cfg->vms[0];

	assert_int_equal(vm->n_disks, 1);
	assert_true(ends_with(vm->disks[0].file, "/examples/../../build/debian/disk.qcow2"));
	assert_int_equal(vm->disks[0].format, CLUSTER_DISK_QCOW2);
	assert_false(vm->disks[0].readonly);
	assert_string_equal(vm->disks[0].serial, "root");
	assert_int_equal(vm->n_nics, 1);
	assert_int_equal(vm->nics[0].type, CLUSTER_NIC_USER);
	assert_int_equal(vm->nics[0].n_hostfwd, 1);
	assert_int_equal(vm->nics[0].hostfwd[0].protocol, CLUSTER_FWD_TCP);
	assert_string_equal(vm->nics[0].hostfwd[0].host, "127.0.0.1");
	assert_int_equal(vm->nics[0].hostfwd[0].host_port, 2222);
	assert_int_equal(vm->nics[0].hostfwd[0].guest_port, 22);
	/* derived MAC: 52:54:00 + FNV-1a of "debian/0" */
	assert_int_equal(vm->nics[0].mac[0], 0x52);
	assert_int_equal(vm->nics[0].mac[1], 0x54);
	assert_int_equal(vm->nics[0].mac[2], 0x00);
	cluster_config_free(cfg);
}

/*
 * cluster_vm_check_host(): images that are fine give their guest-visible
 * size (a raw file's length, a qcow2 header's size field); a forwarded
 * port some socket holds is refused at the port's line and column.
 */
static void test_check_host(void **state)
{
	char dir[] = "/tmp/disco-test-host-XXXXXX", raw[64], qcow[64], body[2048], err[1024];
	uint8_t hdr[104] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);
	uint64_t sizes[CLUSTER_MAX_DISKS] = {0};
	struct cluster_config *cfg;
	char *want;
	int fd, sock;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(raw, sizeof(raw), "%s/raw.img", dir);
	snprintf(qcow, sizeof(qcow), "%s/q.qcow2", dir);
	assert_true((fd = open(raw, O_WRONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(ftruncate(fd, 3 * MIB), 0);
	close(fd);
	hdr[24 + 4] = 0x40; /* size, big-endian: 0x40 << 24 = 1 GiB */
	assert_non_null(f = fopen(qcow, "wb"));
	assert_int_equal(fwrite(hdr, sizeof(hdr), 1, f), 1);
	fclose(f);

	/* a port in use: a listening socket of this test */
	assert_true((sock = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(sock, 1), 0);
	assert_int_equal(getsockname(sock, (struct sockaddr *)&sa, &salen), 0);
	snprintf(body, sizeof(body),
		 "nodes:\n  - {name: n0, address: 127.0.0.1, port: 7400}\n"
		 "vms:\n  - name: v\n    memory: 64M\n    vcpus: 1\n    vcpu_placement: {n0: 1}\n"
		 "    disks:\n"
		 "      - {file: %s, format: raw}\n"
		 "      - {file: %s, format: qcow2, readonly: true}\n"
		 "    nics:\n"
		 "      - type: user\n"
		 "        hostfwd: [{host_port: %d, guest_port: 22}]\n",
		 raw, qcow, ntohs(sa.sin_port));
	cfg = load_string_ok(body);
	assert_int_equal(cluster_vm_check_host(cfg, 0, sizes, err, sizeof(err)), -EADDRINUSE);
	assert_int_equal(asprintf(&want,
				  "t.yaml:16:31: vms[0].nics[0].hostfwd[0].host_port: tcp port "
				  "127.0.0.1:%d is in use on this host",
				  ntohs(sa.sin_port)) > 0, 1);
	assert_string_equal(err, want);
	free(want);
	/* the disks were checked first, and are fine */
	assert_true(sizes[0] == 3 * MIB);
	assert_true(sizes[1] == GIB);

	close(sock); /* now the port is free */
	assert_int_equal(cluster_vm_check_host(cfg, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(cluster_vm_check_host(cfg, 1, NULL, err, sizeof(err)), -EINVAL);
	cluster_config_free(cfg);
	unlink(raw);
	unlink(qcow);
	rmdir(dir);
}

static void test_transport_names(void **state)
{
	assert_string_equal(cluster_transport_name(CLUSTER_TRANSPORT_TCP), "tcp");
	assert_string_equal(cluster_transport_name(CLUSTER_TRANSPORT_RDMA), "rdma");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_2node),
		cmocka_unit_test(test_local_4node),
		cmocka_unit_test(test_rack_8node),
		cmocka_unit_test(test_home_numa_halves),
		cmocka_unit_test(test_home_numa_remainder),
		cmocka_unit_test(test_home_numa_weighted),
		cmocka_unit_test(test_home_interleave),
		cmocka_unit_test(test_home_node),
		cmocka_unit_test(test_default_master_yaml_order),
		cmocka_unit_test(test_nulls_mean_defaults),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_small_error_buffers),
		cmocka_unit_test(test_key_sizes),
		cmocka_unit_test(test_string_relative_to_cwd),
		cmocka_unit_test(test_loop_and_diagnostics),
		cmocka_unit_test(test_fifo_refused_at_once),
		cmocka_unit_test(test_hostile_yaml_shapes_refused_fast),
		cmocka_unit_test(test_64_nodes_and_dotted_names),
		cmocka_unit_test(test_debian_2node_devices),
		cmocka_unit_test(test_check_host),
		cmocka_unit_test(test_transport_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
