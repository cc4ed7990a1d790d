// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control handshake's checks and proofs (control.h): pure functions
 * over the cluster's key, so the unit test drives both sides in memory.
 *
 * Why not rpc/auth.c: that one proves node indices to a node's session;
 * here one side may be a person's command, which is no node. The MAC's
 * label differs ("disco-control-v1", not "disco-auth-v1"), so a proof
 * seen on one kind of connection is worthless on the other, and the roles
 * are bound in a fixed order (sender first) with a separator, so a proof
 * sent back to its maker (reflection) or with the roles swapped fails.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "control.h"

void control_mac(const struct cluster_config *cfg, const uint8_t receiver_nonce[CONTROL_NONCE_LEN],
		 const uint8_t sender_nonce[CONTROL_NONCE_LEN], const char *sender,
		 const char *receiver, uint8_t mac[CONTROL_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;
	static const uint8_t zero;

	crypto_auth_hmacsha256_init(&st, cfg->key, cfg->key_len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)CONTROL_LABEL, strlen(CONTROL_LABEL));
	crypto_auth_hmacsha256_update(&st, receiver_nonce, CONTROL_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, sender_nonce, CONTROL_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)sender, strlen(sender));
	crypto_auth_hmacsha256_update(&st, &zero, 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)receiver, strlen(receiver));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

int control_check_hello(const struct cluster_config *cfg, const Disco__ControlHello *h, char *err,
			size_t errlen)
{
	if (h->version != CONTROL_VERSION) {
		snprintf(err, errlen, "control protocol version %u, this one speaks %u", h->version,
			 CONTROL_VERSION);
		return -EPROTO;
	}
	if (!h->service || strcmp(h->service, CONTROL_SERVICE)) {
		snprintf(err, errlen, "not a disco control connection");
		return -EPROTO;
	}
	if (!h->cluster_name || strcmp(h->cluster_name, cfg->name)) {
		/* the name a peer sent may be anything: print only its length */
		snprintf(err, errlen, "another cluster (its name has %zu bytes, ours is \"%s\")",
			 h->cluster_name ? strlen(h->cluster_name) : 0, cfg->name);
		return -EPERM;
	}
	if (h->nonce.len != CONTROL_NONCE_LEN) {
		snprintf(err, errlen, "bad nonce length %zu", h->nonce.len);
		return -EPROTO;
	}
	if (h->role && h->role[0] && cluster_config_find_node(cfg, h->role) < 0) {
		snprintf(err, errlen, "claims to be a node that is not in the config");
		return -EPERM;
	}
	return 0;
}

int control_check_mac(const struct cluster_config *cfg, const uint8_t receiver_nonce[CONTROL_NONCE_LEN],
		      const uint8_t sender_nonce[CONTROL_NONCE_LEN], const char *sender,
		      const char *receiver, const uint8_t *mac, size_t mac_len)
{
	uint8_t want[CONTROL_MAC_LEN];
	int ok;

	if (mac_len != CONTROL_MAC_LEN)
		return -EACCES;
	control_mac(cfg, receiver_nonce, sender_nonce, sender, receiver, want);
	ok = crypto_verify_32(want, mac) == 0;
	sodium_memzero(want, sizeof(want));
	return ok ? 0 : -EACCES;
}

const char *control_op_name(Disco__ControlRequest__Op op)
{
	switch (op) {
	case DISCO__CONTROL_REQUEST__OP__PING: return "ping";
	case DISCO__CONTROL_REQUEST__OP__NODE_STATUS: return "node status";
	case DISCO__CONTROL_REQUEST__OP__NODE_START: return "node start";
	case DISCO__CONTROL_REQUEST__OP__NODE_STOP: return "node stop";
	case DISCO__CONTROL_REQUEST__OP__CONSOLE: return "console";
	case DISCO__CONTROL_REQUEST__OP__CLUSTER_STATUS: return "status";
	case DISCO__CONTROL_REQUEST__OP__VM_START: return "vm start";
	case DISCO__CONTROL_REQUEST__OP__VM_STOP: return "vm stop";
	default: return "unknown request";
	}
}
