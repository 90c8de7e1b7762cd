/* order_setup.c - readying an order system for a run: the customer, the
 * product and enough stock, through the generated oms.v1 client stubs
 * (blocking calls, before the load starts). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_int.h"
#include "oms/v1/customer.omsrpc.h"
#include "oms/v1/inventory.omsrpc.h"

#define SETUP_MS         10000
#define DEFAULT_CUSTOMER "c-1"
#define DEFAULT_SKU      "SKU-001"
#define DEFAULT_STOCK    100000000

const char *bench__order_sku(const bench_config *cfg)
{
    return cfg->sku ? cfg->sku : DEFAULT_SKU;
}

void bench__key_prefix(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    snprintf(buf, len, "ob-%" PRIx64 "-%d-", ns, (int)getpid());
}

/* A transport failure: the target does not answer. */
static bool unreachable(rpc_status code)
{
    return code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED || code == RPC_CANCELLED;
}

static int fail(char *err, size_t errlen, const bench_config *cfg, const char *what,
                rpc_status code, const char *msg)
{
    if (unreachable(code))
        snprintf(err, errlen, "cannot reach %s: %s: %s", cfg->target, bench_code_name((int)code),
                 msg);
    else
        snprintf(err, errlen, "setup: %s: %s: %s", what, bench_code_name((int)code), msg);
    return -1;
}

static int setup_customer(rpc_channel *ch, const bench_config *cfg, bench_results *res,
                          const rpc_call_opts *opts, char *err, size_t errlen)
{
    char msg[256];
    const char *id = cfg->customer ? cfg->customer : DEFAULT_CUSTOMER;
    snprintf(res->customer_buf, sizeof res->customer_buf, "%s", id);
    res->customer = res->customer_buf;

    Oms__V1__GetCustomerRequest get = OMS__V1__GET_CUSTOMER_REQUEST__INIT;
    get.id = (char *)id;
    Oms__V1__Customer *cu = NULL;
    rpc_status code =
        oms__v1__customer_service__get_customer__blocking(ch, &get, &cu, opts, msg, sizeof msg);
    if (code == RPC_OK) {
        bool suspended = cu->status == OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED;
        oms__v1__customer__free_unpacked(cu, NULL);
        if (suspended) {
            snprintf(err, errlen, "setup: customer %s is suspended", id);
            return -1;
        }
        return 0;
    }
    if (code == RPC_UNIMPLEMENTED) {
        /* split deployment: customers live elsewhere; the orders will say */
        fprintf(stderr, "oms-bench: CustomerService not served here; using customer %s as is\n",
                id);
        return 0;
    }
    if (code != RPC_NOT_FOUND || cfg->customer)
        return fail(err, errlen, cfg, "GetCustomer", code, msg);
    /* The default customer is missing (a store without the demo data):
     * make one. Emails are unique, so one per process run. */
    char email[96];
    bench__key_prefix(email, sizeof email);
    snprintf(email + strlen(email), sizeof email - strlen(email), "bench@example.com");
    Oms__V1__CreateCustomerRequest cr = OMS__V1__CREATE_CUSTOMER_REQUEST__INIT;
    cr.name = "oms-bench";
    cr.email = email;
    code =
        oms__v1__customer_service__create_customer__blocking(ch, &cr, &cu, opts, msg, sizeof msg);
    if (code != RPC_OK)
        return fail(err, errlen, cfg, "CreateCustomer", code, msg);
    snprintf(res->customer_buf, sizeof res->customer_buf, "%s", cu->id);
    oms__v1__customer__free_unpacked(cu, NULL);
    fprintf(stderr, "oms-bench: no customer %s; created %s\n", id, res->customer_buf);
    return 0;
}

static int setup_stock(rpc_channel *ch, const bench_config *cfg, bench_results *res,
                       const rpc_call_opts *opts, char *err, size_t errlen)
{
    char msg[256];
    const char *sku = bench__order_sku(cfg);
    Oms__V1__GetProductRequest get = OMS__V1__GET_PRODUCT_REQUEST__INIT;
    get.sku = (char *)sku;
    Oms__V1__Product *p = NULL;
    rpc_status code =
        oms__v1__inventory_service__get_product__blocking(ch, &get, &p, opts, msg, sizeof msg);
    if (code == RPC_UNIMPLEMENTED) {
        fprintf(stderr, "oms-bench: InventoryService not served here; stock of %s left alone\n",
                sku);
        return 0;
    }
    if (code == RPC_NOT_FOUND) {
        Oms__V1__UpsertProductRequest up = OMS__V1__UPSERT_PRODUCT_REQUEST__INIT;
        up.sku = (char *)sku;
        up.name = "oms-bench product";
        up.unit_price_cents = 100;
        code = oms__v1__inventory_service__upsert_product__blocking(ch, &up, &p, opts, msg,
                                                                    sizeof msg);
        if (code != RPC_OK)
            return fail(err, errlen, cfg, "UpsertProduct", code, msg);
        fprintf(stderr, "oms-bench: no product %s; created it\n", sku);
    } else if (code != RPC_OK) {
        return fail(err, errlen, cfg, "GetProduct", code, msg);
    }
    int64_t avail = p->available;
    oms__v1__product__free_unpacked(p, NULL);
    res->stock_before = avail;
    if (cfg->stock < 0)
        return 0;
    int64_t want = cfg->stock ? cfg->stock : DEFAULT_STOCK;
    if (avail >= want)
        return 0;
    Oms__V1__AdjustStockRequest adj = OMS__V1__ADJUST_STOCK_REQUEST__INIT;
    adj.sku = (char *)sku;
    adj.delta = want - avail;
    code = oms__v1__inventory_service__adjust_stock__blocking(ch, &adj, &p, opts, msg, sizeof msg);
    if (code != RPC_OK)
        return fail(err, errlen, cfg, "AdjustStock", code, msg);
    oms__v1__product__free_unpacked(p, NULL);
    res->stock_added = adj.delta;
    return 0;
}

int bench__order_setup(rpc_channel *ch, const bench_config *cfg, bench_results *res, char *err,
                       size_t errlen)
{
    rpc_call_opts opts = {.timeout_ms = SETUP_MS};
    if (setup_customer(ch, cfg, res, &opts, err, errlen) != 0)
        return -1;
    return setup_stock(ch, cfg, res, &opts, err, errlen);
}
