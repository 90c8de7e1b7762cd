/* watch.c - WatchOrders and TrackOrders: request validation and the rpc
 * side of a hub subscriber (hub.h does the replay, live fan-out and flow
 * control).
 *
 * Status codes:
 *  - INVALID_ARGUMENT: since_seq < 0; more than ORDERS_SUB_MAX_IDS order ids
 *    in one request; an id (order or customer) that is empty, longer than
 *    STORE_ID_MAX or not made of [A-Za-z0-9._-]; a TrackRequest with no
 *    action or an empty subscribe/unsubscribe. The texts are order_rules.c's
 *    shared ones ("order_ids: 0..1000 allowed, 1001 given").
 *  - OUT_OF_RANGE: since_seq beyond the next seq to be committed (last + 1):
 *    the client resumes from a store it did not get its seqs from.
 *  - RESOURCE_EXHAUSTED: a TrackOrders call would track more than
 *    ORDERS_SUB_MAX_IDS orders.
 *  - UNAVAILABLE: the loop drains ("...; resume with since_seq=N", N the
 *    first seq the subscriber has not dealt with), or serves no events.
 *  - INTERNAL: a catch-up store read failed.
 * Ids are not checked for existence: an order may be watched by id before
 * it is created.
 *
 * Ownership (issue 12): a caller whose principal acts for one customer gets
 * that customer's events only, in the replay from since_seq and live alike:
 * a filter naming another customer, or another customer's order ids, matches
 * nothing (no events, as for an unknown order), never an error that would
 * tell the order exists.
 *
 * TrackOrders: the client's half-close ends the call with OK once every
 * event committed before it (that reached this loop) was sent.
 */
#include <stdio.h>
#include <string.h>

#include "orders/hub.h"

typedef struct watch {
    rpc_call *c;
    orders_hub_loop *hl;
    orders_sub *sub;
    bool track;        /* TrackOrders, else WatchOrders */
    const char *owner; /* the caller's customer (its principal's), or NULL */
} watch;

/* Every event, replayed or live, goes through here: a customer-bound caller
 * never gets another customer's, whatever its filter matched (taken as sent,
 * so the subscriber's cursor moves on). The message is packed once per loop
 * and event (orders__hub_frame), whoever it goes to. */
static int send_event(void *arg, const store_event *e)
{
    watch *w = arg;
    if (w->owner && (!w->owner[0] || strcmp(e->customer_id, w->owner) != 0))
        return 0;
    rpc_frame *f = orders__hub_frame(w->hl, e);
    if (f)
        return rpc_call_send_frame(w->c, f);
    Oms__V1__OrderEvent m;
    orders__event_msg(e, &m);
    return w->track ? oms__v1__order_service__track_orders__send(w->c, &m)
                    : oms__v1__order_service__watch_orders__send(w->c, &m);
}

static void end_watch(void *arg, rpc_status code, const char *msg)
{
    watch *w = arg;
    rpc_call_finish(w->c, code, msg);
}

static int describe_watch(void *arg, char *buf, size_t n)
{
    watch *w = arg;
    return rpc_call_describe(w->c, buf, n);
}

static bool watch_armed(void *arg)
{
    watch *w = arg;
    return rpc_call_ready_armed(w->c);
}

/* The connection: its peer address. */
static const char *watch_group(void *arg)
{
    watch *w = arg;
    return rpc_call_peer(w->c);
}

static const orders_sub_ops watch_ops = {.send = send_event,
                                         .end = end_watch,
                                         .describe = describe_watch,
                                         .armed = watch_armed,
                                         .group = watch_group};

/* RPC_OK, or the status for a bad id list (field: its path, min: 0 or 1)
 * with why[] filled. */
