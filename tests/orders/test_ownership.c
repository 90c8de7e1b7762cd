/* Order ownership (issue 12 section 3): a caller whose principal carries a
 * customer_id acts for that customer only. A real rpc + http2 server on
 * 127.0.0.1:0 (h2c) with the order system on a temporary SQLite store and a
 * client channel, on one loop; a test interceptor attaches the principal the
 * request's x-test-customer header names ("*": a principal without
 * customer_id, as an admin's; no header: no principal, as with auth off).
 * The event ring is tiny (16), so watchers replay from the store.
 */
#define ORDERS_HARNESS_FIXTURE
#include "orders_harness.h"

/* --- the test authentication interceptor ------------------------------------------- */

static rpc_intercept_action on_test_auth(rpc_call *c, void *data, void **state)
{
    (void)data;
    (void)state;
    size_t len;
    const uint8_t *v = rpc_metadata_get(rpc_call_metadata(c), "x-test-customer", &len);
    if (!v)
        return RPC_INTERCEPT_CONTINUE;
    char cust[64];
    snprintf(cust, sizeof cust, "%.*s", (int)len, (const char *)v);
    rpc_principal p = {.source = RPC_PRINCIPAL_TOKEN,
                       .subject = "test",
                       .customer_id = strcmp(cust, "*") == 0 ? NULL : cust,
                       .all_scopes = true};
    cr_assert_eq(rpc_call_set_principal(c, &p), 0);
    return RPC_INTERCEPT_CONTINUE;
}

static const rpc_interceptor test_auth = {.name = "test-auth", .on_start = on_test_auth};

/* Who the next calls act as: NULL (no principal), "*" (no customer_id), or a
 * customer id. */
static const char *acting;
static rpc_md act_md;

static rpc_call_opts *as_opts(void)
{
    static rpc_call_opts o;
    o = (rpc_call_opts){.timeout_ms = 10000};
    if (acting) {
        act_md = (rpc_md){"x-test-customer", (const uint8_t *)acting, strlen(acting)};
        o.md = &act_md;
        o.nmd = 1;
    }
    return &o;
}

/* --- store setup ------------------------------------------------------------------------ */

static char c1[STORE_ID_MAX + 1], c2[STORE_ID_MAX + 1];

static void on_write_done(store_write *w)
{
    *(bool *)w->data = true;
}

static store_rc store_do(store_write *w)
{
    bool done = false;
    w->done = on_write_done;
    w->data = &done;
    w->at = orders__now_ms();
    store_submit(ol->sl, w);
    run_until(&done);
    return w->rc;
}

static void add_customer(const char *name, char id[STORE_ID_MAX + 1])
{
    store_write w = {0};
    w.op = STORE_CUSTOMER_CREATE;
    snprintf(w.customer.name, sizeof w.customer.name, "%s", name);
    snprintf(w.customer.email, sizeof w.customer.email, "%s@example.com", name);
    cr_assert_eq(store_do(&w), STORE_OK, "%s", w.msg);
    snprintf(id, STORE_ID_MAX + 1, "%s", w.customer.id);
}

static void add_product(const char *sku, int64_t price, int64_t stock)
{
    store_write w = {0};
    w.op = STORE_PRODUCT_UPSERT;
    snprintf(w.product.sku, sizeof w.product.sku, "%s", sku);
    snprintf(w.product.name, sizeof w.product.name, "product %s", sku);
    w.product.unit_price_cents = price;
    cr_assert_eq(store_do(&w), STORE_OK, "%s", w.msg);
    store_write s = {0};
    s.op = STORE_STOCK_ADJUST;
    snprintf(s.product.sku, sizeof s.product.sku, "%s", sku);
    s.delta = stock;
    cr_assert_eq(store_do(&s), STORE_OK, "%s", s.msg);
}

static void setup(void)
{
    fixture_setup("/tmp/oms-ownership-XXXXXX", 16, true, 1024);
    cr_assert_eq(rpc_server_add_interceptor(rsrv, &test_auth, NULL), 0);
    add_customer("ada", c1);
    add_customer("bob", c2);
    add_product("SKU-A", 100, 1000000);
    acting = NULL;
}

