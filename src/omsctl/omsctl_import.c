/* omsctl_import.c - `omsctl import FILE.csv`: ImportOrders, client streaming.
 *
 * The file is read a line at a time as the stream can take rows: lines are
 * gathered into the current row (consecutive lines with one row_id), a row is
 * sent when the next row_id starts or the file ends, and reading stops while
 * the call says RPC_AGAIN until on_ready. Only one row is ever held.
 *
 * CSV: row_id,customer_id,sku,quantity[,idempotency_key]. No quoting; spaces
 * around fields are trimmed; blank lines and lines starting with '#' are
 * skipped, and so is a first line starting with "row_id" (a header). A
 * malformed line fails its whole row locally: the row is reported with the
 * line number and INVALID_ARGUMENT and is never sent (sending a row without
 * one of its lines would create a different order than the file says).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "omsctl/omsctl.h"
#include "oms/v1/order.omsrpc.h"

#define MAX_ROW_LINES 1000 /* the server takes 100; past this a row is only counted */

typedef struct import_row {
    char *row_id; /* NULL: no row open */
    char *customer_id;
    char *key;
    long first_line;
    Oms__V1__CreateOrderLine *lines;
    size_t n, cap;
    char *error; /* set: the row is malformed (first reason, with its line) */
} import_row;

typedef struct import_state {
    omsctl *ctl;
    FILE *in;
    const char *path;
    long lineno;
    bool header_checked;
    char *buf; /* getline's buffer */
    size_t buflen;
    rpc_client_call *call;
    import_row row;
    bool blocked;   /* RPC_AGAIN: wait for on_ready */
    bool finished;  /* half-closed, or the call failed under us */
    bool read_fail; /* a read error: the call is cancelled */
    size_t local_failed;
    size_t sent;
    bool summary_seen;
    bool done;
    rpc_status code;
    char msg[1024];
    int64_t created, failed, received;
    int64_t skipped; /* rows past the server's limit: not processed */
    char skipped_reason[208];
} import_state;

static void row_reset(import_row *r)
{
    free(r->row_id);
    free(r->customer_id);
    free(r->key);
    for (size_t i = 0; i < r->n; i++)
        free(r->lines[i].sku);
    free(r->lines);
    free(r->error);
    memset(r, 0, sizeof *r);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        fprintf(stderr, "omsctl: out of memory\n");
        exit(OMSCTL_EXIT_SERVER);
    }
    return d;
}

static void row_error(import_row *r, long line, const char *fmt, const char *arg)
{
    if (r->error)
        return; /* the first reason is the one reported */
    char m[512];
    char what[256];
    snprintf(what, sizeof what, fmt, arg);
    snprintf(m, sizeof m, "line %ld: %s", line, what);
    r->error = xstrdup(m);
}

/* Prints one row result (ours or the server's). */
static void print_result(const omsctl *ctl, const char *row_id, int code, const char *order_id,
                         const char *message, long line)
{
    if (ctl->json) {
        printf("{\"row_id\":");
        omsctl_json_str(stdout, row_id);
        printf(",\"code\":\"%s\",\"order_id\":", rpc_status_name(code));
        omsctl_json_str(stdout, order_id);
        printf(",\"message\":");
        omsctl_json_str(stdout, message);
        if (line > 0)
            printf(",\"line\":%ld,\"local\":true", line);
        printf("}\n");
    } else if (code == RPC_OK) {
        printf("%-14s %-20s %s\n", row_id, "OK", order_id);
    } else {
        printf("%-14s %-20s %s%s\n", row_id, rpc_status_name(code), message,
               line > 0 ? " (not sent)" : "");
    }
}

/* Sends the open row (or reports it as failed) and closes it. */
static void emit_row(import_state *st)
{
    import_row *r = &st->row;
    if (!r->row_id)
        return;
    if (r->error) {
        print_result(st->ctl, r->row_id, RPC_INVALID_ARGUMENT, "", r->error, r->first_line);
        st->local_failed++;
        row_reset(r);
        return;
    }
    Oms__V1__CreateOrderLine **ptrs = calloc(r->n, sizeof *ptrs);
    if (!ptrs) {
        fprintf(stderr, "omsctl: out of memory\n");
        exit(OMSCTL_EXIT_SERVER);
    }
    for (size_t i = 0; i < r->n; i++)
        ptrs[i] = &r->lines[i];
    Oms__V1__CreateOrderRequest order = OMS__V1__CREATE_ORDER_REQUEST__INIT;
    order.customer_id = r->customer_id;
    order.n_lines = r->n;
    order.lines = ptrs;
    if (r->key)
        order.idempotency_key = r->key;
    Oms__V1__ImportOrderRow m = OMS__V1__IMPORT_ORDER_ROW__INIT;
    m.row_id = r->row_id;
    m.order = &order;
    int rv = oms__v1__order_service__import_orders__client_send(st->call, &m);
    free(ptrs);
    row_reset(r);
    if (rv < 0) {
        st->finished = true; /* the call is over: its status tells why */
        return;
    }
    st->sent++;
    if (rv == RPC_AGAIN)
        st->blocked = true; /* queued all the same; read on after on_ready */
}

