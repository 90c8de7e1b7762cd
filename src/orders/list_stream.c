/* list_stream.c - server-streaming List calls that page through the store:
 * one keyset page at a time, each record sent until flow control pushes back
 * (RPC_AGAIN), resumed from on_ready. Memory per call is one page. */
#include <string.h>

#include "orders/list_stream.h"

typedef struct list_state {
    const orders_pager *p;
    void *page; /* limit records of p->rec_size bytes, from the call's arena */
    size_t limit, n, next;
    bool last;      /* the page read is the last one */
    char after[80]; /* key of the last record sent (ids and SKUs fit) */
} list_state;

_Static_assert(sizeof((list_state *)0)->after > STORE_ID_MAX &&
                   sizeof((list_state *)0)->after > STORE_SKU_MAX,
               "list cursor too small");

static void pump(rpc_call *c, list_state *ls)
{
    orders_loop *ol = orders__call_loop(c);
    if (!ol) {
        rpc_call_finish(c, RPC_UNAVAILABLE, "order system not attached to this loop");
        return;
    }
    const orders_pager *p = ls->p;
    for (;;) {
        if (ls->next == ls->n) {
            if (ls->last)
                break;
            long n = p->read(ol->sl, ls->after, ls->page, ls->limit);
            if (n < 0) { /* UNAVAILABLE while the database is down */
                rpc_call_finish(c, orders__status(store_count_rc(n)), p->read_failed);
                return;
            }
            ls->n = (size_t)n;
            ls->next = 0;
            ls->last = ls->n < ls->limit;
            if (n == 0)
                break;
        }
        const void *rec = (const char *)ls->page + ls->next++ * p->rec_size;
        const char *key = p->key(rec);
        size_t klen = strlen(key);
        if (klen >= sizeof ls->after)
            klen = sizeof ls->after - 1;
        memcpy(ls->after, key, klen);
        ls->after[klen] = '\0';
        int rc = p->send(c, rec);
        if (rc < 0) {
            if (rc != RPC_ECANCELLED)
                rpc_call_finish(c, RPC_INTERNAL, "failed to send a listed record");
            return;
        }
        if (rc == RPC_AGAIN)
            return; /* on_ready resumes */
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

void orders__list_start(rpc_call *c, const orders_pager *p, int32_t page_size)
{
    orders *o = rpc_call_service_data(c);
    if (page_size < 0) {
        orders__fail(c, RPC_INVALID_ARGUMENT, "page_size: must be >= 0", NULL);
        return;
    }
    size_t limit = page_size ? (size_t)page_size : o->cfg.page_size;
    if (limit > o->cfg.page_size)
        limit = o->cfg.page_size;
    list_state *ls = rpc_call_alloc(c, sizeof *ls);
    if (ls)
        ls->page = rpc_call_alloc(c, limit * p->rec_size);
    if (!ls || !ls->page) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    ls->p = p;
    ls->limit = limit;
    rpc_call_set_data(c, ls);
    pump(c, ls);
}

void orders__list_ready(rpc_call *c)
{
    list_state *ls = rpc_call_data(c);
    if (ls && !rpc_call_done(c))
        pump(c, ls);
}
