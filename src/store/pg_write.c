/* pg_write.c - the store_op implementations on PostgreSQL. The same
 * semantics as sqlite_write.c (store.h is the contract); what differs:
 *  - An SQL error aborts a PostgreSQL transaction, not just the statement: a
 *    request's expected failures never come from an error. Taken keys are
 *    INSERT ... ON CONFLICT DO NOTHING and a look at what is there; every
 *    other failure is found by reads before the first write.
 *  - The writer holds the event counter's row lock from the batch's first
 *    statement (pg.c), so reads-then-writes see every instance's commits and
 *    nothing changes in between: ORDER_PLACE checks stock, then writes,
 *    without a savepoint, as on SQLite.
 * Each runs on the writer thread inside its request's savepoint where pg.c
 * gives it one; returning anything but STORE_OK makes pg.c roll it back.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "pg_int.h"

/* An SQL failure (r may be NULL): the message goes to the request, st and the
 * log. Call before PQclear(r). */
static store_rc sql_error(pg_store *st, store_write *w, const char *what, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(st->w.c);
    if (!m || !*m)
        m = PQerrorMessage(st->w.c);
    size_t len = strlen(m);
    while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
        len--;
    store__copy(st->sqlstate, sizeof st->sqlstate, state ? state : "");
    snprintf(st->err, sizeof st->err, "%.*s", (int)len, m);
    /* The client hears what kind of failure it was; the log has the text. */
    snprintf(w->msg, sizeof w->msg, "store: %s: %s", what,
             store__pg_describe(st->sqlstate, !st->w.c || PQstatus(st->w.c) != CONNECTION_OK));
    OMS_ERROR("store: %s: %s: %s", st->name, what, st->err);
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

static PGresult *run(pg_store *st, int stmt, const pg_params *p)
{
    return store__pg_run(st->w.c, stmt, p);
}

/* Runs a statement whose result is not needed: 0, or STORE_ERROR set. */
static store_rc run_cmd(pg_store *st, store_write *w, int stmt, const pg_params *p,
                        const char *what)
{
    PGresult *r = run(st, stmt, p);
    store_rc rc = store__pg_ok(r) ? STORE_OK : sql_error(st, w, what, r);
    PQclear(r);
    return rc;
}

static store_rc short_stock(store_write *w, const char *sku, int64_t available, int64_t requested)
{
    store__copy(w->fail_sku, sizeof w->fail_sku, sku);
    w->fail_available = available;
    w->fail_requested = requested;
    return fail(w, STORE_PRECONDITION, "sku %s: %" PRId64 " available, %" PRId64 " requested", sku,
                available, requested);
}

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

static store_rc append_event(pg_store *st, store_write *w, int64_t order_num, const char *order_id,
                             const char *customer_id, int status, int previous, int64_t version,
                             int64_t at)
{
    pg_params p = {0};
    store__pg_p_i64(&p, st->wr.seq + 1);
    store__pg_p_i64(&p, order_num);
    store__pg_p_text(&p, customer_id);
    store__pg_p_i64(&p, status);
    store__pg_p_i64(&p, previous);
    store__pg_p_i64(&p, version);
    store__pg_p_i64(&p, at);
    store__pg_p_i64(&p, st->run);
    if (run_cmd(st, w, PW_EVENT_INSERT, &p, "append event") != STORE_OK)
        return STORE_ERROR;
    return store__writer_event(&st->wr, w, order_id, customer_id, status, previous, version, at);
}

static store_rc customer_create(pg_store *st, store_write *w)
{
    store_customer *c = &w->customer;
    if (!field_ok(c->name, sizeof c->name) || !field_ok(c->email, sizeof c->email))
        return fail(w, STORE_INVALID, "customer name and email are required");
    pg_params p = {0};
    store__pg_p_text(&p, c->name);
    store__pg_p_text(&p, c->email);
    store__pg_p_i64(&p, w->at);
    PGresult *r = run(st, PW_CUSTOMER_INSERT, &p);
    store_rc rc = STORE_OK;
    if (!store__pg_ok(r))
        rc = sql_error(st, w, "create customer", r);
    else if (PQntuples(r) == 0)
        rc = fail(w, STORE_EXISTS, "email %.120s is taken", c->email);
    else {
        store__format_id(c->id, 'c', store__pg_i64(r, 0, 0));
        c->status = STORE_CUSTOMER_ACTIVE;
        c->created_at = w->at;
    }
    PQclear(r);
    return rc;
}

static store_rc customer_set_status(pg_store *st, store_write *w)
{
    store_customer *c = &w->customer;
    int64_t id;
    if (c->status != STORE_CUSTOMER_ACTIVE && c->status != STORE_CUSTOMER_SUSPENDED)
        return fail(w, STORE_INVALID, "invalid customer status %d", c->status);
    if (!field_ok(c->id, sizeof c->id) || !store__parse_id(c->id, 'c', &id))
        return fail(w, STORE_NOT_FOUND, "customer %.31s not found", c->id);
    pg_params p = {0};
    store__pg_p_i64(&p, id);
    store__pg_p_i64(&p, c->status);
    PGresult *r = run(st, PW_CUSTOMER_SET_STATUS, &p);
    store_rc rc = STORE_OK;
    if (!store__pg_ok(r))
        rc = sql_error(st, w, "set customer status", r);
    else if (PQntuples(r) == 0)
        rc = fail(w, STORE_NOT_FOUND, "customer %s not found", c->id);
    else {
        store__pg_text(r, 0, 0, c->name, sizeof c->name);
        store__pg_text(r, 0, 1, c->email, sizeof c->email);
        c->status = (int)store__pg_i64(r, 0, 2);
        c->created_at = store__pg_i64(r, 0, 3);
    }
    PQclear(r);
    return rc;
}

static store_rc product_upsert(pg_store *st, store_write *w)
{
    store_product *pr = &w->product;
    if (!field_ok(pr->sku, sizeof pr->sku) || !field_ok(pr->name, sizeof pr->name))
        return fail(w, STORE_INVALID, "product sku and name are required");
    if (pr->unit_price_cents < 0)
        return fail(w, STORE_INVALID, "negative unit price");
    pg_params p = {0};
    store__pg_p_text(&p, pr->sku);
    store__pg_p_text(&p, pr->name);
    store__pg_p_i64(&p, pr->unit_price_cents);
    store__pg_p_i64(&p, w->at);
    PGresult *r = run(st, PW_PRODUCT_UPSERT, &p);
    store_rc rc = STORE_OK;
    if (!store__pg_ok(r) || PQntuples(r) != 1)
        rc = sql_error(st, w, "upsert product", r);
    else {
        pr->on_hand = store__pg_i64(r, 0, 0);
        pr->reserved = store__pg_i64(r, 0, 1);
        pr->updated_at = w->at;
    }
    PQclear(r);
    return rc;
}

/* Loads a product into *pr (sku set): 1 found, 0 not, -1 SQL error (w set). */
static int product_get(pg_store *st, store_write *w, store_product *pr, const char *what)
{
    pg_params p = {0};
    store__pg_p_text(&p, pr->sku);
    PGresult *r = run(st, PW_PRODUCT_GET, &p);
    int found = -1;
    if (!store__pg_ok(r))
        sql_error(st, w, what, r);
    else if ((found = PQntuples(r) > 0)) {
        store__pg_text(r, 0, 0, pr->name, sizeof pr->name);
        pr->unit_price_cents = store__pg_i64(r, 0, 1);
        pr->on_hand = store__pg_i64(r, 0, 2);
        pr->reserved = store__pg_i64(r, 0, 3);
        pr->updated_at = store__pg_i64(r, 0, 4);
    }
    PQclear(r);
    return found;
}

static store_rc stock_adjust(pg_store *st, store_write *w)
{
    store_product *pr = &w->product;
    if (!field_ok(pr->sku, sizeof pr->sku))
        return fail(w, STORE_INVALID, "product sku is required");
    int found = product_get(st, w, pr, "adjust stock");
    if (found < 0)
        return STORE_ERROR;
    if (!found)
        return fail(w, STORE_NOT_FOUND, "sku %s not found", pr->sku);
    int64_t on_hand;
    if (__builtin_add_overflow(pr->on_hand, w->delta, &on_hand))
        return fail(w, STORE_INVALID, "sku %s: stock would overflow", pr->sku);
    if (on_hand < pr->reserved)
        return fail(w, STORE_PRECONDITION,
                    "sku %s: on hand %" PRId64 " would fall below reserved %" PRId64, pr->sku,
                    on_hand, pr->reserved);
    pg_params p = {0};
    store__pg_p_text(&p, pr->sku);
    store__pg_p_i64(&p, on_hand);
    store__pg_p_i64(&p, w->at);
    if (run_cmd(st, w, PW_PRODUCT_SET_ON_HAND, &p, "adjust stock") != STORE_OK)
        return STORE_ERROR;
    pr->on_hand = on_hand;
    pr->updated_at = w->at;
    return STORE_OK;
}

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
    for (size_t i = 0; i < w->nlines; i++)
        for (long j = 0; j < n; j++)
            if (strcmp(first->lines[j].sku, w->lines[i].sku) == 0) {
                w->lines[i].unit_price_cents = first->lines[j].unit_price_cents;
                break;
            }
    w->result = first;
    w->existed = true;
    return STORE_OK;
}

