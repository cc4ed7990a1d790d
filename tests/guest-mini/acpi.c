/*
 * What the mini guest learns from the firmware's ACPI tables (SeaBIOS
 * builds them from QEMU's, on the master):
 *   - MADT ("APIC"): the CPUs, by local APIC ID, in table order (the BSP
 *     first; QEMU lists CPUs by index, which is disco's vCPU order);
 *   - SRAT: each CPU's and each memory range's guest NUMA node. disco
 *     makes every cluster node's vCPUs and share of memory one guest NUMA
 *     node, so this is how the guest knows which vCPUs live on which
 *     machine. No SRAT (a single-node VM): everything is node 0;
 *   - FADT ("FACP"): the PM timer port (to calibrate the TSC) and the PM1a
 *     control port (ACPI soft power-off, S5).
 * Tables are found through the RSDP in the BIOS area and the RSDT.
 */
#include "mini.h"

struct sdt_header {
	char sig[4];
	uint32_t length;
	uint8_t revision, checksum;
	char oem[6], oem_table[8];
	uint32_t oem_rev, creator, creator_rev;
} __attribute__((packed));

static bool checksum_ok(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (n--)
		sum += *b++;
	return sum == 0;
}

static const uint8_t *find_rsdp(void)
{
	uint64_t ebda = (uint64_t)*(volatile uint16_t *)phys(0x40e) << 4;
	struct {
		uint64_t from, to;
	} areas[] = {{ebda, ebda + 1024}, {0xe0000, 0x100000}};

	for (int a = 0; a < 2; a++) {
		if (!areas[a].from)
			continue;
		for (uint64_t p = areas[a].from; p < areas[a].to; p += 16)
			if (!memcmp(phys(p), "RSD PTR ", 8) && checksum_ok(phys(p), 20))
				return phys(p);
	}
	return 0;
}

static const struct sdt_header *find_table(const struct sdt_header *rsdt, const char *sig)
{
	int n = (int)(rsdt->length - sizeof(*rsdt)) / 4;
	const uint32_t *entry = (const uint32_t *)(rsdt + 1);

	for (int i = 0; i < n; i++) {
		const struct sdt_header *t = (const void *)(uint64_t)entry[i];

		if (!memcmp(t->sig, sig, 4) && checksum_ok(t, t->length))
			return t;
	}
	return 0;
}

static int parse_madt(const struct sdt_header *madt, uint8_t bsp_apic)
{
	const uint8_t *p = (const uint8_t *)madt + 44, *end = (const uint8_t *)madt + madt->length;

	boot.n_cpus = 1; /* boot.cpu[0] is the BSP */
	boot.cpu[0].apic_id = bsp_apic;
	for (; p + 2 <= end && p[1] >= 2; p += p[1]) {
		if (p[0] != 0 || p[1] < 8 || !(p[4] & 1))
			continue; /* not an enabled processor local APIC */
		if (p[3] == bsp_apic)
			continue;
		if (boot.n_cpus == MAX_CPUS)
			return -1;
		boot.cpu[boot.n_cpus++].apic_id = p[3];
	}
	return 0;
}

static void parse_srat(const struct sdt_header *srat)
{
	const uint8_t *p = (const uint8_t *)srat + 48, *end = (const uint8_t *)srat + srat->length;

	for (; p + 2 <= end && p[1] >= 2; p += p[1]) {
		if (p[0] == 0 && p[1] >= 16 && (*(const uint32_t *)(p + 4) & 1)) {
			uint32_t node = p[2] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
					(uint32_t)p[11] << 24;

			for (int i = 0; i < boot.n_cpus; i++)
				if (boot.cpu[i].apic_id == p[3] && node < MAX_NODES)
					boot.cpu[i].node = (uint8_t)node;
		} else if (p[0] == 1 && p[1] >= 40 && (*(const uint32_t *)(p + 28) & 1) &&
			   boot.n_mem_nodes < MAX_RANGES) {
			int k = boot.n_mem_nodes++;

			boot.mem_node[k] = (uint8_t)*(const uint32_t *)(p + 2);
			boot.mem_node_range[k].base = *(const uint64_t *)(p + 8);
			boot.mem_node_range[k].size = *(const uint64_t *)(p + 16);
		}
	}
}

int acpi_init(void)
{
	const uint8_t *rsdp = find_rsdp();
	const struct sdt_header *rsdt, *madt, *srat, *fadt;
	uint8_t bsp_apic = (uint8_t)(*(volatile uint32_t *)phys(0xfee00020) >> 24);

	if (!rsdp) {
		printk("mini: no ACPI RSDP found\n");
		return -1;
	}
	rsdt = (const void *)(uint64_t) * (const uint32_t *)(rsdp + 16);
	if (memcmp(rsdt->sig, "RSDT", 4) || !checksum_ok(rsdt, rsdt->length)) {
		printk("mini: bad ACPI RSDT\n");
		return -1;
	}
	madt = find_table(rsdt, "APIC");
	if (!madt || parse_madt(madt, bsp_apic) < 0) {
		printk("mini: no usable ACPI MADT\n");
		return -1;
	}
	srat = find_table(rsdt, "SRAT");
	if (srat)
		parse_srat(srat);
	boot.n_nodes = 1;
	for (int i = 0; i < boot.n_cpus; i++)
		if (boot.cpu[i].node + 1 > boot.n_nodes)
			boot.n_nodes = boot.cpu[i].node + 1;
	fadt = find_table(rsdt, "FACP");
	if (fadt && fadt->length >= 80) {
		boot.pm1a_cnt_port = (uint16_t) * (const uint32_t *)((const uint8_t *)fadt + 64);
		boot.pm_timer_port = (uint16_t) * (const uint32_t *)((const uint8_t *)fadt + 76);
	}
	return 0;
}

/* S5 through PM1a_CNT: SLP_TYP 0 (QEMU's PIIX4 soft-off) with SLP_EN. */
void acpi_poweroff(void)
{
	if (boot.pm1a_cnt_port)
		outw(boot.pm1a_cnt_port, 1 << 13);
}
