/*
 * A transport between nodes of one process: by default TCP over real
 * sockets on 127.0.0.1; with DISCO_TEST_TRANSPORT=rdma the RDMA transport
 * on a real verbs device (tests/rdma/ runs it on Soft-RoCE in the nested
 * test VM):
 *   DISCO_TEST_TRANSPORT=rdma DISCO_TEST_ADDRESS=10.0.2.15
 *   DISCO_TEST_RDMA_DEVICE=rxe0 DISCO_TEST_RDMA_GID=1
 *   DISCO_TEST_TIME_SCALE=N   multiplies every deadline (slow nested VMs)
 * Each node runs its own uv loop on its own thread, as in a real process;
 * the test thread drives them through a control async (node_run) and
 * watches their callbacks. Tests of one transport's own surface (raw TCP
 * clients; RDMA size limits) run only with that transport; the missing
 * RDMA device test runs with both, as it needs no device.
 *
 * Ports: 17000 + (pid % 1900) * 8 + node, so parallel test processes do
 * not collide; the test cases of one process reuse them in turn (the
 * transport sets SO_REUSEADDR).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <rdma/rdma_cma.h> /* the raw RDMA CM clients */
#include <uv.h>

#include "bench.pb-c.h"
#include "membership.pb-c.h"
#include "rpc/auth.h"
#include "rpc/call.h"
#include "rpc/verbs_transport.h" /* the connect request's private data */
#include "rpc/tcp_transport.h"
#include "raw_peer.h"

#define MAXN 4

static int port_base;
static bool use_rdma;
static const char *test_address = "127.0.0.1";
static const char *rdma_device = "rxe0";
static int rdma_gid;
static int time_scale = 1; /* deadlines are multiplied by it */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct cluster_config *make_cfg(int n, uint8_t key_byte, uint32_t hb_ms,
				       uint32_t timeout_ms)
{
	struct cluster_config *c = calloc(1, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "testlab");
	c->key_len = 32;
	memset(c->key, key_byte, c->key_len);
	c->heartbeat_ms = hb_ms;
	c->peer_timeout_ms = timeout_ms;
	c->connect_timeout_ms = 5000;
	c->hello_timeout_ms = 1000 * time_scale;
	c->proof_timeout_ms = 1000 * time_scale;
	c->n_nodes = n;
	for (int i = 0; i < n; i++) {
		snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "n%d", i);
		snprintf(c->nodes[i].address, sizeof(c->nodes[i].address), "%s", test_address);
		c->nodes[i].port = port_base + i;
		if (use_rdma) {
			c->nodes[i].transport = CLUSTER_TRANSPORT_RDMA;
			snprintf(c->nodes[i].rdma.device, sizeof(c->nodes[i].rdma.device), "%s",
				 rdma_device);
			c->nodes[i].rdma.port = 1;
			c->nodes[i].rdma.gid_index = rdma_gid;
		}
	}
	c->transport = use_rdma ? CLUSTER_TRANSPORT_RDMA : CLUSTER_TRANSPORT_TCP;
	return c;
}

/* ------------------------------------------------------------------ */
/* One node: a loop thread running a transport                          */

struct node;
typedef void (*node_fn)(struct node *n, void *arg);
typedef void (*frame_fn)(struct node *n, int peer, const struct rpc_frame_view *f);

struct node {
	int self;
	const struct cluster_config *cfg;
	uv_loop_t loop;
	uv_async_t ctl;
	struct rpc_transport *t;
	pthread_t th;
	frame_fn on_frame;           /* runs on the loop thread */
	struct rpc_call_table *calls; /* failed on peer loss when set */
	void *user;

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;
	bool started;
	int start_ret;
	node_fn fn;
	void *fn_arg;
	bool fn_pending, fn_done;
	int up[MAXN], down[MAXN];
	enum rpc_peer_state down_state[MAXN];
	char why[MAXN][1024];
	long frames;
};

static void lock(struct node *n) { pthread_mutex_lock(&n->mu); }
static void unlock(struct node *n) { pthread_mutex_unlock(&n->mu); }

static void cb_frame(void *opaque, int peer, const struct rpc_frame_view *f)
{
	struct node *n = opaque;
	lock(n);
	n->frames++;
	unlock(n);
	if (n->on_frame)
		n->on_frame(n, peer, f);
}

static void cb_up(void *opaque, int peer)
{
	struct node *n = opaque;
	lock(n);
	n->up[peer]++;
	pthread_cond_broadcast(&n->cv);
	unlock(n);
}

static void cb_down(void *opaque, int peer, enum rpc_peer_state st, const char *why)
{
	struct node *n = opaque;
	if (n->calls)
		rpc_call_fail_all(n->calls, -ECONNRESET);
	lock(n);
	n->down[peer]++;
	n->down_state[peer] = st;
	snprintf(n->why[peer], sizeof(n->why[peer]), "%s", why);
	pthread_cond_broadcast(&n->cv);
	unlock(n);
}

static void on_ctl(uv_async_t *h)
{
	struct node *n = h->data;
	lock(n);
	node_fn fn = n->fn;
	void *arg = n->fn_arg;
	bool pending = n->fn_pending;
	n->fn_pending = false;
	unlock(n);
	if (!pending)
		return;
	fn(n, arg);
	lock(n);
	n->fn_done = true;
	pthread_cond_broadcast(&n->cv);
	unlock(n);
}

static void *loop_main(void *arg)
{
	struct node *n = arg;
	static const struct rpc_callbacks cbs = { cb_frame, cb_up, cb_down };
	int r;

	uv_loop_init(&n->loop);
	uv_async_init(&n->loop, &n->ctl, on_ctl);
	n->ctl.data = n;
	if (n->cfg->transport == CLUSTER_TRANSPORT_RDMA)
		r = rpc_rdma_transport_create(&n->loop, n->cfg, n->self, &cbs, n, &n->t);
	else
		r = rpc_tcp_transport_create(&n->loop, n->cfg, n->self, &cbs, n, &n->t);
	if (r == 0)
		r = rpc_transport_start(n->t);
	lock(n);
	n->start_ret = r;
	n->started = true;
	pthread_cond_broadcast(&n->cv);
	unlock(n);
	if (r < 0)
		uv_close((uv_handle_t *)&n->ctl, NULL);
	uv_run(&n->loop, UV_RUN_DEFAULT);
	return NULL;
}

static struct node *node_start(const struct cluster_config *cfg, int self)
{
	struct node *n = calloc(1, sizeof(*n));
	n->self = self;
	n->cfg = cfg;
	pthread_mutex_init(&n->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cv, &ca);
	pthread_create(&n->th, NULL, loop_main, n);
	lock(n);
	while (!n->started)
		pthread_cond_wait(&n->cv, &n->mu);
	unlock(n);
	assert_int_equal(n->start_ret, 0);
	return n;
}

/* Wait on n->cv for at most @ms (mutex held). */
static void cv_wait_ms(struct node *n, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)ms * 1000000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_cond_timedwait(&n->cv, &n->mu, &ts);
}

/* Evaluate @cond under n's mutex until true or @ms elapsed; its value. */
#define WAIT_UNTIL(n, cond, ms)                                                                    \
	({                                                                                         \
		int64_t dl_ = now_ms() + (int64_t)(ms) * time_scale;                               \
		bool ok_;                                                                          \
		lock(n);                                                                           \
		while (!(ok_ = (cond)) && now_ms() < dl_)                                          \
			cv_wait_ms(n, 5);                                                          \
		unlock(n);                                                                         \
		ok_;                                                                               \
	})

