/* The authorization interceptor end to end: a real rpc + http2 server on
 * 127.0.0.1:0 (h2c) serving oms.v1.InventoryService and CustomerService with
 * stub handlers, and a client channel, on one loop. A test interceptor placed
 * before authz attaches the principal the request's test headers describe
 * (x-test-scopes: a token's scopes; x-test-cert: a certificate's identity),
 * as the real authentication interceptor will. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "authz/authz.h"
#include "oms/v1/customer.pb-c.h"
#include "oms/v1/inventory.pb-c.h"
#include "rpc/rpc_client.h"

static uv_loop_t loop;
static rpc_server *srv;
static http2_server *h2;
static rpc_channel *chan;
static authz_policy *policy;

/* What the handler saw of its last call. */
static int handled;
static bool saw_principal, saw_all_scopes;
static size_t saw_nscopes;
static char saw_scope0[64], saw_customer[64];

/* --- the test authentication interceptor ------------------------------------------- */

static rpc_intercept_action on_test_auth(rpc_call *c, void *data, void **state)
{
    (void)data;
    (void)state;
    const rpc_metadata *md = rpc_call_metadata(c);
    size_t len;
    char buf[512];
    const char *words[16];
    size_t n = 0;
    rpc_principal p = {.source = RPC_PRINCIPAL_TOKEN, .subject = "test"};
    const uint8_t *v = rpc_metadata_get(md, "x-test-cert", &len);
    if (v) {
        snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)v);
        p.source = RPC_PRINCIPAL_CERT;
        p.subject = buf;
        p.all_scopes = true;
    } else if ((v = rpc_metadata_get(md, "x-test-scopes", &len))) {
        snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)v);
        char *save = NULL;
        for (char *t = strtok_r(buf, " ", &save); t && n < 16; t = strtok_r(NULL, " ", &save))
            words[n++] = t;
        p.scopes = words;
        p.n_scopes = n;
    } else {
        return RPC_INTERCEPT_CONTINUE; /* no credentials */
    }
    if ((v = rpc_metadata_get(md, "x-test-customer", &len))) {
        static char cust[64];
        snprintf(cust, sizeof cust, "%.*s", (int)len, (const char *)v);
        p.customer_id = cust;
    }
    cr_assert_eq(rpc_call_set_principal(c, &p), 0);
    return RPC_INTERCEPT_CONTINUE;
}

static const rpc_interceptor test_auth = {.name = "test-auth", .on_start = on_test_auth};

/* --- stub handlers: one Product per call ------------------------------------------- */

static void on_product_call(rpc_call *c, const ProtobufCMessage *req)
{
    (void)req;
    handled++;
    const rpc_principal *p = rpc_call_principal(c);
    saw_principal = p != NULL;
    saw_all_scopes = p && p->all_scopes;
    saw_nscopes = p ? p->n_scopes : 0;
    snprintf(saw_scope0, sizeof saw_scope0, "%s", p && p->n_scopes ? p->scopes[0] : "");
    snprintf(saw_customer, sizeof saw_customer, "%s", p && p->customer_id ? p->customer_id : "");
    Oms__V1__Product m = OMS__V1__PRODUCT__INIT;
    m.sku = "SKU-1";
    rpc_call_send(c, &m.base);
    rpc_call_finish(c, RPC_OK, NULL);
}

static void on_customer_call(rpc_call *c, const ProtobufCMessage *req)
{
    (void)req;
    handled++;
    Oms__V1__Customer m = OMS__V1__CUSTOMER__INIT;
    m.id = "c-1";
    rpc_call_send(c, &m.base);
    rpc_call_finish(c, RPC_OK, NULL);
}

static const rpc_method_ops unary_product = {.on_message = on_product_call};
static const rpc_method_ops stream_product = {.flags = RPC_SERVER_STREAMING,
                                              .on_message = on_product_call};
static const rpc_method_ops unary_customer = {.on_message = on_customer_call};

