/* order_create.c - the CreateOrder flow, shared by CreateOrder and each row of
 * ImportOrders:
 *
 *   validate -> idempotency key seen? answer the first order
 *            -> customer ACTIVE? (customers port)
 *            -> new order id -> reserve stock, prices come back (inventory port)
 *            -> total -> ORDER_CREATE (store writer, durable)
 *
 * With the in-process inventory (all-in-one: same store), the last two steps
 * are one ORDER_PLACE: reservation, prices, total, order and event in one
 * transaction, one commit, nothing to compensate.
 *
 * Otherwise anything that fails after a reservation may exist releases it again: the
 * order id is the reservation's key and Release is idempotent, so a release
 * after a reserve whose reply was lost (UNAVAILABLE, DEADLINE_EXCEEDED) is
 * harmless when nothing was reserved. The flow reports such a failure only
 * after the release's first try, so the stock is back when the client hears
 * (the port keeps retrying a release that failed).
 *
 * A flow knows nothing of rpc calls: it copies what it needs from the request
 * up front and reports once through its callback, so one call can run many
 * flows (ImportOrders) and the caller keeps its call alive with a ref. It
 * reports from the loop only: the ports do (orders_int.h), and an answer
 * known at once (a refused request, a known idempotency key) goes through the
 * loop's completion queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "orders/orders_int.h"

typedef struct create_flow {
    orders_loop *ol;
    orders_create_cb cb;
    void *arg;
    uint64_t timeout_ms; /* bound of each peer call; 0: the port's default */
    rpc_trace trace;     /* the calling RPC's, carried to the peers */
    const rpc_trace *tp; /* &trace, or NULL: none */
    char customer_id[STORE_ID_MAX + 1];
    store_order *order; /* the order being built; its lines are the request's */
    store_write w;      /* ORDER_CREATE; lives until its done fired */
    /* the outcome, reported once the compensating release had its first try */
    rpc_status code;
    char msg[STORE_MSG_MAX + 96];
    store_order *first; /* owned: the first order of a key another call won */
    orders_err err;     /* the failure's details; reason NONE: none */
    int fresh_ids;      /* ids given up to another run's reservation (split mode) */
    orders_deferred d;  /* an answer known at the start, reported from the loop */
    orders_key_wait kw; /* split mode, keyed: the flow's place at the key's gate */
    bool key_held;      /* kw holds the key: left when the flow is freed */
} create_flow;

/* Order ids a flow may find taken by a dead run's reservation before it gives
 * up with INTERNAL: at most the flows in flight at a crash collide, and each
 * collision takes the flow past one of them. */
#define CREATE_MAX_FRESH_IDS 16

static void flow_free(create_flow *f)
{
    if (f->key_held) /* after the report: the next flow with the key sees it */
        orders__key_leave(&f->kw);
    store_order_free(f->first);
    store_order_free(f->order);
    oms_free(f);
}

/* Reports the flow's outcome and frees it. */
static void flow_done_err(create_flow *f, rpc_status code, const char *msg,
                          const store_order *order, const orders_err *err)
{
    f->cb(f->arg, code, msg ? msg : "", code == RPC_OK ? order : NULL, code == RPC_OK ? NULL : err);
    flow_free(f);
}

static void flow_done(create_flow *f, rpc_status code, const char *msg, const store_order *order)
{
    flow_done_err(f, code, msg, order, NULL);
}

/* The details of a reused idempotency key (the flow's customer). */
static const orders_err *key_reused(orders_err *e, const char *customer_id)
{
    memset(e, 0, sizeof *e);
    e->reason = ORDERS_REASON_IDEMPOTENCY_KEY_REUSED;
    snprintf(e->id, sizeof e->id, "%s", customer_id);
    return e;
}

/* Reports the outcome kept in the flow (code, msg, first, err) and frees it. */
static void flow_done_kept(create_flow *f)
{
    flow_done_err(f, f->code, f->msg, f->first, f->err.reason ? &f->err : NULL);
}

/* Keeps an outcome in the flow: code, msg (copied), first (owned by the flow
 * from here; reported with RPC_OK), and f->err as set. */
static void flow_keep(create_flow *f, rpc_status code, const char *msg, store_order *first)
{
    f->code = code;
    snprintf(f->msg, sizeof f->msg, "%s", msg ? msg : "");
    f->first = first;
}

