// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Reading and printing DSM statistics (struct dsm_stats, region.h).
 */
#include <inttypes.h>
#include <stdio.h>

#include "dsm/region.h"

double dsm_stats_latency_percentile(const struct dsm_stats *s, double p)
{
	uint64_t total = 0, seen = 0;
	for (int b = 0; b < DSM_LATENCY_BUCKETS; b++)
		total += s->fault_latency_us[b];
	if (!total)
		return 0;
	uint64_t rank = (uint64_t)((p / 100.0) * (double)total);
	if (rank >= total)
		rank = total - 1;
	for (int b = 0; b < DSM_LATENCY_BUCKETS; b++) {
		seen += s->fault_latency_us[b];
		if (seen > rank)
			return (double)(2ULL << b); /* upper bound of [2^b, 2^(b+1)) */
	}
	return 0;
}

void dsm_stats_print(const struct dsm_stats *s, const char *prefix, FILE *f)
{
	const struct dsm_engine_counters *e = &s->engine;
#define P(name, v) fprintf(f, "%s" name "=%" PRIu64 "\n", prefix, (uint64_t)(v))
	P("read_faults", e->local_read_faults);
	P("write_faults", e->local_write_faults);
	P("first_touch_or_spurious_faults", e->spurious_faults);
	P("faults_served", s->faults_served);
	P("requests_sent", e->requests_sent);
	P("requests_forwarded", e->requests_forwarded);
	P("grants_sent", e->grants_sent);
	P("invalidations_sent", e->invalidations_sent);
	P("fetches_sent", e->fetches_sent);
	P("migrations_out", e->migrations_out);
	P("migrations_in", e->migrations_in);
	P("protocol_errors", e->protocol_errors);
	P("failed_requests", e->failed_requests);
	P("frames_sent", s->frames_sent);
	P("frames_received", s->frames_received);
	P("bytes_sent", s->bytes_sent);
	P("bytes_received", s->bytes_received);
	P("pages_sent", s->pages_sent);
	P("pages_received", s->pages_received);
	P("pages_granted_by_read", s->pages_granted_by_read);
	P("pages_read", s->pages_read);
	P("page_rereads", s->page_rereads);
	P("pages_present", s->pages_present);
	P("pages_present_max", s->pages_present_max);
	P("pages_prefetched", s->pages_prefetched);
	P("prefetch_dropped", s->prefetch_dropped);
	P("budget_frames", s->budget_frames);
	P("min_cache_frames", s->min_cache_frames);
	P("frames_used", s->frames_used);
	P("home_frames", s->home_frames);
	P("evictions", e->evictions);
	P("writebacks", e->writebacks);
	P("room_waits", e->room_waits);
	P("room_sweeps_empty", s->room_sweeps_empty);
	P("offers_sent", e->offers_sent);
	P("offers_refused", e->offers_refused);
	P("offers_declined", e->offers_declined);
	P("policy_intervals", s->policy.intervals);
	P("policy_hot_pages", s->policy.hot_pages);
	P("policy_migrations", s->policy.migrations);
	P("policy_replications", s->policy.replications);
	P("policy_frozen_pages", s->policy.freezes);
	P("policy_capped", s->policy.capped);
	P("policy_refused", s->policy.refused);
	P("policy_handbacks", s->policy.handbacks);
	P("policy_moves_retried", s->moves_retried);
#undef P
	if (s->faults_served) {
		double n = (double)s->faults_served * 1000.0;
		fprintf(f, "%sfault_mean_send_us=%.1f\n", prefix, (double)s->fault_send_ns / n);
		double wait = (double)s->fault_send_wait_ns - (double)s->fault_send_ns;
		fprintf(f, "%sfault_mean_wait_us=%.1f\n", prefix, (wait > 0 ? wait : 0) / n);
		fprintf(f, "%sfault_mean_install_us=%.1f\n", prefix, (double)s->fault_install_ns / n);
	}
	fprintf(f, "%sfault_latency_p50_us<=%.0f\n", prefix, dsm_stats_latency_percentile(s, 50));
	fprintf(f, "%sfault_latency_p99_us<=%.0f\n", prefix, dsm_stats_latency_percentile(s, 99));
}
