/*
 * Cross-entry checks of the VMs' devices:
 *
 *  - one image used twice, unless every use is readonly: two writers of
 *    one image (two disks of a VM, or two VMs) would corrupt it;
 *  - a host port forwarded twice on one host: the same protocol and port
 *    on addresses that overlap (equal, or either 0.0.0.0), in one VM or in
 *    two VMs whose masters have the same address (each VM's forwards
 *    listen on its master's host).
 *
 * A hostile file may hold 1024 VMs with 16 disks or 8 NICs of 32
 * forwards each, so nothing here compares every pair: the uses are
 * sorted, and a clash can only be among neighbours of one run (same image;
 * same host, protocol and port). As everywhere in the validator, the error
 * reported is the one nearest the top: the clashing use that comes first
 * in the file, naming the earlier use it clashes with.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

struct use {
	const char *run_str;  /* disks: the image path */
	int run_host;         /* forwards: host group, protocol and port */
	int run_proto, run_port;
	uint32_t sub;         /* forwards: the listen address (host order) */
	bool strong;          /* clashes with any other use of the run: a
				 writable disk, a forward on 0.0.0.0 */
	int order;            /* position in the file */
	int v, i, j;          /* vms[v].disks[i] or vms[v].nics[i].hostfwd[j] */
};

