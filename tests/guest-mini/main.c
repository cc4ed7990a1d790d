/*
 * The BSP's mini_main(): multiboot information, paging, ACPI, the TSC, the
 * other CPUs, then the tests; a summary on the serial port and the end of
 * the VM.
 *
 * Output (serial, one line each):
 *   mini: boot cpus=<n> nodes=<k> ram_mib=<m> [...]
 *   mini: cpu <i> apic=<id> node=<k> online|OFFLINE
 *   mini: <test> PASS|FAIL <details>        (one per test)
 *   mini: summary tests=<n> passed=<p> failed=<f> time_ms=<t>
 *   mini: result=pass|fail
 * Then a pass powers the machine off (ACPI S5: every disco node exits 0);
 * a fail resets it (port 0xcf9), which with disco's on_reset: stop ends
 * every node with status 1. A VM that reboots instead (on_reset: reset)
 * finds the failure recorded in CMOS byte 0x7b, says so and powers off.
 *
 * Command line (after QEMU's "<kernel path>"): disco.run=a,b,c selects
 * tests (default all); mini.<knob>=<n> sets a test's size (README.md).
 */
#include "mini.h"

#define CMOS_MARK 0x7b
#define CMOS_FAILED 0xfa

struct boot_info boot;

static const struct mini_test tests[] = {
	{"atomic", test_atomic}, {"spinlock", test_spinlock}, {"mp", test_mp},
	{"sb", test_sb},         {"ipi", test_ipi},           {"smc", test_smc},
	{"ramwalk", test_ramwalk},
};

extern char __image_start[], __bss_end[];

/* ---- command line ---------------------------------------------------------- */

/* The value of word "name=value" (pointer into boot.cmdline), or 0. */
static const char *cmdline_value(const char *name)
{
	size_t n = strlen(name);

	for (const char *p = boot.cmdline; *p; p++)
		if ((p == boot.cmdline || p[-1] == ' ') && !strncmp(p, name, n) && p[n] == '=')
			return p + n + 1;
	return 0;
}

uint64_t cmdline_u64(const char *name, uint64_t dflt)
{
	const char *v = cmdline_value(name);
	uint64_t x = 0;

	if (!v || *v < '0' || *v > '9')
		return dflt;
	for (; *v >= '0' && *v <= '9'; v++)
		x = x * 10 + (uint64_t)(*v - '0');
	return x;
}

static bool list_has(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; *p && *p != ' ';) {
		if (!strncmp(p, word, n) && (p[n] == ',' || p[n] == ' ' || !p[n]))
			return true;
		while (*p && *p != ' ' && *p != ',')
			p++;
		if (*p == ',')
			p++;
	}
	return false;
}

/* disco.run=LIST (scripts/run-vm.sh --run) names the tests to run; "all",
 * no list, or a list naming none of them (run-vm.sh's default is the Linux
 * guest's "coherence,bench") runs every test. */
bool cmdline_selects(const char *test)
{
	const char *v = cmdline_value("disco.run");

	if (!v || list_has(v, "all"))
		return true;
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (list_has(v, tests[i].name))
			return list_has(v, test);
	return true;
}

/* ---- multiboot information ------------------------------------------------- */

static void add_range(struct ram_range *r, int *n, uint64_t base, uint64_t end)
{
	if (end > base && *n < MAX_RANGES)
		r[(*n)++] = (struct ram_range){base, end - base};
}

/* Usable RAM minus what the RAM walk must not overwrite: the first 64 KiB
 * (real-mode IVT, BIOS data, the AP trampoline is at 0x8000 and the
 * multiboot structures at 0x9000), and the image with the multiboot
 * command line and info the loader put right after it. */
static void free_ranges(uint64_t image_end)
{
	for (int i = 0; i < boot.n_ram; i++) {
		uint64_t b = boot.ram[i].base, e = b + boot.ram[i].size;

		if (b < 0x10000)
			b = 0x10000;
		if (b < image_end && e > (uint64_t)__image_start) {
			add_range(boot.free, &boot.n_free, b, (uint64_t)__image_start);
			b = image_end;
		}
		add_range(boot.free, &boot.n_free, b, e);
	}
}

