/*
 * Tree walk of a cluster file, part 3: a VM's guest devices, the lists
 * vms[i].disks (virtio-blk) and vms[i].nics (virtio-net).
 *
 * Only what the file itself says is checked here: keys, types, ranges,
 * the format names. Whether an image exists and is in the format written,
 * or a forwarded port is free, depends on the host the VM's master runs
 * on and on the moment; cluster_vm_check_host() (config_host.c) does that
 * from the positions recorded here. Rules across entries (the same image
 * twice, a host port forwarded twice) are in config_validate.c.
 *
 * A NIC without a `mac` gets 52:54:00 (QEMU's locally administered
 * prefix) followed by three bytes of an FNV-1a hash of "<vm name>/<index>":
 * the same on every node and on every run, so the guest keeps its
 * interface name and DHCP lease.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static const char *const disk_keys[] = {"file", "format", "readonly", "serial", NULL};
static const char *const formats[] = {"raw", "qcow2", NULL}; /* enum cluster_disk_format */
static const char *const nic_keys[] = {"type", "mac", "ifname", "hostfwd", NULL};
static const char *const nic_types[] = {"user", "tap", NULL}; /* enum cluster_nic_type */
static const char *const fwd_keys[] = {"protocol", "host", "host_port", "guest_port", NULL};
static const char *const protocols[] = {"tcp", "udp", NULL}; /* enum cluster_fwd_protocol */

/* Every item of list @key of @m, which may hold at most @max: calls
 * @item(c, node, index, arg) with the path pushed. Returns the count. */
