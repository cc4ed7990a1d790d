// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * guest.h: helpers shared by the guest test programs (header only, so each
 * program is one translation unit: gcc -static -O2 -pthread prog.c).
 *
 * The programs run inside the disco guest, where each vCPU may live in a
 * different node process and guest RAM is kept coherent by the DSM. A test
 * only means something if its threads run on different vCPUs, so every
 * program starts one thread per online CPU and pins it there
 * (guest_cpus(), guest_pin()). With a single CPU the programs still run two
 * threads on that CPU, so the checks keep their shape, and say so.
 *
 * Failures are recorded with guest_fail(): the first reason is kept for the
 * final "<name>: FAIL <reason>" line; details go to stdout as they happen
 * (at most GUEST_MAX_REPORTS lines, so a broken run stays readable).
 *
 * Waiting for another thread (flags, rings): spin first, then sleep. A
 * waiter spins on the flag for GUEST_SPIN_NS, which is enough when the other
 * vCPU really runs in parallel, then sleeps in FUTEX_WAIT and is woken by
 * the publisher. Sleeping matters when the host has fewer cores than the
 * guest has busy vCPUs (several node processes on one small machine, or
 * plain TCG on a loaded host): a spinning vCPU would burn the host time the
 * vCPU it waits for needs. The publisher makes the wake-up system call only
 * when a waiter sleeps (struct guest_flag). Spinlocks always spin: that is
 * what the spinlock tests are about. Every wait has a deadline of
 * GUEST_WAIT_S seconds and is then reported as a failure instead of hanging.
 */
#ifndef DISCO_GUEST_H
#define DISCO_GUEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* sched_setaffinity, CPU_SET */
#endif

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define GUEST_PAGE 4096
#define GUEST_MAX_THREADS 256
#define GUEST_MAX_REPORTS 16
/* A wait for another thread that lasts this long is reported as a failure. */
#define GUEST_WAIT_S 60
/* Spin this long on a flag before sleeping on it; environment variable
 * DISCO_SPIN_US overrides it (on the kernel command line, DISCO_SPIN_US=N
 * reaches /init's environment and so every program). */
#define GUEST_SPIN_NS 200000u
static uint64_t guest_spin_ns = GUEST_SPIN_NS;

static const char *guest_name = "guest";
static int guest_cpu[GUEST_MAX_THREADS];
static int guest_ncpu;

static pthread_mutex_t guest_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char guest_first_reason[256];
static int guest_nfail;

static inline uint64_t guest_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double guest_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* Record a failure. The first one becomes the reason on the final line. */
__attribute__((format(printf, 1, 2))) static inline void guest_fail(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&guest_fail_lock);
	if (guest_nfail == 0)
		snprintf(guest_first_reason, sizeof guest_first_reason, "%s", buf);
	if (guest_nfail < GUEST_MAX_REPORTS)
		printf("%s: error: %s\n", guest_name, buf);
	else if (guest_nfail == GUEST_MAX_REPORTS)
		printf("%s: error: (further errors not shown)\n", guest_name);
	guest_nfail++;
	fflush(stdout);
	pthread_mutex_unlock(&guest_fail_lock);
}

static inline int guest_failures(void)
{
	pthread_mutex_lock(&guest_fail_lock);
	int n = guest_nfail;
	pthread_mutex_unlock(&guest_fail_lock);
	return n;
}

