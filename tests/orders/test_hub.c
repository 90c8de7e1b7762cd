/* Unit tests for the event hub (src/orders/hub.c): the per-loop ring, the
 * subscribers' cursors (live, catching up from the ring or the store, back
 * to live), filters, TrackOrders subscribe/unsubscribe, drain and fan-out to
 * many subscribers. Events go in through orders__hub_publish, as the store
 * writer hands them over; old events come from a fake store (an array) set
 * as the loop's source. No rpc calls: subscribers record what they are sent
 * and say RPC_AGAIN when a test wants them to fall behind. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "orders/hub.h"

/* --- a fake store: every committed event, in seq order -------------------- */

typedef struct fake_store {
    uv_mutex_t mu;
    store_event *evs;
    size_t n, cap;
    bool fail;
    store_rc fail_rc; /* what a failing read says; 0: STORE_ERROR */
    unsigned long reads;
} fake_store;

static long fake_read(void *arg, int64_t from, const char *order_id, store_event *out, size_t limit)
{
    fake_store *fs = arg;
    long k = 0;
    uv_mutex_lock(&fs->mu);
    fs->reads++;
    if (fs->fail) {
        uv_mutex_unlock(&fs->mu);
        return -(long)(fs->fail_rc ? fs->fail_rc : STORE_ERROR);
    }
    for (size_t i = from > 0 ? (size_t)from - 1 : 0; i < fs->n && (size_t)k < limit; i++)
        if (!order_id || strcmp(fs->evs[i].order_id, order_id) == 0)
            out[k++] = fs->evs[i];
    uv_mutex_unlock(&fs->mu);
    return k;
}

static int64_t fake_last(void *arg)
{
    fake_store *fs = arg;
    uv_mutex_lock(&fs->mu);
    int64_t n = (int64_t)fs->n;
    uv_mutex_unlock(&fs->mu);
    return n;
}

typedef struct fixture {
    uv_loop_t loop;
    orders_loop ol;
    orders_hub *hub;
    orders_hub_loop *hl;
    fake_store fs;
} fixture;

static void fx_init(fixture *f, size_t ring)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    uv_mutex_init(&f->fs.mu);
    f->ol.loop = &f->loop;
    f->hub = orders__hub_new(ring);
    cr_assert_not_null(f->hub);
    f->hl = orders__hub_loop_open(f->hub, &f->ol);
    cr_assert_not_null(f->hl);
    f->ol.hl = f->hl;
    orders__hub_loop_set_source(f->hl, &(orders_hub_source){fake_read, fake_last, &f->fs});
}

static void fx_dispose(fixture *f)
{
    orders__hub_loop_close(f->hl);
    cr_assert_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&f->loop), 0);
    orders__hub_free(f->hub);
    free(f->fs.evs);
    uv_mutex_destroy(&f->fs.mu);
}

/* Commits n events (order "o-<order>", customer "c-<order % 10>", status
 * cycling) as one store commit: into the fake store, then published. */
static void commit_n(fixture *f, const int *ords, size_t n)
{
    store_event batch[64];
    cr_assert(n <= 64);
    uv_mutex_lock(&f->fs.mu);
    if (f->fs.n + n > f->fs.cap) {
        f->fs.cap = f->fs.cap ? f->fs.cap * 2 + n : 1024;
        f->fs.evs = realloc(f->fs.evs, f->fs.cap * sizeof *f->fs.evs);
        cr_assert_not_null(f->fs.evs);
    }
    for (size_t i = 0; i < n; i++) {
        store_event *e = &f->fs.evs[f->fs.n];
        memset(e, 0, sizeof *e);
        e->seq = (int64_t)++f->fs.n;
        snprintf(e->order_id, sizeof e->order_id, "o-%d", ords[i]);
        snprintf(e->customer_id, sizeof e->customer_id, "c-%d", ords[i] % 10);
        e->status = 1 + (int)(e->seq % 5);
        e->version = e->seq;
        e->at = 1000 + e->seq;
        batch[i] = *e;
    }
    uv_mutex_unlock(&f->fs.mu);
    orders__hub_publish(f->hub, batch, n);
}

static void commit1(fixture *f, int order)
{
    commit_n(f, &order, 1);
}

/* Runs the loop until it has nothing left to do. */
static void settle(fixture *f)
{
    orders_hub_stats a, b;
    orders__hub_loop_stats(f->hl, &a);
    for (int quiet = 0, i = 0; quiet < 3 && i < 100000; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        orders__hub_loop_stats(f->hl, &b);
        quiet = b.sent == a.sent && b.hi == a.hi && b.store_reads == a.store_reads ? quiet + 1 : 0;
        a = b;
    }
}

/* --- a recording subscriber ---------------------------------------------- */

typedef struct rec {
    orders_sub *s;
    int64_t *seqs;
    size_t n, cap;
    unsigned again_every; /* RPC_AGAIN on every k-th send; 0: never */
    unsigned again_rand;  /* RPC_AGAIN with probability 1/k; 0: never */
    unsigned sends;
    bool blocked;
    bool ended;
    rpc_status code;
    char msg[256];
    /* what it asked for, to compute what it should get */
    const char *customer;
    const char *ids[16];
    size_t nids;
    int64_t from; /* first seq it may get */
} rec;

