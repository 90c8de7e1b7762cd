/* port_remote.c - the customers and inventory ports over gRPC, for an order
 * service deployed apart from them (split deployment).
 *
 * Each port call is one unary call on the loop's channel to the peer, with
 * the deadline the caller passes (the incoming call's remaining one). The
 * channel retries UNAVAILABLE per its policy. A peer's answer about the
 * request (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION, ...) is reported
 * as it is; any other failure (the channel's own: "connect 127.0.0.1:50161:
 * connection refused", a deadline, the peer's internal errors) is logged at
 * warn level and reported with a fixed text ("inventory service
 * unavailable"), so callers never learn internal addresses or OS errors
 * (issue 12 section 5). A compensating Release goes further: after its first outcome is
 * reported, a release that failed with UNAVAILABLE or DEADLINE_EXCEEDED is
 * retried in the background with backoff until it succeeds or the loop is
 * detached, so a reservation is not left behind while inventory is briefly
 * away.
 *
 * Every outcome is reported from the loop: a peer call's from its callback
 * (rpc never calls back from inside rpc_channel_call), a refusal known at once
 * (no target configured, too many lines) through the completion queue.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "orders/orders_int.h"

#define RELEASE_BACKOFF_MS     200
#define RELEASE_BACKOFF_MAX_MS 10000

/* At most one warning a second about failed peer calls (an outage fails
 * every call). */
#define PEER_WARN_INTERVAL_MS 1000

static _Atomic uint64_t peer_warn_last_ms;
static atomic_size_t peer_warn_suppressed;

/* The status message a caller gets for a failed peer call of service svc
 * ("inventory", "customer"), in buf; *code may change too. */
static const char *peer_failure(const char *svc, rpc_status *code, const char *message, char *buf,
                                size_t n)
{
    switch (*code) {
    case RPC_NOT_FOUND:
    case RPC_INVALID_ARGUMENT:
    case RPC_FAILED_PRECONDITION:
    case RPC_ALREADY_EXISTS:
    case RPC_ABORTED:
    case RPC_OUT_OF_RANGE:
        return message; /* the peer's answer about the request (our own services' texts) */
    default:
        break;
    }
    uint64_t now = uv_hrtime() / 1000000u, last = atomic_load(&peer_warn_last_ms);
    if (now - last >= PEER_WARN_INTERVAL_MS &&
        atomic_compare_exchange_strong(&peer_warn_last_ms, &last, now)) {
        size_t more = atomic_exchange(&peer_warn_suppressed, 0);
        OMS_WARN("orders: %s service call failed: %s: %s%s%zu similar before not logged%s", svc,
                 rpc_status_name(*code), message ? message : "", more ? " (" : "", more,
                 more ? ")" : "");
    } else {
        atomic_fetch_add(&peer_warn_suppressed, 1);
    }
    switch (*code) {
    case RPC_DEADLINE_EXCEEDED:
        snprintf(buf, n, "%s service did not answer in time", svc);
        break;
    case RPC_CANCELLED: /* the channel went away under the call */
        *code = RPC_UNAVAILABLE;
        snprintf(buf, n, "%s service unavailable", svc);
        break;
    case RPC_RESOURCE_EXHAUSTED:
        snprintf(buf, n, "%s service overloaded", svc);
        break;
    case RPC_UNAUTHENTICATED:
    case RPC_PERMISSION_DENIED:
        /* the order service's own credentials were refused: not the caller's fault */
        *code = RPC_INTERNAL;
        snprintf(buf, n, "%s service refused the order service", svc);
        break;
    case RPC_UNAVAILABLE:
        snprintf(buf, n, "%s service unavailable", svc);
        break;
    default:
        snprintf(buf, n, "%s service failed (%s)", svc, rpc_status_name(*code));
        break;
    }
    return buf;
}

static uint64_t timeout_of(const orders_loop *ol, uint64_t timeout_ms)
{
    return timeout_ms ? timeout_ms : ol->o->cfg.peer_timeout_ms;
}

/* --- GetCustomer -------------------------------------------------------------------- */

