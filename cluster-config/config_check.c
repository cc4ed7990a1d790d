// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco config check: validate a cluster file and print what it describes
 * (the disco command's subcommand; config_check.h).
 *
 * Meant for a person editing a cluster file: either the one error line
 * (the same one every disco program would print) or a summary short enough
 * to fit one screen, so long lists are cut. Never prints the key itself.
 * Exit status 0 when the file is valid, 1 otherwise.
 *
 * By default it also runs each VM's host checks (cluster_vm_check_host():
 * disk images exist and are in the format written, forwarded ports are
 * free), which only mean something on the host of the VM's master;
 * --no-host skips them (checking a file on another machine).
 *
 * --nodes prints, instead of the summary, one line per node, "NAME ADDRESS
 * PORT", in the file's order, for scripts that lay out a network for the
 * nodes (scripts/netns-cluster.sh). No host checks then.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cluster_config.h"
#include "config_check.h"

#define SHOW_NODES 16
#define SHOW_VMS 3

static void usage(FILE *f)
{
	fprintf(f,
		"usage: disco config check [--no-host | --nodes] FILE\n"
		"Parse and validate a disco cluster file (see docs/config.md) and print\n"
		"a summary, or the first error as FILE:LINE:COL: FIELD: MESSAGE.\n"
		"Also checks, on this host, each VM's disk images (exist, format) and\n"
		"forwarded ports (free), unless --no-host is given.\n"
		"--nodes: print \"NAME ADDRESS PORT\" for every node instead (no host checks).\n"
		"Exit status: 0 valid, 1 invalid or unreadable.\n");
}

static void print_size(uint64_t bytes)
{
	if (bytes % (1ull << 30) == 0)
		printf("%" PRIu64 " GiB", bytes >> 30);
	else if (bytes % (1ull << 20) == 0)
		printf("%" PRIu64 " MiB", bytes >> 20);
	else
		printf("%" PRIu64 " KiB", bytes >> 10);
}

static const char *placement_name(const struct cluster_config *cfg, const struct dsm_settings *d,
				  char *buf, size_t len)
{
	switch (d->placement) {
	case DSM_PLACEMENT_NUMA:
		return "numa";
	case DSM_PLACEMENT_INTERLEAVE:
		return "interleave";
	case DSM_PLACEMENT_NODE:
		snprintf(buf, len, "node:%s", cfg->nodes[d->placement_node].name);
		return buf;
	}
	return "?";
}

static void print_nodes(const struct cluster_config *cfg)
{
	printf("nodes:\n");
	for (int i = 0; i < cfg->n_nodes && i < SHOW_NODES; i++) {
		const struct cluster_node *n = &cfg->nodes[i];

		printf("  %-12s %s:%d", n->name, n->address, n->port);
		if (n->control_port)
			printf("  discod control %d", n->control_port);
		if (n->metrics_port)
			printf(", metrics %s:%d", n->metrics_address, n->metrics_port);
		if (n->transport == CLUSTER_TRANSPORT_RDMA)
			printf("  rdma %s port %d gid %d", n->rdma.device, n->rdma.port,
			       n->rdma.gid_index);
		printf("\n");
	}
	if (cfg->n_nodes > SHOW_NODES)
		printf("  ... and %d more\n", cfg->n_nodes - SHOW_NODES);
}