static int rec_send(void *arg, const store_event *e)
{
    rec *r = arg;
    cr_assert(!r->blocked, "sent to while blocked");
    cr_assert(!r->ended, "sent to after end");
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->seqs = realloc(r->seqs, r->cap * sizeof *r->seqs);
    }
    r->seqs[r->n++] = e->seq;
    r->sends++;
    if ((r->again_every && r->sends % r->again_every == 0) ||
        (r->again_rand && rand() % r->again_rand == 0)) {
        r->blocked = true;
        return RPC_AGAIN;
    }
    return 0;
}

static void rec_end(void *arg, rpc_status code, const char *msg)
{
    rec *r = arg;
    cr_assert(!r->ended);
    r->ended = true;
    r->code = code;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    orders__sub_free(r->s); /* from inside the hub: deferred */
    r->s = NULL;
}

static const orders_sub_ops rec_ops = {.send = rec_send, .end = rec_end};

static rec *watch(fixture *f, const char *customer, const char *const *ids, size_t nids,
                  int64_t since)
{
    rec *r = calloc(1, sizeof *r);
    r->customer = customer;
    for (size_t i = 0; i < nids; i++)
        r->ids[i] = ids[i];
    r->nids = nids;
    r->s = orders__sub_new(f->hl, &rec_ops, r);
    cr_assert_not_null(r->s);
    cr_assert_eq(orders__sub_watch(r->s, customer, ids, nids), 0);
    r->from = since > 0 ? since : orders__hub_loop_last_seq(f->hl) + 1;
    orders__sub_start(r->s, since);
    return r;
}

static void rec_free(rec *r)
{
    if (r->s)
        orders__sub_free(r->s);
    free(r->seqs);
    free(r);
}

static void unblock(rec *r)
{
    if (r->blocked && r->s) {
        r->blocked = false;
        orders__sub_ready(r->s);
    }
}

static bool rec_wants(const rec *r, const store_event *e)
{
    if (e->seq < r->from)
        return false;
    if (!(r->customer && *r->customer) && !r->nids)
        return true;
    if (r->customer && strcmp(r->customer, e->customer_id) == 0)
        return true;
    for (size_t i = 0; i < r->nids; i++)
        if (strcmp(r->ids[i], e->order_id) == 0)
            return true;
    return false;
}

/* r got exactly the events of the store it wants, in seq order. */
static void check_rec(fixture *f, const rec *r, const char *what)
{
    size_t k = 0;
    for (size_t i = 0; i < f->fs.n; i++) {
        const store_event *e = &f->fs.evs[i];
        if (!rec_wants(r, e))
            continue;
        cr_assert(k < r->n, "%s: missing seq %lld (got %zu events)", what, (long long)e->seq, r->n);
        cr_assert_eq(r->seqs[k], e->seq, "%s: event %zu is seq %lld, want %lld", what, k,
                     (long long)r->seqs[k], (long long)e->seq);
        k++;
    }
    cr_assert_eq(k, r->n, "%s: %zu extra events", what, r->n - k);
}

/* Unblocks r and runs the loop until r is LIVE (not blocked after a run). */
static void drain_rec(fixture *f, rec *r)
{
    for (int i = 0; i < 1000000 && (r->blocked || i < 2); i++) {
        unblock(r);
        settle(f);
    }
    cr_assert(!r->blocked);
}

/* --- tests ----------------------------------------------------------------- */

Test(orders_hub, live_events_in_order)
{
    fixture f;
    fx_init(&f, 64);
    rec *r = watch(&f, NULL, NULL, 0, 0);
    for (int i = 0; i < 10; i++)
        commit1(&f, i);
    settle(&f);
    cr_assert_eq(r->n, 10);
    check_rec(&f, r, "all");
    orders_hub_stats st;
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.subs, 1);
    cr_assert_eq(st.live, 1);
    cr_assert_eq(st.hi, 10);
    rec_free(r);
    fx_dispose(&f);
}

Test(orders_hub, since_zero_means_from_now_on)
{
    fixture f;
    fx_init(&f, 64);
    for (int i = 0; i < 5; i++)
        commit1(&f, i);
    settle(&f);
    commit1(&f, 5); /* committed (store last = 6), not yet on the loop */
    rec *r = watch(&f, NULL, NULL, 0, 0);
    cr_assert_eq(r->from, 7);
    commit1(&f, 6);
    commit1(&f, 7);
    settle(&f);
    cr_assert_eq(r->n, 2, "got %zu", r->n);
    cr_assert_eq(r->seqs[0], 7);
    check_rec(&f, r, "from now on");
    rec_free(r);
    fx_dispose(&f);
}

