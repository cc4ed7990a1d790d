// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco vm start|stop|console VM: one request to a daemon, which does the
 * cluster's part (discod_cluster.c, discod_console.c).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define ESCAPE 0x1d /* Ctrl-] leaves the console, as telnet and virsh do */

static void vm_usage(FILE *f)
{
	fprintf(f,
		"usage: disco [global options] vm start VM [--append TEXT] [--accel tcg|kvm] [--no-wait]\n"
		"       disco [global options] vm stop VM [--force]\n"
		"       disco [global options] vm console VM [--linger SEC]\n\n"
		"start    start VM's QEMU on every node it uses (vms[].vcpu_placement) and wait\n"
		"         until it runs there (its nodes joined); --append adds to the guest's\n"
		"         kernel command line; --no-wait returns once every QEMU was started\n"
		"stop     an orderly stop of VM on every node (the guest sees a power-off);\n"
		"         --force: SIGKILL at once\n"
		"console  the guest's serial console (on the VM's master); Ctrl-] leaves. With\n"
		"         stdin not a terminal, what it reads is sent, and output is shown\n"
		"         until --linger SEC (default 1) after its end\n");
}

static int start_stop(const struct cli_global *g, bool start, int argc, char **argv)
{
	static const struct option lo[] = {{"append", required_argument, 0, 'a'},
					   {"accel", required_argument, 0, 'A'},
					   {"no-wait", no_argument, 0, 'n'},
					   {"force", no_argument, 0, 'f'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	Disco__ControlReply *rep;
	const char *vm = NULL;
	int r;

	optind = 1;
	opterr = 0;
	for (int ch; (ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
		switch (ch) {
		case 'a': if (!start) goto bad; rq.append = optarg; break;
		case 'A':
			if (!start) goto bad;
			if (strcmp(optarg, "tcg") && strcmp(optarg, "kvm")) {
				fprintf(stderr, "disco vm start: --accel: expected tcg or kvm, got \"%s\"\n",
					optarg);
				return CLI_USAGE;
			}
			rq.accel = optarg;
			break;
		case 'n': if (!start) goto bad; rq.no_wait = true; break;
		case 'f': if (start) goto bad; rq.force = true; break;
		case 'h': vm_usage(stdout); return CLI_OK;
		default:
		bad:
			fprintf(stderr, "disco vm %s: unknown option \"%s\" (see disco vm --help)\n",
				start ? "start" : "stop", argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "disco vm %s: expected one VM name (see disco vm --help)\n",
			start ? "start" : "stop");
		return CLI_USAGE;
	}
	vm = argv[optind];
	rq.op = start ? DISCO__CONTROL_REQUEST__OP__VM_START : DISCO__CONTROL_REQUEST__OP__VM_STOP;
	rq.vm = (char *)vm;
	r = cli_request(g, &rq, &rep);
	if (r != CLI_OK)
		return r;
	printf("vm %s %s\n", vm,
	       start ? (rq.no_wait ? "started on every node (not waiting for it to join)" : "runs")
		     : "stopped");
	disco__control_reply__free_unpacked(rep, NULL);
	return CLI_OK;
}

static struct termios saved;
static bool raw_mode;

static void restore_tty(void)
{
	if (raw_mode)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	raw_mode = false;
}

static int console(const struct cli_global *g, int argc, char **argv)
{
	Disco__ControlRequest rq = DISCO__CONTROL_REQUEST__INIT;
	Disco__ControlReply *rep = NULL;
	struct control_conn c;
	char who[256], err[1024];
	double linger = 1.0;
	bool tty = isatty(STDIN_FILENO), in_open = true;
	int64_t until = 0;
	int r, argi = 0;

	const char *vm = NULL;

	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			vm_usage(stdout);
			return CLI_OK;
		} else if (!strcmp(argv[i], "--linger") && i + 1 < argc) {
			linger = atof(argv[++i]);
		} else if (argv[i][0] != '-' && !vm) {
			vm = argv[i];
			argi = i;
		} else {
			fprintf(stderr, "disco vm console: unexpected argument \"%s\" (see disco vm --help)\n",
				argv[i]);
			return CLI_USAGE;
		}
	}
	if (!vm) {
		fprintf(stderr, "disco vm console: expected one VM name (see disco vm --help)\n");
		return CLI_USAGE;
	}
	if ((r = cli_connect(g, &c, who, sizeof(who))) != CLI_OK)
		return r;
	rq.version = CONTROL_VERSION;
	rq.op = DISCO__CONTROL_REQUEST__OP__CONSOLE;
	rq.vm = argv[argi];
	r = control_call(&c, &rq, &rep, 10000, err, sizeof(err));
	if (r < 0 || rep->error) {
		fprintf(stderr, "disco: %s\n", r < 0 ? err : rep->message);
		r = r < 0 ? CLI_UNREACHABLE : cli_exit_for(rep->error);
		if (rep)
			disco__control_reply__free_unpacked(rep, NULL);
		control_conn_close(&c);
		return r;
	}
	disco__control_reply__free_unpacked(rep, NULL);
	if (tty) {
		struct termios t;

		fprintf(stderr, "disco: console of vm %s (Ctrl-] leaves)\r\n", argv[argi]);
		if (tcgetattr(STDIN_FILENO, &saved) == 0) {
			t = saved;
			cfmakeraw(&t);
			raw_mode = tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0;
			atexit(restore_tty);
		}
	}
	r = CLI_OK;
	for (;;) {
		struct pollfd p[2] = {{.fd = c.fd, .events = POLLIN},
				      {.fd = STDIN_FILENO, .events = in_open ? POLLIN : 0}};
		struct timespec ts;
		int timeout = -1;

		if (!in_open) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
			if (now >= until)
				break;
			timeout = (int)(until - now);
		}
		if (poll(p, 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			const uint8_t *body;
			size_t len;
			uint16_t type;

			if (control_recv(&c, &type, &body, &len, 10000, err, sizeof(err)) < 0) {
				restore_tty();
				fprintf(stderr, "\ndisco: the console closed (the VM stopped?)\n");
				r = CLI_FAILED;
				break;
			}
			if (type == CONTROL_DATA && len && write(STDOUT_FILENO, body, len) < 0)
				break;
		}
		if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			char buf[1024];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			char *esc = tty && n > 0 ? memchr(buf, ESCAPE, (size_t)n) : NULL;

			if (esc)
				n = esc - buf;
			if (n > 0 && control_send(&c, CONTROL_DATA, buf, (size_t)n, 10000) < 0)
				break;
			if (esc)
				break;
			if (n <= 0) {
				clock_gettime(CLOCK_MONOTONIC, &ts);
				until = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
					(int64_t)(linger * 1000);
				in_open = false;
			}
		}
	}
	restore_tty();
	if (tty)
		fprintf(stderr, "\ndisco: left the console of vm %s\n", argv[argi]);
	control_conn_close(&c);
	return r;
}

int cmd_vm(const struct cli_global *g, int argc, char **argv)
{
	if (argc < 2 || cli_is_help(argv[1])) {
		vm_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "start"))
		return start_stop(g, true, argc - 1, argv + 1);
	if (!strcmp(argv[1], "stop"))
		return start_stop(g, false, argc - 1, argv + 1);
	if (!strcmp(argv[1], "console"))
		return console(g, argc - 1, argv + 1);
	fprintf(stderr, "disco vm: unknown subcommand \"%s\": start, stop or console\n", argv[1]);
	return CLI_USAGE;
}
