/*
 * One-sided reads of the RDMA transport: memory registered once for the
 * whole run, and RDMA READs of a peer's registered memory, posted on the
 * same queue pair as the frames and completed on its send completion
 * queue (verbs_link.c reaps it and counts finished reads).
 *
 * Threads. register_memory() runs before any read (the DSM: on its loop
 * thread right after start(), before any peer is up); the registered
 * list is guarded by mr_mu, a leaf lock. read() and read_wait() may run on
 * any thread; they take the peer's send_mu like a send. read_wait() polls
 * the send CQ (no completion channel): it waits only for reads already on
 * the wire, a few microseconds on a NIC, and reaping is what a sender
 * would do anyway.
 *
 * Access: registered memory is LOCAL_WRITE (reads land in it) and
 * REMOTE_READ, never REMOTE_WRITE. Peers learn an rkey only from the
 * caller, after authentication; a read with a bad key or address fails
 * with a remote access error, which fails the peer like any other work
 * request error.
 */
#include "verbs_internal.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#include "rpc/log.h"

int verbs_register_memory(struct rpc_transport *bt, void *addr, size_t len, uint32_t *rkey)
{
	struct verbs_transport *t = verbs_of(rpc_peers_of(bt));
	int rc = 0;

	if (!t->pd)
		return -EINVAL; /* not started */
	pthread_mutex_lock(&t->mr_mu);
	if (t->n_mrs == VERBS_MAX_MRS) {
		rc = -ENOSPC;
		goto out;
	}
	struct ibv_mr *mr = ibv_reg_mr(t->pd, addr, len,
				       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
	if (!mr) {
		rc = -errno;
		disco_log(DISCO_LOG_ERROR, "rdma device %s: cannot register %zu MiB for one-sided "
			  "reads: %s (is the locked-memory limit, `ulimit -l`, high enough?)",
			  ibv_get_device_name(t->verbs->device), len >> 20, strerror(-rc));
		goto out;
	}
	t->mrs[t->n_mrs++] = mr;
	*rkey = mr->rkey;
out:
	pthread_mutex_unlock(&t->mr_mu);
	return rc;
}

void verbs_release_memory(struct verbs_transport *t)
{
	pthread_mutex_lock(&t->mr_mu);
	while (t->n_mrs > 0)
		ibv_dereg_mr(t->mrs[--t->n_mrs]);
	pthread_mutex_unlock(&t->mr_mu);
}

/* The lkey of registered memory holding [addr, addr+len), or -ENOENT. */
static int64_t local_key(struct verbs_transport *t, const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	int64_t key = -ENOENT;

	pthread_mutex_lock(&t->mr_mu);
	for (int i = 0; i < t->n_mrs; i++) {
		uintptr_t lo = (uintptr_t)t->mrs[i]->addr;
		if (a >= lo && a + len <= lo + t->mrs[i]->length) {
			key = t->mrs[i]->lkey;
			break;
		}
	}
	pthread_mutex_unlock(&t->mr_mu);
	return key;
}

int verbs_read(struct rpc_transport *bt, int peer, void *local, size_t len, uint64_t remote_addr,
	       uint32_t rkey, bool fence, uint64_t *ticket)
{
	struct verbs_transport *t = verbs_of(rpc_peers_of(bt));
	int64_t lkey = local_key(t, local, len);
	int rc = 0;

	if (peer < 0 || peer >= bt->cfg->n_nodes || peer == bt->self || lkey < 0 ||
	    len > UINT32_MAX)
		return -EINVAL;
	struct rpc_peer *p = &t->peers.peers[peer];
	struct verbs_reads *reads = &t->reads[peer];
	pthread_mutex_lock(&p->send_mu);
	if (!p->send_conn || p->send_conn->send_err || !p->sendable) {
		rc = p->send_conn && p->send_conn->send_err ? -EPIPE : -ENOTCONN;
		goto out;
	}
	struct verbs_link *l = verbs_link_of(p->send_conn);
	verbs_link_reap_sends(l);
	if (reads->posted - reads->done >= t->rd_atomic ||
	    l->sq_used >= VERBS_SQ_DEPTH + VERBS_READ_DEPTH) {
		rc = -EAGAIN;
		goto out;
	}
	struct ibv_sge sge = { .addr = (uintptr_t)local, .length = (uint32_t)len,
			       .lkey = (uint32_t)lkey };
	struct ibv_send_wr wr = {
		.wr_id = VERBS_WR_READ_TAG | (reads->posted + 1),
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_RDMA_READ,
		.send_flags = IBV_SEND_SIGNALED | (fence ? IBV_SEND_FENCE : 0),
		.wr.rdma = { .remote_addr = remote_addr, .rkey = rkey },
	}, *bad;
	int r = ibv_post_send(l->id->qp, &wr, &bad);
	if (r) {
		l->conn.send_err = -r;
		l->conn.send_why = "posting a read failed";
		rc = -EPIPE;
		rpc_peers_wake(&t->peers); /* under send_mu, as a send does: the loop fails the peer */
		goto out;
	}
	l->sq_used++;
	*ticket = ++reads->posted;
out:
	pthread_mutex_unlock(&p->send_mu);
	return rc;
}

static uint64_t elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - since->tv_sec) * 1000 +
	       (uint64_t)((now.tv_nsec - since->tv_nsec) / 1000000);
}

int verbs_read_wait(struct rpc_transport *bt, int peer, uint64_t ticket, unsigned timeout_ms)
{
	struct verbs_transport *t = verbs_of(rpc_peers_of(bt));
	struct timespec start;

	if (peer < 0 || peer >= bt->cfg->n_nodes || peer == bt->self)
		return -EINVAL;
	struct rpc_peer *p = &t->peers.peers[peer];
	const struct verbs_reads *reads = &t->reads[peer];
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned spins = 0;; spins++) {
		pthread_mutex_lock(&p->send_mu);
		struct rpc_conn *c = p->send_conn;
		if (c)
			verbs_link_reap_sends(verbs_link_of(c));
		bool done = reads->done >= ticket;
		bool failed = !c || c->send_err;
		if (!done && c && c->send_err)
			rpc_peers_wake(&t->peers); /* under send_mu, as a send does */
		pthread_mutex_unlock(&p->send_mu);
		if (done)
			return 0;
		if (failed)
			return -EIO;
		if ((spins & 63) == 63) {
			if (elapsed_ms(&start) >= timeout_ms)
				return -ETIMEDOUT;
			sched_yield(); /* Soft-RoCE completes in a kernel thread */
		}
	}
}
