/* hub.c - order events from the store writer to every loop, and the
 * subscribers that WatchOrders and TrackOrders are built on (hub.h).
 *
 * The writer thread publishes each commit's events: they are copied into
 * every attached loop's inbox (a mutex per loop, held for a memcpy) and the
 * loop is woken with uv_async_send. The loop moves them into its ring and
 * fans each one out to the LIVE subscribers it matches. A subscriber behind
 * the ring's tail reads the store instead; the ring is only a cache.
 *
 * Memory per loop: the ring (orders_config.event_ring events), an inbox of
 * at most as many (when a loop falls that far behind, its oldest inbox
 * events are dropped: its ring restarts at the first kept one and its
 * subscribers read the gap from the store), a scratch page, and per
 * subscriber its cursor and filter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "orders/hub.h"

#define DEFAULT_RING 65536
#define MIN_RING     4
#define INBOX_START  256
/* Events a subscriber examines per turn before it yields to the loop. */
#define PUMP_BUDGET 4096
/* Store page of an unfiltered (or customer) catch-up read. */
#define SCAN_PAGE 256
/* Subscribers with up to MERGE_IDS order ids (and nothing else) catch up with
 * one indexed read per id, PER_ID events each, merged in seq order. */
#define MERGE_IDS 8
#define PER_ID    64
#define PAGE_MAX  (MERGE_IDS * PER_ID > SCAN_PAGE ? MERGE_IDS * PER_ID : SCAN_PAGE)

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

typedef struct hlink {
    struct hlink *prev, *next;
} hlink;

static void list_init(hlink *h)
{
    h->prev = h->next = h;
}

static bool list_empty(const hlink *h)
{
    return h->next == h;
}

static void list_push(hlink *h, hlink *l)
{
    l->prev = h->prev;
    l->next = h;
    h->prev->next = l;
    h->prev = l;
}

