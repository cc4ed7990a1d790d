/*
 * The mini guest: a freestanding x86-64 test kernel for disco's spanning VM
 * (README.md in this folder). No libraries: this header declares the few
 * services the files share.
 *
 * Execution model: the bootstrap processor (BSP, CPU 0, on the master)
 * runs main(); every other CPU (AP) is started with INIT/SIPI and then
 * waits in ap_idle() for work: smp_run() hands one function to a set of
 * CPUs through per-CPU mailboxes and wakes them with an IPI; they run it
 * and report back with an IPI. Waiting CPUs halt (a LAPIC timer tick every
 * ~50 ms bounds each halt), so idle vCPUs cost their host nothing. Only
 * the BSP prints (serial port I/O of other nodes is forwarded to the
 * master, one round trip per byte).
 */
#ifndef MINI_H
#define MINI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE 4096ull
#define MAX_CPUS 64
#define MAX_NODES 16
#define MAX_RANGES 32

/* vectors */
#define VEC_TIMER 0xe0    /* LAPIC timer: only ends a halt */
#define VEC_WAKE 0xe1     /* work in the mailbox, or work done */
#define VEC_PING 0xd0     /* IPI ping-pong: ping */
#define VEC_PONG 0xd1     /* IPI ping-pong: pong */
#define VEC_SPURIOUS 0xff

/* ---- boot information (main.c) ----------------------------------------- */
struct ram_range {
	uint64_t base, size;
};

struct cpu_info {
	uint8_t apic_id;
	uint8_t node;          /* guest NUMA node (SRAT proximity domain) */
	volatile uint8_t online;
};

struct boot_info {
	int n_cpus, n_nodes;
	struct cpu_info cpu[MAX_CPUS];     /* index 0 is the BSP */
	/* usable RAM (e820 type 1), and the part the RAM walk may overwrite */
	int n_ram, n_free;
	struct ram_range ram[MAX_RANGES], free[MAX_RANGES];
	uint64_t ram_bytes, mapped_top;
	/* SRAT memory ranges: which guest node each range belongs to */
	int n_mem_nodes;
	struct ram_range mem_node_range[MAX_RANGES];
	uint8_t mem_node[MAX_RANGES];
	uint16_t pm_timer_port, pm1a_cnt_port;
	uint64_t tsc_per_ms;
	uint64_t wait_limit_us;            /* mini.timeout: one wait for another CPU */
	char cmdline[512];
};
extern struct boot_info boot;

void mini_main(uint32_t mbi);

/* kernel command line: "name=value" words (main.c) */
uint64_t cmdline_u64(const char *name, uint64_t dflt);
bool cmdline_selects(const char *test);

/* ---- console (console.c) ------------------------------------------------ */
void console_putc(char c);
void printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int snprintk(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int snprintk_va(char *buf, size_t len, const char *fmt, __builtin_va_list ap);

/* ---- libc bits the compiler may call (lib.c) ----------------------------- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* ---- x86 ---------------------------------------------------------------- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void mfence(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}
static inline void serialize(void)
{
	uint32_t a, b, c, d;
	cpuid(0, &a, &b, &c, &d);
}
/* A pointer to guest-physical address @a (identity-mapped). The empty asm
 * hides the constant from the compiler, which otherwise treats addresses
 * in the first page as null-pointer arithmetic. */
static inline void *phys(uint64_t a)
{
	__asm__("" : "+r"(a));
	return (void *)a;
}
#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

/* ---- time (main.c): the TSC, calibrated against the ACPI PM timer ------- */
static inline uint64_t now_us(void) { return rdtsc() * 1000 / boot.tsc_per_ms; }
void udelay(uint64_t us);

/* ---- local APIC, interrupts, CPUs (smp.c) -------------------------------- */
int this_cpu(void);                       /* index in boot.cpu[] */
void lapic_eoi(void);
/* send a fixed IPI; false if the ICR stayed busy */
bool ipi_send(int cpu, uint8_t vector);
/* handler of a vector other than the ones smp.c owns */
typedef void (*irq_handler)(void);
void irq_register(uint8_t vector, irq_handler h);
/* clear every vector still in service (after a test that skipped EOIs) */
void lapic_drain_isr(void);
void smp_start_aps(void);                 /* INIT/SIPI every other CPU */
/* Run fn(arg) on every CPU in @mask (bit i: boot.cpu[i]) at once, the BSP
 * included if its bit is set; return when all are done or after
 * @timeout_ms (false, with the CPUs that did not finish in *late). */
typedef void (*cpu_fn)(void *arg);
bool smp_run(uint64_t mask, cpu_fn fn, void *arg, uint64_t timeout_ms, uint64_t *late);
/* halt until an interrupt (or the next timer tick) */
void cpu_wait(void);

/* A CPU of another node than @cpu (the first CPU of the last node for the
 * BSP), or another CPU of the same node if there is one node only. */
int cpu_on_other_node(int cpu);
int cpu_of_node(int node);                /* first CPU of a guest node, -1 */

/* ---- paging (paging.c) ---------------------------------------------------- */
void paging_init(void);

/* ---- ACPI (acpi.c) -------------------------------------------------------- */
int acpi_init(void);                      /* CPUs, nodes, PM ports; <0 on error */
void acpi_poweroff(void);

/* ---- tests ----------------------------------------------------------------- */
/* Each test prints exactly one "mini: <name> PASS|FAIL ..." line and
 * returns true on PASS. */
struct mini_test {
	const char *name;
	bool (*run)(void);
};
bool test_atomic(void);
bool test_spinlock(void);
bool test_mp(void);
bool test_sb(void);
bool test_ipi(void);
bool test_smc(void);
bool test_ramwalk(void);

/* shared by the two-CPU tests (tests_common.c) */
struct pair {
	int a, b;                             /* CPU indices, on different nodes */
};
struct pair test_pair(void);
/* test_pair() into *p, or false after printing "<test> FAIL needs two CPUs" */
bool test_pair_ready(const char *test, struct pair *p);
/* smp_run() of a test on @mask, bounded by mini.test_timeout */
bool test_run(uint64_t mask, cpu_fn fn, uint64_t *late);
static inline uint64_t pair_mask(struct pair p) { return 1ull << p.a | 1ull << p.b; }
/* every online CPU, and how many */
uint64_t online_mask(uint32_t *count);
/* a sense-free barrier for @n CPUs: each round uses a new @round number */
struct round_barrier {
	volatile uint32_t arrived;
	uint8_t pad[60];
};
/* Spin (no halt) until every participant reached @round; false when that
 * takes longer than boot.wait_limit_us. */
bool round_barrier_wait(struct round_barrier *b, uint32_t n, uint32_t round);
/* Spin until *p >= v; false after boot.wait_limit_us. */
bool wait_ge32(volatile uint32_t *p, uint32_t v);
/* The deadline of one wait that starts now, on this CPU's TSC. */
static inline uint64_t wait_deadline(void) { return now_us() + boot.wait_limit_us; }
void test_result(const char *name, bool pass, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
