// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-coherence: does guest memory behave like coherent shared memory when
 * the vCPUs sharing it live in different node processes?
 *
 * Four sections, each on one thread per online CPU, each checked exactly:
 *   atomics   every thread does atomic fetch-adds on one shared counter,
 *             compare-and-swap increments on a second one, atomic adds on
 *             its own slot of an array and plain (non-atomic) increments of
 *             its own word of another array, all in one page; it counts how
 *             many. Totals must be exact; the plain words catch lost writes
 *             under false sharing.
 *   list      a doubly linked list under a lock, twice: a pthread mutex, then
 *             a test-and-set spinlock. Each thread links and unlinks its own
 *             nodes at random, at the head or the tail, each insertion with a
 *             new value, and remembers privately what it left linked. At the
 *             end the list must hold exactly that (count, sum, each value,
 *             nothing twice), next/prev links must agree both ways, and no
 *             two threads may ever have been inside the critical section
 *             together.
 *   ring      single-producer/single-consumer rings: thread i produces to
 *             thread (i+1)%n. Each message carries its sequence number, a
 *             payload derived from (producer, seq) and a checksum; the
 *             consumer checks order and content of every message.
 *   pingpong  two threads on different CPUs (first and last online) take
 *             turns through a flag page; on its turn each verifies the full
 *             4 KiB page the other wrote and writes a new pattern.
 *
 * Waiting threads spin, then sleep (guest.h); the spinlock of the list
 * section always spins.
 *
 * Options: -n N (atomic ops per thread, at least), -l L (list operations
 * per thread and lock, at least), -t MS (atomics and each list run at least
 * this long, so that the threads overlap even when the host runs the vCPUs
 * in turns), -r R (ring messages per ring), -p P (ping-pong rounds).
 * Built with -DBREAK every section has a deliberate bug and must FAIL.
 */
#include "guest.h"

static long opt_atomic = 20000;
static long opt_list = 5000;
static long opt_min_ms = 250;
static long opt_ring = 20000;
static long opt_pingpong = 1000;

/* ---- atomics ---------------------------------------------------------- */

/*
 * The atomics and list sections run for at least opt_min_ms as well as for
 * at least their operation count, so that the threads overlap even when the
 * host runs the vCPUs in turns (TCG on a loaded host): a section that ends
 * within one host time slice would test nothing. Each thread counts what it
 * did; the expected totals are computed from those counts.
 */
static int keep_going(long done, long min_ops, uint64_t start_ns)
{
	return done < min_ops ||
	       ((done & 63) != 0 || guest_now_ns() - start_ns < (uint64_t)opt_min_ms * 1000000u);
}

struct atomics_page {
	uint64_t counter;	/* fetch_add by everyone */
	uint64_t cas_counter;	/* CAS loop by everyone */
	uint64_t slot[GUEST_MAX_THREADS / 2];	/* atomic add, slot i by thread i */
	uint64_t plain[GUEST_MAX_THREADS / 2];	/* plain stores, word i by thread i only */
} __attribute__((aligned(GUEST_PAGE)));
_Static_assert(sizeof(struct atomics_page) == GUEST_PAGE, "one page");

struct atomics_test {
	struct atomics_page *page;
	uint64_t done[GUEST_MAX_THREADS];	/* operations per thread, private until joined */
};