Test(orders_hub, loop_opened_on_a_non_empty_store_starts_there)
{
    fixture f;
    fx_init(&f, 64);
    fixture g; /* a second loop joining after 20 commits */
    for (int i = 0; i < 20; i++)
        commit1(&f, i);
    memset(&g, 0, sizeof g);
    uv_loop_init(&g.loop);
    g.ol.loop = &g.loop;
    g.hl = orders__hub_loop_open(f.hub, &g.ol);
    cr_assert_not_null(g.hl);
    orders__hub_loop_set_source(g.hl, &(orders_hub_source){fake_read, fake_last, &f.fs});
    g.hub = f.hub;
    orders_sub *s = orders__sub_new(g.hl, &rec_ops, &(rec){0});
    orders__sub_start(s, 0);
    cr_assert_eq(orders__sub_pos(s), 20);
    commit1(&f, 1);
    settle(&g);
    orders_hub_stats st;
    orders__hub_loop_stats(g.hl, &st);
    cr_assert_eq(st.gaps, 0, "no gap for a loop that joined late");
    cr_assert_eq(st.lo, 21);
    cr_assert_eq(st.hi, 21);
    orders__sub_free(s);
    orders__hub_loop_close(g.hl);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    uv_loop_close(&g.loop);
    fx_dispose(&f);
}

/* The core property: a subscriber replaying history while events keep being
 * committed gets each matching event once, in order, across the hand-off
 * from store to ring to live. Filters take the three read paths: unfiltered
 * scan, per-order merged reads (<= 8 ids) and scan with filtering. */
static void handoff(const char *customer, const char *const *ids, size_t nids, size_t ring,
                    unsigned again)
{
    fixture f;
    fx_init(&f, ring);
    srand(7);
    for (int i = 0; i < 300; i++)
        commit1(&f, rand() % 20);
    settle(&f);
    rec *r = watch(&f, customer, ids, nids, 37);
    r->again_every = again;
    for (int round = 0; round < 200; round++) {
        int batch[5];
        size_t nb = 1 + (size_t)(rand() % 5);
        for (size_t i = 0; i < nb; i++)
            batch[i] = rand() % 20;
        commit_n(&f, batch, nb);
        if (round % 3 == 0)
            settle(&f);
        if (round % 2 == 0)
            unblock(r);
    }
    drain_rec(&f, r);
    commit1(&f, 1);
    commit1(&f, 0);
    settle(&f);
    cr_assert(!r->blocked || r->again_every);
    drain_rec(&f, r);
    check_rec(&f, r, "hand-off");
    orders_hub_stats st;
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.live, 1, "live again at the end");
    if (ring < 300)
        cr_assert_gt(st.store_reads, 0);
    rec_free(r);
    fx_dispose(&f);
}

Test(orders_hub, handoff_every_order)
{
    handoff(NULL, NULL, 0, 64, 7);
    handoff(NULL, NULL, 0, 1024, 3);
    handoff(NULL, NULL, 0, 8, 1);
}

Test(orders_hub, handoff_few_orders)
{
    const char *ids[] = {"o-1", "o-4", "o-17"};
    handoff(NULL, ids, 3, 64, 2);
    handoff(NULL, ids, 1, 16, 1);
}

Test(orders_hub, handoff_many_orders_and_customer)
{
    const char *ids[] = {"o-0", "o-2", "o-3", "o-5", "o-7", "o-8", "o-11", "o-13", "o-19", "o-99"};
    handoff(NULL, ids, 10, 32, 3);
    handoff("c-3", NULL, 0, 32, 2);
    handoff("c-3", ids, 2, 32, 1);
}

Test(orders_hub, blocked_subscriber_falls_behind_the_ring_and_catches_up_from_the_store)
{
    fixture f;
    fx_init(&f, 16);
    rec *r = watch(&f, NULL, NULL, 0, 0);
    r->again_every = 1; /* blocks on the first event */
    for (int i = 0; i < 1000; i++) {
        commit1(&f, i % 50);
        if (i % 10 == 0)
            settle(&f);
    }
    settle(&f);
    cr_assert_eq(r->n, 1, "nothing queued for a blocked subscriber");
    orders_hub_stats st;
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.hi, 1000);
    cr_assert_eq(st.lo, 985, "the ring keeps 16");
    cr_assert_eq(st.live, 0);
    r->again_every = 100;
    unsigned long before = f.fs.reads;
    drain_rec(&f, r);
    cr_assert_gt(f.fs.reads, before, "read from the store");
    check_rec(&f, r, "behind the ring");
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.live, 1);
    rec_free(r);
    fx_dispose(&f);
}

Test(orders_hub, inbox_overflow_restarts_the_ring_and_nothing_is_lost)
{
    fixture f;
    fx_init(&f, 8);
    rec *r = watch(&f, NULL, NULL, 0, 0);
    const char *ids[] = {"o-3"};
    rec *q = watch(&f, NULL, ids, 1, 0);
    for (int i = 0; i < 5000; i++) /* the loop does not run: its inbox keeps 4096 */
        commit1(&f, i % 7);
    settle(&f);
    orders_hub_stats st;
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.gaps, 1);
    cr_assert_eq(st.hi, 5000);
    check_rec(&f, r, "all after overflow");
    check_rec(&f, q, "o-3 after overflow");
    cr_assert_eq(st.live, 2);
    rec_free(r);
    rec_free(q);
    fx_dispose(&f);
}

