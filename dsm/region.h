// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DSM library API: a region of memory shared coherently by one process
 * on every node of a cluster. Any process can use it (the stress and bench
 * tools, QEMU for guest RAM). The region is one client of the node's
 * session (rpc/session.h), which owns the loop thread, the transport and
 * membership:
 *
 *   rpc_session_create()   the node's session with its cluster
 *   dsm_region_create()    map (or adopt) the memory, build the engine,
 *                          become the session's client for DSM frames
 *   rpc_session_start()    join: every peer is up
 *   ... threads simply load and store in [base, base + size) ...
 *   dsm_region_stats()     counters and the fault-latency histogram
 *   rpc_session_stop()     goodbye, the loop thread ends
 *   dsm_region_destroy(), rpc_session_destroy()
 *
 * Thread model (docs/architecture.md): the session's loop thread owns the
 * engine, the userfaultfd and the region's timers; nothing else touches
 * them, so they need no locks. A thread that faults on the region blocks
 * in the kernel until the loop thread installs the page (UFFDIO_COPY /
 * UFFDIO_WRITEPROTECT wake it). API calls from other threads run on the
 * loop thread through rpc_session_call().
 *
 * A fault that can never be served (its page died with a peer, or no answer
 * within dsm.fault_timeout_ms) is reported once through on_fatal; the
 * faulting thread stays blocked, so on_fatal must end or stop the user of
 * the region (exit the process, stop the VM).
 */
#ifndef DISCO_DSM_REGION_H
#define DISCO_DSM_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dsm/policy.h"
#include "dsm/protocol.h"
#include "dsm/settings.h"

struct rpc_session;

#define DSM_LATENCY_BUCKETS 32 /* bucket i counts faults of [2^i, 2^(i+1)) microseconds */

struct dsm_stats {
	struct dsm_engine_counters engine;
	uint64_t faults_served;                           /* faults that needed the protocol */
	uint64_t fault_latency_us[DSM_LATENCY_BUCKETS];   /* histogram of their latency */
	uint64_t uffd_events;
	/* Where a served fault's time goes inside the loop thread, summed over
	 * faults_served (ns): reading the userfaultfd event to the request sent
	 * (send), the event to the answer read (send + wait), and the answer to
	 * the page installed and the thread woken (install). The histogram
	 * above covers event to wake-up; what the faulting thread sees beyond
	 * it is the kernel's fault entry and its own wake-up. */
	uint64_t fault_send_ns, fault_send_wait_ns, fault_install_ns;
	uint64_t frames_sent, frames_received, bytes_sent, bytes_received;
	uint64_t pages_sent, pages_received;
	/* One-sided transfer (RDMA, memfd backing): GRANTs sent without the
	 * page for the requester to read it; pages this node read from a
	 * home, and how many of those needed a second read because the copy
	 * changed while the first one ran. */
	uint64_t pages_granted_by_read, pages_read, page_rereads;
	uint64_t pages_present; /* pages mapped at this node now */
	/* The engine's frame accounting (budgets): pages this node is the
	 * home of, and copies it holds of pages homed elsewhere. */
	uint64_t pages_homed, pages_cached;
	/* Memory budget (docs/protocol.md §10; zeros without one): this
	 * node's budget and min_cache in frames, the frames it holds now and
	 * how many of them are home pages, the most pages it ever had mapped,
	 * and eviction rounds that found no copy to evict. The evictions,
	 * write-backs and waits for room are the engine's counters. */
	uint64_t budget_frames, min_cache_frames, frames_used, home_frames;
	uint64_t pages_present_max;
	uint64_t room_sweeps_empty;
	uint64_t moves_retried; /* refused home moves made again once the target had room */
	/* dsm_region_prefetch(): pages it sent a request for (each is also
	 * in faults_served once it arrives), and ranges it dropped (its
	 * queue was full, or no loop ran). */
	uint64_t pages_prefetched, prefetch_dropped;
	struct dsm_policy_counters policy; /* Disco's policy (zeros with policy static) */
};