/* Read @expr under n's mutex. */
#define LOCKED(n, expr)                                                                            \
	({                                                                                         \
		lock(n);                                                                           \
		__typeof__(expr) v_ = (expr);                                                      \
		unlock(n);                                                                         \
		v_;                                                                                \
	})

/* Run @fn on n's loop thread; with @wait, until it returned. */
static void node_post(struct node *n, node_fn fn, void *arg, bool wait)
{
	lock(n);
	n->fn = fn;
	n->fn_arg = arg;
	n->fn_pending = true;
	n->fn_done = false;
	unlock(n);
	uv_async_send(&n->ctl);
	if (wait)
		assert_true(WAIT_UNTIL(n, n->fn_done, 5000));
}

static void do_stop(struct node *n, void *arg)
{
	if (arg && n->cfg->transport == CLUSTER_TRANSPORT_RDMA)
		rpc_rdma_transport_abort(n->t);
	else if (arg)
		rpc_tcp_transport_abort(n->t);
	else
		rpc_transport_stop(n->t);
	uv_close((uv_handle_t *)&n->ctl, NULL);
}

/* Stop (gracefully or, with @abort, as a crash) and free the node. The
 * loop must close every handle: uv_loop_close() checks it. */
static void node_finish(struct node *n, bool abort)
{
	node_post(n, do_stop, abort ? (void *)1 : NULL, true);
	pthread_join(n->th, NULL);
	assert_int_equal(uv_loop_close(&n->loop), 0);
	rpc_transport_destroy(n->t);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

static bool all_up(struct node **ns, int count)
{
	for (int i = 0; i < count; i++)
		for (int j = 0; j < count; j++)
			if (i != j && rpc_transport_peer_state(ns[i]->t, j) != RPC_PEER_UP)
				return false;
	return true;
}

static bool wait_all_up(struct node **ns, int count, int ms)
{
	int64_t dl = now_ms() + (int64_t)ms * time_scale;
	while (!all_up(ns, count)) {
		if (now_ms() > dl)
			return false;
		usleep(1000);
	}
	return true;
}

/* ------------------------------------------------------------------ */

static void test_two_nodes_goodbye(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	struct node *n[2] = { node_start(cfg, 0), node_start(cfg, 1) };

	assert_true(wait_all_up(n, 2, 5000));
	assert_true(WAIT_UNTIL(n[0], n[0]->up[1] == 1, 1000));
	assert_true(WAIT_UNTIL(n[1], n[1]->up[0] == 1, 1000));
	assert_string_equal(rpc_peer_state_name(RPC_PEER_UP), "up");
	/* Sends to ourselves or out of range are refused. */
	assert_int_equal(rpc_transport_send(n[0]->t, 0, RPC_MSG_DSM, "x", 1, NULL), -EINVAL);
	assert_int_equal(rpc_transport_send(n[0]->t, 5, RPC_MSG_DSM, "x", 1, NULL), -EINVAL);
	assert_int_equal(rpc_transport_send(n[0]->t, 1, 0, "x", 1, NULL), -EINVAL);

	/* Heartbeats keep an idle pair up past several timeouts' worth of
	 * heartbeat periods. */
	usleep(300 * 1000);
	assert_true(all_up(n, 2));

	node_finish(n[1], false);
	assert_true(WAIT_UNTIL(n[0], n[0]->down[1] == 1, 2000));
	assert_int_equal(n[0]->down_state[1], RPC_PEER_LEFT);
	assert_non_null(strstr(n[0]->why[1], "goodbye"));
	assert_int_equal(rpc_transport_peer_state(n[0]->t, 1), RPC_PEER_LEFT);
	assert_int_equal(rpc_transport_send(n[0]->t, 1, RPC_MSG_DSM, "x", 1, NULL), -ENOTCONN);
	usleep(100 * 1000);
	assert_int_equal(LOCKED(n[0], n[0]->down[1]), 1); /* exactly once */
	node_finish(n[0], false);
	free(cfg);
}

static void test_three_nodes(void **state)
{
	struct cluster_config *cfg = make_cfg(3, 0x11, 50, 3000);
	/* Start the highest index first: its dials are refused until the
	 * others listen, so the backoff path runs. */
	struct node *n2 = node_start(cfg, 2);
	usleep(20 * 1000);
	struct node *n[3] = { node_start(cfg, 0), node_start(cfg, 1), n2 };

	assert_true(wait_all_up(n, 3, 5000));
	/* The state turns UP just before on_peer_up runs. */
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			if (i != j)
				assert_true(WAIT_UNTIL(n[i], n[i]->up[j] == 1, 1000));
	for (int i = 0; i < 3; i++)
		node_finish(n[i], false);
	free(cfg);
}

/* ---- ordered delivery ---- */

enum { STREAM_FRAMES = 10000 };

struct order {
	long next[2]; /* next expected seq of each stream */
	long received[2];
	char fault[256];
	long loop_sent;
	uv_idle_t idle;
	struct node *sender;
	sem_t frozen, release;
};

/* Body: u32 stream, u32 seq, then (seq % 7) * 13 pattern bytes. */
static size_t make_body(uint8_t *b, uint32_t stream, uint32_t seq)
{
	size_t n = 8 + (seq % 7) * 13;
	memcpy(b, &stream, 4);
	memcpy(b + 4, &seq, 4);
	for (size_t i = 8; i < n; i++)
		b[i] = (uint8_t)(seq + i);
	return n;
}

static void make_page(uint8_t *p, uint32_t stream, uint32_t seq)
{
	for (int i = 0; i < RPC_PAGE_SIZE; i += 8) {
		uint64_t v = (uint64_t)stream << 48 | (uint64_t)seq << 16 | (uint64_t)i;
		memcpy(p + i, &v, 8);
	}
}

static void order_frame(struct node *n, int peer, const struct rpc_frame_view *f)
{
	struct order *o = n->user;
	uint8_t body[128], page[RPC_PAGE_SIZE];
	uint32_t stream, seq;

	if (o->fault[0])
		return;
	if (f->type != RPC_MSG_DSM || f->body_len < 8) {
		snprintf(o->fault, sizeof(o->fault), "unexpected frame type %u", f->type);
		return;
	}
	memcpy(&stream, f->body, 4);
	memcpy(&seq, f->body + 4, 4);
	if (stream > 1 || seq != o->next[stream]) {
		snprintf(o->fault, sizeof(o->fault), "stream %u: got seq %u, expected %ld", stream,
			 seq, stream > 1 ? -1 : o->next[stream]);
		return;
	}
	size_t bl = make_body(body, stream, seq);
	if (f->body_len != bl || memcmp(f->body, body, bl) != 0) {
		snprintf(o->fault, sizeof(o->fault), "stream %u seq %u: body differs", stream, seq);
		return;
	}
	if ((seq & 1) != (f->page != NULL)) {
		snprintf(o->fault, sizeof(o->fault), "stream %u seq %u: page flag wrong", stream, seq);
		return;
	}
	if (f->page) {
		make_page(page, stream, seq);
		if (memcmp(f->page, page, RPC_PAGE_SIZE) != 0) {
			snprintf(o->fault, sizeof(o->fault), "stream %u seq %u: page differs",
				 stream, seq);
			return;
		}
	}
	o->next[stream]++;
	lock(n);
	o->received[stream]++;
	pthread_cond_broadcast(&n->cv);
	unlock(n);
}

static int send_seq(struct rpc_transport *t, int peer, uint32_t stream, uint32_t seq)
{
	uint8_t body[128], page[RPC_PAGE_SIZE];
	size_t bl = make_body(body, stream, seq);
	if (seq & 1)
		make_page(page, stream, seq);
	int r;
	while ((r = rpc_transport_send(t, peer, RPC_MSG_DSM, body, bl, (seq & 1) ? page : NULL)) ==
	       -ENOBUFS)
		sched_yield();
	return r;
}

/* Loop-thread sender of stream 1: a few frames per loop iteration. */
static void on_idle(uv_idle_t *h)
{
	struct order *o = h->data;
	for (int i = 0; i < 16 && o->loop_sent < STREAM_FRAMES; i++, o->loop_sent++)
		if (send_seq(o->sender->t, 0, 1, (uint32_t)o->loop_sent) != 0) {
			snprintf(o->fault, sizeof(o->fault), "loop send failed");
			o->loop_sent = STREAM_FRAMES;
		}
	if (o->loop_sent >= STREAM_FRAMES)
		uv_close((uv_handle_t *)h, NULL);
}

static void start_idle(struct node *n, void *arg)
{
	struct order *o = arg;
	uv_idle_init(&n->loop, &o->idle);
	o->idle.data = o;
	uv_idle_start(&o->idle, on_idle);
}

static void freeze(struct node *n, void *arg)
{
	struct order *o = arg;
	sem_post(&o->frozen);
	sem_wait(&o->release);
}

static void test_ordered_frames(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 2000);
	static struct order o;
	memset(&o, 0, sizeof(o));
	sem_init(&o.frozen, 0, 0);
	sem_init(&o.release, 0, 0);
	struct node *n[2] = { node_start(cfg, 0), node_start(cfg, 1) };
	n[0]->user = &o;
	n[0]->on_frame = order_frame;
	o.sender = n[1];
	assert_true(wait_all_up(n, 2, 5000));

	int64_t t0 = now_ns();
	/* Freeze the receiver so the socket fills up and sends queue. */
	node_post(n[0], freeze, &o, false);
	sem_wait(&o.frozen);
	node_post(n[1], start_idle, &o, true);
	for (uint32_t seq = 0; seq < STREAM_FRAMES; seq++) {
		int r = send_seq(n[1]->t, 0, 0, seq);
		if (r)
			fail_msg("send %u: %s", seq, strerror(-r));
		if (seq == STREAM_FRAMES / 2)
			sem_post(&o.release);
	}
	bool ok = WAIT_UNTIL(n[0], o.fault[0] || (o.received[0] == STREAM_FRAMES &&
						  o.received[1] == STREAM_FRAMES),
			     5000);
	int64_t dt = now_ns() - t0;
	if (o.fault[0])
		fail_msg("%s", o.fault);
	if (!ok)
		fail_msg("received %ld + %ld of %d + %d", o.received[0], o.received[1],
			 STREAM_FRAMES, STREAM_FRAMES);
	const struct rpc_transport_stats *s = &n[1]->t->stats;
	uint64_t queued = __atomic_load_n(&s->send_queued, __ATOMIC_RELAXED);
	uint64_t bytes = __atomic_load_n(&s->bytes_sent, __ATOMIC_RELAXED);
	print_message("2 x %d frames, %.1f MB in %.0f ms; %" PRIu64 " sends queued\n",
		      STREAM_FRAMES, bytes / 1e6, dt / 1e6, queued);
	assert_true(queued > 0); /* the queue path ran */
	assert_true(__atomic_load_n(&s->frames_sent, __ATOMIC_RELAXED) >= 2 * STREAM_FRAMES);
	assert_true(__atomic_load_n(&n[0]->t->stats.frames_received, __ATOMIC_RELAXED) >=
		    2 * STREAM_FRAMES);
	assert_true(all_up(n, 2));
	node_finish(n[0], false);
	node_finish(n[1], false);
	sem_destroy(&o.frozen);
	sem_destroy(&o.release);
	free(cfg);
}

