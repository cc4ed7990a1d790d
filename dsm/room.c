/*
 * The runtime's side of memory budgets (docs/protocol.md §10.7): making
 * room when the engine asks for it, feeding the eviction clock, handing
 * cold home pages back, and making sure no budget is ever overrun.
 *
 * The engine counts frames and decides what an eviction does; this file
 * decides when, and which copy. Everything runs on the session's loop
 * thread, like the rest of the fault path:
 *
 *   NEED_ROOM 0 / -ENOSPC  (region_emit, inside an engine entry) only sets
 *                          `asked`. The evictions run later, from the
 *                          region's on_loop_turn (region_room_turn()),
 *                          never from inside an engine call: pick a
 *                          victim with the clock (dsm/evict.h), evict it
 *                          through region_engine_evict() (an engine entry
 *                          of its own), until dsm_engine_room_wanted() is
 *                          0. Each turn looks at most ROOM_LOOKS_PER_TURN
 *                          pages and evicts at most ROOM_EVICTS_PER_TURN
 *                          copies, then lets the loop serve frames and
 *                          faults (the pick is O(pages) at worst); the loop
 *                          keeps polling (RPC_LOOP_BUSY) while work is left.
 *   NEED_ROOM -EMLINK      a node offered us a home and we hold as many
 *                          home pages as we may: remember the node; the
 *                          next turn hands it one of our cold home pages
 *                          (dsm_policy_cold_home(), policy disco only).
 *   MOVE_REFUSED           the policy un-counts the move it decided. One
 *                          refused for want of room for home pages
 *                          (-EMLINK) is remembered, and made again as soon
 *                          as the target hands a home page here (it has
 *                          room for one more then): a swap at the speed of
 *                          the network, not of the policy's interval.
 *   a fault, an INSTALL    sets the page's reference bit; a shared INSTALL
 *                          carries the home's "replicated" hint to the clock.
 *
 * A victim is any copy the engine may evict now (dsm_engine_evictable())
 * that is not under a minimum hold (dsm.min_hold_us). When a whole sweep
 * of the clock finds none (every copy is in flight or held), the turn
 * gives up; the engine asks again after the next event that makes a copy
 * evictable, and the region's timeout timer asks again while requests
 * wait.
 *
 * After every engine entry region_room_check() compares the pages mapped
 * here (the kernel's view: what memory.c has installed and not dropped)
 * and the engine's frame count with the budget: more is a bug, reported
 * as fatal, never a silent overrun. A fault that times out while requests
 * wait for a frame is reported as the node running out of room, with the
 * numbers (region_room_describe()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region_internal.h"
#include "rpc/log.h"

#define ROOM_LOOKS_PER_TURN 16384 /* clock looks per loop turn (~50-100 us) */
#define ROOM_EVICTS_PER_TURN 64   /* evictions per loop turn */
#define ROOM_HANDBACK_LOOKS 65536 /* home pages looked at per hand-back */
#define ROOM_RETRY_NS 1000000     /* no victim in a whole sweep: wait this long */
#define ROOM_RETRY_RING 4096      /* refused moves remembered per target node */
#define ROOM_RETRY_POPS 16        /* stale entries skipped per retry */

static uint64_t frames_of(uint64_t bytes)
{
	return bytes / DSM_PAGE_SIZE;
}

int region_room_setup(struct dsm_region *r)
{
	struct region_room *room = &r->room;
	const struct dsm_settings *s = &r->settings;

	if (!dsm_settings_have_budgets(s))
		return 0;
	room->frames = frames_of(s->node_budget[r->self]);
	room->min_cache = frames_of(s->min_cache);
	if (!room->frames) {
		disco_log(DISCO_LOG_ERROR, "dsm: %s: other nodes have a memory budget but node %s "
			  "has none: every node needs one, or none", r->name,
			  rpc_session_node_name(r->session, r->self));
		return -EINVAL;
	}
	int rc = dsm_engine_set_budget(r->engine, room->frames, room->min_cache);
	if (rc < 0) {
		uint64_t homes = dsm_placement_home_pages(&r->placement, r->self);
		disco_log(DISCO_LOG_ERROR,
			  "dsm: %s: node %s cannot take its memory budget of %" PRIu64 " frames "
			  "(%" PRIu64 " MiB) with %" PRIu64 " frames kept for copies: %s (it is "
			  "home of %" PRIu64 " pages at the start)",
			  r->name, rpc_session_node_name(r->session, r->self), room->frames,
			  room->frames >> 8, room->min_cache,
			  rc == -ENOSPC ? "its home pages do not fit" : "min_cache must be 1..frames-1",
			  homes);
		return rc;
	}
	room->clock = dsm_evict_create(r->mem.n_pages);
	room->retry = calloc((size_t)r->n_nodes, sizeof(*room->retry));
	if (!room->clock || !room->retry)
		return -ENOMEM;
	disco_log(DISCO_LOG_DEBUG, "dsm: %s: memory budget %" PRIu64 " frames (%" PRIu64
		  " MiB), %" PRIu64 " kept for copies, %" PRIu64 " home pages at the start",
		  r->name, room->frames, room->frames >> 8, room->min_cache,
		  dsm_engine_home_frames(r->engine));
	return 0;
}