static void list_del(hlink *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

/* --- id index: order id or customer id -> its subscribers ------------------- */

typedef struct member member;

typedef struct key_node {
    struct key_node *next; /* bucket chain */
    member *head;          /* members for this id */
    uint32_t hash;
    char id[STORE_ID_MAX + 1];
} key_node;

typedef struct key_table {
    key_node **b;
    size_t nb, n;
} key_table;

/* One (subscriber, id) pair. */
struct member {
    orders_sub *s;
    key_node *k;
    member *prev, *next; /* in k's list */
    int64_t floor;       /* events of this id with seq <= floor are not for s */
};

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static key_node *table_find(const key_table *t, const char *id, uint32_t h)
{
    if (!t->nb)
        return NULL;
    for (key_node *k = t->b[h & (t->nb - 1)]; k; k = k->next)
        if (k->hash == h && strcmp(k->id, id) == 0)
            return k;
    return NULL;
}

static int table_grow(key_table *t)
{
    size_t nb = t->nb ? t->nb * 2 : 64;
    key_node **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < t->nb; i++)
        for (key_node *k = t->b[i], *nx; k; k = nx) {
            nx = k->next;
            k->next = b[k->hash & (nb - 1)];
            b[k->hash & (nb - 1)] = k;
        }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

static key_node *table_get(key_table *t, const char *id, uint32_t h)
{
    key_node *k = table_find(t, id, h);
    if (k)
        return k;
    if (t->n >= t->nb && table_grow(t) != 0)
        return NULL;
    k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->hash = h;
    snprintf(k->id, sizeof k->id, "%s", id);
    k->next = t->b[h & (t->nb - 1)];
    t->b[h & (t->nb - 1)] = k;
    t->n++;
    return k;
}

static void table_drop_if_empty(key_table *t, key_node *k)
{
    if (k->head)
        return;
    key_node **pp = &t->b[k->hash & (t->nb - 1)];
    while (*pp != k)
        pp = &(*pp)->next;
    *pp = k->next;
    t->n--;
    free(k);
}

static void table_dispose(key_table *t)
{
    for (size_t i = 0; i < t->nb; i++)
        for (key_node *k = t->b[i], *nx; k; k = nx) {
            nx = k->next;
            free(k);
        }
    free(t->b);
    *t = (key_table){0};
}

/* --- hub and loops ------------------------------------------------------------- */

struct orders_hub {
    size_t ring;
    uv_mutex_t lock;  /* guards loops[], nloops, last_seq */
    int64_t last_seq; /* newest seq published */
    orders_hub_loop *loops[ORDERS_MAX_LOOPS];
    size_t nloops;
};

enum { SUB_LIVE, SUB_CATCHING, SUB_DEAD };

struct orders_sub {
    orders_hub_loop *hl;
    const orders_sub_ops *ops;
    void *arg;
    int state;
    bool started, all, blocked, closing, freed;
    int64_t pos;      /* every event with seq <= pos was dealt with */
    int64_t close_at; /* closing: end OK once pos reaches it */
    member *cust;     /* the customer filter, or NULL */
    member **mem;     /* order id members */
    size_t nmem, memcap;
    uint32_t *slot; /* open addressing over mem: index + 1, 0 empty */
    size_t nslot;
    hlink node;  /* in hl->subs */
    hlink live;  /* in hl->live_all while LIVE and matching every order */
    hlink sched; /* in hl->sched (to pump) or hl->zombies (to free) */
    bool in_sched;
};

struct orders_hub_loop {
    orders_hub *hub;
    orders_loop *ol;
    orders_hub_source src;
    uv_async_t async;
    uv_idle_t idle;
    int open_handles;

    uv_mutex_t mu; /* guards the inbox */
    store_event *in;
    size_t nin, incap;

    /* loop thread only */
    store_event *spare; /* the inbox being drained (swapped with in) */
    size_t sparecap;
    store_event *ring;
    size_t cap;
    int64_t lo, hi;
    store_event *page; /* catch-up scratch, PAGE_MAX events */
    key_table by_order, by_customer;
    hlink subs, live_all, sched, zombies;
    int depth; /* > 0 while the hub iterates: frees are deferred */
    bool draining, closing;
    orders_hub_stats st;
};

static long default_read(void *arg, int64_t from, const char *order_id, store_event *out,
                         size_t limit)
{
    orders_loop *ol = arg;
    if (!ol->sl)
        return -1;
    return store_read_events(ol->sl, from, order_id, out, limit);
}

static int64_t default_last(void *arg)
{
    orders_loop *ol = arg;
    return ol->o && ol->o->st ? store_last_seq(ol->o->st) : 0;
}

orders_hub *orders__hub_new(size_t ring)
{
    orders_hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ring = ring ? ring : DEFAULT_RING;
    if (h->ring < MIN_RING)
        h->ring = MIN_RING;
    if (uv_mutex_init(&h->lock) != 0) {
        free(h);
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
    free(h);
}

/* Appends evs to hl's inbox, keeping at most one ring's worth (the oldest
 * go: the loop notices the gap and its subscribers read it from the store). */
static void inbox_append(orders_hub_loop *hl, const store_event *evs, size_t n)
{
    size_t max = hl->cap;
    if (n >= max) {
        evs += n - max;
        n = max;
        hl->nin = 0;
    }
    if (hl->nin + n > hl->incap && hl->incap < max) {
        size_t nc = hl->incap ? hl->incap : INBOX_START;
        while (nc < hl->nin + n && nc < max)
            nc *= 2;
        if (nc > max)
            nc = max;
        store_event *p = realloc(hl->in, nc * sizeof *p);
        if (p) {
            hl->in = p;
            hl->incap = nc;
        }
    }
    if (hl->nin + n > hl->incap) { /* full (or no memory): drop the oldest */
        size_t drop = hl->nin + n - hl->incap;
        if (drop >= hl->nin) {
            evs += drop - hl->nin;
            n -= drop - hl->nin;
            hl->nin = 0;
        } else {
            memmove(hl->in, hl->in + drop, (hl->nin - drop) * sizeof *hl->in);
            hl->nin -= drop;
        }
    }
    if (n) {
        memcpy(hl->in + hl->nin, evs, n * sizeof *evs);
        hl->nin += n;
    }
}

void orders__hub_publish(void *hub, const store_event *evs, size_t n)
{
    orders_hub *h = hub;
    if (!h || !n)
        return;
    uv_mutex_lock(&h->lock);
    if (evs[n - 1].seq > h->last_seq)
        h->last_seq = evs[n - 1].seq;
    for (size_t i = 0; i < h->nloops; i++) {
        orders_hub_loop *hl = h->loops[i];
        uv_mutex_lock(&hl->mu);
        inbox_append(hl, evs, n);
        uv_mutex_unlock(&hl->mu);
        uv_async_send(&hl->async);
    }
    uv_mutex_unlock(&h->lock);
}

static void on_async(uv_async_t *a);
static void on_idle(uv_idle_t *i);

orders_hub_loop *orders__hub_loop_open(orders_hub *h, orders_loop *ol)
{
    orders_hub_loop *hl = calloc(1, sizeof *hl);
    if (!hl)
        return NULL;
    hl->hub = h;
    hl->ol = ol;
    hl->src = (orders_hub_source){default_read, default_last, ol};
    hl->cap = h->ring;
    hl->ring = malloc(hl->cap * sizeof *hl->ring);
    hl->page = malloc(PAGE_MAX * sizeof *hl->page);
    if (!hl->ring || !hl->page)
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
    free(hl->ring);
    free(hl->page);
    free(hl);
    return NULL;
}

void orders__hub_loop_set_source(orders_hub_loop *hl, const orders_hub_source *src)
{
    hl->src = *src;
    int64_t last = src->last_seq ? src->last_seq(src->arg) : 0;
    if (list_empty(&hl->subs) && hl->lo > hl->hi && last > hl->hi)
        hl->lo = (hl->hi = last) + 1;
}

static void sub_destroy(orders_sub *s);

static void on_handle_closed(uv_handle_t *hd)
{
    orders_hub_loop *hl = hd->data;
    if (--hl->open_handles > 0)
        return;
    while (!list_empty(&hl->subs)) /* calls outliving the loop: should not happen */
        sub_destroy(container_of(hl->subs.next, orders_sub, node));
    table_dispose(&hl->by_order);
    table_dispose(&hl->by_customer);
    uv_mutex_destroy(&hl->mu);
    free(hl->in);
    free(hl->spare);
    free(hl->ring);
    free(hl->page);
    free(hl);
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

/* --- subscriber state ------------------------------------------------------------ */

static void schedule(orders_sub *s)
{
    orders_hub_loop *hl = s->hl;
    if (s->in_sched || s->state != SUB_CATCHING || s->blocked || hl->closing)
        return;
    s->in_sched = true;
    list_push(&hl->sched, &s->sched);
    if (!uv_is_active((uv_handle_t *)&hl->idle))
        uv_idle_start(&hl->idle, on_idle);
}

static void unschedule(orders_sub *s)
{
    if (s->in_sched) {
        list_del(&s->sched);
        s->in_sched = false;
    }
}

static void set_catching(orders_sub *s)
{
    if (s->state == SUB_LIVE)
        list_del(&s->live); /* a no-op unless it is in live_all */
    s->state = SUB_CATCHING;
}

static void end_sub(orders_sub *s, rpc_status code, const char *msg)
{
    if (s->state == SUB_DEAD)
        return;
    list_del(&s->live);
    unschedule(s);
    s->state = SUB_DEAD;
    s->ops->end(s->arg, code, msg);
}

/* The owner's send failed: the call is over, on_cancel/on_free follow. */
static void kill_sub(orders_sub *s)
{
    list_del(&s->live);
    unschedule(s);
    s->state = SUB_DEAD;
}

static void go_live(orders_sub *s)
{
    s->state = SUB_LIVE;
    if (s->all)
        list_push(&s->hl->live_all, &s->live);
    if (s->closing)
        end_sub(s, RPC_OK, NULL);
}

/* Hands e to s; pos must already cover e. */
static void emit(orders_sub *s, const store_event *e)
{
    s->hl->st.sent++;
    int rc = s->ops->send(s->arg, e);
    if (rc == RPC_AGAIN) {
        s->blocked = true;
        set_catching(s);
    } else if (rc < 0) {
        kill_sub(s);
    }
}

static member *find_member(const orders_sub *s, const char *id, uint32_t h)
{
    if (!s->nslot)
        return NULL;
    for (size_t i = h & (s->nslot - 1);; i = (i + 1) & (s->nslot - 1)) {
        uint32_t x = s->slot[i];
        if (!x)
            return NULL;
        member *m = s->mem[x - 1];
        if (m->k->hash == h && strcmp(m->k->id, id) == 0)
            return m;
    }
}

static bool matches(const orders_sub *s, const store_event *e)
{
    if (s->all)
        return true;
    if (s->cust && strcmp(s->cust->k->id, e->customer_id) == 0)
        return true;
    if (!s->nmem)
        return false;
    member *m = find_member(s, e->order_id, hash_id(e->order_id));
    return m && e->seq > m->floor;
}

/* --- catching up ------------------------------------------------------------------ */

static int cmp_seq(const void *a, const void *b)
{
    int64_t x = ((const store_event *)a)->seq, y = ((const store_event *)b)->seq;
    return (x > y) - (x < y);
}

/* Reads s's next events (seq > pos) from the store into hl->page. *upto: once
 * the page's events up to it are handled, s has dealt with every event up to
 * it. Events beyond *upto are left out of the count. Returns the count, or -1
 * on a store error. */
static long read_page(orders_sub *s, int64_t *upto, size_t *cost)
{
    orders_hub_loop *hl = s->hl;
    int64_t from = s->pos + 1, last = s->pos;
    if (s->all || s->cust || s->nmem > MERGE_IDS) {
        long n = hl->src.read_events(hl->src.arg, from, NULL, hl->page, SCAN_PAGE);
        hl->st.store_reads++;
        if (n < 0)
            return -1;
        *cost += (size_t)n + 1;
        if (n > 0)
            last = hl->page[n - 1].seq;
        /* A short page: the store had nothing more, and it has everything the
         * ring has (an event is published only after its commit). */
        *upto = n == SCAN_PAGE ? last : (last > hl->hi ? last : hl->hi);
        return n;
    }
    int64_t horizon = INT64_MAX;
    size_t total = 0;
    for (size_t i = 0; i < s->nmem; i++) {
        const member *m = s->mem[i];
        int64_t f = m->floor + 1 > from ? m->floor + 1 : from;
        long n = hl->src.read_events(hl->src.arg, f, m->k->id, hl->page + total, PER_ID);
        hl->st.store_reads++;
        if (n < 0)
            return -1;
        *cost += (size_t)n + 1;
        if (n == PER_ID && hl->page[total + (size_t)n - 1].seq < horizon)
            horizon = hl->page[total + (size_t)n - 1].seq;
        total += (size_t)n;
    }
    qsort(hl->page, total, sizeof *hl->page, cmp_seq);
    if (horizon == INT64_MAX) {
        horizon = total ? hl->page[total - 1].seq : last;
        if (hl->hi > horizon)
            horizon = hl->hi;
    }
    while (total && hl->page[total - 1].seq > horizon)
        total--;
    *upto = horizon;
    return (long)total;
}

/* Brings s forward until it is LIVE, blocked, ended or out of budget (then it
 * is scheduled to go on from the idle handle). */
static void pump(orders_sub *s)
{
    orders_hub_loop *hl = s->hl;
    size_t cost = 0;
    while (s->state == SUB_CATCHING && !s->blocked) {
        if (s->closing && s->pos >= s->close_at) {
            end_sub(s, RPC_OK, NULL);
            return;
        }
        if (s->pos >= hl->hi) {
            go_live(s);
            return;
        }
        if (cost >= PUMP_BUDGET) {
            schedule(s);
            return;
        }
        if (!s->all && !s->cust && !s->nmem) { /* nothing can match */
            s->pos = hl->hi;
            continue;
        }
        if (s->pos + 1 >= hl->lo) {
            const store_event *e = &hl->ring[(size_t)(s->pos + 1) % hl->cap];
            cost++;
            s->pos = e->seq;
            if (matches(s, e))
                emit(s, e);
            continue;
        }
        int64_t upto;
        long n = read_page(s, &upto, &cost);
        if (n < 0) {
            OMS_ERROR("hub: reading events from seq %lld failed", (long long)(s->pos + 1));
            end_sub(s, RPC_INTERNAL, "reading order events from the store failed");
            return;
        }
        for (long i = 0; i < n && s->state != SUB_DEAD && !s->blocked; i++) {
            const store_event *e = &hl->page[i];
            if (e->seq <= s->pos)
                continue;
            s->pos = e->seq;
            if (matches(s, e))
                emit(s, e);
        }
        if (s->state != SUB_DEAD && !s->blocked && upto > s->pos)
            s->pos = upto;
    }
}

static void reap(orders_hub_loop *hl)
{
    while (!list_empty(&hl->zombies)) {
        orders_sub *s = container_of(hl->zombies.next, orders_sub, sched);
        list_del(&s->sched);
        sub_destroy(s);
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
    while (!list_empty(&batch)) {
        orders_sub *s = container_of(batch.next, orders_sub, sched);
        list_del(&s->sched);
        s->in_sched = false;
        pump(s);
    }
    hl->depth--;
    reap(hl);
    if (list_empty(&hl->sched))
        uv_idle_stop(&hl->idle);
}

/* --- live fan-out ------------------------------------------------------------------- */

static void offer(orders_sub *s, const store_event *e)
{
    if (s->state != SUB_LIVE || e->seq <= s->pos)
        return;
    s->pos = e->seq;
    emit(s, e);
}

static void fan_out(orders_hub_loop *hl, const store_event *e)
{
    for (hlink *l = hl->live_all.next, *nx; l != &hl->live_all; l = nx) {
        nx = l->next;
        offer(container_of(l, orders_sub, live), e);
    }
    key_node *k = table_find(&hl->by_order, e->order_id, hash_id(e->order_id));
    for (member *m = k ? k->head : NULL; m; m = m->next)
        if (e->seq > m->floor)
            offer(m->s, e);
    k = table_find(&hl->by_customer, e->customer_id, hash_id(e->customer_id));
    for (member *m = k ? k->head : NULL; m; m = m->next)
        offer(m->s, e);
}

/* The ring restarts at first (events were dropped before reaching us): LIVE
 * subscribers that had not got that far read the gap from the store. */
static void restart_ring(orders_hub_loop *hl, int64_t first)
{
    OMS_WARN("hub: events %lld..%lld skipped this loop's ring; subscribers read them from the "
             "store",
             (long long)(hl->hi + 1), (long long)(first - 1));
    hl->st.gaps++;
    for (hlink *l = hl->subs.next; l != &hl->subs; l = l->next) {
        orders_sub *s = container_of(l, orders_sub, node);
        if (s->state != SUB_LIVE)
            continue;
        if (s->pos < hl->hi)
            s->pos = hl->hi;
        if (s->pos < first - 1) {
            set_catching(s);
            schedule(s);
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
    store_event *slot = &hl->ring[(size_t)e->seq % hl->cap];
    *slot = *e;
    hl->hi = e->seq;
    if (hl->hi - hl->lo + 1 > (int64_t)hl->cap)
        hl->lo = hl->hi - (int64_t)hl->cap + 1;
    fan_out(hl, slot);
}

static void on_async(uv_async_t *a)
{
    orders_hub_loop *hl = a->data;
    uv_mutex_lock(&hl->mu);
    store_event *evs = hl->in;
    size_t n = hl->nin, cap = hl->incap;
    hl->in = hl->spare;
    hl->incap = hl->sparecap;
    hl->nin = 0;
    uv_mutex_unlock(&hl->mu);
    hl->depth++;
    for (size_t i = 0; i < n; i++)
        take(hl, &evs[i]);
    hl->depth--;
    reap(hl);
    hl->spare = evs;
    hl->sparecap = cap;
}

/* --- subscribers --------------------------------------------------------------------- */

orders_sub *orders__sub_new(orders_hub_loop *hl, const orders_sub_ops *ops, void *arg)
{
    orders_sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->hl = hl;
    s->ops = ops;
    s->arg = arg;
    s->state = SUB_CATCHING; /* not started: in no list, never pumped */
    list_init(&s->live);
    list_init(&s->sched);
    list_push(&hl->subs, &s->node);
    return s;
}

static void unlink_member(key_table *t, member *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        m->k->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    table_drop_if_empty(t, m->k);
    free(m);
}

static member *link_member(key_table *t, orders_sub *s, const char *id, int64_t floor)
{
    uint32_t h = hash_id(id);
    member *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    key_node *k = table_get(t, id, h);
    if (!k) {
        free(m);
        return NULL;
    }
    m->s = s;
    m->k = k;
    m->floor = floor;
    m->next = k->head;
    if (k->head)
        k->head->prev = m;
    k->head = m;
    return m;
}

static void rebuild_slots(orders_sub *s)
{
    memset(s->slot, 0, s->nslot * sizeof *s->slot);
    for (size_t j = 0; j < s->nmem; j++) {
        size_t i = s->mem[j]->k->hash & (s->nslot - 1);
        while (s->slot[i])
            i = (i + 1) & (s->nslot - 1);
        s->slot[i] = (uint32_t)(j + 1);
    }
}

/* Room for n more order ids in s's set (the load stays under one half). */
static int reserve_ids(orders_sub *s, size_t n)
{
    size_t want = s->nmem + n;
    if (want > s->memcap) {
        size_t nc = s->memcap ? s->memcap : 4;
        while (nc < want)
            nc *= 2;
        member **p = realloc(s->mem, nc * sizeof *p);
        if (!p)
            return -1;
        s->mem = p;
        s->memcap = nc;
    }
    if (want * 2 > s->nslot) {
        size_t ns = s->nslot ? s->nslot : 8;
        while (want * 2 > ns)
            ns *= 2;
        uint32_t *p = calloc(ns, sizeof *p);
        if (!p)
            return -1;
        free(s->slot);
        s->slot = p;
        s->nslot = ns;
        rebuild_slots(s);
    }
    return 0;
}

/* Adds ids s does not have yet with floor. Returns 0 or -1 (ENOMEM; the ids
 * added so far stay). */
static int add_ids(orders_sub *s, const char *const *ids, size_t n, int64_t floor)
{
    if (reserve_ids(s, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t h = hash_id(ids[i]);
        if (find_member(s, ids[i], h))
            continue;
        member *m = link_member(&s->hl->by_order, s, ids[i], floor);
        if (!m)
            return -1;
        s->mem[s->nmem++] = m;
        size_t j = h & (s->nslot - 1);
        while (s->slot[j])
            j = (j + 1) & (s->nslot - 1);
        s->slot[j] = (uint32_t)s->nmem;
    }
    return 0;
}

int orders__sub_watch(orders_sub *s, const char *customer_id, const char *const *ids, size_t n)
{
    if (customer_id && *customer_id) {
        s->cust = link_member(&s->hl->by_customer, s, customer_id, 0);
        if (!s->cust)
            return -1;
    }
    if (add_ids(s, ids, n, 0) != 0)
        return -1;
    s->all = !s->cust && !s->nmem;
    return 0;
}

/* The newest seq this loop's thread can know of. */
static int64_t newest(orders_hub_loop *hl)
{
    return orders__hub_loop_last_seq(hl);
}

void orders__sub_start(orders_sub *s, int64_t since_seq)
{
    orders_hub_loop *hl = s->hl;
    if (s->started || s->state == SUB_DEAD)
        return;
    s->started = true;
    /* "From now on": everything committed before this call is dealt with. An
     * event above hi but already counted by the store is in flight to our
     * inbox; LIVE skips it (seq <= pos). */
    s->pos = since_seq > 0 ? since_seq - 1 : newest(hl);
    if (s->pos >= hl->hi) {
        go_live(s);
        return;
    }
    hl->depth++;
    pump(s);
    hl->depth--;
    reap(hl);
}

size_t orders__sub_nids(const orders_sub *s)
{
    return s->nmem;
}

size_t orders__sub_count_new(const orders_sub *s, const char *const *ids, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = find_member(s, ids[i], hash_id(ids[i])) != NULL;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(ids[i], ids[j]) == 0;
        k += !dup;
    }
    return k;
}

int orders__sub_track(orders_sub *s, const char *const *ids, size_t n, int64_t since_seq)
{
    orders_hub_loop *hl = s->hl;
    if (s->state == SUB_DEAD)
        return 0;
    /* What s has dealt with: a LIVE one everything up to hi. */
    int64_t eff = s->state == SUB_LIVE && hl->hi > s->pos ? hl->hi : s->pos;
    int64_t floor = since_seq > 0 ? since_seq - 1 : newest(hl);
    size_t before = s->nmem;
    if (add_ids(s, ids, n, floor) != 0) {
        while (s->nmem > before) { /* undo */
            member *m = s->mem[--s->nmem];
            unlink_member(&hl->by_order, m);
        }
        if (s->nslot)
            rebuild_slots(s);
        return -1;
    }
    if (floor >= eff || s->nmem == before)
        return 0;
    /* Rewind: the new ids need (floor, eff] replayed. The ids s had have all
     * of that already, so they skip it. */
    for (size_t i = 0; i < before; i++)
        if (s->mem[i]->floor < eff)
            s->mem[i]->floor = eff;
    set_catching(s);
    s->pos = floor;
    if (!s->blocked) {
        hl->depth++;
        pump(s);
        hl->depth--;
        reap(hl);
    }
    return 0;
}

void orders__sub_untrack(orders_sub *s, const char *const *ids, size_t n)
{
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        member *m = find_member(s, ids[i], hash_id(ids[i]));
        if (!m)
            continue;
        for (size_t j = 0; j < s->nmem; j++)
            if (s->mem[j] == m) {
                s->mem[j] = s->mem[--s->nmem];
                break;
            }
        unlink_member(&s->hl->by_order, m);
        changed = true;
    }
    if (changed)
        rebuild_slots(s);
}

void orders__sub_close_after(orders_sub *s)
{
    if (s->state == SUB_DEAD)
        return;
    s->closing = true;
    s->close_at = s->hl->hi;
    if (s->state == SUB_LIVE || s->pos >= s->close_at)
        end_sub(s, RPC_OK, NULL);
}

void orders__sub_ready(orders_sub *s)
{
    if (!s || !s->blocked)
        return;
    s->blocked = false;
    if (s->state != SUB_CATCHING)
        return;
    orders_hub_loop *hl = s->hl;
    hl->depth++;
    pump(s);
    hl->depth--;
    reap(hl);
}

int64_t orders__sub_pos(const orders_sub *s)
{
    if (s->state == SUB_LIVE && s->hl->hi > s->pos)
        return s->hl->hi;
    return s->pos;
}

static void sub_destroy(orders_sub *s)
{
    orders_hub_loop *hl = s->hl;
    list_del(&s->live);
    list_del(&s->node);
    unschedule(s);
    for (size_t i = 0; i < s->nmem; i++)
        unlink_member(&hl->by_order, s->mem[i]);
    if (s->cust)
        unlink_member(&hl->by_customer, s->cust);
    free(s->mem);
    free(s->slot);
    free(s);
}

void orders__sub_free(orders_sub *s)
{
    if (!s || s->freed)
        return;
    orders_hub_loop *hl = s->hl;
    if (hl->depth == 0) {
        sub_destroy(s);
        return;
    }
    /* The hub is walking lists s is on: unlink it later. */
    s->freed = true;
    kill_sub(s);
    list_push(&hl->zombies, &s->sched);
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
        end_sub(s, code, why);
    }
    hl->depth--;
    reap(hl);
}
