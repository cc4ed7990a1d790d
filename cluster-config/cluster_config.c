/*
 * Entry points of the cluster-config module: load a file or string, free,
 * look up by name, and the initial page-home function.
 *
 * Loading reads the whole file into memory (cluster files are small; a
 * hard cap keeps a wrong path such as a disk image from being slurped),
 * builds the libyaml document tree so every node has a line and column,
 * then runs the parse and validate passes over it. On any failure nothing
 * is returned but the one-line message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"

#define CFG_FILE_MAX (1u << 20)
#define CFG_MAX_DEPTH 32
#define CFG_MAX_ANCHORS 1000
#define CFG_MAX_NODES 100000
#define PAGE_SHIFT 12

/* Line and column of byte @off, for reader errors (bad UTF-8), which
 * libyaml reports as an offset only. */
static yaml_mark_t mark_at(const unsigned char *buf, size_t len, size_t off)
{
	yaml_mark_t m = {0};

	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	return m;
}

static int syntax_error(struct cfg_ctx *c, const yaml_parser_t *p, const unsigned char *buf,
			size_t len)
{
	yaml_mark_t at = p->problem_mark;

	if (p->error == YAML_MEMORY_ERROR)
		return -ENOMEM;
	if (p->error == YAML_READER_ERROR) {
		at = mark_at(buf, len, p->problem_offset);
		if (p->problem_value >= 0)
			return cfg_fail_mark(c, at, "YAML syntax error: %s (byte 0x%02x)",
					     p->problem, (unsigned)p->problem_value);
	}
	if (p->context)
		return cfg_fail_mark(c, at, "YAML syntax error: %s (%s at %zu:%zu)", p->problem,
				     p->context, p->context_mark.line + 1,
				     p->context_mark.column + 1);
	return cfg_fail_mark(c, at, "YAML syntax error: %s", p->problem ? p->problem : "unknown");
}

/*
 * One pass over the events before the tree is built, refusing what would
 * make libyaml slow rather than what is merely wrong (the tree walk reports
 * that, with better messages):
 *  - libyaml's scanner slows down quadratically with the nesting depth of
 *    flow collections ("[[[[..."): 16000 levels take seconds, a 1 MiB file
 *    hours. A cluster file needs 4 levels; the pass stops as soon as
 *    CFG_MAX_DEPTH is crossed, before the scanner has gone deep.
 *  - its loader looks every alias up in a list of all anchors so far:
 *    150,000 anchors in 1 MiB take ~30 s. A cluster file has no use for
 *    more than a few (CFG_MAX_ANCHORS, aliases counted with them).
 *  - nodes of the tree: CFG_MAX_NODES is far above the largest valid file
 *    (64 nodes and 1024 VMs of ~40 nodes each).
 */
static int check_shape(struct cfg_ctx *c, const unsigned char *buf, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int depth = 0, r = 0;
	size_t anchors = 0, nodes = 0;

	if (!yaml_parser_initialize(&p))
		return -ENOMEM;
	yaml_parser_set_input_string(&p, buf, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			r = syntax_error(c, &p, buf, len);
			break;
		}
		yaml_event_type_t type = ev.type;
		yaml_mark_t at = ev.start_mark;
		bool anchored = type == YAML_ALIAS_EVENT ||
				(type == YAML_SCALAR_EVENT && ev.data.scalar.anchor) ||
				(type == YAML_SEQUENCE_START_EVENT && ev.data.sequence_start.anchor) ||
				(type == YAML_MAPPING_START_EVENT && ev.data.mapping_start.anchor);

		yaml_event_delete(&ev);
		if (anchored && ++anchors > CFG_MAX_ANCHORS) {
			r = cfg_fail_mark(c, at, "more than %d anchors and aliases; a cluster file "
					  "needs a few at most", CFG_MAX_ANCHORS);
			break;
		}
		if ((type == YAML_SCALAR_EVENT || type == YAML_SEQUENCE_START_EVENT ||
		     type == YAML_MAPPING_START_EVENT) && ++nodes > CFG_MAX_NODES) {
			r = cfg_fail_mark(c, at, "more than %d YAML nodes (keys, values, lists and "
					  "mappings); larger than any cluster file", CFG_MAX_NODES);
			break;
		}
		if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
			if (++depth > CFG_MAX_DEPTH) {
				r = cfg_fail_mark(c, at, "nested more than %d levels deep",
						  CFG_MAX_DEPTH);
				break;
			}
		} else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
			depth--;
		} else if (type == YAML_STREAM_END_EVENT) {
			break;
		}
	}
	yaml_parser_delete(&p);
	return r;
}

