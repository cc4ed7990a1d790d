// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Frame header encoding and parsing (layout in frame.h).
 *
 * The parser is the first code that touches bytes from the network, so it
 * trusts nothing: it checks each header field as soon as the bytes holding
 * it are present (garbage is refused after one byte, not after eight), it
 * never reads past @len, and the sizes it computes cannot overflow (body_len
 * is bounded before it is added to anything).
 */
#include "rpc/frame.h"

#include <errno.h>
#include <stdio.h>

void rpc_frame_header_encode(uint8_t out[RPC_FRAME_HEADER_SIZE], uint16_t type, uint8_t flags,
			     uint32_t body_len)
{
	out[0] = RPC_FRAME_VERSION;
	out[1] = flags;
	out[2] = (uint8_t)type;
	out[3] = (uint8_t)(type >> 8);
	out[4] = (uint8_t)body_len;
	out[5] = (uint8_t)(body_len >> 8);
	out[6] = (uint8_t)(body_len >> 16);
	out[7] = (uint8_t)(body_len >> 24);
}

#define FAIL(code, ...)                                                                            \
	do {                                                                                       \
		if (err && errlen)                                                                 \
			snprintf(err, errlen, __VA_ARGS__);                                        \
		return -(code);                                                                    \
	} while (0)

long rpc_frame_parse(const uint8_t *buf, size_t len, struct rpc_frame_view *view, char *err,
		     size_t errlen)
{
	if (len >= 1 && buf[0] != RPC_FRAME_VERSION)
		FAIL(EPROTO, "bad frame: version %u, expected %u", buf[0], RPC_FRAME_VERSION);
	if (len >= 2 && (buf[1] & ~RPC_FRAME_FLAGS_KNOWN))
		FAIL(EPROTO, "bad frame: unknown flag bits 0x%02x", buf[1] & ~RPC_FRAME_FLAGS_KNOWN);
	if (len >= 4) {
		uint16_t type = (uint16_t)(buf[2] | buf[3] << 8);
		if (type == 0 || type > RPC_MSG_TYPE_MAX)
			FAIL(EPROTO, "bad frame: message type %u out of range 1..%u", type,
			     RPC_MSG_TYPE_MAX);
	}
	if (len < RPC_FRAME_HEADER_SIZE)
		return 0;

	uint8_t flags = buf[1];
	uint16_t type = (uint16_t)(buf[2] | buf[3] << 8);
	uint32_t body_len = (uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 |
			    (uint32_t)buf[7] << 24;
	if (body_len > RPC_FRAME_MAX_BODY)
		FAIL(EMSGSIZE, "bad frame: body of %u bytes exceeds the limit of %u", body_len,
		     RPC_FRAME_MAX_BODY);

	size_t total = RPC_FRAME_HEADER_SIZE + (size_t)body_len +
		       ((flags & RPC_FRAME_FLAG_PAGE) ? RPC_PAGE_SIZE : 0);
	if (len < total)
		return 0;

	if (view) {
		view->type = type;
		view->flags = flags;
		view->body = buf + RPC_FRAME_HEADER_SIZE;
		view->body_len = body_len;
		view->page = (flags & RPC_FRAME_FLAG_PAGE) ? buf + RPC_FRAME_HEADER_SIZE + body_len
							   : NULL;
	}
	return (long)total;
}
