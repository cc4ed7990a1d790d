// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Cluster configuration: one YAML file describes a cluster (its members,
 * how they authenticate, how they talk) and the virtual machines that span
 * it. This module parses and validates that file in one place, so every
 * other part of disco works from a checked, typed struct.
 *
 * Errors name the file, line and column, the field path and what was
 * expected, e.g.
 *   rack.yaml:12:14: nodes[2].address: expected an IP address or host name, got "10.0.0."
 */
#ifndef DISCO_CLUSTER_CONFIG_H
#define DISCO_CLUSTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsm/settings.h"
#include "rpc/loop_settings.h"

#define CLUSTER_MAX_NODES 64 /* DSM copysets are 64-bit bitmaps */
#define CLUSTER_MAX_VCPUS 255 /* xAPIC IDs, no x2APIC in QEMU's userspace APIC */
#define CLUSTER_NAME_MAX 64
#define CLUSTER_MAX_MEMORY (1ull << 40) /* a VM's RAM: 40-bit guest physical addresses */
#define CLUSTER_NUMA_DISTANCE_AUTO 0
/* What the guest's SLIT says for two nodes until "auto" has been measured
 * (Linux's default for a remote node). */
#define CLUSTER_NUMA_DISTANCE_DEFAULT 20

enum cluster_transport {
	CLUSTER_TRANSPORT_TCP,
	CLUSTER_TRANSPORT_RDMA,
};

struct cluster_rdma {
	char device[CLUSTER_NAME_MAX]; /* e.g. "mlx5_0" or "rxe0" */
	int port;                      /* 1-based IB port, default 1 */
	int gid_index;                 /* default 0 */
};

struct cluster_node {
	char name[CLUSTER_NAME_MAX];
	char address[256]; /* IPv4/IPv6 literal or host name */
	int port;          /* 1..65535 */
	enum cluster_transport transport;
	struct cluster_rdma rdma; /* valid when transport == RDMA */
	/* discod, the node's daemon (docs/deploy.md); 0: not configured */
	int control_port;            /* its authenticated control port on @address */
	int metrics_port;            /* its Prometheus /metrics (HTTP) port */
	char metrics_address[256];   /* where /metrics listens; default @address */
};

/* What a guest reset (reboot, triple fault) does to a VM. */
enum cluster_reset_action {
	CLUSTER_ON_RESET_RESET, /* every node resets its machine; the VM runs on (default) */
	CLUSTER_ON_RESET_STOP,  /* the VM stops, as on a power-off, but exits non-zero */
};

/* Which guest CPUs do the Linux guest's housekeeping (timer tick,
 * timekeeping, RCU callbacks, unbound kernel threads). */
enum cluster_housekeeping {
	CLUSTER_HOUSEKEEPING_MASTER, /* the master's vCPUs: the others get
					nohz_full= and rcu_nocbs= (default) */
	CLUSTER_HOUSEKEEPING_ALL,    /* every vCPU: the kernel's own default */
};

/* Who moves pages between the guest's NUMA nodes. */
enum cluster_numa_balancing {
	CLUSTER_NUMA_BALANCING_MONITOR, /* the DSM and its policy only: the guest
					   kernel gets numa_balancing=disable (default) */
	CLUSTER_NUMA_BALANCING_GUEST,   /* the guest kernel's automatic NUMA
					   balancing too: its own default */
};

/* Which vCPUs the Linux guest's kernel starts at boot. */
enum cluster_boot_vcpus {
	CLUSTER_BOOT_VCPUS_ALL,    /* every vCPU: the kernel's own default (default) */
	CLUSTER_BOOT_VCPUS_MASTER, /* the master's: maxcpus=K appended, the guest's
				      init brings the others online */
};

/* Where a value stands in the cluster file (1-based; 0 when it was not
 * written there), for errors found after loading: cluster_vm_check_host(). */
struct cluster_pos {
	int line, col;
};

/* Guest devices (virtio over PCI), all owned by the VM's master node:
 * architecture.md, "Devices". */
#define CLUSTER_MAX_DISKS 16
#define CLUSTER_MAX_NICS 8
#define CLUSTER_MAX_HOSTFWD 32       /* per NIC */
#define CLUSTER_DISK_SERIAL_MAX 21   /* virtio-blk: 20 bytes + NUL */
#define CLUSTER_IFNAME_MAX 16        /* IFNAMSIZ */

enum cluster_disk_format {
	CLUSTER_DISK_RAW,
	CLUSTER_DISK_QCOW2,
};

