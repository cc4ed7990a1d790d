/*
 * atomic: every CPU (every node's) increments counters that share one
 * page, at least mini.atomic_n times (default 20000) and for at least
 * mini.atomic_ms (default 200 ms, so that the CPUs really overlap even
 * when one could do its share while it holds the page):
 *   - LOCK XADD on a shared counter,
 *   - a LOCK CMPXCHG loop on a second shared counter,
 *   - a LOCK CMPXCHG16B loop adding one to both halves of a 16-byte pair
 *     (when the CPU has CX16),
 *   - LOCK INC of its own slot, and a plain increment of its own word
 *     (next to the other CPUs' words: a write lost under false sharing
 *     shows there).
 * Expected: both shared counters and both halves of the pair equal the
 * sum of the counts; every slot and plain word its CPU's count. Reported:
 * "handovers", how often a CPU's XADD found another CPU's increments
 * since its own previous one (the counter changed hands). Under
 * disco every LOCKed instruction is a host atomic on a DSM page, atomic
 * across nodes only because the DSM has one writer at a time.
 * -DBREAK: the XADD counter is incremented with a plain load and store and
 * a short pause between them, so updates are lost while the page moves.
 */
#include "mini.h"

static struct {
	volatile uint64_t xadd, cas;
	volatile uint64_t pair[2] __attribute__((aligned(16)));
	volatile uint64_t slot[MAX_CPUS];
	volatile uint64_t plain[MAX_CPUS];
	struct round_barrier start;
} shared __attribute__((aligned(4096)));

static struct {
	uint64_t n, min_us, done[MAX_CPUS], handovers[MAX_CPUS];
	bool cx16;
	uint32_t participants;
	bool start_timeout[MAX_CPUS];
} run;

static bool cas128(volatile uint64_t *p, uint64_t lo, uint64_t hi, uint64_t nlo, uint64_t nhi)
{
	bool ok;

	__asm__ volatile("lock cmpxchg16b %1; sete %0"
			 : "=q"(ok), "+m"(*(volatile __int128 *)p), "+a"(lo), "+d"(hi)
			 : "b"(nlo), "c"(nhi)
			 : "memory", "cc");
	return ok;
}

static void worker(void *arg)
{
	int self = this_cpu();
	uint64_t i, last = ~0ull, end;

	if (!round_barrier_wait(&shared.start, run.participants, 1)) {
		run.start_timeout[self] = true;
		return;
	}
	end = now_us() + run.min_us;
	for (i = 0; i < run.n || now_us() < end; i++) {
#ifdef BREAK
		uint64_t v = READ_ONCE(shared.xadd);
		for (int k = 0; k < 20; k++)
			cpu_relax();
		WRITE_ONCE(shared.xadd, v + 1);
#else
		uint64_t v = __atomic_fetch_add(&shared.xadd, 1, __ATOMIC_SEQ_CST);
#endif
		run.handovers[self] += last != ~0ull && v != last + 1;
		last = v;
		uint64_t c = READ_ONCE(shared.cas);
		while (!__atomic_compare_exchange_n(&shared.cas, &c, c + 1, false, __ATOMIC_SEQ_CST,
						    __ATOMIC_SEQ_CST))
			;
		if (run.cx16) {
			uint64_t lo = shared.pair[0], hi = shared.pair[1];
			while (!cas128(shared.pair, lo, hi, lo + 1, hi + 1)) {
				lo = shared.pair[0];
				hi = shared.pair[1];
			}
		}
		__asm__ volatile("lock incq %0" : "+m"(shared.slot[self])::"memory");
		shared.plain[self] = shared.plain[self] + 1;
	}
	run.done[self] = i;
}

bool test_atomic(void)
{
	uint32_t a, b, c, d;
	uint64_t mask = 0, late, total = 0, handovers = 0;
	int errors = 0;
	char first[160] = "";

	cpuid(1, &a, &b, &c, &d);
	/* mini.cx16=0: leave CMPXCHG16B out even if CPUID has it (a KVM that
	 * emulates instructions, as on the machine this was written on,
	 * cannot emulate it: "KVM internal error ... emulation failure") */
	run.cx16 = (c >> 13) & 1 && cmdline_u64("mini.cx16", 1);
	run.n = cmdline_u64("mini.atomic_n", 20000);
	run.min_us = cmdline_u64("mini.atomic_ms", 200) * 1000;
	mask = online_mask(&run.participants);
	if (!test_run(mask, worker, &late)) {
		test_result("atomic", false, "cpus did not finish (mask %lx)", late);
		return false;
	}
	for (int i = 0; i < boot.n_cpus; i++) {
		if (!(mask >> i & 1))
			continue;
		if (run.start_timeout[i]) {
			errors++;
			snprintk(first, sizeof(first), "cpu %d timed out at the start barrier", i);
		}
		total += run.done[i];
		handovers += run.handovers[i];
		if (shared.slot[i] != run.done[i] || shared.plain[i] != run.done[i]) {
			if (!errors++)
				snprintk(first, sizeof(first), "cpu %d: slot=%lu plain=%lu want %lu", i,
					 shared.slot[i], shared.plain[i], run.done[i]);
		}
	}
	if (shared.xadd != total || shared.cas != total ||
	    (run.cx16 && (shared.pair[0] != total || shared.pair[1] != total))) {
		if (!errors++)
			snprintk(first, sizeof(first), "xadd=%lu cas=%lu pair=%lu/%lu want %lu",
				 shared.xadd, shared.cas, shared.pair[0], shared.pair[1], total);
	}
	test_result("atomic", !errors,
		    "cpus=%u total=%lu xadd=%lu cas=%lu handovers=%lu cmpxchg16b=%s%s%s",
		    run.participants, total, shared.xadd, shared.cas, handovers,
		    run.cx16 ? "yes" : (c >> 13) & 1 ? "no (mini.cx16=0)" : "no (no CX16)", errors ? " first error: " : "", first);
	return !errors;
}
