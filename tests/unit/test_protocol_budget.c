// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the protocol engine under memory budgets (dsm/protocol.c,
 * docs/protocol.md "Budgets and eviction"): the exact actions of a clean
 * and a dirty eviction, a request waiting for a free frame, the races of
 * an eviction with INV, FETCH and home moves, and home moves that the
 * target accepts or refuses. The simulator and the SPIN model cover the
 * interleavings; these pin down each step.
 *
 * Cluster: 3 nodes, 8 pages; page 0's home is node 0, page p's is p % 3
 * (node 0: pages 0, 3, 6; node 1: 1, 4, 7; node 2: 2, 5).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dsm/protocol.h"
#include "engine_harness.h"

/* Budgets of @frames with a minimum cache of 1 frame (node 0, 1, 2). */
static void setup_budgets(uint64_t f0, uint64_t f1, uint64_t f2)
{
	uint64_t f[3] = { f0, f1, f2 };
	setup_cluster(3, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(dsm_engine_set_budget(nodes[i].e, f[i], 1), 0);
}

/* The index of @n's first SEND of @kind (which must exist). */
static int find_sent(struct node *n, enum dsm_msg_kind kind)
{
	for (int k = 0; k < n->n_acts; k++)
		if (n->acts[k].kind == DSM_ACT_SEND && n->acts[k].msg.kind == kind)
			return k;
	fail_msg("node %d sent no %s", n->id, dsm_msg_kind_name(kind));
	return -1;
}

static bool emitted(struct node *n, enum dsm_action_kind kind)
{
	for (int k = 0; k < n->n_acts; k++)
		if (n->acts[k].kind == kind)
			return true;
	return false;
}

/* Node @n asks for @page (home idle) and gets it. */
static void take(int n, uint64_t page, bool is_write)
{
	struct node *r = &nodes[n];
	clear(r);
	dsm_engine_local_fault(r->e, page, is_write);
	struct node *h = deliver(r, find_sent(r, is_write ? DSM_MSG_WRITE_REQ : DSM_MSG_READ_REQ));
	deliver(h, find_sent(h, DSM_MSG_GRANT));
	assert_int_equal(dsm_engine_local_state(r->e, page),
			 is_write ? DSM_LOCAL_MODIFIED : DSM_LOCAL_SHARED);
	assert_false(dsm_engine_pending(r->e, page));
}

static void no_protocol_errors(void)
{
	for (int i = 0; i < n_nodes; i++)
		assert_int_equal(dsm_engine_counters(nodes[i].e)->protocol_errors, 0);
}

static void test_set_budget_checks(void **state)
{
	(void)state;
	setup_cluster(3, 0);
	struct dsm_engine *e = nodes[0].e; /* 3 home pages */

	assert_int_equal(dsm_engine_frames_used(e), 3);
	assert_int_equal(dsm_engine_home_frames(e), 3);
	assert_int_equal(dsm_engine_set_budget(e, 4, 0), -EINVAL);
	assert_int_equal(dsm_engine_set_budget(e, 4, 4), -EINVAL);
	assert_int_equal(dsm_engine_set_budget(e, 4, 2), -ENOSPC);
	assert_int_equal(dsm_engine_set_budget(e, 4, 1), 0);
	assert_int_equal(dsm_engine_set_budget(e, 0, 0), 0); /* off again */
	assert_int_equal(dsm_engine_evict(e, 1), -EINVAL);    /* no budget */
}

static void test_clean_eviction(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);
	struct node *n0 = &nodes[0], *n1 = &nodes[1];

	take(1, 0, false);
	assert_int_equal(dsm_engine_frames_used(n1->e), 4);
	assert_true(dsm_engine_evictable(n1->e, 0));
	assert_int_equal(dsm_engine_evict(n1->e, 1), -EINVAL); /* its home page */
	assert_int_equal(dsm_engine_evict(n1->e, 2), -ENOENT); /* no copy */

	clear(n1);
	assert_int_equal(dsm_engine_evict(n1->e, 0), 0);
	act(n1, 0, DSM_ACT_DROP);
	const struct dsm_msg *ev = sent(n1, 1, DSM_MSG_EVICT, 0);
	assert_int_equal(ev->requester, 1);
	assert_int_equal(n1->n_acts, 2);
	/* the frame is free at once; no request until the home answers */
	assert_int_equal(dsm_engine_frames_used(n1->e), 3);
	assert_true(dsm_engine_pending(n1->e, 0));
	assert_int_equal(dsm_engine_evict(n1->e, 0), -ENOENT);

	deliver(n1, 1);
	/* the home was the last other holder: it takes the page back writable */
	assert_int_equal(act(n0, 0, DSM_ACT_PROTECT)->prot, DSM_PROT_WRITE);
	sent(n0, 1, DSM_MSG_EVICT_ACK, 1);
	assert_int_equal(dsm_engine_dir_state(n0->e, 0), DSM_DIR_HOME_EXCL);
	assert_int_equal(dsm_engine_copyset(n0->e, 0), 0);
	assert_int_equal(dsm_engine_page_counters(n0->e, 0)->evictions, 1);
	assert_false(dsm_engine_dir_busy(n0->e, 0));

	deliver(n0, 1);
	assert_int_equal(n1->n_acts, 0);
	assert_false(dsm_engine_pending(n1->e, 0));
	assert_int_equal(dsm_engine_counters(n1->e)->evictions, 1);
	no_protocol_errors();
}

