/*
 * The DSM fault path, run entirely by the region's loop thread.
 *
 * A thread touching a page it may not access blocks in the kernel; the
 * loop thread, asleep in epoll on the userfaultfd among the sockets, reads
 * the event, feeds it to the engine, and the engine's SEND goes out with
 * sendmsg() from this same thread. The answer arrives on a socket watched
 * by the same loop; the engine's INSTALL becomes one UFFDIO_COPY straight
 * from the receive buffer, which also wakes the faulting thread. So a
 * remote read fault costs at most four wake-ups (loop here, loop at the
 * home, loop here, the faulting thread; polling saves the first three,
 * see run_loop() in region.c) and three copies of the page (home memory
 * to socket, socket to receive buffer, buffer to place), and nothing on
 * the way takes a lock but the socket's send mutex.
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

#include "bench.pb-c.h"
#include "dsm/region_internal.h"
#include "dsm/uffd.h"
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
	pthread_mutex_lock(&r->mu);
	bool stopping = r->stopping;
	pthread_mutex_unlock(&r->mu);
	if (stopping)
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

	if (r->one_sided) {
		x.read_posted = region_read_ahead(r, &a->msg);
		if (a->data == DSM_DATA_LOCAL && region_grant_by_read(r, &a->msg, &x))
			goto pack; /* the requester reads the page itself */
	}
	if (a->data == DSM_DATA_LOCAL && !r->present[a->page])
		payload = zero_page;
	else if (a->data == DSM_DATA_LOCAL)
		payload = r->memfd ? region_view_addr(r, a->page) : region_page_addr(r, a->page);
	else if (a->data == DSM_DATA_INCOMING)
		payload = r->incoming_page;
pack:;
	size_t len = dsm_wire_pack(&a->msg, &x, body, sizeof(body));
	int rc = rpc_transport_send(r->transport, a->msg.dst, RPC_MSG_DSM, body, len, payload);
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

static void install(struct dsm_region *r, uint64_t page, const void *src, bool writable)
{
	uint8_t *addr = region_page_addr(r, page);

	if (r->present[page]) { /* not expected: the engine installs into invalid pages */
		madvise(addr, DSM_PAGE_SIZE, MADV_DONTNEED);
		if (r->on_page_dropped)
			r->on_page_dropped(r->opaque, page);
	}
	int rc;
	region_ver_unstable(r, page);
	if (r->memfd) {
		/* nobody can touch the file's page meanwhile: it is unmapped in
		 * the watched view, and only this thread writes the other (a
		 * one-sided read has already put the bytes there) */
		uint8_t *view = region_view_addr(r, page);
		if (src != view)
			memcpy(view, src, DSM_PAGE_SIZE);
		rc = dsm_uffd_continue(r->uffd, addr, !writable);
	} else {
		rc = dsm_uffd_copy(r->uffd, addr, src, !writable);
	}
	if (rc < 0) {
		region_fatal(r, "page %" PRIu64 ": %s failed: %s", page,
			     r->memfd ? "UFFDIO_CONTINUE" : "UFFDIO_COPY", strerror(-rc));
		return;
	}
	r->present[page] = 1;
	r->writable[page] = writable;
	if (!writable)
		region_ver_stable(r, page);
	r->woken_page = page; /* UFFDIO_COPY woke its waiters */
	if (writable && r->hold_until)
		r->hold_until[page] = now_ns() + r->min_hold_ns;
}

static void protect(struct dsm_region *r, uint64_t page, bool writable)
{
	if (!r->present[page] || r->writable[page] == writable)
		return; /* an unpopulated page faults as MISSING and is mapped then */
	if (writable)
		region_ver_unstable(r, page);
	int rc = dsm_uffd_protect(r->uffd, region_page_addr(r, page), !writable);
	if (rc < 0) {
		region_fatal(r, "page %" PRIu64 ": UFFDIO_WRITEPROTECT failed: %s", page,
			     strerror(-rc));
		return;
	}
	r->writable[page] = writable;
	if (!writable)
		region_ver_stable(r, page); /* the ioctl flushed every CPU's TLB */
	if (writable) {
		r->woken_page = page; /* un-protecting wakes waiters */
		if (r->hold_until)
			r->hold_until[page] = now_ns() + r->min_hold_ns;
	}
}

/* "node n1 lost" or "nodes n1, n3 lost": a request fails only because a
 * peer was lost, and the page's home hint may be this node (it was the
 * lost owner that held the data), so name the lost nodes themselves. */
