// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Conversion between the engine's struct dsm_msg and the protobuf
 * DsmMessage of proto/dsm.proto. Unpacking uses a bump allocator over the
 * region's small arena (loop thread only), so the fault path does no malloc.
 */
#include <errno.h>
#include <string.h>

#include "dsm.pb-c.h"
#include "region_internal.h"

size_t dsm_wire_pack(const struct dsm_msg *m, const struct dsm_wire_extra *x, uint8_t *buf,
		     size_t cap)
{
	Disco__DsmMessage pb = DISCO__DSM_MESSAGE__INIT;
	pb.kind = (Disco__DsmKind)m->kind;
	pb.page = m->page;
	pb.requester = m->requester;
	pb.req_id = m->req_id;
	pb.flags = m->flags;
	pb.owner = m->owner;
	pb.copyset = m->copyset;
	pb.dir_state = m->dir_state;
	pb.hops = m->hops;
	pb.error = m->error;
	if (x) {
		pb.read_posted = x->read_posted;
		pb.data_by_read = x->data_by_read;
		pb.read_version = x->read_version;
	}
	if (disco__dsm_message__get_packed_size(&pb) > cap)
		return 0;
	return disco__dsm_message__pack(&pb, buf);
}

int dsm_wire_unpack(struct rpc_pb_arena *a, const uint8_t *body, size_t len,
		    struct dsm_msg *out, struct dsm_wire_extra *x)
{
	ProtobufCAllocator alloc = rpc_pb_arena_allocator(a);
	Disco__DsmMessage *pb = disco__dsm_message__unpack(&alloc, len, body);
	if (!pb)
		return -EBADMSG;
	if (pb->requester >= DSM_MAX_NODES || pb->owner >= DSM_MAX_NODES || pb->hops > UINT16_MAX ||
	    pb->dir_state > UINT8_MAX)
		return -EBADMSG;
	memset(out, 0, sizeof(*out));
	out->kind = (enum dsm_msg_kind)pb->kind;
	out->page = pb->page;
	out->requester = (uint16_t)pb->requester;
	out->req_id = pb->req_id;
	out->flags = pb->flags;
	out->owner = (uint16_t)pb->owner;
	out->copyset = pb->copyset;
	out->dir_state = (uint8_t)pb->dir_state;
	out->hops = (uint16_t)pb->hops;
	out->error = pb->error;
	x->read_posted = pb->read_posted;
	x->data_by_read = pb->data_by_read;
	x->read_version = pb->read_version;
	return 0;
}