struct cluster_disk {                   /* vms[].disks[] */
	char file[4096];                /* absolute (resolved against the config's folder) */
	enum cluster_disk_format format;
	bool readonly;                  /* default false */
	char serial[CLUSTER_DISK_SERIAL_MAX]; /* "" when not given */
	struct cluster_pos file_pos, format_pos;
};

enum cluster_nic_type {
	CLUSTER_NIC_USER, /* QEMU's user-mode network (libslirp) on the master */
	CLUSTER_NIC_TAP,  /* an existing tap interface of the master's host */
};

enum cluster_fwd_protocol {
	CLUSTER_FWD_TCP,
	CLUSTER_FWD_UDP,
};

struct cluster_hostfwd {                /* vms[].nics[].hostfwd[] (user only) */
	enum cluster_fwd_protocol protocol; /* default tcp */
	char host[64];                  /* IPv4 literal the master listens on, default 127.0.0.1 */
	int host_port, guest_port;      /* 1..65535 */
	struct cluster_pos host_port_pos;
};

struct cluster_nic {                    /* vms[].nics[] */
	enum cluster_nic_type type;
	uint8_t mac[6];                 /* given, or 52:54:00 + a hash of VM name and index */
	char ifname[CLUSTER_IFNAME_MAX]; /* tap: the interface on the master's host */
	struct cluster_pos ifname_pos;
	int n_hostfwd;
	struct cluster_hostfwd *hostfwd;
};

struct cluster_vm {
	char name[CLUSTER_NAME_MAX];
	uint64_t memory_bytes;                 /* multiple of 2 MiB, >= 2 MiB */
	int vcpus;                             /* total */
	int vcpus_per_node[CLUSTER_MAX_NODES]; /* indexed like cluster_config.nodes */
	uint64_t node_mask;                    /* bit i: node i is listed in vcpu_placement
						  (it takes part, even with 0 vCPUs) */
	int master_node;                       /* node index; owns vCPU 0 and all devices */
	char kernel[4096];                     /* "" when not given */
	char initrd[4096];
	char cmdline[4096];
	int numa_distance;                     /* guest SLIT distance between two nodes,
						  11..254 (local is 10), or
						  CLUSTER_NUMA_DISTANCE_AUTO (default):
						  measured by the master at start */
	enum cluster_reset_action on_reset;    /* vms[i].on_reset: reset (default) | stop */
	enum cluster_housekeeping housekeeping; /* vms[i].housekeeping: master (default) | all */
	enum cluster_boot_vcpus boot_vcpus;     /* vms[i].boot_vcpus: all (default) | master */
	enum cluster_numa_balancing numa_balancing; /* vms[i].numa_balancing: monitor (default) | guest */
	struct dsm_settings dsm;
	int n_disks;                           /* 0..CLUSTER_MAX_DISKS */
	struct cluster_disk *disks;
	int n_nics;                            /* 0..CLUSTER_MAX_NICS */
	struct cluster_nic *nics;
	int port;                              /* vms[i].port: the k-th of the VM's nodes (in
						  node order) listens on port + k; 0 (default):
						  each node's own port */
};

struct cluster_config {
	char path[4096];               /* the file this came from */
	char name[CLUSTER_NAME_MAX];
	char key_file[4096];           /* resolved relative to the config file */
	uint8_t key[64];               /* pre-shared key bytes */
	size_t key_len;                /* 16..64 */
	enum cluster_transport transport;
	uint32_t heartbeat_ms;         /* default 200 */
	uint32_t peer_timeout_ms;      /* no frame for this long = peer failed, default 3000 */
	uint32_t connect_timeout_ms;   /* waiting for peers at start, default 30000 */
	uint32_t hello_timeout_ms;     /* an accepted connection's Hello, default 1000 */
	uint32_t proof_timeout_ms;     /* the peer's AuthProof after the Hellos, default 1000 */
	struct rpc_loop_settings loop; /* cluster.loop: how each node's loop thread waits */
	int n_nodes;
	struct cluster_node nodes[CLUSTER_MAX_NODES];
	int n_vms;
	struct cluster_vm *vms;        /* n_vms entries */
};

/*
 * Parse and validate @path. On success returns 0 and a config the caller
 * frees with cluster_config_free(). On failure returns a negative errno
 * (-ENOENT for a missing file, -EINVAL for invalid content) and writes one
 * human-readable line into @err ("file:line:col: field.path: message").
 */
int cluster_config_load(const char *path, struct cluster_config **out, char *err, size_t errlen);

