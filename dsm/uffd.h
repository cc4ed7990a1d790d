// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Thin wrappers over the userfaultfd ioctls the DSM runtime uses: MISSING
 * and write-protect registration, UFFDIO_COPY (optionally mapping the page
 * read-only with COPY_MODE_WP), UFFDIO_WRITEPROTECT and UFFDIO_WAKE; and,
 * for memory in a memfd (shmem), MINOR registration and UFFDIO_CONTINUE,
 * which maps the page already in the file instead of copying one in.
 * All return 0 or a negative errno.
 */
#ifndef DISCO_DSM_UFFD_H
#define DISCO_DSM_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Open a non-blocking userfaultfd with write-protect fault reporting;
 * with @shmem, also MINOR faults and write protection on shmem. */
int dsm_uffd_open(bool shmem);
/* Register [addr, addr+len) for MISSING and WP faults, and MINOR ones
 * with @minor (a MAP_SHARED memfd mapping). */
int dsm_uffd_register(int fd, void *addr, size_t len, bool minor);
/* Map the file's page at @dst (it must be in the page cache), read-only if
 * @readonly, and wake the threads blocked on it. -EEXIST if mapped. */
int dsm_uffd_continue(int fd, void *dst, bool readonly);
/* 0 if this kernel maps read-only with UFFDIO_CONTINUE (Linux 6.4), else
 * -EOPNOTSUPP (or another negative errno from trying). */
int dsm_uffd_probe_continue_wp(void);
/* Copy one page from @src to the missing page @dst; read-only if @readonly.
 * Wakes the threads blocked on it. -EEXIST if the page is present. */
int dsm_uffd_copy(int fd, void *dst, const void *src, bool readonly);
/* Set or clear write protection of a present page; clearing wakes waiters. */
int dsm_uffd_protect(int fd, void *page, bool writeprotect);
int dsm_uffd_wake(int fd, void *page);

#endif