static void describe_lost_nodes(struct dsm_region *r, char *buf, size_t len)
{
	pthread_mutex_lock(&r->mu);
	dsm_nodeset_t down = r->peers_down;
	pthread_mutex_unlock(&r->mu);

	int n = 0;
	size_t used = 0;
	char names[200] = "";
	for (int i = 0; i < r->n_nodes && used < sizeof(names); i++) {
		if (i == r->self || !((down >> i) & 1))
			continue;
		int w = snprintf(names + used, sizeof(names) - used, "%s%s", n ? ", " : "",
				 r->cfg->nodes[i].name);
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

	switch (a->kind) {
	case DSM_ACT_SEND:
		send_dsm(r, a);
		break;
	case DSM_ACT_INSTALL:
		if (!r->incoming_page) {
			region_fatal(r, "page %" PRIu64 ": install without data", page);
			break;
		}
		r->stats.pages_received++;
		install(r, page, r->incoming_page, a->prot == DSM_PROT_WRITE);
		break;
	case DSM_ACT_PROTECT:
		protect(r, page, a->prot == DSM_PROT_WRITE);
		break;
	case DSM_ACT_DROP:
		if (r->present[page]) {
			madvise(region_page_addr(r, page), DSM_PAGE_SIZE, MADV_DONTNEED);
			r->present[page] = 0;
			r->writable[page] = 0;
			region_ver_stable(r, page);
			if (r->on_page_dropped)
				r->on_page_dropped(r->opaque, page);
		}
		break;
	case DSM_ACT_MAP_LOCAL:
		if (!r->present[page])
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
		if (r->woken_page != page)
			dsm_uffd_wake(r->uffd, region_page_addr(r, page));
		break;
	case DSM_ACT_NEED_ROOM:
	case DSM_ACT_MOVE_REFUSED:
		/* Budgets only; the runtime does not set one (yet), so the
		 * engine never emits these here. */
		break;
	}
}

/* ---- userfaultfd events ---------------------------------------------------- */

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
		ssize_t n = read(r->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				region_fatal(r, "userfaultfd read failed: %s", strerror(errno));
			return;
		}
		uint64_t t = now_ns();
		r->last_activity_ns = t;
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t addr = msgs[i].arg.pagefault.address;
			uint64_t flags = msgs[i].arg.pagefault.flags;
			uint64_t page = region_addr_page(r, addr);
			if (page >= r->n_pages)
				continue;
			bool is_write = flags & (UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP);
			r->stats.uffd_events++;
			r->woken_page = NO_PAGE;
			dsm_engine_local_fault(r->engine, page, is_write);
			if (dsm_engine_pending(r->engine, page) && !r->fault_start_ns[page]) {
				r->stats.fault_send_ns += now_ns() - t;
				r->fault_start_ns[page] = t;
				r->faults_in_flight++;
			}
		}
		if ((size_t)n < sizeof(msgs))
			return;
	}
}

void region_check_timeouts(struct dsm_region *r, uint64_t now)
{
	uint64_t limit = (uint64_t)r->fault_timeout_ms * 1000000ULL;
	if (!r->faults_in_flight)
		return;
	for (uint64_t p = 0; p < r->n_pages; p++) {
		uint64_t start = r->fault_start_ns[p];
		if (start && now - start > limit) {
			int hint = dsm_engine_home_hint(r->engine, p);
			region_fatal(r,
				     "page %" PRIu64 " (offset 0x%" PRIx64 "): no answer for %u ms "
				     "(asked node %s)",
				     p, p * DSM_PAGE_SIZE, r->fault_timeout_ms, r->cfg->nodes[hint].name);
			return;
		}
	}
}

/* ---- frames from peers ------------------------------------------------------- */

static void deliver(struct dsm_region *r, int peer, const struct dsm_msg *m,
		    const struct dsm_wire_extra *x, const uint8_t *page)
{
	char why[160];

	if (r->one_sided && m->page < r->n_pages && region_one_sided_frame(r, peer, m, x, &page) < 0)
		return; /* the peer was failed */
	r->incoming_page = page;
	r->woken_page = NO_PAGE;
	int rc = dsm_engine_receive(r->engine, m);
	r->incoming_page = NULL;
	if (rc < 0) {
		snprintf(why, sizeof(why), "invalid DSM message (kind %u, page %" PRIu64 "): %s",
			 (unsigned)m->kind, m->page, strerror(-rc));
		rpc_transport_fail_peer(r->transport, peer, why);
	}
}

static void hold(struct dsm_region *r, int peer, const struct dsm_msg *m,
		 const struct dsm_wire_extra *x, const uint8_t *page)
{
	struct held_msg *h = malloc(sizeof(*h) + (page ? DSM_PAGE_SIZE : 0));
	if (!h) {
		region_fatal(r, "out of memory holding a message for page %" PRIu64, m->page);
		return;
	}
	h->next = NULL;
	h->peer = peer;
	h->m = *m;
	h->x = *x;
	h->has_page = page != NULL;
	if (page)
		memcpy(h->page, page, DSM_PAGE_SIZE);
	if (r->held_tail)
		r->held_tail->next = h;
	else
		r->held_head = h;
	r->held_tail = h;
	r->held_count[m->page]++;
	r->held_total++;
}

