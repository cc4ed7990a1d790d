// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VM's view of the cluster (cluster_config_vm_view()): the config of
 * one VM alone, with only its nodes.
 *
 * A node's session (rpc/session.h) joins every node of the config it is
 * given and indexes peers by their position there; the DSM's copysets and
 * the spanning VM's messages use those indices. Given the whole cluster,
 * a VM on n0 and n1 of a three-node cluster would wait for n2 for ever.
 * So the QEMU of a VM works from this view: the VM's nodes in cluster
 * order, renumbered from 0, each at the VM's port on it. The order is
 * kept, so vCPU numbering (master first, then node order), the guest NUMA
 * nodes and the initial page homes are the same as computed on the whole
 * config; node names are kept, so every message still names the node.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_config.h"

static int copy_devices(struct cluster_vm *to, const struct cluster_vm *from)
{
	to->disks = NULL;
	to->nics = NULL;
	if (from->n_disks) {
		to->disks = calloc((size_t)from->n_disks, sizeof(*to->disks));
		if (!to->disks)
			return -ENOMEM;
		memcpy(to->disks, from->disks, (size_t)from->n_disks * sizeof(*to->disks));
	}
	if (from->n_nics) {
		to->nics = calloc((size_t)from->n_nics, sizeof(*to->nics));
		if (!to->nics)
			return -ENOMEM;
		for (int i = 0; i < from->n_nics; i++) {
			to->nics[i] = from->nics[i];
			to->nics[i].hostfwd = NULL;
			if (!from->nics[i].n_hostfwd)
				continue;
			to->nics[i].hostfwd = calloc((size_t)from->nics[i].n_hostfwd,
						     sizeof(*to->nics[i].hostfwd));
			if (!to->nics[i].hostfwd)
				return -ENOMEM;
			memcpy(to->nics[i].hostfwd, from->nics[i].hostfwd,
			       (size_t)from->nics[i].n_hostfwd * sizeof(*to->nics[i].hostfwd));
		}
	}
	return 0;
}

int cluster_config_vm_view(const struct cluster_config *cfg, int vmi, struct cluster_config **out)
{
	const struct cluster_vm *vm;
	struct cluster_config *v;
	struct cluster_vm *w;
	int map[CLUSTER_MAX_NODES], k = 0, r;

	*out = NULL;
	if (!cfg || vmi < 0 || vmi >= cfg->n_vms)
		return -EINVAL;
	vm = &cfg->vms[vmi];
	v = malloc(sizeof(*v));
	if (!v)
		return -ENOMEM;
	*v = *cfg;
	v->n_nodes = 0;
	v->n_vms = 0;
	memset(v->nodes, 0, sizeof(v->nodes));
	v->vms = calloc(1, sizeof(*v->vms));
	if (!v->vms) {
		cluster_config_free(v);
		return -ENOMEM;
	}
	for (int i = 0; i < cfg->n_nodes; i++) {
		map[i] = -1;
		if (!(vm->node_mask & (1ull << i)))
			continue;
		map[i] = k;
		v->nodes[k] = cfg->nodes[i];
		v->nodes[k].port = cluster_vm_node_port(cfg, vm, i);
		k++;
	}
	v->n_nodes = k;
	w = &v->vms[0];
	*w = *vm;
	v->n_vms = 1;
	memset(w->vcpus_per_node, 0, sizeof(w->vcpus_per_node));
	for (int i = 0; i < cfg->n_nodes; i++)
		if (map[i] >= 0)
			w->vcpus_per_node[map[i]] = vm->vcpus_per_node[i];
	w->node_mask = k == 64 ? ~0ull : (1ull << k) - 1;
	w->master_node = map[vm->master_node];
	if (vm->dsm.placement == DSM_PLACEMENT_NODE)
		w->dsm.placement_node = map[vm->dsm.placement_node];
	r = copy_devices(w, vm);
	if (r < 0) {
		cluster_config_free(v);
		return r;
	}
	*out = v;
	return 0;
}
