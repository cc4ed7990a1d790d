// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DSM's own settings: where pages start (placement), whether and how
 * their homes move (policy and its knobs), how a node keeps its copy
 * (backing), how much memory each node may hold (budgets), and the
 * runtime's time limits. The DSM owns these types; the
 * cluster config (cluster-config/) translates a VM's `dsm:` block of the
 * YAML into them, and every default lives here, in dsm_settings_default(),
 * so the parser, the tools and the tests agree on it.
 *
 * Header only: the pure engine and policy (disco_dsm_protocol), the
 * runtime (disco_dsm) and the config parser all include it without
 * linking one another.
 */
#ifndef DISCO_DSM_SETTINGS_H
#define DISCO_DSM_SETTINGS_H

#include <stdint.h>

#define DSM_PAGE_SIZE 4096
#define DSM_MAX_NODES 64 /* copysets are 64-bit bitmaps */

enum dsm_placement_kind {
	DSM_PLACEMENT_NUMA,       /* each node homes the guest NUMA range of its vCPUs */
	DSM_PLACEMENT_INTERLEAVE, /* page i is homed on the (i % k)-th of k nodes */
	DSM_PLACEMENT_NODE,       /* every page homed on one node */
};

enum dsm_policy_kind {
	DSM_POLICY_STATIC, /* homes never move */
	DSM_POLICY_DISCO,  /* migrate / replicate / freeze, Bugnion et al. 4.2.3 */
};

/* Knobs of Disco's placement policy (dsm/policy.h). */
struct dsm_policy_knobs {
	uint32_t interval_ms; /* decision interval */
	uint32_t trigger;     /* misses per interval that make a page hot */
	uint32_t sharing;     /* misses from a 2nd node that mean "shared" */
	uint32_t write_share; /* write misses from >1 node that freeze a page */
	uint32_t move_cap;    /* max home moves of one page */
};

/* Where a node keeps its copy of the DSM memory. */
enum dsm_backing_kind {
	DSM_BACKING_ANONYMOUS, /* private anonymous memory: UFFDIO_COPY installs */
	DSM_BACKING_MEMFD,     /* a memfd mapped twice: fill through the 2nd view, then
				* UFFDIO_CONTINUE (Linux >= 6.4); pages never move */
};

struct dsm_settings {
	enum dsm_placement_kind placement;
	int placement_node;            /* node index when placement == NODE, else -1 */
	enum dsm_policy_kind policy;
	struct dsm_policy_knobs knobs;
	uint32_t fault_timeout_ms;     /* a fault with no answer this long stops the user */
	uint32_t min_hold_us;          /* an owner keeps a page at least this long */
	enum dsm_backing_kind backing;
	uint32_t hot_pages_report;     /* at stop, log this many of the most-waited-for pages */
	/* Memory budgets (docs/protocol.md, "Budgets and eviction"): the bytes
	 * of guest memory node n may hold, its home pages and its cached
	 * copies together. All 0: no budget (a node keeps a copy of every
	 * page it touches). Otherwise every node taking part has one. */
	uint64_t node_budget[DSM_MAX_NODES];
	/* Bytes of every budget kept for cached copies and requests in flight
	 * (home pages may take the rest): the engine's min_cache. */
	uint64_t min_cache;
};

#define DSM_MIN_CACHE_DEFAULT (2ull << 20) /* 512 frames */

/* The defaults of every DSM setting: docs/config.md (vms[].dsm) lists them. */
static inline struct dsm_settings dsm_settings_default(void)
{
	return (struct dsm_settings){
		.placement = DSM_PLACEMENT_NUMA,
		.placement_node = -1,
		.policy = DSM_POLICY_STATIC,
		.knobs = { .interval_ms = 100, .trigger = 32, .sharing = 8, .write_share = 2,
			   .move_cap = 4 },
		.fault_timeout_ms = 5000,
		.min_hold_us = 0,
		.backing = DSM_BACKING_ANONYMOUS,
		.hot_pages_report = 0,
		.node_budget = { 0 },
		.min_cache = DSM_MIN_CACHE_DEFAULT,
	};
}

/* True when @s gives the nodes memory budgets. */
static inline int dsm_settings_have_budgets(const struct dsm_settings *s)
{
	for (int n = 0; n < DSM_MAX_NODES; n++)
		if (s->node_budget[n])
			return 1;
	return 0;
}

/*
 * Where each page starts: the placement kind resolved against a VM's
 * vCPU layout (cluster_vm_dsm_placement() builds it from the config).
 *   NUMA:       node n homes pages [range_first[n], range_first[n] +
 *               range_pages[n]); nodes with 0 pages home nothing
 *   INTERLEAVE: page i goes to the (i % k)-th node of @nodes, k of them
 *   NODE:       every page on @node
 */
struct dsm_placement {
	enum dsm_placement_kind kind;
	uint64_t n_pages;
	int n_nodes;
	int node;
	uint64_t nodes; /* bit per node */
	uint64_t range_first[DSM_MAX_NODES];
	uint64_t range_pages[DSM_MAX_NODES];
};

/* The initial home of @page, or -1 when @page or @p is out of range. */
static inline int dsm_placement_home(const struct dsm_placement *p, uint64_t page)
{
	if (page >= p->n_pages)
		return -1;
	switch (p->kind) {
	case DSM_PLACEMENT_NODE:
		return p->node;
	case DSM_PLACEMENT_INTERLEAVE: {
		int k = __builtin_popcountll(p->nodes);
		if (k == 0)
			return -1;
		int want = (int)(page % (uint64_t)k);
		for (int n = 0; n < p->n_nodes; n++)
			if (((p->nodes >> n) & 1) && want-- == 0)
				return n;
		return -1;
	}
	case DSM_PLACEMENT_NUMA:
		for (int n = 0; n < p->n_nodes; n++)
			if (page >= p->range_first[n] && page - p->range_first[n] < p->range_pages[n])
				return n;
		return -1;
	}
	return -1;
}

/* How many pages @node is home for at the start (what its budget must
 * hold besides its cache). */
static inline uint64_t dsm_placement_home_pages(const struct dsm_placement *p, int node)
{
	if (node < 0 || node >= p->n_nodes)
		return 0;
	switch (p->kind) {
	case DSM_PLACEMENT_NODE:
		return node == p->node ? p->n_pages : 0;
	case DSM_PLACEMENT_INTERLEAVE: {
		int k = __builtin_popcountll(p->nodes), rank = 0;
		if (k == 0 || !((p->nodes >> node) & 1))
			return 0;
		for (int n = 0; n < node; n++)
			rank += (int)((p->nodes >> n) & 1);
		return p->n_pages / (uint64_t)k + ((uint64_t)rank < p->n_pages % (uint64_t)k);
	}
	case DSM_PLACEMENT_NUMA:
		return p->range_pages[node];
	}
	return 0;
}

#endif
