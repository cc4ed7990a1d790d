// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The coherence protocol engine: single writer / multiple readers with
 * invalidation, home-based directory, sequential consistency.
 *
 * Every page has a home node that keeps its directory entry and
 * serialises requests for it: one transaction at a time, later requests
 * wait in the page's queue. The home's own copy follows the directory:
 *
 *   HOME_EXCL    nobody else has a copy     home MODIFIED (read-write)
 *   SHARED(S)    S hold read-only copies    home SHARED (read-only)
 *   REMOTE_EXCL  owner O has the only copy  home INVALID
 *
 * Read miss at R:   R -> READ_REQ -> home.
 *   HOME_EXCL/SHARED: home downgrades itself to read-only and GRANTs a
 *   shared copy with its data; R joins S.
 *   REMOTE_EXCL(O): home FETCHes from O (O keeps a read-only copy), installs
 *   the data itself, then GRANTs R a shared copy. S = {O, R}.
 * Write miss at W:  W -> WRITE_REQ -> home.
 *   SHARED(S): home sends INV to S \ {W}, collects INV_ACKs, then GRANTs W
 *   the exclusive copy (without data if W was in S) and drops its own.
 *   HOME_EXCL: GRANT with data at once. REMOTE_EXCL(O): FETCH-invalidate
 *   from O, pass the data on in the GRANT.
 * The home's own faults take the same paths without messages to itself.
 *
 * Home migration: the home stops serving the page (new requests queue),
 * waits for its transaction to end, then FLUSHes every node it granted to
 * since their last reply: per-channel FIFO means a FLUSH_ACK proves every
 * earlier GRANT from this home is installed, so no stale GRANT can overtake
 * a message from the new home. Then MIGRATE carries the directory (and the
 * data when the new home lacks it); the old home drops its copy, keeps a
 * forwarding pointer and forwards queued and late requests to the new home.
 * Requesters learn the new home from the next GRANT, INV or FETCH.
 *
 * Budgets (dsm_engine_set_budget): every frame this node holds is counted,
 * home pages (also while another node holds the page exclusive), cached
 * copies, frames reserved for requests in flight and for home moves it
 * accepted. A request that finds no free frame waits in a FIFO and the
 * runtime is asked for room (NEED_ROOM); it evicts cached copies with
 * dsm_engine_evict(). An eviction is a request like the others, sent to
 * the home (forwarded along the pointers, queued while the directory is
 * busy), and this node sends no other request for the page until the home
 * answers it: a clean copy is dropped at once, the home takes the node off
 * the copyset and answers EVICT_ACK; a dirty copy stays (write-protected)
 * until the home FETCHes it back like any exclusive copy, then EVICT_ACK.
 * A home move asks its target first (OFFER): the target reserves a frame
 * or refuses. No message ever waits for room, so evictions cannot
 * deadlock; only new requests do.
 *
 * docs/protocol.md has the full table and the races; tests/spin/dsm.pml
 * models the same rules; tests/sim/ checks this code against them.
 */
#include "dsm/protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum txn_kind {
	TXN_NONE,
	TXN_INV,          /* waiting for INV_ACKs before an exclusive grant */
	TXN_FETCH_SHARED, /* waiting for the owner's data, owner keeps a copy */
	TXN_FETCH_EXCL,   /* waiting for the owner's data, owner drops its copy */
	TXN_FLUSH,        /* waiting for FLUSH_ACKs before a home move */
};

/* Our own request for the page: READ/WRITE (in flight, or waiting for a
 * free frame: wait_room), or an EVICT the home has not answered yet. */
enum pending_kind { PENDING_NONE, PENDING_READ, PENDING_WRITE, PENDING_EVICT };

struct dsm_req {
	struct dsm_req *next;
	uint64_t req_id;
	uint16_t requester;
	uint16_t hops;
	bool is_write;
	bool is_evict; /* an EVICT: the requester gives its copy up */
};

/* This node's view of one page. Directory fields are meaningful only while
 * is_home; home_hint doubles as the forwarding pointer of a former home. */
struct dsm_page {
	uint8_t local;   /* enum dsm_local_state */
	uint8_t pending; /* enum pending_kind: our own request in flight */
	bool want_write; /* a write fault came while a read was pending */
	bool is_home;
	uint16_t home_hint;
	uint64_t req_id; /* id of our pending request */
	/* budgets */
	bool wait_room;     /* pending READ/WRITE not sent yet: no free frame */
	uint8_t want_after; /* PENDING_READ/WRITE: a fault came during our EVICT */
	bool reserved;      /* we accepted offer_from's OFFER: a frame waits for the MIGRATE */
	bool replicated;    /* home: the policy's hint; holder: the last shared GRANT's */
	uint16_t offer_from;
	int16_t offer_to;   /* home: an OFFER to this node is unanswered, or -1 */
	uint64_t wait_next; /* next page waiting for a frame, + 1 (0: none) */

	uint8_t dir; /* enum dsm_dir_state */
	uint8_t txn; /* enum txn_kind */
	uint16_t owner;
	uint16_t acks_needed;
	int16_t migrate_to; /* -1: no home move under way */
	dsm_nodeset_t copyset;
	dsm_nodeset_t unflushed; /* granted to since their last reply to us */
	struct dsm_req cur;      /* the transaction in progress */
	struct dsm_req *q_head, *q_tail;
	struct dsm_page_counters ctr;
	/* Per requesting node: reads at [n], writes at [n_nodes + n]. Made on
	 * the first miss served here, freed when the home moves away (the
	 * new home starts counting afresh, as Disco resets its counters). */
	uint32_t *node_misses;
};

struct dsm_engine {
	int self;
	int n_nodes;
	uint64_t n_pages;
	struct dsm_page *pages;
	dsm_emit_fn emit;
	void *emit_ctx;
	uint64_t next_req_id;
	dsm_nodeset_t failed;
	struct dsm_engine_counters c;
	/* Budgets (0: none). used/homes/evictable/draining are kept up to
	 * date by acct_begin()/acct_end() around every change of a page. */
	uint64_t budget, min_cache;
	uint64_t used;      /* frames held (ACCT_FRAME) */
	uint64_t homes;     /* home pages, reserved ones included */
	uint64_t evictable; /* copies dsm_engine_evict() may take */
	uint64_t draining;  /* dirty copies being evicted: frames that will free */
	uint64_t wait_head, wait_tail, waiting; /* FIFO of pages waiting for a frame (+ 1) */
	uint64_t acct_page;
	uint8_t acct_before; /* ACCT_* bits of acct_page when acct_begin() ran */
	bool acct_open;
};

#define BIT(n) ((dsm_nodeset_t)1 << (n))

static void start_request(struct dsm_engine *e, uint64_t page, bool is_write);
static void home_request(struct dsm_engine *e, uint64_t page, const struct dsm_req *r);
static void after_transaction(struct dsm_engine *e, uint64_t page);
static void emit_action(struct dsm_engine *e, enum dsm_action_kind kind, uint64_t page,
			enum dsm_prot prot, enum dsm_data_source data, int error);

/* ---- budget accounting -------------------------------------------------- */