/* ---- authentication failure ---- */

/* Both sides must have recorded a handshake error with @word for @peer. */
static bool handshake_error_has(struct node *n, int peer, const char *word)
{
	char buf[1024];
	return rpc_transport_handshake_error(n->t, peer, buf, sizeof(buf)) > 0 &&
	       strstr(buf, word) != NULL;
}

/* Two nodes with different keys never come up, and neither fails the
 * other: without the key a node cannot be told from an impostor, and an
 * impostor must not be able to fail a node (docs/transport.md, security).
 * Each refused proof closes that connection; the dialler tries again, and
 * the reason is there for the owner to show (the session's join timeout
 * names it). */
static void test_wrong_key(void **state)
{
	struct cluster_config *c0 = make_cfg(2, 0x11, 50, 3000), *c1 = make_cfg(2, 0x22, 50, 3000);
	struct node *n[2] = { node_start(c0, 0), node_start(c1, 1) };
	int64_t dl = now_ms() + 1500 * time_scale;
	int refused = 0;

	/* While they try, nothing can be sent. */
	while (now_ms() < dl) {
		int r = rpc_transport_send(n[1]->t, 0, RPC_MSG_DSM, "data", 4, NULL);
		assert_int_equal(r, -ENOTCONN);
		refused++;
		usleep(1000);
	}
	assert_true(WAIT_UNTIL(n[0], handshake_error_has(n[0], 1, "bad HMAC"), 3000));
	assert_true(WAIT_UNTIL(n[1], handshake_error_has(n[1], 0, "bad HMAC"), 3000));
	char buf[1024];
	rpc_transport_handshake_error(n[0]->t, 1, buf, sizeof(buf));
	print_message("node 0 about node 1: %s\n", buf);
	/* Node 0 accepted: the message names the real source and the claim. */
	char from[96];
	snprintf(from, sizeof(from), "connection from %s:", test_address);
	assert_non_null(strstr(buf, from));
	assert_non_null(strstr(buf, "claims to be node n1: wrong key (bad HMAC)"));
	rpc_transport_handshake_error(n[1]->t, 0, buf, sizeof(buf));
	print_message("node 1 about node 0: %s\n", buf);
	assert_non_null(strstr(buf, "node n0 ("));
	assert_int_equal(LOCKED(n[0], n[0]->down[1]) + LOCKED(n[1], n[1]->down[0]), 0);
	assert_int_equal(LOCKED(n[0], n[0]->up[1]) + LOCKED(n[1], n[1]->up[0]), 0);
	assert_int_equal(LOCKED(n[0], n[0]->frames) + LOCKED(n[1], n[1]->frames), 0);
	assert_int_not_equal(rpc_transport_peer_state(n[0]->t, 1), RPC_PEER_UP);
	assert_int_not_equal(rpc_transport_peer_state(n[0]->t, 1), RPC_PEER_FAILED);
	assert_int_not_equal(rpc_transport_peer_state(n[1]->t, 0), RPC_PEER_FAILED);
	assert_int_equal(rpc_transport_send(n[1]->t, 0, RPC_MSG_DSM, "x", 1, NULL), -ENOTCONN);
	assert_true(refused > 0);
	node_finish(n[0], false);
	node_finish(n[1], false);
	free(c0);
	free(c1);
}

/* ---- hostile raw connections ---- */

static void count_frame(struct node *n, int peer, const struct rpc_frame_view *f) {}

