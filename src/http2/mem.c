/* mem.c - nghttp2's allocator, and the memory an idle connection gives back.
 *
 * nghttp2 1.52 keeps two big blocks per session for the session's whole
 * life: the outbound frame buffer (NGHTTP2_FRAMEBUF_CHUNKLEN, 16,394 bytes,
 * allocated by nghttp2_session_server_new3) and its stream map's table
 * (256 buckets, 4 KiB, calloc'ed). Its API cannot size, share or drop
 * them. So every allocation of HTTP2_PAGED_MIN bytes or more gets whole
 * pages of its own, from a page pool outside the heap (so the heap's small
 * blocks stay packed together), and once a server connection has
 * had no stream for HTTP2_IDLE_TRIM_MS, madvise(MADV_DONTNEED) gives those
 * pages back to the system; the next frame touches them again (a fresh zero
 * page each, on demand). That is safe for two kinds of pages only:
 *   - the frame buffer's: nghttp2 writes each frame into it before reading
 *     it, so between frames (nothing queued, nothing half sent) its bytes
 *     mean nothing. It is recognised by its size when first allocated
 *     (realloc from NULL, as nghttp2_buf_reserve does); an nghttp2 with a
 *     different size has no scratch block, only the rule below;
 *   - any block's pages that hold only zeros (an empty stream map): the
 *     zero page mapped back reads exactly the same.
 * Every allocation still goes through base/alloc.h (fault injection).
 *
 * The pool: whole pages carved from 2 MiB mappings (no transparent huge
 * pages: a block's pages must go back one by one), one free list per size
 * up to POOL_CLASSES pages, bigger blocks mapped on their own. A freed
 * block's pages go back to the system at once (a burst of closed
 * connections leaves no resident memory behind) and its address space is
 * reused. One lock for the process: blocks are taken when a connection
 * starts and given back when it ends, not per request.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http2/http2_int.h"

/* NGHTTP2_FRAMEBUF_CHUNKLEN of nghttp2 1.52: frame header, pad length,
 * the largest payload it sends. */
#define FRAMEBUF_LEN (9 + 1 + 16384)

/* --- the page pool ------------------------------------------------------- */

#define POOL_MAP     (2u << 20)
#define POOL_CLASSES 8

typedef struct pool_list {
    void **v; /* free blocks of this many pages (the array is on the heap, so
                 a free block's pages stay untouched) */
    size_t n, cap;
} pool_list;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *pool_cur; /* unused rest of the current mapping */
static size_t pool_left;
static pool_list pool_free[POOL_CLASSES + 1];

static size_t round_pages(size_t n)
{
    return (n + HTTP2_PAGE - 1) & ~(size_t)(HTTP2_PAGE - 1);
}

static void *map_pages(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    (void)madvise(p, n, MADV_NOHUGEPAGE);
    return p;
}

/* n bytes of zeroed whole pages (from a free list, the current mapping or
 * a new one), or NULL. */
