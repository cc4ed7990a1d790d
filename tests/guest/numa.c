// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-numa: the memory-placement workloads of `scripts/disco compare`,
 * each with an exact check. One thread per online CPU, pinned.
 *
 *   disco-numa MODE [N] [-p P]
 *
 *   local         every thread allocates N MiB (default 16), first-touches it
 *                 (Linux's default local allocation puts it on the thread's
 *                 NUMA node), makes P passes over it (default 64), each word
 *                 x -> x * A + key(pass), and sums it.
 *   read-shared   thread 0 fills an N MiB table (default 16), then every
 *                 thread reads all of it P times (default 128), each starting
 *                 at a different offset.
 *   write-shared  every thread makes N increments (default 20000000) of its
 *                 own counter, the counters adjacent in one cache line, and
 *                 N atomic increments of one counter in the same page: the
 *                 worst case for a page-grained DSM.
 *   misplaced     the thread on the first CPU fills an N MiB buffer
 *                 (default 16; bound to that CPU's node, and the node of
 *                 its pages printed after the run), then
 *                 only the thread on the last CPU uses it: P passes
 *                 (default 64) of x -> x * A + key(pass), then a sum.
 *   all           each of the above with its defaults, in turn (N and P are
 *                 ignored).
 *   -q            every default divided by 16 (the host tests use `all -q`).
 *
 * Checks (exact, computed independently of the measured data): P affine
 * passes compose to one affine map x -> a x + b, so a buffer's final sum is
 * a * sum(initial) + words * b, with sum(initial) computed by the main
 * thread from the generator; a read of the table sums table[j] ^ j, which
 * must be P times the generator's sum; counters must be exactly N and
 * threads * N.
 *
 * Timing: CLOCK_MONOTONIC around the measured phase only (the passes and
 * sums for local, including the allocation and first touch; the reads for
 * read-shared, not the fill; the increments for write-shared; the last
 * CPU's passes for misplaced). Output, one line per mode:
 *   numa: <mode> ms=<elapsed> PASS
 *   numa: <mode> ms=<elapsed> FAIL <first reason> (<n> errors)
 * plus detail lines before it. Exit status 0 only if every mode passed.
 * Built with -DBREAK each mode gets one word or increment wrong and must
 * FAIL.
 */
#include "guest.h"

#define MIB (1024u * 1024u)
#define AFFINE_A 0x9e3779b97f4a7c15ull	/* odd: x -> A x + k is a bijection */

static long opt_n = -1;		/* -1: the mode's default */
static long opt_p = -1;
static long opt_quick = 1;	/* -q: every default divided by 16 (host tests) */

/* A default, divided by 16 with -q. */
static long dflt(long v)
{
	return v / opt_quick > 0 ? v / opt_quick : 1;
}

struct numa {
	int nthreads;
	size_t words;			/* per buffer / of the table */
	long passes;
	long iters;
	pthread_barrier_t barrier;
	uint64_t t0, t1;		/* measured phase */
	uint64_t *shared_buf;		/* read-shared table, misplaced buffer */
	uint64_t sum[GUEST_MAX_THREADS];
	/* write-shared: the counters share a cache line; the atomic counter
	 * is in the same page. */
	struct {
		uint64_t slot[GUEST_MAX_THREADS];
		uint64_t atomic_counter;
	} *counters;
};

static uint64_t init_word(uint64_t seed, size_t j)
{
	return guest_mix((seed << 40) + j);
}

static uint64_t pass_key(long p)
{
	return guest_mix(0x4e55a000u + (uint64_t)p);
}

/* The P passes as one affine map x -> a x + b. */
static void affine_compose(long passes, uint64_t *a, uint64_t *b)
{
	uint64_t ca = 1, cb = 0;
	for (long p = 0; p < passes; p++) {
		ca *= AFFINE_A;
		cb = cb * AFFINE_A + pass_key(p);
	}
	*a = ca;
	*b = cb;
}

/* Sum of the generator's words, computed without the buffer. */
static uint64_t init_sum(uint64_t seed, size_t words)
{
	uint64_t s = 0;
	for (size_t j = 0; j < words; j++)
		s += init_word(seed, j);
	return s;
}

static void fill(uint64_t *buf, uint64_t seed, size_t words)
{
	for (size_t j = 0; j < words; j++)
		buf[j] = init_word(seed, j);
}

/* P passes, then the sum of the buffer. */
static uint64_t work(uint64_t *buf, size_t words, long passes)
{
	for (long p = 0; p < passes; p++) {
		uint64_t k = pass_key(p);
		for (size_t j = 0; j < words; j++)
			buf[j] = buf[j] * AFFINE_A + k;
	}
#ifdef BREAK
	buf[words / 2]++;
#endif
	uint64_t s = 0;
	for (size_t j = 0; j < words; j++)
		s += buf[j];
	return s;
}

/* ---- local ---------------------------------------------------------------- */

static void *local_thread(struct guest_thread *t)
{
	struct numa *m = t->arg;
	pthread_barrier_wait(&m->barrier);
	if (t->index == 0)
		m->t0 = guest_now_ns();
	uint64_t *buf = guest_alloc(m->words * 8);
	fill(buf, (uint64_t)t->index + 1, m->words);
	m->sum[t->index] = work(buf, m->words, m->passes);
	pthread_barrier_wait(&m->barrier);
	if (t->index == 0)
		m->t1 = guest_now_ns();
	munmap(buf, m->words * 8);
	return NULL;
}

static void check_buffer_sum(struct numa *m, int thread, uint64_t seed, uint64_t got)
{
	uint64_t a, b;
	affine_compose(m->passes, &a, &b);
	uint64_t want = a * init_sum(seed, m->words) + (uint64_t)m->words * b;
	if (got != want)
		guest_fail("thread %d (cpu %d): sum %016llx, expected %016llx", thread,
			   guest_thread_cpu(thread), (unsigned long long)got, (unsigned long long)want);
}

static void run_local(struct numa *m)
{
	m->words = (opt_n > 0 ? (size_t)opt_n * MIB : 16 * MIB / (size_t)opt_quick) / 8;
	m->passes = opt_p > 0 ? opt_p : dflt(64);
	printf("numa: local: %d threads, %zu MiB each, %ld passes\n", m->nthreads,
	       m->words * 8 / MIB, m->passes);
	guest_run(m->nthreads, local_thread, m);
	for (int i = 0; i < m->nthreads; i++)
		check_buffer_sum(m, i, (uint64_t)i + 1, m->sum[i]);
}

/* ---- read-shared ----------------------------------------------------------- */

static void *read_shared_thread(struct guest_thread *t)
{
	struct numa *m = t->arg;
	size_t w = m->words;
	if (t->index == 0)
		fill(m->shared_buf, 99, w);
	pthread_barrier_wait(&m->barrier);
	if (t->index == 0)
		m->t0 = guest_now_ns();
	const uint64_t *tab = m->shared_buf;
	uint64_t s = 0;
	for (long r = 0; r < m->passes; r++) {
		size_t start = (w / (size_t)m->nthreads * (size_t)t->index +
				w / (size_t)(m->passes + 1) * (size_t)r) % w;
		for (size_t j = start; j < w; j++)
			s += tab[j] ^ j;
		for (size_t j = 0; j < start; j++)
			s += tab[j] ^ j;
	}
#ifdef BREAK
	if (t->index == 0)
		s += 1;
#endif
	m->sum[t->index] = s;
	pthread_barrier_wait(&m->barrier);
	if (t->index == 0)
		m->t1 = guest_now_ns();
	return NULL;
}

static void run_read_shared(struct numa *m)
{
	m->words = (opt_n > 0 ? (size_t)opt_n * MIB : 16 * MIB / (size_t)opt_quick) / 8;
	m->passes = opt_p > 0 ? opt_p : dflt(128);
	printf("numa: read-shared: %d threads, %zu MiB table filled by cpu %d, %ld reads each\n",
	       m->nthreads, m->words * 8 / MIB, guest_thread_cpu(0), m->passes);
	m->shared_buf = guest_alloc(m->words * 8);
	guest_run(m->nthreads, read_shared_thread, m);
	uint64_t want = 0;
	for (size_t j = 0; j < m->words; j++)
		want += init_word(99, j) ^ j;
	want *= (uint64_t)m->passes;
	for (int i = 0; i < m->nthreads; i++)
		if (m->sum[i] != want)
			guest_fail("thread %d (cpu %d): read sum %016llx, expected %016llx", i,
				   guest_thread_cpu(i), (unsigned long long)m->sum[i],
				   (unsigned long long)want);
	munmap(m->shared_buf, m->words * 8);
}

/* ---- write-shared ---------------------------------------------------------- */

static void *write_shared_thread(struct guest_thread *t)
{
	struct numa *m = t->arg;
	uint64_t *mine = &m->counters->slot[t->index];
	uint64_t *shared = &m->counters->atomic_counter;
	pthread_barrier_wait(&m->barrier);
	if (t->index == 0)
		m->t0 = guest_now_ns();
	long n = m->iters;
#ifdef BREAK
	if (t->index == 0)
		n--;
#endif
	for (long i = 0; i < n; i++) {
		/* A plain increment (a load and a store, not optimised away):
		 * a write lost to false sharing shows up as a short count. */
		__atomic_store_n(mine, __atomic_load_n(mine, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(shared, 1, __ATOMIC_RELAXED);
	}
	pthread_barrier_wait(&m->barrier);
	if (t->index == 0)
		m->t1 = guest_now_ns();
	return NULL;
}

static void run_write_shared(struct numa *m)
{
	m->iters = opt_n > 0 ? opt_n : dflt(20000000);
	printf("numa: write-shared: %d threads, %ld increments each of an own counter (one cache line for all) and of one atomic counter\n",
	       m->nthreads, m->iters);
	m->counters = guest_alloc(sizeof *m->counters);
	guest_run(m->nthreads, write_shared_thread, m);
	for (int i = 0; i < m->nthreads; i++) {
		if (m->counters->slot[i] != (uint64_t)m->iters)
			guest_fail("thread %d (cpu %d): own counter %llu, expected %ld", i,
				   guest_thread_cpu(i),
				   (unsigned long long)m->counters->slot[i], m->iters);
	}
	uint64_t want = (uint64_t)m->nthreads * (uint64_t)m->iters;
	if (m->counters->atomic_counter != want)
		guest_fail("atomic counter %llu, expected %llu",
			   (unsigned long long)m->counters->atomic_counter, (unsigned long long)want);
	munmap(m->counters, sizeof *m->counters);
}

/* ---- misplaced ---------------------------------------------------------------- */

/* Puts @buf's pages on the calling CPU's node (mbind MPOL_BIND), not only
 * preferred there as a first touch does: with little free memory on that
 * node (the kernel, the initramfs and the page cache live on the first
 * node) the kernel silently takes pages from another, and the buffer would
 * sit on the node that uses it. */
static void bind_to_my_node(void *buf, size_t bytes)
{
	unsigned cpu = 0, node = 0;
	unsigned long mask;

	if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0 || node >= 64) {
		printf("numa: getcpu: %s; the buffer is placed by first touch\n", strerror(errno));
		return;
	}
	mask = 1ul << node;
	if (syscall(SYS_mbind, buf, bytes, 2 /* MPOL_BIND */, &mask, 64ul, 0u) != 0)
		printf("numa: mbind to node %u: %s; the buffer is placed by first touch\n", node,
		       strerror(errno));
}

static void *misplaced_thread(struct guest_thread *t)
{
	struct numa *m = t->arg;
	int last = m->nthreads - 1;
	if (t->index == 0) {
		bind_to_my_node(m->shared_buf, m->words * 8);
		fill(m->shared_buf, 7, m->words);
	}
	pthread_barrier_wait(&m->barrier);
	if (t->index == last) {
		m->t0 = guest_now_ns();
		m->sum[last] = work(m->shared_buf, m->words, m->passes);
		m->t1 = guest_now_ns();
	}
	pthread_barrier_wait(&m->barrier);
	return NULL;
}

/* Where the kernel put the buffer's pages: "node 0: a, node 1: b" from
 * move_pages(2) asked for status only. First touch prefers the toucher's
 * node, but a node short of free memory gives pages from another, and
 * then the buffer is not misplaced at all: say so. */
static void print_buffer_nodes(const char *what, void *buf, size_t bytes)
{
	enum { SAMPLES = 256, NODES = 8 };
	void *pages[SAMPLES];
	int status[SAMPLES], count[NODES] = { 0 }, other = 0;
	size_t n = bytes / GUEST_PAGE < SAMPLES ? bytes / GUEST_PAGE : SAMPLES;

	if (!n)
		return;
	for (size_t i = 0; i < n; i++)
		pages[i] = (char *)buf + (bytes / GUEST_PAGE / n) * i * GUEST_PAGE;
	if (syscall(SYS_move_pages, 0, (unsigned long)n, pages, NULL, status, 0) != 0) {
		printf("numa: %s: where its pages are: move_pages: %s\n", what, strerror(errno));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (status[i] >= 0 && status[i] < NODES)
			count[status[i]]++;
		else
			other++;
	}
	printf("numa: %s: %zu sampled pages on node", what, n);
	for (int k = 0; k < NODES; k++)
		if (count[k])
			printf(" %d: %d,", k, count[k]);
	printf(" elsewhere/not present: %d\n", other);
}

static void run_misplaced(struct numa *m)
{
	m->words = (opt_n > 0 ? (size_t)opt_n * MIB : 16 * MIB / (size_t)opt_quick) / 8;
	m->passes = opt_p > 0 ? opt_p : dflt(64);
	int last = m->nthreads - 1;
	printf("numa: misplaced: %zu MiB first touched by cpu %d, then %ld passes by cpu %d only\n",
	       m->words * 8 / MIB, guest_thread_cpu(0), m->passes, guest_thread_cpu(last));
	m->shared_buf = guest_alloc(m->words * 8);
	guest_run(m->nthreads, misplaced_thread, m);
	print_buffer_nodes("misplaced buffer", m->shared_buf, m->words * 8);
	check_buffer_sum(m, last, 7, m->sum[last]);
	munmap(m->shared_buf, m->words * 8);
}

/* ---- main ------------------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*run)(struct numa *);
} modes[] = {
	{ "local", run_local },
	{ "read-shared", run_read_shared },
	{ "write-shared", run_write_shared },
	{ "misplaced", run_misplaced },
};
#define NMODES (int)(sizeof modes / sizeof modes[0])

#define USAGE "disco-numa local|read-shared|write-shared|misplaced|all [N] [-p P] [-q]\n" \
	"  N: MiB per buffer / of the table (local 16, read-shared 16, misplaced 16), or\n" \
	"     increments per thread (write-shared 20000000); P: passes (64, 128, -, 64);\n" \
	"  -q: every default divided by 16 (quick runs on the host)"

int main(int argc, char **argv)
{
	guest_name = "numa";
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *mode = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-q") == 0)
			opt_quick = 16;
		else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
			opt_p = guest_arg("-p", argv[++i], 1, 1000000);
		else if (argv[i][0] == '-')
			guest_usage(USAGE);
		else if (!mode)
			mode = argv[i];
		else if (opt_n < 0)
			opt_n = guest_arg("N", argv[i], 1, 1L << 40);
		else
			guest_usage(USAGE);
	}
	if (!mode)
		guest_usage(USAGE);
	int first = -1;
	for (int i = 0; i < NMODES; i++)
		if (strcmp(mode, modes[i].name) == 0)
			first = i;
	int all = strcmp(mode, "all") == 0;
	if (first < 0 && !all)
		guest_usage(USAGE);
	if ((first == 0 || first == 1 || first == 3) && opt_n > 4096)
		guest_die("N=%ld MiB is too large", opt_n);
	if (all)
		opt_n = opt_p = -1;

	struct numa *m = calloc(1, sizeof *m);
	if (!m)
		guest_die("out of memory");
	m->nthreads = guest_cpus();
	pthread_barrier_init(&m->barrier, NULL, (unsigned)m->nthreads);

	int failed = 0;
	for (int i = all ? 0 : first; i < (all ? NMODES : first + 1); i++) {
		/* Each mode has its own failure count and first reason. */
		guest_nfail = 0;
		guest_first_reason[0] = '\0';
		m->t0 = m->t1 = 0;
		modes[i].run(m);
		double ms = guest_ms(m->t1 - m->t0);
		int nfail = guest_failures();
		if (nfail == 0) {
			printf("numa: %s ms=%.1f PASS\n", modes[i].name, ms);
		} else {
			printf("numa: %s ms=%.1f FAIL %s (%d error%s)\n", modes[i].name, ms,
			       guest_first_reason, nfail, nfail == 1 ? "" : "s");
			failed = 1;
		}
	}
	return failed;
}
