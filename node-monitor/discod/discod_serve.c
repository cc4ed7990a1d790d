// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One control connection (a connection thread, discod.h): the handshake
 * on the control port, one request, its reply.
 *
 * Who may do what: anyone who passed the handshake (holds the cluster
 * key) or could open the local socket (its file permissions) may do
 * everything; nothing is served before that, not even a status, because
 * a status names the VMs and where they run. A refused connection costs
 * one log line with its address and why, through a rate limit (rpc/log.h:
 * at most one line a second, the rest counted), since anyone who can
 * reach the control port can cause them; `refused_mu` makes the limit
 * usable from every connection thread (a leaf lock, held only to log).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discod.h"
#include "rpc/log.h"

static pthread_mutex_t refused_mu = PTHREAD_MUTEX_INITIALIZER;
static struct disco_log_limit refused_limit;

void discod_serve_log_flush(void)
{
	pthread_mutex_lock(&refused_mu);
	disco_log_limit_flush(&refused_limit);
	pthread_mutex_unlock(&refused_mu);
}

static void reply_error(struct control_conn *c, int error, const char *message)
{
	Disco__ControlReply r = DISCO__CONTROL_REPLY__INIT;

	r.error = error;
	r.message = (char *)message;
	control_send_msg(c, CONTROL_REPLY, &r.base, DISCOD_IO_TIMEOUT_MS);
}

static void reply_node(struct discod *d, struct control_conn *c)
{
	Disco__ControlReply r = DISCO__CONTROL_REPLY__INIT;
	Disco__NodeReport *me = discod_node_report(d);

	if (!me) {
		reply_error(c, -ENOMEM, "out of memory");
		return;
	}
	r.cluster_name = d->cfg->name;
	r.n_nodes = 1;
	r.nodes = &me;
	control_send_msg(c, CONTROL_REPLY, &r.base, DISCOD_IO_TIMEOUT_MS);
	discod_free_node_report(me);
}

static int find_vm(struct discod *d, const char *name, char *err, size_t errlen)
{
	int i = name && *name ? cluster_config_find_vm(d->cfg, name) : -1;

	if (i < 0) {
		size_t o = (size_t)snprintf(err, errlen, "no VM named \"%.64s\" in %s; the VMs are",
					    name ? name : "", d->cfg->path);
		for (int v = 0; v < d->cfg->n_vms && o < errlen; v++)
			o += (size_t)snprintf(err + o, errlen - o, "%s %s", v ? "," : "",
					      d->cfg->vms[v].name);
		if (!d->cfg->n_vms && o < errlen)
			snprintf(err + o, errlen - o, " none");
		return -ENOENT;
	}
	return i;
}

static void serve_request(struct discod *d, struct control_conn *c, Disco__ControlRequest *rq,
			  const char *from)
{
	char err[1024] = "";
	int vm = -1, r = 0;

	switch (rq->op) {
	case DISCO__CONTROL_REQUEST__OP__NODE_START:
	case DISCO__CONTROL_REQUEST__OP__NODE_STOP:
	case DISCO__CONTROL_REQUEST__OP__CONSOLE:
	case DISCO__CONTROL_REQUEST__OP__VM_START:
	case DISCO__CONTROL_REQUEST__OP__VM_STOP:
		vm = find_vm(d, rq->vm, err, sizeof(err));
		if (vm < 0) {
			reply_error(c, vm, err);
			return;
		}
		break;
	default:
		break;
	}
	if (rq->op != DISCO__CONTROL_REQUEST__OP__PING &&
	    rq->op != DISCO__CONTROL_REQUEST__OP__NODE_STATUS &&
	    rq->op != DISCO__CONTROL_REQUEST__OP__CLUSTER_STATUS)
		disco_log(DISCO_LOG_INFO, "discod: %s%s%s from %s", control_op_name(rq->op),
			  vm >= 0 ? " " : "", vm >= 0 ? d->cfg->vms[vm].name : "", from);
	switch (rq->op) {
	case DISCO__CONTROL_REQUEST__OP__PING:
		reply_error(c, 0, "");
		return;
	case DISCO__CONTROL_REQUEST__OP__NODE_STATUS:
		reply_node(d, c);
		return;
	case DISCO__CONTROL_REQUEST__OP__NODE_START:
		r = discod_vm_start(d, vm, rq->append, rq->accel, err, sizeof(err));
		break;
	case DISCO__CONTROL_REQUEST__OP__NODE_STOP:
		r = discod_vm_stop(d, vm, rq->force, rq->expect_only, err, sizeof(err));
		break;
	case DISCO__CONTROL_REQUEST__OP__CONSOLE:
		discod_console(d, c, vm);
		return;
	case DISCO__CONTROL_REQUEST__OP__CLUSTER_STATUS: {
		Disco__ControlReply rep = DISCO__CONTROL_REPLY__INIT;

		r = discod_cluster_status(d, &rep);
		if (r < 0) {
			reply_error(c, r, "out of memory");
			return;
		}
		control_send_msg(c, CONTROL_REPLY, &rep.base, DISCOD_IO_TIMEOUT_MS);
		discod_free_cluster_reply(&rep);
		return;
	}
	case DISCO__CONTROL_REQUEST__OP__VM_START:
		r = discod_cluster_vm_start(d, rq, err, sizeof(err));
		break;
	case DISCO__CONTROL_REQUEST__OP__VM_STOP:
		r = discod_cluster_vm_stop(d, rq, err, sizeof(err));
		break;
	default:
		r = -EOPNOTSUPP;
		snprintf(err, sizeof(err), "unknown request %d", (int)rq->op);
		break;
	}
	reply_error(c, r, r < 0 ? err : "");
}

void discod_serve(struct discod *d, int fd, bool tcp, const char *from)
{
	struct control_conn c;
	Disco__ControlRequest *rq = NULL;
	char err[512], who[160];
	char *role = NULL;
	int r;

	snprintf(who, sizeof(who), "%s", from);
	control_conn_init(&c, fd, who);
	if (tcp) {
		r = control_accept_tcp(d->cfg, d->self, &c, DISCOD_IO_TIMEOUT_MS, &role, err, sizeof(err));
		if (r < 0) {
			pthread_mutex_lock(&refused_mu);
			disco_log_limited(&refused_limit, DISCO_LOG_WARN,
					  "discod: control connection from %s refused: %s", from, err);
			pthread_mutex_unlock(&refused_mu);
			goto out;
		}
		snprintf(who, sizeof(who), "%s (%s)", role[0] ? role : "disco command", from);
	}
	r = control_read_request(&c, DISCOD_IO_TIMEOUT_MS, &rq, err, sizeof(err));
	if (r < 0) {
		if (r != -ECONNRESET)
			disco_log(DISCO_LOG_WARN, "discod: control connection from %s: %s", who, err);
		goto out;
	}
	serve_request(d, &c, rq, who);
out:
	if (rq)
		disco__control_request__free_unpacked(rq, NULL);
	free(role);
	control_conn_close(&c);
}