static void *atomics_thread(struct guest_thread *t)
{
	struct atomics_test *at = t->arg;
	struct atomics_page *a = at->page;
	volatile uint64_t *mine = &a->plain[t->index];
	uint64_t start = guest_now_ns();
	long k;
	for (k = 0; keep_going(k, opt_atomic, start); k++) {
#ifdef BREAK
		a->counter = a->counter + 1;	/* lost updates */
#else
		__atomic_fetch_add(&a->counter, 1, __ATOMIC_SEQ_CST);
#endif
		uint64_t old = __atomic_load_n(&a->cas_counter, __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(&a->cas_counter, &old, old + 1, 1,
						    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
		__atomic_fetch_add(&a->slot[t->index], 1, __ATOMIC_RELAXED);
		*mine = *mine + 1;
	}
	at->done[t->index] = (uint64_t)k;
	return NULL;
}

static int test_atomics(int n)
{
	static struct atomics_test at;
	int before = guest_failures();
	if (n > GUEST_MAX_THREADS / 2)
		guest_die("atomics: at most %d threads", GUEST_MAX_THREADS / 2);
	at.page = guest_alloc(sizeof *at.page);
	guest_run(n, atomics_thread, &at);
	struct atomics_page *a = at.page;
	uint64_t want = 0;
	for (int i = 0; i < n; i++) {
		want += at.done[i];
		if (a->slot[i] != at.done[i])
			guest_fail("atomics: slot[%d]=%llu expected %llu", i,
				   (unsigned long long)a->slot[i], (unsigned long long)at.done[i]);
		if (a->plain[i] != at.done[i])
			guest_fail("atomics: plain[%d]=%llu expected %llu (lost write under false sharing)",
				   i, (unsigned long long)a->plain[i], (unsigned long long)at.done[i]);
	}
	if (a->counter != want)
		guest_fail("atomics: fetch_add counter=%llu expected %llu",
			   (unsigned long long)a->counter, (unsigned long long)want);
	if (a->cas_counter != want)
		guest_fail("atomics: cas counter=%llu expected %llu",
			   (unsigned long long)a->cas_counter, (unsigned long long)want);
	printf("coherence: [atomics] %s: %d threads, %llu ops each on average, counter=%llu cas=%llu expected %llu\n",
	       guest_failures() == before ? "PASS" : "FAIL", n, (unsigned long long)(want / (uint64_t)n),
	       (unsigned long long)a->counter, (unsigned long long)a->cas_counter,
	       (unsigned long long)want);
	return guest_failures() == before;
}

/* ---- doubly linked list under a lock ---------------------------------- */

/*
 * Thread i owns LIST_NODES nodes. Each operation picks one of them at random
 * (per-thread generator): if it is linked, the thread unlinks it; if not, it
 * links it with a new value (thread, node, operation number), at the head or
 * the tail. The thread remembers, privately, which of its nodes are linked
 * and with which value; after the join the list must hold exactly those.
 */
#define LIST_NODES 256

struct node {
	struct node *next, *prev;
	uint64_t value;
	uint32_t seen;		/* used by the final walk only */
};

enum lock_kind { LOCK_MUTEX, LOCK_SPIN };

struct list_test {
	enum lock_kind kind;
	pthread_mutex_t mutex;
	struct guest_spinlock spin __attribute__((aligned(64)));
	struct node head;	/* sentinel: head.next is first, head.prev is last */
	uint64_t inside;	/* threads in the critical section (plain access) */
	uint64_t overlaps;	/* times a thread found another one inside */
	struct node *pool;	/* n * LIST_NODES nodes; thread i owns [i*N, (i+1)*N) */
	/* Private to thread i until the join: */
	uint64_t linked_value[GUEST_MAX_THREADS][LIST_NODES];	/* 0: not linked */
	uint64_t ops[GUEST_MAX_THREADS];
};

static void list_lock(struct list_test *l)
{
#ifdef BREAK
	(void)l;	/* no mutual exclusion at all */
#else
	if (l->kind == LOCK_MUTEX)
		pthread_mutex_lock(&l->mutex);
	else
		guest_spin_lock_until(&l->spin, 0);
#endif
	volatile uint64_t *in = &l->inside;
	if (*in != 0)
		l->overlaps++;
	*in = *in + 1;
}

static void list_unlock(struct list_test *l)
{
	volatile uint64_t *in = &l->inside;
	*in = *in - 1;
#ifndef BREAK
	if (l->kind == LOCK_MUTEX)
		pthread_mutex_unlock(&l->mutex);
	else
		guest_spin_unlock(&l->spin);
#endif
}

static void *list_thread(struct guest_thread *t)
{
	struct list_test *l = t->arg;
	struct node *mine = &l->pool[(size_t)t->index * LIST_NODES];
	uint64_t *linked = l->linked_value[t->index];
	uint64_t rng = guest_mix((uint64_t)t->index + 1);
	uint64_t start = guest_now_ns();
	long k;
	for (k = 0; keep_going(k, opt_list, start); k++) {
		rng = guest_mix(rng);
		int idx = (int)(rng % LIST_NODES);
		struct node *nd = &mine[idx];
		if (linked[idx]) {
			list_lock(l);
			nd->prev->next = nd->next;
			nd->next->prev = nd->prev;
			list_unlock(l);
			linked[idx] = 0;
			continue;
		}
		/* never 0, different for every insertion */
		nd->value = ((uint64_t)(t->index + 1) << 48) | ((uint64_t)idx << 32) | (uint64_t)k;
		list_lock(l);
		if (rng & (1u << 20)) {		/* insert at the tail */
			nd->prev = l->head.prev;
			nd->next = &l->head;
		} else {			/* insert at the head */
			nd->next = l->head.next;
			nd->prev = &l->head;
		}
		nd->next->prev = nd;
		nd->prev->next = nd;
		list_unlock(l);
		linked[idx] = nd->value;
	}
	l->ops[t->index] = (uint64_t)k;
	return NULL;
}

static int test_list(int n, enum lock_kind kind)
{
	const char *what = kind == LOCK_MUTEX ? "list/mutex" : "list/spinlock";
	static struct list_test lt;
	struct list_test *l = &lt;
	int before = guest_failures();
	memset(l, 0, sizeof *l);
	l->kind = kind;
	pthread_mutex_init(&l->mutex, NULL);
	l->head.next = l->head.prev = &l->head;
	size_t total = (size_t)n * LIST_NODES;
	l->pool = guest_alloc(total * sizeof(struct node));
	guest_run(n, list_thread, l);

	/* Expected: what the threads remember having linked. */
	uint64_t want_count = 0, want_sum = 0, ops = 0;
	for (int i = 0; i < n; i++) {
		ops += l->ops[i];
		for (int j = 0; j < LIST_NODES; j++)
			if (l->linked_value[i][j]) {
				want_count++;
				want_sum += l->linked_value[i][j];
			}
	}

	uint64_t count = 0, sum = 0, bad = 0;
	struct node *prev = &l->head;
	for (struct node *p = l->head.next; p != &l->head && count <= total; p = p->next) {
		if (p < l->pool || p >= l->pool + total) {
			guest_fail("%s: link to %p outside the node pool", what, (void *)p);
			bad++;
			break;
		}
		size_t pi = (size_t)(p - l->pool);
		int thread = (int)(pi / LIST_NODES), idx = (int)(pi % LIST_NODES);
		uint64_t want = l->linked_value[thread][idx];
		if (p->prev != prev && bad++ < 4)
			guest_fail("%s: node %d/%d: prev link broken", what, thread, idx);
		if (want == 0 && bad++ < 4)
			guest_fail("%s: node %d/%d is linked but was unlinked", what, thread, idx);
		else if (p->value != want && bad++ < 4)
			guest_fail("%s: node %d/%d holds 0x%llx, last linked with 0x%llx", what, thread,
				   idx, (unsigned long long)p->value, (unsigned long long)want);
		if (p->seen++ && bad++ < 4)
			guest_fail("%s: node %d/%d linked twice", what, thread, idx);
		count++;
		sum += p->value;
		prev = p;
	}
	if (l->head.prev != prev)
		guest_fail("%s: head.prev is not the last node of the forward walk", what);
	uint64_t back = 0;
	for (struct node *p = l->head.prev; p != &l->head && back <= total; p = p->prev) {
		if (p < l->pool || p >= l->pool + total) {
			guest_fail("%s: backward link to %p outside the node pool", what, (void *)p);
			break;
		}
		back++;
	}
	if (count != want_count || back != want_count)
		guest_fail("%s: count forward=%llu backward=%llu expected %llu", what,
			   (unsigned long long)count, (unsigned long long)back,
			   (unsigned long long)want_count);
	if (sum != want_sum)
		guest_fail("%s: sum=0x%llx expected 0x%llx", what, (unsigned long long)sum,
			   (unsigned long long)want_sum);
	if (l->overlaps)
		guest_fail("%s: %llu times two threads were inside the critical section", what,
			   (unsigned long long)l->overlaps);
	printf("coherence: [%s] %s: %d threads, %llu link/unlink ops, %llu nodes linked, expected %llu, overlaps=%llu\n",
	       what, guest_failures() == before ? "PASS" : "FAIL", n, (unsigned long long)ops,
	       (unsigned long long)count, (unsigned long long)want_count,
	       (unsigned long long)l->overlaps);
	return guest_failures() == before;
}

/* ---- SPSC rings -------------------------------------------------------- */

#define RING_SLOTS 64
struct msg {
	uint64_t seq;
	uint64_t payload[6];
	uint64_t sum;
};
_Static_assert(sizeof(struct msg) * RING_SLOTS == GUEST_PAGE, "slots fill one page");

/* Slots, producer index and consumer index each in their own page, so each
 * page has one writer. */
struct ring {
	struct msg slot[RING_SLOTS];
	uint64_t head __attribute__((aligned(GUEST_PAGE)));	/* written by the producer */
	uint64_t tail __attribute__((aligned(GUEST_PAGE)));	/* written by the consumer */
} __attribute__((aligned(GUEST_PAGE)));

/* Thread i sleeps on bell[i] when it can neither send nor receive. */
struct bell {
	struct guest_flag f;
} __attribute__((aligned(GUEST_PAGE)));

struct ring_test {
	struct ring *rings;	/* rings[i]: thread i -> thread (i+1)%n */
	struct bell *bells;
};

static uint64_t msg_word(int producer, uint64_t seq, int w)
{
	return guest_mix(((uint64_t)producer << 48) ^ (seq << 3) ^ (uint64_t)w);
}

static uint64_t msg_sum(const struct msg *m)
{
	uint64_t s = m->seq * 0x100000001b3ull;
	for (int w = 0; w < 6; w++)
		s = (s ^ m->payload[w]) * 0x100000001b3ull;
	return s;
}

static void *ring_thread(struct guest_thread *t)
{
	struct ring_test *rt = t->arg;
	int n = t->nthreads;
	int from = (t->index + n - 1) % n, to = (t->index + 1) % n;
	struct ring *out = &rt->rings[t->index];	/* we produce, `to` consumes */
	struct ring *in = &rt->rings[from];		/* `from` produces, we consume */
	struct guest_flag *bell = &rt->bells[t->index].f;
	uint64_t sent = 0, got = 0, total = (uint64_t)opt_ring;
	uint64_t idle_since = 0;
	unsigned spins = 0;

	while (sent < total || got < total) {
		int can_send = sent < total &&
			sent - __atomic_load_n(&out->tail, __ATOMIC_ACQUIRE) < RING_SLOTS;
		int can_get = got < total && __atomic_load_n(&in->head, __ATOMIC_ACQUIRE) > got;
		if (can_send) {
			struct msg *m = &out->slot[sent % RING_SLOTS];
#ifdef BREAK
			/* publish first, fill in afterwards: the consumer may read
			 * an old message */
			__atomic_store_n(&out->head, sent + 1, __ATOMIC_RELEASE);
#endif
			m->seq = sent;
			for (int w = 0; w < 6; w++)
				m->payload[w] = msg_word(t->index, sent, w);
			m->sum = msg_sum(m);
			sent++;
#ifndef BREAK
			__atomic_store_n(&out->head, sent, __ATOMIC_RELEASE);
#endif
			guest_flag_kick(&rt->bells[to].f);
		}
		if (can_get) {
			const struct msg *m = &in->slot[got % RING_SLOTS];
			struct msg copy = *m;
			int ok = copy.seq == got && copy.sum == msg_sum(&copy);
			for (int w = 0; ok && w < 6; w++)
				ok = copy.payload[w] == msg_word(from, got, w);
			if (!ok)
				guest_fail("ring %d->%d: message %llu: seq=%llu payload/sum %s",
					   from, t->index, (unsigned long long)got,
					   (unsigned long long)copy.seq,
					   copy.sum == msg_sum(&copy) ? "consistent but wrong" : "corrupt");
			got++;
			__atomic_store_n(&in->tail, got, __ATOMIC_RELEASE);
			guest_flag_kick(&rt->bells[from].f);
		}
		if (can_send || can_get) {
			idle_since = 0;
			continue;
		}
		if (++spins % 64) {
			__builtin_ia32_pause();
			continue;
		}
		uint64_t now = guest_now_ns();
		if (idle_since == 0)
			idle_since = now;
		if (now - idle_since > (uint64_t)GUEST_WAIT_S * 1000000000u) {
			guest_fail("ring: thread %d stuck (sent %llu, received %llu of %llu)",
				   t->index, (unsigned long long)sent, (unsigned long long)got,
				   (unsigned long long)total);
			break;
		}
		if (now - idle_since > guest_spin_ns) {
			uint32_t seen = __atomic_load_n(&bell->value, __ATOMIC_SEQ_CST);
			__atomic_fetch_add(&bell->sleepers, 1, __ATOMIC_SEQ_CST);
			int again = (sent < total &&
				     sent - __atomic_load_n(&out->tail, __ATOMIC_SEQ_CST) < RING_SLOTS) ||
				    (got < total && __atomic_load_n(&in->head, __ATOMIC_SEQ_CST) > got);
			if (!again)
				guest_flag_sleep(bell, seen);
			__atomic_fetch_sub(&bell->sleepers, 1, __ATOMIC_SEQ_CST);
		}
	}
	return NULL;
}

static int test_ring(int n)
{
	struct ring_test rt = {
		.rings = guest_alloc((size_t)n * sizeof(struct ring)),
		.bells = guest_alloc((size_t)n * sizeof(struct bell)),
	};
	int before = guest_failures();
	guest_run(n, ring_thread, &rt);
	printf("coherence: [ring] %s: %d rings x %ld messages, order and content checked\n",
	       guest_failures() == before ? "PASS" : "FAIL", n, opt_ring);
	return guest_failures() == before;
}

/* ---- page ping-pong ---------------------------------------------------- */

struct pingpong {
	struct guest_flag turn __attribute__((aligned(GUEST_PAGE)));	/* round being played */
	uint64_t data[GUEST_PAGE / 8] __attribute__((aligned(GUEST_PAGE)));
	int last;		/* index of the second player */
};

static uint64_t pp_word(uint64_t round, int w)
{
	return guest_mix(round * 4096 + (uint64_t)w);
}

static void *pingpong_thread(struct guest_thread *t)
{
	struct pingpong *pp = t->arg;
	int me;
	if (t->index == 0)
		me = 0;
	else if (t->index == pp->last)
		me = 1;
	else
		return NULL;	/* only two players */
	for (uint32_t r = (uint32_t)me; r < (uint32_t)opt_pingpong; r += 2) {
		if (guest_flag_wait(&pp->turn, r, NULL) != 0) {
			guest_fail("pingpong: player %d waited %ds for round %u", me, GUEST_WAIT_S, r);
			return NULL;
		}
		if (r > 0) {	/* check what the other player wrote in round r-1 */
			int bad = 0;
			for (int w = 0; w < GUEST_PAGE / 8; w++)
				if (pp->data[w] != pp_word(r - 1, w) && bad++ == 0)
					guest_fail("pingpong: round %u, cpu %d: word %d = 0x%llx expected 0x%llx",
						   r, t->cpu, w,
						   (unsigned long long)pp->data[w],
						   (unsigned long long)pp_word(r - 1, w));
		}
#ifdef BREAK
		guest_flag_set(&pp->turn, r + 1);	/* hand over too early */
#endif
		for (int w = 0; w < GUEST_PAGE / 8; w++)
			pp->data[w] = pp_word(r, w);
#ifndef BREAK
		guest_flag_set(&pp->turn, r + 1);
#endif
	}
	return NULL;
}

static int test_pingpong(int n)
{
	struct pingpong *pp = guest_alloc(sizeof *pp);
	int before = guest_failures();
	pp->last = n - 1;
	guest_run(n, pingpong_thread, pp);
	printf("coherence: [pingpong] %s: %ld rounds between cpu %d and cpu %d, 4 KiB verified per round\n",
	       guest_failures() == before ? "PASS" : "FAIL", opt_pingpong, guest_thread_cpu(0),
	       guest_thread_cpu(n - 1));
	return guest_failures() == before;
}

static void usage(void)
{
	guest_usage("disco-coherence [-n atomic_ops] [-l list_ops] [-t min_ms] [-r ring_msgs] [-p pingpong_rounds]");
}

int main(int argc, char **argv)
{
	guest_name = "coherence";
	int c;
	while ((c = getopt(argc, argv, "n:l:t:r:p:h")) != -1) {
		switch (c) {
		case 'n': opt_atomic = guest_arg("-n", optarg, 1, 1L << 30); break;
		case 'l': opt_list = guest_arg("-l", optarg, 1, 1L << 30); break;
		case 't': opt_min_ms = guest_arg("-t", optarg, 0, 3600000); break;
		case 'r': opt_ring = guest_arg("-r", optarg, 1, 1L << 30); break;
		case 'p': opt_pingpong = guest_arg("-p", optarg, 2, 1L << 30); break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	int n = guest_cpus();
	struct { const char *name; uint64_t ns; } times[5];
	uint64_t t0 = guest_now_ns();
	test_atomics(n);
	times[0].name = "atomics"; times[0].ns = guest_now_ns() - t0;
	t0 = guest_now_ns();
	test_list(n, LOCK_MUTEX);
	times[1].name = "list/mutex"; times[1].ns = guest_now_ns() - t0;
	t0 = guest_now_ns();
	test_list(n, LOCK_SPIN);
	times[2].name = "list/spinlock"; times[2].ns = guest_now_ns() - t0;
	t0 = guest_now_ns();
	test_ring(n);
	times[3].name = "ring"; times[3].ns = guest_now_ns() - t0;
	t0 = guest_now_ns();
	test_pingpong(n);
	times[4].name = "pingpong"; times[4].ns = guest_now_ns() - t0;
	printf("coherence: times_ms");
	for (int i = 0; i < 5; i++)
		printf(" %s=%.0f", times[i].name, guest_ms(times[i].ns));
	printf("\n");
	return guest_finish();
}
