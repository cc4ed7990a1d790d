/*
 * Challenge-response authentication (protocol in auth.h and
 * docs/transport.md).
 *
 * The checks on a Hello run from the cheapest to the most specific, and
 * every refusal names what the Hello claimed and what we expected, since
 * the usual cause is a config file that differs between two machines.
 * Secrets (key, MAC state, expected MAC) are wiped after use.
 *
 * Whoever sent a Hello on a connection we accepted has proven nothing yet,
 * so messages about it say what it claims ("claims to be node n2"), never
 * the configured node's address; the transport puts the connection's real
 * address in front. Names it sent are escaped (disco_escape()): they may
 * hold newlines or terminal escapes meant to forge log lines.
 */
#include "rpc/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "membership.pb-c.h"
#include "rpc/frame.h"
#include "rpc/log.h"

/* Room for a name a peer sent, escaped and cut (disco_escape()). */
#define PEER_TEXT_MAX (CLUSTER_NAME_MAX + 16)

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#define FAIL(code, ...)                                                                            \
	do {                                                                                       \
		seterr(err, errlen, __VA_ARGS__);                                                  \
		return -(code);                                                                    \
	} while (0)

void rpc_auth_describe_node(const struct cluster_config *cfg, int index, char *buf, size_t len)
{
	if (index >= 0 && index < cfg->n_nodes)
		snprintf(buf, len, "node %s (%s:%d)", cfg->nodes[index].name,
			 cfg->nodes[index].address, cfg->nodes[index].port);
	else
		snprintf(buf, len, "unknown node");
}

int rpc_auth_init(struct rpc_auth *a, const struct cluster_config *cfg, int self)
{
	if (sodium_init() < 0)
		return -EIO;
	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->self = self;
	a->peer = -1;
	randombytes_buf(a->nonce, sizeof(a->nonce));
	return 0;
}

long rpc_auth_make_hello(const struct rpc_auth *a, uint8_t *buf, size_t cap)
{
	Disco__Hello h = DISCO__HELLO__INIT;
	h.protocol_version = RPC_FRAME_VERSION;
	h.cluster_name = (char *)a->cfg->name;
	h.node_name = (char *)a->cfg->nodes[a->self].name;
	h.node_index = (uint32_t)a->self;
	h.nonce.data = (uint8_t *)a->nonce;
	h.nonce.len = sizeof(a->nonce);
	size_t n = disco__hello__get_packed_size(&h);
	if (n > cap)
		return -ENOSPC;
	return (long)disco__hello__pack(&h, buf);
}

int rpc_auth_on_hello(struct rpc_auth *a, const uint8_t *body, size_t len, int expected_peer,
		      char *err, size_t errlen)
{
	const struct cluster_config *cfg = a->cfg;
	char who[400];
	int ret;

	char theirs[PEER_TEXT_MAX];

	a->accepted = expected_peer < 0;
	if (expected_peer >= 0)
		rpc_auth_describe_node(cfg, expected_peer, who, sizeof(who));
	else
		snprintf(who, sizeof(who), "connecting node");
	if (a->hello_done)
		FAIL(EPROTO, "%s: second Hello on one connection", who);

	Disco__Hello *h = disco__hello__unpack(NULL, len, body);
	if (!h)
		FAIL(EPROTO, "%s: malformed Hello (%zu bytes)", who, len);

	/* Name the peer by what it claims as soon as we can. */
	if (expected_peer < 0) {
		if (h->node_index < (uint32_t)cfg->n_nodes)
			snprintf(who, sizeof(who), "claims to be node %s",
				 cfg->nodes[h->node_index].name);
		else
			snprintf(who, sizeof(who), "claims node index %" PRIu32, h->node_index);
	}

	if (h->protocol_version != RPC_FRAME_VERSION) {
		seterr(err, errlen, "%s: protocol version %" PRIu32 ", we speak %d", who,
			 h->protocol_version, RPC_FRAME_VERSION);
		ret = -EPROTO;
		goto out;
	}
	if (strcmp(h->cluster_name, cfg->name) != 0) {
		seterr(err, errlen, "%s: belongs to cluster \"%s\", we are \"%s\"", who,
			 disco_escape_str(theirs, sizeof(theirs), h->cluster_name), cfg->name);
		ret = -EPERM;
		goto out;
	}
	if (h->node_index >= (uint32_t)cfg->n_nodes) {
		seterr(err, errlen, "%s: node index %" PRIu32 " out of range (cluster has %d nodes)",
			 who, h->node_index, cfg->n_nodes);
		ret = -EPERM;
		goto out;
	}
	int idx = (int)h->node_index;
	if (idx == a->self) {
		seterr(err, errlen, "%s: claims to be this node (index %d)", who, idx);
		ret = -EPERM;
		goto out;
	}
	if (expected_peer >= 0 && idx != expected_peer) {
		seterr(err, errlen, "%s: answered as node %s (index %d), not the node we dialled",
			 who, cfg->nodes[idx].name, idx);
		ret = -EPERM;
		goto out;
	}
	if (strcmp(h->node_name, cfg->nodes[idx].name) != 0) {
		seterr(err, errlen, "%s: calls itself \"%s\", the config names index %d \"%s\"",
			 who, disco_escape_str(theirs, sizeof(theirs), h->node_name), idx,
			 cfg->nodes[idx].name);
		ret = -EPERM;
		goto out;
	}
	if (h->nonce.len != RPC_AUTH_NONCE_LEN) {
		seterr(err, errlen, "%s: nonce of %zu bytes, expected %d", who, h->nonce.len,
			 RPC_AUTH_NONCE_LEN);
		ret = -EPROTO;
		goto out;
	}
	memcpy(a->peer_nonce, h->nonce.data, RPC_AUTH_NONCE_LEN);
	a->peer = idx;
	a->hello_done = true;
	ret = idx;
out:
	disco__hello__free_unpacked(h, NULL);
	return ret;
}

