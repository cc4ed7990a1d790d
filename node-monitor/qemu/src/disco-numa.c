// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Guest NUMA distances from measurement (`numa_distance: auto`, the
 * default). disco-node starts every QEMU with Linux's default distance (20)
 * in `-numa dist`, so the machine has a SLIT; at machine-init-done, once
 * every node has joined, the master measures what a miss on another node
 * costs against a local page access and writes the ratio into the
 * machine's distance table. QEMU rebuilds the ACPI tables when the firmware
 * first reads them (acpi_build_update), so the guest's SLIT carries the
 * measured values. Only the master matters: its firmware builds the guest's
 * tables. Main loop thread (BQL), before any vCPU runs.
 *
 * distance = 10 * (remote round trip of a 64 B request answered by a 4 KiB
 * page) / (copy of one 4 KiB page from local memory), clamped to 11..254,
 * the range the SLIT allows (10 is local, 255 unreachable). For a software
 * DSM the ratio is far above 25, so it saturates at 254: an honest "very
 * far", which makes Linux's scheduler balance across nodes least eagerly.
 * Between two non-master nodes the larger of their distances to the master
 * stands in (the master measures only its own links).
 */
#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "hw/boards.h"
#include "sysemu/numa.h"

#include "disco-internal.h"
#include "rpc/log.h"

#define DISCO_NUMA_PROBES 32
#define DISCO_NUMA_COPY_PAGES 8192 /* 32 MiB: more than a last-level cache */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* Microseconds to copy one 4 KiB page that is not in the cache. */
static double local_page_copy_us(void)
{
    size_t len = (size_t)DISCO_NUMA_COPY_PAGES * 4096;
    uint8_t *src = g_malloc(len), *dst = g_malloc(4096);
    double runs[5];

    memset(src, 1, len); /* populate: no first-touch faults in the timing */
    for (int r = 0; r < 5; r++) {
        int64_t t0 = get_clock();
        for (size_t p = 0; p < DISCO_NUMA_COPY_PAGES; p++) {
            memcpy(dst, src + p * 4096, 4096);
            src[p * 4096] ^= dst[7]; /* keep the copy */
        }
        runs[r] = (double)(get_clock() - t0) / 1000.0 / DISCO_NUMA_COPY_PAGES;
    }
    g_free(src);
    g_free(dst);
    return median(runs, 5);
}

/* Median round trip to @peer in microseconds, or a negative errno. */
static double remote_rtt_us(int peer)
{
    double v[DISCO_NUMA_PROBES];

    for (int i = 0; i < DISCO_NUMA_PROBES; i++) {
        uint64_t ns;
        int rc = rpc_session_rtt_probe(disco.session, peer, &ns);
        if (rc < 0) {
            return rc;
        }
        v[i] = (double)ns / 1000.0;
    }
    return median(v, DISCO_NUMA_PROBES);
}

static int distance_from_ratio(double ratio)
{
    double d = 10.0 * ratio + 0.5;
    return d < 11 ? 11 : d > 254 ? 254 : (int)d;
}

void disco_numa_measure(void)
{
    NumaState *ns = current_machine->numa_state;
    int guest_node[CLUSTER_MAX_NODES], to_master[CLUSTER_MAX_NODES] = { 0 };
    int g = 0;

    if (disco.vm->numa_distance != CLUSTER_NUMA_DISTANCE_AUTO || !disco_is(DISCO_MASTER) ||
        !ns || ns->num_nodes < 2 || !ns->have_numa_distance) {
        return;
    }
    for (int i = 0; i < disco.cfg->n_nodes; i++) {
        guest_node[i] = disco.vm->vcpus_per_node[i] > 0 ? g++ : -1;
    }
    if (g != ns->num_nodes) {
        warn_report("disco: %d guest NUMA nodes, expected %d: distances left as given",
                    ns->num_nodes, g);
        return;
    }
    double local = local_page_copy_us();
    for (int i = 0; i < disco.cfg->n_nodes; i++) {
        if (guest_node[i] < 0 || i == disco.self) {
            continue;
        }
        double rtt = remote_rtt_us(i);
        if (rtt < 0) {
            warn_report("disco: cannot measure the distance to node %s (%s): it stays %d",
                        disco.cfg->nodes[i].name, strerror((int)-rtt),
                        CLUSTER_NUMA_DISTANCE_DEFAULT);
            to_master[i] = CLUSTER_NUMA_DISTANCE_DEFAULT;
            continue;
        }
        to_master[i] = distance_from_ratio(rtt / local);
        disco_log(DISCO_LOG_INFO, "numa distance %s-%s: %d (4 KiB round trip %.1f us / "
                  "local 4 KiB copy %.2f us = %.0f x%s)", disco.cfg->nodes[disco.self].name,
                  disco.cfg->nodes[i].name, to_master[i], rtt, local, rtt / local,
                  to_master[i] == 254 ? ", capped" : "");
    }
    for (int a = 0; a < disco.cfg->n_nodes; a++) {
        for (int b = 0; b < disco.cfg->n_nodes; b++) {
            if (a == b || guest_node[a] < 0 || guest_node[b] < 0) {
                continue;
            }
            int d = a == disco.self ? to_master[b] : b == disco.self ? to_master[a]
                    : MAX(to_master[a], to_master[b]);
            ns->nodes[guest_node[a]].distance[guest_node[b]] = (uint8_t)d;
        }
    }
}
