/*
 * The region's internals, shared by region.c (API, life cycle, commands)
 * and fault_path.c (the loop thread's hot path). Not a public header.
 *
 * Locking: fields under "loop thread only" are touched by the loop thread
 * alone (and by the creating thread before the loop starts / after it
 * ended). Fields under "shared" are guarded by `mu`; `cond` signals changes
 * of them. `mu` is a leaf lock except that the transport's send mutex may
 * be taken while it is NOT held; nothing blocks while holding `mu`.
 */
#ifndef DISCO_DSM_REGION_INTERNAL_H
#define DISCO_DSM_REGION_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "dsm/policy.h"
#include "dsm/region.h"
#include "rpc/call.h"
#include "rpc/transport.h"

enum region_cmd_kind {
	REGION_CMD_STOP,
	REGION_CMD_STATS,
	REGION_CMD_PAGE_STATS,
	REGION_CMD_MIGRATE,
	REGION_CMD_BARRIER,
};

/* A request from an API thread to the loop thread; lives on the caller's
 * stack until `done` is set under mu. */
struct region_cmd {
	struct region_cmd *next;
	enum region_cmd_kind kind;
	uint64_t page;
	int target;
	uint32_t barrier_id;
	struct dsm_stats *stats;
	struct dsm_page_counters *page_counters;
	uint32_t *read_by, *write_by;
	int result;
	bool done;
};

/* What a DSM frame carries besides the engine's message: the one-sided
 * transfer fields of DsmMessage (one_sided.c). */
struct dsm_wire_extra {
	bool read_posted;      /* READ_REQ: the requester reads our copy itself */
	bool data_by_read;     /* GRANT: no payload; read the sender's copy */
	uint64_t read_version; /* ... its version word at the grant */
};

/* Where a peer's registered DSM memory is (DsmMemory frame). */
struct remote_memory {
	bool known;
	int n_seg;
	struct {
		uint64_t first_page, pages, addr;
		uint32_t rkey;
	} seg[DSM_MAX_SEGMENTS];
	uint64_t version_addr;
	uint32_t version_rkey;
};

/* A DSM message waiting out a page's minimum hold (dsm.min_hold_us). */
struct held_msg {
	struct held_msg *next;
	int peer;
	struct dsm_msg m;
	struct dsm_wire_extra x;
	bool has_page;
	uint8_t page[]; /* DSM_PAGE_SIZE bytes when has_page */
};

struct dsm_region {
	/* immutable after create */
	const struct cluster_config *cfg;
	const struct cluster_vm *vm;
	int self, n_nodes;
	uint8_t *base;             /* first segment */
	size_t size;
	uint64_t n_pages;
	int n_seg;                 /* >= 1 */
	struct dsm_segment seg[DSM_MAX_SEGMENTS];
	uint64_t seg_first_page[DSM_MAX_SEGMENTS];
	bool own_mapping;
	/* dsm.backing memfd: each segment is a MAP_SHARED mapping of a memfd
	 * (seg[i].fd), and seg_view[i] a second mapping of the same file that
	 * userfaultfd does not watch. Pages are filled through the view and
	 * mapped with UFFDIO_CONTINUE; a drop unmaps the region's view only,
	 * so a page's physical frame never changes (what one-sided RDMA on a
	 * once-registered memory region needs). */
	bool memfd;
	uint8_t *seg_view[DSM_MAX_SEGMENTS];
	int own_memfd;             /* the memfd this region created, or -1 */
	int uffd;
	uint32_t fault_timeout_ms;
	void (*on_fatal)(void *opaque, const char *message);
	void *opaque;
	void (*on_loop_start)(void *opaque);
	void (*on_page_dropped)(void *opaque, uint64_t page);
	void (*on_frame)(void *opaque, int peer, uint16_t type, const uint8_t *body, size_t len);
	void (*on_peer_lost)(void *opaque, int peer, const char *why);

