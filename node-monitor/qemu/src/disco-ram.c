// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Guest RAM under the DSM. At machine-init-done (BQL held, before the
 * first reset and vm_start) the memory backends' RAMBlocks (one, or one per
 * guest NUMA node, in guest order) become one DSM region:
 * dsm_region_create() adopts QEMU's private anonymous mappings,
 * keeps (and populates) the pages this node is initially home for and
 * discards the rest, which then fill from their home on first access. The
 * region is a client of the node's session (disco-msg.c), which joins the
 * cluster once the region exists (disco_join()).
 *
 * The region's hooks run on the session's loop thread: they invalidate
 * translated code of every page whose local copy is dropped (before the
 * drop is acknowledged, so the writer never runs ahead of a stale
 * translation here), and stop the VM when a fault cannot be served.
 *
 * With a memory budget (vms[].node_memory) the node holds only that much
 * of guest RAM: the DSM evicts cached copies and gives their memory back.
 * One line in the node's log says where guest RAM is mapped and what the
 * budget is, so a test can watch the kernel's view of it
 * (/proc/PID/smaps of those mappings).
 */
#include "qemu/osdep.h"
#include <sys/syscall.h>
#include "qemu/rcu.h"
#include "qemu/madvise.h"
#include "qemu/error-report.h"
#include "exec/ram_addr.h"
#include "exec/exec-all.h"
#include "sysemu/hostmem.h"
#include "sysemu/tcg.h"
#include "sysemu/kvm.h"
#include <sys/syscall.h>
#include "hw/core/cpu.h"
#include "cpu.h"

#include "disco-internal.h"
#include "rpc/log.h"

static int disco_find_backend_ram(RAMBlock *rb, void *opaque)
{
    Object *owner = rb->mr ? rb->mr->owner : NULL;

    if (owner && object_dynamic_cast(owner, TYPE_MEMORY_BACKEND)) {
        if (disco.n_ram == DSM_MAX_SEGMENTS) {
            disco_die("more than %d memory backends", DSM_MAX_SEGMENTS);
        }
        disco.ram[disco.n_ram++] = rb;
    }
    return 0;
}

/* Guest order: a backend's offset inside the machine's RAM container
 * (with -numa memdevs they follow one another in node order). */
static int disco_ram_order(const void *a, const void *b)
{
    const RAMBlock *x = *(RAMBlock *const *)a, *y = *(RAMBlock *const *)b;

    return x->mr->addr < y->mr->addr ? -1 : x->mr->addr > y->mr->addr;
}

static RAMBlock *disco_page_block(uint64_t page, uint64_t *offset)
{
    int i = disco.n_ram - 1;

    while (page < disco.ram_first_page[i]) {
        i--;
    }
    *offset = (page - disco.ram_first_page[i]) * TARGET_PAGE_SIZE;
    return disco.ram[i];
}

/* -object disco-test-hooks,tb-invalidate=off turns TB invalidation off
 * for user-mode code: only for the system test that shows a guest needs
 * it (tests/system/smc_without_invalidation_test.sh). Kernel code keeps
 * it, because the guest kernel patches its own text at run time (static
 * keys, alternatives) while other nodes' vCPUs run it; a stale copy there
 * hangs the boot instead of letting the test's user-mode check fail. */
static bool disco_tb_invalidate = true;

/* Test mode: remember that kernel code was translated from @page. Runs on
 * the translating vCPU thread, before the generation snapshot. */
static void disco_note_translation(int64_t page)
{
    X86CPU *cpu = current_cpu ? X86_CPU(current_cpu) : NULL;

    if (cpu && (cpu->env.hflags & HF_CPL_MASK) == 0) {
        qatomic_set(&disco.kernel_code[page], 1);
        smp_mb();
    }
}

/* The DSM page holding @ram_addr, or -1 outside guest RAM (ROMs...). */
static int64_t disco_ram_addr_page(uint64_t ram_addr)
{
    for (int i = 0; i < disco.n_ram; i++) {
        RAMBlock *rb = disco.ram[i];

        if (ram_addr >= rb->offset && ram_addr - rb->offset < rb->used_length) {
            return disco.ram_first_page[i] + (ram_addr - rb->offset) / TARGET_PAGE_SIZE;
        }
    }
    return -1;
}

