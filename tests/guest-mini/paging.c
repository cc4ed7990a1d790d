/*
 * The final page tables: identity map of every guest-physical address
 * below the top of the e820 map (RAM, the BIOS area, ACPI tables), all
 * with 4 KiB pages, plus the local APIC page (uncached). One PML4, one
 * PDPT, a page directory per GiB and page tables from a static pool: the
 * tables themselves live in guest RAM, so under disco every vCPU's page
 * walk reads DSM pages (the first walk on another node faults them in).
 * Up to MAP_LIMIT of RAM is mapped; a larger VM has only that much tested.
 * No NX: every page is executable (the self-modifying-code test needs it).
 */
#include "mini.h"

#define MAP_LIMIT (1ull << 30)
#define PTE_P 1ull
#define PTE_W 2ull
#define PTE_PWT 8ull
#define PTE_PCD 16ull
#define LAPIC_BASE 0xfee00000ull

typedef uint64_t table[512] __attribute__((aligned(4096)));

static table pml4, pdpt, pd[4], pt_pool[MAP_LIMIT / (2ull << 20) + 1];
static int pt_used;
extern uint32_t ap_cr3;

static uint64_t *pt_for(uint64_t addr)
{
	uint64_t *dir = pd[addr >> 30];
	uint64_t *e = &dir[(addr >> 21) & 511];

	if (!(*e & PTE_P)) {
		uint64_t *t = pt_pool[pt_used++];
		*e = (uint64_t)t | PTE_P | PTE_W;
	}
	return (uint64_t *)(*e & ~0xfffull);
}

static void map_page(uint64_t addr, uint64_t flags)
{
	pt_for(addr)[(addr >> 12) & 511] = addr | PTE_P | PTE_W | flags;
}

void paging_init(void)
{
	uint64_t top = 0;

	for (int i = 0; i < boot.n_ram; i++)
		if (boot.ram[i].base + boot.ram[i].size > top)
			top = boot.ram[i].base + boot.ram[i].size;
	/* the BIOS e820 reserves the ACPI tables right after the last RAM
	 * range; map up to 1 MiB beyond it, rounded to 2 MiB */
	top = (top + (3ull << 20) - 1) & ~((2ull << 20) - 1);
	if (top > MAP_LIMIT)
		top = MAP_LIMIT;
	boot.mapped_top = top;

	pml4[0] = (uint64_t)pdpt | PTE_P | PTE_W;
	for (int g = 0; g < 4; g++)
		pdpt[g] = (uint64_t)pd[g] | PTE_P | PTE_W;
	for (uint64_t a = 0; a < top; a += PAGE_SIZE)
		map_page(a, 0);
	map_page(LAPIC_BASE, PTE_PCD | PTE_PWT);

	ap_cr3 = (uint32_t)(uint64_t)pml4;
	__asm__ volatile("mov %0, %%cr3" ::"r"((uint64_t)pml4) : "memory");
}
