/* hub.c - order events from the store writer to every loop (hub.h,
 * orders_int.h); the subscribers themselves are in hub_sub.c.
 *
 * The writer thread publishes each commit's events: they are copied once,
 * before any lock, and the copy is linked into every attached loop's inbox
 * (a mutex per loop, held to move a few pointers); the loop is woken with
 * uv_async_send. The loop moves them into its ring and fans each one out to
 * the LIVE subscribers it matches, found through the loop's order id and
 * customer id indexes and its list of match-all ones. A subscriber behind
 * the ring's tail reads the store instead; the ring is only a cache.
 *
 * Work per turn of the loop is bounded: the live fan-out makes at most
 * FANOUT_BUDGET offers, and the catching-up subscribers pumped from the idle
 * handle spend at most IDLE_BUDGET together; the idle handle goes on with
 * the rest the next turn, after the loop has read its sockets and flushed
 * what this turn queued (so a CreateOrder on the same loop waits one slice,
 * not the whole fan-out). The event is packed into an rpc_frame once, on
 * first use, kept beside its ring slot, and every subscriber's call sends
 * those bytes (rpc_call_send_frame).
 *
 * Memory per loop: the ring (orders_config.event_ring events), an inbox of
 * at most max(ring, INBOX_MIN) events (when a loop falls that far behind, its
 * oldest commits are dropped: its ring restarts at the first kept event and
 * its subscribers read the gap from the store), a scratch page, and per
 * subscriber its cursor and filter (ids). A commit's events are copied once
 * and shared by every loop's inbox (hub_batch).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "orders/hub_int.h"

static long default_read(void *arg, int64_t from, const char *order_id, store_event *out,
                         size_t limit)
{
    orders_loop *ol = arg;
    if (!ol->sl)
        return -(long)STORE_CLOSED;
    return store_read_events(ol->sl, from, order_id, out, limit);
}

static int64_t default_last(void *arg)
{
    orders_loop *ol = arg;
    return ol->o && ol->o->st ? store_last_seq(ol->o->st) : 0;
}

orders_hub *orders__hub_new(size_t ring)
{
    orders_hub *h = oms_calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ring = ring ? ring : DEFAULT_RING;
    if (h->ring < MIN_RING)
        h->ring = MIN_RING;
    if (uv_mutex_init(&h->lock) != 0) {
        oms_free(h);
        return NULL;
    }
    return h;
}

void orders__hub_free(orders_hub *h)
{
    if (!h)
        return;
    if (h->nloops)
        OMS_WARN("hub freed with %zu loops attached", h->nloops);
    uv_mutex_destroy(&h->lock);
    oms_free(h);
}

static void batch_unref(hub_batch *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        oms_free(b);
}

/* A copy of evs[0..n) with nlinks links. */
static hub_batch *batch_new(const store_event *evs, size_t n, size_t nlinks)
{
    hub_batch *b = oms_malloc(sizeof *b + n * sizeof *evs + nlinks * sizeof(hub_link));
    if (!b)
        return NULL;
    b->n = n;
    b->links = (hub_link *)(void *)(b->evs + n);
    memcpy(b->evs, evs, n * sizeof *evs);
    return b;
}

/* Puts link l (of a batch of n events) on hl's inbox, keeping at most
 * max(ring, INBOX_MIN) events: the oldest commits go to *dropped (the loop
 * notices the gap and its subscribers read it from the store). Pointers
 * only: hl->mu is held. */
static void inbox_push(orders_hub_loop *hl, hub_link *l, size_t n, hub_link **dropped)
{
    size_t max = hl->cap > INBOX_MIN ? hl->cap : INBOX_MIN;
    l->next = NULL;
    l->from = n > max ? n - max : 0;
    n -= l->from;
    while (hl->in_head && hl->nin + n > max) {
        hub_link *old = hl->in_head;
        hl->in_head = old->next;
        hl->nin -= old->b->n - old->from;
        old->next = *dropped;
        *dropped = old;
    }
    if (hl->in_head)
        hl->in_tail->next = l;
    else
        hl->in_head = l;
    hl->in_tail = l;
    hl->nin += n;
}

