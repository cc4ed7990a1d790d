/*
 * The DSM region: public API and life cycle (see region.h for the model).
 *
 * Threads:
 *  - the creator/API threads: create, start, barrier, stats, stop. They
 *    never touch the engine; they post a struct region_cmd (on their
 *    stack) to the loop thread through uv_async and wait on `cond`.
 *  - the loop thread, created by dsm_region_start(): runs the libuv loop
 *    with the transport, the userfaultfd poll, the command async and the
 *    fault-timeout timer; it owns the engine. It may block only in epoll.
 *  - faulting threads: any thread touching the region; they block in the
 *    kernel until the loop thread resolves their fault.
 * Locking: r->mu is a leaf lock. Nobody holds it while taking another
 * lock or blocking (except in pthread_cond_wait on r->cond), and the loop
 * thread releases it before calling into the engine or the transport.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.pb-c.h"
#include "dsm.pb-c.h"
#include "dsm/region_internal.h"
#include "dsm/uffd.h"
#include "rpc/log.h"

struct home_ctx {
	const struct cluster_config *cfg;
	const struct cluster_vm *vm;
};

static int initial_home(uint64_t page, void *ctx)
{
	struct home_ctx *h = ctx;
	return cluster_vm_initial_home(h->cfg, h->vm, page);
}

/* ---- loop thread --------------------------------------------------------- */

static void close_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void fill_stats(struct dsm_region *r, struct dsm_stats *out)
{
	*out = r->stats;
	out->engine = *dsm_engine_counters(r->engine);
	struct rpc_transport_stats *ts = &r->transport->stats;
	out->frames_sent = __atomic_load_n(&ts->frames_sent, __ATOMIC_RELAXED);
	out->frames_received = __atomic_load_n(&ts->frames_received, __ATOMIC_RELAXED);
	out->bytes_sent = __atomic_load_n(&ts->bytes_sent, __ATOMIC_RELAXED);
	out->bytes_received = __atomic_load_n(&ts->bytes_received, __ATOMIC_RELAXED);
	if (r->policy)
		out->policy = *dsm_policy_counters(r->policy);
	out->pages_present = 0;
	for (uint64_t p = 0; p < r->n_pages; p++)
		out->pages_present += r->present[p];
}

static void send_barrier(struct dsm_region *r, uint32_t id)
{
	Disco__Barrier b = DISCO__BARRIER__INIT;
	uint8_t body[16];
	b.id = id;
	size_t len = disco__barrier__pack(&b, body);
	for (int n = 0; n < r->n_nodes; n++)
		if (n != r->self)
			rpc_transport_send(r->transport, n, RPC_MSG_BARRIER, body, len, NULL);
}

static int run_cmd(struct dsm_region *r, struct region_cmd *c)
{
	switch (c->kind) {
	case REGION_CMD_STOP:
		rpc_transport_stop(r->transport);
		uv_walk(&r->loop, close_handle, NULL);
		return 0;
	case REGION_CMD_STATS:
		fill_stats(r, c->stats);
		return 0;
	case REGION_CMD_PAGE_STATS:
		if (c->page >= r->n_pages)
			return -EINVAL;
		if (!dsm_engine_is_home(r->engine, c->page))
			return -ENOENT;
		*c->page_counters = *dsm_engine_page_counters(r->engine, c->page);
		if (c->read_by && c->write_by)
			dsm_engine_page_node_misses(r->engine, c->page, c->read_by, c->write_by);
		return 0;
	case REGION_CMD_MIGRATE:
		if (c->page >= r->n_pages)
			return -EINVAL;
		r->woken_page = UINT64_MAX;
		return dsm_engine_migrate_home(r->engine, c->page, c->target);
	case REGION_CMD_BARRIER:
		send_barrier(r, c->barrier_id);
		return 0;
	}
	return -EINVAL;
}

