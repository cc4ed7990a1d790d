// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-dsm-bench: latency of the DSM's coherence operations, and in the
 * same run, on the same transport, the raw round trip they stand on.
 *
 * Roles by node index: node 0 is home of every page used (placement
 * node:n0) and serves; node 1 measures; nodes 2.. are extra sharers.
 *   remote read fault   node 1 loads a page last written by node 0
 *   stable read fault   (3 nodes or more) node 1 loads a page node 2 has
 *                       read already, so the home's copy is read-only: the
 *                       case where RDMA with memfd backing has node 1 read
 *                       the page out of the home's memory (one-sided)
 *   write upgrade       node 1 stores to a page it and n-1 others share
 *   ping-pong           nodes 0 and 1 take turns writing one word
 *   raw RTT             64-byte request, 4 KiB reply, from node 1's thread
 *   userfaultfd floor   in this process, no network: a local fault served
 *                       by a busy handler thread (uffd_floor.c), and the
 *                       overhead_ratio it leaves at best
 *   miss evicting dirty (a 2-node cluster of its own, with memory budgets:
 *                       node 1 may hold --samples pages) node 1 writes
 *                       pages homed at node 0: the first --samples writes
 *                       find a free frame (the plain write miss), each
 *                       later one must first evict a dirty copy (EVICT,
 *                       the home's FETCH pulls the data back, then the
 *                       request); node 0 then checks every value came home
 *
 * With no arguments: a generated 2-node cluster on 127.0.0.1 for all the
 * figures, then a 4-node one for the upgrade with 3 sharers, then a 2-node
 * one with memory budgets for the miss that evicts a dirty copy (a line
 *   evict_dirty_miss_p50_us=<x> plain_write_miss_p50_us=<y> evict_dirty_ratio=<x/y>
 * ). Last line:
 *   read_fault_p50_us=<x> rtt_p50_us=<y> overhead_ratio=<x/y>
 * --transport, --address and --rdma-* choose the generated clusters'
 * network. --transport both runs only a 3-node cluster, over rdma and
 * then tcp on the same address, and ends with
 *   rdma_read_fault_p50_us=<x> tcp_read_fault_p50_us=<y> rdma_rtt_p50_us=<a>
 *   tcp_rtt_p50_us=<b> rdma_stable_read_p50_us=<c> tcp_stable_read_p50_us=<d>
 *   read_fault_rdma_tcp_ratio=<x/y>
 * (one line); those clusters have 3 nodes, for the stable read.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool_common.h"

#define PAGE DSM_PAGE_SIZE

struct opts {
	const char *config, *node, *vm, *result_file;
	int samples, rounds;
	bool evict;          /* member: the eviction measurement only */
	struct tool_net net; /* of the generated clusters */
	bool net_given;      /* a network option was on the command line */
	bool both;           /* --transport both */
};

struct figures {
	double read_p50, read_p99, up_p50, up_p99, pp_p50, pp_p99, rtt_p50, rtt_p99;
	double sread_p50, sread_p99; /* 0 with 2 nodes */
	double wmiss_p50, wmiss_p99, wevict_p50, wevict_p99; /* the eviction run only */
	int n_nodes;
};

static volatile uint64_t *word_at(uint8_t *base, uint64_t page)
{
	return (volatile uint64_t *)(base + page * PAGE);
}

static int barrier(struct tool_member *m, uint32_t id)
{
	int rc = rpc_session_barrier(m->session, id, 120000);
	if (rc < 0)
		fprintf(stderr, "bench[%s]: barrier %u failed: %s\n", m->cfg->nodes[m->node].name,
			id, strerror(-rc));
	return rc;
}

static void wait_for_value(volatile uint64_t *w, uint64_t v)
{
	while (__atomic_load_n(w, __ATOMIC_ACQUIRE) != v)
		sched_yield(); /* 2 cores: leave them to the loop threads */
}

/* The eviction run: node 1's budget holds --samples pages (placement
 * node:n0, so none is its own). Returns 0 or negative. */