static void test_dirty_eviction_is_pulled_back(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);
	struct node *n0 = &nodes[0], *n1 = &nodes[1];

	take(1, 0, true);
	clear(n1);
	assert_int_equal(dsm_engine_evict(n1->e, 0), 0);
	/* the only copy stays, write-protected, until the home has it */
	assert_int_equal(act(n1, 0, DSM_ACT_PROTECT)->prot, DSM_PROT_READ);
	sent(n1, 1, DSM_MSG_EVICT, 0);
	assert_int_equal(dsm_engine_frames_used(n1->e), 4);
	assert_int_equal(dsm_engine_local_state(n1->e, 0), DSM_LOCAL_MODIFIED);

	/* meanwhile a read may use the copy; a write waits */
	clear(n1);
	dsm_engine_local_fault(n1->e, 0, false);
	assert_int_equal(act(n1, 0, DSM_ACT_MAP_LOCAL)->prot, DSM_PROT_READ);
	act(n1, 1, DSM_ACT_WAKE);
	clear(n1);
	dsm_engine_local_fault(n1->e, 0, true);
	assert_int_equal(n1->n_acts, 0);

	struct dsm_msg ev = { .kind = DSM_MSG_EVICT, .page = 0, .src = 1, .dst = 0, .requester = 1 };
	clear(n0);
	assert_int_equal(dsm_engine_receive(n0->e, &ev), 0);
	const struct dsm_msg *f = sent(n0, 0, DSM_MSG_FETCH, 1);
	assert_true(f->flags & DSM_MSG_F_EXCL);
	assert_true(dsm_engine_dir_busy(n0->e, 0));

	deliver(n0, 0);
	act(n1, 0, DSM_ACT_PROTECT);
	sent(n1, 1, DSM_MSG_FETCH_REPLY, 0);
	assert_int_equal(n1->acts[1].data, DSM_DATA_LOCAL);
	act(n1, 2, DSM_ACT_DROP);
	assert_int_equal(dsm_engine_frames_used(n1->e), 3); /* freed with the data out */

	deliver(n1, 1);
	assert_int_equal(act(n0, 0, DSM_ACT_INSTALL)->prot, DSM_PROT_WRITE);
	sent(n0, 1, DSM_MSG_EVICT_ACK, 1);
	assert_int_equal(dsm_engine_dir_state(n0->e, 0), DSM_DIR_HOME_EXCL);
	assert_int_equal(dsm_engine_local_state(n0->e, 0), DSM_LOCAL_MODIFIED);
	assert_int_equal(dsm_engine_page_counters(n0->e, 0)->writebacks, 1);

	/* the ack releases the write that waited */
	deliver(n0, 1);
	sent(n1, 0, DSM_MSG_WRITE_REQ, 0);
	assert_true(dsm_engine_pending(n1->e, 0));
	no_protocol_errors();
}