/* The writer cannot copy a commit for the loops (no memory): the loop is
 * still told how far the events go, and its live subscribers read them from
 * the store, even when no later commit comes to show the gap. */
Test(orders_hub, publish_out_of_memory_loses_nothing)
{
    fixture f;
    fx_init(&f, 64);
    rec *r = watch(&f, NULL, NULL, 0, 0);
    const char *ids[] = {"o-2"};
    rec *q = watch(&f, NULL, ids, 1, 0);
    commit1(&f, 1);
    settle(&f);
    oms_alloc_fail_nth(1); /* the batch of the next publish */
    int ords[] = {2, 3, 2};
    commit_n(&f, ords, 3);
    cr_assert(oms_alloc_failed());
    oms_alloc_fail_nth(0);
    settle(&f);
    orders_hub_stats st;
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.gaps, 1);
    check_rec(&f, r, "all after a lost handover");
    check_rec(&f, q, "o-2 after a lost handover");
    cr_assert_eq(r->n, 4);
    commit1(&f, 2);
    settle(&f);
    check_rec(&f, r, "all, live again");
    check_rec(&f, q, "o-2, live again");
    cr_assert_eq(st.live, 2);
    rec_free(r);
    rec_free(q);
    fx_dispose(&f);
}

Test(orders_hub, filters)
{
    fixture f;
    fx_init(&f, 64);
    const char *one[] = {"o-1"};
    const char *two[] = {"o-1", "o-3", "o-1"}; /* duplicate ids are fine */
    rec *a = watch(&f, NULL, one, 1, 0);
    rec *b = watch(&f, "c-2", NULL, 0, 0);
    rec *c = watch(&f, "c-2", two, 3, 0); /* o-12 is c-2's too: union, once */
    rec *d = watch(&f, NULL, NULL, 0, 0);
    int ords[] = {1, 2, 3, 12, 22, 1, 4, 3, 12};
    for (size_t i = 0; i < sizeof ords / sizeof *ords; i++)
        commit1(&f, ords[i]);
    settle(&f);
    check_rec(&f, a, "o-1");
    cr_assert_eq(a->n, 2);
    check_rec(&f, b, "c-2");
    cr_assert_eq(b->n, 4);
    check_rec(&f, c, "c-2 or o-1 or o-3");
    cr_assert_eq(c->n, 8);
    check_rec(&f, d, "all");
    cr_assert_eq(d->n, 9);
    rec_free(a);
    rec_free(b);
    rec_free(c);
    rec_free(d);
    fx_dispose(&f);
}

Test(orders_hub, track_subscribe_replays_new_ids_only_and_unsubscribe_stops)
{
    fixture f;
    fx_init(&f, 64);
    for (int i = 0; i < 30; i++)
        commit1(&f, i % 3); /* o-0, o-1, o-2 ... : seqs 1..30 */
    settle(&f);
    rec *r = calloc(1, sizeof *r);
    r->s = orders__sub_new(f.hl, &rec_ops, r);
    orders__sub_start(r->s, 0);
    const char *o1[] = {"o-1"};
    cr_assert_eq(orders__sub_track(r->s, o1, 1, 0), 0);
    commit1(&f, 1); /* 31 */
    commit1(&f, 2); /* 32 */
    settle(&f);
    cr_assert_eq(r->n, 1);
    cr_assert_eq(r->seqs[0], 31);
    /* o-2 from seq 20: its events 21, 24, 27, 30 and 32 come now; o-1's 31
     * is not sent again */
    const char *o2[] = {"o-2", "o-1"};
    cr_assert_eq(orders__sub_count_new(r->s, o2, 2), 1);
    cr_assert_eq(orders__sub_track(r->s, o2, 2, 20), 0);
    settle(&f);
    int64_t want[] = {31, 21, 24, 27, 30, 32};
    cr_assert_eq(r->n, 6, "got %zu", r->n);
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(r->seqs[i], want[i], "event %zu: %lld", i, (long long)r->seqs[i]);
    commit1(&f, 1); /* 33 */
    commit1(&f, 0); /* 34: not tracked */
    commit1(&f, 2); /* 35 */
    settle(&f);
    cr_assert_eq(r->n, 8);
    cr_assert_eq(r->seqs[6], 33);
    cr_assert_eq(r->seqs[7], 35);
    orders__sub_untrack(r->s, o1, 1);
    cr_assert_eq(orders__sub_nids(r->s), 1);
    commit1(&f, 1);
    commit1(&f, 2); /* 37 */
    settle(&f);
    cr_assert_eq(r->n, 9);
    cr_assert_eq(r->seqs[8], 37);
    rec_free(r);
    fx_dispose(&f);
}

/* pad: ids with no events tracked along with o-1; past 8 the catch-up scans
 * every event instead of reading per order. */
