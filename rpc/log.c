/*
 * disco_log(): format the whole line into one buffer and hand it to stderr
 * with a single write(), so lines from several threads never interleave.
 * The threshold is read from DISCO_LOG once (racing first callers compute
 * the same value, so a relaxed atomic is enough). Escaping and the rate
 * limit are described in log.h.
 */
#include "rpc/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024

static char g_node[64] = "-";
static __thread char t_node[64];
static int g_level = -1; /* -1: not read yet */

void disco_log_set_node(const char *name)
{
	snprintf(g_node, sizeof(g_node), "%s", name ? name : "-");
}

void disco_log_set_thread_node(const char *name)
{
	snprintf(t_node, sizeof(t_node), "%s", name ? name : "");
}

static int read_level(void)
{
	const char *e = getenv("DISCO_LOG");
	if (!e || !*e)
		return DISCO_LOG_INFO;
	if (!strcasecmp(e, "debug"))
		return DISCO_LOG_DEBUG;
	if (!strcasecmp(e, "info"))
		return DISCO_LOG_INFO;
	if (!strcasecmp(e, "warn") || !strcasecmp(e, "warning"))
		return DISCO_LOG_WARN;
	if (!strcasecmp(e, "error"))
		return DISCO_LOG_ERROR;
	return DISCO_LOG_INFO;
}

int disco_log_enabled(enum disco_log_level level)
{
	int l = __atomic_load_n(&g_level, __ATOMIC_RELAXED);
	if (l < 0) {
		l = read_level();
		__atomic_store_n(&g_level, l, __ATOMIC_RELAXED);
	}
	return (int)level <= l;
}

static bool needs_escape(unsigned char ch)
{
	return ch < 0x20 || ch >= 0x7f;
}

/* Escaped form of @ch into @tmp; @quote_marks: also \\ and \". */
static size_t escape_byte(unsigned char ch, bool quote_marks, char tmp[8])
{
	static const char hex[] = "0123456789abcdef";

	if (quote_marks && (ch == '\\' || ch == '"')) {
		tmp[0] = '\\';
		tmp[1] = (char)ch;
		return 2;
	}
	if (needs_escape(ch)) {
		tmp[0] = '\\';
		tmp[1] = 'x';
		tmp[2] = hex[ch >> 4];
		tmp[3] = hex[ch & 15];
		return 4;
	}
	tmp[0] = (char)ch;
	return 1;
}

/* Append @src (@len bytes) escaped to @dst at *@o, keeping @room bytes
 * for a "..." and the NUL; false when it was cut. */
static bool append_escaped(char *dst, size_t cap, size_t *o, const unsigned char *src, size_t len,
			   bool quote_marks)
{
	char tmp[8];

	for (size_t i = 0; i < len; i++) {
		size_t n = escape_byte(src[i], quote_marks, tmp);
		if (*o + n + 4 > cap) { /* "..." and the NUL */
			memcpy(dst + *o, "...", 3);
			*o += 3;
			return false;
		}
		memcpy(dst + *o, tmp, n);
		*o += n;
	}
	return true;
}

const char *disco_escape(char *dst, size_t cap, const void *src, size_t len)
{
	size_t o = 0;

	if (!cap)
		return dst;
	if (cap < 5) { /* no room for even one escape and "..." */
		dst[0] = '\0';
		return dst;
	}
	append_escaped(dst, cap, &o, src, len, true);
	dst[o] = '\0';
	return dst;
}

const char *disco_escape_str(char *dst, size_t cap, const char *src)
{
	return disco_escape(dst, cap, src ? src : "", src ? strlen(src) : 0);
}

/* One line: prefix, @msg with anything unprintable shown as \xNN, '\n';
 * one write(). */
static void emit(enum disco_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char line[LINE_MAX_BYTES];
	size_t o;

	int n = snprintf(line, sizeof(line), "disco[%s]: %s: ", t_node[0] ? t_node : g_node,
			 names[level]);
	o = n < 0 ? 0 : (size_t)n < sizeof(line) / 2 ? (size_t)n : sizeof(line) / 2;
	append_escaped(line, sizeof(line) - 1, &o, (const unsigned char *)msg, strlen(msg), false);
	line[o++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, o);
	(void)w;
}

void disco_log(enum disco_log_level level, const char *fmt, ...)
{
	char msg[LINE_MAX_BYTES];
	va_list ap;

	if (!disco_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(level, msg);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "N more like this in S s not shown" for what @lim counted. */
static void summary(const struct disco_log_limit *lim, uint64_t now, char *out, size_t len)
{
	snprintf(out, len, "%u more like this in %.1f s not shown", lim->suppressed,
		 (double)(now - lim->first_ns) / 1e9);
}

void disco_log_limited(struct disco_log_limit *lim, enum disco_log_level level, const char *fmt,
		       ...)
{
	char msg[LINE_MAX_BYTES], tail[96];
	uint64_t now;
	va_list ap;

	if (!disco_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	now = mono_ns();
	if (now < lim->quiet_until_ns) {
		if (!lim->suppressed++)
			lim->first_ns = now;
		lim->level = level;
		snprintf(lim->last, sizeof(lim->last), "%s", msg);
		return;
	}
	if (lim->suppressed) {
		summary(lim, now, tail, sizeof(tail));
		size_t l = strnlen(msg, sizeof(msg) - 1);
		snprintf(msg + l, sizeof(msg) - l, " (and %s)", tail);
	}
	emit(level, msg);
	lim->suppressed = 0;
	lim->quiet_until_ns = now + (uint64_t)DISCO_LOG_LIMIT_MS * 1000000u;
}

void disco_log_limit_flush(struct disco_log_limit *lim)
{
	char msg[LINE_MAX_BYTES], tail[96];
	uint64_t now;

	if (!lim->suppressed || (now = mono_ns()) < lim->quiet_until_ns)
		return;
	summary(lim, now, tail, sizeof(tail));
	snprintf(msg, sizeof(msg), "%s; the last: %s", tail, lim->last);
	emit(lim->level, msg);
	lim->suppressed = 0;
	lim->quiet_until_ns = now + (uint64_t)DISCO_LOG_LIMIT_MS * 1000000u;
}