static void test_request_waits_for_a_frame(void **state)
{
	(void)state;
	setup_budgets(5, 5, 3); /* node 2: 2 home pages + 1 frame to cache */
	struct node *n2 = &nodes[2];

	clear(n2);
	dsm_engine_local_fault(n2->e, 0, false);
	struct dsm_action rq = n2->acts[find_sent(n2, DSM_MSG_READ_REQ)];
	assert_int_equal(dsm_engine_frames_used(n2->e), 3); /* reserved for the grant */

	/* no frame left: the request waits, nothing can be evicted yet */
	clear(n2);
	dsm_engine_local_fault(n2->e, 1, true);
	assert_int_equal(n2->n_acts, 0);
	assert_true(dsm_engine_pending(n2->e, 1));
	assert_int_equal(dsm_engine_room_wanted(n2->e), 1);
	assert_int_equal(dsm_engine_counters(n2->e)->room_waits, 1);

	/* the grant for page 0 makes a copy evictable: now ask for room */
	struct node *h = &nodes[0];
	clear(h);
	assert_int_equal(dsm_engine_receive(h->e, &rq.msg), 0);
	deliver(h, find_sent(h, DSM_MSG_GRANT));
	act(n2, 0, DSM_ACT_INSTALL);
	act(n2, 1, DSM_ACT_WAKE);
	const struct dsm_action *nr = act(n2, 2, DSM_ACT_NEED_ROOM);
	assert_int_equal(nr->page, 1);
	assert_int_equal(nr->error, 0);

	/* evicting it frees the frame and sends the waiting request at once */
	clear(n2);
	assert_int_equal(dsm_engine_evict(n2->e, 0), 0);
	act(n2, 0, DSM_ACT_DROP);
	sent(n2, 1, DSM_MSG_EVICT, 0);
	sent(n2, 2, DSM_MSG_WRITE_REQ, 1);
	assert_int_equal(dsm_engine_room_wanted(n2->e), 0);
	assert_int_equal(dsm_engine_frames_used(n2->e), 3);
	no_protocol_errors();
}

/* n1 evicts its clean copy while the home invalidates it for n2's write:
 * n1 acks the INV without a copy, and its late EVICT changes nothing. */
static void test_inv_races_a_clean_eviction(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	take(1, 0, false);
	take(2, 0, false);
	clear(n1);
	assert_int_equal(dsm_engine_evict(n1->e, 0), 0);
	struct dsm_action evict = n1->acts[1];

	clear(n2);
	dsm_engine_local_fault(n2->e, 0, true);
	deliver(n2, 0);
	sent(n0, 0, DSM_MSG_INV, 1);
	deliver(n0, 0);
	assert_false(emitted(n1, DSM_ACT_DROP)); /* nothing left to drop */
	sent(n1, 0, DSM_MSG_INV_ACK, 0);
	deliver(n1, 0);
	sent(n0, 0, DSM_MSG_GRANT, 2);
	assert_int_equal(dsm_engine_owner(n0->e, 0), 2);

	clear(n0);
	assert_int_equal(dsm_engine_receive(n0->e, &evict.msg), 0);
	sent(n0, 0, DSM_MSG_EVICT_ACK, 1);
	assert_int_equal(n0->n_acts, 1);
	assert_int_equal(dsm_engine_dir_state(n0->e, 0), DSM_DIR_REMOTE_EXCL);
	deliver(n0, 0);
	assert_false(dsm_engine_pending(n1->e, 0));
	no_protocol_errors();
}

/* n1 evicts its dirty copy while the home FETCHes it for n2's read: n1
 * answers and drops it; the EVICT then only takes n1 off the copyset. */
