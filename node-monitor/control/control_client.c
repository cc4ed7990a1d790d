// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The dialling side of a control connection (control.h): the disco
 * command, and a daemon asking another (vm start, status, console).
 * Connection errors name the daemon, its address and what to check,
 * because they are what an operator reads when a node is down.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

int control_connect_unix(const char *path, const char *who, struct control_conn *c, char *err,
			 size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path %s is too long", who, path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "%s: socket: %s", who, strerror(e));
		return -e;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			snprintf(err, errlen, "%s is not running: cannot connect to %s (%s)", who, path,
				 strerror(e));
		else if (e == EACCES)
			snprintf(err, errlen,
				 "%s: permission denied on %s (run as root, or as a member of the "
				 "socket's group: discod --socket-group)",
				 who, path);
		else
			snprintf(err, errlen, "%s: cannot connect to %s: %s", who, path, strerror(e));
		return -e;
	}
	control_conn_init(c, fd, who);
	return 0;
}

/* A TCP connection to @host:@port within @timeout_ms: every address the
 * name resolves to, in turn. */
static int dial(const char *host, int port, int timeout_ms, char *why, size_t whylen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	char service[8];
	int fd = -1, e = ECONNREFUSED, r;

	snprintf(service, sizeof(service), "%d", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd p;
		socklen_t len = sizeof(e);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		if (e == EINPROGRESS) {
			p = (struct pollfd){.fd = fd, .events = POLLOUT};
			do
				r = poll(&p, 1, timeout_ms);
			while (r < 0 && errno == EINTR);
			if (r == 0)
				e = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == 0)
				break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(why, whylen, "%s", e == ETIMEDOUT ? "no answer (timed out)" : strerror(e));
		return -e;
	}
	return fd;
}

int control_connect_tcp(const struct cluster_config *cfg, int node, const char *role,
			int timeout_ms, struct control_conn *c, char *err, size_t errlen)
{
	const struct cluster_node *n = &cfg->nodes[node];
	Disco__ControlHello h = DISCO__CONTROL_HELLO__INIT, *theirs = NULL;
	Disco__ControlProof p = DISCO__CONTROL_PROOF__INIT, *proof = NULL;
	uint8_t nonce[CONTROL_NONCE_LEN], mac[CONTROL_MAC_LEN];
	char who[160], why[256];
	const uint8_t *body;
	size_t len;
	uint16_t type;
	int fd, r;

	snprintf(who, sizeof(who), "discod %s (%s:%d)", n->name, n->address, n->control_port);
	if (!n->control_port) {
		snprintf(err, errlen,
			 "discod %s has no control port: set nodes[%d].control_port in %s", n->name,
			 node, cfg->path);
		return -EDESTADDRREQ;
	}
	fd = dial(n->address, n->control_port, timeout_ms, why, sizeof(why));
	if (fd < 0) {
		snprintf(err, errlen, "%s is not reachable: %s (is discod running there?)", who, why);
		return fd;
	}
	control_conn_init(c, fd, who);
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot initialise");
		r = -EIO;
		goto fail;
	}
	randombytes_buf(nonce, sizeof(nonce));
	h.version = CONTROL_VERSION;
	h.service = (char *)CONTROL_SERVICE;
	h.cluster_name = (char *)cfg->name;
	h.role = (char *)role;
	h.nonce = (ProtobufCBinaryData){sizeof(nonce), nonce};
	if ((r = control_send_msg(c, CONTROL_HELLO, &h.base, timeout_ms)) < 0) {
		snprintf(err, errlen, "%s: cannot send: %s", who, strerror(-r));
		goto fail;
	}
	/* its Hello, then its proof */
	if ((r = control_recv(c, &type, &body, &len, timeout_ms, err, errlen)) < 0) {
		if (r == -ECONNRESET)
			snprintf(err, errlen,
				 "%s refused the connection (another cluster or protocol version: "
				 "see its log)",
				 who);
		goto fail;
	}
	if (type != CONTROL_HELLO || !(theirs = disco__control_hello__unpack(NULL, len, body))) {
		snprintf(err, errlen, "%s: not a disco control port (first frame type %u)", who, type);
		r = -EPROTO;
		goto fail;
	}
	if ((r = control_check_hello(cfg, theirs, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "%s: %s", who, why);
		goto fail;
	}
	if (strcmp(theirs->role, n->name)) {
		snprintf(err, errlen, "%s: answers as another node", who);
		r = -EPERM;
		goto fail;
	}
	if ((r = control_recv(c, &type, &body, &len, timeout_ms, err, errlen)) < 0)
		goto fail;
	if (type != CONTROL_PROOF || !(proof = disco__control_proof__unpack(NULL, len, body))) {
		snprintf(err, errlen, "%s: expected its proof, got frame type %u", who, type);
		r = -EPROTO;
		goto fail;
	}
	if (control_check_mac(cfg, nonce, theirs->nonce.data, theirs->role, role, proof->mac.data,
			      proof->mac.len) < 0) {
		snprintf(err, errlen,
			 "%s: wrong key (bad HMAC): it does not hold the key of %s (%s)", who,
			 cfg->key_file, cfg->name);
		r = -EACCES;
		goto fail;
	}
	control_mac(cfg, theirs->nonce.data, nonce, role, theirs->role, mac);
	p.mac = (ProtobufCBinaryData){sizeof(mac), mac};
	if ((r = control_send_msg(c, CONTROL_PROOF, &p.base, timeout_ms)) < 0) {
		snprintf(err, errlen, "%s: cannot send: %s", who, strerror(-r));
		goto fail;
	}
	disco__control_hello__free_unpacked(theirs, NULL);
	disco__control_proof__free_unpacked(proof, NULL);
	return 0;
fail:
	if (theirs)
		disco__control_hello__free_unpacked(theirs, NULL);
	if (proof)
		disco__control_proof__free_unpacked(proof, NULL);
	control_conn_close(c);
	return r;
}

int control_call(struct control_conn *c, const Disco__ControlRequest *rq, Disco__ControlReply **reply,
		 int timeout_ms, char *err, size_t errlen)
{
	const uint8_t *body;
	size_t len;
	uint16_t type;
	int r;

	*reply = NULL;
	if ((r = control_send_msg(c, CONTROL_REQUEST, &rq->base, timeout_ms)) < 0) {
		snprintf(err, errlen, "%s: cannot send the request: %s", c->peer, strerror(-r));
		return r;
	}
	if ((r = control_recv(c, &type, &body, &len, timeout_ms, err, errlen)) < 0) {
		if (r == -ECONNRESET)
			snprintf(err, errlen,
				 "%s closed the connection without answering (see its log)",
				 c->peer);
		return r;
	}
	if (type != CONTROL_REPLY || !(*reply = disco__control_reply__unpack(NULL, len, body))) {
		snprintf(err, errlen, "%s: a reply that makes no sense (frame type %u)", c->peer, type);
		return -EPROTO;
	}
	return 0;
}
