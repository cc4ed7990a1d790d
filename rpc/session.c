/*
 * The cluster session: one loop thread and one transport per node process,
 * shared by every client (rpc/session.h has the model, the type ranges and
 * the thread rules).
 *
 * Start-up: rpc_session_start() creates the loop thread, which raises its
 * priority, lets each client add its handles (on_loop_start), starts the
 * transport (listen, dial), lets each client finish its set-up
 * (on_transport_started) and runs the loop; the API thread meanwhile waits
 * on `cond` until every peer is up, one failed, the loop died, or the
 * connect timeout passed.
 *
 * Membership: the transport reports each peer up once and down once
 * (left or failed; a failed peer is never reconnected). The session keeps
 * the two sets, fails every pending call on a loss (their answers may
 * never come), and tells each client in the order they were added.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "membership.pb-c.h"
#include "rpc/log.h"
#include "rpc/pb_arena.h"
#include "session_internal.h"

#define SESSION_CALL_SLOTS 256

/* ---- helpers ---------------------------------------------------------- */

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

static void close_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static const struct rpc_session_client *client_for(const struct rpc_session *s, uint16_t type)
{
	for (int i = 0; i < s->n_clients; i++)
		if (type >= s->clients[i].type_first && type <= s->clients[i].type_last &&
		    s->clients[i].type_last)
			return &s->clients[i];
	return NULL;
}

/* ---- the session's own frames: barriers --------------------------------- */

