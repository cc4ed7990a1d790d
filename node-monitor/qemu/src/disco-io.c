// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * I/O forwarding. Every device lives on the master; a vCPU on another
 * node that reads or writes a port or an MMIO address (anything but its
 * own local APIC) sends a VmIo request to the master and sleeps until the
 * reply (rpc/call.h: a futex in a slot, woken by the DSM loop thread). The
 * master performs the access on its own address spaces under the BQL,
 * from the inbox bottom half, so it resolves exactly as for its own vCPUs
 * (BARs, PAM and SMRAM are programmed there) and in order with the
 * interrupts the same node sent.
 *
 * How accesses get here: no hook in the accelerators. At machine-init-done
 * a non-master covers, in its own memory map, everything that is not RAM
 * (or ROM) and not the local APIC with "forwarding windows": I/O memory
 * regions whose ops send the access to the master, laid over the devices
 * at a priority above all of them (as hw/remote/proxy.c stands in for a
 * device that lives in another process, but for the whole map rather than
 * one device's BARs). One window covers the whole port space. TCG's MMIO
 * and port helpers and KVM's I/O exits then reach the windows through
 * QEMU's ordinary dispatch. The local devices stay realized (same QOM tree,
 * RAM blocks and BAR sizes as the master) but nothing reaches them; their
 * coalesced-I/O zones and ioeventfds disappear from KVM with them, since
 * KVM registers those from the flattened map.
 *
 * The windows are laid once: which ranges are RAM does not change on a
 * non-master (its BARs are never programmed, since PCI configuration goes
 * to the master too; the PAM window 0xc0000-0xfffff is ROM or RAM in every
 * PAM state).
 *
 * QEMU dispatches I/O with the BQL held. A vCPU waiting for the master
 * must not hold it (its own main loop applies the inbox and stops vCPUs
 * under it), so the wait drops it and takes it back, as hw/remote's
 * mpqemu_msg_send_and_await_reply() does. Once the VM is shutting down,
 * pending and new requests complete at once with all-ones, so vCPUs can
 * stop.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/error-report.h"
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include "qemu/bswap.h"
#include "hw/i386/apic_internal.h"

#include "disco-internal.h"
#include "vm.pb-c.h"

#define DISCO_IO_SPACE_MEMORY 0
#define DISCO_IO_SPACE_PORT 1
/* Above every device region in the system memory and I/O roots (they use
 * 0 and -1), below the local APIC's 0x1000, which no window covers anyway. */
#define DISCO_IO_WINDOW_PRIORITY 0x800

/* One forwarding window: [base, base + size) of address space @space. */
struct disco_io_window {
    MemoryRegion mr;
    uint32_t space;
    uint64_t base;
};

/* Any thread but the DSM loop's (which delivers the reply), with or
 * without the BQL. A read's result is all-ones if the VM stops first. */
static void disco_io_forward(uint32_t space, uint64_t addr, uint64_t *val, unsigned size,
                             bool is_write)
{
    Disco__VmIo m = DISCO__VM_IO__INIT;
    struct rpc_call_result res; /* ~4 KiB on the vCPU thread's stack */
    Disco__VmIo *reply;
    uint8_t buf[64];
    bool bql = qemu_mutex_iothread_locked();
    uint64_t id;
    int rc;

    if (!is_write) {
        *val = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
    }
    if (qatomic_read(&disco.shutting_down)) {
        return;
    }
    if (rpc_call_begin(disco_calls(), &id) < 0) {
        disco_die("more than 256 I/O requests in flight");
    }
    m.id = id;
    m.space = space;
    m.addr = addr;
    m.size = size;
    m.is_write = is_write;
    m.data = is_write ? *val : 0;
    if (bql) {
        qemu_mutex_unlock_iothread();
    }
    rc = disco_send(disco.master, DISCO_MSG_IO_REQ, buf, disco__vm_io__pack(&m, buf));
    if (rc < 0) {
        rpc_call_cancel(disco_calls(), id);
    } else {
        rc = rpc_call_wait(disco_calls(), id, -1, &res);
    }
    if (bql) {
        qemu_mutex_lock_iothread();
    }
    if (rc < 0) {
        return; /* the master is gone (the peer-lost path stops the VM) or the VM stops */
    }
    qatomic_inc(&disco.n.io_forwarded);
    if (!is_write) {
        reply = disco__vm_io__unpack(NULL, res.len, res.data);
        if (!reply) {
            disco_die("undecodable I/O reply from the master");
        }
        *val = reply->data;
        disco__vm_io__free_unpacked(reply, NULL);
    }
}

static uint64_t disco_io_window_read(void *opaque, hwaddr addr, unsigned size)
{
    struct disco_io_window *w = opaque;
    uint64_t val;

    disco_io_forward(w->space, w->base + addr, &val, size, false);
    return val;
}

static void disco_io_window_write(void *opaque, hwaddr addr, uint64_t val, unsigned size)
{
    struct disco_io_window *w = opaque;

    disco_io_forward(w->space, w->base + addr, &val, size, true);
}

/* Accesses of 1 to 8 bytes pass through as the vCPU made them: the value
 * travels as a number, and the master stores it little-endian into the
 * buffer it dispatches (the guest is x86). */
