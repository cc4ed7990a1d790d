/*
 * disco-pattern SEED MIB [FILE]: writes MIB MiB of a deterministic
 * pseudo-random stream (xorshift64*, seeded from SEED) to FILE (default:
 * standard output).
 *
 * The Debian guest's disk tests write these files in the guest and check
 * their SHA-256 there against what the host gets from the same program
 * (built for the host by tests/guest/guest.cmake): the bytes are known
 * without copying them into the guest, and data that the guest's RAM, the
 * DSM or the disk changed on the way would not hash the same. Every
 * 4 KiB page of the stream differs from every other one, so a page
 * written in the wrong place does not hash the same either.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static uint64_t buf[CHUNK / sizeof(uint64_t)];
	char *end;
	unsigned long long seed, mib;
	uint64_t x;
	int fd = STDOUT_FILENO;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: disco-pattern SEED MIB [FILE]\n");
		return 2;
	}
	errno = 0;
	seed = strtoull(argv[1], &end, 10);
	if (errno || *end || end == argv[1]) {
		fprintf(stderr, "disco-pattern: SEED must be a number, got \"%s\"\n", argv[1]);
		return 2;
	}
	mib = strtoull(argv[2], &end, 10);
	if (errno || *end || end == argv[2] || mib > (1ull << 20)) {
		fprintf(stderr, "disco-pattern: MIB must be a number up to 1048576, got \"%s\"\n",
			argv[2]);
		return 2;
	}
	if (argc == 4) {
		fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "disco-pattern: cannot open %s: %s\n", argv[3],
				strerror(errno));
			return 1;
		}
	}
	/* never zero: xorshift stays at 0 forever */
	x = (seed + 1) * 0x9e3779b97f4a7c15ull;
	for (unsigned long long m = 0; m < mib; m++) {
		for (size_t i = 0; i < sizeof(buf) / sizeof(buf[0]); i++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			buf[i] = x * 0x2545f4914f6cdd1dull;
		}
		if (write_all(fd, buf, sizeof(buf)) < 0) {
			fprintf(stderr, "disco-pattern: write failed after %llu MiB: %s\n", m,
				strerror(errno));
			return 1;
		}
	}
	if (fd != STDOUT_FILENO && close(fd) < 0) {
		fprintf(stderr, "disco-pattern: closing %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	return 0;
}
