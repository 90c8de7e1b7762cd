/* omsctl_cmds.c - the request/response commands of omsctl: customers,
 * products, stock, orders, create, cancel, status and health.
 *
 * Unary calls go through the generated blocking stubs; lists are server
 * streams run on the loop until their status arrives, each row printed as it
 * comes (nothing is collected, so a long list costs no memory).
 */
#include <stdlib.h>
#include <string.h>

#include "omsctl/omsctl.h"
#include "grpc/health/v1/health.omsrpc.h"
#include "oms/v1/customer.omsrpc.h"
#include "oms/v1/inventory.omsrpc.h"
#include "oms/v1/order.omsrpc.h"

#define MSG_LEN 1024

/* --- lists --------------------------------------------------------------------- */

typedef enum list_kind { LIST_CUSTOMERS, LIST_PRODUCTS, LIST_STOCK, LIST_ORDERS } list_kind;

typedef struct list_state {
    omsctl *ctl;
    list_kind kind;
    size_t rows;
    bool stdout_gone; /* writing failed: the call was cancelled */
    bool done;
    rpc_status code;
    char msg[MSG_LEN];
} list_state;

static void on_list_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                           const rpc_metadata *trailers)
{
    list_state *st = data;
    (void)trailers;
    omsctl_keep_details(st->ctl, c);
    st->code = code;
    snprintf(st->msg, sizeof st->msg, "%s", message);
    st->done = true;
}

/* Stops a list whose reader went away (omsctl ... | head): SIGPIPE is
 * ignored, so writes fail instead. */
static void check_stdout(list_state *st, rpc_client_call *c)
{
    if (!st->stdout_gone && omsctl_stdout_failed(st->ctl)) {
        st->stdout_gone = true;
        rpc_client_call_cancel(c);
    }
}

static void on_customer(rpc_client_call *c, void *data, const Oms__V1__Customer *m)
{
    list_state *st = data;
    omsctl_print_customer_row(st->ctl, m, st->rows++ == 0);
    check_stdout(st, c);
}

static void on_product(rpc_client_call *c, void *data, const Oms__V1__Product *m)
{
    list_state *st = data;
    if (st->kind == LIST_STOCK)
        omsctl_print_stock_row(st->ctl, m, st->rows++ == 0);
    else
        omsctl_print_product_row(st->ctl, m, st->rows++ == 0);
    check_stdout(st, c);
}

static void on_order(rpc_client_call *c, void *data, const Oms__V1__Order *m)
{
    list_state *st = data;
    omsctl_print_order_row(st->ctl, m, st->rows++ == 0);
    check_stdout(st, c);
}

static const Oms__V1__CustomerService_ListCustomers_Callbacks customer_list_cb = {
    .on_message = on_customer,
    .on_status = on_list_status,
};
static const Oms__V1__InventoryService_ListProducts_Callbacks product_list_cb = {
    .on_message = on_product,
    .on_status = on_list_status,
};
static const Oms__V1__OrderService_ListOrders_Callbacks order_list_cb = {
    .on_message = on_order,
    .on_status = on_list_status,
};

/* Runs one list call (orders_req for LIST_ORDERS) and returns the exit code. */
static int run_list(omsctl *ctl, list_kind kind, const Oms__V1__ListOrdersRequest *orders_req)
{
    int rc = omsctl_connect(ctl);
    if (rc)
        return rc;
    list_state st = {.ctl = ctl, .kind = kind, .code = RPC_UNKNOWN};
    rpc_call_opts opts = omsctl_call_opts(ctl);
    rpc_client_call *call = NULL;
    switch (kind) {
    case LIST_CUSTOMERS: {
        Oms__V1__ListCustomersRequest req = OMS__V1__LIST_CUSTOMERS_REQUEST__INIT;
        call = oms__v1__customer_service__list_customers__call(ctl->chan, &req, &opts,
                                                               &customer_list_cb, &st);
        break;
    }
    case LIST_PRODUCTS:
    case LIST_STOCK: {
        Oms__V1__ListProductsRequest req = OMS__V1__LIST_PRODUCTS_REQUEST__INIT;
        call = oms__v1__inventory_service__list_products__call(ctl->chan, &req, &opts,
                                                               &product_list_cb, &st);
        break;
    }
    case LIST_ORDERS:
        call = oms__v1__order_service__list_orders__call(ctl->chan, orders_req, &opts,
                                                         &order_list_cb, &st);
        break;
    }
    if (!call)
        return omsctl_fail(RPC_RESOURCE_EXHAUSTED, "out of memory");
    omsctl_run_until(ctl, &st.done);
    if (!st.done)
        return omsctl_fail(RPC_INTERNAL, "the call never ended");
    if (st.stdout_gone)
        return OMSCTL_EXIT_OK; /* main reports a write error other than EPIPE */
    if (st.code != RPC_OK)
        return omsctl_fail_call(ctl, st.code, st.msg);
    if (st.rows == 0 && !ctl->json)
        fprintf(stderr, "(none)\n");
    return OMSCTL_EXIT_OK;
}

