/*
 * Thin wrappers over the userfaultfd ioctls the DSM runtime uses: MISSING
 * and write-protect registration, UFFDIO_COPY (optionally mapping the page
 * read-only with COPY_MODE_WP), UFFDIO_WRITEPROTECT and UFFDIO_WAKE.
 * All return 0 or a negative errno.
 */
#ifndef DISCO_DSM_UFFD_H
#define DISCO_DSM_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Open a non-blocking userfaultfd with write-protect fault reporting. */
int dsm_uffd_open(void);
/* Register [addr, addr+len) for MISSING and WP faults. */
int dsm_uffd_register(int fd, void *addr, size_t len);
/* Copy one page from @src to the missing page @dst; read-only if @readonly.
 * Wakes the threads blocked on it. -EEXIST if the page is present. */
int dsm_uffd_copy(int fd, void *dst, const void *src, bool readonly);
/* Set or clear write protection of a present page; clearing wakes waiters. */
int dsm_uffd_protect(int fd, void *page, bool writeprotect);
int dsm_uffd_wake(int fd, void *page);

#endif
