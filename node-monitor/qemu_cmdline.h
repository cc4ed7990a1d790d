// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The QEMU command line of one node of a distributed VM.
 *
 * Every node of a VM starts the same machine (same -smp, -m, devices and
 * RAM backend), so the QOM trees, RAMBlocks and firmware tables match; only
 * two things differ between nodes: the serial backend (the guest console
 * belongs to the master, which owns every device) and the node= property of
 * the disco object, which tells the patched QEMU which vCPUs and pages are
 * local. disco_node.c decides the options; this module turns them into an
 * argv, with no side effects beyond checking that the kernel and initrd
 * exist, so the unit test (tests/unit/test_qemu_cmdline.c) can check every
 * flag. Why each flag is there: node-monitor/README.md.
 */
#ifndef DISCO_NODE_QEMU_CMDLINE_H
#define DISCO_NODE_QEMU_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster-config/cluster_config.h"

enum node_accel {
	NODE_ACCEL_TCG, /* multi-threaded TCG: one host thread per vCPU */
	NODE_ACCEL_KVM, /* KVM with QEMU's userspace APIC (kernel-irqchip=off) */
};

enum node_console {
	NODE_CONSOLE_STDIO,  /* -serial stdio */
	NODE_CONSOLE_NULL,   /* -serial null */
	NODE_CONSOLE_SOCKET, /* a listening unix socket, see console_path */
};

struct node_qemu_opts {
	const char *qemu;          /* the binary, argv[0] */
	const char *config_path;   /* absolute path of the cluster file, for the disco object */
	enum node_accel accel;
	enum node_console console; /* used on the master only; others get -serial null */
	const char *console_path;  /* NODE_CONSOLE_SOCKET: the socket's path */
	const char *console_log;   /* NODE_CONSOLE_SOCKET: NULL, or a file QEMU copies the
				      console's output to (discod keeps each VM's there) */
	const char *stats;         /* NULL or a file for the disco object's statistics */
	const char *append;        /* NULL or text appended to the VM's kernel cmdline */
	char *const *extra;        /* n_extra arguments added at the end, verbatim */
	int n_extra;
};

/*
 * Build the argv (NULL-terminated, every string and the array malloc'd;
 * free with qemu_cmdline_free()) that starts node @node's QEMU for @vm.
 * Returns 0, or a negative errno with one line in @err:
 *   -EINVAL  @node is not in @vm's vcpu_placement, a bad option value, or
 *            an initrd/cmdline/--append without a kernel
 *   -ENOENT  the kernel or initrd file is missing (the message names it
 *            and says how to build it)
 *   -ENOMEM
 */
int qemu_cmdline_build(const struct cluster_config *cfg, const struct cluster_vm *vm, int node,
		       const struct node_qemu_opts *opts, char ***argv_out, char *err, size_t errlen);
void qemu_cmdline_free(char **argv);

/* @s with every ',' doubled, as QEMU's option parsers (QemuOpts, keyval)
 * read a comma inside a value. malloc'd; NULL when out of memory. */
char *qemu_opt_escape(const char *s);

/* @argv as one line a POSIX shell reads back as the same words: safe words
 * as they are, others in single quotes ('\'' for a quote). malloc'd; NULL
 * when out of memory. */
char *qemu_cmdline_quote(char *const *argv);

#endif