/* Print the final line and return the exit status. */
static inline int guest_finish(void)
{
	if (guest_nfail == 0) {
		printf("%s: PASS\n", guest_name);
		fflush(stdout);
		return 0;
	}
	printf("%s: FAIL %s (%d error%s)\n", guest_name, guest_first_reason, guest_nfail,
	       guest_nfail == 1 ? "" : "s");
	fflush(stdout);
	return 1;
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void guest_die(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	printf("%s: FAIL %s\n", guest_name, buf);
	fflush(stdout);
	exit(1);
}

static inline long guest_arg(const char *opt, const char *s, long min, long max);

/*
 * The CPUs this process may run on: the online CPUs when started by /init
 * (the kernel reports affinity masked with the active CPUs). Fills
 * guest_cpu[] and guest_ncpu and returns the number of threads to run: one
 * per CPU, at least two.
 */
static inline int guest_cpus(void)
{
	const char *spin = getenv("DISCO_SPIN_US");
	if (spin && *spin)
		guest_spin_ns = (uint64_t)guest_arg("DISCO_SPIN_US", spin, 0, 60000000) * 1000u;
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		guest_die("sched_getaffinity: %s", strerror(errno));
	guest_ncpu = 0;
	for (int c = 0; c < CPU_SETSIZE && guest_ncpu < GUEST_MAX_THREADS; c++)
		if (CPU_ISSET(c, &set))
			guest_cpu[guest_ncpu++] = c;
	if (guest_ncpu == 0)
		guest_die("no CPU in the affinity mask");
	printf("%s: cpus=%d [", guest_name, guest_ncpu);
	for (int i = 0; i < guest_ncpu; i++)
		printf("%s%d", i ? " " : "", guest_cpu[i]);
	printf("]%s\n", guest_ncpu == 1 ? " (one CPU: two threads share it, cross-CPU checks are weak)" : "");
	fflush(stdout);
	return guest_ncpu < 2 ? 2 : guest_ncpu;
}

/* The CPU that thread i runs on. */
static inline int guest_thread_cpu(int i)
{
	return guest_cpu[i % guest_ncpu];
}

/* Pin the calling thread to one CPU; failing to pin is a test failure. */
static inline void guest_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		guest_die("sched_setaffinity(cpu %d): %s", cpu, strerror(errno));
}

struct guest_thread {
	pthread_t tid;
	int index;		/* 0 .. nthreads-1 */
	int cpu;		/* the CPU it is pinned to */
	int nthreads;
	void *arg;		/* the test's shared state */
	void *(*fn)(struct guest_thread *);
};

/* Threads pinned so far in guest_run(); they spin until all are. */
static uint32_t guest_started;

static inline void *guest_thread_main(void *p)
{
	struct guest_thread *t = p;
	guest_pin(t->cpu);
	/*
	 * A spinning start barrier: a sleeping one would let the last thread
	 * run ahead while the others are still being woken, and a short test
	 * could then finish without any overlap between threads.
	 */
	__atomic_fetch_add(&guest_started, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&guest_started, __ATOMIC_ACQUIRE) < (uint32_t)t->nthreads)
		__builtin_ia32_pause();
	return t->fn(t);
}

/* Run fn on n threads, thread i pinned to guest_thread_cpu(i); join them.
 * The threads call fn together, once all are pinned. */
static inline void guest_run(int n, void *(*fn)(struct guest_thread *), void *arg)
{
	static struct guest_thread t[GUEST_MAX_THREADS];
	if (n < 1 || n > GUEST_MAX_THREADS)
		guest_die("%d threads (at most %d)", n, GUEST_MAX_THREADS);
	guest_started = 0;
	for (int i = 0; i < n; i++) {
		t[i] = (struct guest_thread){ .index = i, .cpu = guest_thread_cpu(i),
					     .nthreads = n, .arg = arg, .fn = fn };
		int rc = pthread_create(&t[i].tid, NULL, guest_thread_main, &t[i]);
		if (rc != 0)
			guest_die("pthread_create: %s", strerror(rc));
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i].tid, NULL);
}

/* Page-aligned, zeroed memory, not yet touched (first touch decides where a
 * page lives under the DSM). */
static inline void *guest_alloc(size_t bytes)
{
	bytes = (bytes + GUEST_PAGE - 1) & ~(size_t)(GUEST_PAGE - 1);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		guest_die("mmap %zu bytes: %s", bytes, strerror(errno));
	return p;
}

static inline void guest_relax(unsigned *spins)
{
	__builtin_ia32_pause();
	if ((++*spins & 1023) == 0)
		sched_yield();
}