TestSuite(ownership, .init = setup, .fini = teardown, .timeout = 60);

/* --- unary calls --------------------------------------------------------------------- */

static char msg[256];
static uint8_t *det; /* the last call's status details (malloc'ed), NULL: none */
static size_t det_len;

static rpc_call_opts *det_opts(void)
{
    free(det);
    det = NULL;
    det_len = 0;
    rpc_call_opts *o = as_opts();
    o->details = &det;
    o->details_len = &det_len;
    return o;
}

/* CreateOrder of one SKU-A for customer; the new id into id (may be NULL). */
static rpc_status create(const char *customer, char *id)
{
    Oms__V1__CreateOrderLine l = OMS__V1__CREATE_ORDER_LINE__INIT;
    Oms__V1__CreateOrderLine *lp[1] = {&l};
    l.sku = "SKU-A";
    l.quantity = 1;
    Oms__V1__CreateOrderRequest req = OMS__V1__CREATE_ORDER_REQUEST__INIT;
    req.customer_id = (char *)customer;
    req.lines = lp;
    req.n_lines = 1;
    Oms__V1__Order *o = NULL;
    rpc_status st =
        oms__v1__order_service__create_order__blocking(chan, &req, &o, det_opts(), msg, sizeof msg);
    if (o) {
        if (id)
            snprintf(id, STORE_ID_MAX + 1, "%s", o->id);
        oms__v1__order__free_unpacked(o, NULL);
    }
    return st;
}

static void create_ok(const char *customer, char *id)
{
    cr_assert_eq(create(customer, id), RPC_OK, "%s", msg);
}

/* GetOrder; the order's status and version into status, version if OK. */
static rpc_status get(const char *id, int *status, int64_t *version)
{
    Oms__V1__GetOrderRequest req = OMS__V1__GET_ORDER_REQUEST__INIT;
    req.id = (char *)id;
    Oms__V1__Order *o = NULL;
    rpc_status st =
        oms__v1__order_service__get_order__blocking(chan, &req, &o, det_opts(), msg, sizeof msg);
    if (o) {
        if (status)
            *status = o->status;
        if (version)
            *version = o->version;
        oms__v1__order__free_unpacked(o, NULL);
    }
    return st;
}

static rpc_status cancel(const char *id)
{
    Oms__V1__CancelOrderRequest req = OMS__V1__CANCEL_ORDER_REQUEST__INIT;
    req.id = (char *)id;
    req.reason = "changed my mind";
    Oms__V1__Order *o = NULL;
    rpc_status st =
        oms__v1__order_service__cancel_order__blocking(chan, &req, &o, det_opts(), msg, sizeof msg);
    if (o)
        oms__v1__order__free_unpacked(o, NULL);
    return st;
}

static rpc_status update(const char *id, int status)
{
    Oms__V1__UpdateOrderStatusRequest req = OMS__V1__UPDATE_ORDER_STATUS_REQUEST__INIT;
    req.id = (char *)id;
    req.status = (Oms__V1__OrderStatus)status;
    Oms__V1__Order *o = NULL;
    rpc_status st = oms__v1__order_service__update_order_status__blocking(
        chan, &req, &o, det_opts(), msg, sizeof msg);
    if (o)
        oms__v1__order__free_unpacked(o, NULL);
    return st;
}

/* One failed answer: code, message with the id replaced by "<ID>", details. */
typedef struct answer {
    rpc_status code;
    char msg[256];
    uint8_t det[512];
    size_t det_len;
} answer;

static answer take(rpc_status code, const char *id)
{
    answer a = {.code = code};
    const char *at = strstr(msg, id);
    if (at)
        snprintf(a.msg, sizeof a.msg, "%.*s<ID>%s", (int)(at - msg), msg, at + strlen(id));
    else
        snprintf(a.msg, sizeof a.msg, "%s", msg);
    cr_assert_leq(det_len, sizeof a.det);
    if (det_len)
        memcpy(a.det, det, det_len);
    a.det_len = det_len;
    return a;
}

