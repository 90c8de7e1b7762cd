/* errors.c - rich error details, one rule for every service (orders_int.h):
 * a failure's reason becomes google.rpc.ErrorInfo (domain "oms.v1"), a stock
 * shortage also a PreconditionFailure, and a "field: description" validation
 * message a BadRequest field violation. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "orders/orders_int.h"

#define DOMAIN "oms.v1"

static const char *const reason_names[] = {
    [ORDERS_REASON_NONE] = NULL,
    [ORDERS_REASON_INSUFFICIENT_STOCK] = "INSUFFICIENT_STOCK",
    [ORDERS_REASON_ILLEGAL_TRANSITION] = "ILLEGAL_TRANSITION",
    [ORDERS_REASON_VERSION_MISMATCH] = "VERSION_MISMATCH",
    [ORDERS_REASON_CUSTOMER_SUSPENDED] = "CUSTOMER_SUSPENDED",
    [ORDERS_REASON_IDEMPOTENCY_KEY_REUSED] = "IDEMPOTENCY_KEY_REUSED",
};
#define NREASONS (sizeof reason_names / sizeof reason_names[0])

const char *orders__reason_name(orders_reason r)
{
    return (unsigned)r < NREASONS ? reason_names[r] : NULL;
}

/* ErrorInfo metadata: up to four pairs, values formatted into vals. */
typedef struct meta {
    Google__Rpc__ErrorInfo__MetadataEntry e[4];
    Google__Rpc__ErrorInfo__MetadataEntry *p[4];
    char vals[4][STORE_SKU_MAX + 24];
    size_t n;
} meta;

static void meta_add(meta *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void meta_add(meta *m, const char *key, const char *fmt, ...)
{
    if (m->n == 4)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->vals[m->n], sizeof m->vals[m->n], fmt, ap);
    va_end(ap);
    google__rpc__error_info__metadata_entry__init(&m->e[m->n]);
    m->e[m->n].key = (char *)key;
    m->e[m->n].value = m->vals[m->n];
    m->p[m->n] = &m->e[m->n];
    m->n++;
}

/* The ErrorInfo metadata of e, by reason (orders_err's field comments). */
static void fill_meta(meta *m, const orders_err *e)
{
    switch (e->reason) {
    case ORDERS_REASON_INSUFFICIENT_STOCK:
        meta_add(m, "sku", "%s", e->sku);
        meta_add(m, "available", "%" PRId64, e->available);
        meta_add(m, "requested", "%" PRId64, e->requested);
        break;
    case ORDERS_REASON_ILLEGAL_TRANSITION:
        meta_add(m, "order_id", "%s", e->id);
        meta_add(m, "from", "%s", orders__status_name(e->from));
        meta_add(m, "to", "%s", orders__status_name(e->to));
        break;
    case ORDERS_REASON_VERSION_MISMATCH:
        meta_add(m, "order_id", "%s", e->id);
        meta_add(m, "version", "%" PRId64, e->version);
        meta_add(m, "expected_version", "%" PRId64, e->expected);
        break;
    case ORDERS_REASON_CUSTOMER_SUSPENDED:
    case ORDERS_REASON_IDEMPOTENCY_KEY_REUSED:
        if (e->id[0])
            meta_add(m, "customer_id", "%s", e->id);
        break;
    default:
        break;
    }
}

/* Whether s[0..n) looks like a field path: "lines[2].quantity", "id",
 * "idempotency-key" (no spaces; letters, digits, _ . - [ ]). */
static bool is_field_path(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-' || ch == '[' || ch == ']'))
            return false;
    }
    return true;
}

