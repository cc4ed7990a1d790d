/*
 * What both transports (tcp_*.c, verbs_*.c) do the same way: argument
 * checks, filling the common part of struct rpc_transport, and the one-line
 * reasons they log and hand to on_peer_down.
 */
#include "rpc/transport_common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const state_names[] = {
	[RPC_PEER_CONNECTING] = "connecting", [RPC_PEER_AUTHENTICATING] = "authenticating",
	[RPC_PEER_UP] = "up",                 [RPC_PEER_LEFT] = "left",
	[RPC_PEER_FAILED] = "failed",
};

const char *rpc_peer_state_name(enum rpc_peer_state s)
{
	if ((unsigned)s < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[s];
	return "?";
}

int rpc_transport_base_init(struct rpc_transport *t, const struct rpc_transport_ops *ops,
			    uv_loop_t *loop, const struct cluster_config *cfg, int self,
			    const struct rpc_callbacks *cb, void *opaque)
{
	if (!loop || !cfg || self < 0 || self >= cfg->n_nodes ||
	    cfg->n_nodes > CLUSTER_MAX_NODES || cfg->heartbeat_ms == 0 ||
	    cfg->peer_timeout_ms == 0)
		return -EINVAL;
	t->ops = ops;
	t->cfg = cfg;
	t->self = self;
	if (cb)
		t->cb = *cb;
	t->opaque = opaque;
	t->loop = loop;
	return 0;
}

int rpc_transport_check_send(const struct rpc_transport *t, int peer, uint16_t type,
			     const void *body, size_t body_len, size_t max_body)
{
	if (peer < 0 || peer >= t->cfg->n_nodes || peer == t->self)
		return -EINVAL;
	if (type == 0 || type > RPC_MSG_TYPE_MAX || (body_len && !body))
		return -EINVAL;
	if (body_len > max_body)
		return -EMSGSIZE;
	return 0;
}

enum rpc_up_frame rpc_classify_up_frame(uint16_t type)
{
	switch (type) {
	case RPC_MSG_HELLO:
	case RPC_MSG_AUTH:
		return RPC_UP_PROTOCOL_ERROR;
	case RPC_MSG_GOODBYE:
		return RPC_UP_GOODBYE;
	default:
		return type < RPC_MSG_DSM ? RPC_UP_IGNORE : RPC_UP_DELIVER;
	}
}

void rpc_compose_why(char *out, size_t len, const char *desc, const char *fmt, va_list ap)
{
	char reason[RPC_WHY_MAX];

	vsnprintf(reason, sizeof(reason), fmt, ap);
	if (!strncmp(reason, desc, strlen(desc)))
		snprintf(out, len, "%s", reason);
	else
		snprintf(out, len, "%s: %s", desc, reason);
}
