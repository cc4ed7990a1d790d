/*
 * libFuzzer harness: the DSM message decoder and the protocol engine, as
 * a node sees them when an authenticated peer sends anything it likes.
 *
 * One engine (node `self` of 3, 8 pages, with or without a budget) is
 * driven by a script read from the input:
 *
 *   byte 0          self = b % 3; budget: b & 0x4 (5 frames, min_cache 2)
 *   then ops        op byte, low 3 bits:
 *     0, 5        a frame from a peer: peer byte, length byte, that many
 *                 bytes of DsmMessage protobuf, a payload flag (bit 7 of
 *                 the op byte). Decoded by dsm_wire_unpack() (wire.c) and
 *                 checked as the runtime's on_dsm_frame() does: an
 *                 undecodable message, a payload that does not match
 *                 F_DATA, or dsm_engine_receive() < 0 fails the peer
 *                 (dsm_engine_peer_failed(), frames from it are ignored
 *                 afterwards), as rpc_session_fail_peer() would.
 *     1           a local fault: page byte (bit 7: write)
 *     2           a home move: page byte, target byte
 *     3           an eviction (budgets): page byte
 *     4           the loss of a peer: peer byte
 *     6, 7        as 1 (faults are what a runtime does most)
 *
 * Whatever the frames, the engine must never crash, trip a sanitizer or
 * loop, and everything it emits must be something a runtime can carry
 * out: pages in range, messages addressed to another node of the
 * cluster, an INSTALL only with an incoming payload to install, a WAKE
 * error only a lost peer explains, and with a budget the node never holds
 * more frames than it may. Anything else abort()s with a message, and
 * libFuzzer keeps the input.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm/protocol.h"
#include "region_internal.h" /* dsm_wire_unpack(), struct dsm_wire_extra */

#define FZ_NODES 3
#define FZ_PAGES 8
#define FZ_FRAMES 5
#define FZ_MIN_CACHE 2

struct fuzz_run {
	struct dsm_engine *engine;
	int self;
	bool budget;
	bool dead[FZ_NODES];
	bool payload;  /* the message being received carries a page */
	bool receiving;
	struct rpc_pb_arena arena;
};

static void fail(const char *what, const struct dsm_action *a)
{
	fprintf(stderr, "fuzz_dsm_engine: %s (action %d, page %" PRIu64 ", msg kind %d dst %u)\n",
		what, (int)a->kind, a->page, (int)a->msg.kind, (unsigned)a->msg.dst);
	abort();
}

static void check_action(void *ctx, const struct dsm_action *a)
{
	struct fuzz_run *f = ctx;

	switch (a->kind) {
	case DSM_ACT_SEND:
		if (a->msg.dst >= FZ_NODES || a->msg.dst == f->self)
			fail("a message to no other node of the cluster", a);
		if (a->msg.page >= FZ_PAGES)
			fail("a message for a page out of range", a);
		if (a->msg.kind < DSM_MSG_READ_REQ || a->msg.kind > DSM_MSG_KIND_MAX)
			fail("a message of no known kind", a);
		if (a->data == DSM_DATA_INCOMING && !(f->receiving && f->payload))
			fail("a message passing on a payload that did not come", a);
		return;
	case DSM_ACT_INSTALL:
		if (a->page >= FZ_PAGES)
			fail("an install out of range", a);
		if (!f->receiving || !f->payload)
			fail("an install without an incoming payload", a);
		return;
	case DSM_ACT_PROTECT:
	case DSM_ACT_DROP:
	case DSM_ACT_MAP_LOCAL:
	case DSM_ACT_WAKE:
		if (a->page >= FZ_PAGES)
			fail("a page action out of range", a);
		return;
	case DSM_ACT_NEED_ROOM:
	case DSM_ACT_MOVE_REFUSED:
		if (!f->budget)
			fail("a budget action without a budget", a);
		return;
	}
	fail("an action of no known kind", a);
}

static int first_home(uint64_t page, void *ctx)
{
	(void)ctx;
	return (int)(page % FZ_NODES);
}

