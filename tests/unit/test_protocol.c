// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the DSM protocol engine (dsm/protocol.c): hand-driven
 * scenarios that check the exact actions and states of each path in
 * docs/protocol.md. The random simulator (tests/sim/) covers interleavings;
 * these pin down what each step must emit.
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

static void test_home_first_touch_maps_zero_page(void **state)
{
	(void)state;
	setup_cluster(2, 0);
	dsm_engine_local_fault(nodes[0].e, 0, true);
	assert_int_equal(nodes[0].n_acts, 2);
	assert_int_equal(act(&nodes[0], 0, DSM_ACT_MAP_LOCAL)->prot, DSM_PROT_WRITE);
	assert_int_equal(act(&nodes[0], 1, DSM_ACT_WAKE)->error, 0);
	assert_int_equal(dsm_engine_counters(nodes[0].e)->spurious_faults, 1);
}

static void test_remote_read_then_upgrade_without_data(void **state)
{
	(void)state;
	setup_cluster(2, 0);
	struct node *n0 = &nodes[0], *n1 = &nodes[1];

	dsm_engine_local_fault(n1->e, 0, false);
	assert_int_equal(n1->n_acts, 1);
	sent(n1, 0, DSM_MSG_READ_REQ, 0);
	assert_true(dsm_engine_pending(n1->e, 0));

	deliver(n1, 0);
	/* The home stops its own writers, then ships its copy. */
	assert_int_equal(n0->n_acts, 2);
	assert_int_equal(act(n0, 0, DSM_ACT_PROTECT)->prot, DSM_PROT_READ);
	const struct dsm_msg *g = sent(n0, 1, DSM_MSG_GRANT, 1);
	assert_int_equal(n0->acts[1].data, DSM_DATA_LOCAL);
	assert_true(g->flags & DSM_MSG_F_DATA);
	assert_false(g->flags & DSM_MSG_F_EXCL);
	assert_int_equal(dsm_engine_local_state(n0->e, 0), DSM_LOCAL_SHARED);
	assert_int_equal(dsm_engine_dir_state(n0->e, 0), DSM_DIR_SHARED);
	assert_int_equal(dsm_engine_copyset(n0->e, 0), 1u << 1);

	deliver(n0, 1);
	assert_int_equal(act(n1, 0, DSM_ACT_INSTALL)->prot, DSM_PROT_READ);
	assert_int_equal(n1->acts[0].data, DSM_DATA_INCOMING);
	act(n1, 1, DSM_ACT_WAKE);
	assert_int_equal(dsm_engine_local_state(n1->e, 0), DSM_LOCAL_SHARED);
	assert_false(dsm_engine_pending(n1->e, 0));

	/* Upgrade: n1 is in the copyset, so the grant carries no data. */
	clear(n1);
	dsm_engine_local_fault(n1->e, 0, true);
	sent(n1, 0, DSM_MSG_WRITE_REQ, 0);
	deliver(n1, 0);
	g = sent(n0, 0, DSM_MSG_GRANT, 1);
	assert_true(g->flags & DSM_MSG_F_EXCL);
	assert_false(g->flags & DSM_MSG_F_DATA);
	act(n0, 1, DSM_ACT_DROP);
	assert_int_equal(dsm_engine_dir_state(n0->e, 0), DSM_DIR_REMOTE_EXCL);
	assert_int_equal(dsm_engine_owner(n0->e, 0), 1);
	deliver(n0, 0);
	assert_int_equal(act(n1, 0, DSM_ACT_PROTECT)->prot, DSM_PROT_WRITE);
	act(n1, 1, DSM_ACT_WAKE);
	assert_int_equal(dsm_engine_local_state(n1->e, 0), DSM_LOCAL_MODIFIED);
}