static void test_raw_connections(void **state)
{
	/* Node 2 exists in the config but never runs: raw sockets pose as it. */
	struct cluster_config *cfg = make_cfg(3, 0x11, 50, 1000);
	struct node *n[2] = { node_start(cfg, 0), node_start(cfg, 1) };
	int port0 = cfg->nodes[0].port, fd;
	uint8_t hdr[8];

	n[0]->on_frame = count_frame;
	assert_true(wait_all_up(n, 2, 5000));

	/* A client that says nothing is dropped after the handshake timeout
	 * (peer_timeout_ms); checked at the end. */
	int silent = raw_connect(port0);
	int64_t silent_t0 = now_ms();

	/* Garbage. */
	fd = raw_connect(port0);
	raw_write(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	assert_true(raw_closed(fd, 2000));
	close(fd);

	/* An oversize header. */
	fd = raw_connect(port0);
	rpc_frame_header_encode(hdr, RPC_MSG_HELLO, 0, 1 << 20);
	raw_write(fd, hdr, 8);
	assert_true(raw_closed(fd, 2000));
	close(fd);

	/* Truncated frame then EOF from the client side. */
	fd = raw_connect(port0);
	rpc_frame_header_encode(hdr, RPC_MSG_HELLO, 0, 100);
	raw_write(fd, hdr, 8);
	raw_write(fd, "abc", 3);
	shutdown(fd, SHUT_WR);
	assert_true(raw_closed(fd, 2000));
	close(fd);

	/* A Hello naming node 1, which is up: a second connection. */
	struct rpc_auth as1;
	uint8_t hello[RPC_AUTH_HELLO_MAX];
	rpc_auth_init(&as1, cfg, 1);
	long hl = rpc_auth_make_hello(&as1, hello, sizeof(hello));
	fd = raw_connect(port0);
	rpc_frame_header_encode(hdr, RPC_MSG_HELLO, 0, (uint32_t)hl);
	raw_write(fd, hdr, 8);
	raw_write(fd, hello, (size_t)hl);
	assert_true(raw_closed(fd, 2000));
	close(fd);

	/* A Hello from node 0 to node 1: node 1 dials node 0, not the
	 * other way round. */
	struct rpc_auth as0;
	rpc_auth_init(&as0, cfg, 0);
	hl = rpc_auth_make_hello(&as0, hello, sizeof(hello));
	fd = raw_connect(cfg->nodes[1].port);
	rpc_frame_header_encode(hdr, RPC_MSG_HELLO, 0, (uint32_t)hl);
	raw_write(fd, hdr, 8);
	raw_write(fd, hello, (size_t)hl);
	assert_true(raw_closed(fd, 2000));
	close(fd);

	/* A valid Hello as node 2, which has not joined, then a DSM frame
	 * before authenticating: the connection closes, and node 2 is not
	 * touched (it used to be marked FAILED; anyone could do that). */
	struct rpc_auth as2;
	rpc_auth_init(&as2, cfg, 2);
	hl = rpc_auth_make_hello(&as2, hello, sizeof(hello));
	fd = raw_connect(port0);
	rpc_frame_header_encode(hdr, RPC_MSG_HELLO, 0, (uint32_t)hl);
	raw_write(fd, hdr, 8);
	raw_write(fd, hello, (size_t)hl);
	rpc_frame_header_encode(hdr, RPC_MSG_DSM, 0, 4);
	raw_write(fd, hdr, 8);
	raw_write(fd, "evil", 4);
	assert_true(raw_closed(fd, 2000));
	close(fd);
	assert_true(WAIT_UNTIL(n[0], handshake_error_has(n[0], 2, "before authentication"), 1000));
	assert_true(handshake_error_has(n[0], 2, "connection from 127.0.0.1:"));
	assert_true(handshake_error_has(n[0], 2, "claims to be node n2"));
	usleep(100 * 1000);
	assert_int_equal(LOCKED(n[0], n[0]->down[2]), 0);
	assert_int_equal(rpc_transport_peer_state(n[0]->t, 2), RPC_PEER_CONNECTING);

	assert_true(raw_closed(silent, 4000));
	int64_t silent_ms = now_ms() - silent_t0;
	close(silent);
	assert_true(silent_ms >= 900);

	/* Nothing got through, and node 1 is unaffected. */
	assert_int_equal(LOCKED(n[0], n[0]->frames), 0);
	assert_true(all_up(n, 2));
	assert_int_equal(LOCKED(n[0], n[0]->down[1]) + LOCKED(n[1], n[1]->down[0]), 0);
	assert_int_equal(rpc_transport_send(n[1]->t, 0, RPC_MSG_DSM, "ok", 2, NULL), 0);
	assert_true(WAIT_UNTIL(n[0], n[0]->frames == 1, 2000));
	node_finish(n[0], false);
	node_finish(n[1], false);
	free(cfg);
}

/* ---- impostors: a Hello that names a node which has not joined yet ---- */

/*
 * @count nodes but the last are up; impostors claim the last on every
 * member with every trick, and leave one connection each that claims it
 * and never proves anything. Nobody fails the node, its handshake error
 * names the impostor's real address, and the real node joins at once,
 * while the impostors still hold their claims (their proof deadline is
 * 10 s here).
 */
static void impostor_then_real_node(int count)
{
	struct cluster_config *cfg = make_cfg(count, 0x11, 50, 3000);
	struct node *n[MAXN];
	int last = count - 1, idle[MAXN];
	char word[64];

	cfg->proof_timeout_ms = 10000 * time_scale;
	for (int i = 0; i < last; i++)
		n[i] = node_start(cfg, i);
	assert_true(wait_all_up(n, last, 5000));
	for (int m = 0; m < last; m++)
		for (int k = 0; k < RAW_N_TRICKS; k++)
			if (!raw_impostor(cfg, m, last, (enum raw_trick)k, 3000 * time_scale))
				fail_msg("member %d kept the connection after the %s", m,
					 raw_trick_names[k]);
	snprintf(word, sizeof(word), "claims to be node n%d", last);
	for (int m = 0; m < last; m++) {
		struct rpc_auth a;
		idle[m] = raw_connect(cfg->nodes[m].port);
		assert_true(raw_hello(idle[m], cfg, last, m, &a));
		assert_true(WAIT_UNTIL(n[m], handshake_error_has(n[m], last, word), 1000));
		assert_true(handshake_error_has(n[m], last, "connection from 127.0.0.1:"));
		assert_int_equal(LOCKED(n[m], n[m]->down[last]), 0);
		assert_int_equal(rpc_transport_peer_state(n[m]->t, last), RPC_PEER_CONNECTING);
	}
	int64_t t0 = now_ms();
	n[last] = node_start(cfg, last);
	assert_true(wait_all_up(n, count, 5000));
	int64_t dt = now_ms() - t0;
	print_message("%d nodes: node n%d joined %" PRId64 " ms after it started, past %d "
		      "impostors\n", count, last, dt, last * (RAW_N_TRICKS + 2));
	assert_true(dt < 3000 * time_scale); /* not after the impostors' 10 s deadline */
	/* The node is up: what the idle impostors say now is refused. */
	for (int m = 0; m < last; m++) {
		uint8_t mac[RPC_AUTH_MAC_LEN] = { 0 };
		raw_send_proof(idle[m], mac);
		assert_true(raw_closed(idle[m], 3000 * time_scale));
		close(idle[m]);
	}
	for (int i = 0; i < count; i++)
		for (int j = 0; j < count; j++)
			if (i != j)
				assert_int_equal(LOCKED(n[i], n[i]->down[j]), 0);
	assert_true(all_up(n, count));
	n[0]->on_frame = count_frame;
	assert_int_equal(rpc_transport_send(n[last]->t, 0, RPC_MSG_DSM, "ok", 2, NULL), 0);
	assert_true(WAIT_UNTIL(n[0], n[0]->frames == 1, 2000));
	for (int i = 0; i < count; i++)
		node_finish(n[i], false);
	free(cfg);
}

static void test_impostor_two_nodes(void **state)
{
	impostor_then_real_node(2);
}

static void test_impostor_three_nodes(void **state)
{
	impostor_then_real_node(3);
}

/* A cluster name with a newline and terminal escapes in a Hello: the log
 * gets one line, with the bytes escaped; no forged line, no raw escape. */
static void test_hostile_name_logged_escaped(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	struct node *n0 = node_start(cfg, 0);
	Disco__Hello h = DISCO__HELLO__INIT;
	uint8_t nonce[RPC_AUTH_NONCE_LEN] = { 0 }, buf[512];

	h.protocol_version = RPC_FRAME_VERSION;
	h.cluster_name = "evil\ndisco[n0]: info: node n1 (127.0.0.1:1): up over tcp\x1b[2J\x7f\xff";
	h.node_name = "n1";
	h.node_index = 1;
	h.nonce.data = nonce;
	h.nonce.len = sizeof(nonce);
	stderr_capture_begin();
	int fd = raw_connect(cfg->nodes[0].port);
	raw_send_frame(fd, RPC_MSG_HELLO, buf, disco__hello__pack(&h, buf));
	bool closed = raw_closed(fd, 2000 * time_scale);
	close(fd);
	const char *log = stderr_capture_end();
	assert_true(closed);
	int evil_lines = 0;
	for (const char *line = log; *line;) {
		const char *nl = strchr(line, '\n');
		assert_non_null(nl);
		assert_memory_equal(line, "disco[", 6); /* every line is one of ours */
		for (const char *c = line; c < nl; c++)
			assert_true(*c >= 0x20 && *c < 0x7f);
		if (memmem(line, (size_t)(nl - line), "evil", 4))
			evil_lines++;
		line = nl + 1;
	}
	assert_int_equal(evil_lines, 1);
	assert_non_null(strstr(log, "claims to be node n1: belongs to cluster \"evil\\x0adisco[n0]: "
				    "info: node n1 (127.0.0.1:1): up over tcp\\x1b[2J\\x7f\\xff\""));
	assert_null(strstr(log, "\ndisco[n0]: info: node n1 (127.0.0.1:1)"));
	node_finish(n0, false);
	free(cfg);
}

/* ---- connection slots: idle anonymous clients cannot keep a node out ---- */

enum { FLOOD_SOURCES = 20, FLOOD_PER_SOURCE = 8 };

struct churn {
	int port;
	volatile int stop;
	int opened;
	int fds[FLOOD_SOURCES][FLOOD_PER_SOURCE]; /* a ring per source */
};

static void source_ip(int i, char *buf, size_t len)
{
	snprintf(buf, len, "127.0.0.%d", 2 + i);
}

/* New idle connections, round robin over the sources, every 2 ms; each
 * source keeps FLOOD_PER_SOURCE open. */
static void *churn_main(void *arg)
{
	struct churn *c = arg;
	char ip[32];
	for (int k = 0; !c->stop; k++) {
		int src = k % FLOOD_SOURCES, slot = (k / FLOOD_SOURCES) % FLOOD_PER_SOURCE;
		source_ip(src, ip, sizeof(ip));
		if (c->fds[src][slot] >= 0)
			close(c->fds[src][slot]);
		c->fds[src][slot] = raw_connect_nowait(ip, "127.0.0.1", c->port);
		c->opened++;
		usleep(2000);
	}
	return NULL;
}

/*
 * Every slot for anonymous connections is held by idle clients from 20
 * addresses (160 connections for 128 slots), which keep opening new ones
 * while the real node joins: it is in within hello_timeout_ms plus a
 * second, and the log grows by a bounded number of lines (the warnings
 * are counted, one line a second).
 */
static void test_anonymous_slots_full(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	static struct churn churn;
	pthread_t th;
	struct node *n[2];

	memset(&churn, 0xff, sizeof(churn.fds));
	churn.port = cfg->nodes[0].port;
	churn.stop = 0;
	churn.opened = 0;
	n[0] = node_start(cfg, 0);
	stderr_capture_begin();
	for (int i = 0; i < FLOOD_SOURCES * FLOOD_PER_SOURCE; i++) {
		char ip[32];
		source_ip(i % FLOOD_SOURCES, ip, sizeof(ip));
		churn.fds[i % FLOOD_SOURCES][i / FLOOD_SOURCES] = raw_connect_nowait(ip, "127.0.0.1",
										     churn.port);
	}
	usleep(300 * 1000); /* node 0 accepted them all */
	pthread_create(&th, NULL, churn_main, &churn);
	int64_t t0 = now_ms();
	n[1] = node_start(cfg, 1);
	bool up = wait_all_up(n, 2, cfg->hello_timeout_ms + 1000);
	int64_t dt = now_ms() - t0;
	usleep(500 * 1000); /* the flood goes on a little longer */
	churn.stop = 1;
	pthread_join(th, NULL);
	for (int s = 0; s < FLOOD_SOURCES; s++)
		for (int k = 0; k < FLOOD_PER_SOURCE; k++)
			if (churn.fds[s][k] >= 0)
				close(churn.fds[s][k]);
	const char *log = stderr_capture_end();
	int lines = count_lines(log);
	print_message("slots full: node n1 up after %" PRId64 " ms (hello timeout %u ms), %d "
		      "more connections opened meanwhile, %d log lines\n",
		      dt, cfg->hello_timeout_ms, churn.opened, lines);
	assert_true(up);
	assert_true(dt <= (int64_t)cfg->hello_timeout_ms + 1000 * time_scale);
	assert_non_null(strstr(log, "evicting connection from 127.0.0.")); /* they were full */
	assert_true(lines <= 30);
	node_finish(n[0], false);
	node_finish(n[1], false);
	free(cfg);
}

/* ---- failure detection ---- */

struct freezer {
	sem_t frozen, release;
};

static void freeze_loop(struct node *n, void *arg)
{
	struct freezer *f = arg;
	sem_post(&f->frozen);
	sem_wait(&f->release);
}

static void test_silent_peer_times_out(void **state)
{
	const uint32_t timeout = 400;
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, timeout);
	struct node *n[2] = { node_start(cfg, 0), node_start(cfg, 1) };
	struct freezer fz;

	sem_init(&fz.frozen, 0, 0);
	sem_init(&fz.release, 0, 0);
	assert_true(wait_all_up(n, 2, 5000));
	node_post(n[1], freeze_loop, &fz, false);
	sem_wait(&fz.frozen);
	int64_t t0 = now_ms();
	assert_true(WAIT_UNTIL(n[0], n[0]->down[1] == 1, 5000));
	int64_t dt = now_ms() - t0;
	print_message("silent peer failed after %" PRId64 " ms (timeout %u)\n", dt, timeout);
	assert_int_equal(n[0]->down_state[1], RPC_PEER_FAILED);
	assert_non_null(strstr(n[0]->why[1], "no frame for"));
	/* The silence it measured (counted from node 1's last frame, which
	 * may predate the freeze on a loaded machine) exceeds the timeout;
	 * the upper bound leaves room for such a machine. */
	const char *nf = strstr(n[0]->why[1], "no frame for ");
	assert_true(atol(nf + strlen("no frame for ")) > (long)timeout);
	assert_true(dt < 3000 * time_scale);
	/* Thawed, node 1 finds the connection closed without a Goodbye. */
	sem_post(&fz.release);
	assert_true(WAIT_UNTIL(n[1], n[1]->down[0] == 1, 2000));
	assert_int_equal(n[1]->down_state[0], RPC_PEER_FAILED);
	node_finish(n[0], false);
	node_finish(n[1], false);
	sem_destroy(&fz.frozen);
	sem_destroy(&fz.release);
	free(cfg);
}