/* Takes each line's quantity (conditional UPDATE), all or nothing with the
 * request's savepoint, writing the unit prices into the lines. */
static store_rc reserve_lines(pg_store *st, store_write *w, store_line *lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        store_line *l = &lines[i];
        if (!field_ok(l->sku, sizeof l->sku) || l->quantity <= 0)
            return fail(w, STORE_INVALID, "line %zu: a sku and a positive quantity are required",
                        i + 1);
        pg_params p = {0};
        store__pg_p_text(&p, l->sku);
        store__pg_p_i64(&p, l->quantity);
        PGresult *r = run(st, PW_PRODUCT_RESERVE, &p);
        if (!store__pg_ok(r)) {
            sql_error(st, w, "reserve", r);
            PQclear(r);
            return STORE_ERROR;
        }
        bool changed = PQntuples(r) == 1;
        if (changed)
            l->unit_price_cents = store__pg_i64(r, 0, 0);
        PQclear(r);
        if (changed)
            continue;
        store_product pr = {0};
        store__copy(pr.sku, sizeof pr.sku, l->sku);
        int found = product_get(st, w, &pr, "reserve");
        if (found < 0)
            return STORE_ERROR;
        if (!found)
            return fail(w, STORE_NOT_FOUND, "sku %s not found", l->sku);
        return short_stock(w, l->sku, pr.on_hand - pr.reserved, l->quantity);
    }
    return STORE_OK;
}

