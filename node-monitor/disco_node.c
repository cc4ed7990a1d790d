// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-node: the node monitor, one per machine of the cluster. It starts
 * this machine's share of a distributed VM, which is one patched QEMU
 * process, and lives exactly as long as it.
 *
 * It is a thin command in the kvmtool sense: parse the options, load and
 * check the cluster file (cluster-config/), find this node and the VM,
 * locate the QEMU binary, then hand over to qemu_cmdline.c (the argv, the
 * same machine on every node) and qemu_run.c (fork, forward signals,
 * wait). All cross-node work (DSM, vCPU placement, I/O and interrupt
 * forwarding) happens inside QEMU's disco object, which reads the same
 * cluster file.
 *
 * Exit status: 0 when QEMU exited 0; 1 when it failed, was killed or could
 * not be executed; 2 when nothing was started because the command line,
 * the config, the QEMU binary or the guest files are wrong.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster-config/cluster_config.h"
#include "qemu_cmdline.h"
#include "qemu_run.h"
#include "vm_query.h"

#define EXIT_GUEST_FAILED 1
#define EXIT_BAD_SETUP 2
#define MAX_LISTED 20 /* names shown in "the nodes are ..." before "and N more" */

struct cli {
	const char *config, *node, *vm, *qemu, *stats, *append;
	enum node_accel accel;
	enum node_console console;
	const char *console_path;
	bool console_given, dry_run, argv_lines;
	char *const *extra;
	int n_extra;
	char who[CLUSTER_NAME_MAX + 16]; /* log prefix: "disco-node NODE" */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: disco-node --config FILE --node NAME [options] [-- extra QEMU args...]\n"
		"Starts this machine's QEMU for a distributed VM and exits with it.\n\n"
		"  --config FILE        cluster file (docs/config.md)\n"
		"  --node NAME          this machine's node in the cluster file\n"
		"  --vm NAME            the VM to run (may be left out when the file has one VM)\n"
		"  --qemu PATH          patched QEMU binary (default: $DISCO_QEMU, else the one\n"
		"                       installed (../lib/disco) or built (make) with disco-node)\n"
		"  --accel tcg|kvm      accelerator (default tcg: multi-threaded TCG)\n"
		"  --console stdio|null|socket:PATH\n"
		"                       guest serial console on the master node (default stdio);\n"
		"                       other nodes always use null\n"
		"  --stats FILE         the disco object writes its statistics to FILE\n"
		"  --append TEXT        added to the VM's kernel command line\n"
		"  --dry-run            print the QEMU command line and exit\n"
		"  --argv-lines         with --dry-run: one argument per line, unquoted\n"
		"  --help               this text\n"
		"  -- ARGS...           passed to QEMU after the generated arguments\n\n"
		"Answers about a VM for scripts (its nodes, name, vCPUs, forwarded ports):\n"
		"`disco config nodes|vm|vcpus|forward`.\n"
		"Exit status: 0 guest exited cleanly, 1 QEMU failed or was killed,\n"
		"2 bad arguments, config, QEMU binary or guest files (nothing started).\n");
}

/* "a, b, c" from @n names, at most MAX_LISTED, then "and N more". */
static void list_names(char *buf, size_t len, int n,
		       const char *(*name)(const struct cluster_config *, int),
		       const struct cluster_config *cfg)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && i < MAX_LISTED && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%s", i ? ", " : "", name(cfg, i));
	if (n > MAX_LISTED && used < len)
		snprintf(buf + used, len - used, " and %d more", n - MAX_LISTED);
}

static const char *node_name(const struct cluster_config *cfg, int i)
{
	return cfg->nodes[i].name;
}

