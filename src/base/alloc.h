/* alloc.h - the one allocator of http2, rpc, orders and store.
 *
 * Every allocation of those layers goes through these functions (nghttp2's
 * through http2's nghttp2_mem, protobuf-c's through rpc's allocator), so a test
 * can make the Nth one fail and watch the out-of-memory paths run, as
 * nghttp2's tests/failmalloc_test.c does. They behave exactly like their libc
 * namesakes; oms_free(NULL) is a no-op.
 *
 * Fault injection (tests only; off unless armed): oms_alloc_fail_nth(n) makes
 * the nth allocation counted from now return NULL, once. Only allocations
 * made on threads that did not call oms_alloc_exempt_thread() are counted, so
 * a test's own client may share the process. While disarmed the cost is one
 * relaxed atomic load per allocation. Thread-safe.
 */
#ifndef OMS_ALLOC_H
#define OMS_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *oms_malloc(size_t n);
void *oms_calloc(size_t n, size_t size);
void *oms_realloc(void *p, size_t n);
void oms_free(void *p);
/* For allocators of their own (http2's page pool): counts one allocation
 * as the functions above do; false when the armed failure says this one
 * must fail. */
bool oms_alloc_check(void);
/* Returns NULL on ENOMEM. */
char *oms_strdup(const char *s);
char *oms_strndup(const char *s, size_t n);

/* A per-thread free list of blocks of one size, for objects a loop makes
 * and frees at a high rate (a stream, a call). glibc's tcache keeps only 7
 * blocks per size and none over 1 KiB, so twenty streams of a connection
 * ending in one flush go through malloc's slow paths; these lists keep up
 * to OMS_FREELIST_DEPTH blocks per thread. Declare one per object size as
 *   static _Thread_local oms_freelist fl = OMS_FREELIST_INIT(sizeof(T));
 * oms_freelist_get returns an uninitialized block (NULL on ENOMEM; counted
 * by the fault injection below like oms_malloc); oms_freelist_put takes a
 * block from the same list (any thread's) or NULL. What a thread keeps is
 * freed when it exits. */
#define OMS_FREELIST_DEPTH 256
typedef struct oms_freelist {
    size_t size;
    unsigned n;
    bool registered;
    struct oms_freelist *next; /* the thread's lists, for its exit */
    void *items[OMS_FREELIST_DEPTH];
} oms_freelist;
#define OMS_FREELIST_INIT(sz)                                                                      \
    {                                                                                              \
        .size = (sz)                                                                               \
    }
void *oms_freelist_get(oms_freelist *fl);
void oms_freelist_put(oms_freelist *fl, void *p);

/* Arms (n >= 1) or disarms (n == 0) the failure; resets the counter. */
void oms_alloc_fail_nth(uint64_t n);
/* Counted allocations since the last oms_alloc_fail_nth() (armed or not,
 * while counting is on: see oms_alloc_count_on()). */
uint64_t oms_alloc_counted(void);
/* Counting without failing, to size a scenario: every counted allocation
 * bumps the counter until oms_alloc_fail_nth() is called again. */
void oms_alloc_count_on(void);
/* Whether the armed failure has fired. */
bool oms_alloc_failed(void);
/* The calling thread's allocations are never counted nor failed. */
void oms_alloc_exempt_thread(void);
/* hook (NULL: none) runs on the allocating thread each time the armed
 * failure fires, just before NULL is returned: a test records there which
 * allocation site failed (backtrace()). It must not allocate through us. */
void oms_alloc_set_fail_hook(void (*hook)(void));

#endif