/* The drop generation of @ram_addr's page (high half) and of all pages. */
static uint64_t disco_tb_generation_of(uint64_t ram_addr)
{
    int64_t page = disco.code_gen ? disco_ram_addr_page(ram_addr) : -1;
    uint32_t gen;

    if (page >= 0 && !disco_tb_invalidate) {
        disco_note_translation(page);
    }
    gen = page >= 0 ? qatomic_load_acquire(&disco.code_gen[page]) : 0;

    return (uint64_t)gen << 32 | qatomic_load_acquire(&disco.code_gen_all);
}

uint64_t disco_tb_generation(uint64_t ram_addr)
{
    if (!disco_is(DISCO_NODE)) {
        return 0;
    }
    return disco_tb_generation_of(ram_addr);
}

bool disco_tb_stale(uint64_t snapshot, uint64_t ram_addr0, uint64_t ram_addr1)
{
    uint64_t now;

    if (!disco_is(DISCO_NODE)) {
        return false;
    }
    smp_mb(); /* the TB is linked (tb_link_page) before we look */
    now = disco_tb_generation_of(ram_addr0);
    if (ram_addr1 != (uint64_t)-1) {
        int64_t page1 = disco.code_gen ? disco_ram_addr_page(ram_addr1) : -1;

        if (page1 >= 0 && !disco_tb_invalidate) {
            disco_note_translation(page1);
        }
        return now != snapshot; /* any drop at all: the 2nd page may be it */
    }
    return now >> 32 != snapshot >> 32;
}

void disco_dma_map(void *ram_block, uint64_t offset, uint64_t len, bool is_write)
{
    RAMBlock *rb = ram_block;

    if (!disco_is(DISCO_NODE) || !disco.region || !len) {
        return;
    }
    for (int i = 0; i < disco.n_ram; i++) {
        if (disco.ram[i] == rb && offset < rb->used_length &&
            len <= rb->used_length - offset) {
            uint64_t at = (disco.ram_first_page[i] + offset / TARGET_PAGE_SIZE) * TARGET_PAGE_SIZE +
                          offset % TARGET_PAGE_SIZE;
            dsm_region_prefetch(disco.region, at, len, is_write); /* a hint: errors ignored */
            return;
        }
    }
}

static void disco_page_dropped(void *opaque, uint64_t page)
{
    uint64_t off;
    RAMBlock *rb = disco_page_block(page, &off);
    ram_addr_t ra = rb->offset + off;

    if (!disco_tb_invalidate) {
        if (!qatomic_xchg(&disco.kernel_code[page], 0)) {
            return; /* user-mode code only: leave it stale */
        }
    }
    /* First the generation (a translation reading the old bytes now sees
     * it changed once its TB is linked), then the TBs already linked. */
    qatomic_inc(&disco.code_gen[page]);
    qatomic_inc(&disco.code_gen_all);
    smp_mb();
    /* a clean CODE bit means translated blocks may exist for this page */
    if (tcg_enabled() && !cpu_physical_memory_get_dirty_flag(ra, DIRTY_MEMORY_CODE)) {
        tb_invalidate_phys_range(ra, ra + TARGET_PAGE_SIZE);
        qatomic_inc(&disco.n.tb_invalidations);
    }
}

static void disco_fatal(void *opaque, const char *message)
{
    if (qatomic_read(&disco.exiting)) {
        return;
    }
    disco_die("%s: stopping the VM", message);
}

/*
 * Guest RAM is also written by the kernel, not only by QEMU's user-mode
 * code: under KVM most accesses are the kernel's (it maps a page into the
 * guest, emulates an instruction, writes kvmclock), and on the master the
 * block layer's worker threads preadv/pwritev between a disk image and
 * guest RAM. A page that is not here then faults inside the kernel, and
 * userfaultfd serves kernel-mode faults only for a privileged process
 * (root, CAP_SYS_PTRACE, or vm.unprivileged_userfaultfd=1); otherwise the
 * DSM falls back to user-mode faults only, and those accesses would fail
 * (KVM: "internal error ... emulation failure" on the first vCPU of
 * another node; disks: EFAULT, I/O errors in the guest). Refuse to start
 * instead, saying what to change.
 */