static int walk_list(struct cfg_ctx *c, const yaml_node_t *m, const char *key, int max,
		     const char *what, int (*item)(struct cfg_ctx *, const yaml_node_t *, int, void *),
		     void *arg)
{
	size_t saved = cfg_path_key(c, key);
	const yaml_node_t *seq = cfg_map_get(c, m, key);
	size_t n;
	int r;

	if ((r = cfg_want_seq(c, m, seq, false)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	n = cfg_len(seq);
	if (n > (size_t)max) {
		cfg_path_index(c, (size_t)max);
		return cfg_fail(c, cfg_seq_item(c, seq, (size_t)max),
				"too many %s: at most %d, got %zu", what, max, n);
	}
	for (size_t i = 0; i < n; i++) {
		size_t at = cfg_path_index(c, i);
		const yaml_node_t *it = cfg_seq_item(c, seq, i);

		if ((r = cfg_want_map(c, seq, it, true)) < 0 || (r = item(c, it, (int)i, arg)) < 0)
			return r;
		cfg_path_restore(c, at);
	}
	cfg_path_restore(c, saved);
	return (int)n;
}

/* ---- disks ------------------------------------------------------------------ */

static int parse_serial(struct cfg_ctx *c, const yaml_node_t *m, struct cluster_disk *d)
{
	static const char what[] = "a serial number (1..20 characters of A-Z a-z 0-9 _ . -)";
	size_t saved = cfg_path_key(c, "serial");
	const yaml_node_t *v = NULL;
	char q[CFG_QUOTE_MAX];
	int r;

	if ((r = cfg_scalar_value(c, m, "serial", false, what, &v)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	const char *s = cfg_scalar(v);
	if (v->data.scalar.length != strlen(s) || strlen(s) >= sizeof(d->serial) ||
	    !cfg_valid_name(s))
		return cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), s));
	snprintf(d->serial, sizeof(d->serial), "%s", s);
	cfg_path_restore(c, saved);
	return 0;
}

static int parse_disk(struct cfg_ctx *c, const yaml_node_t *m, int i, void *arg)
{
	struct cluster_disk *d = &((struct cluster_vm *)arg)->disks[i];
	int format = CLUSTER_DISK_RAW, r;

	if ((r = cfg_check_keys(c, m, disk_keys)) < 0 ||
	    (r = cfg_get_path(c, m, "file", true, d->file, sizeof(d->file), &d->file_pos)) < 0 ||
	    (r = cfg_get_choice(c, m, "format", true, formats, &format)) < 0 ||
	    (r = cfg_get_bool(c, m, "readonly", false, &d->readonly)) < 0 ||
	    (r = parse_serial(c, m, d)) < 0)
		return r;
	d->format = (enum cluster_disk_format)format;
	d->format_pos = cfg_pos(cfg_map_get(c, m, "format"));
	return 0;
}

int cfg_parse_disks(struct cfg_ctx *c, const yaml_node_t *vmnode, struct cluster_vm *vm)
{
	const yaml_node_t *seq = cfg_map_get(c, vmnode, "disks");
	int n;

	if (seq && seq->type == YAML_SEQUENCE_NODE && cfg_len(seq) > 0 &&
	    cfg_len(seq) <= CLUSTER_MAX_DISKS) {
		vm->disks = calloc(cfg_len(seq), sizeof(*vm->disks));
		if (!vm->disks)
			return -ENOMEM;
	}
	n = walk_list(c, vmnode, "disks", CLUSTER_MAX_DISKS, "disks", parse_disk, vm);
	if (n > 0)
		vm->n_disks = n;
	return n < 0 ? n : 0;
}

/* ---- nics -------------------------------------------------------------------- */

static int parse_fwd(struct cfg_ctx *c, const yaml_node_t *m, int i, void *arg)
{
	struct cluster_hostfwd *f = &((struct cluster_nic *)arg)->hostfwd[i];
	int protocol = CLUSTER_FWD_TCP, r;
	struct in_addr a;
	char q[CFG_QUOTE_MAX];

	snprintf(f->host, sizeof(f->host), "127.0.0.1");
	if ((r = cfg_check_keys(c, m, fwd_keys)) < 0 ||
	    (r = cfg_get_choice(c, m, "protocol", false, protocols, &protocol)) < 0 ||
	    (r = cfg_get_string(c, m, "host", false, "an IPv4 address", f->host,
				sizeof(f->host))) < 0 ||
	    (r = cfg_get_int(c, m, "host_port", true, 1, 65535, &f->host_port)) < 0 ||
	    (r = cfg_get_int(c, m, "guest_port", true, 1, 65535, &f->guest_port)) < 0)
		return r;
	if (inet_pton(AF_INET, f->host, &a) != 1) {
		cfg_path_key(c, "host");
		return cfg_fail(c, cfg_map_get(c, m, "host"),
				"expected an IPv4 address to listen on (e.g. 127.0.0.1 or 0.0.0.0), "
				"got %s",
				cfg_quote(q, sizeof(q), f->host));
	}
	f->protocol = (enum cluster_fwd_protocol)protocol;
	f->host_port_pos = cfg_pos(cfg_map_get(c, m, "host_port"));
	return 0;
}

static int parse_mac(struct cfg_ctx *c, const yaml_node_t *m, struct cluster_nic *nic)
{
	static const char what[] = "a unicast MAC address like 52:54:00:12:34:56";
	size_t saved = cfg_path_key(c, "mac");
	const yaml_node_t *v = NULL;
	unsigned b[6];
	char q[CFG_QUOTE_MAX], end;
	int r;

	if ((r = cfg_scalar_value(c, m, "mac", false, what, &v)) <= 0) {
		if (r == 0)
			cfg_path_restore(c, saved);
		return r;
	}
	const char *s = cfg_scalar(v);
	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &end) != 6 ||
	    strspn(s, "0123456789abcdefABCDEF:") != 17 || (b[0] & 1))
		return cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), s));
	for (int i = 0; i < 6; i++)
		nic->mac[i] = (uint8_t)b[i];
	cfg_path_restore(c, saved);
	return 1;
}

