/* alloc.c - the layers' allocator, with a failure a test can arm. */
#include "base/alloc.h"

#include <pthread.h>
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

/* --- per-thread free lists ------------------------------------------------ */

static pthread_key_t g_fl_key;
static pthread_once_t g_fl_once = PTHREAD_ONCE_INIT;
static bool g_fl_key_ok;
static _Thread_local oms_freelist *t_lists; /* this thread's, once used */

/* Thread exit: what its lists hold goes back to malloc. */
static void fl_thread_exit(void *unused)
{
    (void)unused;
    for (oms_freelist *fl = t_lists; fl; fl = fl->next) {
        while (fl->n)
            free(fl->items[--fl->n]);
        fl->registered = false;
    }
    t_lists = NULL;
}

static void fl_key_init(void)
{
    g_fl_key_ok = pthread_key_create(&g_fl_key, fl_thread_exit) == 0;
}

void *oms_freelist_get(oms_freelist *fl)
{
    if (should_fail())
        return NULL;
    if (fl->n)
        return fl->items[--fl->n];
    return malloc(fl->size);
}

void oms_freelist_put(oms_freelist *fl, void *p)
{
    if (!p)
        return;
    if (!fl->registered) {
        pthread_once(&g_fl_once, fl_key_init);
        /* Without the key nothing would free the list at thread exit. */
        if (!g_fl_key_ok || pthread_setspecific(g_fl_key, fl) != 0) {
            free(p);
            return;
        }
        fl->registered = true;
        fl->next = t_lists;
        t_lists = fl;
    }
    if (fl->n < OMS_FREELIST_DEPTH)
        fl->items[fl->n++] = p;
    else
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
