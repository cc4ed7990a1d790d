/*
 * Helpers both transports share (rpc/transport_common.c). Internal to
 * rpc/.
 */
#ifndef DISCO_RPC_TRANSPORT_COMMON_H
#define DISCO_RPC_TRANSPORT_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/transport.h"

#define RPC_WHY_MAX 512

/* Check the create() arguments and fill @t's common fields: -EINVAL for
 * a node index out of range, too many nodes or zero heartbeat/timeout. */
int rpc_transport_base_init(struct rpc_transport *t, const struct rpc_transport_ops *ops,
			    uv_loop_t *loop, const struct cluster_config *cfg, int self,
			    const struct rpc_callbacks *cb, void *opaque);
/* The checks of send(): -EINVAL (bad peer, type or body), -EMSGSIZE
 * (body above @max_body), else 0. */
int rpc_transport_check_send(const struct rpc_transport *t, int peer, uint16_t type,
			     const void *body, size_t body_len, size_t max_body);
/* What a transport does with a frame from a peer that is UP. */
enum rpc_up_frame {
	RPC_UP_DELIVER,        /* hand it to on_frame */
	RPC_UP_IGNORE,         /* heartbeat (its arrival is what counts), unknown membership */
	RPC_UP_GOODBYE,        /* the peer leaves */
	RPC_UP_PROTOCOL_ERROR, /* Hello or AuthProof after authentication: fail the peer */
};
enum rpc_up_frame rpc_classify_up_frame(uint16_t type);

/* "<desc>: <reason>" into @out, unless the reason already starts with
 * @desc (the auth module's messages do). */
void rpc_compose_why(char *out, size_t len, const char *desc, const char *fmt, va_list ap);

#endif
