/* order_service.c - oms.v1.OrderService on the generated handler table:
 * CreateOrder (order_create.c's flow), GetOrder, CancelOrder and
 * UpdateOrderStatus (unary), ListOrders (server stream, a store page at a
 * time), ImportOrders (client stream: one CreateOrder flow per row, a bounded
 * number at once). WatchOrders and TrackOrders live in watch.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "orders/orders_int.h"

/* ImportOrders: CreateOrder flows running at once per call. */
#define IMPORT_MAX_INFLIGHT 64
/* ListOrders: the largest page read from the store at once. */
#define LIST_MAX_PAGE 1000

/* Ends the call after a send failed with rc < 0; a call already over is left
 * alone. */
static void send_failed(rpc_call *c, int rc)
{
    rpc_call_finish_send_error(c, rc);
}

/* Sends r as an Order on c. Lines go on the stack up to STORE_MAX_LINES, else
 * into the call's arena. Returns rpc_call_send()'s result. */
static int send_order(rpc_call *c, const store_order *r)
{
    Oms__V1__Order m;
    Oms__V1__OrderLine stack_lines[STORE_MAX_LINES], *lines = stack_lines;
    Oms__V1__OrderLine *stack_linep[STORE_MAX_LINES], **linep = stack_linep;
    if (r->nlines > STORE_MAX_LINES) {
        lines = rpc_call_alloc(c, r->nlines * sizeof *lines);
        linep = rpc_call_alloc(c, r->nlines * sizeof *linep);
        if (!lines || !linep) {
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return RPC_ENOMEM;
        }
    }
    orders__order_msg(r, &m, lines, linep);
    return rpc_call_send(c, &m.base);
}