static int evict_member(struct tool_member *m, const struct opts *o, struct figures *fig,
			uint64_t *t)
{
	uint8_t *base = dsm_region_base(m->region);
	uint64_t S = (uint64_t)o->samples;
	int rc;

	if (m->node == 0)
		for (uint64_t p = 0; p < 2 * S; p++)
			*word_at(base, p) = p + 1;
	if ((rc = barrier(m, 1)) < 0)
		return rc;
	if (m->node == 1) {
		for (uint64_t i = 0; i < 2 * S; i++) {
			uint64_t t0 = tool_now_ns();
			*word_at(base, i) = 0xbeef0000 + i;
			t[i] = tool_now_ns() - t0;
		}
		fig->wmiss_p50 = tool_percentile(t, S, 50) / 1000;
		fig->wmiss_p99 = tool_percentile(t, S, 99) / 1000;
		fig->wevict_p50 = tool_percentile(t + S, S, 50) / 1000;
		fig->wevict_p99 = tool_percentile(t + S, S, 99) / 1000;
		struct dsm_stats st;
		dsm_region_stats(m->region, &st);
		if (st.engine.writebacks < S / 2) {
			fprintf(stderr, "bench: only %" PRIu64 " write-backs for %" PRIu64
				" writes past the budget\n", st.engine.writebacks, S);
			rc = -EIO;
		}
	}
	if (barrier(m, 2) < 0 || rc)
		return rc ? rc : -EIO;
	if (m->node == 0) /* everything node 1 wrote came home */
		for (uint64_t p = 0; p < 2 * S; p++)
			if (*word_at(base, p) != 0xbeef0000 + p) {
				fprintf(stderr, "bench: page %" PRIu64 " holds %" PRIu64 " after the "
					"write-back\n", p, *word_at(base, p));
				rc = -EIO;
			}
	return rc;
}

