/*
 * The send path of every transport (any thread): the rules live here, the
 * bytes move in the link back end's write() (peer.h).
 *
 * The caller encodes the 8-byte header on its stack and takes the peer's
 * send_mu. A link that broke earlier answers -EPIPE / -ECONNRESET; a peer
 * that is not UP (or, for the machine's own Hello, AuthProof, Heartbeat
 * and Goodbye, has no connection that carries frames) -ENOTCONN. Then the
 * back end writes at once, straight from the caller's buffers (TCP: one
 * sendmsg(); verbs: one ibv_post_send()), or queues what cannot go now
 * behind what is already queued, so frames to one peer are never
 * reordered. No thread hop and no system call beyond the write itself.
 *
 * A queued frame needs the loop thread to flush it: a sender on the loop
 * thread asks the back end directly (flush_soon, after send_mu is
 * released) where it has a way; any other sender, and any sender that
 * broke the link, wakes the loop with uv_async_send() while still holding
 * send_mu (peer.h: stop() closes the async only after it detached every
 * connection under send_mu). So on_peer_down never runs inside send(),
 * even on the loop thread: a broken link is failed by on_async.
 *
 * An accepted connection is anonymous until the peer proved the key: no
 * sender can reach it, and the loop thread writes its Hello and AuthProof
 * straight to it (rpc_conn_send()), without a lock.
 *
 * The counters of struct rpc_transport_stats count a frame as sent when
 * the link took it, at once or into its queue; send_queued counts those
 * that did not go out whole at once.
 */
#include "peer.h"

#include <errno.h>

/* Header, body and page of one frame as @iov (3 pieces at most); the
 * header is encoded into @hdr. Returns the number of pieces. */
static int frame_iov(uint8_t hdr[RPC_FRAME_HEADER_SIZE], struct iovec iov[3], uint16_t type,
		     const void *body, size_t body_len, const void *page, size_t *total)
{
	int n = 0;

	rpc_frame_header_encode(hdr, type, page ? RPC_FRAME_FLAG_PAGE : 0, (uint32_t)body_len);
	iov[n++] = (struct iovec){ hdr, RPC_FRAME_HEADER_SIZE };
	if (body_len)
		iov[n++] = (struct iovec){ (void *)body, body_len };
	if (page)
		iov[n++] = (struct iovec){ (void *)page, RPC_PAGE_SIZE };
	*total = 0;
	for (int i = 0; i < n; i++)
		*total += iov[i].iov_len;
	return n;
}

/* Write one frame to @c, whose send state is locked; counts it. Returns 0
 * or a negative errno; *@kick: the loop thread must act (a frame queued
 * for the first time, or the link broke). */
static int write_frame(struct rpc_peers *t, struct rpc_conn *c, const struct iovec *iov, int n,
		       size_t total, bool *kick)
{
	int ret = t->link->write(c, iov, n, total);

	*kick = false;
	if (ret < 0) {
		*kick = c->send_err != 0; /* the loop fails the connection */
		return ret;
	}
	if (ret == RPC_LINK_QUEUED) {
		rpc_stat_add(&t->base.stats.send_queued, 1);
		if (!c->flush_wanted) {
			c->flush_wanted = true;
			*kick = true;
		}
	}
	rpc_stat_add(&t->base.stats.frames_sent, 1);
	rpc_stat_add(&t->base.stats.bytes_sent, total);
	return 0;
}

int rpc_peer_send(struct rpc_peer *p, uint16_t type, const void *body, size_t body_len,
		  const void *page, bool internal)
{
	struct rpc_peers *t = p->t;
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	struct iovec iov[3];
	size_t total;
	int n = frame_iov(hdr, iov, type, body, body_len, page, &total), ret;
	bool kick = false;

	pthread_mutex_lock(&p->send_mu);
	struct rpc_conn *c = p->send_conn;
	if (c && c->send_err) {
		ret = rpc_send_error(c->send_err);
		goto out;
	}
	if (!c || (!internal && !p->sendable)) {
		ret = -ENOTCONN;
		goto out;
	}
	ret = write_frame(t, c, iov, n, total, &kick);
out:;
	/* On the loop thread a queued frame is flushed directly; @c stays
	 * valid after the unlock, since only this thread closes it. */
	bool here = kick && !c->send_err && t->link->flush_soon && rpc_on_loop_thread(t);
	if (kick && !here)
		uv_async_send(&t->async);
	pthread_mutex_unlock(&p->send_mu);
	if (here)
		t->link->flush_soon(c);
	return ret;
}

int rpc_conn_send(struct rpc_conn *c, uint16_t type, const void *body, size_t body_len)
{
	struct rpc_peers *t = c->t;
	uint8_t hdr[RPC_FRAME_HEADER_SIZE];
	struct iovec iov[3];
	size_t total;
	bool kick;

	if (c->attached)
		return rpc_peer_send(rpc_conn_peer(c), type, body, body_len, NULL, true);
	if (c->closing)
		return -ENOTCONN;
	if (c->send_err)
		return rpc_send_error(c->send_err);
	int n = frame_iov(hdr, iov, type, body, body_len, NULL, &total);
	int ret = write_frame(t, c, iov, n, total, &kick);
	if (ret == 0 && kick && t->link->flush_soon)
		t->link->flush_soon(c);
	return ret;
}

int rpc_peers_send(struct rpc_transport *bt, int peer, uint16_t type, const void *body,
		   size_t body_len, const void *page)
{
	struct rpc_peers *t = rpc_peers_of(bt);

	if (peer < 0 || peer >= rpc_peers_cfg(t)->n_nodes || peer == t->base.self)
		return -EINVAL;
	if (type == 0 || type > RPC_MSG_TYPE_MAX || (body_len && !body))
		return -EINVAL;
	if (body_len > t->link->max_body)
		return -EMSGSIZE;
	return rpc_peer_send(&t->peers[peer], type, body, body_len, page, false);
}