void orders__hub_publish(void *hub, const store_event *evs, size_t n)
{
    orders_hub *h = hub;
    if (!h || !n)
        return;
    /* The copy is made before the locks, with a link per loop attached now;
     * a loop attached in between makes us try again with more links. */
    uv_mutex_lock(&h->lock);
    size_t nl = h->nloops;
    uv_mutex_unlock(&h->lock);
    hub_batch *b = NULL;
    hub_link *dropped = NULL;
    for (;;) {
        b = nl ? batch_new(evs, n, nl) : NULL;
        uv_mutex_lock(&h->lock);
        if (h->nloops <= nl)
            break;
        nl = h->nloops;
        uv_mutex_unlock(&h->lock);
        oms_free(b);
    }
    if (evs[n - 1].seq > h->last_seq)
        h->last_seq = evs[n - 1].seq;
    if (b)
        atomic_init(&b->refs, h->nloops);
    else if (h->nloops)
        OMS_WARN("hub: out of memory handing %zu events to the loops; their subscribers read "
                 "them from the store",
                 n);
    for (size_t i = 0; i < h->nloops; i++) {
        orders_hub_loop *hl = h->loops[i];
        uv_mutex_lock(&hl->mu);
        if (b) {
            b->links[i].b = b;
            inbox_push(hl, &b->links[i], n, &dropped);
        } else {
            hl->lost = evs[n - 1].seq;
        }
        uv_mutex_unlock(&hl->mu);
        uv_async_send(&hl->async);
    }
    if (b && !h->nloops)
        oms_free(b);
    uv_mutex_unlock(&h->lock);
    while (dropped) { /* freed outside the locks */
        hub_link *l = dropped;
        dropped = l->next;
        batch_unref(l->b);
    }
}

static void on_async(uv_async_t *a);
static void on_idle(uv_idle_t *i);
static bool advance(orders_hub_loop *hl);

orders_hub_loop *orders__hub_loop_open(orders_hub *h, orders_loop *ol)
{
    orders_hub_loop *hl = oms_calloc(1, sizeof *hl);
    if (!hl)
        return NULL;
    hl->hub = h;
    hl->ol = ol;
    hl->src = (orders_hub_source){default_read, default_last, ol};
    hl->cap = h->ring;
    hl->ring = oms_malloc(hl->cap * sizeof *hl->ring);
    hl->frames = oms_calloc(hl->cap, sizeof *hl->frames);
    hl->page = oms_malloc(PAGE_MAX * sizeof *hl->page);
    if (!hl->ring || !hl->frames || !hl->page)
        goto fail_mem;
    if (uv_mutex_init(&hl->mu) != 0)
        goto fail_mem;
    list_init(&hl->subs);
    list_init(&hl->live_all);
    list_init(&hl->sched);
    list_init(&hl->zombies);
    if (uv_async_init(ol->loop, &hl->async, on_async) != 0)
        goto fail_async;
    hl->async.data = hl;
    uv_idle_init(ol->loop, &hl->idle);
    hl->idle.data = hl;
    hl->open_handles = 2;

    /* hi: the newest seq committed before we joined; every later one is
     * published into our inbox. Taking the store's last before the lock and
     * the hub's under it covers both orders of a concurrent publish (a seq
     * seen twice is dropped as a duplicate). */
    int64_t last = default_last(ol);
    uv_mutex_lock(&h->lock);
    if (h->nloops == ORDERS_MAX_LOOPS) {
        uv_mutex_unlock(&h->lock);
        OMS_ERROR("hub: more than %d loops", ORDERS_MAX_LOOPS);
        hl->closing = true;
        orders__hub_loop_close(hl);
        return NULL;
    }
    hl->hi = h->last_seq > last ? h->last_seq : last;
    hl->lo = hl->hi + 1;
    h->loops[h->nloops++] = hl;
    uv_mutex_unlock(&h->lock);
    return hl;

fail_async:
    uv_mutex_destroy(&hl->mu);
fail_mem:
    oms_free(hl->ring);
    oms_free(hl->frames);
    oms_free(hl->page);
    oms_free(hl);
    return NULL;
}