#define ACCT_FRAME 1     /* holds a frame */
#define ACCT_HOME 2      /* ... for a home page (or a home it accepted) */
#define ACCT_EVICTABLE 4 /* a cached copy dsm_engine_evict() may take */
#define ACCT_DRAINING 8  /* a dirty copy being evicted: its frame will free */

static uint8_t page_acct(const struct dsm_page *pg)
{
	bool copy = pg->local != DSM_LOCAL_INVALID;
	bool asked = (pg->pending == PENDING_READ || pg->pending == PENDING_WRITE) && !pg->wait_room;
	uint8_t a = 0;

	if (pg->is_home || pg->reserved || copy || asked)
		a |= ACCT_FRAME;
	if (pg->is_home || pg->reserved)
		a |= ACCT_HOME;
	else if (copy && pg->pending == PENDING_NONE)
		a |= ACCT_EVICTABLE;
	if (!pg->is_home && copy && pg->pending == PENDING_EVICT)
		a |= ACCT_DRAINING;
	return a;
}

/* Every entry point changes one page at a time: between these two calls,
 * only @page's state may change. */
static void acct_begin(struct dsm_engine *e, uint64_t page)
{
	e->acct_page = page;
	e->acct_before = page_acct(&e->pages[page]);
	e->acct_open = true;
}

static void acct_add(uint64_t *ctr, uint8_t before, uint8_t after, uint8_t bit)
{
	if ((after & bit) && !(before & bit))
		(*ctr)++;
	else if (!(after & bit) && (before & bit))
		(*ctr)--;
}

static void acct_end(struct dsm_engine *e)
{
	uint8_t before = e->acct_before, after = page_acct(&e->pages[e->acct_page]);

	acct_add(&e->used, before, after, ACCT_FRAME);
	acct_add(&e->homes, before, after, ACCT_HOME);
	acct_add(&e->evictable, before, after, ACCT_EVICTABLE);
	acct_add(&e->draining, before, after, ACCT_DRAINING);
	e->acct_open = false;
}

/* Frames and home pages held right now, the open page's change included. */
static uint64_t used_now(const struct dsm_engine *e)
{
	if (!e->acct_open)
		return e->used;
	uint8_t now = page_acct(&e->pages[e->acct_page]);
	return e->used - !!(e->acct_before & ACCT_FRAME) + !!(now & ACCT_FRAME);
}

static uint64_t homes_now(const struct dsm_engine *e)
{
	if (!e->acct_open)
		return e->homes;
	uint8_t now = page_acct(&e->pages[e->acct_page]);
	return e->homes - !!(e->acct_before & ACCT_HOME) + !!(now & ACCT_HOME);
}

/* May @pg have a frame (it holds one, or one is free)? */
static bool room_for(const struct dsm_engine *e, const struct dsm_page *pg)
{
	return !e->budget || (page_acct(pg) & ACCT_FRAME) || used_now(e) < e->budget;
}

static void wait_push(struct dsm_engine *e, uint64_t page)
{
	e->pages[page].wait_next = 0;
	if (e->wait_tail)
		e->pages[e->wait_tail - 1].wait_next = page + 1;
	else
		e->wait_head = page + 1;
	e->wait_tail = page + 1;
	e->waiting++;
}

static uint64_t wait_pop(struct dsm_engine *e)
{
	uint64_t page = e->wait_head - 1;
	e->wait_head = e->pages[page].wait_next;
	if (!e->wait_head)
		e->wait_tail = 0;
	e->pages[page].wait_next = 0;
	e->waiting--;
	return page;
}

static void send_request(struct dsm_engine *e, uint64_t page);

/* Start the requests that wait for a frame, oldest first, while frames are
 * free; then, if some still wait and eviction could help, ask for room. */
static void admit_waiting(struct dsm_engine *e)
{
	while (e->wait_head && (!e->budget || e->used < e->budget)) {
		uint64_t page = wait_pop(e);
		acct_begin(e, page);
		e->pages[page].wait_room = false;
		send_request(e, page);
		acct_end(e);
	}
	if (e->waiting > e->draining && e->evictable)
		emit_action(e, DSM_ACT_NEED_ROOM, e->wait_head - 1, 0, DSM_DATA_NONE, 0);
}

/* An entry point's change of @page is done. */
static void event_end(struct dsm_engine *e)
{
	acct_end(e);
	if (e->budget)
		admit_waiting(e);
}

/* ---- actions ---------------------------------------------------------- */

static void emit_action(struct dsm_engine *e, enum dsm_action_kind kind, uint64_t page,
			enum dsm_prot prot, enum dsm_data_source data, int error)
{
	struct dsm_action a = {
		.kind = kind, .page = page, .prot = prot, .data = data, .error = error,
	};
	e->emit(e->emit_ctx, &a);
}

static void emit_send(struct dsm_engine *e, struct dsm_msg *m, enum dsm_data_source data)
{
	if (e->failed & BIT(m->dst))
		return; /* nobody to tell; the peer-failure path has cleaned up */
	m->src = (uint16_t)e->self;
	if (data != DSM_DATA_NONE)
		m->flags |= DSM_MSG_F_DATA;
	struct dsm_action a = { .kind = DSM_ACT_SEND, .page = m->page, .data = data, .msg = *m };
	e->emit(e->emit_ctx, &a);
}

static struct dsm_msg msg_to(enum dsm_msg_kind kind, uint64_t page, int dst)
{
	struct dsm_msg m;
	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.page = page;
	m.dst = (uint16_t)dst;
	return m;
}

static void wake(struct dsm_engine *e, uint64_t page, int error)
{
	emit_action(e, DSM_ACT_WAKE, page, 0, DSM_DATA_NONE, error);
}

/* ---- requester side ---------------------------------------------------- */

static bool state_permits(uint8_t local, bool is_write)
{
	return is_write ? local == DSM_LOCAL_MODIFIED : local != DSM_LOCAL_INVALID;
}

/* Our own pending request is done (granted or failed). */
static void finish_own_request(struct dsm_engine *e, uint64_t page, int error)
{
	struct dsm_page *pg = &e->pages[page];
	bool again = pg->want_write && !error && pg->local != DSM_LOCAL_MODIFIED;

	pg->pending = PENDING_NONE;
	pg->want_write = false;
	if (error)
		e->c.failed_requests++;
	wake(e, page, error);
	if (again)
		start_request(e, page, true);
}

static void start_request(struct dsm_engine *e, uint64_t page, bool is_write)
{
	struct dsm_page *pg = &e->pages[page];
	bool no_frame = !pg->is_home && !room_for(e, pg);

	pg->pending = is_write ? PENDING_WRITE : PENDING_READ;
	pg->req_id = ++e->next_req_id;
	if (is_write)
		e->c.local_write_faults++;
	else
		e->c.local_read_faults++;
	if (no_frame) {
		/* sent by admit_waiting() once a frame is free */
		pg->wait_room = true;
		wait_push(e, page);
		e->c.room_waits++;
		return;
	}
	send_request(e, page);
}

