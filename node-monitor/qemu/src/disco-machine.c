/*
 * The parts of the machine that must look the same from every node:
 *
 *  - chipset routing: the i440FX PAM/SMRAM registers are programmed on the
 *    master (by SeaBIOS); every write is replayed on the other nodes, so
 *    the BIOS shadow at 0xc0000-0xfffff is RAM (coherent) everywhere;
 *  - guest time: the master says when its virtual clock starts; each other
 *    node then sets its own virtual clock to the master's, NTP-style over
 *    a few round trips (the master answers on its DSM loop thread, so the
 *    answer does not wait for its main loop). TCG's TSC is derived from
 *    the virtual clock, so TSCs agree across nodes;
 *  - lifecycle: a shutdown (guest poweroff, reset under -no-reboot, panic,
 *    a signal, a vCPU the accelerator failed to run: QEMU's internal-error
 *    pause becomes a host-error shutdown) on any node is sent to every
 *    node; each stops its vCPUs,
 *    then all meet at a DSM barrier before they leave, so no vCPU is left
 *    waiting for a page from a node that already exited;
 *  - reset: a guest reset on any node (the master's reset ports, a triple
 *    fault on any vCPU) is sent to every node, which requests the same
 *    reset of its own copy of the machine. Each node stops its vCPUs, all
 *    meet (barrier A), each resets, all meet again (barrier B), and only
 *    then do vCPUs run: without A, a node still running could send an IPI
 *    into a machine that is about to be reset; without B, the master's BSP
 *    could send INIT/SIPI to an AP on a node that has not reset yet, and
 *    that node's reset would then wipe it. Guest RAM is left as it is (as
 *    on a real machine, a reset does not clear memory), so the DSM does
 *    nothing. While a node waits at a reset barrier with the BQL held, it
 *    keeps applying its inbox: a non-master's vCPU may be inside a port
 *    access the master must answer before that vCPU can stop.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qemu/host-utils.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "sysemu/runstate.h"
#include "sysemu/cpu-timers.h"
#include "sysemu/sysemu.h"
#include "hw/pci-host/i440fx.h"
#include "qapi/qapi-types-run-state.h"

#include "disco-internal.h"
#include "vm.pb-c.h"

#define DISCO_CLOCK_ROUNDS 5
/* Barrier ids must grow from one barrier to the next: reset n (from 0)
 * uses 2n + 1 and 2n + 2, the final one is the largest id there is. */
#define DISCO_RESET_BARRIER(generation, phase) (2 * (uint32_t)(generation) + 1 + (phase))
#define DISCO_SHUTDOWN_BARRIER UINT32_MAX
#define DISCO_SHUTDOWN_TIMEOUT_MS 10000
#define DISCO_RESET_TIMEOUT_MS 30000
#define DISCO_RESET_POLL_MS 5
#define DISCO_TSC_HZ 1000000000ULL /* TCG TSC: one tick per virtual ns */

static Notifier shutdown_notifier;

/* ---- chipset ------------------------------------------------------------ */

void disco_chipset_changed(const uint8_t *pam, unsigned n_pam, uint8_t smram)
{
    Disco__VmChipset m = DISCO__VM_CHIPSET__INIT;
    uint8_t buf[64];

    if (!disco_is(DISCO_MASTER)) {
        return;
    }
    m.pam.data = (uint8_t *)pam;
    m.pam.len = n_pam;
    m.smram = smram;
    disco_broadcast(DISCO_MSG_CHIPSET, buf, disco__vm_chipset__pack(&m, buf));
}

void disco_machine_apply_chipset(int peer, const uint8_t *body, size_t len)
{
    Disco__VmChipset *m = disco__vm_chipset__unpack(NULL, len, body);

    if (!m || peer != disco.master || m->smram > 255 ||
        i440fx_disco_apply(m->pam.data, m->pam.len, m->smram) < 0) {
        disco_die("bad chipset message from node %s", disco_node_name(peer));
    }
    disco__vm_chipset__free_unpacked(m, NULL);
}

/* ---- guest time ----------------------------------------------------------- */

uint64_t disco_tsc(void)
{
    return muldiv64(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL), DISCO_TSC_HZ,
                    NANOSECONDS_PER_SECOND);
}

static void disco_vm_state_changed(void *opaque, bool running, RunState state)
{
    Disco__VmClock m = DISCO__VM_CLOCK__INIT;
    uint8_t buf[32];

    if (!running && state == RUN_STATE_INTERNAL_ERROR && !disco.shutting_down) {
        /* QEMU only pauses a VM whose vCPU the accelerator could not run
         * (KVM: "emulation failure"...), which would leave every other
         * node waiting for this one for ever: stop the whole VM instead. */
        error_report("disco %s: a vCPU stopped on an internal error of the accelerator: "
                     "stopping the VM on every node", disco_node_name(disco.self));
        qemu_system_shutdown_request(SHUTDOWN_CAUSE_HOST_ERROR);
        return;
    }
    if (!running || !disco_is(DISCO_MASTER)) {
        return;
    }
    m.virtual_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    disco_broadcast(DISCO_MSG_CLOCK_START, buf, disco__vm_clock__pack(&m, buf));
}

