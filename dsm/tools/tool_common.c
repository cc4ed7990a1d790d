// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Shared plumbing of the DSM tools; see tool_common.h.
 */
#include "tool_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rpc/log.h"

uint64_t tool_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t tool_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

double tool_percentile(uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	size_t i = (size_t)((p / 100.0) * (double)(n - 1) + 0.5);
	return (double)v[i < n ? i : n - 1];
}

void tool_net_init(struct tool_net *n)
{
	memset(n, 0, sizeof(*n));
	n->transport = CLUSTER_TRANSPORT_TCP;
	snprintf(n->address, sizeof(n->address), "127.0.0.1");
	n->rdma_port = 1;
}

/* An IPv4 or IPv6 literal as a socket address (port 0). Only literals: a
 * host name could resolve to an address the free-port check never saw. */
static int parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		*len = sizeof(*a6);
		return 0;
	}
	return -EINVAL;
}

/* A whole decimal in [lo, hi], or -1. */
static int parse_small_int(const char *s, int lo, int hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	return (int)v;
}

/* The config's name rule (docs/config.md), checked here so a bad device
 * name is reported as the option, not as a line of a generated file. */
static bool is_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n >= CLUSTER_NAME_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int tool_net_option(struct tool_net *n, int c, const char *arg, const char *prog)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int v;

	switch (c) {
	case TOOL_OPT_TRANSPORT:
		if (strcmp(arg, "tcp") && strcmp(arg, "rdma")) {
			fprintf(stderr, "%s: --transport wants tcp or rdma, got \"%s\"\n", prog,
				arg);
			return -EINVAL;
		}
		n->transport = strcmp(arg, "rdma") ? CLUSTER_TRANSPORT_TCP : CLUSTER_TRANSPORT_RDMA;
		return 1;
	case TOOL_OPT_ADDRESS:
		if (strlen(arg) >= sizeof(n->address) || parse_address(arg, &ss, &len) < 0) {
			fprintf(stderr, "%s: --address wants an IPv4 or IPv6 literal, got \"%s\"\n",
				prog, arg);
			return -EINVAL;
		}
		snprintf(n->address, sizeof(n->address), "%s", arg);
		return 1;
	case TOOL_OPT_BACKING:
		if (strcmp(arg, "anonymous") && strcmp(arg, "memfd")) {
			fprintf(stderr, "%s: --backing wants anonymous or memfd, got \"%s\"\n", prog,
				arg);
			return -EINVAL;
		}
		n->backing = strcmp(arg, "memfd") ? DSM_BACKING_ANONYMOUS : DSM_BACKING_MEMFD;
		return 1;
	case TOOL_OPT_RDMA_DEVICE:
		if (!is_name(arg)) {
			fprintf(stderr, "%s: --rdma-device wants a device name like rxe0 or mlx5_0 "
				"(`ibv_devices`), got \"%s\"\n", prog, arg);
			return -EINVAL;
		}
		snprintf(n->rdma_device, sizeof(n->rdma_device), "%s", arg);
		return 1;
	case TOOL_OPT_RDMA_PORT:
		if ((v = parse_small_int(arg, 1, 255)) < 0) {
			fprintf(stderr, "%s: --rdma-port wants 1..255, got \"%s\"\n", prog, arg);
			return -EINVAL;
		}
		n->rdma_port = v;
		return 1;
	case TOOL_OPT_RDMA_GID_INDEX:
		if ((v = parse_small_int(arg, 0, 255)) < 0) {
			fprintf(stderr, "%s: --rdma-gid-index wants 0..255, got \"%s\"\n", prog,
				arg);
			return -EINVAL;
		}
		n->rdma_gid_index = v;
		return 1;
	}
	return 0;
}

int tool_net_check(const struct tool_net *n, const char *prog)
{
	if (n->transport == CLUSTER_TRANSPORT_RDMA && !n->rdma_device[0]) {
		fprintf(stderr, "%s: --transport rdma needs --rdma-device (e.g. rxe0; "
			"`ibv_devices` lists them)\n", prog);
		return -EINVAL;
	}
	return 0;
}

void tool_net_usage(FILE *f, const char *transports)
{
	fprintf(f, "  --transport T     transport of the generated cluster: %s (default tcp)\n"
		   "  --address ADDR    IP literal its nodes listen on, one port each\n"
		   "                    (default 127.0.0.1; with RoCE, the address of the GID)\n"
		   "  --rdma-device NAME RDMA device, e.g. rxe0 (required with rdma)\n"
		   "  --rdma-port N     port of the device (default 1)\n"
		   "  --rdma-gid-index N GID index that carries ADDR (default 0; `show_gids`)\n"
		   "  --backing B       DSM memory: anonymous (default) or memfd (Linux >= 6.4)\n",
		transports);
}