/* Records order_id's live reservation of the lines in st->blob: EXISTS if
 * the id has one. */
static store_rc reservation_insert(pg_store *st, store_write *w, const char *order_id, size_t len)
{
    pg_params p = {0};
    store__pg_p_text(&p, order_id);
    store__pg_p_bytea(&p, st->blob, len);
    store__pg_p_i64(&p, w->at);
    store__pg_p_i64(&p, st->run);
    PGresult *r = run(st, PW_RESERVATION_INSERT, &p);
    store_rc rc = STORE_OK;
    if (!store__pg_ok(r))
        rc = sql_error(st, w, "reserve", r);
    else if (strcmp(PQcmdTuples(r), "1") != 0)
        rc = fail(w, STORE_EXISTS, "order %.31s already has a reservation", order_id);
    PQclear(r);
    return rc;
}

/* The status of order number num: 0 if none, -1 on an SQL error. */
static int order_status(pg_store *st, store_write *w, int64_t num, const char *what)
{
    pg_params p = {0};
    store__pg_p_i64(&p, num);
    PGresult *r = run(st, PW_ORDER_EXISTS, &p);
    int status = -1;
    if (!store__pg_ok(r))
        sql_error(st, w, what, r);
    else
        status = PQntuples(r) ? (int)store__pg_i64(r, 0, 0) : 0;
    PQclear(r);
    return status;
}

/* The reservation of order_id: 1 with *released (and a copy of its lines in
 * st->blob, *len) if found, 0 if not, -1 on an SQL error. */
static int reservation_get(pg_store *st, store_write *w, const char *order_id, bool *released,
                           size_t *len, const char *what)
{
    pg_params p = {0};
    store__pg_p_text(&p, order_id);
    PGresult *r = run(st, PW_RESERVATION_GET, &p);
    int found = -1;
    if (!store__pg_ok(r))
        sql_error(st, w, what, r);
    else if ((found = PQntuples(r) > 0)) {
        size_t n = (size_t)PQgetlength(r, 0, 0);
        if (n > STORE__LINES_BLOB_MAX)
            n = STORE__LINES_BLOB_MAX + 1; /* counted as corrupt below */
        else
            memcpy(st->blob, PQgetvalue(r, 0, 0), n);
        *len = n;
        *released = store__pg_i64(r, 0, 1) != 0;
    }
    PQclear(r);
    return found;
}

