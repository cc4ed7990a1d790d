// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * RDMA-specific additions to the transport interface (transport.h): the
 * limits of the verbs transport (verbs_transport.c, verbs_link.c) and the
 * private data of its connect requests. Our own names here start with
 * rpc_ / RPC_ / verbs_ / VERBS_: rdma_* and RDMA_* belong to librdmacm.
 */
#ifndef DISCO_RPC_VERBS_TRANSPORT_H
#define DISCO_RPC_VERBS_TRANSPORT_H

#include <stdint.h>

#include "rpc/transport.h"

/* Largest frame body the RDMA transport carries: every message lands in a
 * pre-posted receive buffer of fixed size (header + body + page), so the
 * limit is much lower than the TCP transport's RPC_FRAME_MAX_BODY. A larger
 * send returns -EMSGSIZE. Every message disco sends is far smaller. */
#define RPC_RDMA_MAX_BODY (8u * 1024)
/* Messages one node may have in flight to a peer before the peer hands
 * credits back (= receive buffers the peer keeps posted for it). */
#define RPC_RDMA_CREDITS 32u
/* Bytes of frames queued for one peer while it has no credit; a send
 * beyond that returns -ENOBUFS. */
#define RPC_RDMA_PENDING_MAX (64u << 20)

/* Private data of a connect request: who is dialling. */
#define VERBS_CONNECT_MAGIC 0x4f435344u /* "DSCO" */
#define VERBS_CONNECT_VERSION 1

struct verbs_connect_data {
	uint32_t magic;   /* VERBS_CONNECT_MAGIC, little-endian */
	uint8_t version;  /* VERBS_CONNECT_VERSION */
	uint8_t reserved;
	uint16_t node;    /* the dialler's node index, little-endian */
};

/*
 * Like stop, but without Goodbye: every queue pair is destroyed at once,
 * which is what peers see when this node crashes. For tests. Loop thread.
 */
void rpc_rdma_transport_abort(struct rpc_transport *t);

#endif