/* Our pending READ/WRITE (with its frame) goes out. */
static void send_request(struct dsm_engine *e, uint64_t page)
{
	struct dsm_page *pg = &e->pages[page];
	bool is_write = pg->pending == PENDING_WRITE;

	if (pg->is_home) {
		struct dsm_req r = {
			.req_id = pg->req_id, .requester = (uint16_t)e->self, .is_write = is_write,
		};
		home_request(e, page, &r);
		return;
	}
	if (e->failed & BIT(pg->home_hint)) {
		finish_own_request(e, page, -EHOSTDOWN);
		return;
	}
	struct dsm_msg m = msg_to(is_write ? DSM_MSG_WRITE_REQ : DSM_MSG_READ_REQ, page,
				  pg->home_hint);
	m.requester = (uint16_t)e->self;
	m.req_id = pg->req_id;
	e->c.requests_sent++;
	emit_send(e, &m, DSM_DATA_NONE);
}

static void local_fault(struct dsm_engine *e, uint64_t page, bool is_write)
{
	struct dsm_page *pg = &e->pages[page];
	/* a dirty copy being evicted is write-protected until the home takes it */
	bool evicting = pg->pending == PENDING_EVICT;

	if (state_permits(pg->local, is_write) && !(evicting && is_write)) {
		/* Already served (a racing fault's grant, or a first touch of a
		 * page this node owns): just map it and let the thread go. */
		e->c.spurious_faults++;
		emit_action(e, DSM_ACT_MAP_LOCAL, page,
			    pg->local == DSM_LOCAL_MODIFIED && !evicting ? DSM_PROT_WRITE
									 : DSM_PROT_READ,
			    DSM_DATA_NONE, 0);
		wake(e, page, 0);
		return;
	}
	if (evicting) {
		/* no request before the home has answered the EVICT */
		if (pg->want_after != PENDING_WRITE)
			pg->want_after = is_write ? PENDING_WRITE : PENDING_READ;
		return;
	}
	if (pg->pending != PENDING_NONE) {
		if (is_write && pg->pending == PENDING_READ) {
			if (pg->wait_room)
				pg->pending = PENDING_WRITE; /* not sent yet: ask for more */
			else
				pg->want_write = true;
		}
		return;
	}
	start_request(e, page, is_write);
}

void dsm_engine_local_fault(struct dsm_engine *e, uint64_t page, bool is_write)
{
	acct_begin(e, page);
	local_fault(e, page, is_write);
	event_end(e);
}

static void on_grant(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];

	if ((pg->pending != PENDING_READ && pg->pending != PENDING_WRITE) || pg->wait_room ||
	    m->req_id != pg->req_id || m->requester != e->self) {
		e->c.protocol_errors++;
		return;
	}
	if (m->flags & DSM_MSG_F_ERROR) {
		finish_own_request(e, m->page, m->error ? m->error : -EIO);
		return;
	}
	pg->home_hint = m->src;
	if (m->flags & DSM_MSG_F_EXCL) {
		if (m->flags & DSM_MSG_F_DATA) {
			emit_action(e, DSM_ACT_INSTALL, m->page, DSM_PROT_WRITE, DSM_DATA_INCOMING, 0);
		} else if (pg->local == DSM_LOCAL_SHARED) {
			emit_action(e, DSM_ACT_PROTECT, m->page, DSM_PROT_WRITE, DSM_DATA_NONE, 0);
		} else {
			e->c.protocol_errors++; /* an upgrade without a copy to upgrade */
			return;
		}
		pg->local = DSM_LOCAL_MODIFIED;
	} else {
		if (!(m->flags & DSM_MSG_F_DATA)) {
			e->c.protocol_errors++;
			return;
		}
		emit_action(e, DSM_ACT_INSTALL, m->page, DSM_PROT_READ, DSM_DATA_INCOMING, 0);
		pg->local = DSM_LOCAL_SHARED;
	}
	pg->replicated = !(m->flags & DSM_MSG_F_EXCL) && (m->flags & DSM_MSG_F_REPLICATED);
	finish_own_request(e, m->page, 0);
}

static void on_inv(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];
	/* We evicted our clean copy and the home has not seen the EVICT yet:
	 * it still counts us as a sharer, and waits for this ack. */
	bool evicted = pg->local == DSM_LOCAL_INVALID && pg->pending == PENDING_EVICT;

	if (pg->is_home || (pg->local != DSM_LOCAL_SHARED && !evicted)) {
		e->c.protocol_errors++;
		return;
	}
	if (!evicted)
		emit_action(e, DSM_ACT_DROP, m->page, 0, DSM_DATA_NONE, 0);
	pg->local = DSM_LOCAL_INVALID;
	pg->home_hint = m->src;
	struct dsm_msg ack = msg_to(DSM_MSG_INV_ACK, m->page, m->src);
	emit_send(e, &ack, DSM_DATA_NONE);
}

static void on_fetch(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];
	bool drop = m->flags & DSM_MSG_F_EXCL;

	if (pg->is_home || pg->local != DSM_LOCAL_MODIFIED) {
		e->c.protocol_errors++;
		return;
	}
	/* Stop local writers before the bytes are read for sending. */
	emit_action(e, DSM_ACT_PROTECT, m->page, DSM_PROT_READ, DSM_DATA_NONE, 0);
	struct dsm_msg reply = msg_to(DSM_MSG_FETCH_REPLY, m->page, m->src);
	emit_send(e, &reply, DSM_DATA_LOCAL);
	/* A copy we are evicting goes even if the home lets us keep it: our
	 * EVICT, still to be served, will take us off the copyset. */
	if (drop || pg->pending == PENDING_EVICT) {
		emit_action(e, DSM_ACT_DROP, m->page, 0, DSM_DATA_NONE, 0);
		pg->local = DSM_LOCAL_INVALID;
	} else {
		pg->local = DSM_LOCAL_SHARED;
	}
	pg->home_hint = m->src;
}

static void on_flush(struct dsm_engine *e, const struct dsm_msg *m)
{
	/* FIFO did the work: every GRANT the sender sent before this is in. */
	struct dsm_msg ack = msg_to(DSM_MSG_FLUSH_ACK, m->page, m->src);
	emit_send(e, &ack, DSM_DATA_NONE);
}

/* ---- home side ---------------------------------------------------------- */

static void send_grant(struct dsm_engine *e, uint64_t page, const struct dsm_req *r, bool excl,
		       enum dsm_data_source data)
{
	struct dsm_page *pg = &e->pages[page];
	struct dsm_msg m = msg_to(DSM_MSG_GRANT, page, r->requester);

	m.requester = r->requester;
	m.req_id = r->req_id;
	m.flags = excl ? DSM_MSG_F_EXCL : pg->replicated ? DSM_MSG_F_REPLICATED : 0;
	pg->unflushed |= BIT(r->requester);
	e->c.grants_sent++;
	emit_send(e, &m, data);
}

static void fail_request(struct dsm_engine *e, uint64_t page, const struct dsm_req *r, int error)
{
	if (r->is_evict)
		return; /* only a lost owner's own eviction can fail: nobody to tell */
	if (r->requester == e->self) {
		finish_own_request(e, page, error);
		return;
	}
	struct dsm_msg m = msg_to(DSM_MSG_GRANT, page, r->requester);
	m.requester = r->requester;
	m.req_id = r->req_id;
	m.flags = DSM_MSG_F_ERROR;
	m.error = error;
	emit_send(e, &m, DSM_DATA_NONE);
}