/* Deliver held messages whose page's hold has expired, in arrival order;
 * a page whose hold is still running keeps all its messages back. Only
 * frame arrival adds to the list, never deliver(), so it is stable here. */
void region_release_held(struct dsm_region *r, uint64_t now)
{
	struct held_msg *prev = NULL, *h = r->held_head;

	while (h) {
		struct held_msg *next = h->next;
		if (now < r->hold_until[h->m.page]) {
			prev = h;
			h = next;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			r->held_head = next;
		if (r->held_tail == h)
			r->held_tail = prev;
		r->held_count[h->m.page]--;
		r->held_total--;
		deliver(r, h->peer, &h->m, &h->x, h->has_page ? h->page : NULL);
		free(h);
		h = next;
	}
}

void region_free_held(struct dsm_region *r)
{
	while (r->held_head) {
		struct held_msg *h = r->held_head;
		r->held_head = h->next;
		free(h);
	}
	r->held_tail = NULL;
	r->held_total = 0;
}

static void on_dsm_frame(struct dsm_region *r, int peer, const struct rpc_frame_view *f)
{
	struct dsm_msg m;
	struct dsm_wire_extra x;
	char why[160];

	if (dsm_wire_unpack(r, f->body, f->body_len, &m, &x) < 0) {
		rpc_transport_fail_peer(r->transport, peer, "undecodable DSM message");
		return;
	}
	m.src = (uint16_t)peer;
	m.dst = (uint16_t)r->self;
	if (x.data_by_read && (!r->one_sided || m.kind != DSM_MSG_GRANT ||
			       !(m.flags & DSM_MSG_F_DATA) || f->page || m.page >= r->n_pages)) {
		snprintf(why, sizeof(why), "DSM %s for page %" PRIu64 " marked data_by_read",
			 dsm_msg_kind_name(m.kind), m.page);
		rpc_transport_fail_peer(r->transport, peer, why);
		return;
	}
	if (((m.flags & DSM_MSG_F_DATA) != 0) != (f->page != NULL || x.data_by_read)) {
		snprintf(why, sizeof(why), "DSM %s for page %" PRIu64 " with%s page payload",
			 dsm_msg_kind_name(m.kind), m.page, f->page ? " an unexpected" : "out its");
		rpc_transport_fail_peer(r->transport, peer, why);
		return;
	}
	if (r->hold_until && m.page < r->n_pages &&
	    (r->held_count[m.page] || now_ns() < r->hold_until[m.page])) {
		hold(r, peer, &m, &x, f->page);
		return;
	}
	deliver(r, peer, &m, &x, f->page);
}

static void on_ping(struct dsm_region *r, int peer, uint64_t id)
{
	Disco__BenchPong pong = DISCO__BENCH_PONG__INIT;
	uint8_t body[32];

	pong.id = id;
	size_t len = disco__bench_pong__pack(&pong, body);
	rpc_transport_send(r->transport, peer, RPC_MSG_PONG, body, len, zero_page);
}

void region_on_frame(void *opaque, int peer, const struct rpc_frame_view *f)
{
	struct dsm_region *r = opaque;
	uint64_t id;

	r->last_activity_ns = r->frame_arrival_ns = now_ns();
	if (f->type == RPC_MSG_DSM) {
		on_dsm_frame(r, peer, f);
		return;
	}
	if (f->type == RPC_MSG_DSM_MEMORY) {
		region_on_memory_frame(r, peer, f->body, f->body_len);
		return;
	}
	if (f->type >= RPC_MSG_VM_FIRST && f->type <= RPC_MSG_VM_LAST && r->on_frame) {
		r->on_frame(r->opaque, peer, f->type, f->body, f->body_len);
		return;
	}
	if (dsm_wire_unpack_u64_id(r, f->type, f->body, f->body_len, &id) < 0) {
		char why[64];
		snprintf(why, sizeof(why), "unexpected or undecodable frame type %u", f->type);
		rpc_transport_fail_peer(r->transport, peer, why);
		return;
	}
	switch (f->type) {
	case RPC_MSG_PING:
		on_ping(r, peer, id);
		break;
	case RPC_MSG_PONG:
		if (f->page) {
			struct iovec iov = { .iov_base = (void *)f->page, .iov_len = DSM_PAGE_SIZE };
			rpc_call_completev(&r->calls, id, &iov, 1);
		} else {
			rpc_call_complete(&r->calls, id, NULL, 0);
		}
		break;
	case RPC_MSG_BARRIER:
		pthread_mutex_lock(&r->mu);
		if (id > r->barrier_seen[peer])
			r->barrier_seen[peer] = (uint32_t)id;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->mu);
		break;
	}
}
