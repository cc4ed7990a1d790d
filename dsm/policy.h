// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Disco's page placement policy (Bugnion et al., SOSP '97, section 4.2.3,
 * after Verghese et al., ASPLOS '96), as a pure decision function: no
 * threads, no I/O, no clock. The home of a page counts the misses other
 * nodes (and itself) take on it, per node, read and write (dsm/protocol.c).
 * Once per interval the region's loop thread hands each page's counts to
 * dsm_policy_decide() and clears them; the policy says what to do:
 *
 *   MIGRATE    a hot page missed mostly by one other node: move its home
 *              there, so that node's misses become local;
 *   REPLICATE  a hot page read by several nodes and written by none: keep
 *              the shared copies the protocol already hands out, do not
 *              migrate (a migration would only move the misses);
 *   FREEZE     a hot page written by several nodes: leave it where it is,
 *              and never move it again (moving write-shared data only adds
 *              traffic);
 *   NONE       not hot this interval, frozen, or at its move cap.
 *
 * "Hot" means at least `trigger` misses in the interval. "Mostly one
 * node": every other node took fewer than `sharing` misses. Write-shared:
 * at least two nodes took `write_share` write misses each or more. A page
 * moves at most `move_cap` times from this node (each home counts its own
 * moves; a page that keeps bouncing reaches the cap on every node).
 * Knobs and defaults: docs/config.md (dsm.knobs).
 *
 * Under memory budgets (docs/protocol.md, "Budgets and eviction") the
 * same counts mean more: a node's cache holds only part of the others'
 * pages, so every copy it evicted and needs again is a miss at the home,
 * as on a ccNUMA machine. Three additions:
 *   - a REPLICATE page is marked replicated (dsm_policy_replicated()): the
 *     home sets the engine's hint (dsm_engine_set_replicated()), shared
 *     GRANTs carry it, and the readers' victim choice (dsm/evict.h) keeps
 *     such pages longer; MIGRATE and FREEZE clear the mark;
 *   - a move the target refused (DSM_ACT_MOVE_REFUSED: no room there) does
 *     not count against the cap (dsm_policy_move_refused()); the page is
 *     decided again at the next interval, when the target may have made
 *     room;
 *   - a node that refused a home for want of room for home pages
 *     (DSM_ACT_NEED_ROOM with -EMLINK) hands one of its own home pages to
 *     the node that offered, at most DSM_POLICY_HANDBACKS_PER_INTERVAL per
 *     interval, and none to a node that refused one this interval (it
 *     has no room for homes either; dsm_policy_cold_home()): a page this
 *     node is not using,
 *     i.e. one another node holds exclusive (the offerer's own first: the
 *     move then carries no data), or, if the runtime says which
 *     (dsm_policy_set_unused()), one nobody else holds that is not mapped
 *     here (a page never touched since the start: free memory of the
 *     guest); never a frozen one or one at its move cap. The cap and the
 *     block bound the offers two full nodes can bounce back and forth,
 *     each refusal answered by a hand-back the other refuses again. A
 *     refused or undone hand-back un-counts the hand-back, not a
 *     migration.
 *   - a refused move may be made again before the next interval
 *     (dsm_policy_redo_move()): the runtime retries it when the target
 *     has just handed a page here, so it has room for one more home.
 */
#ifndef DISCO_DSM_POLICY_H
#define DISCO_DSM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "dsm/protocol.h"
#include "dsm/settings.h"

enum dsm_policy_action {
	DSM_POLICY_NONE,
	DSM_POLICY_MIGRATE,
	DSM_POLICY_REPLICATE,
	DSM_POLICY_FREEZE,
};

struct dsm_policy_counters {
	uint64_t intervals;    /* decision rounds run */
	uint64_t hot_pages;    /* page-intervals at or above the trigger */
	uint64_t migrations;   /* MIGRATE decisions */
	uint64_t replications; /* REPLICATE decisions */
	uint64_t freezes;      /* pages frozen (each once) */
	uint64_t capped;       /* would have migrated, but at the move cap */
	uint64_t refused;      /* MIGRATE decisions the target refused (budgets) */
	uint64_t handbacks;    /* home pages handed to a node whose offer we refused */
};

struct dsm_policy;

/* Hand-backs per interval at most (dsm_policy_cold_home()). */
#define DSM_POLICY_HANDBACKS_PER_INTERVAL 256

/* NULL on allocation failure. */
struct dsm_policy *dsm_policy_create(const struct dsm_policy_knobs *knobs, int self, int n_nodes,
				     uint64_t n_pages);
void dsm_policy_destroy(struct dsm_policy *p);

/* One page's misses during the interval that just ended, by node
 * (@reads[n], @writes[n], n < n_nodes). Returns the action; for MIGRATE,
 * *@target is the node to move the home to. MIGRATE also counts as a move
 * of the page (call dsm_policy_undo_move() if the move could not start). */
enum dsm_policy_action dsm_policy_decide(struct dsm_policy *p, uint64_t page,
					 const uint32_t *reads, const uint32_t *writes,
					 int *target);
void dsm_policy_undo_move(struct dsm_policy *p, uint64_t page);
/* The target refused the move (DSM_ACT_MOVE_REFUSED): undo it, count it. */
void dsm_policy_move_refused(struct dsm_policy *p, uint64_t page);
/* The policy keeps @page replicated (its last hot interval was REPLICATE). */
bool dsm_policy_replicated(const struct dsm_policy *p, uint64_t page);
/* This node refused node @to's offer for want of room for home pages: a
 * home page of @e (this node's engine) to move to @to instead, or -1 if
 * there is none or DSM_POLICY_HANDBACKS_PER_INTERVAL were handed back this
 * interval. Looks at most @max_looks pages (0: all) from where the last
 * search stopped. Counts the hand-back as a move of the page; call
 * dsm_policy_undo_move() if dsm_engine_migrate_home() fails. */
int64_t dsm_policy_cold_home(struct dsm_policy *p, const struct dsm_engine *e, int to,
			     uint64_t max_looks);
/* How the runtime tells a home page this node does not use: @unused(ctx,
 * page) true when the page is not mapped here at all. NULL (the default):
 * only pages other nodes hold exclusive count as cold. */
void dsm_policy_set_unused(struct dsm_policy *p, bool (*unused)(void *ctx, uint64_t page),
			   void *ctx);
/* Make the refused MIGRATE of @page again (the target may have room now):
 * counts it as a move again. False (nothing counted) if the page is
 * frozen or at its move cap. */
bool dsm_policy_redo_move(struct dsm_policy *p, uint64_t page);
/* Marks the end of an interval (for the counters). */
void dsm_policy_interval_done(struct dsm_policy *p);
const struct dsm_policy_counters *dsm_policy_counters(const struct dsm_policy *p);

#endif