static void expect_same(const answer *foreign, const answer *missing, const char *what)
{
    cr_expect_eq(foreign->code, missing->code, "%s: %s vs %s", what, rpc_status_name(foreign->code),
                 rpc_status_name(missing->code));
    cr_expect_str_eq(foreign->msg, missing->msg, "%s", what);
    cr_expect_eq(foreign->det_len, missing->det_len, "%s: details", what);
    cr_expect_eq(memcmp(foreign->det, missing->det, foreign->det_len), 0, "%s: details", what);
}

/* An order id that does not exist (messages are compared with the id cut out). */
#define MISSING "o-999999"

/* --- CreateOrder, ImportOrders -------------------------------------------------------- */

Test(ownership, create_for_another_customer_is_denied)
{
    acting = c1;
    cr_expect_eq(create(c2, NULL), RPC_PERMISSION_DENIED);
    char want[128];
    snprintf(want, sizeof want, "this token acts for customer %s only", c1);
    cr_expect_str_eq(msg, want);
    cr_expect_null(strstr(msg, c2), "names no other customer");
    create_ok(c1, NULL);
    /* no customer_id, or no principal: any customer */
    acting = "*";
    create_ok(c2, NULL);
    acting = NULL;
    create_ok(c2, NULL);
    /* nothing was created for c2 by the refused call */
    store_order *page[8];
    store_order_filter f = {.customer_id = c2};
    long n = store_list_orders(ol->sl, &f, "", page, 8);
    cr_expect_eq(n, 2);
    for (long i = 0; i < n; i++)
        store_order_free(page[i]);
}

typedef struct import_run {
    bool done;
    rpc_status code;
    int64_t created, failed;
    size_t n;
    int codes[8];
    char messages[8][160];
} import_run;

static void on_import_msg(rpc_client_call *c, void *data, const Oms__V1__ImportOrdersSummary *m)
{
    (void)c;
    import_run *ir = data;
    ir->created = m->created;
    ir->failed = m->failed;
    ir->n = m->n_results;
    for (size_t i = 0; i < m->n_results && i < 8; i++) {
        ir->codes[i] = m->results[i]->code;
        snprintf(ir->messages[i], sizeof ir->messages[i], "%s", m->results[i]->message);
    }
}

static void on_import_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                             const rpc_metadata *trailers)
{
    (void)c;
    (void)message;
    (void)trailers;
    import_run *ir = data;
    ir->code = code;
    ir->done = true;
}

static const Oms__V1__OrderService_ImportOrders_Callbacks import_cb = {
    .on_message = on_import_msg, .on_status = on_import_status};

Test(ownership, import_rows_for_another_customer_fail_alone)
{
    acting = c1;
    import_run ir = {0};
    rpc_client_call *call =
        oms__v1__order_service__import_orders__call(chan, as_opts(), &import_cb, &ir);
    cr_assert_not_null(call);
    const char *custs[] = {c1, c2, c1};
    for (int i = 0; i < 3; i++) {
        Oms__V1__CreateOrderLine l = OMS__V1__CREATE_ORDER_LINE__INIT;
        Oms__V1__CreateOrderLine *lp[1] = {&l};
        l.sku = "SKU-A";
        l.quantity = 1;
        Oms__V1__CreateOrderRequest req = OMS__V1__CREATE_ORDER_REQUEST__INIT;
        req.customer_id = (char *)custs[i];
        req.lines = lp;
        req.n_lines = 1;
        Oms__V1__ImportOrderRow row = OMS__V1__IMPORT_ORDER_ROW__INIT;
        row.row_id = "r";
        row.order = &req;
        cr_assert_geq(oms__v1__order_service__import_orders__client_send(call, &row), 0);
    }
    rpc_client_call_close_send(call);
    run_until(&ir.done);
    cr_assert_eq(ir.code, RPC_OK);
    cr_expect_eq(ir.created, 2);
    cr_expect_eq(ir.failed, 1);
    cr_assert_eq(ir.n, 3);
    cr_expect_eq(ir.codes[0], RPC_OK);
    cr_expect_eq(ir.codes[1], RPC_PERMISSION_DENIED);
    char want[128];
    snprintf(want, sizeof want, "this token acts for customer %s only", c1);
    cr_expect_str_eq(ir.messages[1], want);
    cr_expect_eq(ir.codes[2], RPC_OK);
}

