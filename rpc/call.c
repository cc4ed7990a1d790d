// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pending-call table (interface and locking in call.h).
 *
 * Slot states: FREE -> PENDING (begin) -> DONE (complete) or FAILED
 * (fail_all) -> FREE (wait/cancel). The futex word is the state itself: the
 * waiter sleeps while it reads PENDING, so a completion that lands between
 * the waiter's check and its FUTEX_WAIT makes the wait return at once and
 * no wake-up is lost. The wake is issued after the mutex is dropped; if the
 * slot was meanwhile released and reused, its new waiter sees a spurious
 * wake-up and goes back to sleep.
 */
#include "rpc/call.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum {
	RPC_CALL_SLOT_FREE,
	RPC_CALL_SLOT_PENDING,
	RPC_CALL_SLOT_DONE,
	RPC_CALL_SLOT_FAILED,
};

static void futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Sleep while *word == val, at most @rel (NULL: no limit). */
static void futex_wait(uint32_t *word, uint32_t val, const struct timespec *rel)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, rel, NULL, 0);
}

int rpc_call_table_init(struct rpc_call_table *t, unsigned n_slots)
{
	memset(t, 0, sizeof(*t));
	if (n_slots == 0 || n_slots > 65536)
		return -EINVAL;
	t->slots = calloc(n_slots, sizeof(*t->slots));
	t->free_list = calloc(n_slots, sizeof(*t->free_list));
	if (!t->slots || !t->free_list) {
		free(t->slots);
		free(t->free_list);
		return -ENOMEM;
	}
	t->n_slots = n_slots;
	for (unsigned i = 0; i < n_slots; i++)
		t->free_list[i] = n_slots - 1 - i; /* pop hands out slot 0 first */
	t->n_free = n_slots;
	pthread_mutex_init(&t->mu, NULL);
	return 0;
}

void rpc_call_table_destroy(struct rpc_call_table *t)
{
	if (!t->slots)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->slots);
	free(t->free_list);
	t->slots = NULL;
	t->free_list = NULL;
}

/* The slot of @id if it is reserved under that generation (mutex held). */
static struct rpc_call_slot *lookup(struct rpc_call_table *t, uint64_t id)
{
	uint32_t idx = (uint32_t)id, gen = (uint32_t)(id >> 32);
	if (idx >= t->n_slots)
		return NULL;
	struct rpc_call_slot *s = &t->slots[idx];
	if (s->gen != gen || s->state == RPC_CALL_SLOT_FREE)
		return NULL;
	return s;
}

static void release(struct rpc_call_table *t, struct rpc_call_slot *s)
{
	__atomic_store_n(&s->state, RPC_CALL_SLOT_FREE, __ATOMIC_RELEASE);
	t->free_list[t->n_free++] = (uint32_t)(s - t->slots);
}

int rpc_call_begin(struct rpc_call_table *t, uint64_t *id)
{
	pthread_mutex_lock(&t->mu);
	if (t->n_free == 0) {
		pthread_mutex_unlock(&t->mu);
		return -EAGAIN;
	}
	uint32_t idx = t->free_list[--t->n_free];
	struct rpc_call_slot *s = &t->slots[idx];
	if (++s->gen == 0)
		s->gen = 1; /* ids are never 0 */
	s->err = 0;
	s->len = s->full_len = 0;
	__atomic_store_n(&s->state, RPC_CALL_SLOT_PENDING, __ATOMIC_RELEASE);
	*id = (uint64_t)s->gen << 32 | idx;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

void rpc_call_cancel(struct rpc_call_table *t, uint64_t id)
{
	pthread_mutex_lock(&t->mu);
	struct rpc_call_slot *s = lookup(t, id);
	if (s)
		release(t, s);
	pthread_mutex_unlock(&t->mu);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int rpc_call_wait(struct rpc_call_table *t, uint64_t id, int timeout_ms,
		  struct rpc_call_result *res)
{
	int64_t deadline = timeout_ms >= 0 ? now_ns() + (int64_t)timeout_ms * 1000000 : 0;
	int ret;

	pthread_mutex_lock(&t->mu);
	struct rpc_call_slot *s = lookup(t, id);
	if (!s) {
		pthread_mutex_unlock(&t->mu);
		return -EINVAL;
	}
	for (;;) {
		uint32_t st = s->state;
		if (st == RPC_CALL_SLOT_DONE) {
			if (res) {
				res->len = s->len;
				res->full_len = s->full_len;
				memcpy(res->data, s->data, s->len);
			}
			ret = 0;
			break;
		}
		if (st == RPC_CALL_SLOT_FAILED) {
			ret = s->err;
			break;
		}
		/* PENDING: sleep outside the mutex. Only this thread releases
		 * the slot, so it stays ours while we sleep. */
		struct timespec rel, *relp = NULL;
		if (timeout_ms >= 0) {
			int64_t left = deadline - now_ns();
			if (left <= 0) {
				ret = -ETIMEDOUT;
				break;
			}
			rel.tv_sec = left / 1000000000;
			rel.tv_nsec = left % 1000000000;
			relp = &rel;
		}
		pthread_mutex_unlock(&t->mu);
		futex_wait(&s->state, RPC_CALL_SLOT_PENDING, relp);
		pthread_mutex_lock(&t->mu);
	}
	release(t, s);
	pthread_mutex_unlock(&t->mu);
	return ret;
}

int rpc_call_completev(struct rpc_call_table *t, uint64_t id, const struct iovec *iov, int iovcnt)
{
	pthread_mutex_lock(&t->mu);
	struct rpc_call_slot *s = lookup(t, id);
	if (!s || s->state != RPC_CALL_SLOT_PENDING) {
		pthread_mutex_unlock(&t->mu);
		return -ENOENT;
	}
	size_t len = 0, full = 0;
	for (int i = 0; i < iovcnt; i++) {
		size_t n = iov[i].iov_len;
		full += n;
		if (n > RPC_CALL_INLINE_MAX - len)
			n = RPC_CALL_INLINE_MAX - len;
		if (n)
			memcpy(s->data + len, iov[i].iov_base, n);
		len += n;
	}
	s->len = len;
	s->full_len = full;
	__atomic_store_n(&s->state, RPC_CALL_SLOT_DONE, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->mu);
	futex_wake_all(&s->state);
	return 0;
}

int rpc_call_complete(struct rpc_call_table *t, uint64_t id, const void *data, size_t len)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	return rpc_call_completev(t, id, &iov, 1);
}

void rpc_call_fail_all(struct rpc_call_table *t, int err)
{
	pthread_mutex_lock(&t->mu);
	for (unsigned i = 0; i < t->n_slots; i++) {
		struct rpc_call_slot *s = &t->slots[i];
		if (s->state == RPC_CALL_SLOT_PENDING) {
			s->err = err;
			__atomic_store_n(&s->state, RPC_CALL_SLOT_FAILED, __ATOMIC_RELEASE);
			futex_wake_all(&s->state); /* rare: waking under the mutex is fine */
		}
	}
	pthread_mutex_unlock(&t->mu);
}