static store_rc reserve(pg_store *st, store_write *w)
{
    if (!field_ok(w->order_id, sizeof w->order_id))
        return fail(w, STORE_INVALID, "order id is required");
    if (w->nlines == 0 || w->nlines > STORE_MAX_LINES || !w->lines)
        return fail(w, STORE_INVALID, "a reservation needs 1 to %d lines", STORE_MAX_LINES);
    bool released = false;
    size_t len = 0;
    int found = reservation_get(st, w, w->order_id, &released, &len, "reserve");
    if (found < 0)
        return STORE_ERROR;
    if (found) {
        if (released)
            return fail(w, STORE_PRECONDITION, "reservation for %s was released", w->order_id);
        if (len > STORE__LINES_BLOB_MAX)
            return fail(w, STORE_ERROR, "store: corrupt reservation %s", w->order_id);
        return reserve_existing(w, st->blob, len);
    }
    int64_t num;
    if (w->orders_local && store__parse_id(w->order_id, 'o', &num)) {
        int status = order_status(st, w, num, "reserve");
        if (status < 0)
            return STORE_ERROR;
        if (status == 0)
            return fail(w, STORE_PRECONDITION,
                        "order %s does not exist; ids o-<n> belong to OrderService", w->order_id);
        return fail(w, STORE_PRECONDITION, "order %s is %s; its reservation is made with the order",
                    w->order_id, status_name(status));
    }
    store_rc r = reserve_lines(st, w, w->lines, w->nlines);
    if (r != STORE_OK)
        return r;
    len = store__lines_encode(w->lines, w->nlines, st->blob);
    r = reservation_insert(st, w, w->order_id, len);
    return r == STORE_EXISTS ? fail(w, STORE_ERROR, "store: reservation appeared") : r;
}

/* Releases the live reservation of order_id, if any; sets w->existed. */
static store_rc release(pg_store *st, store_write *w, const char *order_id)
{
    bool released = false;
    size_t len = 0;
    int found = reservation_get(st, w, order_id, &released, &len, "release");
    if (found <= 0 || released)
        return found < 0 ? STORE_ERROR : STORE_OK;
    store_line lines[STORE_MAX_LINES];
    long n = len > STORE__LINES_BLOB_MAX ? -1 : store__lines_count(st->blob, len);
    if (n < 0 || n > STORE_MAX_LINES)
        return fail(w, STORE_ERROR, "store: corrupt reservation %.31s", order_id);
    store__lines_decode(st->blob, len, lines, (size_t)n);
    for (long i = 0; i < n; i++) {
        pg_params p = {0};
        store__pg_p_text(&p, lines[i].sku);
        store__pg_p_i64(&p, lines[i].quantity);
        if (run_cmd(st, w, PW_PRODUCT_UNRESERVE, &p, "release") != STORE_OK)
            return STORE_ERROR;
    }
    pg_params p = {0};
    store__pg_p_text(&p, order_id);
    store__pg_p_i64(&p, w->at);
    if (run_cmd(st, w, PW_RESERVATION_RELEASE, &p, "release") != STORE_OK)
        return STORE_ERROR;
    w->existed = true;
    return STORE_OK;
}

static store_rc release_request(pg_store *st, store_write *w)
{
    if (!field_ok(w->order_id, sizeof w->order_id))
        return fail(w, STORE_INVALID, "order id is required");
    int64_t num;
    if (w->orders_local && store__parse_id(w->order_id, 'o', &num)) {
        int status = order_status(st, w, num, "release");
        if (status < 0)
            return STORE_ERROR;
        if (status != 0 && status != STORE_ORDER_CANCELLED)
            return fail(w, STORE_PRECONDITION, "order %s is %s; cancel it to release its stock",
                        w->order_id, status_name(status));
    }
    return release(st, w, w->order_id);
}

static store_rc keys_forget(pg_store *st, store_write *w)
{
    pg_params p = {0};
    store__pg_p_i64(&p, w->delta);
    store__pg_p_i64(&p, STORE_KEYS_FORGET_MAX);
    PGresult *r = run(st, PW_KEYS_FORGET, &p);
    store_rc rc = STORE_OK;
    if (!store__pg_ok(r))
        rc = sql_error(st, w, "forget idempotency keys", r);
    else
        w->delta = atoll(PQcmdTuples(r));
    PQclear(r);
    return rc;
}

