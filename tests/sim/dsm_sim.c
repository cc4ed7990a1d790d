// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Deterministic simulator of the DSM protocol engine (dsm/protocol.c).
 *
 * N nodes, each with the real engine and a few simulated CPUs, share P
 * pages. Every step picks one random event from a seeded generator:
 * a CPU reads or writes a page (through a simulated page table, faulting
 * into the engine when the mapping does not allow the access), a message
 * is delivered from a random channel (per-channel FIFO is kept, so
 * arbitrary delays between channels are explored), a home migration is
 * requested, or a stale fault is injected (as userfaultfd can deliver).
 *
 * After every step it checks:
 *   - at most one node holds a page MODIFIED, and then nobody holds it SHARED;
 *   - the simulated mapping matches the engine (INVALID = unmapped,
 *     SHARED = read-only) and every valid copy holds the last value written;
 *   - every completed read returned the last value written (SC);
 *   - at most one node is home for a page; the engine saw no protocol error.
 * Periodically, and at the end, it stops generating work and delivers every
 * message: then no CPU may still wait, no request may be pending and every
 * page must have exactly one idle home (no request waits forever).
 *
 * With --one-sided it also models how the runtime moves page bytes by RDMA
 * READ (dsm/one_sided.c, docs/transport.md): every node keeps the version
 * word of each page (odd while its copy may change), a requester sending a
 * READ_REQ to the home reads the home's word, page and word again at
 * random moments before it handles the answer, the home grants from a
 * stable copy without the bytes, and the requester takes what it read only
 * if both words equal the GRANT's, else reads again while handling it
 * (when the home's copy must be the granted one: checked). The invariants
 * above then check that the bytes taken were the right ones;
 * --one-sided-unchecked drops the version check (a mutation the run must
 * catch).
 *
 * With --budget N every node holds at most N pages (docs/protocol.md,
 * "Budgets and eviction"): home pages, cached copies and reserved frames.
 * A node's requests then wait for a free frame and the engine asks for
 * room (NEED_ROOM); the simulated runtime answers at a random later step,
 * choosing victims with the eviction clock (dsm/evict.c), and --evict
 * PERMILLE adds evictions of random copies at random moments, racing with
 * everything else; home moves are offered and may be refused, and a node
 * that refuses for want of room for home pages hands one back (with
 * --policy, Disco's choice; else a random one). After every step it also
 * checks that
 *   - no node maps more pages than its budget, nor does the engine count
 *     more frames than that (nor fewer than the pages it maps);
 *   - no page is lost: exactly one node is its home, or one MIGRATE is in
 *     flight, and the last value written is in a valid copy or in a message
 *     on its way;
 * and, when the system is quiet, that every directory is exact (names
 * precisely the copies that exist) and the engine's frame count is exactly
 * the home pages plus the copies held. dsm-sim-mutant is this simulator
 * over an engine built with DSM_MUTANT_WRITEBACK_NO_WAIT (a dirty copy is
 * dropped when its EVICT goes out): a budget run must fail.
 *
 * A failure prints the seed and the command that replays it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm/evict.h"
#include "dsm/policy.h"
#include "dsm/protocol.h"

#ifndef DSM_SIM_NAME
#define DSM_SIM_NAME "dsm-sim"
#endif

#define MAX_NODES 8
#define MAX_PAGES 64
#define MAX_CPUS 4

struct sim_msg {
	struct sim_msg *next;
	struct dsm_msg m;
	bool has_data;
	uint64_t value;
	bool read_posted;      /* READ_REQ: the requester reads the home's copy */
	bool by_read;          /* GRANT without the bytes */
	uint64_t read_version; /* ... the home's version word at the grant */
};

/* A requester's reads of the home's page (--one-sided). */
struct read_ahead {
	bool posted, done;
	int from;
	uint64_t v1, value, v2;
};

struct channel {
	struct sim_msg *head, *tail;
	unsigned len;
};

enum cpu_state { CPU_IDLE, CPU_BLOCKED, CPU_WOKEN };

struct cpu {
	enum cpu_state state;
	uint64_t page;
	bool is_write;
};

struct sim_node {
	int id;
	struct dsm_engine *e;
	bool present[MAX_PAGES];
	bool writable[MAX_PAGES];
	uint64_t value[MAX_PAGES];   /* also what a dropped copy's file page holds */
	uint64_t ver[MAX_PAGES];     /* version words (--one-sided) */
	uint64_t wanted[MAX_PAGES];  /* home: requesters reading it themselves */
	struct read_ahead ahead[MAX_PAGES];
	struct cpu cpus[MAX_CPUS];
	const struct sim_msg *incoming; /* message being handled, for INCOMING data */
	/* budgets: the simulated runtime's side */
	struct dsm_evict_clock *clock;
	bool need_room;  /* the engine asked for room (NEED_ROOM 0 / -ENOSPC) */
	int hand_to;     /* NEED_ROOM -EMLINK: hand a home page to this node, or -1 */
};

struct sim {
	uint64_t seed, rng;
	int n_nodes, n_pages, n_cpus;
	uint64_t events;
	unsigned migrate_permille;
	bool per_page_fifo;
	bool one_sided, one_sided_unchecked;
	uint64_t budget, min_cache;    /* frames per node (0: no budget) */
	unsigned evict_permille;       /* evictions of random copies */
	uint64_t policy_every;        /* run Disco's policy on every node this often (0: never) */
	struct dsm_policy *policy[MAX_NODES];
	bool policy_move[MAX_NODES][MAX_PAGES]; /* the last move offered was the policy's */
	uint64_t policy_migrations;
	uint64_t drain_every;
	struct sim_node nodes[MAX_NODES];
	struct channel ch[MAX_NODES][MAX_NODES];
	unsigned in_flight;
	uint64_t last_written[MAX_PAGES];
	uint64_t version;
	uint64_t step;
	struct {
		uint64_t reads, writes, delivered, migrations_asked, migrations_started, faults,
			stale_faults, drains, granted_by_read, reads_taken, rereads;
		uint64_t room_asked, room_evictions, random_evictions, moves_refused, handbacks;
		unsigned max_in_flight;
	} st;
};

static struct sim S;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "dsm-sim: FAIL at step %" PRIu64 ": ", S.step);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ndsm-sim: replay with: " DSM_SIM_NAME " --seed %" PRIu64 " --nodes %d --pages %d "
		"--cpus %d --events %" PRIu64 " --migrate %u --drain-every %" PRIu64 "%s --policy %" PRIu64
		"%s",
		S.seed, S.n_nodes, S.n_pages, S.n_cpus, S.events, S.migrate_permille,
		S.drain_every, S.per_page_fifo ? " --per-page-fifo" : "", S.policy_every,
		S.one_sided_unchecked ? " --one-sided-unchecked" : S.one_sided ? " --one-sided" : "");
	if (S.budget)
		fprintf(stderr, " --budget %" PRIu64 " --min-cache %" PRIu64 " --evict %u", S.budget,
			S.min_cache, S.evict_permille);
	fprintf(stderr, "\n");
	exit(1);
}

