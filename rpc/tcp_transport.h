// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * TCP-specific additions to the transport interface (transport.h).
 */
#ifndef DISCO_RPC_TCP_TRANSPORT_H
#define DISCO_RPC_TCP_TRANSPORT_H

#include "rpc/transport.h"

/* Largest amount of unsent bytes queued for one peer; a send that would
 * exceed it returns -ENOBUFS (nothing is written, the caller may retry). */
#define RPC_TCP_OUTQ_MAX (64u << 20)
/* Receive buffer of one connection (holds several maximal frames). */
#define RPC_TCP_RBUF_SIZE (256u * 1024)

/*
 * Like stop, but without Goodbye and with every connection reset (SO_LINGER
 * 0): what peers see when this node crashes. For tests. Loop thread only.
 */
void rpc_tcp_transport_abort(struct rpc_transport *t);

#endif