static void test_write_invalidates_every_other_sharer(void **state)
{
	(void)state;
	setup_cluster(4, 0);
	struct node *n0 = &nodes[0];

	for (int i = 1; i <= 3; i++) { /* nodes 1..3 take shared copies */
		clear(&nodes[i]);
		dsm_engine_local_fault(nodes[i].e, 0, false);
		deliver(&nodes[i], 0);
		deliver(n0, n0->n_acts - 1);
	}
	assert_int_equal(dsm_engine_copyset(n0->e, 0), 0xe);

	clear(&nodes[1]);
	dsm_engine_local_fault(nodes[1].e, 0, true);
	deliver(&nodes[1], 0);
	assert_int_equal(n0->n_acts, 2);
	sent(n0, 0, DSM_MSG_INV, 2);
	sent(n0, 1, DSM_MSG_INV, 3);
	assert_true(dsm_engine_dir_busy(n0->e, 0));
	assert_int_equal(dsm_engine_page_counters(n0->e, 0)->invalidations, 2);
	uint32_t rd[4], wr[4];
	assert_true(dsm_engine_page_node_misses(n0->e, 0, rd, wr));
	assert_int_equal(rd[1] + rd[2] + rd[3], 3);
	assert_int_equal(rd[0], 0);
	assert_int_equal(wr[1], 1);
	assert_int_equal(wr[2] + wr[3], 0);

	/* A read from node 2 meanwhile must wait in the queue. */
	struct dsm_action inv2 = n0->acts[0], inv3 = n0->acts[1];
	struct node *n2 = &nodes[2];
	clear(n2);
	assert_int_equal(dsm_engine_receive(n2->e, &inv2.msg), 0);
	act(n2, 0, DSM_ACT_DROP);
	sent(n2, 1, DSM_MSG_INV_ACK, 0);
	struct dsm_action ack2 = n2->acts[1];
	assert_int_equal(dsm_engine_local_state(n2->e, 0), DSM_LOCAL_INVALID);
	clear(n2);
	dsm_engine_local_fault(n2->e, 0, false);
	struct dsm_action req2 = n2->acts[0];

	clear(n0);
	assert_int_equal(dsm_engine_receive(n0->e, &req2.msg), 0);
	assert_int_equal(n0->n_acts, 0); /* queued behind the write */
	assert_int_equal(dsm_engine_receive(n0->e, &ack2.msg), 0);
	assert_int_equal(n0->n_acts, 0); /* one ack still missing */

	struct node *n3 = &nodes[3];
	clear(n3);
	assert_int_equal(dsm_engine_receive(n3->e, &inv3.msg), 0);
	struct dsm_action ack3 = n3->acts[1];
	assert_int_equal(dsm_engine_receive(n0->e, &ack3.msg), 0);
	/* Grant to node 1 without data, drop the home copy, then serve the
	 * queued read by fetching from the new owner. */
	const struct dsm_msg *g = sent(n0, 0, DSM_MSG_GRANT, 1);
	assert_false(g->flags & DSM_MSG_F_DATA);
	act(n0, 1, DSM_ACT_DROP);
	const struct dsm_msg *f = sent(n0, 2, DSM_MSG_FETCH, 1);
	assert_false(f->flags & DSM_MSG_F_EXCL);
}

static void test_read_fetches_from_remote_owner(void **state)
{
	(void)state;
	setup_cluster(3, 0);
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	dsm_engine_local_fault(n1->e, 0, true); /* n1 becomes the owner */
	deliver(n1, 0);
	act(n0, 0, DSM_ACT_PROTECT);
	deliver(n0, 1);
	assert_int_equal(dsm_engine_local_state(n1->e, 0), DSM_LOCAL_MODIFIED);

	clear(n2);
	dsm_engine_local_fault(n2->e, 0, false);
	deliver(n2, 0);
	sent(n0, 0, DSM_MSG_FETCH, 1);
	deliver(n0, 0);
	/* The owner write-protects before reading the bytes, keeps a copy. */
	assert_int_equal(act(n1, 0, DSM_ACT_PROTECT)->prot, DSM_PROT_READ);
	sent(n1, 1, DSM_MSG_FETCH_REPLY, 0);
	assert_int_equal(n1->acts[1].data, DSM_DATA_LOCAL);
	assert_int_equal(dsm_engine_local_state(n1->e, 0), DSM_LOCAL_SHARED);

	deliver(n1, 1);
	assert_int_equal(act(n0, 0, DSM_ACT_INSTALL)->prot, DSM_PROT_READ);
	sent(n0, 1, DSM_MSG_GRANT, 2);
	assert_int_equal(dsm_engine_copyset(n0->e, 0), (1u << 1) | (1u << 2));
	assert_int_equal(dsm_engine_local_state(n0->e, 0), DSM_LOCAL_SHARED);
}