/* A home page not mapped here at all: never touched since the start (or
 * only by others, who hold it exclusive). The policy hands such pages
 * back first of those nobody else holds. */
static bool not_mapped(void *ctx, uint64_t page)
{
	const struct dsm_region *r = ctx;
	return !r->mem.present[page];
}

void region_room_policy_setup(struct dsm_region *r)
{
	if (r->room.clock && r->policy)
		dsm_policy_set_unused(r->policy, not_mapped, r);
}

void region_room_free(struct dsm_region *r)
{
	if (r->room.retry)
		for (int n = 0; n < r->n_nodes; n++)
			free(r->room.retry[n].page);
	free(r->room.retry);
	r->room.retry = NULL;
	dsm_evict_destroy(r->room.clock);
	r->room.clock = NULL;
}

static void retry_push(struct dsm_region *r, int target, uint64_t page)
{
	struct room_retry *q = &r->room.retry[target];

	if (!q->page && !(q->page = malloc(ROOM_RETRY_RING * sizeof(uint64_t))))
		return; /* the policy decides it again at its next interval */
	if (q->count == ROOM_RETRY_RING) { /* forget the oldest */
		q->head = (q->head + 1) % ROOM_RETRY_RING;
		q->count--;
	}
	q->page[(q->head + q->count++) % ROOM_RETRY_RING] = page;
}

/* Node @to has room for one more home: move the oldest page it refused
 * that is still ours and not moving. */
static void retry_one(struct dsm_region *r, int to)
{
	struct room_retry *q = &r->room.retry[to];

	for (int k = 0; k < ROOM_RETRY_POPS && q->count; k++) {
		uint64_t page = q->page[q->head];
		q->head = (q->head + 1) % ROOM_RETRY_RING;
		q->count--;
		if (!dsm_engine_is_home(r->engine, page) || dsm_engine_dir_busy(r->engine, page) ||
		    !dsm_policy_redo_move(r->policy, page))
			continue;
		if (region_engine_migrate(r, page, to) == 0) {
			r->stats.moves_retried++;
			return;
		}
		dsm_policy_undo_move(r->policy, page);
	}
}

void region_room_migrated_in(struct dsm_region *r, uint64_t page, int from)
{
	struct room_retry *q;

	(void)page;
	if (!r->room.clock || !r->policy || from < 0 || from >= r->n_nodes)
		return;
	q = &r->room.retry[from];
	if (q->count) {
		q->credit++;
		r->room.retry_due |= 1ull << from;
	}
}

/* ---- inside an engine entry (region_emit): only note what to do -------- */

void region_room_action(struct dsm_region *r, const struct dsm_action *a)
{
	struct region_room *room = &r->room;

	if (a->kind == DSM_ACT_MOVE_REFUSED) {
		if (r->policy) {
			dsm_policy_move_refused(r->policy, a->page);
			if (a->error == -EMLINK && a->msg.dst < r->n_nodes)
				retry_push(r, a->msg.dst, a->page);
		}
		return;
	}
	/* NEED_ROOM */
	if (a->error == -EMLINK) {
		if (a->msg.src < r->n_nodes && a->msg.src != r->self)
			room->handback_to |= 1ull << a->msg.src;
		return;
	}
	room->asked = true;
	if (a->error == -ENOSPC)
		room->must_evict = true;
}

void region_room_touch(struct dsm_region *r, uint64_t page)
{
	if (r->room.clock)
		dsm_evict_touch(r->room.clock, page);
}

void region_room_installed(struct dsm_region *r, uint64_t page, bool shared)
{
	if (!r->room.clock)
		return;
	dsm_evict_touch(r->room.clock, page);
	dsm_evict_set_replicated(r->room.clock, page,
				 shared && dsm_engine_replicated(r->engine, page));
}

/* ---- after an engine entry ------------------------------------------------- */

void region_room_check(struct dsm_region *r)
{
	struct region_room *room = &r->room;

	if (!room->clock)
		return;
	uint64_t used = dsm_engine_frames_used(r->engine);
	uint64_t present = dsm_memory_present_pages(&r->mem);
	if (used <= room->frames && present <= room->frames)
		return;
	region_fatal(r, "node %s overran its memory budget for VM %s: %" PRIu64 " pages mapped, "
		     "%" PRIu64 " frames counted, budget %" PRIu64 " frames (a bug)",
		     rpc_session_node_name(r->session, r->self), r->name, present, used,
		     room->frames);
}