static uint64_t rnd(void)
{
	/* xorshift64* */
	S.rng ^= S.rng >> 12;
	S.rng ^= S.rng << 25;
	S.rng ^= S.rng >> 27;
	return S.rng * 2685821657736338717ULL;
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static int initial_home(uint64_t page, void *ctx)
{
	(void)ctx;
	return (int)(page % (uint64_t)S.n_nodes);
}

/* ---- one-sided transfer (--one-sided), as dsm/one_sided.c does it --------- */

/* The runtime's version word rules (region_ver_unstable/stable). */
static void set_writable(struct sim_node *n, uint64_t p, bool writable)
{
	if (writable && !(n->ver[p] & 1))
		n->ver[p]++; /* before the copy may change */
	n->writable[p] = writable;
	if (!writable && (n->ver[p] & 1))
		n->ver[p]++; /* after it no longer can */
}

/* Complete the requester's reads of @p: its page read lands at a random
 * moment between the two version reads (at the first, or now), then the
 * second version read. */
static void read_ahead_step(struct sim_node *r, uint64_t p)
{
	struct read_ahead *ra = &r->ahead[p];
	struct sim_node *h = &S.nodes[ra->from];
	if (!ra->posted || ra->done)
		return;
	if (rnd() & 1)
		ra->value = h->value[p];
	ra->v2 = h->ver[p];
	ra->done = true;
}

/* Requester R sends a READ_REQ straight to @home: post the three reads
 * (the first word and, for now, the page are read at once). */
static bool read_ahead_post(struct sim_node *r, const struct dsm_msg *m)
{
	uint64_t p = m->page;
	if (!S.one_sided || m->kind != DSM_MSG_READ_REQ || m->requester != r->id || m->hops ||
	    r->present[p])
		return false;
	struct sim_node *h = &S.nodes[m->dst];
	r->ahead[p] = (struct read_ahead){ .posted = true, .from = m->dst, .v1 = h->ver[p],
					   .value = h->value[p] };
	return true;
}

/* Home: may this GRANT go without its bytes? */
static bool grant_by_read(struct sim_node *h, const struct dsm_msg *m, uint64_t *version)
{
	uint64_t p = m->page, bit = 1ull << m->dst;
	if (!S.one_sided || m->kind != DSM_MSG_GRANT || (m->flags & DSM_MSG_F_EXCL) ||
	    !(h->wanted[p] & bit))
		return false;
	h->wanted[p] &= ~bit;
	if (!h->present[p] || h->writable[p] || (h->ver[p] & 1))
		return false;
	*version = h->ver[p];
	S.st.granted_by_read++;
	return true;
}

/* Requester, handling a GRANT by read from @h: the bytes it will install. */
static uint64_t read_payload(struct sim_node *r, struct sim_node *h, const struct sim_msg *sm)
{
	uint64_t p = sm->m.page;
	struct read_ahead *ra = &r->ahead[p];
	read_ahead_step(r, p); /* the runtime waits for its reads first */
	if (ra->posted && ra->from == h->id &&
	    (S.one_sided_unchecked ||
	     (ra->v1 == sm->read_version && ra->v2 == sm->read_version && !(ra->v1 & 1)))) {
		ra->posted = false;
		S.st.reads_taken++;
		return ra->value;
	}
	ra->posted = false;
	/* Read again now: the home's copy cannot have changed since the GRANT. */
	S.st.rereads++;
	if (h->ver[p] != sm->read_version)
		fail("page %" PRIu64 ": node %d's copy changed under its GRANT to node %d "
		     "(version %" PRIu64 ", granted %" PRIu64 ")", p, h->id, r->id, h->ver[p],
		     sm->read_version);
	return h->value[p];
}

/* ---- the engine's actions, applied to the simulated node ---------------- */

static void emit(void *ctx, const struct dsm_action *a)
{
	struct sim_node *n = ctx;
	uint64_t p = a->page;

	switch (a->kind) {
	case DSM_ACT_SEND: {
		struct sim_msg *sm = calloc(1, sizeof(*sm));
		if (!sm)
			fail("out of memory");
		sm->m = a->msg;
		if (a->msg.dst >= S.n_nodes || a->msg.dst == n->id)
			fail("node %d sends %s to bad node %d", n->id, dsm_msg_kind_name(a->msg.kind),
			     a->msg.dst);
		sm->read_posted = read_ahead_post(n, &a->msg);
		if (a->data == DSM_DATA_LOCAL && grant_by_read(n, &a->msg, &sm->read_version)) {
			sm->by_read = true;
		} else if (a->data == DSM_DATA_LOCAL) {
			if (!n->present[p])
				fail("node %d sends page %" PRIu64 " it does not hold", n->id, p);
			sm->has_data = true;
			sm->value = n->value[p];
		} else if (a->data == DSM_DATA_INCOMING) {
			if (!n->incoming || !n->incoming->has_data)
				fail("node %d forwards data it did not receive", n->id);
			sm->has_data = true;
			sm->value = n->incoming->value;
		}
		if (((a->msg.flags & DSM_MSG_F_DATA) != 0) != (sm->has_data || sm->by_read))
			fail("DATA flag does not match payload");
		struct channel *c = &S.ch[n->id][a->msg.dst];
		if (c->tail)
			c->tail->next = sm;
		else
			c->head = sm;
		c->tail = sm;
		c->len++;
		if (++S.in_flight > S.st.max_in_flight)
			S.st.max_in_flight = S.in_flight;
		break;
	}
	case DSM_ACT_INSTALL:
		if (!n->incoming || !n->incoming->has_data)
			fail("node %d installs page %" PRIu64 " without data", n->id, p);
		set_writable(n, p, true); /* being filled */
		n->present[p] = true;
		n->value[p] = n->incoming->value;
		set_writable(n, p, a->prot == DSM_PROT_WRITE);
		dsm_evict_touch(n->clock, p);
		break;
	case DSM_ACT_PROTECT:
		if (!n->present[p])
			fail("node %d protects absent page %" PRIu64, n->id, p);
		set_writable(n, p, a->prot == DSM_PROT_WRITE);
		break;
	case DSM_ACT_MAP_LOCAL:
		if (!n->present[p])
			fail("node %d maps absent page %" PRIu64, n->id, p);
		set_writable(n, p, a->prot == DSM_PROT_WRITE);
		break;
	case DSM_ACT_DROP:
		n->present[p] = false;
		set_writable(n, p, false);
		break;
	case DSM_ACT_WAKE:
		if (a->error)
			fail("node %d page %" PRIu64 ": fault failed with %d", n->id, p, a->error);
		for (int i = 0; i < S.n_cpus; i++)
			if (n->cpus[i].state == CPU_BLOCKED && n->cpus[i].page == p)
				n->cpus[i].state = CPU_WOKEN;
		break;
	case DSM_ACT_NEED_ROOM:
		/* answered at a random later step (step_room), as the runtime
		 * answers once the engine call has returned */
		if (!S.budget)
			fail("node %d: NEED_ROOM without a budget", n->id);
		S.st.room_asked++;
		if (a->error == -EMLINK)
			n->hand_to = a->msg.src;
		else if (a->error == 0 || a->error == -ENOSPC)
			n->need_room = true;
		else
			fail("node %d: NEED_ROOM with error %d", n->id, a->error);
		break;
	case DSM_ACT_MOVE_REFUSED:
		if (!S.budget)
			fail("node %d: MOVE_REFUSED without a budget", n->id);
		S.st.moves_refused++;
		if (S.policy_every && S.policy_move[n->id][p]) {
			S.policy_move[n->id][p] = false;
			dsm_policy_move_refused(S.policy[n->id], p);
		}
		break;
	}
}

/* ---- invariants ------------------------------------------------------------ */

static void check_budgets(void)
{
	for (int i = 0; i < S.n_nodes; i++) {
		struct sim_node *n = &S.nodes[i];
		uint64_t mapped = 0, used = dsm_engine_frames_used(n->e);
		for (int p = 0; p < S.n_pages; p++)
			mapped += n->present[p];
		if (mapped > S.budget || used > S.budget)
			fail("node %d over its budget of %" PRIu64 ": %" PRIu64 " pages mapped, %" PRIu64
			     " frames counted", i, S.budget, mapped, used);
		if (mapped > used)
			fail("node %d maps %" PRIu64 " pages but counts %" PRIu64 " frames", i, mapped,
			     used);
		if (dsm_engine_home_frames(n->e) > S.budget - S.min_cache)
			fail("node %d holds %" PRIu64 " home pages, more than %" PRIu64, i,
			     dsm_engine_home_frames(n->e), S.budget - S.min_cache);
	}
}

static void check_invariants(void)
{
	int migrating[MAX_PAGES] = { 0 };
	bool last_in_flight[MAX_PAGES] = { false };

	for (int a = 0; a < S.n_nodes; a++)
		for (int b = 0; b < S.n_nodes; b++)
			for (const struct sim_msg *q = S.ch[a][b].head; q; q = q->next) {
				if (q->m.kind == DSM_MSG_MIGRATE)
					migrating[q->m.page]++;
				if (q->has_data && q->value == S.last_written[q->m.page])
					last_in_flight[q->m.page] = true;
			}
	for (int p = 0; p < S.n_pages; p++) {
		int modified = -1, shared = 0, homes = 0;
		for (int i = 0; i < S.n_nodes; i++) {
			struct sim_node *n = &S.nodes[i];
			enum dsm_local_state ls = dsm_engine_local_state(n->e, p);
			if (dsm_engine_is_home(n->e, p))
				homes++;
			if (ls == DSM_LOCAL_MODIFIED) {
				if (modified >= 0)
					fail("page %d: two writers, nodes %d and %d", p, modified, i);
				modified = i;
			} else if (ls == DSM_LOCAL_SHARED) {
				shared++;
			}
			if (ls == DSM_LOCAL_INVALID && n->present[p])
				fail("page %d: node %d INVALID but still mapped", p, i);
			if (ls == DSM_LOCAL_SHARED && n->writable[p])
				fail("page %d: node %d SHARED but mapped writable", p, i);
			if (ls != DSM_LOCAL_INVALID && !n->present[p])
				fail("page %d: node %d %s but holds no copy", p, i,
				     dsm_local_state_name(ls));
			if (ls != DSM_LOCAL_INVALID && n->value[p] != S.last_written[p])
				fail("page %d: node %d %s holds %" PRIu64 ", last write was %" PRIu64,
				     p, i, dsm_local_state_name(ls), n->value[p], S.last_written[p]);
			if (dsm_engine_counters(n->e)->protocol_errors)
				fail("node %d: protocol error", i);
		}
		if (modified >= 0 && shared)
			fail("page %d: writer %d coexists with %d readers", p, modified, shared);
		if (homes + migrating[p] != 1)
			fail("page %d: %d homes and %d MIGRATE in flight", p, homes, migrating[p]);
		/* valid copies hold the last write (checked above): is there one? */
		if (modified < 0 && !shared && !last_in_flight[p])
			fail("page %d lost: no valid copy holds its last write %" PRIu64
			     " and no message carries it", p, S.last_written[p]);
	}
	if (S.budget)
		check_budgets();
}

/* When quiet: every directory names exactly the copies that exist, and
 * the engine counts exactly its home pages and its copies as frames. */
static void check_directories_exact(void)
{
	uint64_t frames[MAX_NODES] = { 0 };

	for (int p = 0; p < S.n_pages; p++) {
		int h = -1;
		for (int i = 0; i < S.n_nodes; i++) {
			struct dsm_engine *e = S.nodes[i].e;
			if (dsm_engine_is_home(e, p))
				h = i;
			frames[i] += dsm_engine_is_home(e, p) ||
				     dsm_engine_local_state(e, p) != DSM_LOCAL_INVALID;
		}
		struct dsm_engine *he = S.nodes[h].e;
		enum dsm_dir_state d = dsm_engine_dir_state(he, p);
		dsm_nodeset_t cs = dsm_engine_copyset(he, p);
		for (int i = 0; i < S.n_nodes; i++) {
			enum dsm_local_state ls = dsm_engine_local_state(S.nodes[i].e, p);
			enum dsm_local_state want =
				d == DSM_DIR_HOME_EXCL ? (i == h ? DSM_LOCAL_MODIFIED : DSM_LOCAL_INVALID)
				: d == DSM_DIR_SHARED  ? (i == h || (cs >> i & 1) ? DSM_LOCAL_SHARED
										  : DSM_LOCAL_INVALID)
				: dsm_engine_owner(he, p) == i ? DSM_LOCAL_MODIFIED
							       : DSM_LOCAL_INVALID;
			if (d == DSM_DIR_LOST || (d == DSM_DIR_SHARED && !cs) || ls != want)
				fail("page %d quiet: home %d says %s (copyset 0x%llx, owner %d) but "
				     "node %d is %s", p, h, dsm_dir_state_name(d), (unsigned long long)cs,
				     dsm_engine_owner(he, p), i, dsm_local_state_name(ls));
		}
	}
	for (int i = 0; i < S.n_nodes; i++) {
		struct dsm_engine *e = S.nodes[i].e;
		if (dsm_engine_frames_used(e) != frames[i] || dsm_engine_room_wanted(e))
			fail("node %d quiet: counts %" PRIu64 " frames for %" PRIu64 " home pages and "
			     "copies, %" PRIu64 " wanted", i, dsm_engine_frames_used(e), frames[i],
			     dsm_engine_room_wanted(e));
	}
}

/* ---- events -------------------------------------------------------------------- */

/* The CPU tries its access through the simulated page table. */
static void cpu_access(struct sim_node *n, struct cpu *c)
{
	uint64_t p = c->page;

	dsm_evict_touch(n->clock, p);
	if (n->present[p] && (!c->is_write || n->writable[p])) {
		if (c->is_write) {
			n->value[p] = ++S.version;
			S.last_written[p] = n->value[p];
			S.st.writes++;
		} else {
			if (n->value[p] != S.last_written[p])
				fail("node %d read page %" PRIu64 " = %" PRIu64 ", last write %" PRIu64,
				     n->id, p, n->value[p], S.last_written[p]);
			S.st.reads++;
		}
		c->state = CPU_IDLE;
		return;
	}
	c->state = CPU_BLOCKED;
	S.st.faults++;
	dsm_engine_local_fault(n->e, p, c->is_write);
}

static void step_cpu(bool may_start)
{
	struct sim_node *n = &S.nodes[rnd_below(S.n_nodes)];
	struct cpu *c = &n->cpus[rnd_below(S.n_cpus)];

	if (c->state == CPU_IDLE && may_start) {
		c->page = rnd_below(S.n_pages);
		c->is_write = rnd() & 1;
		cpu_access(n, c);
	} else if (c->state == CPU_WOKEN) {
		cpu_access(n, c);
	}
}

static bool deliver_random(void)
{
	if (!S.in_flight)
		return false;
	unsigned pick = rnd_below(S.n_nodes * S.n_nodes);
	for (unsigned k = 0; k < (unsigned)(S.n_nodes * S.n_nodes); k++) {
		unsigned idx = (pick + k) % (S.n_nodes * S.n_nodes);
		struct channel *c = &S.ch[idx / S.n_nodes][idx % S.n_nodes];
		if (!c->head)
			continue;
		/* Per-page FIFO mode: take the oldest message of a random page in
		 * this channel, so pages overtake each other (as the runtime's
		 * min-hold deferral allows); per (channel, page) order holds. */
		struct sim_msg **pp = &c->head;
		if (S.per_page_fifo) {
			uint64_t page = rnd_below(S.n_pages);
			for (struct sim_msg **q = &c->head; *q; q = &(*q)->next)
				if ((*q)->m.page == page) {
					pp = q;
					break;
				}
		}
		struct sim_msg *sm = *pp;
		*pp = sm->next;
		c->tail = NULL;
		for (struct sim_msg *q = c->head; q; q = q->next)
			c->tail = q;
		c->len--;
		S.in_flight--;
		struct sim_node *dst = &S.nodes[sm->m.dst];
		uint64_t p = sm->m.page;
		if (S.one_sided && p < (uint64_t)S.n_pages) {
			read_ahead_step(dst, p); /* the runtime settles its reads first */
			if (sm->by_read) {
				sm->value = read_payload(dst, &S.nodes[sm->m.src], sm);
				sm->has_data = true;
			}
			dst->ahead[p].posted = false; /* any frame for p ends them */
			if (sm->m.kind == DSM_MSG_READ_REQ) {
				uint64_t bit = 1ull << sm->m.src;
				bool usable = sm->read_posted && sm->m.src == sm->m.requester &&
					      !sm->m.hops && dst->present[p] && !dst->writable[p] &&
					      !(dst->ver[p] & 1);
				dst->wanted[p] = usable ? dst->wanted[p] | bit : dst->wanted[p] & ~bit;
			}
		}
		dst->incoming = sm;
		int rc = dsm_engine_receive(dst->e, &sm->m);
		dst->incoming = NULL;
		if (rc)
			fail("node %d rejected %s: %d", dst->id, dsm_msg_kind_name(sm->m.kind), rc);
		free(sm);
		S.st.delivered++;
		return true;
	}
	return false;
}

static void step_migrate(void)
{
	int p = rnd_below(S.n_pages);
	for (int i = 0; i < S.n_nodes; i++) {
		if (!dsm_engine_is_home(S.nodes[i].e, p))
			continue;
		int to = rnd_below(S.n_nodes - 1);
		if (to >= i)
			to++;
		S.st.migrations_asked++;
		S.policy_move[i][p] = false;
		int rc = dsm_engine_migrate_home(S.nodes[i].e, p, to);
		if (rc == 0)
			S.st.migrations_started++;
		else if (rc != -EBUSY)
			fail("migrate page %d from home %d to %d: %d", p, i, to, rc);
		return;
	}
}

/* What the region's policy timer does (dsm/region.c on_policy_timer), on
 * every node: decide from the misses counted since the last round, clear
 * them, start the migrations decided. Homes then move under load. */
static void step_policy(void)
{
	uint32_t reads[MAX_NODES], writes[MAX_NODES];

	for (int i = 0; i < S.n_nodes; i++) {
		struct dsm_engine *e = S.nodes[i].e;

		for (int p = 0; p < S.n_pages; p++) {
			int target = -1;

			if (!dsm_engine_page_node_misses(e, p, reads, writes))
				continue;
			dsm_engine_page_node_misses_clear(e, p);
			if (!dsm_engine_is_home(e, p))
				continue;
			enum dsm_policy_action act =
				dsm_policy_decide(S.policy[i], p, reads, writes, &target);
			/* the readers' victim choice keeps replicated pages longer */
			dsm_engine_set_replicated(e, p, dsm_policy_replicated(S.policy[i], p));
			if (act != DSM_POLICY_MIGRATE)
				continue;
			int rc = dsm_engine_migrate_home(e, p, target);
			S.policy_move[i][p] = rc == 0;
			if (rc == 0)
				S.policy_migrations++;
			else if (rc == -EBUSY)
				dsm_policy_undo_move(S.policy[i], p);
			else
				fail("policy: migrate page %d from %d to %d: %d", p, i, target, rc);
		}
		dsm_policy_interval_done(S.policy[i]);
	}
}

/* An eviction of a random copy at a random moment (not asked for). */
static void step_evict(void)
{
	struct sim_node *n = &S.nodes[rnd_below(S.n_nodes)];
	int p = rnd_below(S.n_pages);
	int rc = dsm_engine_evict(n->e, p);

	if (rc == 0)
		S.st.random_evictions++;
	else if (rc != -ENOENT && rc != -EBUSY && !(rc == -EINVAL && dsm_engine_is_home(n->e, p)))
		fail("node %d: evict page %d: %d", n->id, p, rc);
}

static bool can_evict(void *ctx, uint64_t page)
{
	return dsm_engine_evictable(ctx, page);
}

/* What the runtime does after an engine call that asked for room: evict
 * the clock's victims until no request waits for a frame (at least one,
 * for a refused home move), or hand a home page to the node it refused. */
static bool step_room(struct sim_node *n)
{
	bool did = false;

	if (n->need_room) {
		n->need_room = false;
		for (int p = 0; p < S.n_pages; p++)
			dsm_evict_set_replicated(n->clock, p, dsm_engine_replicated(n->e, p));
		uint64_t want = dsm_engine_room_wanted(n->e);
		for (uint64_t k = 0; k < (want ? want : 1); k++) {
			int64_t v = dsm_evict_pick(n->clock, can_evict, n->e, 0);
			if (v < 0)
				break; /* nothing evictable now: the engine asks again later */
			int rc = dsm_engine_evict(n->e, (uint64_t)v);
			if (rc)
				fail("node %d: evict page %" PRId64 " the engine called evictable: %d",
				     n->id, v, rc);
			S.st.room_evictions++;
			did = true;
		}
	}
	if (n->hand_to >= 0) {
		int to = n->hand_to;
		int64_t page = -1;
		n->hand_to = -1;
		if (S.policy_every) {
			page = dsm_policy_cold_home(S.policy[n->id], n->e, to, 0);
		} else {
			int p = rnd_below(S.n_pages);
			page = dsm_engine_is_home(n->e, p) ? p : -1;
		}
		if (page >= 0) {
			int rc = dsm_engine_migrate_home(n->e, (uint64_t)page, to);
			S.policy_move[n->id][page] = rc == 0 && S.policy_every;
			if (rc == 0)
				S.st.handbacks++;
			else if (rc == -EBUSY && S.policy_every)
				dsm_policy_undo_move(S.policy[n->id], (uint64_t)page);
			else if (rc != -EBUSY)
				fail("node %d: hand page %" PRId64 " to node %d: %d", n->id, page, to, rc);
			did = true;
		}
	}
	return did;
}

static void step_stale_fault(void)
{
	struct sim_node *n = &S.nodes[rnd_below(S.n_nodes)];
	S.st.stale_faults++;
	dsm_engine_local_fault(n->e, rnd_below(S.n_pages), rnd() & 1);
}

/* Stop new work, deliver everything, let woken CPUs finish: afterwards
 * nothing may wait. */
static void drain_and_check_quiescent(void)
{
	S.st.drains++;
	for (uint64_t rounds = 0;; rounds++) {
		if (rounds > 10000000)
			fail("no quiescence after 10M drain steps (livelock?)");
		bool progress = deliver_random();
		for (int i = 0; i < S.n_nodes; i++)
			for (int j = 0; j < S.n_cpus; j++)
				if (S.nodes[i].cpus[j].state == CPU_WOKEN) {
					cpu_access(&S.nodes[i], &S.nodes[i].cpus[j]);
					progress = true;
				}
		/* room only after the woken CPUs had their turn */
		for (int i = 0; i < S.n_nodes; i++)
			if (S.nodes[i].need_room && step_room(&S.nodes[i]))
				progress = true;
		check_invariants();
		if (!progress)
			break;
	}
	for (int i = 0; i < S.n_nodes; i++) {
		struct sim_node *n = &S.nodes[i];
		for (int j = 0; j < S.n_cpus; j++)
			if (n->cpus[j].state != CPU_IDLE)
				fail("node %d cpu %d waits forever on page %" PRIu64, i, j,
				     n->cpus[j].page);
		for (int p = 0; p < S.n_pages; p++) {
			if (dsm_engine_pending(n->e, p))
				fail("node %d page %d: request pending forever", i, p);
			if (dsm_engine_dir_busy(n->e, p))
				fail("node %d page %d: directory busy forever", i, p);
		}
	}
	for (int p = 0; p < S.n_pages; p++) {
		int homes = 0;
		for (int i = 0; i < S.n_nodes; i++)
			homes += dsm_engine_is_home(S.nodes[i].e, p);
		if (homes != 1)
			fail("page %d has %d homes when quiet", p, homes);
	}
	check_directories_exact();
	for (int i = 0; i < S.n_nodes; i++) {
		S.nodes[i].need_room = false; /* nothing waits: stale */
		S.nodes[i].hand_to = -1;
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dsm-sim [--seed N] [--events N] [--nodes 3..%d] [--pages 1..%d]\n"
		"               [--cpus 1..%d] [--migrate PERMILLE] [--drain-every N]\n"
		"               [--per-page-fifo]  (order kept per channel and page only)\n"
		"               [--policy EVERY]   (Disco's policy on every node every EVERY steps)\n"
		"               [--one-sided]      (page bytes by RDMA READ, as the runtime does)\n"
		"               [--one-sided-unchecked] (the same without its version check)\n"
		"               [--budget FRAMES [--min-cache N] [--evict PERMILLE]]\n"
		"                                  (every node holds at most FRAMES pages)\n"
		"Drives the DSM protocol engine with random events and checks coherence\n"
		"invariants after every step. Exits 1 and prints a replay command on failure.\n",
		MAX_NODES, MAX_PAGES, MAX_CPUS);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, 0, 's' },   { "events", required_argument, 0, 'e' },
		{ "nodes", required_argument, 0, 'n' },  { "pages", required_argument, 0, 'p' },
		{ "cpus", required_argument, 0, 'c' },   { "migrate", required_argument, 0, 'm' },
		{ "drain-every", required_argument, 0, 'd' }, { "help", no_argument, 0, 'h' },
		{ "per-page-fifo", no_argument, 0, 'f' }, { "policy", required_argument, 0, 'P' },
		{ "one-sided", no_argument, 0, 'o' }, { "one-sided-unchecked", no_argument, 0, 'u' },
		{ "budget", required_argument, 0, 'b' }, { "min-cache", required_argument, 0, 'M' },
		{ "evict", required_argument, 0, 'v' },
		{ 0, 0, 0, 0 },
	};
	S.seed = 1;
	S.events = 1000000;
	S.n_nodes = 4;
	S.n_pages = 8;
	S.n_cpus = 2;
	S.migrate_permille = 30;
	S.drain_every = 50000;
	for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (o) {
		case 's': S.seed = strtoull(optarg, NULL, 0); break;
		case 'e': S.events = strtoull(optarg, NULL, 0); break;
		case 'n': S.n_nodes = atoi(optarg); break;
		case 'p': S.n_pages = atoi(optarg); break;
		case 'c': S.n_cpus = atoi(optarg); break;
		case 'm': S.migrate_permille = (unsigned)atoi(optarg); break;
		case 'd': S.drain_every = strtoull(optarg, NULL, 0); break;
		case 'f': S.per_page_fifo = true; break;
		case 'P': S.policy_every = strtoull(optarg, NULL, 0); break;
		case 'o': S.one_sided = true; break;
		case 'u': S.one_sided = S.one_sided_unchecked = true; break;
		case 'b': S.budget = strtoull(optarg, NULL, 0); break;
		case 'M': S.min_cache = strtoull(optarg, NULL, 0); break;
		case 'v': S.evict_permille = (unsigned)atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (S.n_nodes < 2 || S.n_nodes > MAX_NODES || S.n_pages < 1 || S.n_pages > MAX_PAGES ||
	    S.n_cpus < 1 || S.n_cpus > MAX_CPUS || S.migrate_permille > 1000 || !S.drain_every ||
	    S.migrate_permille + 20 + S.evict_permille > 500 || (!S.budget && S.evict_permille)) {
		usage(stderr);
		return 2;
	}
	S.rng = S.seed * 0x9E3779B97F4A7C15ULL + 1;

	for (int i = 0; i < S.n_nodes; i++) {
		struct sim_node *n = &S.nodes[i];
		n->id = i;
		n->e = dsm_engine_create(i, S.n_nodes, S.n_pages, initial_home, NULL, emit, n);
		if (!n->e)
			fail("engine create failed");
		n->clock = dsm_evict_create(S.n_pages);
		n->hand_to = -1;
		if (!n->clock)
			fail("clock create failed");
		if (S.budget) {
			if (!S.min_cache)
				S.min_cache = 1;
			int rc = dsm_engine_set_budget(n->e, S.budget, S.min_cache);
			if (rc) {
				fprintf(stderr, "dsm-sim: --budget %" PRIu64 " --min-cache %" PRIu64
					": node %d's %" PRIu64 " home pages do not fit (%d)\n",
					S.budget, S.min_cache, i, dsm_engine_home_frames(n->e), rc);
				return 2;
			}
		}
		if (S.policy_every) {
			/* eager knobs, a high move cap and no freezing: thousands of
			 * policy moves under load (freezing is unit-tested) */
			const struct dsm_policy_knobs k = {
				.interval_ms = 1, .trigger = 3, .sharing = 3, .write_share = 1000,
				.move_cap = 250,
			};
			S.policy[i] = dsm_policy_create(&k, i, S.n_nodes, S.n_pages);
			if (!S.policy[i])
				fail("policy create failed");
		}
		for (int p = 0; p < S.n_pages; p++) {
			/* A home starts with a writable zero page (value 0). */
			n->present[p] = dsm_engine_is_home(n->e, p);
			n->writable[p] = n->present[p];
			n->ver[p] = n->writable[p]; /* odd: writable */
		}
	}

	for (S.step = 1; S.step <= S.events; S.step++) {
		unsigned r = rnd_below(1000);
		if (r < S.migrate_permille)
			step_migrate();
		else if (r < S.migrate_permille + 20)
			step_stale_fault();
		else if (r < S.migrate_permille + 20 + S.evict_permille)
			step_evict();
		else if (r < 500)
			step_cpu(true);
		else if (!deliver_random())
			step_cpu(true);
		if (S.one_sided && rnd_below(4) == 0) {
			struct sim_node *n = &S.nodes[rnd_below(S.n_nodes)];
			read_ahead_step(n, rnd_below(S.n_pages));
		}
		if (S.policy_every && S.step % S.policy_every == 0)
			step_policy();
		if (S.budget && rnd_below(8) == 0) {
			struct sim_node *n = &S.nodes[rnd_below(S.n_nodes)];
			step_room(n);
		}
		check_invariants();
		if (S.step % S.drain_every == 0)
			drain_and_check_quiescent();
	}
	drain_and_check_quiescent();

	uint64_t forwards = 0, migrations = 0, invs = 0, evictions = 0, writebacks = 0,
		 room_waits = 0, offers = 0;
	for (int i = 0; i < S.n_nodes; i++) {
		const struct dsm_engine_counters *c = dsm_engine_counters(S.nodes[i].e);
		forwards += c->requests_forwarded;
		migrations += c->migrations_out;
		invs += c->invalidations_sent;
		evictions += c->evictions;
		writebacks += c->writebacks;
		room_waits += c->room_waits;
		offers += c->offers_sent;
		dsm_engine_destroy(S.nodes[i].e);
		dsm_policy_destroy(S.policy[i]);
		dsm_evict_destroy(S.nodes[i].clock);
	}
	/* nor a budget run that never evicted, wrote back or waited for room */
	if (S.budget && (!evictions || !writebacks || !room_waits))
		fail("--budget: %" PRIu64 " clean evictions, %" PRIu64 " write-backs, %" PRIu64
		     " requests waited for room: the paths were not all exercised",
		     evictions, writebacks, room_waits);
	/* a policy run that never moved a page would not test what it claims */
	if (S.policy_every && !S.policy_migrations)
		fail("--policy: the policy decided no migration in %" PRIu64 " events", S.events);
	/* nor a one-sided run that never took bytes it read, or never read again */
	if (S.one_sided && (!S.st.reads_taken || !S.st.rereads))
		fail("--one-sided: %" PRIu64 " reads taken, %" PRIu64 " read again: the path "
		     "was not exercised", S.st.reads_taken, S.st.rereads);
	printf("dsm-sim: PASS seed=%" PRIu64 " nodes=%d pages=%d cpus=%d events=%" PRIu64
	       " reads=%" PRIu64 " writes=%" PRIu64 " faults=%" PRIu64 " stale_faults=%" PRIu64
	       " messages=%" PRIu64 " invalidations=%" PRIu64 " migrations=%" PRIu64
	       " forwards=%" PRIu64 " drains=%" PRIu64 " max_in_flight=%u policy_migrations=%" PRIu64
	       " granted_by_read=%" PRIu64 " reads_taken=%" PRIu64 " rereads=%" PRIu64 "\n",
	       S.seed, S.n_nodes, S.n_pages, S.n_cpus, S.events, S.st.reads, S.st.writes,
	       S.st.faults, S.st.stale_faults, S.st.delivered, invs, migrations, forwards,
	       S.st.drains, S.st.max_in_flight, S.policy_migrations, S.st.granted_by_read,
	       S.st.reads_taken, S.st.rereads);
	if (S.budget)
		printf("dsm-sim: budget=%" PRIu64 " min_cache=%" PRIu64 " evictions=%" PRIu64
		       " writebacks=%" PRIu64 " room_waits=%" PRIu64 " room_asked=%" PRIu64
		       " room_evictions=%" PRIu64 " random_evictions=%" PRIu64 " offers=%" PRIu64
		       " moves_refused=%" PRIu64 " handbacks=%" PRIu64 "\n",
		       S.budget, S.min_cache, evictions, writebacks, room_waits, S.st.room_asked,
		       S.st.room_evictions, S.st.random_evictions, offers, S.st.moves_refused,
		       S.st.handbacks);
	return 0;
}
