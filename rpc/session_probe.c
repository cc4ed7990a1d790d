// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The raw round-trip probe, a client of the session built in for frame
 * types 32..47: a 64-byte BenchPing answered by a BenchPong carrying a
 * 4 KiB page. The DSM benchmark compares its fault latency with this
 * round trip, and the master measures NUMA distances with it.
 *
 * The caller sends the ping from its own thread and sleeps on the
 * session's call table; the loop thread answers pings and completes
 * pongs. While a probe is out the loop polls as it does for a fault
 * (probes_in_flight), so both see the same wake-ups. Unpacking uses an
 * arena on the loop thread's stack (rpc/pb_arena.h): no malloc per frame.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "bench.pb-c.h"
#include "rpc/pb_arena.h"
#include "session_internal.h"

static const uint8_t zero_page[RPC_PAGE_SIZE] __attribute__((aligned(RPC_PAGE_SIZE)));

static void on_probe_frame(void *opaque, int peer, const struct rpc_frame_view *f)
{
	struct rpc_session *s = opaque;
	struct rpc_pb_arena a;
	ProtobufCAllocator alloc = rpc_pb_arena_allocator(&a);

	if (f->type == RPC_MSG_PING) {
		Disco__BenchPing *ping = disco__bench_ping__unpack(&alloc, f->body_len, f->body);
		if (!ping) {
			rpc_session_fail_peer(s, peer, "undecodable BenchPing");
			return;
		}
		Disco__BenchPong pong = DISCO__BENCH_PONG__INIT;
		uint8_t body[32];
		pong.id = ping->id;
		size_t len = disco__bench_pong__pack(&pong, body);
		rpc_session_send(s, peer, RPC_MSG_PONG, body, len, zero_page);
		return;
	}
	Disco__BenchPong *pong = f->type == RPC_MSG_PONG
					 ? disco__bench_pong__unpack(&alloc, f->body_len, f->body)
					 : NULL;
	if (!pong) {
		char why[64];
		snprintf(why, sizeof(why), "unexpected or undecodable frame type %u", f->type);
		rpc_session_fail_peer(s, peer, why);
		return;
	}
	if (f->page) {
		struct iovec iov = { .iov_base = (void *)f->page, .iov_len = RPC_PAGE_SIZE };
		rpc_call_completev(&s->calls, pong->id, &iov, 1);
	} else {
		rpc_call_complete(&s->calls, pong->id, NULL, 0);
	}
}

const struct rpc_session_client rpc_session_probe_client = {
	.name = "round-trip probe",
	.type_first = RPC_MSG_PROBE_FIRST,
	.type_last = RPC_MSG_PROBE_LAST,
	.on_frame = on_probe_frame,
};

int rpc_session_rtt_probe(struct rpc_session *s, int peer, uint64_t *rtt_ns)
{
	Disco__BenchPing ping = DISCO__BENCH_PING__INIT;
	uint8_t pad[48] = { 0 };
	uint8_t body[96];
	uint64_t id;
	int rc;

	if (peer < 0 || peer >= s->n_nodes || peer == s->self)
		return -EINVAL;
	if ((rc = rpc_call_begin(&s->calls, &id)) < 0)
		return rc;
	ping.id = id;
	ping.pad.data = pad;
	ping.pad.len = sizeof(pad); /* body of 64 bytes with the id */
	size_t len = disco__bench_ping__pack(&ping, body);
	/* The loop polls for the answer as it does for a fault's. */
	__atomic_fetch_add(&s->probes_in_flight, 1, __ATOMIC_RELAXED);
	uint64_t t0 = uv_hrtime();
	rc = rpc_session_send(s, peer, RPC_MSG_PING, body, len, NULL);
	if (rc < 0)
		rpc_call_cancel(&s->calls, id);
	else
		rc = rpc_call_wait(&s->calls, id, 5000, NULL);
	*rtt_ns = uv_hrtime() - t0;
	__atomic_fetch_sub(&s->probes_in_flight, 1, __ATOMIC_RELAXED);
	return rc;
}
