// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Tree walk of a cluster file, part 2: the vms list and each VM's dsm
 * block.
 *
 * Node names used by a VM (vcpu_placement keys, master, "node:<name>") are
 * turned into node indices here, where the YAML node of the name is at
 * hand, so an unknown name is reported at its own line and column. The
 * default master is chosen here too because it depends on the YAML order
 * of vcpu_placement, which the finished struct no longer has.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define MIB2 (2ull << 20)

static const char *const vm_keys[] = {"name",   "memory", "vcpus",   "vcpu_placement", "master",
				      "kernel", "initrd", "cmdline", "dsm",            "numa_distance",
				      "on_reset", "housekeeping", "boot_vcpus", "numa_balancing", "disks",
				      "nics", "port", "node_memory", NULL};
static const char *const dsm_keys[] = {"placement",   "policy",  "fault_timeout_ms",
				       "min_hold_us", "interval_ms", "trigger",
				       "sharing",     "write_share", "move_cap",
				       "backing",     "hot_pages_report", "min_cache", NULL};
static const char *const policies[] = {"static", "disco", NULL}; /* enum dsm_policy_kind order */
static const char *const backings[] = {"anonymous", "memfd", NULL}; /* enum dsm_backing_kind */
static const char *const reset_actions[] = {"reset", "stop", NULL}; /* enum cluster_reset_action */
static const char *const housekeepers[] = {"master", "all", NULL}; /* enum cluster_housekeeping */
static const char *const boot_vcpu_sets[] = {"all", "master", NULL}; /* enum cluster_boot_vcpus */
static const char *const numa_balancers[] = {"monitor", "guest", NULL}; /* enum cluster_numa_balancing */

/* "n0, n1, n2" for messages about unknown nodes; long lists are cut. */
static const char *node_names(const struct cluster_config *cfg, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < cfg->n_nodes && o < len; i++) {
		int n = i == 8 ? snprintf(buf + o, len - o, ", ...")
			       : snprintf(buf + o, len - o, "%s%s", i ? ", " : "", cfg->nodes[i].name);
		if (n < 0 || i == 8)
			break;
		o += (size_t)n;
	}
	return buf;
}

static int unknown_node(struct cfg_ctx *c, const yaml_node_t *at, const char *name,
			const char *context)
{
	char q[CFG_QUOTE_MAX], names[256];

	return cfg_fail(c, at, "unknown node %s%s; the nodes are %s", cfg_quote(q, sizeof(q), name),
			context, node_names(c->cfg, names, sizeof(names)));
}

