// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * discod --config FILE --node NAME: the daemon of one node (discod.h has
 * the threads and the lock). This file: options, start-up (config, run
 * folder, listening sockets, the sampler and the metrics server), and the
 * main thread's loop, which accepts connections, runs the commands that
 * must happen on it (fork a QEMU, signal one), reaps QEMUs, and stops
 * everything on SIGTERM or SIGINT.
 *
 * What discod never does: restart a QEMU. A QEMU that ends is reported
 * (state, reason, `disco status`, the log) and stays ended until someone
 * starts its VM again. Its QEMUs are its children with PR_SET_PDEATHSIG,
 * so a discod that dies takes them with it: no VM half-runs unsupervised,
 * and a new discod starts from an empty table.
 *
 * Exit status: 0 after SIGTERM/SIGINT; 2 when it cannot start (options,
 * config, node, sockets), with the reason on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "discod.h"
#include "node-monitor/qemu_run.h"
#include "rpc/log.h"

#define EXIT_SETUP 2

static void usage(FILE *f)
{
	fprintf(f,
		"usage: discod --config FILE --node NAME [options]\n"
		"The daemon of one node of a disco cluster: starts and stops this node's QEMU\n"
		"processes for the VMs that use it, answers the disco command and the other\n"
		"nodes' daemons, and serves Prometheus metrics (docs/deploy.md).\n\n"
		"  --config FILE        the cluster file (default /etc/disco/cluster.yaml)\n"
		"  --node NAME          this machine's node in it\n"
		"  --run-dir DIR        sockets, logs and QMP monitors (default /run/disco)\n"
		"  --qemu PATH          the patched QEMU (default: $DISCO_QEMU, else the one\n"
		"                       installed with discod)\n"
		"  --socket-group GROUP the control socket is 0660 for this group (default 0600)\n"
		"  --stop-grace SEC     a stopped QEMU is killed after SEC s (default 15)\n"
		"  --help               this text\n\n"
		"Exit status: 0 after SIGTERM or SIGINT (its VMs are stopped first), 2 when it\n"
		"cannot start.\n");
}

int64_t discod_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_args(int argc, char **argv, struct discod_opts *o)
{
	static const struct option lo[] = {
		{"config", required_argument, 0, 'c'},	 {"node", required_argument, 0, 'n'},
		{"run-dir", required_argument, 0, 'r'},	 {"qemu", required_argument, 0, 'q'},
		{"socket-group", required_argument, 0, 'g'}, {"stop-grace", required_argument, 0, 's'},
		{"help", no_argument, 0, 'h'},		 {0, 0, 0, 0},
	};
	opterr = 0;
	for (int ch; (ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 'n': o->node = optarg; break;
		case 'r': o->run_dir = optarg; break;
		case 'q': o->qemu = optarg; break;
		case 'g': o->socket_group = optarg; break;
		case 's': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || end == optarg || v < 1 || v > 3600) {
				fprintf(stderr, "discod: --stop-grace: expected 1..3600 seconds, got \"%s\"\n",
					optarg);
				return -EINVAL;
			}
			o->stop_grace_s = (int)v;
			break;
		}
		case 'h': return 1;
		case ':':
			fprintf(stderr, "discod: option %s needs a value (see --help)\n", argv[optind - 1]);
			return -EINVAL;
		default:
			fprintf(stderr, "discod: unknown option \"%s\" (see --help)\n", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "discod: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->node) {
		fprintf(stderr, "discod: --node NAME is required (see --help)\n");
		return -EINVAL;
	}
	return 0;
}

/* The QEMU: --qemu, $DISCO_QEMU, or the one installed or built with discod
 * (qemu_default_path()). */
static int find_qemu(struct discod *d)
{
	const char *env = getenv("DISCO_QEMU");
	int r;

	if (d->opt.qemu || (env && *env)) {
		snprintf(d->qemu, sizeof(d->qemu), "%s", d->opt.qemu ? d->opt.qemu : env);
	} else if ((r = qemu_default_path(d->qemu, sizeof(d->qemu))) < 0) {
		fprintf(stderr, "discod %s: cannot find the default QEMU: %s; give it with --qemu PATH\n",
			d->opt.node, strerror(-r));
		return r;
	}
	if (access(d->qemu, X_OK) != 0) {
		fprintf(stderr,
			"discod %s: QEMU binary %s is not executable: %s; give it with --qemu PATH or "
			"$DISCO_QEMU\n",
			d->opt.node, d->qemu, strerror(errno));
		return -ENOENT;
	}
	return 0;
}