/* DSM loop thread of the master: the virtual clock is safe to read here. */
void disco_machine_answer_clock(int peer, const uint8_t *body, size_t len)
{
    Disco__VmClock *m = disco__vm_clock__unpack(NULL, len, body);
    uint8_t buf[32];

    if (!m) {
        disco_die("bad clock request from node %s", disco_node_name(peer));
    }
    m->virtual_ns = cpu_get_clock();
    disco_send(peer, DISCO_MSG_CLOCK_REPLY, buf, disco__vm_clock__pack(m, buf));
    disco__vm_clock__free_unpacked(m, NULL);
}

void disco_machine_clock_reply(const uint8_t *body, size_t len)
{
    Disco__VmClock *m = disco__vm_clock__unpack(NULL, len, body);

    if (!m) {
        disco_die("undecodable clock reply from the master");
    }
    rpc_call_complete(disco_calls(), m->id, body, len);
    disco__vm_clock__free_unpacked(m, NULL);
}

/* Main loop, BQL held: the master's clock runs; take the best of a few
 * round trips (smallest RTT) and set the local virtual clock from it. */
void disco_machine_apply_clock_start(int peer, const uint8_t *body, size_t len)
{
    int64_t best_rtt = INT64_MAX, best_offset = 0;

    if (peer != disco.master) {
        disco_die("clock start from node %s, which is not the master", disco_node_name(peer));
    }
    for (int i = 0; i < DISCO_CLOCK_ROUNDS; i++) {
        Disco__VmClock q = DISCO__VM_CLOCK__INIT, *a;
        struct rpc_call_result *res = g_new(struct rpc_call_result, 1);
        uint8_t buf[32];
        uint64_t id;
        int64_t t0, t1;

        if (rpc_call_begin(disco_calls(), &id) < 0) {
            disco_die("no free call slot for the clock");
        }
        q.id = id;
        t0 = get_clock();
        if (disco_send(disco.master, DISCO_MSG_CLOCK_REQ, buf,
                       disco__vm_clock__pack(&q, buf)) < 0 ||
            rpc_call_wait(disco_calls(), id, 2000, res) < 0) {
            disco_die("no answer from the master to a clock request");
        }
        t1 = get_clock();
        a = disco__vm_clock__unpack(NULL, res->len, res->data);
        if (!a) {
            disco_die("undecodable clock reply");
        }
        if (t1 - t0 < best_rtt) {
            best_rtt = t1 - t0;
            /* master's virtual time at t1, minus local monotonic at t1 */
            best_offset = a->virtual_ns + (t1 - t0) / 2 - t1;
        }
        disco__vm_clock__free_unpacked(a, NULL);
        g_free(res);
    }
    cpu_clock_set_virtual_ns(get_clock() + best_offset);
    info_report("disco %s: virtual clock set from the master's (best round trip %" PRId64
                " us)", disco_node_name(disco.self), best_rtt / 1000);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void disco_shutdown_notify(Notifier *n, void *data)
{
    ShutdownCause cause = *(ShutdownCause *)data;

    qatomic_set(&disco.shutting_down, true);
    /* vCPUs waiting for the master's devices must be able to stop */
    rpc_call_fail_all(disco_calls(), -ESHUTDOWN);
    if (disco.shutdown_from_peer) {
        return;
    }
    Disco__VmLifecycle m = DISCO__VM_LIFECYCLE__INIT;
    uint8_t buf[128];

    disco.shutdown_cause = cause;
    pstrcpy(disco.shutdown_origin, sizeof(disco.shutdown_origin), disco_node_name(disco.self));
    m.cause = cause;
    m.reason = (char *)ShutdownCause_str(cause);
    disco_broadcast(DISCO_MSG_LIFECYCLE, buf, disco__vm_lifecycle__pack(&m, buf));
}

void disco_machine_apply_lifecycle(int peer, const uint8_t *body, size_t len)
{
    Disco__VmLifecycle *m = disco__vm_lifecycle__unpack(NULL, len, body);

    if (!m || m->cause >= SHUTDOWN_CAUSE__MAX) {
        disco_die("bad lifecycle message from node %s", disco_node_name(peer));
    }
    if (m->reset) {
        /* Ignored when this node is already resetting (two nodes asked at
         * once: the reset under way is the one both wanted) or when it
         * is a late copy of a reset this node has completed. */
        if (!disco.shutting_down && !disco.resetting &&
            m->reset_generation >= disco.reset_generation) {
            disco.reset_from_peer = true;
            pstrcpy(disco.shutdown_origin, sizeof(disco.shutdown_origin),
                    disco_node_name(peer));
            qemu_system_reset_request(m->cause);
        }
    } else if (!disco.shutting_down) {
        disco.shutdown_from_peer = true;
        disco.shutdown_cause = m->cause;
        pstrcpy(disco.shutdown_origin, sizeof(disco.shutdown_origin), disco_node_name(peer));
        qemu_system_shutdown_request(m->cause);
    }
    disco__vm_lifecycle__free_unpacked(m, NULL);
}

/* ---- reset ---------------------------------------------------------------- */

/* Wait, with the BQL held, until every node reached reset barrier @id,
 * applying the inbox meanwhile; a lost node or a node that never comes
 * ends the VM (its guest state is undefined from here). */
static void disco_reset_barrier(uint32_t id, const char *what)
{
    int64_t deadline = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + DISCO_RESET_TIMEOUT_MS;

    for (;;) {
        int rc = rpc_session_barrier(disco.session, id, DISCO_RESET_POLL_MS);

        if (rc == 0) {
            return;
        }
        if (rc != -ETIMEDOUT) {
            disco_die("reset: %s: %s", what, strerror(-rc));
        }
        if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) > deadline) {
            disco_die("reset: %s: not every node got there within %d s", what,
                      DISCO_RESET_TIMEOUT_MS / 1000);
        }
        disco_inbox_drain();
    }
}

