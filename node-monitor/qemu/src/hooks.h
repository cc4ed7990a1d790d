// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The calls the patched QEMU core makes into disco (node-monitor/qemu/
 * patches/ adds one call per hook point; the logic lives in this folder).
 * Every hook is a cheap no-op unless a `-object disco,...` made this QEMU
 * process one node of a spanning VM; then:
 *
 *   - vCPUs of other nodes exist here but are parked (never run);
 *   - interrupts for them are sent to their node (disco-irq.c);
 *   - port and memory-mapped I/O of a non-master goes to the master, which
 *     owns every device (disco-io.c: memory regions laid over the
 *     non-master's devices at machine-init-done, so this needs no hook);
 *   - chipset routing, guest time and shutdown are kept alike on every
 *     node, and a reset on any node resets all of them (disco-machine.c);
 *     guest RAM is a DSM region (disco-ram.c).
 *
 * Threads: the hooks run on vCPU threads (APIC writes, TSC, translation)
 * or the main loop thread, with or without the BQL as the QEMU call site
 * has it; each says what it needs. None blocks while holding the BQL
 * except the reset and cleanup hooks, which wait for the other nodes and
 * say how they keep serving them meanwhile.
 */
#ifndef DISCO_QEMU_HOOKS_H
#define DISCO_QEMU_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * What this process is. Set once by the disco object's complete(), while
 * the command line is processed (before any vCPU thread exists), and never
 * changed afterwards: reading it needs no lock or barrier.
 */
enum {
    DISCO_MASTER = 1 << 0,    /* the node of a spanning VM that owns the devices */
    DISCO_NONMASTER = 1 << 1, /* any other node of it */
    DISCO_NODE = DISCO_MASTER | DISCO_NONMASTER,
};
extern unsigned disco_role;   /* 0: plain QEMU, and every hook is a no-op */

/* The one guard of every hook: is this process one of @roles? Each hook
 * tests it once, in its own body; only a call site that chooses between
 * disco's value and QEMU's own tests it itself (cpu_get_tsc: disco_tsc). */
static inline bool disco_is(unsigned roles)
{
    return disco_role & roles;
}

/* Interrupts (hw/intc/apic.c), under the BQL. @mask is the 8-word APIC-ID
 * bitmap apic.c computed; bits of vCPUs on other nodes are sent there and
 * cleared (LOWPRI is first narrowed to the one target apic.c would pick). */
void disco_apic_route(uint32_t *mask, uint8_t delivery_mode, uint8_t vector,
                      uint8_t trigger_mode);
/* A local vCPU changed its APIC ID, LDR or DFR: tell every node. */
void disco_apic_addressing_changed(void *apic_common_state);
/* EOI of a level-triggered vector: true if sent to the master instead of
 * the local (device-less) IOAPIC. */
bool disco_apic_eoi(int vector);
/* Non-masters have no programmed PIC: its output must reach no vCPU. */
static inline bool disco_pic_ignored(void) { return disco_is(DISCO_NONMASTER); }

/* i440FX PAM/SMRAM registers changed on the master (BQL held). */
void disco_chipset_changed(const uint8_t *pam, unsigned n_pam, uint8_t smram);

/* TCG translation (accel/tcg/translate-all.c tb_gen_code), vCPU thread:
 * a snapshot of the drop generations of the page at @ram_addr before
 * translating; afterwards, true if a page the new TB was read from was
 * dropped meanwhile (another node rewrote it), so the TB may hold the old
 * bytes and must be thrown away. @ram_addr1 is -1 for a one-page TB. */
uint64_t disco_tb_generation(uint64_t ram_addr);
bool disco_tb_stale(uint64_t snapshot, uint64_t ram_addr0, uint64_t ram_addr1);

/* A device maps @len bytes at @offset of guest RAM block @ram_block (a
 * RAMBlock *) to read them, or to write them if @is_write
 * (softmmu/physmem.c address_space_map: the DMA of virtio-blk and
 * virtio-net, on whichever thread serves the device, with or without the
 * BQL). The DSM fetches the pages this node lacks ahead, all at once, so
 * that the device's accesses do not wait for them one after the other
 * (disco-ram.c, dsm/prefetch.c). Never blocks. */
void disco_dma_map(void *ram_block, uint64_t offset, uint64_t len, bool is_write);

/* TCG's TSC on a node (disco_is(DISCO_NODE)): derived from the shared
 * virtual clock on every node. */
uint64_t disco_tsc(void);

/* A guest reset (main loop, BQL held, this node's vCPUs paused): on the
 * node that asked, tell every node; then wait until every node's vCPUs
 * are stopped (serving forwarded I/O meanwhile, so a non-master's vCPU
 * stuck in a port access can stop). @cause is QEMU's ShutdownCause. */
void disco_reset_begin(int cause);
/* After this node reset its machine: wait until every node did, so no
 * vCPU runs (and sends an INIT or SIPI) into a node not yet reset. */
void disco_reset_end(void);

/* End of qemu_cleanup(): wait for every node to stop its vCPUs, print the
 * statistics, and exit with the VM's status. */
void disco_cleanup(void);

#endif