/* A stream may hold several documents; a cluster file is exactly one. */
static int check_single_document(struct cfg_ctx *c, yaml_parser_t *p, const unsigned char *buf,
				 size_t len)
{
	yaml_document_t next;
	int r = 0;

	if (!yaml_parser_load(p, &next))
		return syntax_error(c, p, buf, len);
	const yaml_node_t *root = yaml_document_get_root_node(&next);
	if (root)
		r = cfg_fail_mark(c, root->start_mark,
				  "expected one YAML document, found a second one here");
	yaml_document_delete(&next);
	return r;
}

static int load_buffer(struct cfg_ctx *c, const unsigned char *buf, size_t len,
		       struct cluster_config **out)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct cluster_config *cfg;
	const yaml_node_t *root;
	int r;

	if ((r = check_shape(c, buf, len)) < 0)
		return r;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = syntax_error(c, &parser, buf, len);
		yaml_parser_delete(&parser);
		return r;
	}
	c->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (!root) {
		yaml_mark_t start = {0};

		r = cfg_fail_mark(c, start,
				  "the file is empty; expected a mapping with keys \"cluster\", "
				  "\"nodes\" and optionally \"vms\"");
		goto done;
	}
	if ((r = check_single_document(c, &parser, buf, len)) < 0)
		goto done;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		r = -ENOMEM;
		goto done;
	}
	c->cfg = cfg;
	snprintf(cfg->path, sizeof(cfg->path), "%s", c->name);
	if ((r = cfg_parse(c, root)) < 0 || (r = cfg_validate(c)) < 0) {
		cluster_config_free(cfg);
		goto done;
	}
	*out = cfg;
done:
	c->doc = NULL;
	c->cfg = NULL;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return r;
}

static int finish(struct cfg_ctx *c, int r)
{
	if (r < 0 && !c->failed && c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: %s", c->name, strerror(-r));
	return r;
}

int cluster_config_load_string(const char *yaml, const char *name, struct cluster_config **out,
			       char *err, size_t errlen)
{
	struct cfg_ctx c = {.name = name ? name : "<string>", .err = err, .errlen = errlen};
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!yaml || !out)
		return finish(&c, -EINVAL);
	*out = NULL;
	if ((r = cfg_set_dir(&c, NULL)) < 0)
		return finish(&c, r);
	return finish(&c, load_buffer(&c, (const unsigned char *)yaml, strlen(yaml), out));
}

/* Reads @path whole: -EFBIG past CFG_FILE_MAX, -EINVAL (@what says why)
 * for anything but a regular file. Opened non-blocking, so a FIFO or a
 * device never blocks the caller. */