/* --- customers ------------------------------------------------------------------ */

/* Prints a unary result or fails: the common tail of every unary command. */
#define FINISH_UNARY(code, resp, msg, print, free_fn)                                              \
    do {                                                                                           \
        if ((code) != RPC_OK)                                                                      \
            return omsctl_fail_call(ctl, (code), (msg));                                           \
        print(ctl, (resp));                                                                        \
        free_fn((resp), NULL);                                                                     \
        return OMSCTL_EXIT_OK;                                                                     \
    } while (0)

int omsctl_cmd_customers(omsctl *ctl, int argc, char **argv)
{
    int npos, rc;
    if ((rc = omsctl_parse_args("customers", argc, argv, 1, NULL, NULL, 0, &npos)) != 0)
        return rc;
    char **pos = argv + 1;
    const char *sub = npos ? pos[0] : "list";
    char msg[MSG_LEN] = "";
    Oms__V1__Customer *resp = NULL;
    rpc_status code;
    if (strcmp(sub, "list") == 0) {
        if (npos > 1)
            return omsctl_usage_error("customers", "'customers list' takes no arguments");
        return run_list(ctl, LIST_CUSTOMERS, NULL);
    }
    if (strcmp(sub, "create") == 0) {
        if (npos != 3)
            return omsctl_usage_error("customers", "'customers create' needs NAME and EMAIL");
        if ((rc = omsctl_connect(ctl)) != 0)
            return rc;
        Oms__V1__CreateCustomerRequest req = OMS__V1__CREATE_CUSTOMER_REQUEST__INIT;
        req.name = pos[1];
        req.email = pos[2];
        rpc_call_opts opts = omsctl_call_opts(ctl);
        code = oms__v1__customer_service__create_customer__blocking(ctl->chan, &req, &resp, &opts,
                                                                    msg, sizeof msg);
    } else if (strcmp(sub, "get") == 0) {
        if (npos != 2)
            return omsctl_usage_error("customers", "'customers get' needs an ID");
        if ((rc = omsctl_connect(ctl)) != 0)
            return rc;
        Oms__V1__GetCustomerRequest req = OMS__V1__GET_CUSTOMER_REQUEST__INIT;
        req.id = pos[1];
        rpc_call_opts opts = omsctl_call_opts(ctl);
        code = oms__v1__customer_service__get_customer__blocking(ctl->chan, &req, &resp, &opts, msg,
                                                                 sizeof msg);
    } else if (strcmp(sub, "suspend") == 0 || strcmp(sub, "activate") == 0) {
        if (npos != 2)
            return omsctl_usage_error("customers", "'customers %s' needs an ID", sub);
        if ((rc = omsctl_connect(ctl)) != 0)
            return rc;
        Oms__V1__SetCustomerStatusRequest req = OMS__V1__SET_CUSTOMER_STATUS_REQUEST__INIT;
        req.id = pos[1];
        req.status = sub[0] == 's' ? OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED
                                   : OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
        rpc_call_opts opts = omsctl_call_opts(ctl);
        code = oms__v1__customer_service__set_customer_status__blocking(ctl->chan, &req, &resp,
                                                                        &opts, msg, sizeof msg);
    } else {
        return omsctl_usage_error("customers", "unknown subcommand 'customers %s'", sub);
    }
    FINISH_UNARY(code, resp, msg, omsctl_print_customer, oms__v1__customer__free_unpacked);
}

/* --- products and stock ---------------------------------------------------------- */

