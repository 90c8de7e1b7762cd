/* sqlite_write.c - the store_op implementations. Each runs on the writer
 * thread inside its request's savepoint: returning anything but STORE_OK
 * makes the caller roll the savepoint back, so a failing request may leave
 * half its statements done.
 *
 * Hot path: RESERVE is one UPDATE ... RETURNING per line plus one insert;
 * ORDER_CREATE is one insert into orders and one into events; ORDER_PLACE
 * (all-in-one mode) is a read per line, then both without a savepoint.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "sqlite_int.h"

/* An SQL failure: the message goes to the request and the log. */
static store_rc sql_error(store *st, store_write *w, const char *what)
{
    snprintf(w->msg, sizeof w->msg, "store: %s: %s", what, sqlite3_errmsg(st->db));
    OMS_ERROR("store: sqlite:%s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
    return w->rc = STORE_ERROR;
}

static store_rc fail(store_write *w, store_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static store_rc fail(store_write *w, store_rc rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, sizeof w->msg, fmt, ap);
    va_end(ap);
    return w->rc = rc;
}

/* A SKU without enough stock: the message, and the same in fail_* fields. */
static store_rc short_stock(store_write *w, const char *sku, int64_t available, int64_t requested)
{
    store__copy(w->fail_sku, sizeof w->fail_sku, sku);
    w->fail_available = available;
    w->fail_requested = requested;
    return fail(w, STORE_PRECONDITION, "sku %s: %" PRId64 " available, %" PRId64 " requested", sku,
                available, requested);
}

/* True if the fixed-size field holds a NUL-terminated string of 1..cap-1
 * bytes (callers validate; this keeps a bad request from overrunning). */
static bool field_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    return n > 0 && n < cap;
}

static const char *status_name(int s)
{
    static const char *const names[] = {"UNSPECIFIED", "PENDING",   "CONFIRMED",
                                        "SHIPPED",     "DELIVERED", "CANCELLED"};
    return s >= 0 && s <= 5 ? names[s] : "UNKNOWN";
}

static void note_order_num(store *st, int64_t n)
{
    if (n > st->batch_hwm)
        st->batch_hwm = n;
    if (n > st->batch_noted)
        st->batch_noted = n;
}

/* Appends an event row and remembers it for on_events. */
static store_rc append_event(store *st, store_write *w, int64_t order_num, const char *order_id,
                             const char *customer_id, int status, int previous, int64_t version,
                             int64_t at)
{
    sqlite3_stmt *s = st->ws[WS_EVENT_INSERT];
    store__bind_int64(s, 1, st->wr.seq + 1);
    store__bind_int64(s, 2, order_num);
    store__bind_text(s, 3, customer_id, -1, SQLITE_STATIC);
    store__bind_int(s, 4, status);
    store__bind_int(s, 5, previous);
    store__bind_int64(s, 6, version);
    store__bind_int64(s, 7, at);
    int rc = store__step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_error(st, w, "append event");
    return store__writer_event(&st->wr, w, order_id, customer_id, status, previous, version, at);
}

static store_rc customer_create(store *st, store_write *w)
{
    store_customer *c = &w->customer;
    if (!field_ok(c->name, sizeof c->name) || !field_ok(c->email, sizeof c->email))
        return fail(w, STORE_INVALID, "customer name and email are required");
    sqlite3_stmt *s = st->ws[WS_CUSTOMER_INSERT];
    store__bind_text(s, 1, c->name, -1, SQLITE_STATIC);
    store__bind_text(s, 2, c->email, -1, SQLITE_STATIC);
    store__bind_int64(s, 3, w->at);
    int rc = store__step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return fail(w, STORE_EXISTS, "email %.120s is taken", c->email);
    if (rc != SQLITE_DONE)
        return sql_error(st, w, "create customer");
    store__format_id(c->id, 'c', sqlite3_last_insert_rowid(st->db));
    c->status = STORE_CUSTOMER_ACTIVE;
    c->created_at = w->at;
    return STORE_OK;
}