static void test_fetch_races_a_dirty_eviction(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	take(1, 0, true);
	clear(n1);
	assert_int_equal(dsm_engine_evict(n1->e, 0), 0);
	struct dsm_action evict = n1->acts[1];

	clear(n2);
	dsm_engine_local_fault(n2->e, 0, false);
	deliver(n2, 0);
	const struct dsm_msg *f = sent(n0, 0, DSM_MSG_FETCH, 1);
	assert_false(f->flags & DSM_MSG_F_EXCL); /* the owner may keep a copy ... */
	deliver(n0, 0);
	sent(n1, 1, DSM_MSG_FETCH_REPLY, 0);
	act(n1, 2, DSM_ACT_DROP); /* ... but not one it is evicting */
	assert_int_equal(dsm_engine_local_state(n1->e, 0), DSM_LOCAL_INVALID);
	deliver(n1, 1);
	sent(n0, 1, DSM_MSG_GRANT, 2);
	assert_int_equal(dsm_engine_copyset(n0->e, 0), (1u << 1) | (1u << 2));

	/* the EVICT, queued behind nothing now, is a clean one */
	clear(n0);
	assert_int_equal(dsm_engine_receive(n0->e, &evict.msg), 0);
	sent(n0, 0, DSM_MSG_EVICT_ACK, 1);
	assert_int_equal(dsm_engine_copyset(n0->e, 0), 1u << 2);
	deliver(n0, 0);
	assert_false(dsm_engine_pending(n1->e, 0));
	no_protocol_errors();
}

static void test_evict_forwarded_after_a_home_move(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	take(2, 0, false);
	clear(n0);
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 1), 0);
	sent(n0, 0, DSM_MSG_OFFER, 1);
	deliver(n0, 0);
	const struct dsm_msg *ok = sent(n1, 0, DSM_MSG_OFFER_REPLY, 0);
	assert_false(ok->flags & DSM_MSG_F_ERROR);
	assert_int_equal(dsm_engine_frames_used(n1->e), 4); /* reserved */
	assert_int_equal(dsm_engine_home_frames(n1->e), 4);
	deliver(n1, 0);
	sent(n0, 0, DSM_MSG_FLUSH, 2); /* n2's grant first */
	deliver(n0, 0);
	deliver(n2, 0);
	int mig = find_sent(n0, DSM_MSG_MIGRATE);
	deliver(n0, mig);
	assert_true(dsm_engine_is_home(n1->e, 0));
	assert_int_equal(dsm_engine_frames_used(n1->e), 4);
	assert_int_equal(dsm_engine_frames_used(n0->e), 2);
	assert_int_equal(dsm_engine_home_frames(n0->e), 2);

	/* n2 still points at node 0 */
	clear(n2);
	assert_int_equal(dsm_engine_evict(n2->e, 0), 0);
	sent(n2, 1, DSM_MSG_EVICT, 0);
	deliver(n2, 1);
	const struct dsm_msg *fwd = sent(n0, 0, DSM_MSG_EVICT, 1);
	assert_int_equal(fwd->requester, 2);
	assert_int_equal(fwd->hops, 1);
	deliver(n0, 0);
	sent(n1, find_sent(n1, DSM_MSG_EVICT_ACK), DSM_MSG_EVICT_ACK, 2);
	assert_int_equal(dsm_engine_dir_state(n1->e, 0), DSM_DIR_HOME_EXCL);
	deliver(n1, find_sent(n1, DSM_MSG_EVICT_ACK));
	assert_int_equal(dsm_engine_home_hint(n2->e, 0), 1);
	assert_false(dsm_engine_pending(n2->e, 0));
	no_protocol_errors();
}