store_rc store__pg_order_from_row(const PGresult *r, int row, store_order **out)
{
    const uint8_t *blob = (const uint8_t *)PQgetvalue(r, row, 9);
    size_t len = (size_t)PQgetlength(r, row, 9);
    long n = store__lines_count(blob, len);
    if (n < 0)
        return STORE_ERROR;
    store_order *o = store_order_new((size_t)n);
    if (!o)
        return STORE_ERROR;
    store__format_id(o->id, 'o', store__pg_i64(r, row, 0));
    store__pg_text(r, row, 1, o->customer_id, sizeof o->customer_id);
    store__pg_text(r, row, 2, o->idempotency_key, sizeof o->idempotency_key);
    store__pg_text(r, row, 3, o->cancel_reason, sizeof o->cancel_reason);
    o->status = (int)store__pg_i64(r, row, 4);
    o->version = store__pg_i64(r, row, 5);
    o->total_cents = store__pg_i64(r, row, 6);
    o->created_at = store__pg_i64(r, row, 7);
    o->updated_at = store__pg_i64(r, row, 8);
    store__lines_decode(blob, len, o->lines, (size_t)n);
    *out = o;
    return STORE_OK;
}

/* Loads one order by id (key NULL) or by the customer's key: NOT_FOUND, OK
 * with *out, or ERROR. */
static store_rc load_order(pg_store *st, store_write *w, int64_t num, const char *customer_id,
                           const char *key, store_order **out)
{
    pg_params p = {0};
    if (key) {
        store__pg_p_text(&p, customer_id);
        store__pg_p_text(&p, key);
    } else
        store__pg_p_i64(&p, num);
    PGresult *r = run(st, key ? PW_ORDER_GET_BY_KEY : PW_ORDER_GET, &p);
    store_rc rc = STORE_NOT_FOUND;
    if (!store__pg_ok(r))
        rc = sql_error(st, w, "load order", r);
    else if (PQntuples(r) > 0 && store__pg_order_from_row(r, 0, out) != STORE_OK)
        rc = fail(w, STORE_ERROR, "store: cannot load order");
    else if (PQntuples(r) > 0)
        rc = STORE_OK;
    PQclear(r);
    return rc;
}

/* An order insert that inserted nothing: its id (num) or the customer's
 * idempotency key was taken. Answers EXISTS with the order that holds it
 * (w->result), or the read's failure; what names the request in a message. */
static store_rc which_taken(pg_store *st, store_write *w, const store_order *o, int64_t num,
                            const char *what)
{
    store_rc rr = load_order(st, w, num, NULL, NULL, &w->result);
    if (rr == STORE_OK)
        return fail(w, STORE_EXISTS, "order %s exists", o->id);
    if (rr != STORE_NOT_FOUND)
        return rr;
    rr = load_order(st, w, 0, o->customer_id, o->idempotency_key, &w->result);
    if (rr == STORE_OK)
        return fail(w, STORE_EXISTS, "idempotency key already used by order %s", w->result->id);
    return rr == STORE_NOT_FOUND ? fail(w, STORE_ERROR, "store: %s: conflict vanished", what) : rr;
}

/* Inserts order o (lines in st->blob): a taken id or key is EXISTS with that
 * order in w->result. */
static store_rc order_insert(pg_store *st, store_write *w, int64_t num, const store_order *o,
                             size_t len)
{
    pg_params p = {0};
    store__pg_p_i64(&p, num);
    store__pg_p_text(&p, o->customer_id);
    store__pg_p_text(&p, o->idempotency_key);
    store__pg_p_i64(&p, o->total_cents);
    store__pg_p_i64(&p, o->created_at);
    store__pg_p_bytea(&p, st->blob, len);
    PGresult *r = run(st, PW_ORDER_INSERT, &p);
    if (!store__pg_ok(r)) {
        sql_error(st, w, "create order", r);
        PQclear(r);
        return STORE_ERROR;
    }
    bool inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (inserted)
        return STORE_OK;
    return which_taken(st, w, o, num, "create order");
}

static store_rc order_create(pg_store *st, store_write *w)
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

