/*
 * disco-delay-line: a user-space stand-in for netem's delay, jitter,
 * reordering and duplication, for kernels without sch_netem (this
 * project's development machine has none and cannot load modules).
 *
 * It is one "cable" per pipe: frames that arrive on interface IN are sent
 * out of interface OUT, each after its own delay. scripts/lib/netns.sh puts
 * it between a node's network namespace and the bridge (docs/architecture.md,
 * "Failures": the test network):
 *
 *   node ns: eth0 ==veth== dN  [disco-delay-line]  eN ==veth== pN -> bridge
 *
 * with one pipe dN -> eN (what the node sends: delayed) and one eN -> dN
 * (what it receives: passed on at once, or delayed by its own spec).
 *
 *   disco-delay-line --pipe IN,OUT,SPEC [--pipe ...]
 *   SPEC: comma-free list of key=value joined by '/':
 *         delay=200us/jitter=50us/reorder=5%/duplicate=1%/limit=10000
 *
 * Semantics, after netem's:
 *   delay D, jitter J  each frame is held D + u, u uniform in [-J, +J]
 *                      (never below 0), but never leaves before a frame
 *                      that came earlier: frames keep their order, as in
 *                      a link's queue. (netem's jitter reorders; with
 *                      TCP that turns 50 us of jitter into thousands of
 *                      spurious retransmissions, which no cable does.
 *                      Reordering is "reorder" here.)
 *   reorder P%         a frame is sent at once with probability P (it
 *                      overtakes the frames held)
 *   duplicate P%       a frame is sent twice with probability P, each copy
 *                      with its own delay
 *   limit N            at most N frames held per pipe; more are dropped and
 *                      counted (netem's default limit is 1000)
 * Loss, partitions and rate are not done here: nftables and tbf do them
 * (scripts/lib/netns.sh).
 *
 * Frames are read and written with AF_PACKET sockets with PACKET_VNET_HDR,
 * so a frame's checksum-offload state (CHECKSUM_PARTIAL on veth) travels
 * with it, and PACKET_IGNORE_OUTGOING, so a socket does not see what the
 * other pipe writes on its interface.
 *
 * Timing: one thread, epoll over the sockets and one timerfd armed at the
 * earliest release time (absolute CLOCK_MONOTONIC, timer slack 1 ns). It
 * never spins. It asks for SCHED_FIFO priority 1 (it runs a few
 * microseconds per frame; at normal priority, busy vCPU threads on a
 * 2-core host delay its wake-ups by milliseconds), falling back to nice
 * -10, and says which it got. SIGUSR1 prints each pipe's counters on
 * stderr; SIGTERM/SIGINT print them and exit 0.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 2 for bad arguments, 1 when an
 * interface or socket cannot be set up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define MAX_PIPES 64
#define MAX_FRAME (sizeof(struct virtio_net_hdr) + 65536 + 64)
#define DEFAULT_LIMIT 10000

struct held {
	uint64_t release_ns;
	uint64_t seq; /* ties keep arrival order */
	uint32_t len;
	uint8_t *data; /* vnet header + frame */
};

struct pipe_spec {
	uint64_t delay_ns, jitter_ns;
	uint32_t reorder_ppm, duplicate_ppm; /* parts per million */
	uint32_t limit;
};

struct pipe {
	char in_name[IF_NAMESIZE], out_name[IF_NAMESIZE];
	int in_fd, out_fd; /* out_fd: the socket of OUT (shared when another pipe reads it) */
	struct pipe_spec spec;
	struct held *heap; /* min-heap by (release_ns, seq) */
	uint32_t n_held;
	uint64_t last_release_ns; /* of the last frame held: jitter keeps order */
	uint64_t rx, tx, dup, reordered, over_limit, send_errors;
};

static struct pipe pipes[MAX_PIPES];
static int n_pipes;
static uint64_t seq_counter;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static bool chance(uint32_t ppm)
{
	return ppm && rng() % 1000000 < ppm;
}

/* ---- arguments ---------------------------------------------------------- */

