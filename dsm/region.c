// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DSM region: public API, life cycle, and the region's side of the
 * session (see region.h for the model, region_internal.h for its parts).
 *
 * Threads:
 *  - the creator/API threads: create, stats, page stats, migrate, destroy.
 *    After create they never touch the engine: stats and the rest run on
 *    the loop thread through rpc_session_call().
 *  - the session's loop thread: the region's client callbacks (frames,
 *    peers, loop turns), the userfaultfd poll and the region's timers
 *    (fault timeouts, the policy); it owns the engine and the memory.
 *  - faulting threads: any thread touching the region; they block in the
 *    kernel until the loop thread resolves their fault.
 * No lock of the region's own: the session's rules (rpc/session.h) hold.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region_internal.h"
#include "rpc/log.h"

static int initial_home(uint64_t page, void *ctx)
{
	const struct dsm_region *r = ctx;
	return dsm_placement_home(&r->placement, page);
}

static bool is_home(void *ctx, uint64_t page)
{
	const struct dsm_region *r = ctx;
	return dsm_engine_is_home(r->engine, page);
}

/* ---- on the loop thread: API calls ------------------------------------------ */

static void fill_stats(struct dsm_region *r, struct dsm_stats *out)
{
	struct rpc_transport_stats ts;

	*out = r->stats;
	out->engine = *dsm_engine_counters(r->engine);
	rpc_session_transport_stats(r->session, &ts);
	out->frames_sent = ts.frames_sent;
	out->frames_received = ts.frames_received;
	out->bytes_sent = ts.bytes_sent;
	out->bytes_received = ts.bytes_received;
	if (r->policy)
		out->policy = *dsm_policy_counters(r->policy);
	out->pages_present = dsm_memory_present_pages(&r->mem);
	out->pages_homed = dsm_engine_home_frames(r->engine);
	uint64_t used = dsm_engine_frames_used(r->engine);
	out->pages_cached = used > out->pages_homed ? used - out->pages_homed : 0;
	out->pages_present_max = r->mem.max_present;
	pthread_mutex_lock(&r->prefetch.lock);
	out->prefetch_dropped = r->prefetch.dropped;
	pthread_mutex_unlock(&r->prefetch.lock);
	if (r->room.clock) {
		out->budget_frames = r->room.frames;
		out->min_cache_frames = r->room.min_cache;
		out->frames_used = dsm_engine_frames_used(r->engine);
		out->home_frames = dsm_engine_home_frames(r->engine);
	}
}

struct stats_call {
	struct dsm_region *r;
	struct dsm_stats *out;
};

static int stats_on_loop(void *arg)
{
	struct stats_call *c = arg;
	fill_stats(c->r, c->out);
	return 0;
}

struct page_call {
	struct dsm_region *r;
	uint64_t page;
	int target;
	struct dsm_page_counters *counters;
	uint32_t *read_by, *write_by;
};

static int page_stats_on_loop(void *arg)
{
	struct page_call *c = arg;
	struct dsm_region *r = c->r;

	if (c->page >= r->mem.n_pages)
		return -EINVAL;
	if (!dsm_engine_is_home(r->engine, c->page))
		return -ENOENT;
	*c->counters = *dsm_engine_page_counters(r->engine, c->page);
	if (c->read_by && c->write_by)
		dsm_engine_page_node_misses(r->engine, c->page, c->read_by, c->write_by);
	return 0;
}

static int migrate_on_loop(void *arg)
{
	struct page_call *c = arg;

	if (c->page >= c->r->mem.n_pages)
		return -EINVAL;
	return region_engine_migrate(c->r, c->page, c->target);
}

/* ---- on the loop thread: timers ---------------------------------------------- */

/*
 * Disco's policy, once per interval on the loop thread: every page this
 * node is home for that took misses gets a decision, and its counts start
 * over. A migration starts the protocol's home move (FLUSH round, then
 * MIGRATE; with budgets an OFFER first, which the target may refuse);
 * requests meanwhile queue at the old home. Under a budget the decision
 * also sets the page's "replicated" hint, which shared GRANTs carry to
 * the readers' eviction clocks.
 */
static void on_policy_timer(uv_timer_t *h)
{
	struct dsm_region *r = h->data;

	for (uint64_t p = 0; p < r->mem.n_pages; p++) {
		int target = -1;

		if (!dsm_engine_page_node_misses(r->engine, p, r->policy_reads, r->policy_writes))
			continue;
		dsm_engine_page_node_misses_clear(r->engine, p);
		if (!dsm_engine_is_home(r->engine, p))
			continue;
		enum dsm_policy_action act =
			dsm_policy_decide(r->policy, p, r->policy_reads, r->policy_writes, &target);
		if (r->room.clock)
			dsm_engine_set_replicated(r->engine, p, dsm_policy_replicated(r->policy, p));
		if (act != DSM_POLICY_MIGRATE)
			continue;
		if (region_engine_migrate(r, p, target) < 0)
			dsm_policy_undo_move(r->policy, p);
	}
	dsm_policy_interval_done(r->policy);
}