static void on_cmd_async(uv_async_t *h)
{
	struct dsm_region *r = h->data;

	pthread_mutex_lock(&r->mu);
	struct region_cmd *list = r->cmd_head;
	r->cmd_head = r->cmd_tail = NULL;
	pthread_mutex_unlock(&r->mu);

	while (list) {
		struct region_cmd *next = list->next;
		int rc = run_cmd(r, list);
		pthread_mutex_lock(&r->mu);
		list->result = rc;
		list->done = true; /* the caller may free it from here on */
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->mu);
		list = next;
	}
}

/*
 * Disco's policy, once per interval on the loop thread: every page this
 * node is home for that took misses gets a decision, and its counts start
 * over. A migration starts the protocol's home move (FLUSH round, then
 * MIGRATE); requests meanwhile queue at the old home.
 */
static void on_policy_timer(uv_timer_t *h)
{
	struct dsm_region *r = h->data;

	for (uint64_t p = 0; p < r->n_pages; p++) {
		int target = -1;

		if (!dsm_engine_page_node_misses(r->engine, p, r->policy_reads, r->policy_writes))
			continue;
		dsm_engine_page_node_misses_clear(r->engine, p);
		if (!dsm_engine_is_home(r->engine, p))
			continue;
		if (dsm_policy_decide(r->policy, p, r->policy_reads, r->policy_writes, &target) !=
		    DSM_POLICY_MIGRATE)
			continue;
		r->woken_page = UINT64_MAX;
		if (dsm_engine_migrate_home(r->engine, p, target) < 0)
			dsm_policy_undo_move(r->policy, p);
	}
	dsm_policy_interval_done(r->policy);
}

static void on_timeout_timer(uv_timer_t *h)
{
	struct dsm_region *r = h->data;
	region_check_timeouts(r, uv_hrtime());
}

static void on_peer_up(void *opaque, int peer)
{
	struct dsm_region *r = opaque;
	pthread_mutex_lock(&r->mu);
	r->peers_up |= (dsm_nodeset_t)1 << peer;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	disco_log(DISCO_LOG_INFO, "dsm: node %s joined", r->cfg->nodes[peer].name);
	region_send_memory(r, peer); /* one-sided reads: where our memory is */
}

static void on_peer_down(void *opaque, int peer, enum rpc_peer_state state, const char *why)
{
	struct dsm_region *r = opaque;

	pthread_mutex_lock(&r->mu);
	r->peers_down |= (dsm_nodeset_t)1 << peer;
	bool stopping = r->stopping;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	/* The transport has logged why; a fault that needed the peer says so. */
	if (!stopping)
		disco_log(DISCO_LOG_DEBUG, "dsm: dropping node %s from every directory (%s)",
			  r->cfg->nodes[peer].name, why);
	r->woken_page = UINT64_MAX;
	dsm_engine_peer_failed(r->engine, peer);
	rpc_call_fail_all(&r->calls, -EHOSTDOWN);
	if (!stopping && r->on_peer_lost)
		r->on_peer_lost(r->opaque, peer, why);
}

/*
 * The loop sleeps in epoll unless an answer is due soon: while this node
 * has a request out (a fault or an RTT probe) it polls for up to
 * poll_max_ns, and it keeps polling for poll_linger_ns after any activity,
 * because a wake-up here costs more than the whole network round trip
 * (docs/architecture.md). It yields on every turn, so a thread woken onto
 * this CPU (the faulting thread) runs at once; only this one thread per
 * process ever polls.
 */
static void run_loop(struct dsm_region *r)
{
	uint64_t spin_start = 0;

	for (;;) {
		uint64_t now = uv_hrtime();
		if (r->held_total)
			region_release_held(r, now);
		bool waiting = r->faults_in_flight ||
			       __atomic_load_n(&r->probes_in_flight, __ATOMIC_RELAXED);
		if (!waiting)
			spin_start = 0;
		else if (!spin_start)
			spin_start = now;
		bool poll = (waiting && now - spin_start < r->poll_max_ns) ||
			    now - r->last_activity_ns < r->poll_linger_ns ||
			    r->held_total; /* a hold ends within min_hold_us */
		if (!poll) {
			if (!uv_run(&r->loop, UV_RUN_ONCE))
				return;
			continue;
		}
		if (!uv_run(&r->loop, UV_RUN_NOWAIT))
			return;
		if (r->poll_yield)
			sched_yield();
	}
}

