// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of Disco's placement policy (dsm/policy.c): each rule of
 * policy.h on hand-made miss counts, with the default knobs; and the
 * budget additions (replicated mark, refused moves, the cold home page
 * handed back) against a real engine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dsm/policy.h"
#include "dsm/protocol.h"

/* defaults of docs/config.md */
static const struct dsm_policy_knobs knobs = {
	.interval_ms = 100, .trigger = 32, .sharing = 8, .write_share = 2, .move_cap = 4,
};

static struct dsm_policy *make(void)
{
	struct dsm_policy *p = dsm_policy_create(&knobs, 0, 3, 16); /* this is node 0 */
	assert_non_null(p);
	return p;
}

static void test_cold_page_stays(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 0, 31, 0 }, w[3] = { 0 };
	int t = -1;

	assert_int_equal(dsm_policy_decide(p, 1, r, w, &t), DSM_POLICY_NONE);
	assert_int_equal(dsm_policy_counters(p)->hot_pages, 0);
	dsm_policy_destroy(p);
}

static void test_one_remote_user_migrates(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 3, 20, 7 }, w[3] = { 0, 12, 0 }; /* node 1: 32; others below sharing */
	int t = -1;

	assert_int_equal(dsm_policy_decide(p, 2, r, w, &t), DSM_POLICY_MIGRATE);
	assert_int_equal(t, 1);
	assert_int_equal(dsm_policy_counters(p)->migrations, 1);
	dsm_policy_destroy(p);
}

static void test_local_misses_do_not_move(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 40, 2, 0 }, w[3] = { 0 };
	int t = -1;

	assert_int_equal(dsm_policy_decide(p, 2, r, w, &t), DSM_POLICY_NONE);
	dsm_policy_destroy(p);
}

static void test_read_shared_replicates(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 0, 30, 9 }, w[3] = { 0, 1, 0 }; /* one writer only */
	int t = -1;

	assert_int_equal(dsm_policy_decide(p, 3, r, w, &t), DSM_POLICY_REPLICATE);
	assert_int_equal(dsm_policy_counters(p)->replications, 1);
	dsm_policy_destroy(p);
}

static void test_write_shared_freezes_for_good(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 0, 10, 10 }, w[3] = { 0, 8, 4 };
	uint32_t r2[3] = { 0, 50, 0 }, w2[3] = { 0 };
	int t = -1;

	assert_int_equal(dsm_policy_decide(p, 4, r, w, &t), DSM_POLICY_FREEZE);
	/* later one node alone uses it: frozen pages never move */
	assert_int_equal(dsm_policy_decide(p, 4, r2, w2, &t), DSM_POLICY_NONE);
	assert_int_equal(dsm_policy_counters(p)->freezes, 1);
	dsm_policy_destroy(p);
}

static void test_move_cap(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 0, 0, 40 }, w[3] = { 0 };
	int t = -1;

	for (unsigned i = 0; i < knobs.move_cap; i++)
		assert_int_equal(dsm_policy_decide(p, 5, r, w, &t), DSM_POLICY_MIGRATE);
	assert_int_equal(dsm_policy_decide(p, 5, r, w, &t), DSM_POLICY_NONE);
	assert_int_equal(dsm_policy_counters(p)->capped, 1);
	/* a move that could not start does not count against the cap */
	dsm_policy_undo_move(p, 6);
	assert_int_equal(dsm_policy_decide(p, 6, r, w, &t), DSM_POLICY_MIGRATE);
	dsm_policy_undo_move(p, 6);
	for (unsigned i = 0; i < knobs.move_cap; i++)
		assert_int_equal(dsm_policy_decide(p, 6, r, w, &t), DSM_POLICY_MIGRATE);
	dsm_policy_destroy(p);
}

static void test_out_of_range_page(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 0, 100, 0 }, w[3] = { 0 };
	int t = -1;

	assert_int_equal(dsm_policy_decide(p, 16, r, w, &t), DSM_POLICY_NONE);
	dsm_policy_destroy(p);
}

