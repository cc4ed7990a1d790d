// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * discod's control connections: how the `disco` command and the other
 * nodes' daemons reach a node's daemon (proto/control.proto).
 *
 * Two ways in:
 *   - the local Unix socket (RUN_DIR/discod-NODE.sock): its file
 *     permissions are the authentication (0600, or 0660 with a group:
 *     discod --socket-group); no handshake, the request comes first;
 *   - the control port (nodes[].control_port, TCP): a challenge-response
 *     over the cluster key before anything else, like the transport's
 *     (docs/transport.md) but with its own label, so a proof made for one
 *     can never pass for the other:
 *
 *       dialler                          acceptor (discod)
 *         Hello{role, nonce_d} --------->  checks version, service, cluster
 *                              <---------  Hello{role, nonce_a}
 *                              <---------  Proof{mac_a}
 *         checks mac_a
 *         Proof{mac_d} ----------------->  checks mac_d
 *         Request ---------------------->
 *                              <---------  Reply [then Data both ways: console]
 *
 *     mac = HMAC-SHA256(key, "disco-control-v1" || receiver_nonce ||
 *                       sender_nonce || sender_role || 0x00 || receiver_role)
 *     A role is a node's name or "" for the disco command. The acceptor
 *     proves first, only to a dialler whose Hello names this cluster: the
 *     dialler (often a person's command) learns it reached a daemon that
 *     holds the key before it sends anything that matters.
 *
 * Frames are the transport's (rpc/frame.h: 8-byte header, protobuf body)
 * with the types below; a body is at most RPC_FRAME_MAX_BODY. One request
 * per connection; the console then carries CONTROL_DATA frames both ways.
 *
 * Everything here is blocking, with a deadline per call, for threads that
 * may block (the CLI, discod's connection threads). Errors are negative
 * errno values with one line in @err naming the daemon and what failed.
 */
#ifndef DISCO_CONTROL_H
#define DISCO_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster-config/cluster_config.h"
#include "control.pb-c.h"

#define CONTROL_VERSION 1
#define CONTROL_SERVICE "disco-control"
#define CONTROL_LABEL "disco-control-v1"
#define CONTROL_NONCE_LEN 32
#define CONTROL_MAC_LEN 32

enum control_frame_type {
	CONTROL_HELLO = 1,
	CONTROL_PROOF = 2,
	CONTROL_REQUEST = 3,
	CONTROL_REPLY = 4,
	CONTROL_DATA = 5,
};

/* One connection, either side. */
struct control_conn {
	int fd;
	char peer[160];     /* "discod n1 (10.0.0.2:7399)", for messages */
	uint8_t *buf;       /* receive buffer: one frame */
	size_t cap;
};

/* ---- authentication, pure (control_auth.c) ---------------------------- */

/* The MAC a sender with role @sender proves the key with to @receiver. */
void control_mac(const struct cluster_config *cfg, const uint8_t receiver_nonce[CONTROL_NONCE_LEN],
		 const uint8_t sender_nonce[CONTROL_NONCE_LEN], const char *sender,
		 const char *receiver, uint8_t mac[CONTROL_MAC_LEN]);
/* 0 when @hello is one we accept (version, service, cluster, nonce
 * length); else -EPROTO or -EPERM with the reason in @err. */
int control_check_hello(const struct cluster_config *cfg, const Disco__ControlHello *hello,
			char *err, size_t errlen);
/* 0 when @mac is the one @sender should have sent (constant time), else
 * -EACCES. */
int control_check_mac(const struct cluster_config *cfg, const uint8_t receiver_nonce[CONTROL_NONCE_LEN],
		      const uint8_t sender_nonce[CONTROL_NONCE_LEN], const char *sender,
		      const char *receiver, const uint8_t *mac, size_t mac_len);

/* ---- frames (control_conn.c) --------------------------------------- */

void control_conn_init(struct control_conn *c, int fd, const char *peer);
void control_conn_close(struct control_conn *c);
/* A frame of @type with @body; -ETIMEDOUT after @timeout_ms. */
int control_send(struct control_conn *c, uint16_t type, const void *body, size_t len, int timeout_ms);
/* A protobuf message as the body of a frame of @type. */
int control_send_msg(struct control_conn *c, uint16_t type, const ProtobufCMessage *m, int timeout_ms);
/* The next frame: its type and body (valid until the next receive).
 * -ECONNRESET on EOF, -ETIMEDOUT after @timeout_ms (< 0: no limit),
 * -EPROTO for bytes that are no frame. */
int control_recv(struct control_conn *c, uint16_t *type, const uint8_t **body, size_t *len,
		 int timeout_ms, char *err, size_t errlen);

/* ---- the dialling side (control_client.c) ---------------------------- */

/* Connect to the Unix socket @path. -ENOENT / -ECONNREFUSED / -EACCES
 * with a message naming the socket. */
int control_connect_unix(const char *path, const char *who, struct control_conn *c, char *err,
			 size_t errlen);
/* Connect to node @node's control port and authenticate as @role (a node
 * name, or "" for the disco command). */
int control_connect_tcp(const struct cluster_config *cfg, int node, const char *role,
			int timeout_ms, struct control_conn *c, char *err, size_t errlen);
/* Send @rq and wait for the reply (free with disco__control_reply__free_unpacked). */
int control_call(struct control_conn *c, const Disco__ControlRequest *rq, Disco__ControlReply **reply,
		 int timeout_ms, char *err, size_t errlen);

/* ---- the accepting side (control_server.c) --------------------------- */

/* Run the acceptor's half of the handshake on a fresh TCP connection for
 * node @self. On success *@role is the dialler's role (a node name or ""),
 * malloc'd. */
int control_accept_tcp(const struct cluster_config *cfg, int self, struct control_conn *c,
		       int timeout_ms, char **role, char *err, size_t errlen);
/* Read the connection's request (free with
 * disco__control_request__free_unpacked). */
int control_read_request(struct control_conn *c, int timeout_ms, Disco__ControlRequest **rq,
			 char *err, size_t errlen);

/* The request's name for messages: "vm start", "status", ... */
const char *control_op_name(Disco__ControlRequest__Op op);

#endif