/* Prices o's lines and checks their stock (reads only). */
static store_rc place_check(pg_store *st, store_write *w, store_order *o)
{
    for (size_t i = 0; i < o->nlines; i++) {
        store_line *l = &o->lines[i];
        if (!field_ok(l->sku, sizeof l->sku) || l->quantity <= 0)
            return fail(w, STORE_INVALID, "line %zu: a sku and a positive quantity are required",
                        i + 1);
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->lines[j].sku, l->sku) == 0)
                return fail(w, STORE_INVALID, "line %zu: sku %s already in line %zu", i + 1, l->sku,
                            j + 1);
        pg_params p = {0};
        store__pg_p_text(&p, l->sku);
        PGresult *r = run(st, PW_PRODUCT_AVAILABLE, &p);
        if (!store__pg_ok(r)) {
            sql_error(st, w, "place order", r);
            PQclear(r);
            return STORE_ERROR;
        }
        bool found = PQntuples(r) > 0;
        int64_t available = 0;
        if (found) {
            l->unit_price_cents = store__pg_i64(r, 0, 0);
            available = store__pg_i64(r, 0, 1);
        }
        PQclear(r);
        if (!found)
            return fail(w, STORE_NOT_FOUND, "sku %s not found", l->sku);
        if (available < l->quantity)
            return short_stock(w, l->sku, available, l->quantity);
        int64_t line;
        if (__builtin_mul_overflow(l->quantity, l->unit_price_cents, &line) ||
            __builtin_add_overflow(o->total_cents, line, &o->total_cents))
            return fail(w, STORE_INVALID, "order total overflows (more than 2^63-1 cents)");
    }
    return STORE_OK;
}

/* Appends a PostgreSQL array literal element: "..." with " and \ escaped. */
static size_t array_elem(char *out, size_t at, const char *v, bool quote)
{
    if (at > 1)
        out[at++] = ',';
    if (quote)
        out[at++] = '"';
    for (; *v; v++) {
        if (quote && (*v == '"' || *v == '\\'))
            out[at++] = '\\';
        out[at++] = *v;
    }
    if (quote)
        out[at++] = '"';
    return at;
}

/* ORDER_PLACE's writes (PW_PLACE_WRITES), once its checks passed: an order
 * id or key taken meanwhile is EXISTS as order_insert says; anything else
 * failing is an SQL error (the batch fails). */
static store_rc place_writes(pg_store *st, store_write *w, int64_t num, const store_order *o)
{
    char skus[STORE_MAX_LINES * (2 * STORE_SKU_MAX + 3) + 3];
    char qtys[STORE_MAX_LINES * 21 + 3];
    size_t ns = 0, nq = 0;
    skus[ns++] = '{';
    qtys[nq++] = '{';
    for (size_t i = 0; i < o->nlines; i++) {
        char q[24];
        snprintf(q, sizeof q, "%lld", (long long)o->lines[i].quantity);
        ns = array_elem(skus, ns, o->lines[i].sku, true);
        nq = array_elem(qtys, nq, q, false);
    }
    skus[ns++] = '}';
    skus[ns] = '\0';
    qtys[nq++] = '}';
    qtys[nq] = '\0';
    size_t len = store__lines_encode(o->lines, o->nlines, st->blob);
    if (st->wr.nevs == st->wr.evs_cap)
        return fail(w, STORE_ERROR, "store: too many events in one transaction");
    pg_params p = {0};
    store__pg_p_i64(&p, num);
    store__pg_p_text(&p, o->customer_id);
    store__pg_p_text(&p, o->idempotency_key);
    store__pg_p_i64(&p, o->total_cents);
    store__pg_p_i64(&p, o->created_at);
    store__pg_p_bytea(&p, st->blob, len);
    store__pg_p_text(&p, skus);
    store__pg_p_text(&p, qtys);
    store__pg_p_text(&p, o->id);
    store__pg_p_i64(&p, w->at);
    store__pg_p_i64(&p, st->wr.seq + 1);
    store__pg_p_i64(&p, st->run);
    PGresult *r = run(st, PW_PLACE_WRITES, &p);
    if (!store__pg_ok(r) || PQntuples(r) != 1) {
        sql_error(st, w, "place order", r);
        PQclear(r);
        return STORE_ERROR;
    }
    int64_t inserted = store__pg_i64(r, 0, 0), lines = store__pg_i64(r, 0, 1);
    PQclear(r);
    if (inserted == 1 && lines != (int64_t)o->nlines)
        return fail(w, STORE_ERROR, "store: place order: %lld of %zu lines reserved",
                    (long long)lines, o->nlines);
    if (inserted == 1)
        return store__writer_event(&st->wr, w, o->id, o->customer_id, STORE_ORDER_PENDING, 0, 1,
                                   o->created_at);
    return which_taken(st, w, o, num, "place order");
}

