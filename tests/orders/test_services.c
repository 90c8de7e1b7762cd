/* CustomerService, InventoryService and the ports of src/orders against real
 * servers: each node is an orders object on a temporary SQLite store, served
 * by rpc_server + http2_server (h2c, 127.0.0.1:0) on a loop of its own
 * thread. The test thread calls them through rpc_channel with the generated
 * blocking stubs (and a streaming call for the List* methods) on its own
 * loop, which also hosts the orders loop of a split-mode node when the test
 * drives the remote ports directly.
 */
#include "orders_harness.h"

/* A node on a fresh store hosting services. */
static void node_start(node *n, unsigned services, bool demo)
{
    node_mkdir(n, "/tmp/oms-orders-test-XXXXXX");
    orders_config cfg;
    char url[128];
    node_config(&cfg, n, url, sizeof url);
    cfg.services = services;
    cfg.demo_data = demo;
    node_serve(n, &cfg, 0);
}

/* A node on a fresh store hosting only the order service, calling target
 * for customers and inventory. */
static void node_start_split(node *n, const char *target)
{
    node_mkdir(n, "/tmp/oms-orders-test-XXXXXX");
    orders_config cfg;
    char url[128];
    node_config(&cfg, n, url, sizeof url);
    cfg.services = ORDERS_SVC_ORDERS;
    cfg.inventory_target = target;
    cfg.customers_target = target;
    cfg.peer_timeout_ms = 3000;
    node_serve(n, &cfg, 0);
}

static char msg[256]; /* status message of the last call */

/* --- calls ---------------------------------------------------------------------------- */

static rpc_status create_customer(rpc_channel *ch, const char *name, const char *email,
                                  Oms__V1__Customer **out)
{
    Oms__V1__CreateCustomerRequest req = OMS__V1__CREATE_CUSTOMER_REQUEST__INIT;
    req.name = (char *)name;
    req.email = (char *)email;
    Oms__V1__Customer *c = NULL;
    rpc_status st =
        oms__v1__customer_service__create_customer__blocking(ch, &req, &c, NULL, msg, sizeof msg);
    if (out)
        *out = c;
    else if (c)
        oms__v1__customer__free_unpacked(c, NULL);
    return st;
}

static rpc_status get_customer(rpc_channel *ch, const char *id, Oms__V1__Customer **out)
{
    Oms__V1__GetCustomerRequest req = OMS__V1__GET_CUSTOMER_REQUEST__INIT;
    req.id = (char *)id;
    Oms__V1__Customer *c = NULL;
    rpc_status st =
        oms__v1__customer_service__get_customer__blocking(ch, &req, &c, NULL, msg, sizeof msg);
    if (out)
        *out = c;
    else if (c)
        oms__v1__customer__free_unpacked(c, NULL);
    return st;
}

static rpc_status set_status(rpc_channel *ch, const char *id, Oms__V1__CustomerStatus s,
                             Oms__V1__Customer **out)
{
    Oms__V1__SetCustomerStatusRequest req = OMS__V1__SET_CUSTOMER_STATUS_REQUEST__INIT;
    req.id = (char *)id;
    req.status = s;
    Oms__V1__Customer *c = NULL;
    rpc_status st = oms__v1__customer_service__set_customer_status__blocking(ch, &req, &c, NULL,
                                                                             msg, sizeof msg);
    if (out)
        *out = c;
    else if (c)
        oms__v1__customer__free_unpacked(c, NULL);
    return st;
}

static rpc_status upsert(rpc_channel *ch, const char *sku, const char *name, int64_t price)
{
    Oms__V1__UpsertProductRequest req = OMS__V1__UPSERT_PRODUCT_REQUEST__INIT;
    req.sku = (char *)sku;
    req.name = (char *)name;
    req.unit_price_cents = price;
    Oms__V1__Product *p = NULL;
    rpc_status st =
        oms__v1__inventory_service__upsert_product__blocking(ch, &req, &p, NULL, msg, sizeof msg);
    if (p)
        oms__v1__product__free_unpacked(p, NULL);
    return st;
}

static rpc_status adjust(rpc_channel *ch, const char *sku, int64_t delta)
{
    Oms__V1__AdjustStockRequest req = OMS__V1__ADJUST_STOCK_REQUEST__INIT;
    req.sku = (char *)sku;
    req.delta = delta;
    Oms__V1__Product *p = NULL;
    rpc_status st =
        oms__v1__inventory_service__adjust_stock__blocking(ch, &req, &p, NULL, msg, sizeof msg);
    if (p)
        oms__v1__product__free_unpacked(p, NULL);
    return st;
}

/* The product, or a zeroed one with on_hand -1 when the call failed. */
static Oms__V1__Product product(rpc_channel *ch, const char *sku, rpc_status *code)
{
    Oms__V1__GetProductRequest req = OMS__V1__GET_PRODUCT_REQUEST__INIT;
    req.sku = (char *)sku;
    Oms__V1__Product *p = NULL, out = OMS__V1__PRODUCT__INIT;
    rpc_status st =
        oms__v1__inventory_service__get_product__blocking(ch, &req, &p, NULL, msg, sizeof msg);
    if (code)
        *code = st;
    out.on_hand = -1;
    if (p) {
        out = *p;
        out.sku = out.name = NULL; /* freed below */
        oms__v1__product__free_unpacked(p, NULL);
    }
    return out;
}

typedef struct rline {
    const char *sku;
    int64_t quantity;
} rline;