static bool requester_gone(const struct dsm_engine *e, const struct dsm_req *r)
{
	return r->requester != e->self && (e->failed & BIT(r->requester));
}

/* The home takes the exclusive copy itself (its own write, or a write
 * whose requester died meanwhile). Its copy is valid and mapped. */
static void home_take_exclusive(struct dsm_engine *e, uint64_t page)
{
	struct dsm_page *pg = &e->pages[page];

	pg->dir = DSM_DIR_HOME_EXCL;
	pg->copyset = 0;
	pg->local = DSM_LOCAL_MODIFIED;
	emit_action(e, DSM_ACT_PROTECT, page, DSM_PROT_WRITE, DSM_DATA_NONE, 0);
}

/* All other copies are gone; the home's copy is valid. Grant @r. */
static void finish_write(struct dsm_engine *e, uint64_t page, const struct dsm_req *r)
{
	struct dsm_page *pg = &e->pages[page];
	bool had_copy = pg->copyset & BIT(r->requester);

	if (r->requester == e->self || requester_gone(e, r)) {
		home_take_exclusive(e, page);
		if (r->requester == e->self)
			finish_own_request(e, page, 0);
		return;
	}
	send_grant(e, page, r, true, had_copy ? DSM_DATA_NONE : DSM_DATA_LOCAL);
	emit_action(e, DSM_ACT_DROP, page, 0, DSM_DATA_NONE, 0);
	pg->local = DSM_LOCAL_INVALID;
	pg->dir = DSM_DIR_REMOTE_EXCL;
	pg->owner = r->requester;
	pg->copyset = 0;
}

static void begin_fetch(struct dsm_engine *e, uint64_t page, const struct dsm_req *r, bool excl)
{
	struct dsm_page *pg = &e->pages[page];
	struct dsm_msg m = msg_to(DSM_MSG_FETCH, page, pg->owner);

	pg->cur = *r;
	pg->txn = excl ? TXN_FETCH_EXCL : TXN_FETCH_SHARED;
	m.flags = excl ? DSM_MSG_F_EXCL : 0;
	if (excl)
		pg->ctr.invalidations++;
	e->c.fetches_sent++;
	emit_send(e, &m, DSM_DATA_NONE);
}

static void serve_read(struct dsm_engine *e, uint64_t page, const struct dsm_req *r)
{
	struct dsm_page *pg = &e->pages[page];
	bool self = r->requester == e->self;

	switch (pg->dir) {
	case DSM_DIR_HOME_EXCL:
		if (self)
			break;
		emit_action(e, DSM_ACT_PROTECT, page, DSM_PROT_READ, DSM_DATA_NONE, 0);
		pg->local = DSM_LOCAL_SHARED;
		pg->dir = DSM_DIR_SHARED;
		pg->copyset = BIT(r->requester);
		send_grant(e, page, r, false, DSM_DATA_LOCAL);
		return;
	case DSM_DIR_SHARED:
		if (self)
			break;
		pg->copyset |= BIT(r->requester);
		send_grant(e, page, r, false, DSM_DATA_LOCAL);
		return;
	case DSM_DIR_REMOTE_EXCL:
		if (pg->owner == r->requester) {
			e->c.protocol_errors++; /* the owner cannot miss */
			return;
		}
		begin_fetch(e, page, r, false);
		return;
	}
	/* The home's own read: its copy already allows it. */
	finish_own_request(e, page, 0);
}

static void serve_write(struct dsm_engine *e, uint64_t page, const struct dsm_req *r)
{
	struct dsm_page *pg = &e->pages[page];
	bool self = r->requester == e->self;
	dsm_nodeset_t others;

	switch (pg->dir) {
	case DSM_DIR_HOME_EXCL:
		if (self) {
			finish_own_request(e, page, 0);
			return;
		}
		/* Stop local writers, send the bytes, then drop our copy. */
		emit_action(e, DSM_ACT_PROTECT, page, DSM_PROT_READ, DSM_DATA_NONE, 0);
		finish_write(e, page, r);
		return;
	case DSM_DIR_SHARED:
		others = pg->copyset & ~BIT(r->requester);
		if (!others) {
			finish_write(e, page, r);
			return;
		}
		pg->cur = *r;
		pg->txn = TXN_INV;
		pg->acks_needed = 0;
		for (int n = 0; n < e->n_nodes; n++) {
			if (!(others & BIT(n)))
				continue;
			struct dsm_msg m = msg_to(DSM_MSG_INV, page, n);
			pg->acks_needed++;
			pg->ctr.invalidations++;
			e->c.invalidations_sent++;
			emit_send(e, &m, DSM_DATA_NONE);
		}
		return;
	case DSM_DIR_REMOTE_EXCL:
		if (pg->owner == r->requester) {
			e->c.protocol_errors++;
			return;
		}
		begin_fetch(e, page, r, true);
		return;
	}
}

static void send_evict_ack(struct dsm_engine *e, uint64_t page, int to)
{
	struct dsm_msg m = msg_to(DSM_MSG_EVICT_ACK, page, to);
	emit_send(e, &m, DSM_DATA_NONE);
}

/* Node N gives its copy up. It sent no request since and sends none until
 * our EVICT_ACK, and it had none in flight when it evicted: every GRANT we
 * sent it is installed, so it leaves `unflushed` as well. */
static void serve_evict(struct dsm_engine *e, uint64_t page, const struct dsm_req *r)
{
	struct dsm_page *pg = &e->pages[page];
	int n = r->requester;

	pg->unflushed &= ~BIT(n);
	if (pg->dir == DSM_DIR_REMOTE_EXCL && pg->owner == n) {
		/* a dirty copy: pull it back like a write of our own, then ack */
		pg->ctr.evictions++;
		pg->ctr.writebacks++;
		begin_fetch(e, page, r, true);
		return;
	}
	if (pg->dir == DSM_DIR_SHARED && (pg->copyset & BIT(n))) {
		pg->ctr.evictions++;
		pg->copyset &= ~BIT(n); /* it dropped its copy before sending */
		if (!pg->copyset)
			home_take_exclusive(e, page);
	}
	/* else its copy went meanwhile (INV, FETCH): nothing to change */
	send_evict_ack(e, page, n);
}

static void home_serve(struct dsm_engine *e, uint64_t page, const struct dsm_req *r)
{
	struct dsm_page *pg = &e->pages[page];

	if (requester_gone(e, r))
		return;
	if (r->is_evict) {
		serve_evict(e, page, r);
		return;
	}
	if (pg->dir == DSM_DIR_LOST) {
		fail_request(e, page, r, -EHOSTDOWN);
		return;
	}
	if (!pg->node_misses)
		pg->node_misses = calloc(2 * (size_t)e->n_nodes, sizeof(uint32_t));
	if (pg->node_misses) /* counters are best effort; never fail a request */
		pg->node_misses[(r->is_write ? e->n_nodes : 0) + r->requester]++;
	if (r->is_write) {
		pg->ctr.write_misses++;
		serve_write(e, page, r);
	} else {
		pg->ctr.read_misses++;
		serve_read(e, page, r);
	}
}

