/*
 * One tiny logging helper for every disco module: one line per call on
 * stderr, "disco[<node>]: <level>: <message>".
 *
 * The node name is per thread (a test process runs several nodes, each on
 * its own loop thread) with a process-wide default. Debug lines are printed
 * only when the environment has DISCO_LOG=debug; DISCO_LOG=error|warn|info
 * sets the threshold the same way (default: info).
 */
#ifndef DISCO_LOG_H
#define DISCO_LOG_H

enum disco_log_level {
	DISCO_LOG_ERROR,
	DISCO_LOG_WARN,
	DISCO_LOG_INFO,
	DISCO_LOG_DEBUG,
};

/* Node name for lines printed by any thread that set none of its own. */
void disco_log_set_node(const char *name);
/* Node name for lines printed by the calling thread. */
void disco_log_set_thread_node(const char *name);

int disco_log_enabled(enum disco_log_level level);

void disco_log(enum disco_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