static rpc_status check_ids(const char *field, char *const *ids, size_t n, size_t min, char *why,
                            size_t len)
{
    if (!orders__check_count(field, n, min, ORDERS_SUB_MAX_IDS, why, len))
        return RPC_INVALID_ARGUMENT;
    for (size_t i = 0; i < n; i++) {
        char item[48];
        snprintf(item, sizeof item, "%s[%zu]", field, i);
        if (!orders__check_token(item, ids[i], 1, STORE_ID_MAX, why, len))
            return RPC_INVALID_ARGUMENT;
    }
    return RPC_OK;
}

static rpc_status check_since(orders_hub_loop *hl, int64_t since, char *why, size_t len)
{
    if (since < 0) {
        snprintf(why, len, "since_seq: must be >= 0");
        return RPC_INVALID_ARGUMENT;
    }
    int64_t last = orders__hub_loop_last_seq(hl);
    if (since > last + 1) {
        snprintf(why, len, "since_seq %lld is beyond the next event (seq %lld)", (long long)since,
                 (long long)(last + 1));
        return RPC_OUT_OF_RANGE;
    }
    return RPC_OK;
}

/* The loop's hub, or NULL with c finished. */
static orders_hub_loop *call_hub(rpc_call *c)
{
    orders_loop *ol = orders__call_loop(c);
    if (!ol || !ol->hl) {
        rpc_call_finish(c, RPC_UNAVAILABLE, "order events are not served here");
        return NULL;
    }
    if (orders__hub_loop_draining(ol->hl)) {
        rpc_call_finish(c, RPC_UNAVAILABLE, "server shutting down; resume with since_seq");
        return NULL;
    }
    return ol->hl;
}

static watch *new_watch(rpc_call *c, orders_hub_loop *hl, bool track)
{
    watch *w = rpc_call_alloc(c, sizeof *w);
    if (!w || !(w->sub = orders__sub_new(hl, &watch_ops, w))) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    w->c = c;
    w->hl = hl;
    w->track = track;
    w->owner = orders__call_owner(c);
    rpc_call_set_data(c, w);
    return w;
}

/* Ends the call with code; the subscriber goes first. */
static void fail(watch *w, rpc_status code, const char *msg)
{
    orders__sub_free(w->sub);
    w->sub = NULL;
    rpc_call_finish(w->c, code, msg);
}

/* --- WatchOrders --------------------------------------------------------------- */