static void enqueue(struct dsm_page *pg, const struct dsm_req *r)
{
	struct dsm_req *q = malloc(sizeof(*q));
	if (!q)
		abort(); /* a few bytes per waiting request; nothing sane to do */
	*q = *r;
	q->next = NULL;
	if (pg->q_tail)
		pg->q_tail->next = q;
	else
		pg->q_head = q;
	pg->q_tail = q;
}

static bool dequeue(struct dsm_page *pg, struct dsm_req *out)
{
	struct dsm_req *q = pg->q_head;
	if (!q)
		return false;
	pg->q_head = q->next;
	if (!pg->q_head)
		pg->q_tail = NULL;
	*out = *q;
	free(q);
	return true;
}

static void home_request(struct dsm_engine *e, uint64_t page, const struct dsm_req *r)
{
	struct dsm_page *pg = &e->pages[page];

	if (pg->txn != TXN_NONE || pg->migrate_to >= 0 || pg->q_head) {
		enqueue(pg, r);
		return;
	}
	home_serve(e, page, r);
}

static void drain_queue(struct dsm_engine *e, uint64_t page)
{
	struct dsm_page *pg = &e->pages[page];
	struct dsm_req r;

	/* Stop when a transaction starts, a home move begins, or the page left. */
	while (pg->is_home && pg->txn == TXN_NONE && pg->migrate_to < 0 && dequeue(pg, &r))
		home_serve(e, page, &r);
}

static void on_request(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];
	struct dsm_req r = {
		.req_id = m->req_id, .requester = m->requester, .hops = m->hops,
		.is_write = m->kind == DSM_MSG_WRITE_REQ, .is_evict = m->kind == DSM_MSG_EVICT,
	};

	if (pg->is_home) {
		/* A node does not accept a home while its EVICT is unanswered,
		 * so its own EVICT never comes back to it. */
		if (r.is_evict && r.requester == e->self) {
			e->c.protocol_errors++;
			return;
		}
		home_request(e, m->page, &r);
		return;
	}
	/* Not (or no longer) the home: pass it along the forwarding pointer. */
	struct dsm_msg fwd = *m;
	fwd.dst = pg->home_hint;
	fwd.hops++;
	pg->ctr.forwards++;
	e->c.requests_forwarded++;
	emit_send(e, &fwd, DSM_DATA_NONE);
}

static void on_inv_ack(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];

	if (!pg->is_home || pg->txn != TXN_INV || !(pg->copyset & BIT(m->src)) ||
	    pg->acks_needed == 0) {
		e->c.protocol_errors++;
		return;
	}
	pg->copyset &= ~BIT(m->src);
	pg->unflushed &= ~BIT(m->src);
	if (--pg->acks_needed)
		return;
	struct dsm_req r = pg->cur; /* finish_write may start a new transaction */
	pg->txn = TXN_NONE;
	finish_write(e, m->page, &r);
	after_transaction(e, m->page);
}

static void on_fetch_reply(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];
	struct dsm_req r = pg->cur;
	bool self_like;

	if (!pg->is_home || (pg->txn != TXN_FETCH_SHARED && pg->txn != TXN_FETCH_EXCL) ||
	    m->src != pg->owner || !(m->flags & DSM_MSG_F_DATA)) {
		e->c.protocol_errors++;
		return;
	}
	pg->unflushed &= ~BIT(m->src);
	/* the home keeps the data: its own write, a lost writer's, or a write-back */
	self_like = r.requester == e->self || requester_gone(e, &r) || r.is_evict;
	if (pg->txn == TXN_FETCH_SHARED) {
		emit_action(e, DSM_ACT_INSTALL, m->page, DSM_PROT_READ, DSM_DATA_INCOMING, 0);
		pg->local = DSM_LOCAL_SHARED;
		pg->dir = DSM_DIR_SHARED;
		pg->copyset = BIT(m->src);
		pg->txn = TXN_NONE;
		if (!self_like) {
			pg->copyset |= BIT(r.requester);
			send_grant(e, m->page, &r, false, DSM_DATA_LOCAL);
		}
	} else {
		pg->txn = TXN_NONE;
		pg->copyset = 0;
		if (self_like) {
			emit_action(e, DSM_ACT_INSTALL, m->page, DSM_PROT_WRITE, DSM_DATA_INCOMING, 0);
			pg->local = DSM_LOCAL_MODIFIED;
			pg->dir = DSM_DIR_HOME_EXCL;
		} else {
			send_grant(e, m->page, &r, true, DSM_DATA_INCOMING);
			pg->dir = DSM_DIR_REMOTE_EXCL;
			pg->owner = r.requester;
		}
	}
	if (r.requester == e->self)
		finish_own_request(e, m->page, 0);
	else if (r.is_evict)
		send_evict_ack(e, m->page, r.requester);
	after_transaction(e, m->page);
}

/* ---- home migration ------------------------------------------------------ */

static void forward_queue(struct dsm_engine *e, uint64_t page, int to)
{
	struct dsm_page *pg = &e->pages[page];
	struct dsm_req r;

	while (dequeue(pg, &r)) {
		struct dsm_msg m = msg_to(r.is_evict   ? DSM_MSG_EVICT
					  : r.is_write ? DSM_MSG_WRITE_REQ
						       : DSM_MSG_READ_REQ,
					  page, to);
		m.requester = r.requester;
		m.req_id = r.req_id;
		m.hops = (uint16_t)(r.hops + 1);
		e->c.requests_forwarded++;
		emit_send(e, &m, DSM_DATA_NONE);
	}
}

static void do_migrate(struct dsm_engine *e, uint64_t page)
{
	struct dsm_page *pg = &e->pages[page];
	int to = pg->migrate_to;
	struct dsm_msg m = msg_to(DSM_MSG_MIGRATE, page, to);
	enum dsm_data_source data = DSM_DATA_NONE;

	m.dir_state = pg->dir;
	m.owner = pg->owner;
	m.copyset = pg->copyset;
	switch (pg->dir) {
	case DSM_DIR_HOME_EXCL:
		emit_action(e, DSM_ACT_PROTECT, page, DSM_PROT_READ, DSM_DATA_NONE, 0);
		data = DSM_DATA_LOCAL;
		break;
	case DSM_DIR_SHARED:
		if (!(pg->copyset & BIT(to)))
			data = DSM_DATA_LOCAL;
		break;
	default:
		break;
	}
	emit_send(e, &m, data);
	if (pg->local != DSM_LOCAL_INVALID)
		emit_action(e, DSM_ACT_DROP, page, 0, DSM_DATA_NONE, 0);

	pg->local = DSM_LOCAL_INVALID;
	pg->is_home = false;
	pg->replicated = false;
	pg->home_hint = (uint16_t)to;
	pg->migrate_to = -1;
	pg->copyset = 0;
	pg->unflushed = 0;
	pg->ctr.migrations++;
	free(pg->node_misses);
	pg->node_misses = NULL;
	e->c.migrations_out++;
	forward_queue(e, page, to);
}

/* Called when the page has no transaction: continue a home move, or serve
 * the queue. */