static int run_member(const struct opts *o)
{
	struct tool_member m;
	struct figures fig = { 0 };
	uint64_t S = (uint64_t)o->samples;
	uint64_t *t = calloc(2 * S > (uint64_t)o->rounds ? 2 * S : (uint64_t)o->rounds,
			     sizeof(uint64_t));

	if (!t || tool_member_join(&m, o->config, o->node, o->vm)) {
		free(t);
		return 1;
	}
	uint8_t *base = dsm_region_base(m.region);
	uint64_t pp_page = 2 * S, stable = pp_page + 1, end = stable + S;
	int rc = 0;
	fig.n_nodes = m.cfg->n_nodes;
	if (end * PAGE > dsm_region_size(m.region) || m.cfg->n_nodes < 2) {
		fprintf(stderr, "bench: needs >= 2 nodes and %" PRIu64 " KiB of region\n",
			end * 4);
		tool_member_leave(&m);
		free(t);
		return 1;
	}

	if (o->evict) {
		if ((rc = evict_member(&m, o, &fig, t)) == 0 && (rc = barrier(&m, 3)) == 0 &&
		    m.node == 1 && o->result_file) {
			FILE *f = fopen(o->result_file, "w");
			if (f) {
				fwrite(&fig, sizeof(fig), 1, f);
				fclose(f);
			}
		}
		goto out;
	}
	/* Node 0 writes every page so they hold data at their home. */
	if (m.node == 0)
		for (uint64_t p = 0; p < end; p++)
			*word_at(base, p) = p + 1;
	if ((rc = barrier(&m, 1)) < 0)
		goto out;

	if (m.node == 1) {
		for (uint64_t i = 0; i < S; i++) {
			uint64_t t0 = tool_now_ns();
			uint64_t v = *word_at(base, i);
			t[i] = tool_now_ns() - t0;
			if (v != i + 1) {
				fprintf(stderr, "bench: page %" PRIu64 " read %" PRIu64 ", want %" PRIu64
					"\n", i, v, i + 1);
				rc = -EIO;
			}
		}
		fig.read_p50 = tool_percentile(t, S, 50) / 1000;
		fig.read_p99 = tool_percentile(t, S, 99) / 1000;
	}
	if (barrier(&m, 2) < 0 || rc)
		goto out;

	/* Every node but the home takes a shared copy; then node 1 writes. */
	if (m.node >= 1)
		for (uint64_t i = S; i < 2 * S; i++)
			(void)*word_at(base, i);
	if ((rc = barrier(&m, 3)) < 0)
		goto out;
	if (m.node == 1) {
		for (uint64_t i = 0; i < S; i++) {
			uint64_t t0 = tool_now_ns();
			*word_at(base, S + i) = 0xdead0000 + i;
			t[i] = tool_now_ns() - t0;
		}
		fig.up_p50 = tool_percentile(t, S, 50) / 1000;
		fig.up_p99 = tool_percentile(t, S, 99) / 1000;
	}
	if ((rc = barrier(&m, 4)) < 0)
		goto out;

	/* Node 2 reads first (the home write-protects its copy), then node 1. */
	if (m.node == 2)
		for (uint64_t i = 0; i < S; i++)
			(void)*word_at(base, stable + i);
	if ((rc = barrier(&m, 5)) < 0)
		goto out;
	if (m.node == 1 && m.cfg->n_nodes >= 3) {
		for (uint64_t i = 0; i < S; i++) {
			uint64_t t0 = tool_now_ns();
			uint64_t v = *word_at(base, stable + i);
			t[i] = tool_now_ns() - t0;
			if (v != stable + i + 1) {
				fprintf(stderr, "bench: page %" PRIu64 " read %" PRIu64 ", want %" PRIu64
					"\n", stable + i, v, stable + i + 1);
				rc = -EIO;
			}
		}
		fig.sread_p50 = tool_percentile(t, S, 50) / 1000;
		fig.sread_p99 = tool_percentile(t, S, 99) / 1000;
	}
	if (barrier(&m, 6) < 0 || rc)
		goto out;

	volatile uint64_t *w = word_at(base, pp_page);
	if (m.node == 0) {
		for (int r = 0; r < o->rounds; r++) {
			wait_for_value(w, 2 * (uint64_t)r + 1);
			__atomic_store_n(w, 2 * (uint64_t)r + 2, __ATOMIC_RELEASE);
		}
	} else if (m.node == 1) {
		*w = 0;
		for (int r = 0; r < o->rounds; r++) {
			uint64_t t0 = tool_now_ns();
			__atomic_store_n(w, 2 * (uint64_t)r + 1, __ATOMIC_RELEASE);
			wait_for_value(w, 2 * (uint64_t)r + 2);
			t[r] = tool_now_ns() - t0;
		}
		fig.pp_p50 = tool_percentile(t, (size_t)o->rounds, 50) / 1000;
		fig.pp_p99 = tool_percentile(t, (size_t)o->rounds, 99) / 1000;
	}
	if ((rc = barrier(&m, 7)) < 0)
		goto out;

	if (m.node == 1) {
		for (uint64_t i = 0; i < S; i++) {
			if ((rc = rpc_session_rtt_probe(m.session, 0, &t[i])) < 0) {
				fprintf(stderr, "bench: RTT probe failed: %s\n", strerror(-rc));
				goto out;
			}
		}
		fig.rtt_p50 = tool_percentile(t, S, 50) / 1000;
		fig.rtt_p99 = tool_percentile(t, S, 99) / 1000;
	}
	if ((rc = barrier(&m, 8)) < 0)
		goto out;

	if (m.node == 1) {
		struct dsm_stats st;
		dsm_region_stats(m.region, &st);
		dsm_stats_print(&st, "bench[n1]: ", stderr);
		FILE *f = o->result_file ? fopen(o->result_file, "w") : NULL;
		if (f) {
			fwrite(&fig, sizeof(fig), 1, f);
			fclose(f);
		}
		printf("bench[%d nodes]: read p50=%.1f p99=%.1f  upgrade(%d sharers) p50=%.1f "
		       "p99=%.1f  ping-pong p50=%.1f p99=%.1f  rtt p50=%.1f p99=%.1f (us)\n",
		       fig.n_nodes, fig.read_p50, fig.read_p99, fig.n_nodes - 1, fig.up_p50,
		       fig.up_p99, fig.pp_p50, fig.pp_p99, fig.rtt_p50, fig.rtt_p99);
	}
out:
	tool_member_leave(&m);
	free(t);
	return rc < 0 ? 1 : 0;
}

