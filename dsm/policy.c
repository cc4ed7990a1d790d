/*
 * Disco's page placement policy: see policy.h for the rules. Per page it
 * keeps two bytes: how often this node moved the page away, and whether it
 * is frozen.
 */
#include "dsm/policy.h"

#include <stdlib.h>

struct dsm_policy {
	struct dsm_policy_knobs k;
	int self, n_nodes;
	uint64_t n_pages;
	uint8_t *moves;  /* per page: homes moved away from here (saturates) */
	uint8_t *frozen; /* per page: write-shared, never move again */
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
	if (!p->moves || !p->frozen) {
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
			p->c.freezes++;
			return DSM_POLICY_FREEZE;
		}
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
	p->c.migrations++;
	*target = top_node;
	return DSM_POLICY_MIGRATE;
}

void dsm_policy_undo_move(struct dsm_policy *p, uint64_t page)
{
	if (page < p->n_pages && p->moves[page]) {
		p->moves[page]--;
		p->c.migrations--;
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
