/* budget.c - the response bytes the whole process may hold for its peers.
 *
 * Each connection has its own budget (http2_server_config.conn_send_budget);
 * this one caps their sum, so many connections that read nothing cannot add
 * up to more memory than the operator allowed. Over it, a connection that
 * already holds at least `floor` bytes (one stream's send buffer) is treated
 * as over its own budget: its writes answer HTTP2_AGAIN and its new requests
 * wait. Connections holding less go on, so a well-behaved client, whose
 * responses leave as fast as they are written, keeps its latency while the
 * heavy ones wait. The sum is therefore bounded by max + connections * floor.
 *
 * The counter is shared by every loop (one atomic add per write and per read
 * of queued bytes). A connection blocked here may have nothing of its own
 * that drains, so when the sum is below max again after someone was blocked,
 * every server that registered gets one uv_async wake-up and re-offers
 * writing to its blocked connections. (No low-water mark: the waiting
 * connections' own bytes count in the sum, and may keep it above any mark
 * below max for as long as their peers do not read.)
 */
#include <pthread.h>
#include <stdatomic.h>

#include "base/alloc.h"
#include "http2/http2_int.h"

enum { BUDGET_MAX_SERVERS = 256 };

struct http2_send_budget {
    atomic_size_t queued;
    atomic_bool blocked; /* a connection waits for the sum to fall */
    size_t max;
    pthread_mutex_t mu; /* guards wakers: uv_async_send vs. unregister */
    uv_async_t *wakers[BUDGET_MAX_SERVERS];
    size_t nwakers;
};

http2_send_budget *http2_send_budget_new(size_t max)
{
    http2_send_budget *b = oms_calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->max = max;
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void http2_send_budget_free(http2_send_budget *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    oms_free(b);
}

size_t http2_send_budget_queued(const http2_send_budget *b)
{
    return atomic_load(&((http2_send_budget *)b)->queued);
}

void http2__budget_add(http2_send_budget *b, size_t n)
{
    if (b && n)
        atomic_fetch_add_explicit(&b->queued, n, memory_order_relaxed);
}

void http2__budget_sub(http2_send_budget *b, size_t n)
{
    if (!b || !n)
        return;
    size_t was = atomic_fetch_sub_explicit(&b->queued, n, memory_order_relaxed);
    if (was - n < b->max && atomic_load_explicit(&b->blocked, memory_order_relaxed) &&
        atomic_exchange(&b->blocked, false)) {
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; i < b->nwakers; i++)
            uv_async_send(b->wakers[i]);
        pthread_mutex_unlock(&b->mu);
    }
}

bool http2__budget_over(http2_send_budget *b, size_t conn_queued, size_t floor)
{
    if (!b || !b->max || conn_queued < floor)
        return false;
    if (atomic_load_explicit(&b->queued, memory_order_relaxed) < b->max)
        return false;
    atomic_store(&b->blocked, true);
    return true;
}

int http2__budget_register(http2_send_budget *b, uv_async_t *a)
{
    int rv = UV_ENOSPC;
    pthread_mutex_lock(&b->mu);
    if (b->nwakers < BUDGET_MAX_SERVERS) {
        b->wakers[b->nwakers++] = a;
        rv = 0;
    }
    pthread_mutex_unlock(&b->mu);
    return rv;
}

void http2__budget_unregister(http2_send_budget *b, uv_async_t *a)
{
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->nwakers; i++) {
        if (b->wakers[i] == a) {
            b->wakers[i] = b->wakers[--b->nwakers];
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
}