static rpc_status reserve(rpc_channel *ch, const char *order_id, const rline *lines, size_t n,
                          Oms__V1__Reservation **out)
{
    Oms__V1__ReserveLine rl[128];
    Oms__V1__ReserveLine *rlp[128];
    cr_assert(n <= 128);
    for (size_t i = 0; i < n; i++) {
        oms__v1__reserve_line__init(&rl[i]);
        rl[i].sku = (char *)lines[i].sku;
        rl[i].quantity = lines[i].quantity;
        rlp[i] = &rl[i];
    }
    Oms__V1__ReserveRequest req = OMS__V1__RESERVE_REQUEST__INIT;
    req.order_id = (char *)order_id;
    req.n_lines = n;
    req.lines = rlp;
    Oms__V1__Reservation *r = NULL;
    rpc_status st =
        oms__v1__inventory_service__reserve__blocking(ch, &req, &r, NULL, msg, sizeof msg);
    if (out)
        *out = r;
    else if (r)
        oms__v1__reservation__free_unpacked(r, NULL);
    return st;
}

/* Release's status; *released gets the answer's flag. */
static rpc_status release(rpc_channel *ch, const char *order_id, bool *released)
{
    Oms__V1__ReleaseRequest req = OMS__V1__RELEASE_REQUEST__INIT;
    req.order_id = (char *)order_id;
    Oms__V1__ReleaseResponse *r = NULL;
    rpc_status st =
        oms__v1__inventory_service__release__blocking(ch, &req, &r, NULL, msg, sizeof msg);
    if (released)
        *released = r && r->released;
    if (r)
        oms__v1__release_response__free_unpacked(r, NULL);
    return st;
}

/* A List* stream's outcome: the keys (id or sku) in arrival order. */
typedef struct listing {
    bool done;
    rpc_status code;
    char msg[256];
    size_t n;
    char keys[300][72];
    int64_t values[300]; /* products: on_hand */
    size_t total;        /* products: every one received */
    char last[72];       /* products: the last sku */
    bool unordered;      /* products: a sku did not follow the one before */
} listing;

static void on_list_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                           const rpc_metadata *trailers)
{
    (void)c;
    (void)trailers;
    listing *l = data;
    l->done = true;
    l->code = code;
    snprintf(l->msg, sizeof l->msg, "%s", message);
}

static void on_customer_item(rpc_client_call *c, void *data, const Oms__V1__Customer *m)
{
    (void)c;
    listing *l = data;
    cr_assert_lt(l->n, 300);
    snprintf(l->keys[l->n++], sizeof l->keys[0], "%s", m->id);
}

/* Keeps the first 300 products; counts them all and checks their order. */
static void on_product_item(rpc_client_call *c, void *data, const Oms__V1__Product *m)
{
    (void)c;
    listing *l = data;
    if (l->total && strcmp(l->last, m->sku) >= 0)
        l->unordered = true;
    snprintf(l->last, sizeof l->last, "%s", m->sku);
    l->total++;
    if (l->n < 300) {
        l->values[l->n] = m->on_hand;
        snprintf(l->keys[l->n++], sizeof l->keys[0], "%s", m->sku);
    }
}

static void list_customers(rpc_channel *ch, int32_t page_size, listing *l)
{
    static const Oms__V1__CustomerService_ListCustomers_Callbacks cb = {
        .on_message = on_customer_item, .on_status = on_list_status};
    memset(l, 0, sizeof *l);
    Oms__V1__ListCustomersRequest req = OMS__V1__LIST_CUSTOMERS_REQUEST__INIT;
    req.page_size = page_size;
    cr_assert_not_null(oms__v1__customer_service__list_customers__call(ch, &req, NULL, &cb, l));
    run_until(&l->done);
}

static void list_products(rpc_channel *ch, int32_t page_size, listing *l)
{
    static const Oms__V1__InventoryService_ListProducts_Callbacks cb = {
        .on_message = on_product_item, .on_status = on_list_status};
    memset(l, 0, sizeof *l);
    Oms__V1__ListProductsRequest req = OMS__V1__LIST_PRODUCTS_REQUEST__INIT;
    req.page_size = page_size;
    cr_assert_not_null(oms__v1__inventory_service__list_products__call(ch, &req, NULL, &cb, l));
    run_until(&l->done);
}

/* --- CustomerService ----------------------------------------------------------------------- */

