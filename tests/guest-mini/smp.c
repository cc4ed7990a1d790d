/*
 * CPUs: the local APIC, the IDT, INIT/SIPI bring-up and the mailboxes
 * that hand work to other CPUs.
 *
 * Every CPU runs with interrupts disabled except inside cpu_wait(), which
 * arms a one-shot LAPIC timer (~50 ms: QEMU's APIC counts at 1 GHz) and
 * does "sti; hlt" (an interrupt that became pending while the caller
 * checked its condition is taken right after the sti, so no wake-up is
 * lost) and "cli" again. Handlers therefore run only there.
 *
 * Under disco the APs live on other nodes: the INIT, the SIPIs and every
 * IPI below go through disco's cross-node interrupt routing, and the
 * mailboxes (one page per CPU) are DSM pages written on one node and read
 * on another.
 */
#include "mini.h"

#define LAPIC ((volatile uint32_t *)0xfee00000ull) /* mapped uncached by paging.c */
#define R_ID (0x20 / 4)
#define R_TPR (0x80 / 4)
#define R_EOI (0xb0 / 4)
#define R_SVR (0xf0 / 4)
#define R_ISR (0x100 / 4)
#define R_ICR_LO (0x300 / 4)
#define R_ICR_HI (0x310 / 4)
#define R_LVT_TIMER (0x320 / 4)
#define R_LVT_LINT0 (0x350 / 4)
#define R_TIMER_INIT (0x380 / 4)
#define R_TIMER_DIV (0x3e0 / 4)
#define ICR_BUSY (1u << 12)
#define ICR_ASSERT (1u << 14)
#define ICR_LEVEL (1u << 15)
#define DM_INIT (5u << 8)
#define DM_SIPI (6u << 8)
#define TRAMPOLINE 0x8000ull
#define STACK_SIZE 16384
#define WAIT_TICK 50000000u /* LAPIC timer counts: 50 ms at QEMU's 1 GHz */

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t ist, attr;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));

struct frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax, rbx;
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

struct mailbox {
	volatile uint32_t seq, done;
	cpu_fn fn;
	void *arg;
} __attribute__((aligned(4096)));

static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed)) idt_ptr;
static irq_handler handlers[256];
static struct mailbox mailbox[MAX_CPUS];
static uint32_t mailbox_gen[MAX_CPUS]; /* BSP only */
static uint8_t ap_stacks[MAX_CPUS][STACK_SIZE] __attribute__((aligned(4096)));
static int8_t apic_to_cpu[256];

extern char isr_stubs[], ap_trampoline[], ap_trampoline_end[];
extern uint32_t ap_boot_index;
extern uint64_t ap_boot_stack;
void ap_main(uint32_t index);
void isr_dispatch(struct frame *f);
void mini_crash(void) __attribute__((noreturn)); /* main.c */

int this_cpu(void)
{
	return apic_to_cpu[LAPIC[R_ID] >> 24];
}

void lapic_eoi(void)
{
	LAPIC[R_EOI] = 0;
}

static bool icr_wait(void)
{
	for (int i = 0; i < 1000000; i++) {
		if (!(LAPIC[R_ICR_LO] & ICR_BUSY))
			return true;
		cpu_relax();
	}
	return false;
}

static bool icr_send(uint8_t apic_id, uint32_t low)
{
	if (!icr_wait())
		return false;
	LAPIC[R_ICR_HI] = (uint32_t)apic_id << 24;
	LAPIC[R_ICR_LO] = low;
	return true;
}

bool ipi_send(int cpu, uint8_t vector)
{
	return icr_send(boot.cpu[cpu].apic_id, ICR_ASSERT | vector);
}

void irq_register(uint8_t vector, irq_handler h)
{
	handlers[vector] = h;
}

void lapic_drain_isr(void)
{
	for (int n = 0; n < 256; n++) {
		bool any = false;

		for (int i = 0; i < 8; i++)
			any |= LAPIC[R_ISR + 4 * i] != 0;
		if (!any)
			return;
		lapic_eoi();
	}
}

void cpu_wait(void)
{
	LAPIC[R_TIMER_INIT] = WAIT_TICK;
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}

static const char *const exception_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?", "#TS", "#NP", "#SS",
	"#GP", "#PF", "?", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void isr_dispatch(struct frame *f)
{
	uint64_t v = f->vector;

	if (v < 32) {
		uint64_t cr2;

		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		printk("mini: exception %s (vector %lu) on cpu %d at rip=%lx error=%lx cr2=%lx\n",
		       exception_names[v] ? exception_names[v] : "?", v, this_cpu(), f->rip, f->error,
		       cr2);
		mini_crash();
	}
	if (handlers[v]) {
		handlers[v](); /* it sends the EOI itself (or, in a -DBREAK build, may not) */
		return;
	}
	if (v != VEC_SPURIOUS)
		lapic_eoi();
}