	/* loop thread only */
	uv_loop_t loop;
	uv_thread_t thread;
	uv_poll_t uffd_poll;
	uv_async_t cmd_async;
	uv_timer_t timeout_timer;
	uv_timer_t policy_timer;     /* every dsm.knobs.interval_ms with policy disco */
	struct dsm_policy *policy;   /* NULL with policy static */
	uint32_t *policy_reads, *policy_writes; /* n_nodes each: scratch */
	struct rpc_transport *transport;
	struct dsm_engine *engine;
	uint8_t *present;          /* per page: a copy is mapped here */
	uint8_t *writable;         /* per page: mapped read-write */
	uint64_t *fault_start_ns;  /* per page: first blocked fault of a pending request */
	uint32_t *page_faults;     /* per page: faults served (only with DISCO_HOT_PAGES) */
	unsigned hot_pages_report; /* DISCO_HOT_PAGES=N: log the N hottest pages at stop */
	uint64_t frame_arrival_ns; /* when the frame being handled was read */
	const uint8_t *incoming_page; /* payload of the frame being handled */
	uint64_t woken_page;       /* last page whose waiters an install already woke */
	struct dsm_stats stats;
	bool fatal_reported;
	uint32_t faults_in_flight;   /* pages with a request out and a start time */
	uint64_t last_activity_ns;   /* last uffd event or frame handled */
	uint64_t poll_max_ns;        /* poll at most this long for one answer */
	uint64_t poll_linger_ns;     /* and this long after any activity */
	bool poll_yield;             /* sched_yield() between polls */
	/* Minimum hold: a page this node got writable stays here at least
	 * min_hold_ns; messages for it wait, in arrival order, so a lock
	 * holder finishes its critical section before spinners steal the
	 * page (no livelock). Per-page order is kept; pages may overtake
	 * each other, which the protocol allows (its reasoning is per page;
	 * the simulator's --per-page-fifo mode checks exactly this). */
	uint64_t min_hold_ns;
	uint64_t *hold_until;        /* per page; NULL when min_hold_ns == 0 */
	uint32_t *held_count;        /* per page: messages waiting */
	struct held_msg *held_head, *held_tail;
	uint64_t held_total;
	uint8_t pb_arena[1024];    /* protobuf unpack scratch, see wire.c */
	size_t pb_arena_used;
	/* One-sided page transfer (one_sided.c): RDMA transport and memfd
	 * backing. Loop thread only, but `ver` is read by peers' NICs. */
	bool one_sided;              /* registered: serve and issue reads */
	uint64_t *ver;               /* per page: odd while the copy may change */
	uint64_t *ver_seen;          /* per page: 2 words, versions our reads saw */
	struct remote_memory *remote;/* per node */
	int8_t *read_peer;           /* per page: node our read of it goes to, or -1 */
	uint64_t *read_ticket;       /* per page: the last read's ticket */
	dsm_nodeset_t *read_wanted;  /* per page (home): requesters reading it themselves */
	uint64_t *last_ticket;       /* per node: our last read's ticket */
	uint8_t *read_ahead_out;     /* per page: our request for it said read_posted */
	uint8_t *ahead_score;        /* per node: how well reading ahead paid lately */
	uint32_t *ahead_probe;       /* per node: requests while the score is 0 */
	uint32_t seg_rkey[DSM_MAX_SEGMENTS];
	uint32_t ver_rkey;

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct region_cmd *cmd_head, *cmd_tail;
	bool loop_running;
	bool stopping;
	dsm_nodeset_t peers_up;
	dsm_nodeset_t peers_down;
	uint32_t barrier_seen[DSM_MAX_NODES];

	struct rpc_call_table calls; /* raw RTT probes; thread-safe itself */
	uint32_t probes_in_flight;   /* RTT probes waiting (atomic): poll for them too */
};

