// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One-sided page transfer: a requester reads a page's bytes out of the
 * home's memory with RDMA READ instead of the home copying them into a
 * frame. Only how the bytes travel changes; the protocol's messages and
 * states are the engine's as ever (the GRANT still comes, without its
 * payload), so the simulator's and the SPIN model's results stand.
 * docs/transport.md has the full argument; in short:
 *
 * Needs the RDMA transport and dsm.backing memfd: each node registers the
 * unwatched second view of its memfd once (its page frames never change,
 * so the registration stays true however often the DSM maps and unmaps
 * pages in the watched view), plus one 64-bit version word per page, odd
 * while the local copy may change (writable, or being filled) and even
 * while it cannot. Addresses and keys go to each peer in a DsmMemory
 * frame after it authenticated.
 *
 * Requester R, sending a READ_REQ for page p straight to its home H (not
 * a forward), posts three reads to H first: the version word (v1), the
 * page into R's own view of p (R's copy is invalid and unmapped, so
 * nothing looks at it), and the version word again (v2), each fenced
 * behind the one before; the request says read_posted.
 * H, granting p shared from its own stable copy to a requester that said
 * read_posted, sends the GRANT with data_by_read and its version word now
 * (vG) instead of the page.
 * R, before handling any frame for p, waits for its reads of p. A
 * data_by_read GRANT is then served from R's view if v1 == v2 == vG and
 * even: the copy did not change while it was read, and it is the copy H
 * granted. Otherwise R reads again, at once: while R handles the GRANT,
 * H's copy cannot change (H must first invalidate R, and R handles that
 * after this GRANT), so the second read is the granted copy, which its
 * version word confirms.
 *
 * Everything here runs on the loop thread, like the rest of the fault
 * path; waiting for a read polls the send completion queue (the read is
 * already on the wire).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dsm.pb-c.h"
#include "region_internal.h"
#include "rpc/log.h"

/*
 * Reading ahead costs when the home's copy turns out not to be stable (it
 * was writable: the GRANT brings the bytes anyway): three reads, and the
 * wait for them before the GRANT may be handled. A score per home learns
 * whether it pays: +4 when a GRANT came by read, -1 when it came with the
 * bytes; at 0 only one request in 8 reads ahead, to notice a change.
 */
#define AHEAD_SCORE_START 4
#define AHEAD_SCORE_MAX 16
#define AHEAD_PROBE_EVERY 8

/* Where a peer's registered DSM memory is (its DsmMemory frame). */
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

/* The one-sided transfer's state; loop thread only. The version words it
 * serves are the memory's (r->mem.ver, memory.h). */
struct dsm_one_sided {
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
};

static int register_all(struct dsm_region *r, struct dsm_one_sided *o)
{
	struct rpc_transport *t = rpc_session_transport(r->session);
	int rc = 0;
	for (int i = 0; i < r->mem.n_seg && rc >= 0; i++)
		rc = rpc_transport_register_memory(t, r->mem.seg_view[i], r->mem.seg[i].size,
						   &o->seg_rkey[i]);
	if (rc >= 0)
		rc = rpc_transport_register_memory(t, r->mem.ver, r->mem.n_pages * sizeof(uint64_t),
						   &o->ver_rkey);
	uint32_t unused;
	if (rc >= 0)
		rc = rpc_transport_register_memory(t, o->ver_seen, 2 * r->mem.n_pages * sizeof(uint64_t),
						   &unused);
	return rc;
}

static void free_state(struct dsm_one_sided *o)
{
	if (!o)
		return;
	free(o->ver_seen);
	free(o->remote);
	free(o->read_peer);
	free(o->read_ticket);
	free(o->read_wanted);
	free(o->last_ticket);
	free(o->read_ahead_out);
	free(o->ahead_score);
	free(o->ahead_probe);
	free(o);
}

