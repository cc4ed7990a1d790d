/*
 * What the tests share: which two CPUs a two-CPU test uses, barriers and
 * bounded waits, and the result line.
 *
 * Every wait for another CPU is bounded (mini.timeout, seconds, default
 * 60, for each wait), so a lost store or interrupt makes a test FAIL
 * instead of hanging the VM. Deadlines are local: a CPU computes its own
 * from its own TSC (wait_deadline()), because under KVM each node's QEMU
 * gives its vCPUs a TSC offset of its own.
 */
#include <stdarg.h>

#include "mini.h"

struct pair test_pair(void)
{
	struct pair p = {0, cpu_on_other_node(0)};

	return p;
}

bool test_pair_ready(const char *test, struct pair *p)
{
	*p = test_pair();
	if (p->b >= 0)
		return true;
	test_result(test, false, "needs two CPUs");
	return false;
}

bool test_run(uint64_t mask, cpu_fn fn, uint64_t *late)
{
	return smp_run(mask, fn, 0, 1000 * cmdline_u64("mini.test_timeout", 600), late);
}

uint64_t online_mask(uint32_t *count)
{
	uint64_t mask = 0;

	*count = 0;
	for (int i = 0; i < boot.n_cpus; i++)
		if (boot.cpu[i].online) {
			mask |= 1ull << i;
			(*count)++;
		}
	return mask;
}

bool round_barrier_wait(struct round_barrier *b, uint32_t n, uint32_t round)
{
	uint64_t deadline_us = wait_deadline();

	__atomic_fetch_add(&b->arrived, 1, __ATOMIC_SEQ_CST);
	while (READ_ONCE(b->arrived) < n * round) {
		if (now_us() > deadline_us)
			return false;
		cpu_relax();
	}
	return true;
}

bool wait_ge32(volatile uint32_t *p, uint32_t v)
{
	uint64_t deadline_us = wait_deadline();

	while (READ_ONCE(*p) < v) {
		if (now_us() > deadline_us)
			return false;
		cpu_relax();
	}
	return true;
}

void test_result(const char *name, bool pass, const char *fmt, ...)
{
	char details[400];
	va_list ap;

	va_start(ap, fmt);
	snprintk_va(details, sizeof(details), fmt, ap);
	va_end(ap);
	printk("mini: %s %s %s\n", name, pass ? "PASS" : "FAIL", details);
}
