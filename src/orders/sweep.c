/* sweep.c - split mode's start-up sweep of dead runs' reservations.
 *
 * In split mode CreateOrder reserves at the inventory service under a fresh
 * order id before it commits the order in this process's store. A run killed
 * in between (or while a compensating release was still being retried)
 * leaves stock reserved for an order that does not exist, and ids are never
 * handed out again, so nothing else would release it. The store records, per
 * run, the range of ids it could hand out (store.h, "sweep ranges"); on the
 * first loop attached, this releases every id of the previous runs' ranges
 * that has no order, through the remote inventory port, SWEEP_IN_FLIGHT at a
 * time, one range after the other, and marks a range swept once every release
 * of it succeeded. A range with a failed release stays for the next start
 * (the port itself goes on retrying UNAVAILABLE ones in the background).
 *
 * Releasing an id that holds nothing is a no-op at the inventory, so ids a
 * run took without reserving (or never took) cost one call each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "orders/orders_int.h"

#define SWEEP_IN_FLIGHT 64
#define SWEEP_PAGE      256

typedef struct orders_sweep {
    orders_loop *ol; /* NULL once stopped */
    uv_timer_t timer;
    bool timer_open; /* closed by orders__sweep_stop */
    store_id_range *ranges;
    size_t nranges, cur; /* cur: the range being swept */
    int64_t after;       /* keyset cursor: the last id listed in the range */
    int64_t ids[SWEEP_PAGE];
    size_t nids, pos;
    bool listed;       /* every id of the range was issued */
    bool pumping;      /* inside pump(): on_release does not recurse into it */
    size_t in_flight;  /* releases not answered yet */
    uint64_t released; /* in the current range */
    uint64_t failed;
    uint64_t total, total_ok; /* over all ranges: releases issued, succeeded */
} orders_sweep;

static void maybe_free(orders_sweep *s)
{
    if (!s->ol && !s->timer_open && s->in_flight == 0) {
        oms_free(s->ranges);
        oms_free(s);
    }
}

static void pump(orders_sweep *s);

static void on_release(void *arg, rpc_status code, const char *msg)
{
    orders_sweep *s = arg;
    s->in_flight--;
    if (code == RPC_OK) {
        s->released++;
        s->total_ok++;
    } else {
        s->failed++;
        if (s->ol)
            OMS_DEBUG("orders: sweep: release failed: %s: %s", rpc_status_name(code), msg);
    }
    if (!s->ol) {
        maybe_free(s);
        return;
    }
    if (!s->pumping)
        pump(s);
}

static void next_range(orders_sweep *s)
{
    s->cur++;
    s->after = s->cur < s->nranges ? s->ranges[s->cur].first - 1 : 0;
    s->nids = s->pos = 0;
    s->listed = false;
    s->released = s->failed = 0;
}

/* The current range is done: marks it swept if every release succeeded. */
static void finish_range(orders_sweep *s)
{
    const store_id_range *r = &s->ranges[s->cur];
    if (s->failed == 0) {
        store_rc rc = store_sweep_done(s->ol->o->st, r);
        if (rc == STORE_OK)
            OMS_INFO("orders: sweep: ids %lld..%lld done, %llu without an order released",
                     (long long)r->first, (long long)r->last, (unsigned long long)s->released);
        else
            OMS_WARN("orders: sweep: ids %lld..%lld released (%llu) but not marked swept: %s",
                     (long long)r->first, (long long)r->last, (unsigned long long)s->released,
                     store_rc_name(rc));
    } else {
        OMS_WARN("orders: sweep: ids %lld..%lld: %llu releases failed (%llu succeeded); the "
                 "range stays for the next start",
                 (long long)r->first, (long long)r->last, (unsigned long long)s->failed,
                 (unsigned long long)s->released);
    }
    next_range(s);
}

static void pump(orders_sweep *s)
{
    s->pumping = true;
    while (s->ol && s->cur < s->nranges) {
        if (s->pos == s->nids && !s->listed) {
            const store_id_range *r = &s->ranges[s->cur];
            long n =
                store_list_unused_order_ids(s->ol->sl, s->after + 1, r->last, s->ids, SWEEP_PAGE);
            if (n < 0) {
                OMS_WARN("orders: sweep: ids %lld..%lld: store read failed; the range stays for "
                         "the next start",
                         (long long)r->first, (long long)r->last);
                s->failed++;
                s->listed = true;
                n = 0;
            }
            s->nids = (size_t)n;
            s->pos = 0;
            if (n > 0)
                s->after = s->ids[n - 1];
            if ((size_t)n < SWEEP_PAGE)
                s->listed = true;
        }
        if (s->pos < s->nids) {
            if (s->in_flight >= SWEEP_IN_FLIGHT)
                break; /* on_release pumps again */
            char id[STORE_ID_MAX + 1];
            store_format_order_id(id, s->ids[s->pos++]);
            s->in_flight++;
            s->total++;
            rpc_status st = s->ol->inventory->release(s->ol, id, 0, NULL, on_release, s);
            if (st != RPC_OK) /* not started: counted as a failed release */
                on_release(s, st, "out of memory");
            continue;
        }
        if (s->in_flight > 0)
            break; /* the range's last answers are on their way */
        finish_range(s);
    }
    s->pumping = false;
    if (s->ol && s->cur >= s->nranges && s->nranges) {
        OMS_INFO("orders: sweep: %zu ranges of earlier runs checked: %llu ids without an order, "
                 "%llu released",
                 s->nranges, (unsigned long long)s->total, (unsigned long long)s->total_ok);
        s->nranges = 0; /* report once */
    }
}

static void on_timer(uv_timer_t *t)
{
    orders_sweep *s = t->data;
    if (s->ol)
        pump(s);
}

void orders__sweep_start(orders_loop *ol)
{
    store *st = ol->o->st;
    size_t n = store_pending_sweeps(st, NULL, 0);
    if (n == 0)
        return;
    orders_sweep *s = oms_calloc(1, sizeof *s);
    store_id_range *ranges = oms_calloc(n, sizeof *ranges);
    if (!s || !ranges || uv_timer_init(ol->loop, &s->timer) != 0) {
        OMS_ERROR("orders: sweep of %zu ranges of earlier runs not started (out of memory); "
                  "they stay for the next start",
                  n);
        oms_free(ranges);
        oms_free(s);
        return;
    }
    store_pending_sweeps(st, ranges, n);
    s->ol = ol;
    s->ranges = ranges;
    s->nranges = n;
    s->cur = (size_t)-1;
    next_range(s);
    s->timer.data = s;
    s->timer_open = true;
    uv_timer_start(&s->timer, on_timer, 0, 0);
    ol->sweep = s;
    OMS_INFO("orders: sweep: %zu ranges of earlier runs to check (ids %lld..%lld)", n,
             (long long)ranges[0].first, (long long)ranges[n - 1].last);
}

static void on_timer_closed(uv_handle_t *h)
{
    orders_sweep *s = h->data;
    s->timer_open = false;
    maybe_free(s);
}

void orders__sweep_stop(orders_loop *ol)
{
    orders_sweep *s = ol->sweep;
    if (!s)
        return;
    ol->sweep = NULL;
    if (s->cur < s->nranges)
        OMS_WARN("orders: sweep stopped with %zu ranges of earlier runs left for the next start",
                 s->nranges - s->cur);
    s->ol = NULL;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

bool orders__sweep_idle(const orders_loop *ol)
{
    const orders_sweep *s = ol->sweep;
    return !s || (s->cur >= s->nranges && s->in_flight == 0);
}
