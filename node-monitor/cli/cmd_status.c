// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco status and disco stats [--watch]: one CLUSTER_STATUS request (the
 * daemon asks every node at once) rendered as tables.
 *
 * status: the nodes (daemon up or down and why), then each VM of the
 * config that ran since its daemons started: its state over its nodes
 * (failed names the node and the reason), and per node its vCPUs, pages
 * held/homed/cached, faults per second, and the policy's actions.
 * stats: per VM and node the rates of the last second: faults, page
 * moves, IPIs, forwarded I/O, bytes to the other nodes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static double counter(const Disco__VmReport *v, const char *key, bool rate)
{
	Disco__Counter **a = rate ? v->rates : v->counters;
	size_t n = rate ? v->n_rates : v->n_counters;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(a[i]->key, key))
			return a[i]->value;
	return NAN;
}

/* A counter summed over every key with @prefix and @suffix (peer:*:x). */
static double sum_peers(const Disco__VmReport *v, const char *suffix, bool rate)
{
	Disco__Counter **a = rate ? v->rates : v->counters;
	size_t n = rate ? v->n_rates : v->n_counters, ls = strlen(suffix);
	double s = 0;
	bool any = false;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(a[i]->key);

		if (!strncmp(a[i]->key, "peer:", 5) && l > ls && !strcmp(a[i]->key + l - ls, suffix)) {
			s += a[i]->value;
			any = true;
		}
	}
	return any ? s : NAN;
}

static void num(char *buf, size_t len, double x)
{
	if (isnan(x))
		snprintf(buf, len, "-");
	else if (fabs(x) >= 1e7)
		snprintf(buf, len, "%.0fM", x / 1e6);
	else if (fabs(x) >= 1e4)
		snprintf(buf, len, "%.0fk", x / 1e3);
	else if (x != floor(x))
		snprintf(buf, len, "%.1f", x);
	else
		snprintf(buf, len, "%.0f", x);
}

static const Disco__VmReport *vm_on(const Disco__NodeReport *n, const char *vm)
{
	for (size_t i = 0; i < n->n_vms; i++)
		if (!strcmp(n->vms[i]->vm, vm))
			return n->vms[i];
	return NULL;
}

static const Disco__NodeReport *node_named(const Disco__ControlReply *r, const char *name)
{
	for (size_t i = 0; i < r->n_nodes; i++)
		if (!strcmp(r->nodes[i]->node, name))
			return r->nodes[i];
	return NULL;
}

/* The VM's state over its nodes, and the first failure's node and reason. */
static const char *vm_state(const Disco__ControlReply *r, const Disco__VmConfig *c, char *why,
			    size_t len)
{
	int running = 0, starting = 0, stopped = 0, failed = 0, unknown = 0, seen = 0;

	why[0] = '\0';
	for (size_t i = 0; i < c->n_nodes; i++) {
		const Disco__NodeReport *n = node_named(r, c->nodes[i]->node);
		const Disco__VmReport *v = n && n->up ? vm_on(n, c->name) : NULL;

		if (!n || !n->up) {
			unknown++;
			continue;
		}
		if (!v)
			continue;
		seen++;
		if (!strcmp(v->state, "running"))
			running++;
		else if (!strcmp(v->state, "starting") || !strcmp(v->state, "stopping"))
			starting++;
		else if (!strcmp(v->state, "failed")) {
			if (!failed++)
				snprintf(why, len, "%s: %s", n->node, v->reason);
		} else
			stopped++;
	}
	if (failed)
		return "failed";
	if (!seen)
		return unknown ? "unknown" : "-";
	if (running == (int)c->n_nodes)
		return "running";
	if (stopped == seen && !unknown)
		return "stopped";
	if (starting || running)
		return unknown ? "degraded" : "starting";
	return "stopped";
}

