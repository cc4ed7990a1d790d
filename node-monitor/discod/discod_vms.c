// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * This node's QEMUs: one per VM that uses the node (discod.h).
 *
 * A start builds the same QEMU command line disco-node does
 * (qemu_cmdline_build(): the same machine on every node), plus what the
 * daemon needs: the console of the master on a Unix socket in the VM's
 * run folder with a copy in console.log, the QMP monitor the sampler
 * reads (discod_qmp.c), the statistics file, and QEMU's own messages in
 * qemu.log. The QEMU itself joins only the VM's nodes, at the VM's ports
 * (cluster_config_vm_view()), so VMs on the same node do not meet.
 *
 * States: STARTING (forked) -> RUNNING (the sampler's first QMP answer:
 * the node has joined) -> STOPPED or FAILED when it ends; STOPPING in
 * between when a stop was asked. How it ended is kept (the exit status or
 * signal and the last line QEMU's disco layer wrote, e.g. "disco n0: node
 * n1 lost (connection reset by peer): stopping the VM") until the VM is
 * started again. Nothing is ever restarted.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "discod.h"
#include "node-monitor/qemu_cmdline.h"
#include "rpc/log.h"

const char *lvm_state_name(enum lvm_state s)
{
	static const char *const names[] = {"-",	"starting", "running",
					     "stopping", "stopped",  "failed"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static bool alive(enum lvm_state s)
{
	return s == LVM_STARTING || s == LVM_RUNNING || s == LVM_STOPPING;
}

static int vm_dir(struct discod *d, int vm, char *err, size_t errlen)
{
	struct lvm *v = &d->vms[vm];
	const char *files[] = {"qmp.sock", "console.sock", "console.log", "stats"};
	char p[PATH_MAX + 32];

	snprintf(v->dir, sizeof(v->dir), "%.3900s/%s", d->node_dir, d->cfg->vms[vm].name);
	if (mkdir(v->dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot make %s: %s", v->dir, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", v->dir, files[i]);
		unlink(p);
	}
	return 0;
}

int discod_vm_start(struct discod *d, int vmi, const char *append, const char *accel, char *err,
		    size_t errlen)
{
	const struct cluster_vm *vm = &d->cfg->vms[vmi];
	struct lvm *v = &d->vms[vmi];
	char qmp[PATH_MAX + 64], console[PATH_MAX + 16], console_log[PATH_MAX + 16],
		stats[PATH_MAX + 16];
	char *extra[2];
	char **argv = NULL;
	struct node_qemu_opts qo;
	struct main_cmd cmd;
	int port, r;

	if (!(vm->node_mask & (1ull << d->self))) {
		snprintf(err, errlen, "vm %s does not use node %s", vm->name, d->opt.node);
		return -EINVAL;
	}
	if (accel && *accel && strcmp(accel, "tcg") && strcmp(accel, "kvm")) {
		snprintf(err, errlen, "accel: expected tcg or kvm, got \"%.32s\"", accel);
		return -EINVAL;
	}
	port = cluster_vm_node_port(d->cfg, vm, d->self);
	pthread_mutex_lock(&d->mu);
	if (alive(v->state)) {
		snprintf(err, errlen, "vm %s already runs on node %s (%s, pid %d)", vm->name,
			 d->opt.node, lvm_state_name(v->state), (int)v->pid);
		pthread_mutex_unlock(&d->mu);
		return -EALREADY;
	}
	for (int o = 0; o < d->cfg->n_vms; o++) {
		if (o == vmi || !alive(d->vms[o].state) || d->vms[o].port != port)
			continue;
		snprintf(err, errlen,
			 "vm %s would listen on port %d of node %s, which vm %s holds; give the VMs "
			 "their own ports (vms[].port, docs/config.md)",
			 vm->name, port, d->opt.node, d->cfg->vms[o].name);
		pthread_mutex_unlock(&d->mu);
		return -EADDRINUSE;
	}
	/* reserve the slot: a second start now sees it alive */
	memset(&v->cur, 0, sizeof(v->cur));
	memset(&v->prev, 0, sizeof(v->prev));
	v->state = LVM_STARTING;
	v->pid = 0;
	v->port = port;
	v->master = vm->master_node == d->self;
	cluster_vm_node_vcpus(d->cfg, vm, d->self, &v->vcpu_first, &v->vcpu_count);
	v->stop_wanted = false;
	v->kill_at_ms = 0;
	v->started = time(NULL);
	v->ended = 0;
	v->reason[0] = '\0';
	v->generation++;
	pthread_mutex_unlock(&d->mu);

	if ((r = vm_dir(d, vmi, err, errlen)) < 0)
		goto fail;
	snprintf(qmp, sizeof(qmp), "unix:%s/qmp.sock,server=on,wait=off", v->dir);
	snprintf(console, sizeof(console), "%s/console.sock", v->dir);
	snprintf(console_log, sizeof(console_log), "%s/console.log", v->dir);
	snprintf(stats, sizeof(stats), "%s/stats", v->dir);
	extra[0] = "-qmp";
	extra[1] = qmp;
	qo = (struct node_qemu_opts){
		.qemu = d->qemu,
		.config_path = d->config_abs,
		.accel = accel && !strcmp(accel, "kvm") ? NODE_ACCEL_KVM : NODE_ACCEL_TCG,
		.console = v->master ? NODE_CONSOLE_SOCKET : NODE_CONSOLE_NULL,
		.console_path = console,
		.console_log = console_log,
		.stats = stats,
		.append = append && *append ? append : NULL,
		.extra = extra,
		.n_extra = 2,
	};
	r = qemu_cmdline_build(d->cfg, vm, d->self, &qo, &argv, err, errlen);
	if (r < 0)
		goto fail;
	/* the master's devices: images exist and are what the file says,
	 * forwarded ports are free (as disco-node checks them) */
	if (v->master && (r = cluster_vm_check_host(d->cfg, vmi, NULL, err, errlen)) < 0)
		goto fail;
	cmd = (struct main_cmd){.kind = CMD_SPAWN, .vm = vmi, .argv = argv};
	r = discod_main_call(d, &cmd);
	if (r < 0) {
		snprintf(err, errlen, "cannot run %s: %s", d->qemu, strerror(-r));
		goto fail;
	}
	qemu_cmdline_free(argv);
	disco_log(DISCO_LOG_INFO,
		  "discod: vm %s: qemu pid %d started (%d of %d vCPUs here, %s, port %d; log %s/qemu.log)",
		  vm->name, (int)v->pid, v->vcpu_count, vm->vcpus, v->master ? "master" : "not master",
		  port, v->dir);
	return 0;
fail:
	qemu_cmdline_free(argv);
	pthread_mutex_lock(&d->mu);
	v->state = LVM_FAILED;
	v->ended = time(NULL);
	snprintf(v->reason, sizeof(v->reason), "not started: %s", err);
	pthread_mutex_unlock(&d->mu);
	disco_log(DISCO_LOG_WARN, "discod: vm %s not started: %s", vm->name, err);
	return r;
}

int discod_vm_stop(struct discod *d, int vmi, bool force, bool expect_only, char *err, size_t errlen)
{
	struct lvm *v = &d->vms[vmi];
	struct main_cmd cmd = {.kind = CMD_SIGNAL, .vm = vmi, .sig = force ? SIGKILL : SIGTERM};
	int r;

	pthread_mutex_lock(&d->mu);
	if (!alive(v->state)) {
		snprintf(err, errlen, "vm %s does not run on node %s (%s)", d->cfg->vms[vmi].name,
			 d->opt.node, lvm_state_name(v->state));
		pthread_mutex_unlock(&d->mu);
		return -ESRCH;
	}
	v->stop_wanted = true;
	if (expect_only) {
		pthread_mutex_unlock(&d->mu);
		return 0;
	}
	v->state = LVM_STOPPING;
	if (!force && !v->kill_at_ms)
		v->kill_at_ms = discod_now_ms() + d->opt.stop_grace_s * 1000;
	pthread_mutex_unlock(&d->mu);
	r = discod_main_call(d, &cmd);
	if (r < 0 && r != -ESRCH)
		snprintf(err, errlen, "cannot signal vm %s's qemu: %s", d->cfg->vms[vmi].name,
			 strerror(-r));
	disco_log(DISCO_LOG_INFO, "discod: vm %s: %s sent to its qemu", d->cfg->vms[vmi].name,
		  force ? "SIGKILL" : "SIGTERM");
	return r == -ESRCH ? 0 : r;
}

/* The last line QEMU's disco layer wrote ("disco NODE: ..."), else the
 * last line, from the tail of @log. */
static void last_words(const char *log, char *out, size_t len)
{
	char buf[8192];
	ssize_t n;
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	off_t size;

	out[0] = '\0';
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	const char *best = NULL, *last = NULL;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (!line[0])
			continue;
		last = line;
		if (!strncmp(line, "disco ", 6))
			best = line;
	}
	if (best || last)
		snprintf(out, len, "%s", best ? best : last);
}

void discod_vm_reaped(struct discod *d, pid_t pid, int status)
{
	char how[96], words[384], log[PATH_MAX + 16];

	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->cfg->n_vms; i++) {
		struct lvm *v = &d->vms[i];

		if (v->pid != pid || !alive(v->state))
			continue;
		if (WIFSIGNALED(status)) {
			const char *ab = sigabbrev_np(WTERMSIG(status));

			snprintf(how, sizeof(how), "qemu killed by signal SIG%s", ab ? ab : "?");
		} else {
			snprintf(how, sizeof(how), "qemu exited with status %d", WEXITSTATUS(status));
		}
		snprintf(log, sizeof(log), "%s/qemu.log", v->dir);
		last_words(log, words, sizeof(words));
		bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		v->state = clean || v->stop_wanted ? LVM_STOPPED : LVM_FAILED;
		if (clean && !v->stop_wanted)
			snprintf(v->reason, sizeof(v->reason), "the guest powered off");
		else
			snprintf(v->reason, sizeof(v->reason), "%s%s%s%s",
				 v->stop_wanted ? "stopped on request: " : "", how,
				 words[0] && !WIFSIGNALED(status) ? ": " : "",
				 WIFSIGNALED(status) ? "" : words);
		v->pid = 0;
		v->kill_at_ms = 0;
		v->ended = time(NULL);
		disco_log(v->state == LVM_FAILED ? DISCO_LOG_WARN : DISCO_LOG_INFO,
			  "discod: vm %s %s on node %s: %s", d->cfg->vms[i].name,
			  lvm_state_name(v->state), d->opt.node, v->reason);
		break;
	}
	pthread_mutex_unlock(&d->mu);
}

int discod_vm_deadlines(struct discod *d)
{
	int64_t now = discod_now_ms(), next = -1;

	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->cfg->n_vms; i++) {
		struct lvm *v = &d->vms[i];

		if (!v->kill_at_ms || !alive(v->state) || v->pid <= 0)
			continue;
		if (v->kill_at_ms <= now) {
			disco_log(DISCO_LOG_WARN,
				  "discod: vm %s: qemu pid %d still runs %d s after SIGTERM: SIGKILL",
				  d->cfg->vms[i].name, (int)v->pid, d->opt.stop_grace_s);
			kill(v->pid, SIGKILL);
			v->kill_at_ms = 0;
			continue;
		}
		if (next < 0 || v->kill_at_ms - now < next)
			next = v->kill_at_ms - now;
	}
	pthread_mutex_unlock(&d->mu);
	return next < 0 ? -1 : (int)next + 1;
}

