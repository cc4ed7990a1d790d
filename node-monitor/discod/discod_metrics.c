// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * GET /metrics: this node's daemon and its VMs in Prometheus' text format
 * (version 0.0.4), served by libmicrohttpd on nodes[].metrics_address:
 * metrics_port. Every value comes from the sampler's last sample of each
 * QEMU's counters (discod_stats.c) and the daemon's own tables; a scrape
 * never talks to a QEMU, so it costs nothing on the fault path.
 *
 * Names and labels (each series also has node="<this node>"):
 *   disco_daemon_up, disco_daemon_uptime_seconds
 *   disco_daemon_peer_up{peer}                      other daemons (ping)
 *   disco_vm_state{vm,state}                        1 for the current state
 *   disco_vm_vcpus{vm}                              vCPUs on this node
 *   disco_faults_total{vm,kind=read|write|first_touch}
 *   disco_fault_latency_seconds{vm} histogram       served faults, from the
 *       event to the page installed (log2 buckets of the DSM's histogram)
 *   disco_pages{vm,kind=held|homed|cached}          mapped here; homed here;
 *                                                   copies of others' pages
 *   disco_evictions_total{vm}, disco_writebacks_total{vm}
 *   disco_policy_actions_total{vm,action=migrate|replicate|freeze|capped}
 *   disco_home_moves_total{vm,direction=in|out}     home migrations
 *   disco_ipis_total{vm,direction=sent|received}
 *   disco_forwarded_io_total{vm,role=forwarded|served}
 *   disco_peer_up{vm,peer}                          the VM's session peers
 *   disco_peer_bytes_total{vm,peer,direction=sent|received}
 *   disco_peer_frames_total{vm,peer,direction=sent|received}
 *   disco_guest_resets_total{vm}, disco_translation_invalidations_total{vm}
 * Label values are node and VM names ([A-Za-z0-9_.-]), which need no
 * escaping. The endpoint has no authentication: it carries counters, no
 * guest data and no control; bind it to a management address.
 */
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discod.h"
#include "rpc/log.h"

static struct MHD_Daemon *httpd;

struct emit {
	FILE *f;
	const char *node;
};

static void help(struct emit *e, const char *name, const char *type, const char *text)
{
	fprintf(e->f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* Value of counter @key of @v's last sample, or NAN. */
static double val(const struct lvm *v, const char *key)
{
	const struct counter *c = discod_counter(&v->cur, key);

	return c ? c->value : NAN;
}

/* One series: @metric{node,vm[,labels]} x. */
static void line(struct emit *e, const char *metric, const char *vm, const char *labels, double x)
{
	fprintf(e->f, "%s{node=\"%s\",vm=\"%s\"%s%s} %.17g\n", metric, e->node, vm,
		labels[0] ? "," : "", labels, x);
}

static void per_vm(struct emit *e, struct discod *d, const char *metric, const char *type,
		   const char *text, const char *const *pairs)
{
	help(e, metric, type, text);
	for (int i = 0; i < d->cfg->n_vms; i++) {
		const struct lvm *v = &d->vms[i];

		for (int p = 0; pairs[p]; p += 2) {
			double x = val(v, pairs[p + 1]);

			if (!isnan(x))
				line(e, metric, d->cfg->vms[i].name, pairs[p], x);
		}
	}
}

static void histogram(struct emit *e, struct discod *d)
{
	help(e, "disco_fault_latency_seconds", "histogram",
	     "Latency of faults the DSM protocol served, from the userfaultfd event to the page "
	     "installed (log2 buckets)");
	for (int i = 0; i < d->cfg->n_vms; i++) {
		const struct lvm *v = &d->vms[i];
		const char *vm = d->cfg->vms[i].name;
		double cum = 0, count = val(v, "faults_served");
		char key[48], le[64];

		if (isnan(count))
			continue;
		for (int b = 0; b < 32; b++) {
			snprintf(key, sizeof(key), "fault_latency_us_bucket:%d", b);
			double x = val(v, key);

			if (isnan(x))
				break;
			cum += x;
			/* bucket b counts [2^b, 2^(b+1)) us */
			snprintf(le, sizeof(le), "le=\"%.9g\"", ldexp(1.0, b + 1) / 1e6);
			line(e, "disco_fault_latency_seconds_bucket", vm, le, cum);
		}
		line(e, "disco_fault_latency_seconds_bucket", vm, "le=\"+Inf\"", cum);
		double sum = (val(v, "fault_send_wait_ns") + val(v, "fault_install_ns")) / 1e9;
		line(e, "disco_fault_latency_seconds_sum", vm, "", isnan(sum) ? 0 : sum);
		line(e, "disco_fault_latency_seconds_count", vm, "", cum);
	}
}

/* The VM's session peers: "peer:NAME:key" counters. */
static void peers(struct emit *e, struct discod *d)
{
	static const struct {
		const char *metric, *type, *text, *key, *labels;
	} m[] = {
		{"disco_peer_up", "gauge", "The VM's session peer is up (1) or lost (0)", "up", ""},
		{"disco_peer_bytes_total", "counter",
		 "Bytes of session frames (header, body, page) to and from the peer", "bytes_sent",
		 "direction=\"sent\""},
		{NULL, NULL, NULL, "bytes_received", "direction=\"received\""},
		{"disco_peer_frames_total", "counter", "Session frames to and from the peer",
		 "frames_sent", "direction=\"sent\""},
		{NULL, NULL, NULL, "frames_received", "direction=\"received\""},
	};
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		if (m[k].metric)
			help(e, m[k].metric, m[k].type, m[k].text);
		const char *metric = m[k].metric ? m[k].metric : m[k - 1].metric;
		for (int i = 0; i < d->cfg->n_vms; i++) {
			const struct sample *s = &d->vms[i].cur;

			for (int c = 0; c < s->n; c++) {
				char peer[CLUSTER_NAME_MAX], what[48], labels[160];

				if (sscanf(s->c[c].key, "peer:%63[^:]:%47s", peer, what) != 2 ||
				    strcmp(what, m[k].key))
					continue;
				snprintf(labels, sizeof(labels), "peer=\"%s\"%s%s", peer,
					 m[k].labels[0] ? "," : "", m[k].labels);
				line(e, metric, d->cfg->vms[i].name, labels, s->c[c].value);
			}
		}
	}
}

static void render(struct discod *d, FILE *f)
{
	struct emit e = {.f = f, .node = d->opt.node};
	static const char *const faults[] = {"kind=\"read\"", "read_faults", "kind=\"write\"",
					     "write_faults", "kind=\"first_touch\"",
					     "first_touch_or_spurious_faults", NULL};
	static const char *const pages[] = {"kind=\"held\"", "pages_present", "kind=\"homed\"",
					    "pages_homed", "kind=\"cached\"", "pages_cached", NULL};
	static const char *const policy[] = {"action=\"migrate\"",   "policy_migrations",
					     "action=\"replicate\"", "policy_replications",
					     "action=\"freeze\"",    "policy_frozen_pages",
					     "action=\"capped\"",    "policy_capped", NULL};
	static const char *const moves[] = {"direction=\"in\"", "migrations_in", "direction=\"out\"",
					    "migrations_out", NULL};
	static const char *const ipis[] = {"direction=\"sent\"", "ipis_sent", "direction=\"received\"",
					   "ipis_received", NULL};
	static const char *const io[] = {"role=\"forwarded\"", "io_forwarded", "role=\"served\"",
					 "io_served", NULL};
	static const char *const evictions[] = {"", "evictions", NULL};
	static const char *const writebacks[] = {"", "writebacks", NULL};
	static const char *const resets[] = {"", "guest_resets", NULL};
	static const char *const tbs[] = {"", "tb_invalidations", NULL};

	pthread_mutex_lock(&d->mu);
	help(&e, "disco_daemon_up", "gauge", "discod of this node runs");
	fprintf(f, "disco_daemon_up{node=\"%s\"} 1\n", e.node);
	help(&e, "disco_daemon_uptime_seconds", "gauge", "Seconds since discod started");
	fprintf(f, "disco_daemon_uptime_seconds{node=\"%s\"} %lld\n", e.node,
		(long long)(time(NULL) - d->started));
	help(&e, "disco_daemon_peer_up", "gauge",
	     "Another node's discod answered its last ping (every 5 s) with the cluster key");
	for (int n = 0; n < d->cfg->n_nodes; n++)
		if (n != d->self && d->peer_probed[n])
			fprintf(f, "disco_daemon_peer_up{node=\"%s\",peer=\"%s\"} %d\n", e.node,
				d->cfg->nodes[n].name, d->peer_up[n] ? 1 : 0);
	help(&e, "disco_vm_state", "gauge", "1 for the state of the VM's QEMU on this node");
	help(&e, "disco_vm_vcpus", "gauge", "The VM's vCPUs on this node");
	for (int i = 0; i < d->cfg->n_vms; i++) {
		const struct lvm *v = &d->vms[i];
		char l[64];

		if (v->state == LVM_NONE)
			continue;
		snprintf(l, sizeof(l), "state=\"%s\"", lvm_state_name(v->state));
		line(&e, "disco_vm_state", d->cfg->vms[i].name, l, 1);
		line(&e, "disco_vm_vcpus", d->cfg->vms[i].name, "", v->vcpu_count);
	}
	per_vm(&e, d, "disco_faults_total", "counter",
	       "Guest page faults on this node that needed the DSM protocol, by kind", faults);
	histogram(&e, d);
	per_vm(&e, d, "disco_pages", "gauge",
	       "Guest pages of the VM on this node: held (mapped here now), homed (this node is "
	       "their home), cached (copies of pages homed elsewhere)",
	       pages);
	per_vm(&e, d, "disco_evictions_total", "counter",
	       "Cached copies this node gave up for its memory budget", evictions);
	per_vm(&e, d, "disco_writebacks_total", "counter",
	       "Dirty copies written back to their home on eviction", writebacks);
	per_vm(&e, d, "disco_policy_actions_total", "counter",
	       "Decisions of Disco's placement policy at the pages this node is home of", policy);
	per_vm(&e, d, "disco_home_moves_total", "counter", "Page homes moved to or from this node",
	       moves);
	per_vm(&e, d, "disco_ipis_total", "counter", "Inter-processor interrupts between nodes", ipis);
	per_vm(&e, d, "disco_forwarded_io_total", "counter",
	       "Port and MMIO accesses forwarded to the master (forwarded) or done for other nodes "
	       "(served)",
	       io);
	peers(&e, d);
	per_vm(&e, d, "disco_guest_resets_total", "counter", "Guest resets of the whole VM", resets);
	per_vm(&e, d, "disco_translation_invalidations_total", "counter",
	       "Translated code invalidated because another node wrote the page", tbs);
	pthread_mutex_unlock(&d->mu);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **state)
{
	struct discod *d = cls;
	struct MHD_Response *resp;
	enum MHD_Result r;
	char *buf = NULL;
	size_t len = 0;
	unsigned code = MHD_HTTP_OK;

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		static const char msg[] = "only GET\n";

		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
						       MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics")) {
		static const char msg[] = "disco: the metrics are at /metrics\n";

		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
						       MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_FOUND;
	} else {
		FILE *f = open_memstream(&buf, &len);

		if (!f)
			return MHD_NO;
		render(d, f);
		fclose(f);
		resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
		if (resp)
			MHD_add_response_header(resp, "Content-Type",
						"text/plain; version=0.0.4; charset=utf-8");
	}
	if (!resp)
		return MHD_NO;
	r = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return r;
}

int discod_metrics_start(struct discod *d, char *err, size_t errlen)
{
	const struct cluster_node *n = &d->cfg->nodes[d->self];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	char port[8];
	int r;

	if (!n->metrics_port)
		return 0;
	snprintf(port, sizeof(port), "%d", n->metrics_port);
	r = getaddrinfo(n->metrics_address, port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "metrics: cannot resolve %s: %s", n->metrics_address,
			 gai_strerror(r));
		return -EHOSTUNREACH;
	}
	httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
					 (res->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				 (uint16_t)n->metrics_port, NULL, NULL, handle, d, MHD_OPTION_SOCK_ADDR,
				 res->ai_addr, MHD_OPTION_CONNECTION_LIMIT, 16,
				 MHD_OPTION_CONNECTION_TIMEOUT, 10, MHD_OPTION_END);
	freeaddrinfo(res);
	if (!httpd) {
		snprintf(err, errlen,
			 "cannot serve metrics on %s:%d (nodes[%d].metrics_port): in use or not an "
			 "address of this host",
			 n->metrics_address, n->metrics_port, d->self);
		return -EADDRINUSE;
	}
	return 0;
}

void discod_metrics_stop(void)
{
	if (httpd)
		MHD_stop_daemon(httpd);
	httpd = NULL;
}
