/*
 * ramwalk: a pattern over all free guest RAM (every e820 RAM range minus
 * the first 64 KiB and this image; mini.walk_mib walks about that many
 * MiB instead, one page in every free/walk_mib, all over RAM), handed from
 * node to node. Every 8-byte word, or one every mini.walk_stride bytes
 * (a KVM that emulates each instruction makes every word cost ~10 us; a
 * stride still moves every page). One walker CPU per guest node, node 0's first:
 *   pass 0:       walker 0 writes pattern 0 into every 8-byte word;
 *   pass i (>0):  walker i checks pattern i-1 and writes pattern i;
 *   last pass:    walker 0 checks the last pattern.
 * With one node, two CPUs of it take the roles. A pattern mixes the
 * word's address and the pass, so a word that is stale, lost or landed in
 * the wrong page shows. Under disco every page of the VM crosses between
 * nodes at least twice, through every kind of home (placement numa homes
 * each node's range on that node).
 * -DBREAK: pass 0 skips the last word (of the stride) of every page.
 */
#include "mini.h"

#define MAX_REPORT 4

static struct {
	int walker[MAX_NODES + 1], n_walkers;
	uint32_t pass;
	uint64_t limit_bytes, stride, page_step, mismatches;
	uint64_t bad_addr[MAX_REPORT], bad_value[MAX_REPORT], bad_want[MAX_REPORT];
	uint32_t bad_pass[MAX_REPORT];
	uint64_t pass_ms[MAX_NODES + 2];
} run;

static inline uint64_t pattern(uint64_t addr, uint32_t pass)
{
	uint64_t x = addr * 0x9e3779b97f4a7c15ull ^ (pass + 1) * 0xd1b54a32d192ed03ull;

	return x ^ (x >> 29) ^ 0x8000000000000001ull;
}

static void walk_word(uint64_t a, uint32_t pass, bool check, bool write)
{
	volatile uint64_t *w = (volatile uint64_t *)a;

	if (check) {
		uint64_t want = pattern(a, pass - 1), got = *w;
		if (got != want) {
			uint64_t k = run.mismatches++;
			if (k < MAX_REPORT) {
				run.bad_addr[k] = a;
				run.bad_value[k] = got;
				run.bad_want[k] = want;
				run.bad_pass[k] = pass;
			}
		}
	}
#ifdef BREAK
	if (pass == 0 && (a & (PAGE_SIZE - 1)) == PAGE_SIZE - run.stride)
		return;
#endif
	if (write)
		*w = pattern(a, pass);
}

/* One pass over every run.page_step-th page of the free ranges (all of
 * them unless mini.walk_mib asks for less: then the pages walked are
 * spread over all of RAM, so every node's share is in it). */
static void walk(void *arg)
{
	uint32_t pass = run.pass;
	bool check = pass > 0, write = pass < (uint32_t)run.n_walkers;
	uint64_t t0 = now_us(), page = 0;

	for (int r = 0; r < boot.n_free; r++) {
		uint64_t base = boot.free[r].base, end = base + boot.free[r].size;

		for (uint64_t p = base & ~(PAGE_SIZE - 1); p < end; p += PAGE_SIZE, page++) {
			uint64_t from = p < base ? base : p, to = p + PAGE_SIZE > end ? end : p + PAGE_SIZE;

			if (page % run.page_step)
				continue;
			for (uint64_t a = from; a < to; a += run.stride)
				walk_word(a, pass, check, write);
		}
	}
	run.pass_ms[pass] = (now_us() - t0) / 1000;
}

bool test_ramwalk(void)
{
	uint64_t free_bytes = 0, late;
	char chain[160], times[160];
	int cn = 0, tn = 0;

	for (int i = 0; i < boot.n_free; i++)
		free_bytes += boot.free[i].size;
	run.stride = cmdline_u64("mini.walk_stride", 8);
	if (run.stride < 8 || run.stride > PAGE_SIZE || (run.stride & (run.stride - 1)))
		run.stride = 8;
	run.limit_bytes = cmdline_u64("mini.walk_mib", 0) << 20;
	if (!run.limit_bytes || run.limit_bytes > free_bytes)
		run.limit_bytes = free_bytes;
	run.page_step = free_bytes / run.limit_bytes;
	run.n_walkers = 0;
	for (int node = 0; node < boot.n_nodes; node++)
		if (cpu_of_node(node) >= 0)
			run.walker[run.n_walkers++] = cpu_of_node(node);
	if (run.n_walkers < 2 && cpu_on_other_node(0) >= 0)
		run.walker[run.n_walkers++] = cpu_on_other_node(0);
	run.walker[run.n_walkers] = run.walker[0]; /* the last check */

	for (int i = 0; i <= run.n_walkers; i++) {
		int cpu = run.walker[i];

		cn += snprintk(chain + cn, sizeof(chain) - cn, "%scpu%d(node %u)", i ? "->" : "", cpu,
			       boot.cpu[cpu].node);
		run.pass = (uint32_t)i;
		if (!test_run(1ull << cpu, walk, &late)) {
			test_result("ramwalk", false, "pass %d on cpu %d did not finish", i, cpu);
			return false;
		}
		tn += snprintk(times + tn, sizeof(times) - tn, "%s%lu", i ? "," : "", run.pass_ms[i]);
	}
	for (uint64_t k = 0; k < run.mismatches && k < MAX_REPORT; k++)
		printk("mini: ramwalk mismatch: pass %u at %lx: found %lx want %lx\n", run.bad_pass[k],
		       run.bad_addr[k], run.bad_value[k], run.bad_want[k]);
	test_result("ramwalk", !run.mismatches,
		    "mib=%lu of %lu free (1 page in %lu) stride=%lu walkers=%s mismatches=%lu pass_ms=%s",
		    free_bytes / run.page_step >> 20, free_bytes >> 20, run.page_step, run.stride,
		    chain, run.mismatches,
		    times);
	return !run.mismatches;
}