void disco_reset_begin(int cause)
{
    if (!disco_joined()) {
        return; /* not a node, or the reset before the VM first runs, at start-up */
    }
    disco.resetting = true;
    if (!disco.reset_from_peer) {
        Disco__VmLifecycle m = DISCO__VM_LIFECYCLE__INIT;
        uint8_t buf[128];

        pstrcpy(disco.shutdown_origin, sizeof(disco.shutdown_origin),
                disco_node_name(disco.self));
        m.cause = cause;
        m.reason = (char *)ShutdownCause_str(cause);
        m.reset = true;
        m.reset_generation = disco.reset_generation;
        disco_broadcast(DISCO_MSG_LIFECYCLE, buf, disco__vm_lifecycle__pack(&m, buf));
    }
    info_report("disco %s: guest reset %u (%s, from node %s): resetting every node",
                disco_node_name(disco.self), disco.reset_generation + 1,
                ShutdownCause_str(cause), disco.shutdown_origin);
    disco_reset_barrier(DISCO_RESET_BARRIER(disco.reset_generation, 0),
                        "waiting for every node to stop its vCPUs");
    /* What peers sent before they stopped is in the inbox by now (each
     * channel is ordered, and their barrier message came after it):
     * apply it to the machine before the reset, not after. */
    disco_inbox_drain();
}

void disco_reset_end(void)
{
    if (!disco_joined() || !disco.resetting) {
        return;
    }
    disco_reset_barrier(DISCO_RESET_BARRIER(disco.reset_generation, 1),
                        "waiting for every node to reset");
    disco.reset_generation++;
    disco.reset_from_peer = false;
    disco.resetting = false;
}

void disco_machine_init_done(void)
{
    qemu_add_vm_change_state_handler(disco_vm_state_changed, NULL);
    shutdown_notifier.notify = disco_shutdown_notify;
    qemu_register_shutdown_notifier(&shutdown_notifier);
}

void disco_cleanup(void)
{
    int rc, status;

    if (!disco_joined()) {
        return;
    }
    /* our vCPUs are stopped; others may still fault on pages we hold */
    rc = rpc_session_barrier(disco.session, DISCO_SHUTDOWN_BARRIER, DISCO_SHUTDOWN_TIMEOUT_MS);
    qatomic_set(&disco.exiting, true);
    disco_ram_print_stats();
    rpc_session_stop(disco.session);
    if (rc < 0) {
        fprintf(stderr, "disco %s: not every node reached the shutdown barrier: %s\n",
                disco_node_name(disco.self), strerror(-rc));
        status = 1;
    } else if (disco.shutdown_cause == SHUTDOWN_CAUSE_GUEST_SHUTDOWN) {
        status = 0;
    } else {
        fprintf(stderr, "disco %s: VM stopped by %s on node %s\n", disco_node_name(disco.self),
                ShutdownCause_str(disco.shutdown_cause), disco.shutdown_origin);
        status = 1;
    }
    fflush(stderr);
    fflush(stdout);
    exit(status);
}