static void test_crashed_peer(void **state)
{
	struct cluster_config *cfg = make_cfg(3, 0x11, 50, 3000);
	struct node *n[3] = { node_start(cfg, 0), node_start(cfg, 1), node_start(cfg, 2) };

	assert_true(wait_all_up(n, 3, 5000));
	int64_t t0 = now_ms();
	node_finish(n[1], true); /* connections reset, no Goodbye */
	assert_true(WAIT_UNTIL(n[0], n[0]->down[1] == 1, 3000));
	assert_true(WAIT_UNTIL(n[2], n[2]->down[1] == 1, 3000));
	int64_t dt = now_ms() - t0;
	assert_true(dt < 3000 * time_scale); /* well within peer_timeout */
	assert_int_equal(n[0]->down_state[1], RPC_PEER_FAILED);
	assert_int_equal(n[2]->down_state[1], RPC_PEER_FAILED);
	print_message("crash seen after %" PRId64 " ms: %s\n", dt, n[0]->why[1]);
	/* The survivors still talk. */
	assert_int_equal(rpc_transport_peer_state(n[0]->t, 2), RPC_PEER_UP);
	assert_int_equal(rpc_transport_send(n[2]->t, 0, RPC_MSG_DSM, "ok", 2, NULL), 0);
	assert_true(WAIT_UNTIL(n[0], n[0]->frames == 1, 2000));
	node_finish(n[0], false);
	node_finish(n[2], false);
	free(cfg);
}

