// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The requests that involve other nodes, served by whichever daemon the
 * disco command reached: `vm start`, `vm stop`, `status`. This daemon asks
 * the others over their control ports, as node NAME with the cluster key
 * (node-monitor/control/), one short connection per question, every node
 * at once (a thread per node, joined before the answer), so a node that
 * is down costs one connect timeout, not one per node.
 *
 * vm start: every node of the VM must answer a ping first (a VM is never
 * started on some nodes while another is known to be down); then each
 * node's daemon starts its QEMU (the master last); then, unless no_wait,
 * the VM's nodes are asked for their state until every one runs (its QEMU
 * has joined the others) or one has ended, whose reason is the answer. A
 * node that cannot start stops the ones that did.
 * vm stop: every node first marks the stop as wanted (so an end caused by
 * another node's stop is not a failure), then gets the stop itself.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discod.h"
#include "rpc/log.h"

#define POLL_MS 300

int discod_call_peer(struct discod *d, int node, const Disco__ControlRequest *rq,
		     Disco__ControlReply **reply, int timeout_ms, char *err, size_t errlen)
{
	struct control_conn c;
	int r;

	*reply = NULL;
	r = control_connect_tcp(d->cfg, node, d->opt.node, DISCOD_CONNECT_TIMEOUT_MS, &c, err, errlen);
	if (r < 0)
		return r;
	r = control_call(&c, rq, reply, timeout_ms, err, errlen);
	control_conn_close(&c);
	return r;
}

/* One node's answer in a fan-out. */
struct ask {
	struct discod *d;
	int node;
	const Disco__ControlRequest *rq;
	Disco__ControlReply *reply;  /* peers */
	Disco__NodeReport *local;    /* this node, NODE_STATUS */
	int result;                  /* transport result, then reply->error */
	char err[512];
	pthread_t t;
};

static void ask_local(struct ask *a)
{
	struct discod *d = a->d;
	const Disco__ControlRequest *rq = a->rq;
	int vm = cluster_config_find_vm(d->cfg, rq->vm);

	switch (rq->op) {
	case DISCO__CONTROL_REQUEST__OP__PING:
		a->result = 0;
		break;
	case DISCO__CONTROL_REQUEST__OP__NODE_STATUS:
		a->local = discod_node_report(d);
		a->result = a->local ? 0 : -ENOMEM;
		break;
	case DISCO__CONTROL_REQUEST__OP__NODE_START:
		a->result = discod_vm_start(d, vm, rq->append, rq->accel, a->err, sizeof(a->err));
		break;
	case DISCO__CONTROL_REQUEST__OP__NODE_STOP:
		a->result = discod_vm_stop(d, vm, rq->force, rq->expect_only, a->err, sizeof(a->err));
		break;
	default:
		a->result = -EOPNOTSUPP;
		break;
	}
}

static void *ask_thread(void *p)
{
	struct ask *a = p;

	disco_log_set_thread_node(a->d->opt.node);
	if (a->node == a->d->self) {
		ask_local(a);
		return NULL;
	}
	a->result = discod_call_peer(a->d, a->node, a->rq, &a->reply, DISCOD_IO_TIMEOUT_MS, a->err,
				     sizeof(a->err));
	if (a->result == 0 && a->reply->error) {
		a->result = a->reply->error;
		snprintf(a->err, sizeof(a->err), "%s", a->reply->message);
	}
	return NULL;
}

/* Ask every node of @mask @rq at once; asks[] is indexed by node. */
static void fan_out(struct discod *d, uint64_t mask, const Disco__ControlRequest *rq, struct ask *asks)
{
	for (int n = 0; n < d->cfg->n_nodes; n++) {
		asks[n] = (struct ask){.d = d, .node = n, .rq = rq, .result = -ENODATA};
		if (!(mask & (1ull << n)))
			continue;
		if (pthread_create(&asks[n].t, NULL, ask_thread, &asks[n]) != 0) {
			asks[n].result = -EAGAIN;
			snprintf(asks[n].err, sizeof(asks[n].err), "cannot start a thread");
			mask &= ~(1ull << n);
		}
	}
	for (int n = 0; n < d->cfg->n_nodes; n++)
		if (mask & (1ull << n))
			pthread_join(asks[n].t, NULL);
}

static void free_asks(struct discod *d, struct ask *asks)
{
	for (int n = 0; n < d->cfg->n_nodes; n++) {
		if (asks[n].reply)
			disco__control_reply__free_unpacked(asks[n].reply, NULL);
		discod_free_node_report(asks[n].local);
		asks[n].reply = NULL;
		asks[n].local = NULL;
	}
}

/* ---- status ------------------------------------------------------------ */

static Disco__VmConfig *vm_config(const struct cluster_config *cfg, int v)
{
	const struct cluster_vm *vm = &cfg->vms[v];
	Disco__VmConfig *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	disco__vm_config__init(c);
	c->name = strdup(vm->name);
	c->vcpus = (uint32_t)vm->vcpus;
	c->memory_bytes = vm->memory_bytes;
	c->master = strdup(cfg->nodes[vm->master_node].name);
	c->nodes = calloc((size_t)cfg->n_nodes, sizeof(*c->nodes));
	for (int n = 0; c->nodes && n < cfg->n_nodes; n++) {
		Disco__NodeShare *s;

		if (!(vm->node_mask & (1ull << n)) || !(s = calloc(1, sizeof(*s))))
			continue;
		disco__node_share__init(s);
		s->node = strdup(cfg->nodes[n].name);
		s->vcpus = (uint32_t)vm->vcpus_per_node[n];
		s->port = cluster_vm_node_port(cfg, vm, n);
		c->nodes[c->n_nodes++] = s;
	}
	return c;
}

int discod_cluster_status(struct discod *d, Disco__ControlReply *rep)
{
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	struct ask *asks = calloc((size_t)d->cfg->n_nodes, sizeof(*asks));

	if (!asks)
		return -ENOMEM;
	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__NODE_STATUS;
	fan_out(d, d->cfg->n_nodes == 64 ? ~0ull : (1ull << d->cfg->n_nodes) - 1, &rq, asks);
	rep->cluster_name = strdup(d->cfg->name);
	rep->nodes = calloc((size_t)d->cfg->n_nodes, sizeof(*rep->nodes));
	rep->vms = calloc((size_t)d->cfg->n_vms + 1, sizeof(*rep->vms));
	for (int n = 0; rep->nodes && n < d->cfg->n_nodes; n++) {
		Disco__NodeReport *r = NULL;

		if (asks[n].local) {
			r = asks[n].local;
			asks[n].local = NULL;
		} else if (asks[n].result == 0 && asks[n].reply && asks[n].reply->n_nodes == 1) {
			/* take the peer's report out of its reply */
			r = asks[n].reply->nodes[0];
			asks[n].reply->nodes[0] = NULL;
			asks[n].reply->n_nodes = 0;
		} else if ((r = calloc(1, sizeof(*r)))) {
			char addr[320];

			disco__node_report__init(r);
			snprintf(addr, sizeof(addr), "%s:%d", d->cfg->nodes[n].address,
				 d->cfg->nodes[n].control_port);
			r->node = strdup(d->cfg->nodes[n].name);
			r->address = strdup(addr);
			r->up = false;
			r->error = strdup(asks[n].err[0] ? asks[n].err : strerror(-asks[n].result));
		}
		if (r)
			rep->nodes[rep->n_nodes++] = r;
	}
	for (int v = 0; rep->vms && v < d->cfg->n_vms; v++) {
		Disco__VmConfig *c = vm_config(d->cfg, v);

		if (c)
			rep->vms[rep->n_vms++] = c;
	}
	free_asks(d, asks);
	free(asks);
	return 0;
}

void discod_free_cluster_reply(Disco__ControlReply *r)
{
	for (size_t i = 0; i < r->n_nodes; i++)
		discod_free_node_report(r->nodes[i]);
	free(r->nodes);
	for (size_t i = 0; i < r->n_vms; i++)
		protobuf_c_message_free_unpacked(&r->vms[i]->base, NULL);
	free(r->vms);
	free(r->cluster_name);
}

/* ---- vm start / stop ----------------------------------------------------- */

static int nodes_of(const struct discod *d, int vm, int *order)
{
	const struct cluster_vm *v = &d->cfg->vms[vm];
	int k = 0;

	for (int n = 0; n < d->cfg->n_nodes; n++)
		if ((v->node_mask & (1ull << n)) && n != v->master_node)
			order[k++] = n;
	order[k++] = v->master_node; /* last: the others are already listening */
	return k;
}

/* One node's state of @vm in a NODE_STATUS answer ("-" when absent). */
static const Disco__VmReport *vm_in(const struct ask *a, const char *vm)
{
	const Disco__NodeReport *r = a->local ? a->local
				     : a->reply && a->reply->n_nodes ? a->reply->nodes[0]
								     : NULL;

	for (size_t i = 0; r && i < r->n_vms; i++)
		if (!strcmp(r->vms[i]->vm, vm))
			return r->vms[i];
	return NULL;
}

static void stop_started(struct discod *d, int vm, uint64_t started)
{
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	struct ask *asks = calloc((size_t)d->cfg->n_nodes, sizeof(*asks));

	if (!asks || !started)
		goto out;
	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__NODE_STOP;
	rq.vm = d->cfg->vms[vm].name;
	rq.expect_only = true;
	fan_out(d, started, &rq, asks);
	free_asks(d, asks);
	rq.expect_only = false;
	fan_out(d, started, &rq, asks);
	free_asks(d, asks);
out:
	free(asks);
}

/* Wait until every node of @vm runs it; 0, or an error naming the node. */
static int wait_running(struct discod *d, int vm, uint64_t mask, char *err, size_t errlen)
{
	const char *name = d->cfg->vms[vm].name;
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	struct ask *asks = calloc((size_t)d->cfg->n_nodes, sizeof(*asks));
	int64_t deadline = discod_now_ms() + d->cfg->connect_timeout_ms + 15000;
	int r = -ETIMEDOUT;

	if (!asks)
		return -ENOMEM;
	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__NODE_STATUS;
	while (discod_now_ms() < deadline) {
		bool all = true;

		fan_out(d, mask, &rq, asks);
		for (int n = 0; n < d->cfg->n_nodes; n++) {
			if (!(mask & (1ull << n)))
				continue;
			if (asks[n].result < 0) {
				snprintf(err, errlen, "vm %s: lost touch with node %s while it started: %s",
					 name, d->cfg->nodes[n].name, asks[n].err);
				r = -EHOSTUNREACH;
				goto out;
			}
			const Disco__VmReport *v = vm_in(&asks[n], name);
			if (!v || !strcmp(v->state, "failed") || !strcmp(v->state, "stopped")) {
				snprintf(err, errlen, "vm %s did not start on node %s: %s", name,
					 d->cfg->nodes[n].name, v ? v->reason : "its daemon does not run it");
				r = -ECHILD;
				goto out;
			}
			all &= !strcmp(v->state, "running");
		}
		free_asks(d, asks);
		if (all) {
			r = 0;
			goto out;
		}
		usleep(POLL_MS * 1000);
	}
	snprintf(err, errlen, "vm %s did not join within %u ms (cluster.connect_timeout_ms + 15 s)",
		 name, d->cfg->connect_timeout_ms);
out:
	free_asks(d, asks);
	free(asks);
	return r;
}

int discod_cluster_vm_start(struct discod *d, const Disco__ControlRequest *in, char *err,
			    size_t errlen)
{
	int vm = cluster_config_find_vm(d->cfg, in->vm), order[CLUSTER_MAX_NODES], k, r = 0;
	uint64_t mask = d->cfg->vms[vm].node_mask, started = 0;
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	struct ask *asks = calloc((size_t)d->cfg->n_nodes, sizeof(*asks));

	if (!asks)
		return -ENOMEM;
	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__PING;
	fan_out(d, mask, &rq, asks);
	for (int n = 0; n < d->cfg->n_nodes; n++) {
		if ((mask & (1ull << n)) && asks[n].result < 0) {
			snprintf(err, errlen, "vm %s not started: %s", in->vm, asks[n].err);
			r = -EHOSTUNREACH;
			goto out;
		}
	}
	free_asks(d, asks);
	rq.op = DISCO__CONTROL_REQUEST__OP__NODE_START;
	rq.vm = in->vm;
	rq.append = in->append;
	rq.accel = in->accel;
	k = nodes_of(d, vm, order);
	for (int i = 0; i < k; i++) {
		int n = order[i];
		struct ask *a = &asks[n];

		*a = (struct ask){.d = d, .node = n, .rq = &rq};
		ask_thread(a);
		if (a->result < 0) {
			snprintf(err, errlen, "vm %s not started on node %s: %s%s", in->vm,
				 d->cfg->nodes[n].name, a->err,
				 started ? " (stopping it on the nodes where it started)" : "");
			r = a->result;
			stop_started(d, vm, started);
			goto out;
		}
		started |= 1ull << n;
		free_asks(d, asks);
	}
	if (!in->no_wait && (r = wait_running(d, vm, mask, err, errlen)) < 0)
		stop_started(d, vm, started);
out:
	free_asks(d, asks);
	free(asks);
	return r;
}

/* Wait (at most the stop grace and 5 s) until no node of @mask runs @vm. */
static void wait_stopped(struct discod *d, int vm, uint64_t mask)
{
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	struct ask *asks = calloc((size_t)d->cfg->n_nodes, sizeof(*asks));
	int64_t deadline = discod_now_ms() + d->opt.stop_grace_s * 1000 + 5000;

	if (!asks)
		return;
	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__NODE_STATUS;
	while (mask && discod_now_ms() < deadline) {
		usleep(POLL_MS * 1000);
		fan_out(d, mask, &rq, asks);
		for (int n = 0; n < d->cfg->n_nodes; n++) {
			const Disco__VmReport *v = (mask & (1ull << n)) ? vm_in(&asks[n], d->cfg->vms[vm].name)
								       : NULL;

			if ((mask & (1ull << n)) &&
			    (asks[n].result < 0 || !v || !strcmp(v->state, "stopped") ||
			     !strcmp(v->state, "failed")))
				mask &= ~(1ull << n);
		}
		free_asks(d, asks);
	}
	free(asks);
}

int discod_cluster_vm_stop(struct discod *d, const Disco__ControlRequest *in, char *err,
			   size_t errlen)
{
	int vm = cluster_config_find_vm(d->cfg, in->vm), r = 0, running = 0;
	uint64_t mask = d->cfg->vms[vm].node_mask, reached = 0;
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	struct ask *asks = calloc((size_t)d->cfg->n_nodes, sizeof(*asks));
	size_t o = 0;

	if (!asks)
		return -ENOMEM;
	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__NODE_STOP;
	rq.vm = in->vm;
	rq.force = in->force;
	rq.expect_only = true;
	fan_out(d, mask, &rq, asks);
	err[0] = '\0';
	for (int n = 0; n < d->cfg->n_nodes; n++) {
		if (!(mask & (1ull << n)))
			continue;
		if (asks[n].result == 0) {
			reached |= 1ull << n;
			running++;
		} else if (asks[n].result != -ESRCH && o < errlen) {
			o += (size_t)snprintf(err + o, errlen - o, "%s%s", o ? "; " : "", asks[n].err);
			r = -EHOSTUNREACH;
		}
	}
	free_asks(d, asks);
	if (!running && !r) {
		snprintf(err, errlen, "vm %s does not run on any of its nodes", in->vm);
		r = -ESRCH;
		goto out;
	}
	rq.expect_only = false;
	fan_out(d, reached, &rq, asks);
	free_asks(d, asks);
	wait_stopped(d, vm, reached);
	if (r < 0 && o < errlen)
		snprintf(err + o, errlen - o,
			 " (stopped where it ran: a node it could not reach stops when the others "
			 "leave)");
out:
	free(asks);
	return r;
}
