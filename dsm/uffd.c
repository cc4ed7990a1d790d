// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * userfaultfd plumbing for the DSM runtime (see uffd.h). Debian 12's
 * headers (Linux 6.1) know MISSING, WP, MINOR and CONTINUE; the one newer
 * bit used, CONTINUE_MODE_WP (6.4), is defined here and probed for.
 */
#include "dsm/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dsm/protocol.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1) /* Linux 6.4 */
#endif

int dsm_uffd_open(bool shmem)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM) /* unprivileged: user-mode faults only */
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;

	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			    (shmem ? UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0),
	};
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int dsm_uffd_register(int fd, void *addr, size_t len, bool minor)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP |
			(minor ? UFFDIO_REGISTER_MODE_MINOR : 0),
	};
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	const uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_WRITEPROTECT) |
			      (1ULL << _UFFDIO_WAKE) | (minor ? 1ULL << _UFFDIO_CONTINUE : 0);
	if ((reg.ioctls & need) != need)
		return -EOPNOTSUPP;
	return 0;
}

int dsm_uffd_copy(int fd, void *dst, const void *src, bool readonly)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)dst,
		.src = (uintptr_t)src,
		.len = DSM_PAGE_SIZE,
		.mode = readonly ? UFFDIO_COPY_MODE_WP : 0,
	};
	if (ioctl(fd, UFFDIO_COPY, &c) < 0)
		return -errno;
	return 0;
}

int dsm_uffd_protect(int fd, void *page, bool writeprotect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)page, .len = DSM_PAGE_SIZE },
		.mode = writeprotect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) < 0)
		return -errno;
	return 0;
}

int dsm_uffd_wake(int fd, void *page)
{
	struct uffdio_range r = { .start = (uintptr_t)page, .len = DSM_PAGE_SIZE };
	if (ioctl(fd, UFFDIO_WAKE, &r) < 0)
		return -errno;
	return 0;
}

int dsm_uffd_continue(int fd, void *dst, bool readonly)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)dst, .len = DSM_PAGE_SIZE },
		.mode = readonly ? UFFDIO_CONTINUE_MODE_WP : 0,
	};
	if (ioctl(fd, UFFDIO_CONTINUE, &c) < 0)
		return -errno;
	return 0;
}

/* One page of a scratch memfd, registered MINOR + WP, filled through a
 * second mapping and mapped read-only with CONTINUE: older kernels refuse
 * the mode with EINVAL. */
int dsm_uffd_probe_continue_wp(void)
{
	int rc, uffd = -1, mfd = memfd_create("disco-uffd-probe", MFD_CLOEXEC);
	uint8_t *view = MAP_FAILED, *fill = MAP_FAILED;

	if (mfd < 0)
		return -errno;
	if (ftruncate(mfd, DSM_PAGE_SIZE) < 0) {
		rc = -errno;
		goto out;
	}
	view = mmap(NULL, DSM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	fill = mmap(NULL, DSM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (view == MAP_FAILED || fill == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	fill[0] = 1; /* in the page cache, not mapped in @view */
	rc = uffd = dsm_uffd_open(true);
	if (rc >= 0)
		rc = dsm_uffd_register(uffd, view, DSM_PAGE_SIZE, true);
	if (rc >= 0)
		rc = dsm_uffd_continue(uffd, view, true);
	if (rc == -EINVAL)
		rc = -EOPNOTSUPP;
out:
	if (uffd >= 0)
		close(uffd);
	if (view != MAP_FAILED)
		munmap(view, DSM_PAGE_SIZE);
	if (fill != MAP_FAILED)
		munmap(fill, DSM_PAGE_SIZE);
	close(mfd);
	return rc < 0 ? rc : 0;
}
