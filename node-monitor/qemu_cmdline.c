// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Builds the QEMU command line of one node (see qemu_cmdline.h for the
 * contract and node-monitor/README.md for why each flag is there).
 *
 * The argv is assembled in a growable array of malloc'd strings; any
 * allocation failure frees what was built and returns -ENOMEM, so callers
 * only ever see a complete argv or none. Values that QEMU parses as
 * "key=value,key=value" (-name, -object, -chardev) go through
 * qemu_opt_escape(); -kernel, -initrd and -append take their argument
 * verbatim, so those are passed as they are.
 */
#include "qemu_cmdline.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct argv_builder {
	char **v;
	int n, cap;
	int error; /* first failure (negative errno), sticky */
};

static void add_owned(struct argv_builder *b, char *s)
{
	if (!s && !b->error)
		b->error = -ENOMEM;
	if (b->error) {
		free(s);
		return;
	}
	if (b->n + 2 > b->cap) {
		int cap = b->cap ? 2 * b->cap : 64;
		char **v = realloc(b->v, cap * sizeof(*v));

		if (!v) {
			free(s);
			b->error = -ENOMEM;
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = s;
	b->v[b->n] = NULL;
}

static void add(struct argv_builder *b, const char *s)
{
	add_owned(b, strdup(s));
}

static void addf(struct argv_builder *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void addf(struct argv_builder *b, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	add_owned(b, s);
}

char *qemu_opt_escape(const char *s)
{
	size_t n = strlen(s), commas = 0;
	char *out, *p;

	for (size_t i = 0; i < n; i++)
		commas += s[i] == ',';
	out = malloc(n + commas + 1);
	if (!out)
		return NULL;
	p = out;
	for (size_t i = 0; i < n; i++) {
		*p++ = s[i];
		if (s[i] == ',')
			*p++ = ',';
	}
	*p = '\0';
	return out;
}

static int shell_safe(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-", *s))
			return 0;
	return 1;
}

char *qemu_cmdline_quote(char *const *argv)
{
	size_t len = 1;
	char *out, *p;

	for (int i = 0; argv[i]; i++)
		len += 4 * strlen(argv[i]) + 3; /* worst case: every byte a quote */
	out = malloc(len);
	if (!out)
		return NULL;
	p = out;
	for (int i = 0; argv[i]; i++) {
		const char *s = argv[i];

		if (i)
			*p++ = ' ';
		if (shell_safe(s)) {
			p = stpcpy(p, s);
			continue;
		}
		*p++ = '\'';
		for (; *s; s++) {
			if (*s == '\'')
				p = stpcpy(p, "'\\''");
			else
				*p++ = *s;
		}
		*p++ = '\'';
	}
	*p = '\0';
	return out;
}

void qemu_cmdline_free(char **argv)
{
	if (!argv)
		return;
	for (int i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* @path made absolute against the folder of @config_path (cluster-config
 * already stores absolute paths; this covers a hand-made struct). */
static char *resolve_path(const char *path, const char *config_path)
{
	const char *slash;
	char *out;

	if (path[0] == '/' || !config_path || !(slash = strrchr(config_path, '/')))
		return strdup(path);
	if (asprintf(&out, "%.*s/%s", (int)(slash - config_path), config_path, path) < 0)
		return NULL;
	return out;
}

/* 0 when @path is a readable regular file, else -ENOENT with a message. */
static int check_guest_file(const char *what, const char *path, const struct cluster_vm *vm,
			    char *err, size_t errlen)
{
	struct stat st;
	const char *why;

	if (stat(path, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (access(path, R_OK) < 0)
		why = strerror(errno);
	else
		return 0;
	snprintf(err, errlen,
		 "%s %s of VM \"%s\": %s; build the guest with scripts/make-guest.sh (`make run` also builds it)",
		 what, path, vm->name, why);
	return -ENOENT;
}

static void list_vm_nodes(const struct cluster_config *cfg, const struct cluster_vm *vm, char *buf,
			  size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < cfg->n_nodes && used < len; i++) {
		if (!(vm->node_mask & (1ULL << i)))
			continue;
		used += snprintf(buf + used, len - used, "%s%s", used ? ", " : "", cfg->nodes[i].name);
	}
}

static int check_args(const struct cluster_config *cfg, const struct cluster_vm *vm, int node,
		      const struct node_qemu_opts *o, char *err, size_t errlen)
{
	char names[1024];

	if (!o->qemu || !o->config_path) {
		snprintf(err, errlen, "internal error: no QEMU binary or config path");
		return -EINVAL;
	}
	if (node < 0 || node >= cfg->n_nodes) {
		snprintf(err, errlen, "no node with index %d (the cluster has %d)", node, cfg->n_nodes);
		return -EINVAL;
	}
	if (!(vm->node_mask & (1ULL << node))) {
		list_vm_nodes(cfg, vm, names, sizeof(names));
		snprintf(err, errlen,
			 "node \"%s\" does not take part in VM \"%s\" (not in its vcpu_placement); "
			 "the VM runs on %s",
			 cfg->nodes[node].name, vm->name, names);
		return -EINVAL;
	}
	if (o->accel != NODE_ACCEL_TCG && o->accel != NODE_ACCEL_KVM) {
		snprintf(err, errlen, "internal error: bad accelerator %d", (int)o->accel);
		return -EINVAL;
	}
	if (o->console == NODE_CONSOLE_SOCKET && (!o->console_path || !*o->console_path)) {
		snprintf(err, errlen, "--console socket: needs a path (socket:PATH)");
		return -EINVAL;
	}
	if (!vm->kernel[0] && (vm->initrd[0] || vm->cmdline[0] || (o->append && *o->append))) {
		snprintf(err, errlen,
			 "VM \"%s\" has no kernel, so its %s cannot be used (QEMU takes them only with -kernel)",
			 vm->name,
			 vm->initrd[0] ? "initrd" : vm->cmdline[0] ? "cmdline" : "--append text");
		return -EINVAL;
	}
	return 0;
}

/*
 * vCPU topology. With several guest NUMA nodes each one is a socket of its
 * own, as on a real NUMA machine: Linux warns at boot (topology_sane) when
 * one package spans two nodes, and schedules as if they shared a cache.
 * Nodes with the same vCPU count: sockets=nodes, cores=that count; else one
 * socket per vCPU. Kept flat when the socket split would push an APIC ID
 * past 254 (xAPIC; IDs are spaced by powers of two).
 */
static void add_smp(struct argv_builder *b, const struct cluster_config *cfg,
		    const struct cluster_vm *vm)
{
	int nodes = 0, per = 0, cores, bits = 0;
	bool uniform = true;

	for (int i = 0; i < cfg->n_nodes; i++) {
		int v = vm->vcpus_per_node[i];
		if (v <= 0)
			continue;
		nodes++;
		uniform &= per == 0 || v == per;
		per = v;
	}
	add(b, "-smp");
	cores = uniform ? per : 1;
	while ((1 << bits) < cores)
		bits++;
	if (nodes < 2 || ((vm->vcpus / cores - 1) << bits | (cores - 1)) > 254) {
		addf(b, "%d", vm->vcpus);
		return;
	}
	addf(b, "%d,sockets=%d,cores=%d,threads=1", vm->vcpus, vm->vcpus / cores, cores);
}

/*
 * Guest memory. One node with vCPUs: one backend, no NUMA. Several: each
 * node's vCPUs and its share of memory (cluster_vm_numa_range(), the same
 * split `placement: numa` homes pages by) form one guest NUMA node, in node
 * order, so the guest's SRAT shows the cluster; the backends line up in
 * guest RAM in that order, which is also the DSM's page order.
 */
/* Guest NUMA nodes: one per node with vCPUs of the VM. */
static int guest_numa_nodes(const struct cluster_vm *vm)
{
	int n = 0;

	for (int i = 0; i < CLUSTER_MAX_NODES; i++)
		n += vm->vcpus_per_node[i] > 0;
	return n;
}

static void add_memory(struct argv_builder *b, const struct cluster_config *cfg,
		       const struct cluster_vm *vm)
{
	/* dsm.backing memfd: the DSM maps pages of the backend's memfd */
	const char *backend = vm->dsm.backing == DSM_BACKING_MEMFD ? "memory-backend-memfd"
								   : "memory-backend-ram";
	int guest_nodes = guest_numa_nodes(vm);

	add(b, "-machine");
	if (guest_nodes < 2) {
		add(b, "pc,vmport=off,smm=off,memory-backend=ram0");
		add(b, "-object");
		addf(b, "%s,id=ram0,size=%" PRIu64, backend, vm->memory_bytes);
		return;
	}
	add(b, "pc,vmport=off,smm=off");
	for (int i = 0, g = 0; i < cfg->n_nodes; i++) {
		uint64_t first_page, n_pages;
		int first_cpu, n_cpus;

		if (cluster_vm_numa_range(cfg, vm, i, &first_page, &n_pages) < 0)
			continue;
		cluster_vm_node_vcpus(cfg, vm, i, &first_cpu, &n_cpus);
		add(b, "-object");
		addf(b, "%s,id=ram%d,size=%" PRIu64, backend, g, n_pages * 4096);
		add(b, "-numa");
		addf(b, "node,nodeid=%d,cpus=%d-%d,memdev=ram%d", g, first_cpu,
		     first_cpu + n_cpus - 1, g);
		g++;
	}
	for (int a = 0; a < guest_nodes; a++)
		for (int c = 0; c < guest_nodes; c++)
			if (a != c) {
				add(b, "-numa");
				addf(b, "dist,src=%d,dst=%d,val=%d", a, c,
				     vm->numa_distance == CLUSTER_NUMA_DISTANCE_AUTO
					     ? CLUSTER_NUMA_DISTANCE_DEFAULT
					     : vm->numa_distance);
			}
}

/* Does @word (e.g. "nohz_full=") start a word of the kernel command line @s? */
static bool cmdline_has(const char *s, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = s; (p = strstr(p, word)) != NULL; p += n)
		if (p == s || p[-1] == ' ')
			return true;
	return false;
}

/*
 * housekeeping: master (the default) keeps the guest kernel's periodic work
 * on the master's vCPUs: "nohz_full=A-B rcu_nocbs=A-B" for the vCPUs of
 * every other node (they follow the master's, so they are one range).
 * Linux then runs no scheduler tick on them while they have one task or
 * none, moves their RCU callbacks to threads, and keeps unbound kernel
 * threads and timekeeping off them. Each of those otherwise writes data
 * the other CPUs read (jiffies, per-CPU run queues, RCU state): on a DSM
 * every such write is a page moving between nodes. Left out when the
 * VM's cmdline or --append already chooses (nohz_full=, rcu_nocbs=,
 * isolcpus=), and for a VM with vCPUs on the master only.
 */
static void housekeeping_args(const struct cluster_vm *vm, const char *extra, char *buf,
			      size_t len)
{
	static const char *const chosen[] = { "nohz_full=", "rcu_nocbs=", "isolcpus=" };
	int first = vm->vcpus_per_node[vm->master_node], last = vm->vcpus - 1;

	buf[0] = '\0';
	if (vm->housekeeping != CLUSTER_HOUSEKEEPING_MASTER || first > last || !vm->kernel[0])
		return; /* no kernel: QEMU takes no -append */
	for (size_t i = 0; i < sizeof(chosen) / sizeof(chosen[0]); i++)
		if (cmdline_has(vm->cmdline, chosen[i]) || cmdline_has(extra, chosen[i]))
			return;
	char cpus[32];
	if (first == last)
		snprintf(cpus, sizeof(cpus), "%d", first);
	else
		snprintf(cpus, sizeof(cpus), "%d-%d", first, last);
	snprintf(buf, len, "nohz_full=%s rcu_nocbs=%s", cpus, cpus);
}

/*
 * boot_vcpus: master makes the guest kernel start only the master's vCPUs
 * ("maxcpus=K", K the master's vCPU count: they are vCPUs 0..K-1); the
 * guest's init brings the others online (tests/guest/init, the Debian
 * image's udev rule). Until its initcalls end, Linux keeps time with the
 * jiffies clocksource and a periodic tick on every online CPU, so each
 * tick of a CPU on another node reads jiffies and the timekeeper, which
 * the master's tick has just written: pages crossing every 4 ms. Over a
 * link of a millisecond's round trip the tick handlers of both sides can
 * outlast the tick period, and the boot stalls for minutes (docs/
 * architecture.md, "Booting on the master's vCPUs"). After the initcalls the
 * TSC keeps time and idle CPUs stop their tick, so bringing the others up
 * then is cheap. Left out when the cmdline or --append already has
 * maxcpus= or nr_cpus=, or the master has every vCPU.
 */
static void boot_vcpus_arg(const struct cluster_vm *vm, const char *extra, char *buf, size_t len)
{
	static const char *const chosen[] = { "maxcpus=", "nr_cpus=" };
	int master_vcpus = vm->vcpus_per_node[vm->master_node];

	buf[0] = '\0';
	if (vm->boot_vcpus != CLUSTER_BOOT_VCPUS_MASTER || master_vcpus >= vm->vcpus ||
	    !vm->kernel[0])
		return;
	for (size_t i = 0; i < sizeof(chosen) / sizeof(chosen[0]); i++)
		if (cmdline_has(vm->cmdline, chosen[i]) || cmdline_has(extra, chosen[i]))
			return;
	snprintf(buf, len, "maxcpus=%d", master_vcpus);
}

/*
 * numa_balancing: monitor (the default) leaves moving pages between nodes
 * to the DSM and Disco's policy: "numa_balancing=disable" for a VM that
 * spans nodes. Linux's automatic NUMA balancing samples a task's memory by
 * making its page-table entries inaccessible every scan period, takes a
 * hinting fault on the next access to each page and migrates pages towards
 * the CPU that touched them. On one machine a hinting fault costs a few
 * microseconds; here each rewrites page-table pages other vCPUs use, shoots
 * down their TLBs with IPIs across nodes and copies pages through the DSM,
 * and the guest's idea of where a page lives (its NUMA node) is what the
 * DSM's placement already made local. A memory test over ~1 ms links took
 * 220 s with it and 25 s without (docs/benchmarks.md). Left out when the
 * cmdline or --append already has numa_balancing=, and for a VM whose
 * vCPUs are all on one node (one guest NUMA node: nothing to balance).
 */
static void numa_balancing_arg(const struct cluster_vm *vm, const char *extra, char *buf,
			       size_t len)
{
	buf[0] = '\0';
	if (vm->numa_balancing != CLUSTER_NUMA_BALANCING_MONITOR || guest_numa_nodes(vm) < 2 ||
	    !vm->kernel[0] || cmdline_has(vm->cmdline, "numa_balancing=") ||
	    cmdline_has(extra, "numa_balancing="))
		return;
	snprintf(buf, len, "numa_balancing=disable");
}

/* The words disco-node adds to the guest kernel's command line, between
 * the VM's cmdline and --append: the same on every node. */
static void disco_kernel_args(const struct cluster_vm *vm, const char *extra, char *buf,
			      size_t len)
{
	static void (*const more[])(const struct cluster_vm *, const char *, char *, size_t) = {
		boot_vcpus_arg, numa_balancing_arg };
	char part[64];

	housekeeping_args(vm, extra, buf, len);
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
		size_t n = strlen(buf);

		more[i](vm, extra, part, sizeof(part));
		if (part[0])
			snprintf(buf + n, len - n, "%s%s", n ? " " : "", part);
	}
}

static void add_guest_files(struct argv_builder *b, const struct cluster_vm *vm,
			    const struct node_qemu_opts *o, char *err, size_t errlen)
{
	static const struct {
		const char *flag, *what;
		size_t offset;
	} files[] = {
		{"-kernel", "kernel", offsetof(struct cluster_vm, kernel)},
		{"-initrd", "initrd", offsetof(struct cluster_vm, initrd)},
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && !b->error; i++) {
		const char *path = (const char *)vm + files[i].offset;
		char *abs;
		int r;

		if (!path[0])
			continue;
		abs = resolve_path(path, o->config_path);
		if (!abs) {
			b->error = -ENOMEM;
			break;
		}
		r = check_guest_file(files[i].what, abs, vm, err, errlen);
		if (r < 0) {
			free(abs);
			b->error = r;
			break;
		}
		add(b, files[i].flag);
		add_owned(b, abs);
	}
	const char *extra = o->append ? o->append : "";
	char hk[128]; /* at most 33 + 12 + 23 bytes */
	disco_kernel_args(vm, extra, hk, sizeof(hk));
	if (vm->cmdline[0] || hk[0] || extra[0]) {
		add(b, "-append");
		addf(b, "%s%s%s%s%s", vm->cmdline, vm->cmdline[0] && hk[0] ? " " : "", hk,
		     (vm->cmdline[0] || hk[0]) && extra[0] ? " " : "", extra);
	}
}

static void add_serial(struct argv_builder *b, const struct cluster_vm *vm, int node,
		       const struct node_qemu_opts *o)
{
	if (node == vm->master_node && o->console == NODE_CONSOLE_SOCKET) {
		char *path = qemu_opt_escape(o->console_path);
		char *log = o->console_log ? qemu_opt_escape(o->console_log) : NULL;

		if (!path || (o->console_log && !log)) {
			free(path);
			b->error = -ENOMEM;
			return;
		}
		add(b, "-chardev");
		if (log)
			addf(b, "socket,id=con0,path=%s,server=on,wait=off,logfile=%s,logappend=on", path,
			     log);
		else
			addf(b, "socket,id=con0,path=%s,server=on,wait=off", path);
		free(path);
		free(log);
		add(b, "-serial");
		add(b, "chardev:con0");
		return;
	}
	add(b, "-serial");
	add(b, node == vm->master_node && o->console == NODE_CONSOLE_STDIO ? "stdio" : "null");
}

/*
 * Guest devices (vms[].disks, vms[].nics): virtio over PCI, created in the
 * same order on every node, so they get the same PCI slots and the QOM
 * trees match. The master owns them all (architecture.md, "Devices"): only
 * there does a disk have its image behind it and a NIC a network. The
 * other nodes realize the same devices on backends that do nothing, so no
 * process but the master's ever opens an image (two writers would corrupt
 * it; the image need not even exist there) or starts a network:
 *   - a disk: `null-co`, QEMU's block driver that reads nothing and
 *     writes nothing, with the image's read-only flag; its size does not
 *     matter, the guest reads the capacity from the master's device;
 *   - a NIC: no netdev (QEMU says "nic netN has no peer" once).
 * Their registers are never reached: the other nodes' vCPUs' port and MMIO
 * accesses are done by the master.
 */
static void add_disk(struct argv_builder *b, const struct cluster_disk *d, int i, bool master)
{
	const char *ro = d->readonly ? "on" : "off";

	add(b, "-blockdev");
	if (master) {
		char *file = qemu_opt_escape(d->file);

		if (!file) {
			b->error = -ENOMEM;
			return;
		}
		/* the host's page cache (cache.direct=off), a thread pool for I/O */
		addf(b, "node-name=disk%d,driver=%s,read-only=%s,file.driver=file,file.filename=%s,"
			"file.aio=threads",
		     i, cluster_disk_format_name(d->format), ro, file);
		free(file);
	} else {
		addf(b, "node-name=disk%d,driver=null-co,read-only=%s", i, ro);
	}
	add(b, "-device");
	addf(b, "virtio-blk-pci,id=vd%d,drive=disk%d%s%s", i, i, d->serial[0] ? ",serial=" : "",
	     d->serial);
}

static void add_nic(struct argv_builder *b, const struct cluster_nic *n, int i, bool master)
{
	const uint8_t *m = n->mac;

	if (master && n->type == CLUSTER_NIC_TAP) {
		add(b, "-netdev");
		/* an existing tap (or one QEMU creates, as root); no scripts:
		 * bridging it is the host's business (docs/config.md) */
		addf(b, "tap,id=net%d,ifname=%s,script=no,downscript=no", i, n->ifname);
	} else if (master) {
		char *fwd = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&fwd, &len);

		if (!f) {
			b->error = -ENOMEM;
			return;
		}
		fprintf(f, "user,id=net%d", i);
		for (int j = 0; j < n->n_hostfwd; j++) {
			const struct cluster_hostfwd *h = &n->hostfwd[j];

			fprintf(f, ",hostfwd=%s:%s:%d-:%d", h->protocol == CLUSTER_FWD_UDP ? "udp" : "tcp",
				h->host, h->host_port, h->guest_port);
		}
		if (fclose(f) != 0) {
			free(fwd);
			b->error = -ENOMEM;
			return;
		}
		add(b, "-netdev");
		add_owned(b, fwd);
	}
	add(b, "-device");
	/* romfile= : no option ROM (no network boot; no ROM BAR to map) */
	if (master)
		addf(b, "virtio-net-pci,id=nic%d,mac=%02x:%02x:%02x:%02x:%02x:%02x,romfile=,netdev=net%d",
		     i, m[0], m[1], m[2], m[3], m[4], m[5], i);
	else
		addf(b, "virtio-net-pci,id=nic%d,mac=%02x:%02x:%02x:%02x:%02x:%02x,romfile=", i, m[0],
		     m[1], m[2], m[3], m[4], m[5]);
}

static void add_devices(struct argv_builder *b, const struct cluster_vm *vm, int node)
{
	bool master = node == vm->master_node;

	for (int i = 0; i < vm->n_disks; i++)
		add_disk(b, &vm->disks[i], i, master);
	for (int i = 0; i < vm->n_nics; i++)
		add_nic(b, &vm->nics[i], i, master);
}

int qemu_cmdline_build(const struct cluster_config *cfg, const struct cluster_vm *vm, int node,
		       const struct node_qemu_opts *o, char ***argv_out, char *err, size_t errlen)
{
	struct argv_builder b = {0};
	char *vm_name = NULL, *cfg_path = NULL, *node_name = NULL, *stats = NULL;
	int r;

	*argv_out = NULL;
	r = check_args(cfg, vm, node, o, err, errlen);
	if (r < 0)
		return r;

	vm_name = qemu_opt_escape(vm->name);
	node_name = qemu_opt_escape(cfg->nodes[node].name);
	cfg_path = qemu_opt_escape(o->config_path);
	stats = o->stats ? qemu_opt_escape(o->stats) : NULL;
	if (!vm_name || !node_name || !cfg_path || (o->stats && !stats))
		b.error = -ENOMEM;

	add(&b, o->qemu);
	add(&b, "-name");
	addf(&b, "%s,debug-threads=on", vm_name ? vm_name : "");
	add(&b, "-nodefaults");
	add(&b, "-no-user-config");
	add(&b, "-display");
	add(&b, "none");
	add(&b, "-vga");
	add(&b, "none");
	if (vm->on_reset == CLUSTER_ON_RESET_STOP)
		add(&b, "-no-reboot"); /* a guest reset becomes a stop (of every node) */
	add(&b, "-L");
	add(&b, "/usr/share/qemu");
	add(&b, "-L");
	add(&b, "/usr/share/seabios");
	add_memory(&b, cfg, vm);
	add(&b, "-accel");
	add(&b, o->accel == NODE_ACCEL_KVM ? "kvm,kernel-irqchip=off" : "tcg,thread=multi");
	add(&b, "-cpu");
	add(&b, o->accel == NODE_ACCEL_KVM
			? "host,-kvmclock-stable-bit,-kvm-pv-ipi,-kvm-pv-tlb-flush,-kvm-asyncpf,-kvm-asyncpf-int"
			: "qemu64");
	add_smp(&b, cfg, vm);
	add(&b, "-m");
	addf(&b, "%" PRIu64 "M", vm->memory_bytes >> 20);
	add(&b, "-global");
	add(&b, "apic-common.vapic=off");
	add_guest_files(&b, vm, o, err, errlen);
	add_serial(&b, vm, node, o);
	add_devices(&b, vm, node);
	add(&b, "-object");
	addf(&b, "disco,id=disco0,config=%s,node=%s,vm=%s%s%s", cfg_path ? cfg_path : "",
	     node_name ? node_name : "", vm_name ? vm_name : "", stats ? ",stats=" : "",
	     stats ? stats : "");
	for (int i = 0; i < o->n_extra; i++)
		add(&b, o->extra[i]);

	free(vm_name);
	free(node_name);
	free(cfg_path);
	free(stats);
	if (b.error) {
		if (b.error == -ENOMEM)
			snprintf(err, errlen, "out of memory building the QEMU command line");
		qemu_cmdline_free(b.v);
		return b.error;
	}
	*argv_out = b.v;
	return 0;
}