void discod_vm_stop_all(struct discod *d)
{
	int64_t deadline = discod_now_ms() + d->opt.stop_grace_s * 1000;
	bool any;

	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->cfg->n_vms; i++) {
		struct lvm *v = &d->vms[i];

		if (alive(v->state) && v->pid > 0) {
			v->stop_wanted = true;
			v->state = LVM_STOPPING;
			kill(v->pid, SIGTERM);
		}
	}
	pthread_mutex_unlock(&d->mu);
	do {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid > 0) {
			discod_vm_reaped(d, pid, status);
			continue;
		}
		any = false;
		pthread_mutex_lock(&d->mu);
		for (int i = 0; i < d->cfg->n_vms; i++)
			any |= alive(d->vms[i].state) && d->vms[i].pid > 0;
		pthread_mutex_unlock(&d->mu);
		if (any)
			usleep(50 * 1000);
	} while (any && discod_now_ms() < deadline);
	if (any) {
		pthread_mutex_lock(&d->mu);
		for (int i = 0; i < d->cfg->n_vms; i++)
			if (alive(d->vms[i].state) && d->vms[i].pid > 0)
				kill(d->vms[i].pid, SIGKILL);
		pthread_mutex_unlock(&d->mu);
		while (waitpid(-1, NULL, 0) > 0)
			;
	}
}

