/*
 * Memory budgets of a VM: how much guest memory each node may hold for it
 * (vms[].node_memory), and how much of that is kept for cached copies
 * (vms[].dsm.min_cache). Parsed into the DSM's own settings
 * (dsm_settings.node_budget[], .min_cache; dsm/settings.h holds the
 * default), checked against the VM here: docs/config.md, "Memory budgets".
 *
 *   node_memory: 320M              every node of vcpu_placement gets 320M
 *   node_memory: {n0: 384M, n1: 256M}   one per node; every node listed
 *
 * A VM fits when every node's budget holds the pages it is home for at
 * the start (dsm.placement) plus min_cache, and the budgets together hold
 * the guest's memory plus min_cache on every node: the engine's rule
 * (dsm_engine_set_budget(), docs/protocol.md §10.1), checked before any
 * process starts. What a node's machine can give is disco-node's check.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

#define BUDGET_UNIT 4096ull /* a DSM frame */

static const char size_what[] =
	"a size in bytes, optionally with a K, M, G or T suffix, a multiple of 4K (e.g. 320M)";

/* "320M", "1G", "12K" or "4100 bytes": exact, for messages. */
static const char *size_str(uint64_t b, char *buf, size_t len)
{
	if (b && b % (1ull << 40) == 0)
		snprintf(buf, len, "%" PRIu64 "T", b >> 40);
	else if (b && b % (1ull << 30) == 0)
		snprintf(buf, len, "%" PRIu64 "G", b >> 30);
	else if (b && b % (1ull << 20) == 0)
		snprintf(buf, len, "%" PRIu64 "M", b >> 20);
	else if (b && b % (1ull << 10) == 0)
		snprintf(buf, len, "%" PRIu64 "K", b >> 10);
	else
		snprintf(buf, len, "%" PRIu64 " bytes", b);
	return buf;
}

/* A size scalar @v (the path names it): a multiple of 4K in [@lo, @hi]. */
static int size_value(struct cfg_ctx *c, const yaml_node_t *v, uint64_t lo, uint64_t hi,
		      uint64_t *out)
{
	char q[CFG_QUOTE_MAX], a[32], b[32];
	const char *s = cfg_scalar(v);
	uint64_t x;

	if (!s || v->type != YAML_SCALAR_NODE)
		return cfg_fail(c, v, "expected %s, got %s", size_what,
				cfg_describe(q, sizeof(q), v));
	if (!cfg_parse_size(s, &x))
		return cfg_fail(c, v, "expected %s, got %s", size_what, cfg_quote(q, sizeof(q), s));
	if (x % BUDGET_UNIT)
		return cfg_fail(c, v, "expected a multiple of 4K (a DSM frame), got %s (%" PRIu64
				" bytes)", cfg_quote(q, sizeof(q), s), x);
	if (x < lo || x > hi)
		return cfg_fail(c, v, "expected a size in %s..%s, got %s", size_str(lo, a, sizeof(a)),
				size_str(hi, b, sizeof(b)), cfg_quote(q, sizeof(q), s));
	*out = x;
	return 0;
}

/* vms[].dsm.min_cache: optional, default in dsm_settings_default(). */
static int parse_min_cache(struct cfg_ctx *c, const yaml_node_t *vmnode, struct dsm_settings *d)
{
	const yaml_node_t *dsm = cfg_map_get(c, vmnode, "dsm"), *v = NULL;
	size_t saved;
	int r;

	if (!dsm || dsm->type != YAML_MAPPING_NODE)
		return 0; /* absent, or refused already by the dsm block's parser */
	saved = cfg_path_key(c, "dsm");
	cfg_path_key(c, "min_cache");
	if ((r = cfg_scalar_value(c, dsm, "min_cache", false, size_what, &v)) == 1)
		r = size_value(c, v, BUDGET_UNIT, CLUSTER_MAX_MEMORY, &d->min_cache);
	if (r >= 0)
		cfg_path_restore(c, saved);
	return r < 0 ? r : 0;
}

/* One size for every node of the VM. */
static int parse_one_size(struct cfg_ctx *c, const yaml_node_t *v, struct cluster_vm *vm)
{
	uint64_t x;
	int r;

	if ((r = size_value(c, v, BUDGET_UNIT, CLUSTER_MAX_MEMORY, &x)) < 0)
		return r;
	for (int n = 0; n < c->cfg->n_nodes; n++)
		if (vm->node_mask & (1ull << n))
			vm->dsm.node_budget[n] = x;
	return 0;
}

