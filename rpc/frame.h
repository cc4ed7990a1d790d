// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Wire framing shared by every transport.
 *
 *   +---------+-------+----------+-------------+
 *   | version | flags |   type   |  body_len   |   8-byte header, little-endian
 *   |   u8    |  u8   |   u16    |    u32      |
 *   +---------+-------+----------+-------------+
 *   | protobuf body (body_len bytes)           |
 *   +------------------------------------------+
 *   | raw 4 KiB page, only if flags & PAGE     |
 *   +------------------------------------------+
 *
 * Page bytes travel outside protobuf so they are never copied through a
 * `bytes` field: the sender writes them straight from guest memory with
 * writev(), the receiver installs them straight from its receive buffer.
 */
#ifndef DISCO_RPC_FRAME_H
#define DISCO_RPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define RPC_FRAME_VERSION 1
#define RPC_FRAME_HEADER_SIZE 8
#define RPC_PAGE_SIZE 4096
#define RPC_FRAME_MAX_BODY (64 * 1024)
#define RPC_FRAME_FLAG_PAGE 0x01
#define RPC_FRAME_FLAGS_KNOWN RPC_FRAME_FLAG_PAGE

/* Message type ids (the header's `type`); each names one protobuf message
 * of proto/. Ranges (rpc/session.h hands each to one client): 1-15
 * membership (the transport's own), 16-31 DSM, 32-47 the round-trip
 * probe, 48-63 the session's own, 64-127 the spanning VM's messages
 * (node-monitor/qemu: IPIs, I/O forwarding, lifecycle). */
enum rpc_msg_type {
	RPC_MSG_HELLO = 1,     /* Hello: cluster, node, nonce */
	RPC_MSG_AUTH = 2,      /* AuthProof: HMAC over both nonces */
	RPC_MSG_HEARTBEAT = 3, /* Heartbeat */
	RPC_MSG_GOODBYE = 4,   /* Goodbye: orderly leave */
	RPC_MSG_MEMBERSHIP_LAST = 15,
	RPC_MSG_DSM_FIRST = 16,
	RPC_MSG_DSM = 16,      /* DsmMessage (+ page when it carries data) */
	RPC_MSG_DSM_MEMORY = 18, /* DsmMemory: registered memory for one-sided reads */
	RPC_MSG_DSM_LAST = 31,
	RPC_MSG_PROBE_FIRST = 32,
	RPC_MSG_PING = 32,     /* BenchPing: 64 B request */
	RPC_MSG_PONG = 33,     /* BenchPong (+ page): 4 KiB reply */
	RPC_MSG_PROBE_LAST = 47,
	RPC_MSG_BARRIER = 48,  /* Barrier: cluster-wide rendezvous */
	RPC_MSG_VM_FIRST = 64,
	RPC_MSG_VM_LAST = 127,
	RPC_MSG_TYPE_MAX = 127,
};

struct rpc_frame_header {
	uint8_t version;
	uint8_t flags;
	uint16_t type;
	uint32_t body_len;
};

/* A decoded frame; body and page point into the receive buffer and are
 * valid only for the duration of the callback that receives the view. */
struct rpc_frame_view {
	uint16_t type;
	uint8_t flags;
	const uint8_t *body;
	size_t body_len;
	const uint8_t *page; /* NULL unless flags & RPC_FRAME_FLAG_PAGE */
};

void rpc_frame_header_encode(uint8_t out[RPC_FRAME_HEADER_SIZE], uint16_t type, uint8_t flags,
			     uint32_t body_len);

/*
 * Parse one frame from the start of @buf (@len bytes available).
 * Returns the total frame size (> 0) and fills @view when a whole valid
 * frame is present; 0 when more bytes are needed; a negative errno when the
 * bytes can never form a valid frame:
 *   -EPROTO   unknown version, unknown flag bits, type 0 or > RPC_MSG_TYPE_MAX
 *   -EMSGSIZE body_len > RPC_FRAME_MAX_BODY
 * A description of the fault goes into @err when it is not NULL.
 */
long rpc_frame_parse(const uint8_t *buf, size_t len, struct rpc_frame_view *view, char *err,
		     size_t errlen);

#endif
