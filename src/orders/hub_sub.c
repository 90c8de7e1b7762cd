/* hub_sub.c - the hub's subscribers (hub.h): filters indexed by order id
 * and customer id, the cursor, and the catch-up from the ring or the store.
 *
 * A subscriber's pos is the last seq it has dealt with. LIVE, it gets each
 * matching event as the loop takes it in (hub.c's fan-out); a send that
 * returns RPC_AGAIN makes it CATCHING with pos = that event's seq. CATCHING,
 * it is pumped (on ready, or from the idle handle when out of budget): from
 * the ring while pos + 1 >= lo, else from the store a page at a time, until
 * pos reaches hi. A TrackOrders subscribe with since_seq rewinds the cursor;
 * each order id's floor keeps the ids it already had from getting an event
 * twice.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "orders/hub_int.h"

/* --- id index ----------------------------------------------------------------------- */

uint32_t orders__hash_id(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

key_node *orders__table_find(const key_table *t, const char *id, uint32_t h)
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
    key_node **b = oms_calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < t->nb; i++)
        for (key_node *k = t->b[i], *nx; k; k = nx) {
            nx = k->next;
            k->next = b[k->hash & (nb - 1)];
            b[k->hash & (nb - 1)] = k;
        }
    oms_free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

static key_node *table_get(key_table *t, const char *id, uint32_t h)
{
    key_node *k = orders__table_find(t, id, h);
    if (k)
        return k;
    if (t->n >= t->nb && table_grow(t) != 0)
        return NULL;
    k = oms_calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->hash = h;
    snprintf(k->id, sizeof k->id, "%s", id);
    k->next = t->b[h & (t->nb - 1)];
    t->b[h & (t->nb - 1)] = k;
    t->n++;
    return k;
}

void orders__table_drop_if_empty(key_table *t, key_node *k)
{
    if (k->head)
        return;
    key_node **pp = &t->b[k->hash & (t->nb - 1)];
    while (*pp != k)
        pp = &(*pp)->next;
    *pp = k->next;
    t->n--;
    oms_free(k);
}

void orders__table_dispose(key_table *t)
{
    for (size_t i = 0; i < t->nb; i++)
        for (key_node *k = t->b[i], *nx; k; k = nx) {
            nx = k->next;
            oms_free(k);
        }
    oms_free(t->b);
    *t = (key_table){0};
}

/* --- live_all, grouped by connection -------------------------------------------- */

static void live_join(orders_sub *s)
{
    orders_hub_loop *hl = s->hl;
    const char *key = s->ops->group ? s->ops->group(s->arg) : NULL;
    if (key && !hl->groups)
        hl->groups = oms_calloc(GROUP_BUCKETS, sizeof *hl->groups);
    if (!key || !hl->groups) {
        list_push(&hl->live_all, &s->live);
        return;
    }
    char k[sizeof((live_group *)0)->key];
    snprintf(k, sizeof k, "%s", key);
    uint32_t h = orders__hash_id(k);
    live_group **pp = &hl->groups[h % GROUP_BUCKETS], *g = *pp;
    while (g && (g->hash != h || strcmp(g->key, k) != 0))
        g = g->next;
    if (!g && (g = oms_calloc(1, sizeof *g)) != NULL) {
        g->hash = h;
        memcpy(g->key, k, sizeof k);
        g->next = *pp;
        *pp = g;
    }
    if (!g) { /* no memory: ungrouped */
        list_push(&hl->live_all, &s->live);
        return;
    }
    if (g->n) { /* right after the group's last one */
        hlink *t = g->tail;
        s->live.prev = t;
        s->live.next = t->next;
        t->next->prev = &s->live;
        t->next = &s->live;
    } else {
        list_push(&hl->live_all, &s->live);
    }
    g->tail = &s->live;
    g->n++;
    s->group = g;
}

void orders__sub_live_leave(orders_sub *s)
{
    live_group *g = s->group;
    if (g) {
        orders_hub_loop *hl = s->hl;
        s->group = NULL;
        if (--g->n == 0) {
            live_group **pp = &hl->groups[g->hash % GROUP_BUCKETS];
            while (*pp != g)
                pp = &(*pp)->next;
            *pp = g->next;
            oms_free(g);
        } else if (g->tail == &s->live) {
            /* The group stands together (the fan-out bookmark aside). */
            hlink *p = s->live.prev;
            if (p == &hl->fan_mark)
                p = p->prev;
            g->tail = p;
        }
    }
    list_del(&s->live);
}

/* --- subscriber state ------------------------------------------------------------ */

