// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Interrupts across nodes. apic.c computes, as always, the APIC-ID bitmap
 * of an IPI, MSI or IOAPIC interrupt; disco_apic_route() then sends the
 * bits of vCPUs living on other nodes to those nodes (one VmIpi per node)
 * and leaves only local bits for apic.c to deliver. The receiver delivers
 * them under the BQL through apic_disco_deliver() (patched into apic.c),
 * in the order they were sent.
 *
 * Destinations are resolved against each node's copy of every APIC's
 * addressing state (ID, LDR, DFR), so a local vCPU's writes to those are
 * broadcast. EOIs of level-triggered interrupts go to the master, whose
 * IOAPIC raised them.
 */
#include "qemu/osdep.h"
#include "hw/core/cpu.h"
#include "hw/i386/apic_internal.h"
#include "hw/i386/ioapic.h"
#include "cpu.h"

#include "disco-internal.h"
#include "vm.pb-c.h"

#define DISCO_APIC_WORDS 8

void disco_irq_init(void)
{
    CPUState *cs;

    for (int i = 0; i < ARRAY_SIZE(disco.apic_owner); i++) {
        disco.apic_owner[i] = -1;
    }
    CPU_FOREACH(cs) {
        APICCommonState *s = APIC_COMMON(X86_CPU(cs)->apic_state);
        int node = disco_vcpu_node(cs->cpu_index);

        if (s) { /* ids are 8-bit: always inside apic_owner */
            disco.apic_owner[s->id] = node;
        }
    }
}

static void send_ipi(int node, const uint32_t *mask, uint8_t mode, uint8_t vector,
                     uint8_t trigger)
{
    Disco__VmIpi m = DISCO__VM_IPI__INIT;
    uint32_t words[DISCO_APIC_WORDS];
    uint8_t buf[128];

    memcpy(words, mask, sizeof(words));
    m.n_apic_mask = DISCO_APIC_WORDS;
    m.apic_mask = words;
    m.delivery_mode = mode;
    m.vector = vector;
    m.trigger_mode = trigger;
    disco_send(node, DISCO_MSG_IPI, buf, disco__vm_ipi__pack(&m, buf));
    qatomic_inc(&disco.n.ipis_sent);
}

void disco_apic_route(uint32_t *mask, uint8_t mode, uint8_t vector, uint8_t trigger)
{
    uint32_t per_node[CLUSTER_MAX_NODES][DISCO_APIC_WORDS];
    uint64_t nodes = 0;

    if (!disco_is(DISCO_NODE)) {
        return;
    }
    if (mode == APIC_DM_LOWPRI) {
        /* apic.c gives a lowest-priority interrupt to the first set bit */
        for (int w = 0; w < DISCO_APIC_WORDS; w++) {
            if (mask[w]) {
                uint32_t first = mask[w] & -mask[w];
                memset(mask, 0, DISCO_APIC_WORDS * sizeof(uint32_t));
                mask[w] = first;
                break;
            }
        }
    }
    for (int id = 0; id < DISCO_APIC_WORDS * 32; id++) {
        int node;

        if (!(mask[id / 32] & (1u << (id % 32)))) {
            continue;
        }
        node = disco_apic_id_remote_node(id);
        if (node < 0) {
            continue;
        }
        if (!(nodes & (1ULL << node))) {
            memset(per_node[node], 0, sizeof(per_node[node]));
            nodes |= 1ULL << node;
        }
        per_node[node][id / 32] |= 1u << (id % 32);
        mask[id / 32] &= ~(1u << (id % 32));
    }
    for (int node = 0; nodes; node++) {
        if (nodes & (1ULL << node)) {
            send_ipi(node, per_node[node], mode, vector, trigger);
            nodes &= ~(1ULL << node);
        }
    }
}

void disco_irq_apply_ipi(int peer, const uint8_t *body, size_t len)
{
    Disco__VmIpi *m = disco__vm_ipi__unpack(NULL, len, body);
    uint32_t mask[DISCO_APIC_WORDS] = { 0 };

    if (!m || m->n_apic_mask > DISCO_APIC_WORDS || m->vector > 255 || m->delivery_mode > 7) {
        disco_die("undecodable interrupt message from node %s", disco_node_name(peer));
    }
    for (size_t i = 0; i < m->n_apic_mask; i++) {
        mask[i] = m->apic_mask[i];
    }
    /* only vCPUs that live here: a stale or hostile mask must not wake
     * the parked copies of other nodes' vCPUs */
    for (int id = 0; id < DISCO_APIC_WORDS * 32; id++) {
        if (!disco_apic_id_is_local(id)) {
            mask[id / 32] &= ~(1u << (id % 32));
        }
    }
    apic_disco_deliver(mask, m->delivery_mode, m->vector, m->trigger_mode);
    qatomic_inc(&disco.n.ipis_received);
    disco__vm_ipi__free_unpacked(m, NULL);
}

void disco_apic_addressing_changed(void *opaque)
{
    APICCommonState *s = opaque;
    Disco__VmApicState m = DISCO__VM_APIC_STATE__INIT;
    uint8_t buf[64];

    if (!disco_is(DISCO_NODE) || !s->cpu) {
        return;
    }
    m.cpu = CPU(s->cpu)->cpu_index;
    m.apic_id = s->id;
    m.log_dest = s->log_dest;
    m.dest_mode = s->dest_mode;
    disco_broadcast(DISCO_MSG_APIC_STATE, buf, disco__vm_apic_state__pack(&m, buf));
}

void disco_irq_apply_apic_state(int peer, const uint8_t *body, size_t len)
{
    Disco__VmApicState *m = disco__vm_apic_state__unpack(NULL, len, body);
    CPUState *cs = m ? qemu_get_cpu(m->cpu) : NULL;
    APICCommonState *s;

    if (!cs || disco_vcpu_node(cs->cpu_index) != peer) {
        disco_die("bad APIC state message from node %s", disco_node_name(peer));
    }
    s = APIC_COMMON(X86_CPU(cs)->apic_state);
    s->id = m->apic_id;
    s->log_dest = m->log_dest;
    s->dest_mode = m->dest_mode;
    disco__vm_apic_state__free_unpacked(m, NULL);
}

bool disco_apic_eoi(int vector)
{
    Disco__VmEoi m = DISCO__VM_EOI__INIT;
    uint8_t buf[16];

    if (!disco_is(DISCO_NONMASTER)) {
        return false;
    }
    m.vector = vector;
    disco_send(disco.master, DISCO_MSG_EOI, buf, disco__vm_eoi__pack(&m, buf));
    return true;
}

void disco_irq_apply_eoi(int peer, const uint8_t *body, size_t len)
{
    Disco__VmEoi *m = disco__vm_eoi__unpack(NULL, len, body);

    if (!m || m->vector > 255) {
        disco_die("bad EOI message from node %s", disco_node_name(peer));
    }
    ioapic_eoi_broadcast(m->vector);
    disco__vm_eoi__free_unpacked(m, NULL);
}
