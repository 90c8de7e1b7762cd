/* grpc_server_* and grpc_client_* counters: interceptors counting into
 * per-loop blocks, summed at scrape time (see metrics.h). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "metrics/metrics.h"

#define NCODES 17
/* handling seconds: Prometheus' defaults, with finer steps below 5 ms */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NB          (sizeof bounds / sizeof bounds[0])
#define TYPE_UNSEEN (-2)

static const char *const code_names[NCODES] = {
    "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated"};

/* One method's counters in one block. Written by that block's loop only. */
typedef struct slot {
    atomic_int type; /* rpc_call_type, TYPE_UNSEEN until a call came */
    atomic_uint_fast64_t started, msg_received, msg_sent;
    atomic_uint_fast64_t handled[NCODES];
    atomic_uint_fast64_t bucket[NB]; /* not cumulative; above the last: count - sum */
    atomic_uint_fast64_t count, sum_ns;
} slot;

typedef struct method {
    char *path;    /* "/pkg.Svc/M" */
    char *service; /* "pkg.Svc" */
    char *name;    /* "M" */
    int type;      /* rpc_call_type known up front, or TYPE_UNSEEN */
} method;

typedef struct table {
    method *m; /* sorted by path once started; [n] is "unknown" */
    size_t n, cap;
} table;

struct oms_metrics {
    size_t nloops;
    table srv, cli;
    slot *srv_slots;  /* nloops * (srv.n + 1) */
    slot *cli_slots;  /* nloops * (cli.n + 1) */
    struct ctx *ctx;  /* nloops interceptor contexts for the server... */
    struct ctx *cctx; /* ...and the client */
    int started;
};

typedef struct ctx {
    oms_metrics *m;
    slot *slots; /* this loop's */
} ctx;

static inline void add(atomic_uint_fast64_t *c, uint64_t v)
{
    /* one writer: load + store, no locked instruction */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline uint64_t get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit((atomic_uint_fast64_t *)c, memory_order_relaxed);
}

oms_metrics *oms_metrics_new(size_t nloops)
{
    oms_metrics *m = oms_calloc(1, sizeof *m);
    if (m)
        m->nloops = nloops ? nloops : 1;
    return m;
}

static void table_dispose(table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        oms_free(t->m[i].path);
        oms_free(t->m[i].service);
        oms_free(t->m[i].name);
    }
    oms_free(t->m);
}

void oms_metrics_free(oms_metrics *m)
{
    if (!m)
        return;
    table_dispose(&m->srv);
    table_dispose(&m->cli);
    oms_free(m->srv_slots);
    oms_free(m->cli_slots);
    oms_free(m->ctx);
    oms_free(m->cctx);
    oms_free(m);
}

static int table_add(table *t, const char *path, int type)
{
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (!slash || slash == path + 1 || !slash[1] || strchr(slash + 1, '/'))
        return -1;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->m[i].path, path) == 0)
            return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        method *mm = oms_realloc(t->m, cap * sizeof *mm);
        if (!mm)
            return -1;
        t->m = mm;
        t->cap = cap;
    }
    method *e = &t->m[t->n];
    e->path = oms_strdup(path);
    e->service = oms_strndup(path + 1, (size_t)(slash - path - 1));
    e->name = oms_strdup(slash + 1);
    e->type = type;
    if (!e->path || !e->service || !e->name) {
        oms_free(e->path);
        oms_free(e->service);
        oms_free(e->name);
        return -1;
    }
    t->n++;
    return 0;
}

int oms_metrics_add_server_method(oms_metrics *m, const char *path, int type)
{
    if (type != RPC_CALL_UNARY && type != RPC_CALL_CLIENT_STREAMING &&
        type != RPC_CALL_SERVER_STREAMING && type != RPC_CALL_BIDI_STREAMING)
        type = TYPE_UNSEEN;
    return m->started ? -1 : table_add(&m->srv, path, type);
}

int oms_metrics_add_client_method(oms_metrics *m, const char *path)
{
    return m->started ? -1 : table_add(&m->cli, path, TYPE_UNSEEN);
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const method *)a)->path, ((const method *)b)->path);
}

/* nloops blocks of t->n + 1 slots; a method's type starts as its table's. */
static slot *slots_new(size_t nloops, const table *t)
{
    size_t stride = t->n + 1;
    slot *s = oms_calloc(nloops * stride, sizeof *s);
    for (size_t i = 0; s && i < nloops * stride; i++)
        atomic_init(&s[i].type, i % stride < t->n ? t->m[i % stride].type : TYPE_UNSEEN);
    return s;
}