void orders__watch_on_request(rpc_call *c, const Oms__V1__WatchOrdersRequest *req)
{
    char why[160];
    orders_hub_loop *hl = call_hub(c);
    if (!hl)
        return;
    rpc_status code = check_ids("order_ids", req->order_ids, req->n_order_ids, 0, why, sizeof why);
    if (code == RPC_OK && req->customer_id &&
        !orders__check_token("customer_id", req->customer_id, 0, STORE_ID_MAX, why, sizeof why))
        code = RPC_INVALID_ARGUMENT;
    if (code == RPC_OK)
        code = check_since(hl, req->since_seq, why, sizeof why);
    if (code != RPC_OK) {
        rpc_call_finish(c, code, why);
        return;
    }
    watch *w = new_watch(c, hl, false);
    if (!w)
        return;
    /* A customer-bound caller without a filter watches its own orders (the
     * hub's customer index instead of every event); whatever the filter,
     * send_event leaves other customers' events out. */
    const char *cust = req->customer_id;
    if (w->owner && (!cust || !cust[0]) && !req->n_order_ids && w->owner[0] &&
        strlen(w->owner) <= STORE_ID_MAX)
        cust = w->owner;
    if (orders__sub_watch(w->sub, cust, (const char *const *)req->order_ids, req->n_order_ids) !=
        0) {
        fail(w, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    orders__sub_start(w->sub, req->since_seq);
    /* The subscription is in place: say so now, not with the first event,
     * which may be long in coming (a browser waits for the headers). */
    if (!rpc_call_done(c))
        rpc_call_send_headers(c);
}

void orders__watch_on_ready(rpc_call *c)
{
    watch *w = rpc_call_data(c);
    if (w)
        orders__sub_ready(w->sub);
}

void orders__watch_on_cancel(rpc_call *c, rpc_status code)
{
    (void)code;
    watch *w = rpc_call_data(c);
    if (w) {
        orders__sub_free(w->sub);
        w->sub = NULL;
    }
}

void orders__watch_on_free(rpc_call *c)
{
    orders__watch_on_cancel(c, RPC_CANCELLED);
}

/* --- TrackOrders ---------------------------------------------------------------- */

static void track_subscribe(watch *w, const Oms__V1__TrackSubscribe *sub)
{
    char why[160];
    orders_hub_loop *hl = orders__call_loop(w->c)->hl;
    rpc_status code = check_ids("subscribe.order_ids", sub ? sub->order_ids : NULL,
                                sub ? sub->n_order_ids : 0, 1, why, sizeof why);
    if (code == RPC_OK)
        code = check_since(hl, sub->since_seq, why, sizeof why);
    const char *const *ids = code == RPC_OK ? (const char *const *)sub->order_ids : NULL;
    if (code == RPC_OK &&
        orders__sub_nids(w->sub) + orders__sub_count_new(w->sub, ids, sub->n_order_ids) >
            ORDERS_SUB_MAX_IDS) {
        snprintf(why, sizeof why, "a call tracks at most %d orders", ORDERS_SUB_MAX_IDS);
        code = RPC_RESOURCE_EXHAUSTED;
    }
    if (code == RPC_OK && orders__sub_track(w->sub, ids, sub->n_order_ids, sub->since_seq) != 0) {
        snprintf(why, sizeof why, "out of memory");
        code = RPC_RESOURCE_EXHAUSTED;
    }
    if (code != RPC_OK)
        fail(w, code, why);
}

static void track_unsubscribe(watch *w, const Oms__V1__TrackUnsubscribe *u)
{
    char why[160];
    rpc_status code = check_ids("unsubscribe.order_ids", u ? u->order_ids : NULL,
                                u ? u->n_order_ids : 0, 1, why, sizeof why);
    if (code != RPC_OK) {
        fail(w, code, why);
        return;
    }
    orders__sub_untrack(w->sub, (const char *const *)u->order_ids, u->n_order_ids);
}

void orders__track_on_request(rpc_call *c, const Oms__V1__TrackRequest *req)
{
    watch *w = rpc_call_data(c);
    if (!w) {
        orders_hub_loop *hl = call_hub(c);
        if (!hl || !(w = new_watch(c, hl, true)))
            return;
        orders__sub_start(w->sub, 0);
    }
    if (!w->sub || rpc_call_done(c))
        return;
    switch (req->action_case) {
    case OMS__V1__TRACK_REQUEST__ACTION_SUBSCRIBE:
        track_subscribe(w, req->subscribe);
        break;
    case OMS__V1__TRACK_REQUEST__ACTION_UNSUBSCRIBE:
        track_unsubscribe(w, req->unsubscribe);
        break;
    default:
        fail(w, RPC_INVALID_ARGUMENT, "action: subscribe or unsubscribe required");
        break;
    }
}

void orders__track_on_half_close(rpc_call *c)
{
    watch *w = rpc_call_data(c);
    if (w && w->sub)
        orders__sub_close_after(w->sub);
    else
        rpc_call_finish(c, RPC_OK, NULL);
}

void orders__track_on_ready(rpc_call *c)
{
    orders__watch_on_ready(c);
}

void orders__track_on_cancel(rpc_call *c, rpc_status code)
{
    orders__watch_on_cancel(c, code);
}

void orders__track_on_free(rpc_call *c)
{
    orders__watch_on_cancel(c, RPC_CANCELLED);
}

/* --- drain ----------------------------------------------------------------------- */

void orders__hub_loop_drain(orders_hub_loop *hl)
{
    if (hl)
        orders__hub_loop_end_all(hl, RPC_UNAVAILABLE, "server shutting down");
}