int omsctl_cmd_products(omsctl *ctl, int argc, char **argv)
{
    int npos, rc;
    if ((rc = omsctl_parse_args("products", argc, argv, 1, NULL, NULL, 0, &npos)) != 0)
        return rc;
    char **pos = argv + 1;
    const char *sub = npos ? pos[0] : "list";
    char msg[MSG_LEN] = "";
    Oms__V1__Product *resp = NULL;
    rpc_status code;
    if (strcmp(sub, "list") == 0) {
        if (npos > 1)
            return omsctl_usage_error("products", "'products list' takes no arguments");
        return run_list(ctl, LIST_PRODUCTS, NULL);
    }
    if (strcmp(sub, "get") == 0) {
        if (npos != 2)
            return omsctl_usage_error("products", "'products get' needs a SKU");
        if ((rc = omsctl_connect(ctl)) != 0)
            return rc;
        Oms__V1__GetProductRequest req = OMS__V1__GET_PRODUCT_REQUEST__INIT;
        req.sku = pos[1];
        rpc_call_opts opts = omsctl_call_opts(ctl);
        code = oms__v1__inventory_service__get_product__blocking(ctl->chan, &req, &resp, &opts, msg,
                                                                 sizeof msg);
    } else if (strcmp(sub, "upsert") == 0) {
        int64_t price;
        if (npos != 4)
            return omsctl_usage_error("products",
                                      "'products upsert' needs SKU, NAME and PRICE_CENTS");
        if (omsctl_parse_i64(pos[3], &price) != 0)
            return omsctl_usage_error("products", "PRICE_CENTS must be an integer, not '%s'",
                                      pos[3]);
        if ((rc = omsctl_connect(ctl)) != 0)
            return rc;
        Oms__V1__UpsertProductRequest req = OMS__V1__UPSERT_PRODUCT_REQUEST__INIT;
        req.sku = pos[1];
        req.name = pos[2];
        req.unit_price_cents = price;
        rpc_call_opts opts = omsctl_call_opts(ctl);
        code = oms__v1__inventory_service__upsert_product__blocking(ctl->chan, &req, &resp, &opts,
                                                                    msg, sizeof msg);
    } else {
        return omsctl_usage_error("products", "unknown subcommand 'products %s'", sub);
    }
    FINISH_UNARY(code, resp, msg, omsctl_print_product, oms__v1__product__free_unpacked);
}

int omsctl_cmd_stock(omsctl *ctl, int argc, char **argv)
{
    int npos, rc;
    if ((rc = omsctl_parse_args("stock", argc, argv, 1, NULL, NULL, 0, &npos)) != 0)
        return rc;
    char **pos = argv + 1;
    if (npos == 0 || (npos == 1 && strcmp(pos[0], "list") == 0))
        return run_list(ctl, LIST_STOCK, NULL);
    if (npos != 2)
        return omsctl_usage_error("stock", "'stock' takes SKU and DELTA, or nothing");
    int64_t delta;
    if (omsctl_parse_i64(pos[1], &delta) != 0)
        return omsctl_usage_error("stock", "DELTA must be an integer, not '%s'", pos[1]);
    if ((rc = omsctl_connect(ctl)) != 0)
        return rc;
    Oms__V1__AdjustStockRequest req = OMS__V1__ADJUST_STOCK_REQUEST__INIT;
    req.sku = pos[0];
    req.delta = delta;
    char msg[MSG_LEN] = "";
    Oms__V1__Product *resp = NULL;
    rpc_call_opts opts = omsctl_call_opts(ctl);
    rpc_status code = oms__v1__inventory_service__adjust_stock__blocking(ctl->chan, &req, &resp,
                                                                         &opts, msg, sizeof msg);
    FINISH_UNARY(code, resp, msg, omsctl_print_product, oms__v1__product__free_unpacked);
}

/* --- orders ---------------------------------------------------------------------- */

