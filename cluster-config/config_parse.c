/*
 * Tree walk of a cluster file, part 1: the top level, the cluster block
 * and the node list. (VMs are in config_parse_vm.c.)
 *
 * The walk checks each value on its own (type, syntax, range) and fills
 * defaults; relations between values (unique names, one transport, sums)
 * are left to config_validate.c. Sections are read in a fixed order,
 * cluster then nodes then vms, whatever their order in the file, because
 * a node's default transport comes from the cluster and a VM names nodes.
 */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

static const char *const top_keys[] = {"cluster", "nodes", "vms", NULL};
static const char *const cluster_keys[] = {"name",         "transport",       "auth",
					   "heartbeat_ms", "peer_timeout_ms", "connect_timeout_ms",
					   "hello_timeout_ms", "proof_timeout_ms", "loop", NULL};
static const char *const auth_keys[] = {"key_file", NULL};
static const char *const node_keys[] = {"name", "address", "port", "transport", "rdma", NULL};
static const char *const rdma_keys[] = {"device", "port", "gid_index", NULL};
static const char *const loop_keys[] = {"poll_us", "poll_linger_us", "poll_yield", "priority",
					NULL};
static const char *const priorities[] = {"nice", "fifo", "none", NULL}; /* enum rpc_loop_priority */
static const char *const yes_no[] = {"false", "true", NULL};
static const char *const transports[] = {"tcp", "rdma", NULL}; /* enum cluster_transport order */