void orders__hub_loop_set_source(orders_hub_loop *hl, const orders_hub_source *src)
{
    hl->src = *src;
    int64_t last = src->last_seq ? src->last_seq(src->arg) : 0;
    if (list_empty(&hl->subs) && hl->lo > hl->hi && last > hl->hi)
        hl->lo = (hl->hi = last) + 1;
}

static void on_handle_closed(uv_handle_t *hd)
{
    orders_hub_loop *hl = hd->data;
    if (--hl->open_handles > 0)
        return;
    while (!list_empty(&hl->subs)) /* calls outliving the loop: should not happen */
        orders__sub_destroy(container_of(hl->subs.next, orders_sub, node));
    orders__table_dispose(&hl->by_order);
    orders__table_dispose(&hl->by_customer);
    oms_free(hl->groups); /* empty: every subscriber left */
    uv_mutex_destroy(&hl->mu);
    while (hl->pend) {
        hub_link *l = hl->pend;
        hl->pend = l->next;
        batch_unref(l->b);
    }
    while (hl->in_head) { /* detached from the hub: no publisher touches it */
        hub_link *l = hl->in_head;
        hl->in_head = l->next;
        batch_unref(l->b);
    }
    for (size_t i = 0; i < hl->cap; i++)
        rpc_frame_unref(hl->frames[i]);
    rpc_frame_unref(hl->tmpf);
    oms_free(hl->frames);
    oms_free(hl->ring);
    oms_free(hl->page);
    oms_free(hl);
}

void orders__hub_loop_close(orders_hub_loop *hl)
{
    if (!hl)
        return;
    orders_hub *h = hl->hub;
    uv_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nloops; i++)
        if (h->loops[i] == hl) {
            h->loops[i] = h->loops[--h->nloops];
            break;
        }
    uv_mutex_unlock(&h->lock);
    hl->closing = true;
    uv_close((uv_handle_t *)&hl->async, on_handle_closed);
    uv_close((uv_handle_t *)&hl->idle, on_handle_closed);
}

int64_t orders__hub_loop_last_seq(orders_hub_loop *hl)
{
    int64_t last = hl->src.last_seq ? hl->src.last_seq(hl->src.arg) : 0;
    uv_mutex_lock(&hl->hub->lock);
    int64_t pub = hl->hub->last_seq;
    uv_mutex_unlock(&hl->hub->lock);
    if (pub > last)
        last = pub;
    return hl->hi > last ? hl->hi : last;
}

bool orders__hub_loop_draining(const orders_hub_loop *hl)
{
    return hl->draining;
}

void orders__hub_loop_stats(const orders_hub_loop *hl, orders_hub_stats *out)
{
    *out = hl->st;
    out->lo = hl->lo;
    out->hi = hl->hi;
    out->subs = out->live = 0;
    for (const hlink *l = hl->subs.next; l != &hl->subs; l = l->next) {
        const orders_sub *s = container_of(l, orders_sub, node);
        out->subs++;
        out->live += s->state == SUB_LIVE;
    }
}

/* --- state dump and invariants --------------------------------------------------- */

static const char *state_name(int st)
{
    return st == SUB_LIVE ? "live" : st == SUB_CATCHING ? "catching up" : "over";
}