/* ORDER_PLACE: every way it can fail is found by reads first (the counter
 * lock keeps them true until COMMIT), then the writes, which can only fail
 * with an SQL error (failing the batch). */
static store_rc order_place(pg_store *st, store_write *w)
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

    /* A repeat of a keyed order is answered with the first one, whatever the
     * stock says now. */
    store_rc r = STORE_OK;
    if (o->idempotency_key[0]) {
        r = load_order(st, w, 0, o->customer_id, o->idempotency_key, &w->result);
        if (r == STORE_OK)
            r = fail(w, STORE_EXISTS, "idempotency key already used by order %s", w->result->id);
        else if (r == STORE_NOT_FOUND)
            r = STORE_OK;
    }
    if (r == STORE_OK)
        r = place_check(st, w, o);
    if (r == STORE_OK) {
        bool released = false;
        size_t len = 0;
        int found = reservation_get(st, w, o->id, &released, &len, "place order");
        if (found < 0)
            r = STORE_ERROR;
        else if (found)
            r = fail(w, STORE_EXISTS, "order id %s already names a reservation", o->id);
    }
    if (r == STORE_OK)
        r = place_writes(st, w, num, o);
    if (r != STORE_OK) {
        store_order_free(o);
        return r;
    }
    w->result = o;
    return STORE_OK;
}

static store_rc order_set_status(pg_store *st, store_write *w)
{
    int64_t num;
    if (!field_ok(w->order_id, sizeof w->order_id) || !store__parse_id(w->order_id, 'o', &num))
        return fail(w, STORE_NOT_FOUND, "order %.31s not found", w->order_id);
    if (w->to_status < STORE_ORDER_PENDING || w->to_status > STORE_ORDER_CANCELLED)
        return fail(w, STORE_INVALID, "invalid order status %d", w->to_status);
    store_order *o = NULL;
    store_rc r = load_order(st, w, num, NULL, NULL, &o);
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
    pg_params p = {0};
    store__pg_p_i64(&p, num);
    store__pg_p_i64(&p, o->status);
    store__pg_p_i64(&p, o->version);
    store__pg_p_i64(&p, o->updated_at);
    store__pg_p_text(&p, o->cancel_reason);
    r = run_cmd(st, w, PW_ORDER_UPDATE_STATUS, &p, "set order status");
    if (r == STORE_OK)
        r = append_event(st, w, num, o->id, o->customer_id, o->status, w->previous_status,
                         o->version, w->at);
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

/* Releases the reservations ids[0..rows) unless their order is live (an
 * order's reservation goes with its cancel); *n: how many were released. */
static store_rc release_unless_ordered(pg_store *st, store_write *w, char (*ids)[STORE_ID_MAX + 1],
                                       int rows, int64_t *n)
{
    store_rc rc = STORE_OK;
    for (int i = 0; rc == STORE_OK && i < rows; i++) {
        int64_t num;
        if (store__parse_id(ids[i], 'o', &num)) {
            int status = order_status(st, w, num, "release orphans");
            if (status < 0)
                return STORE_ERROR;
            if (status > 0 && status != STORE_ORDER_CANCELLED)
                continue;
        }
        rc = release(st, w, ids[i]);
        if (rc == STORE_OK) {
            (*n)++;
            OMS_WARN("store: released orphan reservation %s", ids[i]);
        }
    }
    return rc;
}

/* Releases every live reservation without a live order in this database
 * that this run or a run that is gone made (another live instance's public
 * Reserve holds are not orphans), then forgets the sweep ranges of runs that
 * are gone (the live ones' stay). */
static store_rc release_orphans(pg_store *st, store_write *w)
{
    pg_params lp = {0};
    store__pg_p_i64(&lp, st->run);
    PGresult *r = run(st, PW_LIVE_RESERVATIONS, &lp);
    if (!store__pg_ok(r)) {
        sql_error(st, w, "release orphans", r);
        PQclear(r);
        return STORE_ERROR;
    }
    int rows = PQntuples(r);
    char(*ids)[STORE_ID_MAX + 1] = rows ? oms_calloc((size_t)rows, sizeof *ids) : NULL;
    if (rows && !ids) {
        PQclear(r);
        return fail(w, STORE_ERROR, "store: out of memory");
    }
    for (int i = 0; i < rows; i++)
        store__pg_text(r, i, 0, ids[i], sizeof ids[i]);
    PQclear(r);
    int64_t n = 0;
    store_rc rc = release_unless_ordered(st, w, ids, rows, &n);
    oms_free(ids);
    if (rc == STORE_OK) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "DELETE FROM sweep_ranges s WHERE run <> %d AND NOT EXISTS (SELECT 1 FROM "
                 "pg_locks l WHERE l.locktype = 'advisory' AND l.classid = %d AND "
                 "l.objid = s.run AND l.objsubid = 2 AND l.database = (SELECT oid FROM "
                 "pg_database WHERE datname = current_database()))",
                 st->run, OMS_PG_LOCK_CLASS);
        PGresult *d = PQexec(st->w.c, sql);
        if (!store__pg_ok(d))
            rc = sql_error(st, w, "release orphans: sweep ranges", d);
        PQclear(d);
    }
    w->existed = false;
    w->delta = n;
    return rc;
}