/* "200us", "1ms", "0", "1.5ms", "300ns", "2s" -> ns. */
static int parse_duration(const char *s, uint64_t *ns)
{
	char *end;
	double v = strtod(s, &end);
	double scale;

	if (end == s || v < 0)
		return -EINVAL;
	if (!strcmp(end, "ns"))
		scale = 1;
	else if (!strcmp(end, "us"))
		scale = 1e3;
	else if (!strcmp(end, "ms"))
		scale = 1e6;
	else if (!strcmp(end, "s"))
		scale = 1e9;
	else if (!*end && v == 0)
		scale = 0;
	else
		return -EINVAL;
	if (v * scale > 60e9)
		return -ERANGE;
	*ns = (uint64_t)(v * scale + 0.5);
	return 0;
}

/* "5%", "0.5%" -> parts per million. */
static int parse_percent(const char *s, uint32_t *ppm)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || strcmp(end, "%") || v < 0 || v > 100)
		return -EINVAL;
	*ppm = (uint32_t)(v * 10000 + 0.5);
	return 0;
}

static int parse_spec(char *spec, struct pipe_spec *p, const char *arg)
{
	p->limit = DEFAULT_LIMIT;
	for (char *save = NULL, *kv = strtok_r(spec, "/", &save); kv; kv = strtok_r(NULL, "/", &save)) {
		char *eq = strchr(kv, '=');
		int rc;
		if (!eq) {
			fprintf(stderr, "disco-delay-line: --pipe %s: \"%s\" is not key=value\n", arg, kv);
			return -EINVAL;
		}
		*eq = '\0';
		const char *k = kv, *v = eq + 1;
		if (!strcmp(k, "delay"))
			rc = parse_duration(v, &p->delay_ns);
		else if (!strcmp(k, "jitter"))
			rc = parse_duration(v, &p->jitter_ns);
		else if (!strcmp(k, "reorder"))
			rc = parse_percent(v, &p->reorder_ppm);
		else if (!strcmp(k, "duplicate"))
			rc = parse_percent(v, &p->duplicate_ppm);
		else if (!strcmp(k, "limit")) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);
			rc = (*end || end == v || n < 1 || n > 1000000) ? -EINVAL : 0;
			p->limit = (uint32_t)n;
		} else {
			fprintf(stderr,
				"disco-delay-line: --pipe %s: unknown key \"%s\" (delay, jitter, reorder, "
				"duplicate, limit)\n",
				arg, k);
			return -EINVAL;
		}
		if (rc < 0) {
			fprintf(stderr, "disco-delay-line: --pipe %s: bad value \"%s\" for %s\n", arg, v, k);
			return -EINVAL;
		}
	}
	if (p->jitter_ns > p->delay_ns && p->delay_ns) {
		fprintf(stderr, "disco-delay-line: --pipe %s: jitter larger than delay\n", arg);
		return -EINVAL;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: disco-delay-line --pipe IN,OUT[,SPEC] [--pipe ...] [--seed N]\n"
		"Forwards every frame arriving on interface IN out of interface OUT after a\n"
		"delay (netem's delay/jitter/reorder/duplicate in user space).\n"
		"  SPEC  key=value joined by '/': delay=200us/jitter=50us/reorder=5%%/duplicate=1%%/limit=N\n"
		"        durations in ns, us, ms or s; no SPEC: no delay\n"
		"SIGUSR1 prints counters; SIGTERM or SIGINT prints them and exits 0.\n");
}

static int parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			char *end;
			rng_state = strtoull(argv[++i], &end, 10) * 0x9e3779b97f4a7c15ULL + 1;
			if (*end) {
				fprintf(stderr, "disco-delay-line: --seed: expected a number\n");
				return -EINVAL;
			}
			continue;
		}
		if (strcmp(argv[i], "--pipe") || i + 1 >= argc) {
			fprintf(stderr, "disco-delay-line: unexpected argument \"%s\" (see --help)\n", argv[i]);
			return -EINVAL;
		}
		if (n_pipes == MAX_PIPES) {
			fprintf(stderr, "disco-delay-line: more than %d pipes\n", MAX_PIPES);
			return -EINVAL;
		}
		const char *arg = argv[++i];
		char buf[512];
		snprintf(buf, sizeof(buf), "%s", arg);
		char *in = buf, *out = strchr(buf, ','), *spec = NULL;
		if (!out) {
			fprintf(stderr, "disco-delay-line: --pipe %s: expected IN,OUT[,SPEC]\n", arg);
			return -EINVAL;
		}
		*out++ = '\0';
		if ((spec = strchr(out, ',')))
			*spec++ = '\0';
		struct pipe *p = &pipes[n_pipes];
		if (!*in || !*out || strlen(in) >= IF_NAMESIZE || strlen(out) >= IF_NAMESIZE ||
		    !strcmp(in, out)) {
			fprintf(stderr, "disco-delay-line: --pipe %s: bad interface names\n", arg);
			return -EINVAL;
		}
		strcpy(p->in_name, in);
		strcpy(p->out_name, out);
		char empty[1] = "";
		if (parse_spec(spec ? spec : empty, &p->spec, arg) < 0)
			return -EINVAL;
		n_pipes++;
	}
	if (!n_pipes) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* ---- sockets -------------------------------------------------------------- */