int omsctl_cmd_orders(omsctl *ctl, int argc, char **argv)
{
    static const char *const names[] = {"--customer", "--status", "--from", "--to", "--page-size"};
    const char *vals[5] = {NULL, NULL, NULL, NULL, NULL};
    int npos, rc;
    if ((rc = omsctl_parse_args("orders", argc, argv, 1, names, vals, 5, &npos)) != 0)
        return rc;
    char **pos = argv + 1;
    const char *sub = npos ? pos[0] : "list";
    if (strcmp(sub, "get") == 0) {
        if (npos != 2)
            return omsctl_usage_error("orders", "'orders get' needs an ID");
        for (int k = 0; k < 5; k++)
            if (vals[k])
                return omsctl_usage_error("orders", "'orders get' takes no %s", names[k]);
        if ((rc = omsctl_connect(ctl)) != 0)
            return rc;
        Oms__V1__GetOrderRequest req = OMS__V1__GET_ORDER_REQUEST__INIT;
        req.id = pos[1];
        char msg[MSG_LEN] = "";
        Oms__V1__Order *resp = NULL;
        rpc_call_opts opts = omsctl_call_opts(ctl);
        rpc_status code = oms__v1__order_service__get_order__blocking(ctl->chan, &req, &resp, &opts,
                                                                      msg, sizeof msg);
        FINISH_UNARY(code, resp, msg, omsctl_print_order, oms__v1__order__free_unpacked);
    }
    if (strcmp(sub, "list") != 0)
        return omsctl_usage_error("orders", "unknown subcommand 'orders %s'", sub);
    if (npos > 1)
        return omsctl_usage_error("orders", "unexpected argument '%s'", pos[1]);
    Oms__V1__ListOrdersRequest req = OMS__V1__LIST_ORDERS_REQUEST__INIT;
    if (vals[0])
        req.customer_id = (char *)vals[0];
    if (vals[1] && omsctl_parse_order_status(vals[1], &req.status) != 0)
        return omsctl_usage_error("orders", "unknown status '%s'", vals[1]);
    if (vals[2] && omsctl_parse_i64(vals[2], &req.created_from) != 0)
        return omsctl_usage_error("orders", "--from wants unix milliseconds, not '%s'", vals[2]);
    if (vals[3] && omsctl_parse_i64(vals[3], &req.created_to) != 0)
        return omsctl_usage_error("orders", "--to wants unix milliseconds, not '%s'", vals[3]);
    if (vals[4]) {
        int64_t n;
        if (omsctl_parse_i64(vals[4], &n) != 0 || n < 0 || n > INT32_MAX)
            return omsctl_usage_error("orders", "--page-size wants a count, not '%s'", vals[4]);
        req.page_size = (int32_t)n;
    }
    return run_list(ctl, LIST_ORDERS, &req);
}

