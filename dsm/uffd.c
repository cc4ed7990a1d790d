/*
 * userfaultfd plumbing for the DSM runtime (see uffd.h). Debian 12's
 * headers know MISSING and WP; newer feature bits are not needed here.
 */
#include "dsm/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dsm/protocol.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

int dsm_uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM) /* unprivileged: user-mode faults only */
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;

	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int dsm_uffd_register(int fd, void *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	const uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_WRITEPROTECT) |
			      (1ULL << _UFFDIO_WAKE);
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