typedef struct cust_ctx {
    orders_customer_cb cb;
    void *arg;
    orders_deferred d; /* a refusal known at once */
    const char *refusal;
} cust_ctx;

static void copy_field(char *dst, size_t cap, const char *src, bool *ok)
{
    size_t n = strlen(src);
    if (n >= cap) {
        *ok = false;
        n = cap - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void on_customer(void *data, rpc_status code, const char *message,
                        const Oms__V1__Customer *resp)
{
    cust_ctx *x = data;
    if (code != RPC_OK) {
        char buf[96];
        message = peer_failure("customer", &code, message, buf, sizeof buf);
        x->cb(x->arg, code, message, NULL);
    } else {
        store_customer r = {0};
        bool ok = true;
        copy_field(r.id, sizeof r.id, resp->id, &ok);
        copy_field(r.name, sizeof r.name, resp->name, &ok);
        copy_field(r.email, sizeof r.email, resp->email, &ok);
        r.status = (int)resp->status;
        r.created_at = resp->created_at;
        if (ok)
            x->cb(x->arg, RPC_OK, "", &r);
        else
            x->cb(x->arg, RPC_INTERNAL, "customer service: customer fields too long", NULL);
    }
    oms_free(x);
}

static void run_customer_refusal(orders_deferred *d)
{
    cust_ctx *x = container_of(d, cust_ctx, d);
    x->cb(x->arg, RPC_UNAVAILABLE, x->refusal, NULL);
    oms_free(x);
}

static rpc_status remote_get_customer(orders_loop *ol, const char *id, uint64_t timeout_ms,
                                      const rpc_trace *trace, orders_customer_cb cb, void *arg)
{
    cust_ctx *x = oms_calloc(1, sizeof *x);
    if (!x)
        return RPC_RESOURCE_EXHAUSTED;
    x->cb = cb;
    x->arg = arg;
    if (!ol->customers_ch) {
        x->refusal = "no customer service target";
        orders__defer(ol, &x->d, run_customer_refusal);
        return RPC_OK;
    }
    Oms__V1__GetCustomerRequest req = OMS__V1__GET_CUSTOMER_REQUEST__INIT;
    req.id = (char *)id;
    rpc_call_opts opts = {.timeout_ms = timeout_of(ol, timeout_ms), .trace = trace};
    if (!oms__v1__customer_service__get_customer__call(ol->customers_ch, &req, &opts, on_customer,
                                                       x)) {
        oms_free(x);
        return RPC_RESOURCE_EXHAUSTED;
    }
    return RPC_OK;
}

/* --- Reserve ------------------------------------------------------------------------ */

typedef struct reserve_ctx {
    orders_reserve_cb cb;
    void *arg;
    rpc_client_call *call; /* for its status details, inside the done callback */
    orders_deferred d;     /* a refusal known at once */
    rpc_status refusal_code;
    const char *refusal;
} reserve_ctx;

static void on_reservation(void *data, rpc_status code, const char *message,
                           const Oms__V1__Reservation *resp)
{
    reserve_ctx *x = data;
    if (code != RPC_OK) {
        /* The inventory's details (INSUFFICIENT_STOCK: which SKU, how many)
         * go on to the order service's caller. The done callback runs inside
         * the call's on_status, where its details are readable. */
        size_t dl = 0;
        const uint8_t *d = x->call ? rpc_client_call_status_details(x->call, &dl) : NULL;
        orders_err err;
        char buf[96];
        message = peer_failure("inventory", &code, message, buf, sizeof buf);
        x->cb(x->arg, code, message, NULL, 0, orders__err_from_details(&err, d, dl));
        oms_free(x);
        return;
    }
    size_t n = resp->n_lines;
    store_line *lines = n && n <= STORE_MAX_LINES ? oms_calloc(n, sizeof *lines) : NULL;
    bool ok = lines != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        copy_field(lines[i].sku, sizeof lines[i].sku, resp->lines[i]->sku, &ok);
        lines[i].quantity = resp->lines[i]->quantity;
        lines[i].unit_price_cents = resp->lines[i]->unit_price_cents;
    }
    if (ok)
        x->cb(x->arg, RPC_OK, "", lines, n, NULL);
    else if (n == 0 || n > STORE_MAX_LINES)
        x->cb(x->arg, RPC_INTERNAL, "inventory service: reservation without valid lines", NULL, 0,
              NULL);
    else if (!lines)
        x->cb(x->arg, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL);
    else
        x->cb(x->arg, RPC_INTERNAL, "inventory service: sku too long in reservation", NULL, 0,
              NULL);
    oms_free(lines);
    oms_free(x);
}

static void run_reserve_refusal(orders_deferred *d)
{
    reserve_ctx *x = container_of(d, reserve_ctx, d);
    x->cb(x->arg, x->refusal_code, x->refusal, NULL, 0, NULL);
    oms_free(x);
}

static rpc_status remote_reserve(orders_loop *ol, const char *order_id, const store_line *lines,
                                 size_t n, uint64_t timeout_ms, const rpc_trace *trace,
                                 orders_reserve_cb cb, void *arg)
{
    reserve_ctx *x = oms_calloc(1, sizeof *x);
    if (!x)
        return RPC_RESOURCE_EXHAUSTED;
    x->cb = cb;
    x->arg = arg;
    if (!ol->inventory_ch || n > STORE_MAX_LINES) {
        x->refusal_code = ol->inventory_ch ? RPC_INVALID_ARGUMENT : RPC_UNAVAILABLE;
        x->refusal = ol->inventory_ch ? "lines: too many" : "no inventory service target";
        orders__defer(ol, &x->d, run_reserve_refusal);
        return RPC_OK;
    }
    Oms__V1__ReserveLine *rl = oms_calloc(n ? n : 1, sizeof *rl);
    Oms__V1__ReserveLine **rlp = oms_calloc(n ? n : 1, sizeof *rlp);
    if (!rl || !rlp) {
        oms_free(x);
        oms_free(rl);
        oms_free(rlp);
        return RPC_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < n; i++) {
        oms__v1__reserve_line__init(&rl[i]);
        rl[i].sku = (char *)lines[i].sku;
        rl[i].quantity = lines[i].quantity;
        rlp[i] = &rl[i];
    }
    Oms__V1__ReserveRequest req = OMS__V1__RESERVE_REQUEST__INIT;
    req.order_id = (char *)order_id;
    req.n_lines = n;
    req.lines = rlp;
    rpc_call_opts opts = {.timeout_ms = timeout_of(ol, timeout_ms), .trace = trace};
    rpc_client_call *call =
        oms__v1__inventory_service__reserve__call(ol->inventory_ch, &req, &opts, on_reservation, x);
    oms_free(rl); /* req is only read during the call */
    oms_free(rlp);
    if (!call) {
        oms_free(x);
        return RPC_RESOURCE_EXHAUSTED;
    }
    x->call = call; /* its callbacks never fire from inside the call above */
    return RPC_OK;
}

/* --- Release, with background retries -------------------------------------------------- */

/* Per loop (orders_loop.remote): the releases still being retried. It outlives
 * the orders_loop when calls are still ending after orders__remote_loop_stop
 * (the channel cancels them), and is freed with the last of them. */
typedef struct remote_state {
    struct release_op *head; /* releases in flight or waiting */
    size_t live;             /* release_ops not freed yet (head's and closing ones) */
    bool stopped;
} remote_state;

typedef struct release_op {
    struct release_op *next, **pprev;
    remote_state *rs;
    orders_loop *ol; /* NULL once stopped */
    char order_id[STORE_ID_MAX + 1];
    orders_release_cb cb; /* NULL once the first outcome was reported */
    void *arg;
    uint64_t backoff_ms; /* wait before the next retry */
    int attempts;
    bool in_flight; /* a call is running */
    bool queued;    /* the first attempt waits in the completion queue */
    bool timer_on;  /* timer initialized (closed before freeing) */
    bool traced;    /* trace holds the trace context of the call it works for */
    rpc_trace trace;
    uint64_t first_timeout_ms; /* the caller's, for the first attempt */
    orders_deferred d;         /* the first attempt starts from the loop */
    uv_timer_t timer;
} release_op;

static remote_state *remote_of(orders_loop *ol)
{
    if (!ol->remote)
        ol->remote = oms_calloc(1, sizeof(remote_state));
    return ol->remote;
}

static void maybe_free_state(remote_state *rs)
{
    if (rs->stopped && rs->live == 0)
        oms_free(rs);
}

static void unlink_op(release_op *r)
{
    if (r->next)
        r->next->pprev = r->pprev;
    *r->pprev = r->next;
}

static void on_release_timer_closed(uv_handle_t *h)
{
    release_op *r = h->data;
    remote_state *rs = r->rs;
    oms_free(r);
    rs->live--;
    maybe_free_state(rs);
}

/* Drops r: out of the list now, freed once its timer (if any) is closed. */
static void op_free(release_op *r)
{
    unlink_op(r);
    if (r->timer_on) {
        uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *)&r->timer, on_release_timer_closed);
        return;
    }
    remote_state *rs = r->rs;
    oms_free(r);
    rs->live--;
    maybe_free_state(rs);
}

