/* sqlite_read.c - synchronous reads on a store_loop's own connection.
 *
 * Each loop has its own read connection (WAL: a reader sees the last commit
 * and never waits for the writer) and its own prepared statements. Lists are
 * keyset-paged: "id > after ORDER BY id LIMIT n" on an index, so a page costs
 * one bounded query whatever the table's size.
 *
 * Malformed ids read as NOT_FOUND; a malformed after_id cursor makes a list
 * return -STORE_INVALID (the services validate page tokens before they get
 * here); a failed read -STORE_ERROR.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "sqlite_int.h"

#define ORDER_COLS                                                                                 \
    "id, customer_id, idempotency_key, cancel_reason, status, version, total, created_at, "        \
    "updated_at, lines"
#define EVENT_COLS "seq, order_id, customer_id, status, previous_status, version, at"

static const char *const reader_sql[RS__COUNT] = {
    [RS_CUSTOMER_GET] = "SELECT id, name, email, status, created_at FROM customers WHERE id = ?1",
    [RS_CUSTOMER_LIST] = "SELECT id, name, email, status, created_at FROM customers "
                         "WHERE id > ?1 ORDER BY id LIMIT ?2",
    [RS_PRODUCT_GET] = "SELECT sku, name, unit_price, on_hand, reserved, updated_at "
                       "FROM products WHERE sku = ?1",
    [RS_PRODUCT_LIST] = "SELECT sku, name, unit_price, on_hand, reserved, updated_at "
                        "FROM products WHERE sku > ?1 ORDER BY sku LIMIT ?2",
    [RS_ORDER_GET] = "SELECT " ORDER_COLS " FROM orders WHERE id = ?1",
    [RS_ORDER_GET_BY_KEY] =
        "SELECT " ORDER_COLS " FROM orders "
        "WHERE customer_id = ?1 AND idempotency_key = ?2 AND idempotency_key <> ''",
    [RS_EVENTS_RANGE] = "SELECT " EVENT_COLS " FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
    [RS_EVENTS_BY_ORDER] = "SELECT " EVENT_COLS " FROM events "
                           "WHERE order_id = ?3 AND seq >= ?1 ORDER BY seq LIMIT ?2",
    [RS_ORDERS_FIRST_CREATED] = "SELECT min(id) FROM orders WHERE created_at >= ?1 "
                                "AND created_at < ?2",
};

int store__prepare_reader(store_loop *sl, char *err, size_t errlen)
{
    for (int i = 0; i < RS__COUNT; i++) {
        if (sqlite3_prepare_v3(sl->db, reader_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &sl->rs[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "sqlite:%s: %s", sl->st->path, sqlite3_errmsg(sl->db));
            return -1;
        }
    }
    return 0;
}

void store__finalize_reader(store_loop *sl)
{
    for (int i = 0; i < RS__COUNT; i++) {
        sqlite3_finalize(sl->rs[i]);
        sl->rs[i] = NULL;
    }
    for (int i = 0; i < RS_LIST_ORDERS_SHAPES; i++) {
        sqlite3_finalize(sl->list_orders[i]);
        sl->list_orders[i] = NULL;
    }
}

static void read_error(store_loop *sl, const char *what)
{
    OMS_ERROR("store: sqlite:%s: %s: %s", sl->st->path, what, sqlite3_errmsg(sl->db));
}

static int clamp_limit(size_t limit)
{
    return limit > INT_MAX ? INT_MAX : (int)limit;
}

static void customer_from_row(sqlite3_stmt *s, store_customer *c)
{
    store__format_id(c->id, 'c', sqlite3_column_int64(s, 0));
    store__col_text(s, 1, c->name, sizeof c->name);
    store__col_text(s, 2, c->email, sizeof c->email);
    c->status = sqlite3_column_int(s, 3);
    c->created_at = sqlite3_column_int64(s, 4);
}

static void product_from_row(sqlite3_stmt *s, store_product *p)
{
    store__col_text(s, 0, p->sku, sizeof p->sku);
    store__col_text(s, 1, p->name, sizeof p->name);
    p->unit_price_cents = sqlite3_column_int64(s, 2);
    p->on_hand = sqlite3_column_int64(s, 3);
    p->reserved = sqlite3_column_int64(s, 4);
    p->updated_at = sqlite3_column_int64(s, 5);
}

static void event_from_row(sqlite3_stmt *s, store_event *e)
{
    e->seq = sqlite3_column_int64(s, 0);
    store__format_id(e->order_id, 'o', sqlite3_column_int64(s, 1));
    store__col_text(s, 2, e->customer_id, sizeof e->customer_id);
    e->status = sqlite3_column_int(s, 3);
    e->previous_status = sqlite3_column_int(s, 4);
    e->version = sqlite3_column_int64(s, 5);
    e->at = sqlite3_column_int64(s, 6);
}

store_rc store__sqlite_get_customer(store_loop *sl, const char *id, store_customer *out)
{
    int64_t n;
    if (!store__parse_id(id, 'c', &n))
        return STORE_NOT_FOUND;
    sqlite3_stmt *s = sl->rs[RS_CUSTOMER_GET];
    store__bind_int64(s, 1, n);
    int rc = store__step(s);
    if (rc == SQLITE_ROW)
        customer_from_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return STORE_OK;
    if (rc == SQLITE_DONE)
        return STORE_NOT_FOUND;
    read_error(sl, "get customer");
    return STORE_ERROR;
}

store_rc store__sqlite_get_product(store_loop *sl, const char *sku, store_product *out)
{
    if (!sku || !*sku || strnlen(sku, STORE_SKU_MAX + 1) > STORE_SKU_MAX)
        return STORE_NOT_FOUND;
    sqlite3_stmt *s = sl->rs[RS_PRODUCT_GET];
    store__bind_text(s, 1, sku, -1, SQLITE_STATIC);
    int rc = store__step(s);
    if (rc == SQLITE_ROW)
        product_from_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return STORE_OK;
    if (rc == SQLITE_DONE)
        return STORE_NOT_FOUND;
    read_error(sl, "get product");
    return STORE_ERROR;
}

long store__sqlite_list_customers(store_loop *sl, const char *after_id, store_customer *out,
                                  size_t limit)
{
    int64_t after = 0;
    if (after_id && *after_id && !store__parse_id(after_id, 'c', &after))
        return -(long)STORE_INVALID;
    sqlite3_stmt *s = sl->rs[RS_CUSTOMER_LIST];
    store__bind_int64(s, 1, after);
    store__bind_int(s, 2, clamp_limit(limit));
    long n = 0;
    int rc = SQLITE_DONE;
    while ((size_t)n < limit && (rc = store__step(s)) == SQLITE_ROW)
        customer_from_row(s, &out[n++]);
    if ((size_t)n < limit && rc != SQLITE_DONE) {
        read_error(sl, "list customers");
        n = -(long)STORE_ERROR;
    }
    sqlite3_reset(s);
    return n;
}

long store__sqlite_list_products(store_loop *sl, const char *after_sku, store_product *out,
                                 size_t limit)
{
    sqlite3_stmt *s = sl->rs[RS_PRODUCT_LIST];
    const char *after = after_sku ? after_sku : "";
    store__bind_text(s, 1, after, (int)strnlen(after, STORE_SKU_MAX), SQLITE_STATIC);
    store__bind_int(s, 2, clamp_limit(limit));
    long n = 0;
    int rc = SQLITE_DONE;
    while ((size_t)n < limit && (rc = store__step(s)) == SQLITE_ROW)
        product_from_row(s, &out[n++]);
    if ((size_t)n < limit && rc != SQLITE_DONE) {
        read_error(sl, "list products");
        n = -(long)STORE_ERROR;
    }
    sqlite3_reset(s);
    return n;
}

static store_rc get_order(store_loop *sl, sqlite3_stmt *s, store_order **out)
{
    *out = NULL;
    int rc = store__step(s);
    store_rc r = STORE_NOT_FOUND;
    if (rc == SQLITE_ROW)
        r = store__order_from_row(s, out);
    else if (rc != SQLITE_DONE) {
        read_error(sl, "get order");
        r = STORE_ERROR;
    }
    sqlite3_reset(s);
    return r;
}

store_rc store__sqlite_get_order(store_loop *sl, const char *id, store_order **out)
{
    int64_t n;
    *out = NULL;
    if (!store__parse_id(id, 'o', &n))
        return STORE_NOT_FOUND;
    sqlite3_stmt *s = sl->rs[RS_ORDER_GET];
    store__bind_int64(s, 1, n);
    return get_order(sl, s, out);
}

store_rc store__sqlite_find_order_by_key(store_loop *sl, const char *customer_id,
                                         const char *idempotency_key, store_order **out)
{
    *out = NULL;
    if (!customer_id || !idempotency_key || !*idempotency_key ||
        strnlen(idempotency_key, STORE_KEY_MAX + 1) > STORE_KEY_MAX)
        return STORE_NOT_FOUND;
    sqlite3_stmt *s = sl->rs[RS_ORDER_GET_BY_KEY];
    store__bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    store__bind_text(s, 2, idempotency_key, -1, SQLITE_STATIC);
    return get_order(sl, s, out);
}

/* The list_orders statement for one filter shape, prepared on first use. */
static sqlite3_stmt *list_orders_stmt(store_loop *sl, unsigned shape)
{
    if (sl->list_orders[shape])
        return sl->list_orders[shape];
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT " ORDER_COLS " FROM orders WHERE id > ?1%s%s%s%s "
             "ORDER BY id LIMIT ?6",
             shape & 1 ? " AND customer_id = ?2" : "", shape & 2 ? " AND status = ?3" : "",
             shape & 4 ? " AND +created_at >= ?4" : "", shape & 8 ? " AND +created_at < ?5" : "");
    if (sqlite3_prepare_v3(sl->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &sl->list_orders[shape],
                           NULL) != SQLITE_OK) {
        read_error(sl, "prepare list orders");
        return NULL;
    }
    return sl->list_orders[shape];
}

