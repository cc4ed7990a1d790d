// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The disco command: one program, subcommands in the style of kvmtool's
 * lkvm or virsh (disco.c dispatches; one file per group). It talks to a
 * node's daemon (discod) through the local Unix socket, or with --tcp to
 * any node's control port with the cluster key; that daemon asks the
 * others (node-monitor/discod/discod_cluster.c).
 *
 * Exit status, the same for every subcommand (disco --help prints it):
 */
#ifndef DISCO_CLI_H
#define DISCO_CLI_H

#include <stdbool.h>

#include "control.h"

enum cli_exit {
	CLI_OK = 0,
	CLI_FAILED = 1,      /* the operation failed (the message says where and why) */
	CLI_USAGE = 2,       /* bad command line or config file */
	CLI_UNREACHABLE = 3, /* a daemon could not be reached (named in the message) */
	CLI_AUTH = 4,        /* a daemon refused the key, or the key could not be used */
	CLI_NO_VM = 5,       /* no such VM in the config */
};

struct cli_global {
	const char *config;  /* --config, $DISCO_CONFIG, else /etc/disco/cluster.yaml */
	const char *node;    /* --node: which daemon to ask */
	const char *run_dir; /* --run-dir: where the local sockets are (/run/disco) */
	bool tcp;            /* --tcp: the control port with the key, not the socket */
};

/* A connection to the chosen daemon; *@who names it. CLI_OK or an exit
 * status after printing the error. */
int cli_connect(const struct cli_global *g, struct control_conn *c, char *who, size_t wholen);
/* One request to the chosen daemon; the reply's error is printed and
 * turned into an exit status (the reply is kept for the caller when
 * CLI_OK). */
int cli_request(const struct cli_global *g, Disco__ControlRequest *rq, Disco__ControlReply **reply);
/* The exit status for a negative errno of a reply. */
int cli_exit_for(int error);

int cmd_config(const struct cli_global *g, int argc, char **argv);
int cmd_vm(const struct cli_global *g, int argc, char **argv);
int cmd_status(const struct cli_global *g, int argc, char **argv);
int cmd_stats(const struct cli_global *g, int argc, char **argv);
int cmd_compare(const struct cli_global *g, int argc, char **argv);

/* True for -h / --help. */
bool cli_is_help(const char *arg);

#endif
