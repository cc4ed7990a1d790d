// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Reaching a daemon (cli.h).
 *
 * Without --tcp: the local socket RUN_DIR/discod-NODE.sock, where NODE is
 * --node or, when this machine runs exactly one discod, that one. Its
 * file permissions decide who may use it; no key is read, so an operator
 * in the socket's group needs no access to the key.
 * With --tcp: the config's nodes[NODE].control_port with the cluster key
 * (the config and its key must be readable); without --node, the nodes
 * are tried in order and the first that answers is used.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CONNECT_TIMEOUT_MS 3000
#define REQUEST_TIMEOUT_MS 180000 /* vm start waits for the VM to join */

int cli_exit_for(int error)
{
	switch (-error) {
	case 0: return CLI_OK;
	case ENOENT: return CLI_NO_VM;
	case EACCES: case EPERM: return CLI_AUTH;
	case EHOSTUNREACH: case ECONNREFUSED: case ETIMEDOUT: case ENETUNREACH: case EHOSTDOWN:
	case EDESTADDRREQ:
		return CLI_UNREACHABLE;
	case EINVAL: return CLI_USAGE;
	default: return CLI_FAILED;
	}
}

/* The one discod socket in @dir: CLI_OK with its node name in @node, or
 * an exit status after printing. */
static int only_local(const char *dir, char *node, size_t len)
{
	DIR *dh = opendir(dir);
	struct dirent *e;
	char found[1024] = "";
	int n = 0;

	if (!dh) {
		fprintf(stderr,
			"disco: no discod runs on this machine (%s: %s); start one (systemctl start "
			"discod@NODE, docs/deploy.md) or ask another node's with --tcp --node NODE\n",
			dir, strerror(errno));
		return CLI_UNREACHABLE;
	}
	while ((e = readdir(dh))) {
		size_t l = strlen(e->d_name);

		if (strncmp(e->d_name, "discod-", 7) || l < 13 || strcmp(e->d_name + l - 5, ".sock"))
			continue;
		if (n++ == 0)
			snprintf(node, len, "%.*s", (int)(l - 12), e->d_name + 7);
		snprintf(found + strlen(found), sizeof(found) - strlen(found), "%s%.*s", n > 1 ? ", " : "",
			 (int)(l - 12), e->d_name + 7);
	}
	closedir(dh);
	if (n == 1)
		return CLI_OK;
	if (n == 0) {
		fprintf(stderr,
			"disco: no discod runs on this machine (no discod-NODE.sock in %s); start one "
			"(systemctl start discod@NODE, docs/deploy.md) or ask another node's with "
			"--tcp --node NODE\n",
			dir);
		return CLI_UNREACHABLE;
	}
	fprintf(stderr, "disco: %d daemons run on this machine (%s): choose one with --node NODE\n",
		n, found);
	return CLI_USAGE;
}

static int load_config(const struct cli_global *g, struct cluster_config **cfg)
{
	char err[4096];
	int r = cluster_config_load(g->config, cfg, err, sizeof(err));

	if (r < 0) {
		fprintf(stderr, "disco: %s\n", err);
		if (strstr(err, "key_file"))
			fprintf(stderr, "disco: --tcp needs the cluster key: run as its owner (root), or "
					"use the local daemon's socket instead (no --tcp)\n");
		return strstr(err, "key_file") ? CLI_AUTH : CLI_USAGE;
	}
	return CLI_OK;
}

static int connect_tcp(const struct cli_global *g, struct control_conn *c, char *who, size_t wholen)
{
	struct cluster_config *cfg;
	char err[1024];
	int r = load_config(g, &cfg), first, last;

	if (r != CLI_OK)
		return r;
	if (g->node) {
		first = last = cluster_config_find_node(cfg, g->node);
		if (first < 0) {
			fprintf(stderr, "disco: no node named \"%s\" in %s\n", g->node, g->config);
			cluster_config_free(cfg);
			return CLI_USAGE;
		}
	} else {
		first = 0;
		last = cfg->n_nodes - 1;
	}
	r = CLI_UNREACHABLE;
	for (int n = first; n <= last; n++) {
		int e = control_connect_tcp(cfg, n, "", CONNECT_TIMEOUT_MS, c, err, sizeof(err));

		if (e == 0) {
			snprintf(who, wholen, "%s", c->peer);
			r = CLI_OK;
			break;
		}
		fprintf(stderr, "disco: %s\n", err);
		r = e == -EACCES || e == -EPERM ? CLI_AUTH : CLI_UNREACHABLE;
		if (r == CLI_AUTH)
			break; /* the same key everywhere: no use trying the others */
	}
	cluster_config_free(cfg);
	return r;
}

int cli_connect(const struct cli_global *g, struct control_conn *c, char *who, size_t wholen)
{
	char node[CLUSTER_NAME_MAX], path[4200], err[1024];
	int r;

	if (g->tcp)
		return connect_tcp(g, c, who, wholen);
	if (g->node) {
		snprintf(node, sizeof(node), "%s", g->node);
	} else if ((r = only_local(g->run_dir, node, sizeof(node))) != CLI_OK) {
		return r;
	}
	snprintf(path, sizeof(path), "%s/discod-%s.sock", g->run_dir, node);
	snprintf(who, wholen, "discod %s (%s)", node, path);
	r = control_connect_unix(path, who, c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "disco: %s\n", err);
		return r == -EACCES ? CLI_AUTH : CLI_UNREACHABLE;
	}
	return CLI_OK;
}

int cli_request(const struct cli_global *g, Disco__ControlRequest *rq, Disco__ControlReply **reply)
{
	struct control_conn c;
	char who[256], err[1024];
	int r;

	*reply = NULL;
	rq->version = CONTROL_VERSION;
	if ((r = cli_connect(g, &c, who, sizeof(who))) != CLI_OK)
		return r;
	r = control_call(&c, rq, reply, REQUEST_TIMEOUT_MS, err, sizeof(err));
	control_conn_close(&c);
	if (r < 0) {
		fprintf(stderr, "disco: %s\n", err);
		return r == -ETIMEDOUT ? CLI_UNREACHABLE : CLI_FAILED;
	}
	if ((*reply)->error) {
		fprintf(stderr, "disco: %s\n", (*reply)->message);
		r = cli_exit_for((*reply)->error);
		disco__control_reply__free_unpacked(*reply, NULL);
		*reply = NULL;
		return r;
	}
	return CLI_OK;
}