long store__sqlite_list_orders(store_loop *sl, const store_order_filter *f, const char *after_id,
                               store_order **out, size_t limit)
{
    int64_t after = 0;
    if (after_id && *after_id && !store__parse_id(after_id, 'o', &after))
        return -(long)STORE_INVALID;
    static const store_order_filter any = {0};
    if (!f)
        f = &any;
    unsigned shape = (f->customer_id && *f->customer_id ? 1u : 0u) | (f->status ? 2u : 0u) |
                     (f->created_from ? 4u : 0u) | (f->created_to ? 8u : 0u);
    if (!(shape & 1) && (shape & 12) && after == 0 && limit) {
        /* A creation-time range: the first page starts at the range's lowest
         * id (one covering scan of orders_created); every page then walks
         * the primary key from its cursor, so paging through a range costs
         * O(orders in it), whatever the page size. */
        sqlite3_stmt *m = sl->rs[RS_ORDERS_FIRST_CREATED];
        store__bind_int64(m, 1, f->created_from ? f->created_from : INT64_MIN);
        store__bind_int64(m, 2, f->created_to ? f->created_to : INT64_MAX);
        int rc = store__step(m);
        bool none = rc != SQLITE_ROW || sqlite3_column_type(m, 0) == SQLITE_NULL;
        if (!none)
            after = sqlite3_column_int64(m, 0) - 1;
        sqlite3_reset(m);
        if (rc != SQLITE_ROW) {
            read_error(sl, "list orders");
            return -(long)STORE_ERROR;
        }
        if (none)
            return 0;
    }
    sqlite3_stmt *s = list_orders_stmt(sl, shape);
    if (!s)
        return -(long)STORE_ERROR;
    store__bind_int64(s, 1, after);
    if (shape & 1)
        store__bind_text(s, 2, f->customer_id, (int)strnlen(f->customer_id, STORE_ID_MAX),
                         SQLITE_STATIC);
    store__bind_int(s, 3, f->status);
    store__bind_int64(s, 4, f->created_from);
    store__bind_int64(s, 5, f->created_to);
    store__bind_int(s, 6, clamp_limit(limit));
    long n = 0;
    int rc = SQLITE_DONE;
    while ((size_t)n < limit && (rc = store__step(s)) == SQLITE_ROW) {
        if (store__order_from_row(s, &out[n]) != STORE_OK) {
            rc = SQLITE_NOMEM;
            break;
        }
        n++;
    }
    if ((size_t)n < limit && rc != SQLITE_DONE) {
        read_error(sl, "list orders");
        for (long i = 0; i < n; i++) {
            store_order_free(out[i]);
            out[i] = NULL;
        }
        n = -(long)STORE_ERROR;
    }
    sqlite3_reset(s);
    return n;
}

long store__sqlite_read_events(store_loop *sl, int64_t from_seq, const char *order_id,
                               store_event *out, size_t limit)
{
    sqlite3_stmt *s;
    if (order_id) {
        int64_t num;
        if (!store__parse_id(order_id, 'o', &num))
            return 0; /* no such order: no events */
        s = sl->rs[RS_EVENTS_BY_ORDER];
        store__bind_int64(s, 3, num);
    } else {
        s = sl->rs[RS_EVENTS_RANGE];
    }
    store__bind_int64(s, 1, from_seq);
    store__bind_int(s, 2, clamp_limit(limit));
    long n = 0;
    int rc = SQLITE_DONE;
    while ((size_t)n < limit && (rc = store__step(s)) == SQLITE_ROW)
        event_from_row(s, &out[n++]);
    if ((size_t)n < limit && rc != SQLITE_DONE) {
        read_error(sl, "read events");
        n = -(long)STORE_ERROR;
    }
    sqlite3_reset(s);
    return n;
}