/* Splits a line at commas (in place) into at most max fields; returns the
 * count, or max + 1 if there were more. */
static int split_csv(char *s, char **f, int max)
{
    int n = 0;
    for (;;) {
        char *comma = strchr(s, ',');
        if (n == max)
            return max + 1;
        if (comma)
            *comma = '\0';
        f[n++] = trim(s);
        if (!comma)
            return n;
        s = comma + 1;
    }
}

/* One line of the file: opens, extends or (via emit_row) ends rows. */
static void take_line(import_state *st, char *line)
{
    long ln = st->lineno;
    char *t = trim(line);
    if (*t == '\0' || *t == '#')
        return;
    if (!st->header_checked) {
        st->header_checked = true;
        if (strncmp(t, "row_id", 6) == 0)
            return;
    }
    char *f[5];
    int n = split_csv(t, f, 5);
    const char *row_id = f[0];
    if (*row_id == '\0') {
        /* nothing to group by: a row of its own, reported by line */
        char m[96], id[32];
        snprintf(m, sizeof m, "line %ld: empty row_id", ln);
        snprintf(id, sizeof id, "line-%ld", ln);
        emit_row(st);
        print_result(st->ctl, id, RPC_INVALID_ARGUMENT, "", m, ln);
        st->local_failed++;
        return;
    }
    import_row *r = &st->row;
    if (r->row_id && strcmp(r->row_id, row_id) != 0)
        emit_row(st);
    bool first = !r->row_id;
    if (first) {
        r->row_id = xstrdup(row_id);
        r->first_line = ln;
    }
    /* A failed row only swallows its further lines (the first reason is the
     * one reported); its first line may not have set customer_id. */
    if (r->error)
        return;
    if (n < 4 || n > 5) {
        row_error(r, ln, "%s",
                  n < 4 ? "want row_id,customer_id,sku,quantity[,idempotency_key]"
                        : "more than 5 fields");
        return;
    }
    const char *cust = f[1], *sku = f[2], *qty_s = f[3], *key = n == 5 ? f[4] : "";
    int64_t qty;
    if (*cust == '\0')
        row_error(r, ln, "%s", "empty customer_id");
    if (*sku == '\0')
        row_error(r, ln, "%s", "empty sku");
    if (omsctl_parse_i64(qty_s, &qty) != 0)
        row_error(r, ln, "quantity '%s' is not an integer", qty_s);
    if (first) {
        r->customer_id = xstrdup(cust);
        if (*key)
            r->key = xstrdup(key);
    } else {
        if (strcmp(r->customer_id, cust) != 0)
            row_error(r, ln, "customer_id '%s' differs from the row's first line", cust);
        if (strcmp(r->key ? r->key : "", key) != 0)
            row_error(r, ln, "idempotency_key '%s' differs from the row's first line", key);
    }
    if (r->error)
        return;
    if (r->n == MAX_ROW_LINES) {
        row_error(r, ln, "%s", "more than 1000 lines in one row");
        return;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        Oms__V1__CreateOrderLine *p = realloc(r->lines, cap * sizeof *p);
        if (!p) {
            fprintf(stderr, "omsctl: out of memory\n");
            exit(OMSCTL_EXIT_SERVER);
        }
        r->lines = p;
        r->cap = cap;
    }
    oms__v1__create_order_line__init(&r->lines[r->n]);
    r->lines[r->n].sku = xstrdup(sku);
    r->lines[r->n].quantity = qty;
    r->n++;
}

/* Reads and sends until the stream pushes back, the file ends or the call is over. */
static void pump(import_state *st)
{
    while (!st->blocked && !st->finished) {
        errno = 0;
        ssize_t n = getline(&st->buf, &st->buflen, st->in);
        if (n < 0) {
            if (ferror(st->in)) {
                fprintf(stderr, "omsctl: reading %s: %s\n", st->path, strerror(errno));
                st->read_fail = true;
                st->finished = true;
                rpc_client_call_cancel(st->call);
                return;
            }
            emit_row(st); /* the last row; if RPC_AGAIN it is queued all the same */
            st->finished = true;
            rpc_client_call_close_send(st->call);
            return;
        }
        st->lineno++;
        /* A NUL would cut the line short silently, and bytes that are not
         * UTF-8 would make the server refuse the whole import (proto3
         * strings): fail the open row (the line most likely belongs to it),
         * or report the line alone. */
        const char *bad = memchr(st->buf, '\0', (size_t)n)     ? "NUL byte in the line"
                          : !rpc_string_ok(st->buf, (size_t)n) ? "not UTF-8 text"
                                                               : NULL;
        if (bad) {
            if (st->row.row_id) {
                row_error(&st->row, st->lineno, "%s", bad);
            } else {
                char m[64], id[32];
                snprintf(m, sizeof m, "line %ld: %s", st->lineno, bad);
                snprintf(id, sizeof id, "line-%ld", st->lineno);
                print_result(st->ctl, id, RPC_INVALID_ARGUMENT, "", m, st->lineno);
                st->local_failed++;
            }
            continue;
        }
        take_line(st, st->buf);
    }
}

