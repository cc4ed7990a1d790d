// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Disco's page placement policy: see policy.h for the rules. Per page it
 * keeps three bytes: how often this node moved the page away, whether it
 * is frozen, and whether it is kept replicated.
 */
#include "dsm/policy.h"

#include <stdlib.h>

struct dsm_policy {
	struct dsm_policy_knobs k;
	int self, n_nodes;
	uint64_t n_pages;
	uint8_t *moves;  /* per page: homes moved away from here (saturates) */
	uint8_t *frozen; /* per page: write-shared, never move again */
	uint8_t *replicated; /* per page: read-shared, keep the readers' copies */
	uint8_t *handback;   /* per page: 1 + the node it is being handed back to, or 0 */
	uint64_t *blocked_in; /* per node: c.intervals + 1 when it refused a hand-back */
	uint64_t cold_cursor;     /* where dsm_policy_cold_home() goes on */
	uint64_t handed_back_in;  /* c.intervals + 1 when a page was last handed back */
	uint32_t handed_back_n;   /* ... and how many in that interval */
	bool (*unused)(void *ctx, uint64_t page); /* a home page not mapped here */
	void *unused_ctx;
	struct dsm_policy_counters c;
};

struct dsm_policy *dsm_policy_create(const struct dsm_policy_knobs *knobs, int self, int n_nodes,
				     uint64_t n_pages)
{
	struct dsm_policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->k = *knobs;
	p->self = self;
	p->n_nodes = n_nodes;
	p->n_pages = n_pages;
	p->moves = calloc(n_pages, 1);
	p->frozen = calloc(n_pages, 1);
	p->replicated = calloc(n_pages, 1);
	p->handback = calloc(n_pages, 1);
	p->blocked_in = calloc((size_t)n_nodes, sizeof(*p->blocked_in));
	if (!p->moves || !p->frozen || !p->replicated || !p->handback || !p->blocked_in) {
		dsm_policy_destroy(p);
		return NULL;
	}
	return p;
}

void dsm_policy_destroy(struct dsm_policy *p)
{
	if (!p)
		return;
	free(p->moves);
	free(p->frozen);
	free(p->replicated);
	free(p->handback);
	free(p->blocked_in);
	free(p);
}

enum dsm_policy_action dsm_policy_decide(struct dsm_policy *p, uint64_t page,
					 const uint32_t *reads, const uint32_t *writes,
					 int *target)
{
	uint64_t total = 0;
	uint32_t top = 0;
	int top_node = -1, sharers = 0, writers = 0;

	if (page >= p->n_pages)
		return DSM_POLICY_NONE;
	for (int n = 0; n < p->n_nodes; n++) {
		uint32_t m = reads[n] + writes[n];

		total += m;
		if (m > top) {
			top = m;
			top_node = n;
		}
		writers += writes[n] >= p->k.write_share && writes[n] > 0;
	}
	if (total < p->k.trigger || p->frozen[page])
		return DSM_POLICY_NONE;
	p->c.hot_pages++;
	for (int n = 0; n < p->n_nodes; n++)
		sharers += n != top_node && reads[n] + writes[n] >= p->k.sharing;

	if (sharers > 0) {
		if (writers >= 2) {
			p->frozen[page] = 1;
			p->replicated[page] = 0;
			p->c.freezes++;
			return DSM_POLICY_FREEZE;
		}
		p->replicated[page] = 1;
		p->c.replications++;
		return DSM_POLICY_REPLICATE;
	}
	if (top_node == p->self)
		return DSM_POLICY_NONE; /* misses are already local to the home */
	if (p->moves[page] >= p->k.move_cap) {
		p->c.capped++;
		return DSM_POLICY_NONE;
	}
	if (p->moves[page] < UINT8_MAX)
		p->moves[page]++;
	p->replicated[page] = 0;
	p->handback[page] = 0;
	p->c.migrations++;
	*target = top_node;
	return DSM_POLICY_MIGRATE;
}

void dsm_policy_move_refused(struct dsm_policy *p, uint64_t page)
{
	/* A refused hand-back: that node has no room for homes either, so
	 * handing it more this interval would only bounce between the two. */
	if (page < p->n_pages && p->handback[page] && p->handback[page] <= p->n_nodes)
		p->blocked_in[p->handback[page] - 1] = p->c.intervals + 1;
	dsm_policy_undo_move(p, page);
	p->c.refused++;
}

bool dsm_policy_replicated(const struct dsm_policy *p, uint64_t page)
{
	return page < p->n_pages && p->replicated[page];
}

void dsm_policy_set_unused(struct dsm_policy *p, bool (*unused)(void *ctx, uint64_t page),
			   void *ctx)
{
	p->unused = unused;
	p->unused_ctx = ctx;
}

bool dsm_policy_redo_move(struct dsm_policy *p, uint64_t page)
{
	if (page >= p->n_pages || p->frozen[page] || p->moves[page] >= p->k.move_cap)
		return false;
	p->moves[page]++;
	p->handback[page] = 0;
	p->c.migrations++;
	return true;
}

int64_t dsm_policy_cold_home(struct dsm_policy *p, const struct dsm_engine *e, int to,
			     uint64_t max_looks)
{
	int64_t other = -1, untouched = -1;

	if (to < 0 || to >= p->n_nodes || to == p->self)
		return -1;
	if (p->handed_back_in == p->c.intervals + 1 &&
	    p->handed_back_n >= DSM_POLICY_HANDBACKS_PER_INTERVAL)
		return -1;
	if (p->blocked_in[to] == p->c.intervals + 1)
		return -1;
	if (!max_looks || max_looks > p->n_pages)
		max_looks = p->n_pages;
	for (uint64_t k = 0; k < max_looks; k++) {
		uint64_t page = p->cold_cursor;

		p->cold_cursor = page + 1 == p->n_pages ? 0 : page + 1;
		if (!dsm_engine_is_home(e, page) || p->frozen[page] || p->moves[page] >= p->k.move_cap ||
		    dsm_engine_dir_busy(e, page))
			continue;
		enum dsm_dir_state d = dsm_engine_dir_state(e, page);
		/* home here, no copy here: another node holds it exclusive */
		if (d == DSM_DIR_REMOTE_EXCL) {
			if (dsm_engine_owner(e, page) == to) {
				other = (int64_t)page;
				break;
			}
			if (other < 0)
				other = (int64_t)page;
		} else if (d == DSM_DIR_HOME_EXCL && untouched < 0 && p->unused &&
			   p->unused(p->unused_ctx, page)) {
			untouched = (int64_t)page; /* nobody has it, and it is not mapped here */
		}
	}
	if (other < 0)
		other = untouched;
	if (other < 0)
		return -1;
	if (p->moves[other] < UINT8_MAX)
		p->moves[other]++;
	p->handback[other] = (uint8_t)(to + 1);
	if (p->handed_back_in != p->c.intervals + 1) {
		p->handed_back_in = p->c.intervals + 1;
		p->handed_back_n = 0;
	}
	p->handed_back_n++;
	p->c.handbacks++;
	return other;
}

void dsm_policy_undo_move(struct dsm_policy *p, uint64_t page)
{
	if (page < p->n_pages && p->moves[page]) {
		p->moves[page]--;
		if (p->handback[page])
			p->c.handbacks--; /* a hand-back, not a migration, was counted */
		else
			p->c.migrations--;
		p->handback[page] = 0;
	}
}

void dsm_policy_interval_done(struct dsm_policy *p)
{
	p->c.intervals++;
}

const struct dsm_policy_counters *dsm_policy_counters(const struct dsm_policy *p)
{
	return &p->c;
}