static void *pages_get(size_t n)
{
    size_t bytes = round_pages(n), k = bytes / HTTP2_PAGE;
    if (k > POOL_CLASSES)
        return map_pages(bytes);
    void *p = NULL;
    pthread_mutex_lock(&pool_lock);
    if (pool_free[k].n) {
        p = pool_free[k].v[--pool_free[k].n];
    } else {
        if (pool_left < bytes) {
            /* the rest of the old mapping stays unused (less than a block) */
            uint8_t *m = map_pages(POOL_MAP);
            if (m) {
                pool_cur = m;
                pool_left = POOL_MAP;
            }
        }
        if (pool_left >= bytes) {
            p = pool_cur;
            pool_cur += bytes;
            pool_left -= bytes;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return p;
}

static void pages_put(void *p, size_t n)
{
    size_t bytes = round_pages(n), k = bytes / HTTP2_PAGE;
    if (k > POOL_CLASSES) {
        munmap(p, bytes);
        return;
    }
    (void)madvise(p, bytes, MADV_DONTNEED); /* zero pages again when reused */
    pthread_mutex_lock(&pool_lock);
    pool_list *l = &pool_free[k];
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void **v = realloc(l->v, cap * sizeof *v);
        if (!v) { /* cannot list it: its address space is lost, not its memory */
            pthread_mutex_unlock(&pool_lock);
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
    pthread_mutex_unlock(&pool_lock);
}

/* --- nghttp2's allocator ------------------------------------------------- */

static http2_paged *find_paged(http2_conn *c, const void *p)
{
    if (!p || ((uintptr_t)p & (HTTP2_PAGE - 1)))
        return NULL; /* the heap's own blocks are 16-aligned: rarely a page */
    for (int i = 0; i < HTTP2_PAGED_BLOCKS; i++)
        if (c->paged[i].p == p)
            return &c->paged[i];
    return NULL;
}

static http2_paged *free_slot(http2_conn *c)
{
    for (int i = 0; i < HTTP2_PAGED_BLOCKS; i++)
        if (!c->paged[i].p)
            return &c->paged[i];
    return NULL;
}

/* A paged block, or NULL with *slot NULL when every slot is taken (the
 * caller then uses the heap). counted: through fault injection. */
static void *paged_alloc(http2_conn *c, size_t n, bool counted, bool scratch, http2_paged **slot)
{
    *slot = free_slot(c);
    if (!*slot)
        return NULL;
    void *p = counted && !oms_alloc_check() ? NULL : pages_get(n);
    if (p)
        **slot = (http2_paged){p, n, scratch};
    return p;
}

/* --- small blocks ---------------------------------------------------------
 *
 * nghttp2 makes and frees about eight blocks of 32-256 bytes per request
 * (streams, outbound items, header copies). A connection's twenty streams
 * ending in one flush free more of a size than glibc's tcache keeps (7), and
 * the rest go through malloc's slow paths; per-thread free lists by size
 * class (base/alloc.h) keep them. Every heap block carries a header with its
 * class (0: a plain malloc block of any size), since nghttp2's free does not
 * say how big a block is. */

#define HDR           16 /* keeps malloc's 16-byte alignment */
#define GRAIN         32
#define SMALL_CLASSES 8 /* up to 256 bytes */

static _Thread_local oms_freelist small_fl[SMALL_CLASSES] = {
    OMS_FREELIST_INIT(HDR + 1 * GRAIN), OMS_FREELIST_INIT(HDR + 2 * GRAIN),
    OMS_FREELIST_INIT(HDR + 3 * GRAIN), OMS_FREELIST_INIT(HDR + 4 * GRAIN),
    OMS_FREELIST_INIT(HDR + 5 * GRAIN), OMS_FREELIST_INIT(HDR + 6 * GRAIN),
    OMS_FREELIST_INIT(HDR + 7 * GRAIN), OMS_FREELIST_INIT(HDR + 8 * GRAIN),
};

static size_t block_class(const void *p)
{
    size_t k;
    memcpy(&k, (const uint8_t *)p - HDR, sizeof k);
    return k;
}

static void *with_header(uint8_t *b, size_t k)
{
    if (!b)
        return NULL;
    memcpy(b, &k, sizeof k);
    return b + HDR;
}

/* A heap block of n bytes; counted: through fault injection. */
static void *heap_get(size_t n, bool counted)
{
    if (counted && n <= SMALL_CLASSES * GRAIN) {
        size_t k = n ? (n + GRAIN - 1) / GRAIN : 1;
        return with_header(oms_freelist_get(&small_fl[k - 1]), k);
    }
    if (n > SIZE_MAX - HDR)
        return NULL;
    return with_header(counted ? oms_malloc(HDR + n) : malloc(HDR + n), 0);
}

static void heap_put(void *p)
{
    size_t k = block_class(p);
    uint8_t *b = (uint8_t *)p - HDR;
    if (k)
        oms_freelist_put(&small_fl[k - 1], b);
    else
        oms_free(b);
}

static void *mem_malloc(size_t n, void *ud)
{
    http2_conn *c = ud;
    if (n >= HTTP2_PAGED_MIN) {
        http2_paged *slot;
        void *p = paged_alloc(c, n, true, false, &slot);
        if (p || slot)
            return p;
    }
    return heap_get(n, true);
}

static void mem_free(void *p, void *ud)
{
    if (!p)
        return;
    http2_paged *slot = find_paged(ud, p);
    if (!slot) {
        heap_put(p);
        return;
    }
    pages_put(p, slot->n);
    slot->p = NULL;
}

static void *mem_calloc(size_t n, size_t size, void *ud)
{
    http2_conn *c = ud;
    if (size && n > SIZE_MAX / size)
        return NULL;
    if (n * size >= HTTP2_PAGED_MIN) {
        http2_paged *slot;
        void *p = paged_alloc(c, n * size, true, false, &slot);
        if (p || slot)
            return p; /* the pool's pages are zero */
    }
    void *p = heap_get(n * size, true);
    return p ? memset(p, 0, n * size) : NULL;
}

/* Not failed on purpose: nghttp2 1.52 (Debian 12) reallocs only to grow its
 * priority queues and buffers, and when growing the server's DATA queue fails
 * (SETTINGS_NO_RFC7540_PRIORITIES: session_attach_stream_item pushes the
 * stream on session->sched[].ob_data after attaching the item) it returns
 * NOMEM with the item still attached to the stream, and nghttp2_submit_data
 * frees that item: nghttp2_session_del later frees it again (a use after
 * free; assert in nghttp2_outbound_item_free). Nothing on our side can
 * repair that state, so these reallocs bypass fault injection (a real
 * out-of-memory still reaches them). tests/failmalloc documents it. */
static void *mem_realloc(void *p, size_t n, void *ud)
{
    http2_conn *c = ud;
    http2_paged *old = p ? find_paged(c, p) : NULL;
    if (p && !old && block_class(p) == 0) { /* a plain heap block stays one */
        if (n > SIZE_MAX - HDR)
            return NULL;
        return with_header(realloc((uint8_t *)p - HDR, HDR + n), 0);
    }
    http2_paged *slot = NULL;
    void *q =
        n >= HTTP2_PAGED_MIN ? paged_alloc(c, n, false, !p && n == FRAMEBUF_LEN, &slot) : NULL;
    if (!q && !slot)
        q = heap_get(n, false);
    if (!q)
        return NULL;
    if (old) {
        memcpy(q, p, old->n < n ? old->n : n);
        pages_put(p, old->n);
        old->p = NULL;
    } else if (p) { /* a small block: its class says how much it can hold */
        size_t have = block_class(p) * GRAIN;
        memcpy(q, p, have < n ? have : n);
        heap_put(p);
    }
    return q;
}

void http2__mem_init(nghttp2_mem *mem, http2_conn *c)
{
    *mem = (nghttp2_mem){c, mem_malloc, mem_free, mem_calloc, mem_realloc};
}

static bool page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t acc = 0;
    for (size_t i = 0; i < HTTP2_PAGE / sizeof *w; i += 8)
        acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
    return acc == 0;
}

/* madvise on [p, p + n): pages of a block we own, between frames. */
static size_t give_back(uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    if (madvise(p, n, MADV_DONTNEED) != 0) {
        OMS_DEBUG("madvise: %s", strerror(errno));
        return 0;
    }
    return n;
}

size_t http2__mem_trim(http2_conn *c)
{
    size_t freed = 0;
    for (int i = 0; i < HTTP2_PAGED_BLOCKS; i++) {
        http2_paged *b = &c->paged[i];
        if (!b->p)
            continue;
        uint8_t *p = b->p;
        size_t whole = round_pages(b->n); /* every page is the block's alone */
        if (b->scratch) {
            freed += give_back(p, whole);
            continue;
        }
        size_t run = 0; /* zero pages in a row, given back together */
        for (size_t off = 0; off < whole; off += HTTP2_PAGE) {
            if (page_is_zero(p + off)) {
                run += HTTP2_PAGE;
                continue;
            }
            freed += give_back(p + off - run, run);
            run = 0;
        }
        freed += give_back(p + whole - run, run);
    }
    return freed;
}

/* --- the idle list ---------------------------------------------------------- */

static void idle_unlink(http2_conn *c)
{
    http2_ep *ep = c->ep;
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        ep->idle_head = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    else
        ep->idle_tail = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->on_idle = 0;
}

static void idle_arm(http2_ep *ep, uint64_t now)
{
    if (!ep->idle_head || uv_is_active((uv_handle_t *)&ep->idle_timer))
        return;
    uint64_t due = ep->idle_head->idle_mark + HTTP2_IDLE_TRIM_MS;
    uv_timer_start(&ep->idle_timer, http2__idle_on_timer, due > now ? due - now : 0, 0);
}

void http2__idle_enter(http2_conn *c)
{
    http2_ep *ep = c->ep;
    if (ep->client || c->on_idle || c->trimmed || c->closing || !ep->idle_timer.loop)
        return;
    c->on_idle = 1;
    c->idle_mark = uv_now(ep->loop);
    c->idle_next = NULL;
    c->idle_prev = ep->idle_tail;
    if (ep->idle_tail)
        ep->idle_tail->idle_next = c;
    else
        ep->idle_head = c;
    ep->idle_tail = c;
    idle_arm(ep, c->idle_mark);
}

void http2__idle_leave(http2_conn *c)
{
    c->trimmed = 0;
    if (c->on_idle)
        idle_unlink(c);
}

/* Between frames, with nothing to say: what mem_trim requires. */
static bool quiet(const http2_conn *c)
{
    return !c->closing && !c->writing && !c->dirty && c->nstreams == 0 && c->session &&
           !c->close_after_write && http2__bytes_size(&c->out) == 0 &&
           http2__bytes_size(&c->plain) == 0 && !nghttp2_session_want_write(c->session);
}

/* Connections trimmed per timer run: ten thousand going idle together
 * (two madvise calls each) must not hold the loop for tens of ms; the rest
 * wait for the next run, a millisecond later (libuv 1.44 would run a timer
 * re-armed with 0 again within the same turn). */
#define TRIM_BATCH 256

void http2__idle_on_timer(uv_timer_t *t)
{
    http2_ep *ep = container_of(t, http2_ep, idle_timer);
    uint64_t now = uv_now(ep->loop);
    for (int n = 0; ep->idle_head && ep->idle_head->idle_mark + HTTP2_IDLE_TRIM_MS <= now; n++) {
        if (n == TRIM_BATCH) {
            uv_timer_start(&ep->idle_timer, http2__idle_on_timer, 1, 0);
            return;
        }
        http2_conn *c = ep->idle_head;
        idle_unlink(c);
        /* Not quiet (a PING being answered): it joins again once it is. */
        if (quiet(c)) {
            http2__mem_trim(c);
            c->trimmed = 1;
        }
    }
    idle_arm(ep, now);
}