/* A mapping node name -> size: exactly the nodes of vcpu_placement. */
static int parse_size_map(struct cfg_ctx *c, const yaml_node_t *map, struct cluster_vm *vm)
{
	char q[CFG_QUOTE_MAX];
	uint64_t seen = 0;
	int r;

	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
		const yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
		const char *k = cfg_scalar(kn);
		size_t at;
		int idx;

		if (!k)
			return cfg_fail(c, kn, "expected a node name, got %s",
					cfg_describe(q, sizeof(q), kn));
		at = cfg_path_key(c, k);
		idx = cluster_config_find_node(c->cfg, k);
		if (idx < 0 || !(vm->node_mask & (1ull << idx)))
			return cfg_fail(c, kn, "node %s %s; a budget is for a node in vcpu_placement",
					cfg_quote(q, sizeof(q), k),
					idx < 0 ? "does not exist" : "takes no part in this VM");
		if (seen & (1ull << idx))
			return cfg_fail(c, kn, "duplicate key %s (first at line %zu)",
					cfg_quote(q, sizeof(q), k),
					cfg_map_key(c, map, k)->start_mark.line + 1);
		seen |= 1ull << idx;
		if ((r = size_value(c, vn, BUDGET_UNIT, CLUSTER_MAX_MEMORY,
				    &vm->dsm.node_budget[idx])) < 0)
			return r;
		cfg_path_restore(c, at);
	}
	for (int n = 0; n < c->cfg->n_nodes; n++)
		if ((vm->node_mask & (1ull << n)) && !(seen & (1ull << n)))
			return cfg_fail(c, map, "no budget for node \"%s\": give every node of "
					"vcpu_placement one (or one size for all)",
					c->cfg->nodes[n].name);
	return 0;
}

int cfg_parse_budget(struct cfg_ctx *c, const yaml_node_t *vmnode, struct cluster_vm *vm)
{
	char q[CFG_QUOTE_MAX];
	size_t saved;
	int r;

	if ((r = parse_min_cache(c, vmnode, &vm->dsm)) < 0)
		return r;
	const yaml_node_t *v = cfg_map_get(c, vmnode, "node_memory");
	if (!v || cfg_is_null(v))
		return 0;
	saved = cfg_path_key(c, "node_memory");
	if (v->type == YAML_SCALAR_NODE)
		r = parse_one_size(c, v, vm);
	else if (v->type == YAML_MAPPING_NODE)
		r = parse_size_map(c, v, vm);
	else
		r = cfg_fail(c, v, "expected %s, or a mapping of node name to size, got %s",
			     size_what, cfg_describe(q, sizeof(q), v));
	if (r >= 0)
		cfg_path_restore(c, saved);
	return r;
}

/* Where to blame node @n's budget: its own value, or the one size. */
static void blame_node(struct cfg_ctx *c, int v, int n)
{
	cfg_path_set(c, "vms[%d].node_memory.%s", v, c->cfg->nodes[n].name);
	if (!cfg_lookup(c, c->path))
		cfg_path_set(c, "vms[%d].node_memory", v);
}

int cfg_check_budget(struct cfg_ctx *c, int v)
{
	const struct cluster_config *cfg = c->cfg;
	const struct cluster_vm *vm = &cfg->vms[v];
	const struct dsm_settings *d = &vm->dsm;
	struct dsm_placement pl;
	char a[32], b[32], e[32], f[32];
	uint64_t sum = 0;
	int nodes = 0;

	if (!dsm_settings_have_budgets(d))
		return 0;
	if (cluster_vm_dsm_placement(cfg, vm, &pl) < 0)
		return 0; /* an earlier rule failed */
	/* First the VM as a whole (the budgets cannot hold it, however the
	 * pages are placed), then each node's start (its home pages). */
	for (int n = 0; n < cfg->n_nodes; n++) {
		if (vm->node_mask & (1ull << n)) {
			nodes++;
			sum += d->node_budget[n];
		}
	}
	uint64_t need = vm->memory_bytes + (uint64_t)nodes * d->min_cache;
	if (sum < need) {
		cfg_path_set(c, "vms[%d].node_memory", v);
		return cfg_fail_path(c, "the budgets add up to %s, less than the guest's memory "
				     "(%s) plus dsm.min_cache (%s) on each of the %d nodes: %s",
				     size_str(sum, a, sizeof(a)),
				     size_str(vm->memory_bytes, b, sizeof(b)),
				     size_str(d->min_cache, e, sizeof(e)), nodes,
				     size_str(need, f, sizeof(f)));
	}
	for (int n = 0; n < cfg->n_nodes; n++) {
		if (!(vm->node_mask & (1ull << n)))
			continue;
		uint64_t budget = d->node_budget[n];
		uint64_t homes = dsm_placement_home_pages(&pl, n) * BUDGET_UNIT;
		if (budget > d->min_cache && budget - d->min_cache >= homes)
			continue;
		blame_node(c, v, n);
		if (homes == 0)
			return cfg_fail_path(c, "node \"%s\": expected a budget of more than "
					     "dsm.min_cache (%s), got \"%s\"", cfg->nodes[n].name,
					     size_str(d->min_cache, b, sizeof(b)),
					     size_str(budget, a, sizeof(a)));
		return cfg_fail_path(c, "node \"%s\" is home of %s of the guest's memory at the "
				     "start (dsm.placement %s), so its budget must be at least that "
				     "plus dsm.min_cache (%s): %s, got \"%s\"",
				     cfg->nodes[n].name, size_str(homes, a, sizeof(a)),
				     pl.kind == DSM_PLACEMENT_NUMA ? "numa"
				     : pl.kind == DSM_PLACEMENT_INTERLEAVE ? "interleave" : "node",
				     size_str(d->min_cache, b, sizeof(b)),
				     size_str(homes + d->min_cache, e, sizeof(e)),
				     size_str(budget, f, sizeof(f)));
	}
	return 0;
}