static void track_rewind(size_t pad)
{
    fixture f;
    fx_init(&f, 16);
    for (int i = 0; i < 100; i++)
        commit1(&f, i % 4);
    settle(&f);
    rec *r = calloc(1, sizeof *r);
    r->s = orders__sub_new(f.hl, &rec_ops, r);
    orders__sub_start(r->s, 0);
    r->again_every = 2;
    const char *o1[16] = {"o-1"};
    char names[16][16];
    for (size_t i = 1; i <= pad; i++) {
        snprintf(names[i], sizeof names[i], "o-%zu", 1000 + i);
        o1[i] = names[i];
    }
    orders__sub_track(r->s, o1, 1 + pad, 10); /* o-1 from seq 10: 10, 14, ..., 98 */
    for (int i = 0; i < 40; i++)
        commit1(&f, i % 4); /* 101.. ; o-1 at 102, 106, ... */
    settle(&f);
    const char *o3[] = {"o-3"};
    orders__sub_track(r->s, o3, 1, 50); /* o-3 from 50, whatever o-1 got so far */
    for (int i = 0; i < 40; i++) {
        commit1(&f, i % 4);
        if (i % 5 == 0) {
            unblock(r);
            settle(&f);
        }
    }
    drain_rec(&f, r);
    /* every o-1 event >= 10 and every o-3 event >= 50, each once */
    bool seen[200] = {0};
    size_t want = 0;
    for (size_t i = 0; i < f.fs.n; i++) {
        const store_event *e = &f.fs.evs[i];
        want += (strcmp(e->order_id, "o-1") == 0 && e->seq >= 10) ||
                (strcmp(e->order_id, "o-3") == 0 && e->seq >= 50);
    }
    for (size_t i = 0; i < r->n; i++) {
        int64_t s = r->seqs[i];
        cr_assert(!seen[s], "seq %lld twice", (long long)s);
        seen[s] = true;
        const store_event *e = &f.fs.evs[s - 1];
        cr_assert((strcmp(e->order_id, "o-1") == 0 && s >= 10) ||
                  (strcmp(e->order_id, "o-3") == 0 && s >= 50));
    }
    cr_assert_eq(r->n, want);
    rec_free(r);
    fx_dispose(&f);
}

Test(orders_hub, track_rewind_while_behind_and_blocked)
{
    track_rewind(0);
    track_rewind(9);
}

Test(orders_hub, close_after_ends_once_caught_up)
{
    fixture f;
    fx_init(&f, 16);
    for (int i = 0; i < 50; i++)
        commit1(&f, 1);
    settle(&f);
    rec *r = calloc(1, sizeof *r);
    r->s = orders__sub_new(f.hl, &rec_ops, r);
    orders__sub_start(r->s, 0);
    r->again_every = 4;
    const char *o1[] = {"o-1"};
    orders__sub_track(r->s, o1, 1, 1);
    cr_assert(r->blocked);
    orders__sub_close_after(r->s);
    cr_assert(!r->ended);
    commit1(&f, 1); /* 51: after the half-close, may or may not come */
    drain_rec(&f, r);
    cr_assert(r->ended);
    cr_assert_eq(r->code, RPC_OK);
    cr_assert_geq(r->n, 50);
    for (size_t i = 0; i < 50; i++)
        cr_assert_eq(r->seqs[i], (int64_t)i + 1);

    /* a live one ends at once */
    rec *q = calloc(1, sizeof *q);
    q->s = orders__sub_new(f.hl, &rec_ops, q);
    orders__sub_start(q->s, 0);
    orders__sub_close_after(q->s);
    cr_assert(q->ended);
    rec_free(r);
    rec_free(q);
    fx_dispose(&f);
}

Test(orders_hub, end_all_ends_every_subscriber_with_its_resume_point)
{
    fixture f;
    fx_init(&f, 16);
    for (int i = 0; i < 10; i++)
        commit1(&f, i);
    settle(&f);
    const char *o3[] = {"o-3"};
    rec *a = watch(&f, NULL, NULL, 0, 0);
    rec *b = watch(&f, NULL, o3, 1, 2);
    b->again_every = 1;
    commit1(&f, 3);
    settle(&f);
    cr_assert(!orders__hub_loop_draining(f.hl));
    orders__hub_loop_end_all(f.hl, RPC_UNAVAILABLE, "server shutting down");
    cr_assert(orders__hub_loop_draining(f.hl));
    cr_assert(a->ended && b->ended);
    cr_assert_eq(a->code, RPC_UNAVAILABLE);
    cr_assert_str_eq(a->msg, "server shutting down; resume with since_seq=12");
    cr_assert_eq(b->n, 2, "seq 4 (replayed) and 11, then blocked");
    cr_assert_str_eq(b->msg, "server shutting down; resume with since_seq=12");
    orders_hub_stats st;
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.subs, 0, "freed from inside end (deferred)");
    commit1(&f, 3);
    settle(&f);
    rec_free(a);
    rec_free(b);
    fx_dispose(&f);
}