int region_one_sided_setup(struct dsm_region *r)
{
	uint64_t n_pages = r->mem.n_pages;
	size_t n_nodes = (size_t)r->n_nodes;

	if (!rpc_transport_can_read(rpc_session_transport(r->session)))
		return 0;
	if (!r->mem.memfd) {
		disco_log(DISCO_LOG_INFO, "dsm: one-sided page reads need dsm.backing memfd; "
			  "pages travel in frames");
		return 0;
	}
	if (r->room.clock) {
		/* The registration pins the file's pages, and a budget punches
		 * dropped pages out of the file (memory.c): a peer would read
		 * the pinned old page. */
		disco_log(DISCO_LOG_INFO, "dsm: one-sided page reads are off under a memory "
			  "budget; pages travel in frames");
		return 0;
	}
	struct dsm_one_sided *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	r->mem.ver = calloc(n_pages, sizeof(uint64_t));
	o->ver_seen = calloc(2 * n_pages, sizeof(uint64_t));
	o->remote = calloc(n_nodes, sizeof(*o->remote));
	o->read_peer = malloc(n_pages);
	o->read_ticket = calloc(n_pages, sizeof(uint64_t));
	o->read_wanted = calloc(n_pages, sizeof(dsm_nodeset_t));
	o->last_ticket = calloc(n_nodes, sizeof(uint64_t));
	o->read_ahead_out = calloc(n_pages, 1);
	o->ahead_score = malloc(n_nodes);
	o->ahead_probe = calloc(n_nodes, sizeof(uint32_t));
	if (!r->mem.ver || !o->ver_seen || !o->remote || !o->read_peer || !o->read_ticket ||
	    !o->read_wanted || !o->last_ticket || !o->read_ahead_out || !o->ahead_score ||
	    !o->ahead_probe) {
		free_state(o);
		return -ENOMEM;
	}
	memset(o->ahead_score, AHEAD_SCORE_START, n_nodes);
	memset(o->read_peer, -1, n_pages);
	for (uint64_t p = 0; p < n_pages; p++) /* adopted home pages: writable */
		r->mem.ver[p] = r->mem.present[p] && r->mem.writable[p];
	int rc = register_all(r, o);
	if (rc < 0) {
		free_state(o);
		return rc;
	}
	r->os = o;
	disco_log(DISCO_LOG_INFO, "dsm: one-sided page reads on (%zu MiB registered)",
		  r->mem.size >> 20);
	return 0;
}

void region_one_sided_free(struct dsm_region *r)
{
	free_state(r->os);
	r->os = NULL;
}

void region_send_memory(struct dsm_region *r, int peer)
{
	Disco__DsmMemory msg = DISCO__DSM_MEMORY__INIT;
	Disco__DsmMemory__Segment segs[DSM_MAX_SEGMENTS], *ptrs[DSM_MAX_SEGMENTS];
	uint8_t body[64 + DSM_MAX_SEGMENTS * 40];

	if (!r->os)
		return;
	for (int i = 0; i < r->mem.n_seg; i++) {
		disco__dsm_memory__segment__init(&segs[i]);
		segs[i].first_page = r->mem.seg_first_page[i];
		segs[i].pages = r->mem.seg[i].size / DSM_PAGE_SIZE;
		segs[i].addr = (uintptr_t)r->mem.seg_view[i];
		segs[i].rkey = r->os->seg_rkey[i];
		ptrs[i] = &segs[i];
	}
	msg.n_pages = r->mem.n_pages;
	msg.n_segments = (size_t)r->mem.n_seg;
	msg.segments = ptrs;
	msg.version_addr = (uintptr_t)r->mem.ver;
	msg.version_rkey = r->os->ver_rkey;
	size_t len = disco__dsm_memory__pack(&msg, body);
	int rc = rpc_session_send(r->session, peer, RPC_MSG_DSM_MEMORY, body, len, NULL);
	if (rc < 0)
		disco_log(DISCO_LOG_DEBUG, "dsm: DsmMemory to node %s: %s", rpc_session_node_name(r->session, peer),
			  strerror(-rc));
}

/* Why @m cannot describe a peer's memory like ours, or NULL. */
static const char *check_memory(const struct dsm_region *r, const Disco__DsmMemory *m)
{
	uint64_t next = 0;

	if (m->n_pages != r->mem.n_pages)
		return "a region of another size";
	if (m->n_segments < 1 || m->n_segments > DSM_MAX_SEGMENTS)
		return "no segments, or too many";
	for (size_t i = 0; i < m->n_segments; i++) {
		const Disco__DsmMemory__Segment *s = m->segments[i];
		if (s->first_page != next || s->pages == 0 || s->pages > r->mem.n_pages - next ||
		    s->addr % DSM_PAGE_SIZE || s->addr + s->pages * DSM_PAGE_SIZE < s->addr)
			return "segments that do not tile the region";
		next += s->pages;
	}
	if (next != r->mem.n_pages)
		return "segments that do not cover the region";
	if (m->version_addr % sizeof(uint64_t))
		return "a misaligned version array";
	return NULL;
}

