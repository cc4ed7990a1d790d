/*
 * Unit tests of Disco's placement policy (dsm/policy.c): each rule of
 * policy.h on hand-made miss counts, with the default knobs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dsm/policy.h"

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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