/* ---- the owner fails a peer ---- */

static void judge_frame(struct node *n, int peer, const struct rpc_frame_view *f)
{
	if (f->body_len == 3 && !memcmp(f->body, "bad", 3))
		rpc_transport_fail_peer(n->t, peer, "nonsense frame");
}

static void test_owner_fails_peer(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	struct node *n[2] = { node_start(cfg, 0), node_start(cfg, 1) };

	n[0]->on_frame = judge_frame;
	assert_true(wait_all_up(n, 2, 5000));
	/* Back to back: the frame after the bad one is not delivered. */
	assert_int_equal(rpc_transport_send(n[1]->t, 0, RPC_MSG_DSM, "bad", 3, NULL), 0);
	/* It may find the connection already closed by node 0 (a loaded or
	 * sanitized run); what matters is that it is not delivered. */
	int r = rpc_transport_send(n[1]->t, 0, RPC_MSG_DSM, "after", 5, NULL);
	assert_true(r == 0 || r == -ENOTCONN || r == -EPIPE || r == -ECONNRESET);
	assert_true(WAIT_UNTIL(n[0], n[0]->down[1] == 1, 2000));
	assert_int_equal(n[0]->down_state[1], RPC_PEER_FAILED);
	assert_non_null(strstr(n[0]->why[1], "node n1"));
	assert_non_null(strstr(n[0]->why[1], "nonsense frame"));
	assert_true(WAIT_UNTIL(n[1], n[1]->down[0] == 1, 2000));
	assert_int_equal(n[1]->down_state[0], RPC_PEER_FAILED);
	usleep(50 * 1000);
	assert_int_equal(LOCKED(n[0], n[0]->frames), 1);
	node_finish(n[0], false);
	node_finish(n[1], false);
	free(cfg);
}

/* ---- request/response with rpc_call ---- */

struct pingpong {
	struct rpc_call_table calls;
	int ignore; /* node 1 drops PINGs while set */
};

static void pong_page(uint8_t *p, uint64_t id)
{
	for (int i = 0; i < RPC_PAGE_SIZE; i += 8) {
		uint64_t v = id ^ (uint64_t)i;
		memcpy(p + i, &v, 8);
	}
}

/* Node 1: answer PING with PONG + page. */
static void server_frame(struct node *n, int peer, const struct rpc_frame_view *f)
{
	struct pingpong *pp = n->user;
	if (f->type != RPC_MSG_PING || __atomic_load_n(&pp->ignore, __ATOMIC_RELAXED))
		return;
	Disco__BenchPing *ping = disco__bench_ping__unpack(NULL, f->body_len, f->body);
	if (!ping)
		return;
	Disco__BenchPong pong = DISCO__BENCH_PONG__INIT;
	uint8_t body[32], page[RPC_PAGE_SIZE];
	pong.id = ping->id;
	size_t bl = disco__bench_pong__pack(&pong, body);
	pong_page(page, ping->id);
	rpc_transport_send(n->t, peer, RPC_MSG_PONG, body, bl, page);
	disco__bench_ping__free_unpacked(ping, NULL);
}

/* Node 0: complete the waiting call with the page. */
static void client_frame(struct node *n, int peer, const struct rpc_frame_view *f)
{
	struct pingpong *pp = n->user;
	if (f->type != RPC_MSG_PONG || !f->page)
		return;
	Disco__BenchPong *pong = disco__bench_pong__unpack(NULL, f->body_len, f->body);
	if (!pong)
		return;
	rpc_call_complete(&pp->calls, pong->id, f->page, RPC_PAGE_SIZE);
	disco__bench_pong__free_unpacked(pong, NULL);
}