struct iface {
	char name[IF_NAMESIZE];
	int fd;
};
static struct iface ifaces[2 * MAX_PIPES];
static int n_ifaces;

static int open_iface(const char *name)
{
	for (int i = 0; i < n_ifaces; i++)
		if (!strcmp(ifaces[i].name, name))
			return ifaces[i].fd;
	unsigned idx = if_nametoindex(name);
	if (!idx) {
		fprintf(stderr, "disco-delay-line: interface %s: %s\n", name, strerror(errno));
		return -1;
	}
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0) {
		fprintf(stderr, "disco-delay-line: AF_PACKET socket: %s\n", strerror(errno));
		return -1;
	}
	int one = 1, big = 4 << 20;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)idx };
	if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "disco-delay-line: interface %s: %s\n", name, strerror(errno));
		close(fd);
		return -1;
	}
	/* best effort: room for bursts while the thread is not scheduled */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	snprintf(ifaces[n_ifaces].name, IF_NAMESIZE, "%s", name);
	ifaces[n_ifaces++].fd = fd;
	return fd;
}

/* ---- the held frames ------------------------------------------------------ */

static bool earlier(const struct held *a, const struct held *b)
{
	return a->release_ns < b->release_ns || (a->release_ns == b->release_ns && a->seq < b->seq);
}

static void heap_push(struct pipe *p, struct held h)
{
	uint32_t i = p->n_held++;
	p->heap[i] = h;
	while (i) {
		uint32_t up = (i - 1) / 2;
		if (!earlier(&p->heap[i], &p->heap[up]))
			break;
		struct held t = p->heap[i];
		p->heap[i] = p->heap[up];
		p->heap[up] = t;
		i = up;
	}
}

static struct held heap_pop(struct pipe *p)
{
	struct held top = p->heap[0];
	p->heap[0] = p->heap[--p->n_held];
	for (uint32_t i = 0;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < p->n_held && earlier(&p->heap[l], &p->heap[m]))
			m = l;
		if (r < p->n_held && earlier(&p->heap[r], &p->heap[m]))
			m = r;
		if (m == i)
			break;
		struct held t = p->heap[i];
		p->heap[i] = p->heap[m];
		p->heap[m] = t;
		i = m;
	}
	return top;
}

static void send_frame(struct pipe *p, const uint8_t *data, uint32_t len)
{
	if (send(p->out_fd, data, len, MSG_DONTWAIT) < 0)
		p->send_errors++; /* a full queue or a link going down: a lost frame */
	else
		p->tx++;
}

static uint64_t frame_delay(const struct pipe_spec *s)
{
	if (!s->jitter_ns)
		return s->delay_ns;
	uint64_t span = 2 * s->jitter_ns + 1;
	int64_t d = (int64_t)s->delay_ns - (int64_t)s->jitter_ns + (int64_t)(rng() % span);
	return d < 0 ? 0 : (uint64_t)d;
}

static void hold(struct pipe *p, const uint8_t *data, uint32_t len, uint64_t now)
{
	if (p->n_held >= p->spec.limit) {
		p->over_limit++;
		return;
	}
	uint8_t *copy = malloc(len);
	if (!copy) {
		p->over_limit++;
		return;
	}
	memcpy(copy, data, len);
	uint64_t release = now + frame_delay(&p->spec);
	if (release < p->last_release_ns)
		release = p->last_release_ns;
	p->last_release_ns = release;
	heap_push(p, (struct held){ release, seq_counter++, len, copy });
}

static void on_frame(struct pipe *p, const uint8_t *data, uint32_t len, uint64_t now)
{
	p->rx++;
	int copies = chance(p->spec.duplicate_ppm) ? 2 : 1;
	if (copies == 2)
		p->dup++;
	for (int c = 0; c < copies; c++) {
		if (!p->spec.delay_ns) {
			send_frame(p, data, len);
		} else if (chance(p->spec.reorder_ppm)) {
			p->reordered++;
			send_frame(p, data, len);
		} else {
			hold(p, data, len, now);
		}
	}
}

