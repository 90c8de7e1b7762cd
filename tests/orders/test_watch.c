/* WatchOrders and TrackOrders end to end (src/orders/watch.c on hub.c): a
 * real rpc + http2 server on 127.0.0.1:0 (h2c) with the order system on a
 * temporary SQLite store, and a client channel, all on one loop. Orders are
 * written through the store directly (ORDER_CREATE, ORDER_SET_STATUS), so
 * their events take the real path: commit, store writer hook, hub, loop.
 * The server's ring is tiny (16 events) and its per-stream send buffer small
 * (512 bytes), so streams keep hitting RPC_AGAIN and catching up from the
 * ring and the store while new events arrive.
 */
#define ORDERS_HARNESS_FIXTURE
#include "orders_harness.h"
#include "orders/hub.h"

static void setup(void)
{
    /* streams fill up at 512 bytes: RPC_AGAIN, catch-up */
    fixture_setup("/tmp/oms-watch-XXXXXX", 16, true, 512);
}

TestSuite(watch, .init = setup, .fini = teardown, .timeout = 60);

/* --- writes: each order event through the store ------------------------------------ */

typedef struct pending {
    store_write w;
    store_order *o;
    int *left;
} pending;

static void on_written(store_write *w)
{
    pending *p = w->data;
    cr_assert_eq(w->rc, STORE_OK, "%s", w->msg);
    store_order_free(w->result);
    store_order_free(p->o);
    --*p->left;
    free(p);
}

/* Creates n orders of customer (ids into ids[] if not NULL), all submitted at
 * once so they commit in groups, and waits for them. */
static void create_orders(const char *customer, size_t n, char (*ids)[STORE_ID_MAX + 1])
{
    int left = (int)n;
    for (size_t i = 0; i < n; i++) {
        pending *p = calloc(1, sizeof *p);
        p->o = store_order_new(1);
        store_next_order_id(oms->st, p->o->id);
        if (ids)
            snprintf(ids[i], STORE_ID_MAX + 1, "%s", p->o->id);
        snprintf(p->o->customer_id, sizeof p->o->customer_id, "%s", customer);
        snprintf(p->o->lines[0].sku, sizeof p->o->lines[0].sku, "SKU-1");
        p->o->lines[0].quantity = 1;
        p->o->lines[0].unit_price_cents = 100;
        p->o->total_cents = 100;
        p->o->created_at = orders__now_ms();
        p->w.op = STORE_ORDER_CREATE;
        p->w.order = p->o;
        p->w.at = p->o->created_at;
        p->w.done = on_written;
        p->w.data = p;
        p->left = &left;
        store_submit(ol->sl, &p->w);
    }
    while (left > 0)
        uv_run(&loop, UV_RUN_ONCE);
}

static void set_status(const char *id, int status)
{
    int left = 1;
    pending *p = calloc(1, sizeof *p);
    p->w.op = STORE_ORDER_SET_STATUS;
    snprintf(p->w.order_id, sizeof p->w.order_id, "%s", id);
    p->w.to_status = status;
    p->w.allowed_from = orders__allowed_from(status);
    p->w.at = orders__now_ms();
    p->w.done = on_written;
    p->w.data = p;
    p->left = &left;
    store_submit(ol->sl, &p->w);
    while (left > 0)
        uv_run(&loop, UV_RUN_ONCE);
}

/* --- a client stream that records what it gets ------------------------------------ */

typedef struct stream {
    rpc_client_call *call;
    int64_t seqs[4096];
    char ids[4096][STORE_ID_MAX + 1];
    size_t n;
    bool done;
    rpc_status code;
    char msg[256];
} stream;

static void on_event(rpc_client_call *c, void *data, const Oms__V1__OrderEvent *m)
{
    (void)c;
    stream *s = data;
    cr_assert_lt(s->n, 4096);
    s->seqs[s->n] = m->seq;
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", m->order_id);
    s->n++;
}

static void on_end(rpc_client_call *c, void *data, rpc_status code, const char *message,
                   const rpc_metadata *trailers)
{
    (void)c;
    (void)trailers;
    stream *s = data;
    s->done = true;
    s->code = code;
    snprintf(s->msg, sizeof s->msg, "%s", message);
    s->call = NULL;
}

static const Oms__V1__OrderService_WatchOrders_Callbacks watch_cb = {.on_message = on_event,
                                                                     .on_status = on_end};
static const Oms__V1__OrderService_TrackOrders_Callbacks track_cb = {.on_message = on_event,
                                                                     .on_status = on_end};