static int cmp_use(const void *pa, const void *pb)
{
	const struct use *a = pa, *b = pb;
	int r = a->run_str && b->run_str ? strcmp(a->run_str, b->run_str) : 0;

	if (r)
		return r;
	if (a->run_host != b->run_host)
		return a->run_host < b->run_host ? -1 : 1;
	if (a->run_proto != b->run_proto)
		return a->run_proto < b->run_proto ? -1 : 1;
	if (a->run_port != b->run_port)
		return a->run_port < b->run_port ? -1 : 1;
	if (a->sub != b->sub)
		return a->sub < b->sub ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

static bool same_run(const struct use *a, const struct use *b)
{
	return (!a->run_str || !strcmp(a->run_str, b->run_str)) && a->run_host == b->run_host &&
	       a->run_proto == b->run_proto && a->run_port == b->run_port;
}

/*
 * The clash of a run [@u, @u + @n) whose later use comes first in the file,
 * if it comes before *@later: then *@later and *@earlier are set. Strong
 * uses clash with every other use; other uses with those of equal @sub
 * when @sub_clashes.
 */
static void run_clash(const struct use *u, size_t n, bool sub_clashes, const struct use **later,
		      const struct use **earlier)
{
	const struct use *w0 = NULL, *other = NULL;

	for (size_t k = 0; k < n; k++)
		if (u[k].strong && (!w0 || u[k].order < w0->order))
			w0 = &u[k];
	if (w0) {
		for (size_t k = 0; k < n; k++)
			if (&u[k] != w0 && (!other || u[k].order < other->order))
				other = &u[k];
		if (other) {
			const struct use *l = other->order > w0->order ? other : w0;

			if (!*later || l->order < (*later)->order) {
				*later = l;
				*earlier = l == other ? w0 : other;
			}
		}
	}
	/* equal subs are neighbours, each group sorted by order */
	for (size_t k = 1; sub_clashes && k < n; k++) {
		if (u[k].sub != u[k - 1].sub || u[k].strong || u[k - 1].strong)
			continue;
		if (k >= 2 && u[k - 2].sub == u[k].sub && !u[k - 2].strong)
			continue; /* only a group's first two matter */
		if (!*later || u[k].order < (*later)->order) {
			*later = &u[k];
			*earlier = &u[k - 1];
		}
	}
}

static void find_clash(struct use *u, size_t n, bool sub_clashes, const struct use **later,
		       const struct use **earlier)
{
	*later = *earlier = NULL;
	qsort(u, n, sizeof(*u), cmp_use);
	for (size_t start = 0, end; start < n; start = end) {
		for (end = start + 1; end < n && same_run(&u[start], &u[end]); end++)
			;
		if (end - start > 1)
			run_clash(&u[start], end - start, sub_clashes, later, earlier);
	}
}

static int check_disks(struct cfg_ctx *c)
{
	const struct cluster_config *cfg = c->cfg;
	const struct use *later, *earlier;
	struct use *u;
	size_t n = 0;
	int order = 0, r = 0;

	for (int v = 0; v < cfg->n_vms; v++)
		n += (size_t)cfg->vms[v].n_disks;
	if (n < 2)
		return 0;
	u = calloc(n, sizeof(*u));
	if (!u)
		return -ENOMEM;
	n = 0;
	for (int v = 0; v < cfg->n_vms; v++)
		for (int i = 0; i < cfg->vms[v].n_disks; i++) {
			const struct cluster_disk *d = &cfg->vms[v].disks[i];

			u[n++] = (struct use){.run_str = d->file, .strong = !d->readonly,
					      .order = order++, .v = v, .i = i};
		}
	find_clash(u, n, false, &later, &earlier);
	if (later) {
		cfg_path_set(c, "vms[%d].disks[%d].file", later->v, later->i);
		r = cfg_fail_path(c,
				  "image \"%s\" is also vms[%d].disks[%d]; two disks may share an "
				  "image only when both are readonly",
				  later->run_str, earlier->v, earlier->i);
	}
	free(u);
	return r;
}

/* The first node with the same address as the VM's master: VMs whose
 * masters share a host share its ports. */
static int master_host(const struct cluster_config *cfg, const struct cluster_vm *vm)
{
	const char *a = cfg->nodes[vm->master_node].address;

	for (int i = 0; i < cfg->n_nodes; i++)
		if (cfg_same_address(cfg->nodes[i].address, a))
			return i;
	return vm->master_node;
}

static int check_forwards(struct cfg_ctx *c)
{
	const struct cluster_config *cfg = c->cfg;
	const struct use *later, *earlier;
	struct use *u;
	size_t n = 0;
	int order = 0, r = 0;

	for (int v = 0; v < cfg->n_vms; v++)
		for (int i = 0; i < cfg->vms[v].n_nics; i++)
			n += (size_t)cfg->vms[v].nics[i].n_hostfwd;
	if (n < 2)
		return 0;
	u = calloc(n, sizeof(*u));
	if (!u)
		return -ENOMEM;
	n = 0;
	for (int v = 0; v < cfg->n_vms; v++) {
		int host = master_host(cfg, &cfg->vms[v]);

		for (int i = 0; i < cfg->vms[v].n_nics; i++)
			for (int j = 0; j < cfg->vms[v].nics[i].n_hostfwd; j++) {
				const struct cluster_hostfwd *f = &cfg->vms[v].nics[i].hostfwd[j];
				struct in_addr a = {0};

				inet_pton(AF_INET, f->host, &a); /* checked by the parser */
				u[n++] = (struct use){.run_host = host, .run_proto = (int)f->protocol,
						      .run_port = f->host_port,
						      .sub = ntohl(a.s_addr),
						      .strong = a.s_addr == INADDR_ANY,
						      .order = order++, .v = v, .i = i, .j = j};
			}
	}
	find_clash(u, n, true, &later, &earlier);
	if (later) {
		const struct cluster_hostfwd *f = &cfg->vms[later->v].nics[later->i].hostfwd[later->j];
		const struct cluster_hostfwd *e =
			&cfg->vms[earlier->v].nics[earlier->i].hostfwd[earlier->j];

		cfg_path_set(c, "vms[%d].nics[%d].hostfwd[%d].host_port", later->v, later->i,
			     later->j);
		r = cfg_fail_path(c,
				  "host port %s %s:%d is already forwarded by "
				  "vms[%d].nics[%d].hostfwd[%d] (%s:%d%s%s%s)",
				  f->protocol == CLUSTER_FWD_UDP ? "udp" : "tcp", f->host,
				  f->host_port, earlier->v, earlier->i, earlier->j, e->host,
				  e->host_port, earlier->v != later->v ? "; VM \"" : "",
				  earlier->v != later->v ? cfg->vms[earlier->v].name : "",
				  earlier->v != later->v ? "\" has its master on the same host" : "");
	}
	free(u);
	return r;
}

/* Two NICs of one VM with one MAC address (given, or a given one equal to
 * a derived one): the guest's network would not work. A VM has at most 8
 * NICs, so pairs are fine here. */
static int check_macs(struct cfg_ctx *c)
{
	const struct cluster_config *cfg = c->cfg;

	for (int v = 0; v < cfg->n_vms; v++) {
		const struct cluster_vm *vm = &cfg->vms[v];

		for (int i = 0; i < vm->n_nics; i++)
			for (int j = 0; j < i; j++) {
				const uint8_t *m = vm->nics[i].mac;

				if (memcmp(m, vm->nics[j].mac, 6))
					continue;
				cfg_path_set(c, "vms[%d].nics[%d].mac", v, i);
				return cfg_fail_path(c,
						     "MAC address %02x:%02x:%02x:%02x:%02x:%02x is "
						     "also the one of vms[%d].nics[%d]",
						     m[0], m[1], m[2], m[3], m[4], m[5], v, j);
			}
	}
	return 0;
}

int cfg_validate_devices(struct cfg_ctx *c)
{
	int r;

	if ((r = check_disks(c)) < 0 || (r = check_macs(c)) < 0 || (r = check_forwards(c)) < 0)
		return r;
	return 0;
}