static store_rc customer_set_status(store *st, store_write *w)
{
    store_customer *c = &w->customer;
    int64_t id;
    if (c->status != STORE_CUSTOMER_ACTIVE && c->status != STORE_CUSTOMER_SUSPENDED)
        return fail(w, STORE_INVALID, "invalid customer status %d", c->status);
    if (!field_ok(c->id, sizeof c->id) || !store__parse_id(c->id, 'c', &id))
        return fail(w, STORE_NOT_FOUND, "customer %.31s not found", c->id);
    sqlite3_stmt *s = st->ws[WS_CUSTOMER_SET_STATUS];
    store__bind_int64(s, 1, id);
    store__bind_int(s, 2, c->status);
    int rc = store__step(s);
    if (rc == SQLITE_ROW) {
        store__col_text(s, 0, c->name, sizeof c->name);
        store__col_text(s, 1, c->email, sizeof c->email);
        c->status = sqlite3_column_int(s, 2);
        c->created_at = sqlite3_column_int64(s, 3);
        rc = store__step(s);
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? STORE_OK : sql_error(st, w, "set customer status");
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return fail(w, STORE_NOT_FOUND, "customer %s not found", c->id);
    return sql_error(st, w, "set customer status");
}

static store_rc product_upsert(store *st, store_write *w)
{
    store_product *p = &w->product;
    if (!field_ok(p->sku, sizeof p->sku) || !field_ok(p->name, sizeof p->name))
        return fail(w, STORE_INVALID, "product sku and name are required");
    if (p->unit_price_cents < 0)
        return fail(w, STORE_INVALID, "negative unit price");
    sqlite3_stmt *s = st->ws[WS_PRODUCT_UPSERT];
    store__bind_text(s, 1, p->sku, -1, SQLITE_STATIC);
    store__bind_text(s, 2, p->name, -1, SQLITE_STATIC);
    store__bind_int64(s, 3, p->unit_price_cents);
    store__bind_int64(s, 4, w->at);
    int rc = store__step(s);
    if (rc == SQLITE_ROW) {
        p->on_hand = sqlite3_column_int64(s, 0);
        p->reserved = sqlite3_column_int64(s, 1);
        p->updated_at = w->at;
        rc = store__step(s);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? STORE_OK : sql_error(st, w, "upsert product");
}

/* Loads a product into *p (sku already set). */
static int product_get(store *st, store_product *p)
{
    sqlite3_stmt *s = st->ws[WS_PRODUCT_GET];
    store__bind_text(s, 1, p->sku, -1, SQLITE_STATIC);
    int rc = store__step(s);
    if (rc == SQLITE_ROW) {
        store__col_text(s, 0, p->name, sizeof p->name);
        p->unit_price_cents = sqlite3_column_int64(s, 1);
        p->on_hand = sqlite3_column_int64(s, 2);
        p->reserved = sqlite3_column_int64(s, 3);
        p->updated_at = sqlite3_column_int64(s, 4);
    }
    sqlite3_reset(s);
    return rc;
}

static store_rc stock_adjust(store *st, store_write *w)
{
    store_product *p = &w->product;
    if (!field_ok(p->sku, sizeof p->sku))
        return fail(w, STORE_INVALID, "product sku is required");
    int rc = product_get(st, p);
    if (rc == SQLITE_DONE)
        return fail(w, STORE_NOT_FOUND, "sku %s not found", p->sku);
    if (rc != SQLITE_ROW)
        return sql_error(st, w, "adjust stock");
    int64_t on_hand;
    if (__builtin_add_overflow(p->on_hand, w->delta, &on_hand))
        return fail(w, STORE_INVALID, "sku %s: stock would overflow", p->sku);
    if (on_hand < p->reserved)
        return fail(w, STORE_PRECONDITION,
                    "sku %s: on hand %" PRId64 " would fall below reserved %" PRId64, p->sku,
                    on_hand, p->reserved);
    sqlite3_stmt *s = st->ws[WS_PRODUCT_SET_ON_HAND];
    store__bind_text(s, 1, p->sku, -1, SQLITE_STATIC);
    store__bind_int64(s, 2, on_hand);
    store__bind_int64(s, 3, w->at);
    rc = store__step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_error(st, w, "adjust stock");
    p->on_hand = on_hand;
    p->updated_at = w->at;
    return STORE_OK;
}

/* A live reservation exists: it is the answer, unchanged (result), whatever
 * the repeat asked for; the request's lines get its prices where the SKU
 * matches. */
static store_rc reserve_existing(store_write *w, const uint8_t *blob, size_t len)
{
    long n = store__lines_count(blob, len);
    if (n < 0 || n > STORE_MAX_LINES)
        return fail(w, STORE_ERROR, "store: corrupt reservation %s", w->order_id);
    store_order *first = store_order_new((size_t)n);
    if (!first)
        return fail(w, STORE_ERROR, "store: out of memory");
    store__copy(first->id, sizeof first->id, w->order_id);
    store__lines_decode(blob, len, first->lines, (size_t)n);
    for (size_t i = 0; i < w->nlines; i++) {
        for (long j = 0; j < n; j++) {
            if (strcmp(first->lines[j].sku, w->lines[i].sku) == 0) {
                w->lines[i].unit_price_cents = first->lines[j].unit_price_cents;
                break;
            }
        }
    }
    w->result = first;
    w->existed = true;
    return STORE_OK;
}

/* Takes lines[i].quantity of each line's product, all or nothing with the
 * request's savepoint, and writes the unit prices into the lines. Fails
 * naming the first unknown or short SKU. */
static store_rc reserve_lines(store *st, store_write *w, store_line *lines, size_t n)
{
    sqlite3_stmt *u = st->ws[WS_PRODUCT_RESERVE];
    for (size_t i = 0; i < n; i++) {
        store_line *l = &lines[i];
        if (!field_ok(l->sku, sizeof l->sku) || l->quantity <= 0)
            return fail(w, STORE_INVALID, "line %zu: a sku and a positive quantity are required",
                        i + 1);
        store__bind_text(u, 1, l->sku, -1, SQLITE_STATIC);
        store__bind_int64(u, 2, l->quantity);
        int rc = store__step(u);
        bool changed = rc == SQLITE_ROW;
        if (changed) {
            l->unit_price_cents = sqlite3_column_int64(u, 0);
            rc = store__step(u);
        }
        sqlite3_reset(u);
        if (rc != SQLITE_DONE)
            return sql_error(st, w, "reserve");
        if (changed)
            continue;
        store_product p = {0};
        store__copy(p.sku, sizeof p.sku, l->sku);
        rc = product_get(st, &p);
        if (rc == SQLITE_DONE)
            return fail(w, STORE_NOT_FOUND, "sku %s not found", l->sku);
        if (rc != SQLITE_ROW)
            return sql_error(st, w, "reserve");
        return short_stock(w, l->sku, p.on_hand - p.reserved, l->quantity);
    }
    return STORE_OK;
}

/* Records order_id's live reservation of the lines encoded in st->blob. */
static store_rc reservation_insert(store *st, store_write *w, const char *order_id, size_t len)
{
    sqlite3_stmt *s = st->ws[WS_RESERVATION_INSERT];
    store__bind_text(s, 1, order_id, -1, SQLITE_STATIC);
    store__bind_blob(s, 2, st->blob, (int)len, SQLITE_STATIC);
    store__bind_int64(s, 3, w->at);
    int rc = store__step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return fail(w, STORE_EXISTS, "order %.31s already has a reservation", order_id);
    if (rc != SQLITE_DONE)
        return sql_error(st, w, "reserve");
    int64_t num;
    if (store__parse_id(order_id, 'o', &num))
        note_order_num(st, num);
    return STORE_OK;
}

/* RESERVE. A reservation that was released stays released: reserving its
 * order id again is PRECONDITION (order ids are never reused, so a late retry
 * of a cancelled or compensated order must not take stock again). */
/* The status of order number num in this store: 0 if there is none, -1 on
 * an SQL error. */
static int order_status(store *st, int64_t num)
{
    sqlite3_stmt *e = st->ws[WS_ORDER_EXISTS];
    store__bind_int64(e, 1, num);
    int rc = store__step(e);
    int status = rc == SQLITE_ROW ? sqlite3_column_int(e, 0) : rc == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(e);
    return status;
}

/* RESERVE of one of the OrderService's ids where its orders live in this
 * store: the only reservation such an id may have is its order's, made with
 * the order (ORDER_PLACE), so nothing is reserved here. */
static store_rc reserve_order_id(store *st, store_write *w, int64_t num)
{
    int status = order_status(st, num);
    if (status < 0)
        return sql_error(st, w, "reserve");
    if (status == 0)
        return fail(w, STORE_PRECONDITION,
                    "order %s does not exist; ids o-<n> belong to OrderService", w->order_id);
    return fail(w, STORE_PRECONDITION, "order %s is %s; its reservation is made with the order",
                w->order_id, status_name(status));
}

static store_rc reserve(store *st, store_write *w)
{
    if (!field_ok(w->order_id, sizeof w->order_id))
        return fail(w, STORE_INVALID, "order id is required");
    if (w->nlines == 0 || w->nlines > STORE_MAX_LINES || !w->lines)
        return fail(w, STORE_INVALID, "a reservation needs 1 to %d lines", STORE_MAX_LINES);
    sqlite3_stmt *s = st->ws[WS_RESERVATION_GET];
    store__bind_text(s, 1, w->order_id, -1, SQLITE_STATIC);
    int rc = store__step(s);
    if (rc == SQLITE_ROW) {
        store_rc r;
        if (sqlite3_column_int(s, 1))
            r = fail(w, STORE_PRECONDITION, "reservation for %s was released", w->order_id);
        else
            r = reserve_existing(w, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
        sqlite3_reset(s);
        return r;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_error(st, w, "reserve");
    int64_t num;
    if (w->orders_local && store__parse_id(w->order_id, 'o', &num))
        return reserve_order_id(st, w, num);
    store_rc r = reserve_lines(st, w, w->lines, w->nlines);
    if (r != STORE_OK)
        return r;
    size_t len = store__lines_encode(w->lines, w->nlines, st->blob);
    r = reservation_insert(st, w, w->order_id, len);
    return r == STORE_EXISTS ? sql_error(st, w, "reserve") : r; /* looked up above */
}

/* Releases the live reservation of order_id, if any; sets w->existed. */
static store_rc release(store *st, store_write *w, const char *order_id)
{
    sqlite3_stmt *s = st->ws[WS_RESERVATION_GET];
    store__bind_text(s, 1, order_id, -1, SQLITE_STATIC);
    int rc = store__step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? STORE_OK : sql_error(st, w, "release");
    }
    if (sqlite3_column_int(s, 1)) { /* already released */
        sqlite3_reset(s);
        return STORE_OK;
    }
    store_line lines[STORE_MAX_LINES];
    const uint8_t *blob = sqlite3_column_blob(s, 0);
    size_t len = (size_t)sqlite3_column_bytes(s, 0);
    long n = store__lines_count(blob, len);
    if (n >= 0 && n <= STORE_MAX_LINES)
        store__lines_decode(blob, len, lines, (size_t)n);
    sqlite3_reset(s);
    if (n < 0 || n > STORE_MAX_LINES)
        return fail(w, STORE_ERROR, "store: corrupt reservation %.31s", order_id);
    sqlite3_stmt *u = st->ws[WS_PRODUCT_UNRESERVE];
    for (long i = 0; i < n; i++) {
        store__bind_text(u, 1, lines[i].sku, -1, SQLITE_STATIC);
        store__bind_int64(u, 2, lines[i].quantity);
        rc = store__step(u);
        sqlite3_reset(u);
        if (rc != SQLITE_DONE)
            return sql_error(st, w, "release");
    }
    s = st->ws[WS_RESERVATION_RELEASE];
    store__bind_text(s, 1, order_id, -1, SQLITE_STATIC);
    store__bind_int64(s, 2, w->at);
    rc = store__step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_error(st, w, "release");
    w->existed = true;
    return STORE_OK;
}

/* RELEASE as a request: where the OrderService's orders live in this store,
 * a live order's stock goes back only with its cancel. */
static store_rc release_request(store *st, store_write *w)
{
    if (!field_ok(w->order_id, sizeof w->order_id))
        return fail(w, STORE_INVALID, "order id is required");
    int64_t num;
    if (w->orders_local && store__parse_id(w->order_id, 'o', &num)) {
        int status = order_status(st, num);
        if (status < 0)
            return sql_error(st, w, "release");
        if (status != 0 && status != STORE_ORDER_CANCELLED)
            return fail(w, STORE_PRECONDITION, "order %s is %s; cancel it to release its stock",
                        w->order_id, status_name(status));
    }
    return release(st, w, w->order_id);
}

/* KEYS_FORGET: up to STORE_KEYS_FORGET_MAX keys of orders created before
 * w->delta; the count goes back in w->delta. */
static store_rc keys_forget(store *st, store_write *w)
{
    sqlite3_stmt *s = st->ws[WS_KEYS_FORGET];
    store__bind_int64(s, 1, w->delta);
    store__bind_int(s, 2, STORE_KEYS_FORGET_MAX);
    int rc = store__step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_error(st, w, "forget idempotency keys");
    w->delta = sqlite3_changes(st->db);
    return STORE_OK;
}

store_rc store__order_from_row(sqlite3_stmt *s, store_order **out)
{
    const uint8_t *blob = sqlite3_column_blob(s, 9);
    size_t len = (size_t)sqlite3_column_bytes(s, 9);
    long n = store__lines_count(blob, len);
    if (n < 0)
        return STORE_ERROR;
    store_order *o = store_order_new((size_t)n);
    if (!o)
        return STORE_ERROR;
    store__format_id(o->id, 'o', sqlite3_column_int64(s, 0));
    store__col_text(s, 1, o->customer_id, sizeof o->customer_id);
    store__col_text(s, 2, o->idempotency_key, sizeof o->idempotency_key);
    store__col_text(s, 3, o->cancel_reason, sizeof o->cancel_reason);
    o->status = sqlite3_column_int(s, 4);
    o->version = sqlite3_column_int64(s, 5);
    o->total_cents = sqlite3_column_int64(s, 6);
    o->created_at = sqlite3_column_int64(s, 7);
    o->updated_at = sqlite3_column_int64(s, 8);
    store__lines_decode(blob, len, o->lines, (size_t)n);
    *out = o;
    return STORE_OK;
}

/* Runs a bound single-order query; NOT_FOUND, OK with *out, or ERROR. */
static store_rc load_order(store *st, store_write *w, sqlite3_stmt *s, store_order **out)
{
    int rc = store__step(s);
    store_rc r = STORE_NOT_FOUND;
    if (rc == SQLITE_ROW)
        r = store__order_from_row(s, out);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_error(st, w, "load order");
    if (r == STORE_ERROR)
        return fail(w, STORE_ERROR, "store: cannot load order");
    return r;
}

/* Inserts order o (number num, lines encoded in st->blob): a taken key or id
 * is EXISTS with that order in w->result. */
static store_rc order_insert(store *st, store_write *w, int64_t num, const store_order *o,
                             size_t len)
{
    sqlite3_stmt *s = st->ws[WS_ORDER_INSERT];
    store__bind_int64(s, 1, num);
    store__bind_text(s, 2, o->customer_id, -1, SQLITE_STATIC);
    store__bind_text(s, 3, o->idempotency_key, -1, SQLITE_STATIC);
    store__bind_int64(s, 4, o->total_cents);
    store__bind_int64(s, 5, o->created_at);
    store__bind_blob(s, 6, st->blob, (int)len, SQLITE_STATIC);
    int rc = store__step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        bool by_key = rc == SQLITE_CONSTRAINT_UNIQUE;
        sqlite3_stmt *q = st->ws[by_key ? WS_ORDER_GET_BY_KEY : WS_ORDER_GET];
        if (by_key) {
            store__bind_text(q, 1, o->customer_id, -1, SQLITE_STATIC);
            store__bind_text(q, 2, o->idempotency_key, -1, SQLITE_STATIC);
        } else
            store__bind_int64(q, 1, num);
        store_rc r = load_order(st, w, q, &w->result);
        if (r != STORE_OK)
            return r == STORE_NOT_FOUND ? sql_error(st, w, "create order") : r;
        if (by_key)
            return fail(w, STORE_EXISTS, "idempotency key already used by order %s", w->result->id);
        return fail(w, STORE_EXISTS, "order %s exists", o->id);
    }
    if (rc != SQLITE_DONE)
        return sql_error(st, w, "create order");
    note_order_num(st, num);
    return STORE_OK;
}

static store_rc order_create(store *st, store_write *w)
{
    const store_order *o = w->order;
    int64_t num;
    if (!o || !store__parse_id(o->id, 'o', &num))
        return fail(w, STORE_INVALID, "order id must be o-<n>");
    if (!field_ok(o->customer_id, sizeof o->customer_id))
        return fail(w, STORE_INVALID, "customer id is required");
    if (strnlen(o->idempotency_key, sizeof o->idempotency_key) == sizeof o->idempotency_key ||
        strnlen(o->cancel_reason, sizeof o->cancel_reason) == sizeof o->cancel_reason)
        return fail(w, STORE_INVALID, "field too long");
    if (o->nlines > STORE_MAX_LINES)
        return fail(w, STORE_INVALID, "at most %d lines", STORE_MAX_LINES);
    for (size_t i = 0; i < o->nlines; i++)
        if (!field_ok(o->lines[i].sku, sizeof o->lines[i].sku))
            return fail(w, STORE_INVALID, "line %zu: sku is required", i + 1);
    size_t len = store__lines_encode(o->lines, o->nlines, st->blob);
    store_rc r = order_insert(st, w, num, o, len);
    if (r != STORE_OK)
        return r;
    return append_event(st, w, num, o->id, o->customer_id, STORE_ORDER_PENDING, 0, 1,
                        o->created_at);
}

/* If the customer's key is taken: EXISTS with its first order in w->result;
 * else OK. */
static store_rc key_taken(store *st, store_write *w, const char *customer_id, const char *key)
{
    if (!key[0])
        return STORE_OK;
    sqlite3_stmt *q = st->ws[WS_ORDER_GET_BY_KEY];
    store__bind_text(q, 1, customer_id, -1, SQLITE_STATIC);
    store__bind_text(q, 2, key, -1, SQLITE_STATIC);
    store_rc r = load_order(st, w, q, &w->result);
    if (r == STORE_NOT_FOUND)
        return STORE_OK;
    if (r != STORE_OK)
        return r;
    return fail(w, STORE_EXISTS, "idempotency key already used by order %s", w->result->id);
}

/* Prices o's lines and checks their stock (reads only): NOT_FOUND or
 * PRECONDITION naming the first unknown or short SKU, INVALID for a bad line
 * or a total past int64. */
static store_rc place_check(store *st, store_write *w, store_order *o)
{
    sqlite3_stmt *s = st->ws[WS_PRODUCT_AVAILABLE];
    for (size_t i = 0; i < o->nlines; i++) {
        store_line *l = &o->lines[i];
        if (!field_ok(l->sku, sizeof l->sku) || l->quantity <= 0)
            return fail(w, STORE_INVALID, "line %zu: a sku and a positive quantity are required",
                        i + 1);
        for (size_t j = 0; j < i; j++) /* one stock check per SKU must cover its lines */
            if (strcmp(o->lines[j].sku, l->sku) == 0)
                return fail(w, STORE_INVALID, "line %zu: sku %s already in line %zu", i + 1, l->sku,
                            j + 1);
        store__bind_text(s, 1, l->sku, -1, SQLITE_STATIC);
        int rc = store__step(s);
        int64_t available = 0;
        if (rc == SQLITE_ROW) {
            l->unit_price_cents = sqlite3_column_int64(s, 0);
            available = sqlite3_column_int64(s, 1);
        }
        sqlite3_reset(s);
        if (rc == SQLITE_DONE)
            return fail(w, STORE_NOT_FOUND, "sku %s not found", l->sku);
        if (rc != SQLITE_ROW)
            return sql_error(st, w, "place order");
        if (available < l->quantity)
            return short_stock(w, l->sku, available, l->quantity);
        int64_t line;
        if (__builtin_mul_overflow(l->quantity, l->unit_price_cents, &line) ||
            __builtin_add_overflow(o->total_cents, line, &o->total_cents))
            return fail(w, STORE_INVALID, "order total overflows (more than 2^63-1 cents)");
    }
    return STORE_OK;
}

/* ORDER_PLACE without a savepoint of its own (a savepoint copies every page
 * the request touches into the sub-journal: a third of the op's CPU): every
 * way it can fail is found by reads first, and the first write, the order's
 * insert, fails atomically on a taken key or id. The writes after it can only
 * fail with an SQL error, which fails the whole batch (run_batch). */
static store_rc order_place(store *st, store_write *w)
{
    const store_order *in = w->order;
    int64_t num;
    if (!in || !store__parse_id(in->id, 'o', &num))
        return fail(w, STORE_INVALID, "order id must be o-<n>");
    if (!field_ok(in->customer_id, sizeof in->customer_id))
        return fail(w, STORE_INVALID, "customer id is required");
    if (strnlen(in->idempotency_key, sizeof in->idempotency_key) == sizeof in->idempotency_key)
        return fail(w, STORE_INVALID, "field too long");
    if (in->nlines == 0 || in->nlines > STORE_MAX_LINES)
        return fail(w, STORE_INVALID, "an order needs 1 to %d lines", STORE_MAX_LINES);
    store_order *o = store_order_new(in->nlines);
    if (!o)
        return fail(w, STORE_ERROR, "store: out of memory");
    memcpy(o->id, in->id, sizeof o->id);
    memcpy(o->customer_id, in->customer_id, sizeof o->customer_id);
    memcpy(o->idempotency_key, in->idempotency_key, sizeof o->idempotency_key);
    for (size_t i = 0; i < in->nlines; i++) {
        memcpy(o->lines[i].sku, in->lines[i].sku, sizeof o->lines[i].sku);
        o->lines[i].quantity = in->lines[i].quantity;
    }
    o->status = STORE_ORDER_PENDING;
    o->version = 1;
    o->created_at = o->updated_at = in->created_at;

    store_rc r = place_check(st, w, o);
    if (r != STORE_OK && r != STORE_ERROR) {
        /* A repeat of a keyed order is answered with the first one, whatever
         * the stock says now. */
        store_rc k = key_taken(st, w, o->customer_id, o->idempotency_key);
        if (k != STORE_OK)
            r = k;
    }
    if (r == STORE_OK) {
        /* A reservation under the id without its order is not ours (a store
         * from before RESERVE refused the OrderService's ids, or one a split
         * deployment left): EXISTS without a result, before any write, and
         * the caller takes a fresh id. */
        sqlite3_stmt *q = st->ws[WS_RESERVATION_GET];
        store__bind_text(q, 1, o->id, -1, SQLITE_STATIC);
        int rc = store__step(q);
        sqlite3_reset(q);
        if (rc == SQLITE_ROW)
            r = fail(w, STORE_EXISTS, "order id %s already names a reservation", o->id);
        else if (rc != SQLITE_DONE)
            r = sql_error(st, w, "place order");
    }
    size_t len = 0;
    if (r == STORE_OK) {
        len = store__lines_encode(o->lines, o->nlines, st->blob);
        r = order_insert(st, w, num, o, len); /* the first write */
    }
    sqlite3_stmt *u = st->ws[WS_PRODUCT_ADD_RESERVED];
    for (size_t i = 0; r == STORE_OK && i < o->nlines; i++) {
        store__bind_text(u, 1, o->lines[i].sku, -1, SQLITE_STATIC);
        store__bind_int64(u, 2, o->lines[i].quantity);
        int rc = store__step(u);
        sqlite3_reset(u);
        if (rc != SQLITE_DONE)
            r = sql_error(st, w, "place order");
    }
    if (r == STORE_OK) {
        r = reservation_insert(st, w, o->id, len);
        /* Checked above, on this thread: cannot happen. After the order's
         * insert only an SQL error may fail the request (it fails the
         * batch, which rolls the insert back). */
        if (r == STORE_EXISTS)
            r = sql_error(st, w, "place order");
    }
    if (r == STORE_OK)
        r = append_event(st, w, num, o->id, o->customer_id, STORE_ORDER_PENDING, 0, 1,
                         o->created_at);
    if (r != STORE_OK) {
        store_order_free(o);
        return r;
    }
    w->result = o;
    return STORE_OK;
}

static store_rc order_set_status(store *st, store_write *w)
{
    int64_t num;
    if (!field_ok(w->order_id, sizeof w->order_id) || !store__parse_id(w->order_id, 'o', &num))
        return fail(w, STORE_NOT_FOUND, "order %.31s not found", w->order_id);
    if (w->to_status < STORE_ORDER_PENDING || w->to_status > STORE_ORDER_CANCELLED)
        return fail(w, STORE_INVALID, "invalid order status %d", w->to_status);
    sqlite3_stmt *q = st->ws[WS_ORDER_GET];
    store__bind_int64(q, 1, num);
    store_order *o = NULL;
    store_rc r = load_order(st, w, q, &o);
    if (r == STORE_NOT_FOUND)
        return fail(w, STORE_NOT_FOUND, "order %s not found", w->order_id);
    if (r != STORE_OK)
        return r;
    if (w->expected_version != 0 && w->expected_version != o->version) {
        w->fail_version = o->version;
        r = fail(w, STORE_CONFLICT, "order %s is at version %" PRId64 ", not %" PRId64, o->id,
                 o->version, w->expected_version);
        goto out;
    }
    if (o->status < 0 || o->status >= 32 || !(w->allowed_from & (1u << o->status))) {
        w->fail_status = o->status;
        r = fail(w, STORE_PRECONDITION, "order %s is %s; cannot become %s", o->id,
                 status_name(o->status), status_name(w->to_status));
        goto out;
    }
    w->previous_status = o->status;
    o->status = w->to_status;
    o->version++;
    o->updated_at = w->at;
    if (w->to_status == STORE_ORDER_CANCELLED)
        store__copy(o->cancel_reason, sizeof o->cancel_reason, w->reason);
    sqlite3_stmt *s = st->ws[WS_ORDER_UPDATE_STATUS];
    store__bind_int64(s, 1, num);
    store__bind_int(s, 2, o->status);
    store__bind_int64(s, 3, o->version);
    store__bind_int64(s, 4, o->updated_at);
    store__bind_text(s, 5, o->cancel_reason, -1, SQLITE_STATIC);
    int rc = store__step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        r = sql_error(st, w, "set order status");
        goto out;
    }
    r = append_event(st, w, num, o->id, o->customer_id, o->status, w->previous_status, o->version,
                     w->at);
    if (r == STORE_OK && w->with_stock && o->status == STORE_ORDER_CANCELLED)
        r = release(st, w, w->order_id);
    if (r == STORE_OK) {
        w->result = o;
        return STORE_OK;
    }
out:
    store_order_free(o);
    return r;
}

/* Releases every live reservation without an order in this store, and those
 * of cancelled orders (a crash between CancelOrder's status change and its
 * Release leaves one behind); the count goes to w->delta. */
static store_rc release_orphans(store *st, store_write *w)
{
    /* Collect first: releasing while the scan runs would modify the table
     * being read. */
    size_t n = 0, cap = 0;
    char(*ids)[STORE_ID_MAX + 1] = NULL;
    sqlite3_stmt *s = st->ws[WS_LIVE_RESERVATIONS];
    int rc;
    store_rc r = STORE_OK;
    while ((rc = store__step(s)) == SQLITE_ROW) {
        char id[STORE_ID_MAX + 1];
        store__col_text(s, 0, id, sizeof id);
        int64_t num;
        if (store__parse_id(id, 'o', &num)) {
            int status = order_status(st, num);
            if (status > 0 && status != STORE_ORDER_CANCELLED) /* live */
                continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            void *p = oms_realloc(ids, cap * sizeof *ids);
            if (!p) {
                r = fail(w, STORE_ERROR, "store: out of memory");
                break;
            }
            ids = p;
        }
        memcpy(ids[n++], id, sizeof id);
    }
    sqlite3_reset(s);
    if (r == STORE_OK && rc != SQLITE_DONE)
        r = sql_error(st, w, "release orphans");
    for (size_t i = 0; r == STORE_OK && i < n; i++) {
        r = release(st, w, ids[i]);
        if (r == STORE_OK)
            OMS_WARN("store: released orphan reservation %s", ids[i]);
    }
    oms_free(ids);
    /* Every reservation of the previous runs is covered: their sweep ranges
     * (split mode's) have nothing left to do. */
    if (r == STORE_OK) {
        char sql[96];
        snprintf(sql, sizeof sql, "DELETE FROM sweep_ranges WHERE first < %lld",
                 (long long)st->run_first);
        if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            r = sql_error(st, w, "release orphans: sweep ranges");
    }
    w->existed = false;
    w->delta = (int64_t)n;
    return r;
}

/* Deletes a previous run's sweep range (first = w->delta). */
static store_rc sweep_done(store *st, store_write *w)
{
    char sql[96];
    snprintf(sql, sizeof sql, "DELETE FROM sweep_ranges WHERE first = %lld AND first < %lld",
             (long long)w->delta, (long long)st->run_first);
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_error(st, w, "sweep done");
    w->existed = sqlite3_changes(st->db) > 0;
    return STORE_OK;
}

store_rc store__apply(store *st, store_write *w)
{
    w->rc = STORE_OK;
    switch ((int)w->op) {
    case STORE_CUSTOMER_CREATE:
        return customer_create(st, w);
    case STORE_CUSTOMER_SET_STATUS:
        return customer_set_status(st, w);
    case STORE_PRODUCT_UPSERT:
        return product_upsert(st, w);
    case STORE_STOCK_ADJUST:
        return stock_adjust(st, w);
    case STORE_RESERVE:
        return reserve(st, w);
    case STORE_RELEASE:
        return release_request(st, w);
    case STORE_KEYS_FORGET:
        return keys_forget(st, w);
    case STORE_ORDER_CREATE:
        return order_create(st, w);
    case STORE_ORDER_SET_STATUS:
        return order_set_status(st, w);
    case STORE_ORDER_PLACE:
        return order_place(st, w);
    case STORE__OP_RELEASE_ORPHANS:
        return release_orphans(st, w);
    case STORE__OP_SWEEP_DONE:
        return sweep_done(st, w);
    }
    return fail(w, STORE_INVALID, "unknown store op %d", (int)w->op);
}
