// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of node-monitor/qemu_cmdline.c: the QEMU argv disco-node
 * builds for each node. One full argv is pinned word for word (so any
 * change to the machine every node builds shows up here); the other tests
 * check what differs: the serial backend on the master and elsewhere, tcg
 * against kvm, --append, comma escaping in -object/-chardev values, extra
 * arguments, a node outside the VM, missing or absent guest files, the
 * guest devices on the master and elsewhere, and the shell quoting of
 * --dry-run.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster-config/cluster_config.h"
#include "node-monitor/qemu_cmdline.h"

#define KEY CONFIG_EXAMPLES_DIR "/local.key"

static char tmpdir[] = "/tmp/disco-qemu-cmdline-XXXXXX";
static char kernel[256], initrd[256];

static int setup_files(void **state)
{
	FILE *f;

	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", tmpdir);
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", tmpdir);
	if (!(f = fopen(kernel, "w")) || fclose(f))
		return -1;
	if (!(f = fopen(initrd, "w")) || fclose(f))
		return -1;
	return 0;
}

static int remove_files(void **state)
{
	unlink(kernel);
	unlink(initrd);
	rmdir(tmpdir);
	return 0;
}

/* Three nodes; VM "demo" runs on n0 (master, 1 vCPU) and n1 (1 vCPU), not
 * n2. @guest is the YAML of the VM's kernel/initrd/cmdline keys. */
/* A config of three nodes and one VM "demo" whose YAML body is @vm_body. */
static struct cluster_config *load_body(const char *vm_body)
{
	struct cluster_config *cfg = NULL;
	char yaml[8192], err[1024] = "";

	snprintf(yaml, sizeof(yaml),
		 "cluster:\n  name: t\n  auth: {key_file: %s}\n"
		 "nodes:\n"
		 "  - {name: n0, address: 127.0.0.1, port: 7400}\n"
		 "  - {name: n1, address: 127.0.0.1, port: 7401}\n"
		 "  - {name: n2, address: 127.0.0.1, port: 7402}\n"
		 "vms:\n"
		 "  - name: demo\n%s",
		 KEY, vm_body);
	if (cluster_config_load_string(yaml, "t.yaml", &cfg, err, sizeof(err)) != 0)
		fail_msg("%s\n%s", err, yaml);
	return cfg;
}

/* 2 vCPUs, one on n0 (master) and one on n1, plus @guest lines. */
static struct cluster_config *load(const char *guest)
{
	char body[4096];

	snprintf(body, sizeof(body),
		 "    memory: 256M\n    vcpus: 2\n    vcpu_placement: {n0: 1, n1: 1}\n"
		 "    master: n0\n%s",
		 guest);
	return load_body(body);
}

static struct cluster_config *load_default(void)
{
	char guest[1024];

	snprintf(guest, sizeof(guest), "    kernel: %s\n    initrd: %s\n    cmdline: \"console=ttyS0\"\n",
		 kernel, initrd);
	return load(guest);
}

static struct node_qemu_opts default_opts(void)
{
	return (struct node_qemu_opts){
		.qemu = "/opt/q/qemu-system-x86_64",
		.config_path = "/etc/disco/c.yaml",
		.accel = NODE_ACCEL_TCG,
		.console = NODE_CONSOLE_STDIO,
	};
}

static char **build_ok(struct cluster_config *cfg, int node, const struct node_qemu_opts *o)
{
	char **argv = NULL, err[1024] = "";
	int r = qemu_cmdline_build(cfg, &cfg->vms[0], node, o, &argv, err, sizeof(err));

	if (r != 0)
		fail_msg("build: %d: %s", r, err);
	assert_non_null(argv);
	return argv;
}

/* Index of @flag followed by @value in @argv, or -1. */
static int find_pair(char **argv, const char *flag, const char *value)
{
	for (int i = 0; argv[i] && argv[i + 1]; i++)
		if (!strcmp(argv[i], flag) && !strcmp(argv[i + 1], value))
			return i;
	return -1;
}

static int count(char **argv, const char *word)
{
	int n = 0;

	for (int i = 0; argv[i]; i++)
		n += !strcmp(argv[i], word);
	return n;
}