static void on_barrier_frame(struct rpc_session *s, int peer, const struct rpc_frame_view *f)
{
	struct rpc_pb_arena a;
	ProtobufCAllocator alloc = rpc_pb_arena_allocator(&a);
	Disco__Barrier *b = disco__barrier__unpack(&alloc, f->body_len, f->body);
	if (!b) {
		rpc_transport_fail_peer(s->transport, peer, "undecodable Barrier");
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (b->id > s->barrier_seen[peer])
		s->barrier_seen[peer] = b->id;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

static int send_barrier(struct rpc_session *s, void *arg)
{
	Disco__Barrier b = DISCO__BARRIER__INIT;
	uint8_t body[16];

	b.id = *(uint32_t *)arg;
	size_t len = disco__barrier__pack(&b, body);
	for (int n = 0; n < s->n_nodes; n++)
		if (n != s->self)
			rpc_transport_send(s->transport, n, RPC_MSG_BARRIER, body, len, NULL);
	return 0;
}

/* ---- transport callbacks (loop thread) ------------------------------------ */

static void on_frame(void *opaque, int peer, const struct rpc_frame_view *f)
{
	struct rpc_session *s = opaque;

	s->last_activity_ns = uv_hrtime();
	if (f->type == RPC_MSG_BARRIER) {
		on_barrier_frame(s, peer, f);
		return;
	}
	const struct rpc_session_client *c = client_for(s, f->type);
	if (!c || !c->on_frame) {
		char why[64];
		snprintf(why, sizeof(why), "unexpected frame type %u", f->type);
		rpc_transport_fail_peer(s->transport, peer, why);
		return;
	}
	c->on_frame(c->opaque, peer, f);
}

static void on_peer_up(void *opaque, int peer)
{
	struct rpc_session *s = opaque;

	pthread_mutex_lock(&s->mu);
	s->peers_up |= 1ull << peer;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	disco_log(DISCO_LOG_INFO, "session: node %s joined", s->cfg->nodes[peer].name);
	for (int i = 0; i < s->n_clients; i++)
		if (s->clients[i].on_peer_up)
			s->clients[i].on_peer_up(s->clients[i].opaque, peer);
}

static void on_peer_down(void *opaque, int peer, enum rpc_peer_state state, const char *why)
{
	struct rpc_session *s = opaque;

	(void)state;
	pthread_mutex_lock(&s->mu);
	s->peers_down |= 1ull << peer;
	bool stopping = s->stopping;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	/* The transport has logged why. Answers from @peer may never come. */
	rpc_call_fail_all(&s->calls, -EHOSTDOWN);
	for (int i = 0; i < s->n_clients; i++)
		if (s->clients[i].on_peer_down)
			s->clients[i].on_peer_down(s->clients[i].opaque, peer, why, stopping);
}

/* ---- commands from API threads -------------------------------------------- */

static int stop_on_loop(struct rpc_session *s, void *arg)
{
	(void)arg;
	for (int i = 0; i < s->n_clients; i++)
		if (s->clients[i].on_stop)
			s->clients[i].on_stop(s->clients[i].opaque);
	rpc_transport_stop(s->transport);
	uv_walk(&s->loop, close_handle, NULL);
	return 0;
}

static void on_cmd_async(uv_async_t *h)
{
	struct rpc_session *s = h->data;

	pthread_mutex_lock(&s->mu);
	struct session_cmd *list = s->cmd_head;
	s->cmd_head = s->cmd_tail = NULL;
	pthread_mutex_unlock(&s->mu);

	while (list) {
		struct session_cmd *next = list->next;
		int rc = list->fn(s, list->arg);
		pthread_mutex_lock(&s->mu);
		list->result = rc;
		list->done = true; /* the caller may free it from here on */
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->mu);
		list = next;
	}
}

/* Post @fn to the loop thread and wait for it. -ESHUTDOWN if no loop runs. */
static int post(struct rpc_session *s, int (*fn)(struct rpc_session *, void *), void *arg)
{
	struct session_cmd c = { .fn = fn, .arg = arg };

	pthread_mutex_lock(&s->mu);
	if (!s->loop_running) {
		pthread_mutex_unlock(&s->mu);
		return -ESHUTDOWN;
	}
	if (s->cmd_tail)
		s->cmd_tail->next = &c;
	else
		s->cmd_head = &c;
	s->cmd_tail = &c;
	pthread_mutex_unlock(&s->mu);
	uv_async_send(&s->cmd_async);
	pthread_mutex_lock(&s->mu);
	while (!c.done && s->loop_running)
		pthread_cond_wait(&s->cond, &s->mu);
	int rc = c.done ? c.result : -ESHUTDOWN;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* ---- the loop thread ------------------------------------------------------ */

/*
 * The loop sleeps in epoll unless an answer is due soon: while a client is
 * waiting for one (a fault) or a probe is out, it polls for up to poll_us,
 * and it keeps polling for poll_linger_us after any activity, because a
 * wake-up here costs more than the whole network round trip
 * (docs/architecture.md). It yields on every turn, so a thread woken onto
 * this CPU (the faulting thread) runs at once; only this one thread per
 * process ever polls.
 */
static void run_loop(struct rpc_session *s)
{
	uint64_t poll_max_ns = (uint64_t)s->tuning.poll_us * 1000;
	uint64_t linger_ns = (uint64_t)s->tuning.poll_linger_us * 1000;
	uint64_t spin_start = 0;

	for (;;) {
		uint64_t now = uv_hrtime();
		bool waiting = __atomic_load_n(&s->probes_in_flight, __ATOMIC_RELAXED) != 0;
		bool busy = false;
		for (int i = 0; i < s->n_clients; i++) {
			if (!s->clients[i].on_loop_turn)
				continue;
			enum rpc_loop_need need = s->clients[i].on_loop_turn(s->clients[i].opaque, now);
			waiting |= need == RPC_LOOP_WAITING;
			busy |= need == RPC_LOOP_BUSY;
		}
		if (!waiting)
			spin_start = 0;
		else if (!spin_start)
			spin_start = now;
		bool poll = (waiting && now - spin_start < poll_max_ns) ||
			    now - s->last_activity_ns < linger_ns || busy;
		if (!poll) {
			if (!uv_run(&s->loop, UV_RUN_ONCE))
				return;
			continue;
		}
		if (!uv_run(&s->loop, UV_RUN_NOWAIT))
			return;
		if (s->tuning.poll_yield)
			sched_yield();
	}
}

/*
 * Threads blocked in faults wait on this thread, and in a VM they are
 * CPU-bound vCPUs that would otherwise starve it for whole scheduler
 * slices: raise its priority when allowed (cluster.loop.priority).
 */
static void raise_loop_priority(enum rpc_loop_priority p)
{
	if (p == RPC_LOOP_PRIORITY_NONE)
		return;
	if (p == RPC_LOOP_PRIORITY_FIFO) {
		struct sched_param sp = { .sched_priority = 1 };
		if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
			return;
	}
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), -10) < 0)
		disco_log(DISCO_LOG_DEBUG, "session: loop thread keeps normal priority: %s",
			  strerror(errno));
}

