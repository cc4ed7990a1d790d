// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DSM fault path, run entirely by the session's loop thread.
 *
 * A thread touching a page it may not access blocks in the kernel; the
 * loop thread, asleep in epoll on the userfaultfd among the sockets, reads
 * the event, feeds it to the engine, and the engine's SEND goes out with
 * sendmsg() from this same thread. The answer arrives on a socket watched
 * by the same loop; the engine's INSTALL becomes one UFFDIO_COPY straight
 * from the receive buffer, which also wakes the faulting thread. So a
 * remote read fault costs at most four wake-ups (loop here, loop at the
 * home, loop here, the faulting thread; polling saves the first three,
 * see run_loop() in rpc/session.c) and three copies of the page (home
 * memory to socket, socket to receive buffer, buffer to place), and
 * nothing on the way takes a lock but the socket's send mutex.
 *
 * The engine is entered here only, by engine_fault(), engine_receive(),
 * region_engine_migrate(), region_engine_peer_failed() and, with a memory
 * budget, region_engine_evict(); each passes a struct engine_call of its
 * own (region_internal.h) that the actions of that one call read and
 * update. After each, the budget's bookkeeping (room.c) sees what the call
 * installed and checks that the node holds no more than its budget; the
 * engine's requests for room are acted on later, from the loop turn, never
 * from inside a call.
 *
 * Page payloads are read straight from the region for sending (the engine
 * always write-protects a writable page first), or from the incoming frame
 * when the home passes on an owner's data.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "region_internal.h"
#include "rpc/log.h"

static const uint8_t zero_page[DSM_PAGE_SIZE] __attribute__((aligned(DSM_PAGE_SIZE)));

#define NO_PAGE UINT64_MAX

static uint64_t now_ns(void)
{
	return uv_hrtime();
}

void region_fatal(struct dsm_region *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (r->fatal_reported)
		return;
	if (rpc_session_stopping(r->session))
		return; /* peers leave at shutdown; nobody is faulting any more */
	r->fatal_reported = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	disco_log(DISCO_LOG_ERROR, "dsm: %s", msg);
	if (r->on_fatal)
		r->on_fatal(r->opaque, msg);
}

static void record_latency(struct dsm_region *r, uint64_t page)
{
	uint64_t start = r->fault_start_ns[page];
	if (!start)
		return;
	r->fault_start_ns[page] = 0;
	r->faults_in_flight--;
	uint64_t now = now_ns();
	if (r->frame_arrival_ns > start) {
		r->stats.fault_send_wait_ns += r->frame_arrival_ns - start;
		r->stats.fault_install_ns += now - r->frame_arrival_ns;
	}
	uint64_t us = (now - start) / 1000;
	int b = 0;
	while (us > 1 && b < DSM_LATENCY_BUCKETS - 1) {
		us >>= 1;
		b++;
	}
	r->stats.fault_latency_us[b]++;
	r->stats.faults_served++;
	if (r->page_faults)
		r->page_faults[page]++;
}

static void send_dsm(struct dsm_region *r, const struct dsm_action *a)
{
	uint8_t body[160];
	const void *payload = NULL;
	struct dsm_wire_extra x = { 0 };

	if (r->os) {
		x.read_posted = region_read_ahead(r, &a->msg);
		if (a->data == DSM_DATA_LOCAL && region_grant_by_read(r, &a->msg, &x))
			goto pack; /* the requester reads the page itself */
	}
	if (a->data == DSM_DATA_LOCAL && !r->mem.present[a->page])
		payload = zero_page;
	else if (a->data == DSM_DATA_LOCAL)
		payload = dsm_memory_source(&r->mem, a->page);
	else if (a->data == DSM_DATA_INCOMING)
		payload = r->call->incoming_page;
pack:;
	size_t len = dsm_wire_pack(&a->msg, &x, body, sizeof(body));
	int rc = rpc_session_send(r->session, a->msg.dst, RPC_MSG_DSM, body, len, payload);
	if (rc < 0) {
		/* The peer is down; the transport reports it and the engine's
		 * peer-failure path fails whatever needed this message. */
		disco_log(DISCO_LOG_DEBUG, "dsm: send %s page %" PRIu64 " to node %d: %s",
			  dsm_msg_kind_name(a->msg.kind), a->page, a->msg.dst, strerror(-rc));
		return;
	}
	if (payload)
		r->stats.pages_sent++;
}

