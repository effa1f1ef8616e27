// arena.c — bump allocator for activations and scratch (see arena.h).
// Memory comes in blocks; each block is one 64-byte aligned allocation whose
// first 64 bytes hold the header, so the data that follows is aligned too.
// Not thread-safe: one arena per worker.
#include "engine/core/arena.h"

#include <assert.h>   // static_assert
#include <stdio.h>    // fprintf
#include <stdlib.h>   // free, abort
#include <string.h>   // memset

#include "engine/core/util.h"   // eng_aligned

enum {
    ARENA_ALIGN = 64,                 // bytes; alignment of every allocation
    ARENA_MIN_BLOCK = 64 * 1024,      // bytes; smallest block we allocate
};

struct eng_arena_block {
    eng_arena_block *next;   // older block, or NULL
    size_t cap;              // bytes of data after the header
    size_t off;              // bytes of data handed out from this block
};
static_assert(sizeof(eng_arena_block) <= ARENA_ALIGN, "arena block header must fit in one line");

// The data of block b starts one alignment unit after the header.
static unsigned char *block_data(eng_arena_block *b)
{
    return (unsigned char *)b + ARENA_ALIGN;
}

// Where this thread's out-of-memory escapes go (NULL: abort).
static _Thread_local jmp_buf *oom_jump;

void eng_arena_set_oom_jump(jmp_buf *jb)
{
    oom_jump = jb;
}

jmp_buf *eng_arena_oom_jump(void)
{
    return oom_jump;
}

void eng_arena_oom(const char *what, size_t bytes)
{
    if (oom_jump) longjmp(*oom_jump, 1);
    fprintf(stderr, "inferd: out of memory (%s, %zu bytes)\n", what, bytes);
    abort();
}

// A block of cap data bytes, or NULL when memory runs out (or cap overflows).
static eng_arena_block *block_new(size_t cap, eng_arena_block *next)
{
    if (cap > SIZE_MAX - ARENA_ALIGN) return NULL;
    eng_arena_block *b = eng_aligned(ARENA_ALIGN + cap);
    if (!b) return NULL;
    b->next = next;
    b->cap = cap;
    b->off = 0;
    return b;
}

void eng_arena_init(eng_arena *a)
{
    a->blocks = NULL;
    a->used = 0;
    a->high_water = 0;
}

void *eng_arena_alloc(eng_arena *a, size_t bytes)
{
    // Whole lines only, so the next allocation stays aligned. A zero-byte
    // request still gets a distinct, valid pointer.
    if (bytes > SIZE_MAX - ARENA_ALIGN) eng_arena_oom("arena", bytes);
    size_t n = bytes ? (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1) : ARENA_ALIGN;
    eng_arena_block *b = a->blocks;
    if (!b || b->cap - b->off < n) {
        // Spill into a new block at least twice the previous one, so a
        // growing workload needs O(log size) blocks before the next reset
        // merges them; when that much is not to be had, exactly n.
        size_t cap = b ? b->cap * 2 : ARENA_MIN_BLOCK;
        if (cap < n) cap = n;
        eng_arena_block *nb = block_new(cap, a->blocks);
        if (!nb && cap > n) nb = block_new(n, a->blocks);
        if (!nb) eng_arena_oom("arena", n);
        b = a->blocks = nb;
    }
    void *p = block_data(b) + b->off;
    b->off += n;
    a->used += n;
    if (a->used > a->high_water) a->high_water = a->used;
    return p;
}

void *eng_arena_calloc(eng_arena *a, size_t bytes)
{
    void *p = eng_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void eng_arena_reset(eng_arena *a)
{
    eng_arena_block *b = a->blocks;
    if (b && b->next) {
        // Several blocks: replace them with one that holds the high-water
        // mark. `used` counts rounded sizes, so the same sequence of
        // allocations fits in it without spilling.
        while (b) {
            eng_arena_block *next = b->next;
            free(b);
            b = next;
        }
        a->blocks = block_new(a->high_water, NULL);   // NULL (out of memory): the next alloc retries
    } else if (b) {
        b->off = 0;
    }
    a->used = 0;
}

void eng_arena_free(eng_arena *a)
{
    eng_arena_block *b = a->blocks;
    while (b) {
        eng_arena_block *next = b->next;
        free(b);
        b = next;
    }
    eng_arena_init(a);
}