static int parse_auth(struct cfg_ctx *c, const yaml_node_t *cluster)
{
	size_t saved = cfg_path_key(c, "auth");
	const yaml_node_t *auth = cfg_map_get(c, cluster, "auth");
	int r;

	if ((r = cfg_want_map(c, cluster, auth, true)) < 0 ||
	    (r = cfg_check_keys(c, auth, auth_keys)) < 0 || (r = cfg_read_key(c, auth)) < 0)
		return r;
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_loop(struct cfg_ctx *c, const yaml_node_t *cluster)
{
	struct rpc_loop_settings *l = &c->cfg->loop;
	size_t saved = cfg_path_key(c, "loop");
	const yaml_node_t *m = cfg_map_get(c, cluster, "loop");
	int priority, yield;
	int r;

	*l = rpc_loop_settings_default();
	priority = (int)l->priority;
	yield = l->poll_yield;
	if ((r = cfg_want_map(c, cluster, m, false)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	if ((r = cfg_check_keys(c, m, loop_keys)) < 0 ||
	    (r = cfg_get_u32(c, m, "poll_us", false, 0, 100000, &l->poll_us)) < 0 ||
	    (r = cfg_get_u32(c, m, "poll_linger_us", false, 0, 100000, &l->poll_linger_us)) < 0 ||
	    (r = cfg_get_choice(c, m, "poll_yield", false, yes_no, &yield)) < 0 ||
	    (r = cfg_get_choice(c, m, "priority", false, priorities, &priority)) < 0)
		return r;
	l->poll_yield = yield != 0;
	l->priority = (enum rpc_loop_priority)priority;
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_cluster(struct cfg_ctx *c, const yaml_node_t *root)
{
	struct cluster_config *cfg = c->cfg;
	size_t saved = cfg_path_key(c, "cluster");
	const yaml_node_t *m = cfg_map_get(c, root, "cluster");
	int transport = CLUSTER_TRANSPORT_TCP;
	int r;

	if ((r = cfg_want_map(c, root, m, true)) < 0 || (r = cfg_check_keys(c, m, cluster_keys)) < 0)
		return r;
	cfg->heartbeat_ms = 200;
	cfg->peer_timeout_ms = 3000;
	cfg->connect_timeout_ms = 30000;
	cfg->hello_timeout_ms = 1000;
	cfg->proof_timeout_ms = 1000;
	if ((r = cfg_get_name(c, m, "name", true, "a cluster name", cfg->name)) < 0 ||
	    (r = cfg_get_choice(c, m, "transport", false, transports, &transport)) < 0 ||
	    (r = parse_auth(c, m)) < 0 ||
	    (r = cfg_get_u32(c, m, "heartbeat_ms", false, 10, 60000, &cfg->heartbeat_ms)) < 0 ||
	    (r = cfg_get_u32(c, m, "peer_timeout_ms", false, 1, 600000, &cfg->peer_timeout_ms)) < 0 ||
	    (r = cfg_get_u32(c, m, "connect_timeout_ms", false, 100, 600000,
			     &cfg->connect_timeout_ms)) < 0 ||
	    (r = cfg_get_u32(c, m, "hello_timeout_ms", false, 10, 60000, &cfg->hello_timeout_ms)) < 0 ||
	    (r = cfg_get_u32(c, m, "proof_timeout_ms", false, 10, 60000, &cfg->proof_timeout_ms)) < 0 ||
	    (r = parse_loop(c, m)) < 0)
		return r;
	cfg->transport = (enum cluster_transport)transport;
	cfg_path_restore(c, saved);
	return 0;
}

/* The rdma block is checked even on TCP nodes, where it is unused, so a
 * typo is caught before someone switches the cluster to RDMA. */
static int parse_rdma(struct cfg_ctx *c, const yaml_node_t *node, struct cluster_rdma *rdma)
{
	size_t saved = cfg_path_key(c, "rdma");
	const yaml_node_t *m = cfg_map_get(c, node, "rdma");
	int r;

	rdma->port = 1;
	rdma->gid_index = 0;
	if ((r = cfg_want_map(c, node, m, false)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	if ((r = cfg_check_keys(c, m, rdma_keys)) < 0 ||
	    (r = cfg_get_name(c, m, "device", true, "an RDMA device name", rdma->device)) < 0 ||
	    (r = cfg_get_int(c, m, "port", false, 1, 255, &rdma->port)) < 0 ||
	    (r = cfg_get_int(c, m, "gid_index", false, 0, 255, &rdma->gid_index)) < 0)
		return r;
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_address(struct cfg_ctx *c, const yaml_node_t *node, struct cluster_node *n)
{
	static const char what[] = "an IP address or host name";
	size_t saved = cfg_path_key(c, "address");
	const yaml_node_t *v = NULL;
	char q[CFG_QUOTE_MAX];
	int r;

	if ((r = cfg_scalar_value(c, node, "address", true, what, &v)) < 0)
		return r;
	const char *s = cfg_scalar(v);
	/* Host names are at most 253 bytes, so any valid one fits. */
	if (v->data.scalar.length != strlen(s) || !cfg_valid_address(s))
		return cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), s));
	snprintf(n->address, sizeof(n->address), "%s", s);
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_node(struct cfg_ctx *c, const yaml_node_t *m, struct cluster_node *n)
{
	int transport = (int)c->cfg->transport;
	int r;

	if ((r = cfg_want_map(c, m, m, true)) < 0 || (r = cfg_check_keys(c, m, node_keys)) < 0 ||
	    (r = cfg_get_name(c, m, "name", true, "a node name", n->name)) < 0 ||
	    (r = parse_address(c, m, n)) < 0 ||
	    (r = cfg_get_int(c, m, "port", true, 1, 65535, &n->port)) < 0 ||
	    (r = cfg_get_choice(c, m, "transport", false, transports, &transport)) < 0 ||
	    (r = parse_rdma(c, m, &n->rdma)) < 0)
		return r;
	n->transport = (enum cluster_transport)transport;
	return 0;
}

static int parse_nodes(struct cfg_ctx *c, const yaml_node_t *root)
{
	size_t saved = cfg_path_key(c, "nodes");
	const yaml_node_t *seq = cfg_map_get(c, root, "nodes");
	size_t n;
	int r;

	if ((r = cfg_want_seq(c, root, seq, true)) < 0)
		return r;
	n = cfg_len(seq);
	if (n == 0)
		return cfg_fail(c, seq, "expected a list of 1..%d nodes, got an empty list",
				CLUSTER_MAX_NODES);
	if (n > CLUSTER_MAX_NODES) {
		cfg_path_index(c, CLUSTER_MAX_NODES);
		return cfg_fail(c, cfg_seq_item(c, seq, CLUSTER_MAX_NODES),
				"too many nodes: at most %d are supported (DSM copysets are "
				"64-bit bitmaps), got %zu",
				CLUSTER_MAX_NODES, n);
	}
	for (size_t i = 0; i < n; i++) {
		size_t at = cfg_path_index(c, i);

		const yaml_node_t *item = cfg_seq_item(c, seq, i);
		if ((r = parse_node(c, item, &c->cfg->nodes[i])) < 0)
			return r;
		/* Here, before the VMs, whose placements name nodes: a
		 * duplicate name must not read as an unknown node there. */
		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->cfg->nodes[i].name, c->cfg->nodes[j].name))
				continue;
			cfg_path_key(c, "name");
			return cfg_fail(c, cfg_map_get(c, item, "name"),
					"duplicate node name \"%s\" (also nodes[%zu])",
					c->cfg->nodes[i].name, j);
		}
		cfg_path_restore(c, at);
		c->cfg->n_nodes = (int)i + 1;
	}
	cfg_path_restore(c, saved);
	return 0;
}

int cfg_parse(struct cfg_ctx *c, const yaml_node_t *root)
{
	char q[CFG_QUOTE_MAX];
	int r;

	if (root->type != YAML_MAPPING_NODE)
		return cfg_fail(c, root,
				"expected a mapping with keys \"cluster\", \"nodes\" and "
				"optionally \"vms\", got %s",
				cfg_describe(q, sizeof(q), root));
	if ((r = cfg_check_keys(c, root, top_keys)) < 0 || (r = parse_cluster(c, root)) < 0 ||
	    (r = parse_nodes(c, root)) < 0 || (r = cfg_parse_vms(c, root)) < 0)
		return r;
	return 0;
}
