/* arena.c - a bump allocator for per-call memory. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "rpc/rpc_int.h"

#define ALIGN 16
#define CHUNK 4096

void rpc__arena_init(rpc_arena *a, void *inline_buf, size_t cap)
{
    a->chunks = NULL;
    a->inline_buf = inline_buf;
    a->inline_used = 0;
    a->inline_cap = cap;
}

void rpc__arena_dispose(rpc_arena *a)
{
    while (a->chunks) {
        rpc_arena_chunk *next = a->chunks->next;
        oms_free(a->chunks);
        a->chunks = next;
    }
    a->inline_used = 0;
}

static size_t align_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

void *rpc__arena_alloc(rpc_arena *a, size_t n)
{
    n = align_up(n ? n : 1);
    /* The inline buffer's address is only 8-aligned in general: align the
     * offset against the real address. */
    uintptr_t base = (uintptr_t)a->inline_buf;
    size_t off = align_up(base + a->inline_used) - base;
    if (off + n <= a->inline_cap) {
        a->inline_used = off + n;
        return memset(a->inline_buf + off, 0, n);
    }
    rpc_arena_chunk *c = a->chunks;
    size_t hdr = align_up(sizeof *c);
    if (!c || c->used + n > c->cap) {
        size_t cap = n > CHUNK / 2 ? n : CHUNK;
        c = oms_malloc(hdr + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        /* Big one-off allocations go behind the current chunk so that its
         * free space stays in use. */
        if (cap == n && a->chunks) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = a->chunks;
            a->chunks = c;
        }
    }
    void *p = (uint8_t *)c + hdr + c->used;
    c->used += n;
    return memset(p, 0, n);
}

char *rpc__arena_strndup(rpc_arena *a, const char *s, size_t n)
{
    char *p = rpc__arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}