static int send_ping(struct node *n, uint64_t id)
{
	Disco__BenchPing ping = DISCO__BENCH_PING__INIT;
	uint8_t pad[48] = { 0 }, body[64];
	ping.id = id;
	ping.pad.data = pad;
	ping.pad.len = sizeof(pad);
	size_t bl = disco__bench_ping__pack(&ping, body);
	return rpc_transport_send(n->t, 1, RPC_MSG_PING, body, bl, NULL);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_call_ping_pong(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	static struct pingpong pp;
	static struct rpc_call_result res;
	uint8_t want[RPC_PAGE_SIZE];
	enum { N = 2000 };
	static int64_t rtt[N];
	uint64_t id;

	memset(&pp, 0, sizeof(pp));
	assert_int_equal(rpc_call_table_init(&pp.calls, 16), 0);
	struct node *n[2] = { node_start(cfg, 0), node_start(cfg, 1) };
	n[0]->user = n[1]->user = &pp;
	n[0]->on_frame = client_frame;
	n[1]->on_frame = server_frame;
	n[0]->calls = &pp.calls;
	assert_true(wait_all_up(n, 2, 5000));

	for (int i = 0; i < N; i++) {
		int64_t t0 = now_ns();
		assert_int_equal(rpc_call_begin(&pp.calls, &id), 0);
		assert_int_equal(send_ping(n[0], id), 0);
		assert_int_equal(rpc_call_wait(&pp.calls, id, 2000, &res), 0);
		rtt[i] = now_ns() - t0;
		assert_int_equal(res.len, RPC_PAGE_SIZE);
		pong_page(want, id);
		assert_memory_equal(res.data, want, RPC_PAGE_SIZE);
	}
	qsort(rtt, N, sizeof(rtt[0]), cmp_i64);
	print_message("PING 64 B -> PONG 4 KiB via rpc_call, %d calls: median %.1f us, min %.1f "
		      "us, p99 %.1f us\n",
		      N, rtt[N / 2] / 1e3, rtt[0] / 1e3, rtt[N * 99 / 100] / 1e3);

	/* No answer: the wait times out, and the slot is reusable. */
	__atomic_store_n(&pp.ignore, 1, __ATOMIC_RELAXED);
	assert_int_equal(rpc_call_begin(&pp.calls, &id), 0);
	assert_int_equal(send_ping(n[0], id), 0);
	int64_t t0 = now_ms();
	assert_int_equal(rpc_call_wait(&pp.calls, id, 100, &res), -ETIMEDOUT);
	assert_true(now_ms() - t0 >= 99);

	/* The peer is lost while a call waits: the waiter is failed, not
	 * left to its timeout. */
	assert_int_equal(rpc_call_begin(&pp.calls, &id), 0);
	assert_int_equal(send_ping(n[0], id), 0);
	node_finish(n[1], true);
	t0 = now_ms();
	assert_int_equal(rpc_call_wait(&pp.calls, id, 4000, &res), -ECONNRESET);
	assert_true(now_ms() - t0 < 2000 * time_scale);
	node_finish(n[0], false);
	rpc_call_table_destroy(&pp.calls);
	free(cfg);
}

/* ---- RDMA: what needs no device, then the transport's own surface ---- */

/* A device that is not there is a clear error at start, naming it. */
static void test_rdma_missing_device(void **state)
{
	bool saved = use_rdma;
	use_rdma = true;
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	use_rdma = saved;
	snprintf(cfg->nodes[0].rdma.device, sizeof(cfg->nodes[0].rdma.device), "nosuch0");
	uv_loop_t loop;
	struct rpc_transport *t;

	uv_loop_init(&loop);
	assert_int_equal(rpc_rdma_transport_create(&loop, cfg, 0, NULL, NULL, &t), 0);
	assert_int_equal(rpc_transport_start(t), -ENODEV);
	rpc_transport_destroy(t);
	assert_int_equal(uv_loop_close(&loop), 0);
	free(cfg);
}

struct big_frames {
	long seen, intact;
};

static void big_frame(struct node *n, int peer, const struct rpc_frame_view *f)
{
	struct big_frames *b = n->user;
	bool ok = f->body_len == RPC_RDMA_MAX_BODY && f->page;
	for (size_t i = 0; ok && i < f->body_len; i++)
		ok = f->body[i] == (uint8_t)(i * 7);
	for (size_t i = 0; ok && i < RPC_PAGE_SIZE; i++)
		ok = f->page[i] == (uint8_t)(i * 13);
	b->seen++;
	b->intact += ok;
}

/* The largest frame goes through intact; one byte more is refused. */
static void test_rdma_frame_limits(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	struct node *n[2] = { node_start(cfg, 0), node_start(cfg, 1) };
	static uint8_t body[RPC_RDMA_MAX_BODY + 1], page[RPC_PAGE_SIZE];
	struct big_frames b = { 0 };

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)(i * 13);
	n[0]->user = &b;
	n[0]->on_frame = big_frame;
	assert_true(wait_all_up(n, 2, 5000));
	for (int i = 0; i < 3 * (int)RPC_RDMA_CREDITS; i++)
		assert_int_equal(rpc_transport_send(n[1]->t, 0, RPC_MSG_DSM, body,
						    RPC_RDMA_MAX_BODY, page), 0);
	assert_int_equal(rpc_transport_send(n[1]->t, 0, RPC_MSG_DSM, body, RPC_RDMA_MAX_BODY + 1,
					    NULL), -EMSGSIZE);
	assert_true(WAIT_UNTIL(n[0], b.seen == 3 * (long)RPC_RDMA_CREDITS, 5000));
	assert_int_equal(LOCKED(n[0], b.intact), 3 * (long)RPC_RDMA_CREDITS);
	assert_true(all_up(n, 2));
	node_finish(n[0], false);
	node_finish(n[1], false);
	free(cfg);
}

/* A raw RDMA CM client: wait for the next event on @ec, at most @ms. */
/* One-sided reads: a peer's registered memory read into ours, in order
 * (a fenced read after a plain one), and a read with a key the peer never
 * gave fails the peer instead of hanging or retrying. */
static void test_rdma_one_sided_read(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	struct node *n[2] = { node_start(cfg, 0), node_start(cfg, 1) };
	enum { SIZE = 64 * 1024 };
	uint8_t *src = aligned_alloc(4096, SIZE), *dst = aligned_alloc(4096, SIZE);
	uint32_t src_key, dst_key;
	uint64_t t1, t2;

	for (int i = 0; i < SIZE; i++)
		src[i] = (uint8_t)(i * 31 + 7);
	memset(dst, 0, SIZE);
	assert_true(wait_all_up(n, 2, 5000));
	assert_int_equal(rpc_transport_register_memory(n[1]->t, src, SIZE, &src_key), 0);
	assert_int_equal(rpc_transport_register_memory(n[0]->t, dst, SIZE, &dst_key), 0);

	/* the destination must be registered memory */
	uint8_t stack_buf[64];
	assert_int_equal(rpc_transport_read(n[0]->t, 1, stack_buf, sizeof(stack_buf),
					    (uintptr_t)src, src_key, false, &t1), -EINVAL);
	assert_int_equal(rpc_transport_read(n[0]->t, 1, dst, 8, (uintptr_t)(src + 64), src_key,
					    false, &t1), 0);
	assert_int_equal(rpc_transport_read(n[0]->t, 1, dst + 4096, 4096,
					    (uintptr_t)(src + 8192), src_key, true, &t2), 0);
	assert_true(t2 > t1);
	assert_int_equal(rpc_transport_read_wait(n[0]->t, 1, t2, 2000 * time_scale), 0);
	assert_memory_equal(dst, src + 64, 8);
	assert_memory_equal(dst + 4096, src + 8192, 4096);
	assert_int_equal(rpc_transport_read_wait(n[0]->t, 1, t1, 10), 0); /* done before t2 */

	/* a key node 1 never handed out: remote access error, peer failed */
	assert_int_equal(rpc_transport_read(n[0]->t, 1, dst, 4096, (uintptr_t)src, src_key ^ 0x5a5a,
					    false, &t1), 0);
	assert_int_equal(rpc_transport_read_wait(n[0]->t, 1, t1, 5000 * time_scale), -EIO);
	assert_true(WAIT_UNTIL(n[0], n[0]->down[1] == 1, 5000));
	assert_int_equal(LOCKED(n[0], n[0]->down_state[1]), RPC_PEER_FAILED);
	print_message("bad key: %s\n", n[0]->why[1]);
	node_finish(n[0], false);
	node_finish(n[1], false);
	free(src);
	free(dst);
	free(cfg);
}

/* TCP has no one-sided reads: callers are told so, and send frames. */
static void test_tcp_has_no_reads(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 3000);
	struct node *n0 = node_start(cfg, 0);
	uint8_t buf[64];
	uint32_t key;
	uint64_t ticket;

	assert_false(rpc_transport_can_read(n0->t));
	assert_int_equal(rpc_transport_register_memory(n0->t, buf, sizeof(buf), &key), -EOPNOTSUPP);
	assert_int_equal(rpc_transport_read(n0->t, 1, buf, 8, 0, 0, false, &ticket), -EOPNOTSUPP);
	node_finish(n0, false);
	free(cfg);
}

static int raw_cm_wait(struct rdma_event_channel *ec, int ms, int *status)
{
	struct pollfd pfd = { .fd = ec->fd, .events = POLLIN };
	struct rdma_cm_event *ev;

	if (poll(&pfd, 1, ms * time_scale) <= 0 || rdma_get_cm_event(ec, &ev) < 0)
		return -1;
	int type = ev->event;
	if (status)
		*status = ev->status;
	rdma_ack_cm_event(ev);
	return type;
}