#define DSM_MAX_SEGMENTS 64

struct dsm_segment {
	void *addr;
	size_t size; /* a multiple of 4 KiB */
	/* dsm.backing memfd only: the memfd @addr maps (MAP_SHARED) and the
	 * file offset of @addr; ignored with anonymous backing. */
	int fd;
	uint64_t fd_offset;
};

struct dsm_region_options {
	struct rpc_session *session;            /* must outlive the region */
	const char *name;                       /* in messages, e.g. the VM's name */
	const struct dsm_settings *settings;    /* dsm.*: copied */
	const struct dsm_placement *placement;  /* initial homes: copied */
	/* NULL: map fresh memory of placement->n_pages pages (anonymous, or a
	 * new memfd with dsm.backing memfd). Else adopt this private anonymous
	 * mapping: pages this node is initially home for keep their content
	 * (and are populated now), all others are discarded and filled from
	 * their home on first access. With dsm.backing memfd only segments
	 * (with their fd) can be adopted. */
	void *addr;
	/* Or adopt several such mappings (QEMU: one memory backend per guest
	 * NUMA node), in page-index order, as one region; their sizes add up
	 * to placement->n_pages pages. addr is then ignored. */
	const struct dsm_segment *segments;
	int n_segments;                   /* 0..DSM_MAX_SEGMENTS */
	void (*on_fatal)(void *opaque, const char *message);
	/* This node's copy of @page was just dropped: whatever the next
	 * mapping brings may differ (QEMU: invalidate translated code). Runs
	 * on the loop thread before the drop is acknowledged to anyone, must
	 * not block, and must never wait for a thread that may itself be
	 * blocked in a fault on the region (in QEMU: never take the BQL). */
	void (*on_page_dropped)(void *opaque, uint64_t page);
	void *opaque;
};

struct dsm_region;

/* Before rpc_session_start() of @o->session. */
int dsm_region_create(const struct dsm_region_options *o, struct dsm_region **out);
void *dsm_region_base(const struct dsm_region *r);
size_t dsm_region_size(const struct dsm_region *r);
int dsm_region_node(const struct dsm_region *r);
int dsm_region_n_nodes(const struct dsm_region *r);

int dsm_region_stats(struct dsm_region *r, struct dsm_stats *out);
/* Counters of @page kept here; -ENOENT if this node is not its home.
 * @read_by / @write_by (may be NULL; else dsm_region_n_nodes() entries):
 * its misses by requesting node since this node became its home (with
 * policy disco: since the last policy interval, which clears them). */
int dsm_region_page_stats(struct dsm_region *r, uint64_t page, struct dsm_page_counters *out,
			  uint32_t *read_by, uint32_t *write_by);
/* Ask the home of @page (must be this node) to move it to @target. */
int dsm_region_migrate_home(struct dsm_region *r, uint64_t page, int target);
/* Fetch ahead the bytes [@offset, @offset + @len) of the region, for
 * reading, or for writing if @is_write (at most the first 4 MiB): for each
 * of their pages this node cannot access so yet, the loop thread starts
 * the request a fault would, and nobody waits for it (dsm/prefetch.c).
 * For a thread about to touch the range (a device's DMA). Any thread,
 * never blocks on the loop or a page. 0 (queued, or nothing to fetch); -EINVAL if the range is not in
 * the region; -EAGAIN if dropped (the queue is full, the loop does not
 * run, or the node has a memory budget). */
int dsm_region_prefetch(struct dsm_region *r, uint64_t offset, uint64_t len, bool is_write);

/* After rpc_session_stop() of its session (or when it never started). */
void dsm_region_destroy(struct dsm_region *r);

/* Percentile @p (0..100) of the latency histogram, in microseconds (the
 * upper bound of the bucket it falls in); 0 when empty. */
double dsm_stats_latency_percentile(const struct dsm_stats *s, double p);
/* Print the stats as "key=value" lines, each prefixed with @prefix. */
void dsm_stats_print(const struct dsm_stats *s, const char *prefix, FILE *f);

#endif
