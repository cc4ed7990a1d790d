// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * spinlock: a ticket lock (LOCK XADD takes a ticket; the holder waits
 * until "serving" reaches it) protects a record of 1024 words that spans
 * two pages, plus its sequence number in a third page. Every CPU (every
 * node's) takes the lock mini.lock_n times (default 200); inside it
 *   - counts itself in with LOCK INC of "inside" (must read 1: no one else
 *     inside),
 *   - checks that every word of the record equals the sequence number the
 *     previous holder left,
 *   - writes the sequence number plus one into every word and into the
 *     sequence number.
 * Expected: no overlap, no torn record, the sequence number and the
 * ticket counters equal the total number of acquisitions. Under disco
 * the lock word, the record's two pages and the sequence page move between
 * nodes on every hand-over.
 * -DBREAK: a CPU takes its ticket but does not wait for its turn. And in
 * its first round it stays inside until every CPU is inside (at most the
 * usual wait), so the overlap happens for sure: without that, one CPU
 * could do all its rounds while the other waited for its first page (a
 * loaded host; seen once in CI), and the broken lock passed.
 */
#include "mini.h"

#define WORDS 1024

static struct {
	volatile uint32_t next, serving;
} lock __attribute__((aligned(4096)));
static volatile uint64_t record[WORDS] __attribute__((aligned(4096)));
static struct {
	volatile uint64_t seq;
	volatile uint32_t inside;
	struct round_barrier start;
} meta __attribute__((aligned(4096)));

static struct {
	uint64_t n, done[MAX_CPUS];
	uint32_t participants;
	uint32_t overlaps[MAX_CPUS], torn[MAX_CPUS];
	bool timeout[MAX_CPUS];
} run;

static bool lock_acquire(uint32_t *ticket)
{
	*ticket = __atomic_fetch_add(&lock.next, 1, __ATOMIC_SEQ_CST);
#ifndef BREAK
	uint64_t deadline = wait_deadline();

	while (READ_ONCE(lock.serving) != *ticket) {
		if (now_us() > deadline)
			return false;
		cpu_relax();
	}
#endif
	barrier();
	return true;
}

static void lock_release(uint32_t ticket)
{
	barrier();
#ifdef BREAK
	__atomic_fetch_add(&lock.serving, 1, __ATOMIC_SEQ_CST);
	(void)ticket;
#else
	WRITE_ONCE(lock.serving, ticket + 1); /* x86 stores are released in order */
#endif
}

static void worker(void *arg)
{
	int self = this_cpu();
	uint64_t i;

	if (!round_barrier_wait(&meta.start, run.participants, 1)) {
		run.timeout[self] = true;
		return;
	}
	for (i = 0; i < run.n; i++) {
		uint32_t ticket;

		if (!lock_acquire(&ticket)) {
			run.timeout[self] = true;
			break;
		}
		if (__atomic_add_fetch(&meta.inside, 1, __ATOMIC_SEQ_CST) != 1)
			run.overlaps[self]++;
#ifdef BREAK
		if (i == 0) {
			uint64_t deadline = wait_deadline();

			while (READ_ONCE(meta.inside) < run.participants && now_us() < deadline)
				cpu_relax();
		}
#endif
		uint64_t seq = meta.seq;
		for (int w = 0; w < WORDS; w++)
			if (record[w] != seq) {
				run.torn[self]++;
				break;
			}
		for (int w = 0; w < WORDS; w++)
			record[w] = seq + 1;
		meta.seq = seq + 1;
		__atomic_sub_fetch(&meta.inside, 1, __ATOMIC_SEQ_CST);
		lock_release(ticket);
	}
	run.done[self] = i;
}

bool test_spinlock(void)
{
	uint64_t mask = 0, late, total = 0;
	uint32_t overlaps = 0, torn = 0, timeouts = 0;

	run.n = cmdline_u64("mini.lock_n", 200);
	mask = online_mask(&run.participants);
	if (!test_run(mask, worker, &late)) {
		test_result("spinlock", false, "cpus did not finish (mask %lx)", late);
		return false;
	}
	for (int i = 0; i < boot.n_cpus; i++) {
		total += run.done[i];
		overlaps += run.overlaps[i];
		torn += run.torn[i];
		timeouts += run.timeout[i];
	}
	bool ok = !overlaps && !torn && !timeouts && total == run.n * run.participants &&
		  meta.seq == total && lock.next == total && lock.serving == total;

	test_result("spinlock", ok,
		    "cpus=%u acquisitions=%lu seq=%lu tickets=%u/%u overlaps=%u torn_records=%u timeouts=%u",
		    run.participants, total, meta.seq, lock.next, lock.serving, overlaps, torn, timeouts);
	return ok;
}
