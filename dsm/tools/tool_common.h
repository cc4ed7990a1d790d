/*
 * What the DSM tools (disco-dsm-stress, disco-dsm-bench) share: a
 * throw-away local cluster for their no-argument run, spawning one member
 * process per node, and joining a region as one member.
 */
#ifndef DISCO_DSM_TOOL_COMMON_H
#define DISCO_DSM_TOOL_COMMON_H

#include <stdint.h>
#include <sys/types.h>

#include "cluster-config/cluster_config.h"
#include "dsm/region.h"

/* Write a config for @n_nodes on 127.0.0.1 (free ports, a random key) into
 * a new temporary folder; its path goes to @path (PATH_MAX). */
int tool_make_local_config(int n_nodes, const char *memory, const char *placement,
			   unsigned min_hold_us, char *path, size_t pathlen, char *dir, size_t dirlen);
/* Remove what tool_make_local_config wrote. */
void tool_remove_local_config(const char *dir);

/* Run `argv0 --config CONFIG --node <name> extra...` for every node of the
 * config, wait for all of them (killing all after @timeout_s), and return
 * the number of members that failed (exit code != 0). */
int tool_run_members(const char *argv0, const char *config, char *const extra[], int timeout_s);

struct tool_member {
	struct cluster_config *cfg;
	struct dsm_region *region;
	int node;
	int vm;
};

/* Load @config, find @node and @vm (NULL: the first VM), create and start
 * the region. On failure print one line naming what is wrong and return
 * non-zero. A fatal DSM error later prints and exits with status 3. */
int tool_member_join(struct tool_member *m, const char *config, const char *node, const char *vm);
void tool_member_leave(struct tool_member *m);

uint64_t tool_now_ns(void);
/* A small deterministic RNG (xorshift64*). */
uint64_t tool_rand(uint64_t *state);
double tool_percentile(uint64_t *samples, size_t n, double p); /* sorts @samples */

#endif
