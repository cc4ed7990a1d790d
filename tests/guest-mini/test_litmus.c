/*
 * Two x86-TSO litmus tests between a CPU of the master's node (A) and one
 * of another node (B), mini.litmus_n rounds each (default 500). Every
 * variable is alone in its page, so under disco each one is a separate
 * DSM page and the protocol alone has to keep the order the fences ask.
 * Round r writes the value r, so no variable needs resetting between
 * rounds.
 *
 * mp (message passing): A writes data = r, MFENCE, flag = r; B waits for
 * flag == r, MFENCE, reads data. Forbidden: data < r. B acknowledges the
 * round before A starts the next one.
 * -DBREAK: A publishes flag = r first and writes data only after B has
 * read it, i.e. the two stores in the wrong order.
 *
 * sb (store buffering): both start the round together (a barrier); A
 * writes x = r, MFENCE, reads y; B writes y = r, MFENCE, reads x.
 * Forbidden: both read an older value (x86 allows that only without the
 * fences). The other outcomes are counted for information.
 * -DBREAK: each CPU reads before its store becomes visible (it stores
 * only once the other one has read), the reordering MFENCE forbids.
 */
#include "mini.h"

#define MAX_ROUNDS 8192

struct page32 {
	volatile uint32_t v;
} __attribute__((aligned(4096)));

static struct page32 x, y, data, flag, ack;
#ifdef BREAK
static struct page32 loaded[2];
#endif
static struct round_barrier sb_barrier __attribute__((aligned(4096)));
static uint32_t seen[2][MAX_ROUNDS + 1];

static struct {
	struct pair p;
	uint32_t rounds, forbidden, timeouts, base;
	uint32_t first_bad;
} run;

static uint32_t rounds(void)
{
	uint64_t n = cmdline_u64("mini.litmus_n", 500);

	return n > MAX_ROUNDS ? MAX_ROUNDS : (uint32_t)n;
}

/* ---- mp ---------------------------------------------------------------- */

static void mp_worker(void *arg)
{
	bool writer = this_cpu() == run.p.a;

	for (uint32_t r = run.base + 1; r <= run.base + run.rounds; r++) {
		if (writer) {
			if (!wait_ge32(&ack.v, r - 1))
				goto timeout;
#ifdef BREAK
			WRITE_ONCE(flag.v, r);
			if (!wait_ge32(&ack.v, r))
				goto timeout;
			WRITE_ONCE(data.v, r);
#else
			WRITE_ONCE(data.v, r);
			mfence();
			WRITE_ONCE(flag.v, r);
#endif
		} else {
			if (!wait_ge32(&flag.v, r))
				goto timeout;
			mfence();
			uint32_t d = READ_ONCE(data.v);
			if (d < r && !run.forbidden++)
				run.first_bad = r;
			WRITE_ONCE(ack.v, r);
		}
	}
	return;
timeout:
	__atomic_fetch_add(&run.timeouts, 1, __ATOMIC_SEQ_CST);
}

bool test_mp(void)
{
	uint64_t late;

	if (!test_pair_ready("mp", &run.p))
		return false;
	run.rounds = rounds();
	run.forbidden = run.timeouts = 0;
	run.base = flag.v; /* rounds continue from a previous run's values */
	bool done = test_run(pair_mask(run.p), mp_worker, &late);
	bool ok = done && !run.forbidden && !run.timeouts;

	test_result("mp", ok, "cpus=%d(node %u),%d(node %u) rounds=%u forbidden=%u%s timeouts=%u%s",
		    run.p.a, boot.cpu[run.p.a].node, run.p.b, boot.cpu[run.p.b].node, run.rounds,
		    run.forbidden, run.forbidden ? " (flag seen before its data)" : "", run.timeouts,
		    done ? "" : " (cpus did not finish)");
	return ok;
}

/* ---- sb ---------------------------------------------------------------- */

static void sb_worker(void *arg)
{
	int me = this_cpu() == run.p.a ? 0 : 1;
	volatile uint32_t *mine = me ? &y.v : &x.v, *other = me ? &x.v : &y.v;

	for (uint32_t i = 1; i <= run.rounds; i++) {
		uint32_t r = run.base + i;

		if (!round_barrier_wait(&sb_barrier, 2, r))
			goto timeout;
#ifdef BREAK
		seen[me][i] = READ_ONCE(*other);
		WRITE_ONCE(loaded[me].v, r);
		if (!wait_ge32(&loaded[!me].v, r))
			goto timeout;
		WRITE_ONCE(*mine, r);
#else
		WRITE_ONCE(*mine, r);
		mfence();
		seen[me][i] = READ_ONCE(*other);
#endif
	}
	return;
timeout:
	__atomic_fetch_add(&run.timeouts, 1, __ATOMIC_SEQ_CST);
}

bool test_sb(void)
{
	uint64_t late;
	uint32_t both_new = 0, a_old = 0, b_old = 0;

	if (!test_pair_ready("sb", &run.p))
		return false;
	run.rounds = rounds();
	run.forbidden = run.timeouts = 0;
	run.base = sb_barrier.arrived / 2; /* the barrier counts rounds since boot */
	bool done = test_run(pair_mask(run.p), sb_worker, &late);
	for (uint32_t i = 1; i <= run.rounds; i++) {
		uint32_t r = run.base + i;
		bool ao = seen[0][i] < r, bo = seen[1][i] < r;

		if (ao && bo) {
			if (!run.forbidden++)
				run.first_bad = i;
		} else if (ao) {
			a_old++;
		} else if (bo) {
			b_old++;
		} else {
			both_new++;
		}
	}
	bool ok = done && !run.forbidden && !run.timeouts;

	test_result("sb", ok,
		    "cpus=%d(node %u),%d(node %u) rounds=%u forbidden=%u%s timeouts=%u outcomes: both_new=%u a_old=%u b_old=%u%s",
		    run.p.a, boot.cpu[run.p.a].node, run.p.b, boot.cpu[run.p.b].node, run.rounds,
		    run.forbidden, run.forbidden ? " (both read the old value)" : "", run.timeouts,
		    both_new, a_old, b_old, done ? "" : " (cpus did not finish)");
	return ok;
}