static void report(release_op *r, rpc_status code, const char *msg)
{
    orders_release_cb cb = r->cb;
    r->cb = NULL;
    if (cb)
        cb(r->arg, code, msg);
}

static void release_start(release_op *r, uint64_t timeout_ms);

static void on_release_timer(uv_timer_t *t)
{
    release_op *r = t->data;
    if (r->ol)
        release_start(r, r->ol->o->cfg.peer_timeout_ms);
}

static void on_released(void *data, rpc_status code, const char *message,
                        const Oms__V1__ReleaseResponse *resp)
{
    (void)resp;
    release_op *r = data;
    r->in_flight = false;
    bool first = r->attempts == 1;
    if (code != RPC_OK) {
        char buf[96];
        rpc_status shown = code;
        report(r, shown, peer_failure("inventory", &shown, message, buf, sizeof buf));
    } else {
        report(r, code, message);
    }
    if (code == RPC_OK) {
        if (!first)
            OMS_INFO("orders: release of %s succeeded after %d attempts", r->order_id, r->attempts);
        op_free(r);
        return;
    }
    if (r->rs->stopped || !r->ol) {
        op_free(r); /* logged as left behind by orders__remote_loop_stop */
        return;
    }
    if (code != RPC_UNAVAILABLE && code != RPC_DEADLINE_EXCEEDED) {
        OMS_WARN("orders: release of %s failed: %s: %s", r->order_id, rpc_status_name(code),
                 message);
        op_free(r);
        return;
    }
    if (first)
        OMS_WARN("orders: release of %s failed (%s: %s), retrying in the background", r->order_id,
                 rpc_status_name(code), message);
    if (!r->timer_on) {
        if (uv_timer_init(r->ol->loop, &r->timer) != 0) {
            OMS_ERROR("orders: release of %s left behind: uv_timer_init failed", r->order_id);
            op_free(r);
            return;
        }
        r->timer.data = r;
        r->timer_on = true;
    }
    uv_timer_start(&r->timer, on_release_timer, r->backoff_ms, 0);
    r->backoff_ms *= 2;
    if (r->backoff_ms > RELEASE_BACKOFF_MAX_MS)
        r->backoff_ms = RELEASE_BACKOFF_MAX_MS;
}