static void print_status(const Disco__ControlReply *r)
{
	char a[16], b[16], c[16], f[16], m[16], p[16], z[16], why[640];
	int up = 0;

	for (size_t i = 0; i < r->n_nodes; i++)
		up += r->nodes[i]->up;
	printf("cluster %s: %zu nodes, %d daemons up\n\n", r->cluster_name, r->n_nodes, up);
	printf("%-12s %-6s %-24s %-8s %s\n", "NODE", "DAEMON", "CONTROL", "UPTIME", "VMS");
	for (size_t i = 0; i < r->n_nodes; i++) {
		const Disco__NodeReport *n = r->nodes[i];
		char vms[512] = "", upt[16];
		size_t o = 0;

		for (size_t k = 0; k < n->n_vms && o < sizeof(vms); k++)
			o += (size_t)snprintf(vms + o, sizeof(vms) - o, "%s%s(%s)", k ? " " : "",
					      n->vms[k]->vm, n->vms[k]->state);
		if (n->up)
			snprintf(upt, sizeof(upt), "%llus", (unsigned long long)n->uptime_s);
		printf("%-12s %-6s %-24s %-8s %s\n", n->node, n->up ? "up" : "DOWN", n->address,
		       n->up ? upt : "-", n->up ? (vms[0] ? vms : "-") : n->error);
	}
	for (size_t i = 0; i < r->n_vms; i++) {
		const Disco__VmConfig *vc = r->vms[i];
		const char *st = vm_state(r, vc, why, sizeof(why));

		if (!strcmp(st, "-"))
			continue; /* never started since the daemons started */
		printf("\nvm %s: %s%s%s (%u vCPUs, %llu MiB, master %s)\n", vc->name, st,
		       why[0] ? ": " : "", why, vc->vcpus, (unsigned long long)(vc->memory_bytes >> 20),
		       vc->master);
		printf("  %-12s %-9s %-8s %-7s %7s %7s %7s %9s %6s %6s %6s\n", "NODE", "STATE", "PID",
		       "VCPUS", "PAGES", "HOMED", "CACHED", "FAULTS/S", "MIGR", "REPL", "FROZEN");
		for (size_t k = 0; k < vc->n_nodes; k++) {
			const Disco__NodeReport *n = node_named(r, vc->nodes[k]->node);
			const Disco__VmReport *v = n && n->up ? vm_on(n, vc->name) : NULL;
			char vcpus[24], pid[16];

			if (!v) {
				printf("  %-12s %-9s\n", vc->nodes[k]->node, n && n->up ? "-" : "unknown");
				continue;
			}
			double held = counter(v, "pages_present", false), homed = counter(v, "pages_homed", false);
			double faults = counter(v, "read_faults", true) + counter(v, "write_faults", true);
			if (strcmp(v->state, "running"))
				faults = NAN; /* the last rates of a QEMU that ended */
			num(a, sizeof(a), held);
			num(b, sizeof(b), homed);
			num(c, sizeof(c), counter(v, "pages_cached", false));
			num(f, sizeof(f), faults);
			num(m, sizeof(m), counter(v, "policy_migrations", false));
			num(p, sizeof(p), counter(v, "policy_replications", false));
			num(z, sizeof(z), counter(v, "policy_frozen_pages", false));
			if (v->vcpu_count)
				snprintf(vcpus, sizeof(vcpus), "%u-%u", v->vcpu_first,
					 v->vcpu_first + v->vcpu_count - 1);
			else
				snprintf(vcpus, sizeof(vcpus), "none");
			snprintf(pid, sizeof(pid), "%d", v->pid);
			printf("  %-12s %-9s %-8s %-7s %7s %7s %7s %9s %6s %6s %6s%s\n", n->node, v->state,
			       v->pid ? pid : "-", vcpus, a, b, c, f, m, p, z, v->master ? "  master" : "");
			if (v->reason[0] && (!strcmp(v->state, "failed") || !strcmp(v->state, "stopped")))
				printf("  %-12s   %s\n", "", v->reason);
		}
	}
}

