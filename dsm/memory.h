// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A node's copy of the region's pages, and the only code that maps or
 * unmaps them (dsm/memory.c). Internal to dsm/.
 *
 * The memory is anonymous (a page arrives with UFFDIO_COPY) or, with
 * dsm.backing memfd, a memfd mapped twice: userfaultfd watches the
 * region's view, pages are filled through a second view nothing watches
 * and then mapped with UFFDIO_CONTINUE, so a page's frame never changes.
 * Either is fresh (mapped here) or adopted from the caller (QEMU's memory
 * backends, in guest order, one segment each).
 *
 * Per page it keeps what is mapped (present, writable) and, when one-sided
 * reads are on, a version word peers read: odd while the copy may change
 * (writable, or being filled), even while it cannot; every mapping change
 * here bumps it.
 *
 * Loop thread only (after set-up), like the rest of the fault path; the
 * version words are also read by peers' NICs.
 */
#ifndef DISCO_DSM_MEMORY_H
#define DISCO_DSM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsm/region.h"

struct dsm_memory {
	uint8_t *base;        /* first segment */
	size_t size;
	uint64_t n_pages;
	int n_seg;            /* >= 1 */
	struct dsm_segment seg[DSM_MAX_SEGMENTS];
	uint64_t seg_first_page[DSM_MAX_SEGMENTS];
	bool own_mapping;
	bool memfd;           /* dsm.backing memfd */
	bool punch;           /* memfd with a budget: a drop punches the file's page out */
	uint8_t *seg_view[DSM_MAX_SEGMENTS]; /* memfd: the unwatched second views */
	int own_memfd;        /* the memfd created here, or -1 */
	int uffd;
	uint8_t *present;     /* per page: a copy is mapped here */
	uint64_t n_present;   /* pages present now ... */
	uint64_t max_present; /* ... and at most so far */
	uint8_t *writable;    /* per page: mapped read-write */
	uint64_t *ver;        /* per page version words; NULL without one-sided reads */
};

/* Where page @page lives in this process (segments are in page order). */
static inline uint8_t *dsm_memory_page(const struct dsm_memory *m, uint64_t page)
{
	int i = m->n_seg - 1;
	while (page < m->seg_first_page[i])
		i--;
	return (uint8_t *)m->seg[i].addr + (page - m->seg_first_page[i]) * DSM_PAGE_SIZE;
}

/* The unwatched second view of @page (memfd backing only). */
static inline uint8_t *dsm_memory_view(const struct dsm_memory *m, uint64_t page)
{
	int i = m->n_seg - 1;
	while (page < m->seg_first_page[i])
		i--;
	return m->seg_view[i] + (page - m->seg_first_page[i]) * DSM_PAGE_SIZE;
}

/* The page at host address @addr, or UINT64_MAX outside the region. */
static inline uint64_t dsm_memory_addr_page(const struct dsm_memory *m, uintptr_t addr)
{
	for (int i = 0; i < m->n_seg; i++) {
		uintptr_t a = (uintptr_t)m->seg[i].addr;
		if (addr >= a && addr - a < m->seg[i].size)
			return m->seg_first_page[i] + (addr - a) / DSM_PAGE_SIZE;
	}
	return UINT64_MAX;
}

/* The bytes to send of a page this node holds: the memfd's second view
 * (never write-protected, never unmapped) or the page itself. */
static inline const uint8_t *dsm_memory_source(const struct dsm_memory *m, uint64_t page)
{
	return m->memfd ? dsm_memory_view(m, page) : dsm_memory_page(m, page);
}

static inline void dsm_memory_ver_unstable(struct dsm_memory *m, uint64_t page)
{
	if (m->ver && !(m->ver[page] & 1))
		__atomic_store_n(&m->ver[page], m->ver[page] + 1, __ATOMIC_RELEASE);
}

static inline void dsm_memory_ver_stable(struct dsm_memory *m, uint64_t page)
{
	if (m->ver && (m->ver[page] & 1))
		__atomic_store_n(&m->ver[page], m->ver[page] + 1, __ATOMIC_RELEASE);
}

/* Map (or adopt) the memory @o describes, of @size bytes when it maps
 * fresh memory; @label names it in messages. Nothing is registered with
 * userfaultfd yet. */
int dsm_memory_init(struct dsm_memory *m, const struct dsm_region_options *o, size_t size,
		    const char *label);
/* Adopted memory: keep (and populate) the pages @is_home says are ours,
 * discard the rest, which will fill from their homes. With @sparse (a
 * budget) a home page that holds only zeros is discarded too: it is
 * mapped (zero-filled) when first touched, so memory nobody uses is never
 * resident. */
int dsm_memory_adopt(struct dsm_memory *m, bool (*is_home)(void *ctx, uint64_t page), void *ctx,
		     bool sparse);
/* Open the userfaultfd and register every segment. */
int dsm_memory_watch(struct dsm_memory *m);
void dsm_memory_fini(struct dsm_memory *m);

/* Map @src's bytes at @page, which must not be present, read-only unless
 * @writable; wakes the threads blocked on it. 0 or a negative errno. */
int dsm_memory_install(struct dsm_memory *m, uint64_t page, const void *src, bool writable);
/* Change a present page's protection: 1 when this woke the threads
 * blocked on it (making it writable), 0 when nothing was to do or nobody
 * was woken, negative errno on failure. */
int dsm_memory_protect(struct dsm_memory *m, uint64_t page, bool writable);
/* Unmap @page and give its memory back to the host (anonymous:
 * MADV_DONTNEED; memfd with a budget: the file's page is punched out as
 * well): true when a copy was there. */
bool dsm_memory_drop(struct dsm_memory *m, uint64_t page);
int dsm_memory_wake(struct dsm_memory *m, uint64_t page);
/* Pages mapped here now. */
uint64_t dsm_memory_present_pages(const struct dsm_memory *m);

#endif
