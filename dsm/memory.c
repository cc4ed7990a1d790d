// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A node's copy of the region's pages: mapping, adopting and watching the
 * memory, and every change of what is mapped (dsm/memory.h).
 *
 *   install   anonymous: UFFDIO_COPY from the source, read-only with
 *             COPY_MODE_WP; memfd: copy into the unwatched view (unless
 *             a one-sided read already put the bytes there), then
 *             UFFDIO_CONTINUE. Both wake the threads blocked on the page.
 *   protect   UFFDIO_WRITEPROTECT set or cleared (clearing wakes).
 *   drop      MADV_DONTNEED of the watched view: anonymous memory goes
 *             back to the host; a memfd keeps its page in the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dsm/uffd.h"
#include "memory.h"
#include "rpc/log.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* dsm.backing memfd: the kernel must map read-only with UFFDIO_CONTINUE,
 * and adopted memory must come with its memfd. */
static int check_memfd_backing(const struct dsm_region_options *o, const char *label)
{
	int rc = dsm_uffd_probe_continue_wp();
	if (rc < 0) {
		disco_log(DISCO_LOG_ERROR,
			  "dsm: %s: dsm.backing memfd needs UFFDIO_CONTINUE with "
			  "write protection (Linux 6.4 or later): %s",
			  label, strerror(-rc));
		return rc;
	}
	if (o->addr && !o->n_segments) {
		disco_log(DISCO_LOG_ERROR, "dsm: %s: dsm.backing memfd: an adopted mapping "
			  "needs its memfd (pass segments with fd)", label);
		return -EINVAL;
	}
	for (int i = 0; i < o->n_segments; i++) {
		if (o->segments[i].fd < 0 || o->segments[i].fd_offset % DSM_PAGE_SIZE) {
			disco_log(DISCO_LOG_ERROR, "dsm: %s: dsm.backing memfd: segment %d has "
				  "no memfd (fd %d, offset %" PRIu64 ")", label, i,
				  o->segments[i].fd, o->segments[i].fd_offset);
			return -EINVAL;
		}
	}
	return 0;
}

/* Fresh memory for a region that adopts none: anonymous (pages allocated
 * when first installed), or a new memfd mapped shared. */
static int map_own_memory(struct dsm_memory *m)
{
	int fd = -1;

	if (m->memfd) {
		fd = memfd_create("disco-dsm", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)m->size) < 0) {
			int rc = -errno;
			close(fd);
			return rc;
		}
		m->own_memfd = fd;
	}
	m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
		       fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, fd, 0);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		return -errno;
	}
	m->own_mapping = true;
	return 0;
}

/* The second, unwatched mapping of each segment's memfd. The file's pages
 * are allocated now: a dropped copy keeps its page in the file anyway (only
 * the watched view is unmapped), so a node ends up holding the whole
 * region; allocating up front fails at start rather than mid-run when
 * memory is short, and no install pays for allocating a shmem page. */
static int map_views(struct dsm_memory *m, const char *label)
{
	for (int i = 0; i < m->n_seg; i++) {
		if (fallocate(m->seg[i].fd, 0, (off_t)m->seg[i].fd_offset,
			      (off_t)m->seg[i].size) < 0) {
			int rc = -errno;
			disco_log(DISCO_LOG_ERROR, "dsm: %s: cannot allocate %zu bytes of "
				  "memfd backing: %s", label, m->seg[i].size, strerror(-rc));
			return rc;
		}
		void *v = mmap(NULL, m->seg[i].size, PROT_READ | PROT_WRITE, MAP_SHARED,
			       m->seg[i].fd, (off_t)m->seg[i].fd_offset);
		if (v == MAP_FAILED)
			return -errno;
		m->seg_view[i] = v;
	}
	return 0;
}

int dsm_memory_init(struct dsm_memory *m, const struct dsm_region_options *o, size_t size,
		    const char *label)
{
	int rc;

	memset(m, 0, sizeof(*m));
	m->uffd = -1;
	m->own_memfd = -1;
	m->memfd = o->settings->backing == DSM_BACKING_MEMFD;
	if (o->n_segments < 0 || o->n_segments > DSM_MAX_SEGMENTS)
		return -EINVAL;
	for (int i = 0; i < o->n_segments; i++) {
		if (!o->segments[i].addr || !o->segments[i].size ||
		    o->segments[i].size % DSM_PAGE_SIZE)
			return -EINVAL;
		m->seg[i] = o->segments[i];
		m->seg_first_page[i] = m->size / DSM_PAGE_SIZE;
		m->size += o->segments[i].size;
	}
	m->n_seg = o->n_segments;
	if (!m->n_seg)
		m->size = size;
	m->n_pages = m->size / DSM_PAGE_SIZE;
	if (m->size % DSM_PAGE_SIZE || !m->n_pages)
		return -EINVAL;

	if (m->memfd && (rc = check_memfd_backing(o, label)) < 0)
		return rc;
	if (o->n_segments)
		m->base = m->seg[0].addr;
	else if (o->addr)
		m->base = o->addr;
	else if ((rc = map_own_memory(m)) < 0)
		return rc;
	if (!m->n_seg) {
		m->n_seg = 1;
		m->seg[0] = (struct dsm_segment){ m->base, m->size, m->own_memfd, 0 };
	}
	if (m->memfd && (rc = map_views(m, label)) < 0)
		return rc;
	/* uffd resolves 4 KiB pages; a transparent huge page would hide faults. */
	for (int i = 0; i < m->n_seg; i++)
		madvise(m->seg[i].addr, m->seg[i].size, MADV_NOHUGEPAGE);
	m->present = calloc(m->n_pages, 1);
	m->writable = calloc(m->n_pages, 1);
	if (!m->present || !m->writable)
		return -ENOMEM;
	return 0;
}