static void test_offer_refused_without_room(void **state)
{
	(void)state;
	setup_budgets(5, 4, 4); /* node 1: 3 home pages + 1; node 2: 2 + 2 */
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	/* node 1 holds as many home pages as it may */
	clear(n0);
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 1), 0);
	assert_true(dsm_engine_dir_busy(n0->e, 0));
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 2), -EBUSY);
	deliver(n0, 0);
	const struct dsm_msg *no = sent(n1, 0, DSM_MSG_OFFER_REPLY, 0);
	assert_true(no->flags & DSM_MSG_F_ERROR);
	assert_int_equal(no->error, -EMLINK);
	const struct dsm_action *nr = act(n1, 1, DSM_ACT_NEED_ROOM);
	assert_int_equal(nr->error, -EMLINK);
	assert_int_equal(nr->msg.src, 0); /* hand a home page to node 0 instead */
	assert_int_equal(dsm_engine_counters(n1->e)->offers_declined, 1);

	deliver(n1, 0);
	const struct dsm_action *r = act(n0, 0, DSM_ACT_MOVE_REFUSED);
	assert_int_equal(r->error, -EMLINK);
	assert_int_equal(r->msg.dst, 1);
	assert_true(dsm_engine_is_home(n0->e, 0));
	assert_false(dsm_engine_dir_busy(n0->e, 0));
	assert_int_equal(dsm_engine_counters(n0->e)->offers_refused, 1);

	/* node 2 has no free frame: it refuses and asks its runtime to evict */
	take(2, 1, false);
	take(2, 4, false);
	assert_int_equal(dsm_engine_frames_used(n2->e), 4);
	clear(n0);
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 2), 0);
	deliver(n0, 0);
	no = sent(n2, 0, DSM_MSG_OFFER_REPLY, 0);
	assert_int_equal(no->error, -ENOSPC);
	assert_int_equal(act(n2, 1, DSM_ACT_NEED_ROOM)->error, -ENOSPC);
	deliver(n2, 0);
	act(n0, 0, DSM_ACT_MOVE_REFUSED);

	/* once it made room, the next offer is taken */
	assert_int_equal(dsm_engine_evict(n2->e, 1), 0);
	assert_int_equal(dsm_engine_frames_used(n2->e), 3);
	clear(n0);
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 2), 0);
	deliver(n0, 0);
	no = sent(n2, 0, DSM_MSG_OFFER_REPLY, 0);
	assert_false(no->flags & DSM_MSG_F_ERROR);
	assert_int_equal(dsm_engine_frames_used(n2->e), 4);
	deliver(n2, 0);
	deliver(n0, find_sent(n0, DSM_MSG_MIGRATE));
	assert_true(dsm_engine_is_home(n2->e, 0));
	assert_int_equal(dsm_engine_home_frames(n2->e), 3);
	assert_int_equal(dsm_engine_frames_used(n2->e), 4);
	no_protocol_errors();
}

static void test_offer_during_own_eviction_is_refused(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);
	struct node *n0 = &nodes[0], *n1 = &nodes[1];

	take(1, 0, false);
	clear(n1);
	assert_int_equal(dsm_engine_evict(n1->e, 0), 0);
	clear(n0);
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 1), 0);
	deliver(n0, 0);
	const struct dsm_msg *no = sent(n1, 0, DSM_MSG_OFFER_REPLY, 0);
	assert_int_equal(no->error, -EBUSY);
	assert_false(emitted(n1, DSM_ACT_NEED_ROOM));
	deliver(n1, 0);
	act(n0, 0, DSM_ACT_MOVE_REFUSED);
	no_protocol_errors();
}

static void test_accepted_home_cannot_be_evicted_and_lost_offerer_frees_it(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);
	struct node *n0 = &nodes[0], *n1 = &nodes[1];

	take(1, 0, false);
	clear(n0);
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 1), 0);
	deliver(n0, 0);
	assert_int_equal(dsm_engine_evict(n1->e, 0), -EBUSY);
	assert_false(dsm_engine_evictable(n1->e, 0));
	assert_int_equal(dsm_engine_home_frames(n1->e), 4);
	/* node 0 dies before its MIGRATE: the reservation goes */
	dsm_engine_peer_failed(n1->e, 0);
	assert_int_equal(dsm_engine_home_frames(n1->e), 3);
	assert_int_equal(dsm_engine_frames_used(n1->e), 4); /* its copy */

	/* and a home whose target dies tells the policy */
	teardown(NULL);
	setup_budgets(5, 5, 5);
	n0 = &nodes[0];
	clear(n0);
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 2), 0);
	clear(n0);
	dsm_engine_peer_failed(n0->e, 2);
	assert_int_equal(act(n0, 0, DSM_ACT_MOVE_REFUSED)->error, -EHOSTDOWN);
	assert_false(dsm_engine_dir_busy(n0->e, 0));
}