/* Sends what is due; returns the next release time (0: none held). */
static uint64_t release_due(uint64_t now)
{
	uint64_t next = 0;
	for (int i = 0; i < n_pipes; i++) {
		struct pipe *p = &pipes[i];
		while (p->n_held && p->heap[0].release_ns <= now) {
			struct held h = heap_pop(p);
			send_frame(p, h.data, h.len);
			free(h.data);
		}
		if (p->n_held && (!next || p->heap[0].release_ns < next))
			next = p->heap[0].release_ns;
	}
	return next;
}

static void print_counters(void)
{
	for (int i = 0; i < n_pipes; i++) {
		struct pipe *p = &pipes[i];
		fprintf(stderr,
			"disco-delay-line: %s->%s rx=%" PRIu64 " tx=%" PRIu64 " duplicated=%" PRIu64
			" reordered=%" PRIu64 " over_limit=%" PRIu64 " send_errors=%" PRIu64
			" held=%" PRIu32 "\n",
			p->in_name, p->out_name, p->rx, p->tx, p->dup, p->reordered, p->over_limit,
			p->send_errors, p->n_held);
	}
}

static void set_priority(void)
{
	struct sched_param sp = { .sched_priority = 1 };
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	if (sched_setscheduler(0, SCHED_FIFO, &sp) == 0) {
		fprintf(stderr, "disco-delay-line: running SCHED_FIFO 1\n");
		return;
	}
	if (setpriority(PRIO_PROCESS, 0, -10) == 0)
		fprintf(stderr, "disco-delay-line: running at nice -10 (no SCHED_FIFO: %s)\n",
			strerror(errno));
	else
		fprintf(stderr, "disco-delay-line: running at normal priority: delays will be late under load\n");
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv) < 0)
		return 2;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ep < 0 || tfd < 0 || sfd < 0) {
		fprintf(stderr, "disco-delay-line: epoll/timerfd/signalfd: %s\n", strerror(errno));
		return 1;
	}
	for (int i = 0; i < n_pipes; i++) {
		struct pipe *p = &pipes[i];
		if ((p->in_fd = open_iface(p->in_name)) < 0 || (p->out_fd = open_iface(p->out_name)) < 0)
			return 1;
		p->heap = calloc(p->spec.limit, sizeof(*p->heap));
		if (!p->heap)
			return 1;
	}
	/* One epoll entry per socket; each names the pipes reading it. */
	for (int i = 0; i < n_ifaces; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, ifaces[i].fd, &ev) < 0)
			return 1;
	}
	struct epoll_event tev = { .events = EPOLLIN, .data.u64 = 1000 };
	struct epoll_event sev = { .events = EPOLLIN, .data.u64 = 1001 };
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev);
	set_priority();
	fprintf(stderr, "disco-delay-line: %d pipes ready\n", n_pipes);

	static uint8_t buf[MAX_FRAME];
	uint64_t armed = 0;
	for (;;) {
		struct epoll_event evs[16];
		int n = epoll_wait(ep, evs, 16, -1);
		if (n < 0 && errno != EINTR)
			return 1;
		uint64_t now = now_ns();
		for (int e = 0; e < n; e++) {
			uint64_t tag = evs[e].data.u64;
			if (tag == 1000) {
				uint64_t exp;
				if (read(tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
					return 1;
				armed = 0;
				continue;
			}
			if (tag == 1001) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					print_counters();
					if (si.ssi_signo != SIGUSR1)
						return 0;
				}
				continue;
			}
			int fd = ifaces[tag].fd;
			for (int burst = 0; burst < 64; burst++) {
				struct sockaddr_ll from;
				socklen_t fl = sizeof(from);
				ssize_t len = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
				if (len < 0)
					break;
				if (from.sll_pkttype == PACKET_OUTGOING)
					continue;
				for (int i = 0; i < n_pipes; i++)
					if (pipes[i].in_fd == fd)
						on_frame(&pipes[i], buf, (uint32_t)len, now);
			}
		}
		uint64_t next = release_due(now_ns());
		if (next && next != armed) {
			struct itimerspec its = { .it_value = { (time_t)(next / 1000000000ULL),
								(long)(next % 1000000000ULL) } };
			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
			armed = next;
		}
	}
}