void orders__sub_set_catching(orders_sub *s)
{
    if (s->state == SUB_LIVE)
        orders__sub_live_leave(s); /* a no-op unless it is in live_all */
    s->state = SUB_CATCHING;
}

void orders__sub_end(orders_sub *s, rpc_status code, const char *msg)
{
    if (s->state == SUB_DEAD)
        return;
    orders__sub_live_leave(s);
    orders__hub_unschedule(s);
    s->state = SUB_DEAD;
    s->ops->end(s->arg, code, msg);
}

/* The owner's send failed: the call is over, on_cancel/on_free follow. */
static void kill_sub(orders_sub *s)
{
    orders__sub_live_leave(s);
    orders__hub_unschedule(s);
    s->state = SUB_DEAD;
}

static void go_live(orders_sub *s)
{
    OMS_DEBUG("hub: subscriber %p live at pos %lld (ring %lld..%lld)", (void *)s, (long long)s->pos,
              (long long)s->hl->lo, (long long)s->hl->hi);
    s->state = SUB_LIVE;
    if (s->all)
        live_join(s);
    if (s->closing)
        orders__sub_end(s, RPC_OK, NULL);
}

const uint64_t orders_lag_bounds_ms[ORDERS_LAG_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 60000};

int64_t orders__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Counts e's delivery lag (loop thread only: no lock, plain adds), against
 * the clock read when this fan-out slice or pump began (hl->now_ms): a
 * slice lasts about a millisecond, the histogram's finest bucket. */
static void observe_lag(orders_hub_loop *hl, const store_event *e)
{
    orders_hub_stats *st = &hl->st;
    int64_t now = hl->now_ms;
    uint64_t lag = now > e->at ? (uint64_t)(now - e->at) : 0;
    size_t b = 0;
    while (b < ORDERS_LAG_BUCKETS && lag > orders_lag_bounds_ms[b])
        b++;
    if (b < ORDERS_LAG_BUCKETS)
        st->lag_hist[b]++;
    st->lag_count++;
    st->lag_sum_ms += lag;
}