void region_on_memory_frame(struct dsm_region *r, int peer, const uint8_t *body, size_t len)
{
	char why[160];
	Disco__DsmMemory *m = disco__dsm_memory__unpack(NULL, len, body);
	const char *bad = m ? check_memory(r, m) : "an undecodable body";

	if (bad) {
		snprintf(why, sizeof(why), "DsmMemory with %s", bad);
		rpc_session_fail_peer(r->session, peer, why);
	} else if (r->os) { /* else we never read: nothing to keep */
		struct remote_memory *rm = &r->os->remote[peer];
		rm->n_seg = (int)m->n_segments;
		for (int i = 0; i < rm->n_seg; i++) {
			rm->seg[i].first_page = m->segments[i]->first_page;
			rm->seg[i].pages = m->segments[i]->pages;
			rm->seg[i].addr = m->segments[i]->addr;
			rm->seg[i].rkey = m->segments[i]->rkey;
		}
		rm->version_addr = m->version_addr;
		rm->version_rkey = m->version_rkey;
		rm->known = true;
	}
	if (m)
		disco__dsm_memory__free_unpacked(m, NULL);
}

/* Post a read of @len bytes of @peer's page @page (or, with @version, of
 * its version word) into @dst; the ticket is remembered for settling. */
static int post_read(struct dsm_region *r, int peer, uint64_t page, bool version, void *dst,
		     size_t len, bool fence)
{
	const struct remote_memory *rm = &r->os->remote[peer];
	uint64_t addr;
	uint32_t rkey;
	uint64_t ticket;

	if (version) {
		addr = rm->version_addr + page * sizeof(uint64_t);
		rkey = rm->version_rkey;
	} else {
		int i = rm->n_seg - 1;
		while (page < rm->seg[i].first_page)
			i--;
		addr = rm->seg[i].addr + (page - rm->seg[i].first_page) * DSM_PAGE_SIZE;
		rkey = rm->seg[i].rkey;
	}
	int rc = rpc_transport_read(rpc_session_transport(r->session), peer, dst, len, addr, rkey, fence, &ticket);
	if (rc < 0)
		return rc;
	r->os->read_peer[page] = (int8_t)peer;
	r->os->read_ticket[page] = ticket;
	r->os->last_ticket[peer] = ticket;
	return 0;
}

bool region_read_ahead(struct dsm_region *r, const struct dsm_msg *m)
{
	uint64_t p = m->page;
	int home = m->dst;

	/* (runs inside the engine's emit: nothing here may fail a peer) */
	if (!r->os || m->kind != DSM_MSG_READ_REQ || m->requester != r->self ||
	    m->hops || !r->os->remote[home].known || r->mem.present[p] || r->os->read_ticket[p])
		return false;
	if (!r->os->ahead_score[home] && r->os->ahead_probe[home]++ % AHEAD_PROBE_EVERY)
		return false;
	uint64_t *seen = &r->os->ver_seen[2 * p];
	seen[0] = seen[1] = 1; /* odd: never taken for a good read */
	bool posted =
		post_read(r, home, p, true, &seen[0], sizeof(uint64_t), false) == 0 &&
		post_read(r, home, p, false, dsm_memory_view(&r->mem, p), DSM_PAGE_SIZE, true) == 0 &&
		post_read(r, home, p, true, &seen[1], sizeof(uint64_t), true) == 0;
	r->os->read_ahead_out[p] = posted;
	return posted;
}

/* Requester: the GRANT @m answers our request; learn whether reading
 * ahead paid (it did if the GRANT came by read). */
static void read_outcome(struct dsm_region *r, int peer, const struct dsm_msg *m,
			 const struct dsm_wire_extra *x)
{
	uint64_t p = m->page;

	if (!r->os->read_ahead_out[p])
		return;
	r->os->read_ahead_out[p] = 0;
	uint8_t *score = &r->os->ahead_score[r->os->read_peer[p] >= 0 ? r->os->read_peer[p] : peer];
	if (x->data_by_read)
		*score = *score + 4 > AHEAD_SCORE_MAX ? AHEAD_SCORE_MAX : *score + 4;
	else if (*score)
		(*score)--;
}

bool region_grant_by_read(struct dsm_region *r, const struct dsm_msg *m, struct dsm_wire_extra *x)
{
	uint64_t p = m->page;
	dsm_nodeset_t bit = (dsm_nodeset_t)1 << m->dst;

	if (!r->os || m->kind != DSM_MSG_GRANT || (m->flags & DSM_MSG_F_EXCL) ||
	    !(r->os->read_wanted[p] & bit))
		return false;
	r->os->read_wanted[p] &= ~bit;
	uint64_t v = __atomic_load_n(&r->mem.ver[p], __ATOMIC_ACQUIRE);
	if (!r->mem.present[p] || r->mem.writable[p] || (v & 1))
		return false; /* not a stable copy of our own: send the bytes */
	x->data_by_read = true;
	x->read_version = v;
	r->stats.pages_granted_by_read++;
	return true;
}