static void lose_peer(struct fuzz_run *f, int peer)
{
	if (peer == f->self || f->dead[peer])
		return;
	f->dead[peer] = true;
	dsm_engine_peer_failed(f->engine, peer);
}

static void receive_frame(struct fuzz_run *f, int peer, const uint8_t *body, size_t len,
			  bool payload)
{
	struct dsm_msg m;
	struct dsm_wire_extra x;

	if (peer == f->self || f->dead[peer])
		return;
	if (dsm_wire_unpack(&f->arena, body, len, &m, &x) < 0) {
		lose_peer(f, peer);
		return;
	}
	m.src = (uint16_t)peer;
	m.dst = (uint16_t)f->self;
	/* the runtime's frame checks (fault_path.c, on_dsm_frame): no
	 * one-sided reads here, and the payload matches F_DATA */
	if (x.data_by_read || ((m.flags & DSM_MSG_F_DATA) != 0) != payload) {
		lose_peer(f, peer);
		return;
	}
	f->receiving = true;
	f->payload = payload;
	int rc = dsm_engine_receive(f->engine, &m);
	f->receiving = false;
	if (rc < 0)
		lose_peer(f, peer);
}

static void check_state(const struct fuzz_run *f)
{
	if (f->budget && dsm_engine_frames_used(f->engine) > FZ_FRAMES) {
		fprintf(stderr, "fuzz_dsm_engine: %" PRIu64 " frames used, budget %d\n",
			dsm_engine_frames_used(f->engine), FZ_FRAMES);
		abort();
	}
	for (uint64_t p = 0; p < FZ_PAGES; p++) {
		enum dsm_local_state s = dsm_engine_local_state(f->engine, p);
		if (s != DSM_LOCAL_INVALID && s != DSM_LOCAL_SHARED && s != DSM_LOCAL_MODIFIED) {
			fprintf(stderr, "fuzz_dsm_engine: page %" PRIu64 " in local state %d\n", p,
				(int)s);
			abort();
		}
		int hint = dsm_engine_home_hint(f->engine, p);
		if (hint < 0 || hint >= FZ_NODES) {
			fprintf(stderr, "fuzz_dsm_engine: page %" PRIu64 " home hint %d\n", p, hint);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run f = { 0 };
	size_t i = 0;

	if (size < 1)
		return 0;
	f.self = data[i] % FZ_NODES;
	f.budget = (data[i] & 0x4) != 0;
	i++;
	f.engine = dsm_engine_create(f.self, FZ_NODES, FZ_PAGES, first_home, NULL, check_action,
				     &f);
	if (!f.engine)
		return 0;
	if (f.budget && dsm_engine_set_budget(f.engine, FZ_FRAMES, FZ_MIN_CACHE) < 0) {
		fprintf(stderr, "fuzz_dsm_engine: the budget was refused\n");
		abort();
	}
	while (i < size) {
		uint8_t op = data[i++];
		uint8_t a = i < size ? data[i++] : 0;
		switch (op & 7) {
		case 0:
		case 5: {
			uint8_t len = i < size ? data[i++] : 0;
			if (len > size - i)
				len = (uint8_t)(size - i);
			receive_frame(&f, a % FZ_NODES, data + i, len, (op & 0x80) != 0);
			i += len;
			break;
		}
		case 2: {
			uint8_t target = i < size ? data[i++] : 0;
			(void)dsm_engine_migrate_home(f.engine, a % FZ_PAGES, target % FZ_NODES);
			break;
		}
		case 3:
			if (f.budget && dsm_engine_evictable(f.engine, a % FZ_PAGES))
				(void)dsm_engine_evict(f.engine, a % FZ_PAGES);
			break;
		case 4:
			lose_peer(&f, a % FZ_NODES);
			break;
		default:
			dsm_engine_local_fault(f.engine, a % FZ_PAGES, (a & 0x80) != 0);
			break;
		}
		check_state(&f);
	}
	dsm_engine_destroy(f.engine);
	return 0;
}