int oms_metrics_start(oms_metrics *m)
{
    if (m->srv.n)
        qsort(m->srv.m, m->srv.n, sizeof *m->srv.m, by_path);
    if (m->cli.n)
        qsort(m->cli.m, m->cli.n, sizeof *m->cli.m, by_path);
    m->srv_slots = slots_new(m->nloops, &m->srv);
    m->cli_slots = slots_new(m->nloops, &m->cli);
    m->ctx = oms_calloc(m->nloops, sizeof *m->ctx);
    m->cctx = oms_calloc(m->nloops, sizeof *m->cctx);
    if (!m->srv_slots || !m->cli_slots || !m->ctx || !m->cctx)
        return -1;
    for (size_t i = 0; i < m->nloops; i++) {
        m->ctx[i] = (ctx){m, m->srv_slots + i * (m->srv.n + 1)};
        m->cctx[i] = (ctx){m, m->cli_slots + i * (m->cli.n + 1)};
    }
    m->started = 1;
    return 0;
}

/* Index of path in t, or t->n (the "unknown" slot). */
static size_t lookup(const table *t, const char *path)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(path, t->m[mid].path);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return t->n;
}

static void count_end(slot *s, const rpc_call_stats *st, bool server)
{
    unsigned code = (unsigned)st->code < NCODES ? (unsigned)st->code : 2 /* Unknown */;
    add(&s->handled[code], 1);
    add(&s->msg_received, server ? st->msgs_received : st->msgs_received);
    add(&s->msg_sent, st->msgs_sent);
    double secs = (double)st->duration_ns / 1e9;
    size_t b = 0;
    while (b < NB && secs > bounds[b])
        b++;
    if (b < NB)
        add(&s->bucket[b], 1);
    add(&s->sum_ns, st->duration_ns);
    add(&s->count, 1);
}

static rpc_intercept_action on_server_start(rpc_call *c, void *data, void **state)
{
    ctx *x = data;
    size_t i = lookup(&x->m->srv, rpc_call_path(c));
    slot *s = &x->slots[i];
    int type = i == x->m->srv.n ? RPC_CALL_UNKNOWN : (int)rpc_call_get_type(c);
    if (atomic_load_explicit(&s->type, memory_order_relaxed) != type)
        atomic_store_explicit(&s->type, type, memory_order_relaxed);
    add(&s->started, 1);
    *state = s;
    return RPC_INTERCEPT_CONTINUE;
}

static void on_server_end(rpc_call *c, void *data, void *state, const rpc_call_stats *st)
{
    (void)c;
    (void)data;
    count_end(state, st, true);
}

static void on_client_start(rpc_client_call *c, void *data)
{
    ctx *x = data;
    size_t i = lookup(&x->m->cli, rpc_client_call_path(c));
    slot *s = &x->slots[i];
    int type = i == x->m->cli.n ? RPC_CALL_UNKNOWN : (int)rpc_client_call_type(c);
    if (atomic_load_explicit(&s->type, memory_order_relaxed) != type)
        atomic_store_explicit(&s->type, type, memory_order_relaxed);
    add(&s->started, 1);
}

static void on_client_end(rpc_client_call *c, void *data, const rpc_call_stats *st)
{
    ctx *x = data;
    count_end(&x->slots[lookup(&x->m->cli, rpc_client_call_path(c))], st, false);
}

int oms_metrics_attach_server(oms_metrics *m, size_t i, rpc_server *srv)
{
    static const rpc_interceptor ic = {"metrics", on_server_start, on_server_end};
    if (!m->started || i >= m->nloops)
        return RPC_EINVAL;
    return rpc_server_add_interceptor(srv, &ic, &m->ctx[i]);
}

int oms_metrics_attach_channel(oms_metrics *m, size_t i, rpc_channel *ch)
{
    static const rpc_client_interceptor ic = {"metrics", on_client_start, on_client_end};
    if (!m->started || i >= m->nloops)
        return RPC_EINVAL;
    return rpc_channel_add_interceptor(ch, &ic, &m->cctx[i]);
}

/* --- rendering ----------------------------------------------------------------- */

static const char *type_name(int type)
{
    switch (type) {
    case RPC_CALL_UNARY:
        return "unary";
    case RPC_CALL_CLIENT_STREAMING:
        return "client_stream";
    case RPC_CALL_SERVER_STREAMING:
        return "server_stream";
    case RPC_CALL_BIDI_STREAMING:
        return "bidi_stream";
    default:
        return "unknown";
    }
}

/* The sum of method i over every loop, and its type (TYPE_UNSEEN if never
 * called). */
static int sum_slot(const oms_metrics *m, const slot *base, size_t stride, size_t i, slot *out)
{
    int type = TYPE_UNSEEN;
    memset(out, 0, sizeof *out);
    for (size_t l = 0; l < m->nloops; l++) {
        slot *s = (slot *)&base[l * stride + i];
        int t = atomic_load_explicit(&s->type, memory_order_relaxed);
        if (t != TYPE_UNSEEN)
            type = t;
        out->started += get(&s->started);
        out->msg_received += get(&s->msg_received);
        out->msg_sent += get(&s->msg_sent);
        for (size_t k = 0; k < NCODES; k++)
            out->handled[k] += get(&s->handled[k]);
        for (size_t k = 0; k < NB; k++)
            out->bucket[k] += get(&s->bucket[k]);
        out->count += get(&s->count);
        out->sum_ns += get(&s->sum_ns);
    }
    return type;
}