static int read_file(const char *path, unsigned char **buf, size_t *len, const char **what)
{
	int fd = cfg_open_regular(path, what);
	unsigned char *b;
	size_t n = 0;

	if (fd < 0)
		return fd;
	b = malloc(CFG_FILE_MAX + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	while (n <= CFG_FILE_MAX) {
		ssize_t got = read(fd, b + n, CFG_FILE_MAX + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = -errno;
			close(fd);
			free(b);
			return e;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	if (n > CFG_FILE_MAX) {
		free(b);
		return -EFBIG;
	}
	*buf = b;
	*len = n;
	return 0;
}

int cluster_config_load(const char *path, struct cluster_config **out, char *err, size_t errlen)
{
	struct cfg_ctx c = {.name = path, .err = err, .errlen = errlen};
	unsigned char *buf = NULL;
	size_t len = 0;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!path || !out) {
		c.name = "<null>";
		return finish(&c, -EINVAL);
	}
	*out = NULL;
	if (strlen(path) >= sizeof(((struct cluster_config *)0)->path))
		return finish(&c, -ENAMETOOLONG);
	const char *what = NULL;
	r = read_file(path, &buf, &len, &what);
	if (r < 0) {
		if (err && errlen && r == -EFBIG)
			snprintf(err, errlen, "%s: cannot read: larger than %u bytes", path,
				 CFG_FILE_MAX);
		else if (err && errlen && what)
			snprintf(err, errlen, "%s: cannot read: %s, not a regular file", path, what);
		else if (err && errlen)
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	if ((r = cfg_set_dir(&c, path)) == 0)
		r = load_buffer(&c, buf, len, out);
	free(buf);
	return finish(&c, r);
}

void cluster_config_free(struct cluster_config *cfg)
{
	if (!cfg)
		return;
	for (int v = 0; cfg->vms && v < cfg->n_vms; v++) {
		struct cluster_vm *vm = &cfg->vms[v];

		for (int i = 0; vm->nics && i < vm->n_nics; i++)
			free(vm->nics[i].hostfwd);
		free(vm->nics);
		free(vm->disks);
	}
	free(cfg->vms);
	/* The pre-shared key should not outlive its use in freed heap. */
	explicit_bzero(cfg, sizeof(*cfg));
	free(cfg);
}

int cluster_config_find_node(const struct cluster_config *cfg, const char *name)
{
	if (!cfg || !name)
		return -1;
	for (int i = 0; i < cfg->n_nodes; i++)
		if (!strcmp(cfg->nodes[i].name, name))
			return i;
	return -1;
}

int cluster_config_find_vm(const struct cluster_config *cfg, const char *name)
{
	if (!cfg || !name)
		return -1;
	for (int i = 0; i < cfg->n_vms; i++)
		if (!strcmp(cfg->vms[i].name, name))
			return i;
	return -1;
}

/*
 * NUMA split: each node with vCPUs gets floor(pages * its vCPUs / all
 * vCPUs) pages in node order, and the last such node also the remainder.
 * pages < 2^52 and vCPUs <= 255, so the products fit in 64 bits.
 */
int cluster_vm_numa_range(const struct cluster_config *cfg, const struct cluster_vm *vm, int node,
			  uint64_t *first_page, uint64_t *n_pages)
{
	uint64_t pages, start = 0;
	int last = -1;

	if (!cfg || !vm || node < 0 || node >= cfg->n_nodes || vm->vcpus <= 0)
		return -EINVAL;
	if (vm->vcpus_per_node[node] == 0)
		return -ENOENT;
	pages = vm->memory_bytes >> PAGE_SHIFT;
	for (int i = 0; i < cfg->n_nodes; i++)
		if (vm->vcpus_per_node[i] > 0)
			last = i;
	for (int i = 0; i < node; i++)
		start += pages * (uint64_t)vm->vcpus_per_node[i] / (uint64_t)vm->vcpus;
	*first_page = start;
	*n_pages = node == last ? pages - start
				: pages * (uint64_t)vm->vcpus_per_node[node] / (uint64_t)vm->vcpus;
	return 0;
}

int cluster_vm_node_vcpus(const struct cluster_config *cfg, const struct cluster_vm *vm, int node,
			  int *first, int *count)
{
	int m, next;

	if (!cfg || !vm || node < 0 || node >= cfg->n_nodes)
		return -EINVAL;
	m = vm->master_node;
	if (node == m) {
		*first = 0;
		*count = vm->vcpus_per_node[m];
		return 0;
	}
	next = vm->vcpus_per_node[m];
	for (int i = 0; i < node; i++)
		if (i != m)
			next += vm->vcpus_per_node[i];
	*first = next;
	*count = vm->vcpus_per_node[node];
	return 0;
}

int cluster_vm_vcpu_node(const struct cluster_config *cfg, const struct cluster_vm *vm, int cpu)
{
	if (!cfg || !vm || cpu < 0 || cpu >= vm->vcpus)
		return -EINVAL;
	for (int i = 0; i < cfg->n_nodes; i++) {
		int first, count;

		cluster_vm_node_vcpus(cfg, vm, i, &first, &count);
		if (cpu >= first && cpu < first + count)
			return i;
	}
	return -EINVAL;
}

int cluster_vm_dsm_placement(const struct cluster_config *cfg, const struct cluster_vm *vm,
			     struct dsm_placement *out)
{
	if (!cfg || !vm || vm->vcpus <= 0 || cfg->n_nodes > DSM_MAX_NODES)
		return -EINVAL;
	*out = (struct dsm_placement){
		.kind = vm->dsm.placement,
		.n_pages = vm->memory_bytes >> PAGE_SHIFT,
		.n_nodes = cfg->n_nodes,
		.node = vm->dsm.placement_node,
	};
	for (int i = 0; i < cfg->n_nodes; i++) {
		if (vm->vcpus_per_node[i] > 0)
			out->nodes |= 1ull << i;
		cluster_vm_numa_range(cfg, vm, i, &out->range_first[i], &out->range_pages[i]);
	}
	return 0;
}

int cluster_vm_initial_home(const struct cluster_config *cfg, const struct cluster_vm *vm,
			    uint64_t page_index)
{
	struct dsm_placement p;
	int home;

	if (cluster_vm_dsm_placement(cfg, vm, &p) < 0)
		return -EINVAL;
	home = dsm_placement_home(&p, page_index);
	if (home < 0)
		return -EINVAL;
	return home;
}

const char *cluster_disk_format_name(enum cluster_disk_format f)
{
	switch (f) {
	case CLUSTER_DISK_RAW:
		return "raw";
	case CLUSTER_DISK_QCOW2:
		return "qcow2";
	}
	return "unknown";
}

const char *cluster_transport_name(enum cluster_transport t)
{
	switch (t) {
	case CLUSTER_TRANSPORT_TCP:
		return "tcp";
	case CLUSTER_TRANSPORT_RDMA:
		return "rdma";
	}
	return "unknown";
}
