// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Ports: what each node's programs listen on, and that no two of them
 * listen on the same address and port.
 *
 * A node has up to three kinds of listener:
 *   - the sessions of the VMs it runs (rpc/session.h): the node's `port`,
 *     or, for a VM with `vms[].port: P`, P + k on the VM's k-th node (in
 *     node order). A VM that names its own port can run next to any other
 *     VM on the same nodes; VMs that keep the nodes' ports cannot run on
 *     one node at the same time (discod refuses the second);
 *   - discod's control port (`control_port`, authenticated with the
 *     cluster key);
 *   - discod's Prometheus endpoint (`metrics_port` on `metrics_address`,
 *     by default the node's address).
 * Loading checks them all against each other (cfg_validate_ports()), so a
 * collision is a config error with a line and column rather than an
 * "address in use" when the second program starts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

int cfg_parse_node_daemon(struct cfg_ctx *c, const yaml_node_t *node, struct cluster_node *n)
{
	static const char what[] = "an IP address or host name";
	const yaml_node_t *v = NULL;
	char q[CFG_QUOTE_MAX];
	int r;

	if ((r = cfg_get_int(c, node, "control_port", false, 1, 65535, &n->control_port)) < 0 ||
	    (r = cfg_get_int(c, node, "metrics_port", false, 1, 65535, &n->metrics_port)) < 0)
		return r;
	snprintf(n->metrics_address, sizeof(n->metrics_address), "%s", n->address);
	size_t saved = cfg_path_key(c, "metrics_address");
	if ((r = cfg_scalar_value(c, node, "metrics_address", false, what, &v)) < 0)
		return r;
	if (r > 0) {
		const char *s = cfg_scalar(v);

		if (v->data.scalar.length != strlen(s) || !cfg_valid_address(s))
			return cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), s));
		snprintf(n->metrics_address, sizeof(n->metrics_address), "%s", s);
	}
	cfg_path_restore(c, saved);
	return 0;
}

int cluster_vm_node_port(const struct cluster_config *cfg, const struct cluster_vm *vm, int node)
{
	int k = 0;

	if (!cfg || !vm || node < 0 || node >= cfg->n_nodes || !(vm->node_mask & (1ull << node)))
		return -EINVAL;
	if (!vm->port)
		return cfg->nodes[node].port;
	for (int i = 0; i < node; i++)
		k += (vm->node_mask >> i) & 1;
	return vm->port + k;
}

/* One listener, for the uniqueness check. */
struct endpoint {
	const char *address;
	int port;
	char field[48];    /* the key that sets it: "nodes[2].control_port" */
	const char *node;  /* whose host it is on */
	int order;         /* position in the file: the later one is blamed */
};

static bool is_wildcard(const char *a)
{
	return !strcmp(a, "0.0.0.0") || !strcmp(a, "::") || !strcmp(a, "0:0:0:0:0:0:0:0");
}

static bool overlap(const struct endpoint *a, const struct endpoint *b)
{
	return a->port == b->port &&
	       (cfg_same_address(a->address, b->address) || is_wildcard(a->address) ||
		is_wildcard(b->address));
}

static int by_port(const void *x, const void *y)
{
	const struct endpoint *a = x, *b = y;

	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	return a->order - b->order;
}

static int collision(struct cfg_ctx *c, const struct endpoint *later, const struct endpoint *first)
{
	bool v6 = strchr(later->address, ':') != NULL;

	cfg_path_set(c, "%s", later->field);
	return cfg_fail_path(c, "port %d on %s%s%s (node \"%s\") is also %s (node \"%s\"); every "
			     "listener needs its own address and port",
			     later->port, v6 ? "[" : "", later->address, v6 ? "]" : "", later->node,
			     first->field, first->node);
}

static void add(struct endpoint *e, size_t *n, const char *address, int port, const char *node,
		const char *fmt, int index)
{
	struct endpoint *x = &e[*n];

	*x = (struct endpoint){.address = address, .port = port, .node = node, .order = (int)*n};
	snprintf(x->field, sizeof(x->field), fmt, index);
	(*n)++;
}

int cfg_validate_ports(struct cfg_ctx *c)
{
	const struct cluster_config *cfg = c->cfg;
	size_t cap = (size_t)cfg->n_nodes * 3, n = 0;
	struct endpoint *e;
	int r = 0;

	for (int v = 0; v < cfg->n_vms; v++)
		if (cfg->vms[v].port)
			cap += (size_t)cfg->n_nodes;
	e = calloc(cap ? cap : 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (int i = 0; i < cfg->n_nodes; i++) {
		const struct cluster_node *nd = &cfg->nodes[i];

		/* node-node duplicates of `port` are reported by check_nodes */
		add(e, &n, nd->address, nd->port, nd->name, "nodes[%d].port", i);
		if (nd->control_port)
			add(e, &n, nd->address, nd->control_port, nd->name, "nodes[%d].control_port", i);
		if (nd->metrics_port)
			add(e, &n, nd->metrics_address, nd->metrics_port, nd->name,
			    "nodes[%d].metrics_port", i);
	}
	for (int v = 0; v < cfg->n_vms; v++) {
		const struct cluster_vm *vm = &cfg->vms[v];

		if (!vm->port)
			continue;
		for (int i = 0; i < cfg->n_nodes; i++) {
			int p = cluster_vm_node_port(cfg, vm, i);

			if (p < 0)
				continue;
			if (p > 65535) {
				cfg_path_set(c, "vms[%d].port", v);
				r = cfg_fail_path(c,
						  "port %d + the node's place in the VM goes beyond 65535 "
						  "(node \"%s\" would get %d)",
						  vm->port, cfg->nodes[i].name, p);
				goto out;
			}
			add(e, &n, cfg->nodes[i].address, p, cfg->nodes[i].name, "vms[%d].port", v);
		}
	}
	qsort(e, n, sizeof(*e), by_port);
	/* Report the collision whose later member comes first in the file. */
	const struct endpoint *blame = NULL, *with = NULL;
	for (size_t a = 0; a < n; a++) {
		for (size_t b = a + 1; b < n && e[b].port == e[a].port; b++) {
			const struct endpoint *first = e[a].order < e[b].order ? &e[a] : &e[b];
			const struct endpoint *later = first == &e[a] ? &e[b] : &e[a];

			if (!overlap(&e[a], &e[b]))
				continue;
			/* two nodes' own ports: check_nodes' message, not ours */
			if (strstr(first->field, "].port") && strstr(later->field, "].port") &&
			    !strncmp(first->field, "nodes", 5) && !strncmp(later->field, "nodes", 5))
				continue;
			if (!blame || later->order < blame->order ||
			    (later->order == blame->order && first->order < with->order)) {
				blame = later;
				with = first;
			}
		}
	}
	if (blame)
		r = collision(c, blame, with);
out:
	free(e);
	return r;
}