/* Every fault_timeout_ms / 10. When the loop itself stalled (the process
 * was stopped, or the host starved it) for more than half the timeout
 * beyond that period, the time the pending faults waited was ours, not
 * their peers': their clocks restart, as the session restarts its peer
 * timeouts then (rpc/peer.c, on_tick), so a node that runs again learns
 * from its peers (a closed connection, a frame) what happened instead of
 * blaming a page. */
static void on_timeout_timer(uv_timer_t *h)
{
	struct dsm_region *r = h->data;
	uint64_t now = uv_hrtime();
	uint64_t period_ns = uv_timer_get_repeat(h) * 1000000ULL;
	uint64_t stall_ns = period_ns + (uint64_t)r->settings.fault_timeout_ms * 500000ULL;

	if (r->last_timeout_check_ns && now - r->last_timeout_check_ns > stall_ns)
		region_restart_fault_clocks(r, now);
	r->last_timeout_check_ns = now;
	region_room_tick(r);
	region_check_timeouts(r, now);
}

/* ---- the region as a client of its session (loop thread) -------------------- */

static int on_loop_start(void *opaque)
{
	struct dsm_region *r = opaque;
	uv_loop_t *loop = rpc_session_loop(r->session);

	uv_poll_init(loop, &r->uffd_poll, r->mem.uffd);
	r->uffd_poll.data = r;
	uv_poll_start(&r->uffd_poll, UV_READABLE, region_on_uffd_readable);
	uv_timer_init(loop, &r->timeout_timer);
	r->timeout_timer.data = r;
	uint64_t period = r->settings.fault_timeout_ms / 10 ? r->settings.fault_timeout_ms / 10 : 1;
	uv_timer_start(&r->timeout_timer, on_timeout_timer, period, period);
	if (r->policy) {
		uint64_t interval = r->settings.knobs.interval_ms ? r->settings.knobs.interval_ms : 100;
		uv_timer_init(loop, &r->policy_timer);
		r->policy_timer.data = r;
		uv_timer_start(&r->policy_timer, on_policy_timer, interval, interval);
	}
	region_prefetch_start(r, loop);
	return 0;
}

static int on_transport_started(void *opaque)
{
	struct dsm_region *r = opaque;
	int rc = region_one_sided_setup(r);
	if (rc < 0)
		disco_log(DISCO_LOG_ERROR, "dsm: %s: cannot set up one-sided page reads: %s",
			  r->name, strerror(-rc));
	return rc;
}

static void on_peer_up(void *opaque, int peer)
{
	region_send_memory(opaque, peer); /* one-sided reads: where our memory is */
}

static void on_peer_down(void *opaque, int peer, const char *why, bool stopping)
{
	struct dsm_region *r = opaque;

	/* The transport has logged why; a fault that needed the peer says so. */
	if (!stopping)
		disco_log(DISCO_LOG_DEBUG, "dsm: dropping node %s from every directory (%s)",
			  rpc_session_node_name(r->session, peer), why);
	region_engine_peer_failed(r, peer);
}

/* Held messages are due within min_hold_us: poll. Evictions the engine
 * asked for: a bounded share each turn, polling while some are left. A
 * fault waits for its answer: poll for a bounded time (the session's
 * poll_us). */
static enum rpc_loop_need on_loop_turn(void *opaque, uint64_t now)
{
	struct dsm_region *r = opaque;
	bool held = r->hold && dsm_hold_release(r->hold, r, now);

	if (region_room_turn(r, now) == RPC_LOOP_BUSY || held)
		return RPC_LOOP_BUSY;
	return r->faults_in_flight ? RPC_LOOP_WAITING : RPC_LOOP_IDLE;
}

/* Diagnostics (dsm.hot_pages_report: N): the pages whose faults this node
 * waited for most often, to find false sharing in a guest. */
static void on_stop(void *opaque)
{
	struct dsm_region *r = opaque;

	region_prefetch_close(r);
	if (!r->page_faults)
		return;
	for (uint32_t k = 0; k < r->settings.hot_pages_report; k++) {
		uint64_t best = 0;
		for (uint64_t p = 1; p < r->mem.n_pages; p++)
			if (r->page_faults[p] > r->page_faults[best])
				best = p;
		if (!r->page_faults[best])
			break;
		disco_log(DISCO_LOG_INFO, "dsm: hot page %" PRIu64 " (offset 0x%" PRIx64 "): %u faults",
			  best, best * DSM_PAGE_SIZE, r->page_faults[best]);
		r->page_faults[best] = 0;
	}
}

/* ---- API ------------------------------------------------------------------- */

