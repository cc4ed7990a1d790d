// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-smc: cross-modifying code. Code written on one vCPU must be what
 * another vCPU executes next, even though that vCPU has just executed the
 * previous version (so its node process holds a translation of it that
 * must be thrown away when the page changes).
 *
 * One RWX page holds "mov eax, imm32; ret" (b8 xx xx xx xx c3) at a fixed
 * offset. Two threads, A on the first online CPU and B on the last, play R
 * rounds (default 2000); the roles alternate every round (odd rounds: A
 * writes and B executes; even rounds: B writes and A executes). Round r:
 *   executor  calls the code and checks it returns k(r-1), the value of the
 *             previous round (this caches a translation of that version);
 *             then signals "ready" = r and waits for "published" = r;
 *   writer    waits for ready = r, writes the code with k(r), executes it
 *             itself (must return k(r)), publishes r with a release store;
 *   executor  executes CPUID (serializing, as the x86 cross-modifying-code
 *             rules require) and calls the code: it must return k(r).
 * Any other value fails, naming the round, the CPU and the values, and
 * whether the value is the stale previous version.
 *
 * Options: -r R. Built with -DBREAK the executor does not wait for the
 * writer, so it executes the stale version and the program must FAIL.
 */
#include "guest.h"

static long opt_rounds = 2000;

/* Always the same address, so a stale translation of it could be reused. */
#define CODE_OFFSET 64

struct smc {
	uint8_t *code;
	struct guest_flag ready __attribute__((aligned(GUEST_PAGE)));	/* executor: done with r-1 */
	struct guest_flag published __attribute__((aligned(GUEST_PAGE)));	/* writer: k(r) is in place */
	uint32_t abort __attribute__((aligned(GUEST_PAGE)));
	uint32_t rounds_done;
	int last;
};

static uint32_t k_of(uint32_t round)
{
	uint32_t k = (uint32_t)guest_mix(round);
	uint32_t prev = round ? (uint32_t)guest_mix(round - 1) : 0;
	return k == prev ? k ^ 1 : k;
}

static void serialize(void)
{
	uint32_t a = 0, b, c = 0, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d) : : "memory");
}

static uint32_t run_code(const uint8_t *p)
{
	uint32_t (*fn)(void);
	memcpy(&fn, &p, sizeof fn);
	serialize();
	return fn();
}

static void write_code(uint8_t *p, uint32_t k)
{
	p[0] = 0xb8;			/* mov eax, imm32 */
	memcpy(p + 1, &k, 4);
	p[5] = 0xc3;			/* ret */
}

static int wait_or_abort(struct smc *s, struct guest_flag *f, uint32_t want, const char *what)
{
	if (guest_flag_wait(f, want, &s->abort) == 0)
		return 0;
	if (!__atomic_exchange_n(&s->abort, 1, __ATOMIC_RELAXED))
		guest_fail("round %u: waited %ds for %s", want, GUEST_WAIT_S, what);
	return -1;
}

static void check(struct smc *s, const char *who, int cpu, uint32_t r, uint32_t want, uint32_t got)
{
	if (got == want)
		return;
	const char *why = r > 0 && got == k_of(r - 1) ? " (the previous version: stale code executed)" : "";
	guest_fail("round %u: %s on cpu %d executed code returning 0x%08x, expected 0x%08x%s",
		   r, who, cpu, got, want, why);
	if (guest_failures() >= GUEST_MAX_REPORTS)
		__atomic_store_n(&s->abort, 1, __ATOMIC_RELAXED);
}

static void *smc_thread(struct guest_thread *t)
{
	struct smc *s = t->arg;
	int me;			/* 0 = A, 1 = B */
	if (t->index == 0)
		me = 0;
	else if (t->index == s->last)
		me = 1;
	else
		return NULL;
	uint8_t *code = s->code + CODE_OFFSET;
	for (uint32_t r = 1; r <= (uint32_t)opt_rounds; r++) {
		int writer = (r & 1) ? 0 : 1;
		if (me != writer) {
			check(s, "executor (before)", t->cpu, r, k_of(r - 1), run_code(code));
			guest_flag_set(&s->ready, r);
#ifndef BREAK
			if (wait_or_abort(s, &s->published, r, "the writer"))
				return NULL;
#endif
			check(s, "executor", t->cpu, r, k_of(r), run_code(code));
			__atomic_store_n(&s->rounds_done, r, __ATOMIC_RELAXED);
		} else {
			if (wait_or_abort(s, &s->ready, r, "the executor"))
				return NULL;
			write_code(code, k_of(r));
			check(s, "writer", t->cpu, r, k_of(r), run_code(code));
			guest_flag_set(&s->published, r);
		}
	}
	return NULL;
}

static void usage(void)
{
	guest_usage("disco-smc [-r rounds] [rounds]");
}

int main(int argc, char **argv)
{
	guest_name = "smc";
	int c;
	while ((c = getopt(argc, argv, "r:h")) != -1) {
		switch (c) {
		case 'r': opt_rounds = guest_arg("-r", optarg, 1, 1L << 30); break;
		default: usage();
		}
	}
	if (argc - optind == 1)	/* a lone number: the rounds */
		opt_rounds = guest_arg("rounds", argv[optind], 1, 1L << 30);
	else if (argc != optind)
		usage();
	int n = guest_cpus();
	struct smc *s = guest_alloc(sizeof *s);
	s->last = n - 1;
	s->code = mmap(NULL, GUEST_PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->code == MAP_FAILED)
		guest_die("mmap of an RWX page: %s", strerror(errno));
	write_code(s->code + CODE_OFFSET, k_of(0));
	printf("smc: %ld rounds between cpu %d and cpu %d, roles alternate every round\n",
	       opt_rounds, guest_thread_cpu(0), guest_thread_cpu(n - 1));
	uint64_t t0 = guest_now_ns();
	guest_run(n, smc_thread, s);
	printf("smc: %u rounds done in %.0f ms\n", s->rounds_done, guest_ms(guest_now_ns() - t0));
	return guest_finish();
}
