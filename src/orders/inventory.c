/* inventory.c - oms.v1.InventoryService over the store, and the in-process
 * ports (orders_int.h) through which the order service reaches customers and
 * inventory when this process hosts them.
 *
 * Reserve and Release share one request (inv_op) between the handlers, which
 * allocate it from the call's arena and answer the call, and the local port,
 * which allocates it on the heap and reports to its callback. The ports
 * report from the loop only (orders_int.h): through the store's completion,
 * or, for what they know at once, through the loop's completion queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "orders/list_stream.h"
#include "orders/orders_int.h"

typedef struct inv_op inv_op;

/* A write for a call or a port user. */
struct inv_op {
    store_write w;
    void (*finish)(inv_op *op);   /* on the loop once the write completed */
    rpc_call *c;                  /* handler: the call answered (referenced) */
    orders_reserve_cb reserve_cb; /* port: the user's callback */
    orders_release_cb release_cb;
    void *arg;
    orders_deferred d;  /* port: a refusal, reported from the loop */
    store_line lines[]; /* RESERVE: w.nlines */
};

/* The call's orders_loop, or NULL after finishing c with UNAVAILABLE. */
static orders_loop *call_loop(rpc_call *c)
{
    orders_loop *ol = orders__call_loop(c);
    if (!ol)
        rpc_call_finish(c, RPC_UNAVAILABLE, "order system not attached to this loop");
    return ol;
}

/* A zeroed op for c from its arena with room for nlines lines, or NULL after
 * finishing c. */
static inv_op *call_op(rpc_call *c, store_op op, size_t nlines)
{
    inv_op *r = rpc_call_alloc(c, sizeof *r + nlines * sizeof r->lines[0]);
    if (!r) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    r->c = c;
    r->w.op = op;
    return r;
}

static void on_op_written(store_write *w)
{
    inv_op *r = w->data;
    r->finish(r);
}

/* Queues r on ol's store connection; r->finish runs on the loop later. A
 * call's reference is held until then. */
static void op_submit(orders_loop *ol, inv_op *r, void (*finish)(inv_op *))
{
    r->w.data = r;
    r->w.done = on_op_written;
    r->w.at = orders__now_ms();
    r->finish = finish;
    if (r->c)
        rpc_call_ref(r->c);
    store_submit(ol->sl, &r->w);
}

/* Status message of a failed write. */
static const char *op_msg(const inv_op *r)
{
    return r->w.msg[0] ? r->w.msg : store_rc_name(r->w.rc);
}

/* Finishes a handler's op: true if the call still wants an answer, false
 * after dropping the reference of an ended call or finishing it with the
 * store's error. The caller unrefs after answering. */
static bool op_answerable(inv_op *r)
{
    if (rpc_call_done(r->c)) {
        rpc_call_unref(r->c);
        return false;
    }
    if (r->w.rc != STORE_OK) {
        orders_err err; /* Reserve: INSUFFICIENT_STOCK */
        orders__fail(r->c, orders__status(r->w.rc), op_msg(r), orders__err_from_write(&err, &r->w));
        rpc_call_unref(r->c);
        return false;
    }
    return true;
}

/* --- validation --------------------------------------------------------------- */

static bool sku_check(const char *field, const char *sku, char *why, size_t n)
{
    return orders__check_token(field, sku, 1, STORE_SKU_MAX, why, n);
}

static bool order_id_check(const char *id, char *why, size_t n)
{
    return orders__check_len("order_id", id, 1, STORE_ID_MAX, why, n);
}

/* Reserve's input, once its lines are store_lines: 1..STORE_MAX_LINES lines,
 * valid SKUs, each at most once, quantities > 0. */
static bool reserve_check(const char *order_id, const store_line *lines, size_t nlines, char *why,
                          size_t n)
{
    if (!order_id_check(order_id, why, n) ||
        !orders__check_count("lines", nlines, 1, STORE_MAX_LINES, why, n))
        return false;
    for (size_t i = 0; i < nlines; i++) {
        char field[32];
        snprintf(field, sizeof field, "lines[%zu].sku", i);
        if (!sku_check(field, lines[i].sku, why, n))
            return false;
        if (lines[i].quantity <= 0) {
            snprintf(why, n, "lines[%zu].quantity: must be > 0", i);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(lines[j].sku, lines[i].sku) == 0) {
                char first[32];
                snprintf(first, sizeof first, "lines[%zu]", j);
                orders__dup_text(field, lines[i].sku, first, why, n);
                return false;
            }
    }
    return true;
}

/* Whether the OrderService keeps its orders in the store this inventory
 * uses (all-in-one): then its order ids are not the public Reserve's and
 * Release's to take or free (store.h, RESERVE and RELEASE). */