/* ---- reports --------------------------------------------------------- */

static Disco__Counter **counters(const struct sample *s, size_t *n)
{
	Disco__Counter **a = calloc((size_t)s->n + 1, sizeof(*a));

	*n = 0;
	if (!a)
		return NULL;
	for (int i = 0; i < s->n; i++) {
		Disco__Counter *c = malloc(sizeof(*c));

		if (!c)
			break;
		disco__counter__init(c);
		c->key = strdup(s->c[i].key);
		c->value = s->c[i].value;
		a[(*n)++] = c;
	}
	return a;
}

static Disco__Counter **rates(const struct lvm *v, size_t *n)
{
	Disco__Counter **a = calloc((size_t)v->cur.n + 1, sizeof(*a));

	*n = 0;
	if (!a)
		return NULL;
	for (int i = 0; i < v->cur.n; i++) {
		double r = discod_rate(v, v->cur.c[i].key);
		Disco__Counter *c;

		if (isnan(r) || !(c = malloc(sizeof(*c))))
			continue;
		disco__counter__init(c);
		c->key = strdup(v->cur.c[i].key);
		c->value = r;
		a[(*n)++] = c;
	}
	return a;
}

Disco__NodeReport *discod_node_report(struct discod *d)
{
	Disco__NodeReport *r = calloc(1, sizeof(*r));
	const struct cluster_node *me = &d->cfg->nodes[d->self];
	char addr[320];
	double now = (double)discod_now_ms() / 1000.0;

	if (!r)
		return NULL;
	disco__node_report__init(r);
	snprintf(addr, sizeof(addr), "%s:%d", me->address, me->control_port);
	r->node = strdup(me->name);
	r->address = strdup(addr);
	r->up = true;
	r->uptime_s = (uint64_t)(time(NULL) - d->started);
	r->vms = calloc((size_t)d->cfg->n_vms + 1, sizeof(*r->vms));
	r->peers = calloc((size_t)d->cfg->n_nodes + 1, sizeof(*r->peers));
	pthread_mutex_lock(&d->mu);
	for (int i = 0; r->vms && i < d->cfg->n_vms; i++) {
		const struct lvm *v = &d->vms[i];
		Disco__VmReport *x;

		if (v->state == LVM_NONE || !(x = calloc(1, sizeof(*x))))
			continue;
		disco__vm_report__init(x);
		x->vm = strdup(d->cfg->vms[i].name);
		x->state = strdup(lvm_state_name(v->state));
		x->pid = v->pid;
		x->reason = strdup(v->reason);
		x->vcpu_first = (uint32_t)v->vcpu_first;
		x->vcpu_count = (uint32_t)v->vcpu_count;
		x->master = v->master;
		x->started_unix = (uint64_t)v->started;
		x->ended_unix = (uint64_t)v->ended;
		x->sample_age_s = v->cur.n ? now - v->cur.t : -1;
		x->counters = counters(&v->cur, &x->n_counters);
		x->rates = rates(v, &x->n_rates);
		r->vms[r->n_vms++] = x;
	}
	for (int n = 0; r->peers && n < d->cfg->n_nodes; n++) {
		Disco__PeerReport *p;

		if (n == d->self || !d->peer_probed[n] || !(p = calloc(1, sizeof(*p))))
			continue;
		disco__peer_report__init(p);
		p->node = strdup(d->cfg->nodes[n].name);
		p->up = d->peer_up[n];
		p->error = strdup(d->peer_err[n]);
		r->peers[r->n_peers++] = p;
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

void discod_free_node_report(Disco__NodeReport *r)
{
	/* every field was malloc'd like an unpacked message's */
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}