/* One attempt; its outcome arrives in on_released (never from inside). */
static void release_start(release_op *r, uint64_t timeout_ms)
{
    Oms__V1__ReleaseRequest req = OMS__V1__RELEASE_REQUEST__INIT;
    req.order_id = r->order_id;
    rpc_call_opts opts = {.timeout_ms = timeout_of(r->ol, timeout_ms),
                          .trace = r->traced ? &r->trace : NULL};
    r->attempts++;
    r->in_flight = true;
    if (!oms__v1__inventory_service__release__call(r->ol->inventory_ch, &req, &opts, on_released,
                                                   r)) {
        /* ENOMEM: take it as a failed attempt, retried like UNAVAILABLE */
        r->attempts--;
        r->in_flight = false;
        report(r, RPC_RESOURCE_EXHAUSTED, "out of memory");
        if (!r->timer_on && uv_timer_init(r->ol->loop, &r->timer) == 0) {
            r->timer.data = r;
            r->timer_on = true;
        }
        if (!r->timer_on) {
            OMS_ERROR("orders: release of %s left behind: out of memory", r->order_id);
            op_free(r);
            return;
        }
        uv_timer_start(&r->timer, on_release_timer, r->backoff_ms, 0);
    }
}

/* A release refused at once (no target, a bad id), reported from the loop. */
typedef struct release_refusal {
    orders_deferred d;
    orders_release_cb cb;
    void *arg;
    rpc_status code;
    const char *msg;
} release_refusal;

