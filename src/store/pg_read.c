/* pg_read.c - synchronous reads on a store_loop's own PostgreSQL connection
 * (pg_int.h says why synchronous, and what a broken connection costs).
 * Keyset-paged like sqlite_read.c. A read whose connection is down fails
 * (STORE_UNAVAILABLE, or -1 for lists) without waiting for it: the caller
 * answers and the next read tries again, after the reconnect backoff. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "pg_int.h"

enum {
    PR_CUSTOMER_GET,
    PR_CUSTOMER_LIST,
    PR_PRODUCT_GET,
    PR_PRODUCT_LIST,
    PR_ORDER_GET,
    PR_ORDER_GET_BY_KEY,
    PR_EVENTS_RANGE,
    PR_EVENTS_BY_ORDER,
    PR_UNUSED_IDS,
    PR__COUNT
};

#define EVENT_COLS "seq, order_id, customer_id, status, previous_status, version, at"

const char *const store__pg_reader_sql[PR__COUNT] = {
    [PR_CUSTOMER_GET] = "SELECT id, name, email, status, created_at FROM customers WHERE id = $1",
    [PR_CUSTOMER_LIST] = "SELECT id, name, email, status, created_at FROM customers "
                         "WHERE id > $1 ORDER BY id LIMIT $2",
    [PR_PRODUCT_GET] = "SELECT sku, name, unit_price, on_hand, reserved, updated_at "
                       "FROM products WHERE sku = $1",
    [PR_PRODUCT_LIST] = "SELECT sku, name, unit_price, on_hand, reserved, updated_at "
                        "FROM products WHERE sku > $1 ORDER BY sku LIMIT $2",
    [PR_ORDER_GET] = "SELECT " PG_ORDER_COLS " FROM orders WHERE id = $1",
    [PR_ORDER_GET_BY_KEY] =
        "SELECT " PG_ORDER_COLS " FROM orders "
        "WHERE customer_id = $1 AND idempotency_key = $2 AND idempotency_key <> ''",
    [PR_EVENTS_RANGE] = "SELECT " EVENT_COLS " FROM events WHERE seq >= $1 ORDER BY seq LIMIT $2",
    [PR_EVENTS_BY_ORDER] = "SELECT " EVENT_COLS " FROM events "
                           "WHERE order_id = $3 AND seq >= $1 ORDER BY seq LIMIT $2",
    [PR_UNUSED_IDS] = "SELECT id FROM orders WHERE id >= $1 AND id <= $2 ORDER BY id",
};
const int store__pg_reader_count = PR__COUNT;

/* list_orders' statements, one per filter shape, follow the fixed ones. */
#define LIST_SHAPES 16

static pg_loop *loop_of(store_loop *sl)
{
    return (pg_loop *)(void *)sl;
}

/* The loop's connection, reconnected if needed; NULL while down. */
static PGconn *conn(pg_loop *l)
{
    if (store__pg_ensure(&l->conn, l->st->url, store__pg_reader_sql, PR__COUNT) != 0)
        return NULL;
    return l->conn.c;
}

/* Runs a read; NULL on failure, with l->read_rc saying what it means: a
 * database that is down or going away is UNAVAILABLE, not an error. */