/* Hands e to s; pos must already cover e. */
void orders__sub_emit(orders_sub *s, const store_event *e)
{
    s->hl->st.sent++;
    observe_lag(s->hl, e);
    int rc = s->ops->send(s->arg, e);
    if (rc == RPC_AGAIN) {
        OMS_DEBUG("hub: subscriber %p blocked at seq %lld (%s)", (void *)s, (long long)e->seq,
                  s->state == SUB_LIVE ? "live" : "catching up");
        s->hl->st.blocked++;
        s->blocked = true;
        orders__sub_set_catching(s);
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
    member *m = find_member(s, e->order_id, orders__hash_id(e->order_id));
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
 * it. Events beyond *upto are left out of the count. *gap: the store is behind
 * the ring (its events end short of hi, before the ring starts): after this
 * page the events up to lo - 1 are nowhere. Returns the count, or the
 * store's failure (a negative store_rc, store_count_rc). */
static long read_page(orders_sub *s, int64_t *upto, size_t *cost, bool *gap)
{
    orders_hub_loop *hl = s->hl;
    int64_t from = s->pos + 1, last = s->pos;
    if (s->all || s->cust || s->nmem > MERGE_IDS) {
        long n = hl->src.read_events(hl->src.arg, from, NULL, hl->page, SCAN_PAGE);
        hl->st.store_reads++;
        if (n < 0)
            return n;
        *cost += (size_t)n + 1;
        if (n > 0)
            last = hl->page[n - 1].seq;
        /* A full page is complete up to its last seq. So is a short one: the
         * store had nothing more when it ran, and an event is published only
         * after its commit, so that is at least hi. Never more than the page
         * itself is taken as dealt with: if the store ever answers short of
         * hi, the ring sends the rest (pos + 1 >= lo), and a gap between the
         * two is an error, not events skipped in silence. */
        *upto = last;
        if (n < SCAN_PAGE && last < hl->hi) {
            OMS_DEBUG("hub: store read from seq %lld ended at %lld, short of the ring's hi %lld "
                      "(ring from %lld)",
                      (long long)from, (long long)last, (long long)hl->hi, (long long)hl->lo);
            *gap = last + 1 < hl->lo;
        }
        return n;
    }
    /* One query per id, each its own snapshot: a short page is complete up
     * to what was committed when it ran, which is at least hi (read before
     * any of them), but an event past hi returned for one id says nothing of
     * the others. A full page is complete up to its last seq (seqs commit in
     * order). So the page holds everything up to the least of these. */
    int64_t horizon = INT64_MAX, hi = hl->hi;
    size_t total = 0;
    for (size_t i = 0; i < s->nmem; i++) {
        const member *m = s->mem[i];
        int64_t f = m->floor + 1 > from ? m->floor + 1 : from;
        long n = hl->src.read_events(hl->src.arg, f, m->k->id, hl->page + total, PER_ID);
        hl->st.store_reads++;
        if (n < 0)
            return n;
        *cost += (size_t)n + 1;
        int64_t h = n == PER_ID ? hl->page[total + (size_t)n - 1].seq : hi;
        if (h < horizon)
            horizon = h;
        total += (size_t)n;
    }
    qsort(hl->page, total, sizeof *hl->page, cmp_seq);
    while (total && hl->page[total - 1].seq > horizon)
        total--;
    *upto = horizon;
    return (long)total;
}

/* Brings s forward until it is LIVE, blocked, ended or out of budget (then it
 * is scheduled to go on from the idle handle). Returns what it cost (events
 * looked at, store reads). */
size_t orders__sub_pump(orders_sub *s)
{
    orders_hub_loop *hl = s->hl;
    size_t cost = 0;
    hl->now_ms = orders__wall_ms();
    while (s->state == SUB_CATCHING && !s->blocked) {
        if (s->closing && s->pos >= s->close_at) {
            orders__sub_end(s, RPC_OK, NULL);
            return cost;
        }
        if (s->pos >= hl->hi) {
            go_live(s);
            return cost;
        }
        if (cost >= PUMP_BUDGET) {
            orders__hub_schedule(s);
            return cost;
        }
        if (!s->all && !s->cust && !s->nmem) { /* nothing can match */
            s->pos = hl->hi;
            continue;
        }
        if (s->pos + 1 >= hl->lo) {
            const store_event *e = &hl->ring[(size_t)(s->pos + 1) % hl->cap];
            assert(e->seq == s->pos + 1);
            cost++;
            s->pos = e->seq;
            if (matches(s, e))
                orders__sub_emit(s, e);
            continue;
        }
        int64_t upto;
        bool gap = false;
        long n = read_page(s, &upto, &cost, &gap);
        if (n < 0) {
            /* The database away (PostgreSQL restarting) is UNAVAILABLE, so
             * the client resumes where it was; anything else is INTERNAL. */
            store_rc rc = store_count_rc(n);
            char msg[128];
            OMS_ERROR("hub: reading events from seq %lld failed: %s", (long long)(s->pos + 1),
                      store_rc_name(rc));
            snprintf(msg, sizeof msg,
                     "reading order events from the store failed (%s); resume with since_seq=%lld",
                     store_rc_name(rc), (long long)(s->pos + 1));
            orders__sub_end(
                s, rc == STORE_UNAVAILABLE || rc == STORE_CLOSED ? RPC_UNAVAILABLE : RPC_INTERNAL,
                msg);
            return cost;
        }
        for (long i = 0; i < n && s->state != SUB_DEAD && !s->blocked; i++) {
            const store_event *e = &hl->page[i];
            if (e->seq <= s->pos)
                continue;
            s->pos = e->seq;
            if (matches(s, e))
                orders__sub_emit(s, e);
        }
        if (s->state != SUB_DEAD && !s->blocked && upto > s->pos)
            s->pos = upto;
        if (gap && s->state == SUB_CATCHING && !s->blocked) {
            OMS_ERROR("hub: the store's events end at seq %lld, short of the ring's %lld..%lld",
                      (long long)s->pos, (long long)hl->lo, (long long)hl->hi);
            orders__sub_end(s, RPC_INTERNAL, "order events missing from the store");
            return cost;
        }
    }
    return cost;
}

/* --- subscribers --------------------------------------------------------------------- */

orders_sub *orders__sub_new(orders_hub_loop *hl, const orders_sub_ops *ops, void *arg)
{
    orders_sub *s = oms_calloc(1, sizeof *s);
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
    orders__table_drop_if_empty(t, m->k);
    oms_free(m);
}

static member *link_member(key_table *t, orders_sub *s, const char *id, int64_t floor)
{
    uint32_t h = orders__hash_id(id);
    member *m = oms_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    key_node *k = table_get(t, id, h);
    if (!k) {
        oms_free(m);
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
        member **p = oms_realloc(s->mem, nc * sizeof *p);
        if (!p)
            return -1;
        s->mem = p;
        s->memcap = nc;
    }
    if (want * 2 > s->nslot) {
        size_t ns = s->nslot ? s->nslot : 8;
        while (want * 2 > ns)
            ns *= 2;
        uint32_t *p = oms_calloc(ns, sizeof *p);
        if (!p)
            return -1;
        oms_free(s->slot);
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
        uint32_t h = orders__hash_id(ids[i]);
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
    orders__sub_pump(s);
    hl->depth--;
    if (hl->depth == 0) /* before the reap: s may be a zombie, still readable */
        HUB_ASSERT_OK(hl, s);
    orders__hub_reap(hl);
}

size_t orders__sub_nids(const orders_sub *s)
{
    return s->nmem;
}

size_t orders__sub_count_new(const orders_sub *s, const char *const *ids, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = find_member(s, ids[i], orders__hash_id(ids[i])) != NULL;
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
    /* What s has dealt with: a LIVE one everything up to live_hi. */
    int64_t eff = orders__sub_pos(s);
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
    orders__sub_set_catching(s);
    s->pos = floor;
    if (!s->blocked) {
        hl->depth++;
        orders__sub_pump(s);
        hl->depth--;
        orders__hub_reap(hl);
    }
    return 0;
}

void orders__sub_untrack(orders_sub *s, const char *const *ids, size_t n)
{
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        member *m = find_member(s, ids[i], orders__hash_id(ids[i]));
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
    orders_hub_loop *hl = s->hl;
    s->closing = true;
    s->close_at = hl->hi;
    int64_t pos = orders__sub_pos(s);
    if (pos >= s->close_at) {
        orders__sub_end(s, RPC_OK, NULL);
        return;
    }
    if (s->state == SUB_LIVE) {
        /* The event being fanned out has not reached s yet: s gets it from
         * the ring instead, then ends. */
        orders__sub_set_catching(s);
        s->pos = pos;
        orders__hub_schedule(s);
    }
}

void orders__sub_ready(orders_sub *s)
{
    if (!s || !s->blocked)
        return;
    OMS_DEBUG("hub: subscriber %p ready at pos %lld (ring %lld..%lld)", (void *)s,
              (long long)s->pos, (long long)s->hl->lo, (long long)s->hl->hi);
    s->blocked = false;
    if (s->state != SUB_CATCHING)
        return;
    orders_hub_loop *hl = s->hl;
    hl->depth++;
    orders__sub_pump(s);
    hl->depth--;
    if (hl->depth == 0) /* before the reap: s may be a zombie, still readable */
        HUB_ASSERT_OK(hl, s);
    orders__hub_reap(hl);
}

int64_t orders__sub_pos(const orders_sub *s)
{
    int64_t h = live_hi(s->hl);
    if (s->state == SUB_LIVE && h > s->pos)
        return h;
    return s->pos;
}

void orders__sub_destroy(orders_sub *s)
{
    orders_hub_loop *hl = s->hl;
    orders__sub_live_leave(s);
    list_del(&s->node);
    orders__hub_unschedule(s);
    for (size_t i = 0; i < s->nmem; i++)
        unlink_member(&hl->by_order, s->mem[i]);
    if (s->cust)
        unlink_member(&hl->by_customer, s->cust);
    oms_free(s->mem);
    oms_free(s->slot);
    oms_free(s);
}

int orders__sub_check(const orders_sub *s, char *why, size_t n)
{
    if (!s->started || s->state == SUB_DEAD || s->freed)
        return 0;
    const orders_hub_loop *hl = s->hl;
    if (s->state == SUB_LIVE) { /* still scheduled is harmless: the pump finds it live */
        if (!s->blocked)
            return 0;
        snprintf(why, n, "subscriber %p is live but blocked", (const void *)s);
        return -1;
    }
    if (s->blocked) {
        if (!s->ops->armed || s->ops->armed(s->arg))
            return 0;
        snprintf(why, n,
                 "subscriber %p is blocked at seq %lld (ring head %lld) but its call will not "
                 "call on_ready (wake-up lost)",
                 (const void *)s, (long long)s->pos, (long long)hl->hi);
        return -1;
    }
    if (!s->in_sched) {
        snprintf(why, n,
                 "subscriber %p is behind (seq %lld, ring head %lld) but neither blocked nor "
                 "scheduled: nothing will pump it",
                 (const void *)s, (long long)s->pos, (long long)hl->hi);
        return -1;
    }
    if (!hl->closing && !uv_is_active((const uv_handle_t *)&hl->idle)) {
        snprintf(why, n, "subscriber %p is scheduled but the hub's idle handle is stopped",
                 (const void *)s);
        return -1;
    }
    return 0;
}

void orders__sub_free(orders_sub *s)
{
    if (!s || s->freed)
        return;
    orders_hub_loop *hl = s->hl;
    if (hl->depth == 0) {
        orders__sub_destroy(s);
        return;
    }
    /* The hub is walking lists s is on: unlink it later. */
    s->freed = true;
    kill_sub(s);
    list_push(&hl->zombies, &s->sched);
}