static int parse_memory(struct cfg_ctx *c, const yaml_node_t *m, struct cluster_vm *vm)
{
	static const char what[] =
		"a size in bytes, optionally with a K, M, G or T suffix (e.g. 512M, 2G)";
	size_t saved = cfg_path_key(c, "memory");
	const yaml_node_t *v = NULL;
	char q[CFG_QUOTE_MAX];
	int r;

	if ((r = cfg_scalar_value(c, m, "memory", true, what, &v)) < 0)
		return r;
	const char *s = cfg_scalar(v);
	if (!cfg_parse_size(s, &vm->memory_bytes))
		return cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), s));
	/* Guest RAM is registered and placed in 2 MiB units (huge pages). */
	if (vm->memory_bytes < MIB2)
		return cfg_fail(c, v, "expected at least 2M, got %s", cfg_quote(q, sizeof(q), s));
	if (vm->memory_bytes % MIB2)
		return cfg_fail(c, v, "expected a multiple of 2M (2097152 bytes), got %s (%llu bytes)",
				cfg_quote(q, sizeof(q), s), (unsigned long long)vm->memory_bytes);
	/* The guest CPU model's 40 physical address bits. */
	if (vm->memory_bytes > CLUSTER_MAX_MEMORY)
		return cfg_fail(c, v, "expected at most 1T (the guest's 40-bit physical address "
				"space), got %s", cfg_quote(q, sizeof(q), s));
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_vcpu_placement(struct cfg_ctx *c, const yaml_node_t *m, struct cluster_vm *vm,
				int *first_busy)
{
	size_t saved = cfg_path_key(c, "vcpu_placement");
	const yaml_node_t *pl = cfg_map_get(c, m, "vcpu_placement");
	int r;

	*first_busy = -1;
	if ((r = cfg_want_map(c, m, pl, true)) < 0)
		return r;
	if (cfg_len(pl) == 0)
		return cfg_fail(c, pl,
				"expected a mapping of node name to vCPU count with at least one "
				"node, got an empty mapping");
	/* Keys are checked here rather than by cfg_check_keys(): the node
	 * bitmap finds duplicates in one pass, where a hostile file with a
	 * huge mapping would make the generic pairwise check quadratic. */
	for (yaml_node_pair_t *p = pl->data.mapping.pairs.start; p < pl->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
		const char *k = cfg_scalar(kn);
		char q[CFG_QUOTE_MAX];
		int idx, n = 0;

		if (!k)
			return cfg_fail(c, kn, "expected a node name, got %s",
					cfg_describe(q, sizeof(q), kn));
		idx = cluster_config_find_node(c->cfg, k);
		if (idx < 0) {
			cfg_path_key(c, k);
			return unknown_node(c, kn, k, "");
		}
		if (vm->node_mask & (1ull << idx)) {
			const yaml_node_t *first = cfg_map_key(c, pl, k);

			cfg_path_key(c, k);
			return cfg_fail(c, kn, "duplicate key %s (first at line %zu)",
					cfg_quote(q, sizeof(q), k), first->start_mark.line + 1);
		}
		if ((r = cfg_get_int(c, pl, k, true, 0, CLUSTER_MAX_VCPUS, &n)) < 0)
			return r;
		vm->vcpus_per_node[idx] = n;
		vm->node_mask |= 1ull << idx;
		if (n > 0 && *first_busy < 0)
			*first_busy = idx;
	}
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_master(struct cfg_ctx *c, const yaml_node_t *m, struct cluster_vm *vm,
			int first_busy)
{
	char name[CLUSTER_NAME_MAX];
	int r = cfg_get_name(c, m, "master", false, "a node name", name);

	if (r < 0)
		return r;
	vm->master_node = first_busy; /* -1 only if no vCPUs: the validator says why */
	if (r == 0)
		return 0;
	vm->master_node = cluster_config_find_node(c->cfg, name);
	if (vm->master_node < 0) {
		cfg_path_key(c, "master");
		return unknown_node(c, cfg_map_get(c, m, "master"), name, "");
	}
	return 0;
}

static int parse_dsm_placement(struct cfg_ctx *c, const yaml_node_t *dsm, struct dsm_settings *d)
{
	static const char what[] = "\"numa\", \"interleave\" or \"node:<name>\"";
	size_t saved = cfg_path_key(c, "placement");
	const yaml_node_t *v = NULL;
	char q[CFG_QUOTE_MAX];
	int r;

	if ((r = cfg_scalar_value(c, dsm, "placement", false, what, &v)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	const char *s = cfg_scalar(v);
	if (!strcmp(s, "numa")) {
		d->placement = DSM_PLACEMENT_NUMA;
	} else if (!strcmp(s, "interleave")) {
		d->placement = DSM_PLACEMENT_INTERLEAVE;
	} else if (!strncmp(s, "node:", 5)) {
		char ctx[CFG_QUOTE_MAX + 8];

		d->placement = DSM_PLACEMENT_NODE;
		d->placement_node = cluster_config_find_node(c->cfg, s + 5);
		if (d->placement_node < 0) {
			snprintf(ctx, sizeof(ctx), " in %s", cfg_quote(q, sizeof(q), s));
			return unknown_node(c, v, s + 5, ctx);
		}
	} else {
		return cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), s));
	}
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_dsm(struct cfg_ctx *c, const yaml_node_t *vmnode, struct dsm_settings *d)
{
	size_t saved = cfg_path_key(c, "dsm");
	const yaml_node_t *m = cfg_map_get(c, vmnode, "dsm");
	struct dsm_policy_knobs *k = &d->knobs;
	int policy, backing;
	int r;

	*d = dsm_settings_default();
	policy = (int)d->policy;
	backing = (int)d->backing;
	if ((r = cfg_want_map(c, vmnode, m, false)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	if ((r = cfg_check_keys(c, m, dsm_keys)) < 0 || (r = parse_dsm_placement(c, m, d)) < 0 ||
	    (r = cfg_get_choice(c, m, "policy", false, policies, &policy)) < 0 ||
	    (r = cfg_get_u32(c, m, "fault_timeout_ms", false, 100, 600000, &d->fault_timeout_ms)) < 0 ||
	    (r = cfg_get_u32(c, m, "min_hold_us", false, 0, 1000000, &d->min_hold_us)) < 0 ||
	    (r = cfg_get_u32(c, m, "interval_ms", false, 1, 60000, &k->interval_ms)) < 0 ||
	    (r = cfg_get_u32(c, m, "trigger", false, 1, 1000000, &k->trigger)) < 0 ||
	    (r = cfg_get_u32(c, m, "sharing", false, 1, 1000000, &k->sharing)) < 0 ||
	    (r = cfg_get_u32(c, m, "write_share", false, 1, 1000000, &k->write_share)) < 0 ||
	    (r = cfg_get_u32(c, m, "move_cap", false, 0, 1000000, &k->move_cap)) < 0 ||
	    (r = cfg_get_choice(c, m, "backing", false, backings, &backing)) < 0 ||
	    (r = cfg_get_u32(c, m, "hot_pages_report", false, 0, 1000, &d->hot_pages_report)) < 0)
		return r;
	d->policy = (enum dsm_policy_kind)policy;
	d->backing = (enum dsm_backing_kind)backing;
	cfg_path_restore(c, saved);
	return 0;
}

/* numa_distance: "auto" (the default: the master measures it at start) or
 * a fixed SLIT value in 11..254. */
static int parse_numa_distance(struct cfg_ctx *c, const yaml_node_t *m, struct cluster_vm *vm)
{
	static const char what[] = "\"auto\" or an integer in 11..254";
	size_t saved = cfg_path_key(c, "numa_distance");
	const yaml_node_t *v = NULL;
	char q[CFG_QUOTE_MAX];
	uint64_t d;
	int r;

	vm->numa_distance = CLUSTER_NUMA_DISTANCE_AUTO;
	if ((r = cfg_scalar_value(c, m, "numa_distance", false, what, &v)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	const char *s = cfg_scalar(v);
	if (!strcmp(s, "auto"))
		vm->numa_distance = CLUSTER_NUMA_DISTANCE_AUTO;
	else if (cfg_parse_uint(s, &d) && d >= 11 && d <= 254)
		vm->numa_distance = (int)d;
	else
		return cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), s));
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_vm(struct cfg_ctx *c, const yaml_node_t *m, struct cluster_vm *vm)
{
	int first_busy, on_reset = CLUSTER_ON_RESET_RESET, housekeeping = CLUSTER_HOUSEKEEPING_MASTER,
			boot_vcpus = CLUSTER_BOOT_VCPUS_ALL, numa_balancing = CLUSTER_NUMA_BALANCING_MONITOR, r;

	if ((r = cfg_want_map(c, m, m, true)) < 0 || (r = cfg_check_keys(c, m, vm_keys)) < 0 ||
	    (r = cfg_get_name(c, m, "name", true, "a VM name", vm->name)) < 0 ||
	    (r = parse_memory(c, m, vm)) < 0 ||
	    (r = cfg_get_int(c, m, "vcpus", true, 1, CLUSTER_MAX_VCPUS, &vm->vcpus)) < 0 ||
	    (r = parse_vcpu_placement(c, m, vm, &first_busy)) < 0 ||
	    (r = parse_master(c, m, vm, first_busy)) < 0 ||
	    /* kernel and initrd: never opened (they may be built after the
	     * cluster file is written) */
	    (r = cfg_get_path(c, m, "kernel", false, vm->kernel, sizeof(vm->kernel), NULL)) < 0 ||
	    (r = cfg_get_path(c, m, "initrd", false, vm->initrd, sizeof(vm->initrd), NULL)) < 0 ||
	    (r = cfg_get_string(c, m, "cmdline", false, "a kernel command line", vm->cmdline,
				sizeof(vm->cmdline))) < 0 ||
	    (r = parse_numa_distance(c, m, vm)) < 0 ||
	    (r = cfg_get_choice(c, m, "on_reset", false, reset_actions, &on_reset)) < 0 ||
	    (r = cfg_get_choice(c, m, "housekeeping", false, housekeepers, &housekeeping)) < 0 ||
	    (r = cfg_get_choice(c, m, "boot_vcpus", false, boot_vcpu_sets, &boot_vcpus)) < 0 ||
	    (r = cfg_get_choice(c, m, "numa_balancing", false, numa_balancers, &numa_balancing)) < 0 ||
	    (r = parse_dsm(c, m, &vm->dsm)) < 0 || (r = cfg_parse_budget(c, m, vm)) < 0 ||
	    (r = cfg_parse_disks(c, m, vm)) < 0 || (r = cfg_parse_nics(c, m, vm)) < 0 ||
	    (r = cfg_get_int(c, m, "port", false, 1, 65535, &vm->port)) < 0)
		return r;
	vm->on_reset = (enum cluster_reset_action)on_reset;
	vm->housekeeping = (enum cluster_housekeeping)housekeeping;
	vm->boot_vcpus = (enum cluster_boot_vcpus)boot_vcpus;
	vm->numa_balancing = (enum cluster_numa_balancing)numa_balancing;
	return 0;
}

int cfg_parse_vms(struct cfg_ctx *c, const yaml_node_t *root)
{
	struct cluster_config *cfg = c->cfg;
	size_t saved = cfg_path_key(c, "vms");
	const yaml_node_t *seq = cfg_map_get(c, root, "vms");
	size_t n;
	int r;

	if ((r = cfg_want_seq(c, root, seq, false)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	n = cfg_len(seq);
	if (n > CFG_MAX_VMS) {
		cfg_path_index(c, CFG_MAX_VMS);
		return cfg_fail(c, cfg_seq_item(c, seq, CFG_MAX_VMS),
				"too many VMs: at most %d are supported, got %zu", CFG_MAX_VMS, n);
	}
	if (n == 0) {
		cfg_path_restore(c, saved);
		return 0;
	}
	cfg->vms = calloc(n, sizeof(*cfg->vms));
	if (!cfg->vms)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t at = cfg_path_index(c, i);

		cfg->n_vms = (int)i + 1;
		if ((r = parse_vm(c, cfg_seq_item(c, seq, i), &cfg->vms[i])) < 0)
			return r;
		cfg_path_restore(c, at);
	}
	cfg_path_restore(c, saved);
	return 0;
}