static void disco_check_kernel_faults(void)
{
    bool disks = disco_is(DISCO_MASTER) && disco.vm->n_disks;
    int fd;

    if (!kvm_enabled() && !disks) {
        return;
    }
    fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        close(fd);
        return;
    }
    if (errno == EPERM) {
        disco_die("vm %s: %s guest RAM inside the kernel, and this process may only get a "
                  "userfaultfd for user-mode faults: run disco-node as root or with "
                  "CAP_SYS_PTRACE, or set sysctl vm.unprivileged_userfaultfd=1",
                  disco.vm->name,
                  kvm_enabled() ? "KVM reads and writes" : "its disks' I/O threads read and write");
    }
}

void disco_ram_init_done(void)
{
    struct dsm_placement placement;
    struct dsm_region_options o = {
        .session = disco.session,
        .name = disco.vm->name,
        .settings = &disco.vm->dsm,
        .placement = &placement,
        .on_fatal = disco_fatal,
        .on_page_dropped = disco_page_dropped,
    };
    struct dsm_segment segs[DSM_MAX_SEGMENTS];
    size_t size;
    int rc;

    if (disco_test_no_tb_invalidate) {
        disco_tb_invalidate = false;
        warn_report("disco: disco-test-hooks,tb-invalidate=off: translated user-mode code is "
                    "NOT invalidated when other nodes write it (test only)");
    }
    disco_check_kernel_faults();
    cluster_vm_dsm_placement(disco.cfg, disco.vm, &placement);
    qemu_ram_foreach_block(disco_find_backend_ram, NULL);
    if (!disco.n_ram) {
        disco_die("no memory backend found: start QEMU with -object memory-backend-ram "
                  "and -machine memory-backend= or -numa node,memdev=");
    }
    qsort(disco.ram, disco.n_ram, sizeof(disco.ram[0]), disco_ram_order);
    size = 0;
    for (int i = 0; i < disco.n_ram; i++) {
        segs[i].addr = qemu_ram_get_host_addr(disco.ram[i]);
        segs[i].size = qemu_ram_get_used_length(disco.ram[i]);
        /* dsm.backing memfd: memory-backend-memfd, its file from offset 0 */
        segs[i].fd = qemu_ram_get_fd(disco.ram[i]);
        segs[i].fd_offset = 0;
        if (disco.vm->dsm.backing == DSM_BACKING_MEMFD && segs[i].fd < 0) {
            disco_die("vm %s has dsm.backing memfd, but memory backend %s has no file: "
                      "use -object memory-backend-memfd", disco.vm->name,
                      qemu_ram_get_idstr(disco.ram[i]));
        }
        disco.ram_first_page[i] = size / TARGET_PAGE_SIZE;
        size += segs[i].size;
        /* userfaultfd works on 4 KiB pages: no transparent huge pages here */
        qemu_madvise(segs[i].addr, segs[i].size, QEMU_MADV_NOHUGEPAGE);
    }
    if (size != disco.vm->memory_bytes) {
        disco_die("the memory backends hold %zu bytes, vm %s %" PRIu64, size, disco.vm->name,
                  disco.vm->memory_bytes);
    }
    o.segments = segs;
    o.n_segments = disco.n_ram;
    disco.code_gen = g_new0(uint32_t, size / TARGET_PAGE_SIZE);
    if (!disco_tb_invalidate) {
        disco.kernel_code = g_new0(uint8_t, size / TARGET_PAGE_SIZE);
    }
    rc = dsm_region_create(&o, &disco.region);
    if (rc < 0) {
        disco_die("cannot put guest RAM under the DSM: %s", strerror(-rc));
    }
    if (dsm_settings_have_budgets(&disco.vm->dsm)) {
        char where[64 * DSM_MAX_SEGMENTS];
        size_t used = 0;

        where[0] = '\0';
        for (int i = 0; i < disco.n_ram && used < sizeof(where); i++) {
            int w = snprintf(where + used, sizeof(where) - used, "%s0x%" PRIxPTR "+%zu",
                             i ? " " : "", (uintptr_t)segs[i].addr, segs[i].size);
            used += w > 0 ? (size_t)w : 0;
        }
        disco_log(DISCO_LOG_INFO, "vm %s: guest RAM %zu MiB, memory budget %" PRIu64
                  " MiB here (dsm.min_cache %" PRIu64 " KiB); pid %d, RAM mappings %s",
                  disco.vm->name, size >> 20, disco.vm->dsm.node_budget[disco.self] >> 20,
                  disco.vm->dsm.min_cache >> 10, (int)getpid(), where);
    }
}