static void after_transaction(struct dsm_engine *e, uint64_t page)
{
	struct dsm_page *pg = &e->pages[page];

	if (!pg->is_home)
		return;
	if (pg->migrate_to < 0) {
		drain_queue(e, page);
		return;
	}
	if (e->failed & BIT(pg->migrate_to)) {
		pg->migrate_to = -1; /* target died: stay home */
		drain_queue(e, page);
		return;
	}
	dsm_nodeset_t flush = pg->unflushed & ~e->failed;
	if (!flush) {
		do_migrate(e, page);
		return;
	}
	pg->txn = TXN_FLUSH;
	pg->acks_needed = 0;
	for (int n = 0; n < e->n_nodes; n++) {
		if (!(flush & BIT(n)))
			continue;
		struct dsm_msg m = msg_to(DSM_MSG_FLUSH, page, n);
		pg->acks_needed++;
		emit_send(e, &m, DSM_DATA_NONE);
	}
}

static void on_flush_ack(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];

	if (!pg->is_home || pg->txn != TXN_FLUSH || !(pg->unflushed & BIT(m->src))) {
		e->c.protocol_errors++;
		return;
	}
	pg->unflushed &= ~BIT(m->src);
	if (--pg->acks_needed)
		return;
	pg->txn = TXN_NONE;
	after_transaction(e, m->page);
}

int dsm_engine_migrate_home(struct dsm_engine *e, uint64_t page, int target)
{
	if (page >= e->n_pages || target < 0 || target >= e->n_nodes || target == e->self ||
	    (e->failed & BIT(target)))
		return -EINVAL;
	struct dsm_page *pg = &e->pages[page];
	if (!pg->is_home || pg->dir == DSM_DIR_LOST)
		return -EINVAL;
	if (pg->migrate_to >= 0 || pg->offer_to >= 0)
		return -EBUSY;
	acct_begin(e, page);
	if (e->budget) {
		/* Ask first: the target must reserve a frame. Requests are
		 * served meanwhile; the move starts with its answer. */
		struct dsm_msg m = msg_to(DSM_MSG_OFFER, page, target);
		pg->offer_to = (int16_t)target;
		e->c.offers_sent++;
		emit_send(e, &m, DSM_DATA_NONE);
	} else {
		pg->migrate_to = (int16_t)target;
		if (pg->txn == TXN_NONE)
			after_transaction(e, page);
	}
	event_end(e);
	return 0;
}

static void need_room(struct dsm_engine *e, uint64_t page, int why, int from)
{
	struct dsm_action a = { .kind = DSM_ACT_NEED_ROOM, .page = page, .error = why };
	a.msg.page = page;
	a.msg.src = (uint16_t)from;
	e->emit(e->emit_ctx, &a);
}

/* The home offers us the page's home: reserve a frame for it, or refuse. */
static void on_offer(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];
	struct dsm_msg reply = msg_to(DSM_MSG_OFFER_REPLY, m->page, m->src);
	int why = 0;

	if (pg->is_home || pg->reserved) {
		e->c.protocol_errors++;
		return;
	}
	if (pg->pending == PENDING_EVICT || pg->wait_room)
		why = -EBUSY; /* our EVICT must not come back to us as home */
	else if (e->budget && homes_now(e) + 1 > e->budget - e->min_cache)
		why = -EMLINK;
	else if (!room_for(e, pg))
		why = -ENOSPC;
	if (why) {
		reply.flags = DSM_MSG_F_ERROR;
		reply.error = why;
		e->c.offers_declined++;
		emit_send(e, &reply, DSM_DATA_NONE);
		if (why == -EMLINK || (why == -ENOSPC && e->evictable))
			need_room(e, m->page, why, m->src);
		return;
	}
	pg->reserved = true;
	pg->offer_from = m->src;
	emit_send(e, &reply, DSM_DATA_NONE);
}

static void move_refused(struct dsm_engine *e, uint64_t page, int target, int why)
{
	struct dsm_action a = { .kind = DSM_ACT_MOVE_REFUSED, .page = page, .error = why };
	a.msg.page = page;
	a.msg.dst = (uint16_t)target;
	e->c.offers_refused++;
	e->emit(e->emit_ctx, &a);
}

static void on_offer_reply(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];

	if (!pg->is_home || pg->offer_to != m->src) {
		e->c.protocol_errors++;
		return;
	}
	pg->offer_to = -1;
	if (m->flags & DSM_MSG_F_ERROR) {
		move_refused(e, m->page, m->src, m->error ? m->error : -EBUSY);
		return;
	}
	pg->migrate_to = (int16_t)m->src;
	if (pg->txn == TXN_NONE)
		after_transaction(e, m->page);
}

/* The home answered our EVICT: we may ask for the page again. */
static void on_evict_ack(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];
	uint8_t want = pg->want_after;

	if (pg->is_home || pg->pending != PENDING_EVICT || pg->local != DSM_LOCAL_INVALID) {
		e->c.protocol_errors++;
		return;
	}
	pg->home_hint = m->src;
	pg->pending = PENDING_NONE;
	pg->want_after = 0;
	if (want != 0)
		start_request(e, m->page, want == PENDING_WRITE);
}

static void on_migrate(struct dsm_engine *e, const struct dsm_msg *m)
{
	struct dsm_page *pg = &e->pages[m->page];
	dsm_nodeset_t me = BIT(e->self);
	bool has_data = m->flags & DSM_MSG_F_DATA;

	if (pg->is_home || m->dir_state > DSM_DIR_LOST) {
		e->c.protocol_errors++;
		return;
	}
	if (e->budget && !pg->reserved) {
		/* a move we did not accept (no OFFER we said yes to): taking it
		 * could overrun the budget; the sender gets failed */
		e->c.protocol_errors++;
		return;
	}
	pg->reserved = false;
	pg->replicated = false;
	pg->is_home = true;
	pg->home_hint = (uint16_t)e->self;
	pg->txn = TXN_NONE;
	pg->migrate_to = -1;
	pg->copyset = 0;
	pg->unflushed = 0;
	pg->owner = m->owner;
	pg->dir = m->dir_state;
	switch (m->dir_state) {
	case DSM_DIR_HOME_EXCL:
		if (has_data)
			emit_action(e, DSM_ACT_INSTALL, m->page, DSM_PROT_WRITE, DSM_DATA_INCOMING, 0);
		else
			e->c.protocol_errors++;
		pg->local = DSM_LOCAL_MODIFIED;
		break;
	case DSM_DIR_SHARED: {
		dsm_nodeset_t others = m->copyset & ~me;
		if (has_data)
			emit_action(e, DSM_ACT_INSTALL, m->page,
				    others ? DSM_PROT_READ : DSM_PROT_WRITE, DSM_DATA_INCOMING, 0);
		else if (!others)
			emit_action(e, DSM_ACT_PROTECT, m->page, DSM_PROT_WRITE, DSM_DATA_NONE, 0);
		if (others) {
			pg->copyset = others;
			pg->local = DSM_LOCAL_SHARED;
		} else {
			pg->dir = DSM_DIR_HOME_EXCL;
			pg->local = DSM_LOCAL_MODIFIED;
		}
		break;
	}
	case DSM_DIR_REMOTE_EXCL:
		if (m->owner == e->self)
			pg->dir = DSM_DIR_HOME_EXCL; /* we are MODIFIED already */
		break;
	default:
		break;
	}
	e->c.migrations_in++;
	/* Threads that waited for this page may find the new state enough. */
	wake(e, m->page, 0);
}