static void run_done_kept(orders_deferred *d)
{
    flow_done_kept(container_of(d, create_flow, d));
}

static void on_released(void *arg, rpc_status code, const char *msg)
{
    (void)code; /* a failed release goes on being retried by the port */
    (void)msg;
    flow_done_kept(arg);
}

/* Compensation, then the answer: the caller hears of the failure (or of the
 * first order, for a key another call won) only once the release had its
 * first try, so a client reading the stock after the reply finds it back. A
 * release that fails is retried by the port on its own. first (owned by the
 * flow from here) is the order to report with RPC_OK, else NULL. */
static void flow_release_then_done(create_flow *f, rpc_status code, const char *msg,
                                   store_order *first)
{
    flow_keep(f, code, msg, first);
    if (f->ol->inventory->release(f->ol, f->order->id, f->timeout_ms, f->tp, on_released, f) !=
        RPC_OK) {
        /* Out of memory: not even a first try; reported now (from the loop:
         * every caller of this is a completion). */
        OMS_ERROR("orders: release of %s left behind: out of memory", f->order->id);
        flow_done_kept(f);
    }
}

static void on_order_created(store_write *w)
{
    create_flow *f = w->data;
    char why[STORE_MSG_MAX + 64];

    switch (w->rc) {
    case STORE_OK:
        flow_done(f, RPC_OK, "", f->order);
        return;
    case STORE_EXISTS:
        /* A concurrent call with the same key won: ours must not stay reserved. */
        if (w->result) {
            store_order *first = w->result;
            w->result = NULL;
            if (orders__same_request(first, f->order)) {
                flow_release_then_done(f, RPC_OK, "", first);
            } else {
                store_order_free(first);
                key_reused(&f->err, f->customer_id);
                flow_release_then_done(f, RPC_INVALID_ARGUMENT, ORDERS_KEY_REUSED_MSG, NULL);
            }
        } else {
            snprintf(why, sizeof why, "idempotency key already used: %s", w->msg);
            flow_release_then_done(f, RPC_ALREADY_EXISTS, why, NULL);
        }
        return;
    default:
        store_order_free(w->result);
        w->result = NULL;
        snprintf(why, sizeof why, "storing order %s: %s", f->order->id,
                 w->msg[0] ? w->msg : store_rc_name(w->rc));
        flow_release_then_done(f, orders__status(w->rc), why, NULL);
        return;
    }
}

static void reserve_fresh(create_flow *f);

static void on_stale_released(void *arg, rpc_status code, const char *msg)
{
    (void)code; /* a failed release goes on being retried by the port */
    (void)msg;
    reserve_fresh(arg);
}

