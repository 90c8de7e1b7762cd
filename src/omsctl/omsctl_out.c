/* omsctl_out.c - omsctl's output: human columns and JSON lines.
 *
 * Messages (customers, products, orders, events) print in protobuf's
 * canonical JSON mapping (src/pbjson): lowerCamelCase names, enums by their
 * full names, int64 values as strings, fields at their default left out.
 * omsctl's own objects (errors, import rows, health, tokens) are written
 * field by field, strings through omsctl_json_str(), which escapes quotes,
 * backslashes and control characters.
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "omsctl/omsctl.h"
#include "pbjson/pbjson.h"

void omsctl_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

const char *omsctl_money(int64_t cents, char *buf, size_t len)
{
    /* magnitude as unsigned: INT64_MIN has no positive int64 */
    uint64_t m = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, len, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", m / 100, m % 100);
    return buf;
}

const char *omsctl_time(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(buf, len, "%" PRId64, ms);
        return buf;
    }
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", day, (int)(ms % 1000));
    return buf;
}

const char *omsctl_order_status_name(Oms__V1__OrderStatus s)
{
    switch (s) {
    case OMS__V1__ORDER_STATUS__ORDER_STATUS_PENDING:
        return "PENDING";
    case OMS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED:
        return "CONFIRMED";
    case OMS__V1__ORDER_STATUS__ORDER_STATUS_SHIPPED:
        return "SHIPPED";
    case OMS__V1__ORDER_STATUS__ORDER_STATUS_DELIVERED:
        return "DELIVERED";
    case OMS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED:
        return "CANCELLED";
    case OMS__V1__ORDER_STATUS__ORDER_STATUS_UNSPECIFIED:
        return "UNSPECIFIED";
    default:
        return "UNKNOWN";
    }
}

const char *omsctl_customer_status_name(Oms__V1__CustomerStatus s)
{
    switch (s) {
    case OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE:
        return "ACTIVE";
    case OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED:
        return "SUSPENDED";
    case OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_UNSPECIFIED:
        return "UNSPECIFIED";
    default:
        return "UNKNOWN";
    }
}

/* --- JSON objects ------------------------------------------------------------ */

/* A message as canonical proto3 JSON (pbjson): the same text a Connect or
 * grpc-gateway client gets for it, so the CLI and the wire agree. A message
 * pbjson cannot write (a string that is not UTF-8) prints as an error
 * object instead, on the same line. */
static void json_message(FILE *f, const ProtobufCMessage *m)
{
    char err[200];
    size_t len;
    char *s = pbjson_encode(m, 0, &len, err, sizeof err);
    if (s) {
        fwrite(s, 1, len, f);
        oms_free(s);
        return;
    }
    fputs("{\"error\":", f);
    omsctl_json_str(f, err);
    fputc('}', f);
}

static void json_customer(FILE *f, const Oms__V1__Customer *c)
{
    json_message(f, &c->base);
}

static void json_product(FILE *f, const Oms__V1__Product *p)
{
    json_message(f, &p->base);
}

void omsctl_json_order(FILE *f, const Oms__V1__Order *o)
{
    json_message(f, &o->base);
}

static void json_event(FILE *f, const Oms__V1__OrderEvent *e)
{
    json_message(f, &e->base);
}

/* --- printing ---------------------------------------------------------------- */

void omsctl_print_customer(const omsctl *ctl, const Oms__V1__Customer *c)
{
    char t[32];
    if (ctl->json) {
        json_customer(stdout, c);
        fputc('\n', stdout);
        return;
    }
    printf("id:       %s\n"
           "name:     %s\n"
           "email:    %s\n"
           "status:   %s\n"
           "created:  %s\n",
           c->id, c->name, c->email, omsctl_customer_status_name(c->status),
           omsctl_time(c->created_at, t, sizeof t));
}

void omsctl_print_product(const omsctl *ctl, const Oms__V1__Product *p)
{
    char m[32], t[32];
    if (ctl->json) {
        json_product(stdout, p);
        fputc('\n', stdout);
        return;
    }
    printf("sku:        %s\n"
           "name:       %s\n"
           "price:      %s\n"
           "on hand:    %" PRId64 "\n"
           "reserved:   %" PRId64 "\n"
           "available:  %" PRId64 "\n"
           "updated:    %s\n",
           p->sku, p->name, omsctl_money(p->unit_price_cents, m, sizeof m), p->on_hand, p->reserved,
           p->available, omsctl_time(p->updated_at, t, sizeof t));
}

