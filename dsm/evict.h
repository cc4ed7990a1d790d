// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Victim choice for evictions under a memory budget: a clock (second
 * chance) over the pages of a region, as a pure data structure (no
 * threads, no I/O, no clock), used by the runtime and by the simulator.
 *
 * Every page has a reference bit, set whenever a thread faults on the page
 * or a copy of it is installed (dsm_evict_touch). When the engine asks for
 * room (DSM_ACT_NEED_ROOM), dsm_evict_pick() sweeps the hand over the pages:
 *   - a page the engine cannot evict now (dsm_engine_evictable() false: a
 *     home page, no copy, a request in flight) is passed over untouched;
 *   - a referenced page loses its bit and is passed over (its second
 *     chance: it was used since the hand last came by);
 *   - a page the home keeps replicated (read-mostly, shared by several
 *     readers: dsm_evict_set_replicated(), from the GRANT's hint) is passed
 *     over once more, unreferenced, before it can be chosen; so read-mostly
 *     replicas stay in the readers' caches while other cold copies go;
 *   - any other page is the victim; the hand stops just past it.
 * A pick looks at most @max_looks pages (0: three sweeps, enough to clear
 * every bit and find a victim if there is one) and returns -1 if it found
 * none: then nothing is evictable now, and the engine asks again once
 * something is.
 *
 * Cost: one byte per page; a pick is O(pages looked at). With most pages
 * referenced or not evictable a pick can look at many pages; the runtime
 * bounds it with @max_looks and picks again at its next NEED_ROOM.
 */
#ifndef DISCO_DSM_EVICT_H
#define DISCO_DSM_EVICT_H

#include <stdbool.h>
#include <stdint.h>

struct dsm_evict_clock;

/* May @page be evicted now? (usually dsm_engine_evictable()) */
typedef bool (*dsm_evict_can_fn)(void *ctx, uint64_t page);

/* NULL on allocation failure or @n_pages 0. */
struct dsm_evict_clock *dsm_evict_create(uint64_t n_pages);
void dsm_evict_destroy(struct dsm_evict_clock *c);

/* The page was used (a fault on it, a copy installed). */
void dsm_evict_touch(struct dsm_evict_clock *c, uint64_t page);
/* The home keeps @page replicated: spare it once more. */
void dsm_evict_set_replicated(struct dsm_evict_clock *c, uint64_t page, bool replicated);

/* The next victim, or -1 if none was found within @max_looks pages (0:
 * three sweeps). */
int64_t dsm_evict_pick(struct dsm_evict_clock *c, dsm_evict_can_fn can_evict, void *ctx,
		       uint64_t max_looks);
/* The same, and *@looked = how many pages it looked at (a runtime that
 * bounds its work per turn spends its allowance with it). */
int64_t dsm_evict_pick_counted(struct dsm_evict_clock *c, dsm_evict_can_fn can_evict, void *ctx,
			       uint64_t max_looks, uint64_t *looked);

#endif
