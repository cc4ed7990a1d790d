// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Request/response correlation for threads that block on an answer: the
 * bench's raw RTT today, I/O forwarding from vCPU threads later.
 *
 *   uint64_t id;
 *   rpc_call_begin(tab, &id);                 // reserve a slot
 *   ... put id in the request body, rpc_transport_send(...) ...
 *   rpc_call_wait(tab, id, 1000, &res);       // sleep until the reply
 *
 * and on the loop thread, when the reply arrives:
 *
 *   rpc_call_complete(tab, id_from_reply, data, len);
 *
 * A slot is reserved by begin and released by wait or cancel (whatever the
 * outcome), so each id is waited on once, by one thread. The id carries the
 * slot index and a generation, so a reply that arrives after its caller
 * timed out finds a different generation and is dropped (-ENOENT).
 *
 * The waiter sleeps on a futex in its slot; complete copies the reply into
 * the slot and issues one FUTEX_WAKE, so a wake costs one syscall and the
 * woken thread's scheduling, with no condvar hand-off.
 *
 * Locking: the table's mutex guards every slot's state, generation and
 * data and the free list; it is held only for bookkeeping and the copy of
 * one reply (<= RPC_CALL_INLINE_MAX bytes), never while sleeping. It is a
 * leaf lock. All functions are thread-safe.
 */
#ifndef DISCO_RPC_CALL_H
#define DISCO_RPC_CALL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RPC_CALL_INLINE_MAX (4096 + 64) /* a page and a small header */

/* The reply handed to the waiter (copied out of the slot). */
struct rpc_call_result {
	size_t len;      /* bytes in data */
	size_t full_len; /* bytes the completer offered (> len: reply was cut) */
	uint8_t data[RPC_CALL_INLINE_MAX];
};

struct rpc_call_slot {
	uint32_t state; /* futex word, RPC_CALL_SLOT_*; written under the mutex */
	uint32_t gen;   /* bumped by every begin; high half of the id */
	int err;        /* FAILED: the errno given to fail_all */
	size_t len, full_len;
	uint8_t data[RPC_CALL_INLINE_MAX];
};

struct rpc_call_table {
	pthread_mutex_t mu;
	unsigned n_slots;
	struct rpc_call_slot *slots; /* n_slots */
	uint32_t *free_list;         /* stack of free slot indices */
	unsigned n_free;
};

/* @n_slots bounds the calls in flight at once (>= 1, <= 65536). */
int rpc_call_table_init(struct rpc_call_table *t, unsigned n_slots);
/* No thread may be inside any rpc_call_* function on @t. */
void rpc_call_table_destroy(struct rpc_call_table *t);

/* Reserve a slot; its id (never 0) goes to *@id. -EAGAIN when all slots
 * are in use. */
int rpc_call_begin(struct rpc_call_table *t, uint64_t *id);

/* Block until @id is completed or failed, or @timeout_ms passed (< 0: no
 * limit), then release the slot. Returns 0 with the reply in @res (may be
 * NULL), -ETIMEDOUT, the negative errno given to rpc_call_fail_all, or
 * -EINVAL for an id that is not reserved. */
int rpc_call_wait(struct rpc_call_table *t, uint64_t id, int timeout_ms,
		  struct rpc_call_result *res);

/* Release a slot whose request could not be sent (instead of waiting). */
void rpc_call_cancel(struct rpc_call_table *t, uint64_t id);

/* Deliver the reply to @id: copies up to RPC_CALL_INLINE_MAX bytes and
 * wakes the waiter. Returns 0, or -ENOENT when no call with this id is
 * pending (unknown, already completed, or its waiter gave up). */
int rpc_call_complete(struct rpc_call_table *t, uint64_t id, const void *data, size_t len);
/* Same with the reply in pieces (e.g. a frame's body and its page). */
int rpc_call_completev(struct rpc_call_table *t, uint64_t id, const struct iovec *iov, int iovcnt);

/* Fail every pending call with @err (a negative errno, e.g. -ECONNRESET
 * when the peer was lost) and wake their waiters. */
void rpc_call_fail_all(struct rpc_call_table *t, int err);

#endif
