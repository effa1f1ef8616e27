// arena.h — bump allocator for activations and scratch. One arena per worker
// (or per training loop); reset between batches so the hot path does not
// malloc once the arena has grown to the largest batch it has seen.
#ifndef ENG_ARENA_H
#define ENG_ARENA_H
#include <setjmp.h>   // jmp_buf
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

// Memory running out in the middle of a forward pass (arena blocks, tape
// entries). Training and the CLI abort with a message, the default. A server
// worker sets a recovery point around one batch instead: the allocation that
// fails longjmps there, and the worker answers that batch 503, resets its
// tape and keeps serving. Per thread; NULL restores the abort.
void eng_arena_set_oom_jump(jmp_buf *jb);
// The current recovery point (NULL: none), so code that holds heap memory
// across a forward pass can catch the escape, free it and pass it on.
jmp_buf *eng_arena_oom_jump(void);
// Escapes to the recovery point, or aborts when none is set.
_Noreturn void eng_arena_oom(const char *what, size_t bytes);

#endif