static void default_mac(const char *vm_name, int index, uint8_t mac[6])
{
	char key[CLUSTER_NAME_MAX + 16];
	uint32_t h = 2166136261u; /* FNV-1a */

	snprintf(key, sizeof(key), "%s/%d", vm_name, index);
	for (const char *p = key; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

/* Only for a key that does not belong to the NIC's type. */
static int not_for_type(struct cfg_ctx *c, const yaml_node_t *m, const char *key,
			const char *type)
{
	cfg_path_key(c, key);
	return cfg_fail(c, cfg_map_key(c, m, key), "%s is only for type %s", key, type);
}

static int parse_nic(struct cfg_ctx *c, const yaml_node_t *m, int i, void *arg)
{
	struct cluster_vm *vm = arg;
	struct cluster_nic *nic = &vm->nics[i];
	const yaml_node_t *fwd = cfg_map_get(c, m, "hostfwd");
	int type = CLUSTER_NIC_USER, r, n;

	if ((r = cfg_check_keys(c, m, nic_keys)) < 0 ||
	    (r = cfg_get_choice(c, m, "type", true, nic_types, &type)) < 0 ||
	    (r = parse_mac(c, m, nic)) < 0)
		return r;
	if (r == 0)
		default_mac(vm->name, i, nic->mac);
	nic->type = (enum cluster_nic_type)type;
	if (nic->type == CLUSTER_NIC_TAP) {
		static const char what[] =
			"the name of a tap interface (1..15 characters of A-Z a-z 0-9 _ . -)";
		const yaml_node_t *v = NULL;
		char q[CFG_QUOTE_MAX];
		size_t saved;

		if (cfg_map_key(c, m, "hostfwd"))
			return not_for_type(c, m, "hostfwd", "user (with tap, the guest is on "
							     "the host's network)");
		saved = cfg_path_key(c, "ifname");
		if ((r = cfg_scalar_value(c, m, "ifname", true, what, &v)) < 0)
			return r;
		const char *s = cfg_scalar(v);
		if (strlen(s) >= sizeof(nic->ifname) || !cfg_valid_name(s) || !strcmp(s, ".") ||
		    !strcmp(s, ".."))
			return cfg_fail(c, v, "expected %s, got %s", what, cfg_quote(q, sizeof(q), s));
		snprintf(nic->ifname, sizeof(nic->ifname), "%s", s);
		nic->ifname_pos = cfg_pos(v);
		cfg_path_restore(c, saved);
		return 0;
	}
	if (cfg_map_key(c, m, "ifname"))
		return not_for_type(c, m, "ifname", "tap");
	if (fwd && fwd->type == YAML_SEQUENCE_NODE && cfg_len(fwd) > 0 &&
	    cfg_len(fwd) <= CLUSTER_MAX_HOSTFWD) {
		nic->hostfwd = calloc(cfg_len(fwd), sizeof(*nic->hostfwd));
		if (!nic->hostfwd)
			return -ENOMEM;
	}
	n = walk_list(c, m, "hostfwd", CLUSTER_MAX_HOSTFWD, "port forwards", parse_fwd, nic);
	if (n > 0)
		nic->n_hostfwd = n;
	return n < 0 ? n : 0;
}

int cfg_parse_nics(struct cfg_ctx *c, const yaml_node_t *vmnode, struct cluster_vm *vm)
{
	const yaml_node_t *seq = cfg_map_get(c, vmnode, "nics");
	int n;

	if (seq && seq->type == YAML_SEQUENCE_NODE && cfg_len(seq) > 0 &&
	    cfg_len(seq) <= CLUSTER_MAX_NICS) {
		vm->nics = calloc(cfg_len(seq), sizeof(*vm->nics));
		if (!vm->nics)
			return -ENOMEM;
		/* counted now, so cluster_config_free() frees the port lists of a
		 * VM whose parsing stops half-way */
		vm->n_nics = (int)cfg_len(seq);
	}
	n = walk_list(c, vmnode, "nics", CLUSTER_MAX_NICS, "NICs", parse_nic, vm);
	return n < 0 ? n : 0;
}