/* ops[] for desc: the named methods get their stub, the others NULL. */
static void fill_ops(const ProtobufCServiceDescriptor *d, const rpc_method_ops **ops)
{
    for (unsigned i = 0; i < d->n_methods; i++) {
        const char *m = d->methods[i].name;
        ops[i] = NULL;
        if (!strcmp(m, "GetProduct") || !strcmp(m, "UpsertProduct"))
            ops[i] = &unary_product;
        else if (!strcmp(m, "ListProducts"))
            ops[i] = &stream_product;
        else if (!strcmp(m, "GetCustomer"))
            ops[i] = &unary_customer;
    }
}

static const rpc_method_ops *inv_ops[16], *cust_ops[16];

static const char policy_text[] = "method /oms.v1.InventoryService/GetProduct inventory:read\n"
                                  "method /oms.v1.InventoryService/ListProducts inventory:read\n"
                                  "method /oms.v1.InventoryService/* inventory:write\n"
                                  "imply inventory:admin inventory:read inventory:write\n"
                                  "public /oms.v1.CustomerService/GetCustomer\n"
                                  "principal spiffe://oms.local/service/orders inventory:read\n"
                                  "principal spiffe://oms.local/nobody\n";

static void setup(void)
{
    char err[256];
    policy =
        authz_policy_parse("test", policy_text, sizeof policy_text - 1, false, err, sizeof err);
    cr_assert_not_null(policy, "%s", err);
    cr_assert_eq(uv_loop_init(&loop), 0);
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    srv = rpc_server_new(&rcfg);
    cr_assert_not_null(srv);
    fill_ops(&oms__v1__inventory_service__descriptor, inv_ops);
    fill_ops(&oms__v1__customer_service__descriptor, cust_ops);
    rpc_service_impl inv = {.desc = &oms__v1__inventory_service__descriptor, .ops = inv_ops};
    rpc_service_impl cus = {.desc = &oms__v1__customer_service__descriptor, .ops = cust_ops};
    cr_assert_eq(rpc_server_add_service(srv, &inv), 0);
    cr_assert_eq(rpc_server_add_service(srv, &cus), 0);
    cr_assert_eq(rpc_server_add_interceptor(srv, &test_auth, NULL), 0);
    cr_assert_eq(authz_server_add(srv, policy), 0);

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = 0;
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = srv;
    cr_assert_eq(http2_server_new(&loop, &hcfg, &h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(h2), 0);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", http2_server_port(h2));
    rpc_channel_config ccfg;
    rpc_channel_config_init(&ccfg);
    ccfg.target = target;
    ccfg.tls = false;
    ccfg.retry.max_attempts = 1;
    chan = rpc_channel_new(&loop, &ccfg, err, sizeof err);
    cr_assert_not_null(chan, "%s", err);
    handled = 0;
}

static void on_flag(void *arg)
{
    *(bool *)arg = true;
}

static void on_h2_down(http2_server *s, void *arg)
{
    (void)s;
    *(bool *)arg = true;
}

static void run_until(const bool *flag)
{
    while (!*flag)
        uv_run(&loop, UV_RUN_ONCE);
}

static void teardown(void)
{
    bool freed = false, down = false;
    rpc_channel_free(chan, on_flag, &freed);
    run_until(&freed);
    http2_server_shutdown(h2, 0, on_h2_down, &down);
    run_until(&down);
    uv_run(&loop, UV_RUN_DEFAULT);
    http2_server_free(h2);
    cr_expect_eq(rpc_server_active_calls(srv), 0);
    rpc_server_free(srv);
    cr_expect_eq(uv_loop_close(&loop), 0);
    authz_policy_free(policy);
}

TestSuite(authz_interceptor, .init = setup, .fini = teardown, .timeout = 30);

/* --- calls ------------------------------------------------------------------------------ */

static char msg[256];

/* A unary call of method (a path) with the test headers: scopes (NULL: none),
 * cert (NULL: none). */
static rpc_status call(const char *path, const char *scopes, const char *cert, const char *customer)
{
    rpc_md md[4];
    size_t n = 0;
    if (scopes)
        md[n++] = (rpc_md){"x-test-scopes", (const uint8_t *)scopes, strlen(scopes)};
    if (cert)
        md[n++] = (rpc_md){"x-test-cert", (const uint8_t *)cert, strlen(cert)};
    if (customer)
        md[n++] = (rpc_md){"x-test-customer", (const uint8_t *)customer, strlen(customer)};
    md[n++] = (rpc_md){"authorization", (const uint8_t *)"Bearer s3cr3t-token", 19};
    rpc_call_opts opts = {.timeout_ms = 10000, .md = md, .nmd = n};
    Oms__V1__GetProductRequest req = OMS__V1__GET_PRODUCT_REQUEST__INIT;
    req.sku = "SKU-1";
    ProtobufCMessage *resp = NULL;
    msg[0] = '\0';
    rpc_status st = rpc_blocking_unary(chan, path, &req.base, &oms__v1__product__descriptor, &resp,
                                       &opts, msg, sizeof msg);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    cr_assert_null(strstr(msg, "s3cr3t"), "a credential echoed: %s", msg);
    return st;
}

#define GET    "/oms.v1.InventoryService/GetProduct"
#define UPSERT "/oms.v1.InventoryService/UpsertProduct"
#define ADJUST "/oms.v1.InventoryService/AdjustStock"
#define LIST   "/oms.v1.InventoryService/ListProducts"

Test(authz_interceptor, no_principal_is_unauthenticated)
{
    cr_expect_eq(call(GET, NULL, NULL, NULL), RPC_UNAUTHENTICATED);
    cr_expect_str_eq(msg, "authentication required");
    cr_expect_eq(call(UPSERT, NULL, NULL, NULL), RPC_UNAUTHENTICATED);
    /* unknown methods too: the method table is not probed without credentials */
    cr_expect_eq(call("/no.Such/Method", NULL, NULL, NULL), RPC_UNAUTHENTICATED);
    cr_expect_eq(handled, 0, "no handler ran");
}

Test(authz_interceptor, scopes_allow_and_deny)
{
    cr_expect_eq(call(GET, "inventory:read", NULL, NULL), RPC_OK, "%s", msg);
    cr_expect_eq(handled, 1);
    cr_expect(saw_principal);
    cr_expect_eq(call(UPSERT, "inventory:read", NULL, NULL), RPC_PERMISSION_DENIED);
    cr_expect_str_eq(msg, "missing scope inventory:write");
    cr_expect_eq(call(UPSERT, "inventory:write orders:read", NULL, NULL), RPC_OK, "%s", msg);
    /* the service wildcard; NULL ops answer UNIMPLEMENTED once allowed */
    cr_expect_eq(call(ADJUST, "inventory:write", NULL, NULL), RPC_UNIMPLEMENTED, "%s", msg);
    cr_expect_eq(call(ADJUST, "inventory:read", NULL, NULL), RPC_PERMISSION_DENIED);
    /* implication */
    cr_expect_eq(call(GET, "inventory:admin", NULL, NULL), RPC_OK, "%s", msg);
    cr_expect_eq(call(UPSERT, "inventory:admin", NULL, NULL), RPC_OK, "%s", msg);
    /* no scope at all */
    cr_expect_eq(call(GET, "", NULL, NULL), RPC_PERMISSION_DENIED);
    cr_expect_str_eq(msg, "missing scope inventory:read");
    cr_expect_eq(handled, 4);
}

Test(authz_interceptor, public_and_unknown_methods)
{
    cr_expect_eq(call("/oms.v1.CustomerService/GetCustomer", NULL, NULL, NULL), RPC_OK, "%s", msg);
    cr_expect_eq(handled, 1);
    /* other CustomerService methods are not covered: denied by default */
    cr_expect_eq(call("/oms.v1.CustomerService/ListCustomers", "inventory:admin", NULL, NULL),
                 RPC_PERMISSION_DENIED);
    cr_expect_str_eq(msg, "method not covered by the authorization policy");
    cr_expect_eq(call("/no.Such/Method", "inventory:admin", NULL, NULL), RPC_PERMISSION_DENIED);
    cr_expect_eq(handled, 1);
}

Test(authz_interceptor, cert_principals_narrowed)
{
    /* named: exactly the policy's scopes, and the handler sees them */
    cr_expect_eq(call(GET, NULL, "spiffe://oms.local/service/orders", NULL), RPC_OK, "%s", msg);
    cr_expect(saw_principal);
    cr_expect_not(saw_all_scopes);
    cr_expect_eq(saw_nscopes, 1);
    cr_expect_str_eq(saw_scope0, "inventory:read");
    cr_expect_eq(call(UPSERT, NULL, "spiffe://oms.local/service/orders", NULL),
                 RPC_PERMISSION_DENIED);
    cr_expect_str_eq(msg, "missing scope inventory:write");
    /* named with nothing: only public methods */
    cr_expect_eq(call(GET, NULL, "spiffe://oms.local/nobody", NULL), RPC_PERMISSION_DENIED);
    cr_expect_eq(
        call("/oms.v1.CustomerService/GetCustomer", NULL, "spiffe://oms.local/nobody", NULL),
        RPC_OK);
    /* unnamed: every scope */
    cr_expect_eq(call(UPSERT, NULL, "spiffe://oms.local/other", "c-7"), RPC_OK, "%s", msg);
    cr_expect(saw_all_scopes);
    cr_expect_str_eq(saw_customer, "c-7", "customer_id kept through narrowing");
}

/* A server-streaming method: denied before the handler, allowed through it. */
typedef struct streamed {
    bool done;
    rpc_status code;
    int msgs;
} streamed;

static void on_stream_msg(rpc_client_call *c, const ProtobufCMessage *m)
{
    (void)m;
    ((streamed *)rpc_client_call_data(c))->msgs++;
}

static void on_stream_status(rpc_client_call *c, rpc_status code, const char *message,
                             const rpc_metadata *trailers)
{
    (void)message;
    (void)trailers;
    streamed *s = rpc_client_call_data(c);
    s->code = code;
    s->done = true;
}

static const rpc_client_ops stream_ops = {
    .flags = RPC_SERVER_STREAMING, .on_message = on_stream_msg, .on_status = on_stream_status};

static streamed list(const char *scopes)
{
    streamed s = {0};
    rpc_md md = {"x-test-scopes", (const uint8_t *)scopes, strlen(scopes)};
    rpc_call_opts opts = {.timeout_ms = 10000, .md = &md, .nmd = 1};
    rpc_client_call *c =
        rpc_channel_call(chan, LIST, &oms__v1__product__descriptor, &stream_ops, &s, &opts);
    cr_assert_not_null(c);
    Oms__V1__ListProductsRequest req = OMS__V1__LIST_PRODUCTS_REQUEST__INIT;
    rpc_client_call_send(c, &req.base);
    rpc_client_call_close_send(c);
    run_until(&s.done);
    return s;
}

Test(authz_interceptor, server_streaming)
{
    streamed s = list("inventory:write");
    cr_expect_eq(s.code, RPC_PERMISSION_DENIED);
    cr_expect_eq(s.msgs, 0);
    s = list("inventory:read");
    cr_expect_eq(s.code, RPC_OK);
    cr_expect_eq(s.msgs, 1);
}

/* Every registered method the policy leaves uncovered, for omsd's start-up
 * log line. */
static void on_uncovered(const char *path, void *arg)
{
    char *out = arg;
    strcat(out, path);
    strcat(out, " ");
}

Test(authz_interceptor, uncovered_methods_listed)
{
    char out[1024] = "";
    size_t n = authz_policy_uncovered(policy, srv, on_uncovered, out);
    /* CustomerService: 4 methods, GetCustomer public */
    cr_expect_eq(n, 3, "%s", out);
    cr_expect(strstr(out, "/oms.v1.CustomerService/ListCustomers "), "%s", out);
    cr_expect(strstr(out, "/oms.v1.CustomerService/CreateCustomer "), "%s", out);
    cr_expect(strstr(out, "/oms.v1.CustomerService/SetCustomerStatus "), "%s", out);
    cr_expect_null(strstr(out, "InventoryService"), "%s", out);
}
