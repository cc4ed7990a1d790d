// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Answers about one VM of a cluster file, for scripts that start its
 * nodes (scripts/run-vm.sh, scripts/lib/vm-nodes.sh, run-debian.sh):
 * `disco config nodes|vm|vcpus|forward` (which replaced disco-node's
 * --list-nodes and --print-* flags), and disco-node's choice of the VM
 * (vm_query_pick()). Each query prints one answer on stdout.
 */
#ifndef DISCO_NODE_VM_QUERY_H
#define DISCO_NODE_VM_QUERY_H

#include "cluster-config/cluster_config.h"

enum vm_query {
	VM_QUERY_NODES,   /* the VM's nodes, master first, one per line */
	VM_QUERY_NAME,    /* its name */
	VM_QUERY_VCPUS,   /* its vCPU count */
	VM_QUERY_FORWARD, /* "HOST HOST_PORT" where the master forwards guest TCP port @port */
};

/* The VM called @vm, or the config's only VM when @vm is NULL: its index,
 * or -ENOENT after printing why (prefixed with @who) on stderr. */
int vm_query_pick(const struct cluster_config *cfg, const char *vm, const char *who);

/* Print the answer; returns the exit status: 0, 1 when no NIC forwards
 * @port, 2 when the VM cannot be chosen (printed). */
int vm_query(const struct cluster_config *cfg, const char *vm, enum vm_query q, int port,
	     const char *who);

#endif