Test(orders_hub, store_read_failure_ends_the_subscriber)
{
    fixture f;
    fx_init(&f, 8);
    for (int i = 0; i < 40; i++)
        commit1(&f, i);
    settle(&f);
    f.fs.fail = true;
    rec *r = watch(&f, NULL, NULL, 0, 1);
    cr_assert(r->ended);
    cr_assert_eq(r->code, RPC_INTERNAL);
    rec_free(r);
    /* The database away (a PostgreSQL restart): UNAVAILABLE, and where to
     * resume, so a client picks up with since_seq instead of giving up. */
    f.fs.fail_rc = STORE_UNAVAILABLE;
    r = watch(&f, NULL, NULL, 0, 1);
    cr_assert(r->ended);
    cr_assert_eq(r->code, RPC_UNAVAILABLE, "%s", r->msg);
    cr_expect(strstr(r->msg, "resume with since_seq=1") != NULL, "%s", r->msg);
    f.fs.fail = false;
    rec_free(r);
    fx_dispose(&f);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

Test(orders_hub, ten_thousand_subscribers)
{
    enum { N = 10000 };
    fixture f;
    fx_init(&f, 1024);
    static rec same[N], distinct[N];
    static char names[N][16];
    const char *o7[] = {"o-7"};
    for (int i = 0; i < N; i++) {
        same[i].s = orders__sub_new(f.hl, &rec_ops, &same[i]);
        orders__sub_watch(same[i].s, NULL, o7, 1);
        orders__sub_start(same[i].s, 0);
        snprintf(names[i], sizeof names[i], "o-%d", 100000 + i);
        const char *id = names[i];
        distinct[i].s = orders__sub_new(f.hl, &rec_ops, &distinct[i]);
        orders__sub_watch(distinct[i].s, NULL, &id, 1);
        orders__sub_start(distinct[i].s, 0);
    }
    double t0 = now_ms();
    commit1(&f, 7);
    uv_run(&f.loop, UV_RUN_NOWAIT); /* wake-up, ring, fan-out */
    double t1 = now_ms();
    settle(&f);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(same[i].n, 1);
        cr_assert_eq(same[i].seqs[0], 1);
        cr_assert_eq(distinct[i].n, 0);
    }
    /* 1000 events each for one of the distinct subscribers */
    double t2 = now_ms();
    for (int i = 0; i < 1000; i += 50) { /* 50 events per wake-up */
        for (int j = i; j < i + 50; j++)
            commit1(&f, 100000 + j * 10);
        uv_run(&f.loop, UV_RUN_NOWAIT);
    }
    double t3 = now_ms();
    settle(&f);
    for (int i = 0; i < N; i++)
        cr_assert_eq(distinct[i].n, i % 10 == 0 && i < 10000 ? 1u : 0u, "sub %d", i);
    printf("hub fan-out: 1 event to %d subscribers of one order: %.2f ms; "
           "1000 events among %d single-order subscribers: %.2f ms (%.1f us/event)\n",
           N, t1 - t0, 2 * N, t3 - t2, (t3 - t2) * 1000 / 1000);
    for (int i = 0; i < N; i++) {
        orders__sub_free(same[i].s);
        orders__sub_free(distinct[i].s);
        free(same[i].seqs);
        free(distinct[i].seqs);
    }
    fx_dispose(&f);
}

/* --- bounded fan-out: an event to many subscribers over several turns ------ */

/* N match-all subscribers (and, when ids, N of order "o-1" and N of its
 * customer "c-1"): the events pending are offered together, FANOUT_BUDGET
 * offers per turn of the loop, turn after turn, and every subscriber gets
 * each of its events exactly once, in order. */
static rec **many(fixture *f, int n, bool ids)
{
    rec **r = calloc((size_t)n * 3, sizeof *r);
    const char *o1[] = {"o-1"};
    for (int i = 0; i < n; i++) {
        r[i] = watch(f, NULL, NULL, 0, 0);
        if (ids) {
            r[n + i] = watch(f, NULL, o1, 1, 0);
            r[2 * n + i] = watch(f, "c-1", NULL, 0, 0);
        }
    }
    return r;
}

static void free_many(rec **r, int n)
{
    for (int i = 0; i < n; i++)
        if (r[i])
            rec_free(r[i]);
    free(r);
}

Test(orders_hub, fan_out_is_spread_over_turns)
{
    enum { N = 1500 };
    fixture f;
    fx_init(&f, 64);
    rec **r = many(&f, N, true);
    commit1(&f, 1);
    commit1(&f, 2);
    orders_hub_stats st;
    uv_run(&f.loop, UV_RUN_NOWAIT);
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.sent, 512, "one turn offers FANOUT_BUDGET (sent %llu)",
                 (unsigned long long)st.sent);
    cr_assert_eq(st.hi, 2, "both events are fanned out together");
    int both = 0, none = 0;
    for (int i = 0; i < N; i++) {
        both += r[i]->n == 2;
        none += r[i]->n == 0;
    }
    cr_assert_eq(both, 256, "a visit offers both events (%d got both)", both);
    cr_assert_eq(none, N - 256);
    int turns = 1;
    for (; turns < 100 && st.sent < 5 * N; turns++) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        orders__hub_loop_stats(f.hl, &st);
    }
    settle(&f);
    orders__hub_loop_stats(f.hl, &st);
    cr_assert_eq(st.sent, 3 * N + N, "1: all, o-1 and c-1; 2: all (sent %llu)",
                 (unsigned long long)st.sent);
    cr_assert_geq(turns, 5 * N / 512);
    for (int i = 0; i < 3 * N; i++)
        check_rec(&f, r[i], "many");
    cr_assert_eq(st.live, 3 * N);
    free_many(r, 3 * N);
    fx_dispose(&f);
}

