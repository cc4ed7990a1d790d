// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Integration tests of the DSM runtime (dsm/region.c, fault_path.c) on its
 * session (rpc/session.c): real userfaultfd, real TCP on 127.0.0.1, two
 * nodes. The coherence test runs both nodes inside this process (each
 * with its own session, loop thread, transport and region mapping); the
 * lost-peer test runs the second node in a child process and kills it
 * with SIGKILL. The budget tests give the nodes memory budgets
 * (vms[].node_memory) far smaller than what the threads touch.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsm.pb-c.h"
#include "dsm/protocol.h"
#include "dsm/region.h"
#include "rpc/session.h"
#include "rpc/transport.h"

#define PAGE DSM_PAGE_SIZE

static char keydir[] = "/tmp/disco-test-region-XXXXXX";

static struct cluster_config *make_config(int port_base, const char *extra)
{
	char yaml[2048], err[512];
	struct cluster_config *cfg = NULL;

	snprintf(yaml, sizeof(yaml),
		 "cluster:\n  name: test\n  auth: { key_file: %s/key }\n"
		 "  heartbeat_ms: 100\n  peer_timeout_ms: 1000\n  connect_timeout_ms: 10000\n"
		 "nodes:\n"
		 "  - { name: n0, address: 127.0.0.1, port: %d }\n"
		 "  - { name: n1, address: 127.0.0.1, port: %d }\n"
		 "vms:\n  - name: v\n    memory: 4M\n    vcpus: 2\n"
		 "    vcpu_placement: { n0: 1, n1: 1 }\n"
		 "    dsm: { placement: interleave, fault_timeout_ms: 2000 %s}\n",
		 keydir, port_base, port_base + 1, extra);
	if (cluster_config_load_string(yaml, "test.yaml", &cfg, err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	return cfg;
}

static int port_base(void)
{
	return 20000 + (getpid() % 4000) * 8;
}

/* Each region of a test runs on a session of its own: this table keeps
 * the pair, so the tests below speak of regions only. */
static struct node {
	struct dsm_region *r;
	struct rpc_session *s;
} nodes[8];

static struct rpc_session *session_of(struct dsm_region *r)
{
	for (int i = 0; i < 8; i++)
		if (nodes[i].r == r)
			return nodes[i].s;
	fail_msg("no session for region %p", (void *)r);
	return NULL;
}

/* Create node @node's session and its region with @o (whose session,
 * settings and placement are filled in here). */
static int create_with(struct cluster_config *cfg, int node, struct dsm_region_options o,
		       const struct rpc_session_client *extra, struct dsm_region **out)
{
	struct dsm_placement placement;
	struct rpc_session *s = NULL;
	int rc;

	assert_int_equal(cluster_vm_dsm_placement(cfg, &cfg->vms[0], &placement), 0);
	assert_int_equal(rpc_session_create(cfg, node, &s), 0);
	if (extra)
		assert_int_equal(rpc_session_add_client(s, extra), 0);
	o.session = s;
	o.name = cfg->vms[0].name;
	o.settings = &cfg->vms[0].dsm;
	o.placement = &placement;
	if ((rc = dsm_region_create(&o, out)) < 0) {
		rpc_session_destroy(s);
		return rc;
	}
	for (int i = 0; i < 8; i++) {
		if (!nodes[i].r) {
			nodes[i] = (struct node){ *out, s };
			return 0;
		}
	}
	fail_msg("too many regions");
	return -ENOSPC;
}

static int node_start(struct dsm_region *r, char *err, size_t errlen)
{
	return rpc_session_start(session_of(r), err, errlen);
}

static void node_stop(struct dsm_region *r)
{
	rpc_session_stop(session_of(r));
}

static void node_destroy(struct dsm_region *r)
{
	for (int i = 0; i < 8; i++) {
		if (nodes[i].r == r) {
			rpc_session_stop(nodes[i].s);
			dsm_region_destroy(r);
			rpc_session_destroy(nodes[i].s);
			nodes[i] = (struct node){ NULL, NULL };
			return;
		}
	}
}

struct starter {
	struct dsm_region *r;
	int rc;
	char err[256];
};

static void *start_thread(void *arg)
{
	struct starter *s = arg;
	s->rc = node_start(s->r, s->err, sizeof(s->err));
	return NULL;
}

static struct dsm_region *create(struct cluster_config *cfg, int node,
				 void (*on_fatal)(void *, const char *), void *opaque)
{
	struct dsm_region_options o = { .on_fatal = on_fatal, .opaque = opaque };
	struct dsm_region *r = NULL;
	assert_int_equal(create_with(cfg, node, o, NULL, &r), 0);
	return r;
}

/* Start @a and @b (both must come up together: start waits for peers). */
static void start_pair(struct dsm_region *a, struct dsm_region *b)
{
	struct starter sb = { .r = b };
	pthread_t t;
	char err[256];

	pthread_create(&t, NULL, start_thread, &sb);
	assert_int_equal(node_start(a, err, sizeof(err)), 0);
	pthread_join(t, NULL);
	assert_int_equal(sb.rc, 0);
}

static void stop_pair(struct dsm_region *a, struct dsm_region *b, struct cluster_config *cfg)
{
	node_stop(a);
	node_stop(b);
	node_destroy(a);
	node_destroy(b);
	cluster_config_free(cfg);
}

struct adder {
	volatile uint64_t *counter;
	int n;
};

static void *add_thread(void *arg)
{
	struct adder *a = arg;
	for (int i = 0; i < a->n; i++)
		__atomic_fetch_add(a->counter, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Coherence, atomics, stats and a home move between two regions of the
 * config built with @extra dsm settings. */
static void two_nodes_coherent(int port, const char *extra)
{
	struct cluster_config *cfg = make_config(port, extra);
	struct dsm_region *a = create(cfg, 0, NULL, NULL), *b = create(cfg, 1, NULL, NULL);

	start_pair(a, b);

	uint8_t *ba = dsm_region_base(a), *bb = dsm_region_base(b);
	assert_ptr_not_equal(ba, bb);
	/* Node 0 writes pages homed on both nodes; node 1 sees every value. */
	for (int p = 0; p < 64; p++)
		*(volatile uint64_t *)(ba + p * PAGE + 8) = (uint64_t)p + 1;
	for (int p = 0; p < 64; p++)
		assert_int_equal(*(volatile uint64_t *)(bb + p * PAGE + 8), (uint64_t)p + 1);
	/* And back the other way, over the copies node 0 now shares. */
	for (int p = 0; p < 64; p++)
		*(volatile uint64_t *)(bb + p * PAGE + 8) = (uint64_t)p + 100;
	for (int p = 0; p < 64; p++)
		assert_int_equal(*(volatile uint64_t *)(ba + p * PAGE + 8), (uint64_t)p + 100);

	/* Atomic increments from both nodes at once stay exact. */
	struct adder xa = { (volatile uint64_t *)(ba + 5 * PAGE), 3000 };
	struct adder xb = { (volatile uint64_t *)(bb + 5 * PAGE), 3000 };
	pthread_t ta, tb;
	pthread_create(&ta, NULL, add_thread, &xa);
	pthread_create(&tb, NULL, add_thread, &xb);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(*xa.counter, 6000);
	assert_int_equal(*xb.counter, 6000);

	/* Page 2 is homed on node 0; move it to node 1, keep using it. */
	struct dsm_page_counters pc;
	uint32_t rd[2], wr[2];
	assert_int_equal(dsm_region_page_stats(a, 2, &pc, rd, wr), 0);
	assert_true(pc.read_misses + pc.write_misses > 0);
	/* node 1 read page 2 once (as it first read every page); node 0 wrote
	 * its own page without asking anyone at first (HOME_EXCL). */
	assert_int_equal(rd[1], 1);
	assert_int_equal(pc.read_misses, rd[0] + rd[1]);
	assert_int_equal(pc.write_misses, wr[0] + wr[1]);
	assert_int_equal(dsm_region_page_stats(b, 2, &pc, NULL, NULL), -ENOENT);
	assert_int_equal(dsm_region_migrate_home(a, 2, 1), 0);
	*(volatile uint64_t *)(bb + 2 * PAGE) = 777;
	assert_int_equal(*(volatile uint64_t *)(ba + 2 * PAGE), 777);
	assert_int_equal(dsm_region_page_stats(b, 2, &pc, rd, wr), 0);
	assert_int_equal(rd[0] + wr[0] + rd[1] + wr[1], pc.read_misses + pc.write_misses);
	assert_int_equal(dsm_region_page_stats(a, 2, &pc, NULL, NULL), -ENOENT);
	assert_int_equal(dsm_region_migrate_home(a, 2, 1), -EINVAL); /* not home any more */

	struct dsm_stats sa, sb2;
	assert_int_equal(dsm_region_stats(a, &sa), 0);
	assert_int_equal(dsm_region_stats(b, &sb2), 0);
	assert_true(sa.faults_served > 0 && sb2.faults_served > 0);
	assert_true(sa.pages_received > 0 && sb2.pages_sent > 0);
	assert_int_equal(sa.engine.protocol_errors + sb2.engine.protocol_errors, 0);
	assert_int_equal(sa.engine.migrations_out, 1);
	assert_int_equal(sb2.engine.migrations_in, 1);
	uint64_t rtt;
	assert_int_equal(rpc_session_rtt_probe(session_of(a), 1, &rtt), 0);
	assert_true(rtt > 0);

	stop_pair(a, b, cfg);
}

static void test_two_nodes_coherent(void **state)
{
	(void)state;
	two_nodes_coherent(port_base(), "");
}

/* The same over memfd backing: pages filled through the second view and
 * mapped with UFFDIO_CONTINUE, dropped by unmapping the watched view. */
static void test_two_nodes_coherent_memfd(void **state)
{
	(void)state;
	two_nodes_coherent(port_base() + 4, ", backing: memfd");
}

/* Adopted memfd segments (QEMU's memory-backend-memfd): home pages keep
 * what was in the file, the others come from their home, and whatever
 * the DSM maps is the file's own page: a third mapping of the file, as an
 * RDMA memory region would see it, shows every install and every write. */
static void test_memfd_segments_are_the_file(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_config(port_base() + 5, ", backing: memfd");
	size_t size = cfg->vms[0].memory_bytes;
	int fd = memfd_create("test-region", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint8_t *third = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(mem != MAP_FAILED && third != MAP_FAILED);
	memset(mem, 0xab, size);

	struct dsm_segment seg = { mem, size, fd, 0 };
	struct dsm_region_options o = {
		.segments = &seg, .n_segments = 1,
	};
	struct dsm_region *a = NULL, *b = create(cfg, 1, NULL, NULL);
	assert_int_equal(create_with(cfg, 0, o, NULL, &a), 0);
	start_pair(a, b);

	uint8_t *bb = dsm_region_base(b);
	assert_int_equal(bb[0 * PAGE + 100], 0xab); /* node 0's page, from the file */
	assert_int_equal(mem[1 * PAGE + 100], 0);   /* node 1's page, fresh from node 1 */
	assert_int_equal(third[1 * PAGE + 100], 0); /* the file holds what is mapped */
	bb[1 * PAGE + 8] = 0x55;                    /* node 1 takes it back, writes */
	assert_int_equal(mem[1 * PAGE + 8], 0x55);  /* node 0 reads the new value... */
	assert_int_equal(third[1 * PAGE + 8], 0x55); /* ...into the same file page */
	mem[2 * PAGE + 9] = 0x66;                   /* node 0 writes its own page */
	assert_int_equal(third[2 * PAGE + 9], 0x66);
	assert_int_equal(bb[2 * PAGE + 9], 0x66);

	stop_pair(a, b, cfg);
	munmap(mem, size);
	munmap(third, size);
	close(fd);
}

/* memfd backing cannot adopt memory without its file. */
static void test_memfd_backing_refuses_anonymous_memory(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_config(port_base() + 6, ", backing: memfd");
	size_t size = cfg->vms[0].memory_bytes;
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	struct dsm_segment seg = { mem, size, -1, 0 };
	struct dsm_region_options o = { .addr = mem };
	struct dsm_region *a = NULL;

	assert_int_equal(create_with(cfg, 0, o, NULL, &a), -EINVAL);
	o.addr = NULL;
	o.segments = &seg;
	o.n_segments = 1;
	assert_int_equal(create_with(cfg, 0, o, NULL, &a), -EINVAL);
	assert_null(a);
	cluster_config_free(cfg);
	munmap(mem, size);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_min_hold_keeps_page_with_new_owner(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_config(port_base() + 2, ", min_hold_us: 200000");
	struct dsm_region *a = create(cfg, 0, NULL, NULL), *b = create(cfg, 1, NULL, NULL);

	start_pair(a, b);
	uint8_t *ba = dsm_region_base(a), *bb = dsm_region_base(b);

	/* Page 3 is homed on node 1: node 0 takes it writable... */
	uint64_t t0 = now_ms();
	*(volatile uint64_t *)(ba + 3 * PAGE) = 5;
	/* ...and node 1 cannot have it back before the hold is over. */
	assert_int_equal(*(volatile uint64_t *)(bb + 3 * PAGE), 5);
	uint64_t waited = now_ms() - t0;
	print_message("steal after %llu ms (hold 200 ms)\n", (unsigned long long)waited);
	assert_true(waited >= 190);

	stop_pair(a, b, cfg);
}

static void test_adopted_mapping_keeps_only_home_pages(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_config(port_base() + 2, "");
	size_t size = cfg->vms[0].memory_bytes;
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	memset(mem, 0xab, size); /* what QEMU might have put there */

	struct dsm_region_options o = { .addr = mem };
	struct dsm_region *a = NULL, *b = create(cfg, 1, NULL, NULL);
	assert_int_equal(create_with(cfg, 0, o, NULL, &a), 0);
	assert_ptr_equal(dsm_region_base(a), mem);
	start_pair(a, b);

	uint8_t *bb = dsm_region_base(b);
	/* Interleave: even pages are node 0's and keep 0xab, for node 1 too;
	 * odd pages are node 1's: node 0's stale bytes must not show. */
	assert_int_equal(bb[0 * PAGE + 100], 0xab);
	assert_int_equal(mem[1 * PAGE + 100], 0);
	assert_int_equal(bb[1 * PAGE + 100], 0);
	assert_int_equal(mem[2 * PAGE + 7], 0xab);

	stop_pair(a, b, cfg);
	munmap(mem, size);
}

/* Two mappings adopted as one region (QEMU: a memory backend per guest
 * NUMA node): page indices run on across the gap, both nodes see one
 * another's writes in either segment, at the right addresses. */
static void test_segments_form_one_region(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_config(port_base() + 3, "");
	size_t size = cfg->vms[0].memory_bytes, half = size / 2;
	uint8_t *lo = mmap(NULL, half, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *hi = mmap(NULL, half, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(lo != MAP_FAILED && hi != MAP_FAILED);
	struct dsm_segment segs[2] = { { lo, half, -1, 0 }, { hi, half, -1, 0 } };
	struct dsm_region_options o = {
		.segments = segs, .n_segments = 2,
	};
	struct dsm_region *a = NULL, *b = create(cfg, 1, NULL, NULL);
	assert_int_equal(create_with(cfg, 0, o, NULL, &a), 0);
	assert_int_equal(dsm_region_size(a), size);
	start_pair(a, b);

	uint8_t *bb = dsm_region_base(b);
	uint64_t last = size / PAGE - 1, first_hi = half / PAGE;
	/* node 0 writes both segments (pages homed on either node) ... */
	lo[(first_hi - 1) * PAGE + 5] = 0x11;   /* odd page: node 1's */
	hi[0 * PAGE + 6] = 0x22;                /* page first_hi (even): node 0's */
	hi[(last - first_hi) * PAGE + 7] = 0x33; /* last page (odd): node 1's */
	/* ... node 1 reads them at the same page indices in its own mapping */
	assert_int_equal(bb[(first_hi - 1) * PAGE + 5], 0x11);
	assert_int_equal(bb[first_hi * PAGE + 6], 0x22);
	assert_int_equal(bb[last * PAGE + 7], 0x33);
	/* and node 1's writes reach the right segment on node 0 */
	bb[(first_hi + 1) * PAGE + 8] = 0x44;
	assert_int_equal(hi[1 * PAGE + 8], 0x44);
	assert_int_equal(lo[(first_hi - 1) * PAGE + 8], 0);

	stop_pair(a, b, cfg);
	munmap(lo, half);
	munmap(hi, half);
}

/* Wait until @r has served @n faults (prefetched pages count once they are
 * in); false after 5 s. */
static bool wait_faults_served(struct dsm_region *r, uint64_t n, struct dsm_stats *s)
{
	uint64_t deadline = now_ms() + 5000;
	while (dsm_region_stats(r, s) == 0 && s->faults_served < n && now_ms() < deadline)
		usleep(1000);
	return s->faults_served >= n;
}

/* dsm_region_prefetch(): node 0 fetches ahead 48 pages node 1 wrote (for
 * reading, then 16 of them for writing): the pages arrive without any
 * thread touching them, and node 0's accesses then find them mapped (no
 * userfaultfd event); the data is node 1's, and node 1 sees node 0's
 * writes. A range already here costs nothing; one out of the region is
 * refused. */
static void test_prefetch_fetches_ahead(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_config(port_base() + 4, "");
	struct dsm_region *a = create(cfg, 0, NULL, NULL), *b = create(cfg, 1, NULL, NULL);
	struct dsm_stats s0, s1;

	start_pair(a, b);
	uint8_t *ba = dsm_region_base(a), *bb = dsm_region_base(b);
	enum { FIRST = 8, N = 48, NW = 16 };
	for (int p = FIRST; p < FIRST + N; p++) /* homed on both nodes, all now node 1's */
		*(volatile uint64_t *)(bb + p * PAGE + 16) = 1000 + (uint64_t)p;

	assert_int_equal(dsm_region_stats(a, &s0), 0);
	assert_int_equal(s0.pages_prefetched, 0);
	/* a range that starts and ends inside pages: all of both count */
	assert_int_equal(dsm_region_prefetch(a, FIRST * PAGE + 100, N * PAGE - 200, false), 0);
	assert_true(wait_faults_served(a, s0.faults_served + N, &s1));
	assert_int_equal(s1.pages_prefetched, N);
	assert_int_equal(s1.uffd_events, s0.uffd_events); /* nobody faulted */
	for (int p = FIRST; p < FIRST + N; p++)
		assert_int_equal(*(volatile uint64_t *)(ba + p * PAGE + 16), 1000 + (uint64_t)p);
	assert_int_equal(dsm_region_stats(a, &s1), 0);
	assert_int_equal(s1.uffd_events, s0.uffd_events); /* the reads found them mapped */

	/* Again: all here, nothing to do (the caller's own check, no request). */
	assert_int_equal(dsm_region_prefetch(a, FIRST * PAGE, N * PAGE, false), 0);
	/* For writing: node 1's copies go, node 0's writes then do not fault. */
	assert_int_equal(dsm_region_prefetch(a, FIRST * PAGE, NW * PAGE, true), 0);
	assert_true(wait_faults_served(a, s1.faults_served + NW, &s1));
	assert_int_equal(s1.pages_prefetched, N + NW);
	for (int p = FIRST; p < FIRST + NW; p++)
		*(volatile uint64_t *)(ba + p * PAGE + 24) = 2000 + (uint64_t)p;
	assert_int_equal(dsm_region_stats(a, &s1), 0);
	assert_int_equal(s1.uffd_events, s0.uffd_events);
	for (int p = FIRST; p < FIRST + NW; p++)
		assert_int_equal(*(volatile uint64_t *)(bb + p * PAGE + 24), 2000 + (uint64_t)p);

	/* Out of the region: refused, nothing queued. */
	size_t size = dsm_region_size(a);
	assert_int_equal(dsm_region_prefetch(a, size - PAGE, 2 * PAGE, false), -EINVAL);
	assert_int_equal(dsm_region_prefetch(a, size, 1, false), -EINVAL);
	assert_int_equal(dsm_region_prefetch(a, 0, 0, false), 0);
	assert_int_equal(dsm_region_stats(a, &s1), 0);
	assert_int_equal(s1.pages_prefetched, N + NW);
	assert_int_equal(s1.prefetch_dropped, 0);
	assert_int_equal(s1.engine.protocol_errors, 0);

	stop_pair(a, b, cfg);
}

/* Disco's policy moves a page's home to the node that misses on it most.
 * Rounds of (node 1 reads and writes, node 0 writes) a page homed on node
 * 0, one round per policy interval at most: node 1 takes 2 misses per
 * round, node 0 one, below `sharing`; so the policy moves the home. */
static void test_policy_moves_home_to_main_user(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_config(
		port_base() + 2,
		", policy: disco, interval_ms: 20, trigger: 2, sharing: 2, write_share: 1000");
	struct dsm_region *a = create(cfg, 0, NULL, NULL), *b = create(cfg, 1, NULL, NULL);
	struct dsm_page_counters pc;
	struct dsm_stats sa;
	volatile uint64_t *pa, *pb;

	start_pair(a, b);
	pa = (volatile uint64_t *)((uint8_t *)dsm_region_base(a) + 2 * PAGE);
	pb = (volatile uint64_t *)((uint8_t *)dsm_region_base(b) + 2 * PAGE);
	assert_int_equal(dsm_region_page_stats(a, 2, &pc, NULL, NULL), 0); /* home: node 0 */
	uint64_t deadline = now_ms() + 5000;
	int rounds = 0;
	while (dsm_region_page_stats(b, 2, &pc, NULL, NULL) != 0 && now_ms() < deadline) {
		uint64_t v = pb[0];
		pb[0] = v + 1;
		pa[1] = v;
		rounds++;
		usleep(50 * 1000);
	}
	assert_int_equal(dsm_region_page_stats(b, 2, &pc, NULL, NULL), 0); /* home: node 1 */
	assert_int_equal(dsm_region_stats(a, &sa), 0);
	assert_true(sa.policy.migrations >= 1);
	assert_true(sa.policy.intervals > 0);
	assert_int_equal(sa.engine.migrations_out, 1);
	/* and the data came along */
	assert_int_equal(pb[0], (uint64_t)rounds);
	assert_int_equal(pa[0], (uint64_t)rounds);
	stop_pair(a, b, cfg);
}

static void test_missing_peer_named_at_start(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_config(port_base() + 2, "");
	cfg->connect_timeout_ms = 500; /* nobody runs n1 */
	struct dsm_region *a = create(cfg, 0, NULL, NULL);
	char err[256];
	assert_int_equal(node_start(a, err, sizeof(err)), -ETIMEDOUT);
	assert_non_null(strstr(err, "n1 (127.0.0.1:"));
	node_destroy(a);
	cluster_config_free(cfg);
}


/* ---- memory budgets --------------------------------------------------------- */

/* @n nodes, a 4M region interleaved over them, memory budgets
 * @node_memory (vms[].node_memory's YAML value), dsm.min_cache 4K, and the
 * dsm settings @extra. */
static struct cluster_config *make_budget_config(int port, int n, const char *node_memory,
						 const char *extra)
{
	char yaml[4096], err[512];
	size_t o = 0;
	struct cluster_config *cfg = NULL;

	o += (size_t)snprintf(yaml + o, sizeof(yaml) - o,
			      "cluster:\n  name: test\n  auth: { key_file: %s/key }\n"
			      "  heartbeat_ms: 100\n  peer_timeout_ms: 1000\n"
			      "  connect_timeout_ms: 10000\nnodes:\n", keydir);
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(yaml + o, sizeof(yaml) - o,
				      "  - { name: n%d, address: 127.0.0.1, port: %d }\n", i, port + i);
	o += (size_t)snprintf(yaml + o, sizeof(yaml) - o,
			      "vms:\n  - name: v\n    memory: 4M\n    vcpus: %d\n"
			      "    vcpu_placement: {", n);
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "%sn%d: 1", i ? ", " : " ", i);
	snprintf(yaml + o, sizeof(yaml) - o,
		 " }\n    node_memory: %s\n"
		 "    dsm: { placement: interleave, fault_timeout_ms: 2000, min_cache: 4K %s}\n",
		 node_memory, extra);
	if (cluster_config_load_string(yaml, "test.yaml", &cfg, err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	return cfg;
}

/* Pages of @base mapped (resident) in the kernel's view. */
static uint64_t resident_pages(void *base, size_t size)
{
	unsigned char v[4096 / 4];
	uint64_t n = 0;

	assert_true(size / PAGE <= sizeof(v));
	assert_int_equal(mincore(base, size, v), 0);
	for (size_t i = 0; i < size / PAGE; i++)
		n += v[i] & 1;
	return n;
}

/*
 * Node 1 may hold its 512 home pages and 16 copies (528 frames); it writes
 * every page homed at node 0 (512 of them), so almost every write first
 * evicts a dirty copy, which its home takes back. Node 0 then reads every
 * value, node 1 reads them again: nothing written back is lost. Node 1
 * never maps more pages than its budget, in its own count and the
 * kernel's (mincore; with memfd backing the file's allocated blocks,
 * which a drop must punch out).
 */
static void budget_round_trip(int port, bool memfd)
{
	struct cluster_config *cfg =
		make_budget_config(port, 2, "2112K", memfd ? ", backing: memfd" : "");
	size_t size = cfg->vms[0].memory_bytes;
	struct dsm_region *a = create(cfg, 0, NULL, NULL), *b = NULL;
	int fd = -1;
	uint8_t *mem = NULL;

	if (memfd) { /* node 1 adopts a memfd of ours, to look at the file */
		fd = memfd_create("test-budget", MFD_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		assert_true(mem != MAP_FAILED);
		struct dsm_segment seg = { mem, size, fd, 0 };
		struct dsm_region_options o = { .segments = &seg, .n_segments = 1 };
		assert_int_equal(create_with(cfg, 1, o, NULL, &b), 0);
	} else {
		b = create(cfg, 1, NULL, NULL);
	}
	start_pair(a, b);

	uint8_t *ba = dsm_region_base(a), *bb = dsm_region_base(b);
	uint64_t pages = size / PAGE;
	for (uint64_t p = 0; p < pages; p += 2) /* node 0's pages */
		*(volatile uint64_t *)(bb + p * PAGE + 16) = p * 7 + 1;
	for (uint64_t p = 0; p < pages; p += 2)
		assert_int_equal(*(volatile uint64_t *)(ba + p * PAGE + 16), p * 7 + 1);
	for (uint64_t p = 0; p < pages; p += 2)
		assert_int_equal(*(volatile uint64_t *)(bb + p * PAGE + 16), p * 7 + 1);

	struct dsm_stats sb;
	assert_int_equal(dsm_region_stats(b, &sb), 0);
	print_message("node 1: budget %llu frames, at most %llu mapped, %llu evictions, %llu "
		      "write-backs, %llu waits for room\n",
		      (unsigned long long)sb.budget_frames, (unsigned long long)sb.pages_present_max,
		      (unsigned long long)sb.engine.evictions,
		      (unsigned long long)sb.engine.writebacks,
		      (unsigned long long)sb.engine.room_waits);
	assert_int_equal(sb.budget_frames, 528);
	assert_int_equal(sb.min_cache_frames, 1);
	assert_true(sb.pages_present_max <= 528);
	assert_true(sb.frames_used <= 528);
	assert_true(sb.engine.writebacks >= 512 - 16);
	assert_true(sb.engine.evictions > 0); /* the clean copies of the reads */
	assert_true(sb.engine.room_waits > 0);
	assert_int_equal(sb.engine.protocol_errors, 0);
	/* the kernel's view of node 1's memory */
	uint64_t resident = resident_pages(bb, size);
	print_message("node 1: %llu pages resident\n", (unsigned long long)resident);
	assert_true(resident <= 528);
	if (memfd) {
		struct stat st;
		assert_int_equal(fstat(fd, &st), 0);
		print_message("node 1: memfd holds %lld KiB\n", (long long)st.st_blocks / 2);
		assert_true((uint64_t)st.st_blocks * 512 <= 528 * PAGE);
	}
	stop_pair(a, b, cfg);
	if (memfd) {
		munmap(mem, size);
		close(fd);
	}
}

static void test_budget_evicts_and_writes_back(void **state)
{
	(void)state;
	budget_round_trip(port_base() + 2, false);
}

static void test_budget_evicts_and_writes_back_memfd(void **state)
{
	(void)state;
	budget_round_trip(port_base() + 4, true);
}

/*
 * Disco's policy under budgets: node 1 misses page 2 (homed at node 0)
 * most, but holds as many home pages as it may (512 of 513 frames, 1 kept
 * for copies). Node 0's offer is refused (-EMLINK, the policy un-counts
 * the move), node 1 hands node 0 a cold home page instead (page 1, which
 * node 0 holds exclusive), and the refused move is made again: when that
 * page arrives (policy_moves_retried) or at a later interval, whichever
 * comes first (a race, so only printed). One round per interval at most
 * (20 ms interval, 30 ms rounds): node 0's one miss stays below
 * `sharing`, so the page is not taken for read-shared.
 */
static void test_budget_refused_move_hands_a_home_back(void **state)
{
	(void)state;
	struct cluster_config *cfg = make_budget_config(
		port_base() + 2, 2, "{n0: 3M, n1: 2052K}",
		", policy: disco, interval_ms: 20, trigger: 2, sharing: 2, write_share: 1000");
	struct dsm_region *a = create(cfg, 0, NULL, NULL), *b = create(cfg, 1, NULL, NULL);
	struct dsm_page_counters pc;
	struct dsm_stats sa, sb;

	start_pair(a, b);
	volatile uint64_t *pa = (volatile uint64_t *)((uint8_t *)dsm_region_base(a) + 2 * PAGE);
	volatile uint64_t *pb = (volatile uint64_t *)((uint8_t *)dsm_region_base(b) + 2 * PAGE);
	/* node 0 takes node 1's page 1 exclusive: a home node 1 does not use */
	*(volatile uint64_t *)((uint8_t *)dsm_region_base(a) + 1 * PAGE) = 99;
	uint64_t deadline = now_ms() + 10000;
	int rounds = 0;
	while (dsm_region_page_stats(b, 2, &pc, NULL, NULL) != 0 && now_ms() < deadline) {
		uint64_t v = pb[0];
		pb[0] = v + 1;
		pa[1] = v;
		rounds++;
		usleep(30 * 1000);
	}
	assert_int_equal(dsm_region_page_stats(b, 2, &pc, NULL, NULL), 0); /* home: node 1 */
	assert_int_equal(dsm_region_page_stats(a, 1, &pc, NULL, NULL), 0); /* handed to node 0 */
	assert_int_equal(dsm_region_stats(a, &sa), 0);
	assert_int_equal(dsm_region_stats(b, &sb), 0);
	print_message("%d rounds; node 0: %llu offers, %llu refused, %llu retried; node 1: %llu "
		      "declined, %llu handed back\n", rounds,
		      (unsigned long long)sa.engine.offers_sent, (unsigned long long)sa.policy.refused,
		      (unsigned long long)sa.moves_retried,
		      (unsigned long long)sb.engine.offers_declined,
		      (unsigned long long)sb.policy.handbacks);
	assert_true(sa.policy.refused >= 1);
	assert_true(sb.engine.offers_declined >= 1);
	assert_true(sb.policy.handbacks >= 1);
	assert_true(sb.home_frames <= 512);
	assert_true(sb.frames_used <= 513);
	assert_int_equal(sa.engine.protocol_errors + sb.engine.protocol_errors, 0);
	/* and the data came along both ways */
	assert_int_equal(pb[0], (uint64_t)rounds);
	assert_int_equal(pa[0], (uint64_t)rounds);
	assert_int_equal(*(volatile uint64_t *)((uint8_t *)dsm_region_base(b) + 1 * PAGE), 99);
	stop_pair(a, b, cfg);
}

/* ---- lost peer ---------------------------------------------------------- */

static pthread_mutex_t fatal_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fatal_cond = PTHREAD_COND_INITIALIZER;
static char fatal_msg[512];

static void on_fatal(void *opaque, const char *msg)
{
	(void)opaque;
	pthread_mutex_lock(&fatal_mu);
	snprintf(fatal_msg, sizeof(fatal_msg), "%s", msg);
	pthread_cond_broadcast(&fatal_cond);
	pthread_mutex_unlock(&fatal_mu);
}

static void *touch_thread(void *arg)
{
	(void)*(volatile uint64_t *)arg; /* blocks for good: the page is lost */
	return NULL;
}

/*
 * n1 (a child process) writes @page, so the only copy of it is at n1, and
 * is killed; then n0 touches the page. The fault must fail, naming n1,
 * whether n1 was the page's home or only its owner (home n0 itself).
 */
static void lost_peer_fails_fault(int base, uint64_t page)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);

	pid_t child = fork();
	if (child == 0) {
		struct cluster_config *cfg = make_config(base, "");
		struct dsm_region *b = create(cfg, 1, NULL, NULL);
		char err[256];
		if (node_start(b, err, sizeof(err)) < 0)
			_exit(1);
		*(volatile uint64_t *)((uint8_t *)dsm_region_base(b) + page * PAGE) = 42;
		if (write(pfd[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	struct cluster_config *cfg = make_config(base, "");
	/* Left running: a thread stays blocked on it. */
	struct dsm_region *a = create(cfg, 0, on_fatal, NULL);
	char err[256], c;
	assert_int_equal(node_start(a, err, sizeof(err)), 0);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);

	pthread_t t;
	pthread_mutex_lock(&fatal_mu);
	fatal_msg[0] = 0;
	pthread_mutex_unlock(&fatal_mu);
	pthread_create(&t, NULL, touch_thread, (uint8_t *)dsm_region_base(a) + page * PAGE);
	pthread_detach(t);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&fatal_mu);
	while (!fatal_msg[0])
		if (pthread_cond_timedwait(&fatal_cond, &fatal_mu, &deadline) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&fatal_mu);
	if (!fatal_msg[0])
		fail_msg("no fatal error within 10 s of losing the page's node");
	print_message("fatal error reported: %s\n", fatal_msg);
	assert_non_null(strstr(fatal_msg, "node n1 lost"));
	assert_null(strstr(fatal_msg, "n0"));
}

/* ---- a raw transport as node n1, to send a region frames it must refuse ---- */

struct raw_peer {
	uv_loop_t loop;
	uv_async_t stop;
	struct rpc_transport *t;
	pthread_t th;
};

static void raw_frame(void *o, int peer, const struct rpc_frame_view *f) {}
static void raw_up(void *o, int peer) {}
static void raw_down(void *o, int peer, enum rpc_peer_state st, const char *why) {}

static void raw_on_stop(uv_async_t *h)
{
	struct raw_peer *rp = h->data;
	rpc_transport_stop(rp->t);
	uv_close((uv_handle_t *)h, NULL);
}

static void *raw_loop(void *arg)
{
	struct raw_peer *rp = arg;
	uv_run(&rp->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void raw_start(struct raw_peer *rp, const struct cluster_config *cfg)
{
	static const struct rpc_callbacks cb = { raw_frame, raw_up, raw_down };
	uv_loop_init(&rp->loop);
	uv_async_init(&rp->loop, &rp->stop, raw_on_stop);
	rp->stop.data = rp;
	assert_int_equal(rpc_tcp_transport_create(&rp->loop, cfg, 1, &cb, rp, &rp->t), 0);
	assert_int_equal(rpc_transport_start(rp->t), 0);
	pthread_create(&rp->th, NULL, raw_loop, rp);
}

static void raw_finish(struct raw_peer *rp)
{
	uv_async_send(&rp->stop);
	pthread_join(rp->th, NULL);
	uv_loop_close(&rp->loop);
	rpc_transport_destroy(rp->t);
}

static pthread_mutex_t lost_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lost_cond = PTHREAD_COND_INITIALIZER;
static char lost_why[512];

static void on_lost(void *opaque, int peer, const char *why, bool stopping)
{
	if (stopping)
		return;
	pthread_mutex_lock(&lost_mu);
	snprintf(lost_why, sizeof(lost_why), "n%d: %s", peer, why);
	pthread_cond_broadcast(&lost_cond);
	pthread_mutex_unlock(&lost_mu);
}

/* Region n0 (TCP, anonymous memory: no one-sided reads) gets @type/@body
 * from a raw n1; returns why n0 failed n1 (empty if it did not in 5 s). */
static void refused_frame(int port, uint16_t type, const void *body, size_t len, char *why,
			  size_t whylen)
{
	struct cluster_config *cfg = make_config(port, "");
	struct dsm_region_options o = { 0 };
	/* The VM layer's place: a client told when a peer is lost. */
	const struct rpc_session_client watcher = { .name = "watcher", .on_peer_down = on_lost };
	struct dsm_region *a = NULL;
	struct raw_peer rp;
	char err[256];

	lost_why[0] = 0;
	assert_int_equal(create_with(cfg, 0, o, &watcher, &a), 0);
	raw_start(&rp, cfg);
	assert_int_equal(node_start(a, err, sizeof(err)), 0);
	for (int i = 0; i < 5000 && rpc_transport_peer_state(rp.t, 0) != RPC_PEER_UP; i++)
		usleep(1000); /* n0 saw n1's proof; n1 may not have seen n0's yet */
	assert_int_equal(rpc_transport_send(rp.t, 0, type, body, len, NULL), 0);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	pthread_mutex_lock(&lost_mu);
	while (!lost_why[0])
		if (pthread_cond_timedwait(&lost_cond, &lost_mu, &deadline) == ETIMEDOUT)
			break;
	snprintf(why, whylen, "%s", lost_why);
	pthread_mutex_unlock(&lost_mu);
	node_destroy(a);
	raw_finish(&rp);
	cluster_config_free(cfg);
}

/* A GRANT that says "read the page yourself" to a node that cannot (no
 * one-sided reads here), and a DsmMemory for a region of another size:
 * both fail the sender, with the reason, and never reach the engine. */
static void test_bad_one_sided_frames_fail_the_peer(void **state)
{
	(void)state;
	uint8_t body[256];
	char why[512];

	Disco__DsmMessage g = DISCO__DSM_MESSAGE__INIT;
	g.kind = DISCO__DSM_KIND__DSM_GRANT;
	g.page = 1;
	g.flags = DSM_MSG_F_DATA;
	g.requester = 0;
	g.data_by_read = true;
	g.read_version = 2;
	size_t len = disco__dsm_message__pack(&g, body);
	refused_frame(port_base() + 6, RPC_MSG_DSM, body, len, why, sizeof(why));
	print_message("GRANT by read: %s\n", why);
	assert_non_null(strstr(why, "n1"));
	assert_non_null(strstr(why, "marked data_by_read"));

	Disco__DsmMemory mem = DISCO__DSM_MEMORY__INIT;
	Disco__DsmMemory__Segment seg = DISCO__DSM_MEMORY__SEGMENT__INIT, *segs[1] = { &seg };
	seg.pages = 16;
	seg.addr = 0x10000;
	mem.n_pages = 16; /* the region has 1024 */
	mem.n_segments = 1;
	mem.segments = segs;
	len = disco__dsm_memory__pack(&mem, body);
	refused_frame(port_base() + 6, RPC_MSG_DSM_MEMORY, body, len, why, sizeof(why));
	print_message("DsmMemory: %s\n", why);
	assert_non_null(strstr(why, "DsmMemory with a region of another size"));
}

/* Interleaved placement: page 1 is homed at n1, page 0 at n0. */
static void test_lost_home_fails_fault_with_its_name(void **state)
{
	(void)state;
	lost_peer_fails_fault(port_base() + 2, 1);
}

static void test_lost_owner_fails_fault_with_its_name(void **state)
{
	(void)state;
	lost_peer_fails_fault(port_base() + 4, 0);
}


/*
 * A node out of room because the others are gone: node 1 caches copies of
 * node 0's pages until its cache (9 frames) is full; node 0 leaves; a
 * copy of a page whose home is gone cannot be given back, so node 1's
 * fault on a page of node 2 waits for a frame that never comes, and the
 * fault timeout says so, with the node, the VM and the numbers.
 */
static void test_budget_out_of_room_named(void **state)
{
	(void)state;
	/* ports base + 2..5: nodes the lost-peer tests left running */
	struct cluster_config *cfg = make_budget_config(port_base() + 5, 3, "1400K", "");
	cfg->vms[0].dsm.fault_timeout_ms = 1000;
	struct dsm_region *n0 = create(cfg, 0, NULL, NULL), *n1 = create(cfg, 1, on_fatal, NULL);
	struct dsm_region *n2 = create(cfg, 2, NULL, NULL);
	struct starter s1 = { .r = n1 }, s2 = { .r = n2 };
	pthread_t t1, t2;
	char err[256];

	pthread_create(&t1, NULL, start_thread, &s1);
	pthread_create(&t2, NULL, start_thread, &s2);
	assert_int_equal(node_start(n0, err, sizeof(err)), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(s1.rc, 0);
	assert_int_equal(s2.rc, 0);

	uint8_t *b1 = dsm_region_base(n1);
	for (uint64_t p = 0; p < 60; p += 3) /* node 0's pages (interleave over 3) */
		assert_int_equal(*(volatile uint64_t *)(b1 + p * PAGE), 0);
	struct dsm_stats st;
	assert_int_equal(dsm_region_stats(n1, &st), 0);
	assert_int_equal(st.frames_used, st.budget_frames); /* full of node 0's copies */

	node_stop(n0);
	for (int i = 0; i < 5000 && !(rpc_session_peers_down(session_of(n1)) & 1); i++)
		usleep(1000);
	assert_true(rpc_session_peers_down(session_of(n1)) & 1);

	pthread_mutex_lock(&fatal_mu);
	fatal_msg[0] = 0;
	pthread_mutex_unlock(&fatal_mu);
	pthread_t t;
	pthread_create(&t, NULL, touch_thread, b1 + 2 * PAGE); /* node 2's page */
	pthread_detach(t);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&fatal_mu);
	while (!fatal_msg[0])
		if (pthread_cond_timedwait(&fatal_cond, &fatal_mu, &deadline) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&fatal_mu);
	if (!fatal_msg[0])
		fail_msg("no fatal error within 10 s of running out of room");
	print_message("fatal error reported: %s\n", fatal_msg);
	assert_non_null(strstr(fatal_msg, "node n1 ran out of room for VM v"));
	assert_non_null(strstr(fatal_msg, "350 frames"));
	assert_non_null(strstr(fatal_msg, "1 requests wait for a frame"));
	assert_non_null(strstr(fatal_msg, "homes of its copies are lost"));
	/* n1 and n2 are left running: a thread stays blocked on n1 */
}

static int setup(void **state)
{
	(void)state;
	char path[128];
	if (!mkdtemp(keydir))
		return -1;
	snprintf(path, sizeof(path), "%s/key", keydir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs("test-key-0123456789abcdef0123456", f);
	fclose(f);
	chmod(path, 0600); /* a key others can read is refused */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/key", keydir);
	unlink(path);
	rmdir(keydir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_nodes_coherent),
		cmocka_unit_test(test_two_nodes_coherent_memfd),
		cmocka_unit_test(test_memfd_segments_are_the_file),
		cmocka_unit_test(test_memfd_backing_refuses_anonymous_memory),
		cmocka_unit_test(test_min_hold_keeps_page_with_new_owner),
		cmocka_unit_test(test_adopted_mapping_keeps_only_home_pages),
		cmocka_unit_test(test_segments_form_one_region),
		cmocka_unit_test(test_prefetch_fetches_ahead),
		cmocka_unit_test(test_policy_moves_home_to_main_user),
		cmocka_unit_test(test_budget_evicts_and_writes_back),
		cmocka_unit_test(test_budget_evicts_and_writes_back_memfd),
		cmocka_unit_test(test_budget_refused_move_hands_a_home_back),
		cmocka_unit_test(test_missing_peer_named_at_start),
		cmocka_unit_test(test_bad_one_sided_frames_fail_the_peer),
		cmocka_unit_test(test_lost_home_fails_fault_with_its_name),
		cmocka_unit_test(test_lost_owner_fails_fault_with_its_name),
		/* last: leaves n1 and n2 running on ports base + 5..7 */
		cmocka_unit_test(test_budget_out_of_room_named),
	};
	return cmocka_run_group_tests_name("dsm_region", tests, setup, teardown);
}
