/*
 * The DSM library API: a region of memory shared coherently by one process
 * on every node of a cluster. Any process can use it (the stress and bench
 * tools today, QEMU for guest RAM next):
 *
 *   dsm_region_create()  map (or adopt) the memory, build the engine
 *   dsm_region_start()   start the loop thread, join the cluster, wait for
 *                        every peer (error naming who is missing)
 *   ... threads simply load and store in [base, base + size) ...
 *   dsm_region_stats()   counters and the fault-latency histogram
 *   dsm_region_stop()    say goodbye, join the loop thread
 *   dsm_region_destroy()
 *
 * Thread model (docs/architecture.md): one loop thread per region, created
 * by dsm_region_start(), owns the engine, the transport, the userfaultfd
 * and all timers; nothing else touches them, so they need no locks. A
 * thread that faults on the region blocks in the kernel until the loop
 * thread installs the page (UFFDIO_COPY / UFFDIO_WRITEPROTECT wake it).
 * API calls from other threads post a command to the loop (uv_async) and
 * wait on a condition variable; only the raw-RTT probe sends directly.
 *
 * A fault that can never be served (its page died with a peer, or no answer
 * within dsm.fault_timeout_ms) is reported once through on_fatal; the
 * faulting thread stays blocked, so on_fatal must end or stop the user of
 * the region (exit the process, stop the VM).
 */
#ifndef DISCO_DSM_REGION_H
#define DISCO_DSM_REGION_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cluster-config/cluster_config.h"
#include "dsm/policy.h"
#include "dsm/protocol.h"

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
	const struct cluster_config *cfg; /* must outlive the region */
	int vm;                           /* index into cfg->vms: size and placement */
	int node;                         /* this node's index */
	/* NULL: map fresh memory (anonymous, or a new memfd with dsm.backing
	 * memfd). Else adopt this private anonymous mapping of @size bytes:
	 * pages this node is initially home for keep their content (and are
	 * populated now), all others are discarded and filled from their home
	 * on first access. With dsm.backing memfd only segments (with their
	 * fd) can be adopted. */
	void *addr;
	size_t size;                      /* 0: the VM's memory size */
	/* Or adopt several such mappings (QEMU: one memory backend per guest
	 * NUMA node), in page-index order, as one region; their sizes add up
	 * to the VM's memory size. addr/size are then ignored. */
	const struct dsm_segment *segments;
	int n_segments;                   /* 0..DSM_MAX_SEGMENTS */
	void (*on_fatal)(void *opaque, const char *message);
	void *opaque;

	/* Optional hooks for a region that carries a VM (QEMU). All run on
	 * the loop thread, must not block, and must never wait for a thread
	 * that may itself be blocked in a fault on the region (in QEMU: never
	 * take the BQL). */
	void (*on_loop_start)(void *opaque);             /* first thing on the loop thread */
	/* This node's copy of @page was just dropped: whatever the next
	 * mapping brings may differ (QEMU: invalidate translated code). Runs
	 * before the drop is acknowledged to anyone. */
	void (*on_page_dropped)(void *opaque, uint64_t page);
	/* A frame of type RPC_MSG_VM_FIRST..RPC_MSG_VM_LAST from @peer; @body
	 * is valid during the call only. */
	void (*on_frame)(void *opaque, int peer, uint16_t type, const uint8_t *body, size_t len);
	/* @peer failed or left while the region was running (not during
	 * dsm_region_stop()); @why says how. */
	void (*on_peer_lost)(void *opaque, int peer, const char *why);
};

struct dsm_region;

int dsm_region_create(const struct dsm_region_options *opts, struct dsm_region **out);
/* Returns 0 once every peer is authenticated; -ETIMEDOUT after
 * cfg->connect_timeout_ms with @err naming the missing nodes. */
int dsm_region_start(struct dsm_region *r, char *err, size_t errlen);
void *dsm_region_base(const struct dsm_region *r);
size_t dsm_region_size(const struct dsm_region *r);
int dsm_region_node(const struct dsm_region *r);
int dsm_region_n_nodes(const struct dsm_region *r);

/* Wait until every node reached barrier @id (ids must grow by call).
 * -EHOSTDOWN if a peer is lost, -ETIMEDOUT after @timeout_ms. */
int dsm_region_barrier(struct dsm_region *r, uint32_t id, uint32_t timeout_ms);

int dsm_region_stats(struct dsm_region *r, struct dsm_stats *out);
/* Counters of @page kept here; -ENOENT if this node is not its home.
 * @read_by / @write_by (may be NULL; else dsm_region_n_nodes() entries):
 * its misses by requesting node since this node became its home (with
 * policy disco: since the last policy interval, which clears them). */
int dsm_region_page_stats(struct dsm_region *r, uint64_t page, struct dsm_page_counters *out,
			  uint32_t *read_by, uint32_t *write_by);
/* Ask the home of @page (must be this node) to move it to @target. */
int dsm_region_migrate_home(struct dsm_region *r, uint64_t page, int target);

/* Raw transport round trip to @peer: a 64-byte request answered by a 4 KiB
 * page, sent straight from the calling thread (no DSM). For benchmarks. */
int dsm_region_rtt_probe(struct dsm_region *r, int peer, uint64_t *rtt_ns);

/* Send a frame of type RPC_MSG_VM_FIRST..RPC_MSG_VM_LAST to @peer, from
 * any thread, straight onto the connection (frames to one peer arrive in
 * the order they were sent). -EINVAL for another type, -ENOTCONN when the
 * peer is not connected. */
int dsm_region_send_frame(struct dsm_region *r, int peer, uint16_t type, const void *body,
			  size_t len);

void dsm_region_stop(struct dsm_region *r);
void dsm_region_destroy(struct dsm_region *r);

/* Percentile @p (0..100) of the latency histogram, in microseconds (the
 * upper bound of the bucket it falls in); 0 when empty. */
double dsm_stats_latency_percentile(const struct dsm_stats *s, double p);
/* Print the stats as "key=value" lines, each prefixed with @prefix. */
void dsm_stats_print(const struct dsm_stats *s, const char *prefix, FILE *f);

#endif
