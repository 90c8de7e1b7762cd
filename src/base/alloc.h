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