Test(orders_services, customers, .timeout = 60)
{
    node n;
    node_start(&n, ORDERS_SVC_ALL, false);
    client_init();
    rpc_channel *ch = channel_to(n.port);

    Oms__V1__Customer *c = NULL;
    cr_assert_eq(create_customer(ch, "Ada Lovelace", "ada@example.com", &c), RPC_OK, "%s", msg);
    cr_expect_str_eq(c->name, "Ada Lovelace");
    cr_expect_str_eq(c->email, "ada@example.com");
    cr_expect_eq(c->status, OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE);
    cr_expect_gt(c->created_at, 0);
    cr_expect_eq(strncmp(c->id, "c-", 2), 0, "id %s", c->id);
    char id[32];
    snprintf(id, sizeof id, "%s", c->id);
    oms__v1__customer__free_unpacked(c, NULL);

    cr_expect_eq(create_customer(ch, "Ada Again", "ada@example.com", NULL), RPC_ALREADY_EXISTS);

    char longname[202];
    memset(longname, 'x', 201);
    longname[201] = '\0';
    cr_expect_eq(create_customer(ch, "", "x@example.com", NULL), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "name") != NULL, "%s", msg);
    cr_expect_eq(create_customer(ch, longname, "x@example.com", NULL), RPC_INVALID_ARGUMENT);
    longname[200] = '\0';
    cr_expect_eq(create_customer(ch, longname, "long@example.com", NULL), RPC_OK, "%s", msg);
    cr_expect_eq(create_customer(ch, "Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m", "zoe@example.com", NULL),
                 RPC_OK, "UTF-8 names: %s", msg);
    const char *bad_names[] = {"tab\there", "new\nline",         "bad \xff byte",
                               "cut \xc3",  "overlong \xc0\xaf", "surrogate \xed\xa0\x80"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        cr_expect_eq(create_customer(ch, bad_names[i], "bad@example.com", NULL),
                     RPC_INVALID_ARGUMENT, "name %zu", i);
        cr_expect(strstr(msg, "name") != NULL, "%s", msg);
    }
    const char *bad_emails[] = {
        "",         "plain",    "@example.com", "a@",       "a@b",   "a@@b.com", "a b@c.com",
        "a@b..com", ".a@b.com", "a.@b.com",     "a@-b.com", "a@b.c", "a@b.com.", "a@exa_mple.com"};
    for (size_t i = 0; i < sizeof bad_emails / sizeof bad_emails[0]; i++) {
        cr_expect_eq(create_customer(ch, "X", bad_emails[i], NULL), RPC_INVALID_ARGUMENT, "'%s'",
                     bad_emails[i]);
        cr_expect(strstr(msg, "email") != NULL, "%s", msg);
    }
    char longemail[300];
    memset(longemail, 'a', 250);
    snprintf(longemail + 60, sizeof longemail - 60, "@%0190d.com", 0); /* 255 bytes */
    cr_expect_eq(create_customer(ch, "X", longemail, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_eq(create_customer(ch, "Grace", "grace.hopper+navy@mail.example.org", NULL), RPC_OK,
                 "%s", msg);

    cr_assert_eq(get_customer(ch, id, &c), RPC_OK, "%s", msg);
    cr_expect_str_eq(c->id, id);
    cr_expect_str_eq(c->email, "ada@example.com");
    oms__v1__customer__free_unpacked(c, NULL);
    cr_expect_eq(get_customer(ch, "c-999999", NULL), RPC_NOT_FOUND);
    cr_expect_eq(get_customer(ch, "", NULL), RPC_INVALID_ARGUMENT);
    cr_expect_eq(get_customer(ch, "c-1234567890123456789012345678901234567890", NULL),
                 RPC_INVALID_ARGUMENT);
    cr_expect_str_eq(msg, "id: at most 31 bytes, 42 given");

    cr_assert_eq(set_status(ch, id, OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED, &c),
                 RPC_OK, "%s", msg);
    cr_expect_eq(c->status, OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED);
    oms__v1__customer__free_unpacked(c, NULL);
    cr_assert_eq(get_customer(ch, id, &c), RPC_OK);
    cr_expect_eq(c->status, OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED);
    oms__v1__customer__free_unpacked(c, NULL);
    cr_expect_eq(set_status(ch, id, OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_UNSPECIFIED, NULL),
                 RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "status") != NULL, "%s", msg);
    cr_expect_eq(set_status(ch, id, (Oms__V1__CustomerStatus)7, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_eq(set_status(ch, "c-424242", OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE, NULL),
                 RPC_NOT_FOUND);
    cr_expect_eq(set_status(ch, id, OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE, NULL),
                 RPC_OK);

    channel_free(ch);
    client_fini();
    node_free(&n);
}

Test(orders_services, list_customers_pages, .timeout = 60)
{
    node n;
    node_start(&n, ORDERS_SVC_CUSTOMERS, false);
    client_init();
    rpc_channel *ch = channel_to(n.port);

    listing *l = calloc(1, sizeof *l);
    list_customers(ch, 0, l);
    cr_expect_eq(l->code, RPC_OK, "%s", l->msg);
    cr_expect_eq(l->n, 0, "an empty store lists nothing");

    enum { N = 250 };
    for (int i = 0; i < N; i++) {
        char name[32], email[64];
        snprintf(name, sizeof name, "Customer %d", i);
        snprintf(email, sizeof email, "c%d@example.com", i);
        cr_assert_eq(create_customer(ch, name, email, NULL), RPC_OK, "%s", msg);
    }
    int32_t sizes[] = {0, 1, 7, 100, 250, 100000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        list_customers(ch, sizes[k], l);
        cr_expect_eq(l->code, RPC_OK, "page %d: %s", sizes[k], l->msg);
        cr_expect_eq(l->n, N, "page %d: %zu customers", sizes[k], l->n);
        for (size_t i = 1; i < l->n; i++)
            cr_expect_lt(atol(l->keys[i - 1] + 2), atol(l->keys[i] + 2), "id order: %s, %s",
                         l->keys[i - 1], l->keys[i]);
    }
    list_customers(ch, -1, l);
    cr_expect_eq(l->code, RPC_INVALID_ARGUMENT);
    free(l);

    /* not hosted here */
    cr_expect_eq(upsert(ch, "SKU-1", "x", 1), RPC_UNIMPLEMENTED);

    channel_free(ch);
    client_fini();
    node_free(&n);
}

/* --- InventoryService ------------------------------------------------------------------------ */

Test(orders_services, products, .timeout = 60)
{
    node n;
    node_start(&n, ORDERS_SVC_INVENTORY, false);
    client_init();
    rpc_channel *ch = channel_to(n.port);
    rpc_status st;

    cr_assert_eq(upsert(ch, "SKU-B", "Bolt", 25), RPC_OK, "%s", msg);
    cr_assert_eq(upsert(ch, "SKU-A", "Anvil", 12500), RPC_OK, "%s", msg);
    Oms__V1__Product p = product(ch, "SKU-A", &st);
    cr_assert_eq(st, RPC_OK, "%s", msg);
    cr_expect_eq(p.unit_price_cents, 12500);
    cr_expect_eq(p.on_hand, 0);
    cr_expect_eq(p.reserved, 0);

    cr_expect_eq(adjust(ch, "SKU-A", 10), RPC_OK, "%s", msg);
    cr_expect_eq(adjust(ch, "SKU-A", -3), RPC_OK, "%s", msg);
    p = product(ch, "SKU-A", NULL);
    cr_expect_eq(p.on_hand, 7);
    cr_expect_eq(p.available, 7);
    cr_expect_eq(adjust(ch, "SKU-A", -8), RPC_FAILED_PRECONDITION, "on hand below zero");
    cr_expect_eq(adjust(ch, "SKU-NONE", 5), RPC_NOT_FOUND);
    cr_expect_eq(adjust(ch, "bad sku", 5), RPC_INVALID_ARGUMENT);

    /* an update keeps the stock */
    cr_expect_eq(upsert(ch, "SKU-A", "Anvil, large", 13000), RPC_OK);
    p = product(ch, "SKU-A", NULL);
    cr_expect_eq(p.on_hand, 7);
    cr_expect_eq(p.unit_price_cents, 13000);

    cr_expect_eq(upsert(ch, "", "x", 1), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "sku") != NULL, "%s", msg);
    cr_expect_eq(upsert(ch, "SKU/1", "x", 1), RPC_INVALID_ARGUMENT);
    char longsku[80];
    memset(longsku, 'S', 65);
    longsku[65] = '\0';
    cr_expect_eq(upsert(ch, longsku, "x", 1), RPC_INVALID_ARGUMENT);
    longsku[64] = '\0';
    cr_expect_eq(upsert(ch, longsku, "x", 1), RPC_OK, "64 bytes is fine: %s", msg);
    cr_expect_eq(upsert(ch, "SKU-C", "", 1), RPC_INVALID_ARGUMENT);
    cr_expect_eq(upsert(ch, "SKU-C", "bad \xff", 1), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "name") != NULL, "%s", msg);
    cr_expect_eq(upsert(ch, "SKU-C", "Cog", -1), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "price") != NULL, "%s", msg);
    cr_expect_eq(upsert(ch, "SKU-C", "Free cog", 0), RPC_OK);

    product(ch, "SKU-NONE", &st);
    cr_expect_eq(st, RPC_NOT_FOUND);
    product(ch, "", &st);
    cr_expect_eq(st, RPC_INVALID_ARGUMENT);

    listing *l = calloc(1, sizeof *l);
    list_products(ch, 2, l);
    cr_expect_eq(l->code, RPC_OK, "%s", l->msg);
    cr_assert_eq(l->n, 4);
    cr_expect_str_eq(l->keys[0], "SKU-A");
    cr_expect_eq(l->values[0], 7);
    cr_expect_str_eq(l->keys[1], "SKU-B");
    cr_expect_str_eq(l->keys[2], "SKU-C");
    cr_expect_str_eq(l->keys[3], longsku);
    list_products(ch, -5, l);
    cr_expect_eq(l->code, RPC_INVALID_ARGUMENT);
    free(l);

    channel_free(ch);
    client_fini();
    node_free(&n);
}