static void print_stats(const Disco__ControlReply *r)
{
	printf("%-12s %-12s %9s %9s %9s %8s %8s %8s %8s %10s %10s\n", "VM", "NODE", "FAULTS/S",
	       "READ/S", "WRITE/S", "MOVES/S", "IPIS/S", "IO/S", "EVICT/S", "TX KB/S", "RX KB/S");
	for (size_t i = 0; i < r->n_vms; i++) {
		const Disco__VmConfig *vc = r->vms[i];

		for (size_t k = 0; k < vc->n_nodes; k++) {
			const Disco__NodeReport *n = node_named(r, vc->nodes[k]->node);
			const Disco__VmReport *v = n && n->up ? vm_on(n, vc->name) : NULL;
			char x[10][16];

			if (!v || strcmp(v->state, "running"))
				continue;
			double rd = counter(v, "read_faults", true), wr = counter(v, "write_faults", true);
			num(x[0], 16, rd + wr);
			num(x[1], 16, rd);
			num(x[2], 16, wr);
			num(x[3], 16, counter(v, "migrations_in", true) + counter(v, "migrations_out", true));
			num(x[4], 16, counter(v, "ipis_sent", true));
			num(x[5], 16, counter(v, "io_forwarded", true) + counter(v, "io_served", true));
			num(x[6], 16, counter(v, "evictions", true));
			num(x[7], 16, sum_peers(v, ":bytes_sent", true) / 1024);
			num(x[8], 16, sum_peers(v, ":bytes_received", true) / 1024);
			printf("%-12s %-12s %9s %9s %9s %8s %8s %8s %8s %10s %10s\n", vc->name, n->node, x[0],
			       x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8]);
		}
	}
}

static int fetch(const struct cli_global *g, Disco__ControlReply **rep)
{
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;

	rq.op = DISCO__CONTROL_REQUEST__OP__CLUSTER_STATUS;
	return cli_request(g, &rq, rep);
}

int cmd_status(const struct cli_global *g, int argc, char **argv)
{
	Disco__ControlReply *rep;
	int r;

	if (argc > 1) {
		if (cli_is_help(argv[1])) {
			printf("usage: disco [global options] status\n"
			       "The cluster's nodes (is each daemon up) and every VM that ran since its\n"
			       "daemons started: its state (a failure names the node and why), and per\n"
			       "node its vCPUs, pages held/homed/cached, faults per second and the\n"
			       "placement policy's migrations, replications and frozen pages.\n"
			       "Exit status 0 when every daemon answered, 3 when one did not.\n");
			return CLI_OK;
		}
		fprintf(stderr, "disco status: unexpected argument \"%s\"\n", argv[1]);
		return CLI_USAGE;
	}
	if ((r = fetch(g, &rep)) != CLI_OK)
		return r;
	print_status(rep);
	r = CLI_OK;
	for (size_t i = 0; i < rep->n_nodes; i++)
		if (!rep->nodes[i]->up)
			r = CLI_UNREACHABLE;
	disco__control_reply__free_unpacked(rep, NULL);
	return r;
}

int cmd_stats(const struct cli_global *g, int argc, char **argv)
{
	bool watch = false;
	double interval = 2;
	long count = -1;

	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			printf("usage: disco [global options] stats [--watch] [--interval SEC] [--count N]\n"
			       "Per VM and node, rates over the last second: faults (read, write),\n"
			       "page home moves, IPIs sent, forwarded I/O, evictions, and bytes to and\n"
			       "from the VM's other nodes. --watch refreshes every --interval seconds\n"
			       "(default 2) until interrupted, or --count times.\n");
			return CLI_OK;
		} else if (!strcmp(argv[i], "--watch")) {
			watch = true;
		} else if (!strcmp(argv[i], "--interval") && i + 1 < argc) {
			interval = atof(argv[++i]);
			if (interval < 0.2) {
				fprintf(stderr, "disco stats: --interval: at least 0.2 seconds\n");
				return CLI_USAGE;
			}
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			count = atol(argv[++i]);
		} else {
			fprintf(stderr, "disco stats: unknown argument \"%s\" (see disco stats --help)\n",
				argv[i]);
			return CLI_USAGE;
		}
	}
	if (!watch)
		count = 1;
	for (long k = 0; count < 0 || k < count; k++) {
		Disco__ControlReply *rep;
		int r = fetch(g, &rep);

		if (r != CLI_OK)
			return r;
		if (watch && isatty(STDOUT_FILENO))
			printf("\033[H\033[2J");
		else if (k)
			printf("\n");
		print_stats(rep);
		fflush(stdout);
		disco__control_reply__free_unpacked(rep, NULL);
		if (count < 0 || k + 1 < count)
			usleep((useconds_t)(interval * 1e6));
	}
	return CLI_OK;
}
