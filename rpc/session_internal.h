// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The session's internals, shared by session.c (life cycle, loop,
 * dispatch, barriers) and session_probe.c (the round-trip probe client).
 * Not a public header. Locking rules: rpc/session.h.
 */
#ifndef DISCO_RPC_SESSION_INTERNAL_H
#define DISCO_RPC_SESSION_INTERNAL_H

#include <pthread.h>

#include "rpc/session.h"

/* A function posted to the loop thread; lives on the caller's stack
 * until `done` is set under mu. */
struct session_cmd {
	struct session_cmd *next;
	int (*fn)(struct rpc_session *s, void *arg);
	void *arg;
	int result;
	bool done;
};

struct rpc_session {
	/* immutable after create */
	const struct cluster_config *cfg;
	int self, n_nodes;
	struct rpc_loop_settings tuning;

	/* loop thread only (and the creator before start / after stop) */
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t cmd_async;
	struct rpc_transport *transport;
	int n_clients;
	struct rpc_session_client clients[RPC_SESSION_MAX_CLIENTS];
	uint64_t last_activity_ns;
	bool started;            /* the thread was created */

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct session_cmd *cmd_head, *cmd_tail;
	bool loop_running;
	bool stopping;
	uint64_t peers_up, peers_down;
	uint32_t barrier_seen[CLUSTER_MAX_NODES];

	struct rpc_call_table calls; /* thread-safe itself */
	/* atomic: frames of every client to and from each peer */
	struct rpc_session_peer_stats peer_stats[CLUSTER_MAX_NODES];
	uint32_t probes_in_flight;   /* atomic: the loop polls for them */
};

/* session_probe.c: the built-in client for frame types 32..47 */
extern const struct rpc_session_client rpc_session_probe_client;

#endif