void orders__hub_loop_dump(orders_hub_loop *hl)
{
    size_t nsubs = 0, nsched = 0;
    for (const hlink *l = hl->subs.next; l != &hl->subs; l = l->next)
        nsubs++;
    for (const hlink *l = hl->sched.next; l != &hl->sched; l = l->next)
        nsched++;
    uv_mutex_lock(&hl->mu);
    size_t nin = hl->nin;
    uv_mutex_unlock(&hl->mu);
    char fan[96] = "no fan-out in progress";
    if (hl->fanning)
        snprintf(fan, sizeof fan, "fanning out %lld..%lld (%s, at %lld)", (long long)hl->fan_lo,
                 (long long)hl->fan_hi,
                 hl->fan_phase == FAN_ALL     ? "match-all"
                 : hl->fan_phase == FAN_ORDER ? "order ids"
                                              : "customers",
                 (long long)hl->fan_cur);
    OMS_INFO("state dump: hub loop %p: ring %lld..%lld (cap %zu), inbox %zu, %staken commits "
             "waiting, %s, %zu subscribers, %zu scheduled, idle %s; sent %llu, AGAIN %llu, store "
             "reads %llu, ring restarts %llu",
             (void *)hl, (long long)hl->lo, (long long)hl->hi, hl->cap, nin, hl->pend ? "" : "no ",
             fan, nsubs, nsched, uv_is_active((uv_handle_t *)&hl->idle) ? "running" : "stopped",
             (unsigned long long)hl->st.sent, (unsigned long long)hl->st.blocked,
             (unsigned long long)hl->st.store_reads, (unsigned long long)hl->st.gaps);
    for (const hlink *l = hl->subs.next; l != &hl->subs; l = l->next) {
        const orders_sub *s = container_of(l, orders_sub, node);
        char owner[640] = "", why[240];
        if (s->ops->describe && s->state != SUB_DEAD)
            s->ops->describe(s->arg, owner, sizeof owner);
        bool bad = orders__sub_check(s, why, sizeof why) != 0;
        int64_t pos = orders__sub_pos(s);
        OMS_INFO("state dump:   sub %p: %s%s, seq %lld (%lld behind the ring head), blocked %d, "
                 "scheduled %d, closing %d, filter %s; %s%s%s",
                 (const void *)s, s->started ? "" : "not started, ", state_name(s->state),
                 (long long)pos, (long long)(hl->hi - pos), s->blocked, s->in_sched, s->closing,
                 s->all    ? "all"
                 : s->cust ? "customer"
                           : "order ids",
                 owner, bad ? "; VIOLATION: " : "", bad ? why : "");
    }
}

size_t orders__hub_loop_check(const orders_hub_loop *hl, char *why, size_t n)
{
    size_t bad = 0;
    char tmp[240];
    for (const hlink *l = hl->subs.next; l != &hl->subs; l = l->next) {
        const orders_sub *s = container_of(l, orders_sub, node);
        if (orders__sub_check(s, bad ? tmp : why, bad ? sizeof tmp : n) != 0)
            bad++;
    }
    if (!bad && n)
        why[0] = 0;
    return bad;
}

#ifndef NDEBUG
void orders__hub_assert_ok(orders_hub_loop *hl, const orders_sub *s, const char *where)
{
    char why[240];
    if (s ? orders__sub_check(s, why, sizeof why) == 0
          : orders__hub_loop_check(hl, why, sizeof why) == 0)
        return;
    OMS_ERROR("hub invariant broken after %s: %s", where, why);
    orders__hub_loop_dump(hl);
    abort();
}
#endif

/* --- scheduling ------------------------------------------------------------------ */

void orders__hub_schedule(orders_sub *s)
{
    orders_hub_loop *hl = s->hl;
    if (s->in_sched || s->state != SUB_CATCHING || s->blocked || hl->closing)
        return;
    s->in_sched = true;
    list_push(&hl->sched, &s->sched);
    if (!uv_is_active((uv_handle_t *)&hl->idle))
        uv_idle_start(&hl->idle, on_idle);
}

void orders__hub_unschedule(orders_sub *s)
{
    if (s->in_sched) {
        list_del(&s->sched);
        s->in_sched = false;
    }
}

void orders__hub_reap(orders_hub_loop *hl)
{
    while (!list_empty(&hl->zombies)) {
        orders_sub *s = container_of(hl->zombies.next, orders_sub, sched);
        list_del(&s->sched);
        orders__sub_destroy(s);
    }
}