static bool orders_local(const orders_loop *ol)
{
    return (ol->o->cfg.services & ORDERS_SVC_ORDERS) != 0;
}

/* Fills r (room for nlines) as a RESERVE of lines for order_id. */
static void reserve_fill(inv_op *r, const char *order_id, size_t nlines)
{
    r->w.op = STORE_RESERVE;
    snprintf(r->w.order_id, sizeof r->w.order_id, "%s", order_id);
    r->w.lines = r->lines;
    r->w.nlines = nlines;
}

static void release_fill(inv_op *r, const char *order_id)
{
    r->w.op = STORE_RELEASE;
    snprintf(r->w.order_id, sizeof r->w.order_id, "%s", order_id);
}

/* --- UpsertProduct / GetProduct / AdjustStock ------------------------------------ */

static void finish_product(inv_op *r)
{
    if (!op_answerable(r))
        return;
    Oms__V1__Product m;
    orders__product_msg(&r->w.product, &m);
    orders__reply(r->c, &m.base);
    rpc_call_unref(r->c);
}

static void on_upsert_product(rpc_call *c, const Oms__V1__UpsertProductRequest *req)
{
    char why[160];
    size_t nlen = strlen(req->name);
    if (!sku_check("sku", req->sku, why, sizeof why) ||
        !orders__check_name("name", req->name, STORE_NAME_MAX, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    if (req->unit_price_cents < 0) {
        orders__fail(c, RPC_INVALID_ARGUMENT, "unit_price_cents: must be >= 0", NULL);
        return;
    }
    orders_loop *ol = call_loop(c);
    inv_op *r = ol ? call_op(c, STORE_PRODUCT_UPSERT, 0) : NULL;
    if (!r)
        return;
    memcpy(r->w.product.sku, req->sku, strlen(req->sku) + 1);
    memcpy(r->w.product.name, req->name, nlen + 1);
    r->w.product.unit_price_cents = req->unit_price_cents;
    op_submit(ol, r, finish_product);
}

static void on_get_product(rpc_call *c, const Oms__V1__GetProductRequest *req)
{
    char why[160];
    if (!sku_check("sku", req->sku, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    orders_loop *ol = call_loop(c);
    if (!ol)
        return;
    store_product p;
    store_rc rc = store_get_product(ol->sl, req->sku, &p);
    if (rc != STORE_OK) {
        char msg[192];
        if (rc == STORE_NOT_FOUND)
            snprintf(msg, sizeof msg, "product %s not found",
                     RPC_QUOTE(req->sku, strlen(req->sku)));
        else
            snprintf(msg, sizeof msg, "reading product %s: %s",
                     RPC_QUOTE(req->sku, strlen(req->sku)), store_rc_name(rc));
        rpc_call_finish(c, orders__status(rc), msg);
        return;
    }
    Oms__V1__Product m;
    orders__product_msg(&p, &m);
    orders__reply(c, &m.base);
}

static void on_adjust_stock(rpc_call *c, const Oms__V1__AdjustStockRequest *req)
{
    char why[160];
    if (!sku_check("sku", req->sku, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    orders_loop *ol = call_loop(c);
    inv_op *r = ol ? call_op(c, STORE_STOCK_ADJUST, 0) : NULL;
    if (!r)
        return;
    memcpy(r->w.product.sku, req->sku, strlen(req->sku) + 1);
    r->w.delta = req->delta;
    op_submit(ol, r, finish_product);
}

/* --- ListProducts (server streaming) ----------------------------------------------- */

static long read_products(store_loop *sl, const char *after, void *page, size_t limit)
{
    return store_list_products(sl, after, page, limit);
}

static const char *product_key(const void *rec)
{
    return ((const store_product *)rec)->sku;
}

static int send_product(rpc_call *c, const void *rec)
{
    Oms__V1__Product m;
    orders__product_msg(rec, &m);
    return oms__v1__inventory_service__list_products__send(c, &m);
}

static const orders_pager product_pager = {
    .rec_size = sizeof(store_product),
    .read = read_products,
    .key = product_key,
    .send = send_product,
    .read_failed = "reading products failed",
};

static void on_list_products(rpc_call *c, const Oms__V1__ListProductsRequest *req)
{
    orders__list_start(c, &product_pager, req->page_size);
}

/* --- Reserve / Release ------------------------------------------------------------- */

/* The reserved lines: the first reservation's for a repeat (first, the
 * store's result), else the request's with their prices. */
static const store_line *reserved_lines(const inv_op *r, const store_order *first, size_t *n)
{
    if (first) {
        *n = first->nlines;
        return first->lines;
    }
    *n = r->w.nlines;
    return r->w.lines;
}

static void reply_reservation(inv_op *r, const store_order *first)
{
    rpc_call *c = r->c;
    size_t n;
    const store_line *rl = reserved_lines(r, first, &n);
    Oms__V1__ReservedLine *lines = rpc_call_alloc(c, n * sizeof *lines);
    Oms__V1__ReservedLine **linep = rpc_call_alloc(c, n * sizeof *linep);
    if (!lines || !linep) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        oms__v1__reserved_line__init(&lines[i]);
        lines[i].sku = (char *)rl[i].sku;
        lines[i].quantity = rl[i].quantity;
        lines[i].unit_price_cents = rl[i].unit_price_cents;
        linep[i] = &lines[i];
    }
    Oms__V1__Reservation m = OMS__V1__RESERVATION__INIT;
    m.order_id = r->w.order_id;
    m.n_lines = n;
    m.lines = linep;
    orders__reply(c, &m.base);
}

static void finish_reserve_call(inv_op *r)
{
    /* Taken first: op_answerable may drop the last ref, and r with the arena. */
    store_order *first = r->w.result;
    r->w.result = NULL;
    if (op_answerable(r)) {
        rpc_call *c = r->c;
        reply_reservation(r, first);
        rpc_call_unref(c);
    }
    store_order_free(first);
}

static void on_reserve(rpc_call *c, const Oms__V1__ReserveRequest *req)
{
    char why[160];
    if (!order_id_check(req->order_id, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    if (!orders__check_count("lines", req->n_lines, 1, STORE_MAX_LINES, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    /* SKUs are checked before they are copied into fixed-size fields. */
    for (size_t i = 0; i < req->n_lines; i++) {
        char field[32];
        snprintf(field, sizeof field, "lines[%zu].sku", i);
        if (!sku_check(field, req->lines[i]->sku, why, sizeof why)) {
            orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
            return;
        }
    }
    orders_loop *ol = call_loop(c);
    inv_op *r = ol ? call_op(c, STORE_RESERVE, req->n_lines) : NULL;
    if (!r)
        return;
    for (size_t i = 0; i < req->n_lines; i++) {
        memcpy(r->lines[i].sku, req->lines[i]->sku, strlen(req->lines[i]->sku) + 1);
        r->lines[i].quantity = req->lines[i]->quantity;
    }
    if (!reserve_check(req->order_id, r->lines, req->n_lines, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    reserve_fill(r, req->order_id, req->n_lines);
    r->w.orders_local = orders_local(ol);
    op_submit(ol, r, finish_reserve_call);
}

static void finish_release_call(inv_op *r)
{
    if (!op_answerable(r))
        return;
    Oms__V1__ReleaseResponse m = OMS__V1__RELEASE_RESPONSE__INIT;
    m.released = r->w.existed;
    orders__reply(r->c, &m.base);
    rpc_call_unref(r->c);
}

static void on_release(rpc_call *c, const Oms__V1__ReleaseRequest *req)
{
    char why[96];
    if (!order_id_check(req->order_id, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    orders_loop *ol = call_loop(c);
    inv_op *r = ol ? call_op(c, STORE_RELEASE, 0) : NULL;
    if (!r)
        return;
    release_fill(r, req->order_id);
    r->w.orders_local = orders_local(ol);
    op_submit(ol, r, finish_release_call);
}

const Oms__V1__InventoryService_Server orders__inventory_handlers = {
    .upsert_product = {.on_request = on_upsert_product},
    .get_product = {.on_request = on_get_product},
    .list_products = {.on_request = on_list_products, .on_ready = orders__list_ready},
    .adjust_stock = {.on_request = on_adjust_stock},
    .reserve = {.on_request = on_reserve},
    .release = {.on_request = on_release},
};

/* --- the in-process ports --------------------------------------------------------- */

/* A customer lookup: the store read runs from the loop too, so the answer
 * comes one completion-queue run after the call (no copy of the record). */
typedef struct cust_op {
    orders_deferred d;
    orders_loop *ol;
    orders_customer_cb cb;
    void *arg;
    bool bad_id; /* empty or too long: not looked up */
    char id[STORE_ID_MAX + 1];
} cust_op;

static void run_get_customer(orders_deferred *d)
{
    cust_op *x = container_of(d, cust_op, d);
    const char *id = x->id;
    char msg[192];
    store_customer r;
    store_rc rc = x->bad_id ? STORE_NOT_FOUND : store_get_customer(x->ol->sl, id, &r);
    if (rc == STORE_OK)
        x->cb(x->arg, RPC_OK, "", &r);
    else if (x->bad_id)
        x->cb(x->arg, RPC_NOT_FOUND, *id ? "customer not found" : "customer id required", NULL);
    else {
        if (rc == STORE_NOT_FOUND)
            snprintf(msg, sizeof msg, "customer %s not found", RPC_QUOTE(id, strlen(id)));
        else
            snprintf(msg, sizeof msg, "reading customer %s: %s", RPC_QUOTE(id, strlen(id)),
                     store_rc_name(rc));
        x->cb(x->arg, orders__status(rc), msg, NULL);
    }
    oms_free(x);
}

static rpc_status local_get_customer(orders_loop *ol, const char *id, uint64_t timeout_ms,
                                     const rpc_trace *trace, orders_customer_cb cb, void *arg)
{
    (void)trace;
    (void)timeout_ms; /* a local read does not wait */
    cust_op *x = oms_calloc(1, sizeof *x);
    if (!x)
        return RPC_RESOURCE_EXHAUSTED;
    x->ol = ol;
    x->cb = cb;
    x->arg = arg;
    x->bad_id = !*id || strlen(id) > STORE_ID_MAX;
    if (!x->bad_id)
        memcpy(x->id, id, strlen(id) + 1);
    orders__defer(ol, &x->d, run_get_customer);
    return RPC_OK;
}

static void run_finish(orders_deferred *d)
{
    inv_op *r = container_of(d, inv_op, d);
    r->finish(r);
}

/* Fails port op r with INVALID_ARGUMENT and why, from the loop. */
static void op_refuse(orders_loop *ol, inv_op *r, const char *why, void (*finish)(inv_op *))
{
    r->w.rc = STORE_INVALID;
    snprintf(r->w.msg, sizeof r->w.msg, "%s", why);
    r->finish = finish;
    orders__defer(ol, &r->d, run_finish);
}

static void finish_reserve_port(inv_op *r)
{
    if (r->w.rc == STORE_OK) {
        size_t n;
        const store_line *lines = reserved_lines(r, r->w.result, &n);
        r->reserve_cb(r->arg, RPC_OK, "", lines, n, NULL);
    } else {
        orders_err err;
        r->reserve_cb(r->arg, orders__status(r->w.rc), op_msg(r), NULL, 0,
                      orders__err_from_write(&err, &r->w));
    }
    store_order_free(r->w.result);
    oms_free(r);
}

static rpc_status local_reserve(orders_loop *ol, const char *order_id, const store_line *lines,
                                size_t n, uint64_t timeout_ms, const rpc_trace *trace,
                                orders_reserve_cb cb, void *arg)
{
    (void)trace;
    (void)timeout_ms; /* the store answers once the commit is durable */
    char why[160];
    bool ok = reserve_check(order_id, lines, n, why, sizeof why);
    inv_op *r = oms_calloc(1, sizeof *r + (ok ? n : 0) * sizeof r->lines[0]);
    if (!r)
        return RPC_RESOURCE_EXHAUSTED;
    r->reserve_cb = cb;
    r->arg = arg;
    if (!ok) {
        op_refuse(ol, r, why, finish_reserve_port);
        return RPC_OK;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(r->lines[i].sku, lines[i].sku, sizeof r->lines[i].sku);
        r->lines[i].quantity = lines[i].quantity;
    }
    reserve_fill(r, order_id, n);
    op_submit(ol, r, finish_reserve_port); /* done fires later, never from inside */
    return RPC_OK;
}

static void finish_release_port(inv_op *r)
{
    if (r->release_cb)
        r->release_cb(r->arg, orders__status(r->w.rc), r->w.rc == STORE_OK ? "" : op_msg(r));
    oms_free(r);
}

/* No retries: the store either commits the release or is closing. */
static rpc_status local_release(orders_loop *ol, const char *order_id, uint64_t timeout_ms,
                                const rpc_trace *trace, orders_release_cb cb, void *arg)
{
    (void)trace;
    (void)timeout_ms;
    char why[96];
    bool ok = order_id_check(order_id, why, sizeof why);
    inv_op *r = oms_calloc(1, sizeof *r);
    if (!r)
        return RPC_RESOURCE_EXHAUSTED;
    r->release_cb = cb;
    r->arg = arg;
    if (!ok) {
        op_refuse(ol, r, why, finish_release_port);
        return RPC_OK;
    }
    release_fill(r, order_id);
    op_submit(ol, r, finish_release_port);
    return RPC_OK;
}

const orders_customers_port orders__local_customers = {.get_customer = local_get_customer};
const orders_inventory_port orders__local_inventory = {.reserve = local_reserve,
                                                       .release = local_release};
