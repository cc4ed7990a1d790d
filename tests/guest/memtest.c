// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-memtest: data written on one vCPU is read back intact on others.
 *
 * M MiB (default 32) are split into one page-aligned slice per thread.
 *   phase 1  thread i writes pattern A (address-derived, seeded with i) to
 *            slice i; first touch, so under the DSM slice i starts on the
 *            node of thread i's vCPU.
 *   phase 2  (after a barrier) thread i verifies slice (i+1)%n against
 *            pattern A and rewrites each word with pattern B.
 *   phase 3  (after a barrier) thread i verifies slice (i+2)%n against
 *            pattern B. With two threads that is its own slice, rewritten
 *            by the other thread.
 * Every word of every slice is checked in phases 2 and 3. Mismatches are
 * reported with the guest virtual address, expected and found values.
 *
 * Options: -m MiB. Built with -DBREAK phase 2 loses the write to the last
 * word of every page, and the program must FAIL.
 */
#include "guest.h"

static long opt_mib = 32;

struct memtest {
	uint64_t *base;
	size_t slice_words;
	pthread_barrier_t barrier;
	uint64_t ns[3];		/* phase durations, measured by thread 0 */
	uint64_t mismatches;	/* atomic */
};

static uint64_t pattern_a(const uint64_t *addr, uint64_t seed)
{
	return guest_mix((uint64_t)(uintptr_t)addr ^ (seed << 56));
}

static uint64_t pattern_b(const uint64_t *addr, uint64_t seed)
{
	return ~guest_mix((uint64_t)(uintptr_t)addr * 3 + seed + 0x5bd1e995);
}

static pthread_mutex_t first_lock = PTHREAD_MUTEX_INITIALIZER;
static char first[200];	/* the first mismatch, for the final line */

/* Print one mismatch (at most 4 per thread and phase are printed). */
static void mismatch(int phase, int thread, int slice, const uint64_t *addr, uint64_t want,
		     uint64_t got)
{
	char line[200];
	snprintf(line, sizeof line, "phase %d: thread %d checking slice %d: at %p expected 0x%016llx found 0x%016llx",
		 phase, thread, slice, (const void *)addr, (unsigned long long)want,
		 (unsigned long long)got);
	pthread_mutex_lock(&first_lock);
	if (first[0] == '\0')
		snprintf(first, sizeof first, "%s", line);
	printf("memtest: mismatch: %s\n", line);
	pthread_mutex_unlock(&first_lock);
}

static void *memtest_thread(struct guest_thread *t)
{
	struct memtest *m = t->arg;
	int n = t->nthreads, i = t->index;
	uint64_t t0 = guest_now_ns();

	uint64_t *mine = m->base + (size_t)i * m->slice_words;
	for (size_t w = 0; w < m->slice_words; w++)
		mine[w] = pattern_a(&mine[w], (uint64_t)i);
	pthread_barrier_wait(&m->barrier);
	uint64_t t1 = guest_now_ns();

	int s = (i + 1) % n;
	uint64_t *p = m->base + (size_t)s * m->slice_words;
	uint64_t bad = 0, bad2 = 0;
	for (size_t w = 0; w < m->slice_words; w++) {
		uint64_t want = pattern_a(&p[w], (uint64_t)s);
		if (p[w] != want && bad++ < 4)
			mismatch(2, i, s, &p[w], want, p[w]);
#ifdef BREAK
		if (w % (GUEST_PAGE / 8) == GUEST_PAGE / 8 - 1)
			continue;	/* a lost write: the last word of each page */
#endif
		p[w] = pattern_b(&p[w], (uint64_t)s);
	}
	pthread_barrier_wait(&m->barrier);
	uint64_t t2 = guest_now_ns();

	s = (i + 2) % n;
	p = m->base + (size_t)s * m->slice_words;
	for (size_t w = 0; w < m->slice_words; w++) {
		uint64_t want = pattern_b(&p[w], (uint64_t)s);
		if (p[w] != want && bad2++ < 4)
			mismatch(3, i, s, &p[w], want, p[w]);
	}
	__atomic_fetch_add(&m->mismatches, bad + bad2, __ATOMIC_RELAXED);
	pthread_barrier_wait(&m->barrier);
	if (i == 0) {
		uint64_t t3 = guest_now_ns();
		m->ns[0] = t1 - t0;
		m->ns[1] = t2 - t1;
		m->ns[2] = t3 - t2;
	}
	return NULL;
}

static void usage(void)
{
	guest_usage("disco-memtest [-m MiB] [MiB]");
}

int main(int argc, char **argv)
{
	guest_name = "memtest";
	int c;
	while ((c = getopt(argc, argv, "m:h")) != -1) {
		switch (c) {
		case 'm': opt_mib = guest_arg("-m", optarg, 1, 1L << 20); break;
		default: usage();
		}
	}
	if (argc - optind == 1)	/* a lone number: the MiB */
		opt_mib = guest_arg("MiB", argv[optind], 1, 1L << 20);
	else if (argc != optind)
		usage();
	int n = guest_cpus();
	struct memtest m = { 0 };
	size_t bytes = (size_t)opt_mib << 20;
	size_t slice_bytes = bytes / (size_t)n / GUEST_PAGE * GUEST_PAGE;
	if (slice_bytes == 0)
		guest_die("%ld MiB is too small for %d threads", opt_mib, n);
	m.slice_words = slice_bytes / 8;
	m.base = guest_alloc(slice_bytes * (size_t)n);
	pthread_barrier_init(&m.barrier, NULL, (unsigned)n);
	printf("memtest: %d threads, %zu KiB per slice at %p\n", n, slice_bytes >> 10, (void *)m.base);
	guest_run(n, memtest_thread, &m);
	printf("memtest: phase1 write %.0f ms, phase2 verify+rewrite %.0f ms, phase3 verify %.0f ms\n",
	       guest_ms(m.ns[0]), guest_ms(m.ns[1]), guest_ms(m.ns[2]));
	printf("memtest: %zu words checked twice, %llu mismatches\n", m.slice_words * (size_t)n,
	       (unsigned long long)m.mismatches);
	if (m.mismatches)
		guest_fail("%llu mismatches; first: %s", (unsigned long long)m.mismatches, first);
	return guest_finish();
}