/* One generated cluster of @n_nodes on @net; 0, or 1 after a line on stderr. */
static int run_cluster(const char *argv0, const struct opts *o, const struct tool_net *net,
		       int n_nodes, bool evict, struct figures *fig)
{
	char config[4200], dir[4200], result[4300], samples[32], rounds[32], budgets[96];
	/* the eviction run: node 0 holds every page (home of all) and one
	 * more frame; node 1 holds --samples pages */
	snprintf(budgets, sizeof(budgets), "{n0: %uK, n1: %uK}", 64 * 1024 + 4,
		 (unsigned)o->samples * 4);
	int rc = tool_make_local_config(net, n_nodes,
					&(struct tool_vm){ .memory = "64M", .placement = "node:n0",
							   .node_memory = evict ? budgets : NULL,
							   .min_cache = evict ? "4K" : NULL },
					config, sizeof(config), dir, sizeof(dir));
	if (rc < 0) {
		fprintf(stderr, "bench: cannot generate a cluster on %s: %s%s\n", net->address,
			strerror(-rc),
			rc == -EADDRNOTAVAIL ? " (is it an address of this machine?)" : "");
		return 1;
	}
	snprintf(result, sizeof(result), "%s/result", dir);
	snprintf(samples, sizeof(samples), "%d", o->samples);
	snprintf(rounds, sizeof(rounds), "%d", o->rounds);
	char *extra[] = { "--samples", samples, "--rounds", rounds, "--result-file", result,
			  evict ? "--evict" : NULL, NULL };
	fflush(stdout); /* what we printed so far comes before the members' lines */
	int failed = tool_run_members(argv0, config, extra, 600);
	FILE *f = fopen(result, "r");
	bool ok = f && fread(fig, sizeof(*fig), 1, f) == 1;
	if (f)
		fclose(f);
	unlink(result);
	tool_remove_local_config(dir);
	if (failed || !ok) {
		fprintf(stderr, "disco-dsm-bench: a member of the %d-node %s cluster%s failed\n",
			n_nodes, cluster_transport_name(net->transport),
			evict ? " with memory budgets" : "");
		return 1;
	}
	return 0;
}

/* The table of one transport; @four is NULL when the 4-node run was skipped. */
/* The table of one transport: @small is the 2- (or, with --transport
 * both, 3-) node run, @four the 4-node one or NULL when it was skipped. */
static void print_table(const struct opts *o, const struct tool_net *net,
			const struct figures *small, const struct figures *four)
{
	const struct figures *many = small->n_nodes >= 3 ? small : four;
	char desc[256];

	tool_net_describe(net, desc, sizeof(desc));
	printf("%s, samples=%d, rounds=%d (microseconds)\n", desc, o->samples, o->rounds);
	printf("remote_read_fault        p50=%7.1f p99=%7.1f\n", small->read_p50, small->read_p99);
	if (many)
		printf("stable_read_fault        p50=%7.1f p99=%7.1f (the home's copy read-only, "
		       "%d nodes)\n", many->sread_p50, many->sread_p99, many->n_nodes);
	printf("write_upgrade_%d_sharer%s   p50=%7.1f p99=%7.1f\n", small->n_nodes - 1,
	       small->n_nodes > 2 ? "s" : " ", small->up_p50, small->up_p99);
	if (four)
		printf("write_upgrade_3_sharers  p50=%7.1f p99=%7.1f\n", four->up_p50,
		       four->up_p99);
	else
		printf("write_upgrade_3_sharers  skipped (no 4-node run with --transport both)\n");
	printf("ping_pong_round (2 nodes) p50=%7.1f p99=%7.1f\n", small->pp_p50, small->pp_p99);
	printf("raw_rtt_64B_req_4K_reply p50=%7.1f p99=%7.1f\n", small->rtt_p50, small->rtt_p99);
}

