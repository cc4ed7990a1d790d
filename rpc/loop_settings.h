// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * How a node's session loop thread (rpc/session.h) waits for frames: it
 * sleeps in epoll, except that it polls for a bounded time while an answer
 * is due, because on these machines a wake-up costs more than a loopback
 * round trip (docs/architecture.md, "Why the loop polls"). The session
 * owns these settings; the cluster config reads them from `cluster.loop`
 * and every default lives here.
 *
 * Header only, so the config parser can fill it without linking rpc/.
 */
#ifndef DISCO_RPC_LOOP_SETTINGS_H
#define DISCO_RPC_LOOP_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

enum rpc_loop_priority {
	RPC_LOOP_PRIORITY_NICE, /* nice -10 when allowed (root or CAP_SYS_NICE) */
	RPC_LOOP_PRIORITY_FIFO, /* SCHED_FIFO 1, falling back to nice */
	RPC_LOOP_PRIORITY_NONE, /* the thread keeps the process's priority */
};

struct rpc_loop_settings {
	uint32_t poll_us;        /* while an answer is due, poll at most this long */
	uint32_t poll_linger_us; /* and this long after any activity */
	bool poll_yield;         /* sched_yield() between polls */
	enum rpc_loop_priority priority;
};

static inline struct rpc_loop_settings rpc_loop_settings_default(void)
{
	return (struct rpc_loop_settings){
		.poll_us = 100,
		.poll_linger_us = 50,
		.poll_yield = true,
		.priority = RPC_LOOP_PRIORITY_NICE,
	};
}

#endif