static stream *watch(const char *customer, const char *const *ids, size_t n, int64_t since)
{
    stream *s = calloc(1, sizeof *s);
    Oms__V1__WatchOrdersRequest req = OMS__V1__WATCH_ORDERS_REQUEST__INIT;
    req.customer_id = (char *)(customer ? customer : "");
    req.order_ids = (char **)ids;
    req.n_order_ids = n;
    req.since_seq = since;
    s->call = oms__v1__order_service__watch_orders__call(chan, &req, NULL, &watch_cb, s);
    cr_assert_not_null(s->call);
    return s;
}

static void wait_events(stream *s, size_t n)
{
    for (int i = 0; i < 2000 && s->n < n && !s->done; i++)
        run_for(2);
    cr_assert_geq(s->n, n, "got %zu of %zu events (%s %s)", s->n, n,
                  s->done ? rpc_status_name((int)s->code) : "running", s->msg);
}

static void stop(stream *s)
{
    if (s->call)
        rpc_client_call_cancel(s->call);
    run_until(&s->done);
    free(s);
}

static void track_send(stream *s, bool subscribe, const char *const *ids, size_t n, int64_t since)
{
    Oms__V1__TrackRequest req = OMS__V1__TRACK_REQUEST__INIT;
    Oms__V1__TrackSubscribe sub = OMS__V1__TRACK_SUBSCRIBE__INIT;
    Oms__V1__TrackUnsubscribe uns = OMS__V1__TRACK_UNSUBSCRIBE__INIT;
    if (subscribe) {
        sub.order_ids = (char **)ids;
        sub.n_order_ids = n;
        sub.since_seq = since;
        req.action_case = OMS__V1__TRACK_REQUEST__ACTION_SUBSCRIBE;
        req.subscribe = &sub;
    } else {
        uns.order_ids = (char **)ids;
        uns.n_order_ids = n;
        req.action_case = OMS__V1__TRACK_REQUEST__ACTION_UNSUBSCRIBE;
        req.unsubscribe = &uns;
    }
    cr_assert_geq(oms__v1__order_service__track_orders__client_send(s->call, &req), 0);
}

/* --- tests -------------------------------------------------------------------------- */

Test(watch, replay_from_the_store_then_live_without_gap_or_duplicate)
{
    create_orders("c-1", 100, NULL); /* seqs 1..100; the ring keeps 16 */
    stream *s = watch(NULL, NULL, 0, 5);
    for (int i = 0; i < 10; i++) {
        create_orders(i % 2 ? "c-1" : "c-2", 20, NULL); /* while it replays */
        run_for(1);
    }
    wait_events(s, 296);
    run_for(20);
    cr_assert_eq(s->n, 296);
    for (size_t i = 0; i < s->n; i++)
        cr_assert_eq(s->seqs[i], (int64_t)i + 5, "event %zu is seq %lld", i, (long long)s->seqs[i]);
    cr_assert(!s->done);
    orders_hub_stats st;
    orders__hub_loop_stats(ol->hl, &st);
    cr_assert_gt(st.store_reads, 0, "caught up through the store");
    cr_assert_gt(st.blocked, 0, "the stream was full at times");
    stop(s);
}

Test(watch, since_zero_customer_and_order_filters)
{
    char ids[30][STORE_ID_MAX + 1];
    create_orders("c-1", 30, ids);
    stream *all = watch(NULL, NULL, 0, 0);
    stream *cust = watch("c-2", NULL, 0, 0);
    const char *two[] = {ids[3], ids[7]};
    stream *byid = watch(NULL, two, 2, 0);
    run_for(20);
    char more[10][STORE_ID_MAX + 1];
    create_orders("c-2", 10, more);
    set_status(ids[3], STORE_ORDER_CONFIRMED);  /* 41 */
    set_status(ids[5], STORE_ORDER_CANCELLED);  /* 42 */
    set_status(more[0], STORE_ORDER_CONFIRMED); /* 43 */
    set_status(ids[7], STORE_ORDER_CANCELLED);  /* 44 */
    wait_events(all, 14);
    wait_events(cust, 11);
    wait_events(byid, 2);
    run_for(20);
    cr_assert_eq(all->n, 14);
    cr_assert_eq(all->seqs[0], 31, "from now on");
    cr_assert_eq(cust->n, 11);
    cr_assert_eq(cust->seqs[10], 43);
    cr_assert_eq(byid->n, 2);
    cr_assert_eq(byid->seqs[0], 41);
    cr_assert_str_eq(byid->ids[0], ids[3]);
    cr_assert_eq(byid->seqs[1], 44);
    stop(all);
    stop(cust);
    stop(byid);
}