void tool_net_describe(const struct tool_net *n, char *buf, size_t len)
{
	int k = snprintf(buf, len, "transport=%s address=%s",
			 cluster_transport_name(n->transport), n->address);
	if (n->transport == CLUSTER_TRANSPORT_RDMA && k >= 0 && (size_t)k < len)
		k += snprintf(buf + k, len - (size_t)k, " device=%s port=%d gid_index=%d",
			      n->rdma_device, n->rdma_port, n->rdma_gid_index);
	if (n->backing == DSM_BACKING_MEMFD && k >= 0 && (size_t)k < len)
		snprintf(buf + k, len - (size_t)k, " backing=memfd");
}

/* A port the kernel just gave out on @address: free now, very likely still
 * free soon. RDMA CM has its own port space, but nothing else on a test
 * host takes ports there, so a port free for TCP serves it too. */
static int free_port(const char *address)
{
	struct sockaddr_storage a;
	socklen_t len;
	int rc = parse_address(address, &a, &len);
	if (rc < 0)
		return rc;
	int fd = socket(a.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	close(fd);
	return ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
					    : ((struct sockaddr_in6 *)&a)->sin6_port);
}

/* @n distinct free ports on @address into @ports. */
static int pick_ports(const char *address, int n, int *ports)
{
	for (int i = 0; i < n; i++) {
		int p;
		bool dup;
		do {
			p = free_port(address);
			dup = false;
			for (int j = 0; j < i; j++)
				dup |= ports[j] == p;
		} while (p > 0 && dup);
		if (p < 0)
			return p;
		ports[i] = p;
	}
	return 0;
}

static int write_key(const char *dir)
{
	char keypath[4200];
	uint8_t key[32];

	snprintf(keypath, sizeof(keypath), "%s/cluster.key", dir);
	if (getrandom(key, sizeof(key), 0) != sizeof(key))
		return -EIO;
	int fd = open(keypath, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, key, sizeof(key)) != sizeof(key)) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

static void write_nodes(FILE *f, const struct tool_net *net, int n_nodes, const int *ports)
{
	fprintf(f, "nodes:\n");
	for (int i = 0; i < n_nodes; i++) {
		/* Quoted: a plain scalar may not start with ':' ("::1"). */
		fprintf(f, "  - name: n%d\n    address: \"%s\"\n    port: %d\n", i, net->address,
			ports[i]);
		if (net->transport == CLUSTER_TRANSPORT_RDMA)
			fprintf(f, "    rdma: {device: %s, port: %d, gid_index: %d}\n",
				net->rdma_device, net->rdma_port, net->rdma_gid_index);
	}
}

static int write_yaml(const char *path, const struct tool_net *net, int n_nodes,
		      const struct tool_vm *vm)
{
	int ports[CLUSTER_MAX_NODES];
	int rc = pick_ports(net->address, n_nodes, ports);
	if (rc < 0)
		return rc;
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "# Generated by a disco DSM tool for a local run.\n"
		   "cluster:\n  name: local-tool\n  transport: %s\n"
		   "  auth:\n    key_file: cluster.key\n"
		   "  heartbeat_ms: 200\n  peer_timeout_ms: 5000\n  connect_timeout_ms: 20000\n",
		cluster_transport_name(net->transport));
	write_nodes(f, net, n_nodes, ports);
	fprintf(f, "vms:\n  - name: dsm\n    memory: %s\n    vcpus: %d\n    vcpu_placement:\n",
		vm->memory, n_nodes);
	for (int i = 0; i < n_nodes; i++)
		fprintf(f, "      n%d: 1\n", i);
	if (vm->node_memory)
		fprintf(f, "    node_memory: %s\n", vm->node_memory);
	fprintf(f, "    dsm:\n      placement: %s\n      fault_timeout_ms: 10000\n"
		   "      min_hold_us: %u\n      backing: %s\n", vm->placement, vm->min_hold_us,
		net->backing == DSM_BACKING_MEMFD ? "memfd" : "anonymous");
	if (vm->min_cache)
		fprintf(f, "      min_cache: %s\n", vm->min_cache);
	return fclose(f) ? -errno : 0;
}

int tool_make_local_config(const struct tool_net *net, int n_nodes, const struct tool_vm *vm,
			   char *path, size_t pathlen, char *dir, size_t dirlen)
{
	int rc;

	if (n_nodes < 1 || n_nodes > CLUSTER_MAX_NODES)
		return -EINVAL;
	snprintf(dir, dirlen, "/tmp/disco-dsm-XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(path, pathlen, "%s/cluster.yaml", dir);
	if ((rc = write_key(dir)) < 0 ||
	    (rc = write_yaml(path, net, n_nodes, vm)) < 0)
		tool_remove_local_config(dir);
	return rc;
}

void tool_remove_local_config(const char *dir)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/cluster.yaml", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/cluster.key", dir);
	unlink(p);
	rmdir(dir);
}