static void on_idle(uv_idle_t *i)
{
    orders_hub_loop *hl = i->data;
    hlink batch;
    list_init(&batch);
    if (!list_empty(&hl->sched)) { /* this turn's: pumps may schedule again */
        batch.next = hl->sched.next;
        batch.prev = hl->sched.prev;
        batch.next->prev = batch.prev->next = &batch;
        list_init(&hl->sched);
    }
    hl->depth++;
    size_t spent = 0;
    while (!list_empty(&batch) && spent < IDLE_BUDGET) {
        orders_sub *s = container_of(batch.next, orders_sub, sched);
        list_del(&s->sched);
        s->in_sched = false;
        spent += orders__sub_pump(s);
    }
    if (!list_empty(&batch)) { /* out of budget: the rest go first next turn */
        batch.prev->next = hl->sched.next;
        hl->sched.next->prev = batch.prev;
        hl->sched.next = batch.next;
        batch.next->prev = &hl->sched;
    }
    bool more = advance(hl);
    hl->depth--;
    orders__hub_reap(hl);
    if (list_empty(&hl->sched) && !more)
        uv_idle_stop(&hl->idle);
    HUB_ASSERT_OK(hl, NULL);
}

/* --- live fan-out ------------------------------------------------------------------- */

static rpc_frame *encode(const store_event *e)
{
    Oms__V1__OrderEvent m;
    orders__event_msg(e, &m);
    return rpc_frame_new(&m.base);
}

rpc_frame *orders__hub_frame(orders_hub_loop *hl, const store_event *e)
{
    if (e >= hl->ring && e < hl->ring + hl->cap) {
        rpc_frame **f = &hl->frames[e - hl->ring];
        if (!*f)
            *f = encode(e);
        return *f;
    }
    if (!hl->tmpf || hl->tmpf_seq != e->seq) {
        rpc_frame_unref(hl->tmpf);
        hl->tmpf = encode(e);
        hl->tmpf_seq = e->seq;
    }
    return hl->tmpf;
}

static void offer(orders_sub *s, const store_event *e)
{
    if (s->state != SUB_LIVE || e->seq <= s->pos)
        return;
    s->pos = e->seq;
    orders__sub_emit(s, e);
}

static void mark_insert(hlink *after, hlink *l)
{
    l->prev = after;
    l->next = after->next;
    after->next->prev = l;
    after->next = l;
}

/* Puts the member bookmark at the head of k's list (NULL: the phase has no
 * members). */
static void mem_mark_start(orders_hub_loop *hl, key_table *t, key_node *k)
{
    member *b = &hl->fan_mem;
    hl->fan_t = t;
    b->k = k;
    b->prev = NULL;
    b->next = k ? k->head : NULL;
    if (!k)
        return;
    if (k->head)
        k->head->prev = b;
    k->head = b;
}

static void mem_mark_unlink(orders_hub_loop *hl)
{
    member *b = &hl->fan_mem;
    if (!b->k)
        return;
    if (b->prev)
        b->prev->next = b->next;
    else
        b->k->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    orders__table_drop_if_empty(hl->fan_t, b->k);
    b->k = NULL;
}

/* The member after the bookmark, with the bookmark moved past it; NULL at
 * the end of the list. */
static member *mem_mark_next(orders_hub_loop *hl)
{
    member *b = &hl->fan_mem, *m = b->next;
    if (!m)
        return NULL;
    if (b->prev)
        b->prev->next = m;
    else
        b->k->head = m;
    m->prev = b->prev;
    b->next = m->next;
    if (m->next)
        m->next->prev = b;
    m->next = b;
    b->prev = m;
    return m;
}

static const store_event *ring_at(const orders_hub_loop *hl, int64_t seq)
{
    return &hl->ring[(size_t)seq % hl->cap];
}

/* Starts fanning the ring's events [lo, hi] out: live_all first. */
static void fan_start(orders_hub_loop *hl, int64_t lo)
{
    hl->fanning = true;
    hl->fan_lo = hl->fan_cur = lo;
    hl->fan_hi = hl->hi;
    hl->fan_phase = FAN_ALL;
    mark_insert(&hl->live_all, &hl->fan_mark);
}