static void on_import_ready(rpc_client_call *c, void *data)
{
    import_state *st = data;
    (void)c;
    st->blocked = false;
    pump(st);
}

static void on_import_summary(rpc_client_call *c, void *data, const Oms__V1__ImportOrdersSummary *m)
{
    import_state *st = data;
    (void)c;
    st->summary_seen = true;
    st->received = m->received;
    st->created = m->created;
    st->failed = m->failed;
    st->skipped = m->skipped;
    snprintf(st->skipped_reason, sizeof st->skipped_reason, "%s",
             m->skipped_reason ? m->skipped_reason : "");
    for (size_t i = 0; i < m->n_results; i++) {
        const Oms__V1__ImportRowResult *r = m->results[i];
        print_result(st->ctl, r->row_id, r->code, r->order_id, r->message, 0);
    }
}

static void on_import_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                             const rpc_metadata *trailers)
{
    import_state *st = data;
    (void)trailers;
    omsctl_keep_details(st->ctl, c);
    st->code = code;
    snprintf(st->msg, sizeof st->msg, "%s", message);
    st->done = true;
    st->finished = true;
}

static const Oms__V1__OrderService_ImportOrders_Callbacks import_cb = {
    .on_message = on_import_summary,
    .on_ready = on_import_ready,
    .on_status = on_import_status,
};

int omsctl_cmd_import(omsctl *ctl, int argc, char **argv)
{
    int npos, rc;
    if ((rc = omsctl_parse_args("import", argc, argv, 1, NULL, NULL, 0, &npos)) != 0)
        return rc;
    if (npos != 1)
        return omsctl_usage_error("import", "'import' needs one FILE.csv");
    import_state st;
    memset(&st, 0, sizeof st);
    st.ctl = ctl;
    st.path = argv[1];
    st.code = RPC_UNKNOWN;
    if (strcmp(st.path, "-") == 0) {
        st.in = stdin;
        st.path = "standard input";
    } else if (!(st.in = fopen(st.path, "r"))) {
        fprintf(stderr, "omsctl: cannot open %s: %s\n", st.path, strerror(errno));
        return OMSCTL_EXIT_USAGE;
    }
    if ((rc = omsctl_connect(ctl)) != 0)
        goto out;
    rpc_call_opts opts = omsctl_call_opts(ctl);
    if (!ctl->timeout_set)
        opts.timeout_ms = 0; /* a big file may take long: no deadline unless asked */
    st.call = oms__v1__order_service__import_orders__call(ctl->chan, &opts, &import_cb, &st);
    if (!st.call) {
        rc = omsctl_fail(RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    pump(&st);
    omsctl_run_until(ctl, &st.done);
    if (!st.done) {
        rc = omsctl_fail(RPC_INTERNAL, "the call never ended");
        goto out;
    }
    if (st.read_fail) {
        rc = OMSCTL_EXIT_USAGE;
        goto out;
    }
    if (st.code != RPC_OK) {
        rc = omsctl_fail_call(ctl, st.code, st.msg);
        goto out;
    }
    int64_t local = (int64_t)st.local_failed;
    int64_t rows = st.received + local, failed = st.failed + local;
    if (ctl->json)
        printf("{\"summary\":{\"rows\":%lld,\"received\":%lld,\"created\":%lld,\"failed\":%lld,"
               "\"local_failed\":%lld,\"skipped\":%lld}}\n",
               (long long)rows, (long long)st.received, (long long)st.created, (long long)failed,
               (long long)local, (long long)st.skipped);
    else
        printf("%lld rows: %lld created, %lld failed (%lld malformed, not sent)\n", (long long)rows,
               (long long)st.created, (long long)failed, (long long)local);
    if (st.skipped && !ctl->json)
        printf("%lld rows skipped: %s\n", (long long)st.skipped, st.skipped_reason);
    rc = failed > 0 || st.skipped > 0 ? OMSCTL_EXIT_REJECTED : OMSCTL_EXIT_OK;
out:
    row_reset(&st.row);
    free(st.buf);
    if (st.in && st.in != stdin)
        fclose(st.in);
    return rc;
}
