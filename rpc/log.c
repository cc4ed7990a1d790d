/*
 * disco_log(): format the whole line into one buffer and hand it to stderr
 * with a single write(), so lines from several threads never interleave.
 * The threshold is read from DISCO_LOG once (racing first callers compute
 * the same value, so a relaxed atomic is enough).
 */
#include "rpc/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

void disco_log(enum disco_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char line[1024];
	va_list ap;
	int n;

	if (!disco_log_enabled(level))
		return;
	n = snprintf(line, sizeof(line), "disco[%s]: %s: ", t_node[0] ? t_node : g_node,
		     names[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}
