// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cluster_vm_check_host(): the checks of a VM's devices that look at the
 * host its master runs on (see cluster_config.h). Loading never opens a
 * disk image nor binds a port: the file may be written before the images
 * exist, and only the master's host has them. So these run where and when
 * they mean something (disco-node on the master, just before QEMU starts;
 * disco config check), and report with the positions the parser recorded,
 * in the same "file:line:col: field: message" form as load errors.
 *
 * Formats are probed from the image's first bytes, as `qemu-img info`
 * does: a qcow2 image starts with "QFI\xfb". The dangerous mismatch is a
 * qcow2 image given as raw: QEMU would show the guest the qcow2 metadata
 * as disk contents, and a guest write would destroy the image.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster_config.h"

#define PROBE_BYTES 512

static uint32_t get_be32(const unsigned char *p)
{
	uint32_t x;

	memcpy(&x, p, sizeof(x));
	return be32toh(x);
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
	return be64toh(x);
}

static int host_fail(const struct cluster_config *cfg, struct cluster_pos pos, char *err,
		     size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int host_fail(const struct cluster_config *cfg, struct cluster_pos pos, char *err,
		     size_t errlen, int rc, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (err && errlen) {
		if (pos.line > 0)
			snprintf(err, errlen, "%s:%d:%d: %s", cfg->path, pos.line, pos.col, msg);
		else
			snprintf(err, errlen, "%s: %s", cfg->path, msg);
	}
	return rc;
}

/* What the first bytes of an image say it is: "raw" when no format
 * QEMU knows claims them. */
static const char *probe_format(const unsigned char *h, size_t n)
{
	static const struct {
		size_t off;
		const char *magic;
		size_t len;
		const char *name;
	} magics[] = {
		{0, "QFI\xfb", 4, "qcow2"},
		{0, "KDMV", 4, "vmdk"},
		{0, "# Disk DescriptorFile", 21, "vmdk"},
		{0, "vhdxfile", 8, "vhdx"},
		{0, "conectix", 8, "vpc (VHD)"},
		{0, "QED\0", 4, "qed"},
		{0, "LUKS\xba\xbe", 6, "luks"},
		{0x40, "\x7f\x10\xda\xbe", 4, "vdi"},
	};

	for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++)
		if (n >= magics[i].off + magics[i].len &&
		    !memcmp(h + magics[i].off, magics[i].magic, magics[i].len)) {
			/* qcow version 1 has the same magic */
			if (i == 0 && n >= 8 && get_be32(h + 4) == 1)
				return "qcow (version 1)";
			return magics[i].name;
		}
	return "raw";
}

/* A qcow2 image's backing file, resolved against the image's folder as
 * QEMU does; "" when it has none. */
static int qcow2_backing(int fd, const unsigned char *h, const char *image, char *out,
			 size_t outlen)
{
	uint64_t off = get_be64(h + 8);
	uint32_t len = get_be32(h + 16);
	char name[1024];
	const char *slash;

	out[0] = '\0';
	if (!off)
		return 0;
	if (len == 0 || len >= sizeof(name))
		return -EINVAL;
	if (pread(fd, name, len, (off_t)off) != (ssize_t)len)
		return -EINVAL;
	name[len] = '\0';
	slash = strrchr(image, '/');
	if (name[0] == '/' || !slash)
		snprintf(out, outlen, "%s", name);
	else
		snprintf(out, outlen, "%.*s/%s", (int)(slash - image), image, name);
	return 0;
}

