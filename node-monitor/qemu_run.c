// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fork, exec and wait for QEMU (see qemu_run.h).
 *
 * Start-up races and how they are closed:
 * - A signal arriving before the parent knows the child's pid would be
 *   lost: the forwarded signals are blocked before their handlers are
 *   installed and unblocked only once child_pid is set, so a pending one
 *   is forwarded at unblock time.
 * - disco-node dying between fork() and prctl(): the child checks after
 *   prctl() that its parent is still the one that forked it.
 * - exec failing in the child: the child writes errno into a close-on-exec
 *   pipe; the parent reads it (EOF means exec succeeded) and reports it.
 * The child restores the signal mask before exec; exec resets the handlers
 * to their defaults. Signals disco-node was started with ignored stay
 * ignored, in disco-node and in QEMU, as shells expect. The first
 * forwarded signal is passed on as it is, any later one as SIGKILL (see
 * qemu_run.h).
 */
#include "qemu_run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP};
#define N_FORWARDED (int)(sizeof(forwarded) / sizeof(forwarded[0]))

/* Written by qemu_run() before the forwarded signals are unblocked (and
 * cleared after they are blocked again), read by the handler. */
static volatile sig_atomic_t child_pid, signals_seen;
static const char *kill_note;
static size_t kill_note_len;

static void forward_signal(int sig)
{
	int saved = errno;

	if (child_pid > 0) {
		if (signals_seen++ == 0) {
			kill((pid_t)child_pid, sig);
		} else {
			if (kill_note_len && write(STDERR_FILENO, kill_note, kill_note_len) < 0) {
				/* nothing to do: stderr is gone */
			}
			kill((pid_t)child_pid, SIGKILL);
		}
	}
	errno = saved;
}

static void __attribute__((noreturn)) child(char *const *argv, int report_fd, pid_t parent,
					    const sigset_t *mask, const struct qemu_spawn_io *io)
{
	int err;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	if (io) {
		if ((io->stdin_fd >= 0 && dup2(io->stdin_fd, STDIN_FILENO) < 0) ||
		    (io->stdout_fd >= 0 && dup2(io->stdout_fd, STDOUT_FILENO) < 0) ||
		    (io->stderr_fd >= 0 && dup2(io->stderr_fd, STDERR_FILENO) < 0)) {
			err = errno;
			while (write(report_fd, &err, sizeof(err)) < 0 && errno == EINTR)
				;
			_exit(127);
		}
		/* a new process group: a terminal's Ctrl-C meant for the
		 * supervisor does not reach every VM at once */
		if (io->own_group)
			setpgid(0, 0);
	}
	sigprocmask(SIG_SETMASK, mask, NULL);
	execv(argv[0], argv);
	err = errno;
	while (write(report_fd, &err, sizeof(err)) < 0 && errno == EINTR)
		;
	_exit(127);
}

int qemu_spawn(char *const *argv, const struct qemu_spawn_io *io, const sigset_t *child_mask,
	       pid_t *out)
{
	int fds[2], exec_err = 0;
	pid_t parent = getpid(), pid;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(fds[0]);
		close(fds[1]);
		return -e;
	}
	if (pid == 0)
		child(argv, fds[1], parent, child_mask, io);
	close(fds[1]);
	do /* EOF: exec succeeded (the pipe is close-on-exec) */
		n = read(fds[0], &exec_err, sizeof(exec_err));
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	if (n == (ssize_t)sizeof(exec_err)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -exec_err;
	}
	*out = pid;
	return 0;
}

/* Forward the signals of forwarded[] that are not ignored (a program
 * started with SIGINT ignored, e.g. in the background by a script, keeps
 * it ignored, as shells expect). Called with them blocked. */
static int install_handlers(void)
{
	struct sigaction sa = {.sa_handler = forward_signal}, old;

	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < N_FORWARDED; i++) {
		if (sigaction(forwarded[i], NULL, &old) < 0)
			return -errno;
		if (old.sa_handler != SIG_IGN && sigaction(forwarded[i], &sa, NULL) < 0)
			return -errno;
	}
	return 0;
}

int qemu_run(char *const *argv, const char *note, int *wstatus)
{
	sigset_t block, old;
	int r;
	pid_t pid;

	sigemptyset(&block);
	for (int i = 0; i < N_FORWARDED; i++)
		sigaddset(&block, forwarded[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	kill_note = note;
	kill_note_len = note ? strlen(note) : 0;
	signals_seen = 0;
	r = install_handlers();
	if (r == 0)
		r = qemu_spawn(argv, NULL, &old, &pid);
	if (r < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return r;
	}
	child_pid = pid;
	sigprocmask(SIG_SETMASK, &old, NULL); /* pending signals are forwarded now */

	r = 0;
	while (waitpid(pid, wstatus, 0) < 0) {
		if (errno != EINTR) {
			r = -errno;
			break;
		}
	}
	sigprocmask(SIG_BLOCK, &block, NULL);
	child_pid = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

int qemu_default_path(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n < 0)
		return -errno;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')))
		*slash = '\0'; /* the program's folder */
	if (snprintf(out, len, "%s/../lib/disco/qemu-system-x86_64", exe) >= (int)len)
		return -ENAMETOOLONG;
	if (access(out, F_OK) == 0)
		return 0;
	if ((slash = strrchr(exe, '/')))
		*slash = '\0'; /* the build tree */
	if (snprintf(out, len, "%s/qemu/qemu-system-x86_64", exe) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}