static const MemoryRegionOps disco_io_window_ops = {
    .read = disco_io_window_read,
    .write = disco_io_window_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
    .impl = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
};

/* [@base, @end) of @root; @end 0 stands for 2^64. */
static void disco_io_add_window(MemoryRegion *root, uint32_t space, uint64_t base,
                                uint64_t end)
{
    struct disco_io_window *w = g_new0(struct disco_io_window, 1);

    w->space = space;
    w->base = base;
    /* a size of UINT64_MAX is QEMU's way of saying 2^64 */
    memory_region_init_io(&w->mr, NULL, &disco_io_window_ops, w,
                          space == DISCO_IO_SPACE_PORT ? "disco-forward-io" : "disco-forward-mmio",
                          end || base ? end - base : UINT64_MAX);
    memory_region_add_subregion_overlap(root, base, &w->mr, DISCO_IO_WINDOW_PRIORITY);
}

/* Ranges of the memory map that stay local, in address order: RAM (and
 * ROM) and the local APIC. */
struct disco_io_local_ranges {
    GArray *start, *end; /* uint64_t each; end is exclusive, 0 for 2^64 */
};

static bool disco_io_note_range(Int128 start, Int128 len, const MemoryRegion *mr,
                                hwaddr offset_in_region, void *opaque)
{
    struct disco_io_local_ranges *l = opaque;
    Int128 end = int128_add(start, len);
    uint64_t s = int128_get64(start);
    uint64_t e = int128_eq(end, int128_2_64()) ? 0 : int128_get64(end);

    if (memory_region_is_ram((MemoryRegion *)mr) ||
        (mr->owner && object_dynamic_cast(mr->owner, TYPE_APIC_COMMON))) {
        if (l->start->len && g_array_index(l->end, uint64_t, l->end->len - 1) == s) {
            g_array_index(l->end, uint64_t, l->end->len - 1) = e; /* adjacent: merge */
        } else {
            g_array_append_val(l->start, s);
            g_array_append_val(l->end, e);
        }
    }
    return false;
}

void disco_io_init_done(void)
{
    struct disco_io_local_ranges l = {
        .start = g_array_new(false, false, sizeof(uint64_t)),
        .end = g_array_new(false, false, sizeof(uint64_t)),
    };
    uint64_t next = 0;
    int windows = 0;

    if (!disco_is(DISCO_NONMASTER)) {
        return;
    }
    WITH_RCU_READ_LOCK_GUARD() {
        flatview_for_each_range(address_space_to_flatview(&address_space_memory),
                                disco_io_note_range, &l);
    }
    memory_region_transaction_begin();
    for (guint i = 0; i < l.start->len; i++) {
        uint64_t s = g_array_index(l.start, uint64_t, i);

        if (s > next) {
            disco_io_add_window(get_system_memory(), DISCO_IO_SPACE_MEMORY, next, s);
            windows++;
        }
        next = g_array_index(l.end, uint64_t, i);
        if (!next) {
            break; /* a local range runs to the top of the address space */
        }
    }
    if (next || !l.start->len) {
        disco_io_add_window(get_system_memory(), DISCO_IO_SPACE_MEMORY, next, 0);
        windows++;
    }
    disco_io_add_window(get_system_io(), DISCO_IO_SPACE_PORT, 0,
                        memory_region_size(get_system_io()));
    memory_region_transaction_commit();
    g_array_free(l.start, true);
    g_array_free(l.end, true);
    info_report("disco %s: %d MMIO windows and the port space forward to the master",
                disco_node_name(disco.self), windows);
}

void disco_io_serve(int peer, const uint8_t *body, size_t len)
{
    Disco__VmIo *m = disco__vm_io__unpack(NULL, len, body);
    Disco__VmIo r = DISCO__VM_IO__INIT;
    AddressSpace *as;
    uint8_t data[8], buf[64];

    if (!m || m->space > DISCO_IO_SPACE_PORT || !m->size || m->size > 8 ||
        (m->size & (m->size - 1))) {
        disco_die("bad I/O request from node %s", disco_node_name(peer));
    }
    as = m->space == DISCO_IO_SPACE_PORT ? &address_space_io : &address_space_memory;
    stn_le_p(data, m->size, m->data);
    r.result = address_space_rw(as, m->addr, MEMTXATTRS_UNSPECIFIED, data, m->size,
                                m->is_write);
    r.id = m->id;
    r.data = m->is_write ? 0 : ldn_le_p(data, m->size);
    disco_send(peer, DISCO_MSG_IO_REPLY, buf, disco__vm_io__pack(&r, buf));
    qatomic_inc(&disco.n.io_served);
    disco__vm_io__free_unpacked(m, NULL);
}

/* DSM loop thread: wake the vCPU waiting for this reply. */
void disco_io_complete(const uint8_t *body, size_t len)
{
    Disco__VmIo *m = disco__vm_io__unpack(NULL, len, body);

    if (!m) {
        disco_die("undecodable I/O reply from the master");
    }
    rpc_call_complete(disco_calls(), m->id, body, len); /* -ENOENT: its waiter is gone */
    disco__vm_io__free_unpacked(m, NULL);
}