/* ---- entry points -------------------------------------------------------- */

int dsm_engine_receive(struct dsm_engine *e, const struct dsm_msg *m)
{
	if (m->kind < DSM_MSG_READ_REQ || m->kind > DSM_MSG_KIND_MAX || m->page >= e->n_pages ||
	    m->src >= e->n_nodes || m->src == e->self || m->requester >= e->n_nodes ||
	    m->owner >= e->n_nodes || (m->flags & ~DSM_MSG_F_KNOWN) ||
	    (e->n_nodes < DSM_MAX_NODES && (m->copyset >> e->n_nodes)))
		return -EINVAL;
	if (m->hops > 4 * DSM_MAX_NODES)
		return -ELOOP;

	uint64_t errors_before = e->c.protocol_errors;
	acct_begin(e, m->page);
	switch (m->kind) {
	case DSM_MSG_READ_REQ:
	case DSM_MSG_WRITE_REQ:
	case DSM_MSG_EVICT:
		on_request(e, m);
		break;
	case DSM_MSG_GRANT:
		on_grant(e, m);
		break;
	case DSM_MSG_INV:
		on_inv(e, m);
		break;
	case DSM_MSG_INV_ACK:
		on_inv_ack(e, m);
		break;
	case DSM_MSG_FETCH:
		on_fetch(e, m);
		break;
	case DSM_MSG_FETCH_REPLY:
		on_fetch_reply(e, m);
		break;
	case DSM_MSG_MIGRATE:
		on_migrate(e, m);
		break;
	case DSM_MSG_FLUSH:
		on_flush(e, m);
		break;
	case DSM_MSG_FLUSH_ACK:
		on_flush_ack(e, m);
		break;
	case DSM_MSG_EVICT_ACK:
		on_evict_ack(e, m);
		break;
	case DSM_MSG_OFFER:
		on_offer(e, m);
		break;
	case DSM_MSG_OFFER_REPLY:
		on_offer_reply(e, m);
		break;
	}
	event_end(e);
	return e->c.protocol_errors == errors_before ? 0 : -EPROTO;
}

/* ---- peer failure -------------------------------------------------------- */

static void drop_queued_from(struct dsm_page *pg, int peer)
{
	struct dsm_req **pp = &pg->q_head;
	pg->q_tail = NULL;
	while (*pp) {
		struct dsm_req *q = *pp;
		if (q->requester == peer) {
			*pp = q->next;
			free(q);
			continue;
		}
		pg->q_tail = q;
		pp = &q->next;
	}
}

static void home_forget_peer(struct dsm_engine *e, uint64_t page, int peer)
{
	struct dsm_page *pg = &e->pages[page];
	dsm_nodeset_t bit = BIT(peer);
	/* The INV targets are the copyset minus the requester. */
	bool awaited = (pg->txn == TXN_INV && (pg->copyset & ~BIT(pg->cur.requester) & bit)) ||
		       (pg->txn == TXN_FLUSH && (pg->unflushed & bit));

	drop_queued_from(pg, peer);
	pg->copyset &= ~bit;
	pg->unflushed &= ~bit;

	if ((pg->txn == TXN_FETCH_SHARED || pg->txn == TXN_FETCH_EXCL) && pg->owner == peer) {
		struct dsm_req r = pg->cur;
		pg->txn = TXN_NONE;
		pg->dir = DSM_DIR_LOST;
		fail_request(e, page, &r, -EHOSTDOWN);
		after_transaction(e, page);
		return;
	}
	if (pg->offer_to == peer) {
		pg->offer_to = -1;
		move_refused(e, page, peer, -EHOSTDOWN);
	}
	if (pg->dir == DSM_DIR_REMOTE_EXCL && pg->owner == peer)
		pg->dir = DSM_DIR_LOST; /* the only copy died with it */
	if (pg->dir == DSM_DIR_SHARED && !pg->copyset && pg->txn != TXN_INV)
		home_take_exclusive(e, page);
	if (awaited && --pg->acks_needed == 0) {
		enum txn_kind t = pg->txn;
		struct dsm_req r = pg->cur;
		pg->txn = TXN_NONE;
		if (t == TXN_INV)
			finish_write(e, page, &r);
		after_transaction(e, page);
	}
}

void dsm_engine_peer_failed(struct dsm_engine *e, int peer)
{
	if (peer < 0 || peer >= e->n_nodes || peer == e->self || (e->failed & BIT(peer)))
		return;
	e->failed |= BIT(peer);
	/* A pending request is never abandoned here, even if it went to the
	 * failed node: that node may have forwarded it to a live home, whose
	 * GRANT (maybe with the only copy of the page) must still find the
	 * request. A request that is really lost is reported by the
	 * runtime's fault timeout. New requests to a failed hint fail at once
	 * (start_request): nothing of theirs is in flight. */
	for (uint64_t p = 0; p < e->n_pages; p++) {
		struct dsm_page *pg = &e->pages[p];
		if (!pg->is_home && !(pg->reserved && pg->offer_from == peer))
			continue;
		acct_begin(e, p);
		if (pg->is_home)
			home_forget_peer(e, p, peer);
		else
			pg->reserved = false; /* its MIGRATE will never come */
		acct_end(e);
	}
	if (e->budget)
		admit_waiting(e);
}

/* ---- life cycle and introspection ----------------------------------------- */

struct dsm_engine *dsm_engine_create(int self, int n_nodes, uint64_t n_pages,
				     int (*initial_home)(uint64_t page, void *ctx), void *ctx,
				     dsm_emit_fn emit, void *emit_ctx)
{
	if (self < 0 || n_nodes < 1 || n_nodes > DSM_MAX_NODES || self >= n_nodes || !n_pages)
		return NULL;
	struct dsm_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->pages = calloc(n_pages, sizeof(*e->pages));
	if (!e->pages) {
		free(e);
		return NULL;
	}
	e->self = self;
	e->n_nodes = n_nodes;
	e->n_pages = n_pages;
	e->emit = emit;
	e->emit_ctx = emit_ctx;
	for (uint64_t p = 0; p < n_pages; p++) {
		struct dsm_page *pg = &e->pages[p];
		int home = initial_home(p, ctx);
		if (home < 0 || home >= n_nodes)
			home = 0;
		pg->home_hint = (uint16_t)home;
		pg->migrate_to = -1;
		pg->offer_to = -1;
		pg->is_home = home == self;
		pg->dir = DSM_DIR_HOME_EXCL;
		/* A home starts as the exclusive owner of a zero page. */
		pg->local = pg->is_home ? DSM_LOCAL_MODIFIED : DSM_LOCAL_INVALID;
		if (pg->is_home) {
			e->used++;
			e->homes++;
		}
	}
	return e;
}

int dsm_engine_set_budget(struct dsm_engine *e, uint64_t frames, uint64_t min_cache)
{
	if (!frames) {
		e->budget = e->min_cache = 0;
		return 0;
	}
	if (!min_cache || min_cache >= frames)
		return -EINVAL;
	if (e->homes > frames - min_cache)
		return -ENOSPC;
	e->budget = frames;
	e->min_cache = min_cache;
	return 0;
}

