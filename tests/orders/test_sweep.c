/* Split mode's start-up sweep (sweep.c): an orders process that reserved at
 * the inventory service under ids whose orders it never stored releases
 * those reservations at its next start, and only those.
 *
 * Node A (customers and inventory) serves on a loop of its own thread; the
 * order side is an orders object hosting only the order service, attached to
 * the test thread's loop (unserved), driven through its internals. */
#include "orders_harness.h"

/* Node A: customers and inventory. */
static void node_start(node *n)
{
    node_mkdir(n, "/tmp/oms-sweep-test-XXXXXX");
    orders_config cfg;
    char url[128];
    node_config(&cfg, n, url, sizeof url);
    cfg.services = ORDERS_SVC_CUSTOMERS | ORDERS_SVC_INVENTORY;
    node_serve(n, &cfg, 0);
}

static char msg[256];

static int64_t reserved(rpc_channel *ch, const char *sku)
{
    Oms__V1__GetProductRequest req = OMS__V1__GET_PRODUCT_REQUEST__INIT;
    req.sku = (char *)sku;
    Oms__V1__Product *p = NULL;
    rpc_status st =
        oms__v1__inventory_service__get_product__blocking(ch, &req, &p, NULL, msg, sizeof msg);
    cr_assert_eq(st, RPC_OK, "%s", msg);
    int64_t r = p->reserved;
    oms__v1__product__free_unpacked(p, NULL);
    return r;
}

static void on_turn_timer(uv_timer_t *t)
{
    (void)t;
}

/* One turn of the client loop that waits at most ms for something to happen
 * (I/O or a timer of the code under test), instead of sleeping beside it. */
static void cloop_turn(uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&cloop, &t);
    uv_timer_start(&t, on_turn_timer, ms, 0);
    uv_run(&cloop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&cloop, UV_RUN_NOWAIT); /* the timer's close, before t goes */
}

/* Waits (running the client loop, up to 10 s) for sku's reserved to be want. */
static int64_t wait_reserved(rpc_channel *ch, const char *sku, int64_t want)
{
    int64_t r = reserved(ch, sku);
    for (int i = 0; i < 1000 && r != want; i++) {
        cloop_turn(10);
        r = reserved(ch, sku);
    }
    return r;
}

/* Runs the client loop until b's sweep is idle (orders__sweep_idle), up to
 * 10 s; returns whether it is. */
static bool wait_sweep_idle(orders *b)
{
    orders_loop *ol = orders__loop(b, &cloop);
    for (int i = 0; i < 10000 && !orders__sweep_idle(ol); i++) {
        cloop_turn(1);
    }
    return orders__sweep_idle(ol);
}

static void count_closing(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h))
        ++*(int *)arg;
}

/* Detaches and closes o. The client loop keeps the test's channel (it never
 * runs dry): run it until no handle is closing any more (o's handles and
 * channels closed at the detach), up to 10 s. */
static void orders_split_close(orders *o)
{
    orders_loop_detach(o, &cloop);
    int closing = 1;
    for (int i = 0; i < 10000 && closing; i++) {
        cloop_turn(1);
        closing = 0;
        uv_walk(&cloop, count_closing, &closing);
    }
    cr_assert_eq(closing, 0, "the detached loop's handles closed");
    orders_close(o);
}

typedef struct outcome {
    bool done;
    rpc_status code;
    char msg[256];
    char id[STORE_ID_MAX + 1];
} outcome;

static void on_reserve(void *arg, rpc_status code, const char *m, const store_line *lines, size_t n,
                       const orders_err *err)
{
    (void)lines;
    (void)n;
    (void)err;
    outcome *o = arg;
    o->done = true;
    o->code = code;
    snprintf(o->msg, sizeof o->msg, "%s", m);
}

static void on_created(void *arg, rpc_status code, const char *m, const store_order *order,
                       const orders_err *err)
{
    (void)err;
    outcome *o = arg;
    o->done = true;
    o->code = code;
    snprintf(o->msg, sizeof o->msg, "%s", m);
    if (order)
        snprintf(o->id, sizeof o->id, "%s", order->id);
}

/* Reserves qty of sku at the inventory under a fresh id of b, as CreateOrder
 * does first, and stores no order for it: what a crash right after the
 * Reserve leaves. */
static void reserve_orphan(orders *b, const char *sku, int64_t qty, char id[STORE_ID_MAX + 1])
{
    orders_loop *ol = orders__loop(b, &cloop);
    cr_assert_eq(store_next_order_id(b->st, id), STORE_OK);
    store_line l = {.quantity = qty};
    snprintf(l.sku, sizeof l.sku, "%s", sku);
    outcome o = {0};
    ol->inventory->reserve(ol, id, &l, 1, 0, NULL, on_reserve, &o);
    run_until(&o.done);
    cr_assert_eq(o.code, RPC_OK, "%s", o.msg);
}

/* A real order through the CreateOrder flow. */
static void create_order(orders *b, const char *cust, const char *sku, int64_t qty,
                         char id[STORE_ID_MAX + 1])
{
    Oms__V1__CreateOrderLine line = OMS__V1__CREATE_ORDER_LINE__INIT;
    line.sku = (char *)sku;
    line.quantity = qty;
    Oms__V1__CreateOrderLine *lp = &line;
    Oms__V1__CreateOrderRequest req = OMS__V1__CREATE_ORDER_REQUEST__INIT;
    req.customer_id = (char *)cust;
    req.n_lines = 1;
    req.lines = &lp;
    outcome o = {0};
    orders__create_order(orders__loop(b, &cloop), &req, NULL, 2000, NULL, on_created, &o);
    run_until(&o.done);
    cr_assert_eq(o.code, RPC_OK, "%s", o.msg);
    snprintf(id, STORE_ID_MAX + 1, "%s", o.id);
}