/* Subscribers that leave, close, block, track or are ended while an event
 * is half fanned out: nobody gets an event twice or misses one, and the
 * resume point of one not reached yet is that event. */
Test(orders_hub, changes_in_the_middle_of_a_fan_out)
{
    enum { N = 1200 };
    fixture f;
    fx_init(&f, 64);
    rec **r = many(&f, N, false);
    const char *o9[] = {"o-9"};
    rec *t = watch(&f, NULL, o9, 1, 0); /* tracks o-9, will add o-1 */
    commit1(&f, 1);
    uv_run(&f.loop, UV_RUN_NOWAIT); /* 512 of N reached */
    cr_assert_eq(r[0]->n, 1);
    cr_assert_eq(r[N - 1]->n, 0);
    /* not reached yet: its resume point is the event in flight */
    cr_assert_eq(orders__sub_pos(r[N - 1]->s), 0);
    cr_assert_eq(orders__sub_pos(r[0]->s), 1);
    /* freed: one reached, one not, the one right after the bookmark */
    rec_free(r[1]);
    r[1] = NULL;
    rec_free(r[N - 2]);
    r[N - 2] = NULL;
    rec_free(r[512]);
    r[512] = NULL;
    /* closing: not reached yet, it still gets the event, then ends OK */
    orders__sub_close_after(r[N - 3]->s);
    cr_assert(!r[N - 3]->ended);
    /* closing after it was reached: ends at once */
    orders__sub_close_after(r[2]->s);
    cr_assert(r[2]->ended);
    /* tracking an order since seq 1, mid fan-out */
    const char *o1[] = {"o-1"};
    cr_assert_eq(orders__sub_track(t->s, o1, 1, 1), 0);
    /* blocked on the next send */
    r[N - 4]->again_every = 1;
    /* a new subscriber from now on: not the event in flight */
    rec *late = watch(&f, NULL, NULL, 0, 0);
    settle(&f);
    cr_assert(r[N - 3]->ended);
    cr_assert_eq(r[N - 3]->code, RPC_OK);
    cr_assert_eq(r[N - 3]->n, 1);
    cr_assert_eq(t->n, 1, "o-1's event once");
    cr_assert_eq(late->n, 0);
    commit1(&f, 1);
    settle(&f);
    r[N - 4]->again_every = 0;
    drain_rec(&f, r[N - 4]);
    for (int i = 0; i < N; i++)
        if (r[i] && !r[i]->ended)
            check_rec(&f, r[i], "mid fan-out");
    check_rec(&f, late, "late");
    t->from = 1;
    t->ids[t->nids++] = "o-1";
    check_rec(&f, t, "tracked mid fan-out");
    /* ended by a drain in the middle of one: resume points */
    commit1(&f, 3);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    orders__hub_loop_end_all(f.hl, RPC_UNAVAILABLE, "drain");
    for (int i = 0; i < N; i++)
        if (r[i] && r[i]->code == RPC_UNAVAILABLE) {
            char want[64];
            int64_t next = r[i]->seqs[r[i]->n - 1] + 1;
            snprintf(want, sizeof want, "since_seq=%lld", (long long)next);
            cr_assert(strstr(r[i]->msg, want), "sub %d: %s, want %s", i, r[i]->msg, want);
        }
    settle(&f);
    rec_free(late);
    rec_free(t);
    free_many(r, N);
    fx_dispose(&f);
}

/* Many subscribers catching up at once (a lost handover sends every LIVE
 * one to the store): the idle handle pumps a bounded share of them per turn,
 * the rest the turns after, and each gets everything once. */
Test(orders_hub, catch_up_of_many_is_spread_over_turns)
{
    enum { N = 3000 };
    fixture f;
    fx_init(&f, 64);
    rec **r = many(&f, N, false);
    oms_alloc_fail_nth(1);
    int ords[] = {1, 2, 3};
    commit_n(&f, ords, 3);
    cr_assert(oms_alloc_failed());
    oms_alloc_fail_nth(0);
    uv_run(&f.loop, UV_RUN_NOWAIT); /* the restart: all scheduled */
    uv_run(&f.loop, UV_RUN_NOWAIT); /* one idle turn */
    int done = 0;
    for (int i = 0; i < N; i++)
        done += r[i]->n == 3;
    cr_assert_gt(done, 0);
    cr_assert_lt(done, N, "one turn pumped all %d", N);
    settle(&f);
    for (int i = 0; i < N; i++)
        check_rec(&f, r[i], "caught up");
    free_many(r, N);
    fx_dispose(&f);
}

