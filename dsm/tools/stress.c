// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-dsm-stress: proves the DSM coherent under contention between real
 * processes. Every member process runs threads that, in a seeded random
 * mix, (1) atomically increment shared counters, (2) update a record under
 * a spinlock that lives in DSM memory, (3) rewrite pages they own under a
 * seqlock with a checksum, and (4) read other threads' pages and check
 * them. At the end every process verifies exact totals and every page, and
 * exits non-zero on any mismatch.
 *
 * Without --node it launches one member per node of the config (by default
 * a generated 4-node cluster on 127.0.0.1; --transport, --address and
 * --rdma-* change its network) and reports the sum.
 *
 * With memory budgets (--node-memory, or the config's vms[].node_memory)
 * each node may hold only part of what the threads touch, so pages are
 * evicted and dirty ones written back all the time; the checks are the
 * same, and the run also fails unless evictions and write-backs happened
 * (a budget that never made anything leave proves nothing).
 *
 * Threads: main creates --threads workers after the start barrier and joins
 * them. A worker owns its tally (copied into its DSM slot at the end),
 * takes no lock but the spinlock in DSM memory, and blocks only in DSM
 * faults; its spins are bounded (stuck()) so a stale copy cannot hang it.
 *
 * Region layout (4 KiB pages):
 *   0-15  64 counters, 64 bytes apart, spread over --counter-pages pages
 *   16    the spinlock word            17 the record it protects
 *   20-99 one 640-byte tally slot per thread (what it did, for the check)
 *   64-   PAGES_PER_THREAD data pages per thread
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool_common.h"

#define PAGE DSM_PAGE_SIZE
#define N_COUNTERS 64
#define MAX_COUNTER_PAGES 16
#define LOCK_PAGE 16
#define RECORD_PAGE 17
#define SLOT_FIRST_PAGE 20
#define SLOT_SIZE 640
#define DATA_FIRST_PAGE 100
#define PAGES_PER_THREAD 4
#define MAX_THREADS 8
#define WORDS (PAGE / 8)

struct slot {
	uint64_t counter_adds[N_COUNTERS];
	uint64_t lock_ops;
	uint64_t page_gen[PAGES_PER_THREAD];
};
_Static_assert(sizeof(struct slot) <= SLOT_SIZE, "slot too big");

struct record {
	uint64_t a, b, count;
};

struct opts {
	const char *config, *node, *vm, *result_dir;
	const char *node_memory, *min_cache; /* budgets of the generated cluster */
	int processes, threads, counter_pages;
	unsigned min_hold_us;
	uint64_t iterations, seed;
	struct tool_net net; /* of the generated cluster */
	bool net_given;      /* a network option was on the command line */
};

struct worker {
	pthread_t thread;
	uint8_t *base;
	int gtid;
	struct opts *o;
	struct slot tally;
	uint64_t reads_checked, reads_torn, read_errors;
};

static int counter_pages = 16;

static uint64_t *counter(uint8_t *base, int k)
{
	return (uint64_t *)(base + (k % counter_pages) * PAGE + (k / counter_pages) * 64);
}

static struct slot *slot_of(uint8_t *base, int gtid)
{
	return (struct slot *)(base + SLOT_FIRST_PAGE * PAGE + gtid * SLOT_SIZE);
}

static uint64_t *data_page(uint8_t *base, int gtid, int j)
{
	return (uint64_t *)(base + (DATA_FIRST_PAGE + (uint64_t)gtid * PAGES_PER_THREAD + j) * PAGE);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

/* One mix per page, a multiply-xor per word: cheap, and a word from
 * another generation, page or thread (or a torn copy) still shows. */
static uint64_t page_seed(int gtid, int j, uint64_t gen)
{
	return mix(((uint64_t)gtid << 48) ^ ((uint64_t)j << 40) ^ gen);
}

static uint64_t word_value(uint64_t seed, int i)
{
	return seed ^ ((uint64_t)i * 0x9E3779B97F4A7C15ULL);
}

/* Word 0: seqlock; 1: owner; 2: page index; 3: generation; 4..WORDS-2:
 * pattern; WORDS-1: weighted sum of words 1..WORDS-2. */
static void write_page(uint64_t *p, int gtid, int j, uint64_t gen)
{
	uint64_t seq = __atomic_load_n(&p[0], __ATOMIC_RELAXED);
	uint64_t seed = page_seed(gtid, j, gen), sum = 0;

	__atomic_store_n(&p[0], seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (int i = 1; i < WORDS - 1; i++) {
		uint64_t v = i == 1 ? (uint64_t)gtid : i == 2 ? (uint64_t)j : i == 3 ? gen
								: word_value(seed, i);
		__atomic_store_n(&p[i], v, __ATOMIC_RELAXED);
		sum += v * (2 * (uint64_t)i + 1);
	}
	__atomic_store_n(&p[WORDS - 1], sum, __ATOMIC_RELAXED);
	__atomic_store_n(&p[0], seq + 2, __ATOMIC_RELEASE);
}

/* 0: consistent; 1: torn by a concurrent writer (retry); -1: corrupt. */
static int check_page(uint64_t *p, int gtid, int j, uint64_t *gen_out)
{
	uint64_t copy[WORDS];
	uint64_t s1 = __atomic_load_n(&p[0], __ATOMIC_ACQUIRE);
	for (int i = 1; i < WORDS; i++)
		copy[i] = __atomic_load_n(&p[i], __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint64_t s2 = __atomic_load_n(&p[0], __ATOMIC_RELAXED);
	if (s1 != s2 || (s1 & 1))
		return 1;
	if (s1 == 0) { /* never written: must still be zero */
		for (int i = 1; i < WORDS; i++)
			if (copy[i])
				return -1;
		*gen_out = 0;
		return 0;
	}
	uint64_t sum = 0, seed = page_seed(gtid, j, copy[3]);
	for (int i = 1; i < WORDS - 1; i++)
		sum += copy[i] * (2 * (uint64_t)i + 1);
	if (copy[1] != (uint64_t)gtid || copy[2] != (uint64_t)j || sum != copy[WORDS - 1])
		return -1;
	for (int i = 4; i < WORDS - 1; i++)
		if (copy[i] != word_value(seed, i))
			return -1;
	*gen_out = copy[3];
	return 0;
}

/* A correct DSM never makes a thread wait this long; a stale copy can
 * make it wait forever without faulting, so give up and say so. */
#define STUCK_NS (20ULL * 1000000000ULL)

static const char *member_name = "?";

static void stuck(const char *what)
{
	fprintf(stderr, "stress[%s]: FAIL: %s for 20 s (a stale copy or a lost update)\n",
		member_name, what);
	fflush(stderr);
	_exit(1);
}

static void spin_lock(uint32_t *l)
{
	uint64_t start = 0;
	for (unsigned spins = 0;; spins++) {
		if (!__atomic_load_n(l, __ATOMIC_RELAXED) &&
		    !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
			return;
		if (spins <= 8) {
			__builtin_ia32_pause();
			continue;
		}
		sched_yield(); /* never spin a core away from the loop threads */
		if ((spins & 1023) == 0) {
			if (!start)
				start = tool_now_ns();
			else if (tool_now_ns() - start > STUCK_NS)
				stuck("spinlock in DSM memory never came free");
		}
	}
}

static void spin_unlock(uint32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t *base = w->base;
	int total_threads = w->o->processes * w->o->threads;
	uint64_t rng = w->o->seed * 1000003ULL + (uint64_t)w->gtid * 7919ULL + 1;

	pthread_setname_np(pthread_self(), "stress-worker");

	for (uint64_t it = 0; it < w->o->iterations; it++) {
		unsigned r = (unsigned)(tool_rand(&rng) % 100);
		if (r < 40) {
			int k = (int)(tool_rand(&rng) % N_COUNTERS);
			__atomic_fetch_add(counter(base, k), 1, __ATOMIC_SEQ_CST);
			w->tally.counter_adds[k]++;
		} else if (r < 55) {
			uint32_t *lock = (uint32_t *)(base + LOCK_PAGE * PAGE);
			struct record *rec = (struct record *)(base + RECORD_PAGE * PAGE);
			uint64_t x = tool_rand(&rng) % 1000;
			spin_lock(lock);
			rec->a += x;
			rec->b -= x;
			rec->count++;
			spin_unlock(lock);
			w->tally.lock_ops++;
		} else if (r < 75) {
			int j = (int)(tool_rand(&rng) % PAGES_PER_THREAD);
			write_page(data_page(base, w->gtid, j), w->gtid, j, ++w->tally.page_gen[j]);
		} else {
			int g = (int)(tool_rand(&rng) % (uint64_t)total_threads);
			int j = (int)(tool_rand(&rng) % PAGES_PER_THREAD);
			uint64_t gen;
			int rc;
			uint64_t start = 0;
			while ((rc = check_page(data_page(base, g, j), g, j, &gen)) == 1) {
				if ((++w->reads_torn & 1023) == 0) {
					if (!start)
						start = tool_now_ns();
					else if (tool_now_ns() - start > STUCK_NS)
						stuck("a page stayed half-written");
				}
				sched_yield(); /* the writer may be blocked in a fault */
			}
			if (rc < 0)
				w->read_errors++;
			w->reads_checked++;
		}
	}
	*slot_of(base, w->gtid) = w->tally;
	return NULL;
}

/* Every member checks everything once all have finished. */
static int verify(uint8_t *base, const struct opts *o, const char *node)
{
	int total_threads = o->processes * o->threads, errors = 0;
	uint64_t want[N_COUNTERS] = { 0 }, lock_ops = 0;

	for (int g = 0; g < total_threads; g++) {
		struct slot *s = slot_of(base, g);
		for (int k = 0; k < N_COUNTERS; k++)
			want[k] += s->counter_adds[k];
		lock_ops += s->lock_ops;
		for (int j = 0; j < PAGES_PER_THREAD; j++) {
			uint64_t gen;
			if (check_page(data_page(base, g, j), g, j, &gen) != 0 || gen != s->page_gen[j]) {
				fprintf(stderr, "stress[%s]: page %d of thread %d: bad content or "
					"generation %" PRIu64 " (want %" PRIu64 ")\n",
					node, j, g, gen, s->page_gen[j]);
				errors++;
			}
		}
	}
	for (int k = 0; k < N_COUNTERS; k++)
		if (*counter(base, k) != want[k]) {
			fprintf(stderr, "stress[%s]: counter %d = %" PRIu64 ", want %" PRIu64 "\n",
				node, k, *counter(base, k), want[k]);
			errors++;
		}
	struct record *rec = (struct record *)(base + RECORD_PAGE * PAGE);
	if (rec->count != lock_ops || rec->a + rec->b != 0) {
		fprintf(stderr, "stress[%s]: locked record count=%" PRIu64 " (want %" PRIu64
			") a+b=%" PRIu64 " (want 0)\n", node, rec->count, lock_ops, rec->a + rec->b);
		errors++;
	}
	return errors;
}

static int run_member(struct opts *o)
{
	struct tool_member m;
	struct worker w[MAX_THREADS];
	struct dsm_stats before, after;
	int errors = 0;

	if (tool_member_join(&m, o->config, o->node, o->vm))
		return 1;
	member_name = o->node;
	o->processes = m.cfg->n_nodes;
	if ((uint64_t)(DATA_FIRST_PAGE + o->processes * o->threads * PAGES_PER_THREAD) * PAGE >
	    dsm_region_size(m.region)) {
		fprintf(stderr, "stress[%s]: region too small for %d threads\n", o->node,
			o->processes * o->threads);
		tool_member_leave(&m);
		return 1;
	}
	uint8_t *base = dsm_region_base(m.region);
	if (rpc_session_barrier(m.session, 1, 60000) < 0) {
		fprintf(stderr, "stress[%s]: start barrier failed\n", o->node);
		tool_member_leave(&m);
		return 1;
	}
	dsm_region_stats(m.region, &before);
	uint64_t t0 = tool_now_ns();
	for (int t = 0; t < o->threads; t++) {
		memset(&w[t], 0, sizeof(w[t]));
		w[t].base = base;
		w[t].o = o;
		w[t].gtid = m.node * o->threads + t;
		pthread_create(&w[t].thread, NULL, worker_main, &w[t]);
	}
	uint64_t reads = 0, torn = 0;
	for (int t = 0; t < o->threads; t++) {
		pthread_join(w[t].thread, NULL);
		reads += w[t].reads_checked;
		torn += w[t].reads_torn;
		errors += (int)w[t].read_errors;
	}
	uint64_t elapsed = tool_now_ns() - t0;
	dsm_region_stats(m.region, &after);
	if (errors)
		fprintf(stderr, "stress[%s]: %d page reads saw corrupt content\n", o->node, errors);

	int rc = rpc_session_barrier(m.session, 2, 120000);
	if (rc < 0) {
		fprintf(stderr, "stress[%s]: end barrier failed: %s\n", o->node, strerror(-rc));
		errors++;
	} else {
		errors += verify(base, o, o->node);
	}
	uint64_t faults = (after.engine.local_read_faults + after.engine.local_write_faults) -
			  (before.engine.local_read_faults + before.engine.local_write_faults);
	/* with a budget: every page mapped here fitted in it, all along */
	if (after.budget_frames && after.pages_present_max > after.budget_frames) {
		fprintf(stderr, "stress[%s]: %" PRIu64 " pages were mapped at once, budget %" PRIu64
			"\n", o->node, after.pages_present_max, after.budget_frames);
		errors++;
	}
	printf("stress[%s]: threads=%d iterations=%" PRIu64 " page_reads_checked=%" PRIu64
	       " torn_retries=%" PRIu64 " coherence_faults=%" PRIu64 " elapsed_ms=%.0f "
	       "faults_per_s=%.0f fault_p50_us<=%.0f fault_p99_us<=%.0f pages_read=%" PRIu64
	       " page_rereads=%" PRIu64 " budget_frames=%" PRIu64 " pages_present_max=%" PRIu64
	       " evictions=%" PRIu64 " writebacks=%" PRIu64 " room_waits=%" PRIu64 " result=%s\n",
	       o->node, o->threads, o->iterations, reads, torn, faults, (double)elapsed / 1e6,
	       (double)faults / ((double)elapsed / 1e9), dsm_stats_latency_percentile(&after, 50),
	       dsm_stats_latency_percentile(&after, 99), after.pages_read, after.page_rereads,
	       after.budget_frames, after.pages_present_max, after.engine.evictions,
	       after.engine.writebacks, after.engine.room_waits, errors ? "FAIL" : "PASS");
	if (o->result_dir) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/result-%s", o->result_dir, o->node);
		FILE *f = fopen(path, "w");
		if (f) {
			fprintf(f, "%" PRIu64 " %" PRIu64 " %d %" PRIu64 " %" PRIu64 " %" PRIu64
				" %" PRIu64 "\n", faults, elapsed, errors, after.budget_frames,
				after.engine.evictions, after.engine.writebacks,
				after.engine.room_waits);
			fclose(f);
		}
	}
	if ((rc = rpc_session_barrier(m.session, 3, 120000)) < 0) {
		fprintf(stderr, "stress[%s]: final barrier failed: %s\n", o->node, strerror(-rc));
		errors++;
	}
	tool_member_leave(&m);
	return errors ? 1 : 0;
}

static int run_all(struct opts *o, const char *argv0)
{
	char config[4200], dir[4200], iters[32], threads[32], seed[32], cpages[32];
	int rc;

	if (o->config) {
		snprintf(config, sizeof(config), "%s", o->config);
		if (mkdtemp(strcpy(dir, "/tmp/disco-stress-XXXXXX")) == NULL)
			return 1;
	} else if ((rc = tool_make_local_config(&o->net, o->processes,
						&(struct tool_vm){ .memory = "64M",
								   .placement = "interleave",
								   .min_hold_us = o->min_hold_us,
								   .node_memory = o->node_memory,
								   .min_cache = o->min_cache },
						config, sizeof(config), dir, sizeof(dir))) < 0) {
		fprintf(stderr, "stress: cannot generate a cluster on %s: %s%s\n", o->net.address,
			strerror(-rc),
			rc == -EADDRNOTAVAIL ? " (is it an address of this machine?)" : "");
		return 1;
	}
	snprintf(iters, sizeof(iters), "%" PRIu64, o->iterations);
	snprintf(threads, sizeof(threads), "%d", o->threads);
	snprintf(seed, sizeof(seed), "%" PRIu64, o->seed);
	snprintf(cpages, sizeof(cpages), "%d", o->counter_pages);
	char *extra[] = { "--iterations", iters, "--threads", threads, "--seed", seed,
			  "--counter-pages", cpages, "--result-dir", dir, NULL };
	int failed = tool_run_members(argv0, config, extra, 300);

	uint64_t faults = 0, max_elapsed = 0, budgets = 0, evictions = 0, writebacks = 0;
	uint64_t room_waits = 0;
	struct cluster_config *cfg;
	char err[512];
	int members = 0;
	if (cluster_config_load(config, &cfg, err, sizeof(err)) == 0) {
		for (int i = 0; i < cfg->n_nodes; i++) {
			char path[4400];
			uint64_t f, e, b, ev, wb, rw;
			int errs;
			snprintf(path, sizeof(path), "%s/result-%s", dir, cfg->nodes[i].name);
			FILE *fp = fopen(path, "r");
			if (fp && fscanf(fp, "%" SCNu64 " %" SCNu64 " %d %" SCNu64 " %" SCNu64
					 " %" SCNu64 " %" SCNu64, &f, &e, &errs, &b, &ev, &wb,
					 &rw) == 7) {
				faults += f;
				max_elapsed = e > max_elapsed ? e : max_elapsed;
				budgets += b != 0;
				evictions += ev;
				writebacks += wb;
				room_waits += rw;
				members++;
			}
			if (fp)
				fclose(fp);
			unlink(path);
		}
		cluster_config_free(cfg);
	}
	if (o->config)
		rmdir(dir);
	else
		tool_remove_local_config(dir);
	bool ok = failed == 0 && members > 0;
	if (ok && budgets && (!evictions || !writebacks)) {
		fprintf(stderr, "stress: FAIL: the nodes have memory budgets, but %" PRIu64
			" evictions and %" PRIu64 " write-backs happened: the budget made "
			"nothing leave (make it smaller)\n", evictions, writebacks);
		ok = false;
	}
	printf("stress: processes=%d threads_per_process=%d iterations=%" PRIu64
	       " coherence_faults=%" PRIu64 " elapsed_s=%.2f faults_per_s=%.0f", members,
	       o->threads, o->iterations, faults, (double)max_elapsed / 1e9,
	       max_elapsed ? (double)faults / ((double)max_elapsed / 1e9) : 0.0);
	if (budgets)
		printf(" budgets=%" PRIu64 " evictions=%" PRIu64 " writebacks=%" PRIu64
		       " room_waits=%" PRIu64, budgets, evictions, writebacks, room_waits);
	printf(" result=%s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: disco-dsm-stress [options]\n"
		"Runs threads in several processes against one DSM region and verifies\n"
		"exact results. With no options: 4 processes on a generated local cluster.\n\n"
		"  --config FILE     cluster config (default: generate one on this machine as\n"
		"                    --processes, --min-hold-us and the network options say)\n"
		"  --node NAME       run only this member (join); without it, start all members\n"
		"  --vm NAME         VM whose memory size and placement to use (default: first)\n"
		"  --processes N     members of the generated cluster (default 4, 2..16)\n"
		"  --threads N       threads per process (default 2, 1..%d)\n"
		"  --iterations N    operations per thread (default 20000)\n"
		"  --seed N          random seed (default 1)\n"
		"  --counter-pages N pages the 64 shared counters spread over (default 16;\n"
		"                    fewer = hotter pages, more = more pages in motion)\n"
		"  --min-hold-us N   dsm.min_hold_us of the generated cluster (default 0)\n"
		"  --node-memory S   memory budget of each node of the generated cluster\n"
		"                    (vms[].node_memory; its 64M region is interleaved, so\n"
		"                    each node is home of 64M/N: e.g. 16448K with 4 nodes\n"
		"                    leaves 16 frames for copies; default: no budget)\n"
		"  --min-cache S     dsm.min_cache of the generated cluster (default 2M)\n",
		MAX_THREADS);
	tool_net_usage(f, "tcp|rdma");
	fprintf(f, "  --help            this text\n");
}

int main(int argc, char **argv)
{
	struct opts o = { .processes = 4, .threads = 2, .iterations = 20000, .seed = 1,
			  .counter_pages = 16 };
	static const struct option lo[] = {
		{ "config", required_argument, 0, 'c' },    { "node", required_argument, 0, 'n' },
		{ "vm", required_argument, 0, 'v' },        { "processes", required_argument, 0, 'p' },
		{ "threads", required_argument, 0, 't' },   { "iterations", required_argument, 0, 'i' },
		{ "seed", required_argument, 0, 's' },      { "result-dir", required_argument, 0, 'r' },
		{ "counter-pages", required_argument, 0, 'k' },
		{ "min-hold-us", required_argument, 0, 'm' },
		{ "node-memory", required_argument, 0, 'b' },
		{ "min-cache", required_argument, 0, 'C' },
		TOOL_NET_LONG_OPTIONS,
		{ "help", no_argument, 0, 'h' },            { 0, 0, 0, 0 },
	};
	tool_net_init(&o.net);
	for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
		char *end = NULL;
		int rc = tool_net_option(&o.net, c, optarg, "disco-dsm-stress");
		if (rc < 0)
			return 2;
		if (rc > 0) {
			o.net_given = true;
			continue;
		}
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'n': o.node = optarg; break;
		case 'v': o.vm = optarg; break;
		case 'r': o.result_dir = optarg; break;
		case 'p': o.processes = (int)strtol(optarg, &end, 10); break;
		case 't': o.threads = (int)strtol(optarg, &end, 10); break;
		case 'i': o.iterations = strtoull(optarg, &end, 10); break;
		case 's': o.seed = strtoull(optarg, &end, 10); break;
		case 'k': o.counter_pages = (int)strtol(optarg, &end, 10); break;
		case 'm': o.min_hold_us = (unsigned)strtoul(optarg, &end, 10); break;
		case 'b': o.node_memory = optarg; break;
		case 'C': o.min_cache = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (end && *end) {
			fprintf(stderr, "disco-dsm-stress: expected a number, got \"%s\"\n", optarg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "disco-dsm-stress: unexpected argument \"%s\" (see --help)\n",
			argv[optind]);
		return 2;
	}
	if (o.threads < 1 || o.threads > MAX_THREADS || o.processes < 2 || o.processes > 16 ||
	    !o.iterations || o.counter_pages < 1 || o.counter_pages > MAX_COUNTER_PAGES) {
		fprintf(stderr, "disco-dsm-stress: --threads must be 1..%d, --processes 2..16, "
			"--iterations > 0, --counter-pages 1..%d\n", MAX_THREADS, MAX_COUNTER_PAGES);
		return 2;
	}
	/* The members read the network from the config; options saying
	 * otherwise would be silently ignored, so refuse them. */
	if (o.config && o.net_given) {
		fprintf(stderr, "disco-dsm-stress: --transport, --address and --rdma-* shape the "
			"generated cluster; with --config the file sets them\n");
		return 2;
	}
	if (o.config && (o.node_memory || o.min_cache)) {
		fprintf(stderr, "disco-dsm-stress: --node-memory and --min-cache shape the "
			"generated cluster; with --config the file sets them (vms[].node_memory, "
			"dsm.min_cache)\n");
		return 2;
	}
	counter_pages = o.counter_pages;
	if (o.node) {
		if (!o.config) {
			fprintf(stderr, "disco-dsm-stress: --node needs --config\n");
			return 2;
		}
		return run_member(&o);
	}
	if (!o.config && tool_net_check(&o.net, "disco-dsm-stress") < 0)
		return 2;
	return run_all(&o, argv[0]);
}
