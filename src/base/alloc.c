/* alloc.c - the layers' allocator, with a failure a test can arm. */
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_bool g_watch;             /* counting (and maybe failing) is on */
static atomic_uint_least64_t g_fail_at; /* 0: never fail */
static atomic_uint_least64_t g_count;
static atomic_bool g_fired;
static _Thread_local bool t_exempt;
static void (*_Atomic g_hook)(void);

/* True when this allocation must fail. */
static bool should_fail(void)
{
    if (__builtin_expect(!atomic_load_explicit(&g_watch, memory_order_relaxed), 1) || t_exempt)
        return false;
    uint64_t n = atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed) + 1;
    if (n != atomic_load_explicit(&g_fail_at, memory_order_relaxed))
        return false;
    atomic_store_explicit(&g_fired, true, memory_order_relaxed);
    void (*hook)(void) = atomic_load(&g_hook);
    if (hook)
        hook();
    return true;
}

void *oms_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *oms_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *oms_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

bool oms_alloc_check(void)
{
    return !should_fail();
}

void oms_free(void *p)
{
    free(p);
}

char *oms_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = oms_malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

char *oms_strdup(const char *s)
{
    return oms_strndup(s, strlen(s));
}

void oms_alloc_fail_nth(uint64_t n)
{
    atomic_store(&g_watch, false);
    atomic_store(&g_count, 0);
    atomic_store(&g_fired, false);
    atomic_store(&g_fail_at, n);
    atomic_store(&g_watch, n != 0);
}

void oms_alloc_count_on(void)
{
    oms_alloc_fail_nth(0);
    atomic_store(&g_watch, true);
}

uint64_t oms_alloc_counted(void)
{
    return atomic_load(&g_count);
}

bool oms_alloc_failed(void)
{
    return atomic_load(&g_fired);
}

void oms_alloc_exempt_thread(void)
{
    t_exempt = true;
}

void oms_alloc_set_fail_hook(void (*hook)(void))
{
    atomic_store(&g_hook, hook);
}
