/*
 * I/O forwarding. Every device lives on the master; a vCPU on another
 * node that reads or writes a port or an MMIO address (anything but its
 * own local APIC window) sends a VmIo request to the master and sleeps
 * until the reply (rpc/call.h: a futex in a slot, woken by the DSM loop
 * thread). The master performs the access on its own address spaces under
 * the BQL, from the inbox bottom half, so it resolves exactly as for its
 * own vCPUs (BARs, PAM and SMRAM are programmed there) and in order with
 * the interrupts the same node sent.
 *
 * The waiting vCPU holds no lock QEMU's main loop needs (callers drop the
 * BQL first where QEMU allows it). Once the VM is shutting down, pending
 * and new requests complete at once with all-ones, so vCPUs can stop.
 */
#include "qemu/osdep.h"
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include "qemu/bswap.h"

#include "disco-internal.h"
#include "vm.pb-c.h"

#define DISCO_IO_SPACE_MEMORY 0
#define DISCO_IO_SPACE_PORT 1
#define DISCO_APIC_WINDOW_START 0xfee00000ULL
#define DISCO_APIC_WINDOW_END 0xfef00000ULL

static bool disco_io_forward(uint32_t space, uint64_t addr, uint64_t *val, unsigned size,
                             bool is_write)
{
    Disco__VmIo m = DISCO__VM_IO__INIT;
    struct rpc_call_result res; /* ~4 KiB on the vCPU thread's stack */
    Disco__VmIo *reply;
    uint8_t buf[64];
    uint64_t id;
    int rc;

    if (!is_write) {
        *val = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
    }
    if (qatomic_read(&disco.shutting_down)) {
        return true;
    }
    if (rpc_call_begin(&disco.calls, &id) < 0) {
        disco_die("more than 256 I/O requests in flight");
    }
    m.id = id;
    m.space = space;
    m.addr = addr;
    m.size = size;
    m.is_write = is_write;
    m.data = is_write ? *val : 0;
    rc = disco_send(disco.master, DISCO_MSG_IO_REQ, buf, disco__vm_io__pack(&m, buf));
    if (rc < 0) {
        rpc_call_cancel(&disco.calls, id);
        return true; /* the master is gone: the peer-lost path stops the VM */
    }
    rc = rpc_call_wait(&disco.calls, id, -1, &res);
    qatomic_inc(&disco.n.io_forwarded);
    if (rc == 0 && !is_write) {
        reply = disco__vm_io__unpack(NULL, res.len, res.data);
        if (!reply) {
            disco_die("undecodable I/O reply from the master");
        }
        *val = reply->data;
        disco__vm_io__free_unpacked(reply, NULL);
    }
    return true;
}

bool disco_mmio_forward(uint64_t gpa, uint64_t *val, unsigned size, bool is_write)
{
    if (!disco_is(DISCO_NONMASTER) || (gpa >= DISCO_APIC_WINDOW_START && gpa < DISCO_APIC_WINDOW_END)) {
        return false;
    }
    return disco_io_forward(DISCO_IO_SPACE_MEMORY, gpa, val, size, is_write);
}

bool disco_pio_forward(uint32_t port, uint64_t *val, unsigned size, bool is_write)
{
    if (!disco_is(DISCO_NONMASTER)) {
        return false;
    }
    return disco_io_forward(DISCO_IO_SPACE_PORT, port, val, size, is_write);
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
    rpc_call_complete(&disco.calls, m->id, body, len); /* -ENOENT: its waiter is gone */
    disco__vm_io__free_unpacked(m, NULL);
}