static void test_write_fault_during_pending_read_follows_up(void **state)
{
	(void)state;
	setup_cluster(2, 0);
	struct node *n0 = &nodes[0], *n1 = &nodes[1];

	dsm_engine_local_fault(n1->e, 0, false);
	dsm_engine_local_fault(n1->e, 0, true); /* no second request yet */
	assert_int_equal(n1->n_acts, 1);
	deliver(n1, 0);
	deliver(n0, 1);
	act(n1, 0, DSM_ACT_INSTALL);
	act(n1, 1, DSM_ACT_WAKE);
	sent(n1, 2, DSM_MSG_WRITE_REQ, 0);
	assert_true(dsm_engine_pending(n1->e, 0));
}

static void test_home_migration_flushes_then_forwards(void **state)
{
	(void)state;
	setup_cluster(3, 0);
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	dsm_engine_local_fault(n1->e, 0, false);
	deliver(n1, 0);
	deliver(n0, 1); /* n1 SHARED; the home's grant is unconfirmed */

	clear(n0);
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 2), 0);
	sent(n0, 0, DSM_MSG_FLUSH, 1);
	assert_true(dsm_engine_is_home(n0->e, 0));
	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 1), -EBUSY);

	/* A request arriving meanwhile waits, then follows the page. */
	clear(n2);
	dsm_engine_local_fault(n2->e, 0, false);
	struct dsm_action req = n2->acts[0];
	assert_int_equal(req.msg.dst, 0);
	assert_int_equal(dsm_engine_receive(n0->e, &req.msg), 0);
	assert_int_equal(n0->n_acts, 1);

	deliver(n0, 0);
	sent(n1, 0, DSM_MSG_FLUSH_ACK, 0);
	deliver(n1, 0);
	const struct dsm_msg *mig = sent(n0, 0, DSM_MSG_MIGRATE, 2);
	assert_int_equal(mig->dir_state, DSM_DIR_SHARED);
	assert_int_equal(mig->copyset, 1u << 1);
	assert_true(mig->flags & DSM_MSG_F_DATA); /* n2 had no copy */
	act(n0, 1, DSM_ACT_DROP);
	const struct dsm_msg *fwd = sent(n0, 2, DSM_MSG_READ_REQ, 2);
	assert_int_equal(fwd->requester, 2);
	assert_int_equal(fwd->hops, 1);
	assert_false(dsm_engine_is_home(n0->e, 0));
	assert_int_equal(dsm_engine_home_hint(n0->e, 0), 2);
	assert_int_equal(dsm_engine_counters(n0->e)->migrations_out, 1);

	struct dsm_action fwd_act = n0->acts[2];
	deliver(n0, 0);
	assert_true(dsm_engine_is_home(n2->e, 0));
	assert_int_equal(act(n2, 0, DSM_ACT_INSTALL)->prot, DSM_PROT_READ);
	assert_int_equal(dsm_engine_local_state(n2->e, 0), DSM_LOCAL_SHARED);
	/* Its own request comes back and completes locally. */
	clear(n2);
	assert_int_equal(dsm_engine_receive(n2->e, &fwd_act.msg), 0);
	act(n2, 0, DSM_ACT_WAKE);
	assert_false(dsm_engine_pending(n2->e, 0));

	/* n1 still asks the old home, which forwards; the grant names n2. */
	clear(n1);
	dsm_engine_local_fault(n1->e, 0, true);
	sent(n1, 0, DSM_MSG_WRITE_REQ, 0);
	deliver(n1, 0);
	sent(n0, 0, DSM_MSG_WRITE_REQ, 2);
	deliver(n0, 0);
	const struct dsm_msg *g = sent(n2, 0, DSM_MSG_GRANT, 1);
	assert_false(g->flags & DSM_MSG_F_DATA);
	deliver(n2, 0);
	assert_int_equal(dsm_engine_home_hint(n1->e, 0), 2);
	assert_int_equal(dsm_engine_local_state(n1->e, 0), DSM_LOCAL_MODIFIED);
}