/* The part of a fault no handler-thread design removes, measured now, and
 * the overhead_ratio it leaves at best over this run's round trip. */
static void print_uffd_floor(const struct opts *o, double rtt_p50)
{
	double p50, p99;
	int rc = tool_uffd_floor((size_t)o->samples, &p50, &p99);

	if (rc < 0) {
		printf("userfaultfd_floor        not measured: %s\n", strerror(-rc));
		return;
	}
	printf("userfaultfd_floor        p50=%7.1f p99=%7.1f (local fault, busy handler "
	       "thread, UFFDIO_COPY, no network)\n", p50, p99);
	if (rtt_p50 > 0)
		printf("best_overhead_ratio=%.2f ((rtt_p50 + floor_p50) / rtt_p50: no "
		       "handler-thread fault path can do better on this host)\n",
		       (rtt_p50 + p50) / rtt_p50);
}

static int run_one_transport(const char *argv0, const struct opts *o)
{
	struct figures two, four, ev;

	if (run_cluster(argv0, o, &o->net, 2, false, &two) ||
	    run_cluster(argv0, o, &o->net, 4, false, &four) ||
	    run_cluster(argv0, o, &o->net, 2, true, &ev))
		return 1;
	print_table(o, &o->net, &two, &four);
	printf("write_miss (budget, frame free) p50=%7.1f p99=%7.1f\n", ev.wmiss_p50, ev.wmiss_p99);
	printf("write_miss_evicting_dirty p50=%7.1f p99=%7.1f (node 1's budget full of dirty "
	       "copies: the write-back first)\n", ev.wevict_p50, ev.wevict_p99);
	printf("evict_dirty_miss_p50_us=%.1f plain_write_miss_p50_us=%.1f evict_dirty_ratio=%.2f\n",
	       ev.wevict_p50, ev.wmiss_p50, ev.wmiss_p50 > 0 ? ev.wevict_p50 / ev.wmiss_p50 : 0.0);
	print_uffd_floor(o, two.rtt_p50);
	printf("read_fault_p50_us=%.1f rtt_p50_us=%.1f overhead_ratio=%.2f\n", two.read_p50,
	       two.rtt_p50, two.rtt_p50 > 0 ? two.read_p50 / two.rtt_p50 : 0.0);
	return 0;
}

/* RDMA first: a missing or misconfigured device fails in seconds, before
 * the TCP run has spent its time. Each table is printed as soon as it is
 * measured, so a failure of the second run still leaves the first. */
static int run_both_transports(const char *argv0, const struct opts *o)
{
	struct tool_net rdma = o->net, tcp = o->net;
	struct figures r, t;

	rdma.transport = CLUSTER_TRANSPORT_RDMA;
	tcp.transport = CLUSTER_TRANSPORT_TCP;
	printf("--transport both: 3-node cluster over rdma, then over tcp; the 4-node run "
	       "(write_upgrade_3_sharers) is skipped\n");
	if (run_cluster(argv0, o, &rdma, 3, false, &r))
		return 1;
	print_table(o, &rdma, &r, NULL);
	if (run_cluster(argv0, o, &tcp, 3, false, &t))
		return 1;
	print_table(o, &tcp, &t, NULL);
	printf("rdma_read_fault_p50_us=%.1f tcp_read_fault_p50_us=%.1f rdma_rtt_p50_us=%.1f "
	       "tcp_rtt_p50_us=%.1f rdma_stable_read_p50_us=%.1f tcp_stable_read_p50_us=%.1f "
	       "read_fault_rdma_tcp_ratio=%.2f\n",
	       r.read_p50, t.read_p50, r.rtt_p50, t.rtt_p50, r.sread_p50, t.sread_p50,
	       t.read_p50 > 0 ? r.read_p50 / t.read_p50 : 0.0);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: disco-dsm-bench [options]\n"
		   "Measures DSM fault latencies and the raw transport round trip in one run.\n"
		   "With no options: generated 2-node, then 4-node, clusters on 127.0.0.1, then\n"
		   "a 2-node one with memory budgets (a miss that must evict a dirty copy).\n"
		   "With --transport both: 3-node clusters only, over rdma and over tcp.\n\n"
		   "  --config FILE     run on this cluster config instead (needs --node)\n"
		   "  --node NAME       run as this member (node index 0 serves, 1 measures)\n"
		   "  --vm NAME         VM whose memory to use (default: the first)\n"
		   "  --samples N       faults per measurement (default 2000)\n"
		   "  --rounds N        ping-pong rounds (default 1000)\n"
		   "  --evict           (member) the eviction measurement only\n");
	tool_net_usage(f, "tcp|rdma|both");
	fprintf(f, "  --help            this text\n");
}

