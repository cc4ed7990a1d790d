/*
 * State shared by the QEMU-side files of disco. One `struct disco_node`
 * per process (the `disco` global), filled by the -object's complete()
 * (disco-object.c) and by the machine-init-done notifier (disco-ram.c).
 *
 * Threads and locks:
 *   - main loop thread (BQL): object creation, init-done, the inbox BH
 *     that applies messages from other nodes in arrival order, shutdown;
 *   - vCPU threads: send IPIs and I/O requests; wait for I/O replies on
 *     `calls` (never holding `inbox_lock`, and with the BQL dropped for
 *     the wait: QEMU dispatches I/O under it, disco-io.c);
 *   - the DSM loop thread (dsm/region.c): receives every frame, answers
 *     clock requests and I/O replies itself, and queues the rest in the
 *     inbox. It never takes the BQL: vCPUs holding it may be blocked in a
 *     page fault that only this thread can serve.
 *   `inbox_lock` is a leaf lock guarding the inbox list.
 */
#ifndef DISCO_QEMU_INTERNAL_H
#define DISCO_QEMU_INTERNAL_H

#include "qemu/osdep.h"
#include "qemu/thread.h"
#include "qemu/queue.h"
#include "block/aio.h"
#include "exec/ramblock.h"

#include "cluster-config/cluster_config.h"
#include "dsm/region.h"
#include "rpc/call.h"
#include "rpc/frame.h"
#include "rpc/session.h"

#include "hooks.h"

/* Frame types of the spanning VM (rpc/frame.h range 64..127). */
enum disco_msg {
    DISCO_MSG_IPI = RPC_MSG_VM_FIRST, /* VmIpi */
    DISCO_MSG_APIC_STATE,             /* VmApicState */
    DISCO_MSG_EOI,                    /* VmEoi */
    DISCO_MSG_IO_REQ,                 /* VmIo, to the master */
    DISCO_MSG_IO_REPLY,               /* VmIo, from the master */
    DISCO_MSG_CHIPSET,                /* VmChipset */
    DISCO_MSG_CLOCK_START,            /* VmClock: the master's clock runs */
    DISCO_MSG_CLOCK_REQ,              /* VmClock with id: what time is it? */
    DISCO_MSG_CLOCK_REPLY,            /* VmClock: the master's virtual time */
    DISCO_MSG_LIFECYCLE,              /* VmLifecycle: the VM shuts down */
};

/* A frame waiting for the main loop (applied in arrival order). */
struct disco_inbox_msg {
    QSIMPLEQ_ENTRY(disco_inbox_msg) next;
    int peer;
    uint16_t type;
    size_t len;
    uint8_t body[];
};

struct disco_counters {
    uint64_t ipis_sent, ipis_received;
    uint64_t io_forwarded, io_served;
    uint64_t tb_invalidations;
};

struct disco_node {
    /* set by the -object, immutable afterwards */
    struct cluster_config *cfg;
    const struct cluster_vm *vm;
    int vm_index, self, master;
    char *stats_path;
    int cpu_first, cpu_count;           /* this node's vCPU indices */
    int apic_owner[256];                /* APIC ID -> node, -1 if none */

    /* set at machine-init-done */
    struct rpc_session *session;        /* this node's, shared by the region and messages */
    struct dsm_region *region;
    bool joined;                        /* disco_join() returned: every node is up */
    /* guest RAM: one memory backend per guest NUMA node, in guest order */
    int n_ram;
    RAMBlock *ram[DSM_MAX_SEGMENTS];
    uint64_t ram_first_page[DSM_MAX_SEGMENTS];
    /* per DSM page: times this node's copy was dropped (atomics; read by
     * vCPU threads around translation, bumped by the DSM loop thread) */
    uint32_t *code_gen;
    uint32_t code_gen_all;              /* all drops: for a TB's 2nd page */
    /* only with -object disco-test-hooks,tb-invalidate=off: per DSM page,
     * set when the guest kernel (CPL 0) translated code from it since its
     * last invalidation */
    uint8_t *kernel_code;

    QEMUBH *inbox_bh;
    QemuMutex inbox_lock;
    QSIMPLEQ_HEAD(, disco_inbox_msg) inbox;