static void drop(struct dsm_region *r, uint64_t page)
{
	if (dsm_memory_drop(&r->mem, page) && r->on_page_dropped)
		r->on_page_dropped(r->opaque, page);
}

static void install(struct dsm_region *r, uint64_t page, const void *src, bool writable)
{
	if (r->mem.present[page]) /* not expected: the engine installs into invalid pages */
		drop(r, page);
	int rc = dsm_memory_install(&r->mem, page, src, writable);
	if (rc < 0) {
		region_fatal(r, "page %" PRIu64 ": %s failed: %s", page,
			     r->mem.memfd ? "UFFDIO_CONTINUE" : "UFFDIO_COPY", strerror(-rc));
		return;
	}
	r->call->woken_page = page; /* the install woke its waiters */
	r->call->installed_page = page;
	r->call->installed_shared = !writable;
	if (writable && r->hold)
		dsm_hold_start(r->hold, page, now_ns());
}

static void protect(struct dsm_region *r, uint64_t page, bool writable)
{
	int rc = dsm_memory_protect(&r->mem, page, writable);
	if (rc < 0) {
		region_fatal(r, "page %" PRIu64 ": UFFDIO_WRITEPROTECT failed: %s", page,
			     strerror(-rc));
		return;
	}
	if (rc > 0) { /* un-protected: that woke the waiters */
		r->call->woken_page = page;
		if (r->hold)
			dsm_hold_start(r->hold, page, now_ns());
	}
}

/* "node n1 lost" or "nodes n1, n3 lost": a request fails only because a
 * peer was lost, and the page's home hint may be this node (it was the
 * lost owner that held the data), so name the lost nodes themselves. */
static void describe_lost_nodes(struct dsm_region *r, char *buf, size_t len)
{
	dsm_nodeset_t down = rpc_session_peers_down(r->session);

	int n = 0;
	size_t used = 0;
	char names[200] = "";
	for (int i = 0; i < r->n_nodes && used < sizeof(names); i++) {
		if (i == r->self || !((down >> i) & 1))
			continue;
		int w = snprintf(names + used, sizeof(names) - used, "%s%s", n ? ", " : "",
				 rpc_session_node_name(r->session, i));
		used += w > 0 ? (size_t)w : 0;
		n++;
	}
	if (n == 0)
		snprintf(buf, len, "a peer was lost");
	else
		snprintf(buf, len, "%s %s lost", n == 1 ? "node" : "nodes", names);
}

void region_emit(void *ctx, const struct dsm_action *a)
{
	struct dsm_region *r = ctx;
	uint64_t page = a->page;

	if (!r->call) {
		region_fatal(r, "page %" PRIu64 ": engine action outside an engine entry", page);
		return;
	}
	switch (a->kind) {
	case DSM_ACT_SEND:
		send_dsm(r, a);
		break;
	case DSM_ACT_INSTALL:
		if (!r->call->incoming_page) {
			region_fatal(r, "page %" PRIu64 ": install without data", page);
			break;
		}
		r->stats.pages_received++;
		install(r, page, r->call->incoming_page, a->prot == DSM_PROT_WRITE);
		break;
	case DSM_ACT_PROTECT:
		protect(r, page, a->prot == DSM_PROT_WRITE);
		break;
	case DSM_ACT_DROP:
		drop(r, page);
		break;
	case DSM_ACT_MAP_LOCAL:
		if (!r->mem.present[page])
			install(r, page, zero_page, a->prot == DSM_PROT_WRITE); /* first touch */
		else if (a->prot == DSM_PROT_WRITE)
			protect(r, page, true);
		break;
	case DSM_ACT_WAKE:
		if (a->error) {
			if (r->fault_start_ns[page]) {
				r->fault_start_ns[page] = 0;
				r->faults_in_flight--;
			}
			char lost[256];
			describe_lost_nodes(r, lost, sizeof(lost));
			region_fatal(r,
				     "page %" PRIu64 " (offset 0x%" PRIx64 ") cannot be served: "
				     "%s, which held the page or its directory (%s)",
				     page, page * DSM_PAGE_SIZE, lost, strerror(-a->error));
			break;
		}
		record_latency(r, page);
		if (r->call->woken_page != page)
			dsm_memory_wake(&r->mem, page);
		break;
	case DSM_ACT_NEED_ROOM:
	case DSM_ACT_MOVE_REFUSED:
		region_room_action(r, a); /* budgets only: acted on after the call */
		break;
	}
}