static void test_lost_sharer_is_dropped(void **state)
{
	(void)state;
	setup_cluster(3, 0);
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	for (int i = 1; i <= 2; i++) {
		clear(&nodes[i]);
		dsm_engine_local_fault(nodes[i].e, 0, false);
		deliver(&nodes[i], 0);
		deliver(n0, n0->n_acts - 1);
	}
	clear(n1);
	dsm_engine_local_fault(n1->e, 0, true);
	deliver(n1, 0);
	sent(n0, 0, DSM_MSG_INV, 2);
	/* n2 dies before acking: its copy died with it, the write goes on. */
	clear(n0);
	dsm_engine_peer_failed(n0->e, 2);
	const struct dsm_msg *g = sent(n0, 0, DSM_MSG_GRANT, 1);
	assert_true(g->flags & DSM_MSG_F_EXCL);
	(void)n2;
}

static void test_lost_owner_fails_requests(void **state)
{
	(void)state;
	setup_cluster(3, 0);
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	dsm_engine_local_fault(n1->e, 0, true);
	deliver(n1, 0);
	deliver(n0, 1);
	clear(n0);
	dsm_engine_peer_failed(n0->e, 1);
	assert_int_equal(dsm_engine_dir_state(n0->e, 0), DSM_DIR_LOST);

	clear(n2);
	dsm_engine_local_fault(n2->e, 0, false);
	deliver(n2, 0);
	const struct dsm_msg *g = sent(n0, 0, DSM_MSG_GRANT, 2);
	assert_true(g->flags & DSM_MSG_F_ERROR);
	assert_int_equal(g->error, -EHOSTDOWN);
	deliver(n0, 0);
	assert_int_equal(act(n2, 0, DSM_ACT_WAKE)->error, -EHOSTDOWN);

	/* The home's own fault on a lost page fails too. */
	clear(n0);
	dsm_engine_local_fault(n0->e, 0, false);
	assert_int_equal(act(n0, 0, DSM_ACT_WAKE)->error, -EHOSTDOWN);
}

static void test_lost_hint_fails_new_requests_only(void **state)
{
	(void)state;
	setup_cluster(2, 0);
	/* A request in flight is not abandoned: it may be served yet. */
	dsm_engine_local_fault(nodes[1].e, 0, false);
	clear(&nodes[1]);
	dsm_engine_peer_failed(nodes[1].e, 0);
	assert_int_equal(nodes[1].n_acts, 0);
	assert_true(dsm_engine_pending(nodes[1].e, 0));
	/* A new request to the lost node fails at once instead of hanging. */
	clear(&nodes[1]);
	dsm_engine_local_fault(nodes[1].e, 2, true);
	assert_int_equal(act(&nodes[1], 0, DSM_ACT_WAKE)->error, -EHOSTDOWN);
}

/* Node 0 moves page 0 to node 1; node 2, still pointing at node 0, asks;
 * node 0 forwards, then dies. The live home's GRANT must still land. */
