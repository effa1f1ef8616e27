// arena.h — bump allocator for activations and scratch. One arena per worker
// (or per training loop); reset between batches so the hot path does not
// malloc once the arena has grown to the largest batch it has seen.
#ifndef ENG_ARENA_H
#define ENG_ARENA_H
#include <stddef.h>   // size_t

typedef struct eng_arena_block eng_arena_block;
typedef struct {
    eng_arena_block *blocks;   // newest first; only the first one takes new allocations
    size_t used;               // bytes handed out since the last reset (all blocks)
    size_t high_water;         // the largest `used` ever seen, in bytes
} eng_arena;

void  eng_arena_init(eng_arena *a);
// Returns 64-byte aligned, uninitialised memory valid until the next reset/free.
void *eng_arena_alloc(eng_arena *a, size_t bytes);
// Same, zero-filled.
void *eng_arena_calloc(eng_arena *a, size_t bytes);
// Forgets every allocation. If allocations spilled into several blocks, they
// are merged into one block of the high-water size so the next round does
// not allocate.
void  eng_arena_reset(eng_arena *a);
void  eng_arena_free(eng_arena *a);

#endif