int omsctl_cmd_create(omsctl *ctl, int argc, char **argv)
{
    static const char *const names[] = {"--key"};
    const char *vals[1] = {NULL};
    int npos, rc;
    if ((rc = omsctl_parse_args("create", argc, argv, 1, names, vals, 1, &npos)) != 0)
        return rc;
    char **pos = argv + 1;
    if (npos < 2)
        return omsctl_usage_error("create", "'create' needs CUSTOMER_ID and at least one SKU:QTY");
    size_t n = (size_t)npos - 1;
    Oms__V1__CreateOrderLine *lines = calloc(n, sizeof *lines);
    Oms__V1__CreateOrderLine **ptrs = calloc(n, sizeof *ptrs);
    if (!lines || !ptrs) {
        free(lines);
        free(ptrs);
        return omsctl_fail(RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char *spec = pos[i + 1];
        char *colon = strrchr(spec, ':');
        int64_t qty;
        if (!colon || colon == spec || omsctl_parse_i64(colon + 1, &qty) != 0) {
            free(lines);
            free(ptrs);
            return omsctl_usage_error("create", "'%s' is not SKU:QTY", spec);
        }
        *colon = '\0'; /* argv is ours to cut */
        oms__v1__create_order_line__init(&lines[i]);
        lines[i].sku = spec;
        lines[i].quantity = qty;
        ptrs[i] = &lines[i];
    }
    if ((rc = omsctl_connect(ctl)) != 0) {
        free(lines);
        free(ptrs);
        return rc;
    }
    Oms__V1__CreateOrderRequest req = OMS__V1__CREATE_ORDER_REQUEST__INIT;
    req.customer_id = pos[0];
    req.n_lines = n;
    req.lines = ptrs;
    if (vals[0])
        req.idempotency_key = (char *)vals[0];
    char msg[MSG_LEN] = "";
    Oms__V1__Order *resp = NULL;
    rpc_call_opts opts = omsctl_call_opts(ctl);
    rpc_status code = oms__v1__order_service__create_order__blocking(ctl->chan, &req, &resp, &opts,
                                                                     msg, sizeof msg);
    free(lines);
    free(ptrs);
    FINISH_UNARY(code, resp, msg, omsctl_print_order, oms__v1__order__free_unpacked);
}

int omsctl_cmd_cancel(omsctl *ctl, int argc, char **argv)
{
    static const char *const names[] = {"--reason", "--expected-version"};
    const char *vals[2] = {NULL, NULL};
    int npos, rc;
    if ((rc = omsctl_parse_args("cancel", argc, argv, 1, names, vals, 2, &npos)) != 0)
        return rc;
    if (npos != 1)
        return omsctl_usage_error("cancel", "'cancel' needs exactly one ORDER_ID");
    Oms__V1__CancelOrderRequest req = OMS__V1__CANCEL_ORDER_REQUEST__INIT;
    req.id = argv[1];
    if (vals[0])
        req.reason = (char *)vals[0];
    if (vals[1] &&
        (omsctl_parse_i64(vals[1], &req.expected_version) != 0 || req.expected_version < 0))
        return omsctl_usage_error("cancel", "--expected-version wants a version, not '%s'",
                                  vals[1]);
    if ((rc = omsctl_connect(ctl)) != 0)
        return rc;
    char msg[MSG_LEN] = "";
    Oms__V1__Order *resp = NULL;
    rpc_call_opts opts = omsctl_call_opts(ctl);
    rpc_status code = oms__v1__order_service__cancel_order__blocking(ctl->chan, &req, &resp, &opts,
                                                                     msg, sizeof msg);
    FINISH_UNARY(code, resp, msg, omsctl_print_order, oms__v1__order__free_unpacked);
}

int omsctl_cmd_status(omsctl *ctl, int argc, char **argv)
{
    static const char *const names[] = {"--expected-version"};
    const char *vals[1] = {NULL};
    int npos, rc;
    if ((rc = omsctl_parse_args("status", argc, argv, 1, names, vals, 1, &npos)) != 0)
        return rc;
    if (npos != 2)
        return omsctl_usage_error("status", "'status' needs ORDER_ID and STATUS");
    Oms__V1__UpdateOrderStatusRequest req = OMS__V1__UPDATE_ORDER_STATUS_REQUEST__INIT;
    req.id = argv[1];
    if (omsctl_parse_order_status(argv[2], &req.status) != 0 ||
        req.status == OMS__V1__ORDER_STATUS__ORDER_STATUS_PENDING)
        return omsctl_usage_error(
            "status", "STATUS must be confirmed, shipped, delivered or cancelled, not '%s'",
            argv[2]);
    if (vals[0] &&
        (omsctl_parse_i64(vals[0], &req.expected_version) != 0 || req.expected_version < 0))
        return omsctl_usage_error("status", "--expected-version wants a version, not '%s'",
                                  vals[0]);
    if ((rc = omsctl_connect(ctl)) != 0)
        return rc;
    char msg[MSG_LEN] = "";
    Oms__V1__Order *resp = NULL;
    rpc_call_opts opts = omsctl_call_opts(ctl);
    rpc_status code = oms__v1__order_service__update_order_status__blocking(ctl->chan, &req, &resp,
                                                                            &opts, msg, sizeof msg);
    FINISH_UNARY(code, resp, msg, omsctl_print_order, oms__v1__order__free_unpacked);
}

/* --- health ---------------------------------------------------------------------- */

static const char *serving_name(Grpc__Health__V1__HealthCheckResponse__ServingStatus s)
{
    switch (s) {
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING:
        return "SERVING";
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING:
        return "NOT_SERVING";
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN:
        return "SERVICE_UNKNOWN";
    default:
        return "UNKNOWN";
    }
}

int omsctl_cmd_health(omsctl *ctl, int argc, char **argv)
{
    int npos, rc;
    if ((rc = omsctl_parse_args("health", argc, argv, 1, NULL, NULL, 0, &npos)) != 0)
        return rc;
    if (npos > 1)
        return omsctl_usage_error("health", "'health' takes at most one SERVICE");
    if ((rc = omsctl_connect(ctl)) != 0)
        return rc;
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    if (npos == 1)
        req.service = argv[1];
    char msg[MSG_LEN] = "";
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;
    rpc_call_opts opts = omsctl_call_opts(ctl);
    rpc_status code =
        grpc__health__v1__health__check__blocking(ctl->chan, &req, &resp, &opts, msg, sizeof msg);
    if (code != RPC_OK)
        return omsctl_fail_call(ctl, code, msg);
    const char *name = serving_name(resp->status);
    bool serving = resp->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    if (ctl->json) {
        printf("{\"service\":");
        omsctl_json_str(stdout, req.service);
        printf(",\"status\":\"%s\"}\n", name);
    } else {
        printf("%s\n", name);
    }
    return serving ? OMSCTL_EXIT_OK : OMSCTL_EXIT_UNAVAILABLE;
}