/* --- GetOrder, CancelOrder, UpdateOrderStatus ----------------------------------------- */

Test(ownership, another_customers_order_is_not_found_like_a_missing_one)
{
    char o1[STORE_ID_MAX + 1], o2[STORE_ID_MAX + 1];
    create_ok(c1, o1);
    create_ok(c2, o2);

    acting = c1;
    answer foreign = take(get(o2, NULL, NULL), o2);
    answer missing = take(get(MISSING, NULL, NULL), MISSING);
    cr_expect_eq(missing.code, RPC_NOT_FOUND);
    expect_same(&foreign, &missing, "GetOrder");

    foreign = take(cancel(o2), o2);
    missing = take(cancel(MISSING), MISSING);
    cr_expect_eq(missing.code, RPC_NOT_FOUND);
    expect_same(&foreign, &missing, "CancelOrder");

    foreign = take(update(o2, STORE_ORDER_CONFIRMED), o2);
    missing = take(update(MISSING, STORE_ORDER_CONFIRMED), MISSING);
    cr_expect_eq(missing.code, RPC_NOT_FOUND);
    expect_same(&foreign, &missing, "UpdateOrderStatus");

    /* o2 is untouched; c1's own order works */
    acting = "*";
    int status = 0;
    int64_t version = 0;
    cr_assert_eq(get(o2, &status, &version), RPC_OK, "%s", msg);
    cr_expect_eq(status, STORE_ORDER_PENDING);
    cr_expect_eq(version, 1);
    acting = c1;
    cr_expect_eq(get(o1, NULL, NULL), RPC_OK, "%s", msg);
    cr_expect_eq(update(o1, STORE_ORDER_CONFIRMED), RPC_OK, "%s", msg);
    cr_expect_eq(cancel(o1), RPC_OK, "%s", msg);
    /* without a principal, everything as before */
    acting = NULL;
    cr_expect_eq(cancel(o2), RPC_OK, "%s", msg);
    free(det);
    det = NULL;
}

/* --- ListOrders ------------------------------------------------------------------------ */

typedef struct listing {
    bool done;
    rpc_status code;
    size_t n;
    char ids[64][STORE_ID_MAX + 1];
    char custs[64][STORE_ID_MAX + 1];
} listing;

static void on_list_msg(rpc_client_call *c, void *data, const Oms__V1__Order *m)
{
    (void)c;
    listing *l = data;
    if (l->n < 64) {
        snprintf(l->ids[l->n], sizeof l->ids[0], "%s", m->id);
        snprintf(l->custs[l->n], sizeof l->custs[0], "%s", m->customer_id);
    }
    l->n++;
}

static void on_list_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                           const rpc_metadata *trailers)
{
    (void)c;
    (void)message;
    (void)trailers;
    listing *l = data;
    l->code = code;
    l->done = true;
}

static const Oms__V1__OrderService_ListOrders_Callbacks list_cb = {.on_message = on_list_msg,
                                                                   .on_status = on_list_status};

static void list(listing *l, const char *customer, int32_t page)
{
    memset(l, 0, sizeof *l);
    Oms__V1__ListOrdersRequest req = OMS__V1__LIST_ORDERS_REQUEST__INIT;
    req.customer_id = (char *)customer;
    req.page_size = page;
    cr_assert_not_null(
        oms__v1__order_service__list_orders__call(chan, &req, as_opts(), &list_cb, l));
    run_until(&l->done);
}

