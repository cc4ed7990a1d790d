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
 */
#ifndef DISCO_DSM_POLICY_H
#define DISCO_DSM_POLICY_H

#include <stdint.h>

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
};

struct dsm_policy;

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
/* Marks the end of an interval (for the counters). */
void dsm_policy_interval_done(struct dsm_policy *p);
const struct dsm_policy_counters *dsm_policy_counters(const struct dsm_policy *p);

#endif
