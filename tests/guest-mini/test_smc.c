/*
 * smc: cross-modifying code between a CPU of the master's node (A) and
 * one of another node (B). A page holds one function, "mov eax, imm32;
 * ret". The CPUs swap roles every round (mini.smc_n rounds, default 200):
 *   executor: calls the function, which must return the previous round's
 *             value (so its CPU has just run, and may have cached a
 *             translation of, the old code); says "ready"; waits for the
 *             writer; CPUID (serializing, as the x86 rules for
 *             cross-modifying code ask); calls it again: it must return
 *             this round's value;
 *   writer:   waits for "ready", writes this round's immediate, calls the
 *             function itself (must see its own write), says "done".
 * Under TCG disco has to throw away the executor node's translated code
 * when the writer's node takes the page; under KVM the page simply leaves
 * the executor's node.
 * -DBREAK: the executor does not wait for the writer.
 */
#include "mini.h"

static uint8_t code[4096] __attribute__((aligned(4096))) = {0xb8, 0, 0, 0, 0, 0xc3};

static struct {
	volatile uint32_t ready, done;
} smc_sync __attribute__((aligned(4096)));

static struct {
	struct pair p;
	uint32_t n, base, errors, stale, timeouts;
	uint32_t bad_round, bad_value, bad_want;
	int bad_cpu;
} run;

static uint32_t value(uint32_t r)
{
	return r ? (0x5eed0000u ^ (r * 2654435761u)) | 1 : 0;
}

static uint32_t call(void)
{
	return ((uint32_t(*)(void))(uintptr_t)code)();
}

static void check(uint32_t got, uint32_t want, uint32_t r, int self)
{
	if (got == want)
		return;
	if (!__atomic_fetch_add(&run.errors, 1, __ATOMIC_SEQ_CST)) {
		run.bad_round = r;
		run.bad_value = got;
		run.bad_want = want;
		run.bad_cpu = self;
	}
	if (got == value(r - 1))
		__atomic_fetch_add(&run.stale, 1, __ATOMIC_SEQ_CST);
}

static void smc_worker(void *arg)
{
	int self = this_cpu();
	bool is_a = self == run.p.a;

	for (uint32_t r = run.base + 1; r <= run.base + run.n; r++) {
		bool writer = (r & 1) == is_a; /* odd rounds: A writes */

		if (writer) {
			if (!wait_ge32(&smc_sync.ready, r))
				goto timeout;
			uint32_t v = value(r);
			__builtin_memcpy((void *)&code[1], &v, 4);
			barrier();
			check(call(), value(r), r, self);
			WRITE_ONCE(smc_sync.done, r);
		} else {
			check(call(), value(r - 1), r, self);
			WRITE_ONCE(smc_sync.ready, r);
#ifndef BREAK
			if (!wait_ge32(&smc_sync.done, r))
				goto timeout;
#endif
			serialize();
			check(call(), value(r), r, self);
			/* the next round's writer waits for "ready": keep the
			 * rounds in step even without the wait above */
			if (!wait_ge32(&smc_sync.done, r))
				goto timeout;
		}
	}
	return;
timeout:
	__atomic_fetch_add(&run.timeouts, 1, __ATOMIC_SEQ_CST);
}

bool test_smc(void)
{
	uint64_t late;

	if (!test_pair_ready("smc", &run.p))
		return false;
	run.n = (uint32_t)cmdline_u64("mini.smc_n", 200);
	run.base = smc_sync.done;
	run.n &= ~1u; /* whole pairs of rounds: the code ends as A's last write */
	bool done = test_run(pair_mask(run.p), smc_worker, &late);
	bool ok = done && !run.errors && !run.timeouts;

	if (run.errors)
		test_result("smc", false,
			    "cpus=%d(node %u),%d(node %u) rounds=%u wrong_results=%u stale=%u; first: round %u cpu %d got %x want %x%s",
			    run.p.a, boot.cpu[run.p.a].node, run.p.b, boot.cpu[run.p.b].node, run.n,
			    run.errors, run.stale, run.bad_round, run.bad_cpu, run.bad_value,
			    run.bad_want, run.bad_value == value(run.bad_round - 1) ? " (the old code)" : "");
	else
		test_result("smc", ok, "cpus=%d(node %u),%d(node %u) rounds=%u wrong_results=0 timeouts=%u%s",
			    run.p.a, boot.cpu[run.p.a].node, run.p.b, boot.cpu[run.p.b].node, run.n,
			    run.timeouts, done ? "" : " (cpus did not finish)");
	return ok;
}
