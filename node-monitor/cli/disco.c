// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco: the one command of a disco cluster (cli.h). Global options come
 * before the subcommand; each subcommand has --help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: disco [global options] COMMAND [ARGS...]\n\n"
		"Commands:\n"
		"  vm start VM        start a VM on every node it uses and wait until it runs\n"
		"  vm stop VM         stop it everywhere\n"
		"  vm console VM      the guest's serial console (Ctrl-] leaves)\n"
		"  status             nodes, daemons and VMs: where vCPUs and pages are, faults/s,\n"
		"                     policy actions\n"
		"  stats [--watch]    per VM and node rates: faults, moves, IPIs, I/O, bytes\n"
		"  config check FILE  validate a cluster file\n"
		"  config nodes|vm|vcpus|forward ...   answers about a VM, for scripts\n"
		"  compare [ARGS]     the guest workloads on one QEMU and on the cluster\n"
		"                     (scripts/disco compare; from a source tree)\n"
		"  help               this text\n\n"
		"Global options:\n"
		"  --config FILE      the cluster file (default: $DISCO_CONFIG, else\n"
		"                     /etc/disco/cluster.yaml); read for config and with --tcp\n"
		"  --node NAME        which node's daemon to ask (default: the one daemon of this\n"
		"                     machine)\n"
		"  --run-dir DIR      where the daemons' sockets are (default /run/disco)\n"
		"  --tcp              ask over the node's control port with the cluster key (needs\n"
		"                     the key; without --node the first node that answers)\n\n"
		"Exit status: 0 done; 1 the operation failed (the message says where and why);\n"
		"2 bad command line or config; 3 a daemon could not be reached (named);\n"
		"4 a daemon refused the key, or the key cannot be read; 5 no such VM.\n"
		"See docs/deploy.md.\n");
}

bool cli_is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help") || !strcmp(arg, "help");
}

int main(int argc, char **argv)
{
	const char *env = getenv("DISCO_CONFIG");
	struct cli_global g = {
		.config = env && *env ? env : "/etc/disco/cluster.yaml",
		.run_dir = "/run/disco",
	};
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return CLI_OK;
		} else if (!strcmp(argv[i], "--tcp")) {
			g.tcp = true;
		} else if (i + 1 < argc && !strcmp(argv[i], "--config")) {
			g.config = argv[++i];
		} else if (i + 1 < argc && !strcmp(argv[i], "--node")) {
			g.node = argv[++i];
		} else if (i + 1 < argc && !strcmp(argv[i], "--run-dir")) {
			g.run_dir = argv[++i];
		} else {
			fprintf(stderr, "disco: unknown global option \"%s\" (see disco --help)\n", argv[i]);
			return CLI_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	const char *cmd = argv[i];
	argc -= i;
	argv += i;
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return CLI_OK;
	}
	if (!strcmp(cmd, "vm"))
		return cmd_vm(&g, argc, argv);
	if (!strcmp(cmd, "status"))
		return cmd_status(&g, argc, argv);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(&g, argc, argv);
	if (!strcmp(cmd, "config"))
		return cmd_config(&g, argc, argv);
	if (!strcmp(cmd, "compare"))
		return cmd_compare(&g, argc, argv);
	fprintf(stderr,
		"disco: unknown command \"%s\": vm, status, stats, config, compare (see disco --help)\n",
		cmd);
	return CLI_USAGE;
}