static void render_side(oms_metrics *m, oms_mtext *t, const char *side, const table *tab,
                        const slot *base)
{
    size_t stride = tab->n + 1;
    slot *sums = oms_calloc(stride, sizeof *sums);
    int *types = oms_calloc(stride, sizeof *types);
    if (!sums || !types) {
        oms_free(sums);
        oms_free(types);
        t->failed = 1;
        return;
    }
    for (size_t i = 0; i < stride; i++)
        types[i] = sum_slot(m, base, stride, i, &sums[i]);
    char name[96];
    const char *verb = strcmp(side, "server") == 0 ? "server" : "client";
#define LABELS(i)                                                                                  \
    const char *labels[] = {"grpc_method",                                                         \
                            i < tab->n ? tab->m[i].name : "unknown",                               \
                            "grpc_service",                                                        \
                            i < tab->n ? tab->m[i].service : "unknown",                            \
                            "grpc_type",                                                           \
                            type_name(types[i]),                                                   \
                            NULL}

    snprintf(name, sizeof name, "grpc_%s_started_total", side);
    oms_mtext_family(t, name, "counter",
                     strcmp(verb, "server") == 0 ? "Total number of RPCs started on the server."
                                                 : "Total number of RPCs started on the client.");
    for (size_t i = 0; i < stride; i++) {
        if (types[i] == TYPE_UNSEEN)
            continue;
        LABELS(i);
        oms_mtext_sample(t, name, labels, (double)sums[i].started);
    }
    snprintf(name, sizeof name, "grpc_%s_handled_total", side);
    oms_mtext_family(t, name, "counter",
                     strcmp(verb, "server") == 0
                         ? "Total number of RPCs completed on the server, regardless of success or "
                           "failure."
                         : "Total number of RPCs completed by the client, regardless of success or "
                           "failure.");
    for (size_t i = 0; i < stride; i++) {
        if (types[i] == TYPE_UNSEEN)
            continue;
        LABELS(i);
        for (size_t k = 0; k < NCODES; k++)
            if (sums[i].handled[k] || k == 0)
                oms_mtext_sample_extra(t, name, labels, "grpc_code", code_names[k],
                                       (double)sums[i].handled[k]);
    }
    snprintf(name, sizeof name, "grpc_%s_msg_received_total", side);
    oms_mtext_family(t, name, "counter",
                     strcmp(verb, "server") == 0
                         ? "Total number of RPC stream messages received on the server."
                         : "Total number of RPC stream messages received by the client.");
    for (size_t i = 0; i < stride; i++) {
        if (types[i] == TYPE_UNSEEN)
            continue;
        LABELS(i);
        oms_mtext_sample(t, name, labels, (double)sums[i].msg_received);
    }
    snprintf(name, sizeof name, "grpc_%s_msg_sent_total", side);
    oms_mtext_family(t, name, "counter",
                     strcmp(verb, "server") == 0
                         ? "Total number of gRPC stream messages sent by the server."
                         : "Total number of gRPC stream messages sent by the client.");
    for (size_t i = 0; i < stride; i++) {
        if (types[i] == TYPE_UNSEEN)
            continue;
        LABELS(i);
        oms_mtext_sample(t, name, labels, (double)sums[i].msg_sent);
    }
    const char *hname = strcmp(verb, "server") == 0 ? "grpc_server_handling_seconds"
                                                    : "grpc_client_handling_seconds";
    oms_mtext_family(t, hname, "histogram",
                     strcmp(verb, "server") == 0
                         ? "Histogram of response latency (seconds) of gRPC that had been "
                           "application-level handled by the server."
                         : "Histogram of response latency (seconds) of the gRPC until it is "
                           "finished by the application.");
    char bname[112], le[32];
    for (size_t i = 0; i < stride; i++) {
        if (types[i] == TYPE_UNSEEN)
            continue;
        LABELS(i);
        uint64_t cum = 0;
        snprintf(bname, sizeof bname, "%s_bucket", hname);
        for (size_t k = 0; k < NB; k++) {
            cum += sums[i].bucket[k];
            snprintf(le, sizeof le, "%g", bounds[k]);
            oms_mtext_sample_extra(t, bname, labels, "le", le, (double)cum);
        }
        /* count is read last and may have grown since: +Inf >= every bucket */
        uint64_t count = sums[i].count > cum ? sums[i].count : cum;
        oms_mtext_sample_extra(t, bname, labels, "le", "+Inf", (double)count);
        snprintf(bname, sizeof bname, "%s_sum", hname);
        oms_mtext_sample(t, bname, labels, (double)sums[i].sum_ns / 1e9);
        snprintf(bname, sizeof bname, "%s_count", hname);
        oms_mtext_sample(t, bname, labels, (double)count);
    }
#undef LABELS
    oms_free(sums);
    oms_free(types);
}

void oms_metrics_render(oms_metrics *m, oms_mtext *t)
{
    if (!m->started)
        return;
    render_side(m, t, "server", &m->srv, m->srv_slots);
    if (m->cli.n)
        render_side(m, t, "client", &m->cli, m->cli_slots);
}
