// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Running this node's QEMU as a child of disco-node and waiting for it.
 *
 * disco-node lives exactly as long as the guest on this node: it forks
 * QEMU, forwards SIGINT, SIGTERM and SIGHUP to it (QEMU turns them into an
 * orderly shutdown), and returns QEMU's wait status. A second such signal
 * means the first did not work (a QEMU stuck with its main loop blocked
 * ignores them): it becomes SIGKILL. The child asks the kernel for SIGKILL
 * when its parent dies (PR_SET_PDEATHSIG), so killing disco-node with
 * SIGKILL never leaves a QEMU behind.
 */
#ifndef DISCO_NODE_QEMU_RUN_H
#define DISCO_NODE_QEMU_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/*
 * Start @argv (argv[0] is the binary's path; no PATH search) and wait for
 * it. Returns 0 with its wait status in @wstatus once it has ended, or a
 * negative errno when it could not be started: fork's error, or the error
 * of execv() in the child (-ENOENT, -EACCES, -ENOEXEC, ...). @kill_note
 * (kept by the caller until qemu_run() returns; may be NULL) is written to
 * stderr when a second signal makes disco-node kill QEMU.
 */
int qemu_run(char *const *argv, const char *kill_note, int *wstatus);

/* Where a spawned QEMU's standard streams go (-1: inherited). */
struct qemu_spawn_io {
	int stdin_fd, stdout_fd, stderr_fd;
	bool own_group; /* a process group of its own */
};

/*
 * Start @argv as a child without waiting for it (discod, which runs many):
 * fork, PR_SET_PDEATHSIG(SIGKILL), @io's redirections (may be NULL), the
 * signal mask @child_mask, exec. Returns 0 with its pid in *@pid once the
 * exec succeeded, or the negative errno of fork, a redirection or exec
 * (the failed child is reaped). PR_SET_PDEATHSIG fires when the *thread*
 * that forked ends, so call it from a thread that lives as long as the
 * child should.
 */
int qemu_spawn(char *const *argv, const struct qemu_spawn_io *io, const sigset_t *child_mask,
	       pid_t *pid);

/*
 * The patched QEMU that belongs to the running program (disco-node,
 * discod) into @out: PREFIX/lib/disco/qemu-system-x86_64 when the program
 * is installed in PREFIX/bin (make install, the Debian package), else
 * BUILD/qemu/qemu-system-x86_64 for a program in BUILD/node-monitor (the
 * link scripts/build-qemu.sh makes). Returns 0, or -errno when the
 * program's own path cannot be read or @out is too small; whether the file
 * exists is the caller's check.
 */
int qemu_default_path(char *out, size_t len);

#endif