static void put_u32le(uint8_t out[4], uint32_t v)
{
	out[0] = (uint8_t)v;
	out[1] = (uint8_t)(v >> 8);
	out[2] = (uint8_t)(v >> 16);
	out[3] = (uint8_t)(v >> 24);
}

/* HMAC-SHA256(key, "disco-auth-v1" || receiver_nonce || sender_nonce ||
 * u32le sender || u32le receiver). */
static void compute_mac(const struct cluster_config *cfg, uint8_t out[RPC_AUTH_MAC_LEN],
			const uint8_t *receiver_nonce, const uint8_t *sender_nonce, int sender,
			int receiver)
{
	crypto_auth_hmacsha256_state st;
	uint8_t idx[8];

	put_u32le(idx, (uint32_t)sender);
	put_u32le(idx + 4, (uint32_t)receiver);
	crypto_auth_hmacsha256_init(&st, cfg->key, cfg->key_len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)RPC_AUTH_CONTEXT,
				      strlen(RPC_AUTH_CONTEXT));
	crypto_auth_hmacsha256_update(&st, receiver_nonce, RPC_AUTH_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, sender_nonce, RPC_AUTH_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, idx, sizeof(idx));
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

long rpc_auth_make_proof(const struct rpc_auth *a, uint8_t *buf, size_t cap)
{
	uint8_t mac[RPC_AUTH_MAC_LEN];
	if (!a->hello_done)
		return -EPROTO;
	/* We are the sender, the peer the receiver. */
	compute_mac(a->cfg, mac, a->peer_nonce, a->nonce, a->self, a->peer);
	Disco__AuthProof p = DISCO__AUTH_PROOF__INIT;
	p.mac.data = mac;
	p.mac.len = sizeof(mac);
	size_t n = disco__auth_proof__get_packed_size(&p);
	if (n > cap)
		return -ENOSPC;
	n = disco__auth_proof__pack(&p, buf);
	sodium_memzero(mac, sizeof(mac));
	return (long)n;
}

int rpc_auth_check_proof(struct rpc_auth *a, const uint8_t *body, size_t len, char *err,
			 size_t errlen)
{
	char who[400];
	uint8_t expect[RPC_AUTH_MAC_LEN];
	int ret = 0;

	if (!a->hello_done)
		FAIL(EPROTO, "connecting node: AuthProof before Hello");
	if (a->accepted)
		snprintf(who, sizeof(who), "claims to be node %s", a->cfg->nodes[a->peer].name);
	else
		rpc_auth_describe_node(a->cfg, a->peer, who, sizeof(who));
	if (a->proof_ok)
		FAIL(EPROTO, "%s: second AuthProof on one connection", who);

	Disco__AuthProof *p = disco__auth_proof__unpack(NULL, len, body);
	if (!p)
		FAIL(EPROTO, "%s: malformed AuthProof (%zu bytes)", who, len);
	if (p->mac.len != RPC_AUTH_MAC_LEN) {
		seterr(err, errlen, "%s: MAC of %zu bytes, expected %d", who, p->mac.len,
			 RPC_AUTH_MAC_LEN);
		ret = -EPROTO;
		goto out;
	}
	/* The peer is the sender, we are the receiver. */
	compute_mac(a->cfg, expect, a->nonce, a->peer_nonce, a->peer, a->self);
	if (crypto_verify_32(p->mac.data, expect) != 0) {
		seterr(err, errlen, "%s: wrong key (bad HMAC)", who);
		ret = -EACCES;
		goto out;
	}
	a->proof_ok = true;
out:
	sodium_memzero(expect, sizeof(expect));
	disco__auth_proof__free_unpacked(p, NULL);
	return ret;
}