static void test_replicated_hint_travels_with_shared_grants(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);

	dsm_engine_set_replicated(nodes[0].e, 0, true);
	dsm_engine_set_replicated(nodes[1].e, 0, true); /* not its home: ignored */
	assert_true(dsm_engine_replicated(nodes[0].e, 0));
	take(1, 0, false);
	assert_true(dsm_engine_replicated(nodes[1].e, 0));
	dsm_engine_set_replicated(nodes[0].e, 3, true);
	take(2, 3, true);
	assert_false(dsm_engine_replicated(nodes[2].e, 3)); /* exclusive: no hint */
	take(2, 6, false);
	assert_false(dsm_engine_replicated(nodes[2].e, 6)); /* not marked */
}

/* A peer that sends what no correct peer would (found by fuzz_dsm_engine:
 * MIGRATEs that nobody offered, which used to be adopted and ran the node
 * over its budget): the engine refuses it, says -EPROTO so the runtime
 * fails the peer, and the node's frames stay within its budget. */
static void test_unoffered_migrate_is_refused(void **state)
{
	(void)state;
	setup_budgets(5, 5, 5);
	struct dsm_engine *e = nodes[1].e; /* homes 1, 4, 7 */
	struct dsm_msg m = {
		.kind = DSM_MSG_MIGRATE, .page = 0, .src = 2, .dst = 1,
		.dir_state = DSM_DIR_HOME_EXCL, .flags = DSM_MSG_F_DATA,
	};

	clear(&nodes[1]);
	assert_int_equal(dsm_engine_receive(e, &m), -EPROTO);
	assert_false(dsm_engine_is_home(e, 0));
	assert_int_equal(nodes[1].n_acts, 0);
	m.page = 3;
	assert_int_equal(dsm_engine_receive(e, &m), -EPROTO);
	assert_int_equal(dsm_engine_frames_used(e), 3);
	assert_int_equal(dsm_engine_counters(e)->protocol_errors, 2);
	/* a message a correct peer could send still goes through */
	m = (struct dsm_msg){ .kind = DSM_MSG_READ_REQ, .page = 1, .src = 0, .dst = 1,
			      .requester = 0, .req_id = 1 };
	assert_int_equal(dsm_engine_receive(e, &m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_set_budget_checks, teardown),
		cmocka_unit_test_teardown(test_clean_eviction, teardown),
		cmocka_unit_test_teardown(test_dirty_eviction_is_pulled_back, teardown),
		cmocka_unit_test_teardown(test_request_waits_for_a_frame, teardown),
		cmocka_unit_test_teardown(test_inv_races_a_clean_eviction, teardown),
		cmocka_unit_test_teardown(test_fetch_races_a_dirty_eviction, teardown),
		cmocka_unit_test_teardown(test_evict_forwarded_after_a_home_move, teardown),
		cmocka_unit_test_teardown(test_offer_refused_without_room, teardown),
		cmocka_unit_test_teardown(test_offer_during_own_eviction_is_refused, teardown),
		cmocka_unit_test_teardown(test_accepted_home_cannot_be_evicted_and_lost_offerer_frees_it,
					  teardown),
		cmocka_unit_test_teardown(test_replicated_hint_travels_with_shared_grants, teardown),
		cmocka_unit_test_teardown(test_unoffered_migrate_is_refused, teardown),
	};
	return cmocka_run_group_tests_name("dsm_protocol_budget", tests, NULL, NULL);
}