/* ---- the engine's entries: each with its own engine_call ------------------- */

static void enter(struct dsm_region *r, struct engine_call *c, const uint8_t *incoming_page)
{
	*c = (struct engine_call){ .incoming_page = incoming_page, .woken_page = NO_PAGE,
				   .installed_page = NO_PAGE };
	r->call = c;
}

static void leave(struct dsm_region *r)
{
	struct engine_call *c = r->call;

	r->call = NULL;
	if (c->installed_page != NO_PAGE)
		region_room_installed(r, c->installed_page, c->installed_shared);
	region_room_check(r);
}

static void engine_fault(struct dsm_region *r, uint64_t page, bool is_write)
{
	struct engine_call c;
	enter(r, &c, NULL);
	dsm_engine_local_fault(r->engine, page, is_write);
	leave(r);
}

static int engine_receive(struct dsm_region *r, const struct dsm_msg *m, const uint8_t *page)
{
	struct engine_call c;
	enter(r, &c, page);
	int rc = dsm_engine_receive(r->engine, m);
	leave(r);
	if (rc == 0 && m->kind == DSM_MSG_MIGRATE && dsm_engine_is_home(r->engine, m->page))
		region_room_migrated_in(r, m->page, m->src);
	return rc;
}

int region_engine_migrate(struct dsm_region *r, uint64_t page, int target)
{
	struct engine_call c;
	enter(r, &c, NULL);
	int rc = dsm_engine_migrate_home(r->engine, page, target);
	leave(r);
	return rc;
}

void region_engine_peer_failed(struct dsm_region *r, int peer)
{
	struct engine_call c;
	enter(r, &c, NULL);
	dsm_engine_peer_failed(r->engine, peer);
	leave(r);
}

int region_engine_evict(struct dsm_region *r, uint64_t page)
{
	struct engine_call c;
	enter(r, &c, NULL);
	int rc = dsm_engine_evict(r->engine, page);
	leave(r);
	return rc;
}

/* ---- userfaultfd events ---------------------------------------------------- */

/* A thread faulted on @page at @t (or a prefetch asks for it): into the
 * engine, and the fault's clock starts if a request went out. */
static void fault_page(struct dsm_region *r, uint64_t page, bool is_write, uint64_t t)
{
	region_room_touch(r, page);
	engine_fault(r, page, is_write);
	if (dsm_engine_pending(r->engine, page) && !r->fault_start_ns[page]) {
		r->stats.fault_send_ns += now_ns() - t;
		r->fault_start_ns[page] = t;
		r->faults_in_flight++;
	}
}

bool region_fault_ahead(struct dsm_region *r, uint64_t page, bool is_write)
{
	if (dsm_engine_pending(r->engine, page))
		return false; /* on its way already (or being evicted) */
	enum dsm_local_state st = dsm_engine_local_state(r->engine, page);
	if (st == DSM_LOCAL_MODIFIED || (st == DSM_LOCAL_SHARED && !is_write))
		return false; /* accessible here */
	fault_page(r, page, is_write, now_ns());
	return dsm_engine_pending(r->engine, page);
}

void region_on_uffd_readable(uv_poll_t *h, int status, int events)
{
	struct dsm_region *r = h->data;
	struct uffd_msg msgs[32];

	(void)events;
	if (status < 0) {
		region_fatal(r, "userfaultfd poll failed: %s", uv_strerror(status));
		return;
	}
	for (;;) {
		ssize_t n = read(r->mem.uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				region_fatal(r, "userfaultfd read failed: %s", strerror(errno));
			return;
		}
		uint64_t t = now_ns();
		rpc_session_note_activity(r->session, t);
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t addr = msgs[i].arg.pagefault.address;
			uint64_t flags = msgs[i].arg.pagefault.flags;
			uint64_t page = dsm_memory_addr_page(&r->mem, addr);
			if (page >= r->mem.n_pages)
				continue;
			bool is_write = flags & (UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP);
			r->stats.uffd_events++;
			fault_page(r, page, is_write, t);
		}
		if ((size_t)n < sizeof(msgs))
			return;
	}
}

