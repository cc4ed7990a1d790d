/*
 * Files a cluster file refers to: where relative paths point and the
 * pre-shared key.
 *
 * Relative paths are resolved against the folder of the YAML file, made
 * absolute once here, because the processes that use them (node monitors,
 * test harnesses) may run from any directory. Only the folder is
 * canonicalised: the kernel and initrd may not exist yet, so their own
 * components are kept as written and the kernel resolves them on open.
 *
 * The key is raw bytes: a file written with `echo` carries a trailing
 * newline, and that newline is part of the key on every node alike, so we
 * do not strip it (stripping on some nodes and not others would be worse).
 * It must be readable by its owner only (mode 0600 or 0400): anyone who
 * can read it can join the cluster.
 *
 * Every file is opened non-blocking and must be a regular file, so a FIFO
 * or a device named by mistake (or malice) gives an error at once instead
 * of a loader blocked for ever.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"

static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a folder";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a regular file";
}

int cfg_open_regular(const char *path, const char **what)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	*what = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		*what = file_kind(st.st_mode);
		return -EINVAL;
	}
	return fd;
}

int cfg_set_dir(struct cfg_ctx *c, const char *file)
{
	char tmp[4096];
	const char *slash = file ? strrchr(file, '/') : NULL;
	char *real;

	if (!slash) {
		snprintf(tmp, sizeof(tmp), ".");
	} else if (slash == file) {
		snprintf(tmp, sizeof(tmp), "/");
	} else {
		if ((size_t)(slash - file) >= sizeof(tmp))
			return -ENAMETOOLONG;
		memcpy(tmp, file, (size_t)(slash - file));
		tmp[slash - file] = '\0';
	}
	real = realpath(tmp, NULL);
	if (!real)
		return -errno;
	if (strlen(real) >= sizeof(c->dir)) {
		free(real);
		return -ENAMETOOLONG;
	}
	strcpy(c->dir, real);
	free(real);
	return 0;
}

int cfg_resolve_path(const struct cfg_ctx *c, const char *rel, char *out, size_t outlen)
{
	int n;

	if (rel[0] == '/' || rel[0] == '\0')
		n = snprintf(out, outlen, "%s", rel);
	else
		n = snprintf(out, outlen, "%s%s%s", c->dir, strcmp(c->dir, "/") ? "/" : "", rel);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

struct cluster_pos cfg_pos(const yaml_node_t *n)
{
	return (struct cluster_pos){.line = (int)n->start_mark.line + 1,
				    .col = (int)n->start_mark.column + 1};
}

int cfg_get_path(struct cfg_ctx *c, const yaml_node_t *map, const char *key, bool required,
		 char *out, size_t outlen, struct cluster_pos *pos)
{
	char rel[4096];
	int r = cfg_get_string(c, map, key, required, "a file path", rel, sizeof(rel));
	const yaml_node_t *v = cfg_map_get(c, map, key);

	if (r <= 0)
		return r;
	if (pos)
		*pos = cfg_pos(v);
	if (required && !rel[0]) {
		cfg_path_key(c, key);
		return cfg_fail(c, v, "expected a file path, got \"\"");
	}
	if (cfg_resolve_path(c, rel, out, outlen) < 0) {
		cfg_path_key(c, key);
		return cfg_fail(c, v, "path too long once resolved against %s", c->dir);
	}
	return 1;
}

int cfg_read_key(struct cfg_ctx *c, const yaml_node_t *auth)
{
	struct cluster_config *cfg = c->cfg;
	char rel[4096], q[CFG_QUOTE_MAX + 4096];
	uint8_t buf[sizeof(cfg->key) + 1];
	size_t len = 0;
	int r, fd;

	r = cfg_get_string(c, auth, "key_file", true, "the path of a key file", rel, sizeof(rel));
	if (r < 0)
		return r;
	size_t saved = cfg_path_key(c, "key_file");
	const yaml_node_t *v = cfg_map_get(c, auth, "key_file");
	if (rel[0] == '\0')
		return cfg_fail(c, v, "expected the path of a key file, got \"\"");
	if (cfg_resolve_path(c, rel, cfg->key_file, sizeof(cfg->key_file)) < 0)
		return cfg_fail(c, v, "path too long once resolved against %s", c->dir);
	const char *what;
	fd = cfg_open_regular(cfg->key_file, &what);
	if (fd < 0 && what)
		return cfg_fail(c, v, "cannot read %s: it is %s, not a regular file",
				cfg_quote(q, sizeof(q), cfg->key_file), what);
	if (fd < 0)
		return cfg_fail(c, v, "cannot open %s: %s",
				cfg_quote(q, sizeof(q), cfg->key_file), strerror(-fd));
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		close(fd);
		return cfg_fail(c, v, "%s is open to group or others (mode %04o): the key lets "
				"anyone who reads it join the cluster; make it 0600 (chmod 600 %s)",
				cfg_quote(q, sizeof(q), cfg->key_file), (unsigned)(st.st_mode & 07777),
				cfg->key_file);
	}
	/* One byte more than the largest key tells us the file is too long. */
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return cfg_fail(c, v, "cannot read %s: %s",
					cfg_quote(q, sizeof(q), cfg->key_file), strerror(e));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len < 16 || len > sizeof(cfg->key)) {
		r = cfg_fail(c, v, "expected a key file of 16..64 bytes, got %s%zu bytes in %s",
			     len > sizeof(cfg->key) ? "more than " : "",
			     len > sizeof(cfg->key) ? sizeof(cfg->key) : len,
			     cfg_quote(q, sizeof(q), cfg->key_file));
		explicit_bzero(buf, sizeof(buf));
		return r;
	}
	memcpy(cfg->key, buf, len);
	cfg->key_len = len;
	explicit_bzero(buf, sizeof(buf));
	cfg_path_restore(c, saved);
	return 0;
}