static int start_on_loop(struct rpc_session *s)
{
	int rc;

	for (int i = 0; i < s->n_clients; i++) {
		const struct rpc_session_client *c = &s->clients[i];
		if (c->on_loop_start && (rc = c->on_loop_start(c->opaque)) < 0) {
			disco_log(DISCO_LOG_ERROR, "session: %s cannot start: %s", c->name,
				  strerror(-rc));
			return rc;
		}
	}
	rc = rpc_transport_start(s->transport);
	if (rc < 0) {
		disco_log(DISCO_LOG_ERROR, "session: cannot start the %s transport on %s:%d: %s",
			  s->transport->ops->name, s->cfg->nodes[s->self].address,
			  s->cfg->nodes[s->self].port, strerror(-rc));
		return rc;
	}
	for (int i = 0; i < s->n_clients; i++) {
		const struct rpc_session_client *c = &s->clients[i];
		if (c->on_transport_started && (rc = c->on_transport_started(c->opaque)) < 0)
			return rc; /* the client logged why */
	}
	return 0;
}

static void loop_thread(void *arg)
{
	struct rpc_session *s = arg;

	raise_loop_priority(s->tuning.priority);
	disco_log_set_thread_node(s->cfg->nodes[s->self].name);
	pthread_setname_np(pthread_self(), "disco-loop");
	int rc = start_on_loop(s);
	if (rc < 0) {
		rpc_transport_stop(s->transport);
		uv_walk(&s->loop, close_handle, NULL);
	}
	run_loop(s);
	pthread_mutex_lock(&s->mu);
	s->loop_running = false;
	if (rc < 0)
		s->peers_down = ~0ull;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

/* ---- API ------------------------------------------------------------------ */

int rpc_session_create(const struct cluster_config *cfg, int self, struct rpc_session **out)
{
	int rc;

	if (!cfg || self < 0 || self >= cfg->n_nodes || cfg->n_nodes > CLUSTER_MAX_NODES)
		return -EINVAL;
	struct rpc_session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = cfg;
	s->self = self;
	s->n_nodes = cfg->n_nodes;
	s->tuning = cfg->loop;
	pthread_mutex_init(&s->mu, NULL);
	init_cond_monotonic(&s->cond);
	if ((rc = rpc_call_table_init(&s->calls, SESSION_CALL_SLOTS)) < 0)
		goto fail_calls;
	if ((rc = uv_loop_init(&s->loop)) < 0)
		goto fail_loop;
	uv_async_init(&s->loop, &s->cmd_async, on_cmd_async);
	s->cmd_async.data = s;
	struct rpc_session_client probe = rpc_session_probe_client;
	probe.opaque = s;
	rpc_session_add_client(s, &probe);
	*out = s;
	return 0;
fail_loop:
	rpc_call_table_destroy(&s->calls);
fail_calls:
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

/* The transport the config names, on the session's loop (not started). */
static int create_transport(struct rpc_session *s)
{
	static const struct rpc_callbacks cb = {
		.on_frame = on_frame, .on_peer_up = on_peer_up, .on_peer_down = on_peer_down,
	};
	struct rpc_transport *t;
	int rc;

	if (s->cfg->transport == CLUSTER_TRANSPORT_RDMA)
		rc = rpc_rdma_transport_create(&s->loop, s->cfg, s->self, &cb, s, &t);
	else
		rc = rpc_tcp_transport_create(&s->loop, s->cfg, s->self, &cb, s, &t);
	if (rc < 0)
		return rc;
	__atomic_store_n(&s->transport, t, __ATOMIC_RELEASE);
	return 0;
}

int rpc_session_add_client(struct rpc_session *s, const struct rpc_session_client *c)
{
	if (s->started)
		return -EINVAL;
	if (s->n_clients == RPC_SESSION_MAX_CLIENTS)
		return -ENOSPC;
	if (c->type_last && (c->type_first > c->type_last || c->type_last > RPC_MSG_TYPE_MAX ||
			     c->type_first <= RPC_MSG_MEMBERSHIP_LAST ||
			     (RPC_MSG_BARRIER >= c->type_first && RPC_MSG_BARRIER <= c->type_last)))
		return -EINVAL;
	for (int i = 0; c->type_last && i < s->n_clients; i++) {
		const struct rpc_session_client *o = &s->clients[i];
		if (o->type_last && c->type_first <= o->type_last && o->type_first <= c->type_last)
			return -EBUSY;
	}
	s->clients[s->n_clients++] = *c;
	return 0;
}

/* "timed out after N ms waiting for n1 (addr:port) ..." with, for each
 * missing node that tried, why its last handshake failed (a wrong key, a
 * Hello from another cluster: before a peer proved the key that only
 * closes the connection, so it never failed the join). */
static void describe_missing(struct rpc_session *s, uint64_t up, char *err, size_t errlen)
{
	char why[512];
	size_t off = (size_t)snprintf(err, errlen, "timed out after %u ms waiting for",
				      s->cfg->connect_timeout_ms);
	for (int n = 0; n < s->n_nodes && off < errlen; n++) {
		if (n == s->self || (up & (1ull << n)))
			continue;
		off += (size_t)snprintf(err + off, errlen - off, " %s (%s:%d)", s->cfg->nodes[n].name,
					s->cfg->nodes[n].address, s->cfg->nodes[n].port);
		if (off < errlen &&
		    rpc_transport_handshake_error(s->transport, n, why, sizeof(why)) > 0)
			off += (size_t)snprintf(err + off, errlen - off, " [last handshake: %s]", why);
	}
}

int rpc_session_start(struct rpc_session *s, char *err, size_t errlen)
{
	uint64_t all = 0;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (s->started)
		return -EINVAL;
	if ((rc = create_transport(s)) < 0) {
		snprintf(err, errlen, "cannot create the %s transport: %s",
			 cluster_transport_name(s->cfg->transport), strerror(-rc));
		return rc;
	}
	s->started = true;
	s->loop_running = true;
	if (uv_thread_create(&s->thread, loop_thread, s) != 0) {
		s->loop_running = false;
		s->started = false;
		return -EAGAIN;
	}
	for (int n = 0; n < s->n_nodes; n++)
		if (n != s->self)
			all |= 1ull << n;
	struct timespec deadline;
	deadline_in(&deadline, s->cfg->connect_timeout_ms);
	pthread_mutex_lock(&s->mu);
	rc = 0;
	while ((s->peers_up & all) != all && s->loop_running && !(s->peers_down & all) && rc == 0)
		rc = pthread_cond_timedwait(&s->cond, &s->mu, &deadline);
	uint64_t up = s->peers_up, down = s->peers_down;
	bool running = s->loop_running;
	pthread_mutex_unlock(&s->mu);

	if ((up & all) == all && running)
		return 0;
	if (!running) {
		snprintf(err, errlen, "the loop stopped during start (see the log above)");
		rc = -EIO;
	} else if (down & all) {
		snprintf(err, errlen, "a peer failed while joining (see the log above)");
		rc = -ECONNREFUSED;
	} else {
		describe_missing(s, up, err, errlen);
		rc = -ETIMEDOUT;
	}
	rpc_session_stop(s);
	return rc;
}

void rpc_session_stop(struct rpc_session *s)
{
	pthread_mutex_lock(&s->mu);
	bool started = s->started;
	s->stopping = true;
	pthread_mutex_unlock(&s->mu);
	if (!started)
		return;
	post(s, stop_on_loop, NULL);
	uv_thread_join(&s->thread);
	pthread_mutex_lock(&s->mu);
	s->loop_running = false;
	s->started = false;
	pthread_mutex_unlock(&s->mu);
}

void rpc_session_destroy(struct rpc_session *s)
{
	if (!s)
		return;
	if (!uv_is_closing((uv_handle_t *)&s->cmd_async))
		uv_walk(&s->loop, close_handle, NULL); /* never started */
	uv_run(&s->loop, UV_RUN_NOWAIT); /* finish close callbacks */
	if (s->transport)
		rpc_transport_destroy(s->transport);
	uv_loop_close(&s->loop);
	rpc_call_table_destroy(&s->calls);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int rpc_session_barrier(struct rpc_session *s, uint32_t id, uint32_t timeout_ms)
{
	struct timespec deadline;
	int rc = post(s, send_barrier, &id);
	if (rc < 0)
		return rc;

	deadline_in(&deadline, timeout_ms);
	pthread_mutex_lock(&s->mu);
	for (;;) {
		/* A peer that reached the barrier may already have left: only a
		 * lost peer that had not reached it fails the barrier. */
		bool all = true, lost = false;
		for (int n = 0; n < s->n_nodes; n++) {
			if (n == s->self || s->barrier_seen[n] >= id)
				continue;
			all = false;
			lost |= (s->peers_down >> n) & 1;
		}
		if (all) {
			rc = 0;
			break;
		}
		if (lost) {
			rc = -EHOSTDOWN;
			break;
		}
		if (pthread_cond_timedwait(&s->cond, &s->mu, &deadline) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

struct user_call {
	int (*fn)(void *arg);
	void *arg;
};

static int run_user_call(struct rpc_session *s, void *arg)
{
	struct user_call *c = arg;
	(void)s;
	return c->fn(c->arg);
}

int rpc_session_call(struct rpc_session *s, int (*fn)(void *arg), void *arg)
{
	struct user_call c = { fn, arg };
	return post(s, run_user_call, &c);
}

int rpc_session_send(struct rpc_session *s, int peer, uint16_t type, const void *body,
		     size_t len, const void *page)
{
	struct rpc_transport *t = __atomic_load_n(&s->transport, __ATOMIC_ACQUIRE);
	return t ? rpc_transport_send(t, peer, type, body, len, page) : -ENOTCONN;
}

struct rpc_call_table *rpc_session_calls(struct rpc_session *s) { return &s->calls; }
const struct cluster_config *rpc_session_config(const struct rpc_session *s) { return s->cfg; }
int rpc_session_self(const struct rpc_session *s) { return s->self; }
int rpc_session_n_nodes(const struct rpc_session *s) { return s->n_nodes; }
uv_loop_t *rpc_session_loop(struct rpc_session *s) { return &s->loop; }
struct rpc_transport *rpc_session_transport(struct rpc_session *s) { return s->transport; }

const char *rpc_session_node_name(const struct rpc_session *s, int node)
{
	return node >= 0 && node < s->n_nodes ? s->cfg->nodes[node].name : "?";
}

void rpc_session_transport_stats(struct rpc_session *s, struct rpc_transport_stats *out)
{
	struct rpc_transport *t = __atomic_load_n(&s->transport, __ATOMIC_ACQUIRE);
	*out = (struct rpc_transport_stats){ 0 };
	if (!t)
		return;
	const struct rpc_transport_stats *ts = &t->stats;
	out->frames_sent = __atomic_load_n(&ts->frames_sent, __ATOMIC_RELAXED);
	out->frames_received = __atomic_load_n(&ts->frames_received, __ATOMIC_RELAXED);
	out->bytes_sent = __atomic_load_n(&ts->bytes_sent, __ATOMIC_RELAXED);
	out->bytes_received = __atomic_load_n(&ts->bytes_received, __ATOMIC_RELAXED);
	out->send_queued = __atomic_load_n(&ts->send_queued, __ATOMIC_RELAXED);
}

void rpc_session_fail_peer(struct rpc_session *s, int peer, const char *why)
{
	rpc_transport_fail_peer(s->transport, peer, why);
}

void rpc_session_note_activity(struct rpc_session *s, uint64_t now_ns)
{
	s->last_activity_ns = now_ns;
}

uint64_t rpc_session_peers_down(struct rpc_session *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t down = s->peers_down;
	pthread_mutex_unlock(&s->mu);
	return down;
}

bool rpc_session_stopping(struct rpc_session *s)
{
	pthread_mutex_lock(&s->mu);
	bool stopping = s->stopping;
	pthread_mutex_unlock(&s->mu);
	return stopping;
}