bool dsm_engine_evictable(const struct dsm_engine *e, uint64_t page)
{
	return e->budget && page < e->n_pages &&
	       (page_acct(&e->pages[page]) & ACCT_EVICTABLE) &&
	       !(e->failed & BIT(e->pages[page].home_hint));
}

int dsm_engine_evict(struct dsm_engine *e, uint64_t page)
{
	if (page >= e->n_pages || !e->budget)
		return -EINVAL;
	struct dsm_page *pg = &e->pages[page];
	if (pg->is_home)
		return -EINVAL;
	if (pg->local == DSM_LOCAL_INVALID)
		return -ENOENT;
	if (pg->pending != PENDING_NONE || pg->reserved)
		return -EBUSY;
	if (e->failed & BIT(pg->home_hint))
		return -EHOSTDOWN;

	struct dsm_msg m = msg_to(DSM_MSG_EVICT, page, pg->home_hint);
	m.requester = (uint16_t)e->self;
	m.req_id = ++e->next_req_id;
	acct_begin(e, page);
	if (pg->local == DSM_LOCAL_SHARED) {
		/* The home has the data: drop now, the frame is free at once. */
		emit_action(e, DSM_ACT_DROP, page, 0, DSM_DATA_NONE, 0);
		pg->local = DSM_LOCAL_INVALID;
		e->c.evictions++;
	} else {
		/* The only copy: keep it (read-only) until the home FETCHes it. */
		emit_action(e, DSM_ACT_PROTECT, page, DSM_PROT_READ, DSM_DATA_NONE, 0);
		e->c.writebacks++;
#ifdef DSM_MUTANT_WRITEBACK_NO_WAIT
		/* MUTATION (tests only, dsm-sim-mutant): drop the dirty copy
		 * without waiting for the home to take it. Must be caught. */
		emit_action(e, DSM_ACT_DROP, page, 0, DSM_DATA_NONE, 0);
		pg->local = DSM_LOCAL_INVALID;
#endif
	}
	pg->pending = PENDING_EVICT;
	pg->want_after = 0;
	emit_send(e, &m, DSM_DATA_NONE);
	event_end(e);
	return 0;
}

uint64_t dsm_engine_room_wanted(const struct dsm_engine *e)
{
	return e->waiting > e->draining ? e->waiting - e->draining : 0;
}

uint64_t dsm_engine_frames_used(const struct dsm_engine *e)
{
	return e->used;
}

uint64_t dsm_engine_home_frames(const struct dsm_engine *e)
{
	return e->homes;
}

void dsm_engine_set_replicated(struct dsm_engine *e, uint64_t page, bool replicated)
{
	if (page < e->n_pages && e->pages[page].is_home)
		e->pages[page].replicated = replicated;
}

bool dsm_engine_replicated(const struct dsm_engine *e, uint64_t page)
{
	return page < e->n_pages && e->pages[page].replicated;
}

void dsm_engine_destroy(struct dsm_engine *e)
{
	if (!e)
		return;
	for (uint64_t p = 0; p < e->n_pages; p++) {
		struct dsm_req r;
		while (dequeue(&e->pages[p], &r))
			;
		free(e->pages[p].node_misses);
	}
	free(e->pages);
	free(e);
}

enum dsm_local_state dsm_engine_local_state(const struct dsm_engine *e, uint64_t page)
{
	return e->pages[page].local;
}

bool dsm_engine_is_home(const struct dsm_engine *e, uint64_t page)
{
	return e->pages[page].is_home;
}

int dsm_engine_home_hint(const struct dsm_engine *e, uint64_t page)
{
	return e->pages[page].home_hint;
}

enum dsm_dir_state dsm_engine_dir_state(const struct dsm_engine *e, uint64_t page)
{
	return e->pages[page].dir;
}

dsm_nodeset_t dsm_engine_copyset(const struct dsm_engine *e, uint64_t page)
{
	return e->pages[page].copyset;
}

int dsm_engine_owner(const struct dsm_engine *e, uint64_t page)
{
	return e->pages[page].owner;
}

bool dsm_engine_pending(const struct dsm_engine *e, uint64_t page)
{
	return e->pages[page].pending != PENDING_NONE;
}

bool dsm_engine_dir_busy(const struct dsm_engine *e, uint64_t page)
{
	const struct dsm_page *pg = &e->pages[page];
	return pg->is_home &&
	       (pg->txn != TXN_NONE || pg->q_head || pg->migrate_to >= 0 || pg->offer_to >= 0);
}

const struct dsm_page_counters *dsm_engine_page_counters(const struct dsm_engine *e,
							 uint64_t page)
{
	return &e->pages[page].ctr;
}

bool dsm_engine_page_node_misses(const struct dsm_engine *e, uint64_t page,
				 uint32_t *read_misses, uint32_t *write_misses)
{
	const uint32_t *m = e->pages[page].node_misses;
	for (int n = 0; n < e->n_nodes; n++) {
		read_misses[n] = m ? m[n] : 0;
		write_misses[n] = m ? m[e->n_nodes + n] : 0;
	}
	return m != NULL;
}

void dsm_engine_page_node_misses_clear(struct dsm_engine *e, uint64_t page)
{
	free(e->pages[page].node_misses);
	e->pages[page].node_misses = NULL;
}

const struct dsm_engine_counters *dsm_engine_counters(const struct dsm_engine *e)
{
	return &e->c;
}

const char *dsm_msg_kind_name(enum dsm_msg_kind k)
{
	static const char *const names[] = {
		[DSM_MSG_READ_REQ] = "READ_REQ", [DSM_MSG_WRITE_REQ] = "WRITE_REQ",
		[DSM_MSG_GRANT] = "GRANT", [DSM_MSG_INV] = "INV", [DSM_MSG_INV_ACK] = "INV_ACK",
		[DSM_MSG_FETCH] = "FETCH", [DSM_MSG_FETCH_REPLY] = "FETCH_REPLY",
		[DSM_MSG_MIGRATE] = "MIGRATE", [DSM_MSG_FLUSH] = "FLUSH",
		[DSM_MSG_FLUSH_ACK] = "FLUSH_ACK", [DSM_MSG_EVICT] = "EVICT",
		[DSM_MSG_EVICT_ACK] = "EVICT_ACK", [DSM_MSG_OFFER] = "OFFER",
		[DSM_MSG_OFFER_REPLY] = "OFFER_REPLY",
	};
	return k >= DSM_MSG_READ_REQ && k <= DSM_MSG_KIND_MAX ? names[k] : "?";
}

const char *dsm_local_state_name(enum dsm_local_state s)
{
	static const char *const names[] = { "INVALID", "SHARED", "MODIFIED" };
	return s <= DSM_LOCAL_MODIFIED ? names[s] : "?";
}

const char *dsm_dir_state_name(enum dsm_dir_state s)
{
	static const char *const names[] = { "HOME_EXCL", "SHARED", "REMOTE_EXCL", "LOST" };
	return s <= DSM_DIR_LOST ? names[s] : "?";
}