/* 0 on success, 1 for --help, -EINVAL after printing what is wrong. */
static int parse_args(int argc, char **argv, struct cli *c)
{
	static const struct option lo[] = {
		{"config", required_argument, 0, 'c'}, {"node", required_argument, 0, 'n'},
		{"vm", required_argument, 0, 'v'},     {"qemu", required_argument, 0, 'q'},
		{"accel", required_argument, 0, 'a'},  {"console", required_argument, 0, 'C'},
		{"stats", required_argument, 0, 's'},  {"append", required_argument, 0, 'A'},
		{"dry-run", no_argument, 0, 'd'},      {"help", no_argument, 0, 'h'},
		{"argv-lines", no_argument, 0, 'l'},
		{0, 0, 0, 0},
	};
	const char *last_optarg = NULL;

	opterr = 0;
	for (int ch; (ch = getopt_long(argc, argv, "+:h", lo, NULL)) != -1;) {
		last_optarg = optarg;
		switch (ch) {
		case 'c': c->config = optarg; break;
		case 'n': c->node = optarg; break;
		case 'v': c->vm = optarg; break;
		case 'q': c->qemu = optarg; break;
		case 's': c->stats = optarg; break;
		case 'A': c->append = optarg; break;
		case 'd': c->dry_run = true; break;
		case 'l': c->argv_lines = true; break;
		case 'h': return 1;
		case 'a':
			if (!strcmp(optarg, "tcg")) {
				c->accel = NODE_ACCEL_TCG;
			} else if (!strcmp(optarg, "kvm")) {
				c->accel = NODE_ACCEL_KVM;
			} else {
				fprintf(stderr, "disco-node: --accel: expected tcg or kvm, got \"%s\"\n", optarg);
				return -EINVAL;
			}
			break;
		case 'C':
			c->console_given = true;
			if (!strcmp(optarg, "stdio")) {
				c->console = NODE_CONSOLE_STDIO;
			} else if (!strcmp(optarg, "null")) {
				c->console = NODE_CONSOLE_NULL;
			} else if (!strncmp(optarg, "socket:", 7) && optarg[7]) {
				c->console = NODE_CONSOLE_SOCKET;
				c->console_path = optarg + 7;
			} else {
				fprintf(stderr,
					"disco-node: --console: expected stdio, null or socket:PATH, got \"%s\"\n",
					optarg);
				return -EINVAL;
			}
			break;
		case ':':
			fprintf(stderr, "disco-node: option %s needs a value (see --help)\n", argv[optind - 1]);
			return -EINVAL;
		default:
			fprintf(stderr, "disco-node: unknown option \"%s\"\n", argv[optind - 1]);
			usage(stderr);
			return -EINVAL;
		}
	}
	/* What is left must follow a "--" that getopt consumed as the end of
	 * options (not as the value of an option such as --append --). */
	if (optind < argc && !(optind > 1 && !strcmp(argv[optind - 1], "--") &&
			       last_optarg != argv[optind - 1])) {
		fprintf(stderr,
			"disco-node: unexpected argument \"%s\" (QEMU arguments go after \"--\"; see --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	c->extra = argv + optind;
	c->n_extra = argc - optind;
	if (!c->config || !c->node) {
		fprintf(stderr, "disco-node: %s is required (see --help)\n",
			!c->config ? "--config FILE" : "--node NAME");
		return -EINVAL;
	}
	snprintf(c->who, sizeof(c->who), "disco-node%s%.*s", c->node ? " " : "", CLUSTER_NAME_MAX,
		 c->node ? c->node : "");
	return 0;
}

/* @name searched in $PATH when it has no '/'; into @out (PATH_MAX). */
static void search_path(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");

	snprintf(out, len, "%s", name);
	if (strchr(name, '/') || !path)
		return;
	while (*path) {
		size_t n = strcspn(path, ":");
		char cand[PATH_MAX];

		if (snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, n ? path : ".", name) < (int)sizeof(cand) &&
		    access(cand, X_OK) == 0) {
			snprintf(out, len, "%s", cand);
			return;
		}
		path += n + (path[n] == ':');
	}
}

/* The QEMU binary into @out (PATH_MAX); -ENOENT after printing. */
static int find_qemu(const struct cli *c, char *out, size_t len)
{
	const char *env = getenv("DISCO_QEMU"), *from;
	struct stat st;
	const char *why;

	if (c->qemu) {
		search_path(c->qemu, out, len);
		from = "--qemu";
	} else if (env && *env) {
		search_path(env, out, len);
		from = "$DISCO_QEMU";
	} else {
		int r = qemu_default_path(out, len);

		if (r < 0) {
			fprintf(stderr, "disco-node %s: cannot find the default QEMU: %s; give it with "
				"--qemu PATH\n", c->node, strerror(-r));
			return r;
		}
		from = "default";
	}
	if (stat(out, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (access(out, X_OK) < 0)
		why = strerror(errno);
	else
		return 0;
	fprintf(stderr,
		"disco-node %s: QEMU binary %s (%s) is not executable: %s; run `make` to build the patched "
		"QEMU (scripts/build-qemu.sh), or give another with --qemu PATH or $DISCO_QEMU\n",
		c->node, out, from, why);
	return -ENOENT;
}

/* The guest memory this node may come to hold must fit this machine.
 * Without a budget a node keeps a copy of every page it touches (and with
 * dsm.backing memfd allocates the whole region at start), so the VM's
 * memory is the bound; with one (vms[].node_memory) it holds at most its
 * budget, so a VM larger than this machine may run, and the budget is the
 * bound. 0, or -ENOMEM after printing. */
static int check_host_memory(const struct cli *c, const struct cluster_vm *vm, int node)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return 0; /* nothing to compare with: QEMU will say */
	uint64_t host = (uint64_t)si.totalram * si.mem_unit;
	uint64_t budget = vm->dsm.node_budget[node];
	if (budget) {
		if (budget <= host)
			return 0;
		fprintf(stderr,
			"disco-node %s: vm %s gives node %s a memory budget of %" PRIu64 " MiB "
			"(vms[].node_memory), more than this machine's %" PRIu64 " MiB\n",
			c->node, vm->name, c->node, budget >> 20, host >> 20);
		return -ENOMEM;
	}
	if (vm->memory_bytes <= host)
		return 0;
	fprintf(stderr,
		"disco-node %s: vm %s has %" PRIu64 " MiB of guest memory, more than this machine's "
		"%" PRIu64 " MiB: %s; give the nodes memory budgets (vms[].node_memory) to run it\n",
		c->node, vm->name, vm->memory_bytes >> 20, host >> 20,
		vm->dsm.backing == DSM_BACKING_MEMFD
			? "dsm.backing memfd allocates the whole region on every node at start"
			: "a node keeps a copy of every page it touches, so it may come to hold all of them");
	return -ENOMEM;
}

/* Run QEMU and turn its end into disco-node's exit status. */
static int run(const struct cli *c, char **argv)
{
	char note[CLUSTER_NAME_MAX + 64];
	int status, r;

	snprintf(note, sizeof(note), "disco-node %s: second signal: killing qemu\n", c->node);
	r = qemu_run(argv, note, &status);

	if (r < 0) {
		fprintf(stderr, "disco-node %s: cannot run %s: %s\n", c->node, argv[0], strerror(-r));
		return EXIT_GUEST_FAILED;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		fprintf(stderr, "disco-node %s: qemu exited\n", c->node);
		return 0;
	}
	if (WIFSIGNALED(status)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(status));

		if (abbrev)
			fprintf(stderr, "disco-node %s: qemu killed by signal SIG%s\n", c->node, abbrev);
		else
			fprintf(stderr, "disco-node %s: qemu killed by signal %d\n", c->node, WTERMSIG(status));
	} else {
		fprintf(stderr, "disco-node %s: qemu exited with status %d\n", c->node, WEXITSTATUS(status));
	}
	return EXIT_GUEST_FAILED;
}

int main(int argc, char **argv)
{
	struct cli c = {.accel = NODE_ACCEL_TCG, .console = NODE_CONSOLE_STDIO};
	struct cluster_config *cfg = NULL;
	struct node_qemu_opts qo;
	char err[4096], names[2048], qemu[PATH_MAX], config_abs[PATH_MAX];
	char **qargv = NULL;
	const struct cluster_vm *vm;
	int node, vmi, r, ret = EXIT_BAD_SETUP;

	if (argc < 2) {
		usage(stderr);
		return EXIT_BAD_SETUP;
	}
	r = parse_args(argc, argv, &c);
	if (r == 1) {
		usage(stdout);
		return 0;
	}
	if (r < 0)
		return EXIT_BAD_SETUP;

	if (cluster_config_load(c.config, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_BAD_SETUP;
	}
	node = cluster_config_find_node(cfg, c.node);
	if (node < 0) {
		list_names(names, sizeof(names), cfg->n_nodes, node_name, cfg);
		fprintf(stderr, "disco-node: no node named \"%s\" in %s; the nodes are %s\n", c.node, c.config,
			names);
		goto out;
	}
	vmi = vm_query_pick(cfg, c.vm, c.who);
	if (vmi < 0)
		goto out;
	vm = &cfg->vms[vmi];
	if (!realpath(c.config, config_abs)) {
		fprintf(stderr, "disco-node %s: %s: %s\n", c.node, c.config, strerror(errno));
		goto out;
	}
	if (find_qemu(&c, qemu, sizeof(qemu)) < 0)
		goto out;

	qo = (struct node_qemu_opts){
		.qemu = qemu,
		.config_path = config_abs,
		.accel = c.accel,
		.console = c.console,
		.console_path = c.console_path,
		.stats = c.stats,
		.append = c.append,
		.extra = c.extra,
		.n_extra = c.n_extra,
	};
	r = qemu_cmdline_build(cfg, vm, node, &qo, &qargv, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "disco-node %s: %s\n", c.node, err);
		goto out;
	}
	/* the devices' images and ports are the master's (the others open none) */
	if (node == vm->master_node && cluster_vm_check_host(cfg, vmi, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}

	if (c.dry_run && c.argv_lines) {
		for (char **a = qargv; *a; a++)
			printf("%s\n", *a);
		ret = 0;
		goto out;
	}
	if (c.dry_run) {
		char *line = qemu_cmdline_quote(qargv);

		if (!line) {
			fprintf(stderr, "disco-node %s: out of memory\n", c.node);
			goto out;
		}
		printf("%s\n", line);
		free(line);
		ret = 0;
		goto out;
	}

	if (check_host_memory(&c, vm, node) < 0)
		goto out;
	if (!vm->kernel[0])
		fprintf(stderr,
			"disco-node %s: VM %s has no kernel in %s; the guest will only run the firmware\n",
			c.node, vm->name, c.config);
	if (node != vm->master_node && c.console_given && c.console != NODE_CONSOLE_NULL)
		fprintf(stderr,
			"disco-node %s: --console ignored: the guest console belongs to the master node %s\n",
			c.node, cfg->nodes[vm->master_node].name);
	if (node == vm->master_node && c.console == NODE_CONSOLE_SOCKET)
		fprintf(stderr, "disco-node %s: guest console on unix socket %s (e.g. socat - UNIX-CONNECT:%s)\n",
			c.node, c.console_path, c.console_path);
	fprintf(stderr, "disco-node %s: starting %s for VM %s (%d vCPUs, %d here; %s; %s)\n", c.node, qemu,
		vm->name, vm->vcpus, vm->vcpus_per_node[node], c.accel == NODE_ACCEL_KVM ? "kvm" : "tcg",
		node == vm->master_node ? "master" : "not master");
	if (vm->n_disks || vm->n_nics)
		fprintf(stderr, "disco-node %s: %d disk%s, %d NIC%s %s\n", c.node, vm->n_disks,
			vm->n_disks == 1 ? "" : "s", vm->n_nics, vm->n_nics == 1 ? "" : "s",
			node == vm->master_node ? "(images and networks here)"
						: "(owned by the master: null backends here)");
	fflush(stderr);
	fflush(stdout);
	ret = run(&c, qargv);
out:
	qemu_cmdline_free(qargv);
	cluster_config_free(cfg);
	return ret;
}
