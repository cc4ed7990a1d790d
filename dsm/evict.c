// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The eviction clock: see evict.h for the rules. One byte per page: the
 * reference bit, the "replicated" hint, and whether the hand already spared
 * the (unreferenced, replicated) page once.
 */
#include "dsm/evict.h"

#include <stdlib.h>

#define REF 1        /* used since the hand last passed */
#define REPLICATED 2 /* the home keeps it replicated */
#define SPARED 4     /* replicated and passed over once unreferenced */

struct dsm_evict_clock {
	uint64_t n_pages;
	uint64_t hand;
	uint8_t *bits;
};

struct dsm_evict_clock *dsm_evict_create(uint64_t n_pages)
{
	if (!n_pages)
		return NULL;
	struct dsm_evict_clock *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->bits = calloc(n_pages, 1);
	if (!c->bits) {
		free(c);
		return NULL;
	}
	c->n_pages = n_pages;
	return c;
}

void dsm_evict_destroy(struct dsm_evict_clock *c)
{
	if (!c)
		return;
	free(c->bits);
	free(c);
}

void dsm_evict_touch(struct dsm_evict_clock *c, uint64_t page)
{
	if (page < c->n_pages)
		c->bits[page] = (uint8_t)((c->bits[page] | REF) & ~SPARED);
}

void dsm_evict_set_replicated(struct dsm_evict_clock *c, uint64_t page, bool replicated)
{
	if (page >= c->n_pages)
		return;
	if (replicated)
		c->bits[page] |= REPLICATED;
	else
		c->bits[page] &= (uint8_t)~(REPLICATED | SPARED);
}

int64_t dsm_evict_pick(struct dsm_evict_clock *c, dsm_evict_can_fn can_evict, void *ctx,
		       uint64_t max_looks)
{
	uint64_t looked;
	return dsm_evict_pick_counted(c, can_evict, ctx, max_looks, &looked);
}

int64_t dsm_evict_pick_counted(struct dsm_evict_clock *c, dsm_evict_can_fn can_evict, void *ctx,
			       uint64_t max_looks, uint64_t *looked)
{
	if (!max_looks)
		max_looks = 3 * c->n_pages;
	for (*looked = 1; *looked <= max_looks; ++*looked) {
		uint64_t page = c->hand;
		uint8_t *b = &c->bits[page];

		c->hand = page + 1 == c->n_pages ? 0 : page + 1;
		if (!can_evict(ctx, page))
			continue;
		if (*b & REF) {
			*b &= (uint8_t)~REF; /* second chance */
			continue;
		}
		if ((*b & REPLICATED) && !(*b & SPARED)) {
			*b |= SPARED; /* a read-mostly replica: one more chance */
			continue;
		}
		*b &= (uint8_t)~SPARED;
		return (int64_t)page;
	}
	*looked = max_looks;
	return -1;
}