static void assert_pair(char **argv, const char *flag, const char *value)
{
	if (find_pair(argv, flag, value) < 0) {
		char *line = qemu_cmdline_quote(argv);

		fail_msg("no \"%s %s\" in: %s", flag, value, line);
	}
}

static void test_master_full_argv(void **state)
{
	struct cluster_config *cfg = load_default();
	struct node_qemu_opts o = default_opts();
	char **argv = build_ok(cfg, 0, &o);
	const char *want[] = {
		"/opt/q/qemu-system-x86_64",
		"-name", "demo,debug-threads=on",
		"-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
		"-L", "/usr/share/qemu", "-L", "/usr/share/seabios",
		"-machine", "pc,vmport=off,smm=off",
		"-object", "memory-backend-ram,id=ram0,size=134217728",
		"-numa", "node,nodeid=0,cpus=0-0,memdev=ram0",
		"-object", "memory-backend-ram,id=ram1,size=134217728",
		"-numa", "node,nodeid=1,cpus=1-1,memdev=ram1",
		"-numa", "dist,src=0,dst=1,val=20",
		"-numa", "dist,src=1,dst=0,val=20",
		"-accel", "tcg,thread=multi",
		"-cpu", "qemu64",
		"-smp", "2,sockets=2,cores=1,threads=1",
		"-m", "256M",
		"-global", "apic-common.vapic=off",
		"-kernel", kernel,
		"-initrd", initrd,
		"-append", "console=ttyS0 nohz_full=1 rcu_nocbs=1 numa_balancing=disable",
		"-serial", "stdio",
		"-object", "disco,id=disco0,config=/etc/disco/c.yaml,node=n0,vm=demo",
		NULL,
	};

	for (int i = 0; want[i] || argv[i]; i++) {
		if (!want[i] || !argv[i] || strcmp(want[i], argv[i]))
			fail_msg("argv[%d]: got \"%s\", want \"%s\"", i, argv[i] ? argv[i] : "(end)",
				 want[i] ? want[i] : "(end)");
	}
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

static void test_non_master_serial_null(void **state)
{
	struct cluster_config *cfg = load_default();
	struct node_qemu_opts o = default_opts();
	enum node_console consoles[] = {NODE_CONSOLE_STDIO, NODE_CONSOLE_NULL, NODE_CONSOLE_SOCKET};

	o.console_path = "/tmp/con.sock";
	for (size_t i = 0; i < sizeof(consoles) / sizeof(consoles[0]); i++) {
		char **argv;

		o.console = consoles[i];
		argv = build_ok(cfg, 1, &o);
		assert_pair(argv, "-serial", "null");
		assert_int_equal(count(argv, "-serial"), 1);
		assert_int_equal(count(argv, "-chardev"), 0);
		assert_pair(argv, "-object", "disco,id=disco0,config=/etc/disco/c.yaml,node=n1,vm=demo");
		/* the same machine as on the master */
		assert_pair(argv, "-smp", "2,sockets=2,cores=1,threads=1");
		assert_pair(argv, "-m", "256M");
		assert_pair(argv, "-kernel", kernel);
		qemu_cmdline_free(argv);
	}
	cluster_config_free(cfg);
}

static void test_master_console_null_and_socket(void **state)
{
	struct cluster_config *cfg = load_default();
	struct node_qemu_opts o = default_opts();
	char **argv;
	int c, s;

	o.console = NODE_CONSOLE_NULL;
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-serial", "null");
	assert_int_equal(count(argv, "-chardev"), 0);
	qemu_cmdline_free(argv);

	o.console = NODE_CONSOLE_SOCKET;
	o.console_path = "/run/a,b/con.sock";
	argv = build_ok(cfg, 0, &o);
	c = find_pair(argv, "-chardev", "socket,id=con0,path=/run/a,,b/con.sock,server=on,wait=off");
	s = find_pair(argv, "-serial", "chardev:con0");
	assert_true(c >= 0);
	assert_true(s > c);
	assert_int_equal(count(argv, "-serial"), 1);
	qemu_cmdline_free(argv);

	o.console_path = "";
	{
		char **none = NULL, err[256];

		assert_int_equal(qemu_cmdline_build(cfg, &cfg->vms[0], 0, &o, &none, err, sizeof(err)),
				 -EINVAL);
		assert_null(none);
	}
	cluster_config_free(cfg);
}

static void test_kvm(void **state)
{
	struct cluster_config *cfg = load_default();
	struct node_qemu_opts o = default_opts();
	char **argv;

	o.accel = NODE_ACCEL_KVM;
	argv = build_ok(cfg, 1, &o);
	assert_pair(argv, "-accel", "kvm,kernel-irqchip=off");
	assert_pair(argv, "-cpu",
		    "host,-kvmclock-stable-bit,-kvm-pv-ipi,-kvm-pv-tlb-flush,-kvm-asyncpf,-kvm-asyncpf-int");
	assert_int_equal(count(argv, "tcg,thread=multi"), 0);
	assert_int_equal(count(argv, "qemu64"), 0);
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

/* A guest reset resets every node by default; on_reset: stop makes QEMU
 * turn it into a stop (-no-reboot) on every node alike. */
static void test_on_reset(void **state)
{
	char guest[1024], **argv;

	snprintf(guest, sizeof(guest), "    kernel: %s\n    initrd: %s\n    on_reset: stop\n",
		 kernel, initrd);
	struct cluster_config *cfg = load(guest);
	assert_int_equal(cfg->vms[0].on_reset, CLUSTER_ON_RESET_STOP);
	for (int node = 0; node < 2; node++) {
		struct node_qemu_opts o = default_opts();
		argv = build_ok(cfg, node, &o);
		assert_int_equal(count(argv, "-no-reboot"), 1);
		qemu_cmdline_free(argv);
	}
	cluster_config_free(cfg);

	cfg = load_default();
	assert_int_equal(cfg->vms[0].on_reset, CLUSTER_ON_RESET_RESET);
	struct node_qemu_opts o = default_opts();
	argv = build_ok(cfg, 1, &o);
	assert_int_equal(count(argv, "-no-reboot"), 0);
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

/* How the VM's cmdline and --append join (housekeeping: all and
 * numa_balancing: guest, so that nothing else is added; test_housekeeping
 * and test_numa_balancing cover the defaults). */
static void test_append(void **state)
{
	struct node_qemu_opts o = default_opts();
	char guest[1024], **argv;

	snprintf(guest, sizeof(guest),
		 "    kernel: %s\n    cmdline: \"console=ttyS0\"\n    housekeeping: all\n"
		 "    numa_balancing: guest\n",
		 kernel);
	struct cluster_config *cfg = load(guest);
	o.append = "quiet loglevel=3";
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-append", "console=ttyS0 quiet loglevel=3");
	assert_int_equal(count(argv, "-append"), 1);
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* no cmdline in the config: --append alone, no leading space */
	snprintf(guest, sizeof(guest), "    kernel: %s\n    housekeeping: all\n    numa_balancing: guest\n",
		 kernel);
	cfg = load(guest);
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-append", "quiet loglevel=3");
	assert_int_equal(count(argv, "-initrd"), 0);
	qemu_cmdline_free(argv);

	/* neither: no -append at all */
	o.append = "";
	argv = build_ok(cfg, 0, &o);
	assert_int_equal(count(argv, "-append"), 0);
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

/* The default housekeeping: master puts nohz_full= and rcu_nocbs= for the
 * vCPUs of the other nodes on every node's command line (the same line
 * everywhere), between the VM's cmdline and --append. */
static void test_housekeeping(void **state)
{
	struct node_qemu_opts o = default_opts();
	char guest[1024], body[2048], **argv;

	struct cluster_config *cfg = load_default(); /* n0 (master): 1 vCPU, n1: 1 */
	o.append = "quiet";
	for (int node = 0; node < 2; node++) {
		argv = build_ok(cfg, node, &o);
		assert_pair(argv, "-append", "console=ttyS0 nohz_full=1 rcu_nocbs=1 numa_balancing=disable quiet");
		qemu_cmdline_free(argv);
	}
	cluster_config_free(cfg);

	/* 3 nodes, the master in the middle: its vCPUs come first, the
	 * others after them, one range */
	snprintf(body, sizeof(body),
		 "    memory: 256M\n    vcpus: 6\n    vcpu_placement: {n0: 2, n1: 2, n2: 2}\n"
		 "    master: n1\n    kernel: %s\n    numa_balancing: guest\n",
		 kernel);
	cfg = load_body(body);
	o.append = "";
	argv = build_ok(cfg, 2, &o);
	assert_pair(argv, "-append", "nohz_full=2-5 rcu_nocbs=2-5");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* the guest's own choice wins, in the cmdline or in --append */
	const char *own[] = { "nohz_full=1", "rcu_nocbs=1", "isolcpus=1" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(guest, sizeof(guest),
			 "    kernel: %s\n    cmdline: \"console=ttyS0 %s\"\n    numa_balancing: guest\n",
			 kernel, own[i]);
		cfg = load(guest);
		o.append = "";
		argv = build_ok(cfg, 1, &o);
		char want[64];
		snprintf(want, sizeof(want), "console=ttyS0 %s", own[i]);
		assert_pair(argv, "-append", want);
		qemu_cmdline_free(argv);
		cluster_config_free(cfg);
	}
	cfg = load_default();
	o.append = "isolcpus=1";
	argv = build_ok(cfg, 1, &o);
	assert_pair(argv, "-append", "console=ttyS0 numa_balancing=disable isolcpus=1");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* all vCPUs on the master: nothing to keep off */
	snprintf(body, sizeof(body),
		 "    memory: 256M\n    vcpus: 2\n    vcpu_placement: {n0: 2}\n    kernel: %s\n",
		 kernel);
	cfg = load_body(body);
	o.append = "";
	argv = build_ok(cfg, 0, &o);
	assert_int_equal(count(argv, "-append"), 0);
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

/* boot_vcpus: master appends maxcpus=K, K the master's vCPUs, on every
 * node, after the housekeeping words; all (the default) adds nothing; the
 * guest's own maxcpus= or nr_cpus= wins; nothing when the master has every
 * vCPU or there is no kernel. */
static void test_boot_vcpus(void **state)
{
	struct node_qemu_opts o = default_opts();
	char body[2048], **argv;
	struct cluster_config *cfg;

	snprintf(body, sizeof(body),
		 "    memory: 256M\n    vcpus: 6\n    vcpu_placement: {n0: 2, n1: 2, n2: 2}\n"
		 "    master: n1\n    kernel: %s\n    boot_vcpus: master\n",
		 kernel);
	cfg = load_body(body);
	assert_int_equal(cfg->vms[0].boot_vcpus, CLUSTER_BOOT_VCPUS_MASTER);
	o.append = "quiet";
	for (int node = 0; node < 3; node++) {
		argv = build_ok(cfg, node, &o);
		assert_pair(argv, "-append", "nohz_full=2-5 rcu_nocbs=2-5 maxcpus=2 numa_balancing=disable quiet");
		qemu_cmdline_free(argv);
	}
	cluster_config_free(cfg);

	/* with housekeeping: all, maxcpus= alone */
	char guest[1024];
	snprintf(guest, sizeof(guest),
		 "    kernel: %s\n    cmdline: \"console=ttyS0\"\n    housekeeping: all\n"
		 "    boot_vcpus: master\n    numa_balancing: guest\n",
		 kernel);
	cfg = load(guest);
	o.append = "";
	argv = build_ok(cfg, 1, &o);
	assert_pair(argv, "-append", "console=ttyS0 maxcpus=1");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* the default: all */
	cfg = load_default();
	assert_int_equal(cfg->vms[0].boot_vcpus, CLUSTER_BOOT_VCPUS_ALL);
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-append", "console=ttyS0 nohz_full=1 rcu_nocbs=1 numa_balancing=disable");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* the guest's own choice wins */
	const char *own[] = { "maxcpus=2", "nr_cpus=2" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(guest, sizeof(guest),
			 "    kernel: %s\n    cmdline: \"%s\"\n    housekeeping: all\n"
			 "    boot_vcpus: master\n    numa_balancing: guest\n",
			 kernel, own[i]);
		cfg = load(guest);
		o.append = "";
		argv = build_ok(cfg, 0, &o);
		assert_pair(argv, "-append", own[i]);
		qemu_cmdline_free(argv);
		cluster_config_free(cfg);
	}
	snprintf(guest, sizeof(guest),
		 "    kernel: %s\n    housekeeping: all\n    boot_vcpus: master\n"
		 "    numa_balancing: guest\n",
		 kernel);
	cfg = load(guest);
	o.append = "maxcpus=2";
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-append", "maxcpus=2");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* every vCPU on the master: nothing to hold back */
	snprintf(body, sizeof(body),
		 "    memory: 256M\n    vcpus: 2\n    vcpu_placement: {n0: 2}\n    kernel: %s\n"
		 "    boot_vcpus: master\n",
		 kernel);
	cfg = load_body(body);
	o.append = "";
	argv = build_ok(cfg, 0, &o);
	assert_int_equal(count(argv, "-append"), 0);
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

/* numa_balancing: monitor (the default) appends numa_balancing=disable on
 * every node of a VM that spans nodes, after the other words; guest adds
 * nothing; the guest's own numa_balancing= wins; one guest NUMA node or no
 * kernel: nothing. */
static void test_numa_balancing(void **state)
{
	struct node_qemu_opts o = default_opts();
	char guest[1024], body[1024], **argv;
	struct cluster_config *cfg;

	snprintf(guest, sizeof(guest), "    kernel: %s\n    housekeeping: all\n", kernel);
	cfg = load(guest);
	assert_int_equal(cfg->vms[0].numa_balancing, CLUSTER_NUMA_BALANCING_MONITOR);
	o.append = "quiet";
	for (int node = 0; node < 2; node++) {
		argv = build_ok(cfg, node, &o);
		assert_pair(argv, "-append", "numa_balancing=disable quiet");
		qemu_cmdline_free(argv);
	}
	cluster_config_free(cfg);

	snprintf(guest, sizeof(guest), "    kernel: %s\n    housekeeping: all\n    numa_balancing: guest\n",
		 kernel);
	cfg = load(guest);
	assert_int_equal(cfg->vms[0].numa_balancing, CLUSTER_NUMA_BALANCING_GUEST);
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-append", "quiet");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* the guest's own choice, in the cmdline or in --append */
	snprintf(guest, sizeof(guest),
		 "    kernel: %s\n    cmdline: \"numa_balancing=enable\"\n    housekeeping: all\n", kernel);
	cfg = load(guest);
	argv = build_ok(cfg, 1, &o);
	assert_pair(argv, "-append", "numa_balancing=enable quiet");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
	snprintf(guest, sizeof(guest), "    kernel: %s\n    housekeeping: all\n", kernel);
	cfg = load(guest);
	o.append = "numa_balancing=enable";
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-append", "numa_balancing=enable");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* one guest NUMA node (every vCPU on the master): nothing */
	snprintf(body, sizeof(body),
		 "    memory: 256M\n    vcpus: 2\n    vcpu_placement: {n0: 2}\n    kernel: %s\n", kernel);
	cfg = load_body(body);
	o.append = "";
	argv = build_ok(cfg, 0, &o);
	assert_int_equal(count(argv, "-append"), 0);
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

static void test_comma_escaping_and_stats(void **state)
{
	struct cluster_config *cfg = load_default();
	struct node_qemu_opts o = default_opts();
	char **argv;

	o.config_path = "/srv/a,b/c,,d.yaml";
	o.stats = "/tmp/st,ats.json";
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-object",
		    "disco,id=disco0,config=/srv/a,,b/c,,,,d.yaml,node=n0,vm=demo,stats=/tmp/st,,ats.json");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

static void test_extra_args_last(void **state)
{
	struct cluster_config *cfg = load_default();
	struct node_qemu_opts o = default_opts();
	char *extra[] = {"-d", "int,cpu_reset", NULL};
	char **argv;
	int n = 0;

	o.extra = extra;
	o.n_extra = 2;
	argv = build_ok(cfg, 0, &o);
	while (argv[n])
		n++;
	assert_true(n > 2);
	assert_string_equal(argv[n - 2], "-d");
	assert_string_equal(argv[n - 1], "int,cpu_reset"); /* verbatim, not escaped */
	assert_true(!strncmp(argv[n - 3], "disco,id=disco0,", 16));
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

static void test_node_not_in_vm(void **state)
{
	struct cluster_config *cfg = load_default();
	struct node_qemu_opts o = default_opts();
	char **argv = (char **)&argv, err[1024] = "";

	assert_int_equal(qemu_cmdline_build(cfg, &cfg->vms[0], 2, &o, &argv, err, sizeof(err)), -EINVAL);
	assert_null(argv);
	assert_non_null(strstr(err, "\"n2\" does not take part in VM \"demo\""));
	assert_non_null(strstr(err, "n0, n1"));
	assert_int_equal(qemu_cmdline_build(cfg, &cfg->vms[0], 3, &o, &argv, err, sizeof(err)), -EINVAL);
	cluster_config_free(cfg);
}

static void test_missing_guest_files(void **state)
{
	struct node_qemu_opts o = default_opts();
	struct cluster_config *cfg;
	char guest[1024], missing[300], **argv, err[1024] = "";

	snprintf(missing, sizeof(missing), "%s/no-such-vmlinuz", tmpdir);
	snprintf(guest, sizeof(guest), "    kernel: %s\n    initrd: %s\n", missing, initrd);
	cfg = load(guest);
	assert_int_equal(qemu_cmdline_build(cfg, &cfg->vms[0], 0, &o, &argv, err, sizeof(err)), -ENOENT);
	assert_null(argv);
	assert_non_null(strstr(err, missing));
	assert_non_null(strstr(err, "kernel"));
	assert_non_null(strstr(err, "scripts/make-guest.sh"));
	cluster_config_free(cfg);

	snprintf(missing, sizeof(missing), "%s/no-such-initrd", tmpdir);
	snprintf(guest, sizeof(guest), "    kernel: %s\n    initrd: %s\n", kernel, missing);
	cfg = load(guest);
	assert_int_equal(qemu_cmdline_build(cfg, &cfg->vms[0], 1, &o, &argv, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, missing));
	assert_non_null(strstr(err, "initrd"));
	cluster_config_free(cfg);

	/* a folder is not a kernel */
	snprintf(guest, sizeof(guest), "    kernel: %s\n", tmpdir);
	cfg = load(guest);
	assert_int_equal(qemu_cmdline_build(cfg, &cfg->vms[0], 0, &o, &argv, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "not a regular file"));
	cluster_config_free(cfg);
}

static void test_no_kernel(void **state)
{
	struct node_qemu_opts o = default_opts();
	struct cluster_config *cfg = load("");
	char **argv, err[1024] = "";

	/* nothing given: firmware only, no guest-file flags */
	argv = build_ok(cfg, 0, &o);
	assert_int_equal(count(argv, "-kernel") + count(argv, "-initrd") + count(argv, "-append"), 0);
	qemu_cmdline_free(argv);

	/* --append needs a kernel (QEMU refuses -append without -kernel) */
	o.append = "quiet";
	assert_int_equal(qemu_cmdline_build(cfg, &cfg->vms[0], 0, &o, &argv, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no kernel"));
	cluster_config_free(cfg);

	o.append = NULL;
	cfg = load("    cmdline: \"console=ttyS0\"\n");
	assert_int_equal(qemu_cmdline_build(cfg, &cfg->vms[0], 0, &o, &argv, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cmdline"));
	cluster_config_free(cfg);
}

/* 384 MiB, the default guest files, and @vm_lines (vcpus, placement...). */
static struct cluster_config *load_vm(const char *vm_lines)
{
	char body[4096];

	snprintf(body, sizeof(body), "    memory: 384M\n%s    kernel: %s\n    initrd: %s\n",
		 vm_lines, kernel, initrd);
	return load_body(body);
}

/* The guest NUMA layout: one guest node per cluster node with vCPUs, in
 * node order, memory split like placement numa; the master's vCPUs are
 * numbered first even when it is not the first node. */
static void test_numa_layout(void **state)
{
	(void)state;
	struct cluster_config *cfg =
		load_vm("    vcpus: 3\n    vcpu_placement: {n0: 2, n1: 1, n2: 0}\n    master: n1\n");
	struct node_qemu_opts o = default_opts();
	char **argv = build_ok(cfg, 2, &o);

	assert_pair(argv, "-machine", "pc,vmport=off,smm=off");
	assert_pair(argv, "-object", "memory-backend-ram,id=ram0,size=268435456");
	assert_pair(argv, "-numa", "node,nodeid=0,cpus=1-2,memdev=ram0");
	assert_pair(argv, "-object", "memory-backend-ram,id=ram1,size=134217728");
	assert_pair(argv, "-numa", "node,nodeid=1,cpus=0-0,memdev=ram1");
	assert_pair(argv, "-numa", "dist,src=0,dst=1,val=20");
	assert_pair(argv, "-numa", "dist,src=1,dst=0,val=20");
	assert_int_equal(count(argv, "-numa"), 4); /* n2 has no vCPUs: no guest node */
	/* one socket per vCPU when the nodes' vCPU counts differ */
	assert_pair(argv, "-smp", "3,sockets=3,cores=1,threads=1");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* auto (the default) starts with Linux's default; the master's
	 * disco object puts the measured value in before the firmware reads
	 * the SLIT */
	cfg = load_vm("    vcpus: 2\n    vcpu_placement: {n0: 1, n1: 1}\n    numa_distance: auto\n");
	argv = build_ok(cfg, 0, &o);
	assert_int_equal(cfg->vms[0].numa_distance, CLUSTER_NUMA_DISTANCE_AUTO);
	assert_pair(argv, "-numa", "dist,src=0,dst=1,val=20");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* a fixed distance comes from the config */
	cfg = load_vm("    vcpus: 2\n    vcpu_placement: {n0: 1, n1: 1}\n    numa_distance: 31\n");
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-numa", "dist,src=0,dst=1,val=31");
	assert_pair(argv, "-numa", "dist,src=1,dst=0,val=31");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* equal nodes: one socket per node, its vCPUs the cores */
	cfg = load_vm("    vcpus: 4\n    vcpu_placement: {n0: 2, n1: 2}\n");
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-smp", "4,sockets=2,cores=2,threads=1");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* every vCPU on one node: no NUMA, one backend */
	cfg = load_vm("    vcpus: 2\n    vcpu_placement: {n0: 2, n1: 0}\n");
	argv = build_ok(cfg, 1, &o);
	assert_pair(argv, "-machine", "pc,vmport=off,smm=off,memory-backend=ram0");
	assert_pair(argv, "-object", "memory-backend-ram,id=ram0,size=402653184");
	assert_int_equal(count(argv, "-numa"), 0);
	assert_pair(argv, "-smp", "2");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);

	/* dsm.backing memfd: every backend is a memfd the DSM can map twice */
	cfg = load_vm("    vcpus: 2\n    vcpu_placement: {n0: 1, n1: 1}\n"
		      "    dsm: {backing: memfd}\n");
	argv = build_ok(cfg, 0, &o);
	assert_pair(argv, "-object", "memory-backend-memfd,id=ram0,size=201326592");
	assert_pair(argv, "-object", "memory-backend-memfd,id=ram1,size=201326592");
	for (int i = 0; argv[i]; i++)
		assert_null(strstr(argv[i], "memory-backend-ram"));
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
	cfg = load_vm("    vcpus: 2\n    vcpu_placement: {n0: 2, n1: 0}\n"
		      "    dsm: {backing: memfd}\n");
	argv = build_ok(cfg, 1, &o);
	assert_pair(argv, "-object", "memory-backend-memfd,id=ram0,size=402653184");
	qemu_cmdline_free(argv);
	cluster_config_free(cfg);
}

/* Words of @argv that follow @flag, in order, joined by '|'. */
static void words_after(char **argv, const char *flag, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; argv[i] && argv[i + 1]; i++)
		if (!strcmp(argv[i], flag))
			o += (size_t)snprintf(out + o, len - o, "%s%s", o ? "|" : "", argv[i + 1]);
}

/*
 * Disks and NICs: the master gets the image and the network, every other
 * node the same devices (same -device words, in the same order, so the
 * same PCI slots) on null-co and without a netdev; a comma in an image
 * path is doubled.
 */
static void test_devices(void **state)
{
	char guest[2048], dev0[2048], dev1[2048], blk[2048], net[1024];
	struct cluster_config *cfg;
	struct node_qemu_opts o = default_opts();
	char **m, **n;

	snprintf(guest, sizeof(guest),
		 "    kernel: %s\n"
		 "    disks:\n"
		 "      - {file: \"/img/root,1.qcow2\", format: qcow2, serial: root}\n"
		 "      - {file: /img/data.raw, format: raw, readonly: true}\n"
		 "    nics:\n"
		 "      - type: user\n"
		 "        mac: \"52:54:00:12:34:56\"\n"
		 "        hostfwd:\n"
		 "          - {host_port: 2222, guest_port: 22}\n"
		 "          - {protocol: udp, host: 0.0.0.0, host_port: 5353, guest_port: 53}\n"
		 "      - {type: tap, ifname: tap7}\n",
		 kernel);
	cfg = load(guest);
	m = build_ok(cfg, 0, &o);
	n = build_ok(cfg, 1, &o);

	words_after(m, "-blockdev", blk, sizeof(blk));
	assert_string_equal(blk,
			    "node-name=disk0,driver=qcow2,read-only=off,file.driver=file,"
			    "file.filename=/img/root,,1.qcow2,file.aio=threads|"
			    "node-name=disk1,driver=raw,read-only=on,file.driver=file,"
			    "file.filename=/img/data.raw,file.aio=threads");
	words_after(m, "-netdev", net, sizeof(net));
	assert_string_equal(net,
			    "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:0.0.0.0:5353-:53|"
			    "tap,id=net1,ifname=tap7,script=no,downscript=no");
	words_after(m, "-device", dev0, sizeof(dev0));
	assert_string_equal(dev0, "virtio-blk-pci,id=vd0,drive=disk0,serial=root|"
				  "virtio-blk-pci,id=vd1,drive=disk1|"
				  "virtio-net-pci,id=nic0,mac=52:54:00:12:34:56,romfile=,netdev=net0|"
				  "virtio-net-pci,id=nic1,mac=52:54:00:5a:c8:de,romfile=,netdev=net1");

	/* n1: no image, no network, the same devices */
	words_after(n, "-blockdev", blk, sizeof(blk));
	assert_string_equal(blk, "node-name=disk0,driver=null-co,read-only=off|"
				 "node-name=disk1,driver=null-co,read-only=on");
	assert_int_equal(count(n, "-netdev"), 0);
	words_after(n, "-device", dev1, sizeof(dev1));
	assert_string_equal(dev1, "virtio-blk-pci,id=vd0,drive=disk0,serial=root|"
				  "virtio-blk-pci,id=vd1,drive=disk1|"
				  "virtio-net-pci,id=nic0,mac=52:54:00:12:34:56,romfile=|"
				  "virtio-net-pci,id=nic1,mac=52:54:00:5a:c8:de,romfile=");
	qemu_cmdline_free(m);
	qemu_cmdline_free(n);
	cluster_config_free(cfg);
}

static void test_escape(void **state)
{
	char *s = qemu_opt_escape("a,b,,c");

	assert_string_equal(s, "a,,b,,,,c");
	free(s);
	s = qemu_opt_escape("");
	assert_string_equal(s, "");
	free(s);
}

static void test_quote(void **state)
{
	char *argv[] = {"/q/qemu", "b c", "it's", "", "x,y=z:/p.-_@%+", "$HOME", "a\"b", NULL};
	char *s = qemu_cmdline_quote(argv);

	assert_string_equal(s, "/q/qemu 'b c' 'it'\\''s' '' x,y=z:/p.-_@%+ '$HOME' 'a\"b'");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_master_full_argv),
		cmocka_unit_test(test_non_master_serial_null),
		cmocka_unit_test(test_master_console_null_and_socket),
		cmocka_unit_test(test_kvm),
		cmocka_unit_test(test_on_reset),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_housekeeping),
		cmocka_unit_test(test_boot_vcpus),
		cmocka_unit_test(test_numa_balancing),
		cmocka_unit_test(test_comma_escaping_and_stats),
		cmocka_unit_test(test_extra_args_last),
		cmocka_unit_test(test_node_not_in_vm),
		cmocka_unit_test(test_missing_guest_files),
		cmocka_unit_test(test_no_kernel),
		cmocka_unit_test(test_numa_layout),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_quote),
	};

	return cmocka_run_group_tests(tests, setup_files, remove_files);
}