/* Match-all subscribers of one connection (ops->group) are offered an event
 * one after another, however they joined, as they come and go. */
static const char *send_log[64];
static size_t nsend_log;

static int grp_send(void *arg, const store_event *e)
{
    rec *r = arg;
    if (nsend_log < 64)
        send_log[nsend_log++] = r->customer; /* the group, for this test */
    r->seqs = r->seqs ? r->seqs : calloc(64, sizeof *r->seqs);
    r->seqs[r->n++] = e->seq;
    return 0;
}

static const char *grp_group(void *arg)
{
    return ((rec *)arg)->customer;
}

static const orders_sub_ops grp_ops = {.send = grp_send, .end = rec_end, .group = grp_group};

static rec *grp_watch(fixture *f, const char *group)
{
    rec *r = calloc(1, sizeof *r);
    r->customer = group;
    r->s = orders__sub_new(f->hl, &grp_ops, r);
    cr_assert_eq(orders__sub_watch(r->s, NULL, NULL, 0), 0);
    orders__sub_start(r->s, 0);
    return r;
}

/* Each group's sends are one run in send_log[0..nsend_log). */
static void check_runs(size_t want)
{
    cr_assert_eq(nsend_log, want);
    for (size_t i = 0; i < nsend_log; i++)
        for (size_t j = i + 2; j < nsend_log; j++)
            if (strcmp(send_log[i], send_log[j]) == 0)
                for (size_t k = i + 1; k < j; k++)
                    cr_assert_str_eq(send_log[k], send_log[i], "group %s split at %zu", send_log[i],
                                     k);
    nsend_log = 0;
}

Test(orders_hub, match_all_subscribers_grouped_by_connection)
{
    fixture f;
    fx_init(&f, 64);
    const char *g[] = {"A", "B", "C"};
    rec *r[12];
    for (int i = 0; i < 9; i++)
        r[i] = grp_watch(&f, g[i % 3]);
    commit1(&f, 1);
    settle(&f);
    check_runs(9);
    rec_free(r[3]); /* an A in the middle of its run */
    rec_free(r[8]); /* the last C */
    r[9] = grp_watch(&f, "C");
    r[10] = grp_watch(&f, "A");
    r[11] = grp_watch(&f, "D");
    commit1(&f, 2);
    settle(&f);
    check_runs(10);
    for (int i = 0; i < 12; i++)
        if (i != 3 && i != 8) {
            free(r[i]->seqs);
            r[i]->seqs = NULL;
            rec_free(r[i]);
        }
    fx_dispose(&f);
}

/* The store writer publishing from its own thread while the loop runs and
 * subscribers keep falling behind at random. */
typedef struct writer_arg {
    fixture *f;
    int commits;
} writer_arg;

static void writer(void *arg)
{
    writer_arg *w = arg;
    unsigned seed = 11;
    for (int i = 0; i < w->commits; i++) {
        int batch[16];
        size_t n = 1 + (size_t)(rand_r(&seed) % 16);
        for (size_t j = 0; j < n; j++)
            batch[j] = rand_r(&seed) % 40;
        commit_n(w->f, batch, n);
        if (i % 64 == 0)
            uv_sleep(1);
    }
}

Test(orders_hub, publisher_thread_and_slow_subscribers)
{
    enum { NSUB = 40 };
    fixture f;
    fx_init(&f, 128);
    srand(3);
    for (int i = 0; i < 500; i++)
        commit1(&f, i % 40);
    settle(&f);
    rec *subs[NSUB];
    static char idbuf[NSUB][3][16];
    for (int i = 0; i < NSUB; i++) {
        const char *ids[3];
        size_t nids = (size_t)(i % 4);
        for (size_t j = 0; j < nids; j++) {
            snprintf(idbuf[i][j], 16, "o-%d", (i * 7 + (int)j * 13) % 40);
            ids[j] = idbuf[i][j];
        }
        const char *cust = i % 5 == 4 ? "c-4" : NULL;
        subs[i] = watch(&f, cust, ids, nids, i % 3 == 0 ? 0 : 1 + i * 10);
        subs[i]->again_rand = (unsigned)(2 + i % 50);
    }
    uv_thread_t t;
    writer_arg wa = {&f, 3000};
    uv_thread_create(&t, writer, &wa);
    for (int i = 0; i < 20000; i++) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        if (i % 3 == 0)
            for (int j = 0; j < NSUB; j++)
                if (rand() % 4 == 0)
                    unblock(subs[j]);
    }
    uv_thread_join(&t);
    settle(&f);
    for (int j = 0; j < NSUB; j++) {
        subs[j]->again_rand = 0;
        drain_rec(&f, subs[j]);
    }
    settle(&f);
    for (int j = 0; j < NSUB; j++) {
        char what[32];
        snprintf(what, sizeof what, "subscriber %d", j);
        cr_assert(!subs[j]->ended);
        check_rec(&f, subs[j], what);
        rec_free(subs[j]);
    }
    fx_dispose(&f);
}
