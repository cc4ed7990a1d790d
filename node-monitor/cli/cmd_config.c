// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco config check|nodes|vm|vcpus|forward, and disco compare: the
 * subcommands that need no daemon. `config check` is the cluster-config
 * module's checker (config_check.c); the queries answer scripts
 * (vm_query.c); compare runs the benchmark script of the source tree
 * this disco was built from.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cluster-config/config_check.h"
#include "node-monitor/vm_query.h"

static void config_usage(FILE *f)
{
	fprintf(f,
		"usage: disco config check [--no-host | --nodes] FILE\n"
		"       disco config nodes|vm|vcpus [--vm NAME] FILE\n"
		"       disco config forward PORT [--vm NAME] FILE\n\n"
		"check    validate FILE and print a summary, or its first error as\n"
		"         FILE:LINE:COL: FIELD: MESSAGE (exit 1); --no-host skips the checks\n"
		"         that need the VMs' master hosts (disk images, forwarded ports)\n"
		"nodes    the VM's nodes, master first, one per line\n"
		"vm       the VM's name (the file's only VM when --vm is not given)\n"
		"vcpus    its vCPU count\n"
		"forward  \"HOST HOST_PORT\" where the master forwards guest TCP port PORT\n"
		"         (exit 1 when no NIC forwards it)\n");
}

int cmd_config(const struct cli_global *g, int argc, char **argv)
{
	static const struct {
		const char *name;
		enum vm_query q;
	} queries[] = {{"nodes", VM_QUERY_NODES},
		       {"vm", VM_QUERY_NAME},
		       {"vcpus", VM_QUERY_VCPUS},
		       {"forward", VM_QUERY_FORWARD}};
	const char *vm = NULL, *file = NULL;
	struct cluster_config *cfg;
	char err[4096];
	int port = 0, q = -1, r;

	if (argc < 2 || cli_is_help(argv[1])) {
		config_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "check"))
		return disco_config_check(argc - 1, argv + 1) == 0 ? CLI_OK : CLI_FAILED;
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
		if (!strcmp(argv[1], queries[i].name))
			q = (int)i;
	if (q < 0) {
		fprintf(stderr,
			"disco config: unknown subcommand \"%s\": check, nodes, vm, vcpus or forward\n",
			argv[1]);
		return CLI_USAGE;
	}
	int i = 2;
	if (queries[q].q == VM_QUERY_FORWARD) {
		char *end;

		port = i < argc ? (int)strtol(argv[i], &end, 10) : 0;
		if (i >= argc || *end || port < 1 || port > 65535) {
			fprintf(stderr, "disco config forward: expected a guest port in 1..65535\n");
			return CLI_USAGE;
		}
		i++;
	}
	for (; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			config_usage(stdout);
			return CLI_OK;
		} else if (!strcmp(argv[i], "--vm") && i + 1 < argc) {
			vm = argv[++i];
		} else if (argv[i][0] != '-' && !file) {
			file = argv[i];
		} else {
			fprintf(stderr, "disco config %s: unexpected argument \"%s\" (see disco config --help)\n",
				argv[1], argv[i]);
			return CLI_USAGE;
		}
	}
	if (!file)
		file = g->config;
	if (cluster_config_load(file, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return CLI_USAGE;
	}
	r = vm_query(cfg, vm, queries[q].q, port, "disco config");
	/* not chosen: a file of several VMs needs --vm (a usage error); a
	 * named VM that is not there, or a file without VMs, is no such VM */
	bool must_choose = !vm && cfg->n_vms > 1;
	cluster_config_free(cfg);
	if (r == 2)
		return must_choose ? CLI_USAGE : CLI_NO_VM;
	return r;
}

int cmd_compare(const struct cli_global *g, int argc, char **argv)
{
	char script[PATH_MAX];

	snprintf(script, sizeof(script), "%s/scripts/disco", DISCO_SOURCE_DIR);
	if (access(script, X_OK) != 0) {
		fprintf(stderr,
			"disco compare: runs from the source tree this disco was built from (it boots the "
			"test guests of its build): %s: %s\n",
			script, strerror(errno));
		return CLI_FAILED;
	}
	char **args = calloc((size_t)argc + 2, sizeof(*args));
	if (!args)
		return CLI_FAILED;
	args[0] = script;
	args[1] = "compare";
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	execv(script, args);
	fprintf(stderr, "disco compare: cannot run %s: %s\n", script, strerror(errno));
	free(args);
	return CLI_FAILED;
}
