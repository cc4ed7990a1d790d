/*
 * Error messages of the cluster-config module: the field path, the one-line
 * message format and quoting of the values we found. A message is always
 * one line of printable ASCII: a value is quoted with its quote marks and
 * backslashes escaped and every control byte, DEL or byte >= 0x80 shown as
 * \xNN (cfg_quote()); anything else unprintable that reaches a message (a
 * key in the field path, the file name) is shown as \xNN too (vfail()).
 *
 * Every message is "file:line:col: field.path: what was expected, got what
 * was found", so a user can jump to the spot and needs no second line. The
 * parser tracks the path as it walks down the tree; the validator works on
 * the finished struct and instead names a path and lets cfg_lookup() find
 * the node it refers to, so both report positions the same way.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

static void path_append(struct cfg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void path_append(struct cfg_ctx *c, const char *fmt, ...)
{
	size_t room = sizeof(c->path) - c->path_len;
	va_list ap;

	if (room <= 1)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(c->path + c->path_len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		c->path[c->path_len] = '\0';
	else
		c->path_len += (size_t)n < room ? (size_t)n : room - 1;
}

size_t cfg_path_key(struct cfg_ctx *c, const char *key)
{
	size_t old = c->path_len;

	path_append(c, "%s%s", c->path_len ? "." : "", key);
	return old;
}

size_t cfg_path_index(struct cfg_ctx *c, size_t i)
{
	size_t old = c->path_len;

	path_append(c, "[%zu]", i);
	return old;
}

void cfg_path_restore(struct cfg_ctx *c, size_t len)
{
	if (len < sizeof(c->path)) {
		c->path_len = len;
		c->path[len] = '\0';
	}
}

void cfg_path_set(struct cfg_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(c->path, sizeof(c->path), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	c->path_len = (size_t)n < sizeof(c->path) ? (size_t)n : sizeof(c->path) - 1;
	c->path[c->path_len] = '\0';
}

/* @in into @out (@len bytes) with every control byte, DEL and byte >=
 * 0x80 shown as \xNN: a message is one line of printable ASCII, whatever
 * the file's keys (the field path) or its name contain. Values are quoted
 * with cfg_quote() before they get here; this catches the rest. */
static void printable(char *out, size_t len, const char *in)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && o + 1 < len; p++) {
		if (*p < 0x20 || *p >= 0x7f) {
			if (o + 5 > len)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
}

static int vfail(struct cfg_ctx *c, size_t line, size_t col, const char *fmt, va_list ap)
{
	char msg[4096 + 512]; /* room for a full path */
	char whole[2 * sizeof(msg)];

	/* Only the first error is reported: later ones are consequences. */
	if (c->failed || !c->err || c->errlen == 0) {
		c->failed = true;
		return -EINVAL;
	}
	c->failed = true;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (c->path_len)
		snprintf(whole, sizeof(whole), "%s:%zu:%zu: %s: %s", c->name, line, col, c->path,
			 msg);
	else
		snprintf(whole, sizeof(whole), "%s:%zu:%zu: %s", c->name, line, col, msg);
	printable(c->err, c->errlen, whole);
	return -EINVAL;
}

int cfg_fail_mark(struct cfg_ctx *c, yaml_mark_t at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int r = vfail(c, at.line + 1, at.column + 1, fmt, ap);
	va_end(ap);
	return r;
}

int cfg_fail(struct cfg_ctx *c, const yaml_node_t *at, const char *fmt, ...)
{
	va_list ap;
	size_t line = at ? at->start_mark.line + 1 : 1;
	size_t col = at ? at->start_mark.column + 1 : 1;

	va_start(ap, fmt);
	int r = vfail(c, line, col, fmt, ap);
	va_end(ap);
	return r;
}

/*
 * Walk @path ("vms[0].vcpu_placement.n1") down the document. Keys may
 * themselves contain dots (names allow '.'), so at a mapping we take the
 * longest key that matches up to a '.', '[' or the end. *@deepest is the
 * last node reached, which is where errors about absent keys point.
 */
static const yaml_node_t *walk(const struct cfg_ctx *c, const char *path,
			       const yaml_node_t **deepest)
{
	const yaml_node_t *n = yaml_document_get_root_node(c->doc);
	const char *p = path;

	*deepest = n;
	while (n && *p) {
		if (*p == '[') {
			char *end;
			unsigned long i = strtoul(p + 1, &end, 10);

			if (n->type != YAML_SEQUENCE_NODE || *end != ']')
				return NULL;
			n = cfg_seq_item(c, n, i);
			p = end + 1;
		} else {
			const yaml_node_t *best = NULL;
			size_t best_len = 0;

			if (*p == '.')
				p++;
			if (n->type != YAML_MAPPING_NODE)
				return NULL;
			for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
			     pr < n->data.mapping.pairs.top; pr++) {
				const yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
				const char *ks = cfg_scalar(k);
				size_t kl = ks ? strlen(ks) : 0;

				if (!ks || strncmp(p, ks, kl) != 0)
					continue;
				if ((p[kl] == '\0' || p[kl] == '.' || p[kl] == '[') && kl >= best_len) {
					best = yaml_document_get_node(c->doc, pr->value);
					best_len = kl;
				}
			}
			n = best;
			p += best_len;
		}
		if (n)
			*deepest = n;
	}
	return n;
}

