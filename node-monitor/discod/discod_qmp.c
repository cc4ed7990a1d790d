// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The channel from a QEMU to its daemon: QEMU's own machine protocol,
 * QMP, on a Unix socket in the VM's run folder (-qmp unix:...,server=on,
 * wait=off), which discod puts on every QEMU's command line.
 *
 * One short connection per sample: greeting, qmp_capabilities, then
 * `qom-get /objects/disco0 counters`, the disco object's live counters
 * as "key=value" lines (node-monitor/qemu/src/disco-ram.c). QEMU answers
 * commands from its main loop, which starts only once the node has joined
 * the VM's other nodes (disco_join() runs in machine-init-done), so the
 * first answer is also the sign that the VM runs on this node. A QMP
 * monitor takes one client at a time; nothing else of discod uses it.
 *
 * QMP is JSON, one message per line; events may come between a command
 * and its answer and are skipped. Parsed with jansson.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "discod.h"

#define QMP_TIMEOUT_MS 2000
#define QMP_LINE_MAX (1 << 20)

struct qmp {
	int fd;
	char *buf;
	size_t len, cap;
	int64_t deadline;
};

/* The next line (without its newline) into *@line, malloc'd. */
static int qmp_line(struct qmp *q, char **line)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - q->buf);

			*line = strndup(q->buf, n);
			memmove(q->buf, nl + 1, q->len - n - 1);
			q->len -= n + 1;
			return *line ? 0 : -ENOMEM;
		}
		if (q->len == q->cap) {
			if (q->cap >= QMP_LINE_MAX)
				return -EMSGSIZE;
			size_t cap = q->cap ? q->cap * 2 : 4096;
			char *nb = realloc(q->buf, cap);
			if (!nb)
				return -ENOMEM;
			q->buf = nb;
			q->cap = cap;
		}
		int64_t left = q->deadline - discod_now_ms();
		struct pollfd p = {.fd = q->fd, .events = POLLIN};
		int r = poll(&p, 1, left < 0 ? 0 : (int)left);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		ssize_t k = read(q->fd, q->buf + q->len, q->cap - q->len);
		if (k == 0)
			return -ECONNRESET;
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		q->len += (size_t)k;
	}
}

/* The next message that is not an event. */
static int qmp_message(struct qmp *q, json_t **out)
{
	for (;;) {
		char *line = NULL;
		json_error_t je;
		int r = qmp_line(q, &line);

		if (r < 0)
			return r;
		json_t *j = json_loads(line, 0, &je);
		free(line);
		if (!j || !json_is_object(j)) {
			json_decref(j);
			return -EPROTO;
		}
		if (json_object_get(j, "event")) {
			json_decref(j);
			continue;
		}
		*out = j;
		return 0;
	}
}

static int qmp_command(struct qmp *q, const char *cmd, json_t **ret, char *err, size_t errlen)
{
	json_t *m;
	size_t n = strlen(cmd);
	int r;

	if (write(q->fd, cmd, n) != (ssize_t)n)
		return -errno ? -errno : -EIO;
	if ((r = qmp_message(q, &m)) < 0)
		return r;
	json_t *e = json_object_get(m, "error");
	if (e) {
		const char *desc = json_string_value(json_object_get(e, "desc"));

		snprintf(err, errlen, "QMP error: %s", desc ? desc : "(no description)");
		json_decref(m);
		return -EREMOTEIO;
	}
	json_t *rv = json_object_get(m, "return");
	if (!rv) {
		json_decref(m);
		return -EPROTO;
	}
	*ret = json_incref(rv);
	json_decref(m);
	return 0;
}

int discod_qmp_counters(const char *socket_path, char **text, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct qmp q = {.fd = -1, .deadline = discod_now_ms() + QMP_TIMEOUT_MS};
	json_t *greeting = NULL, *ret = NULL;
	int r;

	*text = NULL;
	err[0] = '\0';
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, socket_path);
	q.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q.fd < 0)
		return -errno;
	if (connect(q.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = qmp_message(&q, &greeting)) < 0)
		goto out;
	if (!json_object_get(greeting, "QMP")) {
		r = -EPROTO;
		goto out;
	}
	if ((r = qmp_command(&q, "{\"execute\":\"qmp_capabilities\"}\n", &ret, err, errlen)) < 0)
		goto out;
	json_decref(ret);
	ret = NULL;
	if ((r = qmp_command(&q,
			     "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/objects/disco0\","
			     "\"property\":\"counters\"}}\n",
			     &ret, err, errlen)) < 0)
		goto out;
	if (!json_is_string(ret)) {
		r = -EPROTO;
		goto out;
	}
	*text = strdup(json_string_value(ret));
	r = *text ? 0 : -ENOMEM;
out:
	json_decref(greeting);
	json_decref(ret);
	free(q.buf);
	close(q.fd);
	if (r < 0 && !err[0])
		snprintf(err, errlen, "QMP %s: %s", socket_path, strerror(-r));
	return r;
}
