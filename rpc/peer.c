/*
 * The peer state machine of every transport: membership, once, over a link
 * back end that only sets up connections and moves bytes (peer.h says who
 * does what; docs/transport.md has the protocol and the state table).
 *
 *   CONNECTING --link up, Hello/AuthProof--> AUTHENTICATING --proof--> UP
 *   UP --Goodbye--> LEFT        any state --fault--> FAILED (see below)
 *
 * Connections. Node i dials every node j < i and accepts from every j > i,
 * so each pair has one connection and no tie-break is needed. A dialled
 * connection is its peer's from the start; an accepted one is anonymous
 * until the other end proved the key: its Hello (TCP) or connect request
 * (verbs) only claims a node. Once the link carries frames the dialler
 * sends Hello; the acceptor answers a valid Hello that names a node which
 * should dial us and is not up (rpc_peers_acceptable()) with its Hello and
 * AuthProof, so a client that names no member learns nothing (not even a
 * nonce); each side is UP once it verified the other's proof, and only
 * then does an accepted connection attach to its peer. Only Hello and
 * AuthProof are accepted before that.
 *
 * Failures. Before the proof, whatever goes wrong on a connection (a
 * refused Hello or proof, a bad frame, EOF, a reset, a link that cannot
 * be set up, a deadline) closes that connection only: the dialler dials
 * again (RPC_BACKOFF_MIN_MS doubling to RPC_BACKOFF_MAX_MS), the acceptor
 * waits for the next attempt, and the reason is kept as the peer's last
 * handshake error; the owner decides when to stop waiting. Nothing an
 * unauthenticated client sends can change a peer's state: the key is the
 * trust boundary. Once UP, any fault (closed without Goodbye, a bad frame,
 * a link error, silence) marks the peer FAILED; Goodbye marks it LEFT.
 * FAILED and LEFT are final: on_peer_down runs once, and the peer is never
 * reconnected (its DSM pages are lost).
 *
 * Slots. Anonymous connections are capped per source and in all, and a
 * new one evicts an old one instead of being refused (peer.h, top;
 * admit()); each must say Hello within hello_timeout_ms and prove the key
 * within proof_timeout_ms after the Hellos (on_tick).
 *
 * Threads: everything here runs on the loop thread (peer.h); the send path
 * that any thread may take is in peer_send.c.
 */
#include "peer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "rpc/log.h"
#include "membership.h"

static const char *const state_names[] = {
	[RPC_PEER_CONNECTING] = "connecting", [RPC_PEER_AUTHENTICATING] = "authenticating",
	[RPC_PEER_UP] = "up",                 [RPC_PEER_LEFT] = "left",
	[RPC_PEER_FAILED] = "failed",
};