const yaml_node_t *cfg_lookup(const struct cfg_ctx *c, const char *path)
{
	const yaml_node_t *deepest;

	return walk(c, path, &deepest);
}

int cfg_fail_path(struct cfg_ctx *c, const char *fmt, ...)
{
	const yaml_node_t *deepest;
	va_list ap;

	walk(c, c->path, &deepest);
	va_start(ap, fmt);
	int r = vfail(c, deepest ? deepest->start_mark.line + 1 : 1,
		      deepest ? deepest->start_mark.column + 1 : 1, fmt, ap);
	va_end(ap);
	return r;
}

/* Escaped form of @ch in @tmp (at most 5 bytes with the NUL). */
static size_t escape(unsigned char ch, char tmp[8])
{
	if (ch == '"' || ch == '\\')
		return (size_t)snprintf(tmp, 8, "\\%c", ch);
	if (ch == '\n')
		return (size_t)snprintf(tmp, 8, "\\n");
	if (ch == '\t')
		return (size_t)snprintf(tmp, 8, "\\t");
	if (ch < 0x20 || ch >= 0x7f) /* control bytes, DEL, and every byte of UTF-8 */
		return (size_t)snprintf(tmp, 8, "\\x%02x", ch);
	tmp[0] = (char)ch;
	tmp[1] = '\0';
	return 1;
}

const char *cfg_quote(char *buf, size_t len, const char *s)
{
	size_t o = 0, need = 0, room;
	char tmp[8];

	if (len < 8) { /* too small for even "x..." */
		if (len)
			buf[0] = '\0';
		return buf;
	}
	for (const char *p = s; *p; p++)
		need += escape((unsigned char)*p, tmp);
	/* Both quotes and the NUL; if it all does not fit, keep room for "...". */
	room = need + 3 <= len ? len - 2 : len - 5;
	buf[o++] = '"';
	for (; *s; s++) {
		size_t tl = escape((unsigned char)*s, tmp);

		if (o + tl > room)
			break;
		memcpy(buf + o, tmp, tl);
		o += tl;
	}
	if (*s) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

const char *cfg_describe(char *buf, size_t len, const yaml_node_t *n)
{
	if (!n || cfg_is_null(n))
		snprintf(buf, len, "nothing");
	else if (n->type == YAML_MAPPING_NODE)
		snprintf(buf, len, "a mapping");
	else if (n->type == YAML_SEQUENCE_NODE)
		snprintf(buf, len, "a list");
	else
		cfg_quote(buf, len, cfg_scalar(n));
	return buf;
}
