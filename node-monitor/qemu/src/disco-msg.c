// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Messages between the nodes of a spanning VM, and the node's session with
 * its cluster (rpc/session.h), of which they are one client (frame types
 * 64..127) and guest RAM (the DSM region, disco-ram.c) another. Sending:
 * any thread, straight onto the connection. Receiving: the session's loop
 * thread. A few messages are answered on the loop thread itself
 * because their answer must not wait for the main loop: I/O replies wake
 * the waiting vCPU, clock requests read the virtual clock. Everything else
 * touches devices or vCPUs and needs the BQL, so it goes to the inbox,
 * which a bottom half drains on the main loop in arrival order: that keeps
 * each sender's order (INIT before SIPI, PAM before the IPIs that follow).
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/rcu.h"
#include "qemu/error-report.h"

#include "disco-internal.h"

void disco_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "disco %s: ", disco.self >= 0 ? disco_node_name(disco.self) : "?");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    /* Other threads may be blocked in page faults that will never be
     * served: skip atexit handlers and QEMU's cleanup, which would wait. */
    _exit(1);
}

int disco_send(int peer, uint16_t type, const void *body, size_t len)
{
    if (!disco.session) {
        return -ENOTCONN; /* not joined yet (a stop before machine-init-done) */
    }
    if (type < RPC_MSG_VM_FIRST || type > RPC_MSG_VM_LAST || peer < 0 ||
        peer >= disco.cfg->n_nodes || peer == disco.self) {
        return -EINVAL;
    }
    return rpc_session_send(disco.session, peer, type, body, len, NULL);
}

void disco_broadcast(uint16_t type, const void *body, size_t len)
{
    for (int i = 0; i < disco.cfg->n_nodes; i++) {
        if (i != disco.self && (disco.vm->node_mask & (1ULL << i))) {
            disco_send(i, type, body, len);
        }
    }
}

void disco_inbox_drain(void)
{
    for (;;) {
        struct disco_inbox_msg *m;

        qemu_mutex_lock(&disco.inbox_lock);
        m = QSIMPLEQ_FIRST(&disco.inbox);
        if (m) {
            QSIMPLEQ_REMOVE_HEAD(&disco.inbox, next);
        }
        qemu_mutex_unlock(&disco.inbox_lock);
        if (!m) {
            return;
        }
        switch (m->type) {
        case DISCO_MSG_IPI:
            disco_irq_apply_ipi(m->peer, m->body, m->len);
            break;
        case DISCO_MSG_APIC_STATE:
            disco_irq_apply_apic_state(m->peer, m->body, m->len);
            break;
        case DISCO_MSG_EOI:
            disco_irq_apply_eoi(m->peer, m->body, m->len);
            break;
        case DISCO_MSG_IO_REQ:
            disco_io_serve(m->peer, m->body, m->len);
            break;
        case DISCO_MSG_CHIPSET:
            disco_machine_apply_chipset(m->peer, m->body, m->len);
            break;
        case DISCO_MSG_CLOCK_START:
            disco_machine_apply_clock_start(m->peer, m->body, m->len);
            break;
        case DISCO_MSG_LIFECYCLE:
            disco_machine_apply_lifecycle(m->peer, m->body, m->len);
            break;
        }
        g_free(m);
    }
}

static void disco_inbox_run(void *opaque)
{
    disco_inbox_drain();
}

void disco_inbox_init(void)
{
    qemu_mutex_init(&disco.inbox_lock);
    QSIMPLEQ_INIT(&disco.inbox);
    disco.inbox_bh = qemu_bh_new(disco_inbox_run, NULL);
}

/* The session's loop thread: a frame of the VM's range from @peer. */
static void disco_on_frame(void *opaque, int peer, const struct rpc_frame_view *f)
{
    const uint8_t *body = f->body;
    size_t len = f->body_len;
    uint16_t type = f->type;
    struct disco_inbox_msg *m;

    switch (type) {
    case DISCO_MSG_IO_REPLY:
        disco_io_complete(body, len);
        return;
    case DISCO_MSG_CLOCK_REQ:
        disco_machine_answer_clock(peer, body, len);
        return;
    case DISCO_MSG_CLOCK_REPLY:
        disco_machine_clock_reply(body, len);
        return;
    case DISCO_MSG_IPI:
    case DISCO_MSG_APIC_STATE:
    case DISCO_MSG_EOI:
    case DISCO_MSG_IO_REQ:
    case DISCO_MSG_CHIPSET:
    case DISCO_MSG_CLOCK_START:
    case DISCO_MSG_LIFECYCLE:
        break;
    default:
        disco_die("node %s sent unknown VM message type %u", disco_node_name(peer), type);
    }
    m = g_malloc(sizeof(*m) + len);
    m->peer = peer;
    m->type = type;
    m->len = len;
    memcpy(m->body, body, len);
    qemu_mutex_lock(&disco.inbox_lock);
    QSIMPLEQ_INSERT_TAIL(&disco.inbox, m, next);
    qemu_mutex_unlock(&disco.inbox_lock);
    qemu_bh_schedule(disco.inbox_bh);
}

/* The loop thread invalidates translated code (TB invalidation needs RCU). */
static int disco_on_loop_start(void *opaque)
{
    rcu_register_thread();
    return 0;
}

static void disco_on_peer_down(void *opaque, int peer, const char *why, bool stopping)
{
    if (stopping || qatomic_read(&disco.shutting_down)) {
        return; /* the shutdown barrier reports a node that did not make it */
    }
    disco_die("node %s lost (%s): stopping the VM", disco_node_name(peer), why);
}

void disco_session_create(void)
{
    const struct rpc_session_client vm_client = {
        .name = "spanning VM",
        .type_first = RPC_MSG_VM_FIRST,
        .type_last = RPC_MSG_VM_LAST,
        .on_loop_start = disco_on_loop_start,
        .on_frame = disco_on_frame,
        .on_peer_down = disco_on_peer_down,
    };
    int rc = rpc_session_create(disco.cfg, disco.self, &disco.session);

    if (rc < 0) {
        disco_die("cannot create the cluster session: %s", strerror(-rc));
    }
    rc = rpc_session_add_client(disco.session, &vm_client);
    if (rc < 0) {
        disco_die("cannot register the VM's messages with the session: %s", strerror(-rc));
    }
}

/* Returns once every node of the cluster is connected, or exits naming
 * the missing ones. */
void disco_join(void)
{
    char err[512];
    int rc;

    info_report("disco %s: joining cluster %s for vm %s (%d of %d vCPUs here, %s)",
                disco_node_name(disco.self), disco.cfg->name, disco.vm->name, disco.cpu_count,
                disco.vm->vcpus, disco_is(DISCO_NONMASTER) ? "devices on the master" : "master");
    rc = rpc_session_start(disco.session, err, sizeof(err));
    if (rc < 0) {
        disco_die("cannot join the cluster: %s", err);
    }
    qatomic_set(&disco.joined, true);
}
