/*
 * Connection authentication: a challenge-response over the cluster's
 * pre-shared key (proto/membership.proto, docs/transport.md).
 *
 *   both sides:  Hello {protocol_version, cluster_name, node_name,
 *                       node_index, nonce (32 random bytes)}
 *   on the peer's Hello, after validating it:
 *                AuthProof {mac = HMAC-SHA256(key, "disco-auth-v1" ||
 *                       receiver_nonce || sender_nonce ||
 *                       u32le sender_index || u32le receiver_index)}
 *   on the peer's AuthProof: recompute and compare in constant time.
 *
 * The nonces are fresh per connection, so a recorded proof is useless on a
 * later connection (replay), and the fixed order of nonces and indices
 * makes a side's own proof fail when sent back to it (reflection).
 *
 * These are pure functions with no I/O, so tests drive both sides in
 * memory. One struct rpc_auth per connection; not thread-safe (the
 * transport uses it only on its loop thread).
 *
 * Errors are negative errno values with one line in @err that names the
 * peer and the reason, e.g. "node n2 (127.0.0.1:7402): wrong key (bad HMAC)"
 * on a connection we dialled, "claims to be node n2: wrong key (bad HMAC)"
 * on one we accepted (nothing is proven yet; the caller adds the
 * connection's real address). Text the peer sent is escaped
 * (disco_escape()).
 *   -EPROTO  malformed message, wrong protocol version, bad nonce/MAC
 *            length, message out of order
 *   -EPERM   identity refused: other cluster, index out of range or our
 *            own, name not the config's name for that index, not the node
 *            we dialled
 *   -EACCES  bad HMAC (wrong key, replayed or reflected proof)
 */
#ifndef DISCO_RPC_AUTH_H
#define DISCO_RPC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster-config/cluster_config.h"

#define RPC_AUTH_NONCE_LEN 32
#define RPC_AUTH_MAC_LEN 32
#define RPC_AUTH_CONTEXT "disco-auth-v1"
/* Upper bounds of the packed messages, for stack buffers. */
#define RPC_AUTH_HELLO_MAX (32 + 2 * CLUSTER_NAME_MAX + RPC_AUTH_NONCE_LEN + 16)
#define RPC_AUTH_PROOF_MAX (RPC_AUTH_MAC_LEN + 8)

struct rpc_auth {
	const struct cluster_config *cfg;
	int self;
	int peer;             /* index named by the accepted Hello, -1 before */
	bool accepted;        /* the peer dialled us: until its proof, it only claims
			       * to be node `peer` (messages say so) */
	bool hello_done;      /* the peer's Hello was accepted */
	bool proof_ok;        /* the peer's AuthProof was verified */
	uint8_t nonce[RPC_AUTH_NONCE_LEN];      /* ours, fresh per connection */
	uint8_t peer_nonce[RPC_AUTH_NONCE_LEN]; /* valid once hello_done */
};

/* Prepare the state of one connection of node @self: draws a fresh nonce.
 * Returns 0 or -EIO when libsodium cannot initialise. */
int rpc_auth_init(struct rpc_auth *a, const struct cluster_config *cfg, int self);

/* Pack our Hello into @buf; returns its length or -ENOSPC. */
long rpc_auth_make_hello(const struct rpc_auth *a, uint8_t *buf, size_t cap);

/* Validate the peer's Hello. @expected_peer is the node we dialled, or -1
 * for an accepted connection (any index but ours). Returns the peer's
 * index (>= 0) or a negative errno. */
int rpc_auth_on_hello(struct rpc_auth *a, const uint8_t *body, size_t len, int expected_peer,
		      char *err, size_t errlen);

/* Pack our AuthProof for the peer whose Hello was accepted; returns its
 * length, -EPROTO before rpc_auth_on_hello succeeded, or -ENOSPC. */
long rpc_auth_make_proof(const struct rpc_auth *a, uint8_t *buf, size_t cap);

/* Verify the peer's AuthProof. Returns 0 when the peer proved the key. */
int rpc_auth_check_proof(struct rpc_auth *a, const uint8_t *body, size_t len, char *err,
			 size_t errlen);

/* True when the peer's Hello and proof were both accepted. */
static inline bool rpc_auth_done(const struct rpc_auth *a) { return a->hello_done && a->proof_ok; }

/* "node n2 (127.0.0.1:7402)" for node @index of @cfg. */
void rpc_auth_describe_node(const struct cluster_config *cfg, int index, char *buf, size_t len);

#endif