static void on_reserved(void *arg, rpc_status code, const char *msg, const store_line *lines,
                        size_t n, const orders_err *err)
{
    create_flow *f = arg;
    store_order *o = f->order;
    char why[STORE_MSG_MAX + 64];

    if (code != RPC_OK) {
        /* The inventory may have committed before its reply was lost (or
         * failed in a way that does not say): releasing an order id that holds
         * nothing is a no-op. */
        if (code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED || code == RPC_CANCELLED ||
            code == RPC_UNKNOWN || code == RPC_INTERNAL)
            flow_release_then_done(f, code, msg, NULL);
        else
            flow_done_err(f, code, msg, NULL, err); /* e.g. INSUFFICIENT_STOCK */
        return;
    }
    bool same = n == o->nlines;
    size_t bad = 0; /* the first line that differs */
    for (size_t i = 0; same && i < n; i++) {
        if (strcmp(lines[i].sku, o->lines[i].sku) != 0 ||
            lines[i].quantity != o->lines[i].quantity) {
            same = false;
            bad = i;
        }
    }
    if (!same) {
        /* Reserve returns the first reservation of an order id. One that is not
         * ours was made by an earlier run that died before storing its order
         * and handed its id out again after a restart: an oms from before the
         * durable id blocks (store.h), or a store restored from a backup
         * (split mode: the reservation lives in the inventory's store). Its
         * order does not exist, so it is released, and ours is reserved under
         * a fresh id. */
        if (f->fresh_ids < CREATE_MAX_FRESH_IDS) {
            /* The new id is taken once the stale release had its first try,
             * so the stock is back before the client hears of its order. */
            f->fresh_ids++;
            if (f->ol->inventory->release(f->ol, o->id, f->timeout_ms, f->tp, on_stale_released,
                                          f) != RPC_OK) {
                OMS_ERROR("orders: release of %s left behind: out of memory", o->id);
                reserve_fresh(f);
            }
            return;
        }
        if (n != o->nlines)
            snprintf(why, sizeof why, "inventory reserved %zu lines for %zu", n, o->nlines);
        else
            snprintf(why, sizeof why, "inventory reserved lines[%zu] as %s x %lld", bad,
                     lines[bad].sku, (long long)lines[bad].quantity);
        /* Not a fault of ours nor of the request: the ids ahead are taken by
         * reservations that are not their orders'. */
        flow_release_then_done(f, RPC_UNAVAILABLE, why, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++)
        o->lines[i].unit_price_cents = lines[i].unit_price_cents;
    if (!orders__order_total(o->lines, o->nlines, &o->total_cents)) {
        flow_release_then_done(f, RPC_INVALID_ARGUMENT,
                               "order total overflows (more than 2^63-1 cents)", NULL);
        return;
    }
    o->status = STORE_ORDER_PENDING;
    o->version = 1;
    o->updated_at = o->created_at; /* set with the id */

    f->w = (store_write){0};
    f->w.op = STORE_ORDER_CREATE;
    f->w.done = on_order_created;
    f->w.data = f;
    f->w.at = o->created_at;
    f->w.order = o;
    store_submit(f->ol->sl, &f->w); /* done fires later, never from inside */
}

static void place_order(create_flow *f);

/* Whether r (from an EXISTS) is the customer's order under f's key. */
static bool is_keyed_repeat(const create_flow *f, const store_order *r)
{
    const store_order *o = f->order;
    return r && o->idempotency_key[0] && strcmp(r->idempotency_key, o->idempotency_key) == 0 &&
           strcmp(r->customer_id, o->customer_id) == 0;
}

/* ORDER_PLACE done: the order and its reservation were stored together, or
 * nothing was, so there is nothing to release. */
static void on_order_placed(store_write *w)
{
    create_flow *f = w->data;
    store_order *r = w->result;
    char why[STORE_MSG_MAX + 64];

    w->result = NULL;
    switch (w->rc) {
    case STORE_OK:
        flow_done(f, RPC_OK, "", r);
        break;
    case STORE_EXISTS:
        if (is_keyed_repeat(f, r)) { /* the first call with the key (nothing was reserved) */
            if (orders__same_request(r, f->order))
                flow_done(f, RPC_OK, "", r);
            else
                flow_done_err(f, RPC_INVALID_ARGUMENT, ORDERS_KEY_REUSED_MSG, NULL,
                              key_reused(&f->err, f->customer_id));
        } else if (f->fresh_ids < CREATE_MAX_FRESH_IDS) {
            /* The id names a reservation (or an order) that is not ours: a
             * store from before Reserve refused the OrderService's ids. Such
             * an id is skipped, never taken over. */
            f->fresh_ids++;
            place_order(f);
        } else {
            flow_done(f, RPC_UNAVAILABLE, "no free order id found, retry", NULL);
        }
        break;
    case STORE_PRECONDITION:
    case STORE_NOT_FOUND:
    case STORE_INVALID: /* the store's message names the SKU or the overflow */
        flow_done_err(f, orders__status(w->rc), w->msg, NULL, orders__err_from_write(&f->err, w));
        break;
    default:
        snprintf(why, sizeof why, "storing order %s: %s", f->order->id,
                 w->msg[0] ? w->msg : store_rc_name(w->rc));
        flow_done(f, orders__status(w->rc), why, NULL);
        break;
    }
    store_order_free(r);
}

static int64_t next_order_id(store *st, char out[STORE_ID_MAX + 1], store_rc *rc);

/* All-in-one mode (the inventory is this process's, on this store): takes a
 * new order id, then the reservation, prices, total, order and event in one
 * transaction, so one commit per order and no reservation without its order
 * after a crash. */
static void place_order(create_flow *f)
{
    store_rc rc;
    f->order->created_at = next_order_id(f->ol->o->st, f->order->id, &rc);
    if (rc != STORE_OK) {
        flow_done(f, orders__status(rc), "no order id available yet, retry", NULL);
        return;
    }
    f->w = (store_write){0};
    f->w.op = STORE_ORDER_PLACE;
    f->w.done = on_order_placed;
    f->w.data = f;
    f->w.at = f->order->created_at;
    f->w.order = f->order;
    store_submit(f->ol->sl, &f->w); /* done fires later, never from inside */
}

/* Ids and creation times go together: ListOrders pages in id order and the
 * store searches created_from/created_to along the ids, so created_at must
 * not decrease as ids grow. One lock per process (ids are taken on every
 * loop) around the id and the clock; a clock that steps back is held at the
 * last time given. */
static uv_once_t id_once = UV_ONCE_INIT;
static uv_mutex_t id_lock;
static int64_t id_last_ms;

static void id_lock_init(void)
{
    if (uv_mutex_init(&id_lock) != 0)
        abort(); /* as uv_once offers no way to fail; never seen on Linux */
}

/* *rc: STORE_UNAVAILABLE when the store has no durable id ready (store.h). */
static int64_t next_order_id(store *st, char out[STORE_ID_MAX + 1], store_rc *rc)
{
    uv_once(&id_once, id_lock_init);
    uv_mutex_lock(&id_lock);
    *rc = store_next_order_id(st, out);
    int64_t now = orders__now_ms();
    if (now < id_last_ms)
        now = id_last_ms;
    id_last_ms = now;
    uv_mutex_unlock(&id_lock);
    return now;
}

/* Takes a new order id and reserves the order's lines under it (inventory
 * port); on_reserved runs later, from the loop. Called from completions, so
 * a failure to start is reported at once. */
static void reserve_fresh(create_flow *f)
{
    store_rc rc;
    f->order->created_at = next_order_id(f->ol->o->st, f->order->id, &rc);
    if (rc != STORE_OK) { /* nothing reserved yet */
        flow_done(f, orders__status(rc), "no order id available yet, retry", NULL);
        return;
    }
    rpc_status st =
        f->ol->inventory->reserve(f->ol, f->order->id, f->order->lines, f->order->nlines,
                                  f->timeout_ms, f->tp, on_reserved, f);
    if (st != RPC_OK) /* nothing started, so nothing reserved */
        flow_done(f, st, "out of memory", NULL);
}

static bool known_key(create_flow *f);

/* All-in-one mode skips the key lookup up front (ORDER_PLACE answers a taken
 * key with the first order in the same step); a flow that stops before it
 * still answers a repeat with its first order. True when it answered (and
 * freed f). */
static bool answered_by_key(create_flow *f)
{
    if (f->ol->inventory != &orders__local_inventory || !f->order->idempotency_key[0] ||
        !known_key(f))
        return false;
    flow_done_kept(f);
    return true;
}

static void on_customer(void *arg, rpc_status code, const char *msg, const store_customer *c)
{
    create_flow *f = arg;
    char why[STORE_MSG_MAX + 64];

    if (code != RPC_OK || c->status != STORE_CUSTOMER_ACTIVE) {
        if (answered_by_key(f))
            return;
    }
    if (code == RPC_NOT_FOUND) {
        snprintf(why, sizeof why, "customer %s not found",
                 RPC_QUOTE(f->customer_id, strlen(f->customer_id)));
        flow_done(f, RPC_NOT_FOUND, why, NULL);
        return;
    }
    if (code != RPC_OK) {
        flow_done(f, code, msg, NULL);
        return;
    }
    if (c->status != STORE_CUSTOMER_ACTIVE) {
        snprintf(why, sizeof why, "customer %s is %s",
                 RPC_QUOTE(f->customer_id, strlen(f->customer_id)),
                 c->status == STORE_CUSTOMER_SUSPENDED ? "suspended" : "not active");
        memset(&f->err, 0, sizeof f->err);
        f->err.reason = ORDERS_REASON_CUSTOMER_SUSPENDED;
        snprintf(f->err.id, sizeof f->err.id, "%s", f->customer_id);
        flow_done_err(f, RPC_FAILED_PRECONDITION, why, NULL, &f->err);
        return;
    }
    if (f->ol->inventory == &orders__local_inventory) {
        place_order(f);
        return;
    }
    reserve_fresh(f);
}

/* Looks f's idempotency key up: when the customer used it before, keeps the
 * answer in f (its first order if f asks for the same, else
 * INVALID_ARGUMENT) and returns true; so it does on a store error. False
 * when the key is new. */
static bool known_key(create_flow *f)
{
    const store_order *req = f->order;
    store_order *first = NULL;
    store_rc rc =
        store_find_order_by_key(f->ol->sl, req->customer_id, req->idempotency_key, &first);
    if (rc == STORE_NOT_FOUND)
        return false;
    if (rc == STORE_OK) {
        if (orders__same_request(first, req)) {
            flow_keep(f, RPC_OK, "", first);
        } else {
            store_order_free(first);
            key_reused(&f->err, req->customer_id);
            flow_keep(f, RPC_INVALID_ARGUMENT, ORDERS_KEY_REUSED_MSG, NULL);
        }
        return true;
    }
    char why[64];
    snprintf(why, sizeof why, "looking up idempotency key: %s", store_rc_name(rc));
    flow_keep(f, orders__status(rc), why, NULL);
    return true;
}

/* The flow's turn at its key's gate (split mode), from the loop: the flows
 * before it with the key have reported, so the lookup sees their orders. */
static void on_key_turn(orders_deferred *d)
{
    create_flow *f = container_of(d, create_flow, kw.d);
    if (f->kw.refused) {
        flow_done(f, RPC_UNAVAILABLE, "server shutting down", NULL);
        return;
    }
    f->key_held = true;
    if (known_key(f)) {
        flow_done_kept(f);
        return;
    }
    rpc_status st =
        f->ol->customers->get_customer(f->ol, f->customer_id, f->timeout_ms, f->tp, on_customer, f);
    if (st != RPC_OK)
        flow_done(f, st, "out of memory", NULL);
}

/* Reports the outcome kept in f from the loop. */
static void flow_done_later(create_flow *f)
{
    orders__defer(f->ol, &f->d, run_done_kept);
}

rpc_status orders__create_order(orders_loop *ol, const Oms__V1__CreateOrderRequest *req,
                                const char *key, uint64_t timeout_ms, const rpc_trace *trace,
                                orders_create_cb cb, void *arg)
{
    create_flow *f = oms_calloc(1, sizeof *f);
    if (!f)
        return RPC_RESOURCE_EXHAUSTED;
    f->ol = ol;
    f->cb = cb;
    f->arg = arg;
    char why[160];
    rpc_status st = orders__validate_create(req, why, sizeof why);
    if (req->idempotency_key[0])
        key = req->idempotency_key;
    if (!key)
        key = "";
    if (st == RPC_OK &&
        !orders__check_len("idempotency-key", key, 0, STORE_KEY_MAX, why, sizeof why))
        st = RPC_INVALID_ARGUMENT;
    if (st != RPC_OK) {
        flow_keep(f, st, why, NULL);
        flow_done_later(f);
        return RPC_OK;
    }
    store_order *o = store_order_new(req->n_lines);
    if (!o) {
        oms_free(f);
        return RPC_RESOURCE_EXHAUSTED;
    }
    f->timeout_ms = timeout_ms;
    if (trace) {
        f->trace = *trace;
        f->tp = &f->trace;
    }
    f->order = o;
    /* Lengths were validated above. */
    snprintf(f->customer_id, sizeof f->customer_id, "%s", req->customer_id);
    snprintf(o->customer_id, sizeof o->customer_id, "%s", req->customer_id);
    snprintf(o->idempotency_key, sizeof o->idempotency_key, "%s", key);
    for (size_t i = 0; i < req->n_lines; i++) {
        snprintf(o->lines[i].sku, sizeof o->lines[i].sku, "%s", req->lines[i]->sku);
        o->lines[i].quantity = req->lines[i]->quantity;
    }
    /* All-in-one: ORDER_PLACE answers a taken key (see answered_by_key).
     * Split mode: one flow per key at a time (keygate.c). */
    if (key[0] && ol->inventory != &orders__local_inventory) {
        if (!orders__key_enter(&f->kw, ol, o->customer_id, o->idempotency_key, on_key_turn))
            return RPC_OK; /* on_key_turn goes on */
        f->key_held = true;
        if (known_key(f)) {
            flow_done_later(f);
            return RPC_OK;
        }
    }
    st = ol->customers->get_customer(ol, f->customer_id, timeout_ms, f->tp, on_customer, f);
    if (st != RPC_OK)
        flow_free(f); /* nothing started: cb never fires */
    return st;
}