Test(ownership, list_orders_only_own_whatever_the_filter_and_page)
{
    char mine[6][STORE_ID_MAX + 1], theirs[6][STORE_ID_MAX + 1];
    for (int i = 0; i < 6; i++) {
        create_ok(c2, theirs[i]); /* interleaved, c2 first: pages must skip them */
        create_ok(c1, mine[i]);
    }
    listing l;
    acting = c1;
    for (int32_t page = 1; page <= 7; page++) {
        list(&l, "", page);
        cr_assert_eq(l.code, RPC_OK);
        cr_assert_eq(l.n, 6, "page_size %d: %zu orders", page, l.n);
        for (int i = 0; i < 6; i++)
            cr_expect_str_eq(l.ids[i], mine[i], "page_size %d, #%d", page, i);
        list(&l, c1, page);
        cr_expect_eq(l.n, 6);
        /* a filter for another customer: an empty list, whatever the page */
        list(&l, c2, page);
        cr_expect_eq(l.code, RPC_OK);
        cr_expect_eq(l.n, 0, "page_size %d: %zu of c2's orders leaked", page, l.n);
    }
    /* admins and auth off: everything */
    acting = "*";
    list(&l, "", 2);
    cr_expect_eq(l.n, 12);
    list(&l, c2, 2);
    cr_expect_eq(l.n, 6);
    acting = NULL;
    list(&l, "", 5);
    cr_expect_eq(l.n, 12);
    /* a principal bound to an empty or impossible customer sees nothing */
    acting = "";
    list(&l, "", 5);
    cr_expect_eq(l.n, 0);
    acting = "c-1000000000000000000000000000000000000";
    list(&l, "", 5);
    cr_expect_eq(l.n, 0);
}

/* --- customers ------------------------------------------------------------------------------ */

static rpc_status get_customer(const char *id)
{
    Oms__V1__GetCustomerRequest req = OMS__V1__GET_CUSTOMER_REQUEST__INIT;
    req.id = (char *)id;
    Oms__V1__Customer *r = NULL;
    rpc_status st = oms__v1__customer_service__get_customer__blocking(chan, &req, &r, det_opts(),
                                                                      msg, sizeof msg);
    if (r)
        oms__v1__customer__free_unpacked(r, NULL);
    return st;
}

typedef struct cust_listing {
    bool done;
    rpc_status code;
    size_t n;
    char ids[16][STORE_ID_MAX + 1];
} cust_listing;

static void on_cust_msg(rpc_client_call *c, void *data, const Oms__V1__Customer *m)
{
    (void)c;
    cust_listing *l = data;
    if (l->n < 16)
        snprintf(l->ids[l->n], sizeof l->ids[0], "%s", m->id);
    l->n++;
}

static void on_cust_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                           const rpc_metadata *trailers)
{
    (void)c;
    (void)message;
    (void)trailers;
    cust_listing *l = data;
    l->code = code;
    l->done = true;
}

static const Oms__V1__CustomerService_ListCustomers_Callbacks cust_cb = {
    .on_message = on_cust_msg, .on_status = on_cust_status};

static void list_customers(cust_listing *l, int32_t page)
{
    memset(l, 0, sizeof *l);
    Oms__V1__ListCustomersRequest req = OMS__V1__LIST_CUSTOMERS_REQUEST__INIT;
    req.page_size = page;
    cr_assert_not_null(
        oms__v1__customer_service__list_customers__call(chan, &req, as_opts(), &cust_cb, l));
    run_until(&l->done);
}

