// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What the DSM tools (disco-dsm-stress, disco-dsm-bench) share: a
 * throw-away cluster on this machine for their run without --config (on
 * TCP or RDMA, on loopback or another local address), spawning one member
 * process per node, and joining a region as one member.
 */
#ifndef DISCO_DSM_TOOL_COMMON_H
#define DISCO_DSM_TOOL_COMMON_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cluster-config/cluster_config.h"
#include "dsm/region.h"
#include "rpc/session.h"

/* How the nodes of a generated cluster talk, and where they keep the DSM
 * memory. Every node gets the same address (each its own port) and, with
 * RDMA, the same device. */
struct tool_net {
	enum cluster_transport transport; /* default tcp */
	char address[64];                 /* IP literal; default 127.0.0.1 */
	char rdma_device[64];             /* default "": required with rdma */
	int rdma_port;                    /* default 1 */
	int rdma_gid_index;               /* default 0 */
	enum dsm_backing_kind backing;    /* dsm.backing; default anonymous */
};

/* getopt_long values of the network options; far above any short option
 * character so they cannot clash with a tool's own codes. */
enum {
	TOOL_OPT_TRANSPORT = 0x1000,
	TOOL_OPT_ADDRESS,
	TOOL_OPT_RDMA_DEVICE,
	TOOL_OPT_RDMA_PORT,
	TOOL_OPT_RDMA_GID_INDEX,
	TOOL_OPT_BACKING,
};

/* Entries for a tool's `struct option` table. */
#define TOOL_NET_LONG_OPTIONS                                                          \
	{ "transport", required_argument, 0, TOOL_OPT_TRANSPORT },                     \
	{ "address", required_argument, 0, TOOL_OPT_ADDRESS },                         \
	{ "rdma-device", required_argument, 0, TOOL_OPT_RDMA_DEVICE },                 \
	{ "rdma-port", required_argument, 0, TOOL_OPT_RDMA_PORT },                     \
	{ "rdma-gid-index", required_argument, 0, TOOL_OPT_RDMA_GID_INDEX },           \
	{ "backing", required_argument, 0, TOOL_OPT_BACKING }

void tool_net_init(struct tool_net *n);
/* Apply option @c (a getopt_long value) with argument @arg. Returns 1 when
 * @c is a network option and @arg is good, 0 when @c is not a network
 * option, -EINVAL after one line on stderr starting with @prog otherwise. */
int tool_net_option(struct tool_net *n, int c, const char *arg, const char *prog);
/* The checks that need every option seen (rdma needs a device): 0, or
 * -EINVAL after one line on stderr. */
int tool_net_check(const struct tool_net *n, const char *prog);
/* The usage lines of the network options; @transports is what --transport
 * takes (e.g. "tcp|rdma"). */
void tool_net_usage(FILE *f, const char *transports);
/* One line for humans and scripts: "transport=tcp address=127.0.0.1", with
 * " device=rxe0 port=1 gid_index=1" appended for rdma and " backing=memfd"
 * for memfd backing. */
void tool_net_describe(const struct tool_net *n, char *buf, size_t len);

/* The VM of a generated cluster: its memory, dsm.placement and
 * dsm.min_hold_us, and optionally memory budgets: @node_memory is the YAML
 * value of vms[].node_memory (one size, or a flow mapping like
 * "{n0: 64M, n1: 8M}"), @min_cache that of dsm.min_cache; NULL: none. */
struct tool_vm {
	const char *memory, *placement;
	unsigned min_hold_us;
	const char *node_memory, *min_cache;
};

/* Write a config for @n_nodes on @net's address and transport (free ports,
 * a random key) with the one VM @vm into a new temporary folder @dir
 * (PATH_MAX); the config's path goes to @path (PATH_MAX). On failure
 * nothing is left behind. */
int tool_make_local_config(const struct tool_net *net, int n_nodes, const struct tool_vm *vm,
			   char *path, size_t pathlen, char *dir, size_t dirlen);
/* Remove what tool_make_local_config wrote. */
void tool_remove_local_config(const char *dir);

/* Run `argv0 --config CONFIG --node <name> extra...` for every node of the
 * config, wait for all of them (killing all after @timeout_s), and return
 * the number of members that failed (exit code != 0). */
int tool_run_members(const char *argv0, const char *config, char *const extra[], int timeout_s);

struct tool_member {
	struct cluster_config *cfg;
	struct rpc_session *session;
	struct dsm_region *region;
	int node;
	int vm;
};

/* Load @config, find @node and @vm (NULL: the first VM), create the
 * node's session and the region on it, and join. On failure print one line naming what is wrong and return
 * non-zero. A fatal DSM error later prints and exits with status 3. */
int tool_member_join(struct tool_member *m, const char *config, const char *node, const char *vm);
void tool_member_leave(struct tool_member *m);

uint64_t tool_now_ns(void);
/* A small deterministic RNG (xorshift64*). */
uint64_t tool_rand(uint64_t *state);
double tool_percentile(uint64_t *samples, size_t n, double p); /* sorts @samples */
/* The userfaultfd floor (uffd_floor.c): p50/p99 of @samples local faults
 * served by a busy handler thread with UFFDIO_COPY; 0 or negative errno. */
int tool_uffd_floor(size_t samples, double *p50_us, double *p99_us);

#endif