static void run_release_refusal(orders_deferred *d)
{
    release_refusal *x = container_of(d, release_refusal, d);
    x->cb(x->arg, x->code, x->msg);
    oms_free(x);
}

/* The first attempt starts from the loop, so that even its failure to start
 * (out of memory: report() at once) reaches cb from the loop. */
static void run_first_attempt(orders_deferred *d)
{
    release_op *r = container_of(d, release_op, d);
    r->queued = false;
    if (!r->ol) { /* the loop was detached meanwhile: left behind, as logged */
        report(r, RPC_UNAVAILABLE, "inventory service unavailable");
        op_free(r);
        return;
    }
    release_start(r, r->first_timeout_ms);
}

static rpc_status remote_release(orders_loop *ol, const char *order_id, uint64_t timeout_ms,
                                 const rpc_trace *trace, orders_release_cb cb, void *arg)
{
    const char *refused = !ol->inventory_ch ? "no inventory service target"
                          : !*order_id || strlen(order_id) > STORE_ID_MAX
                              ? "order_id: must be 1..31 bytes"
                              : NULL;
    if (refused) {
        if (!cb)
            return RPC_OK; /* nobody to tell */
        release_refusal *x = oms_malloc(sizeof *x);
        if (!x)
            return RPC_RESOURCE_EXHAUSTED;
        x->cb = cb;
        x->arg = arg;
        x->code = ol->inventory_ch ? RPC_INVALID_ARGUMENT : RPC_UNAVAILABLE;
        x->msg = refused;
        orders__defer(ol, &x->d, run_release_refusal);
        return RPC_OK;
    }
    remote_state *rs = remote_of(ol);
    release_op *r = rs ? oms_calloc(1, sizeof *r) : NULL;
    if (!r) {
        OMS_ERROR("orders: release of %s left behind: out of memory", order_id);
        return RPC_RESOURCE_EXHAUSTED;
    }
    rs->live++;
    r->rs = rs;
    r->ol = ol;
    memcpy(r->order_id, order_id, strlen(order_id) + 1);
    r->cb = cb;
    r->arg = arg;
    r->backoff_ms = RELEASE_BACKOFF_MS;
    if (trace) { /* background retries keep the trace of the call they work for */
        r->trace = *trace;
        r->traced = true;
    }
    r->next = rs->head;
    r->pprev = &rs->head;
    if (rs->head)
        rs->head->pprev = &r->next;
    rs->head = r;
    r->first_timeout_ms = timeout_ms;
    r->queued = true;
    orders__defer(ol, &r->d, run_first_attempt);
    return RPC_OK;
}

void orders__remote_loop_stop(orders_loop *ol)
{
    remote_state *rs = ol->remote;
    if (!rs)
        return;
    ol->remote = NULL;
    size_t left = 0;
    for (release_op *r = rs->head, *next; r; r = next) {
        next = r->next;
        left++;
        OMS_WARN("orders: release of order %s left behind after %d attempts (loop detached)",
                 r->order_id, r->attempts);
        r->ol = NULL;
        /* In flight: the channel, freed next, cancels the call and on_released
         * frees r. Queued: run_first_attempt frees it. Waiting: freed now. */
        if (!r->in_flight && !r->queued)
            op_free(r);
    }
    if (left)
        OMS_WARN("orders: %zu releases left behind", left);
    rs->stopped = true;
    maybe_free_state(rs);
}

const orders_customers_port orders__remote_customers = {.get_customer = remote_get_customer};
const orders_inventory_port orders__remote_inventory = {.reserve = remote_reserve,
                                                        .release = remote_release};