void region_restart_fault_clocks(struct dsm_region *r, uint64_t now)
{
	for (uint64_t p = 0; r->faults_in_flight && p < r->mem.n_pages; p++)
		if (r->fault_start_ns[p])
			r->fault_start_ns[p] = now;
}

void region_check_timeouts(struct dsm_region *r, uint64_t now)
{
	uint64_t limit = (uint64_t)r->settings.fault_timeout_ms * 1000000ULL;
	if (!r->faults_in_flight)
		return;
	for (uint64_t p = 0; p < r->mem.n_pages; p++) {
		uint64_t start = r->fault_start_ns[p];
		if (start && now - start > limit) {
			char room[512];
			if (region_room_describe(r, room, sizeof(room))) {
				region_fatal(r, "page %" PRIu64 " (offset 0x%" PRIx64 "): no answer "
					     "for %u ms: %s", p, p * DSM_PAGE_SIZE,
					     r->settings.fault_timeout_ms, room);
				return;
			}
			int hint = dsm_engine_home_hint(r->engine, p);
			region_fatal(r,
				     "page %" PRIu64 " (offset 0x%" PRIx64 "): no answer for %u ms "
				     "(asked node %s)",
				     p, p * DSM_PAGE_SIZE, r->settings.fault_timeout_ms,
				     rpc_session_node_name(r->session, hint));
			return;
		}
	}
}

/* ---- frames from peers ------------------------------------------------------- */

void region_deliver(struct dsm_region *r, int peer, const struct dsm_msg *m,
		    const struct dsm_wire_extra *x, const uint8_t *page)
{
	char why[160];

	if (r->os && m->page < r->mem.n_pages && region_one_sided_frame(r, peer, m, x, &page) < 0)
		return; /* the peer was failed */
	int rc = engine_receive(r, m, page);
	if (rc < 0) {
		snprintf(why, sizeof(why), "invalid DSM message (kind %u, page %" PRIu64 "): %s",
			 (unsigned)m->kind, m->page, strerror(-rc));
		rpc_session_fail_peer(r->session, peer, why);
	}
}

static void on_dsm_frame(struct dsm_region *r, int peer, const struct rpc_frame_view *f)
{
	struct dsm_msg m;
	struct dsm_wire_extra x;
	char why[160];

	if (dsm_wire_unpack(&r->arena, f->body, f->body_len, &m, &x) < 0) {
		rpc_session_fail_peer(r->session, peer, "undecodable DSM message");
		return;
	}
	m.src = (uint16_t)peer;
	m.dst = (uint16_t)r->self;
	if (x.data_by_read && (!r->os || m.kind != DSM_MSG_GRANT ||
			       !(m.flags & DSM_MSG_F_DATA) || f->page || m.page >= r->mem.n_pages)) {
		snprintf(why, sizeof(why), "DSM %s for page %" PRIu64 " marked data_by_read",
			 dsm_msg_kind_name(m.kind), m.page);
		rpc_session_fail_peer(r->session, peer, why);
		return;
	}
	if (((m.flags & DSM_MSG_F_DATA) != 0) != (f->page != NULL || x.data_by_read)) {
		snprintf(why, sizeof(why), "DSM %s for page %" PRIu64 " with%s page payload",
			 dsm_msg_kind_name(m.kind), m.page, f->page ? " an unexpected" : "out its");
		rpc_session_fail_peer(r->session, peer, why);
		return;
	}
	if (r->hold && m.page < r->mem.n_pages && dsm_hold_must_wait(r->hold, m.page, now_ns())) {
		if (dsm_hold_push(r->hold, peer, &m, &x, f->page) < 0)
			region_fatal(r, "out of memory holding a message for page %" PRIu64, m.page);
		return;
	}
	region_deliver(r, peer, &m, &x, f->page);
}

/* The session's client callback for frame types 16..31. */
void region_on_frame(void *opaque, int peer, const struct rpc_frame_view *f)
{
	struct dsm_region *r = opaque;
	char why[64];

	r->frame_arrival_ns = now_ns();
	switch (f->type) {
	case RPC_MSG_DSM:
		on_dsm_frame(r, peer, f);
		return;
	case RPC_MSG_DSM_MEMORY:
		region_on_memory_frame(r, peer, f->body, f->body_len);
		return;
	}
	snprintf(why, sizeof(why), "unexpected DSM frame type %u", f->type);
	rpc_session_fail_peer(r->session, peer, why);
}
