/*
 * The membership frames both transports send the same way once a peer is
 * up (proto/membership.proto): Heartbeat and Goodbye. Pure packing and
 * unpacking, no I/O.
 */
#ifndef DISCO_RPC_MEMBERSHIP_H
#define DISCO_RPC_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>

#define RPC_HEARTBEAT_MAX 16
#define RPC_GOODBYE_MAX 64

/* Pack a Heartbeat stamped @sent_ns into @buf; returns its length. */
size_t rpc_pack_heartbeat(uint64_t sent_ns, uint8_t buf[RPC_HEARTBEAT_MAX]);
/* Pack a Goodbye saying "node stopping" into @buf; returns its length. */
size_t rpc_pack_goodbye(uint8_t buf[RPC_GOODBYE_MAX]);
/* The reason a Goodbye body gives, escaped (rpc/log.h: disco_escape()),
 * or "no reason given" (also for a body that does not decode). */
void rpc_goodbye_reason(const uint8_t *body, size_t len, char *out, size_t outlen);

#endif
