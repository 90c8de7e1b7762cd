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

bool orders__check_len(const char *field, const char *s, size_t min, size_t max, char *why,
                       size_t n)
{
    return orders__check_size(field, strlen(s), min, max, why, n);
}

bool orders__check_size(const char *field, size_t len, size_t min, size_t max, char *why, size_t n)
{
    if (len == 0 && min > 0) {
        snprintf(why, n, "%s: required", field);
        return false;
    }
    if (len < min || len > max) {
        if (len > max)
            snprintf(why, n, "%s: at most %zu bytes, %zu given", field, max, len);
        else
            snprintf(why, n, "%s: %zu..%zu bytes allowed, %zu given", field, min, max, len);
        return false;
    }
    return true;
}

bool orders__check_count(const char *field, size_t count, size_t min, size_t max, char *why,
                         size_t n)
{
    if (count >= min && count <= max)
        return true;
    snprintf(why, n, "%s: %zu..%zu allowed, %zu given", field, min, max, count);
    return false;
}

static bool token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

bool orders__check_token(const char *field, const char *s, size_t min, size_t max, char *why,
                         size_t n)
{
    if (!orders__check_len(field, s, min, max, why, n))
        return false;
    for (const char *p = s; *p; p++)
        if (!token_char(*p)) {
            snprintf(why, n, "%s: only [A-Za-z0-9._-] allowed, '%s' at byte %zu", field,
                     RPC_QUOTE(p, 1), (size_t)(p - s));
            return false;
        }
    return true;
}

bool orders__check_name(const char *field, const char *s, size_t max, char *why, size_t n)
{
    if (!orders__check_len(field, s, 1, max, why, n))
        return false;
    if (!orders__name_ok(s, max)) {
        snprintf(why, n, "%s: control characters not allowed", field);
        return false;
    }
    return true;
}

void orders__dup_text(const char *field, const char *value, const char *first, char *why, size_t n)
{
    snprintf(why, n, "%s: %s already in %s", field, RPC_QUOTE(value, strlen(value)), first);
}

rpc_status orders__validate_create(const Oms__V1__CreateOrderRequest *req, char *why, size_t n)
{
    if (!orders__check_len("customer_id", req->customer_id, 1, STORE_ID_MAX, why, n) ||
        !orders__check_count("lines", req->n_lines, 1, STORE_MAX_LINES, why, n) ||
        !orders__check_len("idempotency_key", req->idempotency_key, 0, STORE_KEY_MAX, why, n))
        return RPC_INVALID_ARGUMENT;
    for (size_t i = 0; i < req->n_lines; i++) {
        const Oms__V1__CreateOrderLine *l = req->lines[i];
        char field[48];
        snprintf(field, sizeof field, "lines[%zu].sku", i);
        if (!orders__check_token(field, l->sku, 1, STORE_SKU_MAX, why, n))
            return RPC_INVALID_ARGUMENT;
        if (l->quantity <= 0) {
            snprintf(why, n, "lines[%zu].quantity: must be > 0", i);
            return RPC_INVALID_ARGUMENT;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(req->lines[j]->sku, l->sku) == 0) {
                char first[32];
                snprintf(first, sizeof first, "lines[%zu]", j);
                orders__dup_text(field, l->sku, first, why, n);
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
