/* The order rules (src/orders/order_rules.c) and the OrderService flows
 * (order_create.c, order_service.c) end to end: a real rpc + http2 server on
 * 127.0.0.1:0 (h2c) with the order system on a temporary SQLite store, and a
 * client channel, all on one loop. The catalog is seeded through the store
 * directly, so the tests do not depend on the demo data.
 */
#define ORDERS_HARNESS_FIXTURE
#include "orders_harness.h"

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

/* --- pure rules ------------------------------------------------------------------- */

Test(order_rules, transition_table)
{
    /* The only legal moves: PENDING->CONFIRMED->SHIPPED->DELIVERED, and
     * PENDING|CONFIRMED->CANCELLED. */
    static const int legal[][2] = {{1, 2}, {2, 3}, {3, 4}, {1, 5}, {2, 5}};
    for (int from = -1; from <= 7; from++) {
        for (int to = -1; to <= 7; to++) {
            bool want = false;
            for (size_t i = 0; i < sizeof legal / sizeof legal[0]; i++)
                want |= legal[i][0] == from && legal[i][1] == to;
            cr_expect_eq(orders__transition_ok(from, to), want, "%d -> %d", from, to);
        }
    }
    cr_expect_eq(orders__allowed_from(STORE_ORDER_PENDING), 0u);
    cr_expect_eq(orders__allowed_from(0), 0u);
    cr_expect_eq(orders__allowed_from(STORE_ORDER_CANCELLED),
                 (1u << STORE_ORDER_PENDING) | (1u << STORE_ORDER_CONFIRMED));
    cr_expect_str_eq(orders__status_name(STORE_ORDER_SHIPPED), "SHIPPED");
    cr_expect_str_eq(orders__status_name(42), "UNSPECIFIED");
}

Test(order_rules, totals_and_overflow)
{
    int64_t t = -7;
    cr_expect(orders__line_total(3, 250, &t));
    cr_expect_eq(t, 750);
    t = -7;
    cr_expect_not(orders__line_total(INT64_MAX, 2, &t));
    cr_expect_not(orders__line_total(-1, 2, &t));
    cr_expect_not(orders__line_total(1, -2, &t));
    cr_expect_eq(t, -7, "untouched on failure");
    cr_expect(orders__line_total(INT64_MAX, 1, &t));
    cr_expect_eq(t, INT64_MAX);

    store_line l[3] = {{
                           "A",
                           3,
                           250,
                       },
                       {
                           "B",
                           2,
                           1999,
                       },
                       {
                           "C",
                           1,
                           0,
                       }};
    cr_expect(orders__order_total(l, 3, &t));
    cr_expect_eq(t, 3 * 250 + 2 * 1999);

    /* Each line fits; the sum does not. */
    store_line big[2] = {{
                             "A",
                             1,
                             INT64_MAX - 10,
                         },
                         {
                             "B",
                             11,
                             1,
                         }};
    t = -7;
    cr_expect_not(orders__order_total(big, 2, &t));
    cr_expect_eq(t, -7);
    big[1].quantity = 10;
    cr_expect(orders__order_total(big, 2, &t));
    cr_expect_eq(t, INT64_MAX);
    /* A line product that overflows. */
    store_line mul[1] = {{
        "A",
        3,
        INT64_MAX / 2,
    }};
    cr_expect_not(orders__order_total(mul, 1, &t));
    cr_expect(orders__order_total(mul, 0, &t));
    cr_expect_eq(t, 0);
}

