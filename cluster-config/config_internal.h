// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Private interface between the files of the cluster-config module.
 *
 * Parsing is one pass over the libyaml document tree (config_parse*.c)
 * followed by one pass of cross-field checks over the filled struct
 * (config_validate.c). Both passes share a struct cfg_ctx that carries the
 * document (so any error can be placed at a line and column), the field
 * path of the value being looked at ("nodes[2].address"), and the caller's
 * error buffer. The first error stops everything: every function returns 0
 * or a negative errno, and only the first failure writes a message.
 */
#ifndef DISCO_CONFIG_INTERNAL_H
#define DISCO_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "cluster_config.h"

#define CFG_PATH_MAX 512
#define CFG_MAX_VMS 1024 /* bounds the allocation a hostile file can ask for */

struct cfg_ctx {
	const char *name;           /* file name used in messages */
	char dir[4096];             /* absolute folder relative paths resolve against */
	yaml_document_t *doc;
	struct cluster_config *cfg; /* being filled */
	char path[CFG_PATH_MAX];    /* field path of the value being parsed */
	size_t path_len;
	char *err;                  /* caller's buffer, may be NULL */
	size_t errlen;
	bool failed;                /* an error message has been written */
};

/* ---- field path (config_error.c) ---- */

/* Append ".key" (or "key" at the top) / "[i]"; return the old length for
 * cfg_path_restore(). Overlong paths are truncated, never overflowed. */