static uint64_t env_us(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	char *end;
	if (!v || !*v)
		return dflt;
	unsigned long long x = strtoull(v, &end, 10);
	return *end ? dflt : x;
}

/*
 * Faulting threads wait on this thread, and in a VM they are CPU-bound
 * vCPUs that would otherwise starve it for whole scheduler slices. Raise
 * its priority when allowed (root or CAP_SYS_NICE); DISCO_LOOP_SCHED=fifo
 * uses SCHED_FIFO instead of nice, =none leaves it alone.
 */
static void raise_loop_priority(void)
{
	const char *mode = getenv("DISCO_LOOP_SCHED");
	if (mode && !strcmp(mode, "none"))
		return;
	if (mode && !strcmp(mode, "fifo")) {
		struct sched_param sp = { .sched_priority = 1 };
		if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
			return;
	}
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), -10) < 0)
		disco_log(DISCO_LOG_DEBUG, "dsm: loop thread keeps normal priority: %s",
			  strerror(errno));
}

static void loop_thread(void *arg)
{
	struct dsm_region *r = arg;

	raise_loop_priority();
	if (r->on_loop_start)
		r->on_loop_start(r->opaque);

	disco_log_set_thread_node(r->cfg->nodes[r->self].name);
	pthread_setname_np(pthread_self(), "disco-dsm-loop");
	int rc = rpc_transport_start(r->transport);
	if (rc < 0) {
		disco_log(DISCO_LOG_ERROR, "dsm: cannot start the %s transport on %s:%d: %s",
			  r->transport->ops->name, r->cfg->nodes[r->self].address,
			  r->cfg->nodes[r->self].port, strerror(-rc));
		uv_walk(&r->loop, close_handle, NULL);
	} else if ((rc = region_one_sided_setup(r)) < 0) {
		disco_log(DISCO_LOG_ERROR, "dsm: cannot set up one-sided reads on rdma device %s: "
			  "%s", r->cfg->nodes[r->self].rdma.device, strerror(-rc));
		uv_walk(&r->loop, close_handle, NULL);
	}
	run_loop(r);
	pthread_mutex_lock(&r->mu);
	r->loop_running = false;
	if (rc < 0)
		r->peers_down = ~(dsm_nodeset_t)0;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* ---- API side ------------------------------------------------------------- */

/* Post @c to the loop thread and wait for it. -ESHUTDOWN if no loop runs. */
static int post_cmd(struct dsm_region *r, struct region_cmd *c)
{
	c->next = NULL;
	c->done = false;
	pthread_mutex_lock(&r->mu);
	if (!r->loop_running) {
		pthread_mutex_unlock(&r->mu);
		return -ESHUTDOWN;
	}
	if (r->cmd_tail)
		r->cmd_tail->next = c;
	else
		r->cmd_head = c;
	r->cmd_tail = c;
	pthread_mutex_unlock(&r->mu);
	uv_async_send(&r->cmd_async);
	pthread_mutex_lock(&r->mu);
	while (!c->done && r->loop_running)
		pthread_cond_wait(&r->cond, &r->mu);
	int rc = c->done ? c->result : -ESHUTDOWN;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static void deadline_in(struct timespec *ts, uint32_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void init_cond_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Apply @advice to every maximal run of pages whose home-ness is @home. */
static int advise_runs(struct dsm_region *r, bool home, int advice)
{
	for (int i = 0; i < r->n_seg; i++) {
		uint64_t first = r->seg_first_page[i], end = first + r->seg[i].size / DSM_PAGE_SIZE;
		uint64_t start = first;
		for (uint64_t p = first; p <= end; p++) {
			if (p < end && dsm_engine_is_home(r->engine, p) == home)
				continue;
			if (p > start && madvise(region_page_addr(r, start),
						 (p - start) * DSM_PAGE_SIZE, advice) < 0)
				return -errno;
			start = p + 1;
		}
	}
	return 0;
}

/*
 * An adopted mapping may hold data already (QEMU's ROM blobs, a guest
 * image). Pages another node is home for are discarded: their content
 * comes from their home. Our own pages keep theirs, and are populated now,
 * before userfaultfd registration, so the loop thread can later read them
 * for sending without ever faulting on its own region.
 */
static int adopt_mapping(struct dsm_region *r)
{
	int rc = advise_runs(r, false, MADV_DONTNEED);
	if (rc == 0)
		rc = advise_runs(r, true, MADV_POPULATE_WRITE);
	if (rc < 0)
		return rc;
	for (uint64_t p = 0; p < r->n_pages; p++)
		if (dsm_engine_is_home(r->engine, p))
			r->present[p] = r->writable[p] = 1;
	return 0;
}

/* dsm.backing memfd: the kernel must map read-only with UFFDIO_CONTINUE,
 * and adopted memory must come with its memfd. */
static int check_memfd_backing(struct dsm_region *r, const struct dsm_region_options *o)
{
	int rc = dsm_uffd_probe_continue_wp();
	if (rc < 0) {
		disco_log(DISCO_LOG_ERROR,
			  "dsm: vm %s: dsm.backing memfd needs UFFDIO_CONTINUE with "
			  "write protection (Linux 6.4 or later): %s",
			  r->vm->name, strerror(-rc));
		return rc;
	}
	if (o->addr && !o->n_segments) {
		disco_log(DISCO_LOG_ERROR, "dsm: vm %s: dsm.backing memfd: an adopted mapping "
			  "needs its memfd (pass segments with fd)", r->vm->name);
		return -EINVAL;
	}
	for (int i = 0; i < o->n_segments; i++) {
		if (o->segments[i].fd < 0 || o->segments[i].fd_offset % DSM_PAGE_SIZE) {
			disco_log(DISCO_LOG_ERROR, "dsm: vm %s: dsm.backing memfd: segment %d has "
				  "no memfd (fd %d, offset %" PRIu64 ")", r->vm->name, i,
				  o->segments[i].fd, o->segments[i].fd_offset);
			return -EINVAL;
		}
	}
	return 0;
}

/* Fresh memory for a region that adopts none: anonymous (pages allocated
 * when first installed), or a new memfd mapped shared. */
static int map_own_memory(struct dsm_region *r)
{
	int fd = -1;

	if (r->memfd) {
		fd = memfd_create("disco-dsm", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)r->size) < 0) {
			int rc = -errno;
			close(fd);
			return rc;
		}
		r->own_memfd = fd;
	}
	r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
		       fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, fd, 0);
	if (r->base == MAP_FAILED) {
		r->base = NULL;
		return -errno;
	}
	r->own_mapping = true;
	return 0;
}