/* The member walk of event fan_cur's order id (FAN_ORDER) or customer. */
static void fan_members(orders_hub_loop *hl, int phase)
{
    const store_event *e = ring_at(hl, hl->fan_cur);
    key_table *t = phase == FAN_ORDER ? &hl->by_order : &hl->by_customer;
    const char *id = phase == FAN_ORDER ? e->order_id : e->customer_id;
    hl->fan_phase = phase;
    mem_mark_start(hl, t, orders__table_find(t, id, orders__hash_id(id)));
}

/* Goes on fanning [fan_lo, fan_hi] out, spending about *budget offers; the
 * range is done (fanning false) unless the budget ran out. */
static void fan_step(orders_hub_loop *hl, size_t *budget)
{
    while (hl->fanning && *budget > 0) {
        if (hl->fan_phase == FAN_ALL) {
            hlink *l = hl->fan_mark.next;
            list_del(&hl->fan_mark);
            if (l == &hl->live_all) {
                fan_members(hl, FAN_ORDER);
                continue;
            }
            mark_insert(l, &hl->fan_mark); /* before the offers: l may leave the list */
            orders_sub *s = container_of(l, orders_sub, live);
            (*budget)--;
            for (int64_t q = hl->fan_lo; q <= hl->fan_hi && s->state == SUB_LIVE; q++) {
                offer(s, ring_at(hl, q));
                if (q > hl->fan_lo && *budget > 0)
                    (*budget)--;
            }
            continue;
        }
        member *m = mem_mark_next(hl);
        if (!m) {
            mem_mark_unlink(hl);
            if (hl->fan_phase == FAN_ORDER) {
                fan_members(hl, FAN_CUSTOMER);
            } else if (hl->fan_cur < hl->fan_hi) {
                hl->fan_cur++;
                fan_members(hl, FAN_ORDER);
            } else {
                hl->fanning = false; /* done: every LIVE subscriber has dealt with hi */
            }
            continue;
        }
        (*budget)--;
        const store_event *e = ring_at(hl, hl->fan_cur);
        if (hl->fan_phase == FAN_CUSTOMER || e->seq > m->floor)
            offer(m->s, e);
    }
}

/* The ring restarts at first (events were dropped before reaching us): LIVE
 * subscribers that had not got that far read the gap from the store. */
static void restart_ring(orders_hub_loop *hl, int64_t first)
{
    if (hl->st.gaps % 1000 == 0) /* once, then every 1000th: a stalled loop repeats it */
        OMS_WARN("hub: events %lld..%lld skipped this loop's ring (gap %llu); subscribers read "
                 "them from the store",
                 (long long)(hl->hi + 1), (long long)(first - 1),
                 (unsigned long long)hl->st.gaps + 1);
    else
        OMS_DEBUG("hub: events %lld..%lld skipped this loop's ring", (long long)(hl->hi + 1),
                  (long long)(first - 1));
    hl->st.gaps++;
    for (hlink *l = hl->subs.next; l != &hl->subs; l = l->next) {
        orders_sub *s = container_of(l, orders_sub, node);
        if (s->state != SUB_LIVE)
            continue;
        if (s->pos < hl->hi)
            s->pos = hl->hi;
        if (s->pos < first - 1) {
            orders__sub_set_catching(s);
            orders__hub_schedule(s);
        }
    }
    hl->lo = first;
    hl->hi = first - 1;
}

static void take(orders_hub_loop *hl, const store_event *e)
{
    if (e->seq <= hl->hi)
        return; /* seen already (see orders__hub_loop_open) */
    if (e->seq != hl->hi + 1)
        restart_ring(hl, e->seq);
    size_t i = (size_t)e->seq % hl->cap;
    store_event *slot = &hl->ring[i];
    *slot = *e;
    if (hl->frames[i]) { /* the frame of the event this one replaces */
        rpc_frame_unref(hl->frames[i]);
        hl->frames[i] = NULL;
    }
    hl->hi = e->seq;
    if (hl->hi - hl->lo + 1 > (int64_t)hl->cap)
        hl->lo = hl->hi - (int64_t)hl->cap + 1;
}

