// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A cluster of protocol engines inside one unit test: each node records
 * the actions its engine emits; a test delivers the messages it chooses, in
 * the order it chooses, and checks each action. Used by test_protocol.c
 * and test_protocol_budget.c (include after cmocka.h and dsm/protocol.h).
 */
#ifndef DISCO_TESTS_ENGINE_HARNESS_H
#define DISCO_TESTS_ENGINE_HARNESS_H

#define MAXN 4
#define MAXA 64

struct node {
	int id;
	struct dsm_engine *e;
	struct dsm_action acts[MAXA];
	int n_acts;
};

static struct node nodes[MAXN];
static int n_nodes;
static int home_of_page0;

static void emit(void *ctx, const struct dsm_action *a)
{
	struct node *n = ctx;
	assert_true(n->n_acts < MAXA);
	n->acts[n->n_acts++] = *a;
}

static int initial_home(uint64_t page, void *ctx)
{
	(void)ctx;
	return page == 0 ? home_of_page0 : (int)(page % (uint64_t)n_nodes);
}

static void setup_cluster(int n, int home0)
{
	n_nodes = n;
	home_of_page0 = home0;
	for (int i = 0; i < n; i++) {
		nodes[i].id = i;
		nodes[i].n_acts = 0;
		nodes[i].e = dsm_engine_create(i, n, 8, initial_home, NULL, emit, &nodes[i]);
		assert_non_null(nodes[i].e);
	}
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < n_nodes; i++)
		dsm_engine_destroy(nodes[i].e);
	return 0;
}

static void clear(struct node *n)
{
	n->n_acts = 0;
}

/* The @k-th action of @n, which must be of @kind. */
static const struct dsm_action *act(struct node *n, int k, enum dsm_action_kind kind)
{
	assert_true(k < n->n_acts);
	assert_int_equal(n->acts[k].kind, kind);
	return &n->acts[k];
}

static const struct dsm_msg *sent(struct node *n, int k, enum dsm_msg_kind kind, int dst)
{
	const struct dsm_action *a = act(n, k, DSM_ACT_SEND);
	assert_int_equal(a->msg.kind, kind);
	assert_int_equal(a->msg.dst, dst);
	assert_int_equal(a->msg.src, n->id);
	return &a->msg;
}

/* Deliver the message of @from's action @k to its destination. */
static struct node *deliver(struct node *from, int k)
{
	struct dsm_msg m = from->acts[k].msg;
	struct node *to = &nodes[m.dst];
	clear(to);
	assert_int_equal(dsm_engine_receive(to->e, &m), 0);
	return to;
}

#endif