Test(ownership, customers_see_their_own_record_only)
{
    char c3[STORE_ID_MAX + 1];
    add_customer("cyd", c3);
    acting = c1;
    cr_expect_eq(get_customer(c1), RPC_OK, "%s", msg);
    answer foreign = take(get_customer(c2), c2);
    answer missing = take(get_customer("c-9"), "c-9");
    cr_expect_eq(missing.code, RPC_NOT_FOUND);
    expect_same(&foreign, &missing, "GetCustomer");
    cust_listing l;
    list_customers(&l, 0);
    cr_expect_eq(l.code, RPC_OK);
    cr_assert_eq(l.n, 1);
    cr_expect_str_eq(l.ids[0], c1);
    list_customers(&l, 1);
    cr_expect_eq(l.n, 1);
    list_customers(&l, -1);
    cr_expect_eq(l.code, RPC_INVALID_ARGUMENT);
    /* bound to a customer that does not exist: nothing */
    acting = "c-404";
    list_customers(&l, 0);
    cr_expect_eq(l.code, RPC_OK);
    cr_expect_eq(l.n, 0);
    acting = "*";
    list_customers(&l, 0);
    cr_expect_eq(l.n, 3);
    cr_expect_eq(get_customer(c2), RPC_OK);
    acting = NULL;
    list_customers(&l, 1);
    cr_expect_eq(l.n, 3);
    free(det);
    det = NULL;
}

/* --- WatchOrders, TrackOrders ------------------------------------------------------------- */

typedef struct stream {
    rpc_client_call *call;
    size_t n;
    char ids[256][STORE_ID_MAX + 1];
    char custs[256][STORE_ID_MAX + 1];
    int64_t versions[256];
    bool done;
    rpc_status code;
} stream;

static void on_event(rpc_client_call *c, void *data, const Oms__V1__OrderEvent *m)
{
    (void)c;
    stream *s = data;
    cr_assert_lt(s->n, 256);
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", m->order_id);
    snprintf(s->custs[s->n], sizeof s->custs[0], "%s", m->customer_id);
    s->versions[s->n] = m->version;
    s->n++;
}

static void on_stream_end(rpc_client_call *c, void *data, rpc_status code, const char *message,
                          const rpc_metadata *trailers)
{
    (void)c;
    (void)message;
    (void)trailers;
    stream *s = data;
    s->done = true;
    s->code = code;
    s->call = NULL;
}

static const Oms__V1__OrderService_WatchOrders_Callbacks watch_cb = {.on_message = on_event,
                                                                     .on_status = on_stream_end};
static const Oms__V1__OrderService_TrackOrders_Callbacks track_cb = {.on_message = on_event,
                                                                     .on_status = on_stream_end};

static stream *watch(const char *customer, const char *const *ids, size_t n)
{
    stream *s = calloc(1, sizeof *s);
    Oms__V1__WatchOrdersRequest req = OMS__V1__WATCH_ORDERS_REQUEST__INIT;
    req.customer_id = (char *)(customer ? customer : "");
    req.order_ids = (char **)ids;
    req.n_order_ids = n;
    req.since_seq = 1;
    s->call = oms__v1__order_service__watch_orders__call(chan, &req, as_opts(), &watch_cb, s);
    cr_assert_not_null(s->call);
    return s;
}

/* Runs the loop until s got the event of order id at version (events come
 * in seq order: everything before it was dealt with by then). */
static void wait_for(stream *s, const char *id, int64_t version)
{
    for (;;) {
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->ids[i], id) == 0 && s->versions[i] == version)
                return;
        cr_assert(!s->done, "the stream ended (%s) before %s v%lld", rpc_status_name(s->code), id,
                  (long long)version);
        uv_run(&loop, UV_RUN_ONCE);
    }
}

static void stop(stream *s)
{
    if (s->call)
        rpc_client_call_cancel(s->call);
    run_until(&s->done);
    free(s);
}

static void expect_only(const stream *s, const char *customer, const char *what)
{
    for (size_t i = 0; i < s->n; i++)
        cr_expect_str_eq(s->custs[i], customer, "%s: event %zu is of %s's order %s", what, i,
                         s->custs[i], s->ids[i]);
}