/* Same, from a string; @name stands in for the file name in messages and
 * relative paths resolve against the current directory. */
int cluster_config_load_string(const char *yaml, const char *name, struct cluster_config **out,
			       char *err, size_t errlen);

void cluster_config_free(struct cluster_config *cfg);

/* Index of the node or VM called @name, or -1. */
int cluster_config_find_node(const struct cluster_config *cfg, const char *name);
int cluster_config_find_vm(const struct cluster_config *cfg, const char *name);

/* Home node of guest page @page_index (4 KiB pages) of @vm under its initial
 * placement. NUMA: pages are split into contiguous ranges, one per node with
 * vCPUs, sized in proportion to its vCPUs (the same split the guest's SRAT
 * will show); nodes without vCPUs home nothing. Interleave: page i goes to
 * the (i % k)-th of the k nodes with vCPUs, in node order. Returns -EINVAL
 * when @page_index is beyond the VM's memory. */
int cluster_vm_initial_home(const struct cluster_config *cfg, const struct cluster_vm *vm,
			    uint64_t page_index);

/* The same placement as the DSM's own type (dsm/settings.h), which the
 * DSM region is given: -EINVAL for a VM that is not validated. */
int cluster_vm_dsm_placement(const struct cluster_config *cfg, const struct cluster_vm *vm,
			     struct dsm_placement *out);

/* The guest NUMA range of node @node: the pages cluster_vm_initial_home()
 * gives it under NUMA placement, whatever @vm's placement kind (the guest's
 * SRAT shows this split). Returns 0 with the range, -ENOENT when the node
 * has no vCPUs (and so no range), -EINVAL for a bad node index. */
int cluster_vm_numa_range(const struct cluster_config *cfg, const struct cluster_vm *vm, int node,
			  uint64_t *first_page, uint64_t *n_pages);

/* vCPU numbering, the same on every node: the master's vCPUs come first
 * (vCPU 0 is the bootstrap processor and lives with the devices), then each
 * other node's in node order. cluster_vm_node_vcpus() gives node @node's
 * first vCPU index and count (count 0: first is where its range would
 * start); cluster_vm_vcpu_node() the node owning vCPU @cpu. Both return
 * -EINVAL for an index out of range. */
int cluster_vm_node_vcpus(const struct cluster_config *cfg, const struct cluster_vm *vm, int node,
			  int *first, int *count);
int cluster_vm_vcpu_node(const struct cluster_config *cfg, const struct cluster_vm *vm, int cpu);

/* The TCP port (or RDMA CM port) node @node listens on for VM @vm's
 * session: vms[].port + k for the VM's k-th node, or the node's own port
 * when the VM has none. -EINVAL when @node takes no part in @vm. */
int cluster_vm_node_port(const struct cluster_config *cfg, const struct cluster_vm *vm, int node);

/*
 * The cluster as VM @vm sees it: a config of that VM alone, whose nodes
 * are the VM's nodes only (in the order of `nodes`, renumbered from 0),
 * each at the port cluster_vm_node_port() gives it. The spanning VM's
 * session joins exactly these nodes, so VMs on different nodes of one
 * cluster, or on the same nodes with their own ports, run side by side
 * (architecture.md, "Several VMs on one cluster"). Everything else (name,
 * key, timeouts, the VM's settings and devices) is copied; free with
 * cluster_config_free(). 0, -EINVAL (no such VM) or -ENOMEM.
 */
int cluster_config_vm_view(const struct cluster_config *cfg, int vm, struct cluster_config **out);

const char *cluster_transport_name(enum cluster_transport t);
const char *cluster_disk_format_name(enum cluster_disk_format f);

/*
 * The checks of VM @vm's devices that need the host the VM's master runs
 * on, which loading does not do (the disk images need not exist on the
 * other nodes, nor when the file is written): every disk image exists, is
 * a regular file or a block device, can be read (and written unless
 * readonly), and is in the format the file says (qcow2 magic probed, and a
 * qcow2 image's backing file exists); every host port forward's port can
 * be bound on its address. disco-node runs it on the master before QEMU
 * starts; `disco config check` runs it for every VM. Returns 0, or a
 * negative errno with one line in @err placed like a load error
 * ("file:line:col: vms[0].disks[1].format: ..."). @virtual_size, when not
 * NULL, gets each disk's guest-visible size in bytes (CLUSTER_MAX_DISKS
 * entries).
 */
int cluster_vm_check_host(const struct cluster_config *cfg, int vm, uint64_t *virtual_size,
			  char *err, size_t errlen);

#endif
