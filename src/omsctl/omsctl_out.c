/* omsctl_out.c - omsctl's output: human columns and JSON lines.
 *
 * JSON needs no library: objects are written field by field and strings go
 * through omsctl_json_str(), which escapes quotes, backslashes and control
 * characters (bytes >= 0x80 pass through: the server's strings are UTF-8).
 * int64 fields are written as JSON numbers (every value oms uses fits a
 * double's 53 bits: cents, counts, milliseconds, sequence numbers).
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "omsctl/omsctl.h"

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

static void json_key(FILE *f, const char *k, bool first)
{
    if (!first)
        fputc(',', f);
    omsctl_json_str(f, k);
    fputc(':', f);
}

static void json_kstr(FILE *f, const char *k, const char *v, bool first)
{
    json_key(f, k, first);
    omsctl_json_str(f, v);
}

static void json_kint(FILE *f, const char *k, int64_t v)
{
    json_key(f, k, false);
    fprintf(f, "%" PRId64, v);
}

static void json_customer(FILE *f, const Oms__V1__Customer *c)
{
    fputc('{', f);
    json_kstr(f, "id", c->id, true);
    json_kstr(f, "name", c->name, false);
    json_kstr(f, "email", c->email, false);
    json_kstr(f, "status", omsctl_customer_status_name(c->status), false);
    json_kint(f, "created_at", c->created_at);
    fputc('}', f);
}

static void json_product(FILE *f, const Oms__V1__Product *p)
{
    fputc('{', f);
    json_kstr(f, "sku", p->sku, true);
    json_kstr(f, "name", p->name, false);
    json_kint(f, "unit_price_cents", p->unit_price_cents);
    json_kint(f, "on_hand", p->on_hand);
    json_kint(f, "reserved", p->reserved);
    json_kint(f, "available", p->available);
    json_kint(f, "updated_at", p->updated_at);
    fputc('}', f);
}

void omsctl_json_order(FILE *f, const Oms__V1__Order *o)
{
    fputc('{', f);
    json_kstr(f, "id", o->id, true);
    json_kstr(f, "customer_id", o->customer_id, false);
    json_kstr(f, "status", omsctl_order_status_name(o->status), false);
    json_kint(f, "total_cents", o->total_cents);
    json_kint(f, "version", o->version);
    json_kint(f, "created_at", o->created_at);
    json_kint(f, "updated_at", o->updated_at);
    json_kstr(f, "cancel_reason", o->cancel_reason, false);
    json_key(f, "lines", false);
    fputc('[', f);
    for (size_t i = 0; i < o->n_lines; i++) {
        const Oms__V1__OrderLine *l = o->lines[i];
        if (i)
            fputc(',', f);
        fputc('{', f);
        json_kstr(f, "sku", l->sku, true);
        json_kint(f, "quantity", l->quantity);
        json_kint(f, "unit_price_cents", l->unit_price_cents);
        json_kint(f, "line_total_cents", l->line_total_cents);
        fputc('}', f);
    }
    fputs("]}", f);
}

static void json_event(FILE *f, const Oms__V1__OrderEvent *e)
{
    fputc('{', f);
    json_key(f, "seq", true);
    fprintf(f, "%" PRId64, e->seq);
    json_kstr(f, "order_id", e->order_id, false);
    json_kstr(f, "customer_id", e->customer_id, false);
    json_kstr(f, "status", omsctl_order_status_name(e->status), false);
    json_kstr(f, "previous_status", omsctl_order_status_name(e->previous_status), false);
    json_kint(f, "version", e->version);
    json_kint(f, "at", e->at);
    fputc('}', f);
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