Test(ownership, watchers_get_their_customers_events_in_replay_and_live)
{
    /* 24 events before the watchers start (the ring keeps 16: replay reads
     * the store), 16 more while they run */
    char mine[20][STORE_ID_MAX + 1], theirs[20][STORE_ID_MAX + 1];
    for (int i = 0; i < 12; i++) {
        create_ok(c1, mine[i]);
        create_ok(c2, theirs[i]);
    }
    acting = c1;
    stream *all = watch(NULL, NULL, 0);
    stream *other = watch(c2, (const char *const[]){mine[0]}, 1);
    const char *their_ids[13];
    for (int i = 0; i < 12; i++)
        their_ids[i] = theirs[i];
    their_ids[12] = mine[0];
    stream *by_id = watch(NULL, their_ids, 13);
    acting = "*";
    stream *admin = watch(c2, NULL, 0);
    for (int i = 12; i < 20; i++) {
        create_ok(c1, mine[i]);
        create_ok(c2, theirs[i]);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(update(theirs[0], STORE_ORDER_CONFIRMED), RPC_OK, "%s", msg);
    cr_assert_eq(update(mine[0], STORE_ORDER_CONFIRMED), RPC_OK, "%s", msg); /* the last event */

    wait_for(all, mine[0], 2);
    expect_only(all, c1, "unfiltered");
    cr_expect_eq(all->n, 21, "20 creations and one update of c1's");
    wait_for(other, mine[0], 2);
    expect_only(other, c1, "c2's filter (or c1's order id)");
    cr_expect_eq(other->n, 2);
    wait_for(by_id, mine[0], 2);
    expect_only(by_id, c1, "c2's order ids (or c1's)");
    cr_expect_eq(by_id->n, 2);
    /* a principal without customer_id sees c2's */
    wait_for(admin, theirs[0], 2);
    expect_only(admin, c2, "admin with c2's filter");
    cr_expect_eq(admin->n, 21);
    stop(all);
    stop(other);
    stop(by_id);
    stop(admin);
    free(det);
    det = NULL;
}

static void track_subscribe(stream *s, const char *const *ids, size_t n)
{
    Oms__V1__TrackRequest req = OMS__V1__TRACK_REQUEST__INIT;
    Oms__V1__TrackSubscribe sub = OMS__V1__TRACK_SUBSCRIBE__INIT;
    sub.order_ids = (char **)ids;
    sub.n_order_ids = n;
    sub.since_seq = 1;
    req.action_case = OMS__V1__TRACK_REQUEST__ACTION_SUBSCRIBE;
    req.subscribe = &sub;
    cr_assert_geq(oms__v1__order_service__track_orders__client_send(s->call, &req), 0);
}

Test(ownership, track_another_customers_order_as_an_unknown_one)
{
    char mine[STORE_ID_MAX + 1], theirs[STORE_ID_MAX + 1], theirs2[STORE_ID_MAX + 1];
    for (int i = 0; i < 10; i++) /* push the orders below out of the ring */
        create_ok(c2, NULL);
    create_ok(c2, theirs);
    create_ok(c1, mine);
    for (int i = 0; i < 20; i++)
        create_ok(c2, NULL);
    acting = c1;
    stream *s = calloc(1, sizeof *s);
    s->call = oms__v1__order_service__track_orders__call(chan, as_opts(), &track_cb, s);
    cr_assert_not_null(s->call);
    track_subscribe(s, (const char *const[]){theirs, "o-unknown", mine}, 3);
    wait_for(s, mine, 1); /* replayed from the store */
    /* live: c2's change first, then c1's */
    acting = NULL;
    create_ok(c2, theirs2);
    acting = c1;
    track_subscribe(s, (const char *const[]){theirs2}, 1);
    acting = NULL;
    cr_assert_eq(update(theirs, STORE_ORDER_CONFIRMED), RPC_OK, "%s", msg);
    cr_assert_eq(update(theirs2, STORE_ORDER_CONFIRMED), RPC_OK, "%s", msg);
    cr_assert_eq(update(mine, STORE_ORDER_CONFIRMED), RPC_OK, "%s", msg);
    wait_for(s, mine, 2);
    expect_only(s, c1, "TrackOrders");
    cr_expect_eq(s->n, 2);
    cr_expect_not(s->done, "subscribing to another customer's order is not an error");
    stop(s);
    free(det);
    det = NULL;
}