static store_rc sweep_done(pg_store *st, store_write *w)
{
    char sql[160];
    snprintf(sql, sizeof sql, "DELETE FROM sweep_ranges WHERE first = %lld AND run <> %d",
             (long long)w->delta, st->run);
    PGresult *r = PQexec(st->w.c, sql);
    store_rc rc = STORE_OK;
    if (!store__pg_ok(r))
        rc = sql_error(st, w, "sweep done", r);
    else
        w->existed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return rc;
}

/* The suspect entry of run (NULL if none). */
static const pg_suspect *suspect_of(const pg_store *st, int64_t run)
{
    for (size_t i = 0; i < st->nsuspects; i++)
        if (st->suspects[i].run == run)
            return &st->suspects[i];
    return NULL;
}

store_rc store__pg_sweep_dead_runs(pg_store *st, int64_t now, int64_t grace_ms, long *released)
{
    *released = 0;
    store_write w = {.at = now};
    pg_params p = {0};
    store__pg_p_i64(&p, st->run);
    PGresult *r = run(st, PW_DEAD_HOLDS, &p);
    if (!store__pg_ok(r)) {
        sql_error(st, &w, "orphan sweep", r);
        PQclear(r);
        return STORE_ERROR;
    }
    /* The runs gone now, each since it was first seen gone (a run whose lock
     * came back, or whose holds went, drops out); the holds of those gone
     * for grace_ms are released. */
    pg_suspect seen[PG_MAX_SUSPECTS];
    size_t nseen = 0;
    int rows = PQntuples(r), due = 0;
    char(*ids)[STORE_ID_MAX + 1] = rows ? oms_calloc((size_t)rows, sizeof *ids) : NULL;
    if (rows && !ids) {
        PQclear(r);
        store__copy(st->err, sizeof st->err, "out of memory");
        return STORE_ERROR;
    }
    for (int i = 0; i < rows; i++) {
        int64_t rid = store__pg_i64(r, i, 1);
        if (nseen == 0 || seen[nseen - 1].run != rid) {
            if (nseen == PG_MAX_SUSPECTS)
                break; /* the rest at a later look */
            const pg_suspect *old = suspect_of(st, rid);
            seen[nseen++] = (pg_suspect){.run = rid, .since_ms = old ? old->since_ms : now};
        }
        if (now - seen[nseen - 1].since_ms >= grace_ms)
            store__pg_text(r, i, 0, ids[due++], sizeof ids[0]);
    }
    PQclear(r);
    memcpy(st->suspects, seen, nseen * sizeof *seen);
    st->nsuspects = nseen;
    int64_t n = 0;
    store_rc rc = release_unless_ordered(st, &w, ids, due, &n);
    oms_free(ids);
    *released = (long)n;
    if (rc != STORE_OK && !st->err[0])
        store__copy(st->err, sizeof st->err, w.msg);
    return rc;
}

store_rc store__pg_apply(pg_store *st, store_write *w)
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