static void idt_init(void)
{
	for (int v = 0; v < 256; v++) {
		uint64_t a = (uint64_t)isr_stubs + 16 * v;

		idt[v] = (struct idt_gate){
			.off_lo = (uint16_t)a,
			.sel = 0x08,
			.attr = 0x8e, /* present, DPL 0, 64-bit interrupt gate */
			.off_mid = (uint16_t)(a >> 16),
			.off_hi = (uint32_t)(a >> 32),
		};
	}
	idt_ptr.limit = sizeof(idt) - 1;
	idt_ptr.base = (uint64_t)idt;
}

static void lapic_init_this_cpu(void)
{
	__asm__ volatile("lidt %0" ::"m"(idt_ptr));
	LAPIC[R_SVR] = 0x100 | VEC_SPURIOUS; /* enabled */
	LAPIC[R_TPR] = 0;
	LAPIC[R_TIMER_DIV] = 0xb; /* divide by 1 */
	LAPIC[R_LVT_TIMER] = VEC_TIMER; /* one-shot, unmasked */
	LAPIC[R_LVT_LINT0] = 1u << 16;   /* masked: no 8259 (ExtINT) interrupts */
}

/* The BSP, before anything uses interrupts. */
static void smp_init_bsp(void)
{
	/* the firmware left the PIT running through the 8259 PIC on vector 8 */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	for (int i = 0; i < 256; i++)
		apic_to_cpu[i] = -1;
	for (int i = 0; i < boot.n_cpus; i++)
		apic_to_cpu[boot.cpu[i].apic_id] = (int8_t)i;
	idt_init();
	lapic_init_this_cpu();
	boot.cpu[0].online = 1;
}

static void ap_idle(int self)
{
	struct mailbox *m = &mailbox[self];
	uint32_t done = READ_ONCE(m->done);

	for (;;) {
		uint32_t seq = READ_ONCE(m->seq);

		if (seq != done) {
			cpu_fn fn = READ_ONCE(m->fn);
			void *arg = READ_ONCE(m->arg);

			fn(arg);
			done = seq;
			WRITE_ONCE(m->done, seq);
			mfence();
			ipi_send(0, VEC_WAKE);
			continue;
		}
		cpu_wait();
	}
}

void ap_main(uint32_t index)
{
	lapic_init_this_cpu();
	WRITE_ONCE(boot.cpu[index].online, 1);
	mfence();
	ipi_send(0, VEC_WAKE);
	ap_idle((int)index);
}

static bool wait_online(int cpu, uint64_t us)
{
	uint64_t deadline = now_us() + us;

	while (!READ_ONCE(boot.cpu[cpu].online)) {
		if (now_us() > deadline)
			return false;
		cpu_wait();
	}
	return true;
}

void smp_start_aps(void)
{
	smp_init_bsp();
	memcpy(phys(TRAMPOLINE), ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
	for (int i = 1; i < boot.n_cpus; i++) {
		uint8_t apic = boot.cpu[i].apic_id;

		ap_boot_index = (uint32_t)i;
		ap_boot_stack = (uint64_t)&ap_stacks[i][STACK_SIZE];
		mfence();
		icr_send(apic, DM_INIT | ICR_ASSERT | ICR_LEVEL);
		icr_send(apic, DM_INIT | ICR_LEVEL); /* de-assert */
		udelay(10000);
		icr_send(apic, DM_SIPI | ICR_ASSERT | (TRAMPOLINE >> 12));
		/* the second SIPI of the usual sequence only if the first was lost */
		if (!wait_online(i, 200000)) {
			icr_send(apic, DM_SIPI | ICR_ASSERT | (TRAMPOLINE >> 12));
			wait_online(i, 20000000);
		}
	}
}

bool smp_run(uint64_t mask, cpu_fn fn, void *arg, uint64_t timeout_ms, uint64_t *late)
{
	uint64_t deadline = now_us() + timeout_ms * 1000, pending = 0;

	for (int i = 1; i < boot.n_cpus; i++) {
		if (!(mask >> i & 1) || !boot.cpu[i].online)
			continue;
		mailbox[i].fn = fn;
		mailbox[i].arg = arg;
		WRITE_ONCE(mailbox[i].seq, ++mailbox_gen[i]);
		mfence();
		ipi_send(i, VEC_WAKE);
		pending |= 1ull << i;
	}
	if (mask & 1)
		fn(arg);
	for (;;) {
		for (int i = 1; i < boot.n_cpus; i++)
			if ((pending >> i & 1) && READ_ONCE(mailbox[i].done) == mailbox_gen[i])
				pending &= ~(1ull << i);
		if (!pending || now_us() > deadline)
			break;
		cpu_wait();
	}
	if (late)
		*late = pending;
	return !pending;
}

int cpu_of_node(int node)
{
	for (int i = 0; i < boot.n_cpus; i++)
		if (boot.cpu[i].node == node && boot.cpu[i].online)
			return i;
	return -1;
}

int cpu_on_other_node(int cpu)
{
	for (int node = boot.n_nodes - 1; node >= 0; node--)
		if (node != boot.cpu[cpu].node && cpu_of_node(node) >= 0)
			return cpu_of_node(node);
	for (int i = 0; i < boot.n_cpus; i++)
		if (i != cpu && boot.cpu[i].online)
			return i;
	return -1;
}
