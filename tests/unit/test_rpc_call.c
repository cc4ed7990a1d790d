// SPDX-License-Identifier: GPL-2.0-or-later
/* Pending-call table (rpc/call.c): completion, timeout, failure, reuse,
 * and many threads at once. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpc/call.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_complete_before_wait(void **state)
{
	struct rpc_call_table t;
	struct rpc_call_result res;
	uint64_t id;

	assert_int_equal(rpc_call_table_init(&t, 4), 0);
	assert_int_equal(rpc_call_begin(&t, &id), 0);
	assert_true(id != 0);
	assert_int_equal(rpc_call_complete(&t, id, "hello", 5), 0);
	assert_int_equal(rpc_call_complete(&t, id, "again", 5), -ENOENT); /* once only */
	assert_int_equal(rpc_call_wait(&t, id, 1000, &res), 0);
	assert_int_equal(res.len, 5);
	assert_memory_equal(res.data, "hello", 5);
	/* The slot is released: waiting again is an error. */
	assert_int_equal(rpc_call_wait(&t, id, 0, &res), -EINVAL);
	assert_int_equal(rpc_call_complete(&t, id, "x", 1), -ENOENT);
	rpc_call_table_destroy(&t);
}

static void test_truncation_and_iov(void **state)
{
	struct rpc_call_table t;
	static struct rpc_call_result res;
	static uint8_t page[8192];
	uint64_t id;

	memset(page, 0xab, sizeof(page));
	rpc_call_table_init(&t, 1);
	rpc_call_begin(&t, &id);
	struct iovec iov[2] = { { "hdr", 3 }, { page, sizeof(page) } };
	assert_int_equal(rpc_call_completev(&t, id, iov, 2), 0);
	assert_int_equal(rpc_call_wait(&t, id, -1, &res), 0);
	assert_int_equal(res.len, RPC_CALL_INLINE_MAX);
	assert_int_equal(res.full_len, 3 + sizeof(page));
	assert_memory_equal(res.data, "hdr", 3);
	assert_int_equal(res.data[RPC_CALL_INLINE_MAX - 1], 0xab);
	rpc_call_table_destroy(&t);
}

static void test_timeout_and_late_reply(void **state)
{
	struct rpc_call_table t;
	uint64_t id, id2;

	rpc_call_table_init(&t, 1);
	rpc_call_begin(&t, &id);
	int64_t t0 = now_ms();
	assert_int_equal(rpc_call_wait(&t, id, 50, NULL), -ETIMEDOUT);
	int64_t dt = now_ms() - t0;
	assert_true(dt >= 49 && dt < 1000);
	/* The late reply is dropped, even once the slot is reused. */
	assert_int_equal(rpc_call_complete(&t, id, "late", 4), -ENOENT);
	assert_int_equal(rpc_call_begin(&t, &id2), 0);
	assert_true(id2 != id);
	assert_int_equal(rpc_call_complete(&t, id, "late", 4), -ENOENT);
	assert_int_equal(rpc_call_wait(&t, id2, 0, NULL), -ETIMEDOUT);
	rpc_call_table_destroy(&t);
}

static void test_full_and_cancel(void **state)
{
	struct rpc_call_table t;
	uint64_t ids[3], extra;

	rpc_call_table_init(&t, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rpc_call_begin(&t, &ids[i]), 0);
	assert_int_equal(rpc_call_begin(&t, &extra), -EAGAIN);
	rpc_call_cancel(&t, ids[1]);
	assert_int_equal(rpc_call_complete(&t, ids[1], "x", 1), -ENOENT);
	assert_int_equal(rpc_call_begin(&t, &extra), 0);
	rpc_call_table_destroy(&t);
	assert_int_equal(rpc_call_table_init(&t, 0), -EINVAL);
	rpc_call_table_destroy(&t);
}

struct waiter {
	struct rpc_call_table *t;
	uint64_t id;
	int ret;
	int64_t ms;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	int64_t t0 = now_ms();
	w->ret = rpc_call_wait(w->t, w->id, 5000, NULL);
	w->ms = now_ms() - t0;
	return NULL;
}

static void test_fail_all_wakes_everyone(void **state)
{
	struct rpc_call_table t;
	struct waiter w[4];
	pthread_t th[4];

	rpc_call_table_init(&t, 8);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct waiter){ .t = &t };
		rpc_call_begin(&t, &w[i].id);
		pthread_create(&th[i], NULL, wait_thread, &w[i]);
	}
	usleep(20000); /* let them sleep */
	rpc_call_fail_all(&t, -ECONNRESET);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].ret, -ECONNRESET);
		assert_true(w[i].ms < 2000);
	}
	/* Calls begun afterwards work normally. */
	uint64_t id;
	rpc_call_begin(&t, &id);
	rpc_call_complete(&t, id, "ok", 2);
	assert_int_equal(rpc_call_wait(&t, id, 0, NULL), 0);
	rpc_call_table_destroy(&t);
}

/* Many callers, one completer thread answering in a scrambled order. */
enum { CALLERS = 4, CALLS = 5000 };

struct mt {
	struct rpc_call_table t;
	pthread_mutex_t mu;
	uint64_t queue[CALLERS];
	int n_queued;
	int done_callers;
	int errors;
};

static void *caller(void *arg)
{
	struct mt *m = arg;
	struct rpc_call_result *res = malloc(sizeof(*res));
	for (int i = 0; i < CALLS; i++) {
		uint64_t id;
		while (rpc_call_begin(&m->t, &id) < 0)
			;
		pthread_mutex_lock(&m->mu);
		m->queue[m->n_queued++] = id;
		pthread_mutex_unlock(&m->mu);
		if (rpc_call_wait(&m->t, id, 5000, res) != 0 || res->len != 8 ||
		    memcmp(res->data, &id, 8) != 0)
			__atomic_fetch_add(&m->errors, 1, __ATOMIC_RELAXED);
	}
	free(res);
	__atomic_fetch_add(&m->done_callers, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *completer(void *arg)
{
	struct mt *m = arg;
	while (__atomic_load_n(&m->done_callers, __ATOMIC_ACQUIRE) < CALLERS) {
		uint64_t ids[CALLERS];
		int n;
		pthread_mutex_lock(&m->mu);
		n = m->n_queued;
		memcpy(ids, m->queue, sizeof(ids));
		m->n_queued = 0;
		pthread_mutex_unlock(&m->mu);
		for (int i = n - 1; i >= 0; i--)
			if (rpc_call_complete(&m->t, ids[i], &ids[i], 8) != 0)
				__atomic_fetch_add(&m->errors, 1, __ATOMIC_RELAXED);
		if (!n)
			sched_yield();
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct mt *m = calloc(1, sizeof(*m));
	pthread_t th[CALLERS], ct;

	rpc_call_table_init(&m->t, CALLERS);
	pthread_mutex_init(&m->mu, NULL);
	pthread_create(&ct, NULL, completer, m);
	for (int i = 0; i < CALLERS; i++)
		pthread_create(&th[i], NULL, caller, m);
	for (int i = 0; i < CALLERS; i++)
		pthread_join(th[i], NULL);
	pthread_join(ct, NULL);
	assert_int_equal(m->errors, 0);
	rpc_call_table_destroy(&m->t);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_complete_before_wait),
		cmocka_unit_test(test_truncation_and_iov),
		cmocka_unit_test(test_timeout_and_late_reply),
		cmocka_unit_test(test_full_and_cancel),
		cmocka_unit_test(test_fail_all_wakes_everyone),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
