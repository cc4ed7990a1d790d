// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the eviction clock (dsm/evict.c): second chance for used
 * pages, one more for replicated ones, pages that cannot be evicted passed
 * over, and a bounded search.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dsm/evict.h"

#define N 8

static bool can[N];
static unsigned asked;

static bool can_evict(void *ctx, uint64_t page)
{
	(void)ctx;
	asked++;
	return can[page];
}

static struct dsm_evict_clock *make(bool all)
{
	for (int i = 0; i < N; i++)
		can[i] = all;
	asked = 0;
	struct dsm_evict_clock *c = dsm_evict_create(N);
	assert_non_null(c);
	return c;
}

static int64_t pick(struct dsm_evict_clock *c)
{
	return dsm_evict_pick(c, can_evict, NULL, 0);
}

static void test_cold_pages_in_hand_order(void **state)
{
	(void)state;
	struct dsm_evict_clock *c = make(true);

	assert_int_equal(pick(c), 0);
	assert_int_equal(pick(c), 1);
	assert_int_equal(pick(c), 2);
	dsm_evict_destroy(c);
}

static void test_used_page_gets_a_second_chance(void **state)
{
	(void)state;
	struct dsm_evict_clock *c = make(true);

	dsm_evict_touch(c, 0);
	dsm_evict_touch(c, 1);
	assert_int_equal(pick(c), 2); /* 0 and 1 lose their bit */
	/* untouched since, they go when the hand comes round again */
	for (int p = 3; p < N; p++)
		assert_int_equal(pick(c), p);
	assert_int_equal(pick(c), 0);
	assert_int_equal(pick(c), 1);
	dsm_evict_destroy(c);
}

static void test_all_used_clears_then_picks(void **state)
{
	(void)state;
	struct dsm_evict_clock *c = make(true);

	for (int p = 0; p < N; p++)
		dsm_evict_touch(c, p);
	assert_int_equal(pick(c), 0); /* one full sweep clears every bit */
	assert_int_equal(asked, N + 1);
	dsm_evict_destroy(c);
}

static void test_unevictable_pages_are_passed_over_untouched(void **state)
{
	(void)state;
	struct dsm_evict_clock *c = make(false);

	can[5] = true;
	dsm_evict_touch(c, 2); /* not evictable: its bit must survive the sweep */
	assert_int_equal(pick(c), 5);
	can[2] = true;
	can[5] = false;
	/* hand at 6: 6, 7, 0, 1 not evictable, 2 referenced (second chance),
	 * ... then 2 again, now cold */
	assert_int_equal(pick(c), 2);
	dsm_evict_destroy(c);
}

static void test_replicated_pages_are_kept_longer(void **state)
{
	(void)state;
	struct dsm_evict_clock *c = make(false);

	can[1] = can[2] = true;
	dsm_evict_set_replicated(c, 1, true);
	assert_int_equal(pick(c), 2); /* the plain cold copy goes first */
	/* the replica goes only when nothing else can */
	can[2] = false;
	assert_int_equal(pick(c), 1);
	/* using it again, or the home dropping the hint, resets its extra chance */
	can[2] = true;
	dsm_evict_touch(c, 1);
	assert_int_equal(pick(c), 2);
	dsm_evict_set_replicated(c, 1, false);
	dsm_evict_touch(c, 2);
	assert_int_equal(pick(c), 1); /* no longer spared: 2 is referenced */
	dsm_evict_destroy(c);
}

static void test_nothing_evictable(void **state)
{
	(void)state;
	struct dsm_evict_clock *c = make(false);

	assert_int_equal(pick(c), -1);
	assert_int_equal(asked, 3 * N);
	asked = 0;
	can[7] = true;
	assert_int_equal(dsm_evict_pick(c, can_evict, NULL, 3), -1); /* bounded */
	assert_int_equal(asked, 3);
	assert_int_equal(dsm_evict_pick(c, can_evict, NULL, 5), 7);
	dsm_evict_destroy(c);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	assert_null(dsm_evict_create(0));
	struct dsm_evict_clock *c = make(true);
	dsm_evict_touch(c, N); /* out of range: ignored */
	dsm_evict_set_replicated(c, N, true);
	assert_int_equal(pick(c), 0);
	dsm_evict_destroy(c);
	dsm_evict_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cold_pages_in_hand_order),
		cmocka_unit_test(test_used_page_gets_a_second_chance),
		cmocka_unit_test(test_all_used_clears_then_picks),
		cmocka_unit_test(test_unevictable_pages_are_passed_over_untouched),
		cmocka_unit_test(test_replicated_pages_are_kept_longer),
		cmocka_unit_test(test_nothing_evictable),
		cmocka_unit_test(test_bad_arguments),
	};
	return cmocka_run_group_tests_name("dsm_evict", tests, NULL, NULL);
}
