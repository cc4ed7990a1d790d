// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * discod: the daemon of one node (one per machine). It starts and stops
 * this node's QEMU processes, one per VM that uses the node, answers the
 * disco command and the other nodes' daemons over its control port and
 * local socket (node-monitor/control/), samples each QEMU's counters and
 * serves them as Prometheus metrics. docs/architecture.md, "Running a
 * rack", has the design; docs/deploy.md the operator's side.
 *
 * Threads (each documented where it is created):
 *
 *   main        discod.c: poll() on the listening sockets, a signalfd
 *               (SIGCHLD, SIGTERM, SIGINT, SIGHUP) and the command
 *               eventfd. It alone forks QEMU (PR_SET_PDEATHSIG fires when
 *               the forking *thread* ends, so it must be one that lives as
 *               long as the daemon), reaps children, sends the signals of
 *               stops and their SIGKILL deadlines. Never blocks but in
 *               poll().
 *   connection  discod_serve.c: one per accepted connection, detached, at
 *               most DISCOD_MAX_CONNS at once: handshake, one request,
 *               its reply (a cluster request asks the other daemons, a
 *               console relays bytes). May block on sockets (bounded by
 *               deadlines) and on `cmd_done` while the main thread runs
 *               one of its commands.
 *   sampler     discod_stats.c: every second, each running QEMU's
 *               counters through QMP; every DISCOD_PROBE_S seconds, every
 *               other daemon (ping). Blocks on QMP and control sockets,
 *               with deadlines.
 *   http        libmicrohttpd's own thread (discod_metrics.c): renders
 *               /metrics from the table under `mu`.
 *
 * Lock: `mu` guards everything below marked so (the VM table, the peer
 * table, the command queue, the connection count). It is a leaf lock:
 * never held across a socket call, a fork, a wait or a callback into
 * another module; a thread that needs the main thread posts a command and
 * waits on `cmd_done` (which releases `mu`). `refused_mu`
 * (discod_serve.c) guards the rate limit of refused connections' log
 * lines; also a leaf, held only to log, never together with `mu`.
 */
#ifndef DISCO_DISCOD_H
#define DISCO_DISCOD_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cluster-config/cluster_config.h"
#include "control.h"

#define DISCOD_MAX_CONNS 64
#define DISCOD_PROBE_S 5         /* peer daemons pinged this often */
#define DISCOD_IO_TIMEOUT_MS 5000 /* a control request's reads and writes */
#define DISCOD_CONNECT_TIMEOUT_MS 2000
#define DISCOD_MAX_COUNTERS 256  /* QEMU's counters kept per sample */

enum lvm_state {
	LVM_NONE,     /* never started here */
	LVM_STARTING, /* QEMU runs; it has not joined the other nodes yet */
	LVM_RUNNING,  /* joined: its QMP monitor answers */
	LVM_STOPPING, /* a stop was sent; SIGKILL at kill_at_ms */
	LVM_STOPPED,  /* ended: powered off, or stopped on request */
	LVM_FAILED,   /* ended any other way: see reason */
};

struct counter {
	char key[64];
	double value;
};

/* One sample of a QEMU's counters (the `counters` property, "key=value"). */
struct sample {
	int n;
	double t;             /* CLOCK_MONOTONIC seconds */
	struct counter c[DISCOD_MAX_COUNTERS];
};

/* This node's QEMU of one VM, under mu. */
struct lvm {
	enum lvm_state state;
	pid_t pid;
	int port;              /* its session port on this node */
	int vcpu_first, vcpu_count;
	bool master;
	bool stop_wanted;      /* its end is a stop, not a failure */
	int64_t kill_at_ms;    /* CLOCK_MONOTONIC ms; 0: no SIGKILL pending */
	time_t started, ended;
	char reason[512];
	char dir[PATH_MAX];    /* RUN_DIR/NODE/VM: qmp.sock, console.sock, *.log */
	struct sample cur, prev; /* the sampler's last two */
	uint64_t generation;   /* bumped by each start, so a sampler result for
				  an older run is dropped */
};

struct discod_opts {
	const char *config;
	const char *node;
	const char *run_dir;      /* default /run/disco */
	const char *qemu;         /* NULL: next to discod, as disco-node finds it */
	const char *socket_group; /* NULL: the socket is 0600 */
	int stop_grace_s;         /* SIGTERM to SIGKILL */
};

