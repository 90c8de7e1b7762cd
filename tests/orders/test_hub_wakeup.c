/* The hub's wake-up contract (hub.c, hub_sub.c), checked after every step:
 * a subscriber that is CATCHING up is always either blocked (its last send
 * said RPC_AGAIN and its owner has not called orders__sub_ready yet) or
 * scheduled on the loop's running idle handle; never neither. A LIVE one is
 * not blocked and, when it matches every order, has dealt with everything up
 * to the ring's hi. Its hub-side blocked flag is the stream's.
 *
 * Each subscriber is a model stream: a queue of events the client has not
 * read, that says RPC_AGAIN once it holds `cap` and calls orders__sub_ready
 * once the client has read it below cap / 4 (the rpc layer's on_ready at
 * http2's low-water mark). Clients read random amounts at random times while
 * commits of random sizes arrive, some big enough to overflow the inbox (ring
 * restarts), with a ring small enough that the catch-up keeps going to the
 * store. In the end every subscriber must have every event it asked for, in
 * order, once. A regression guard for the intermittent stall of slow
 * WatchOrders subscribers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "orders/hub_int.h"

typedef struct fake_store {
    uv_mutex_t mu;
    store_event *evs;
    size_t n, cap;
    int64_t visible; /* > 0: reads see no event past it (a store behind the ring) */
} fake_store;