    /* lifecycle (main loop thread, read by the DSM loop) */
    bool shutdown_from_peer;            /* the shutdown came as a message */
    bool shutting_down;
    bool exiting;                       /* past the final barrier */
    int shutdown_cause;
    char shutdown_origin[CLUSTER_NAME_MAX];
    /* resets (main loop thread): every node counts the resets it
     * completed; they stay equal, as each reset ends at a barrier */
    uint32_t reset_generation;
    bool reset_from_peer;               /* the pending reset came as a message */
    bool resetting;                     /* between disco_reset_begin and _end */

    struct disco_counters n;            /* atomics */
};

extern struct disco_node disco;

static inline const char *disco_node_name(int node)
{
    return disco.cfg->nodes[node].name;
}

/* Test hooks (-object disco-test-hooks, disco-object.c): set before
 * machine-init-done, read-only afterwards. */
extern bool disco_test_no_tb_invalidate;

/* This node has joined the others (from the end of machine-init-done
 * on). Before, there is nobody to tell anything. */
static inline bool disco_joined(void)
{
    return disco_is(DISCO_NODE) && qatomic_read(&disco.joined);
}

/* Where vCPUs run: by QEMU's cpu_index ... */
static inline bool disco_vcpu_is_local(int cpu_index)
{
    return cpu_index >= disco.cpu_first && cpu_index < disco.cpu_first + disco.cpu_count;
}

static inline int disco_vcpu_node(int cpu_index)
{
    return cluster_vm_vcpu_node(disco.cfg, disco.vm, cpu_index);
}

/* ... and by APIC ID (0..255, as apic.c's destination masks hold them). */
static inline bool disco_apic_id_is_local(int apic_id)
{
    return disco.apic_owner[apic_id] == disco.self;
}

/* The other node that runs the vCPU with @apic_id; -1 if that vCPU is
 * local or there is none. */
static inline int disco_apic_id_remote_node(int apic_id)
{
    int node = disco.apic_owner[apic_id];

    return node == disco.self ? -1 : node;
}

/* disco-msg.c */
/* The node's session (machine-init-done, before the region exists) with
 * the VM's messages as its client; disco_join() starts it. */
void disco_session_create(void);
void disco_join(void);
int disco_send(int peer, uint16_t type, const void *body, size_t len);
void disco_broadcast(uint16_t type, const void *body, size_t len);
void disco_inbox_init(void);
/* The call table vCPUs wait on for the master's answers (I/O, clock). */
static inline struct rpc_call_table *disco_calls(void)
{
    return rpc_session_calls(disco.session);
}
/* Apply every queued message now (main loop thread, BQL held). */
void disco_inbox_drain(void);
void G_GNUC_PRINTF(1, 2) G_GNUC_NORETURN disco_die(const char *fmt, ...);

/* handlers of queued messages, main loop thread, BQL held */
void disco_irq_apply_ipi(int peer, const uint8_t *body, size_t len);
void disco_irq_apply_apic_state(int peer, const uint8_t *body, size_t len);
void disco_irq_apply_eoi(int peer, const uint8_t *body, size_t len);
void disco_io_serve(int peer, const uint8_t *body, size_t len);
void disco_machine_apply_chipset(int peer, const uint8_t *body, size_t len);
void disco_machine_apply_clock_start(int peer, const uint8_t *body, size_t len);
void disco_machine_apply_lifecycle(int peer, const uint8_t *body, size_t len);
/* handlers run on the DSM loop thread */
void disco_io_complete(const uint8_t *body, size_t len);
void disco_machine_answer_clock(int peer, const uint8_t *body, size_t len);
void disco_machine_clock_reply(const uint8_t *body, size_t len);

/* disco-irq.c */
void disco_irq_init(void);

/* disco-io.c: on a non-master, lay the forwarding windows over the
 * devices (main loop thread, BQL held, init-done, before any vCPU runs). */
void disco_io_init_done(void);

/* disco-machine.c */
void disco_machine_init_done(void);

/* disco-ram.c */
void disco_ram_init_done(void);
/* disco-numa.c: numa_distance auto: measure and set the guest's SLIT
 * (master, init-done, after the region joined). */
void disco_numa_measure(void);
void disco_ram_print_stats(void);
/* The statistics so far as "key=value" lines (malloc'd); main loop. */
char *disco_ram_counters(void);

#endif