static int create_parts(struct dsm_region *r, const struct dsm_region_options *o)
{
	uint64_t n_pages = r->placement.n_pages;
	int rc;

	if ((rc = dsm_memory_init(&r->mem, o, n_pages * DSM_PAGE_SIZE, r->name)) < 0)
		return rc;
	if (r->mem.n_pages != n_pages)
		return -EINVAL;
	r->fault_start_ns = calloc(n_pages, sizeof(uint64_t));
	if (!r->fault_start_ns)
		return -ENOMEM;
	if (r->settings.hot_pages_report && !(r->page_faults = calloc(n_pages, sizeof(uint32_t))))
		return -ENOMEM;
	if (r->settings.min_hold_us &&
	    !(r->hold = dsm_hold_create(n_pages, (uint64_t)r->settings.min_hold_us * 1000)))
		return -ENOMEM;
	if (r->settings.policy == DSM_POLICY_DISCO) {
		r->policy = dsm_policy_create(&r->settings.knobs, r->self, r->n_nodes, n_pages);
		r->policy_reads = calloc(r->n_nodes, sizeof(uint32_t));
		r->policy_writes = calloc(r->n_nodes, sizeof(uint32_t));
		if (!r->policy || !r->policy_reads || !r->policy_writes)
			return -ENOMEM;
	}
	r->engine = dsm_engine_create(r->self, r->n_nodes, n_pages, initial_home, r, region_emit, r);
	if (!r->engine)
		return -ENOMEM;
	if ((rc = region_room_setup(r)) < 0)
		return rc;
	region_room_policy_setup(r);
	if ((o->n_segments || o->addr) &&
	    (rc = dsm_memory_adopt(&r->mem, is_home, r, r->room.clock != NULL)) < 0)
		return rc;
	return dsm_memory_watch(&r->mem);
}

int dsm_region_create(const struct dsm_region_options *o, struct dsm_region **out)
{
	int rc;

	if (!o->session || !o->settings || !o->placement || !o->placement->n_pages ||
	    rpc_session_n_nodes(o->session) > DSM_MAX_NODES ||
	    o->placement->n_nodes != rpc_session_n_nodes(o->session))
		return -EINVAL;
	struct dsm_region *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if ((rc = region_prefetch_init(r)) < 0) {
		free(r);
		return rc;
	}
	r->session = o->session;
	r->self = rpc_session_self(o->session);
	r->n_nodes = rpc_session_n_nodes(o->session);
	snprintf(r->name, sizeof(r->name), "%s", o->name ? o->name : "region");
	r->settings = *o->settings;
	if (!r->settings.fault_timeout_ms)
		r->settings.fault_timeout_ms = dsm_settings_default().fault_timeout_ms;
	r->placement = *o->placement;
	r->on_fatal = o->on_fatal;
	r->on_page_dropped = o->on_page_dropped;
	r->opaque = o->opaque;
	r->mem.uffd = r->mem.own_memfd = -1;
	if ((rc = create_parts(r, o)) < 0)
		goto fail;
	const struct rpc_session_client client = {
		.name = "DSM region",
		.type_first = RPC_MSG_DSM_FIRST,
		.type_last = RPC_MSG_DSM_LAST,
		.opaque = r,
		.on_loop_start = on_loop_start,
		.on_transport_started = on_transport_started,
		.on_frame = region_on_frame,
		.on_peer_up = on_peer_up,
		.on_peer_down = on_peer_down,
		.on_loop_turn = on_loop_turn,
		.on_stop = on_stop,
	};
	if ((rc = rpc_session_add_client(r->session, &client)) < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	dsm_region_destroy(r);
	return rc;
}

int dsm_region_stats(struct dsm_region *r, struct dsm_stats *out)
{
	struct stats_call c = { r, out };
	int rc = rpc_session_call(r->session, stats_on_loop, &c);
	if (rc == -ESHUTDOWN) {
		fill_stats(r, out); /* no loop runs: nothing races with us */
		return 0;
	}
	return rc;
}

int dsm_region_page_stats(struct dsm_region *r, uint64_t page, struct dsm_page_counters *out,
			  uint32_t *read_by, uint32_t *write_by)
{
	struct page_call c = {
		.r = r, .page = page, .counters = out, .read_by = read_by, .write_by = write_by,
	};
	return rpc_session_call(r->session, page_stats_on_loop, &c);
}

int dsm_region_migrate_home(struct dsm_region *r, uint64_t page, int target)
{
	struct page_call c = { .r = r, .page = page, .target = target };
	return rpc_session_call(r->session, migrate_on_loop, &c);
}

void dsm_region_destroy(struct dsm_region *r)
{
	if (!r)
		return;
	dsm_memory_fini(&r->mem);
	dsm_engine_destroy(r->engine);
	free(r->fault_start_ns);
	free(r->page_faults);
	dsm_policy_destroy(r->policy);
	free(r->policy_reads);
	free(r->policy_writes);
	dsm_hold_destroy(r->hold);
	region_one_sided_free(r);
	region_room_free(r);
	region_prefetch_fini(r);
	free(r);
}

void *dsm_region_base(const struct dsm_region *r) { return r->mem.base; }
size_t dsm_region_size(const struct dsm_region *r) { return r->mem.size; }
int dsm_region_node(const struct dsm_region *r) { return r->self; }
int dsm_region_n_nodes(const struct dsm_region *r) { return r->n_nodes; }