const char *rpc_peer_state_name(enum rpc_peer_state s)
{
	if ((unsigned)s < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[s];
	return "?";
}

static void set_state(struct rpc_peer *p, enum rpc_peer_state s)
{
	__atomic_store_n(&p->state, (int)s, __ATOMIC_RELEASE);
}

/* snprintf() for messages that may be cut (no truncation warning). */
static void put(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void put(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

/* "<desc>: <reason>" into @out, unless the reason already starts with
 * @desc (the auth module's messages do). */
static void compose_why(char *out, size_t len, const char *desc, const char *fmt, va_list ap)
{
	char reason[RPC_WHY_MAX];

	vsnprintf(reason, sizeof(reason), fmt, ap);
	if (!strncmp(reason, desc, strlen(desc)))
		put(out, len, "%s", reason);
	else
		put(out, len, "%s: %s", desc, reason);
}

static void after_event(struct rpc_peers *t)
{
	if (t->link->after_event)
		t->link->after_event(t);
}

/* ------------------------------------------------------------------ */
/* The transport's common fields                                        */

int rpc_peers_create(const struct rpc_link_ops *link, uv_loop_t *loop,
		     const struct cluster_config *cfg, int self, const struct rpc_callbacks *cb,
		     void *opaque, struct rpc_transport **out)
{
	struct rpc_peers *t;

	if (!out || !loop || !cfg || self < 0 || self >= cfg->n_nodes ||
	    cfg->n_nodes > CLUSTER_MAX_NODES || cfg->heartbeat_ms == 0 ||
	    cfg->peer_timeout_ms == 0 || cfg->hello_timeout_ms == 0 || cfg->proof_timeout_ms == 0)
		return -EINVAL;
	if (!(t = calloc(1, link->size)))
		return -ENOMEM;
	t->peers = rpc_zalloc_lines((size_t)cfg->n_nodes * sizeof(*t->peers));
	if (!t->peers) {
		free(t);
		return -ENOMEM;
	}
	t->base.ops = link->transport;
	t->base.cfg = cfg;
	t->base.self = self;
	if (cb)
		t->base.cb = *cb;
	t->base.opaque = opaque;
	t->base.loop = loop;
	t->link = link;
	for (int i = 0; i < cfg->n_nodes; i++) {
		struct rpc_peer *p = &t->peers[i];
		p->t = t;
		p->index = i;
		rpc_auth_describe_node(cfg, i, p->desc, sizeof(p->desc));
		p->state = RPC_PEER_CONNECTING;
		p->backoff_ms = RPC_BACKOFF_MIN_MS;
		pthread_mutex_init(&p->send_mu, NULL);
	}
	if (link->init)
		link->init(t);
	*out = &t->base;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Dialling                                                             */

static void on_dial_timer(uv_timer_t *h);

/* Dial @p again after its backoff. */
static void schedule_dial(struct rpc_peer *p)
{
	struct rpc_peers *t = p->t;

	if (t->stopping || rpc_peer_state_final(rpc_peer_get_state(p)))
		return;
	uv_timer_start(&p->dial_timer, on_dial_timer, p->backoff_ms, 0);
	p->backoff_ms = p->backoff_ms * 2 > RPC_BACKOFF_MAX_MS ? RPC_BACKOFF_MAX_MS
							       : p->backoff_ms * 2;
}

static void dial(struct rpc_peer *p)
{
	struct rpc_peers *t = p->t;

	if (t->stopping || rpc_peer_state_final(rpc_peer_get_state(p)) || p->conn)
		return;
	if (t->link->dial(t, p) < 0)
		schedule_dial(p);
}

static void on_dial_timer(uv_timer_t *h)
{
	dial(container_of(h, struct rpc_peer, dial_timer));
}

/* ------------------------------------------------------------------ */
/* Peers                                                                */

void rpc_peer_down(struct rpc_peer *p, enum rpc_peer_state state, const char *fmt, ...)
{
	struct rpc_peers *t = p->t;
	char why[RPC_WHY_MAX + 400];
	va_list ap;

	if (rpc_peer_state_final(rpc_peer_get_state(p)))
		return;
	va_start(ap, fmt);
	compose_why(why, sizeof(why), p->desc, fmt, ap);
	va_end(ap);
	set_state(p, state);
	if (p->conn)
		rpc_conn_close(p->conn);
	if (t->started && !t->stopping)
		uv_timer_stop(&p->dial_timer);
	disco_log(state == RPC_PEER_FAILED ? DISCO_LOG_ERROR : DISCO_LOG_INFO, "%s%s",
		  state == RPC_PEER_FAILED ? "peer failed: " : "peer left: ", why);
	if (t->base.cb.on_peer_down)
		t->base.cb.on_peer_down(t->base.opaque, p->index, state, why);
}

void rpc_peers_fail_all(struct rpc_peers *t, const char *why)
{
	for (int i = 0; i < rpc_peers_cfg(t)->n_nodes; i++)
		if (i != t->base.self)
			rpc_peer_down(&t->peers[i], RPC_PEER_FAILED, "%s", why);
}

struct rpc_peer *rpc_peers_acceptable(struct rpc_peers *t, int node, char *why, size_t len)
{
	if (node < 0 || node >= rpc_peers_cfg(t)->n_nodes || node == t->base.self) {
		snprintf(why, len, "it says it is node %d (only nodes with a higher index than %d "
			 "dial us)", node, t->base.self);
		return NULL;
	}
	struct rpc_peer *p = &t->peers[node];
	const char *name = rpc_peers_cfg(t)->nodes[node].name;
	if (node < t->base.self) {
		snprintf(why, len, "claims to be node %s, which we dial (lower index)", name);
		return NULL;
	}
	enum rpc_peer_state st = rpc_peer_get_state(p);
	if (st != RPC_PEER_CONNECTING || p->conn) {
		snprintf(why, len, "claims to be node %s, which is %s: second connection refused",
			 name, rpc_peer_state_name(st));
		return NULL;
	}
	return p;
}

void rpc_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%d", host, ntohs(in->sin_port));
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%d", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

/* The key of @sa's source for the per-source cap: an IPv4 address (also
 * one mapped into IPv6), or the /64 of an IPv6 address (one host usually
 * owns a whole /64). */
static void source_key(const struct sockaddr *sa, uint8_t key[RPC_SOURCE_LEN])
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(key, 0, RPC_SOURCE_LEN);
	if (sa && sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		if (!memcmp(a, v4mapped, sizeof(v4mapped))) {
			key[0] = 4;
			memcpy(key + 1, a + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, a, 8);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

/* Store @why as the last handshake error of the peer @c claims. */
static void note_handshake_error(struct rpc_conn *c, const char *why)
{
	struct rpc_peer *p = rpc_conn_peer(c);

	if (!p)
		return;
	pthread_mutex_lock(&p->send_mu);
	put(p->hs_error, sizeof(p->hs_error), "%s", why);
	pthread_mutex_unlock(&p->send_mu);
}

size_t rpc_peers_handshake_error(struct rpc_transport *bt, int peer, char *buf, size_t len)
{
	struct rpc_peers *t = rpc_peers_of(bt);

	if (!len)
		return 0;
	buf[0] = '\0';
	if (peer < 0 || peer >= rpc_peers_cfg(t)->n_nodes || peer == t->base.self)
		return 0;
	struct rpc_peer *p = &t->peers[peer];
	pthread_mutex_lock(&p->send_mu);
	snprintf(buf, len, "%s", p->hs_error);
	pthread_mutex_unlock(&p->send_mu);
	return strlen(buf);
}

/* "<who>: <reason>" for a fault on @c into @out. Who: the peer once @c is
 * attached; else the connection's real address and what it claims. The
 * auth module's reasons already name the peer ("node n2 (...): ..." on
 * a dialled connection, "claims to be node n2: ..." on an accepted one). */
static void describe_fault(const struct rpc_conn *c, char *out, size_t len, const char *reason)
{
	const struct rpc_peer *p = rpc_conn_peer(c);

	if (c->attached || c->dialled) {
		if (!strncmp(reason, p->desc, strlen(p->desc)))
			put(out, len, "%s", reason);
		else
			put(out, len, "%s: %s", p->desc, reason);
	} else if (p && strncmp(reason, "claims", 6) != 0) {
		put(out, len, "connection from %s: claims to be node %s: %s", c->remote,
			 rpc_peers_cfg(c->t)->nodes[c->peer].name, reason);
	} else {
		put(out, len, "connection from %s: %s", c->remote, reason);
	}
}

/* The rate limit for lines about @c (peer.h: per claimed node). */
static struct disco_log_limit *limit_of(struct rpc_conn *c)
{
	struct rpc_peer *p = rpc_conn_peer(c);
	return p ? &p->hs_log : &c->t->anon_log;
}

static bool same_source(const struct rpc_conn *a, const struct rpc_conn *b)
{
	return !memcmp(a->source, b->source, RPC_SOURCE_LEN);
}

static void evict(struct rpc_conn *victim, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void evict(struct rpc_conn *victim, const char *fmt, ...)
{
	char reason[RPC_WHY_MAX], why[RPC_WHY_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	describe_fault(victim, why, sizeof(why), reason);
	disco_log_limited(&victim->t->anon_log, DISCO_LOG_WARN, "evicting %s", why);
	rpc_conn_close(victim);
}

/*
 * Make room for one more anonymous connection from @c's source (peer.h,
 * top): at the source's cap, its oldest anonymous connection goes; else,
 * with every slot taken, the oldest of the source that holds the most.
 * t->conns is newest first, so the last match of a walk is the oldest.
 */
static void admit(struct rpc_peers *t, const struct rpc_conn *c)
{
	const struct rpc_link_ops *L = t->link;
	struct rpc_conn *oldest_same = NULL, *victim = NULL;
	int same = 0, most = 0;

	for (struct rpc_conn *o = t->conns; o; o = o->next)
		if (o->anon && same_source(o, c)) {
			same++;
			oldest_same = o;
		}
	if (same >= L->max_anon_per_source) {
		evict(oldest_same, "%d unauthenticated connections from its address, the most "
		      "allowed", same);
		return;
	}
	if (t->n_anon < L->max_anon)
		return;
	for (struct rpc_conn *o = t->conns; o; o = o->next) {
		if (!o->anon)
			continue;
		int n = 0;
		struct rpc_conn *oldest = NULL;
		for (struct rpc_conn *q = o; q; q = q->next)
			if (q->anon && same_source(q, o)) {
				n++;
				oldest = q;
			}
		if (n >= most) { /* >=: among equals, the older source */
			most = n;
			victim = oldest;
		}
	}
	if (victim)
		evict(victim, "all %d slots for unauthenticated connections are taken; its address "
		      "holds %d", L->max_anon, most);
}

int rpc_conn_init(struct rpc_conn *c, struct rpc_peers *t, int peer, bool dialled,
		  enum rpc_conn_phase phase, const struct sockaddr *remote)
{
	const struct cluster_config *cfg = rpc_peers_cfg(t);

	if (rpc_auth_init(&c->auth, cfg, t->base.self) < 0)
		return -EIO;
	c->t = t;
	c->peer = peer;
	c->dialled = dialled;
	c->phase = phase;
	c->opened_ms = uv_now(t->base.loop);
	/* A dialled connection may take as long as a peer may be silent to
	 * connect; an accepted one must say Hello soon. */
	c->deadline_ms = c->opened_ms + (dialled ? cfg->peer_timeout_ms : cfg->hello_timeout_ms);
	rpc_format_addr(remote, c->remote, sizeof(c->remote));
	source_key(remote, c->source);
	if (!dialled) {
		admit(t, c);
		c->anon = true;
		t->n_anon++;
	}
	c->prev = NULL;
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	return 0;
}

static void drop_anon(struct rpc_conn *c)
{
	if (c->anon) {
		c->anon = false;
		c->t->n_anon--;
	}
}

void rpc_conn_unlink(struct rpc_conn *c)
{
	struct rpc_peers *t = c->t;

	drop_anon(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Let senders write to @c (it is @p's and carries frames). */
static void publish(struct rpc_peer *p, struct rpc_conn *c)
{
	pthread_mutex_lock(&p->send_mu);
	p->send_conn = c;
	pthread_mutex_unlock(&p->send_mu);
}

void rpc_conn_attach(struct rpc_conn *c, struct rpc_peer *p)
{
	drop_anon(c);
	p->conn = c;
	c->peer = p->index;
	c->attached = true;
	if (c->phase != RPC_CONN_LINKING)
		publish(p, c);
}

void rpc_conn_close(struct rpc_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	drop_anon(c);
	if (c->attached) {
		struct rpc_peer *p = rpc_conn_peer(c);
		pthread_mutex_lock(&p->send_mu);
		p->send_conn = NULL;
		p->sendable = false;
		pthread_mutex_unlock(&p->send_mu);
		p->conn = NULL;
		c->attached = false;
	}
	c->t->link->close(c);
}

void rpc_conn_fail(struct rpc_conn *c, bool refused, const char *fmt, ...)
{
	struct rpc_peers *t = c->t;
	struct rpc_peer *p = rpc_conn_peer(c);
	char reason[RPC_WHY_MAX], why[RPC_WHY_MAX + 400];
	va_list ap;

	if (c->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	describe_fault(c, why, sizeof(why), reason);
	if (c->phase == RPC_CONN_UP) {
		rpc_peer_down(p, RPC_PEER_FAILED, "%s", why);
		return;
	}
	/* Before the proof: this connection only (peer.h). */
	note_handshake_error(c, why);
	if (!c->dialled) {
		disco_log_limited(limit_of(c), refused ? DISCO_LOG_WARN : DISCO_LOG_INFO,
				  "closing %s", why);
		rpc_conn_close(c);
		return;
	}
	if (refused)
		disco_log_limited(&p->hs_log, DISCO_LOG_WARN, "%s (will retry)", why);
	else
		disco_log(DISCO_LOG_DEBUG, "%s (will retry)", why);
	/* The state first: the other end may see the close at once. */
	if (!t->stopping)
		set_state(p, RPC_PEER_CONNECTING);
	rpc_conn_close(c);
	schedule_dial(p);
}

/* ------------------------------------------------------------------ */
/* Handshake and frame dispatch                                         */

/* Our Hello or AuthProof (@type) on @c. */
static int send_handshake(struct rpc_conn *c, uint16_t type)
{
	uint8_t buf[RPC_AUTH_HELLO_MAX > RPC_AUTH_PROOF_MAX ? RPC_AUTH_HELLO_MAX
							    : RPC_AUTH_PROOF_MAX];
	long n = type == RPC_MSG_HELLO ? rpc_auth_make_hello(&c->auth, buf, sizeof(buf))
				       : rpc_auth_make_proof(&c->auth, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return rpc_conn_send(c, type, buf, (size_t)n);
}

void rpc_conn_linked(struct rpc_conn *c)
{
	struct rpc_peer *p = rpc_conn_peer(c);
	int r;

	if (c->closing)
		return;
	c->phase = RPC_CONN_HANDSHAKE;
	if (!c->attached)
		return; /* accepted: waits for its Hello, within its first deadline */
	c->deadline_ms = uv_now(c->t->base.loop) + rpc_peers_cfg(c->t)->hello_timeout_ms;
	publish(p, c);
	set_state(p, RPC_PEER_AUTHENTICATING);
	disco_log(DISCO_LOG_DEBUG, "%s: connected, authenticating", p->desc);
	if (c->dialled && (r = send_handshake(c, RPC_MSG_HELLO)) < 0)
		rpc_conn_fail(c, false, "sending Hello: %s", strerror(-r));
}

/* The peer's Hello. On an accepted connection it claims a node (the one
 * its connect request named, over verbs): the acceptor answers with its
 * Hello and proof; the dialler with its proof. */
static void on_hello(struct rpc_conn *c, const struct rpc_frame_view *f)
{
	const struct cluster_config *cfg = rpc_peers_cfg(c->t);
	char err[RPC_WHY_MAX];
	int r, idx = rpc_auth_on_hello(&c->auth, f->body, f->body_len, c->dialled ? c->peer : -1,
				       err, sizeof(err));

	if (idx < 0) {
		rpc_conn_fail(c, true, "%s", err);
		return;
	}
	if (!c->dialled) {
		if (c->peer >= 0 && idx != c->peer) {
			rpc_conn_fail(c, true, "its Hello names node %s", cfg->nodes[idx].name);
			return;
		}
		c->peer = idx; /* a claim, for messages: nothing is proven */
		if (!rpc_peers_acceptable(c->t, idx, err, sizeof(err))) {
			rpc_conn_fail(c, true, "%s", err);
			return;
		}
	}
	c->deadline_ms = uv_now(c->t->base.loop) + cfg->proof_timeout_ms;
	if ((!c->dialled && (r = send_handshake(c, RPC_MSG_HELLO)) < 0) ||
	    (r = send_handshake(c, RPC_MSG_AUTH)) < 0)
		rpc_conn_fail(c, false, "sending handshake: %s", strerror(-r));
}

/* @c's peer proved the key: an accepted connection now attaches. */
static void on_proven(struct rpc_conn *c)
{
	struct rpc_peers *t = c->t;
	char why[RPC_WHY_MAX];

	if (!c->attached) {
		struct rpc_peer *p = rpc_peers_acceptable(t, c->peer, why, sizeof(why));
		if (!p) { /* e.g. the node got in on another connection meanwhile */
			disco_log(DISCO_LOG_INFO, "closing authenticated connection from %s: %s",
				  c->remote, why);
			rpc_conn_close(c);
			return;
		}
		rpc_conn_attach(c, p);
	}
	struct rpc_peer *p = rpc_conn_peer(c);
	c->phase = RPC_CONN_UP;
	p->last_rx_ms = uv_now(t->base.loop);
	p->backoff_ms = RPC_BACKOFF_MIN_MS;
	pthread_mutex_lock(&p->send_mu);
	p->sendable = true;
	p->hs_error[0] = '\0';
	pthread_mutex_unlock(&p->send_mu);
	set_state(p, RPC_PEER_UP);
	disco_log(DISCO_LOG_INFO, "%s: up over %s (%s %s)", p->desc, t->base.ops->name,
		  c->dialled ? "dialled at" : "accepted from", c->remote);
	if (t->base.cb.on_peer_up)
		t->base.cb.on_peer_up(t->base.opaque, p->index);
}

static void on_handshake_frame(struct rpc_conn *c, const struct rpc_frame_view *f)
{
	char err[RPC_WHY_MAX];

	if (!c->auth.hello_done && f->type != RPC_MSG_HELLO) {
		rpc_conn_fail(c, true, "frame type %u before Hello", f->type);
		return;
	}
	switch (f->type) {
	case RPC_MSG_HELLO:
		on_hello(c, f);
		return;
	case RPC_MSG_AUTH:
		if (rpc_auth_check_proof(&c->auth, f->body, f->body_len, err, sizeof(err)) < 0) {
			/* Our own proof may still be on its way, and the close
			 * could overtake it: let it reach the peer, so that the
			 * peer, too, learns the keys differ. */
			if (c->t->link->settle)
				c->t->link->settle(c, 200);
			rpc_conn_fail(c, true, "%s", err);
			return;
		}
		/* Our proof went out when we accepted its Hello. */
		on_proven(c);
		return;
	default:
		rpc_conn_fail(c, true, "frame type %u before authentication", f->type);
		return;
	}
}

void rpc_conn_frame(struct rpc_conn *c, const struct rpc_frame_view *f)
{
	struct rpc_peers *t = c->t;
	char reason[128];

	rpc_stat_add(&t->base.stats.frames_received, 1);
	if (c->phase != RPC_CONN_UP) {
		on_handshake_frame(c, f);
		return;
	}
	rpc_conn_peer(c)->last_rx_ms = uv_now(t->base.loop);
	switch (f->type) {
	case RPC_MSG_HELLO:
	case RPC_MSG_AUTH:
		rpc_conn_fail(c, true, "handshake frame type %u after authentication", f->type);
		return;
	case RPC_MSG_GOODBYE:
		rpc_goodbye_reason(f->body, f->body_len, reason, sizeof(reason));
		rpc_peer_down(rpc_conn_peer(c), RPC_PEER_LEFT, "said goodbye (%s)", reason);
		return;
	default:
		if (f->type < RPC_MSG_DSM)
			return; /* a heartbeat (its arrival is what counts), unknown membership */
		if (t->base.cb.on_frame)
			t->base.cb.on_frame(t->base.opaque, c->peer, f);
	}
}

void rpc_conn_closed_by_peer(struct rpc_conn *c)
{
	if (c->closing)
		return;
	if (c->phase == RPC_CONN_UP)
		rpc_conn_fail(c, true, "connection closed without Goodbye");
	else if (!c->dialled && c->peer < 0)
		rpc_conn_close(c); /* a client that went away: nothing to report */
	else
		rpc_conn_fail(c, false, "connection closed during the handshake");
}

/* ------------------------------------------------------------------ */
/* Heartbeats and timeouts                                              */

static void on_tick(uv_timer_t *h)
{
	struct rpc_peers *t = h->data;
	const struct cluster_config *cfg = rpc_peers_cfg(t);
	uint64_t now = uv_now(t->base.loop);
	/* If this loop itself stalled, the silence we measured is ours:
	 * restart the clocks instead of failing every peer. */
	bool stalled = now - t->last_tick_ms > cfg->heartbeat_ms + cfg->peer_timeout_ms / 2;

	if (stalled)
		disco_log(DISCO_LOG_WARN, "loop stalled for %" PRIu64 " ms; peer timeouts restart",
			  now - t->last_tick_ms);
	for (int i = 0; i < cfg->n_nodes && !t->stopping; i++) {
		struct rpc_peer *p = &t->peers[i];
		if (i == t->base.self || rpc_peer_get_state(p) != RPC_PEER_UP)
			continue;
		if (stalled)
			p->last_rx_ms = now;
		if (now - p->last_rx_ms > cfg->peer_timeout_ms) {
			rpc_peer_down(p, RPC_PEER_FAILED, "no frame for %" PRIu64 " ms",
				      now - p->last_rx_ms);
			continue;
		}
		uint8_t buf[RPC_HEARTBEAT_MAX];
		size_t n = rpc_pack_heartbeat(uv_hrtime(), buf);
		/* An error reaches the loop through the async; nothing to do here. */
		rpc_peer_send(p, RPC_MSG_HEARTBEAT, buf, n, NULL, true);
		if (t->link->tick)
			t->link->tick(p);
	}
	for (struct rpc_conn *c = t->conns, *next; c && !t->stopping; c = next) {
		next = c->next;
		if (c->closing || c->phase == RPC_CONN_UP)
			continue;
		if (stalled) { /* the time was ours: the other end gets it back */
			c->deadline_ms += now - t->last_tick_ms;
			continue;
		}
		if (now <= c->deadline_ms)
			continue;
		if (c->dialled && c->phase == RPC_CONN_LINKING)
			rpc_conn_fail(c, false, "connect not finished after %" PRIu64 " ms",
				      now - c->opened_ms);
		else if (!c->auth.hello_done)
			rpc_conn_fail(c, false, "no Hello within %" PRIu32 " ms", cfg->hello_timeout_ms);
		else
			rpc_conn_fail(c, false, "no AuthProof within %" PRIu32 " ms of the Hellos",
				      cfg->proof_timeout_ms);
	}
	t->last_tick_ms = now;
	disco_log_limit_flush(&t->anon_log);
	for (int i = 0; i < cfg->n_nodes; i++)
		disco_log_limit_flush(&t->peers[i].hs_log);
	after_event(t);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */

/* Woken by a sender (a queued frame, a broken link) or by stop(). */
static void on_async(uv_async_t *h)
{
	struct rpc_peers *t = h->data;

	if (__atomic_load_n(&t->stop_req, __ATOMIC_ACQUIRE)) {
		rpc_peers_stop_now(t, true);
		return;
	}
	for (int i = 0; i < rpc_peers_cfg(t)->n_nodes && !t->stopping; i++) {
		struct rpc_peer *p = &t->peers[i];
		struct rpc_conn *c = p->conn;
		if (i == t->base.self || !c || c->closing)
			continue;
		pthread_mutex_lock(&p->send_mu);
		int err = c->send_err;
		const char *why = c->send_why;
		bool want = c->flush_wanted;
		pthread_mutex_unlock(&p->send_mu);
		if (err)
			rpc_conn_fail(c, false, "send: %s", why ? why : strerror(-err));
		else
			t->link->wake(p, want);
	}
	after_event(t);
}

void rpc_peers_wake(struct rpc_peers *t)
{
	uv_async_send(&t->async);
}

int rpc_peers_start(struct rpc_transport *bt)
{
	struct rpc_peers *t = rpc_peers_of(bt);
	const struct cluster_config *cfg = rpc_peers_cfg(t);
	uv_loop_t *loop = t->base.loop;
	int r;

	if (t->started)
		return -EALREADY;
	disco_log_set_thread_node(cfg->nodes[t->base.self].name);
	if ((r = t->link->open(t)) < 0)
		return r;
	t->loop_tid = uv_thread_self();
	uv_async_init(loop, &t->async, on_async);
	t->async.data = t;
	uv_timer_init(loop, &t->hb_timer);
	t->hb_timer.data = t;
	uv_timer_start(&t->hb_timer, on_tick, cfg->heartbeat_ms, cfg->heartbeat_ms);
	t->last_tick_ms = uv_now(loop);
	for (int i = 0; i < cfg->n_nodes; i++) {
		if (i == t->base.self)
			continue;
		uv_timer_init(loop, &t->peers[i].dial_timer);
		t->peers[i].dial_timer.data = t;
	}
	t->started = true;
	for (int i = 0; i < t->base.self; i++)
		dial(&t->peers[i]);
	return 0;
}

void rpc_peers_stop_now(struct rpc_peers *t, bool goodbye)
{
	const struct cluster_config *cfg = rpc_peers_cfg(t);

	if (!t->started || t->stopping)
		return;
	for (int i = 0; goodbye && i < cfg->n_nodes; i++) {
		struct rpc_peer *p = &t->peers[i];
		if (i == t->base.self || rpc_peer_get_state(p) != RPC_PEER_UP)
			continue;
		uint8_t buf[RPC_GOODBYE_MAX];
		size_t n = rpc_pack_goodbye(buf);
		rpc_peer_send(p, RPC_MSG_GOODBYE, buf, n, NULL, true);
		t->link->farewell(p);
	}
	t->stopping = true;
	for (int i = 0; i < cfg->n_nodes; i++) {
		struct rpc_peer *p = &t->peers[i];
		if (i == t->base.self)
			continue;
		if (!rpc_peer_state_final(rpc_peer_get_state(p)))
			set_state(p, RPC_PEER_LEFT);
		uv_close((uv_handle_t *)&p->dial_timer, NULL);
	}
	for (struct rpc_conn *c = t->conns, *next; c; c = next) {
		next = c->next; /* a back end may unlink @c as it closes it */
		rpc_conn_close(c);
	}
	t->link->close_handles(t);
	uv_close((uv_handle_t *)&t->hb_timer, NULL);
	uv_close((uv_handle_t *)&t->async, NULL);
	disco_log(DISCO_LOG_DEBUG, "%s transport stopped", t->base.ops->name);
}

void rpc_peers_stop(struct rpc_transport *bt)
{
	struct rpc_peers *t = rpc_peers_of(bt);

	if (!t->started)
		return;
	if (rpc_on_loop_thread(t)) {
		rpc_peers_stop_now(t, true);
		return;
	}
	int expected = 0;
	if (__atomic_compare_exchange_n(&t->stop_req, &expected, 1, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		uv_async_send(&t->async);
}

/* The owner found a well-formed frame from @peer that makes no sense: the
 * peer is failed like one that broke the protocol (loop thread). */
void rpc_peers_fail_peer(struct rpc_transport *bt, int peer, const char *why)
{
	struct rpc_peers *t = rpc_peers_of(bt);

	if (peer < 0 || peer >= rpc_peers_cfg(t)->n_nodes || peer == t->base.self || t->stopping)
		return;
	rpc_peer_down(&t->peers[peer], RPC_PEER_FAILED, "%s", why ? why : "failed by owner");
}

enum rpc_peer_state rpc_peers_peer_state(struct rpc_transport *bt, int peer)
{
	struct rpc_peers *t = rpc_peers_of(bt);

	if (peer < 0 || peer >= rpc_peers_cfg(t)->n_nodes)
		return RPC_PEER_FAILED;
	if (peer == t->base.self)
		return RPC_PEER_UP; /* we are, as far as we can tell */
	return rpc_peer_get_state(&t->peers[peer]);
}

void rpc_peers_destroy(struct rpc_transport *bt)
{
	struct rpc_peers *t = rpc_peers_of(bt);

	if (!t)
		return;
	t->link->destroy(t);
	for (int i = 0; i < rpc_peers_cfg(t)->n_nodes; i++)
		pthread_mutex_destroy(&t->peers[i].send_mu);
	free(t->peers);
	free(t);
}
