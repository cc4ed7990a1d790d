// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-xzdata: writes N MiB of deterministic, compressible text to FILE
 * (the input of disco-xz). Lines of words drawn by splitmix64 from a small
 * vocabulary, with a line number: xz -1 packs it about 4:1, and it is the
 * same bytes on every run and machine.
 *
 *   disco-xzdata N FILE
 *
 * Output: xzdata: wrote <bytes> bytes to FILE, then xzdata: PASS (exit 0),
 * or xzdata: FAIL <reason>. -DBREAK changes nothing here (the check is done
 * by disco-xz, which compares the round trip with this file).
 */
#include "guest.h"

#include <fcntl.h>

static const char *const vocab[] = {
	"node", "page", "home", "fault", "vcpu", "guest", "memory", "replica",
	"migrate", "freeze", "policy", "cluster", "region", "directory", "copyset",
	"invalidate", "grant", "fetch", "write", "read", "shared", "local",
	"remote", "latency", "interval", "trigger", "kernel", "thread", "numa",
	"disco", "coherent", "sequential",
};
#define NVOCAB (sizeof vocab / sizeof vocab[0])

int main(int argc, char **argv)
{
	guest_name = "xzdata";
	if (argc != 3)
		guest_usage("disco-xzdata MiB FILE");
	long mib = guest_arg("MiB", argv[1], 1, 4096);
	size_t want = (size_t)mib * 1024 * 1024;
	int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		guest_die("open %s: %s", argv[2], strerror(errno));
	static char buf[1 << 16];
	size_t used = 0, total = 0;
	uint64_t line = 0, r = 0;
	while (total < want) {
		char l[256];
		int len = snprintf(l, sizeof l, "%08llu", (unsigned long long)line);
		r = guest_mix(line++);
		int nw = 4 + (int)(r % 8);
		for (int w = 0; w < nw; w++) {
			r = guest_mix(r);
			len += snprintf(l + len, sizeof l - (size_t)len, " %s", vocab[r % NVOCAB]);
		}
		l[len++] = '\n';
		size_t n = (size_t)len;
		if (n > want - total)
			n = want - total;
		if (used + n > sizeof buf) {
			if (write(fd, buf, used) != (ssize_t)used)
				guest_die("write %s: %s", argv[2], strerror(errno));
			used = 0;
		}
		memcpy(buf + used, l, n);
		used += n;
		total += n;
	}
	if (used && write(fd, buf, used) != (ssize_t)used)
		guest_die("write %s: %s", argv[2], strerror(errno));
	if (close(fd) != 0)
		guest_die("close %s: %s", argv[2], strerror(errno));
	printf("xzdata: wrote %zu bytes to %s\n", total, argv[2]);
	return guest_finish();
}