Test(order_rules, validate_create)
{
    Oms__V1__CreateOrderLine l1 = OMS__V1__CREATE_ORDER_LINE__INIT, l2 = l1;
    Oms__V1__CreateOrderLine *lp[2] = {&l1, &l2};
    Oms__V1__CreateOrderRequest req = OMS__V1__CREATE_ORDER_REQUEST__INIT;
    char why[160];
    l1.sku = (char *)"SKU-1";
    l1.quantity = 1;
    l2.sku = (char *)"SKU-2";
    l2.quantity = 2;
    req.customer_id = (char *)"c-1";
    req.lines = lp;
    req.n_lines = 2;
    cr_expect_eq(orders__validate_create(&req, why, sizeof why), RPC_OK);

    l2.quantity = 0;
    cr_expect_eq(orders__validate_create(&req, why, sizeof why), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(why, "lines[1].quantity: must be > 0");
    l2.quantity = 1;
    l2.sku = (char *)"SKU-1";
    cr_expect_eq(orders__validate_create(&req, why, sizeof why), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(why, "lines[1].sku: SKU-1 already in lines[0]");
    l2.sku = (char *)"bad sku";
    cr_expect_eq(orders__validate_create(&req, why, sizeof why), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(why, "lines[1].sku: only [A-Za-z0-9._-] allowed, ' ' at byte 3");
    l2.sku = (char *)"SKU-\x1b[2J";
    cr_expect_eq(orders__validate_create(&req, why, sizeof why), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(why, "lines[1].sku: only [A-Za-z0-9._-] allowed, '\\x1b' at byte 4");
    l2.sku = (char *)"SKU-2";
    req.customer_id = (char *)"";
    cr_expect_eq(orders__validate_create(&req, why, sizeof why), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(why, "customer_id: required");
    req.customer_id = (char *)"c-123456789012345678901234567890123";
    cr_expect_eq(orders__validate_create(&req, why, sizeof why), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(why, "customer_id: at most 31 bytes, 35 given");
    req.customer_id = (char *)"c-1";
    req.n_lines = 0;
    cr_expect_eq(orders__validate_create(&req, why, sizeof why), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(why, "lines: 1..100 allowed, 0 given");
}

/* The shared texts: one function per rule. */
Test(order_rules, limit_texts)
{
    char why[160];
    cr_expect(orders__check_len("reason", "", 0, 200, why, sizeof why));
    cr_expect_not(orders__check_len("id", "", 1, 31, why, sizeof why));
    cr_expect_str_eq(why, "id: required");
    char big[1235];
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_expect_not(orders__check_len("name", big, 1, 200, why, sizeof why));
    cr_expect_str_eq(why, "name: at most 200 bytes, 1234 given");
    cr_expect_not(orders__check_name("name", big, 200, why, sizeof why));
    cr_expect_str_eq(why, "name: at most 200 bytes, 1234 given");
    cr_expect_not(orders__check_name("name", "a\tb", 200, why, sizeof why));
    cr_expect_str_eq(why, "name: control characters not allowed");
    cr_expect(orders__check_count("lines", 100, 1, 100, why, sizeof why));
    cr_expect_not(orders__check_count("lines", 101, 1, 100, why, sizeof why));
    cr_expect_str_eq(why, "lines: 1..100 allowed, 101 given");
    cr_expect_not(orders__check_token("sku", "caf\xc3\xa9", 1, 64, why, sizeof why));
    cr_expect_str_eq(why, "sku: only [A-Za-z0-9._-] allowed, '\\xc3' at byte 3");
    cr_expect_not(orders__check_token("sku", "", 1, 64, why, sizeof why));
    cr_expect_str_eq(why, "sku: required");
}

/* --- harness: server, store, client on one loop ------------------------------------ */

static char c_active[STORE_ID_MAX + 1], c_other[STORE_ID_MAX + 1], c_suspended[STORE_ID_MAX + 1];

static void on_write_done(store_write *w)
{
    *(bool *)w->data = true;
}

/* Runs one store write to completion on the test loop. */
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

static void add_customer(const char *name, char id[STORE_ID_MAX + 1], int status)
{
    store_write w = {0}; /* the loop runs until done: the frame outlives it */
    w.op = STORE_CUSTOMER_CREATE;
    snprintf(w.customer.name, sizeof w.customer.name, "%s", name);
    snprintf(w.customer.email, sizeof w.customer.email, "%s@example.com", name);
    cr_assert_eq(store_do(&w), STORE_OK, "%s", w.msg);
    snprintf(id, STORE_ID_MAX + 1, "%s", w.customer.id);
    if (status != STORE_CUSTOMER_ACTIVE) {
        store_write s = {0};
        s.op = STORE_CUSTOMER_SET_STATUS;
        snprintf(s.customer.id, sizeof s.customer.id, "%s", id);
        s.customer.status = status;
        cr_assert_eq(store_do(&s), STORE_OK, "%s", s.msg);
    }
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

static int64_t reserved(const char *sku)
{
    store_product p;
    cr_assert_eq(store_get_product(ol->sl, sku, &p), STORE_OK, "%s", sku);
    return p.reserved;
}

/* Right after a reply: compensating and cancelling releases are answered
 * only after they ran, so the stock is back by then. */
static void expect_reserved(const char *sku, int64_t want)
{
    cr_expect_eq(reserved(sku), want, "%s reserved", sku);
}

static void setup(void)
{
    /* a few orders fill 1024 bytes: streams meet RPC_AGAIN, on_ready */
    fixture_setup("/tmp/oms-order-flow-XXXXXX", 0, false, 1024);
    add_customer("ada", c_active, STORE_CUSTOMER_ACTIVE);
    add_customer("bob", c_suspended, STORE_CUSTOMER_SUSPENDED);
    add_customer("cyd", c_other, STORE_CUSTOMER_ACTIVE);
    add_product("SKU-A", 250, 10);
    add_product("SKU-B", 1999, 5);
    add_product("SKU-BIG", INT64_MAX / 2, 10);
    add_product("SKU-C", 1, 1000);
}

/* --- client helpers ------------------------------------------------------------------ */

typedef struct line_spec {
    const char *sku;
    int64_t qty;
} line_spec;

/* Builds a CreateOrderRequest in caller storage (n <= 4 lines). */
typedef struct create_req {
    Oms__V1__CreateOrderRequest req;
    Oms__V1__CreateOrderLine lines[4];
    Oms__V1__CreateOrderLine *linep[4];
} create_req;

static void create_req_init(create_req *r, const char *customer, const char *key,
                            const line_spec *ls, size_t n)
{
    oms__v1__create_order_request__init(&r->req);
    r->req.customer_id = (char *)customer;
    r->req.idempotency_key = (char *)(key ? key : "");
    for (size_t i = 0; i < n; i++) {
        oms__v1__create_order_line__init(&r->lines[i]);
        r->lines[i].sku = (char *)ls[i].sku;
        r->lines[i].quantity = ls[i].qty;
        r->linep[i] = &r->lines[i];
    }
    r->req.lines = r->linep;
    r->req.n_lines = n;
}

static char msg[256];

/* --- the last call's rich error details (grpc-status-details-bin) ----------------- */

static uint8_t *det; /* malloc'ed by rpc_blocking_unary, NULL: none */
static size_t det_len;
static char det_buf[8][128];

/* Decodes det and returns, as text: what=="reason" the ErrorInfo reason
 * ("" if none; domain must be oms.v1), what=="meta:KEY" an ErrorInfo metadata
 * value, "field" the first BadRequest "field: description", "precondition"
 * the first PreconditionFailure "TYPE SUBJECT: DESCRIPTION". */
static const char *detail(const char *what)
{
    static int slot;
    char *out = det_buf[slot++ % 8];
    out[0] = '\0';
    Google__Rpc__Status *st = det ? google__rpc__status__unpack(NULL, det_len, det) : NULL;
    if (det)
        cr_assert_not_null(st, "details are not a google.rpc.Status");
    for (size_t i = 0; st && i < st->n_details; i++) {
        const Google__Protobuf__Any *a = st->details[i];
        if (strcmp(a->type_url, "type.googleapis.com/google.rpc.ErrorInfo") == 0) {
            Google__Rpc__ErrorInfo *e =
                google__rpc__error_info__unpack(NULL, a->value.len, a->value.data);
            cr_assert_not_null(e);
            cr_expect_str_eq(e->domain, "oms.v1");
            if (strcmp(what, "reason") == 0)
                snprintf(out, 128, "%s", e->reason);
            for (size_t k = 0; k < e->n_metadata; k++)
                if (strncmp(what, "meta:", 5) == 0 && strcmp(what + 5, e->metadata[k]->key) == 0)
                    snprintf(out, 128, "%s", e->metadata[k]->value);
            google__rpc__error_info__free_unpacked(e, NULL);
        } else if (strcmp(a->type_url, "type.googleapis.com/google.rpc.BadRequest") == 0) {
            Google__Rpc__BadRequest *b =
                google__rpc__bad_request__unpack(NULL, a->value.len, a->value.data);
            cr_assert_not_null(b);
            if (strcmp(what, "field") == 0 && b->n_field_violations > 0)
                snprintf(out, 128, "%s: %s", b->field_violations[0]->field,
                         b->field_violations[0]->description);
            google__rpc__bad_request__free_unpacked(b, NULL);
        } else if (strcmp(a->type_url, "type.googleapis.com/google.rpc.PreconditionFailure") == 0) {
            Google__Rpc__PreconditionFailure *p =
                google__rpc__precondition_failure__unpack(NULL, a->value.len, a->value.data);
            cr_assert_not_null(p);
            if (strcmp(what, "precondition") == 0 && p->n_violations > 0)
                snprintf(out, 128, "%s %s: %s", p->violations[0]->type, p->violations[0]->subject,
                         p->violations[0]->description);
            google__rpc__precondition_failure__free_unpacked(p, NULL);
        } else {
            cr_expect_fail("unexpected detail %s", a->type_url);
        }
    }
    if (st)
        google__rpc__status__free_unpacked(st, NULL);
    return out;
}

/* Call options that keep the details in det (freeing the last ones). */
static rpc_call_opts det_opts(void)
{
    free(det);
    det = NULL;
    det_len = 0;
    rpc_call_opts o = {.timeout_ms = 10000, .details = &det, .details_len = &det_len};
    return o;
}

/* CreateOrder; md_key (or NULL) goes as idempotency-key metadata. */
static rpc_status create(const char *customer, const char *key, const char *md_key,
                         const line_spec *ls, size_t n, Oms__V1__Order **out)
{
    create_req r;
    create_req_init(&r, customer, key, ls, n);
    rpc_md md = {"idempotency-key", (const uint8_t *)md_key, md_key ? strlen(md_key) : 0};
    rpc_call_opts opts = det_opts();
    opts.md = md_key ? &md : NULL;
    opts.nmd = md_key ? 1 : 0;
    Oms__V1__Order *o = NULL;
    rpc_status st =
        oms__v1__order_service__create_order__blocking(chan, &r.req, &o, &opts, msg, sizeof msg);
    if (out)
        *out = o;
    else if (o)
        oms__v1__order__free_unpacked(o, NULL);
    return st;
}

static rpc_status update(const char *id, int status, int64_t version, Oms__V1__Order **out)
{
    Oms__V1__UpdateOrderStatusRequest req = OMS__V1__UPDATE_ORDER_STATUS_REQUEST__INIT;
    req.id = (char *)id;
    req.status = (Oms__V1__OrderStatus)status;
    req.expected_version = version;
    Oms__V1__Order *o = NULL;
    rpc_call_opts opts = det_opts();
    rpc_status st = oms__v1__order_service__update_order_status__blocking(chan, &req, &o, &opts,
                                                                          msg, sizeof msg);
    if (out)
        *out = o;
    else if (o)
        oms__v1__order__free_unpacked(o, NULL);
    return st;
}

static rpc_status cancel(const char *id, const char *reason, int64_t version, Oms__V1__Order **out)
{
    Oms__V1__CancelOrderRequest req = OMS__V1__CANCEL_ORDER_REQUEST__INIT;
    req.id = (char *)id;
    req.reason = (char *)reason;
    req.expected_version = version;
    Oms__V1__Order *o = NULL;
    rpc_call_opts opts = det_opts();
    rpc_status st =
        oms__v1__order_service__cancel_order__blocking(chan, &req, &o, &opts, msg, sizeof msg);
    if (out)
        *out = o;
    else if (o)
        oms__v1__order__free_unpacked(o, NULL);
    return st;
}

/* Creates an order that must succeed; returns its id in id. */
static void create_ok(const char *customer, const line_spec *ls, size_t n, char *id)
{
    Oms__V1__Order *o;
    cr_assert_eq(create(customer, NULL, NULL, ls, n, &o), RPC_OK, "%s", msg);
    snprintf(id, STORE_ID_MAX + 1, "%s", o->id);
    oms__v1__order__free_unpacked(o, NULL);
}

/* --- CreateOrder ---------------------------------------------------------------------- */

TestSuite(order_flow, .init = setup, .fini = teardown, .timeout = 60);

Test(order_flow, create_prices_totals_and_reserves)
{
    line_spec ls[] = {{"SKU-A", 3}, {"SKU-B", 2}};
    Oms__V1__Order *o;
    cr_assert_eq(create(c_active, NULL, NULL, ls, 2, &o), RPC_OK, "%s", msg);
    cr_expect_eq(strncmp(o->id, "o-", 2), 0, "%s", o->id);
    cr_expect_str_eq(o->customer_id, c_active);
    cr_expect_eq(o->status, OMS__V1__ORDER_STATUS__ORDER_STATUS_PENDING);
    cr_expect_eq(o->version, 1);
    cr_expect_eq(o->total_cents, 3 * 250 + 2 * 1999);
    cr_assert_eq(o->n_lines, 2);
    cr_expect_str_eq(o->lines[0]->sku, "SKU-A");
    cr_expect_eq(o->lines[0]->unit_price_cents, 250);
    cr_expect_eq(o->lines[0]->line_total_cents, 750);
    cr_expect_str_eq(o->lines[1]->sku, "SKU-B");
    cr_expect_eq(o->lines[1]->unit_price_cents, 1999);
    cr_expect_gt(o->created_at, 0);
    cr_expect_eq(reserved("SKU-A"), 3);
    cr_expect_eq(reserved("SKU-B"), 2);

    /* GetOrder answers the stored order. */
    Oms__V1__GetOrderRequest g = OMS__V1__GET_ORDER_REQUEST__INIT;
    g.id = o->id;
    Oms__V1__Order *got = NULL;
    cr_assert_eq(oms__v1__order_service__get_order__blocking(chan, &g, &got, NULL, msg, sizeof msg),
                 RPC_OK, "%s", msg);
    cr_expect_eq(got->total_cents, o->total_cents);
    cr_expect_eq(got->n_lines, 2);
    oms__v1__order__free_unpacked(got, NULL);
    oms__v1__order__free_unpacked(o, NULL);

    g.id = (char *)"o-999999";
    cr_expect_eq(oms__v1__order_service__get_order__blocking(chan, &g, &got, NULL, msg, sizeof msg),
                 RPC_NOT_FOUND);
}

Test(order_flow, idempotency_key_field_and_metadata)
{
    line_spec ls[] = {{"SKU-A", 2}};
    Oms__V1__Order *a, *b, *c, *d, *e;
    cr_assert_eq(create(c_active, "k-1", NULL, ls, 1, &a), RPC_OK, "%s", msg);
    cr_assert_eq(create(c_active, "k-1", NULL, ls, 1, &b), RPC_OK, "%s", msg);
    cr_expect_str_eq(a->id, b->id);
    cr_expect_eq(reserved("SKU-A"), 2, "reserved once");

    /* The metadata key, when the field is empty. */
    cr_assert_eq(create(c_active, NULL, "k-2", ls, 1, &c), RPC_OK, "%s", msg);
    cr_assert_eq(create(c_active, NULL, "k-2", ls, 1, &d), RPC_OK, "%s", msg);
    cr_expect_str_eq(c->id, d->id);
    cr_expect_str_neq(c->id, a->id);
    /* The field wins over the metadata. */
    cr_assert_eq(create(c_active, "k-1", "k-2", ls, 1, &e), RPC_OK, "%s", msg);
    cr_expect_str_eq(e->id, a->id);
    cr_expect_eq(reserved("SKU-A"), 4);

    /* Without a key, a second order. */
    Oms__V1__Order *f;
    cr_assert_eq(create(c_active, NULL, NULL, ls, 1, &f), RPC_OK, "%s", msg);
    cr_expect_str_neq(f->id, a->id);
    cr_expect_eq(reserved("SKU-A"), 6);

    /* A key longer than the store keeps. */
    char longkey[STORE_KEY_MAX + 10];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    cr_expect_eq(create(c_active, NULL, longkey, ls, 1, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_eq(reserved("SKU-A"), 6);

    oms__v1__order__free_unpacked(a, NULL);
    oms__v1__order__free_unpacked(b, NULL);
    oms__v1__order__free_unpacked(c, NULL);
    oms__v1__order__free_unpacked(d, NULL);
    oms__v1__order__free_unpacked(e, NULL);
    oms__v1__order__free_unpacked(f, NULL);
}

/* Two calls with one key in flight together: one order; the loser's
 * reservation is released. */
typedef struct async_create {
    bool done;
    rpc_status code;
    char id[STORE_ID_MAX + 1];
} async_create;

static void on_async_created(void *data, rpc_status code, const char *message,
                             const Oms__V1__Order *resp)
{
    (void)message;
    async_create *a = data;
    a->done = true;
    a->code = code;
    if (resp)
        snprintf(a->id, sizeof a->id, "%s", resp->id);
}

Test(order_flow, idempotency_concurrent_same_key)
{
    line_spec ls[] = {{"SKU-C", 5}};
    create_req r;
    create_req_init(&r, c_active, "same", ls, 1);
    async_create a[4] = {0};
    for (int i = 0; i < 4; i++)
        cr_assert_not_null(oms__v1__order_service__create_order__call(chan, &r.req, NULL,
                                                                      on_async_created, &a[i]));
    for (int i = 0; i < 4; i++) {
        run_until(&a[i].done);
        cr_expect_eq(a[i].code, RPC_OK);
        cr_expect_str_eq(a[i].id, a[0].id);
    }
    expect_reserved("SKU-C", 5);
}

Test(order_flow, customer_checks)
{
    line_spec ls[] = {{"SKU-A", 1}};
    cr_expect_eq(create(c_suspended, NULL, NULL, ls, 1, NULL), RPC_FAILED_PRECONDITION);
    cr_expect(strstr(msg, "suspended"), "%s", msg);
    cr_expect_str_eq(detail("reason"), "CUSTOMER_SUSPENDED");
    cr_expect_str_eq(detail("meta:customer_id"), c_suspended);
    cr_expect_eq(create("c-9999", NULL, NULL, ls, 1, NULL), RPC_NOT_FOUND);
    cr_expect_str_eq(msg, "customer c-9999 not found");
    cr_expect_null(det, "NOT_FOUND carries no details");
    cr_expect_eq(reserved("SKU-A"), 0);
}

Test(order_flow, invalid_requests)
{
    line_spec zero[] = {{"SKU-A", 0}};
    cr_expect_eq(create(c_active, NULL, NULL, zero, 1, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(msg, "lines[0].quantity: must be > 0");
    cr_expect_str_eq(detail("field"), "lines[0].quantity: must be > 0");
    cr_expect_str_eq(detail("reason"), "");
    cr_expect_eq(create(c_active, NULL, NULL, zero, 0, NULL), RPC_INVALID_ARGUMENT);
    line_spec dup[] = {{"SKU-A", 1}, {"SKU-A", 2}};
    cr_expect_eq(create(c_active, NULL, NULL, dup, 2, NULL), RPC_INVALID_ARGUMENT);
    line_spec unknown[] = {{"SKU-A", 1}, {"NOPE", 1}};
    rpc_status st = create(c_active, NULL, NULL, unknown, 2, NULL);
    cr_expect(st == RPC_NOT_FOUND || st == RPC_INVALID_ARGUMENT || st == RPC_FAILED_PRECONDITION,
              "%s: %s", rpc_status_name(st), msg);
    expect_reserved("SKU-A", 0);
}

Test(order_flow, insufficient_stock_reserves_nothing)
{
    line_spec ls[] = {{"SKU-A", 3}, {"SKU-B", 6}};
    cr_expect_eq(create(c_active, NULL, NULL, ls, 2, NULL), RPC_FAILED_PRECONDITION);
    cr_expect(strstr(msg, "SKU-B"), "%s", msg);
    cr_expect_str_eq(detail("reason"), "INSUFFICIENT_STOCK");
    cr_expect_str_eq(detail("meta:sku"), "SKU-B");
    cr_expect_str_eq(detail("meta:requested"), "6");
    char want[96];
    snprintf(want, sizeof want, "STOCK SKU-B: %s available, 6 requested", detail("meta:available"));
    cr_expect_str_eq(detail("precondition"), want);
    cr_expect(strstr(msg, want + strlen("STOCK ")) != NULL || strstr(msg, "available"),
              "the message says the same: %s", msg);
    expect_reserved("SKU-A", 0);
    cr_expect_eq(reserved("SKU-B"), 0);
}

Test(order_flow, total_overflow_releases)
{
    line_spec ls[] = {{"SKU-A", 1}, {"SKU-BIG", 3}};
    cr_expect_eq(create(c_active, NULL, NULL, ls, 2, NULL), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "overflow"), "%s", msg);
    expect_reserved("SKU-BIG", 0);
    expect_reserved("SKU-A", 0);
    /* Two of them fit. */
    line_spec ok[] = {{"SKU-BIG", 2}};
    cr_expect_eq(create(c_active, NULL, NULL, ok, 1, NULL), RPC_OK, "%s", msg);
    cr_expect_eq(reserved("SKU-BIG"), 2);
}

/* --- CancelOrder, UpdateOrderStatus ------------------------------------------------------ */

Test(order_flow, cancel_releases_stock)
{
    line_spec ls[] = {{"SKU-A", 4}};
    char id[STORE_ID_MAX + 1];
    create_ok(c_active, ls, 1, id);
    cr_expect_eq(reserved("SKU-A"), 4);

    Oms__V1__Order *o;
    cr_assert_eq(cancel(id, "changed my mind", 0, &o), RPC_OK, "%s", msg);
    cr_expect_eq(o->status, OMS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED);
    cr_expect_eq(o->version, 2);
    cr_expect_str_eq(o->cancel_reason, "changed my mind");
    oms__v1__order__free_unpacked(o, NULL);
    expect_reserved("SKU-A", 0);

    cr_expect_eq(cancel(id, "", 0, NULL), RPC_FAILED_PRECONDITION);
    cr_expect_eq(cancel("o-424242", "", 0, NULL), RPC_NOT_FOUND);
    char reason[STORE_REASON_MAX + 2];
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    cr_expect_eq(cancel(id, reason, 0, NULL), RPC_INVALID_ARGUMENT);

    /* CANCELLED through UpdateOrderStatus releases too (from CONFIRMED). */
    create_ok(c_active, ls, 1, id);
    cr_expect_eq(update(id, STORE_ORDER_CONFIRMED, 1, NULL), RPC_OK, "%s", msg);
    cr_expect_eq(reserved("SKU-A"), 4);
    cr_expect_eq(update(id, STORE_ORDER_CANCELLED, 2, &o), RPC_OK, "%s", msg);
    cr_expect_eq(o->status, OMS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED);
    oms__v1__order__free_unpacked(o, NULL);
    expect_reserved("SKU-A", 0);
}

static uint64_t commits(void)
{
    store_stats s;
    store_get_stats(oms->st, &s);
    return s.commits;
}

/* All-in-one (the inventory in process, on the same store): CreateOrder is
 * one ORDER_PLACE, a cancel one status change that releases the stock: one
 * commit each, and the stock is back in that commit. */
Test(order_flow, all_in_one_one_commit_per_order_and_cancel)
{
    cr_assert_eq(ol->inventory, &orders__local_inventory);
    line_spec ls[] = {{"SKU-C", 5}, {"SKU-A", 1}};
    uint64_t c0 = commits();
    Oms__V1__Order *o;
    cr_assert_eq(create(c_active, "one-commit", NULL, ls, 2, &o), RPC_OK, "%s", msg);
    cr_expect_eq(commits() - c0, 1, "commits for one CreateOrder");
    cr_expect_eq(o->total_cents, 5 * 1 + 250);
    cr_expect_eq(reserved("SKU-C"), 5);
    char id[STORE_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", o->id);
    oms__v1__order__free_unpacked(o, NULL);

    /* a repeat (answered by ORDER_PLACE itself): the first order, nothing
     * reserved, no event */
    int64_t seq = store_last_seq(oms->st);
    cr_assert_eq(create(c_active, "one-commit", NULL, ls, 2, &o), RPC_OK, "%s", msg);
    cr_expect_str_eq(o->id, id);
    oms__v1__order__free_unpacked(o, NULL);
    cr_expect_eq(store_last_seq(oms->st), seq);
    cr_expect_eq(reserved("SKU-C"), 5);
    /* the key with another request: refused, nothing reserved, no event */
    cr_assert_eq(create(c_active, "one-commit", NULL, ls, 1, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(msg, "idempotency key reused with a different request");
    cr_expect_str_eq(detail("reason"), "IDEMPOTENCY_KEY_REUSED");
    cr_expect_str_eq(detail("meta:customer_id"), c_active);
    cr_expect_str_eq(detail("field"), "", "a reason, not a field violation");
    cr_expect_eq(store_last_seq(oms->st), seq);
    cr_expect_eq(reserved("SKU-C"), 5);
    cr_expect_eq(reserved("SKU-A"), 1);

    c0 = commits();
    cr_assert_eq(cancel(id, "", 0, NULL), RPC_OK, "%s", msg);
    cr_expect_eq(commits() - c0, 1, "commits for one CancelOrder");
    cr_expect_eq(reserved("SKU-C"), 0);
    cr_expect_eq(reserved("SKU-A"), 0);
    store_write rel = {0};
    rel.op = STORE_RELEASE;
    snprintf(rel.order_id, sizeof rel.order_id, "%s", id);
    cr_assert_eq(store_do(&rel), STORE_OK, "%s", rel.msg);
    cr_expect_not(rel.existed, "released by the cancel itself");

    /* a repeat of a keyed order after its customer was suspended: the first
     * order still (the key is looked up when the customer check fails) */
    cr_assert_eq(create(c_other, "then-suspended", NULL, ls, 1, &o), RPC_OK, "%s", msg);
    snprintf(id, sizeof id, "%s", o->id);
    oms__v1__order__free_unpacked(o, NULL);
    store_write su = {0};
    su.op = STORE_CUSTOMER_SET_STATUS;
    snprintf(su.customer.id, sizeof su.customer.id, "%s", c_other);
    su.customer.status = STORE_CUSTOMER_SUSPENDED;
    cr_assert_eq(store_do(&su), STORE_OK, "%s", su.msg);
    cr_assert_eq(create(c_other, "then-suspended", NULL, ls, 1, &o), RPC_OK, "%s", msg);
    cr_expect_str_eq(o->id, id);
    oms__v1__order__free_unpacked(o, NULL);
    cr_expect_eq(create(c_other, "new-key", NULL, ls, 1, NULL), RPC_FAILED_PRECONDITION);
}

Test(order_flow, status_machine_and_versions)
{
    line_spec ls[] = {{"SKU-A", 1}};
    char id[STORE_ID_MAX + 1];
    create_ok(c_active, ls, 1, id);

    cr_expect_eq(update(id, STORE_ORDER_SHIPPED, 0, NULL), RPC_FAILED_PRECONDITION);
    char want[96];
    snprintf(want, sizeof want, "order %s is PENDING; cannot become SHIPPED", id);
    cr_expect_str_eq(msg, want, "said once");
    cr_expect_str_eq(detail("reason"), "ILLEGAL_TRANSITION");
    cr_expect_str_eq(detail("meta:order_id"), id);
    cr_expect_str_eq(detail("meta:from"), "PENDING");
    cr_expect_str_eq(detail("meta:to"), "SHIPPED");
    cr_expect_eq(update(id, STORE_ORDER_PENDING, 0, NULL), RPC_FAILED_PRECONDITION);
    cr_expect_eq(update("o-31337", STORE_ORDER_PENDING, 0, NULL), RPC_NOT_FOUND);
    cr_expect_eq(update(id, 0, 0, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_eq(update(id, 17, 0, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(detail("field"), "status: 17 is not an order status");
    cr_expect_eq(update("o-31337", STORE_ORDER_CONFIRMED, 0, NULL), RPC_NOT_FOUND);
    cr_expect_eq(update(id, STORE_ORDER_CONFIRMED, 5, NULL), RPC_ABORTED);
    snprintf(want, sizeof want, "order %s is at version 1, not 5", id);
    cr_expect_str_eq(msg, want, "said once");
    cr_expect_str_eq(detail("reason"), "VERSION_MISMATCH");
    cr_expect_str_eq(detail("meta:version"), "1");
    cr_expect_str_eq(detail("meta:expected_version"), "5");
    cr_expect_eq(cancel(id, "", 7, NULL), RPC_ABORTED);
    cr_expect_str_eq(detail("reason"), "VERSION_MISMATCH");

    Oms__V1__Order *o;
    cr_assert_eq(update(id, STORE_ORDER_CONFIRMED, 1, &o), RPC_OK, "%s", msg);
    cr_expect_eq(o->version, 2);
    cr_expect_eq(o->status, OMS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED);
    oms__v1__order__free_unpacked(o, NULL);
    cr_expect_eq(update(id, STORE_ORDER_SHIPPED, 1, NULL), RPC_ABORTED, "stale version");
    cr_expect_eq(update(id, STORE_ORDER_SHIPPED, 2, NULL), RPC_OK, "%s", msg);
    cr_expect_eq(cancel(id, "too late", 0, NULL), RPC_FAILED_PRECONDITION);
    cr_expect_eq(update(id, STORE_ORDER_DELIVERED, 0, &o), RPC_OK, "%s", msg);
    cr_expect_eq(o->version, 4);
    cr_expect_eq(o->status, OMS__V1__ORDER_STATUS__ORDER_STATUS_DELIVERED);
    oms__v1__order__free_unpacked(o, NULL);
    cr_expect_eq(update(id, STORE_ORDER_CONFIRMED, 0, NULL), RPC_FAILED_PRECONDITION);
    /* Shipped stock stays reserved: cancelling is what releases. */
    cr_expect_eq(reserved("SKU-A"), 1);
}

/* --- ListOrders ------------------------------------------------------------------------- */

typedef struct listing {
    bool done;
    rpc_status code;
    char msg[256];
    size_t n;
    char ids[64][STORE_ID_MAX + 1];
    int status[64];
} listing;

static void on_list_msg(rpc_client_call *c, void *data, const Oms__V1__Order *m)
{
    (void)c;
    listing *l = data;
    if (l->n < 64) {
        snprintf(l->ids[l->n], sizeof l->ids[0], "%s", m->id);
        l->status[l->n] = m->status;
    }
    l->n++;
}

static void on_list_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                           const rpc_metadata *trailers)
{
    (void)c;
    (void)trailers;
    listing *l = data;
    l->code = code;
    snprintf(l->msg, sizeof l->msg, "%s", message);
    l->done = true;
}

static const Oms__V1__OrderService_ListOrders_Callbacks list_cb = {.on_message = on_list_msg,
                                                                   .on_status = on_list_status};

static void list(listing *l, const char *customer, int status, int64_t from, int64_t to,
                 int32_t page)
{
    memset(l, 0, sizeof *l);
    Oms__V1__ListOrdersRequest req = OMS__V1__LIST_ORDERS_REQUEST__INIT;
    req.customer_id = (char *)customer;
    req.status = (Oms__V1__OrderStatus)status;
    req.created_from = from;
    req.created_to = to;
    req.page_size = page;
    cr_assert_not_null(oms__v1__order_service__list_orders__call(chan, &req, NULL, &list_cb, l));
    run_until(&l->done);
}

Test(order_flow, list_filters_and_pages)
{
    line_spec ls[] = {{"SKU-C", 1}};
    char mine[7][STORE_ID_MAX + 1], other[2][STORE_ID_MAX + 1];
    int64_t t0 = orders__now_ms();
    for (int i = 0; i < 7; i++) {
        create_ok(c_active, ls, 1, mine[i]);
        if (i == 1)
            create_ok(c_other, ls, 1, other[0]);
    }
    create_ok(c_other, ls, 1, other[1]);
    cr_assert_eq(update(mine[2], STORE_ORDER_CONFIRMED, 0, NULL), RPC_OK, "%s", msg);
    cr_assert_eq(update(mine[5], STORE_ORDER_CONFIRMED, 0, NULL), RPC_OK, "%s", msg);

    listing l;
    for (int32_t page = 1; page <= 8; page++) {
        list(&l, c_active, 0, 0, 0, page);
        cr_assert_eq(l.code, RPC_OK, "%s", l.msg);
        cr_assert_eq(l.n, 7, "page_size %d", page);
        for (int i = 0; i < 7; i++)
            cr_expect_str_eq(l.ids[i], mine[i], "page_size %d, #%d", page, i);
    }
    list(&l, "", 0, 0, 0, 2);
    cr_expect_eq(l.code, RPC_OK);
    cr_expect_eq(l.n, 9);
    list(&l, "", 0, 0, 0, 0);
    cr_expect_eq(l.n, 9);
    list(&l, c_other, 0, 0, 0, 1);
    cr_expect_eq(l.n, 2);
    cr_expect_str_eq(l.ids[0], other[0]);
    cr_expect_str_eq(l.ids[1], other[1]);

    list(&l, c_active, STORE_ORDER_CONFIRMED, 0, 0, 1);
    cr_expect_eq(l.code, RPC_OK);
    cr_assert_eq(l.n, 2);
    cr_expect_str_eq(l.ids[0], mine[2]);
    cr_expect_str_eq(l.ids[1], mine[5]);
    cr_expect_eq(l.status[0], STORE_ORDER_CONFIRMED);
    list(&l, "", STORE_ORDER_PENDING, 0, 0, 3);
    cr_expect_eq(l.n, 7);

    /* Time bounds: from inclusive, to exclusive. */
    list(&l, "", 0, t0, orders__now_ms() + 1000, 2);
    cr_expect_eq(l.n, 9);
    list(&l, "", 0, orders__now_ms() + 1000, 0, 2);
    cr_expect_eq(l.code, RPC_OK);
    cr_expect_eq(l.n, 0);
    list(&l, "", 0, 1, t0 > 1 ? t0 - 1 : 1, 2);
    cr_expect_eq(l.n, 0);
    list(&l, "c-no-such", 0, 0, 0, 0);
    cr_expect_eq(l.code, RPC_OK);
    cr_expect_eq(l.n, 0);

    /* Bad requests. */
    list(&l, "", 9, 0, 0, 0);
    cr_expect_eq(l.code, RPC_INVALID_ARGUMENT, "%s", l.msg);
    list(&l, "", 0, 2000, 1000, 0);
    cr_expect_eq(l.code, RPC_INVALID_ARGUMENT, "%s", l.msg);
    list(&l, "", 0, 0, 0, -1);
    cr_expect_eq(l.code, RPC_INVALID_ARGUMENT, "%s", l.msg);
    list(&l, "", 0, 0, 0, 5000); /* capped, not refused */
    cr_expect_eq(l.code, RPC_OK, "%s", l.msg);
    cr_expect_eq(l.n, 9);
}

/* --- ImportOrders ----------------------------------------------------------------------------- */

typedef struct import_run {
    bool done;
    rpc_status code;
    char msg[256];
    bool got;
    int64_t received, created, failed, skipped;
    char skipped_reason[160];
    size_t n;
    struct {
        char row_id[ORDERS_ROW_ID_MAX + 1];
        char order_id[STORE_ID_MAX + 1];
        int code;
        char message[160];
    } r[512];
} import_run;

static void on_import_msg(rpc_client_call *c, void *data, const Oms__V1__ImportOrdersSummary *m)
{
    (void)c;
    import_run *ir = data;
    ir->got = true;
    ir->received = m->received;
    ir->created = m->created;
    ir->failed = m->failed;
    ir->skipped = m->skipped;
    snprintf(ir->skipped_reason, sizeof ir->skipped_reason, "%s", m->skipped_reason);
    ir->n = m->n_results;
    for (size_t i = 0; i < m->n_results && i < 512; i++) {
        snprintf(ir->r[i].row_id, sizeof ir->r[i].row_id, "%s", m->results[i]->row_id);
        snprintf(ir->r[i].order_id, sizeof ir->r[i].order_id, "%s", m->results[i]->order_id);
        ir->r[i].code = m->results[i]->code;
        snprintf(ir->r[i].message, sizeof ir->r[i].message, "%s", m->results[i]->message);
    }
}

static void on_import_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                             const rpc_metadata *trailers)
{
    (void)c;
    (void)trailers;
    import_run *ir = data;
    ir->code = code;
    snprintf(ir->msg, sizeof ir->msg, "%s", message);
    ir->done = true;
}

static const Oms__V1__OrderService_ImportOrders_Callbacks import_cb = {
    .on_message = on_import_msg, .on_status = on_import_status};

typedef struct import_row_spec {
    const char *row_id;
    const char *customer; /* NULL: no order in the row */
    const char *key;
    line_spec line;
} import_row_spec;

/* Sends the rows (the client queues them; the loop runs while it waits). */
static void import_rows(import_run *ir, const import_row_spec *rows, size_t n)
{
    memset(ir, 0, sizeof *ir);
    rpc_client_call *c = oms__v1__order_service__import_orders__call(chan, NULL, &import_cb, ir);
    cr_assert_not_null(c);
    for (size_t i = 0; i < n; i++) {
        Oms__V1__ImportOrderRow row = OMS__V1__IMPORT_ORDER_ROW__INIT;
        create_req r;
        row.row_id = (char *)rows[i].row_id;
        if (rows[i].customer) {
            create_req_init(&r, rows[i].customer, rows[i].key, &rows[i].line, 1);
            row.order = &r.req;
        }
        int rv = oms__v1__order_service__import_orders__client_send(c, &row);
        cr_assert(rv == 0 || rv == RPC_AGAIN || (rv == RPC_ECANCELLED && ir->done), "send %zu: %d",
                  i, rv);
        if (rv == RPC_ECANCELLED)
            break;
        if (rv == RPC_AGAIN)
            run_for(1);
    }
    if (!ir->done)
        rpc_client_call_close_send(c);
    run_until(&ir->done);
}

Test(order_flow, import_good_and_bad_rows)
{
    import_row_spec rows[] = {
        {"r1", c_active, NULL, {"SKU-A", 2}},
        {"r2", c_active, NULL, {"SKU-A", 0}},    /* invalid */
        {"r3", "c-8888", NULL, {"SKU-A", 1}},    /* unknown customer */
        {"r4", c_suspended, NULL, {"SKU-A", 1}}, /* suspended */
        {"r5", c_active, "imp-1", {"SKU-B", 1}},
        {"r6", c_active, NULL, {"SKU-B", 99}},   /* short of stock */
        {"r7", NULL, NULL, {NULL, 0}},           /* no order */
        {"r8", c_active, "imp-1", {"SKU-B", 1}}, /* same key as r5 */
        {"r9", c_other, NULL, {"SKU-A", 1}},
    };
    import_run *ir = calloc(1, sizeof *ir);
    cr_assert_not_null(ir);
    import_rows(ir, rows, sizeof rows / sizeof rows[0]);
    cr_assert_eq(ir->code, RPC_OK, "%s", ir->msg);
    cr_assert(ir->got);
    cr_expect_eq(ir->received, 9);
    cr_assert_eq(ir->n, 9);
    static const int want[] = {
        RPC_OK, RPC_INVALID_ARGUMENT,    RPC_NOT_FOUND,        RPC_FAILED_PRECONDITION,
        RPC_OK, RPC_FAILED_PRECONDITION, RPC_INVALID_ARGUMENT, RPC_OK,
        RPC_OK};
    for (size_t i = 0; i < 9; i++) {
        cr_expect_str_eq(ir->r[i].row_id, rows[i].row_id);
        cr_expect_eq(ir->r[i].code, want[i], "%s: %d %s", rows[i].row_id, ir->r[i].code,
                     ir->r[i].message);
        if (want[i] == RPC_OK)
            cr_expect_eq(strncmp(ir->r[i].order_id, "o-", 2), 0, "%s", ir->r[i].row_id);
        else
            cr_expect_str_eq(ir->r[i].order_id, "");
    }
    cr_expect_str_eq(ir->r[2].message, "customer c-8888 not found");
    cr_expect_str_eq(ir->r[4].order_id, ir->r[7].order_id, "same key, same order");
    cr_expect_eq(ir->created, 4);
    cr_expect_eq(ir->failed, 5);
    expect_reserved("SKU-A", 3);
    expect_reserved("SKU-B", 1);
    free(ir);
}

Test(order_flow, import_many_rows_bounded_in_flight)
{
    enum { N = 300 };
    import_row_spec *rows = calloc(N, sizeof *rows);
    char(*ids)[16] = calloc(N, 16);
    cr_assert(rows && ids);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "row-%d", i);
        rows[i] = (import_row_spec){ids[i], c_active, NULL, {"SKU-C", 1}};
    }
    rows[150].line.qty = -1;
    import_run *ir = calloc(1, sizeof *ir);
    cr_assert_not_null(ir);
    import_rows(ir, rows, N);
    cr_assert_eq(ir->code, RPC_OK, "%s", ir->msg);
    cr_expect_eq(ir->received, N);
    cr_expect_eq(ir->created, N - 1);
    cr_expect_eq(ir->failed, 1);
    cr_assert_eq(ir->n, N);
    for (int i = 0; i < N; i++) {
        cr_expect_str_eq(ir->r[i].row_id, ids[i]);
        cr_expect_eq(ir->r[i].code, i == 150 ? RPC_INVALID_ARGUMENT : RPC_OK, "row %d", i);
        for (int j = 0; j < i && i % 37 == 0; j++) /* spot-check distinct ids */
            cr_expect_str_neq(ir->r[i].order_id, ir->r[j].order_id);
    }
    cr_expect_eq(reserved("SKU-C"), N - 1);
    free(ir);
    free(rows);
    free(ids);
}

Test(order_flow, import_row_limit)
{
    oms->cfg.max_import_rows = 3;
    import_row_spec rows[5];
    for (int i = 0; i < 5; i++)
        rows[i] = (import_row_spec){"r", c_active, NULL, {"SKU-C", 1}};
    import_run *ir = calloc(1, sizeof *ir);
    cr_assert_not_null(ir);
    int64_t before = reserved("SKU-C");
    import_rows(ir, rows, 5);
    /* Rows past the limit are read and dropped, counted; the summary says
     * what the first three created. */
    cr_expect_eq(ir->code, RPC_OK, "%s", ir->msg);
    cr_expect(ir->got);
    cr_expect_eq(ir->received, 5);
    cr_expect_eq(ir->created, 3);
    cr_expect_eq(ir->skipped, 2);
    cr_expect_eq(ir->n, 3);
    for (size_t i = 0; i < 3; i++)
        cr_expect_str_neq(ir->r[i].order_id, "");
    cr_expect_str_eq(ir->skipped_reason,
                     "rows after the first 3 were not processed (limit per ImportOrders call)");
    cr_expect_eq(reserved("SKU-C"), before + 3);

    /* An empty import: a summary of nothing. */
    import_rows(ir, rows, 0);
    cr_expect_eq(ir->code, RPC_OK, "%s", ir->msg);
    cr_expect(ir->got);
    cr_expect_eq(ir->received, 0);
    cr_expect_eq(ir->skipped, 0);
    cr_expect_str_eq(ir->skipped_reason, "");
    free(ir);
}

Test(order_flow, import_row_id_limit)
{
    char longid[ORDERS_ROW_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0'; /* 65 bytes */
    import_row_spec rows[] = {
        {longid, c_active, NULL, {"SKU-C", 1}},
        {longid + 1, c_active, NULL, {"SKU-C", 1}}, /* exactly 64: fine */
    };
    import_run *ir = calloc(1, sizeof *ir);
    cr_assert_not_null(ir);
    import_rows(ir, rows, 2);
    cr_assert_eq(ir->code, RPC_OK, "%s", ir->msg);
    cr_assert_eq(ir->n, 2);
    cr_expect_eq(ir->r[0].code, RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(ir->r[0].row_id, "");
    cr_expect_str_eq(ir->r[0].message, "row_id: at most 64 bytes, 65 given");
    cr_expect_str_eq(ir->r[0].order_id, "");
    cr_expect_eq(ir->r[1].code, RPC_OK, "%s", ir->r[1].message);
    cr_expect_eq(ir->created, 1);
    free(ir);
}

/* Many orders through a small send buffer: ListOrders stops on RPC_AGAIN and
 * resumes from on_ready, page after page, and sends each order once. */
Test(order_flow, list_many_orders_through_flow_control)
{
    enum { N = 230 };
    import_row_spec *rows = calloc(N, sizeof *rows);
    cr_assert_not_null(rows);
    for (int i = 0; i < N; i++)
        rows[i] = (import_row_spec){"r", i % 2 ? c_active : c_other, NULL, {"SKU-C", 1}};
    import_run *ir = calloc(1, sizeof *ir);
    cr_assert_not_null(ir);
    import_rows(ir, rows, N);
    cr_assert_eq(ir->code, RPC_OK, "%s", ir->msg);
    cr_assert_eq(ir->created, N);

    listing *l = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    list(l, "", 0, 0, 0, 7);
    cr_expect_eq(l->code, RPC_OK, "%s", l->msg);
    cr_expect_eq(l->n, N);
    list(l, c_active, 0, 0, 0, 0);
    cr_expect_eq(l->n, N / 2);
    list(l, c_other, 0, 0, 0, 1000);
    cr_expect_eq(l->n, N / 2);
    for (size_t i = 1; i < 64; i++) /* oldest first: ids ascend numerically */
        cr_expect_lt(atol(l->ids[i - 1] + 2), atol(l->ids[i] + 2));
    free(l);
    free(ir);
    free(rows);
}

static void on_import_ready_noop(rpc_client_call *c, void *data)
{
    (void)c;
    (void)data;
}

/* A client that goes away mid-import: the rows already running finish (each
 * order is durable with its reservation), nothing is left half done, and the
 * call is freed. */
Test(order_flow, import_cancelled_midway)
{
    static const Oms__V1__OrderService_ImportOrders_Callbacks cb = {.on_message = on_import_msg,
                                                                    .on_ready =
                                                                        on_import_ready_noop,
                                                                    .on_status = on_import_status};
    import_run *ir = calloc(1, sizeof *ir);
    cr_assert_not_null(ir);
    rpc_client_call *c = oms__v1__order_service__import_orders__call(chan, NULL, &cb, ir);
    cr_assert_not_null(c);
    for (int i = 0; i < 200; i++) {
        Oms__V1__ImportOrderRow row = OMS__V1__IMPORT_ORDER_ROW__INIT;
        create_req r;
        line_spec ls = {"SKU-C", 1};
        create_req_init(&r, c_active, NULL, &ls, 1);
        row.row_id = (char *)"r";
        row.order = &r.req;
        int rv = oms__v1__order_service__import_orders__client_send(c, &row);
        cr_assert(rv >= 0);
    }
    run_for(2); /* some rows reach the server and start */
    rpc_client_call_cancel(c);
    run_until(&ir->done);
    cr_expect_eq(ir->code, RPC_CANCELLED);
    cr_expect_not(ir->got);
    for (int i = 0; i < 400 && rpc_server_active_calls(rsrv) > 0; i++)
        run_for(5);
    cr_expect_eq(rpc_server_active_calls(rsrv), 0, "the import call was freed");

    /* Every reservation belongs to an order. */
    listing *l = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    list(l, c_active, 0, 0, 0, 0);
    cr_expect_eq(l->code, RPC_OK);
    cr_expect_lt(l->n, 200);
    expect_reserved("SKU-C", (int64_t)l->n);
    free(l);
    free(ir);
}

/* --- the flow against scripted ports -------------------------------------------------- */

/* An inventory port over the in-process one whose Reserve reply can be
 * "lost": the reservation commits, the flow hears reserve_says instead. */
static rpc_status reserve_says;
static int releases;

typedef struct fake_reserve_ctx {
    orders_reserve_cb cb;
    void *arg;
} fake_reserve_ctx;

static void fake_on_reserved(void *arg, rpc_status code, const char *m, const store_line *lines,
                             size_t n, const orders_err *err)
{
    fake_reserve_ctx *x = arg;
    if (code == RPC_OK && reserve_says != RPC_OK)
        x->cb(x->arg, reserve_says, "reply lost", NULL, 0, NULL);
    else
        x->cb(x->arg, code, m, lines, n, err);
    free(x);
}

static rpc_status fake_reserve(orders_loop *l, const char *order_id, const store_line *lines,
                               size_t n, uint64_t timeout_ms, const rpc_trace *trace,
                               orders_reserve_cb cb, void *arg)
{
    fake_reserve_ctx *x = malloc(sizeof *x);
    cr_assert_not_null(x);
    x->cb = cb;
    x->arg = arg;
    rpc_status st = orders__local_inventory.reserve(l, order_id, lines, n, timeout_ms, trace,
                                                    fake_on_reserved, x);
    if (st != RPC_OK)
        free(x);
    return st;
}

static rpc_status fake_release(orders_loop *l, const char *order_id, uint64_t timeout_ms,
                               const rpc_trace *trace, orders_release_cb cb, void *arg)
{
    releases++;
    return orders__local_inventory.release(l, order_id, timeout_ms, trace, cb, arg);
}

static const orders_inventory_port fake_inventory = {.reserve = fake_reserve,
                                                     .release = fake_release};

typedef struct flow_result {
    bool done;
    rpc_status code;
    char msg[160];
    char id[STORE_ID_MAX + 1];
    orders_err err; /* the failure's details, if any */
} flow_result;

static void on_flow_done(void *arg, rpc_status code, const char *m, const store_order *order,
                         const orders_err *err)
{
    flow_result *r = arg;
    cr_expect(code != RPC_OK || err == NULL, "details with OK");
    if (err)
        r->err = *err;
    cr_expect_not(r->done, "reported once");
    r->done = true;
    r->code = code;
    snprintf(r->msg, sizeof r->msg, "%s", m);
    cr_expect_eq(order != NULL, code == RPC_OK);
    if (order)
        snprintf(r->id, sizeof r->id, "%s", order->id);
}

static rpc_status flow(const char *customer, const char *key, const line_spec *ls, size_t n,
                       flow_result *r)
{
    create_req q;
    create_req_init(&q, customer, NULL, ls, n);
    memset(r, 0, sizeof *r);
    orders__create_order(ol, &q.req, key, 1000, NULL, on_flow_done, r);
    run_until(&r->done);
    return r->code;
}

Test(order_flow, lost_reserve_reply_is_released)
{
    ol->inventory = &fake_inventory;
    line_spec ls[] = {{"SKU-A", 2}, {"SKU-B", 1}};
    flow_result r;
    static const rpc_status lost[] = {RPC_UNAVAILABLE, RPC_DEADLINE_EXCEEDED};
    for (size_t i = 0; i < 2; i++) {
        reserve_says = lost[i];
        releases = 0;
        cr_expect_eq(flow(c_active, NULL, ls, 2, &r), lost[i], "%s", r.msg);
        cr_expect_eq(releases, 1, "the reservation that may exist is released");
        expect_reserved("SKU-A", 0);
        expect_reserved("SKU-B", 0);
    }

    /* A definite refusal reserved nothing: no release. */
    reserve_says = RPC_OK;
    releases = 0;
    line_spec short_of[] = {{"SKU-B", 6}};
    cr_expect_eq(flow(c_active, NULL, short_of, 1, &r), RPC_FAILED_PRECONDITION);
    cr_expect_eq(releases, 0);

    /* The happy path releases nothing either; then the key answers from the
     * store (after the flow returned), without a second reservation. */
    cr_expect_eq(flow(c_active, "fk", ls, 2, &r), RPC_OK, "%s", r.msg);
    cr_expect_eq(releases, 0);
    char first[STORE_ID_MAX + 1];
    snprintf(first, sizeof first, "%s", r.id);
    create_req q;
    create_req_init(&q, c_active, "fk", ls, 2);
    memset(&r, 0, sizeof r);
    cr_assert_eq(orders__create_order(ol, &q.req, NULL, 1000, NULL, on_flow_done, &r), RPC_OK);
    cr_expect_not(r.done, "answered from the loop, not from inside the call");
    run_until(&r.done);
    cr_expect_str_eq(r.id, first);
    cr_expect_eq(reserved("SKU-A"), 2);

    /* Overflowing prices after a reserve: released. */
    line_spec big[] = {{"SKU-BIG", 3}};
    cr_expect_eq(flow(c_active, NULL, big, 1, &r), RPC_INVALID_ARGUMENT);
    cr_expect_eq(releases, 1);
    expect_reserved("SKU-BIG", 0);
    ol->inventory = &orders__local_inventory;
}

/* Split mode: the order (and its key) is stored after the stock is reserved,
 * so flows with one customer's key take turns (keygate.c). Started together,
 * the first reserves 4 of SKU-B's 5; the second, other lines with the same key,
 * must hear INVALID_ARGUMENT, not lose the race for the stock
 * (FAILED_PRECONDITION); the third, the same lines, gets the first order; a
 * fourth with another customer's same key is its own order and waits for
 * nobody. Nothing stays reserved but the two orders' lines. */
Test(order_flow, same_key_flows_take_turns_in_split_mode)
{
    ol->inventory = &fake_inventory;
    reserve_says = RPC_OK;
    line_spec four[] = {{"SKU-B", 4}}, three[] = {{"SKU-B", 3}}, one[] = {{"SKU-B", 1}};
    create_req qa, qb, qc, qd;
    create_req_init(&qa, c_active, "gate", four, 1);
    create_req_init(&qb, c_active, "gate", three, 1);
    create_req_init(&qc, c_active, "gate", four, 1);
    create_req_init(&qd, c_other, "gate", one, 1);
    flow_result a = {0}, b = {0}, c = {0}, d = {0};
    cr_assert_eq(orders__create_order(ol, &qa.req, NULL, 1000, NULL, on_flow_done, &a), RPC_OK);
    cr_assert_eq(orders__create_order(ol, &qb.req, NULL, 1000, NULL, on_flow_done, &b), RPC_OK);
    cr_assert_eq(orders__create_order(ol, &qc.req, NULL, 1000, NULL, on_flow_done, &c), RPC_OK);
    cr_assert_eq(orders__create_order(ol, &qd.req, NULL, 1000, NULL, on_flow_done, &d), RPC_OK);
    run_until(&c.done);
    run_until(&d.done);
    cr_assert(a.done && b.done);
    cr_expect_eq(a.code, RPC_OK, "%s", a.msg);
    cr_expect_eq(b.code, RPC_INVALID_ARGUMENT, "%s", b.msg);
    cr_expect_eq(b.err.reason, ORDERS_REASON_IDEMPOTENCY_KEY_REUSED);
    cr_expect_eq(c.code, RPC_OK, "%s", c.msg);
    cr_expect_str_eq(c.id, a.id);
    cr_expect_eq(d.code, RPC_OK, "%s", d.msg);
    cr_expect_str_neq(d.id, a.id);
    expect_reserved("SKU-B", 5);
    ol->inventory = &orders__local_inventory;
}

/* Split mode after a crash: the next order id already holds a reservation of
 * other lines, made by a run that died before storing its order. Reserve
 * answers that first reservation; the flow releases it and goes on under a
 * fresh id. */
Test(order_flow, reused_id_with_a_dead_runs_reservation)
{
    ol->inventory = &fake_inventory;
    reserve_says = RPC_OK;
    char taken[STORE_ID_MAX + 1], next[STORE_ID_MAX + 1];
    store_next_order_id(oms->st, taken);
    snprintf(next, sizeof next, "o-%lld", atoll(taken + 2) + 1);
    store_line dead = {.sku = "SKU-C", .quantity = 7};
    store_write w = {0};
    w.op = STORE_RESERVE;
    snprintf(w.order_id, sizeof w.order_id, "%s", next);
    w.lines = &dead;
    w.nlines = 1;
    cr_assert_eq(store_do(&w), STORE_OK, "%s", w.msg);
    expect_reserved("SKU-C", 7);

    releases = 0;
    line_spec ls[] = {{"SKU-A", 2}};
    flow_result r;
    cr_assert_eq(flow(c_active, NULL, ls, 1, &r), RPC_OK, "%s", r.msg);
    cr_expect_str_neq(r.id, next);
    cr_expect_eq(releases, 1, "the dead run's reservation is released before the answer");
    expect_reserved("SKU-C", 0);
    expect_reserved("SKU-A", 2);
    store_order *o = NULL;
    cr_assert_eq(store_get_order(ol->sl, r.id, &o), STORE_OK);
    cr_expect_eq(o->nlines, 1);
    cr_expect_eq(o->total_cents, 2 * 250);
    store_order_free(o);
    ol->inventory = &orders__local_inventory;
}

/* --- completions come from the loop, never from inside the call ------------------------ */

/* Set around every port or flow call below: a callback that finds it set runs
 * inside the call that started it, the re-entry the ports promise never to do. */
static bool inside;

typedef struct reentry {
    bool done, reentered;
    rpc_status code;
    char msg[160];
    struct reentry *next; /* on_chain_customer: the port call it starts from its callback */
} reentry;

static void reentry_note(reentry *r, rpc_status code, const char *m)
{
    r->reentered |= inside;
    cr_expect_not(r->done, "reported once");
    r->done = true;
    r->code = code;
    snprintf(r->msg, sizeof r->msg, "%s", m);
}

static void on_re_customer(void *arg, rpc_status code, const char *m, const store_customer *c)
{
    cr_expect_eq(c != NULL, code == RPC_OK);
    reentry_note(arg, code, m);
}

static void on_re_reserve(void *arg, rpc_status code, const char *m, const store_line *lines,
                          size_t n, const orders_err *err)
{
    (void)lines;
    (void)err;
    cr_expect_eq(n > 0, code == RPC_OK);
    reentry_note(arg, code, m);
}

static void on_re_release(void *arg, rpc_status code, const char *m)
{
    reentry_note(arg, code, m);
}

static void on_re_created(void *arg, rpc_status code, const char *m, const store_order *order,
                          const orders_err *err)
{
    (void)err;
    cr_expect_eq(order != NULL, code == RPC_OK);
    reentry_note(arg, code, m);
}

/* Runs a port or flow call with `inside` set; it must have started. */
#define START(call)                                                                                \
    do {                                                                                           \
        inside = true;                                                                             \
        rpc_status st_ = (call);                                                                   \
        inside = false;                                                                            \
        cr_assert_eq(st_, RPC_OK, "%s did not start", #call);                                      \
    } while (0)

static void expect_outcome(reentry *r, rpc_status want, const char *what)
{
    run_until(&r->done);
    cr_expect_not(r->reentered, "%s: callback ran inside the call", what);
    cr_expect_eq(r->code, want, "%s: %s: %s", what, rpc_status_name(r->code), r->msg);
}

/* r's callback did not run inside the call (nor before it returned), and
 * comes from the loop with want. */
static void expect_from_loop(reentry *r, rpc_status want, const char *what)
{
    cr_expect_not(r->done, "%s: answered before the call returned", what);
    expect_outcome(r, want, what);
}

/* As expect_from_loop, for a result known at once: it costs one loop turn,
 * not a timer; one uv_run(NOWAIT) (timers due now, idle, poll without
 * blocking, check) delivers it. */
static void expect_next_turn(reentry *r, rpc_status want, const char *what)
{
    cr_expect_not(r->done, "%s: answered before the call returned", what);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_expect(r->done, "%s: not delivered in the next loop turn", what);
    expect_outcome(r, want, what);
}

/* Starts a second port call from inside a port callback, as the create flow
 * does: its own callback must wait for the loop as well. */
static void on_chain_customer(void *arg, rpc_status code, const char *m, const store_customer *c)
{
    reentry *r = arg;
    on_re_customer(r, code, m, c);
    store_line dup[2] = {{.sku = "SKU-A", .quantity = 1}, {.sku = "SKU-A", .quantity = 1}};
    START(ol->inventory->reserve(ol, "o-re-9", dup, 2, 0, NULL, on_re_reserve, r->next));
    cr_expect_not(r->next->done, "the nested call answered inside its caller's callback");
}

Test(order_flow, port_callbacks_never_run_inside_the_call)
{
    reentry r;
    char long_id[STORE_ID_MAX + 8];
    memset(long_id, 'c', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';

    /* In-process customers: a store read, answered from the loop. */
    static const struct {
        const char *id;
        rpc_status want;
    } customers[] = {{NULL, RPC_OK}, {"c-999999", RPC_NOT_FOUND}, {"", RPC_NOT_FOUND}};
    for (size_t i = 0; i < sizeof customers / sizeof customers[0]; i++) {
        r = (reentry){0};
        START(ol->customers->get_customer(ol, customers[i].id ? customers[i].id : c_active, 0, NULL,
                                          on_re_customer, &r));
        expect_next_turn(&r, customers[i].want, "get_customer");
    }
    r = (reentry){0};
    START(ol->customers->get_customer(ol, long_id, 0, NULL, on_re_customer, &r));
    expect_next_turn(&r, RPC_NOT_FOUND, "get_customer, id too long");

    /* In-process inventory: refusals known at once, and the store's answers. */
    store_line one = {.sku = "SKU-A", .quantity = 1};
    r = (reentry){0};
    START(ol->inventory->reserve(ol, "o-re-1", &one, 1, 0, NULL, on_re_reserve, &r));
    expect_from_loop(&r, RPC_OK, "reserve");
    expect_reserved("SKU-A", 1);
    store_line dup[2] = {one, one};
    r = (reentry){0};
    START(ol->inventory->reserve(ol, "o-re-2", dup, 2, 0, NULL, on_re_reserve, &r));
    expect_next_turn(&r, RPC_INVALID_ARGUMENT, "reserve, duplicate SKU");
    r = (reentry){0};
    START(ol->inventory->reserve(ol, "", &one, 1, 0, NULL, on_re_reserve, &r));
    expect_next_turn(&r, RPC_INVALID_ARGUMENT, "reserve, no order id");
    store_line many = {.sku = "SKU-B", .quantity = 1000};
    r = (reentry){0};
    START(ol->inventory->reserve(ol, "o-re-3", &many, 1, 0, NULL, on_re_reserve, &r));
    expect_from_loop(&r, RPC_FAILED_PRECONDITION, "reserve, short of stock");
    r = (reentry){0};
    START(ol->inventory->release(ol, "o-re-1", 0, NULL, on_re_release, &r));
    expect_from_loop(&r, RPC_OK, "release");
    expect_reserved("SKU-A", 0);
    r = (reentry){0};
    START(ol->inventory->release(ol, long_id, 0, NULL, on_re_release, &r));
    expect_next_turn(&r, RPC_INVALID_ARGUMENT, "release, id too long");

    /* The remote ports refuse at once without a peer target (this loop has
     * none): from the loop too. */
    r = (reentry){0};
    START(orders__remote_customers.get_customer(ol, c_active, 0, NULL, on_re_customer, &r));
    expect_next_turn(&r, RPC_UNAVAILABLE, "remote get_customer, no target");
    r = (reentry){0};
    START(orders__remote_inventory.reserve(ol, "o-re-4", &one, 1, 0, NULL, on_re_reserve, &r));
    expect_next_turn(&r, RPC_UNAVAILABLE, "remote reserve, no target");
    r = (reentry){0};
    START(orders__remote_inventory.release(ol, "o-re-4", 0, NULL, on_re_release, &r));
    expect_next_turn(&r, RPC_UNAVAILABLE, "remote release, no target");
    START(orders__remote_inventory.release(ol, "o-re-4", 0, NULL, NULL, NULL)); /* no cb: fine */

    /* A callback that starts the next port call, as the flow does. */
    reentry first = {0}, second = {0};
    first.next = &second;
    START(ol->customers->get_customer(ol, c_active, 0, NULL, on_chain_customer, &first));
    expect_from_loop(&first, RPC_OK, "chain: get_customer");
    expect_from_loop(&second, RPC_INVALID_ARGUMENT, "chain: reserve from its callback");
}

Test(order_flow, create_order_never_reports_inside_the_call)
{
    line_spec ls[] = {{"SKU-A", 1}};
    create_req q;
    reentry r;

    /* Refused at once: the request itself. */
    create_req_init(&q, c_active, NULL, ls, 1);
    q.req.n_lines = 0;
    r = (reentry){0};
    START(orders__create_order(ol, &q.req, NULL, 1000, NULL, on_re_created, &r));
    expect_next_turn(&r, RPC_INVALID_ARGUMENT, "create, no lines");
    create_req_init(&q, c_active, NULL, ls, 1);
    char long_key[STORE_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    r = (reentry){0};
    START(orders__create_order(ol, &q.req, long_key, 1000, NULL, on_re_created, &r));
    expect_next_turn(&r, RPC_INVALID_ARGUMENT, "create, key too long");

    /* All-in-one: customer check, ORDER_PLACE; suspended and unknown customers. */
    r = (reentry){0};
    START(orders__create_order(ol, &q.req, "re-key", 1000, NULL, on_re_created, &r));
    expect_from_loop(&r, RPC_OK, "create");
    create_req_init(&q, c_suspended, NULL, ls, 1);
    r = (reentry){0};
    START(orders__create_order(ol, &q.req, NULL, 1000, NULL, on_re_created, &r));
    expect_from_loop(&r, RPC_FAILED_PRECONDITION, "create, suspended customer");
    create_req_init(&q, "c-999999", NULL, ls, 1);
    r = (reentry){0};
    START(orders__create_order(ol, &q.req, NULL, 1000, NULL, on_re_created, &r));
    expect_from_loop(&r, RPC_NOT_FOUND, "create, unknown customer");

    /* Split-style inventory: a known key is looked up before anything runs,
     * and answered from the loop (its first order, or the reuse refusal). */
    ol->inventory = &fake_inventory;
    reserve_says = RPC_OK;
    create_req_init(&q, c_active, NULL, ls, 1);
    r = (reentry){0};
    START(orders__create_order(ol, &q.req, "re-key", 1000, NULL, on_re_created, &r));
    expect_next_turn(&r, RPC_OK, "create, key seen before");
    line_spec other[] = {{"SKU-B", 1}};
    create_req_init(&q, c_active, NULL, other, 1);
    r = (reentry){0};
    START(orders__create_order(ol, &q.req, "re-key", 1000, NULL, on_re_created, &r));
    expect_next_turn(&r, RPC_INVALID_ARGUMENT, "create, key reused for other lines");
    r = (reentry){0};
    START(orders__create_order(ol, &q.req, NULL, 1000, NULL, on_re_created, &r));
    expect_from_loop(&r, RPC_OK, "create through reserve");
    ol->inventory = &orders__local_inventory;
    expect_reserved("SKU-A", 1);
    expect_reserved("SKU-B", 1);
}
