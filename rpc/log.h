/*
 * One tiny logging helper for every disco module: one line per call on
 * stderr, "disco[<node>]: <level>: <message>".
 *
 * The node name is per thread (a test process runs several nodes, each on
 * its own loop thread) with a process-wide default. Debug lines are printed
 * only when the environment has DISCO_LOG=debug; DISCO_LOG=error|warn|info
 * sets the threshold the same way (default: info).
 *
 * Hostile text. Strings a peer sent (a Hello's cluster and node names, a
 * Goodbye's reason) are escaped where they are put into a message, with
 * disco_escape(): control bytes, DEL and bytes >= 0x80 as \xNN, the
 * backslash and the double quote with a backslash, so a value shown
 * between quotes is one value and nobody can tell an escape from text the
 * peer sent. As a last line of defence disco_log() itself shows every
 * control byte, DEL or byte >= 0x80 left in the message as \xNN: a log
 * line is always exactly one line of printable ASCII.
 *
 * Repeated warnings. What an anonymous client can trigger at will (a
 * refused connection, a failed handshake) is logged through a struct
 * disco_log_limit: at most one line per second per limit; the lines in
 * between are counted, and the next line printed, or
 * disco_log_limit_flush() once the second is over, says how many there
 * were. A limit is not thread-safe: each is used by one thread (the
 * transport's loop thread).
 */
#ifndef DISCO_LOG_H
#define DISCO_LOG_H

#include <stddef.h>
#include <stdint.h>

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

/*
 * @len bytes of @src (text a peer sent) into @dst (@cap bytes, always
 * NUL-terminated when @cap > 0), escaped as above. What does not fit is
 * cut at a whole escape and marked with "...". Returns @dst.
 */
const char *disco_escape(char *dst, size_t cap, const void *src, size_t len);
/* The same for a NUL-terminated string (NULL reads as ""). */
const char *disco_escape_str(char *dst, size_t cap, const char *src);

#define DISCO_LOG_LIMIT_MS 1000 /* one line per limit and second at most */

struct disco_log_limit {
	uint64_t quiet_until_ns; /* lines before this are counted, not printed */
	uint64_t first_ns;       /* when the first counted line came */
	unsigned suppressed;     /* lines counted since the last one printed */
	enum disco_log_level level; /* of the last counted line */
	char last[320];          /* the last counted line, for the summary */
};

/* disco_log() through @lim (see above). */
void disco_log_limited(struct disco_log_limit *lim, enum disco_log_level level, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));
/* If lines were counted and their second is over, log how many, with the
 * last of them. Call it now and then (the transport: every heartbeat). */
void disco_log_limit_flush(struct disco_log_limit *lim);

#endif
