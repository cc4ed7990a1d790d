// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-iolat: how long one port read takes on each CPU.
 *
 * For each online CPU in turn (one at a time, so nothing else competes),
 * a thread pinned there reads port 0x80 (the POST diagnostic port: no
 * side effect, a device on every PC) R times (default 2000, after 100
 * warm-up reads) and prints the median and mean time of one read. Under
 * disco a vCPU on a non-master node has every port access done by the
 * master, so its reads show the forwarding round trip; the master's own
 * vCPUs show a local device access. scripts/bench-boot.sh compares them
 * with the same guest in one process.
 *
 * Check: every read on every CPU returns the same value (one device
 * answers all of them).
 *
 * Output, per CPU: iolat: cpu=<c> reads=<R> p50_us=<x> mean_us=<y>
 * Options: -r reads. Needs ioperm (root in the guest): not run on the host.
 */
#include "guest.h"

#include <sys/io.h>

#define IOLAT_PORT 0x80
#define IOLAT_WARMUP 100

static long opt_reads = 2000;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct iolat {
	uint64_t *ns;		/* one per read */
	int first_value;	/* -1 until the first read */
};

static void measure(struct iolat *l, int cpu)
{
	uint64_t sum = 0;

	guest_pin(cpu);
	if (ioperm(IOLAT_PORT, 1, 1) < 0)
		guest_die("ioperm(0x%x): %s", IOLAT_PORT, strerror(errno));
	for (int i = 0; i < IOLAT_WARMUP; i++)
		(void)inb(IOLAT_PORT);
	for (long i = 0; i < opt_reads; i++) {
		uint64_t t0 = guest_now_ns();
		int v = inb(IOLAT_PORT);
		l->ns[i] = guest_now_ns() - t0;
		sum += l->ns[i];
		if (l->first_value < 0)
			l->first_value = v;
		else if (v != l->first_value)
			guest_fail("cpu %d read 0x%02x from port 0x%x, the first read gave 0x%02x", cpu, v,
				   IOLAT_PORT, l->first_value);
	}
	qsort(l->ns, (size_t)opt_reads, sizeof(uint64_t), cmp_u64);
	printf("iolat: cpu=%d reads=%ld p50_us=%.2f mean_us=%.2f\n", cpu, opt_reads,
	       (double)l->ns[opt_reads / 2] / 1e3, (double)sum / (double)opt_reads / 1e3);
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr, "usage: disco-iolat [-r reads]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct iolat l = { .first_value = -1 };
	int c;

	guest_name = "iolat";
	while ((c = getopt(argc, argv, "r:h")) != -1) {
		switch (c) {
		case 'r': opt_reads = guest_arg("-r", optarg, 1, 1L << 24); break;
		default: usage();
		}
	}
	if (argc != optind)
		usage();
	guest_cpus();
	l.ns = calloc((size_t)opt_reads, sizeof(uint64_t));
	if (!l.ns)
		guest_die("out of memory");
	for (int i = 0; i < guest_ncpu; i++)
		measure(&l, guest_cpu[i]);
	return guest_finish();
}