static void test_replicated_mark_follows_decisions(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 0, 30, 9 }, w[3] = { 0 };
	uint32_t r2[3] = { 0, 40, 0 };
	int t = -1;

	assert_false(dsm_policy_replicated(p, 3));
	assert_int_equal(dsm_policy_decide(p, 3, r, w, &t), DSM_POLICY_REPLICATE);
	assert_true(dsm_policy_replicated(p, 3));
	/* later only node 1 uses it: it moves there, no longer a replica */
	assert_int_equal(dsm_policy_decide(p, 3, r2, w, &t), DSM_POLICY_MIGRATE);
	assert_false(dsm_policy_replicated(p, 3));
	assert_false(dsm_policy_replicated(p, 99));
	dsm_policy_destroy(p);
}

static void test_refused_move_does_not_count(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	uint32_t r[3] = { 0, 0, 40 }, w[3] = { 0 };
	int t = -1;

	for (unsigned i = 0; i < 10; i++) {
		assert_int_equal(dsm_policy_decide(p, 5, r, w, &t), DSM_POLICY_MIGRATE);
		dsm_policy_move_refused(p, 5);
	}
	assert_int_equal(dsm_policy_counters(p)->refused, 10);
	assert_int_equal(dsm_policy_counters(p)->migrations, 0);
	dsm_policy_destroy(p);
}

static void no_actions(void *ctx, const struct dsm_action *a)
{
	(void)ctx;
	(void)a;
}

static int home_is_node0(uint64_t page, void *ctx)
{
	(void)page;
	(void)ctx;
	return 0;
}

/* Node @n takes @page exclusive from node 0's engine @e (its GRANT is
 * dropped: only the directory matters here). */
static void remote_write(struct dsm_engine *e, uint64_t page, int n)
{
	struct dsm_msg m = { .kind = DSM_MSG_WRITE_REQ, .page = page, .src = (uint16_t)n,
			     .requester = (uint16_t)n, .req_id = 1 };
	assert_int_equal(dsm_engine_receive(e, &m), 0);
	assert_int_equal(dsm_engine_owner(e, page), n);
}

static void test_cold_home_handed_back(void **state)
{
	(void)state;
	struct dsm_policy *p = make();
	struct dsm_engine *e = dsm_engine_create(0, 3, 16, home_is_node0, NULL, no_actions, NULL);
	assert_non_null(e);

	/* nothing here is held elsewhere exclusive: nothing to hand back */
	assert_int_equal(dsm_policy_cold_home(p, e, 1, 0), -1);
	remote_write(e, 4, 2);
	remote_write(e, 9, 1);
	/* node 1's own page first (it holds the data) */
	assert_int_equal(dsm_policy_cold_home(p, e, 1, 0), 9);
	assert_int_equal(dsm_policy_counters(p)->handbacks, 1);
	/* its move under way, another node's exclusive page is next */
	assert_int_equal(dsm_engine_migrate_home(e, 9, 1), 0);
	assert_int_equal(dsm_policy_cold_home(p, e, 1, 0), 4);
	dsm_policy_interval_done(p);
	/* for node 2: its own page 4 */
	assert_int_equal(dsm_policy_cold_home(p, e, 2, 0), 4);
	dsm_policy_interval_done(p);
	/* a frozen page never goes; another node's exclusive page does */
	uint32_t r[3] = { 0, 10, 10 }, w[3] = { 0, 8, 4 };
	int t;
	remote_write(e, 7, 1);
	assert_int_equal(dsm_policy_decide(p, 4, r, w, &t), DSM_POLICY_FREEZE);
	assert_int_equal(dsm_policy_cold_home(p, e, 2, 0), 7);
	dsm_policy_interval_done(p);
	assert_int_equal(dsm_policy_cold_home(p, e, 0, 0), -1); /* itself */
	assert_int_equal(dsm_policy_cold_home(p, e, 7, 0), -1); /* no such node */
	dsm_engine_destroy(e);
	dsm_policy_destroy(p);
}

/* Pages 0..7 are "not mapped here" (the runtime's word). */
static bool low_pages_unused(void *ctx, uint64_t page)
{
	(void)ctx;
	return page < 8;
}

static bool high_pages_unused(void *ctx, uint64_t page)
{
	(void)ctx;
	return page >= 512;
}

/* A home page nobody holds and the runtime says is not mapped here is
 * cold too, after those others hold exclusive; at most
 * DSM_POLICY_HANDBACKS_PER_INTERVAL per interval; a refused move can be
 * made again, counted again, unless at its cap. */