static void read_multiboot(uint32_t mbi_addr)
{
	const uint32_t *mbi = phys(mbi_addr);
	uint64_t image_end = (uint64_t)__bss_end;

	if (mbi[0] & (1 << 2)) { /* command line */
		const char *c = phys(mbi[4]);
		size_t n = strlen(c);

		if (n >= sizeof(boot.cmdline))
			n = sizeof(boot.cmdline) - 1;
		memcpy(boot.cmdline, c, n);
		if ((uint64_t)c + n + 1 > image_end)
			image_end = (uint64_t)c + n + 1;
	}
	if (mbi[0] & (1 << 6)) { /* e820 map */
		uint64_t p = mbi[12], end = p + mbi[11];

		while (p < end) {
			const uint8_t *e = phys(p);
			uint32_t size = *(const uint32_t *)e;
			uint64_t base = *(const uint64_t *)(e + 4), len = *(const uint64_t *)(e + 12);
			uint32_t type = *(const uint32_t *)(e + 20);

			if (type == 1) {
				add_range(boot.ram, &boot.n_ram, base, base + len);
				boot.ram_bytes += len;
			}
			p += size + 4;
		}
	}
	/* the loader's own structures (command line, module list) follow
	 * the image in the same buffer: keep a page of margin */
	image_end = (image_end + 2 * PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	free_ranges(image_end);
}

/* ---- time ---------------------------------------------------------------------- */

/* TSC ticks per ms against the ACPI PM timer (3.579545 MHz, 24 bits). */
static void calibrate_tsc(void)
{
	uint32_t start, now;
	uint64_t t0, t1;
	const uint32_t ticks = 35795; /* 10 ms */

	boot.tsc_per_ms = 1000000; /* 1 GHz (disco's TCG TSC) until measured */
	if (!boot.pm_timer_port)
		return;
	start = inl(boot.pm_timer_port) & 0xffffff;
	t0 = rdtsc();
	do
		now = inl(boot.pm_timer_port) & 0xffffff;
	while (((now - start) & 0xffffff) < ticks);
	t1 = rdtsc();
	boot.tsc_per_ms = (t1 - t0) * 3579545 / ((uint64_t)((now - start) & 0xffffff) * 1000);
	if (!boot.tsc_per_ms)
		boot.tsc_per_ms = 1;
}

void udelay(uint64_t us)
{
	uint64_t end = now_us() + us;

	while (now_us() < end)
		cpu_relax();
}

/* ---- the end ------------------------------------------------------------------- */

static void cmos_write(uint8_t reg, uint8_t v)
{
	outb(0x70, reg);
	outb(0x71, v);
}

static uint8_t cmos_read(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static void __attribute__((noreturn)) finish(bool pass)
{
	if (pass) {
		acpi_poweroff();
	} else {
		cmos_write(CMOS_MARK, CMOS_FAILED);
		outb(0xcf9, 0x02);
		outb(0xcf9, 0x06); /* hard reset */
	}
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* An exception on any CPU: the run failed. The BSP ends the VM; another
 * CPU tells the BSP through `crashed` and stops. */
static volatile int crashed;
void __attribute__((noreturn)) mini_crash(void)
{
	if (this_cpu() == 0) {
		printk("mini: result=fail\n");
		finish(false);
	}
	crashed = 1;
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---- failure injection ------------------------------------------------------------- */

/* mini.crash_mmio_exec=1: a CPU of another node than the BSP calls code
 * in the local APIC's MMIO page. KVM cannot fetch instructions from MMIO
 * and stops that vCPU with an internal error ("emulation failure"): the
 * test that a failure of one node's accelerator stops the whole VM. (On
 * TCG the bytes there run as code: do not use it there.) */
static void exec_from_mmio(void *arg)
{
	((void (*)(void))phys(0xfee00800))();
}

static void crash_if_asked(void)
{
	int cpu = cpu_on_other_node(0);

	if (!cmdline_u64("mini.crash_mmio_exec", 0) || cpu < 0)
		return;
	printk("mini: cpu %d (node %u) calls code in MMIO (mini.crash_mmio_exec)\n", cpu,
	       boot.cpu[cpu].node);
	smp_run(1ull << cpu, exec_from_mmio, 0, 60000, 0);
	printk("mini: cpu %d came back from MMIO\n", cpu);
}

/* ---- main --------------------------------------------------------------------------- */

void mini_main(uint32_t mbi)
{
	int passed = 0, failed = 0, online = 0;
	uint64_t t0;

	read_multiboot(mbi);
	paging_init();
	printk("\nmini: the disco mini guest (x86-64, 4 KiB pages)\n");
	if (cmos_read(CMOS_MARK) == CMOS_FAILED) {
		cmos_write(CMOS_MARK, 0);
		printk("mini: this VM was reset after a failed run: powering off\n");
		printk("mini: result=fail\n");
		acpi_poweroff();
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	if (acpi_init() < 0) {
		printk("mini: result=fail\n");
		finish(false);
	}
	calibrate_tsc();
	boot.wait_limit_us = cmdline_u64("mini.timeout", 60) * 1000000;
	smp_start_aps();
	for (int i = 0; i < boot.n_cpus; i++) {
		online += boot.cpu[i].online;
		printk("mini: cpu %d apic=%u node=%u %s\n", i, boot.cpu[i].apic_id, boot.cpu[i].node,
		       boot.cpu[i].online ? "online" : "OFFLINE");
	}
	uint64_t free_bytes = 0;
	for (int i = 0; i < boot.n_free; i++)
		free_bytes += boot.free[i].size;
	printk("mini: boot cpus=%d online=%d nodes=%d ram_mib=%lu free_mib=%lu tsc_mhz=%lu cmdline=\"%s\"\n",
	       boot.n_cpus, online, boot.n_nodes, boot.ram_bytes >> 20, free_bytes >> 20,
	       boot.tsc_per_ms / 1000, boot.cmdline);
#ifdef BREAK
	printk("mini: built with -DBREAK: every test has a deliberate bug and must FAIL\n");
#endif
	if (online != boot.n_cpus) {
		printk("mini: smp FAIL %d of %d CPUs came up after INIT/SIPI\n", online, boot.n_cpus);
		failed++;
	}

	crash_if_asked();
	t0 = now_us();
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (!cmdline_selects(tests[i].name))
			continue;
		uint64_t t = now_us();
		bool ok = tests[i].run();

		printk("mini: %s time_ms=%lu\n", tests[i].name, (now_us() - t) / 1000);
		if (ok)
			passed++;
		else
			failed++;
		if (crashed) {
			printk("mini: a CPU took an exception: stopping\n");
			break;
		}
	}
	printk("mini: summary tests=%d passed=%d failed=%d time_ms=%lu\n", passed + failed, passed,
	       failed, (now_us() - t0) / 1000);
	printk("mini: result=%s\n", failed || !passed ? "fail" : "pass");
	finish(!failed && passed);
}
