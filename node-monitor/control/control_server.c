// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The accepting side of a control connection (control.h): discod's
 * connection threads. Nothing a connection says before it proved the key
 * reaches a VM: the handshake runs first, and any failure closes the
 * connection after one log line (written by the caller, which knows the
 * peer's address).
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

int control_accept_tcp(const struct cluster_config *cfg, int self, struct control_conn *c,
		       int timeout_ms, char **role, char *err, size_t errlen)
{
	Disco__ControlHello h = DISCO__CONTROL_HELLO__INIT, *theirs = NULL;
	Disco__ControlProof p = DISCO__CONTROL_PROOF__INIT, *proof = NULL;
	uint8_t nonce[CONTROL_NONCE_LEN], mac[CONTROL_MAC_LEN];
	const char *me = cfg->nodes[self].name;
	char why[256];
	const uint8_t *body;
	size_t len;
	uint16_t type;
	int r;

	*role = NULL;
	if ((r = control_recv(c, &type, &body, &len, timeout_ms, err, errlen)) < 0)
		return r;
	if (type != CONTROL_HELLO || !(theirs = disco__control_hello__unpack(NULL, len, body))) {
		snprintf(err, errlen, "first frame is not a control Hello (type %u)", type);
		return -EPROTO;
	}
	if ((r = control_check_hello(cfg, theirs, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "Hello refused: %s", why);
		goto out;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot initialise");
		r = -EIO;
		goto out;
	}
	randombytes_buf(nonce, sizeof(nonce));
	h.version = CONTROL_VERSION;
	h.service = (char *)CONTROL_SERVICE;
	h.cluster_name = (char *)cfg->name;
	h.role = (char *)me;
	h.nonce = (ProtobufCBinaryData){sizeof(nonce), nonce};
	control_mac(cfg, theirs->nonce.data, nonce, me, theirs->role, mac);
	p.mac = (ProtobufCBinaryData){sizeof(mac), mac};
	if ((r = control_send_msg(c, CONTROL_HELLO, &h.base, timeout_ms)) < 0 ||
	    (r = control_send_msg(c, CONTROL_PROOF, &p.base, timeout_ms)) < 0) {
		snprintf(err, errlen, "cannot send: %s", strerror(-r));
		goto out;
	}
	if ((r = control_recv(c, &type, &body, &len, timeout_ms, err, errlen)) < 0) {
		if (r == -ECONNRESET)
			snprintf(err, errlen, "closed before its proof (it did not accept ours: "
					      "another key?)");
		goto out;
	}
	if (type != CONTROL_PROOF || !(proof = disco__control_proof__unpack(NULL, len, body))) {
		snprintf(err, errlen, "expected a proof, got frame type %u", type);
		r = -EPROTO;
		goto out;
	}
	if (control_check_mac(cfg, nonce, theirs->nonce.data, theirs->role, me, proof->mac.data,
			      proof->mac.len) < 0) {
		snprintf(err, errlen, "wrong key (bad HMAC)");
		r = -EACCES;
		goto out;
	}
	*role = strdup(theirs->role);
	r = *role ? 0 : -ENOMEM;
out:
	if (theirs)
		disco__control_hello__free_unpacked(theirs, NULL);
	if (proof)
		disco__control_proof__free_unpacked(proof, NULL);
	return r;
}

int control_read_request(struct control_conn *c, int timeout_ms, Disco__ControlRequest **rq,
			 char *err, size_t errlen)
{
	const uint8_t *body;
	size_t len;
	uint16_t type;
	int r;

	*rq = NULL;
	if ((r = control_recv(c, &type, &body, &len, timeout_ms, err, errlen)) < 0)
		return r;
	if (type != CONTROL_REQUEST || !(*rq = disco__control_request__unpack(NULL, len, body))) {
		snprintf(err, errlen, "expected a request, got frame type %u", type);
		return -EPROTO;
	}
	if ((*rq)->version != CONTROL_VERSION) {
		snprintf(err, errlen, "request of protocol version %u, this daemon speaks %u",
			 (*rq)->version, CONTROL_VERSION);
		disco__control_request__free_unpacked(*rq, NULL);
		*rq = NULL;
		return -EPROTO;
	}
	return 0;
}
