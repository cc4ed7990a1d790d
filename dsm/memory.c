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
 *             back to the host; a memfd keeps its page in the file, unless
 *             the node has a memory budget: then the file's page is
 *             punched out (FALLOC_FL_PUNCH_HOLE) and goes back too. That
 *             would break one-sided reads, whose registration pins the
 *             file's pages, so a region with a budget does not use them
 *             (one_sided.c).
 *
 * It counts the pages present (and the most ever), which with a budget
 * must stay within it (region_room_check(), room.c).
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

/* The second, unwatched mapping of each segment's memfd. Without a budget
 * the file's pages are allocated now: a dropped copy keeps its page in the
 * file anyway (only the watched view is unmapped), so a node ends up
 * holding the whole region; allocating up front fails at start rather than
 * mid-run when memory is short, and no install pays for allocating a shmem
 * page. With a budget a node holds only what its budget allows, and a drop
 * punches the page out: nothing is allocated up front. */
static int map_views(struct dsm_memory *m, const char *label)
{
	for (int i = 0; i < m->n_seg; i++) {
		if (!m->punch && fallocate(m->seg[i].fd, 0, (off_t)m->seg[i].fd_offset,
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
	m->punch = m->memfd && dsm_settings_have_budgets(o->settings);
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

/* The file offset of @page (memfd backing). */
static off_t file_offset(const struct dsm_memory *m, uint64_t page, int *fd)
{
	int i = m->n_seg - 1;
	while (page < m->seg_first_page[i])
		i--;
	*fd = m->seg[i].fd;
	return (off_t)(m->seg[i].fd_offset + (page - m->seg_first_page[i]) * DSM_PAGE_SIZE);
}

/* Give the memory of pages [@first, @first + @n) back (their content is
 * lost): MADV_DONTNEED; with a budget on memfd, a punched hole. */
static int discard(struct dsm_memory *m, uint64_t first, uint64_t n)
{
	if (madvise(dsm_memory_page(m, first), n * DSM_PAGE_SIZE, MADV_DONTNEED) < 0)
		return -errno;
	if (m->punch) {
		int fd;
		off_t off = file_offset(m, first, &fd);
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
			      (off_t)(n * DSM_PAGE_SIZE)) < 0)
			return -errno;
	}
	return 0;
}

static bool all_zero(const uint8_t *p)
{
	static const uint8_t zero[64];
	for (size_t o = 0; o < DSM_PAGE_SIZE; o += sizeof(zero))
		if (memcmp(p + o, zero, sizeof(zero)))
			return false;
	return true;
}

/* What adopt does with page @p: keep it (a home page with content) or
 * discard it. */
struct adopt_rule {
	bool (*is_home)(void *ctx, uint64_t page);
	void *ctx;
	bool sparse;
};

static bool keep_page(struct dsm_memory *m, const struct adopt_rule *a, uint64_t p)
{
	if (!a->is_home(a->ctx, p))
		return false;
	/* reading an untouched anonymous page maps the shared zero page:
	 * nothing is allocated by looking */
	return !a->sparse || !all_zero(dsm_memory_page(m, p));
}

/* Discard every maximal run of pages not kept, populate the kept ones;
 * mark the kept ones present. */
static int adopt_runs(struct dsm_memory *m, const struct adopt_rule *a)
{
	for (int i = 0; i < m->n_seg; i++) {
		uint64_t first = m->seg_first_page[i], end = first + m->seg[i].size / DSM_PAGE_SIZE;
		uint64_t start = first;
		bool run_keep = first < end && keep_page(m, a, first);
		for (uint64_t p = first; p <= end; p++) {
			bool keep = p < end && keep_page(m, a, p);
			if (p < end && keep == run_keep)
				continue;
			if (p > start) {
				int rc = run_keep ? (madvise(dsm_memory_page(m, start),
							     (p - start) * DSM_PAGE_SIZE,
							     MADV_POPULATE_WRITE) < 0 ? -errno : 0)
						  : discard(m, start, p - start);
				if (rc < 0)
					return rc;
				if (run_keep)
					memset(m->present + start, 1, p - start);
			}
			start = p;
			run_keep = keep;
		}
	}
	return 0;
}

/*
 * An adopted mapping may hold data already (QEMU's ROM blobs, a guest
 * image). Pages another node is home for are discarded: their content
 * comes from their home. Our own pages keep theirs, and are populated now,
 * before userfaultfd registration, so the loop thread can later read them
 * for sending without ever faulting on its own region. With @sparse, our
 * pages that hold only zeros are discarded as well (not present: the
 * engine's first touch maps a zero page, and one sent from here is sent
 * from a zero page).
 */
int dsm_memory_adopt(struct dsm_memory *m, bool (*is_home)(void *ctx, uint64_t page), void *ctx,
		     bool sparse)
{
	const struct adopt_rule a = { is_home, ctx, sparse };
	int rc = adopt_runs(m, &a);
	if (rc < 0)
		return rc;
	m->n_present = 0;
	for (uint64_t p = 0; p < m->n_pages; p++) {
		__atomic_store_n(&m->writable[p], m->present[p], __ATOMIC_RELAXED);
		m->n_present += m->present[p];
	}
	m->max_present = m->n_present;
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
	if (!m->present[page] && ++m->n_present > m->max_present)
		m->max_present = m->n_present;
	__atomic_store_n(&m->present[page], 1, __ATOMIC_RELAXED);
	__atomic_store_n(&m->writable[page], writable, __ATOMIC_RELAXED);
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
	__atomic_store_n(&m->writable[page], writable, __ATOMIC_RELAXED);
	if (!writable)
		dsm_memory_ver_stable(m, page); /* the ioctl flushed every CPU's TLB */
	return writable; /* un-protecting wakes the waiters */
}

bool dsm_memory_drop(struct dsm_memory *m, uint64_t page)
{
	if (!m->present[page])
		return false;
	int rc = discard(m, page, 1);
	if (rc < 0)
		disco_log(DISCO_LOG_WARN, "dsm: page %" PRIu64 ": cannot give its memory back: %s",
			  page, strerror(-rc));
	__atomic_store_n(&m->present[page], 0, __ATOMIC_RELAXED);
	m->n_present--;
	__atomic_store_n(&m->writable[page], 0, __ATOMIC_RELAXED);
	dsm_memory_ver_stable(m, page);
	return true;
}

int dsm_memory_wake(struct dsm_memory *m, uint64_t page)
{
	return dsm_uffd_wake(m->uffd, dsm_memory_page(m, page));
}

uint64_t dsm_memory_present_pages(const struct dsm_memory *m)
{
	return m->n_present;
}
