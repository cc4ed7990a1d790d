/*
 * Typed access to the libyaml document tree.
 *
 * libyaml's loader does no tag resolution: every scalar arrives as a
 * string with its style (plain, quoted, ...). The schema is therefore
 * applied here: integers must be plain scalars of decimal digits (a quoted
 * "7400" is a string in YAML, and we say so rather than guess), a plain
 * empty value, "~" or "null" means "not given", and names, addresses and
 * paths are taken in any scalar style. Each getter reports its own errors
 * with the key pushed onto the field path.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

bool cfg_is_null(const yaml_node_t *n)
{
	const char *s;

	if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = (const char *)n->data.scalar.value;
	return !strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

const char *cfg_scalar(const yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)n->data.scalar.value;
}

size_t cfg_len(const yaml_node_t *n)
{
	if (n && n->type == YAML_MAPPING_NODE)
		return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if (n && n->type == YAML_SEQUENCE_NODE)
		return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	return 0;
}

yaml_node_t *cfg_seq_item(const struct cfg_ctx *c, const yaml_node_t *seq, size_t i)
{
	if (!seq || seq->type != YAML_SEQUENCE_NODE || i >= cfg_len(seq))
		return NULL;
	return yaml_document_get_node(c->doc, seq->data.sequence.items.start[i]);
}

static yaml_node_pair_t *find_pair(const struct cfg_ctx *c, const yaml_node_t *map,
				   const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *k = cfg_scalar(yaml_document_get_node(c->doc, p->key));

		if (k && !strcmp(k, key))
			return p;
	}
	return NULL;
}

yaml_node_t *cfg_map_get(const struct cfg_ctx *c, const yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p = find_pair(c, map, key);

	return p ? yaml_document_get_node(c->doc, p->value) : NULL;
}

yaml_node_t *cfg_map_key(const struct cfg_ctx *c, const yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p = find_pair(c, map, key);

	return p ? yaml_document_get_node(c->doc, p->key) : NULL;
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

static void join(char *buf, size_t len, const char *const *list)
{
	size_t o = 0;

	buf[0] = '\0';
	for (const char *const *p = list; *p && o < len; p++) {
		int n = snprintf(buf + o, len - o, "%s%s", p == list ? "" : ", ", *p);
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

int cfg_check_keys(struct cfg_ctx *c, const yaml_node_t *map, const char *const *allowed)
{
	yaml_node_pair_t *start = map->data.mapping.pairs.start;

	for (yaml_node_pair_t *p = start; p < map->data.mapping.pairs.top; p++) {
		const yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
		const char *k = cfg_scalar(kn);
		char q[CFG_QUOTE_MAX];

		if (!k) {
			return cfg_fail(c, kn, "expected a key name, got %s",
					cfg_describe(q, sizeof(q), kn));
		}
		size_t saved = cfg_path_key(c, k);
		for (yaml_node_pair_t *e = start; e < p; e++) {
			const yaml_node_t *en = yaml_document_get_node(c->doc, e->key);
			const char *ek = cfg_scalar(en);

			if (ek && !strcmp(ek, k))
				return cfg_fail(c, kn, "duplicate key %s (first at line %zu)",
						cfg_quote(q, sizeof(q), k), en->start_mark.line + 1);
		}
		if (allowed && !in_list(k, allowed)) {
			char names[512];

			join(names, sizeof(names), allowed);
			return cfg_fail(c, kn, "unknown key %s; allowed keys: %s",
					cfg_quote(q, sizeof(q), k), names);
		}
		cfg_path_restore(c, saved);
	}
	return 0;
}

static int want(struct cfg_ctx *c, const yaml_node_t *parent, const yaml_node_t *v, bool required,
		yaml_node_type_t type, const char *what)
{
	char q[CFG_QUOTE_MAX];

	if (!v || cfg_is_null(v)) {
		if (!required)
			return 0;
		if (!v)
			return cfg_fail(c, parent, "missing required key");
	}
	if (v->type != type)
		return cfg_fail(c, v, "expected %s, got %s", what, cfg_describe(q, sizeof(q), v));
	return 1;
}

int cfg_want_map(struct cfg_ctx *c, const yaml_node_t *parent, const yaml_node_t *v, bool required)
{
	return want(c, parent, v, required, YAML_MAPPING_NODE, "a mapping");
}

int cfg_want_seq(struct cfg_ctx *c, const yaml_node_t *parent, const yaml_node_t *v, bool required)
{
	return want(c, parent, v, required, YAML_SEQUENCE_NODE, "a list");
}

int cfg_scalar_value(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
			const char *what, const yaml_node_t **vn)
{
	const yaml_node_t *v = cfg_map_get(c, map, key);
	char q[CFG_QUOTE_MAX];

	if (!v || cfg_is_null(v)) {
		if (!required)
			return 0;
		if (!v)
			return cfg_fail(c, map, "missing required key; expected %s", what);
		return cfg_fail(c, v, "expected %s, got nothing", what);
	}
	if (v->type != YAML_SCALAR_NODE)
		return cfg_fail(c, v, "expected %s, got %s", what, cfg_describe(q, sizeof(q), v));
	*vn = v;
	return 1;
}

int cfg_get_uint(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		 uint64_t lo, uint64_t hi, uint64_t *out)
{
	size_t saved = cfg_path_key(c, key);
	const yaml_node_t *v = NULL;
	char what[96], q[CFG_QUOTE_MAX];
	uint64_t x;

	snprintf(what, sizeof(what), "an integer in %" PRIu64 "..%" PRIu64, lo, hi);
	int r = cfg_scalar_value(c, map, key, required, what, &v);
	if (r <= 0)
		goto out;
	if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE && cfg_parse_uint(cfg_scalar(v), &x)) {
		r = cfg_fail(c, v, "expected %s, got the string %s (drop the quotes)", what,
			     cfg_quote(q, sizeof(q), cfg_scalar(v)));
		goto out;
	}
	if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !cfg_parse_uint(cfg_scalar(v), &x) ||
	    x < lo || x > hi) {
		r = cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), cfg_scalar(v)));
		goto out;
	}
	*out = x;
out:
	if (r >= 0)
		cfg_path_restore(c, saved);
	return r;
}

int cfg_get_u32(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t x;
	int r = cfg_get_uint(c, map, key, required, lo, hi, &x);

	if (r == 1)
		*out = (uint32_t)x;
	return r;
}

int cfg_get_int(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required, int lo,
		int hi, int *out)
{
	uint64_t x;
	int r = cfg_get_uint(c, map, key, required, (uint64_t)lo, (uint64_t)hi, &x);

	if (r == 1)
		*out = (int)x;
	return r;
}

int cfg_get_string(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		   const char *what, char *out, size_t outlen)
{
	size_t saved = cfg_path_key(c, key);
	const yaml_node_t *v = NULL;
	char q[CFG_QUOTE_MAX];

	int r = cfg_scalar_value(c, map, key, required, what, &v);
	if (r <= 0)
		goto out;
	/* The length libyaml reports, not strlen: a "\0" escape would
	 * otherwise truncate the value silently. */
	if (v->data.scalar.length != strlen(cfg_scalar(v))) {
		r = cfg_fail(c, v, "expected %s without NUL characters, got %s", what,
			     cfg_quote(q, sizeof(q), cfg_scalar(v)));
		goto out;
	}
	if (v->data.scalar.length >= outlen) {
		r = cfg_fail(c, v, "expected %s of at most %zu bytes, got %zu bytes", what,
			     outlen - 1, v->data.scalar.length);
		goto out;
	}
	memcpy(out, cfg_scalar(v), v->data.scalar.length + 1);
