/* store.c - store_open picks the backend by the URL's prefix; every other
 * public call goes through the table at the head of its store / store_loop,
 * or to the writer (writer.c) both backends share. */
#include <string.h>

#include "store_int.h"

#define BE(p) (((const store__base *)(const void *)(p))->be)
#define WR(p) (((const store__base *)(const void *)(p))->wr)

static bool is_pg_url(const char *url)
{
    return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
}

store *store_open(const store_config *cfg, char *err, size_t errlen)
{
    const char *url = cfg && cfg->url ? cfg->url : "";
    if (is_pg_url(url))
        return store__pg_open(cfg, err, errlen);
    return store__sqlite_open(cfg, err, errlen);
}

void store_close(store *st)
{
    if (st)
        BE(st)->close(st);
}

store_rc store_next_order_id(store *st, char out[STORE_ID_MAX + 1])
{
    return BE(st)->next_order_id(st, out);
}

size_t store_pending_sweeps(store *st, store_id_range *out, size_t cap)
{
    return BE(st)->pending_sweeps(st, out, cap);
}

store_rc store_sweep_done(store *st, const store_id_range *r)
{
    return BE(st)->sweep_done(st, r);
}

int64_t store_last_seq(store *st)
{
    return atomic_load(&WR(st)->last_seq);
}

long store_release_orphans(store *st)
{
    return BE(st)->release_orphans(st);
}

void store_get_stats(store *st, store_stats *out)
{
    store__writer_get_stats(WR(st), out);
}

store_loop *store_loop_open(store *st, uv_loop_t *loop, char *err, size_t errlen)
{
    return BE(st)->loop_open(st, loop, err, errlen);
}

void store_loop_close(store_loop *sl)
{
    if (!sl)
        return;
    store_loop_flush(sl); /* the callbacks may still read through sl */
    BE(sl)->loop_close(sl);
}

void store_submit(store_loop *sl, store_write *w)
{
    store__writer_submit(sl, w);
}

long store_list_unused_order_ids(store_loop *sl, int64_t first, int64_t last, int64_t *out,
                                 size_t limit)
{
    return BE(sl)->list_unused_order_ids(sl, first, last, out, limit);
}

store_rc store_get_customer(store_loop *sl, const char *id, store_customer *out)
{
    return BE(sl)->get_customer(sl, id, out);
}

store_rc store_get_product(store_loop *sl, const char *sku, store_product *out)
{
    return BE(sl)->get_product(sl, sku, out);
}

long store_list_customers(store_loop *sl, const char *after_id, store_customer *out, size_t limit)
{
    return BE(sl)->list_customers(sl, after_id, out, limit);
}

long store_list_products(store_loop *sl, const char *after_sku, store_product *out, size_t limit)
{
    return BE(sl)->list_products(sl, after_sku, out, limit);
}

store_rc store_get_order(store_loop *sl, const char *id, store_order **out)
{
    return BE(sl)->get_order(sl, id, out);
}

store_rc store_find_order_by_key(store_loop *sl, const char *customer_id,
                                 const char *idempotency_key, store_order **out)
{
    return BE(sl)->find_order_by_key(sl, customer_id, idempotency_key, out);
}

long store_list_orders(store_loop *sl, const store_order_filter *f, const char *after_id,
                       store_order **out, size_t limit)
{
    return BE(sl)->list_orders(sl, f, after_id, out, limit);
}

long store_read_events(store_loop *sl, int64_t from_seq, const char *order_id, store_event *out,
                       size_t limit)
{
    return BE(sl)->read_events(sl, from_seq, order_id, out, limit);
}
