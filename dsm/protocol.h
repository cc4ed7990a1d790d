// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DSM coherence protocol as a pure state machine.
 *
 * Events go in (a local read/write fault, a message received, a request to
 * move a page's home, a peer lost); actions come out through an emit
 * callback (send a message, install/protect/drop the local copy, wake the
 * threads blocked on a page). The engine has no threads, no I/O and no
 * clock, so the deterministic simulator (tests/sim/), the unit tests and
 * the runtime (dsm/fault_path.c) drive the very same code. docs/protocol.md
 * holds the state/event table and the races; tests/spin/dsm.pml models it.
 *
 * Budgets (off unless dsm_engine_set_budget() is called): a node holds at
 * most `frames` pages, its home pages and its cached copies together,
 * counting frames reserved for requests in flight and for home moves it
 * accepted. A cached copy is given up with dsm_engine_evict() (a dirty one
 * is pulled back by its home first); a request that finds no free frame
 * waits and the engine asks the runtime for room (DSM_ACT_NEED_ROOM); a
 * home move asks its target first (OFFER), which refuses it when it has no
 * room. docs/protocol.md, "Budgets and eviction", has the rules and races.
 *
 * Ownership: one engine per node; it is not thread-safe and must be driven
 * by a single thread (the runtime's loop thread).
 */
#ifndef DISCO_DSM_PROTOCOL_H
#define DISCO_DSM_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsm/settings.h" /* DSM_PAGE_SIZE, DSM_MAX_NODES */

typedef uint64_t dsm_nodeset_t; /* bit n = node n */

/* What this node may do with its copy of a page. */
enum dsm_local_state {
	DSM_LOCAL_INVALID = 0,  /* no copy: any access faults */
	DSM_LOCAL_SHARED = 1,   /* read-only copy */
	DSM_LOCAL_MODIFIED = 2, /* the only copy, writable */
};

/* The home's directory entry. The home's own copy is implied by the
 * state, so the copyset only ever names other nodes:
 *   HOME_EXCL    no other node has a copy; the home's copy is MODIFIED
 *   SHARED       copyset (non-empty) holds read-only copies, so does the home
 *   REMOTE_EXCL  `owner` holds the only copy; the home has none
 *   LOST         the only copy died with a failed peer; requests fail */
enum dsm_dir_state {
	DSM_DIR_HOME_EXCL = 0,
	DSM_DIR_SHARED = 1,
	DSM_DIR_REMOTE_EXCL = 2,
	DSM_DIR_LOST = 3,
};

/* Message kinds: the values of DsmKind in proto/dsm.proto. */
enum dsm_msg_kind {
	DSM_MSG_READ_REQ = 1,
	DSM_MSG_WRITE_REQ = 2,
	DSM_MSG_GRANT = 3,
	DSM_MSG_INV = 4,
	DSM_MSG_INV_ACK = 5,
	DSM_MSG_FETCH = 6,
	DSM_MSG_FETCH_REPLY = 7,
	DSM_MSG_MIGRATE = 8,
	DSM_MSG_FLUSH = 9,
	DSM_MSG_FLUSH_ACK = 10,
	/* Budgets only (docs/protocol.md, "Budgets and eviction"): */
	DSM_MSG_EVICT = 11,       /* holder -> home (forwarded): I give my copy up */
	DSM_MSG_EVICT_ACK = 12,   /* home -> holder: your EVICT is done */
	DSM_MSG_OFFER = 13,       /* home -> target: will you take this page's home? */
	DSM_MSG_OFFER_REPLY = 14, /* target -> home: yes, or F_ERROR + error: no */
	DSM_MSG_KIND_MAX = 14,
};

#define DSM_MSG_F_DATA 0x1  /* a page payload follows (GRANT, FETCH_REPLY, MIGRATE) */
#define DSM_MSG_F_EXCL 0x2  /* GRANT: exclusive; FETCH: the owner must drop its copy */
#define DSM_MSG_F_ERROR 0x4 /* GRANT: the request failed; OFFER_REPLY: refused; see `error` */
#define DSM_MSG_F_REPLICATED 0x8 /* shared GRANT: the home keeps this page replicated
				  * (a hint for the holder's victim choice) */
#define DSM_MSG_F_KNOWN (DSM_MSG_F_DATA | DSM_MSG_F_EXCL | DSM_MSG_F_ERROR | DSM_MSG_F_REPLICATED)

struct dsm_msg {
	enum dsm_msg_kind kind;
	uint32_t flags;
	uint64_t page;
	uint16_t src, dst;
	uint16_t requester;    /* READ/WRITE_REQ, EVICT, GRANT: the node that asked */
	uint64_t req_id;       /* requester's id, echoed in the GRANT */
	uint16_t owner;        /* MIGRATE: the exclusive owner */
	uint8_t dir_state;     /* MIGRATE: enum dsm_dir_state */
	dsm_nodeset_t copyset; /* MIGRATE: sharers */
	uint16_t hops;         /* forwards so far */
	int32_t error;         /* GRANT, OFFER_REPLY with F_ERROR */
};

/* Where the payload of a sent message comes from. */
enum dsm_data_source {
	DSM_DATA_NONE,     /* no payload */
	DSM_DATA_LOCAL,    /* this node's copy of the page (zeros if never populated) */
	DSM_DATA_INCOMING, /* the payload of the message being handled */
};

enum dsm_prot {
	DSM_PROT_READ = 1,  /* mapped read-only */
	DSM_PROT_WRITE = 2, /* mapped read-write */
};

enum dsm_action_kind {
	/* Send `msg` to msg.dst, with the payload named by `data`. */
	DSM_ACT_SEND,
	/* Install a copy of the page mapped `prot`, from the incoming message's
	 * payload (data == INCOMING). Wakes nobody by itself. */
	DSM_ACT_INSTALL,
	/* Change the protection of the present local copy to `prot`. */
	DSM_ACT_PROTECT,
	/* Discard the local copy: the next access faults. */
	DSM_ACT_DROP,
	/* The local state already allows `prot`: make sure the page is mapped
	 * so (filling zeros if it was never populated). */
	DSM_ACT_MAP_LOCAL,
	/* Wake every thread blocked on the page; `error` != 0 means the access
	 * can never be served (lost peer). */
	DSM_ACT_WAKE,
	/* Budgets only. This node needs free frames: `error` 0: requests wait
	 * for one (`page` is the first); -ENOSPC: node msg.src offered `page`'s
	 * home but no frame was free; -EMLINK: ... but this node already holds
	 * as many home pages as it may. Once the current engine call has
	 * returned, the runtime evicts cached copies (dsm_engine_evict(), until
	 * dsm_engine_room_wanted() is 0) or, for -EMLINK, may hand a cold home
	 * page to msg.src (dsm_engine_migrate_home()). With error 0 or
	 * -ENOSPC never emitted while nothing here can be evicted; error 0
	 * comes again (after any later engine call) while requests still
	 * wait and something can be evicted: a cheap flag for the runtime. */
	DSM_ACT_NEED_ROOM,
	/* Budgets only, at the home: msg.dst refused to take `page`'s home
	 * (`error` -ENOSPC, -EMLINK, -EBUSY: it was evicting the page, or
	 * -EHOSTDOWN: it was lost). The page stays here; the policy may undo
	 * the move it counted (dsm_policy_undo_move()). */
	DSM_ACT_MOVE_REFUSED,
};

struct dsm_action {
	enum dsm_action_kind kind;
	uint64_t page;
	enum dsm_prot prot;
	enum dsm_data_source data;
	int error;
	struct dsm_msg msg; /* SEND */
};

/* The engine hands every action to emit() at once, in order; the caller
 * must carry them out in that order (e.g. PROTECT before SEND before DROP
 * so no write is lost between reading a page and discarding it). */
typedef void (*dsm_emit_fn)(void *ctx, const struct dsm_action *action);

/* Per-page counters kept by the node that is home for the page. */
struct dsm_page_counters {
	uint32_t read_misses;   /* read requests served, any requester */
	uint32_t write_misses;  /* write requests served (incl. upgrades) */
	uint32_t invalidations; /* INV/FETCH-invalidate messages caused */
	uint32_t migrations;    /* times this page's home moved away from here */
	uint32_t forwards;      /* requests for it that arrived here after it left */
	uint32_t evictions;     /* EVICTs served here (copies given up by their holder) */
	uint32_t writebacks;    /* ... of which the dirty copy was pulled back */
};

/* Node-wide counters of the engine. */
struct dsm_engine_counters {
	uint64_t local_read_faults, local_write_faults; /* faults that needed a request */
	uint64_t spurious_faults;                       /* faults the state already allowed */
	uint64_t requests_sent, requests_forwarded;
	uint64_t grants_sent, invalidations_sent, fetches_sent;
	uint64_t migrations_out, migrations_in;
	uint64_t protocol_errors; /* messages that made no sense in the current state */
	uint64_t failed_requests; /* requests failed because a peer was lost */
	/* budgets */
	uint64_t evictions;       /* dsm_engine_evict() started here: clean copies ... */
	uint64_t writebacks;      /* ... and dirty copies (written back to the home) */
	uint64_t room_waits;      /* requests that had to wait for a free frame */
	uint64_t offers_sent;     /* home moves this node offered ... */
	uint64_t offers_refused;  /* ... that their target refused */
	uint64_t offers_declined; /* home moves offered to this node that it refused */
};

struct dsm_engine;

/* Create the engine for node @self of @n_nodes, managing @n_pages pages.
 * @initial_home(page, ctx) gives every page's first home (all nodes must
 * agree). Returns NULL on allocation failure. */
struct dsm_engine *dsm_engine_create(int self, int n_nodes, uint64_t n_pages,
				     int (*initial_home)(uint64_t page, void *ctx), void *ctx,
				     dsm_emit_fn emit, void *emit_ctx);
void dsm_engine_destroy(struct dsm_engine *e);

/* A local thread faulted on @page. */
void dsm_engine_local_fault(struct dsm_engine *e, uint64_t page, bool is_write);

/* A message arrived. Returns 0; -EINVAL for a message that is malformed
 * for this engine (unknown kind, page or node out of range); -ELOOP for
 * one forwarded too often; -EPROTO for one that makes no sense in the
 * page's current state (counted in protocol_errors; a correct peer never
 * sends one: the simulator checks that). On any error the caller should
 * treat the sender as faulty and fail it. */
int dsm_engine_receive(struct dsm_engine *e, const struct dsm_msg *msg);

/* Move @page's home from this node to @target (policy decision). Returns
 * -EINVAL if this node is not the page's home or target is invalid, -EBUSY
 * if a move of the page is already under way, 0 if the move started (it
 * completes once in-flight transactions finish). With budgets the target
 * is asked first and may refuse (DSM_ACT_MOVE_REFUSED). */
int dsm_engine_migrate_home(struct dsm_engine *e, uint64_t page, int target);

/* Budgets (call before any event, with the same on/off choice on every
 * node): this node holds at most @frames pages (home pages, cached copies
 * and reserved frames together), at most @frames - @min_cache of them home
 * pages, so that at least @min_cache >= 1 frames are left for caching.
 * @frames 0: no budget (the default, and the engine behaves exactly as
 * without this call). Returns -EINVAL for @min_cache 0 or >= @frames,
 * -ENOSPC if this node's initial home pages exceed @frames - @min_cache. */
int dsm_engine_set_budget(struct dsm_engine *e, uint64_t frames, uint64_t min_cache);

/* Give up this node's cached copy of @page (budgets only): a clean copy is
 * dropped at once (its frame is free on return) and the home told; a dirty
 * one is write-protected and its home pulls it back (FETCH), which frees
 * the frame. Returns 0 if the eviction started; -EINVAL if @page is out of
 * range, budgets are off or this node is @page's home (a home copy is never
 * evicted: move the home instead); -ENOENT if there is no copy here;
 * -EBUSY if a request or eviction of this node for @page is in flight or
 * the page's home is about to move here; -EHOSTDOWN if the home is lost. */
int dsm_engine_evict(struct dsm_engine *e, uint64_t page);
/* True if dsm_engine_evict(@page) would start an eviction now. */
bool dsm_engine_evictable(const struct dsm_engine *e, uint64_t page);
/* Frames the runtime should free by eviction for the requests waiting for
 * room (those waiting minus dirty copies already on their way home). */
uint64_t dsm_engine_room_wanted(const struct dsm_engine *e);
/* Frames held now (<= the budget), and how many of them are home pages
 * (including homes this node accepted and waits for). */
uint64_t dsm_engine_frames_used(const struct dsm_engine *e);
uint64_t dsm_engine_home_frames(const struct dsm_engine *e);

/* At @page's home: shared GRANTs carry the "replicated" hint (the policy
 * keeps this read-mostly page replicated in its readers' caches). */
void dsm_engine_set_replicated(struct dsm_engine *e, uint64_t page, bool replicated);
/* At a holder: the last shared GRANT said the page is kept replicated
 * (prefer other victims); at the home: what the policy set. */
bool dsm_engine_replicated(const struct dsm_engine *e, uint64_t page);

/* @peer is gone for good: drop it from directories; pages it alone held
 * become LOST and requests for them fail with -EHOSTDOWN (WAKE with error),
 * as do new requests whose home hint is @peer. Requests already in flight
 * are left alone (they may have been forwarded to a live home); the
 * runtime's fault timeout reports those that are really lost. */
void dsm_engine_peer_failed(struct dsm_engine *e, int peer);

/* Introspection (tests, simulator, stats). */
enum dsm_local_state dsm_engine_local_state(const struct dsm_engine *e, uint64_t page);
bool dsm_engine_is_home(const struct dsm_engine *e, uint64_t page);
int dsm_engine_home_hint(const struct dsm_engine *e, uint64_t page);
enum dsm_dir_state dsm_engine_dir_state(const struct dsm_engine *e, uint64_t page);
dsm_nodeset_t dsm_engine_copyset(const struct dsm_engine *e, uint64_t page);
int dsm_engine_owner(const struct dsm_engine *e, uint64_t page);
/* True if this node waits for a grant for @page (or for a free frame to
 * ask for it, or for the home to confirm an eviction). */
bool dsm_engine_pending(const struct dsm_engine *e, uint64_t page);
/* True if the page's directory here is in a transaction, has queued
 * requests, or a home move under way (or offered). */
bool dsm_engine_dir_busy(const struct dsm_engine *e, uint64_t page);
const struct dsm_page_counters *dsm_engine_page_counters(const struct dsm_engine *e,
							 uint64_t page);
/* Misses of @page served here, by requesting node: read_misses[n] and
 * write_misses[n] for n < n_nodes. Returns false (and zeros) if none was
 * counted since this node became the page's home. */
bool dsm_engine_page_node_misses(const struct dsm_engine *e, uint64_t page,
				 uint32_t *read_misses, uint32_t *write_misses);
/* Forget @page's per-node misses (the policy starts a new interval). */
void dsm_engine_page_node_misses_clear(struct dsm_engine *e, uint64_t page);
const struct dsm_engine_counters *dsm_engine_counters(const struct dsm_engine *e);

const char *dsm_msg_kind_name(enum dsm_msg_kind k);
const char *dsm_local_state_name(enum dsm_local_state s);
const char *dsm_dir_state_name(enum dsm_dir_state s);

#endif