int tool_run_members(const char *argv0, const char *config, char *const extra[], int timeout_s)
{
	char err[512];
	struct cluster_config *cfg;
	pid_t pids[CLUSTER_MAX_NODES];
	int n_extra = 0, failed = 0;

	if (cluster_config_load(config, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	while (extra && extra[n_extra])
		n_extra++;
	for (int i = 0; i < cfg->n_nodes; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			char *av[8 + 32];
			int k = 0;
			av[k++] = (char *)argv0;
			av[k++] = "--config";
			av[k++] = (char *)config;
			av[k++] = "--node";
			av[k++] = cfg->nodes[i].name;
			for (int j = 0; j < n_extra && j < 32; j++)
				av[k++] = extra[j];
			av[k] = NULL;
			execv("/proc/self/exe", av);
			perror("execv");
			_exit(127);
		}
	}
	uint64_t deadline = tool_now_ns() + (uint64_t)timeout_s * 1000000000ULL;
	int left = cfg->n_nodes;
	while (left) {
		int status;
		pid_t p = waitpid(-1, &status, WNOHANG);
		if (p > 0) {
			left--;
			for (int i = 0; i < cfg->n_nodes; i++) {
				if (pids[i] != p)
					continue;
				if (WIFSIGNALED(status))
					fprintf(stderr, "member %s killed by signal %d (%s)\n",
						cfg->nodes[i].name, WTERMSIG(status),
						strsignal(WTERMSIG(status)));
				else if (WEXITSTATUS(status))
					fprintf(stderr, "member %s exited with status %d\n",
						cfg->nodes[i].name, WEXITSTATUS(status));
			}
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				failed++;
			continue;
		}
		if (tool_now_ns() > deadline) {
			fprintf(stderr, "members still running after %d s: killing them\n", timeout_s);
			for (int i = 0; i < cfg->n_nodes; i++)
				kill(pids[i], SIGKILL);
			timeout_s = 1 << 20;
			deadline = UINT64_MAX;
		}
		usleep(20000);
	}
	cluster_config_free(cfg);
	return failed;
}

static void on_fatal(void *opaque, const char *message)
{
	struct tool_member *m = opaque;
	fprintf(stderr, "disco-dsm[%s]: fatal: %s\n", m->cfg->nodes[m->node].name, message);
	fflush(stderr);
	_exit(3);
}

int tool_member_join(struct tool_member *m, const char *config, const char *node, const char *vm)
{
	char err[1024];
	int rc;

	memset(m, 0, sizeof(*m));
	if ((rc = cluster_config_load(config, &m->cfg, err, sizeof(err))) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	m->node = cluster_config_find_node(m->cfg, node);
	if (m->node < 0) {
		fprintf(stderr, "%s: no node named \"%s\"\n", config, node);
		return 1;
	}
	m->vm = vm ? cluster_config_find_vm(m->cfg, vm) : 0;
	if (m->vm < 0 || m->vm >= m->cfg->n_vms) {
		fprintf(stderr, "%s: no VM named \"%s\"\n", config, vm ? vm : "(first)");
		return 1;
	}
	disco_log_set_node(node);
	const struct cluster_vm *v = &m->cfg->vms[m->vm];
	struct dsm_placement placement;
	cluster_vm_dsm_placement(m->cfg, v, &placement);
	if ((rc = rpc_session_create(m->cfg, m->node, &m->session)) < 0) {
		fprintf(stderr, "node %s: cannot create the session: %s\n", node, strerror(-rc));
		return 1;
	}
	struct dsm_region_options o = {
		.session = m->session, .name = v->name, .settings = &v->dsm,
		.placement = &placement, .on_fatal = on_fatal, .opaque = m,
	};
	if ((rc = dsm_region_create(&o, &m->region)) < 0) {
		fprintf(stderr, "node %s: cannot create the DSM region: %s\n", node, strerror(-rc));
		tool_member_leave(m);
		return 1;
	}
	if ((rc = rpc_session_start(m->session, err, sizeof(err))) < 0) {
		fprintf(stderr, "node %s: cannot join the cluster: %s\n", node, err);
		tool_member_leave(m);
		return 1;
	}
	return 0;
}

void tool_member_leave(struct tool_member *m)
{
	if (m->session)
		rpc_session_stop(m->session);
	dsm_region_destroy(m->region);
	rpc_session_destroy(m->session);
	cluster_config_free(m->cfg);
	memset(m, 0, sizeof(*m));
}