static int mkdir_mode(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int listen_unix(struct discod *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, probe;

	if (strlen(d->socket_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "discod %s: socket path %s too long: use a shorter --run-dir\n",
			d->opt.node, d->socket_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, d->socket_path);
	/* A socket that answers belongs to a discod of this node that runs. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(probe);
		fprintf(stderr, "discod %s: another discod of node %s runs (%s answers)\n",
			d->opt.node, d->opt.node, d->socket_path);
		return -EADDRINUSE;
	}
	if (probe >= 0)
		close(probe);
	unlink(d->socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		fprintf(stderr, "discod %s: cannot listen on %s: %s\n", d->opt.node, d->socket_path,
			strerror(errno));
		return -errno;
	}
	struct group *g = d->opt.socket_group ? getgrnam(d->opt.socket_group) : NULL;
	if (d->opt.socket_group && !g)
		disco_log(DISCO_LOG_WARN,
			  "discod: --socket-group %s: no such group; %s stays 0600 (its owner only)",
			  d->opt.socket_group, d->socket_path);
	if (g) {
		if (chown(d->socket_path, (uid_t)-1, g->gr_gid) < 0 || chmod(d->socket_path, 0660) < 0) {
			fprintf(stderr, "discod %s: cannot give %s to group %s: %s\n", d->opt.node,
				d->socket_path, d->opt.socket_group, strerror(errno));
			close(fd);
			return -EINVAL;
		}
	} else if (chmod(d->socket_path, 0600) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static int listen_tcp(struct discod *d)
{
	const struct cluster_node *n = &d->cfg->nodes[d->self];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	char port[8];
	int fd, one = 1, r;

	snprintf(port, sizeof(port), "%d", n->control_port);
	r = getaddrinfo(n->address, port, &hints, &res);
	if (r != 0) {
		fprintf(stderr, "discod %s: cannot resolve %s: %s\n", n->name, n->address, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		fprintf(stderr, "discod %s: cannot listen on %s:%d (nodes[%d].control_port): %s\n",
			n->name, n->address, n->control_port, d->self, strerror(e));
		freeaddrinfo(res);
		if (fd >= 0)
			close(fd);
		return -e;
	}
	freeaddrinfo(res);
	return fd;
}

int discod_main_call(struct discod *d, struct main_cmd *c)
{
	uint64_t one = 1;

	c->done = false;
	pthread_mutex_lock(&d->mu);
	c->next = d->cmds;
	d->cmds = c;
	pthread_mutex_unlock(&d->mu);
	if (write(d->wake_fd, &one, sizeof(one)) < 0)
		return -errno;
	pthread_mutex_lock(&d->mu);
	while (!c->done)
		pthread_cond_wait(&d->cmd_done, &d->mu);
	pthread_mutex_unlock(&d->mu);
	return c->result;
}

/* The main thread: run every queued command. */
static void run_commands(struct discod *d)
{
	struct main_cmd *c;
	uint64_t n;
	sigset_t none;

	if (read(d->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	sigemptyset(&none);
	pthread_mutex_lock(&d->mu);
	while ((c = d->cmds)) {
		d->cmds = c->next;
		pthread_mutex_unlock(&d->mu);
		if (c->kind == CMD_SPAWN) {
			char log[PATH_MAX + 16];
			pid_t pid = 0;
			int out, in = open("/dev/null", O_RDONLY | O_CLOEXEC);

			snprintf(log, sizeof(log), "%s/qemu.log", d->vms[c->vm].dir);
			out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
			if (in < 0 || out < 0) {
				c->result = -errno;
			} else {
				struct qemu_spawn_io io = {in, out, out, true};

				c->result = qemu_spawn(c->argv, &io, &none, &pid);
			}
			if (in >= 0)
				close(in);
			if (out >= 0)
				close(out);
			pthread_mutex_lock(&d->mu);
			if (c->result == 0)
				d->vms[c->vm].pid = pid;
		} else {
			pthread_mutex_lock(&d->mu);
			pid_t pid = d->vms[c->vm].pid;
			c->result = pid > 0 && kill(pid, c->sig) < 0 ? -errno : 0;
		}
		c->done = true;
		pthread_cond_broadcast(&d->cmd_done);
	}
	pthread_mutex_unlock(&d->mu);
}

static void reap(struct discod *d)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		discod_vm_reaped(d, pid, status);
}

struct conn_arg {
	struct discod *d;
	int fd;
	bool tcp;
	char from[96];
};

/* A connection thread (discod.h): serves one connection, then ends. */
static void *conn_thread(void *p)
{
	struct conn_arg *a = p;

	disco_log_set_thread_node(a->d->opt.node);
	discod_serve(a->d, a->fd, a->tcp, a->from);
	pthread_mutex_lock(&a->d->mu);
	a->d->n_conns--;
	pthread_mutex_unlock(&a->d->mu);
	free(a);
	return NULL;
}

static void accept_one(struct discod *d, int lfd, bool tcp)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct conn_arg *a;
	pthread_attr_t attr;
	pthread_t t;
	int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		return;
	}
	*a = (struct conn_arg){.d = d, .fd = fd, .tcp = tcp};
	if (tcp) {
		char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";

		getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(a->from, sizeof(a->from), "%s:%s", host, port);
	} else {
		struct ucred cr;
		socklen_t cl = sizeof(cr);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
			snprintf(a->from, sizeof(a->from), "local uid %u pid %d", (unsigned)cr.uid,
				 (int)cr.pid);
		else
			snprintf(a->from, sizeof(a->from), "local socket");
	}
	pthread_mutex_lock(&d->mu);
	if (d->n_conns >= DISCOD_MAX_CONNS) {
		pthread_mutex_unlock(&d->mu);
		disco_log(DISCO_LOG_WARN, "discod: %d connections already: refusing %s",
			  DISCOD_MAX_CONNS, a->from);
		close(fd);
		free(a);
		return;
	}
	d->n_conns++;
	pthread_mutex_unlock(&d->mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, conn_thread, a) != 0) {
		pthread_mutex_lock(&d->mu);
		d->n_conns--;
		pthread_mutex_unlock(&d->mu);
		close(fd);
		free(a);
	}
	pthread_attr_destroy(&attr);
}

/* The main thread's loop, until SIGTERM or SIGINT. */
static void main_loop(struct discod *d, int ufd, int tfd, int sfd)
{
	struct pollfd p[4] = {
		{.fd = sfd, .events = POLLIN},
		{.fd = d->wake_fd, .events = POLLIN},
		{.fd = ufd, .events = POLLIN},
		{.fd = tfd, .events = POLLIN},
	};

	while (!d->stopping) {
		int timeout = discod_vm_deadlines(d);
		int r = poll(p, tfd >= 0 ? 4 : 3, timeout);

		if (r < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					reap(d);
				} else if (si.ssi_signo == SIGHUP) {
					disco_log(DISCO_LOG_INFO,
						  "discod: SIGHUP: the config is read at start only; "
						  "restart discod to read it again");
				} else {
					disco_log(DISCO_LOG_INFO, "discod: %s: stopping this node's VMs",
						  strsignal((int)si.ssi_signo));
					d->stopping = true;
				}
			}
		}
		if (p[1].revents & POLLIN)
			run_commands(d);
		if (p[2].revents & POLLIN)
			accept_one(d, ufd, false);
		if (tfd >= 0 && (p[3].revents & POLLIN))
			accept_one(d, tfd, true);
	}
}