static void print_vm(const struct cluster_config *cfg, const struct cluster_vm *vm)
{
	const struct dsm_settings *d = &vm->dsm;
	char pl[CLUSTER_NAME_MAX + 8];
	int shown = 0;

	printf("  %s: ", vm->name);
	print_size(vm->memory_bytes);
	printf(", %d vCPU%s (", vm->vcpus, vm->vcpus == 1 ? "" : "s");
	for (int i = 0; i < cfg->n_nodes; i++) {
		if (!(vm->node_mask & (1ull << i)))
			continue;
		if (shown++ == 8) {
			printf(" ...");
			break;
		}
		printf("%s%s:%d", shown > 1 ? " " : "", cfg->nodes[i].name, vm->vcpus_per_node[i]);
	}
	printf("), master %s", cfg->nodes[vm->master_node].name);
	if (vm->port)
		printf(", ports %d..%d", vm->port, vm->port + __builtin_popcountll(vm->node_mask) - 1);
	printf("\n");
	printf("    dsm placement %s, policy %s, fault timeout %" PRIu32 " ms, backing %s\n",
	       placement_name(cfg, d, pl, sizeof(pl)),
	       d->policy == DSM_POLICY_DISCO ? "disco" : "static", d->fault_timeout_ms,
	       d->backing == DSM_BACKING_MEMFD ? "memfd" : "anonymous");
	if (dsm_settings_have_budgets(d)) {
		int listed = 0;
		printf("    memory budgets:");
		for (int i = 0; i < cfg->n_nodes; i++) {
			if (!(vm->node_mask & (1ull << i)))
				continue;
			if (listed++ == 8) {
				printf(" ...");
				break;
			}
			printf(" %s ", cfg->nodes[i].name);
			print_size(d->node_budget[i]);
		}
		printf("; min cache %" PRIu64 " KiB\n", d->min_cache >> 10);
	}
	if (vm->kernel[0])
		printf("    kernel %s\n", vm->kernel);
	if (vm->initrd[0])
		printf("    initrd %s\n", vm->initrd);
	if (vm->cmdline[0])
		printf("    cmdline %s\n", vm->cmdline);
	for (int i = 0; i < vm->n_disks; i++)
		printf("    disk %d: %s (%s%s%s%s)\n", i, vm->disks[i].file,
		       cluster_disk_format_name(vm->disks[i].format),
		       vm->disks[i].readonly ? ", readonly" : "", vm->disks[i].serial[0] ? ", serial " : "",
		       vm->disks[i].serial);
	for (int i = 0; i < vm->n_nics; i++) {
		const struct cluster_nic *n = &vm->nics[i];

		printf("    nic %d: %s%s, mac %02x:%02x:%02x:%02x:%02x:%02x", i,
		       n->type == CLUSTER_NIC_TAP ? "tap " : "user", n->ifname, n->mac[0], n->mac[1],
		       n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
		for (int j = 0; j < n->n_hostfwd && j < 4; j++)
			printf("%s %s %s:%d->%d", j ? "," : "; forwards",
			       n->hostfwd[j].protocol == CLUSTER_FWD_UDP ? "udp" : "tcp", n->hostfwd[j].host,
			       n->hostfwd[j].host_port, n->hostfwd[j].guest_port);
		printf("%s\n", n->n_hostfwd > 4 ? ", ..." : "");
	}
	printf("    on guest reset: %s; guest housekeeping on %s\n",
	       vm->on_reset == CLUSTER_ON_RESET_STOP ? "stop the VM" : "reset every node",
	       vm->housekeeping == CLUSTER_HOUSEKEEPING_MASTER ? "the master's vCPUs" : "every vCPU");
	if (vm->boot_vcpus == CLUSTER_BOOT_VCPUS_MASTER)
		printf("    the guest kernel boots on the master's vCPUs; the guest brings the others online\n");
	if (vm->numa_balancing == CLUSTER_NUMA_BALANCING_GUEST)
		printf("    the guest kernel's NUMA balancing moves pages too\n");
}

static void print_summary(const struct cluster_config *cfg)
{
	printf("%s: valid\n", cfg->path);
	printf("cluster %s: %d node%s, transport %s, %zu-byte key from %s\n", cfg->name,
	       cfg->n_nodes, cfg->n_nodes == 1 ? "" : "s", cluster_transport_name(cfg->transport),
	       cfg->key_len, cfg->key_file);
	printf("  heartbeat %" PRIu32 " ms, peer timeout %" PRIu32 " ms, connect timeout %" PRIu32
	       " ms\n",
	       cfg->heartbeat_ms, cfg->peer_timeout_ms, cfg->connect_timeout_ms);
	printf("  handshake: Hello within %" PRIu32 " ms, proof within %" PRIu32 " ms\n",
	       cfg->hello_timeout_ms, cfg->proof_timeout_ms);
	print_nodes(cfg);
	printf("vms:%s\n", cfg->n_vms ? "" : " none");
	for (int i = 0; i < cfg->n_vms && i < SHOW_VMS; i++)
		print_vm(cfg, &cfg->vms[i]);
	if (cfg->n_vms > SHOW_VMS)
		printf("  ... and %d more\n", cfg->n_vms - SHOW_VMS);
}

int disco_config_check(int argc, char **argv)
{
	struct cluster_config *cfg;
	char err[8192];
	bool host = true, nodes = false;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 3 && (!strcmp(argv[1], "--no-host") || !strcmp(argv[1], "--nodes"))) {
		nodes = !strcmp(argv[1], "--nodes");
		host = false;
		argv++;
		argc--;
	}
	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		return 1;
	}
	if (cluster_config_load(argv[1], &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (int v = 0; host && v < cfg->n_vms; v++) {
		if (cluster_vm_check_host(cfg, v, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			cluster_config_free(cfg);
			return 1;
		}
	}
	if (nodes) {
		for (int i = 0; i < cfg->n_nodes; i++)
			printf("%s %s %u\n", cfg->nodes[i].name, cfg->nodes[i].address,
			       (unsigned)cfg->nodes[i].port);
	} else {
		print_summary(cfg);
	}
	cluster_config_free(cfg);
	return 0;
}