/* Connect to node 0 of @cfg with @pdata; returns the id (ESTABLISHED) or
 * NULL, and the event that ended the attempt in *last. */
static struct rdma_cm_id *raw_cm_connect(struct rdma_event_channel *ec,
					 const struct cluster_config *cfg, const void *pdata,
					 uint8_t plen, int *last)
{
	struct sockaddr_in dst = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)cfg->nodes[0].port) };
	struct rdma_cm_id *id;
	struct ibv_qp_init_attr qa = { .qp_type = IBV_QPT_RC,
				       .cap = { .max_send_wr = 4, .max_recv_wr = 4,
						.max_send_sge = 1, .max_recv_sge = 1 } };
	struct rdma_conn_param cp = { .private_data = pdata, .private_data_len = plen,
				      .retry_count = 3, .rnr_retry_count = 3 };

	inet_pton(AF_INET, cfg->nodes[0].address, &dst.sin_addr);
	assert_int_equal(rdma_create_id(ec, &id, NULL, RDMA_PS_TCP), 0);
	assert_int_equal(rdma_resolve_addr(id, NULL, (struct sockaddr *)&dst, 2000), 0);
	assert_int_equal(raw_cm_wait(ec, 5000, NULL), RDMA_CM_EVENT_ADDR_RESOLVED);
	assert_int_equal(rdma_resolve_route(id, 2000), 0);
	assert_int_equal(raw_cm_wait(ec, 5000, NULL), RDMA_CM_EVENT_ROUTE_RESOLVED);
	assert_int_equal(rdma_create_qp(id, NULL, &qa), 0);
	assert_int_equal(rdma_connect(id, &cp), 0);
	*last = raw_cm_wait(ec, 5000, NULL);
	if (*last == RDMA_CM_EVENT_ESTABLISHED)
		return id;
	rdma_destroy_qp(id);
	rdma_destroy_id(id);
	return NULL;
}

/* Strangers on the RDMA CM: garbage or a wrong node index is rejected; a
 * client that names a real peer but never says Hello is dropped after
 * hello_timeout_ms without failing that peer; and while another such
 * client holds its claim on node 1, the real node 1 joins at once (a
 * connect request only claims a node: several may, and the first to prove
 * the key gets it). */
static void test_rdma_raw_connections(void **state)
{
	struct cluster_config *cfg = make_cfg(2, 0x11, 50, 600);
	cfg->hello_timeout_ms = 3000 * time_scale;
	struct node *n0 = node_start(cfg, 0);
	struct rdma_event_channel *ec = rdma_create_event_channel();
	int last;

	assert_non_null(ec);
	assert_null(raw_cm_connect(ec, cfg, "garbage!", 8, &last));
	assert_int_equal(last, RDMA_CM_EVENT_REJECTED);
	struct verbs_connect_data cd = { .magic = htole32(VERBS_CONNECT_MAGIC),
					.version = VERBS_CONNECT_VERSION,
					.node = htole16(0) }; /* names node 0 itself */
	assert_null(raw_cm_connect(ec, cfg, &cd, sizeof(cd), &last));
	assert_int_equal(last, RDMA_CM_EVENT_REJECTED);
	cd.node = htole16(1);
	int64_t t0 = now_ms();
	struct rdma_cm_id *id = raw_cm_connect(ec, cfg, &cd, sizeof(cd), &last);
	assert_non_null(id);
	assert_int_equal(raw_cm_wait(ec, 6000, NULL), RDMA_CM_EVENT_DISCONNECTED);
	int64_t dropped = now_ms() - t0;
	print_message("silent client dropped after %" PRId64 " ms (hello timeout %u)\n", dropped,
		      cfg->hello_timeout_ms);
	assert_true(dropped >= 2900 * time_scale);
	rdma_disconnect(id);
	rdma_destroy_qp(id);
	rdma_destroy_id(id);
	assert_int_equal(LOCKED(n0, n0->down[1]), 0);
	assert_int_equal(rpc_transport_peer_state(n0->t, 1), RPC_PEER_CONNECTING);
	assert_true(handshake_error_has(n0, 1, "no Hello within"));

	/* Another silent claim on node 1, held while the real node arrives. */
	id = raw_cm_connect(ec, cfg, &cd, sizeof(cd), &last);
	assert_non_null(id);
	t0 = now_ms();
	struct node *n1 = node_start(cfg, 1);
	struct node *n[2] = { n0, n1 };
	assert_true(wait_all_up(n, 2, 2000));
	print_message("node 1 joined %" PRId64 " ms after it started, past a silent claim\n",
		      now_ms() - t0);
	rdma_disconnect(id);
	rdma_destroy_qp(id);
	rdma_destroy_id(id);
	rdma_destroy_event_channel(ec);
	assert_int_equal(LOCKED(n0, n0->down[1]), 0);
	node_finish(n0, false);
	node_finish(n1, false);
	free(cfg);
}

int main(void)
{
	const char *e;

	setvbuf(stdout, NULL, _IOLBF, 0); /* interleave with the transports' stderr */
	port_base = 17000 + (getpid() % 1900) * 8; /* below the ephemeral range (32768+) */
	if (getenv("RPC_TEST_FILTER")) /* e.g. RPC_TEST_FILTER='*raw*' */
		cmocka_set_test_filter(getenv("RPC_TEST_FILTER"));
	use_rdma = (e = getenv("DISCO_TEST_TRANSPORT")) && !strcmp(e, "rdma");
	if ((e = getenv("DISCO_TEST_ADDRESS")))
		test_address = e;
	if ((e = getenv("DISCO_TEST_RDMA_DEVICE")))
		rdma_device = e;
	if ((e = getenv("DISCO_TEST_RDMA_GID")))
		rdma_gid = atoi(e);
	if ((e = getenv("DISCO_TEST_TIME_SCALE")) && atoi(e) > 0)
		time_scale = atoi(e);
	const struct CMUnitTest common[] = {
		cmocka_unit_test(test_two_nodes_goodbye),
		cmocka_unit_test(test_three_nodes),
		cmocka_unit_test(test_ordered_frames),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_silent_peer_times_out),
		cmocka_unit_test(test_crashed_peer),
		cmocka_unit_test(test_owner_fails_peer),
		cmocka_unit_test(test_call_ping_pong),
		cmocka_unit_test(test_rdma_missing_device),
	};
	const struct CMUnitTest tcp_only[] = {
		cmocka_unit_test(test_raw_connections),
		cmocka_unit_test(test_impostor_two_nodes),
		cmocka_unit_test(test_impostor_three_nodes),
		cmocka_unit_test(test_hostile_name_logged_escaped),
		cmocka_unit_test(test_anonymous_slots_full),
		cmocka_unit_test(test_tcp_has_no_reads),
	};
	const struct CMUnitTest rdma_only[] = {
		cmocka_unit_test(test_rdma_frame_limits),
		cmocka_unit_test(test_rdma_one_sided_read),
		cmocka_unit_test(test_rdma_raw_connections),
	};
	int failed = cmocka_run_group_tests_name(use_rdma ? "rdma" : "tcp", common, NULL, NULL);
	if (use_rdma)
		failed += cmocka_run_group_tests_name("rdma only", rdma_only, NULL, NULL);
	else
		failed += cmocka_run_group_tests_name("tcp only", tcp_only, NULL, NULL);
	return failed;
}