/* Apply @advice to every maximal run of pages whose home-ness is @home. */
static int advise_runs(struct dsm_memory *m, bool (*is_home)(void *, uint64_t), void *ctx,
		       bool home, int advice)
{
	for (int i = 0; i < m->n_seg; i++) {
		uint64_t first = m->seg_first_page[i], end = first + m->seg[i].size / DSM_PAGE_SIZE;
		uint64_t start = first;
		for (uint64_t p = first; p <= end; p++) {
			if (p < end && is_home(ctx, p) == home)
				continue;
			if (p > start && madvise(dsm_memory_page(m, start),
						 (p - start) * DSM_PAGE_SIZE, advice) < 0)
				return -errno;
			start = p + 1;
		}
	}
	return 0;
}

/*
 * An adopted mapping may hold data already (QEMU's ROM blobs, a guest
 * image). Pages another node is home for are discarded: their content
 * comes from their home. Our own pages keep theirs, and are populated now,
 * before userfaultfd registration, so the loop thread can later read them
 * for sending without ever faulting on its own region.
 */
int dsm_memory_adopt(struct dsm_memory *m, bool (*is_home)(void *ctx, uint64_t page), void *ctx)
{
	int rc = advise_runs(m, is_home, ctx, false, MADV_DONTNEED);
	if (rc == 0)
		rc = advise_runs(m, is_home, ctx, true, MADV_POPULATE_WRITE);
	if (rc < 0)
		return rc;
	for (uint64_t p = 0; p < m->n_pages; p++)
		if (is_home(ctx, p))
			m->present[p] = m->writable[p] = 1;
	return 0;
}

int dsm_memory_watch(struct dsm_memory *m)
{
	int rc = dsm_uffd_open(m->memfd);
	if (rc < 0)
		return rc;
	m->uffd = rc;
	for (int i = 0; i < m->n_seg && rc >= 0; i++)
		rc = dsm_uffd_register(m->uffd, m->seg[i].addr, m->seg[i].size, m->memfd);
	return rc < 0 ? rc : 0;
}

void dsm_memory_fini(struct dsm_memory *m)
{
	if (m->uffd >= 0)
		close(m->uffd);
	if (m->own_mapping && m->base)
		munmap(m->base, m->size);
	for (int i = 0; i < m->n_seg; i++)
		if (m->seg_view[i])
			munmap(m->seg_view[i], m->seg[i].size);
	if (m->own_memfd >= 0)
		close(m->own_memfd);
	free(m->present);
	free(m->writable);
	free(m->ver);
	memset(m, 0, sizeof(*m));
	m->uffd = m->own_memfd = -1;
}

int dsm_memory_install(struct dsm_memory *m, uint64_t page, const void *src, bool writable)
{
	uint8_t *addr = dsm_memory_page(m, page);
	int rc;

	dsm_memory_ver_unstable(m, page);
	if (m->memfd) {
		/* nobody can touch the file's page meanwhile: it is unmapped in
		 * the watched view, and only this thread writes the other (a
		 * one-sided read has already put the bytes there) */
		uint8_t *view = dsm_memory_view(m, page);
		if (src != view)
			memcpy(view, src, DSM_PAGE_SIZE);
		rc = dsm_uffd_continue(m->uffd, addr, !writable);
	} else {
		rc = dsm_uffd_copy(m->uffd, addr, src, !writable);
	}
	if (rc < 0)
		return rc;
	m->present[page] = 1;
	m->writable[page] = writable;
	if (!writable)
		dsm_memory_ver_stable(m, page);
	return 0;
}

int dsm_memory_protect(struct dsm_memory *m, uint64_t page, bool writable)
{
	if (!m->present[page] || m->writable[page] == writable)
		return 0; /* an unpopulated page faults as MISSING and is mapped then */
	if (writable)
		dsm_memory_ver_unstable(m, page);
	int rc = dsm_uffd_protect(m->uffd, dsm_memory_page(m, page), !writable);
	if (rc < 0)
		return rc;
	m->writable[page] = writable;
	if (!writable)
		dsm_memory_ver_stable(m, page); /* the ioctl flushed every CPU's TLB */
	return writable; /* un-protecting wakes the waiters */
}

bool dsm_memory_drop(struct dsm_memory *m, uint64_t page)
{
	if (!m->present[page])
		return false;
	madvise(dsm_memory_page(m, page), DSM_PAGE_SIZE, MADV_DONTNEED);
	m->present[page] = 0;
	m->writable[page] = 0;
	dsm_memory_ver_stable(m, page);
	return true;
}

int dsm_memory_wake(struct dsm_memory *m, uint64_t page)
{
	return dsm_uffd_wake(m->uffd, dsm_memory_page(m, page));
}

uint64_t dsm_memory_present_pages(const struct dsm_memory *m)
{
	uint64_t n = 0;
	for (uint64_t p = 0; p < m->n_pages; p++)
		n += m->present[p];
	return n;
}