/* Answers a unary call with r. */
static void reply_order(rpc_call *c, const store_order *r)
{
    int rc = send_order(c, r);
    if (rc < 0) {
        send_failed(c, rc);
        return;
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

/* The call's orders_loop, or NULL after finishing the call UNAVAILABLE. */
static orders_loop *call_loop(rpc_call *c)
{
    orders_loop *ol = orders__call_loop(c);
    if (!ol)
        rpc_call_finish(c, RPC_UNAVAILABLE, "order service not attached to this loop");
    return ol;
}

/* Checks an order id field (1..STORE_ID_MAX bytes), finishing c if bad. */
static bool id_ok(rpc_call *c, const char *id)
{
    char why[96];
    if (!orders__check_len("id", id, 1, STORE_ID_MAX, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return false;
    }
    return true;
}

/* --- CreateOrder ------------------------------------------------------------ */

static void on_create_done(void *arg, rpc_status code, const char *msg, const store_order *order,
                           const orders_err *err)
{
    rpc_call *c = arg;
    if (code == RPC_OK)
        reply_order(c, order);
    else
        orders__fail(c, code, msg, err);
    rpc_call_unref(c);
}

/* For a customer-bound caller, the refusal of an order for another customer
 * (PERMISSION_DENIED) in why[]; false if the order may go ahead. */
static bool foreign_customer(rpc_call *c, const char *customer_id, char *why, size_t n)
{
    if (orders__owner_ok(c, customer_id))
        return false;
    const char *owner = orders__call_owner(c);
    snprintf(why, n, "this token acts for customer %s only", RPC_QUOTE(owner, strlen(owner)));
    return true;
}

static void on_create_order(rpc_call *c, const Oms__V1__CreateOrderRequest *req)
{
    orders_loop *ol = call_loop(c);
    if (!ol)
        return;
    char denied[RPC_QUOTE_SIZE + 64];
    if (foreign_customer(c, req->customer_id, denied, sizeof denied)) {
        rpc_call_finish(c, RPC_PERMISSION_DENIED, denied);
        return;
    }
    char key[STORE_KEY_MAX + 1] = "";
    size_t len;
    const uint8_t *v = rpc_metadata_get(rpc_call_metadata(c), "idempotency-key", &len);
    if (v && !req->idempotency_key[0]) {
        /* The metadata is held to the field's rules (HTTP/2 already refuses
         * a NUL in a header value; checked again, it would cut the key). */
        char why[96];
        bool ok = orders__check_size("idempotency-key", len, 0, STORE_KEY_MAX, why, sizeof why);
        if (ok && memchr(v, 0, len)) {
            snprintf(why, sizeof why, "idempotency-key: contains NUL");
            ok = false;
        }
        if (!ok) {
            orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
            return;
        }
        memcpy(key, v, len);
        key[len] = '\0';
    }
    /* The flow does not know the call: the ref keeps it (and req, from its
     * arena) until the flow reported. A cancelled call makes the reply a no-op;
     * the order, once stored, stays (the client retries with its key). */
    rpc_call_ref(c);
    if (orders__create_order(ol, req, key, orders__peer_timeout(ol->o, c), rpc_call_trace(c),
                             on_create_done, c) != RPC_OK) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        rpc_call_unref(c);
    }
}

/* --- GetOrder --------------------------------------------------------------- */

static void on_get_order(rpc_call *c, const Oms__V1__GetOrderRequest *req)
{
    orders_loop *ol = call_loop(c);
    if (!ol || !id_ok(c, req->id))
        return;
    store_order *r = NULL;
    store_rc rc = store_get_order(ol->sl, req->id, &r);
    if (rc == STORE_OK && !orders__owner_ok(c, r->customer_id)) {
        store_order_free(r); /* another customer's: answered as a missing one */
        r = NULL;
        rc = STORE_NOT_FOUND;
    }
    if (rc != STORE_OK) {
        char why[192];
        const char *q = RPC_QUOTE(req->id, strlen(req->id));
        if (rc == STORE_NOT_FOUND)
            snprintf(why, sizeof why, "order %s not found", q);
        else
            snprintf(why, sizeof why, "reading order %s: %s", q, store_rc_name(rc));
        rpc_call_finish(c, orders__status(rc), why);
        return;
    }
    reply_order(c, r);
    store_order_free(r);
}

/* --- CancelOrder, UpdateOrderStatus ------------------------------------------ */

/* One status change in flight; in the call's arena, kept by a call ref. */
typedef struct status_flow {
    rpc_call *c;
    orders_loop *ol;
    store_write w;
} status_flow;

/* Answers a status change with its updated order (or the store's error). */
static void status_reply(status_flow *f)
{
    store_write *w = &f->w;
    rpc_call *c = f->c;
    char why[STORE_MSG_MAX + 192];
    orders_err err;

    if (w->rc == STORE_OK) {
        if (w->result)
            reply_order(c, w->result);
        else
            rpc_call_finish(c, RPC_INTERNAL, "store returned no order");
    } else {
        const char *oid = RPC_QUOTE(w->order_id, strlen(w->order_id));
        switch (w->rc) {
        case STORE_NOT_FOUND:
            snprintf(why, sizeof why, "order %s not found", oid);
            break;
        case STORE_CONFLICT:     /* "order o-1 is at version 2, not 1" */
        case STORE_PRECONDITION: /* "order o-1 is DELIVERED; cannot become CANCELLED" */
            snprintf(why, sizeof why, "%s", w->msg[0] ? w->msg : store_rc_name(w->rc));
            break;
        default:
            snprintf(why, sizeof why, "order %s: %s", oid,
                     w->msg[0] ? w->msg : store_rc_name(w->rc));
            break;
        }
        orders__fail(c, orders__status(w->rc), why, orders__err_from_write(&err, w));
    }
    store_order_free(w->result);
    w->result = NULL;
    rpc_call_unref(c);
}

static void on_cancel_released(void *arg, rpc_status code, const char *msg)
{
    (void)code; /* a failed release goes on being retried by the port */
    (void)msg;
    status_reply(arg);
}

static void on_status_set(store_write *w)
{
    status_flow *f = w->data;
    /* Cancelled for good: the stock goes back whether or not the client still
     * waits, and the reply waits for the release's first try, so a client
     * reading the stock after it finds it back. With the in-process inventory
     * the store released it in the status change's transaction (with_stock). */
    if (w->rc == STORE_OK && w->to_status == STORE_ORDER_CANCELLED && !w->with_stock) {
        if (f->ol->inventory->release(f->ol, w->order_id, orders__peer_timeout(f->ol->o, f->c),
                                      rpc_call_trace(f->c), on_cancel_released, f) == RPC_OK)
            return;
        OMS_ERROR("orders: release of cancelled %s left behind: out of memory", w->order_id);
    }
    status_reply(f);
}

/* Moves order id to status `to` (PENDING..CANCELLED) through the store. */
static void set_status(rpc_call *c, const char *id, int to, int64_t expected_version,
                       const char *reason)
{
    orders_loop *ol = call_loop(c);
    if (!ol || !id_ok(c, id))
        return;
    if (expected_version < 0) {
        orders__fail(c, RPC_INVALID_ARGUMENT, "expected_version: must be >= 0", NULL);
        return;
    }
    char why[96];
    if (!orders__check_len("reason", reason, 0, STORE_REASON_MAX, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    status_flow *f = rpc_call_alloc(c, sizeof *f);
    if (!f) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    f->c = c;
    f->ol = ol;
    f->w.op = STORE_ORDER_SET_STATUS;
    f->w.done = on_status_set;
    f->w.data = f;
    f->w.at = orders__now_ms();
    snprintf(f->w.order_id, sizeof f->w.order_id, "%s", id);
    f->w.to_status = to;
    f->w.allowed_from = orders__allowed_from(to);
    f->w.expected_version = expected_version;
    snprintf(f->w.reason, sizeof f->w.reason, "%s", reason);
    /* All-in-one (the inventory on this store): the release goes into the
     * cancel's own transaction; a crash cannot split them. */
    f->w.with_stock = to == STORE_ORDER_CANCELLED && ol->inventory == &orders__local_inventory;
    /* The write and its done outlive a cancelled call's handlers: the ref keeps
     * the arena (and f) until done fired. */
    rpc_call_ref(c);
    if (orders__call_owner(c)) {
        /* A customer-bound caller: another customer's order is answered as a
         * missing one, by the same path (an order never changes customer, so
         * the check cannot go stale before the write). */
        store_order *r = NULL;
        store_rc rc = store_get_order(ol->sl, id, &r);
        bool mine = rc == STORE_OK && orders__owner_ok(c, r->customer_id);
        store_order_free(r);
        if (!mine) {
            f->w.rc = rc == STORE_OK ? STORE_NOT_FOUND : rc;
            status_reply(f);
            return;
        }
    }
    store_submit(ol->sl, &f->w);
}

static void on_cancel_order(rpc_call *c, const Oms__V1__CancelOrderRequest *req)
{
    set_status(c, req->id, STORE_ORDER_CANCELLED, req->expected_version, req->reason);
}

static void on_update_order_status(rpc_call *c, const Oms__V1__UpdateOrderStatusRequest *req)
{
    switch ((int)req->status) {
    /* No order moves back to PENDING (allowed_from is empty): the store answers
     * NOT_FOUND, ABORTED or FAILED_PRECONDITION as for any illegal move. */
    case STORE_ORDER_PENDING:
    case STORE_ORDER_CONFIRMED:
    case STORE_ORDER_SHIPPED:
    case STORE_ORDER_DELIVERED:
    case STORE_ORDER_CANCELLED:
        set_status(c, req->id, (int)req->status, req->expected_version, "");
        return;
    default: {
        char why[64];
        snprintf(why, sizeof why, "status: %d is not an order status", (int)req->status);
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    }
}

/* --- ListOrders --------------------------------------------------------------- */

/* A listing's cursor: one page of records at a time (call's arena; the
 * records are the store's, freed once sent or in on_free). */
typedef struct list_state {
    orders_loop *ol;
    char customer_id[STORE_ID_MAX + 1];
    store_order_filter filter; /* customer_id points above */
    char after_id[STORE_ID_MAX + 1];
    size_t page_size;
    store_order **page; /* page_size slots */
    size_t n, pos;      /* records in page, next to send */
    bool last;          /* the page read was the last (short) one */
} list_state;

static void list_free_page(list_state *l)
{
    for (size_t i = l->pos; i < l->n; i++)
        store_order_free(l->page[i]);
    l->n = l->pos = 0;
}

/* Sends until flow control pushes back (resumed from on_ready) or the last
 * page is out, then finishes; a page is read only when the previous one went
 * out, so memory stays at one page whatever the number of orders. */
static void list_pump(rpc_call *c, list_state *l)
{
    for (;;) {
        while (l->pos < l->n) {
            store_order *r = l->page[l->pos++];
            int rc = send_order(c, r);
            snprintf(l->after_id, sizeof l->after_id, "%s", r->id);
            store_order_free(r);
            if (rc < 0) {
                list_free_page(l);
                send_failed(c, rc);
                return;
            }
            if (rc == RPC_AGAIN && (l->pos < l->n || !l->last))
                return;
        }
        l->n = l->pos = 0;
        if (l->last) {
            rpc_call_finish(c, RPC_OK, NULL);
            return;
        }
        long got = store_list_orders(l->ol->sl, &l->filter, l->after_id, l->page, l->page_size);
        if (got < 0) { /* UNAVAILABLE while the database is down */
            store_rc rc = store_count_rc(got);
            rpc_call_finish(c, orders__status(rc),
                            rc == STORE_UNAVAILABLE ? "store unavailable while listing orders"
                                                    : "store error while listing orders");
            return;
        }
        l->n = (size_t)got;
        l->last = l->n < l->page_size;
    }
}

static void on_list_orders(rpc_call *c, const Oms__V1__ListOrdersRequest *req)
{
    orders_loop *ol = call_loop(c);
    if (!ol)
        return;
    const char *bad = NULL;
    char why[96];
    if (!orders__check_len("customer_id", req->customer_id, 0, STORE_ID_MAX, why, sizeof why))
        bad = why;
    else if ((int)req->status < 0 || (int)req->status > STORE_ORDER_CANCELLED) {
        /* the same text as UpdateOrderStatus's */
        snprintf(why, sizeof why, "status: %d is not an order status", (int)req->status);
        bad = why;
    } else if (req->created_from < 0 || req->created_to < 0)
        bad = "created_from, created_to: must be >= 0";
    else if (req->created_from && req->created_to && req->created_from > req->created_to)
        bad = "created_from: after created_to";
    else if (req->page_size < 0)
        bad = "page_size: must be >= 0";
    if (bad) {
        orders__fail(c, RPC_INVALID_ARGUMENT, bad, NULL);
        return;
    }
    size_t page = req->page_size ? (size_t)req->page_size : ol->o->cfg.page_size;
    if (page == 0)
        page = 100;
    if (page > LIST_MAX_PAGE)
        page = LIST_MAX_PAGE;

    list_state *l = rpc_call_alloc(c, sizeof *l);
    store_order **slots = l ? rpc_call_alloc(c, page * sizeof *slots) : NULL;
    if (!slots) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    l->ol = ol;
    const char *owner = orders__call_owner(c);
    if (owner && (!owner[0] || strlen(owner) > STORE_ID_MAX ||
                  (req->customer_id[0] && strcmp(req->customer_id, owner) != 0))) {
        /* another customer's orders, for a customer-bound caller: none (an
         * owner no customer id can equal, too: never cut to a shorter one) */
        rpc_call_finish(c, RPC_OK, NULL);
        return;
    }
    snprintf(l->customer_id, sizeof l->customer_id, "%s", owner ? owner : req->customer_id);
    l->filter.customer_id = l->customer_id;
    l->filter.status = (int)req->status;
    l->filter.created_from = req->created_from;
    l->filter.created_to = req->created_to;
    l->page_size = page;
    l->page = slots;
    rpc_call_set_data(c, l);
    list_pump(c, l);
}

static void on_list_ready(rpc_call *c)
{
    list_state *l = rpc_call_data(c);
    if (l && !rpc_call_done(c))
        list_pump(c, l);
}

static void on_list_free(rpc_call *c)
{
    list_state *l = rpc_call_data(c);
    if (l)
        list_free_page(l);
}

/* --- ImportOrders --------------------------------------------------------------- */

typedef struct import_result {
    char *row_id;                    /* heap */
    char order_id[STORE_ID_MAX + 1]; /* "" unless OK */
    int code;                        /* -1 while the row runs */
    char *message;                   /* heap, NULL for none */
} import_result;

/* One running row: the flow's arg. */
typedef struct import_job {
    struct import_state *im;
    size_t idx; /* its result slot */
} import_job;

/* The call's import (its arena; results on the heap, freed in on_free). Every
 * running flow holds a call ref, so this outlives them.
 *
 * At most IMPORT_MAX_INFLIGHT rows run at once: at the limit, input is paused
 * (rpc_call_pause_input), so further rows stay in rpc's inbox, unconsumed,
 * and HTTP/2 flow control slows the client; a finishing row resumes it. Memory
 * per call is thus the running flows plus one result per row: at most
 * cfg.max_import_rows results, each with a row_id of at most ORDERS_ROW_ID_MAX
 * bytes and a message of at most ORDERS_RESULT_MSG_MAX (about 100 MB worst
 * case at the default 100,000 rows, 64-byte row_ids and 200-byte messages;
 * typically ~10 MB). Rows past the limit are decoded by rpc and dropped here,
 * only counted (skipped), so the client still learns every created order. */
typedef struct import_state {
    rpc_call *c;
    orders_loop *ol;
    import_result *results; /* one per row received, in arrival order */
    size_t nresults, cap;
    size_t created, failed;
    size_t skipped; /* rows past cfg.max_import_rows: not processed */
    size_t inflight;
    bool paused;      /* input paused at the in-flight limit */
    bool half_closed; /* every row has arrived */
    bool ended;       /* cancelled or finished early: send nothing more */
} import_state;

/* A heap copy of msg cut to ORDERS_RESULT_MSG_MAX bytes, on a UTF-8
 * character boundary (the summary must stay valid UTF-8). */
static char *result_message(const char *msg)
{
    size_t n = strlen(msg);
    if (n > ORDERS_RESULT_MSG_MAX) {
        n = ORDERS_RESULT_MSG_MAX;
        while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
            n--;
    }
    return oms_strndup(msg, n);
}

static void import_set_result(import_state *im, size_t idx, rpc_status code, const char *msg,
                              const char *order_id)
{
    import_result *r = &im->results[idx];
    r->code = (int)code;
    if (code == RPC_OK) {
        snprintf(r->order_id, sizeof r->order_id, "%s", order_id);
        im->created++;
    } else {
        r->message = result_message(msg && msg[0] ? msg : rpc_status_name(code));
        im->failed++;
    }
}

/* After half-close and the last row's result: one summary, then OK. */
static void import_maybe_finish(import_state *im)
{
    if (im->ended || !im->half_closed || im->inflight)
        return;
    im->ended = true;
    rpc_call *c = im->c;
    size_t n = im->nresults;
    Oms__V1__ImportRowResult *rows = n ? oms_calloc(n, sizeof *rows) : NULL;
    Oms__V1__ImportRowResult **rowp = n ? oms_calloc(n, sizeof *rowp) : NULL;
    if (n && (!rows || !rowp)) {
        oms_free(rows);
        oms_free(rowp);
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory for the import summary");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const import_result *r = &im->results[i];
        oms__v1__import_row_result__init(&rows[i]);
        rows[i].row_id = r->row_id ? r->row_id : (char *)"";
        rows[i].order_id = (char *)r->order_id;
        rows[i].code = r->code;
        rows[i].message = r->message ? r->message : (char *)"";
        rowp[i] = &rows[i];
    }
    Oms__V1__ImportOrdersSummary sum = OMS__V1__IMPORT_ORDERS_SUMMARY__INIT;
    sum.received = (int64_t)(n + im->skipped);
    sum.created = (int64_t)im->created;
    sum.failed = (int64_t)im->failed;
    sum.n_results = n;
    sum.results = rowp;
    sum.skipped = (int64_t)im->skipped;
    char note[128] = "";
    if (im->skipped) {
        snprintf(note, sizeof note,
                 "rows after the first %zu were not processed (limit per ImportOrders call)",
                 im->ol->o->cfg.max_import_rows);
        sum.skipped_reason = note;
    }
    int rc = oms__v1__order_service__import_orders__send(c, &sum);
    oms_free(rows);
    oms_free(rowp);
    if (rc < 0) {
        send_failed(c, rc);
        return;
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

static void on_import_row_done(void *arg, rpc_status code, const char *msg,
                               const store_order *order, const orders_err *err)
{
    (void)err; /* a row's result carries its code and message only */
    import_job *job = arg;
    import_state *im = job->im;
    rpc_call *c = im->c;
    import_set_result(im, job->idx, code, msg, order ? order->id : "");
    oms_free(job);
    im->inflight--;
    if (im->paused && !im->ended) {
        /* May deliver held rows (and the half-close) before it returns. */
        im->paused = false;
        rpc_call_resume_input(c);
    }
    import_maybe_finish(im);
    rpc_call_unref(c);
}

/* Starts row idx's flow; the ref keeps the call (and im) until it reported. */
static void import_start(import_state *im, size_t idx, const Oms__V1__CreateOrderRequest *req)
{
    import_job *job = oms_malloc(sizeof *job);
    if (!job) {
        import_set_result(im, idx, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
        return;
    }
    job->im = im;
    job->idx = idx;
    im->inflight++;
    rpc_call_ref(im->c);
    /* Rows take their own key only: one metadata key cannot cover many orders.
     * The flow copies what it needs from req before returning. */
    if (orders__create_order(im->ol, req, NULL, orders__peer_timeout(im->ol->o, im->c),
                             rpc_call_trace(im->c), on_import_row_done, job) != RPC_OK) {
        oms_free(job);
        im->inflight--;
        import_set_result(im, idx, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
        rpc_call_unref(im->c); /* not the last: the handler's caller holds the call */
    }
}

static import_state *import_get(rpc_call *c)
{
    import_state *im = rpc_call_data(c);
    if (im)
        return im;
    orders_loop *ol = call_loop(c);
    if (!ol)
        return NULL;
    if (!(im = rpc_call_alloc(c, sizeof *im))) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    im->c = c;
    im->ol = ol;
    rpc_call_set_data(c, im);
    return im;
}

/* Adds row's result slot, in arrival order. SIZE_MAX after finishing the call
 * (out of memory). */
static size_t import_add_row(import_state *im, const char *row_id)
{
    if (im->nresults == im->cap) {
        size_t cap = im->cap ? im->cap * 2 : 64;
        import_result *r = oms_realloc(im->results, cap * sizeof *r);
        if (!r) {
            im->ended = true;
            rpc_call_finish(im->c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return SIZE_MAX;
        }
        im->results = r;
        im->cap = cap;
    }
    size_t idx = im->nresults++;
    im->results[idx] = (import_result){.code = -1, .row_id = oms_strdup(row_id)};
    return idx;
}

static void on_import_row(rpc_call *c, const Oms__V1__ImportOrderRow *row)
{
    import_state *im = import_get(c);
    if (!im || im->ended)
        return;
    if (im->nresults >= im->ol->o->cfg.max_import_rows) {
        im->skipped++; /* decoded and dropped: memory stays bounded */
        return;
    }
    /* An over-long row_id is not echoed (the result's row_id is empty): its
     * arrival order identifies the row. */
    char why[96];
    bool row_id_ok =
        orders__check_len("row_id", row->row_id, 0, ORDERS_ROW_ID_MAX, why, sizeof why);
    size_t idx = import_add_row(im, row_id_ok ? row->row_id : "");
    if (idx == SIZE_MAX)
        return;
    if (!im->results[idx].row_id) {
        import_set_result(im, idx, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
        return;
    }
    if (!row_id_ok) {
        import_set_result(im, idx, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    if (!row->order) {
        import_set_result(im, idx, RPC_INVALID_ARGUMENT, "order: required", NULL);
        return;
    }
    char denied[RPC_QUOTE_SIZE + 64];
    if (foreign_customer(c, row->order->customer_id, denied, sizeof denied)) {
        import_set_result(im, idx, RPC_PERMISSION_DENIED, denied, NULL);
        return;
    }
    import_start(im, idx, row->order);
    if (im->inflight >= IMPORT_MAX_INFLIGHT && !im->ended) {
        im->paused = true;
        rpc_call_pause_input(c);
    }
}

static void on_import_half_close(rpc_call *c)
{
    import_state *im = import_get(c);
    if (!im)
        return;
    im->half_closed = true;
    import_maybe_finish(im);
}

/* Running rows go on (each is durable on its own); nothing more is sent. */
static void on_import_cancel(rpc_call *c, rpc_status code)
{
    (void)code;
    import_state *im = rpc_call_data(c);
    if (im)
        im->ended = true;
}

static void on_import_free(rpc_call *c)
{
    import_state *im = rpc_call_data(c);
    if (!im)
        return;
    for (size_t i = 0; i < im->nresults; i++) {
        oms_free(im->results[i].row_id);
        oms_free(im->results[i].message);
    }
    oms_free(im->results);
    im->results = NULL;
}

/* --- the table ------------------------------------------------------------------ */

const Oms__V1__OrderService_Server orders__order_handlers = {
    .create_order = {.on_request = on_create_order},
    .get_order = {.on_request = on_get_order},
    .cancel_order = {.on_request = on_cancel_order},
    .update_order_status = {.on_request = on_update_order_status},
    .list_orders = {.on_request = on_list_orders,
                    .on_ready = on_list_ready,
                    .on_free = on_list_free},
    .import_orders = {.on_request = on_import_row,
                      .on_half_close = on_import_half_close,
                      .on_cancel = on_import_cancel,
                      .on_free = on_import_free},
    .watch_orders = {.on_request = orders__watch_on_request,
                     .on_ready = orders__watch_on_ready,
                     .on_cancel = orders__watch_on_cancel,
                     .on_free = orders__watch_on_free},
    .track_orders = {.on_request = orders__track_on_request,
                     .on_half_close = orders__track_on_half_close,
                     .on_ready = orders__track_on_ready,
                     .on_cancel = orders__track_on_cancel,
                     .on_free = orders__track_on_free},
};