static void disco_print_counters(FILE *f, const char *prefix)
{
    struct dsm_stats s;

    if (dsm_region_stats(disco.region, &s) == 0) {
        dsm_stats_print(&s, prefix, f);
    }
    fprintf(f, "%sipis_sent=%" PRIu64 "\n%sipis_received=%" PRIu64 "\n"
            "%sio_forwarded=%" PRIu64 "\n%sio_served=%" PRIu64 "\n"
            "%stb_invalidations=%" PRIu64 "\n%sguest_resets=%" PRIu32 "\n",
            prefix, qatomic_read(&disco.n.ipis_sent), prefix,
            qatomic_read(&disco.n.ipis_received), prefix, qatomic_read(&disco.n.io_forwarded),
            prefix, qatomic_read(&disco.n.io_served), prefix,
            qatomic_read(&disco.n.tb_invalidations), prefix, disco.reset_generation);
}

/* What only the live counters carry (discod's metrics, docs/deploy.md):
 * pages homed here, evictions, the fault latency histogram and, for each
 * peer, its state and the session's frames to and from it. Peer names are
 * of [A-Za-z0-9_.-], so "peer:NAME:key" cannot be misread. */
static void disco_print_live_counters(FILE *f)
{
    struct dsm_stats s;

    if (dsm_region_stats(disco.region, &s) == 0) {
        fprintf(f, "pages_homed=%" PRIu64 "\npages_cached=%" PRIu64 "\nevictions=%" PRIu64
                "\nwritebacks=%" PRIu64 "\nuffd_events=%" PRIu64 "\nfault_send_wait_ns=%" PRIu64
                "\nfault_install_ns=%" PRIu64 "\n",
                s.pages_homed, s.pages_cached, s.engine.evictions, s.engine.writebacks,
                s.uffd_events, s.fault_send_wait_ns, s.fault_install_ns);
        for (int b = 0; b < DSM_LATENCY_BUCKETS; b++) {
            fprintf(f, "fault_latency_us_bucket:%d=%" PRIu64 "\n", b, s.fault_latency_us[b]);
        }
    }
    if (!disco.session) {
        return;
    }
    uint64_t down = rpc_session_peers_down(disco.session);
    for (int n = 0; n < disco.cfg->n_nodes; n++) {
        struct rpc_session_peer_stats p;

        if (n == disco.self) {
            continue;
        }
        rpc_session_peer_stats(disco.session, n, &p);
        fprintf(f, "peer:%s:up=%d\npeer:%s:frames_sent=%" PRIu64 "\npeer:%s:frames_received=%" PRIu64
                "\npeer:%s:bytes_sent=%" PRIu64 "\npeer:%s:bytes_received=%" PRIu64 "\n",
                disco_node_name(n), !(down & (1ULL << n)) && qatomic_read(&disco.joined),
                disco_node_name(n), p.frames_sent, disco_node_name(n), p.frames_received,
                disco_node_name(n), p.bytes_sent, disco_node_name(n), p.bytes_received);
    }
}

/* The counters so far, "key=value" lines (QOM property "counters" of the
 * -object, read through QMP's qom-get while the VM runs: scripts/
 * bench-debian.sh takes them before and after each I/O test, discod
 * every second for its metrics and `disco status`). Main loop thread;
 * dsm_region_stats() waits for the DSM loop thread, which never needs the
 * BQL. */
char *disco_ram_counters(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    if (!disco.region) {
        return g_strdup("");
    }
    f = open_memstream(&buf, &len);
    if (!f) {
        return g_strdup("");
    }
    disco_print_counters(f, "");
    disco_print_live_counters(f);
    fclose(f);
    return buf; /* malloc'd: glib's g_free is free() */
}

void disco_ram_print_stats(void)
{
    char prefix[96];
    FILE *f = stderr;

    if (disco.stats_path) {
        f = fopen(disco.stats_path, "w");
        if (!f) {
            error_report("disco: cannot write statistics to %s: %s", disco.stats_path,
                         strerror(errno));
            f = stderr;
        }
    }
    snprintf(prefix, sizeof(prefix), "disco %s: ", disco_node_name(disco.self));
    disco_print_counters(f, prefix);
    if (f != stderr) {
        fclose(f);
    }
}