void orders__fail(rpc_call *c, rpc_status code, const char *msg, const orders_err *e)
{
    const ProtobufCMessage *d[2];
    size_t nd = 0;
    Google__Rpc__ErrorInfo info = GOOGLE__RPC__ERROR_INFO__INIT;
    Google__Rpc__PreconditionFailure pf = GOOGLE__RPC__PRECONDITION_FAILURE__INIT;
    Google__Rpc__PreconditionFailure__Violation pv =
        GOOGLE__RPC__PRECONDITION_FAILURE__VIOLATION__INIT;
    Google__Rpc__PreconditionFailure__Violation *pvp[1] = {&pv};
    Google__Rpc__BadRequest br = GOOGLE__RPC__BAD_REQUEST__INIT;
    Google__Rpc__BadRequest__FieldViolation fv = GOOGLE__RPC__BAD_REQUEST__FIELD_VIOLATION__INIT;
    Google__Rpc__BadRequest__FieldViolation *fvp[1] = {&fv};
    meta m = {.n = 0};
    char desc[64], field[72];
    const char *reason = e ? orders__reason_name(e->reason) : NULL;

    if (reason) {
        if (e->reason == ORDERS_REASON_INSUFFICIENT_STOCK) {
            snprintf(desc, sizeof desc, "%" PRId64 " available, %" PRId64 " requested",
                     e->available, e->requested);
            pv.type = "STOCK";
            pv.subject = (char *)e->sku;
            pv.description = desc;
            pf.n_violations = 1;
            pf.violations = pvp;
            d[nd++] = &pf.base;
        }
        fill_meta(&m, e);
        info.reason = (char *)reason;
        info.domain = DOMAIN;
        info.n_metadata = m.n;
        info.metadata = m.p;
        d[nd++] = &info.base;
    } else if (code == RPC_INVALID_ARGUMENT && msg) {
        const char *colon = strstr(msg, ": ");
        if (colon && is_field_path(msg, (size_t)(colon - msg))) {
            snprintf(field, sizeof field, "%.*s", (int)(colon - msg), msg);
            fv.field = field;
            fv.description = (char *)colon + 2;
            br.n_field_violations = 1;
            br.field_violations = fvp;
            d[nd++] = &br.base;
        }
    }
    if (nd)
        rpc_call_finish_details(c, code, msg, d, nd);
    else
        rpc_call_finish(c, code, msg);
}

const orders_err *orders__err_from_write(orders_err *e, const store_write *w)
{
    memset(e, 0, sizeof *e);
    if (w->rc == STORE_PRECONDITION && w->fail_sku[0]) {
        e->reason = ORDERS_REASON_INSUFFICIENT_STOCK;
        snprintf(e->sku, sizeof e->sku, "%s", w->fail_sku);
        e->available = w->fail_available;
        e->requested = w->fail_requested;
    } else if (w->op == STORE_ORDER_SET_STATUS && w->rc == STORE_PRECONDITION) {
        e->reason = ORDERS_REASON_ILLEGAL_TRANSITION;
        snprintf(e->id, sizeof e->id, "%s", w->order_id);
        e->from = w->fail_status;
        e->to = w->to_status;
    } else if (w->op == STORE_ORDER_SET_STATUS && w->rc == STORE_CONFLICT) {
        e->reason = ORDERS_REASON_VERSION_MISMATCH;
        snprintf(e->id, sizeof e->id, "%s", w->order_id);
        e->version = w->fail_version;
        e->expected = w->expected_version;
    }
    return e->reason ? e : NULL;
}

static const char *meta_get(const Google__Rpc__ErrorInfo *info, const char *key)
{
    for (size_t i = 0; i < info->n_metadata; i++)
        if (info->metadata[i]->key && strcmp(info->metadata[i]->key, key) == 0)
            return info->metadata[i]->value ? info->metadata[i]->value : "";
    return "";
}

static int64_t meta_i64(const Google__Rpc__ErrorInfo *info, const char *key)
{
    long long v = 0;
    sscanf(meta_get(info, key), "%lld", &v);
    return (int64_t)v;
}

const orders_err *orders__err_from_details(orders_err *e, const uint8_t *details, size_t len)
{
    memset(e, 0, sizeof *e);
    Google__Rpc__Status *st =
        details ? google__rpc__status__unpack(rpc_system_allocator(), len, details) : NULL;
    for (size_t i = 0; st && i < st->n_details && !e->reason; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        if (strcmp(any->type_url, "type.googleapis.com/google.rpc.ErrorInfo") != 0)
            continue;
        Google__Rpc__ErrorInfo *info = google__rpc__error_info__unpack(
            rpc_system_allocator(), any->value.len, any->value.data);
        if (!info)
            continue;
        for (size_t r = 1; info->domain && strcmp(info->domain, DOMAIN) == 0 && r < NREASONS; r++)
            if (strcmp(info->reason, reason_names[r]) == 0)
                e->reason = (orders_reason)r;
        /* Only the stock shortage comes from a peer (Reserve); its numbers
         * are what the order service needs to say the same. */
        if (e->reason == ORDERS_REASON_INSUFFICIENT_STOCK) {
            snprintf(e->sku, sizeof e->sku, "%s", meta_get(info, "sku"));
            e->available = meta_i64(info, "available");
            e->requested = meta_i64(info, "requested");
        } else {
            e->reason = ORDERS_REASON_NONE;
        }
        google__rpc__error_info__free_unpacked(info, rpc_system_allocator());
    }
    if (st)
        google__rpc__status__free_unpacked(st, rpc_system_allocator());
    return e->reason ? e : NULL;
}