size_t cfg_path_key(struct cfg_ctx *c, const char *key);
size_t cfg_path_index(struct cfg_ctx *c, size_t i);
void cfg_path_restore(struct cfg_ctx *c, size_t len);
/* Replace the whole path (used by the validator, which has no walk). */
void cfg_path_set(struct cfg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- error messages (config_error.c) ---- */

/* Each writes "name:line:col: path: message" (no "path: " when the path is
 * empty) and returns -EINVAL. Lines and columns are printed 1-based. */
int cfg_fail(struct cfg_ctx *c, const yaml_node_t *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int cfg_fail_mark(struct cfg_ctx *c, yaml_mark_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Places the error at the node the current path names in the document, or
 * at the deepest part of the path that exists (a defaulted key has no node
 * of its own, so the error points at the mapping that lacks it). */
int cfg_fail_path(struct cfg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Node the path @path names, or NULL. */
const yaml_node_t *cfg_lookup(const struct cfg_ctx *c, const char *path);

/* Write @s into @buf in double quotes, escaping control characters and
 * ending with "..." what does not fit; returns @buf. The buffer size is
 * the length limit: CFG_QUOTE_MAX keeps a value to about 90 characters so
 * a message stays one readable line. */
const char *cfg_quote(char *buf, size_t len, const char *s);
#define CFG_QUOTE_MAX 96

/* "a mapping", "a list", "nothing" or the quoted scalar. */
const char *cfg_describe(char *buf, size_t len, const yaml_node_t *n);

/* ---- YAML tree access (config_yaml.c) ---- */

bool cfg_is_null(const yaml_node_t *n);
const char *cfg_scalar(const yaml_node_t *n); /* NUL-terminated value */
/* Value of @key in mapping @map, or NULL. */
yaml_node_t *cfg_map_get(const struct cfg_ctx *c, const yaml_node_t *map, const char *key);
/* The (first) key node @key of @map, or NULL. */
yaml_node_t *cfg_map_key(const struct cfg_ctx *c, const yaml_node_t *map, const char *key);
/* Every key must be a scalar, appear once and (unless @allowed is NULL) be
 * one of the NULL-terminated @allowed names. Pairwise, so only for
 * mappings whose size the first unknown key bounds. */
int cfg_check_keys(struct cfg_ctx *c, const yaml_node_t *map, const char *const *allowed);
/* For a value @v of key path already pushed, found in @parent: 1 when it is
 * a mapping/list, 0 when absent or null and not @required, else an error. */
int cfg_want_map(struct cfg_ctx *c, const yaml_node_t *parent, const yaml_node_t *v,
		 bool required);
int cfg_want_seq(struct cfg_ctx *c, const yaml_node_t *parent, const yaml_node_t *v,
		 bool required);
size_t cfg_len(const yaml_node_t *n); /* pairs of a mapping, items of a list */
yaml_node_t *cfg_seq_item(const struct cfg_ctx *c, const yaml_node_t *seq, size_t i);

/* Common start of every scalar getter, for callers that convert the value
 * themselves: the caller has pushed @key. Finds the value, handles absence
 * and null (@what says what was expected), insists on a scalar. Returns 1
 * with *@vn set, 0 when absent and optional, or an error. */
int cfg_scalar_value(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		     const char *what, const yaml_node_t **vn);

/* Typed getters for key @key of mapping @map. Each pushes the key onto the
 * path for its own messages and restores it. Return 1 when the value was
 * given, 0 when absent or null and not @required (*out untouched, so set
 * the default first), negative errno on error. */
int cfg_get_uint(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		 uint64_t lo, uint64_t hi, uint64_t *out);
int cfg_get_u32(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		uint32_t lo, uint32_t hi, uint32_t *out);
int cfg_get_int(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		int lo, int hi, int *out);
/* A name: [A-Za-z0-9_.-]{1,63}. @what is e.g. "a node name". */
int cfg_get_name(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		 const char *what, char out[CLUSTER_NAME_MAX]);
/* Any string that fits @outlen including the NUL; @what names it in
 * messages ("a file path"). */
int cfg_get_string(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		   const char *what, char *out, size_t outlen);
/* A plain true or false (YAML 1.1's yes/no/on/off are refused, quoted
 * values too, so a value is never read differently than it looks). */
int cfg_get_bool(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		 bool *out);
/* One of the NULL-terminated @choices; *out is its index. */
int cfg_get_choice(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		   const char *const *choices, int *out);

/* ---- scalar syntax (config_scalar.c), no YAML, no messages ---- */

bool cfg_parse_uint(const char *s, uint64_t *out);   /* decimal digits only */
bool cfg_parse_size(const char *s, uint64_t *out);   /* digits + optional K/M/G/T */
bool cfg_valid_name(const char *s);                  /* [A-Za-z0-9_.-]{1,63} */
bool cfg_valid_address(const char *s);               /* inet_pton or RFC 1123 host name */
/* True when @a and @b name the same host: equal binary addresses for
 * literals, case-insensitive match for names (no DNS lookups). */
bool cfg_same_address(const char *a, const char *b);

/* ---- files (config_file.c) ---- */

/* Resolve @rel against c->dir unless it is absolute; -ENAMETOOLONG if it
 * does not fit. */
int cfg_resolve_path(const struct cfg_ctx *c, const char *rel, char *out, size_t outlen);
/* A file path (kernel, initrd, disk image) of key @key in @map, resolved
 * against c->dir; not opened. @required: "" is refused too. Returns like
 * the getters; *@pos (when not NULL) gets the value's line and column. */
int cfg_get_path(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		 char *out, size_t outlen, struct cluster_pos *pos);
/* 1-based line and column of a node. */
struct cluster_pos cfg_pos(const yaml_node_t *n);
/* Set c->dir to the absolute folder holding @file (NULL: the cwd). */
int cfg_set_dir(struct cfg_ctx *c, const char *file);
/* Read cluster.auth.key_file of mapping @auth into cfg->key. */
int cfg_read_key(struct cfg_ctx *c, const yaml_node_t *auth);
/* Open @path for reading without blocking (a FIFO or a device never
 * blocks) and only if it is a regular file: the fd, or a negative errno;
 * for anything but a regular file -EINVAL with *@what naming its kind
 * ("a FIFO", "a folder", ...). */
int cfg_open_regular(const char *path, const char **what);

/* ---- passes ---- */

int cfg_parse(struct cfg_ctx *c, const yaml_node_t *root);            /* config_parse.c */
int cfg_parse_vms(struct cfg_ctx *c, const yaml_node_t *root);        /* config_parse_vm.c */
/* vms[i].disks and vms[i].nics of VM mapping @vmnode (config_parse_devices.c) */
int cfg_parse_disks(struct cfg_ctx *c, const yaml_node_t *vmnode, struct cluster_vm *vm);
int cfg_parse_nics(struct cfg_ctx *c, const yaml_node_t *vmnode, struct cluster_vm *vm);
int cfg_validate(struct cfg_ctx *c);                                  /* config_validate.c */
/* config_budget.c: vms[i].node_memory and vms[i].dsm.min_cache of the VM
 * mapping @vmnode (after its vcpu_placement and dsm block), and the check
 * that the VM fits its budgets (validator, VM index @v). */
int cfg_parse_budget(struct cfg_ctx *c, const yaml_node_t *vmnode, struct cluster_vm *vm);
int cfg_check_budget(struct cfg_ctx *c, int v);
int cfg_validate_devices(struct cfg_ctx *c);          /* config_validate_devices.c */
/* nodes[i].control_port, metrics_port, metrics_address (config_ports.c) */
int cfg_parse_node_daemon(struct cfg_ctx *c, const yaml_node_t *node, struct cluster_node *n);
/* every port a node's programs listen on is used once (config_ports.c) */
int cfg_validate_ports(struct cfg_ctx *c);

#endif