static void test_request_forwarded_by_a_node_that_dies_is_served(void **state)
{
	(void)state;
	setup_cluster(3, 0);
	struct node *n0 = &nodes[0], *n1 = &nodes[1], *n2 = &nodes[2];

	assert_int_equal(dsm_engine_migrate_home(n0->e, 0, 1), 0);
	deliver(n0, 1); /* PROTECT, MIGRATE (with data), DROP */
	dsm_engine_local_fault(n2->e, 0, true);
	sent(n2, 0, DSM_MSG_WRITE_REQ, 0);
	deliver(n2, 0);
	sent(n0, 0, DSM_MSG_WRITE_REQ, 1); /* forwarded */
	struct dsm_action fwd = n0->acts[0];

	clear(n2);
	dsm_engine_peer_failed(n2->e, 0);
	dsm_engine_peer_failed(n1->e, 0);
	assert_int_equal(n2->n_acts, 0);
	clear(n1);
	assert_int_equal(dsm_engine_receive(n1->e, &fwd.msg), 0);
	sent(n1, 1, DSM_MSG_GRANT, 2);
	deliver(n1, 1);
	act(n2, 0, DSM_ACT_INSTALL);
	assert_int_equal(act(n2, 1, DSM_ACT_WAKE)->error, 0);
	assert_int_equal(dsm_engine_local_state(n2->e, 0), DSM_LOCAL_MODIFIED);
	assert_int_equal(dsm_engine_counters(n2->e)->protocol_errors, 0);
}

static void test_malformed_messages_rejected(void **state)
{
	(void)state;
	setup_cluster(2, 0);
	struct dsm_msg m = { .kind = DSM_MSG_READ_REQ, .page = 0, .src = 1, .dst = 0, .requester = 1 };
	struct dsm_msg bad;

	bad = m, bad.page = 8;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EINVAL);
	bad = m, bad.src = 0;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EINVAL);
	bad = m, bad.src = 7;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EINVAL);
	bad = m, bad.kind = 0;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EINVAL);
	bad = m, bad.kind = DSM_MSG_KIND_MAX + 1;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EINVAL);
	bad = m, bad.flags = 0x80;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EINVAL);
	bad = m, bad.requester = 9;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EINVAL);
	bad = m, bad.copyset = 1u << 5;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EINVAL);
	bad = m, bad.hops = 1000;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -ELOOP);
	/* Well-formed but out of place: counted, no state change, no crash,
	 * and -EPROTO so that the runtime fails the sender. */
	bad = m, bad.kind = DSM_MSG_INV_ACK;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EPROTO);
	bad = m, bad.kind = DSM_MSG_GRANT, bad.requester = 0;
	assert_int_equal(dsm_engine_receive(nodes[0].e, &bad), -EPROTO);
	assert_int_equal(dsm_engine_counters(nodes[0].e)->protocol_errors, 2);
	assert_int_equal(dsm_engine_local_state(nodes[0].e, 0), DSM_LOCAL_MODIFIED);
	assert_int_equal(dsm_engine_migrate_home(nodes[0].e, 0, 0), -EINVAL);
	assert_int_equal(dsm_engine_migrate_home(nodes[1].e, 0, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_home_first_touch_maps_zero_page, teardown),
		cmocka_unit_test_teardown(test_remote_read_then_upgrade_without_data, teardown),
		cmocka_unit_test_teardown(test_write_invalidates_every_other_sharer, teardown),
		cmocka_unit_test_teardown(test_read_fetches_from_remote_owner, teardown),
		cmocka_unit_test_teardown(test_write_fault_during_pending_read_follows_up, teardown),
		cmocka_unit_test_teardown(test_home_migration_flushes_then_forwards, teardown),
		cmocka_unit_test_teardown(test_lost_sharer_is_dropped, teardown),
		cmocka_unit_test_teardown(test_lost_owner_fails_requests, teardown),
		cmocka_unit_test_teardown(test_lost_hint_fails_new_requests_only, teardown),
		cmocka_unit_test_teardown(test_request_forwarded_by_a_node_that_dies_is_served, teardown),
		cmocka_unit_test_teardown(test_malformed_messages_rejected, teardown),
	};
	return cmocka_run_group_tests_name("dsm_protocol", tests, NULL, NULL);
}