static void test_untouched_home_handed_back(void **state)
{
	(void)state;
	struct dsm_policy *p = dsm_policy_create(&knobs, 0, 2, 1024);
	struct dsm_engine *e = dsm_engine_create(0, 2, 1024, home_is_node0, NULL, no_actions, NULL);
	assert_non_null(p);
	assert_non_null(e);

	assert_int_equal(dsm_policy_cold_home(p, e, 1, 0), -1); /* no predicate: none */
	dsm_policy_set_unused(p, low_pages_unused, NULL);
	remote_write(e, 12, 1);
	assert_int_equal(dsm_policy_cold_home(p, e, 1, 0), 12); /* held elsewhere first */
	assert_int_equal(dsm_engine_migrate_home(e, 12, 1), 0);
	int64_t got = dsm_policy_cold_home(p, e, 1, 0);
	assert_true(got >= 0 && got < 8);
	/* every untouched page once its move is under way, then none */
	int n = 1;
	for (; got >= 0; n++) {
		assert_true(got < 8);
		assert_int_equal(dsm_engine_migrate_home(e, (uint64_t)got, 1), 0);
		got = dsm_policy_cold_home(p, e, 1, 0);
	}
	assert_int_equal(n, 1 + 8);
	assert_int_equal(dsm_policy_counters(p)->handbacks, 9);
	/* the cap per interval, with 512 untouched pages */
	dsm_policy_interval_done(p);
	dsm_policy_set_unused(p, high_pages_unused, NULL);
	for (n = 0; (got = dsm_policy_cold_home(p, e, 1, 0)) >= 0; n++)
		assert_int_equal(dsm_engine_migrate_home(e, (uint64_t)got, 1), 0);
	assert_int_equal(n, DSM_POLICY_HANDBACKS_PER_INTERVAL);
	dsm_policy_interval_done(p);
	assert_true(dsm_policy_cold_home(p, e, 1, 0) >= 512);

	/* a refused hand-back: un-counted as a hand-back (not as a
	 * migration), and none to that node again this interval */
	uint64_t mig0 = dsm_policy_counters(p)->migrations;
	uint64_t hb0 = dsm_policy_counters(p)->handbacks;
	uint64_t ref0 = dsm_policy_counters(p)->refused;
	got = dsm_policy_cold_home(p, e, 1, 0);
	assert_true(got >= 512);
	assert_int_equal(dsm_policy_counters(p)->handbacks, hb0 + 1);
	dsm_policy_move_refused(p, (uint64_t)got);
	assert_int_equal(dsm_policy_counters(p)->handbacks, hb0);
	assert_int_equal(dsm_policy_counters(p)->migrations, mig0);
	assert_int_equal(dsm_policy_counters(p)->refused, ref0 + 1);
	assert_int_equal(dsm_policy_cold_home(p, e, 1, 0), -1);
	dsm_policy_interval_done(p);
	got = dsm_policy_cold_home(p, e, 1, 0);
	assert_true(got >= 512);
	dsm_policy_undo_move(p, (uint64_t)got); /* migrate_home failed */
	assert_int_equal(dsm_policy_counters(p)->handbacks, hb0);
	assert_int_equal(dsm_policy_counters(p)->migrations, mig0);

	/* redo: a page decided to move, refused, made again */
	uint32_t r[2] = { 0, 40 }, w[2] = { 0, 0 };
	int t;
	assert_int_equal(dsm_policy_decide(p, 100, r, w, &t), DSM_POLICY_MIGRATE);
	uint64_t m = dsm_policy_counters(p)->migrations;
	dsm_policy_move_refused(p, 100);
	assert_int_equal(dsm_policy_counters(p)->migrations, m - 1);
	assert_true(dsm_policy_redo_move(p, 100));
	assert_int_equal(dsm_policy_counters(p)->migrations, m);
	dsm_engine_destroy(e);
	dsm_policy_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cold_page_stays),
		cmocka_unit_test(test_one_remote_user_migrates),
		cmocka_unit_test(test_local_misses_do_not_move),
		cmocka_unit_test(test_read_shared_replicates),
		cmocka_unit_test(test_write_shared_freezes_for_good),
		cmocka_unit_test(test_move_cap),
		cmocka_unit_test(test_out_of_range_page),
		cmocka_unit_test(test_replicated_mark_follows_decisions),
		cmocka_unit_test(test_refused_move_does_not_count),
		cmocka_unit_test(test_cold_home_handed_back),
		cmocka_unit_test(test_untouched_home_handed_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