static void setup_a(node *a, rpc_channel **ch, char cust[32])
{
    node_start(a);
    client_init();
    *ch = channel_to(a->port);
    Oms__V1__CreateCustomerRequest cr = OMS__V1__CREATE_CUSTOMER_REQUEST__INIT;
    cr.name = "Ada";
    cr.email = "ada@example.com";
    Oms__V1__Customer *c = NULL;
    cr_assert_eq(
        oms__v1__customer_service__create_customer__blocking(*ch, &cr, &c, NULL, msg, sizeof msg),
        RPC_OK, "%s", msg);
    snprintf(cust, 32, "%s", c->id);
    oms__v1__customer__free_unpacked(c, NULL);
    const char *skus[] = {"S-1", "S-2"};
    for (int i = 0; i < 2; i++) {
        Oms__V1__UpsertProductRequest ur = OMS__V1__UPSERT_PRODUCT_REQUEST__INIT;
        ur.sku = (char *)skus[i];
        ur.name = "thing";
        ur.unit_price_cents = 100;
        Oms__V1__Product *p = NULL;
        cr_assert_eq(oms__v1__inventory_service__upsert_product__blocking(*ch, &ur, &p, NULL, msg,
                                                                          sizeof msg),
                     RPC_OK, "%s", msg);
        oms__v1__product__free_unpacked(p, NULL);
        Oms__V1__AdjustStockRequest ar = OMS__V1__ADJUST_STOCK_REQUEST__INIT;
        ar.sku = (char *)skus[i];
        ar.delta = 1000;
        cr_assert_eq(
            oms__v1__inventory_service__adjust_stock__blocking(*ch, &ar, &p, NULL, msg, sizeof msg),
            RPC_OK, "%s", msg);
        oms__v1__product__free_unpacked(p, NULL);
    }
}

static void teardown(node *a, rpc_channel *ch)
{
    channel_free(ch);
    client_fini();
    node_free_ex(a, false); /* no idle check: as before */
}

Test(orders_sweep, restart_releases_reservations_without_orders, .timeout = 60)
{
    node a;
    rpc_channel *ch;
    char cust[32], target[64];
    setup_a(&a, &ch, cust);
    snprintf(target, sizeof target, "127.0.0.1:%d", a.port);

    orders *b = orders_split_open(a.dir, target);
    char real1[STORE_ID_MAX + 1], real2[STORE_ID_MAX + 1], orphan[STORE_ID_MAX + 1];
    create_order(b, cust, "S-1", 3, real1);
    reserve_orphan(b, "S-1", 5, orphan);
    reserve_orphan(b, "S-2", 7, orphan);
    /* many ids taken without a reservation: more than the sweep has in flight */
    for (int i = 0; i < 150; i++) {
        char id[STORE_ID_MAX + 1];
        cr_assert_eq(store_next_order_id(b->st, id), STORE_OK);
    }
    reserve_orphan(b, "S-2", 11, orphan);
    create_order(b, cust, "S-2", 2, real2);
    cr_assert_eq(reserved(ch, "S-1"), 3 + 5);
    cr_assert_eq(reserved(ch, "S-2"), 7 + 11 + 2);
    /* the process goes away before those orders were stored (the close does
     * no sweep of its own) */
    orders_split_close(b);
    cr_assert_eq(reserved(ch, "S-1"), 3 + 5, "nothing released at close");

    b = orders_split_open(a.dir, target); /* the sweep starts with the loop */
    cr_expect_eq(wait_reserved(ch, "S-1", 3), 3, "the orphan's stock is back");
    cr_expect_eq(wait_reserved(ch, "S-2", 2), 2, "the real order's stays");
    /* the range is marked swept once its releases are done */
    store_id_range r[4];
    size_t n = store_pending_sweeps(b->st, r, 4);
    cr_assert_eq(n, 1, "one earlier run");
    cr_assert(wait_sweep_idle(b), "the sweep finishes its range");
    orders_split_close(b);

    b = orders_split_open(a.dir, target);
    cr_expect_eq(store_pending_sweeps(b->st, NULL, 0), 0, "swept, and the run after it took no id");
    store_order *o = NULL;
    cr_assert_eq(store_get_order(orders__loop(b, &cloop)->sl, real1, &o), STORE_OK);
    store_order_free(o);
    orders_split_close(b);
    cr_expect_eq(reserved(ch, "S-1"), 3);
    cr_expect_eq(reserved(ch, "S-2"), 2);
    teardown(&a, ch);
}

/* An inventory that is away at the start leaves the range for the next one. */
Test(orders_sweep, failed_release_keeps_range, .timeout = 60)
{
    node a;
    rpc_channel *ch;
    char cust[32], target[64];
    setup_a(&a, &ch, cust);
    snprintf(target, sizeof target, "127.0.0.1:%d", a.port);
    orders *b = orders_split_open(a.dir, target);
    char orphan[STORE_ID_MAX + 1];
    reserve_orphan(b, "S-1", 4, orphan);
    orders_split_close(b);

    /* a start against a target where nothing listens: the releases fail */
    b = orders_split_open(a.dir, "127.0.0.1:1");
    cr_assert(wait_sweep_idle(b), "the sweep's releases failed");
    orders_split_close(b);
    cr_assert_eq(reserved(ch, "S-1"), 4);

    b = orders_split_open(a.dir, target);
    cr_expect_eq(store_pending_sweeps(b->st, NULL, 0), 1,
                 "the range stayed (the run in between took no id: it left none)");
    cr_expect_eq(wait_reserved(ch, "S-1", 0), 0, "released by the next start");
    orders_split_close(b);
    teardown(&a, ch);
}
