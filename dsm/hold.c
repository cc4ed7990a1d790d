// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Minimum hold (dsm.min_hold_us): a page this node got writable stays here
 * at least that long; DSM messages for it wait meanwhile, in arrival
 * order, so a lock holder finishes its critical section before spinners
 * on other nodes steal the page (no livelock). Per-page order is kept;
 * pages may overtake each other, which the protocol allows (its reasoning
 * is per page; the simulator's --per-page-fifo mode checks exactly that).
 *
 * Loop thread only. The session's loop polls while anything is held
 * (its hold ends within min_hold_us), see on_loop_turn in region.c.
 */
#include <stdlib.h>
#include <string.h>

#include "region_internal.h"

struct held_msg {
	struct held_msg *next;
	int peer;
	struct dsm_msg m;
	struct dsm_wire_extra x;
	bool has_page;
	uint8_t page[]; /* DSM_PAGE_SIZE bytes when has_page */
};

struct dsm_hold {
	uint64_t min_hold_ns;
	uint64_t *until;      /* per page: its hold ends then */
	uint32_t *count;      /* per page: messages waiting */
	struct held_msg *head, *tail;
	uint64_t total;
};

struct dsm_hold *dsm_hold_create(uint64_t n_pages, uint64_t min_hold_ns)
{
	struct dsm_hold *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->min_hold_ns = min_hold_ns;
	h->until = calloc(n_pages, sizeof(uint64_t));
	h->count = calloc(n_pages, sizeof(uint32_t));
	if (!h->until || !h->count) {
		dsm_hold_destroy(h);
		return NULL;
	}
	return h;
}

void dsm_hold_destroy(struct dsm_hold *h)
{
	if (!h)
		return;
	while (h->head) {
		struct held_msg *m = h->head;
		h->head = m->next;
		free(m);
	}
	free(h->until);
	free(h->count);
	free(h);
}

void dsm_hold_start(struct dsm_hold *h, uint64_t page, uint64_t now)
{
	h->until[page] = now + h->min_hold_ns;
}

bool dsm_hold_must_wait(const struct dsm_hold *h, uint64_t page, uint64_t now)
{
	return h->count[page] || now < h->until[page];
}

int dsm_hold_push(struct dsm_hold *h, int peer, const struct dsm_msg *m,
		  const struct dsm_wire_extra *x, const uint8_t *page)
{
	struct held_msg *e = malloc(sizeof(*e) + (page ? DSM_PAGE_SIZE : 0));
	if (!e)
		return -1;
	e->next = NULL;
	e->peer = peer;
	e->m = *m;
	e->x = *x;
	e->has_page = page != NULL;
	if (page)
		memcpy(e->page, page, DSM_PAGE_SIZE);
	if (h->tail)
		h->tail->next = e;
	else
		h->head = e;
	h->tail = e;
	h->count[m->page]++;
	h->total++;
	return 0;
}

/* Only frame arrival adds to the list, never region_deliver(), so it is
 * stable while this walks it. */
bool dsm_hold_release(struct dsm_hold *h, struct dsm_region *r, uint64_t now)
{
	struct held_msg *prev = NULL, *e = h->head;

	while (e) {
		struct held_msg *next = e->next;
		if (now < h->until[e->m.page]) {
			prev = e;
			e = next;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			h->head = next;
		if (h->tail == e)
			h->tail = prev;
		h->count[e->m.page]--;
		h->total--;
		region_deliver(r, e->peer, &e->m, &e->x, e->has_page ? e->page : NULL);
		free(e);
		e = next;
	}
	return h->total != 0;
}
