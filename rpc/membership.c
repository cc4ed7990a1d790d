/*
 * Heartbeat and Goodbye packing shared by the TCP and RDMA transports.
 */
#include "membership.h"

#include <stdio.h>

#include "membership.pb-c.h"
#include "rpc/log.h"

size_t rpc_pack_heartbeat(uint64_t sent_ns, uint8_t buf[RPC_HEARTBEAT_MAX])
{
	Disco__Heartbeat hb = DISCO__HEARTBEAT__INIT;
	hb.sent_ns = sent_ns;
	return disco__heartbeat__pack(&hb, buf);
}

size_t rpc_pack_goodbye(uint8_t buf[RPC_GOODBYE_MAX])
{
	Disco__Goodbye g = DISCO__GOODBYE__INIT;
	g.reason = "node stopping";
	return disco__goodbye__pack(&g, buf);
}

void rpc_goodbye_reason(const uint8_t *body, size_t len, char *out, size_t outlen)
{
	Disco__Goodbye *g = disco__goodbye__unpack(NULL, len, body);
	if (g && g->reason && g->reason[0])
		disco_escape_str(out, outlen, g->reason); /* the peer's text */
	else
		snprintf(out, outlen, "no reason given");
	if (g)
		disco__goodbye__free_unpacked(g, NULL);
}