int main(int argc, char **argv)
{
	const char *prog = "disco-dsm-bench";
	struct opts o = { .samples = 2000, .rounds = 1000 };
	static const struct option lo[] = {
		{ "config", required_argument, 0, 'c' }, { "node", required_argument, 0, 'n' },
		{ "vm", required_argument, 0, 'v' },     { "samples", required_argument, 0, 's' },
		{ "rounds", required_argument, 0, 'r' }, { "result-file", required_argument, 0, 'f' },
		{ "evict", no_argument, 0, 'e' },
		TOOL_NET_LONG_OPTIONS,
		{ "help", no_argument, 0, 'h' },         { 0, 0, 0, 0 },
	};
	tool_net_init(&o.net);
	for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
		char *end = NULL;
		/* "both" is the bench's own (the shared parser knows one transport);
		 * the last --transport wins. */
		if (c == TOOL_OPT_TRANSPORT)
			o.both = !strcmp(optarg, "both");
		int rc = 1;
		if (c != TOOL_OPT_TRANSPORT || !o.both)
			rc = tool_net_option(&o.net, c, optarg, prog);
		if (rc < 0)
			return 2;
		if (rc > 0) {
			o.net_given = true;
			continue;
		}
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'n': o.node = optarg; break;
		case 'v': o.vm = optarg; break;
		case 'f': o.result_file = optarg; break;
		case 'e': o.evict = true; break;
		case 's': o.samples = (int)strtol(optarg, &end, 10); break;
		case 'r': o.rounds = (int)strtol(optarg, &end, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (end && *end) {
			fprintf(stderr, "disco-dsm-bench: expected a number, got \"%s\"\n", optarg);
			return 2;
		}
	}
	if (optind < argc || o.samples < 10 || o.samples > 100000 || o.rounds < 10 ||
	    o.rounds > 1000000) {
		fprintf(stderr, "disco-dsm-bench: bad arguments (--samples 10..100000, --rounds "
				"10..1000000; see --help)\n");
		return 2;
	}
	if (o.node || o.config) {
		if (!o.node || !o.config) {
			fprintf(stderr, "disco-dsm-bench: --config and --node go together\n");
			return 2;
		}
		/* A member reads the network from the config; refuse options it
		 * would silently ignore. */
		if (o.net_given) {
			fprintf(stderr, "disco-dsm-bench: --transport, --address and --rdma-* "
				"shape the generated clusters; with --config the file sets "
				"them\n");
			return 2;
		}
		return run_member(&o);
	}
	if (o.both) {
		if (!o.net.rdma_device[0]) {
			fprintf(stderr, "disco-dsm-bench: --transport both needs --rdma-device for "
				"its rdma run\n");
			return 2;
		}
		return run_both_transports(argv[0], &o);
	}
	if (tool_net_check(&o.net, prog) < 0)
		return 2;
	return run_one_transport(argv[0], &o);
}
