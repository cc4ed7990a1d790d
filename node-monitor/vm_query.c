// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Answers about one VM of a cluster file (vm_query.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vm_query.h"

#define MAX_LISTED 20 /* names shown in "the VMs are ..." before "and N more" */

static void list_vms(const struct cluster_config *cfg, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < cfg->n_vms && i < MAX_LISTED && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", cfg->vms[i].name);
	if (cfg->n_vms > MAX_LISTED && used < len)
		snprintf(buf + used, len - used, " and %d more", cfg->n_vms - MAX_LISTED);
}

int vm_query_pick(const struct cluster_config *cfg, const char *vm, const char *who)
{
	char names[2048];
	int i;

	list_vms(cfg, names, sizeof(names));
	if (cfg->n_vms == 0) {
		fprintf(stderr, "%s: %s defines no VMs; add one under \"vms:\" (docs/config.md)\n", who,
			cfg->path);
		return -ENOENT;
	}
	if (!vm) {
		if (cfg->n_vms == 1)
			return 0;
		fprintf(stderr, "%s: %s defines %d VMs; choose one with --vm NAME: %s\n", who, cfg->path,
			cfg->n_vms, names);
		return -ENOENT;
	}
	i = cluster_config_find_vm(cfg, vm);
	if (i < 0) {
		fprintf(stderr, "%s: no VM named \"%s\" in %s; the VMs are %s\n", who, vm, cfg->path,
			names);
		return -ENOENT;
	}
	return i;
}

int vm_query(const struct cluster_config *cfg, const char *name, enum vm_query q, int port,
	     const char *who)
{
	const struct cluster_vm *vm;
	int i = vm_query_pick(cfg, name, who);

	if (i < 0)
		return 2;
	vm = &cfg->vms[i];
	switch (q) {
	case VM_QUERY_NODES:
		printf("%s\n", cfg->nodes[vm->master_node].name);
		for (int n = 0; n < cfg->n_nodes; n++)
			if (n != vm->master_node && (vm->node_mask & (1ULL << n)))
				printf("%s\n", cfg->nodes[n].name);
		break;
	case VM_QUERY_NAME:
		printf("%s\n", vm->name);
		break;
	case VM_QUERY_FORWARD:
		for (int n = 0; n < vm->n_nics; n++)
			for (int f = 0; f < vm->nics[n].n_hostfwd; f++) {
				const struct cluster_hostfwd *h = &vm->nics[n].hostfwd[f];

				if (h->protocol == CLUSTER_FWD_TCP && h->guest_port == port) {
					printf("%s %d\n", h->host, h->host_port);
					return 0;
				}
			}
		fprintf(stderr, "%s: VM %s forwards no host port to guest TCP port %d\n", who, vm->name,
			port);
		return 1;
	case VM_QUERY_VCPUS:
		printf("%d\n", vm->vcpus);
		break;
	}
	return 0;
}
