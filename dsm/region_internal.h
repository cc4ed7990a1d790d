// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The region's internals, shared by region.c (API, life cycle, the
 * session client), fault_path.c (the loop thread's hot path), hold.c
 * (minimum hold), one_sided.c and wire.c. Not a public header.
 *
 * The region is one client of its session (rpc/session.h). Its parts,
 * each with one concern:
 *   mem     the node's copy of the pages (memory.h): the only code that
 *           maps and unmaps them
 *   engine  the coherence protocol (protocol.h), entered only through
 *           the entry functions of fault_path.c, each of which passes
 *           its own struct engine_call
 *   policy  Disco's placement policy (policy.h), with policy disco
 *   hold    messages waiting out a page's minimum hold (hold.c)
 *   os      one-sided page reads (one_sided.c), when they are on
 *   room    the memory budget's runtime side (room.c): evictions, the
 *           clock, hand-backs, the overrun check
 *   prefetch  ranges other threads asked to fetch ahead (prefetch.c)
 *
 * Locking: none, but for the prefetch queue (its own mutex, taken by any
 * thread and by the loop thread, which holds nothing else then). After
 * dsm_region_create() everything else here is touched by the session's
 * loop thread alone (API calls run on it through rpc_session_call()),
 * except `mem.ver`, which peers' NICs read, and `mem.present` and
 * `mem.writable`, which dsm_region_prefetch() reads as a hint (relaxed
 * atomic loads and stores).
 */
#ifndef DISCO_DSM_REGION_INTERNAL_H
#define DISCO_DSM_REGION_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "dsm/evict.h"
#include "dsm/policy.h"
#include "dsm/region.h"
#include "memory.h"
#include "rpc/pb_arena.h"
#include "rpc/session.h"

/* What a DSM frame carries besides the engine's message: the one-sided
 * transfer fields of DsmMessage (one_sided.c). */
struct dsm_wire_extra {
	bool read_posted;      /* READ_REQ: the requester reads our copy itself */
	bool data_by_read;     /* GRANT: no payload; read the sender's copy */
	uint64_t read_version; /* ... its version word at the grant */
};

/*
 * One entry into the engine, on the entry function's stack: what the
 * engine's actions need from the event (the page that came with it) and
 * what they have done so far (an install or un-protect already woke the
 * page's waiters, so its WAKE need not). region_emit() works only inside
 * one (r->call), so no bookkeeping survives from one entry to the next.
 */
struct engine_call {
	const uint8_t *incoming_page; /* payload of the frame being handled */
	uint64_t woken_page;          /* last page whose waiters an action woke */
	uint64_t installed_page;      /* last page an action installed (the clock) */
	bool installed_shared;        /* ... read-only */
};

/* The memory budget's runtime state (room.c); all zero without a budget. */
struct region_room {
	struct dsm_evict_clock *clock; /* NULL without a budget */
	uint64_t frames, min_cache;    /* this node's budget, in pages */
	bool asked;                    /* NEED_ROOM (0, -ENOSPC) not acted on yet */
	bool must_evict;               /* -ENOSPC: evict one even if no request waits */
	dsm_nodeset_t handback_to;     /* -EMLINK from these nodes: hand each a home */
	uint64_t idle_looks;           /* clock looks since the last victim */
	uint64_t now;                  /* the current loop turn's time */
	uint64_t retry_at;             /* a sweep found no victim: not before this */
	/* Home moves a node refused for want of room for home pages
	 * (-EMLINK), per target node: made again when that node hands a home
	 * here (it has room for one more then). */
	struct room_retry {
		uint64_t *page;        /* ring of ROOM_RETRY_RING pages, or NULL */
		uint32_t head, count;
		uint32_t credit;       /* homes it handed us since: moves to retry */
	} *retry;                      /* n_nodes entries */
	dsm_nodeset_t retry_due;       /* nodes with credit */
};

/* Ranges other threads asked to fetch ahead (dsm_region_prefetch(),
 * prefetch.c). The queue is the only part other threads touch, under
 * @lock; the loop thread drains it on @wake. */
#define REGION_PREFETCH_QUEUE 64
struct region_prefetch {
	pthread_mutex_t lock;
	bool open;                     /* the loop runs and @wake is live */
	uint32_t head, count;
	struct prefetch_range {
		uint64_t first, n_pages;
		bool is_write;
	} q[REGION_PREFETCH_QUEUE];
	uint64_t dropped;              /* ranges refused: queue full or no loop */
	uv_async_t wake;
};

struct dsm_hold;
struct dsm_one_sided;

struct dsm_region {
	/* immutable after create */
	struct rpc_session *session;
	int self, n_nodes;
	char name[64];
	struct dsm_settings settings;
	struct dsm_placement placement;
	void (*on_fatal)(void *opaque, const char *message);
	void (*on_page_dropped)(void *opaque, uint64_t page);
	void *opaque;

	/* loop thread only */
	struct dsm_memory mem;
	struct dsm_engine *engine;
	struct engine_call *call;    /* the engine entry running now, or NULL */
	uv_poll_t uffd_poll;
	uv_timer_t timeout_timer;
	uv_timer_t policy_timer;     /* every knobs.interval_ms with policy disco */
	struct dsm_policy *policy;   /* NULL with policy static */
	uint32_t *policy_reads, *policy_writes; /* n_nodes each: scratch */
	uint64_t *fault_start_ns;    /* per page: first blocked fault of a pending request */
	uint32_t *page_faults;       /* per page: faults served (hot_pages_report only) */
	uint64_t frame_arrival_ns;   /* when the frame being handled was read */
	uint32_t faults_in_flight;   /* pages with a request out and a start time */
	uint64_t last_timeout_check_ns; /* the timeout timer's last run (stall check) */
	struct dsm_stats stats;
	bool fatal_reported;
	struct dsm_hold *hold;       /* NULL when min_hold_us is 0 */
	struct dsm_one_sided *os;    /* NULL unless one-sided reads are on */
	struct region_room room;     /* the memory budget's runtime side */
	struct region_prefetch prefetch; /* its queue: any thread, under its lock */
	struct rpc_pb_arena arena;    /* protobuf unpack scratch (wire.c) */
};

/* fault_path.c: the loop thread's handlers and the engine's entries */
void region_emit(void *ctx, const struct dsm_action *a);
void region_on_uffd_readable(uv_poll_t *h, int status, int events);
void region_on_frame(void *opaque, int peer, const struct rpc_frame_view *f);
void region_fatal(struct dsm_region *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void region_check_timeouts(struct dsm_region *r, uint64_t now_ns);
/* Every pending fault's clock starts again at @now_ns (the loop stalled). */
void region_restart_fault_clocks(struct dsm_region *r, uint64_t now_ns);
/* Deliver a DSM message to the engine (after any hold). */
void region_deliver(struct dsm_region *r, int peer, const struct dsm_msg *m,
		    const struct dsm_wire_extra *x, const uint8_t *page);
int region_engine_migrate(struct dsm_region *r, uint64_t page, int target);
void region_engine_peer_failed(struct dsm_region *r, int peer);
int region_engine_evict(struct dsm_region *r, uint64_t page);
/* Prefetch: start the request a fault on @page would, unless the page is
 * accessible here as @is_write wants or already on its way. True if a
 * request went out. */
bool region_fault_ahead(struct dsm_region *r, uint64_t page, bool is_write);

/* prefetch.c: the queue's set-up (create), start (loop thread, on_loop_start),
 * close (loop thread, on_stop) and teardown (destroy) */
int region_prefetch_init(struct dsm_region *r);
void region_prefetch_start(struct dsm_region *r, uv_loop_t *loop);
void region_prefetch_close(struct dsm_region *r);
void region_prefetch_fini(struct dsm_region *r);

/* room.c: memory budgets (docs/protocol.md §10.7) */
int region_room_setup(struct dsm_region *r);  /* after the engine is created */
void region_room_policy_setup(struct dsm_region *r); /* ... and the policy */
void region_room_free(struct dsm_region *r);
/* NEED_ROOM or MOVE_REFUSED, from region_emit: notes what to do later. */
void region_room_action(struct dsm_region *r, const struct dsm_action *a);
void region_room_touch(struct dsm_region *r, uint64_t page);                /* a fault */
void region_room_installed(struct dsm_region *r, uint64_t page, bool shared); /* an install */
void region_room_check(struct dsm_region *r); /* after every engine entry */
/* A MIGRATE from @from made this node @page's home (engine_receive). */
void region_room_migrated_in(struct dsm_region *r, uint64_t page, int from);
/* The loop turn: evictions and hand-backs, bounded; BUSY while work is left. */
enum rpc_loop_need region_room_turn(struct dsm_region *r, uint64_t now);
void region_room_tick(struct dsm_region *r);  /* the timeout timer */
/* A fault timed out: if requests wait for a frame, say why (true). */
bool region_room_describe(struct dsm_region *r, char *buf, size_t len);

/* hold.c: messages for a page waiting out its minimum hold
 * (dsm.min_hold_us): a page this node got writable stays here at least
 * that long, and messages for it wait, in arrival order, so a lock holder
 * finishes its critical section before spinners steal the page. */
struct dsm_hold *dsm_hold_create(uint64_t n_pages, uint64_t min_hold_ns);
void dsm_hold_destroy(struct dsm_hold *h);
/* A page became writable here at @now: its hold starts. */
void dsm_hold_start(struct dsm_hold *h, uint64_t page, uint64_t now);
/* Must a message for @page wait (its hold runs, or others wait)? */
bool dsm_hold_must_wait(const struct dsm_hold *h, uint64_t page, uint64_t now);
/* Keep a copy of the message (and its page) until its hold ends. */
int dsm_hold_push(struct dsm_hold *h, int peer, const struct dsm_msg *m,
		  const struct dsm_wire_extra *x, const uint8_t *page);
/* Deliver (region_deliver) every held message whose hold ended, in
 * arrival order. Returns true while messages are still held. */
bool dsm_hold_release(struct dsm_hold *h, struct dsm_region *r, uint64_t now);

/* wire.c: dsm_msg (+ extra, may be NULL) <-> protobuf */
size_t dsm_wire_pack(const struct dsm_msg *m, const struct dsm_wire_extra *x, uint8_t *buf,
		     size_t cap);
int dsm_wire_unpack(struct rpc_pb_arena *a, const uint8_t *body, size_t len,
		    struct dsm_msg *out, struct dsm_wire_extra *x);

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

#endif
