// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-spinlock: the livelock check. Every thread increments one shared
 * counter under ONE test-and-set spinlock; lock and counter share a page, so
 * under the DSM that page moves between nodes on every hand-over.
 *
 * Each thread runs for D seconds (default 3) or until it made K increments
 * (default 0: no limit), whichever comes first. A thread that waits for the
 * lock past the deadline gives up. Each thread's count is kept privately
 * and printed. PASS requires
 *   - counter == sum of the per-thread counts (mutual exclusion held), and
 *   - every thread made progress (count > 0): a DSM that lets one node keep
 *     the page forever, or passes it around without anyone getting the lock,
 *     fails here instead of hanging.
 * The spread (min/max per thread) is printed as information, not checked.
 *
 * Options: -d D seconds, -k K increments per thread. Built with -DBREAK the
 * lock is a non-atomic load-then-store and the program must FAIL.
 */
#include "guest.h"

static long opt_seconds = 3;
static long opt_max = 0;

struct shared {
	struct guest_spinlock lock;
	uint32_t inside;	/* threads in the critical section (plain access) */
	uint64_t counter;	/* plain increments, guarded by lock */
	uint64_t overlaps;	/* guarded by lock (when the lock works) */
} __attribute__((aligned(GUEST_PAGE)));

struct spin_test {
	struct shared *sh;
	uint64_t deadline_ns;
	uint64_t count[GUEST_MAX_THREADS];
	uint64_t gave_up[GUEST_MAX_THREADS];
};

static void *spin_thread(struct guest_thread *t)
{
	struct spin_test *st = t->arg;
	struct shared *sh = st->sh;
	volatile uint64_t *counter = &sh->counter;
	volatile uint32_t *inside = &sh->inside;
	uint64_t mine = 0;
	for (;;) {
		if (opt_max && mine >= (uint64_t)opt_max)
			break;
		if ((mine & 15) == 0 && guest_now_ns() >= st->deadline_ns)
			break;
		if (guest_spin_lock_until(&sh->lock, st->deadline_ns) != 0) {
			st->gave_up[t->index] = 1;
			break;
		}
		if (*inside != 0)
			sh->overlaps++;
		*inside = *inside + 1;
		*counter = *counter + 1;
		*inside = *inside - 1;
		guest_spin_unlock(&sh->lock);
		mine++;
	}
	st->count[t->index] = mine;
	return NULL;
}

static void usage(void)
{
	guest_usage("disco-spinlock [-d seconds] [-k increments_per_thread] [seconds]");
}

int main(int argc, char **argv)
{
	guest_name = "spinlock";
	int c;
	while ((c = getopt(argc, argv, "d:k:h")) != -1) {
		switch (c) {
		case 'd': opt_seconds = guest_arg("-d", optarg, 1, 86400); break;
		case 'k': opt_max = guest_arg("-k", optarg, 0, 1L << 40); break;
		default: usage();
		}
	}
	if (argc - optind == 1)	/* a lone number: the seconds */
		opt_seconds = guest_arg("seconds", argv[optind], 1, 86400);
	else if (argc != optind)
		usage();
	int n = guest_cpus();
	struct spin_test *st = calloc(1, sizeof *st);
	if (!st)
		guest_die("out of memory");
	st->sh = guest_alloc(sizeof *st->sh);
	printf("spinlock: %d threads, one test-and-set lock, %ld s or %ld increments per thread; "
	       "progress per thread is reported below\n", n, opt_seconds, opt_max);
	uint64_t t0 = guest_now_ns();
	st->deadline_ns = t0 + (uint64_t)opt_seconds * 1000000000u;
	guest_run(n, spin_thread, st);
	double ms = guest_ms(guest_now_ns() - t0);

	uint64_t sum = 0, min = UINT64_MAX, max = 0;
	for (int i = 0; i < n; i++) {
		uint64_t k = st->count[i];
		printf("spinlock: thread %d cpu %d: %llu increments%s\n", i, guest_thread_cpu(i),
		       (unsigned long long)k, st->gave_up[i] ? " (gave up waiting for the lock at the deadline)" : "");
		sum += k;
		min = k < min ? k : min;
		max = k > max ? k : max;
		if (k == 0)
			guest_fail("thread %d on cpu %d made no progress in %ld s (livelock or starvation)",
				   i, guest_thread_cpu(i), opt_seconds);
	}
	printf("spinlock: counter=%llu sum=%llu min=%llu max=%llu in %.0f ms (%.0f acquisitions/s)\n",
	       (unsigned long long)st->sh->counter, (unsigned long long)sum,
	       (unsigned long long)min, (unsigned long long)max, ms, ms > 0 ? (double)sum / ms * 1000 : 0);
	if (st->sh->counter != sum)
		guest_fail("counter=%llu but the threads made %llu increments (mutual exclusion broken)",
			   (unsigned long long)st->sh->counter, (unsigned long long)sum);
	if (st->sh->overlaps)
		guest_fail("%llu times two threads were inside the critical section",
			   (unsigned long long)st->sh->overlaps);
	return guest_finish();
}