Test(orders_services, reserve_and_release, .timeout = 60)
{
    node n;
    node_start(&n, ORDERS_SVC_INVENTORY, false);
    client_init();
    rpc_channel *ch = channel_to(n.port);

    cr_assert_eq(upsert(ch, "A", "Apple", 50), RPC_OK);
    cr_assert_eq(upsert(ch, "B", "Banana", 20), RPC_OK);
    cr_assert_eq(adjust(ch, "A", 10), RPC_OK);
    cr_assert_eq(adjust(ch, "B", 5), RPC_OK);

    rline two[] = {{"A", 3}, {"B", 2}};
    Oms__V1__Reservation *r = NULL;
    cr_assert_eq(reserve(ch, "o-1", two, 2, &r), RPC_OK, "%s", msg);
    cr_expect_str_eq(r->order_id, "o-1");
    cr_assert_eq(r->n_lines, 2);
    cr_expect_str_eq(r->lines[0]->sku, "A");
    cr_expect_eq(r->lines[0]->quantity, 3);
    cr_expect_eq(r->lines[0]->unit_price_cents, 50);
    cr_expect_str_eq(r->lines[1]->sku, "B");
    cr_expect_eq(r->lines[1]->unit_price_cents, 20);
    oms__v1__reservation__free_unpacked(r, NULL);
    cr_expect_eq(product(ch, "A", NULL).reserved, 3);
    cr_expect_eq(product(ch, "B", NULL).reserved, 2);

    /* idempotent: the first reservation, nothing reserved twice, its prices */
    cr_assert_eq(upsert(ch, "A", "Apple", 60), RPC_OK);
    cr_assert_eq(reserve(ch, "o-1", two, 2, &r), RPC_OK, "%s", msg);
    cr_expect_eq(r->lines[0]->unit_price_cents, 50, "the price when reserved");
    oms__v1__reservation__free_unpacked(r, NULL);
    cr_expect_eq(product(ch, "A", NULL).reserved, 3);
    cr_expect_eq(product(ch, "B", NULL).reserved, 2);

    /* all or nothing */
    rline short_b[] = {{"A", 5}, {"B", 4}};
    cr_expect_eq(reserve(ch, "o-2", short_b, 2, NULL), RPC_FAILED_PRECONDITION);
    cr_expect(strstr(msg, "B") != NULL, "names the short sku: %s", msg);
    cr_expect_eq(product(ch, "A", NULL).reserved, 3, "A untouched");
    rline unknown[] = {{"A", 1}, {"NOPE", 1}};
    cr_expect_eq(reserve(ch, "o-3", unknown, 2, NULL), RPC_NOT_FOUND);
    cr_expect_eq(product(ch, "A", NULL).reserved, 3, "A untouched");

    /* invalid requests */
    rline one[] = {{"A", 1}};
    rline dup[] = {{"A", 1}, {"B", 1}, {"A", 2}};
    rline zero[] = {{"A", 0}};
    rline neg[] = {{"A", -1}};
    rline badsku[] = {{"A", 1}, {"no such/sku", 1}};
    cr_expect_eq(reserve(ch, "", one, 1, NULL), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "order_id") != NULL, "%s", msg);
    cr_expect_eq(reserve(ch, "o-12345678901234567890123456789012", one, 1, NULL),
                 RPC_INVALID_ARGUMENT);
    cr_expect_eq(reserve(ch, "o-4", one, 0, NULL), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "lines") != NULL, "%s", msg);
    cr_expect_eq(reserve(ch, "o-4", dup, 3, NULL), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "lines[2].sku") != NULL, "%s", msg);
    cr_expect_eq(reserve(ch, "o-4", zero, 1, NULL), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "quantity") != NULL, "%s", msg);
    cr_expect_eq(reserve(ch, "o-4", neg, 1, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_eq(reserve(ch, "o-4", badsku, 2, NULL), RPC_INVALID_ARGUMENT);
    cr_expect(strstr(msg, "lines[1].sku") != NULL, "%s", msg);
    rline many[101];
    char skus[101][8];
    for (int i = 0; i < 101; i++) {
        snprintf(skus[i], sizeof skus[i], "S%d", i);
        many[i] = (rline){skus[i], 1};
    }
    cr_expect_eq(reserve(ch, "o-4", many, 101, NULL), RPC_INVALID_ARGUMENT);
    cr_expect_eq(product(ch, "A", NULL).reserved, 3);

    /* reserved stock cannot be adjusted away */
    cr_expect_eq(adjust(ch, "A", -8), RPC_FAILED_PRECONDITION);
    cr_expect_eq(adjust(ch, "A", -7), RPC_OK);

    bool released = false;
    cr_expect_eq(release(ch, "o-1", &released), RPC_OK, "%s", msg);
    cr_expect(released);
    cr_expect_eq(product(ch, "A", NULL).reserved, 0);
    cr_expect_eq(product(ch, "B", NULL).reserved, 0);
    cr_expect_eq(release(ch, "o-1", &released), RPC_OK, "releasing again is fine");
    cr_expect(!released);
    cr_expect_eq(release(ch, "o-77", &released), RPC_OK, "unknown order");
    cr_expect(!released);
    cr_expect_eq(release(ch, "", NULL), RPC_INVALID_ARGUMENT);

    channel_free(ch);
    client_fini();
    node_free(&n);
}

Test(orders_services, demo_data, .timeout = 60)
{
    node n;
    node_start(&n, ORDERS_SVC_ALL, true);
    client_init();
    rpc_channel *ch = channel_to(n.port);

    listing *l = calloc(1, sizeof *l);
    list_customers(ch, 0, l);
    cr_expect_eq(l->code, RPC_OK);
    cr_expect_eq(l->n, 3);
    list_products(ch, 0, l);
    cr_expect_eq(l->code, RPC_OK);
    cr_expect_geq(l->n, 5);
    cr_expect_str_eq(l->keys[0], "SKU-001");
    for (size_t i = 0; i < l->n; i++)
        cr_expect(l->values[i] >= 100 && l->values[i] <= 1000, "%s: %ld", l->keys[i],
                  (long)l->values[i]);
    cr_expect_eq(create_customer(ch, "Ada", "ada@example.com", NULL), RPC_ALREADY_EXISTS,
                 "the demo's Ada");
    channel_free(ch);
    client_fini();

    /* a second open of a store with data adds nothing */
    node_stop(&n);
    orders_config cfg;
    char url[128];
    node_config(&cfg, &n, url, sizeof url);
    cfg.demo_data = true;
    node_serve(&n, &cfg, 0);
    client_init();
    ch = channel_to(n.port);
    list_customers(ch, 0, l);
    cr_expect_eq(l->n, 3);
    free(l);
    channel_free(ch);
    client_fini();
    node_free(&n);
}

Test(orders_services, config_errors, .timeout = 60)
{
    char err[256] = "";
    orders_config cfg;
    orders_config_init(&cfg);
    cr_expect_eq(cfg.services, ORDERS_SVC_ALL);
    cr_expect_str_eq(cfg.store_url, "sqlite:./oms.db");
    cr_expect(cfg.demo_data);
    cr_expect(cfg.peer_tls);
    cr_expect_eq(cfg.peer_timeout_ms, 5000);
    cr_expect_eq(cfg.event_ring, 65536);
    cr_expect_eq(cfg.page_size, 100);
    cr_expect_eq(cfg.max_import_rows, 100000);

    cfg.store_url = "sqlite:/nonexistent-dir/x/oms.db";
    cfg.services = ORDERS_SVC_ORDERS;
    cr_expect_null(orders_open(&cfg, err, sizeof err));
    cr_expect(strstr(err, "inventory") != NULL, "%s", err);
    cfg.inventory_target = "127.0.0.1:1";
    cr_expect_null(orders_open(&cfg, err, sizeof err));
    cr_expect(strstr(err, "customer") != NULL, "%s", err);
    cfg.services = ORDERS_SVC_ORDERS | ORDERS_SVC_CUSTOMERS;
    cr_expect_null(orders_open(&cfg, err, sizeof err), "the store cannot open");
    cfg.services = 0;
    cr_expect_null(orders_open(&cfg, err, sizeof err));
    cfg.services = 8;
    cr_expect_null(orders_open(&cfg, err, sizeof err));
}

Test(orders_services, store_status, .timeout = 60)
{
    cr_expect_eq(orders__status(STORE_OK), RPC_OK);
    cr_expect_eq(orders__status(STORE_NOT_FOUND), RPC_NOT_FOUND);
    cr_expect_eq(orders__status(STORE_EXISTS), RPC_ALREADY_EXISTS);
    cr_expect_eq(orders__status(STORE_CONFLICT), RPC_ABORTED);
    cr_expect_eq(orders__status(STORE_PRECONDITION), RPC_FAILED_PRECONDITION);
    cr_expect_eq(orders__status(STORE_INVALID), RPC_INVALID_ARGUMENT);
    cr_expect_eq(orders__status(STORE_ERROR), RPC_INTERNAL);
    cr_expect_eq(orders__status(STORE_CLOSED), RPC_UNAVAILABLE);
}

/* --- split deployment: the remote ports --------------------------------------------------- */

typedef struct outcome {
    bool done;
    rpc_status code;
    char msg[256];
    store_customer customer;
    store_line lines[8];
    size_t nlines;
} outcome;

static void on_port_customer(void *arg, rpc_status code, const char *m, const store_customer *c)
{
    outcome *o = arg;
    o->done = true;
    o->code = code;
    snprintf(o->msg, sizeof o->msg, "%s", m);
    cr_expect_eq(c != NULL, code == RPC_OK);
    if (c)
        o->customer = *c;
}

static void on_port_reserve(void *arg, rpc_status code, const char *m, const store_line *lines,
                            size_t n, const orders_err *err)
{
    outcome *o = arg;
    cr_expect(code != RPC_OK || !err, "details with OK");
    o->done = true;
    o->code = code;
    snprintf(o->msg, sizeof o->msg, "%s", m);
    cr_assert_leq(n, 8);
    if (n)
        memcpy(o->lines, lines, n * sizeof *lines);
    o->nlines = n;
}

static void on_port_release(void *arg, rpc_status code, const char *m)
{
    outcome *o = arg;
    o->done = true;
    o->code = code;
    snprintf(o->msg, sizeof o->msg, "%s", m);
}

/* An orders object hosting only the order service, calling target for the
 * other two, attached to the client loop (its order service unserved). */
static orders *orders_split(const char *dir, const char *target)
{
    char err[256];
    orders *o = orders_split_open(dir, target);
    cr_expect_neq(orders_loop_attach(o, &cloop, err, sizeof err), 0, "attached twice");
    return o;
}

static void orders_split_close(orders *o)
{
    orders_loop_detach(o, &cloop);
    cr_expect_null(orders__loop(o, &cloop));
    uv_run(&cloop, UV_RUN_DEFAULT); /* the loop's handles close */
    orders_close(o);
}

Test(orders_services, split_ports, .timeout = 60)
{
    node a;
    node_start(&a, ORDERS_SVC_CUSTOMERS | ORDERS_SVC_INVENTORY, false);
    client_init();
    rpc_channel *ch = channel_to(a.port);
    Oms__V1__Customer *c = NULL;
    cr_assert_eq(create_customer(ch, "Alan Turing", "alan@example.com", &c), RPC_OK, "%s", msg);
    char cid[32];
    snprintf(cid, sizeof cid, "%s", c->id);
    oms__v1__customer__free_unpacked(c, NULL);
    cr_assert_eq(upsert(ch, "P-1", "Pen", 150), RPC_OK);
    cr_assert_eq(upsert(ch, "P-2", "Pad", 275), RPC_OK);
    cr_assert_eq(adjust(ch, "P-1", 10), RPC_OK);
    cr_assert_eq(adjust(ch, "P-2", 10), RPC_OK);

    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", a.port);
    orders *b = orders_split(a.dir, target);
    orders_loop *ol = orders__loop(b, &cloop);
    cr_assert_not_null(ol);
    cr_expect_eq(ol->customers, &orders__remote_customers);
    cr_expect_eq(ol->inventory, &orders__remote_inventory);

    outcome o = {0};
    ol->customers->get_customer(ol, cid, 0, NULL, on_port_customer, &o);
    run_until(&o.done);
    cr_expect_eq(o.code, RPC_OK, "%s", o.msg);
    cr_expect_str_eq(o.customer.id, cid);
    cr_expect_str_eq(o.customer.name, "Alan Turing");
    cr_expect_str_eq(o.customer.email, "alan@example.com");
    cr_expect_eq(o.customer.status, STORE_CUSTOMER_ACTIVE);

    o = (outcome){0};
    ol->customers->get_customer(ol, "c-987654", 1000, NULL, on_port_customer, &o);
    run_until(&o.done);
    cr_expect_eq(o.code, RPC_NOT_FOUND, "%s", o.msg);

    store_line lines[2] = {{.sku = "P-1", .quantity = 4}, {.sku = "P-2", .quantity = 1}};
    o = (outcome){0};
    ol->inventory->reserve(ol, "o-501", lines, 2, 1000, NULL, on_port_reserve, &o);
    run_until(&o.done);
    cr_expect_eq(o.code, RPC_OK, "%s", o.msg);
    cr_assert_eq(o.nlines, 2);
    cr_expect_str_eq(o.lines[0].sku, "P-1");
    cr_expect_eq(o.lines[0].quantity, 4);
    cr_expect_eq(o.lines[0].unit_price_cents, 150);
    cr_expect_eq(o.lines[1].unit_price_cents, 275);
    cr_expect_eq(product(ch, "P-1", NULL).reserved, 4);

    /* a peer's status goes through as it is */
    store_line too_many[1] = {{.sku = "P-1", .quantity = 7}};
    o = (outcome){0};
    ol->inventory->reserve(ol, "o-502", too_many, 1, 0, NULL, on_port_reserve, &o);
    run_until(&o.done);
    cr_expect_eq(o.code, RPC_FAILED_PRECONDITION, "%s", o.msg);
    cr_expect(strstr(o.msg, "P-1") != NULL, "%s", o.msg);
    store_line unknown[1] = {{.sku = "P-9", .quantity = 1}};
    o = (outcome){0};
    ol->inventory->reserve(ol, "o-503", unknown, 1, 0, NULL, on_port_reserve, &o);
    run_until(&o.done);
    cr_expect_eq(o.code, RPC_NOT_FOUND, "%s", o.msg);

    o = (outcome){0};
    ol->inventory->release(ol, "o-501", 0, NULL, on_port_release, &o);
    run_until(&o.done);
    cr_expect_eq(o.code, RPC_OK, "%s", o.msg);
    cr_expect_eq(product(ch, "P-1", NULL).reserved, 0);
    ol->inventory->release(ol, "o-501", 0, NULL, NULL, NULL); /* no callback: fine */

    channel_free(ch);
    orders_split_close(b);
    client_fini();
    node_free(&a);
}

/* A release whose inventory service is away is retried until it comes back. */
Test(orders_services, release_retried_in_background, .timeout = 60)
{
    node a;
    node_start(&a, ORDERS_SVC_INVENTORY, false);
    int port = a.port;
    client_init();
    rpc_channel *ch = channel_to(port);
    cr_assert_eq(upsert(ch, "R-1", "Rope", 100), RPC_OK);
    cr_assert_eq(adjust(ch, "R-1", 5), RPC_OK);
    rline l[] = {{"R-1", 2}};
    cr_assert_eq(reserve(ch, "o-900", l, 1, NULL), RPC_OK, "%s", msg);
    channel_free(ch);
    node_stop(&a);

    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    orders *b = orders_split(a.dir, target);
    orders_loop *ol = orders__loop(b, &cloop);
    outcome o = {0};
    ol->inventory->release(ol, "o-900", 300, NULL, on_port_release, &o);
    run_until(&o.done);
    cr_expect(o.code == RPC_UNAVAILABLE || o.code == RPC_DEADLINE_EXCEEDED, "%s: %s",
              rpc_status_name(o.code), o.msg);

    /* the inventory service returns on the same port and store */
    orders_config cfg;
    char url[128];
    node_config(&cfg, &a, url, sizeof url);
    cfg.services = ORDERS_SVC_INVENTORY;
    node_serve(&a, &cfg, port);
    ch = channel_to(port);
    int64_t reserved = -1;
    for (int i = 0; i < 100 && reserved != 0; i++) {
        reserved = product(ch, "R-1", NULL).reserved;
        if (reserved != 0)
            spin_ms(100);
    }
    cr_expect_eq(reserved, 0, "the release got through");

    /* one left behind when the loop goes: logged, nothing leaks */
    node_stop(&a);
    outcome o2 = {0};
    ol->inventory->release(ol, "o-901", 200, NULL, on_port_release, &o2);
    run_until(&o2.done); /* the first attempt failed: now retried in the background */
    cr_expect(o2.code == RPC_UNAVAILABLE || o2.code == RPC_DEADLINE_EXCEEDED, "%s: %s",
              rpc_status_name(o2.code), o2.msg);
    channel_free(ch);
    orders_split_close(b);
    client_fini();
    node_free(&a);
}

/* The in-process ports, on an orders object attached to the client loop. */
Test(orders_services, local_ports, .timeout = 60)
{
    node a;
    memset(&a, 0, sizeof a);
    snprintf(a.dir, sizeof a.dir, "/tmp/oms-orders-test-XXXXXX");
    cr_assert_not_null(mkdtemp(a.dir));
    client_init();
    orders_config cfg;
    char url[128], err[256];
    node_config(&cfg, &a, url, sizeof url);
    cfg.services = ORDERS_SVC_CUSTOMERS | ORDERS_SVC_INVENTORY;
    cfg.demo_data = true;
    orders *o = orders_open(&cfg, err, sizeof err);
    cr_assert_not_null(o, "%s", err);
    cr_assert_eq(orders_loop_attach(o, &cloop, err, sizeof err), 0, "%s", err);
    orders_loop *ol = orders__loop(o, &cloop);
    cr_assert_not_null(ol);
    cr_expect_eq(ol->customers, &orders__local_customers);
    cr_expect_eq(ol->inventory, &orders__local_inventory);

    outcome r = {0};
    ol->customers->get_customer(ol, "c-1", 0, NULL, on_port_customer, &r);
    run_until(&r.done);
    cr_expect_eq(r.code, RPC_OK, "%s", r.msg);
    cr_expect_str_eq(r.customer.name, "Ada Lovelace");
    r = (outcome){0};
    ol->customers->get_customer(ol, "c-99", 0, NULL, on_port_customer, &r);
    run_until(&r.done);
    cr_expect_eq(r.code, RPC_NOT_FOUND);

    store_line lines[2] = {{.sku = "SKU-001", .quantity = 2}, {.sku = "SKU-002", .quantity = 1}};
    r = (outcome){0};
    ol->inventory->reserve(ol, "o-1", lines, 2, 0, NULL, on_port_reserve, &r);
    run_until(&r.done);
    cr_expect_eq(r.code, RPC_OK, "%s", r.msg);
    cr_expect_eq(r.nlines, 2);
    cr_expect_gt(r.lines[0].unit_price_cents, 0);
    store_product p;
    cr_expect_eq(store_get_product(ol->sl, "SKU-001", &p), STORE_OK);
    cr_expect_eq(p.reserved, 2);

    store_line dup[2] = {{.sku = "SKU-001", .quantity = 2}, {.sku = "SKU-001", .quantity = 1}};
    r = (outcome){0};
    ol->inventory->reserve(ol, "o-2", dup, 2, 0, NULL, on_port_reserve, &r);
    run_until(&r.done);
    cr_expect_eq(r.code, RPC_INVALID_ARGUMENT);
    store_line huge[1] = {{.sku = "SKU-001", .quantity = 1000000}};
    r = (outcome){0};
    ol->inventory->reserve(ol, "o-3", huge, 1, 0, NULL, on_port_reserve, &r);
    run_until(&r.done);
    cr_expect_eq(r.code, RPC_FAILED_PRECONDITION, "%s", r.msg);

    r = (outcome){0};
    ol->inventory->release(ol, "o-1", 0, NULL, on_port_release, &r);
    run_until(&r.done);
    cr_expect_eq(r.code, RPC_OK, "%s", r.msg);
    cr_expect_eq(store_get_product(ol->sl, "SKU-001", &p), STORE_OK);
    cr_expect_eq(p.reserved, 0);
    r = (outcome){0};
    ol->inventory->release(ol, "o-1", 0, NULL, on_port_release, &r);
    run_until(&r.done);
    cr_expect_eq(r.code, RPC_OK, "releasing again is fine: %s", r.msg);

    orders_loop_detach(o, &cloop);
    uv_run(&cloop, UV_RUN_DEFAULT);
    orders_close(o);
    client_fini();
    node_free(&a);
}

/* A listing larger than the call's send buffer: the handler meets RPC_AGAIN
 * and resumes from on_ready, page after page. */
Test(orders_services, list_products_flow_control, .timeout = 120)
{
    node n;
    node_start(&n, ORDERS_SVC_INVENTORY, false);
    client_init();
    rpc_channel *ch = channel_to(n.port);
    enum { N = 1500 };
    char name[STORE_NAME_MAX + 1];
    memset(name, 'n', STORE_NAME_MAX);
    name[STORE_NAME_MAX] = '\0';
    for (int i = 0; i < N; i++) {
        char sku[16];
        snprintf(sku, sizeof sku, "F-%05d", i);
        cr_assert_eq(upsert(ch, sku, name, i), RPC_OK, "%s", msg);
    }
    listing *l = calloc(1, sizeof *l);
    int32_t pages[] = {1000, 300, 0};
    for (size_t k = 0; k < sizeof pages / sizeof pages[0]; k++) {
        list_products(ch, pages[k], l);
        cr_expect_eq(l->code, RPC_OK, "%s", l->msg);
        cr_expect_eq(l->total, N, "page %d: %zu products", pages[k], l->total);
        cr_expect(!l->unordered, "sku order");
        cr_expect_str_eq(l->keys[0], "F-00000");
        cr_expect_eq(l->values[0], 0);
    }
    free(l);
    channel_free(ch);
    client_fini();
    node_free(&n);
}

static rpc_status create_order(rpc_channel *ch, const char *customer, const rline *lines, size_t n,
                               Oms__V1__Order **out)
{
    Oms__V1__CreateOrderLine cl[8];
    Oms__V1__CreateOrderLine *clp[8];
    cr_assert(n <= 8);
    for (size_t i = 0; i < n; i++) {
        oms__v1__create_order_line__init(&cl[i]);
        cl[i].sku = (char *)lines[i].sku;
        cl[i].quantity = lines[i].quantity;
        clp[i] = &cl[i];
    }
    Oms__V1__CreateOrderRequest req = OMS__V1__CREATE_ORDER_REQUEST__INIT;
    req.customer_id = (char *)customer;
    req.n_lines = n;
    req.lines = clp;
    Oms__V1__Order *o = NULL;
    rpc_status st =
        oms__v1__order_service__create_order__blocking(ch, &req, &o, NULL, msg, sizeof msg);
    if (out)
        *out = o;
    else if (o)
        oms__v1__order__free_unpacked(o, NULL);
    return st;
}

/* The order service alone, over gRPC to a process with the other two. */
Test(orders_services, split_create_order)
{
    node a, b;
    node_start(&a, ORDERS_SVC_CUSTOMERS | ORDERS_SVC_INVENTORY, false);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", a.port);
    node_start_split(&b, target);
    client_init();
    rpc_channel *cha = channel_to(a.port);
    rpc_channel *chb = channel_to(b.port);

    Oms__V1__Customer *c = NULL;
    cr_assert_eq(create_customer(cha, "Grace Hopper", "grace@example.com", &c), RPC_OK);
    char cid[32];
    snprintf(cid, sizeof cid, "%s", c->id);
    oms__v1__customer__free_unpacked(c, NULL);
    cr_assert_eq(upsert(cha, "K-1", "Keyboard", 4500), RPC_OK);
    cr_assert_eq(upsert(cha, "K-2", "Key cap", 120), RPC_OK);
    cr_assert_eq(adjust(cha, "K-1", 3), RPC_OK);
    cr_assert_eq(adjust(cha, "K-2", 100), RPC_OK);

    /* B does not serve the other two */
    cr_expect_eq(get_customer(chb, cid, NULL), RPC_UNIMPLEMENTED);

    rline lines[] = {{"K-1", 2}, {"K-2", 10}};
    Oms__V1__Order *o = NULL;
    cr_assert_eq(create_order(chb, cid, lines, 2, &o), RPC_OK, "%s", msg);
    cr_expect_eq(o->total_cents, 2 * 4500 + 10 * 120);
    cr_assert_eq(o->n_lines, 2);
    cr_expect_eq(o->lines[1]->unit_price_cents, 120);
    cr_expect_eq(o->status, OMS__V1__ORDER_STATUS__ORDER_STATUS_PENDING);
    char oid[32];
    snprintf(oid, sizeof oid, "%s", o->id);
    oms__v1__order__free_unpacked(o, NULL);
    cr_expect_eq(product(cha, "K-1", NULL).reserved, 2, "reserved at A");
    cr_expect_eq(product(cha, "K-2", NULL).reserved, 10);

    /* a peer's refusal comes back through B, and nothing stays reserved */
    rline short_k1[] = {{"K-2", 1}, {"K-1", 2}};
    cr_expect_eq(create_order(chb, cid, short_k1, 2, NULL), RPC_FAILED_PRECONDITION, "%s", msg);
    cr_expect_eq(product(cha, "K-2", NULL).reserved, 10);
    rline unknown[] = {{"K-9", 1}};
    cr_expect_eq(create_order(chb, cid, unknown, 1, NULL), RPC_NOT_FOUND, "%s", msg);
    cr_expect_eq(create_order(chb, "c-4040", lines, 2, NULL), RPC_NOT_FOUND, "%s", msg);
    cr_assert_eq(set_status(cha, cid, OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED, NULL),
                 RPC_OK);
    cr_expect_eq(create_order(chb, cid, lines, 2, NULL), RPC_FAILED_PRECONDITION, "%s", msg);

    /* a cancel at B releases the stock at A */
    Oms__V1__CancelOrderRequest cr = OMS__V1__CANCEL_ORDER_REQUEST__INIT;
    cr.id = oid;
    cr.reason = "changed my mind";
    cr_expect_eq(
        oms__v1__order_service__cancel_order__blocking(chb, &cr, &o, NULL, msg, sizeof msg), RPC_OK,
        "%s", msg);
    if (o)
        oms__v1__order__free_unpacked(o, NULL);
    int64_t reserved = -1;
    for (int i = 0; i < 100 && reserved != 0; i++) {
        reserved = product(cha, "K-1", NULL).reserved;
        if (reserved)
            spin_ms(20);
    }
    cr_expect_eq(reserved, 0, "released at A");

    channel_free(cha);
    channel_free(chb);
    client_fini();
    node_free(&b);
    node_free(&a);
}
