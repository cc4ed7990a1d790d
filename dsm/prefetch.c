// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fetching ahead (dsm_region_prefetch): a thread about to touch a range of
 * the region (QEMU mapping guest memory for a device's DMA) names it first,
 * and the loop thread starts, for every page of it this node cannot access
 * yet, the request a fault would start. The thread does not wait: its
 * accesses then fault on pages already on their way, and the requests'
 * round trips overlap instead of following one another. Without it a
 * device reading 1 MiB that another node's vCPU wrote waits for 256 round
 * trips in turn (the kernel faults the pages of a pwritev() buffer in one
 * by one).
 *
 * Threads: dsm_region_prefetch() runs on any thread. It reads the
 * region's per-page present/writable bytes (relaxed loads: a hint, the
 * loop thread decides) and, if some page of the range is missing, queues
 * the range under the queue's mutex and wakes the loop thread with a
 * uv_async. The loop thread takes the mutex only to swap the queue out; it
 * holds nothing else then, and the caller holds nothing of ours but it.
 * A full queue (REGION_PREFETCH_QUEUE ranges not yet drained) drops the
 * range: prefetching is a hint, the accesses fault as usual. So does the
 * part of a range beyond PREFETCH_MAX_PAGES (a device's DMA maps are at
 * most a few hundred KiB; more requests at once would only queue up in
 * the transport ahead of other faults).
 *
 * Not with a memory budget: pages fetched ahead would evict copies this
 * node is using, for data the device may touch once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "region_internal.h"

#define PREFETCH_MAX_PAGES 1024 /* 4 MiB per range */

static void on_prefetch_wake(uv_async_t *h)
{
	struct dsm_region *r = h->data;
	struct region_prefetch *pf = &r->prefetch;
	struct prefetch_range q[REGION_PREFETCH_QUEUE];
	uint32_t n;

	pthread_mutex_lock(&pf->lock);
	n = pf->count;
	for (uint32_t i = 0; i < n; i++)
		q[i] = pf->q[(pf->head + i) % REGION_PREFETCH_QUEUE];
	pf->head = pf->count = 0;
	pthread_mutex_unlock(&pf->lock);

	for (uint32_t i = 0; i < n; i++)
		for (uint64_t p = q[i].first; p < q[i].first + q[i].n_pages; p++)
			if (region_fault_ahead(r, p, q[i].is_write))
				r->stats.pages_prefetched++;
}

int region_prefetch_init(struct dsm_region *r)
{
	return -pthread_mutex_init(&r->prefetch.lock, NULL);
}

void region_prefetch_start(struct dsm_region *r, uv_loop_t *loop)
{
	struct region_prefetch *pf = &r->prefetch;

	if (r->room.clock)
		return; /* a memory budget: no prefetching (above) */
	uv_async_init(loop, &pf->wake, on_prefetch_wake);
	pf->wake.data = r;
	pthread_mutex_lock(&pf->lock);
	pf->open = true;
	pthread_mutex_unlock(&pf->lock);
}

void region_prefetch_close(struct dsm_region *r)
{
	pthread_mutex_lock(&r->prefetch.lock);
	r->prefetch.open = false; /* the session closes the handle next */
	pthread_mutex_unlock(&r->prefetch.lock);
}

void region_prefetch_fini(struct dsm_region *r)
{
	pthread_mutex_destroy(&r->prefetch.lock);
}

/* True if some page of [first, first + n) is not mapped here as wanted. */
static bool some_page_missing(const struct dsm_memory *m, uint64_t first, uint64_t n,
			      bool is_write)
{
	const uint8_t *want = is_write ? m->writable : m->present;
	for (uint64_t p = first; p < first + n; p++)
		if (!__atomic_load_n(&want[p], __ATOMIC_RELAXED))
			return true;
	return false;
}

int dsm_region_prefetch(struct dsm_region *r, uint64_t offset, uint64_t len, bool is_write)
{
	struct region_prefetch *pf = &r->prefetch;

	if (!len)
		return 0;
	if (offset >= r->mem.size || len > r->mem.size - offset)
		return -EINVAL;
	uint64_t first = offset / DSM_PAGE_SIZE;
	uint64_t n = (offset + len - 1) / DSM_PAGE_SIZE - first + 1;
	if (n > PREFETCH_MAX_PAGES)
		n = PREFETCH_MAX_PAGES;
	if (!some_page_missing(&r->mem, first, n, is_write))
		return 0;

	int rc = 0;
	pthread_mutex_lock(&pf->lock);
	if (!pf->open || pf->count == REGION_PREFETCH_QUEUE) {
		pf->dropped++;
		rc = -EAGAIN;
	} else {
		pf->q[(pf->head + pf->count) % REGION_PREFETCH_QUEUE] =
			(struct prefetch_range){ first, n, is_write };
		if (pf->count++ == 0)
			uv_async_send(&pf->wake);
	}
	pthread_mutex_unlock(&pf->lock);
	return rc;
}