/* Where page @page lives in this process (segments are in page order). */
static inline uint8_t *region_page_addr(const struct dsm_region *r, uint64_t page)
{
	int i = r->n_seg - 1;
	while (page < r->seg_first_page[i])
		i--;
	return (uint8_t *)r->seg[i].addr + (page - r->seg_first_page[i]) * DSM_PAGE_SIZE;
}

/* The unwatched second view of @page (memfd backing only). */
static inline uint8_t *region_view_addr(const struct dsm_region *r, uint64_t page)
{
	int i = r->n_seg - 1;
	while (page < r->seg_first_page[i])
		i--;
	return r->seg_view[i] + (page - r->seg_first_page[i]) * DSM_PAGE_SIZE;
}

/* The page at host address @addr, or UINT64_MAX outside the region. */
static inline uint64_t region_addr_page(const struct dsm_region *r, uintptr_t addr)
{
	for (int i = 0; i < r->n_seg; i++) {
		uintptr_t a = (uintptr_t)r->seg[i].addr;
		if (addr >= a && addr - a < r->seg[i].size)
			return r->seg_first_page[i] + (addr - a) / DSM_PAGE_SIZE;
	}
	return UINT64_MAX;
}

/* fault_path.c: the loop thread's handlers */
void region_emit(void *ctx, const struct dsm_action *a);
void region_on_uffd_readable(uv_poll_t *h, int status, int events);
void region_on_frame(void *opaque, int peer, const struct rpc_frame_view *f);
void region_fatal(struct dsm_region *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void region_check_timeouts(struct dsm_region *r, uint64_t now_ns);
void region_release_held(struct dsm_region *r, uint64_t now_ns);
void region_free_held(struct dsm_region *r);

/* wire.c: dsm_msg (+ extra, may be NULL) <-> protobuf */
size_t dsm_wire_pack(const struct dsm_msg *m, const struct dsm_wire_extra *x, uint8_t *buf,
		     size_t cap);
int dsm_wire_unpack(struct dsm_region *r, const uint8_t *body, size_t len, struct dsm_msg *out,
		    struct dsm_wire_extra *x);

/* one_sided.c */
int region_one_sided_setup(struct dsm_region *r);   /* loop thread, after transport start */
void region_one_sided_free(struct dsm_region *r);
void region_send_memory(struct dsm_region *r, int peer);   /* on peer up */
void region_on_memory_frame(struct dsm_region *r, int peer, const uint8_t *body, size_t len);
/* Requester: before sending READ_REQ @m, read the home's copy; true when
 * the request may say so (read_posted). */
bool region_read_ahead(struct dsm_region *r, const struct dsm_msg *m);
/* Home: may the GRANT @m go without its payload? Fills @x if so. */
bool region_grant_by_read(struct dsm_region *r, const struct dsm_msg *m, struct dsm_wire_extra *x);
/* Before a frame for its page reaches the engine: wait for our reads of
 * that page (none may land after it is mapped); for a GRANT by read, put
 * the page read in *@page; for a READ_REQ, note whether the requester may
 * read our copy. 0, or negative after failing @peer. */
int region_one_sided_frame(struct dsm_region *r, int peer, const struct dsm_msg *m,
			   const struct dsm_wire_extra *x, const uint8_t **page);

/* A page's version word, served to peers' one-sided reads: odd while the
 * local copy may change (writable, or being filled), even while it cannot.
 * Bumped around every mapping change (fault_path.c). */
static inline void region_ver_unstable(struct dsm_region *r, uint64_t page)
{
	if (r->ver && !(r->ver[page] & 1))
		__atomic_store_n(&r->ver[page], r->ver[page] + 1, __ATOMIC_RELEASE);
}

static inline void region_ver_stable(struct dsm_region *r, uint64_t page)
{
	if (r->ver && (r->ver[page] & 1))
		__atomic_store_n(&r->ver[page], r->ver[page] + 1, __ATOMIC_RELEASE);
}
int dsm_wire_unpack_u64_id(struct dsm_region *r, uint16_t type, const uint8_t *body, size_t len,
			   uint64_t *id);

#endif