/* The second, unwatched mapping of each segment's memfd. The file's pages
 * are allocated now: a dropped copy keeps its page in the file anyway (only
 * the watched view is unmapped), so a node ends up holding the whole
 * region; allocating up front fails at start rather than mid-run when
 * memory is short, and no install pays for allocating a shmem page. */
static int map_views(struct dsm_region *r)
{
	for (int i = 0; i < r->n_seg; i++) {
		if (fallocate(r->seg[i].fd, 0, (off_t)r->seg[i].fd_offset,
			      (off_t)r->seg[i].size) < 0) {
			int rc = -errno;
			disco_log(DISCO_LOG_ERROR, "dsm: vm %s: cannot allocate %zu bytes of "
				  "memfd backing: %s", r->vm->name, r->seg[i].size, strerror(-rc));
			return rc;
		}
		void *v = mmap(NULL, r->seg[i].size, PROT_READ | PROT_WRITE, MAP_SHARED,
			       r->seg[i].fd, (off_t)r->seg[i].fd_offset);
		if (v == MAP_FAILED)
			return -errno;
		r->seg_view[i] = v;
	}
	return 0;
}

int dsm_region_create(const struct dsm_region_options *o, struct dsm_region **out)
{
	const struct cluster_config *cfg = o->cfg;
	int rc;

	if (!cfg || o->vm < 0 || o->vm >= cfg->n_vms || o->node < 0 || o->node >= cfg->n_nodes ||
	    cfg->n_nodes > DSM_MAX_NODES)
		return -EINVAL;
	struct dsm_region *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = cfg;
	r->vm = &cfg->vms[o->vm];
	r->self = o->node;
	r->n_nodes = cfg->n_nodes;
	if (o->n_segments < 0 || o->n_segments > DSM_MAX_SEGMENTS) {
		free(r);
		return -EINVAL;
	}
	r->size = 0;
	for (int i = 0; i < o->n_segments; i++) {
		r->seg[i] = o->segments[i];
		r->seg_first_page[i] = r->size / DSM_PAGE_SIZE;
		r->size += o->segments[i].size;
		if (!o->segments[i].addr || o->segments[i].size % DSM_PAGE_SIZE)
			r->size = 1; /* rejected below */
	}
	r->n_seg = o->n_segments;
	if (!r->n_seg)
		r->size = o->size ? o->size : r->vm->memory_bytes;
	r->n_pages = r->size / DSM_PAGE_SIZE;
	r->fault_timeout_ms = r->vm->dsm.fault_timeout_ms ? r->vm->dsm.fault_timeout_ms : 5000;
	r->on_fatal = o->on_fatal;
	r->opaque = o->opaque;
	r->on_loop_start = o->on_loop_start;
	r->on_page_dropped = o->on_page_dropped;
	r->on_frame = o->on_frame;
	r->on_peer_lost = o->on_peer_lost;
	r->uffd = -1;
	r->own_memfd = -1;
	r->memfd = r->vm->dsm.backing == DSM_BACKING_MEMFD;
	r->woken_page = UINT64_MAX;
	r->poll_max_ns = env_us("DISCO_POLL_US", 100) * 1000;
	r->poll_linger_ns = env_us("DISCO_POLL_LINGER_US", 50) * 1000;
	r->poll_yield = env_us("DISCO_POLL_YIELD", 1) != 0;
	pthread_mutex_init(&r->mu, NULL);
	init_cond_monotonic(&r->cond);
	if (r->size % DSM_PAGE_SIZE || !r->n_pages) {
		rc = -EINVAL;
		goto fail;
	}
	rc = rpc_call_table_init(&r->calls, 16);
	if (rc < 0)
		goto fail;

	bool adopted = o->n_segments || o->addr;
	if (r->memfd && (rc = check_memfd_backing(r, o)) < 0)
		goto fail;
	if (o->n_segments) {
		r->base = r->seg[0].addr;
	} else if (o->addr) {
		r->base = o->addr;
	} else if ((rc = map_own_memory(r)) < 0) {
		goto fail;
	}
	if (!r->n_seg) {
		r->n_seg = 1;
		r->seg[0] = (struct dsm_segment){ r->base, r->size, r->own_memfd, 0 };
	}
	if (r->memfd && (rc = map_views(r)) < 0)
		goto fail;
	/* uffd resolves 4 KiB pages; a transparent huge page would hide faults. */
	for (int i = 0; i < r->n_seg; i++)
		madvise(r->seg[i].addr, r->seg[i].size, MADV_NOHUGEPAGE);

	r->present = calloc(r->n_pages, 1);
	r->writable = calloc(r->n_pages, 1);
	r->fault_start_ns = calloc(r->n_pages, sizeof(uint64_t));
	r->hot_pages_report = (unsigned)env_us("DISCO_HOT_PAGES", 0);
	if (r->hot_pages_report)
		r->page_faults = calloc(r->n_pages, sizeof(uint32_t));
	r->min_hold_ns = (uint64_t)r->vm->dsm.min_hold_us * 1000;
	if (r->min_hold_ns) {
		r->hold_until = calloc(r->n_pages, sizeof(uint64_t));
		r->held_count = calloc(r->n_pages, sizeof(uint32_t));
	}
	if (!r->present || !r->writable || !r->fault_start_ns ||
	    (r->min_hold_ns && (!r->hold_until || !r->held_count))) {
		rc = -ENOMEM;
		goto fail;
	}
	if (r->vm->dsm.policy == DSM_POLICY_DISCO) {
		r->policy = dsm_policy_create(&r->vm->dsm.knobs, r->self, r->n_nodes, r->n_pages);
		r->policy_reads = calloc(r->n_nodes, sizeof(uint32_t));
		r->policy_writes = calloc(r->n_nodes, sizeof(uint32_t));
		if (!r->policy || !r->policy_reads || !r->policy_writes) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	struct home_ctx hc = { cfg, r->vm };
	r->engine = dsm_engine_create(r->self, r->n_nodes, r->n_pages, initial_home, &hc,
				      region_emit, r);
	if (!r->engine) {
		rc = -ENOMEM;
		goto fail;
	}
	if (adopted && (rc = adopt_mapping(r)) < 0)
		goto fail;

	rc = dsm_uffd_open(r->memfd);
	if (rc < 0)
		goto fail;
	r->uffd = rc;
	for (int i = 0; i < r->n_seg && rc >= 0; i++)
		rc = dsm_uffd_register(r->uffd, r->seg[i].addr, r->seg[i].size, r->memfd);
	if (rc < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	dsm_region_destroy(r);
	return rc;
}

static void describe_missing(struct dsm_region *r, dsm_nodeset_t up, char *err, size_t errlen)
{
	size_t off = (size_t)snprintf(err, errlen, "timed out after %u ms waiting for",
				      r->cfg->connect_timeout_ms);
	for (int n = 0; n < r->n_nodes && off < errlen; n++) {
		if (n == r->self || (up & ((dsm_nodeset_t)1 << n)))
			continue;
		off += (size_t)snprintf(err + off, errlen - off, " %s (%s:%d)", r->cfg->nodes[n].name,
					r->cfg->nodes[n].address, r->cfg->nodes[n].port);
	}
}

int dsm_region_start(struct dsm_region *r, char *err, size_t errlen)
{
	static const struct rpc_callbacks cb = {
		.on_frame = region_on_frame, .on_peer_up = on_peer_up, .on_peer_down = on_peer_down,
	};
	dsm_nodeset_t all = 0;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if ((rc = uv_loop_init(&r->loop)) < 0)
		return rc;
	if (r->cfg->transport == CLUSTER_TRANSPORT_RDMA)
		rc = rpc_rdma_transport_create(&r->loop, r->cfg, r->self, &cb, r, &r->transport);
	else
		rc = rpc_tcp_transport_create(&r->loop, r->cfg, r->self, &cb, r, &r->transport);
	if (rc < 0) {
		uv_loop_close(&r->loop);
		return rc;
	}
	uv_poll_init(&r->loop, &r->uffd_poll, r->uffd);
	r->uffd_poll.data = r;
	uv_poll_start(&r->uffd_poll, UV_READABLE, region_on_uffd_readable);
	uv_async_init(&r->loop, &r->cmd_async, on_cmd_async);
	r->cmd_async.data = r;
	uv_timer_init(&r->loop, &r->timeout_timer);
	r->timeout_timer.data = r;
	uint64_t period = r->fault_timeout_ms / 10 ? r->fault_timeout_ms / 10 : 1;
	uv_timer_start(&r->timeout_timer, on_timeout_timer, period, period);
	if (r->policy) {
		uint64_t interval = r->vm->dsm.knobs.interval_ms ? r->vm->dsm.knobs.interval_ms : 100;
		uv_timer_init(&r->loop, &r->policy_timer);
		r->policy_timer.data = r;
		uv_timer_start(&r->policy_timer, on_policy_timer, interval, interval);
	}

	r->loop_running = true;
	if (uv_thread_create(&r->thread, loop_thread, r) != 0) {
		r->loop_running = false;
		return -EAGAIN;
	}

	for (int n = 0; n < r->n_nodes; n++)
		if (n != r->self)
			all |= (dsm_nodeset_t)1 << n;
	struct timespec deadline;
	deadline_in(&deadline, r->cfg->connect_timeout_ms);
	pthread_mutex_lock(&r->mu);
	rc = 0;
	while ((r->peers_up & all) != all && r->loop_running && !(r->peers_down & all) && rc == 0)
		rc = pthread_cond_timedwait(&r->cond, &r->mu, &deadline);
	dsm_nodeset_t up = r->peers_up, down = r->peers_down;
	bool running = r->loop_running;
	pthread_mutex_unlock(&r->mu);

	if ((up & all) == all && running)
		return 0;
	if (!running) {
		snprintf(err, errlen, "the DSM loop stopped during start (see the log above)");
		rc = -EIO;
	} else if (down & all) {
		snprintf(err, errlen, "a peer failed while joining (see the log above)");
		rc = -ECONNREFUSED;
	} else {
		describe_missing(r, up, err, errlen);
		rc = -ETIMEDOUT;
	}
	dsm_region_stop(r);
	return rc;
}

int dsm_region_barrier(struct dsm_region *r, uint32_t id, uint32_t timeout_ms)
{
	struct region_cmd c = { .kind = REGION_CMD_BARRIER, .barrier_id = id };
	struct timespec deadline;
	int rc = post_cmd(r, &c);
	if (rc < 0)
		return rc;

	deadline_in(&deadline, timeout_ms);
	pthread_mutex_lock(&r->mu);
	for (;;) {
		/* A peer that reached the barrier may already have left: only a
		 * lost peer that had not reached it fails the barrier. */
		bool all = true, lost = false;
		for (int n = 0; n < r->n_nodes; n++) {
			if (n == r->self || r->barrier_seen[n] >= id)
				continue;
			all = false;
			lost |= (r->peers_down >> n) & 1;
		}
		if (all) {
			rc = 0;
			break;
		}
		if (lost) {
			rc = -EHOSTDOWN;
			break;
		}
		if (pthread_cond_timedwait(&r->cond, &r->mu, &deadline) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int dsm_region_stats(struct dsm_region *r, struct dsm_stats *out)
{
	struct region_cmd c = { .kind = REGION_CMD_STATS, .stats = out };
	int rc = post_cmd(r, &c);
	if (rc == -ESHUTDOWN && r->engine && r->transport) {
		fill_stats(r, out); /* the loop has ended: nothing races with us */
		return 0;
	}
	return rc;
}

int dsm_region_page_stats(struct dsm_region *r, uint64_t page, struct dsm_page_counters *out,
			  uint32_t *read_by, uint32_t *write_by)
{
	struct region_cmd c = {
		.kind = REGION_CMD_PAGE_STATS, .page = page, .page_counters = out,
		.read_by = read_by, .write_by = write_by,
	};
	return post_cmd(r, &c);
}

int dsm_region_migrate_home(struct dsm_region *r, uint64_t page, int target)
{
	struct region_cmd c = { .kind = REGION_CMD_MIGRATE, .page = page, .target = target };
	return post_cmd(r, &c);
}

int dsm_region_rtt_probe(struct dsm_region *r, int peer, uint64_t *rtt_ns)
{
	Disco__BenchPing ping = DISCO__BENCH_PING__INIT;
	uint8_t pad[48] = { 0 };
	uint8_t body[96];
	uint64_t id;
	int rc;

	if (peer < 0 || peer >= r->n_nodes || peer == r->self)
		return -EINVAL;
	if ((rc = rpc_call_begin(&r->calls, &id)) < 0)
		return rc;
	ping.id = id;
	ping.pad.data = pad;
	ping.pad.len = sizeof(pad); /* body of 64 bytes with the id */
	size_t len = disco__bench_ping__pack(&ping, body);
	/* The loop polls for the answer as it does for a fault's. */
	__atomic_fetch_add(&r->probes_in_flight, 1, __ATOMIC_RELAXED);
	uint64_t t0 = uv_hrtime();
	rc = rpc_transport_send(r->transport, peer, RPC_MSG_PING, body, len, NULL);
	if (rc < 0)
		rpc_call_cancel(&r->calls, id);
	else
		rc = rpc_call_wait(&r->calls, id, 5000, NULL);
	*rtt_ns = uv_hrtime() - t0;
	__atomic_fetch_sub(&r->probes_in_flight, 1, __ATOMIC_RELAXED);
	return rc;
}

int dsm_region_send_frame(struct dsm_region *r, int peer, uint16_t type, const void *body,
			  size_t len)
{
	if (type < RPC_MSG_VM_FIRST || type > RPC_MSG_VM_LAST || peer < 0 || peer >= r->n_nodes ||
	    peer == r->self)
		return -EINVAL;
	return rpc_transport_send(r->transport, peer, type, body, len, NULL);
}

/* Diagnostics (DISCO_HOT_PAGES=N): the pages whose faults this node
 * waited for most often, to find false sharing in a guest. */
static void log_hot_pages(struct dsm_region *r)
{
	if (!r->page_faults)
		return;
	for (unsigned k = 0; k < r->hot_pages_report; k++) {
		uint64_t best = 0;
		for (uint64_t p = 1; p < r->n_pages; p++)
			if (r->page_faults[p] > r->page_faults[best])
				best = p;
		if (!r->page_faults[best])
			break;
		disco_log(DISCO_LOG_INFO, "dsm: hot page %" PRIu64 " (offset 0x%" PRIx64 "): %u faults",
			  best, best * DSM_PAGE_SIZE, r->page_faults[best]);
		r->page_faults[best] = 0;
	}
}

void dsm_region_stop(struct dsm_region *r)
{
	struct region_cmd c = { .kind = REGION_CMD_STOP };

	pthread_mutex_lock(&r->mu);
	bool started = r->transport != NULL;
	r->stopping = true;
	pthread_mutex_unlock(&r->mu);
	if (!started)
		return;
	post_cmd(r, &c);
	uv_thread_join(&r->thread);
	pthread_mutex_lock(&r->mu);
	r->loop_running = false;
	pthread_mutex_unlock(&r->mu);
	log_hot_pages(r);
}

void dsm_region_destroy(struct dsm_region *r)
{
	if (!r)
		return;
	if (r->transport) {
		uv_run(&r->loop, UV_RUN_NOWAIT); /* finish close callbacks */
		rpc_transport_destroy(r->transport);
		uv_loop_close(&r->loop);
	}
	if (r->uffd >= 0)
		close(r->uffd);
	if (r->own_mapping && r->base)
		munmap(r->base, r->size);
	for (int i = 0; i < r->n_seg; i++)
		if (r->seg_view[i])
			munmap(r->seg_view[i], r->seg[i].size);
	if (r->own_memfd >= 0)
		close(r->own_memfd);
	dsm_engine_destroy(r->engine);
	free(r->present);
	free(r->writable);
	free(r->fault_start_ns);
	free(r->page_faults);
	dsm_policy_destroy(r->policy);
	free(r->policy_reads);
	free(r->policy_writes);
	region_free_held(r);
	free(r->hold_until);
	free(r->held_count);
	region_one_sided_free(r);
	rpc_call_table_destroy(&r->calls);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

void *dsm_region_base(const struct dsm_region *r) { return r->base; }
size_t dsm_region_size(const struct dsm_region *r) { return r->size; }
int dsm_region_node(const struct dsm_region *r) { return r->self; }
int dsm_region_n_nodes(const struct dsm_region *r) { return r->n_nodes; }
