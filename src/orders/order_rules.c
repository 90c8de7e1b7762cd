/* order_rules.c - the order system's pure rules: the status machine, money
 * arithmetic and request validation. No I/O, no state. */
#include <stdio.h>
#include <string.h>

#include "orders/orders_int.h"

#define BIT(s) (1u << (s))

unsigned orders__allowed_from(int to)
{
    switch (to) {
    case STORE_ORDER_CONFIRMED:
        return BIT(STORE_ORDER_PENDING);
    case STORE_ORDER_SHIPPED:
        return BIT(STORE_ORDER_CONFIRMED);
    case STORE_ORDER_DELIVERED:
        return BIT(STORE_ORDER_SHIPPED);
    case STORE_ORDER_CANCELLED:
        return BIT(STORE_ORDER_PENDING) | BIT(STORE_ORDER_CONFIRMED);
    default:
        return 0;
    }
}

bool orders__transition_ok(int from, int to)
{
    return from >= 0 && from < 32 && (orders__allowed_from(to) & BIT(from)) != 0;
}

const char *orders__status_name(int status)
{
    switch (status) {
    case STORE_ORDER_PENDING:
        return "PENDING";
    case STORE_ORDER_CONFIRMED:
        return "CONFIRMED";
    case STORE_ORDER_SHIPPED:
        return "SHIPPED";
    case STORE_ORDER_DELIVERED:
        return "DELIVERED";
    case STORE_ORDER_CANCELLED:
        return "CANCELLED";
    default:
        return "UNSPECIFIED";
    }
}

bool orders__line_total(int64_t quantity, int64_t unit_price, int64_t *total)
{
    int64_t t;
    if (quantity < 0 || unit_price < 0 || __builtin_mul_overflow(quantity, unit_price, &t))
        return false;
    *total = t;
    return true;
}

bool orders__order_total(const store_line *lines, size_t n, int64_t *total)
{
    int64_t sum = 0, t;
    for (size_t i = 0; i < n; i++) {
        if (!orders__line_total(lines[i].quantity, lines[i].unit_price_cents, &t) ||
            __builtin_add_overflow(sum, t, &sum))
            return false;
    }
    *total = sum;
    return true;
}

bool orders__sku_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > STORE_SKU_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

rpc_status orders__validate_create(const Oms__V1__CreateOrderRequest *req, char *why, size_t n)
{
    size_t idlen = strlen(req->customer_id);
    if (idlen == 0 || idlen > STORE_ID_MAX) {
        snprintf(why, n, "customer_id: %s", idlen ? "too long" : "required");
        return RPC_INVALID_ARGUMENT;
    }
    if (req->n_lines == 0 || req->n_lines > STORE_MAX_LINES) {
        snprintf(why, n, "lines: %zu given, 1..%d allowed", req->n_lines, STORE_MAX_LINES);
        return RPC_INVALID_ARGUMENT;
    }
    if (strlen(req->idempotency_key) > STORE_KEY_MAX) {
        snprintf(why, n, "idempotency_key: longer than %d bytes", STORE_KEY_MAX);
        return RPC_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < req->n_lines; i++) {
        const Oms__V1__CreateOrderLine *l = req->lines[i];
        if (!orders__sku_ok(l->sku)) {
            snprintf(why, n, "lines[%zu].sku: must be 1..%d of [A-Za-z0-9._-]", i, STORE_SKU_MAX);
            return RPC_INVALID_ARGUMENT;
        }
        if (l->quantity <= 0) {
            snprintf(why, n, "lines[%zu].quantity: must be > 0", i);
            return RPC_INVALID_ARGUMENT;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(req->lines[j]->sku, l->sku) == 0) {
                snprintf(why, n, "lines[%zu].sku: %s already in lines[%zu]", i, l->sku, j);
                return RPC_INVALID_ARGUMENT;
            }
        }
    }
    return RPC_OK;
}

bool orders__same_request(const store_order *first, const store_order *req)
{
    if (strcmp(first->customer_id, req->customer_id) != 0 || first->nlines != req->nlines)
        return false;
    for (size_t i = 0; i < req->nlines; i++)
        if (strcmp(first->lines[i].sku, req->lines[i].sku) != 0 ||
            first->lines[i].quantity != req->lines[i].quantity)
            return false;
    return true;
}