/* ---- on the loop thread, outside any engine call ---------------------------- */

static bool can_evict(void *ctx, uint64_t page)
{
	struct dsm_region *r = ctx;

	if (!dsm_engine_evictable(r->engine, page))
		return false;
	/* a page under its minimum hold stays (it was just made writable here) */
	return !r->hold || !dsm_hold_must_wait(r->hold, page, r->room.now);
}

/* Evict until the engine has the room it wants, within this turn's
 * allowance. True when work is left for the next turn. */
static bool evict_some(struct dsm_region *r)
{
	struct region_room *room = &r->room;
	uint64_t left = ROOM_LOOKS_PER_TURN;
	int evicted = 0;

	room->asked = false; /* the engine asks again while it wants more */
	while (dsm_engine_room_wanted(r->engine) > 0 || room->must_evict) {
		if (evicted == ROOM_EVICTS_PER_TURN || left == 0)
			return true;
		uint64_t looked;
		int64_t victim = dsm_evict_pick_counted(room->clock, can_evict, r, left, &looked);
		left -= looked < left ? looked : left;
		room->idle_looks += looked;
		if (victim < 0) {
			if (room->idle_looks < 3 * r->mem.n_pages)
				return true; /* the sweep goes on next turn */
			/* A whole sweep and no victim: every copy is in flight or
			 * held. Wait: the engine or the timeout timer asks again. */
			room->idle_looks = 0;
			room->must_evict = false;
			room->retry_at = room->now + ROOM_RETRY_NS;
			r->stats.room_sweeps_empty++;
			return false;
		}
		room->idle_looks = 0;
		if (region_engine_evict(r, (uint64_t)victim) == 0) {
			evicted++;
			room->must_evict = false;
		}
	}
	return false;
}

/* Hand node @to a cold home page of ours: it refused our offer for want
 * of room for home pages (-EMLINK). */
static void hand_back(struct dsm_region *r, int to)
{
	int64_t page = dsm_policy_cold_home(r->policy, r->engine, to, ROOM_HANDBACK_LOOKS);
	if (page < 0)
		return;
	if (region_engine_migrate(r, (uint64_t)page, to) < 0)
		dsm_policy_undo_move(r->policy, (uint64_t)page);
}

enum rpc_loop_need region_room_turn(struct dsm_region *r, uint64_t now)
{
	struct region_room *room = &r->room;
	bool busy = false;

	if (!room->clock)
		return RPC_LOOP_IDLE;
	room->now = now;
	if (room->retry_due) {
		dsm_nodeset_t due = room->retry_due;
		room->retry_due = 0;
		for (int n = 0; n < r->n_nodes; n++) {
			if (!((due >> n) & 1))
				continue;
			for (; room->retry[n].credit && room->retry[n].count; room->retry[n].credit--)
				retry_one(r, n);
			room->retry[n].credit = 0;
		}
	}
	if (room->handback_to) {
		dsm_nodeset_t to = room->handback_to;
		room->handback_to = 0;
		for (int n = 0; n < r->n_nodes; n++)
			if (((to >> n) & 1) && r->policy)
				hand_back(r, n);
	}
	if (room->asked || room->must_evict) {
		if (now < room->retry_at)
			return RPC_LOOP_BUSY; /* a hold ends within min_hold_us */
		busy = evict_some(r);
		if (busy)
			room->asked = true;
	}
	return busy ? RPC_LOOP_BUSY : RPC_LOOP_IDLE;
}

/* The timeout timer: requests still wait for a frame (a copy may have
 * become evictable without an engine event, e.g. a hold ended). */
void region_room_tick(struct dsm_region *r)
{
	if (r->room.clock && dsm_engine_room_wanted(r->engine) > 0)
		r->room.asked = true;
}

bool region_room_describe(struct dsm_region *r, char *buf, size_t len)
{
	struct region_room *room = &r->room;

	if (!room->clock || dsm_engine_room_wanted(r->engine) == 0)
		return false;
	uint64_t used = dsm_engine_frames_used(r->engine);
	uint64_t homes = dsm_engine_home_frames(r->engine);
	dsm_nodeset_t down = rpc_session_peers_down(r->session) & ~(1ull << r->self);
	snprintf(buf, len,
		 "node %s ran out of room for VM %s: its budget is %" PRIu64 " frames (%" PRIu64
		 " MiB), %" PRIu64 " held: %" PRIu64 " home pages and %" PRIu64 " copies and "
		 "requests; %" PRIu64 " requests wait for a frame and no copy here can be evicted%s",
		 rpc_session_node_name(r->session, r->self), r->name, room->frames,
		 room->frames >> 8, used, homes, used - homes, dsm_engine_room_wanted(r->engine),
		 down ? " (the homes of its copies are lost: a copy is given back to its home "
			"only)" : "");
	return true;
}
