/*
 * A raw client for the transport tests: plain sockets that speak (or
 * break) the wire protocol the way an attacker without the key would, or
 * replay what a member sent. Failures of the test's own set-up are cmocka
 * assertions. See docs/transport.md (security).
 */
#ifndef DISCO_TEST_RAW_PEER_H
#define DISCO_TEST_RAW_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/auth.h"

/* A TCP connection to @ip:@port from @src_ip (NULL: any), blocking. */
int raw_connect_from(const char *src_ip, const char *ip, int port);
int raw_connect(int port); /* to 127.0.0.1:@port */
/* Start a connection without waiting for it (non-blocking socket). */
int raw_connect_nowait(const char *src_ip, const char *ip, int port);
void raw_write(int fd, const void *b, size_t n);
void raw_send_frame(int fd, uint16_t type, const void *body, size_t len);
/* One whole frame within @ms: its type, its body in @body (at most @cap
 * bytes); the body length, or -1 on EOF, reset or timeout. */
long raw_recv_frame(int fd, int ms, uint16_t *type, uint8_t *body, size_t cap);
/* Read until the other side closes; true if it did within @ms. */
bool raw_closed(int fd, int ms);
/*
 * Say Hello on @fd as node @claim of @cfg (names are no secret), with the
 * auth state @a (fresh), and read the member's answer: its Hello (checked
 * with @a, so @a holds its nonce) and its AuthProof. True when both came;
 * then rpc_auth_make_proof(@a) would be the genuine proof, for someone
 * who has the key.
 */
bool raw_hello(int fd, const struct cluster_config *cfg, int claim, int member,
	       struct rpc_auth *a);

/* An AuthProof frame carrying @mac (RPC_AUTH_MAC_LEN bytes). */
void raw_send_proof(int fd, const uint8_t *mac);

/* What an impostor does after its Hello. */
enum raw_trick {
	RAW_BAD_PROOF,   /* a proof of random bytes */
	RAW_GARBAGE,     /* bytes that are no frame */
	RAW_EOF,         /* it goes away */
	RAW_REPLAY,      /* a genuine proof recorded on another connection */
	RAW_N_TRICKS,
};
extern const char *const raw_trick_names[RAW_N_TRICKS];
/*
 * An impostor without the key on member @m's port: Hello as node @claim,
 * the member's Hello and proof back, then @trick. True when the member
 * closed the connection within @ms. For RAW_REPLAY it first records a
 * genuine proof (computed with the key, as an eavesdropper would see a
 * real node's) on a connection of its own, then replays it on a second.
 */
bool raw_impostor(const struct cluster_config *cfg, int m, int claim, enum raw_trick trick,
		  int ms);

/* Send what the process writes to stderr (the log) to a temporary file
 * until stderr_capture_end(), which returns it (a static buffer) and
 * writes it to the real stderr too, so a failing test's log is seen. */
void stderr_capture_begin(void);
const char *stderr_capture_end(void);
int count_lines(const char *text);

#endif