/* A command for the main thread (discod.c). */
struct main_cmd {
	enum { CMD_SPAWN, CMD_SIGNAL } kind;
	int vm;                 /* cfg->vms index */
	char **argv;            /* CMD_SPAWN */
	int sig;                /* CMD_SIGNAL */
	int result;             /* 0 or -errno */
	bool done;
	struct main_cmd *next;
};

struct discod {
	struct cluster_config *cfg; /* loaded at start; immutable */
	int self;
	struct discod_opts opt;
	char qemu[PATH_MAX];
	char config_abs[PATH_MAX];
	char node_dir[PATH_MAX];    /* RUN_DIR/NODE */
	char socket_path[PATH_MAX]; /* RUN_DIR/discod-NODE.sock */
	time_t started;
	int wake_fd;                /* eventfd: main_cmd queued */

	pthread_mutex_t mu;
	pthread_cond_t cmd_done;
	struct lvm *vms;            /* cfg->n_vms entries, under mu */
	struct main_cmd *cmds;      /* under mu */
	int n_conns;                /* under mu */
	bool peer_up[CLUSTER_MAX_NODES];          /* under mu */
	char peer_err[CLUSTER_MAX_NODES][160];    /* under mu */
	bool peer_probed[CLUSTER_MAX_NODES];      /* under mu */
	volatile bool stopping;
};

/* discod.c: run @c on the main thread and wait for it (not from main). */
int discod_main_call(struct discod *d, struct main_cmd *c);
int64_t discod_now_ms(void);

/* discod_vms.c: this node's QEMUs. Each returns 0 or a negative errno
 * with one line in @err. */
int discod_vm_start(struct discod *d, int vm, const char *append, const char *accel, char *err,
		    size_t errlen);
int discod_vm_stop(struct discod *d, int vm, bool force, bool expect_only, char *err, size_t errlen);
/* The main thread: @pid ended with @status. */
void discod_vm_reaped(struct discod *d, pid_t pid, int status);
/* The main thread: SIGKILL the QEMUs past their deadline; returns the
 * milliseconds to the next deadline (-1: none). */
int discod_vm_deadlines(struct discod *d);
/* The main thread, at exit: stop every QEMU, wait, SIGKILL. */
void discod_vm_stop_all(struct discod *d);
const char *lvm_state_name(enum lvm_state s);
/* This node's report (NODE_STATUS), allocated; free with
 * discod_free_node_report(). */
Disco__NodeReport *discod_node_report(struct discod *d);
void discod_free_node_report(Disco__NodeReport *r);

/* discod_serve.c: a connection thread for @fd (tcp: needs the handshake). */
void discod_serve(struct discod *d, int fd, bool tcp, const char *from);
/* Logs how many refused connections the rate limit held back, once their
 * second is over (the sampler calls it every second). */
void discod_serve_log_flush(void);

/* discod_cluster.c: the requests that involve other nodes. */
int discod_cluster_status(struct discod *d, Disco__ControlReply *reply);
int discod_cluster_vm_start(struct discod *d, const Disco__ControlRequest *rq, char *err, size_t errlen);
int discod_cluster_vm_stop(struct discod *d, const Disco__ControlRequest *rq, char *err, size_t errlen);
/* Connect to node @node's daemon (as this node) and make one call. */
int discod_call_peer(struct discod *d, int node, const Disco__ControlRequest *rq,
		     Disco__ControlReply **reply, int timeout_ms, char *err, size_t errlen);
void discod_free_cluster_reply(Disco__ControlReply *r);

/* discod_console.c: relay between @c (a client) and VM @vm's console. */
void discod_console(struct discod *d, struct control_conn *c, int vm);

/* discod_stats.c: the sampler thread. */
int discod_sampler_start(struct discod *d);
/* Rate per second of counter @key of @vm over the last two samples;
 * under mu. -1 when unknown. */
double discod_rate(const struct lvm *v, const char *key);
const struct counter *discod_counter(const struct sample *s, const char *key);

/* discod_metrics.c: /metrics over HTTP (nodes[].metrics_port). */
int discod_metrics_start(struct discod *d, char *err, size_t errlen);
void discod_metrics_stop(void);

/* discod_qmp.c: one QMP round trip for the counters (qom-get). */
int discod_qmp_counters(const char *socket_path, char **text, char *err, size_t errlen);

#endif