void omsctl_print_order(const omsctl *ctl, const Oms__V1__Order *o)
{
    char m[32], t1[32], t2[32];
    if (ctl->json) {
        omsctl_json_order(stdout, o);
        fputc('\n', stdout);
        return;
    }
    printf("id:        %s\n"
           "customer:  %s\n"
           "status:    %s\n"
           "version:   %" PRId64 "\n"
           "total:     %s\n"
           "created:   %s\n"
           "updated:   %s\n",
           o->id, o->customer_id, omsctl_order_status_name(o->status), o->version,
           omsctl_money(o->total_cents, m, sizeof m), omsctl_time(o->created_at, t1, sizeof t1),
           omsctl_time(o->updated_at, t2, sizeof t2));
    if (o->cancel_reason && *o->cancel_reason)
        printf("reason:    %s\n", o->cancel_reason);
    printf("lines:\n  %-20s %8s %12s %12s\n", "SKU", "QTY", "UNIT", "TOTAL");
    for (size_t i = 0; i < o->n_lines; i++) {
        const Oms__V1__OrderLine *l = o->lines[i];
        char u[32], lt[32];
        printf("  %-20s %8" PRId64 " %12s %12s\n", l->sku, l->quantity,
               omsctl_money(l->unit_price_cents, u, sizeof u),
               omsctl_money(l->line_total_cents, lt, sizeof lt));
    }
}

/* Rows print with fixed column widths: a list is streamed, so the widest
 * value is unknown when the first row goes out. A longer value widens its
 * own row only. */
void omsctl_print_customer_row(const omsctl *ctl, const Oms__V1__Customer *c, bool header)
{
    if (ctl->json) {
        json_customer(stdout, c);
        fputc('\n', stdout);
        return;
    }
    if (header)
        printf("%-12s %-24s %-32s %s\n", "ID", "NAME", "EMAIL", "STATUS");
    printf("%-12s %-24s %-32s %s\n", c->id, c->name, c->email,
           omsctl_customer_status_name(c->status));
}

void omsctl_print_product_row(const omsctl *ctl, const Oms__V1__Product *p, bool header)
{
    char m[32];
    if (ctl->json) {
        json_product(stdout, p);
        fputc('\n', stdout);
        return;
    }
    if (header)
        printf("%-20s %-28s %12s %10s\n", "SKU", "NAME", "PRICE", "AVAILABLE");
    printf("%-20s %-28s %12s %10" PRId64 "\n", p->sku, p->name,
           omsctl_money(p->unit_price_cents, m, sizeof m), p->available);
}

void omsctl_print_stock_row(const omsctl *ctl, const Oms__V1__Product *p, bool header)
{
    if (ctl->json) {
        json_product(stdout, p);
        fputc('\n', stdout);
        return;
    }
    if (header)
        printf("%-20s %10s %10s %10s\n", "SKU", "ON_HAND", "RESERVED", "AVAILABLE");
    printf("%-20s %10" PRId64 " %10" PRId64 " %10" PRId64 "\n", p->sku, p->on_hand, p->reserved,
           p->available);
}

void omsctl_print_order_row(const omsctl *ctl, const Oms__V1__Order *o, bool header)
{
    char m[32], t[32];
    if (ctl->json) {
        omsctl_json_order(stdout, o);
        fputc('\n', stdout);
        return;
    }
    if (header)
        printf("%-12s %-12s %-10s %12s %5s %7s  %s\n", "ID", "CUSTOMER", "STATUS", "TOTAL", "LINES",
               "VERSION", "CREATED");
    printf("%-12s %-12s %-10s %12s %5zu %7" PRId64 "  %s\n", o->id, o->customer_id,
           omsctl_order_status_name(o->status), omsctl_money(o->total_cents, m, sizeof m),
           o->n_lines, o->version, omsctl_time(o->created_at, t, sizeof t));
}

void omsctl_print_event(const omsctl *ctl, const Oms__V1__OrderEvent *e)
{
    char t[32];
    if (ctl->json) {
        json_event(stdout, e);
        fputc('\n', stdout);
    } else {
        const char *prev = e->previous_status == OMS__V1__ORDER_STATUS__ORDER_STATUS_UNSPECIFIED
                               ? "new"
                               : omsctl_order_status_name(e->previous_status);
        printf("%-8" PRId64 " %s %-12s %-12s %s -> %s v%" PRId64 "\n", e->seq,
               omsctl_time(e->at, t, sizeof t), e->order_id, e->customer_id, prev,
               omsctl_order_status_name(e->status), e->version);
    }
    fflush(stdout);
}