/* Wait for our reads of @page: 0, or negative after failing the peer. */
static int read_settle(struct dsm_region *r, uint64_t page)
{
	if (!r->os || r->os->read_peer[page] < 0 || !r->os->read_ticket[page])
		return 0;
	int peer = r->os->read_peer[page];
	int rc = rpc_transport_read_wait(rpc_session_transport(r->session), peer, r->os->read_ticket[page],
					 r->settings.fault_timeout_ms);
	r->os->read_ticket[page] = 0;
	if (rc < 0) {
		char why[128];
		r->os->read_peer[page] = -1;
		snprintf(why, sizeof(why), "one-sided read of page %" PRIu64 " %s", page,
			 rc == -ETIMEDOUT ? "timed out" : "failed");
		rpc_session_fail_peer(r->session, peer, why);
	}
	return rc;
}

/* Read @peer's page @page again (and its version word after it) and wait. */
static int read_again(struct dsm_region *r, int peer, uint64_t page)
{
	uint64_t *seen = &r->os->ver_seen[2 * page];
	int rc;

	for (;;) {
		rc = post_read(r, peer, page, false, dsm_memory_view(&r->mem, page), DSM_PAGE_SIZE, false);
		if (rc == 0)
			rc = post_read(r, peer, page, true, &seen[1], sizeof(uint64_t), true);
		if (rc != -EAGAIN)
			break;
		/* reads of other pages fill the queue pair: let them finish */
		rc = rpc_transport_read_wait(rpc_session_transport(r->session), peer, r->os->last_ticket[peer],
					     r->settings.fault_timeout_ms);
		if (rc < 0)
			break;
	}
	return rc < 0 ? rc : read_settle(r, page);
}

/* The payload of a GRANT by read: the page's view, once the bytes there
 * are the granted ones; NULL after failing the peer. */
static const uint8_t *read_payload(struct dsm_region *r, int peer, const struct dsm_msg *m,
				   const struct dsm_wire_extra *x)
{
	uint64_t p = m->page;
	const uint64_t *seen = &r->os->ver_seen[2 * p];
	char why[160];

	if (!r->os || !r->os->remote[peer].known || r->mem.present[p] || (x->read_version & 1)) {
		snprintf(why, sizeof(why), "GRANT of page %" PRIu64 " by one-sided read, which "
			 "this node cannot take", p);
		rpc_session_fail_peer(r->session, peer, why);
		return NULL;
	}
	if (r->os->read_peer[p] == peer && seen[0] == x->read_version && seen[1] == x->read_version) {
		r->os->read_peer[p] = -1;
		r->stats.pages_read++;
		return dsm_memory_view(&r->mem, p);
	}
	r->stats.page_rereads++;
	if (read_again(r, peer, p) < 0)
		return NULL; /* the peer was failed */
	r->os->read_peer[p] = -1;
	if (seen[1] != x->read_version) {
		snprintf(why, sizeof(why), "page %" PRIu64 " changed under its GRANT (version "
			 "%" PRIu64 ", granted %" PRIu64 ")", p, seen[1], x->read_version);
		rpc_session_fail_peer(r->session, peer, why);
		return NULL;
	}
	r->stats.pages_read++;
	return dsm_memory_view(&r->mem, p);
}

int region_one_sided_frame(struct dsm_region *r, int peer, const struct dsm_msg *m,
			   const struct dsm_wire_extra *x, const uint8_t **page)
{
	uint64_t p = m->page;

	if (m->kind == DSM_MSG_GRANT)
		read_outcome(r, peer, m, x);
	/* our reads of this page must be done before anything maps it */
	if (read_settle(r, p) < 0)
		return -EIO;
	if (x->data_by_read && !(*page = read_payload(r, peer, m, x)))
		return -EIO;
	r->os->read_peer[p] = -1;
	if (m->kind == DSM_MSG_READ_REQ) {
		/* Only a copy that is already stable here can match what the
		 * requester read before asking; one we must first write-protect
		 * changed since, so its bytes go in the GRANT (a read would have
		 * to be repeated). */
		dsm_nodeset_t bit = (dsm_nodeset_t)1 << peer;
		bool usable = x->read_posted && peer == m->requester && !m->hops &&
			      r->mem.present[p] && !r->mem.writable[p] && !(r->mem.ver[p] & 1);
		r->os->read_wanted[p] = usable ? r->os->read_wanted[p] | bit : r->os->read_wanted[p] & ~bit;
	}
	return 0;
}
