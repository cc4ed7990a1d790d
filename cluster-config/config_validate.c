// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Cross-field checks on a parsed cluster file: the rules that relate two
 * or more values, which no single field's parser can see.
 *
 * The struct is complete by now and the YAML tree is still loaded, so each
 * check names the field it blames by path and cfg_fail_path() finds its
 * line and column. When the blamed value was defaulted (absent from the
 * file), the check blames the value the user did write, or failing that
 * the mapping that lacks the key. Checks run in file order (cluster, nodes,
 * vms) so the first error is the one nearest the top.
 */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

static int check_timeouts(struct cfg_ctx *c)
{
	const struct cluster_config *cfg = c->cfg;
	char q[CFG_QUOTE_MAX];

	/* A peer must be able to miss one heartbeat without being declared dead. */
	if (cfg->peer_timeout_ms > 2ull * cfg->heartbeat_ms)
		return 0;
	cfg_path_set(c, "cluster.peer_timeout_ms");
	if (cfg_lookup(c, c->path)) {
		snprintf(q, sizeof(q), "\"%u\"", cfg->peer_timeout_ms);
		return cfg_fail_path(c, "expected more than 2 * heartbeat_ms (%llu), got %s",
				     2ull * cfg->heartbeat_ms, q);
	}
	cfg_path_set(c, "cluster.heartbeat_ms");
	return cfg_fail_path(c,
			     "expected less than half of peer_timeout_ms (%u, the default), "
			     "got \"%u\"",
			     cfg->peer_timeout_ms, cfg->heartbeat_ms);
}

static int check_nodes(struct cfg_ctx *c)
{
	const struct cluster_config *cfg = c->cfg;

	for (int i = 0; i < cfg->n_nodes; i++) {
		const struct cluster_node *n = &cfg->nodes[i];

		for (int j = 0; j < i; j++) {
			const struct cluster_node *o = &cfg->nodes[j];

			/* (duplicate names are refused while parsing: config_parse.c) */
			if (n->port == o->port && cfg_same_address(n->address, o->address)) {
				bool v6 = strchr(n->address, ':') != NULL;

				cfg_path_set(c, "nodes[%d].port", i);
				return cfg_fail_path(c,
						     "duplicate address and port %s%s%s:%d "
						     "(also nodes[%d], \"%s\")",
						     v6 ? "[" : "", n->address, v6 ? "]" : "",
						     n->port, j, o->name);
			}
		}
		/* One transport per cluster: a node speaks only one, and DSM
		 * messages go to every node. */
		if (n->transport != cfg->transport) {
			cfg_path_set(c, "nodes[%d].transport", i);
			return cfg_fail_path(c,
					     "node \"%s\" uses %s but the cluster uses %s; mixed "
					     "transports are not supported",
					     n->name, cluster_transport_name(n->transport),
					     cluster_transport_name(cfg->transport));
		}
		if (n->transport == CLUSTER_TRANSPORT_RDMA && !n->rdma.device[0]) {
			cfg_path_set(c, "nodes[%d].rdma", i);
			return cfg_fail_path(c,
					     "missing required key (node \"%s\" uses rdma, so it "
					     "needs rdma.device)",
					     n->name);
		}
	}
	return 0;
}

static int check_knobs(struct cfg_ctx *c, int v, const struct dsm_policy_knobs *k)
{
	cfg_path_set(c, "vms[%d].dsm.sharing", v);
	if (k->sharing <= k->trigger)
		return 0;
	if (cfg_lookup(c, c->path))
		return cfg_fail_path(c, "expected at most trigger (%u), got \"%u\"", k->trigger,
				     k->sharing);
	cfg_path_set(c, "vms[%d].dsm.trigger", v);
	return cfg_fail_path(c, "expected at least sharing (%u, the default), got \"%u\"",
			     k->sharing, k->trigger);
}

/*
 * A fault waiting on a silent peer must not fail before the session could
 * have declared that peer lost (peer_timeout_ms, checked every
 * heartbeat_ms): otherwise a link down or a pause shorter than
 * peer_timeout_ms, which the VM survives by design, would stop it through
 * the fault timeout (docs/architecture.md, "Failures").
 */
static int check_fault_timeout(struct cfg_ctx *c, int v)
{
	const struct cluster_config *cfg = c->cfg;
	unsigned long long need = (unsigned long long)cfg->peer_timeout_ms + cfg->heartbeat_ms;
	unsigned fault = cfg->vms[v].dsm.fault_timeout_ms;

	if (fault >= need)
		return 0;
	cfg_path_set(c, "vms[%d].dsm.fault_timeout_ms", v);
	if (cfg_lookup(c, c->path))
		return cfg_fail_path(c,
				     "expected at least cluster.peer_timeout_ms + heartbeat_ms (%llu), "
				     "so that a peer silent for less than peer_timeout_ms never fails "
				     "a fault, got \"%u\"",
				     need, fault);
	cfg_path_set(c, "cluster.peer_timeout_ms");
	return cfg_fail_path(c,
			     "expected at most vms[%d].dsm.fault_timeout_ms (%u, the default) - "
			     "heartbeat_ms (%u), so that a peer silent for less than "
			     "peer_timeout_ms never fails a fault, got \"%u\"",
			     v, fault, cfg->heartbeat_ms, cfg->peer_timeout_ms);
}

static int check_vm(struct cfg_ctx *c, int v)
{
	const struct cluster_config *cfg = c->cfg;
	const struct cluster_vm *vm = &cfg->vms[v];
	int sum = 0, r;

	for (int j = 0; j < v; j++) {
		if (!strcmp(vm->name, cfg->vms[j].name)) {
			cfg_path_set(c, "vms[%d].name", v);
			return cfg_fail_path(c, "duplicate VM name \"%s\" (also vms[%d])", vm->name, j);
		}
	}
	for (int i = 0; i < cfg->n_nodes; i++)
		sum += vm->vcpus_per_node[i];
	if (sum != vm->vcpus) {
		cfg_path_set(c, "vms[%d].vcpu_placement", v);
		return cfg_fail_path(c, "places %d vCPU%s but vcpus is %d", sum, sum == 1 ? "" : "s",
				     vm->vcpus);
	}
	/* The master runs vCPU 0 and the devices, so it needs a vCPU. */
	if (vm->vcpus_per_node[vm->master_node] == 0) {
		const char *m = cfg->nodes[vm->master_node].name;

		cfg_path_set(c, "vms[%d].master", v);
		return cfg_fail_path(c,
				     "node \"%s\" has no vCPUs in vcpu_placement, but the master "
				     "runs vCPU 0",
				     m);
	}
	if (vm->dsm.placement == DSM_PLACEMENT_NODE &&
	    !(vm->node_mask & (1ull << vm->dsm.placement_node))) {
		cfg_path_set(c, "vms[%d].dsm.placement", v);
		return cfg_fail_path(c,
				     "node \"%s\" is not in vcpu_placement; the home of all pages "
				     "must take part in the VM",
				     cfg->nodes[vm->dsm.placement_node].name);
	}
	if ((r = check_fault_timeout(c, v)) < 0 || (r = check_knobs(c, v, &vm->dsm.knobs)) < 0)
		return r;
	return cfg_check_budget(c, v);
}

int cfg_validate(struct cfg_ctx *c)
{
	int r;

	if ((r = check_timeouts(c)) < 0 || (r = check_nodes(c)) < 0)
		return r;
	for (int v = 0; v < c->cfg->n_vms; v++)
		if ((r = check_vm(c, v)) < 0)
			return r;
	if ((r = cfg_validate_devices(c)) < 0)
		return r;
	return cfg_validate_ports(c);
}
