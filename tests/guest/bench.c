// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-bench: a short parallel benchmark with exact checksums.
 *
 *   private  each thread fills its own B KiB buffer (default 2048) and makes
 *            P passes over it (default 8) in a strided order (every 9th
 *            word, wrapping, so each access lands on a new cache line),
 *            xoring each word with a per-pass key; then sums the buffer.
 *            Under the DSM these pages never need to leave the thread's node.
 *   shared   one table of S KiB (default 1024), filled by the main thread
 *            before the timing starts, is read by every thread R times
 *            (default 4), each thread starting at a different offset.
 *            Under the DSM the table pages get replicated to every node.
 * Every checksum is compared with one computed independently by the main
 * thread (closed form: buffer word j ends as init(j) ^ (key_0 ^ .. ^
 * key_P-1); the shared sum is R * sum(table)).
 *
 * Output: bench: threads=<n> private_ms=<x> shared_ms=<y> total_ms=<z>
 * Options: -b KiB, -p passes, -s KiB, -r passes. Built with -DBREAK thread 0
 * skips one word and the program must FAIL.
 */
#include "guest.h"

static long opt_private_kib = 2048;
static long opt_passes = 8;
static long opt_shared_kib = 1024;
static long opt_reads = 4;

#define STRIDE 9

struct bench {
	size_t pwords;		/* words per private buffer */
	const uint64_t *table;
	size_t twords;
	pthread_barrier_t barrier;
	uint64_t t[3];		/* phase boundaries, recorded by thread 0 */
	uint64_t private_sum[GUEST_MAX_THREADS];
	uint64_t shared_sum[GUEST_MAX_THREADS];
};

static uint64_t init_word(int thread, size_t j)
{
	return guest_mix(((uint64_t)thread << 40) + j);
}

static uint64_t pass_key(long p)
{
	return guest_mix(0xbe7c4000u + (uint64_t)p);
}

static void *bench_thread(struct guest_thread *t)
{
	struct bench *b = t->arg;
	size_t w = b->pwords;

	pthread_barrier_wait(&b->barrier);
	if (t->index == 0)
		b->t[0] = guest_now_ns();

	uint64_t *buf = guest_alloc(w * 8);
	for (size_t j = 0; j < w; j++)
		buf[j] = init_word(t->index, j);
	for (long p = 0; p < opt_passes; p++) {
		uint64_t key = pass_key(p);
		size_t j = 0, steps = w;
#ifdef BREAK
		if (t->index == 0 && p == 0)
			steps--;
#endif
		for (size_t s = 0; s < steps; s++) {
			buf[j] ^= key;
			j += STRIDE;
			if (j >= w)
				j -= w;
		}
	}
	uint64_t sum = 0;
	for (size_t j = 0; j < w; j++)
		sum += buf[j];
	b->private_sum[t->index] = sum;
	munmap(buf, w * 8);

	pthread_barrier_wait(&b->barrier);
	if (t->index == 0)
		b->t[1] = guest_now_ns();

	const volatile uint64_t *tab = b->table;
	uint64_t ssum = 0;
	size_t start = b->twords / (size_t)t->nthreads * (size_t)t->index;
	for (long r = 0; r < opt_reads; r++) {
		for (size_t j = start; j < b->twords; j++)
			ssum += tab[j];
		for (size_t j = 0; j < start; j++)
			ssum += tab[j];
	}
	b->shared_sum[t->index] = ssum;

	pthread_barrier_wait(&b->barrier);
	if (t->index == 0)
		b->t[2] = guest_now_ns();
	return NULL;
}

static void usage(void)
{
	guest_usage("disco-bench [-b private_KiB] [-p passes] [-s shared_KiB] [-r read_passes]");
}

int main(int argc, char **argv)
{
	guest_name = "bench";
	int c;
	while ((c = getopt(argc, argv, "b:p:s:r:h")) != -1) {
		switch (c) {
		case 'b': opt_private_kib = guest_arg("-b", optarg, 1, 1L << 22); break;
		case 'p': opt_passes = guest_arg("-p", optarg, 1, 1L << 20); break;
		case 's': opt_shared_kib = guest_arg("-s", optarg, 1, 1L << 22); break;
		case 'r': opt_reads = guest_arg("-r", optarg, 1, 1L << 20); break;
		default: usage();
		}
	}
	if (argc != optind)
		usage();
	int n = guest_cpus();
	struct bench *b = calloc(1, sizeof *b);
	if (!b)
		guest_die("out of memory");
	b->pwords = (size_t)opt_private_kib * 1024 / 8;
	if (b->pwords % 3 == 0)	/* gcd(words, STRIDE) must be 1 to visit every word */
		b->pwords--;
	b->twords = (size_t)opt_shared_kib * 1024 / 8;
	uint64_t *table = guest_alloc(b->twords * 8);
	uint64_t tsum = 0;
	for (size_t j = 0; j < b->twords; j++) {
		table[j] = guest_mix(0x7ab1e000000ull + j);
		tsum += table[j];
	}
	b->table = table;
	pthread_barrier_init(&b->barrier, NULL, (unsigned)n);
	printf("bench: %d threads, private %ld KiB x %ld passes, shared %ld KiB x %ld reads\n", n,
	       opt_private_kib, opt_passes, opt_shared_kib, opt_reads);

	guest_run(n, bench_thread, b);

	uint64_t keys = 0;
	for (long p = 0; p < opt_passes; p++)
		keys ^= pass_key(p);
	for (int i = 0; i < n; i++) {
		uint64_t want = 0;
		for (size_t j = 0; j < b->pwords; j++)
			want += init_word(i, j) ^ keys;
		if (b->private_sum[i] != want)
			guest_fail("thread %d: private checksum 0x%016llx expected 0x%016llx", i,
				   (unsigned long long)b->private_sum[i], (unsigned long long)want);
		if (b->shared_sum[i] != tsum * (uint64_t)opt_reads)
			guest_fail("thread %d: shared checksum 0x%016llx expected 0x%016llx", i,
				   (unsigned long long)b->shared_sum[i],
				   (unsigned long long)(tsum * (uint64_t)opt_reads));
	}
	printf("bench: threads=%d private_ms=%.1f shared_ms=%.1f total_ms=%.1f\n", n,
	       guest_ms(b->t[1] - b->t[0]), guest_ms(b->t[2] - b->t[1]), guest_ms(b->t[2] - b->t[0]));
	return guest_finish();
}
