// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sampler thread (discod.h): once a second it reads every live QEMU's
 * counters through QMP (discod_qmp.c) and keeps the last two samples per
 * VM, from which `disco status`, `disco stats` and /metrics take values
 * and rates; the first answer of a starting QEMU marks it running (it has
 * joined the VM's other nodes). Every DISCOD_PROBE_S seconds it pings the
 * other nodes' daemons (control port, cluster key), which gives the
 * daemon-level peer state in the status and the metrics.
 *
 * It holds `mu` only to copy what it needs out of the table and to store
 * a sample; the QMP and ping round trips run without it. A sample of a
 * VM that was restarted meanwhile (another generation) is dropped.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discod.h"
#include "rpc/log.h"

const struct counter *discod_counter(const struct sample *s, const char *key)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->c[i].key, key))
			return &s->c[i];
	return NULL;
}

double discod_rate(const struct lvm *v, const char *key)
{
	const struct counter *a = discod_counter(&v->prev, key), *b = discod_counter(&v->cur, key);
	double dt = v->cur.t - v->prev.t;

	if (!a || !b || dt <= 0)
		return NAN;
	return (b->value - a->value) / dt;
}

/* "key=value" lines into @s; lines that are no plain number are skipped
 * (the "fault_latency_p50_us<=N" summaries). */
static void parse_counters(const char *text, struct sample *s)
{
	const char *p = text;

	s->n = 0;
	while (*p && s->n < DISCOD_MAX_COUNTERS) {
		const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
		size_t line = nl ? (size_t)(nl - p) : strlen(p);

		if (eq && eq < p + line && (size_t)(eq - p) < sizeof(s->c[0].key) && eq > p &&
		    eq[-1] != '<') {
			char *end;
			double v = strtod(eq + 1, &end);

			if (end != eq + 1 && (end == p + line || *end == '\n')) {
				memcpy(s->c[s->n].key, p, (size_t)(eq - p));
				s->c[s->n].key[eq - p] = '\0';
				s->c[s->n].value = v;
				s->n++;
			}
		}
		p += line + (nl ? 1 : 0);
	}
}

static void sample_vms(struct discod *d)
{
	for (int i = 0; i < d->cfg->n_vms; i++) {
		char qmp[PATH_MAX + 16], err[256];
		uint64_t gen;
		char *text = NULL;
		struct sample *s;
		int r;

		pthread_mutex_lock(&d->mu);
		struct lvm *v = &d->vms[i];
		bool live = (v->state == LVM_STARTING || v->state == LVM_RUNNING ||
			     v->state == LVM_STOPPING) && v->pid > 0;
		gen = v->generation;
		snprintf(qmp, sizeof(qmp), "%s/qmp.sock", v->dir);
		pthread_mutex_unlock(&d->mu);
		if (!live)
			continue;
		r = discod_qmp_counters(qmp, &text, err, sizeof(err));
		if (r < 0)
			continue; /* not joined yet, or ending: the next second tells */
		s = malloc(sizeof(*s));
		if (s) {
			parse_counters(text, s);
			s->t = (double)discod_now_ms() / 1000.0;
		}
		free(text);
		if (!s)
			continue;
		pthread_mutex_lock(&d->mu);
		if (v->generation == gen && v->pid > 0) {
			v->prev = v->cur;
			v->cur = *s;
			if (v->state == LVM_STARTING) {
				v->state = LVM_RUNNING;
				disco_log(DISCO_LOG_INFO, "discod: vm %s runs on node %s (joined its nodes)",
					  d->cfg->vms[i].name, d->opt.node);
			}
		}
		pthread_mutex_unlock(&d->mu);
		free(s);
	}
}

static void probe_peers(struct discod *d)
{
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;

	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__PING;
	for (int n = 0; n < d->cfg->n_nodes && !d->stopping; n++) {
		Disco__ControlReply *rep = NULL;
		char err[160] = "";
		int r;

		if (n == d->self)
			continue;
		r = discod_call_peer(d, n, &rq, &rep, 1000, err, sizeof(err));
		if (rep)
			disco__control_reply__free_unpacked(rep, NULL);
		pthread_mutex_lock(&d->mu);
		if (d->peer_probed[n] && d->peer_up[n] != (r == 0))
			disco_log(r == 0 ? DISCO_LOG_INFO : DISCO_LOG_WARN, "discod: peer %s %s%s%s",
				  d->cfg->nodes[n].name, r == 0 ? "is up" : "is down", r ? ": " : "",
				  r ? err : "");
		d->peer_probed[n] = true;
		d->peer_up[n] = r == 0;
		snprintf(d->peer_err[n], sizeof(d->peer_err[n]), "%s", r == 0 ? "" : err);
		pthread_mutex_unlock(&d->mu);
	}
}

/* The sampler thread (discod.h): created at start, runs until exit. */
static void *sampler(void *p)
{
	struct discod *d = p;
	int64_t next_probe = 0;

	disco_log_set_thread_node(d->opt.node);
	while (!d->stopping) {
		int64_t t0 = discod_now_ms();

		sample_vms(d);
		discod_serve_log_flush();
		if (t0 >= next_probe) {
			probe_peers(d);
			next_probe = t0 + DISCOD_PROBE_S * 1000;
		}
		int64_t spent = discod_now_ms() - t0;
		if (spent < 1000)
			usleep((useconds_t)(1000 - spent) * 1000);
	}
	return NULL;
}

int discod_sampler_start(struct discod *d)
{
	pthread_t t;
	pthread_attr_t a;
	int r;

	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &a, sampler, d);
	pthread_attr_destroy(&a);
	return -r;
}