static int check_disk(const struct cluster_config *cfg, int v, int i, uint64_t *size, char *err,
		      size_t errlen)
{
	const struct cluster_disk *d = &cfg->vms[v].disks[i];
	const char *want = cluster_disk_format_name(d->format), *is;
	unsigned char h[PROBE_BYTES] = {0};
	char backing[4096 + 1024];
	struct stat st;
	ssize_t n;
	int fd, e;

	if (stat(d->file, &st) < 0) {
		e = errno;
		return host_fail(cfg, d->file_pos, err, errlen, -e,
				 "vms[%d].disks[%d].file: cannot open \"%s\": %s", v, i, d->file,
				 strerror(e));
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return host_fail(cfg, d->file_pos, err, errlen, -EINVAL,
				 "vms[%d].disks[%d].file: \"%s\" is not a regular file or block device",
				 v, i, d->file);
	fd = open(d->file, (d->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		return host_fail(cfg, d->file_pos, err, errlen, -e,
				 "vms[%d].disks[%d].file: cannot open \"%s\"%s: %s%s", v, i, d->file,
				 d->readonly ? "" : " for writing", strerror(e),
				 d->readonly || (e != EACCES && e != EROFS && e != EPERM)
					 ? ""
					 : " (readonly: true gives the guest a read-only disk)");
	}
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0) {
		e = errno;
		close(fd);
		return host_fail(cfg, d->file_pos, err, errlen, -e,
				 "vms[%d].disks[%d].file: cannot read \"%s\": %s", v, i, d->file,
				 strerror(e));
	}
	is = probe_format(h, (size_t)n);
	if (strcmp(is, want)) {
		close(fd);
		if (d->format == CLUSTER_DISK_RAW && !strcmp(is, "qcow2"))
			return host_fail(cfg, d->format_pos, err, errlen, -EINVAL,
					 "vms[%d].disks[%d].format: \"raw\", but \"%s\" is a qcow2 "
					 "image (the guest would see, and could overwrite, its "
					 "metadata): write format: qcow2",
					 v, i, d->file);
		if (!strcmp(is, "raw"))
			return host_fail(cfg, d->format_pos, err, errlen, -EINVAL,
					 "vms[%d].disks[%d].format: \"qcow2\", but \"%s\" is not a "
					 "qcow2 image (it has no qcow2 header); if it holds "
					 "raw disk data, write format: raw",
					 v, i, d->file);
		return host_fail(cfg, d->format_pos, err, errlen, -EINVAL,
				 "vms[%d].disks[%d].format: \"%s\", but \"%s\" is a %s image; "
				 "convert it: qemu-img convert -O qcow2 IMAGE NEW.qcow2",
				 v, i, want, d->file, is);
	}
	if (d->format == CLUSTER_DISK_QCOW2) {
		uint32_t version = get_be32(h + 4);

		if (n < 72 || version < 2 || version > 3) {
			close(fd);
			return host_fail(cfg, d->file_pos, err, errlen, -EINVAL,
					 "vms[%d].disks[%d].file: \"%s\" has a qcow2 magic but a "
					 "truncated or unknown header (version %u)",
					 v, i, d->file, version);
		}
		if (qcow2_backing(fd, h, d->file, backing, sizeof(backing)) < 0) {
			close(fd);
			return host_fail(cfg, d->file_pos, err, errlen, -EINVAL,
					 "vms[%d].disks[%d].file: the backing file name in \"%s\" "
					 "cannot be read",
					 v, i, d->file);
		}
		if (backing[0] && access(backing, R_OK) < 0) {
			e = errno;
			close(fd);
			return host_fail(cfg, d->file_pos, err, errlen, -e,
					 "vms[%d].disks[%d].file: the backing file \"%s\" of \"%s\": %s",
					 v, i, backing, d->file, strerror(e));
		}
		*size = get_be64(h + 24);
	} else if (S_ISBLK(st.st_mode)) {
		uint64_t bytes = 0;

		*size = ioctl(fd, BLKGETSIZE64, &bytes) == 0 ? bytes : 0;
	} else {
		*size = (uint64_t)st.st_size;
	}
	close(fd);
	if (*size == 0)
		return host_fail(cfg, d->file_pos, err, errlen, -EINVAL,
				 "vms[%d].disks[%d].file: \"%s\" is empty (0 bytes)", v, i, d->file);
	return 0;
}

static int check_forward(const struct cluster_config *cfg, int v, int i, int j, char *err,
			 size_t errlen)
{
	const struct cluster_hostfwd *f = &cfg->vms[v].nics[i].hostfwd[j];
	bool udp = f->protocol == CLUSTER_FWD_UDP;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->host_port)};
	int fd, one = 1, e = 0;

	if (inet_pton(AF_INET, f->host, &sa.sin_addr) != 1)
		return host_fail(cfg, f->host_port_pos, err, errlen, -EINVAL,
				 "vms[%d].nics[%d].hostfwd[%d].host: not an IPv4 address", v, i, j);
	fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* as QEMU's user-mode network does: a port in TIME_WAIT is free */
	if (!udp)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		e = errno;
	close(fd);
	if (!e)
		return 0;
	return host_fail(cfg, f->host_port_pos, err, errlen, -e,
			 "vms[%d].nics[%d].hostfwd[%d].host_port: %s port %s:%d %s", v, i, j,
			 udp ? "udp" : "tcp", f->host, f->host_port,
			 e == EADDRINUSE	 ? "is in use on this host"
			 : e == EADDRNOTAVAIL ? "cannot be used: the address is not one of this host's"
					      : strerror(e));
}

/* A tap NIC's interface may be missing (QEMU, as root, creates it), but
 * if it exists it must be a tap. */
static int check_tap(const struct cluster_config *cfg, int v, int i, char *err, size_t errlen)
{
	const char *ifname = cfg->vms[v].nics[i].ifname;
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/class/net/%s", ifname);
	if (stat(path, &st) < 0)
		return 0;
	snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", ifname);
	if (stat(path, &st) == 0)
		return 0;
	return host_fail(cfg, cfg->vms[v].nics[i].ifname_pos, err, errlen, -EINVAL,
			 "vms[%d].nics[%d].ifname: interface \"%s\" exists on this host but is not "
			 "a tap interface",
			 v, i, ifname);
}

int cluster_vm_check_host(const struct cluster_config *cfg, int v, uint64_t *virtual_size,
			  char *err, size_t errlen)
{
	const struct cluster_vm *vm;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!cfg || v < 0 || v >= cfg->n_vms)
		return -EINVAL;
	vm = &cfg->vms[v];
	for (int i = 0; i < vm->n_disks; i++) {
		uint64_t size = 0;

		if ((r = check_disk(cfg, v, i, &size, err, errlen)) < 0)
			return r;
		if (virtual_size)
			virtual_size[i] = size;
	}
	for (int i = 0; i < vm->n_nics; i++) {
		if (vm->nics[i].type == CLUSTER_NIC_TAP && (r = check_tap(cfg, v, i, err, errlen)) < 0)
			return r;
		for (int j = 0; j < vm->nics[i].n_hostfwd; j++)
			if ((r = check_forward(cfg, v, i, j, err, errlen)) < 0)
				return r;
	}
	return 0;
}