out:
	if (r >= 0)
		cfg_path_restore(c, saved);
	return r;
}

int cfg_get_bool(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		 bool *out)
{
	static const char what[] = "true or false";
	size_t saved = cfg_path_key(c, key);
	const yaml_node_t *v = NULL;
	char q[CFG_QUOTE_MAX];

	int r = cfg_scalar_value(c, map, key, required, what, &v);
	if (r <= 0)
		goto out;
	if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !strcmp(cfg_scalar(v), "true")) {
		*out = true;
	} else if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		   !strcmp(cfg_scalar(v), "false")) {
		*out = false;
	} else {
		r = cfg_fail(c, v, "expected %s, got %s%s", what,
			     v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? "" : "the string ",
			     cfg_quote(q, sizeof(q), cfg_scalar(v)));
	}
out:
	if (r >= 0)
		cfg_path_restore(c, saved);
	return r;
}

int cfg_get_name(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		 const char *what, char out[CLUSTER_NAME_MAX])
{
	size_t saved = cfg_path_key(c, key);
	const yaml_node_t *v = NULL;
	char expect[160], q[CFG_QUOTE_MAX];

	snprintf(expect, sizeof(expect), "%s (1..%d characters of A-Z a-z 0-9 _ . -)", what,
		 CLUSTER_NAME_MAX - 1);
	int r = cfg_scalar_value(c, map, key, required, expect, &v);
	if (r <= 0)
		goto out;
	if (v->data.scalar.length != strlen(cfg_scalar(v)) || !cfg_valid_name(cfg_scalar(v))) {
		r = cfg_fail(c, v, "expected %s, got %s", expect, cfg_quote(q, sizeof(q), cfg_scalar(v)));
		goto out;
	}
	snprintf(out, CLUSTER_NAME_MAX, "%s", cfg_scalar(v));
out:
	if (r >= 0)
		cfg_path_restore(c, saved);
	return r;
}

int cfg_get_choice(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		   const char *const *choices, int *out)
{
	size_t saved = cfg_path_key(c, key);
	const yaml_node_t *v = NULL;
	char expect[256], q[CFG_QUOTE_MAX];
	size_t o = 0, n = 0;

	while (choices[n])
		n++;
	/* "a", "b" or "c" */
	expect[0] = '\0';
	for (size_t i = 0; i < n && o < sizeof(expect); i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
		int w = snprintf(expect + o, sizeof(expect) - o, "%s\"%s\"", sep, choices[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
	int r = cfg_scalar_value(c, map, key, required, expect, &v);
	if (r <= 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(cfg_scalar(v), choices[i])) {
			*out = (int)i;
			goto out;
		}
	}
	r = cfg_fail(c, v, "expected %s, got %s", expect, cfg_quote(q, sizeof(q), cfg_scalar(v)));
out:
	if (r >= 0)
		cfg_path_restore(c, saved);
	return r;
}