Test(watch, invalid_requests)
{
    create_orders("c-1", 3, NULL);
    stream *s = watch(NULL, NULL, 0, -1);
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_INVALID_ARGUMENT, "%s", s->msg);
    free(s);
    s = watch(NULL, NULL, 0, 5); /* the next seq is 4 */
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_OUT_OF_RANGE, "%s", s->msg);
    free(s);
    s = watch(NULL, NULL, 0, 4); /* nothing yet: stays open */
    run_for(20);
    cr_assert(!s->done);
    stop(s);
    const char *bad[] = {"o-1", "o 2"};
    s = watch(NULL, bad, 2, 0);
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_INVALID_ARGUMENT);
    cr_assert_str_eq(s->msg, "order_ids[1]: only [A-Za-z0-9._-] allowed, ' ' at byte 1");
    free(s);
    s = watch("c-1-but-much-too-long-for-an-id-xxxxxx", NULL, 0, 0);
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_INVALID_ARGUMENT);
    cr_assert_str_eq(s->msg, "customer_id: at most 31 bytes, 38 given");
    free(s);
    static const char *many[ORDERS_SUB_MAX_IDS + 1];
    for (size_t i = 0; i <= ORDERS_SUB_MAX_IDS; i++)
        many[i] = "o-1";
    s = watch(NULL, many, ORDERS_SUB_MAX_IDS + 1, 0);
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_INVALID_ARGUMENT);
    cr_assert_str_eq(s->msg, "order_ids: 0..1000 allowed, 1001 given");
    free(s);
}

Test(watch, track_subscribe_unsubscribe_half_close)
{
    char ids[4][STORE_ID_MAX + 1];
    create_orders("c-1", 4, ids); /* 1..4 */
    stream *s = calloc(1, sizeof *s);
    s->call = oms__v1__order_service__track_orders__call(chan, NULL, &track_cb, s);
    const char *a[] = {ids[0]};
    track_send(s, true, a, 1, 0);
    run_for(20);
    set_status(ids[0], STORE_ORDER_CONFIRMED); /* 5 */
    set_status(ids[1], STORE_ORDER_CONFIRMED); /* 6: not tracked yet */
    wait_events(s, 1);
    cr_assert_eq(s->seqs[0], 5);
    const char *b[] = {ids[1], ids[0]};
    track_send(s, true, b, 2, 1); /* ids[1] from the start: 2 and 6; ids[0] as it was */
    wait_events(s, 3);
    run_for(20);
    cr_assert_eq(s->n, 3);
    cr_assert_eq(s->seqs[1], 2);
    cr_assert_eq(s->seqs[2], 6);
    track_send(s, false, a, 1, 0);
    run_for(20);
    set_status(ids[0], STORE_ORDER_SHIPPED);   /* 7: unsubscribed */
    set_status(ids[1], STORE_ORDER_CANCELLED); /* 8 */
    wait_events(s, 4);
    run_for(20);
    cr_assert_eq(s->n, 4);
    cr_assert_eq(s->seqs[3], 8);
    rpc_client_call_close_send(s->call);
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_OK, "%s", s->msg);
    free(s);

    /* an empty subscribe is refused */
    s = calloc(1, sizeof *s);
    s->call = oms__v1__order_service__track_orders__call(chan, NULL, &track_cb, s);
    track_send(s, true, NULL, 0, 0);
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_INVALID_ARGUMENT);
    free(s);
}

Test(watch, drain_ends_streams_with_a_resume_point)
{
    create_orders("c-1", 10, NULL);
    stream *s = watch(NULL, NULL, 0, 3);
    wait_events(s, 8);
    orders_loop_drain(oms, &loop);
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_UNAVAILABLE);
    cr_assert_str_eq(s->msg, "server shutting down; resume with since_seq=11");
    free(s);
    s = watch(NULL, NULL, 0, 11);
    run_until(&s->done);
    cr_assert_eq(s->code, RPC_UNAVAILABLE, "a draining loop takes no new subscriber");
    free(s);
}

Test(watch, many_streams_on_one_connection_get_each_event)
{
    enum { N = 500 };
    static stream *s[N];
    char ids[1][STORE_ID_MAX + 1];
    for (int i = 0; i < N; i++)
        s[i] = watch(i % 2 ? "c-7" : NULL, NULL, 0, 0);
    orders_hub_stats st;
    for (int i = 0; i < 2000; i++) {
        orders__hub_loop_stats(ol->hl, &st);
        if (st.live == N)
            break;
        run_for(2);
    }
    cr_assert_eq(st.live, N, "%zu of %d subscribed", st.live, N);
    create_orders("c-7", 1, ids);
    create_orders("c-8", 1, NULL);
    for (int i = 0; i < N; i++)
        wait_events(s[i], i % 2 ? 1 : 2);
    run_for(20);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(s[i]->n, i % 2 ? 1u : 2u, "stream %d", i);
        cr_assert_str_eq(s[i]->ids[0], ids[0]);
        stop(s[i]);
    }
}