static PGresult *query(pg_loop *l, int stmt, const pg_params *p, const char *what)
{
    l->read_rc = STORE_UNAVAILABLE;
    PGconn *c = conn(l);
    if (!c)
        return NULL;
    PGresult *r = store__pg_run(c, stmt, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQstatus(c) != CONNECTION_OK) {
        /* The connection broke since the last read (a server restart): one
         * reconnect and one more try, so that a restart costs no read. */
        PQclear(r);
        r = NULL;
        if ((c = conn(l)) != NULL)
            r = store__pg_run(c, stmt, p);
        else
            return NULL;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        l->read_rc = store__pg_classify(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL,
                                        PQstatus(c) != CONNECTION_OK);
        OMS_ERROR("store: %s: %s: %s", l->st->name, what,
                  r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    return r;
}

static int64_t clamp_limit(size_t limit)
{
    return limit > INT_MAX ? INT_MAX : (int64_t)limit;
}

static void customer_from_row(const PGresult *r, int i, store_customer *c)
{
    store__format_id(c->id, 'c', store__pg_i64(r, i, 0));
    store__pg_text(r, i, 1, c->name, sizeof c->name);
    store__pg_text(r, i, 2, c->email, sizeof c->email);
    c->status = (int)store__pg_i64(r, i, 3);
    c->created_at = store__pg_i64(r, i, 4);
}

static void product_from_row(const PGresult *r, int i, store_product *p)
{
    store__pg_text(r, i, 0, p->sku, sizeof p->sku);
    store__pg_text(r, i, 1, p->name, sizeof p->name);
    p->unit_price_cents = store__pg_i64(r, i, 2);
    p->on_hand = store__pg_i64(r, i, 3);
    p->reserved = store__pg_i64(r, i, 4);
    p->updated_at = store__pg_i64(r, i, 5);
}

static void event_from_row(const PGresult *r, int i, store_event *e)
{
    e->seq = store__pg_i64(r, i, 0);
    store__format_id(e->order_id, 'o', store__pg_i64(r, i, 1));
    store__pg_text(r, i, 2, e->customer_id, sizeof e->customer_id);
    e->status = (int)store__pg_i64(r, i, 3);
    e->previous_status = (int)store__pg_i64(r, i, 4);
    e->version = store__pg_i64(r, i, 5);
    e->at = store__pg_i64(r, i, 6);
}

store_rc store__pg_get_customer(store_loop *sl, const char *id, store_customer *out)
{
    int64_t n;
    if (!store__parse_id(id, 'c', &n))
        return STORE_NOT_FOUND;
    pg_params p = {0};
    store__pg_p_i64(&p, n);
    PGresult *r = query(loop_of(sl), PR_CUSTOMER_GET, &p, "get customer");
    if (!r)
        return loop_of(sl)->read_rc;
    store_rc rc = PQntuples(r) ? STORE_OK : STORE_NOT_FOUND;
    if (rc == STORE_OK)
        customer_from_row(r, 0, out);
    PQclear(r);
    return rc;
}

store_rc store__pg_get_product(store_loop *sl, const char *sku, store_product *out)
{
    if (!sku || !*sku || strnlen(sku, STORE_SKU_MAX + 1) > STORE_SKU_MAX)
        return STORE_NOT_FOUND;
    pg_params p = {0};
    store__pg_p_text(&p, sku);
    PGresult *r = query(loop_of(sl), PR_PRODUCT_GET, &p, "get product");
    if (!r)
        return loop_of(sl)->read_rc;
    store_rc rc = PQntuples(r) ? STORE_OK : STORE_NOT_FOUND;
    if (rc == STORE_OK)
        product_from_row(r, 0, out);
    PQclear(r);
    return rc;
}

long store__pg_list_customers(store_loop *sl, const char *after_id, store_customer *out,
                              size_t limit)
{
    int64_t after = 0;
    if (after_id && *after_id && !store__parse_id(after_id, 'c', &after))
        return -(long)STORE_INVALID;
    pg_params p = {0};
    store__pg_p_i64(&p, after);
    store__pg_p_i64(&p, clamp_limit(limit));
    PGresult *r = query(loop_of(sl), PR_CUSTOMER_LIST, &p, "list customers");
    if (!r)
        return -(long)loop_of(sl)->read_rc;
    long n = PQntuples(r);
    for (long i = 0; i < n; i++)
        customer_from_row(r, (int)i, &out[i]);
    PQclear(r);
    return n;
}

long store__pg_list_products(store_loop *sl, const char *after_sku, store_product *out,
                             size_t limit)
{
    char after[STORE_SKU_MAX + 1];
    store__copy(after, sizeof after, after_sku ? after_sku : "");
    pg_params p = {0};
    store__pg_p_text(&p, after);
    store__pg_p_i64(&p, clamp_limit(limit));
    PGresult *r = query(loop_of(sl), PR_PRODUCT_LIST, &p, "list products");
    if (!r)
        return -(long)loop_of(sl)->read_rc;
    long n = PQntuples(r);
    for (long i = 0; i < n; i++)
        product_from_row(r, (int)i, &out[i]);
    PQclear(r);
    return n;
}

static store_rc get_order(pg_loop *l, int stmt, const pg_params *p, store_order **out)
{
    PGresult *r = query(l, stmt, p, "get order");
    if (!r)
        return l->read_rc;
    store_rc rc = STORE_NOT_FOUND;
    if (PQntuples(r))
        rc = store__pg_order_from_row(r, 0, out);
    PQclear(r);
    return rc;
}

store_rc store__pg_get_order(store_loop *sl, const char *id, store_order **out)
{
    int64_t n;
    *out = NULL;
    if (!store__parse_id(id, 'o', &n))
        return STORE_NOT_FOUND;
    pg_params p = {0};
    store__pg_p_i64(&p, n);
    return get_order(loop_of(sl), PR_ORDER_GET, &p, out);
}

store_rc store__pg_find_order_by_key(store_loop *sl, const char *customer_id,
                                     const char *idempotency_key, store_order **out)
{
    *out = NULL;
    if (!customer_id || !idempotency_key || !*idempotency_key ||
        strnlen(idempotency_key, STORE_KEY_MAX + 1) > STORE_KEY_MAX)
        return STORE_NOT_FOUND;
    pg_params p = {0};
    store__pg_p_text(&p, customer_id);
    store__pg_p_text(&p, idempotency_key);
    return get_order(loop_of(sl), PR_ORDER_GET_BY_KEY, &p, out);
}

/* Prepares the list_orders statement of one filter shape on first use
 * (per connection). Its parameters are always $1..$6. */
static int list_orders_prepare(pg_loop *l, PGconn *c, unsigned shape)
{
    if (l->conn.prepared & (1u << shape))
        return 0;
    char sql[512], name[16];
    /* The shape's own conditions; the other parameters are bound NULL and
     * only typed, so each shape gets a plan of its own. */
    snprintf(sql, sizeof sql,
             "SELECT " PG_ORDER_COLS " FROM orders WHERE id > $1 AND %s AND %s AND %s AND %s "
             "ORDER BY id LIMIT $6",
             shape & 1 ? "customer_id = $2" : "$2::text IS NULL",
             shape & 2 ? "status = $3" : "$3::int IS NULL",
             shape & 4 ? "created_at >= $4" : "$4::bigint IS NULL",
             shape & 8 ? "created_at < $5" : "$5::bigint IS NULL");
    snprintf(name, sizeof name, "s%d", PR__COUNT + (int)shape);
    PGresult *r = PQprepare(c, name, sql, 0, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        l->read_rc = store__pg_classify(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL,
                                        PQstatus(c) != CONNECTION_OK);
        OMS_ERROR("store: %s: prepare list orders: %s", l->st->name, PQresultErrorMessage(r));
    }
    PQclear(r);
    if (ok)
        l->conn.prepared |= 1u << shape;
    return ok ? 0 : -1;
}

long store__pg_list_orders(store_loop *sl, const store_order_filter *f, const char *after_id,
                           store_order **out, size_t limit)
{
    pg_loop *l = loop_of(sl);
    int64_t after = 0;
    if (after_id && *after_id && !store__parse_id(after_id, 'o', &after))
        return -(long)STORE_INVALID;
    static const store_order_filter any = {0};
    if (!f)
        f = &any;
    unsigned shape = (f->customer_id && *f->customer_id ? 1u : 0u) | (f->status ? 2u : 0u) |
                     (f->created_from ? 4u : 0u) | (f->created_to ? 8u : 0u);
    l->read_rc = STORE_UNAVAILABLE;
    PGconn *c = conn(l);
    if (!c || list_orders_prepare(l, c, shape) != 0)
        return -(long)l->read_rc;
    pg_params p = {0};
    char cust[STORE_ID_MAX + 1];
    store__pg_p_i64(&p, after);
    if (shape & 1) {
        store__copy(cust, sizeof cust, f->customer_id);
        store__pg_p_text(&p, cust);
    } else
        store__pg_p_text(&p, NULL);
    if (shape & 2)
        store__pg_p_i64(&p, f->status);
    else
        store__pg_p_text(&p, NULL);
    if (shape & 4)
        store__pg_p_i64(&p, f->created_from);
    else
        store__pg_p_text(&p, NULL);
    if (shape & 8)
        store__pg_p_i64(&p, f->created_to);
    else
        store__pg_p_text(&p, NULL);
    store__pg_p_i64(&p, clamp_limit(limit));
    PGresult *r = query(l, PR__COUNT + (int)shape, &p, "list orders");
    if (!r)
        return -(long)loop_of(sl)->read_rc;
    long n = PQntuples(r);
    for (long i = 0; i < n; i++) {
        if (store__pg_order_from_row(r, (int)i, &out[i]) != STORE_OK) {
            for (long j = 0; j < i; j++) {
                store_order_free(out[j]);
                out[j] = NULL;
            }
            n = -(long)STORE_ERROR;
            break;
        }
    }
    PQclear(r);
    return n;
}

long store__pg_read_events(store_loop *sl, int64_t from_seq, const char *order_id, store_event *out,
                           size_t limit)
{
    pg_params p = {0};
    store__pg_p_i64(&p, from_seq);
    store__pg_p_i64(&p, clamp_limit(limit));
    int stmt = PR_EVENTS_RANGE;
    if (order_id) {
        int64_t num;
        if (!store__parse_id(order_id, 'o', &num))
            return 0;
        store__pg_p_i64(&p, num);
        stmt = PR_EVENTS_BY_ORDER;
    }
    PGresult *r = query(loop_of(sl), stmt, &p, "read events");
    if (!r)
        return -(long)loop_of(sl)->read_rc;
    long n = PQntuples(r);
    for (long i = 0; i < n; i++)
        event_from_row(r, (int)i, &out[i]);
    PQclear(r);
    return n;
}

long store__pg_list_unused_order_ids(store_loop *sl, int64_t first, int64_t last, int64_t *out,
                                     size_t limit)
{
    if (first < 1)
        first = 1;
    if (limit == 0 || first > last)
        return 0;
    /* The orders of [first, first + limit + orders found) would do; a sweep
     * range is at most a block, so one query over the range is bounded. */
    pg_params p = {0};
    store__pg_p_i64(&p, first);
    store__pg_p_i64(&p, last);
    PGresult *r = query(loop_of(sl), PR_UNUSED_IDS, &p, "list unused order ids");
    if (!r)
        return -(long)loop_of(sl)->read_rc;
    size_t n = 0;
    int rows = PQntuples(r), i = 0;
    for (int64_t cur = first; cur <= last && n < limit; cur++) {
        while (i < rows && store__pg_i64(r, i, 0) < cur)
            i++;
        if (i < rows && store__pg_i64(r, i, 0) == cur)
            continue;
        out[n++] = cur;
    }
    PQclear(r);
    return (long)n;
}