int main(int argc, char **argv)
{
	static struct discod dd;
	struct discod *d = &dd;
	char err[4096];
	sigset_t sigs;
	int r, ufd, tfd = -1, sfd;

	d->opt = (struct discod_opts){.config = "/etc/disco/cluster.yaml", .run_dir = "/run/disco",
				      .stop_grace_s = 15};
	r = parse_args(argc, argv, &d->opt);
	if (r == 1) {
		usage(stdout);
		return 0;
	}
	if (r < 0)
		return EXIT_SETUP;
	disco_log_set_node(d->opt.node);
	if (cluster_config_load(d->opt.config, &d->cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_SETUP;
	}
	if (!realpath(d->opt.config, d->config_abs)) {
		fprintf(stderr, "discod: %s: %s\n", d->opt.config, strerror(errno));
		return EXIT_SETUP;
	}
	d->self = cluster_config_find_node(d->cfg, d->opt.node);
	if (d->self < 0) {
		fprintf(stderr, "discod: no node named \"%s\" in %s\n", d->opt.node, d->opt.config);
		return EXIT_SETUP;
	}
	if (find_qemu(d) < 0)
		return EXIT_SETUP;
	d->vms = calloc((size_t)d->cfg->n_vms + 1, sizeof(*d->vms));
	if (!d->vms)
		return EXIT_SETUP;
	snprintf(d->node_dir, sizeof(d->node_dir), "%s/%s", d->opt.run_dir, d->opt.node);
	snprintf(d->socket_path, sizeof(d->socket_path), "%s/discod-%s.sock", d->opt.run_dir,
		 d->opt.node);
	/* RUN_DIR/NODE/VM/console.sock must fit a Unix socket address */
	for (int v = 0; v < d->cfg->n_vms; v++) {
		if (strlen(d->node_dir) + strlen(d->cfg->vms[v].name) + 15 > 107) {
			fprintf(stderr,
				"discod %s: %s/%s/console.sock is too long for a Unix socket (107 bytes): "
				"use a shorter --run-dir\n",
				d->opt.node, d->node_dir, d->cfg->vms[v].name);
			return EXIT_SETUP;
		}
	}
	if ((r = mkdir_mode(d->opt.run_dir, 0755)) < 0 || (r = mkdir_mode(d->node_dir, 0700)) < 0) {
		fprintf(stderr, "discod %s: cannot make %s: %s\n", d->opt.node, d->node_dir,
			strerror(-r));
		return EXIT_SETUP;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cmd_done, NULL);
	d->started = time(NULL);

	/* Signals: one signalfd for the main thread; every other thread
	 * inherits the blocked mask, so none of them gets these. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sfd < 0 || d->wake_fd < 0) {
		fprintf(stderr, "discod %s: %s\n", d->opt.node, strerror(errno));
		return EXIT_SETUP;
	}
	ufd = listen_unix(d);
	if (ufd < 0)
		return EXIT_SETUP;
	if (d->cfg->nodes[d->self].control_port) {
		tfd = listen_tcp(d);
		if (tfd < 0)
			return EXIT_SETUP;
	} else {
		disco_log(DISCO_LOG_WARN,
			  "discod: nodes[%d].control_port is not set: only the local socket %s "
			  "serves; the other nodes cannot reach this daemon",
			  d->self, d->socket_path);
	}
	if (discod_metrics_start(d, err, sizeof(err)) < 0) {
		fprintf(stderr, "discod %s: %s\n", d->opt.node, err);
		return EXIT_SETUP;
	}
	if (discod_sampler_start(d) < 0) {
		fprintf(stderr, "discod %s: cannot start the sampler thread\n", d->opt.node);
		return EXIT_SETUP;
	}
	disco_log(DISCO_LOG_INFO,
		  "discod: node %s of cluster %s: socket %s, control %s:%d, metrics %s%s%d, qemu %s",
		  d->opt.node, d->cfg->name, d->socket_path, d->cfg->nodes[d->self].address,
		  d->cfg->nodes[d->self].control_port,
		  d->cfg->nodes[d->self].metrics_port ? d->cfg->nodes[d->self].metrics_address : "off",
		  d->cfg->nodes[d->self].metrics_port ? ":" : "",
		  d->cfg->nodes[d->self].metrics_port, d->qemu);

	main_loop(d, ufd, tfd, sfd);

	close(ufd);
	unlink(d->socket_path);
	if (tfd >= 0)
		close(tfd);
	discod_vm_stop_all(d);
	discod_metrics_stop();
	disco_log(DISCO_LOG_INFO, "discod: stopped");
	/* connection and sampler threads may still hold sockets: exit ends
	 * them (nothing of theirs needs flushing) */
	return 0;
}
