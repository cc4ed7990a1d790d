/*
 * ipi: ping-pong of inter-processor interrupts between a CPU of the
 * master's node (A) and one of another node (B), mini.ipi_n rounds
 * (default 200). A sends vector VEC_PING to B and waits (halted) for the
 * pong; B's handler counts the ping, sends EOI and answers with VEC_PONG,
 * which A's handler counts. Both directions cross nodes through disco's
 * interrupt routing (an IPI message to the node of the destination vCPU).
 * Expected: A sent n pings, B received n, B sent n pongs, A received n.
 * -DBREAK: B's handler does not send the EOI, so the vector stays in
 * service and B's APIC holds back every later ping.
 */
#include "mini.h"

static struct {
	struct pair p;
	uint32_t n;
	volatile uint32_t pings_sent, pings_received, pongs_sent, pongs_received;
	volatile uint32_t stop;
	uint32_t failed_round;
} run __attribute__((aligned(4096)));

static void on_ping(void)
{
	run.pings_received++;
#ifndef BREAK
	lapic_eoi();
#endif
	if (ipi_send(run.p.a, VEC_PONG))
		run.pongs_sent++;
}

static void on_pong(void)
{
	run.pongs_received++;
	lapic_eoi();
}

static void ipi_worker(void *arg)
{
	if (this_cpu() == run.p.a) {
		for (uint32_t r = 1; r <= run.n; r++) {
			uint64_t deadline = wait_deadline();

			if (ipi_send(run.p.b, VEC_PING))
				run.pings_sent++;
			while (READ_ONCE(run.pongs_received) < r) {
				if (now_us() > deadline) {
					run.failed_round = r;
					goto out;
				}
				cpu_wait();
			}
		}
out:
		WRITE_ONCE(run.stop, 1);
		mfence();
		ipi_send(run.p.b, VEC_WAKE);
	} else {
		/* B: until A says stop (A's own waits are bounded) */
		uint64_t deadline = now_us() + cmdline_u64("mini.test_timeout", 600) * 1000000;

		while (!READ_ONCE(run.stop) && now_us() < deadline)
			cpu_wait(); /* pings are handled in here */
		lapic_drain_isr(); /* after a -DBREAK run: the vector left in service */
	}
}

bool test_ipi(void)
{
	uint64_t late;
	uint64_t t0;

	if (!test_pair_ready("ipi", &run.p))
		return false;
	run.n = (uint32_t)cmdline_u64("mini.ipi_n", 200);
	irq_register(VEC_PING, on_ping);
	irq_register(VEC_PONG, on_pong);
	t0 = now_us();
	bool done = test_run(pair_mask(run.p), ipi_worker, &late);
	uint64_t us = now_us() - t0;
	bool ok = done && !run.failed_round && run.pings_sent == run.n &&
		  run.pings_received == run.n && run.pongs_sent == run.n &&
		  run.pongs_received == run.n;

	test_result("ipi", ok,
		    "cpus=%d(node %u),%d(node %u) rounds=%u pings sent=%u received=%u pongs sent=%u received=%u round_trip_us=%lu%s",
		    run.p.a, boot.cpu[run.p.a].node, run.p.b, boot.cpu[run.p.b].node, run.n,
		    run.pings_sent, run.pings_received, run.pongs_sent, run.pongs_received,
		    run.pongs_received ? us / run.pongs_received : 0,
		    run.failed_round ? " (no pong: timed out)" : "");
	return ok;
}
