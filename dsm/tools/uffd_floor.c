// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The userfaultfd floor: what a remote fault costs on this host beyond
 * the network, at best. One thread touches missing pages of a private
 * mapping; a handler thread reads each fault event from a non-blocking
 * userfaultfd in a busy loop (never sleeping, so no wake-up on the way
 * in) and resolves it with UFFDIO_COPY from a buffer, as the DSM does
 * with a page that has arrived. No network, no protocol engine, no
 * event loop: the fault, the event, the copy and the resume are all that
 * is left, so a handler-thread design cannot beat it. disco-dsm-bench
 * prints it next to the raw round trip, as the lowest overhead_ratio the
 * host allows: (rtt + floor) / rtt.
 *
 * Threads: the caller's thread faults; one handler thread, created and
 * joined here, owns the userfaultfd. It spins for the whole measurement
 * (a few milliseconds), which is the one busy thread the two-core rule
 * (docs/benchmarks.md, "Costs of the development machine") allows.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "dsm/uffd.h"
#include "tool_common.h"

#define FLOOR_PAGE 4096

struct floor_run {
	int uffd;
	uint8_t *area;
	size_t pages;
	const uint8_t *src;
	atomic_bool stop;
	atomic_int error; /* negative errno, 0 if none */
};

static void *floor_handler(void *arg)
{
	struct floor_run *run = arg;

	while (!atomic_load_explicit(&run->stop, memory_order_relaxed)) {
		struct uffd_msg msg;
		ssize_t n = read(run->uffd, &msg, sizeof(msg));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n != (ssize_t)sizeof(msg)) {
			run->error = n < 0 ? -errno : -EIO;
			break;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		void *page = (void *)(uintptr_t)(msg.arg.pagefault.address &
						 ~(uint64_t)(FLOOR_PAGE - 1));
		int rc = dsm_uffd_copy(run->uffd, page, run->src, false);
		if (rc < 0 && rc != -EEXIST) {
			run->error = rc;
			break;
		}
	}
	if (run->error) {
		/* let the faulting thread go: it then reads a zero page and stops */
		struct uffdio_range all = { (uintptr_t)run->area, run->pages * FLOOR_PAGE };
		ioctl(run->uffd, UFFDIO_UNREGISTER, &all);
	}
	return NULL;
}

int tool_uffd_floor(size_t samples, double *p50_us, double *p99_us)
{
	static uint8_t src[FLOOR_PAGE] __attribute__((aligned(FLOOR_PAGE)));
	struct floor_run run = { .pages = samples, .src = src };
	uint64_t *lat = calloc(samples, sizeof(*lat));
	pthread_t handler;
	int rc;

	if (!lat)
		return -ENOMEM;
	memset(src, 0x5a, sizeof(src));
	run.area = mmap(NULL, samples * FLOOR_PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (run.area == MAP_FAILED) {
		free(lat);
		return -errno;
	}
	run.uffd = dsm_uffd_open(false);
	rc = run.uffd < 0 ? run.uffd : dsm_uffd_register(run.uffd, run.area, samples * FLOOR_PAGE,
							       false);
	if (rc >= 0)
		rc = -pthread_create(&handler, NULL, floor_handler, &run);
	if (rc >= 0) {
		for (size_t i = 0; i < samples && !run.error; i++) {
			uint64_t t0 = tool_now_ns();
			if (*(volatile uint8_t *)(run.area + i * FLOOR_PAGE) != 0x5a && !run.error)
				run.error = -EIO; /* the copy did not land */
			lat[i] = tool_now_ns() - t0;
		}
		atomic_store(&run.stop, true);
		pthread_join(handler, NULL);
		rc = run.error;
	}
	if (rc >= 0) {
		*p50_us = tool_percentile(lat, samples, 50) / 1000;
		*p99_us = tool_percentile(lat, samples, 99) / 1000;
	}
	if (run.uffd >= 0)
		close(run.uffd);
	munmap(run.area, samples * FLOOR_PAGE);
	free(lat);
	return rc < 0 ? rc : 0;
}