static long fake_read(void *arg, int64_t from, const char *order_id, store_event *out, size_t limit)
{
    fake_store *fs = arg;
    long k = 0;
    uv_mutex_lock(&fs->mu);
    for (size_t i = from > 0 ? (size_t)from - 1 : 0; i < fs->n && (size_t)k < limit; i++)
        if (fs->visible > 0 && fs->evs[i].seq > fs->visible)
            break;
        else if (!order_id || strcmp(fs->evs[i].order_id, order_id) == 0)
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

static uv_loop_t loop;
static orders_loop ol;
static orders_hub *hub;
static orders_hub_loop *hl;
static fake_store fs;

/* Commits n events of random orders o-0..o-99 (customer c-<order % 10>). */
static void commit(size_t n)
{
    store_event *batch = calloc(n, sizeof *batch);
    cr_assert_not_null(batch);
    uv_mutex_lock(&fs.mu);
    if (fs.n + n > fs.cap) {
        fs.cap = (fs.n + n) * 2;
        fs.evs = realloc(fs.evs, fs.cap * sizeof *fs.evs);
        cr_assert_not_null(fs.evs);
    }
    for (size_t i = 0; i < n; i++) {
        store_event *e = &fs.evs[fs.n];
        memset(e, 0, sizeof *e);
        e->seq = (int64_t)++fs.n;
        int o = rand() % 100;
        snprintf(e->order_id, sizeof e->order_id, "o-%d", o);
        snprintf(e->customer_id, sizeof e->customer_id, "c-%d", o % 10);
        e->status = 1;
        e->version = e->seq;
        batch[i] = *e;
    }
    uv_mutex_unlock(&fs.mu);
    orders__hub_publish(hub, batch, n);
    free(batch);
}

typedef struct msub {
    orders_sub *s;
    const char *customer; /* filter: a customer, */
    const char *id;       /* or an order, or neither (every order) */
    int64_t from;         /* first seq it may get */
    int64_t *got;
    size_t ngot, capgot;
    size_t queued; /* sent, not read by the client yet */
    size_t cap;    /* RPC_AGAIN at this many queued */
    bool full;     /* said RPC_AGAIN, no ready yet */
    bool ended;
    rpc_status code;
} msub;

static int m_send(void *arg, const store_event *e)
{
    msub *m = arg;
    cr_assert(!m->full, "sent to while blocked (seq %lld)", (long long)e->seq);
    if (m->ngot == m->capgot) {
        m->capgot = m->capgot ? m->capgot * 2 : 1024;
        m->got = realloc(m->got, m->capgot * sizeof *m->got);
    }
    m->got[m->ngot++] = e->seq;
    if (++m->queued >= m->cap) {
        m->full = true;
        return RPC_AGAIN;
    }
    return 0;
}

static void m_end(void *arg, rpc_status code, const char *msg)
{
    (void)msg;
    msub *m = arg;
    cr_assert(!m->ended);
    m->ended = true;
    m->code = code;
}

/* The owner will call orders__sub_ready: its stream said AGAIN and the
 * client's reads will bring it below the mark. */
static bool m_armed(void *arg)
{
    msub *m = arg;
    return m->full;
}

static const orders_sub_ops m_ops = {.send = m_send, .end = m_end, .armed = m_armed};

/* The client reads up to n events; past the low-water mark the stream says
 * it may take more. */
static void m_read(msub *m, size_t n)
{
    m->queued -= n < m->queued ? n : m->queued;
    if (m->full && m->queued < m->cap / 4) {
        m->full = false;
        orders__sub_ready(m->s);
    }
}

static void check_armed(msub *subs, size_t n, const char *when)
{
    char why[240];
    cr_assert_eq(orders__hub_loop_check(hl, why, sizeof why), 0, "%s: %s", when, why);
    for (size_t i = 0; i < n; i++) {
        orders_sub *s = subs[i].s;
        cr_assert(!subs[i].ended && s->state != SUB_DEAD, "%s: subscriber %zu ended (%d)", when, i,
                  (int)subs[i].code);
        cr_assert_eq(s->blocked, subs[i].full, "%s: subscriber %zu: hub blocked %d, stream full %d",
                     when, i, s->blocked, subs[i].full);
        if (s->state == SUB_CATCHING) {
            cr_assert(s->blocked || s->in_sched,
                      "%s: subscriber %zu catching up at pos %lld (ring %lld..%lld) is neither "
                      "blocked nor scheduled: nothing will wake it",
                      when, i, (long long)s->pos, (long long)hl->lo, (long long)hl->hi);
            if (s->in_sched)
                cr_assert(uv_is_active((uv_handle_t *)&hl->idle),
                          "%s: subscriber %zu scheduled with the idle handle stopped", when, i);
        } else {
            cr_assert(!s->blocked, "%s: subscriber %zu live and blocked", when, i);
            if (s->all)
                cr_assert_geq(s->pos, hl->hi, "%s: subscriber %zu live at pos %lld < hi %lld", when,
                              i, (long long)s->pos, (long long)hl->hi);
        }
    }
}

static bool wants(const msub *m, const store_event *e)
{
    if (e->seq < m->from)
        return false;
    if (m->customer)
        return strcmp(m->customer, e->customer_id) == 0;
    if (m->id)
        return strcmp(m->id, e->order_id) == 0;
    return true;
}

static void fx_open(size_t ring)
{
    oms_log_set_level(getenv("HUB_LOG") ? OMS_LOG_DEBUG : OMS_LOG_OFF);
    memset(&ol, 0, sizeof ol);
    memset(&fs, 0, sizeof fs);
    cr_assert_eq(uv_loop_init(&loop), 0);
    uv_mutex_init(&fs.mu);
    ol.loop = &loop;
    hub = orders__hub_new(ring);
    hl = orders__hub_loop_open(hub, &ol);
    cr_assert_not_null(hl);
    ol.hl = hl;
    orders__hub_loop_set_source(hl, &(orders_hub_source){fake_read, fake_last, &fs});
}

static void fx_close(void)
{
    orders__hub_loop_close(hl);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
    orders__hub_free(hub);
    free(fs.evs);
    uv_mutex_destroy(&fs.mu);
}

static void run(unsigned seed, size_t ring, int rounds)
{
    srand(seed);
    fx_open(ring);
    commit(500);
    uv_run(&loop, UV_RUN_NOWAIT);

    enum { N = 8 };
    msub subs[N];
    memset(subs, 0, sizeof subs);
    for (size_t i = 0; i < N; i++) {
        msub *m = &subs[i];
        m->cap = 4 + (size_t)rand() % 300;
        if (i % 4 == 2)
            m->customer = "c-3";
        if (i % 4 == 3)
            m->id = "o-42";
        int64_t since = i % 2 ? 1 + rand() % 400 : 0;
        m->from = since ? since : fake_last(&fs) + 1;
        m->s = orders__sub_new(hl, &m_ops, m);
        cr_assert_not_null(m->s);
        cr_assert_eq(orders__sub_watch(m->s, m->customer, m->id ? &m->id : NULL, m->id ? 1 : 0), 0);
        orders__sub_start(m->s, since);
        check_armed(subs, i + 1, "start");
    }
    for (int r = 0; r < rounds; r++) {
        int what = rand() % 10;
        if (what < 4) {
            commit(1 + (size_t)rand() % 64);
        } else if (what == 4 && rand() % 8 == 0) {
            /* more than the inbox holds before the loop runs: the ring restarts */
            commit(INBOX_MIN + ring + (size_t)rand() % 100);
        } else if (what < 8) {
            msub *m = &subs[rand() % N];
            m_read(m, (size_t)rand() % (m->cap + 1));
            check_armed(subs, N, "read");
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        check_armed(subs, N, "loop turn");
    }
    /* the clients read everything; the loop settles */
    for (int quiet = 0; quiet < 5;) {
        bool any = false;
        for (size_t i = 0; i < N; i++) {
            any |= subs[i].queued > 0 || subs[i].full;
            m_read(&subs[i], SIZE_MAX);
        }
        bool idle = uv_is_active((uv_handle_t *)&hl->idle);
        uv_run(&loop, UV_RUN_NOWAIT);
        check_armed(subs, N, "drain");
        quiet = any || idle ? 0 : quiet + 1;
    }
    for (size_t i = 0; i < N; i++) {
        msub *m = &subs[i];
        size_t k = 0;
        for (size_t j = 0; j < fs.n; j++) {
            if (!wants(m, &fs.evs[j]))
                continue;
            cr_assert_lt(k, m->ngot, "seed %u subscriber %zu: missing seq %lld and later (got %zu)",
                         seed, i, (long long)fs.evs[j].seq, m->ngot);
            cr_assert_eq(m->got[k], fs.evs[j].seq, "seed %u subscriber %zu: event %zu", seed, i, k);
            k++;
        }
        cr_assert_eq(k, m->ngot, "seed %u subscriber %zu: %zu extra events", seed, i, m->ngot - k);
        orders__sub_free(m->s);
        free(m->got);
    }
    fx_close();
}

TestSuite(orders_hub_wakeup, .timeout = 120);

Test(orders_hub_wakeup, small_ring_store_catch_up)
{
    for (unsigned seed = 1; seed <= 10; seed++)
        run(seed, 64, 2000);
}

Test(orders_hub_wakeup, ring_bigger_than_the_budget)
{
    for (unsigned seed = 100; seed <= 103; seed++)
        run(seed, 8192, 2000);
}

/* A catch-up read that comes back short of the ring's hi (a store read that
 * does not see the latest commits) must not count the events between the
 * page and hi as dealt with: that marked the subscriber live at hi with
 * those events never sent, and it then waited, stalled and with no error,
 * for the next commit. The ring sends what it still holds; what neither has
 * ends the call with INTERNAL (the client resumes from since_seq). */
static msub *behind(size_t ring, int64_t total, int64_t visible)
{
    srand(1);
    fx_open(ring);
    commit((size_t)total);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(hl->hi, total);
    fs.visible = visible;
    msub *m = calloc(1, sizeof *m);
    m->cap = SIZE_MAX;
    m->from = 1;
    m->s = orders__sub_new(hl, &m_ops, m);
    cr_assert_eq(orders__sub_watch(m->s, NULL, NULL, 0), 0);
    orders__sub_start(m->s, 1);
    for (int i = 0; i < 100; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    return m;
}

static void behind_free(msub *m)
{
    orders__sub_free(m->s);
    free(m->got);
    free(m);
    fx_close();
}

Test(orders_hub_wakeup, store_behind_the_ring_the_ring_sends_the_rest)
{
    /* ring 64: it holds 1937..2000; the store shows up to 1990 */
    msub *m = behind(64, 2000, 1990);
    cr_assert(!m->ended, "ended with %d", (int)m->code);
    cr_assert_eq(m->s->state, SUB_LIVE);
    cr_assert_eq(m->ngot, 2000, "got %zu of 2000 events (last seq %lld)", m->ngot,
                 m->ngot ? (long long)m->got[m->ngot - 1] : 0LL);
    for (size_t i = 0; i < m->ngot; i++)
        cr_assert_eq(m->got[i], (int64_t)i + 1);
    behind_free(m);
}

Test(orders_hub_wakeup, store_behind_the_ring_with_a_gap_ends_the_call)
{
    /* the store shows up to 1500, the ring starts at 1937: 1501..1936 are
     * nowhere; before, the subscriber went live at 2000 with them unsent */
    msub *m = behind(64, 2000, 1500);
    cr_assert_eq(m->ngot, 1500);
    cr_assert_eq(m->got[m->ngot - 1], 1500);
    cr_assert(m->ended, "not ended: state %d, pos %lld", m->s->state, (long long)m->s->pos);
    cr_assert_eq(m->code, RPC_INTERNAL);
    behind_free(m);
}

/* The check itself (orders__hub_loop_check, used by the tests above and by
 * debug builds after every hub callback) reports a subscriber whose wake-up
 * was lost: blocked while its owner will not call ready, or behind while
 * neither blocked nor scheduled. */
Test(orders_hub_wakeup, check_reports_a_lost_wake_up)
{
    fx_open(64);
    commit(10);
    uv_run(&loop, UV_RUN_NOWAIT);
    msub m;
    memset(&m, 0, sizeof m);
    m.cap = 4;
    m.s = orders__sub_new(hl, &m_ops, &m);
    cr_assert_eq(orders__sub_watch(m.s, NULL, NULL, 0), 0);
    orders__sub_start(m.s, 1); /* blocks after 4 of the 10 */
    char why[240];
    cr_assert(m.s->blocked && m.full);
    cr_assert_eq(orders__hub_loop_check(hl, why, sizeof why), 0, "%s", why);

    m.full = false; /* the owner lost its wake-up: on_ready will never come */
    cr_assert_eq(orders__hub_loop_check(hl, why, sizeof why), 1);
    cr_assert(strstr(why, "will not call on_ready"), "%s", why);

    m.s->blocked = false; /* behind, neither blocked nor scheduled */
    cr_assert_eq(orders__hub_loop_check(hl, why, sizeof why), 1);
    cr_assert(strstr(why, "neither blocked nor scheduled"), "%s", why);

    orders__hub_schedule(m.s); /* scheduled: the idle handle will pump it */
    cr_assert_eq(orders__hub_loop_check(hl, why, sizeof why), 0, "%s", why);
    m.queued = 0;
    while (m.s->state != SUB_LIVE) {
        uv_run(&loop, UV_RUN_NOWAIT);
        m_read(&m, SIZE_MAX);
    }
    cr_assert_eq(m.ngot, 10);
    cr_assert_eq(orders__hub_loop_check(hl, why, sizeof why), 0, "%s", why);
    orders__sub_free(m.s);
    free(m.got);
    fx_close();
}
