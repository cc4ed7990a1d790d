// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A bump allocator for unpacking small protobuf messages without malloc:
 * the loop thread unpacks every frame into one arena it owns, emptied
 * before each message (nothing unpacked outlives the frame's callback).
 * Header only.
 */
#ifndef DISCO_RPC_PB_ARENA_H
#define DISCO_RPC_PB_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_pb_arena {
	uint8_t buf[1024];
	size_t used;
};

static inline void *rpc_pb_arena_alloc(void *data, size_t size)
{
	struct rpc_pb_arena *a = data;
	size = (size + 15) & ~(size_t)15;
	if (size > sizeof(a->buf) - a->used)
		return NULL;
	void *p = a->buf + a->used;
	a->used += size;
	return p;
}

static inline void rpc_pb_arena_free(void *data, void *p)
{
	(void)data;
	(void)p; /* emptied wholesale before the next message */
}

/* @a as a protobuf-c allocator, emptied. */
static inline ProtobufCAllocator rpc_pb_arena_allocator(struct rpc_pb_arena *a)
{
	a->used = 0;
	return (ProtobufCAllocator){ .alloc = rpc_pb_arena_alloc, .free = rpc_pb_arena_free,
				     .allocator_data = a };
}

#endif
