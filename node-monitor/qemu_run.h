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

/*
 * Start @argv (argv[0] is the binary's path; no PATH search) and wait for
 * it. Returns 0 with its wait status in @wstatus once it has ended, or a
 * negative errno when it could not be started: fork's error, or the error
 * of execv() in the child (-ENOENT, -EACCES, -ENOEXEC, ...). @kill_note
 * (kept by the caller until qemu_run() returns; may be NULL) is written to
 * stderr when a second signal makes disco-node kill QEMU.
 */
int qemu_run(char *const *argv, const char *kill_note, int *wstatus);

#endif