/* The next event taken from the inbox, NULL when none is left (used-up
 * commits are let go on the way). */
static const store_event *pend_peek(orders_hub_loop *hl)
{
    while (hl->pend) {
        hub_link *l = hl->pend;
        if (hl->pend_i < l->from)
            hl->pend_i = l->from;
        if (hl->pend_i < l->b->n)
            return &l->b->evs[hl->pend_i];
        hl->pend = l->next;
        hl->pend_i = 0;
        batch_unref(l->b);
    }
    return NULL;
}

/* Moves up to FAN_RANGE pending events (no more than the ring holds, and no
 * gap among them) into the ring and starts fanning them out. Returns false
 * when none is pending. */
static bool take_range(orders_hub_loop *hl)
{
    size_t max = hl->cap < FAN_RANGE ? hl->cap : FAN_RANGE, n = 0;
    int64_t first = 0;
    const store_event *e;
    while (n < max && (e = pend_peek(hl)) != NULL) {
        if (e->seq <= hl->hi) { /* seen already (see orders__hub_loop_open) */
            hl->pend_i++;
            continue;
        }
        if (n && e->seq != hl->hi + 1)
            break; /* a gap: the ring restarts, after this range */
        if (!n)
            first = e->seq;
        take(hl, e);
        hl->pend_i++;
        n++;
    }
    if (n)
        fan_start(hl, first);
    return n > 0;
}

/* Moves events through the ring to the LIVE subscribers, FANOUT_BUDGET
 * offers a turn: the events being fanned out, then the next range of those
 * taken from the inbox, then (once those are through) the inbox again. The inbox is
 * taken only when the commits before are through, so a loop that falls
 * behind leaves them there, where their number is bounded. Returns whether
 * work is left for the next turn. */
static bool advance(orders_hub_loop *hl)
{
    size_t budget = FANOUT_BUDGET;
    hl->now_ms = orders__wall_ms();
    for (;;) {
        fan_step(hl, &budget);
        if (hl->fanning)
            return true; /* out of budget */
        if (hl->pend || hl->pend_lost) {
            if (budget == 0)
                return true;
            if (take_range(hl))
                continue;
            if (hl->pend_lost > hl->hi) /* the newest events never came (no memory) */
                restart_ring(hl, hl->pend_lost + 1);
            hl->pend_lost = 0;
        }
        if (budget == 0)
            return true;
        uv_mutex_lock(&hl->mu);
        hl->pend = hl->in_head;
        hl->pend_lost = hl->lost;
        hl->in_head = hl->in_tail = NULL;
        hl->nin = 0;
        hl->lost = 0;
        uv_mutex_unlock(&hl->mu);
        hl->pend_i = 0;
        if (!hl->pend && !hl->pend_lost)
            return false;
    }
}

/* Runs advance() inside the hub (frees deferred) and keeps the idle handle
 * going while it has work left. */
static void run_advance(orders_hub_loop *hl)
{
    hl->depth++;
    bool more = advance(hl);
    hl->depth--;
    if (more && !hl->closing && !uv_is_active((uv_handle_t *)&hl->idle))
        uv_idle_start(&hl->idle, on_idle);
}

static void on_async(uv_async_t *a)
{
    orders_hub_loop *hl = a->data;
    run_advance(hl);
    orders__hub_reap(hl);
    HUB_ASSERT_OK(hl, NULL);
}

void orders__hub_loop_end_all(orders_hub_loop *hl, rpc_status code, const char *msg)
{
    hl->draining = true;
    hl->depth++;
    for (hlink *l = hl->subs.next; l != &hl->subs; l = l->next) {
        orders_sub *s = container_of(l, orders_sub, node);
        if (s->state == SUB_DEAD)
            continue;
        char why[200];
        snprintf(why, sizeof why, "%s; resume with since_seq=%lld", msg ? msg : "ended",
                 (long long)orders__sub_pos(s) + 1);
        orders__sub_end(s, code, why);
    }
    hl->depth--;
    orders__hub_reap(hl);
}