static inline void guest_futex_wait(uint32_t *p, uint32_t val)
{
	struct timespec ts = { .tv_sec = 1 };	/* a safety net only */
	syscall(SYS_futex, p, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static inline void guest_futex_wake(uint32_t *p)
{
	syscall(SYS_futex, p, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}

/*
 * A 32-bit value one thread publishes and others wait for. The publisher
 * calls FUTEX_WAKE only if a waiter announced itself in sleepers: the
 * publisher's store to value and load of sleepers, and the waiter's
 * increment of sleepers and (in the kernel) load of value, are all
 * sequentially consistent, so either the publisher sees the sleeper or the
 * sleeper's FUTEX_WAIT sees the new value and returns at once.
 */
struct guest_flag {
	uint32_t value;
	uint32_t sleepers;
};

static inline void guest_flag_set(struct guest_flag *f, uint32_t v)
{
	__atomic_store_n(&f->value, v, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&f->sleepers, __ATOMIC_SEQ_CST))
		guest_futex_wake(&f->value);
}

/*
 * A doorbell: for waits on a condition rather than one value (the rings in
 * coherence.c). The waiter reads seen = value, increments sleepers,
 * re-checks its condition and only then calls guest_flag_sleep(f, seen).
 * Whoever may have made the condition true calls guest_flag_kick(f)
 * after its (release) store.
 */
static inline void guest_flag_sleep(struct guest_flag *f, uint32_t seen)
{
	guest_futex_wait(&f->value, seen);
}

static inline void guest_flag_kick(struct guest_flag *f)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&f->sleepers, __ATOMIC_SEQ_CST)) {
		__atomic_fetch_add(&f->value, 1, __ATOMIC_SEQ_CST);
		guest_futex_wake(&f->value);
	}
}

/*
 * Wait until f->value == want (acquire). Returns 0, or -1 after GUEST_WAIT_S
 * or once *abort (if not NULL) becomes non-zero.
 */
static inline int guest_flag_wait(struct guest_flag *f, uint32_t want, const uint32_t *abort)
{
	uint64_t start = 0;
	for (unsigned spins = 1;; spins++) {
		uint32_t v = __atomic_load_n(&f->value, __ATOMIC_ACQUIRE);
		if (v == want)
			return 0;
		if (spins % 64) {
			__builtin_ia32_pause();
			continue;
		}
		if (abort && __atomic_load_n(abort, __ATOMIC_RELAXED))
			return -1;
		uint64_t now = guest_now_ns();
		if (start == 0)
			start = now;
		if (now - start > (uint64_t)GUEST_WAIT_S * 1000000000u)
			return -1;
		if (now - start > guest_spin_ns) {
			__atomic_fetch_add(&f->sleepers, 1, __ATOMIC_SEQ_CST);
			guest_futex_wait(&f->value, v);
			__atomic_fetch_sub(&f->sleepers, 1, __ATOMIC_SEQ_CST);
		}
	}
}

/* splitmix64: the data patterns. */
static inline uint64_t guest_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * Test-and-set spinlock (test-and-test-and-set: spin on a plain load, then
 * exchange). Built with -DBREAK the lock is a separate load and store, which
 * does not exclude anyone: the tests using it must then fail.
 */
struct guest_spinlock {
	uint32_t locked;
};

static inline int guest_spin_trylock(struct guest_spinlock *l)
{
#ifdef BREAK
	if (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
		return 0;
	__atomic_store_n(&l->locked, 1, __ATOMIC_RELAXED);
	return 1;
#else
	return __atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) == 0;
#endif
}

/* Take the lock; give up and return -1 once deadline_ns (if not 0) passes. */
static inline int guest_spin_lock_until(struct guest_spinlock *l, uint64_t deadline_ns)
{
	unsigned spins = 0;
	while (!guest_spin_trylock(l)) {
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED)) {
			guest_relax(&spins);
			if (deadline_ns && (spins & 255) == 0 && guest_now_ns() > deadline_ns)
				return -1;
		}
	}
	return 0;
}

static inline void guest_spin_unlock(struct guest_spinlock *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

/* Print the usage and the final FAIL line; exit 2. */
__attribute__((noreturn)) static inline void guest_usage(const char *usage)
{
	printf("usage: %s\n%s: FAIL bad arguments\n", usage, guest_name);
	fflush(stdout);
	exit(2);
}

/* Parse a positive integer option value or die with the option's name. */
static inline long guest_arg(const char *opt, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || *s == '\0' || *end != '\0' || v < min || v > max)
		guest_die("bad value '%s' for %s (expected %ld..%ld)", s, opt, min, max);
	return v;
}

#endif
