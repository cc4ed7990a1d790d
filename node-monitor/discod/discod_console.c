// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * `disco vm console VM`: the guest's serial console, which belongs to the
 * VM's master node (its QEMU serves it on console.sock in the VM's run
 * folder, and copies everything the guest writes to console.log).
 *
 * The daemon the command reached replies, then relays: on the master it
 * connects to the console socket; elsewhere it asks the master's daemon
 * for the console (control port, cluster key) and passes its frames on.
 * Bytes travel as CONTROL_DATA frames both ways; either side closing
 * ends the relay. The relay runs on the connection's thread. QEMU's
 * console socket takes one client at a time: a second attach waits until
 * the first one leaves.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "discod.h"
#include "rpc/frame.h"
#include "rpc/log.h"

#define CHUNK 4096

static void reply(struct control_conn *c, int error, const char *message)
{
	Disco__ControlReply r = DISCO__CONTROL_REPLY__INIT;

	r.error = error;
	r.message = (char *)message;
	control_send_msg(c, CONTROL_REPLY, &r.base, DISCOD_IO_TIMEOUT_MS);
}

/* Bytes from @raw (the console socket) <-> frames on @c. */
static void relay_raw(struct control_conn *c, int raw)
{
	struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = raw, .events = POLLIN}};
	uint8_t buf[CHUNK];
	char err[256];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			const uint8_t *body;
			size_t len;
			uint16_t type;

			if (control_recv(c, &type, &body, &len, DISCOD_IO_TIMEOUT_MS, err, sizeof(err)) < 0 ||
			    type != CONTROL_DATA)
				return;
			if (len && send(raw, body, len, MSG_NOSIGNAL) != (ssize_t)len)
				return;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(raw, buf, sizeof(buf));

			if (n <= 0 || control_send(c, CONTROL_DATA, buf, (size_t)n, DISCOD_IO_TIMEOUT_MS) < 0)
				return;
		}
	}
}

/* Frames on @a <-> frames on @b, unchanged. */
static void relay_frames(struct control_conn *a, struct control_conn *b)
{
	struct pollfd p[2] = {{.fd = a->fd, .events = POLLIN}, {.fd = b->fd, .events = POLLIN}};
	struct control_conn *from[2] = {a, b}, *to[2] = {b, a};
	char err[256];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			const uint8_t *body;
			size_t len;
			uint16_t type;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (control_recv(from[i], &type, &body, &len, DISCOD_IO_TIMEOUT_MS, err,
					 sizeof(err)) < 0 ||
			    type != CONTROL_DATA ||
			    control_send(to[i], CONTROL_DATA, body, len, DISCOD_IO_TIMEOUT_MS) < 0)
				return;
		}
	}
}

static void console_here(struct discod *d, struct control_conn *c, int vm)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char err[512];
	int fd;

	pthread_mutex_lock(&d->mu);
	struct lvm *v = &d->vms[vm];
	bool up = v->state == LVM_RUNNING || v->state == LVM_STARTING;
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/console.sock", v->dir);
	pthread_mutex_unlock(&d->mu);
	/* discod checked at start that every VM's sockets fit */
	memcpy(sa.sun_path, path, strnlen(path, sizeof(sa.sun_path) - 1));
	if (!up) {
		snprintf(err, sizeof(err), "vm %s does not run on node %s (its master): no console",
			 d->cfg->vms[vm].name, d->opt.node);
		reply(c, -ESRCH, err);
		return;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, sizeof(err), "vm %s: cannot open its console %s: %s", d->cfg->vms[vm].name,
			 sa.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		reply(c, -EIO, err);
		return;
	}
	reply(c, 0, "");
	relay_raw(c, fd);
	close(fd);
}

void discod_console(struct discod *d, struct control_conn *c, int vm)
{
	int master = d->cfg->vms[vm].master_node;
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	Disco__ControlReply *rep = NULL;
	struct control_conn m;
	char err[512];
	int r;

	if (master == d->self) {
		console_here(d, c, vm);
		return;
	}
	r = control_connect_tcp(d->cfg, master, d->opt.node, DISCOD_CONNECT_TIMEOUT_MS, &m, err,
				sizeof(err));
	if (r < 0) {
		reply(c, r, err);
		return;
	}
	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__CONSOLE;
	rq.vm = d->cfg->vms[vm].name;
	r = control_call(&m, &rq, &rep, DISCOD_IO_TIMEOUT_MS, err, sizeof(err));
	if (r < 0 || rep->error) {
		reply(c, r < 0 ? r : rep->error, r < 0 ? err : rep->message);
	} else {
		reply(c, 0, "");
		relay_frames(c, &m);
	}
	if (rep)
		disco__control_reply__free_unpacked(rep, NULL);
	control_conn_close(&m);
}
