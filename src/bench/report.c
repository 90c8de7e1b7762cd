/* report.c - the figures of a run: summary table and JSON. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench_int.h"

const char *bench_code_name(int code)
{
    return code >= 0 && code < BENCH_NCODES ? rpc_status_name(code) : "UNKNOWN";
}

/* Three significant digits in the unit that fits. */
void bench__format_ns(char *buf, size_t len, double ns)
{
    if (ns < 1e4)
        snprintf(buf, len, "%.2f us", ns / 1e3);
    else if (ns < 1e5)
        snprintf(buf, len, "%.1f us", ns / 1e3);
    else if (ns < 1e6)
        snprintf(buf, len, "%.0f us", ns / 1e3);
    else if (ns < 1e7)
        snprintf(buf, len, "%.2f ms", ns / 1e6);
    else if (ns < 1e8)
        snprintf(buf, len, "%.1f ms", ns / 1e6);
    else if (ns < 1e9)
        snprintf(buf, len, "%.0f ms", ns / 1e6);
    else
        snprintf(buf, len, "%.2f s", ns / 1e9);
}

static uint64_t errors_of(const bench_counts *c)
{
    return c->calls - c->codes[RPC_OK];
}

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

/* The percentiles every report shows, in order. */
static const struct {
    const char *name;
    double p;
} pcts[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}};

/* A header row and a row of min, mean, percentiles, max. */
static void text_hist(FILE *f, const bench_hist *h)
{
    fprintf(f, "    %10s %10s", "min", "mean");
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++)
        fprintf(f, " %10s", pcts[i].name);
    fprintf(f, " %10s\n    ", "max");
    char b[32];
    bench__format_ns(b, sizeof b, h->total ? (double)h->min : 0);
    fprintf(f, "%10s", b);
    bench__format_ns(b, sizeof b, bench_hist_mean(h));
    fprintf(f, " %10s", b);
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
        bench__format_ns(b, sizeof b, (double)bench_hist_percentile(h, pcts[i].p));
        fprintf(f, " %10s", b);
    }
    bench__format_ns(b, sizeof b, (double)h->max);
    fprintf(f, " %10s\n", b);
}

static bool order_mode(const bench_config *cfg)
{
    return cfg->call == BENCH_ORDER_CREATE || cfg->call == BENCH_ORDER_WATCH;
}

static void text_order(FILE *f, const bench_config *cfg, const bench_results *res)
{
    fprintf(f, "  orders       customer %s, %lld x %s, %s\n", res->customer ? res->customer : "?",
            (long long)cfg->quantity, bench__order_sku(cfg),
            cfg->no_key ? "no idempotency key" : "a unique idempotency key each");
    if (res->stock_before >= 0)
        fprintf(f, "  stock        %lld available before the run, %lld added\n",
                (long long)res->stock_before, (long long)res->stock_added);
}

/* The client's CPU time per delivery in the window, microseconds (0: none). */
static double client_us_per_delivery(const bench_results *res)
{
    const bench_watch_results *w = res->watch;
    double cpu = res->cpu_user_s + res->cpu_sys_s;
    return w->deliveries_window ? cpu * 1e6 / (double)w->deliveries_window : 0;
}

static void text_watch(FILE *f, const bench_config *cfg, const bench_results *res)
{
    const bench_watch_results *w = res->watch;
    const bench_counts *c = &res->counts;
    double d = res->duration_s;
    fprintf(f, "oms-bench: order-watch %s\n", bench_call_info_of(cfg->call)->path);
    fprintf(f, "  target       %s (%s%s%s)\n", cfg->target, cfg->h2c ? "h2c" : "tls",
            cfg->server_name ? ", name " : "", cfg->server_name ? cfg->server_name : "");
    fprintf(f,
            "  load         %u subscribers over %u connection%s; CreateOrder at %.0f/s (open "
            "loop) on one more\n",
            w->subscribers, cfg->connections, cfg->connections == 1 ? "" : "s", cfg->rate);
    text_order(f, cfg, res);
    fprintf(f, "  window       %.2f s after %.2f s of warm-up%s\n\n", d, res->warmup_s,
            res->interrupted ? " (interrupted)" : "");
    fprintf(f, "  subscribers  %u open, %u live after %.2f s (%" PRIu64 " sync orders)\n",
            w->subscribers_open, w->subscribers_live, w->open_s, w->sync_orders);
    fprintf(f,
            "  orders       %" PRIu64 " CreateOrder sent, %" PRIu64 " OK, %" PRIu64
            " of them in the window\n",
            w->produced, w->produced_ok, w->produced_window);
    fprintf(f,
            "  deliveries   %" PRIu64 " of %" PRIu64 " expected; missing %" PRIu64
            " (%u subscribers), duplicates %" PRIu64 " (%u subscribers)\n",
            w->deliveries, w->expected, w->missing, w->subs_missing, w->duplicates,
            w->subs_duplicate);
    fprintf(f,
            "               seq gaps %" PRIu64 ", resumed streams %" PRIu64
            ", other events %" PRIu64 ", events of unanswered orders %" PRIu64 "\n",
            w->seq_gaps, w->resumes, w->other_events, w->unknown_deliveries);
    if (w->drain_timed_out && w->missing)
        fprintf(f,
                "               --drain (%.0f s) ran out: %u subscribers were still behind (late "
                "rather than skipped\n               unless seq gaps > 0)\n",
                cfg->drain_s, w->subs_behind);
    fprintf(f,
            "  throughput   %.1f deliveries/s offered (events of window orders / window), "
            "%.1f orders/s;\n"
            "               %.1f deliveries/s achieved (over %.2f s, first window order sent "
            "-> its last event)\n",
            per_s(w->deliveries_window, d), per_s(w->produced_window, d),
            per_s(w->deliveries_window, w->deliver_s), w->deliver_s);
    fprintf(f,
            "  delivery     CreateOrder sent -> event received (same monotonic clock; an upper\n"
            "               bound of commit -> delivery), %" PRIu64 " deliveries\n",
            res->latency.total);
    text_hist(f, &res->latency);
    fprintf(f, "  from .at     OrderEvent.at -> received (wall clock, at in ms, set just before\n"
               "               the commit: also an upper bound, +-1 ms)\n");
    text_hist(f, &w->commit_at);
    fprintf(
        f, "  fan-out      per window order, its first delivery -> its last (%" PRIu64 " orders)\n",
        w->spread.total);
    text_hist(f, &w->spread);
    fprintf(f, "  CreateOrder  the producer's calls, %" PRIu64 " in the window\n", w->create.total);
    text_hist(f, &w->create);
    if (errors_of(c)) {
        fprintf(f, "  errors       (producer calls; subscriber streams that ended early)\n");
        for (int k = 1; k < BENCH_NCODES; k++)
            if (c->codes[k])
                fprintf(f, "    %-20s %10" PRIu64 "  %s\n", rpc_status_name(k), c->codes[k],
                        res->first_error[k]);
    }
    double cpu = res->cpu_user_s + res->cpu_sys_s;
    fprintf(f, "  client CPU   %.2f s user + %.2f s sys = %.0f%% of one core\n", res->cpu_user_s,
            res->cpu_sys_s, d > 0 ? 100 * cpu / d : 0);
    /* One thread reads every delivery: an order's last subscriber cannot be
     * seen sooner than subscribers x this after its first. */
    double per = client_us_per_delivery(res);
    if (per > 0)
        fprintf(f,
                "               %.2f us per delivery: reading one order's %u deliveries takes "
                "this client\n               about %.2f ms, a floor under the spread and the "
                "delivery latencies above\n",
                per, w->subscribers, per * w->subscribers / 1e3);
}

void bench_report_text(FILE *f, const bench_config *cfg, const bench_results *res)
{
    if (res->watch) {
        text_watch(f, cfg, res);
        return;
    }
    const bench_call_info *info = bench_call_info_of(cfg->call);
    const bench_counts *c = &res->counts;
    double d = res->duration_s;
    fprintf(f, "oms-bench: %s %s\n", info->name, info->path);
    fprintf(f, "  target       %s (%s%s%s)\n", cfg->target, cfg->h2c ? "h2c" : "tls",
            cfg->server_name ? ", name " : "", cfg->server_name ? cfg->server_name : "");
    fprintf(f, "  load         %u connection%s, %u in flight, ", cfg->connections,
            cfg->connections == 1 ? "" : "s", cfg->concurrency);
    if (cfg->rate > 0)
        fprintf(f, "open loop at %.0f %ss/s\n", cfg->rate, info->op_unit);
    else
        fprintf(f, "closed loop\n");
    if (order_mode(cfg))
        text_order(f, cfg, res);
    fprintf(f, "  request      %zu bytes", res->request_bytes);
    if (order_mode(cfg))
        ;
    else if (cfg->call != BENCH_UNARY && cfg->messages)
        fprintf(f, ", %u %ss per stream", cfg->messages, info->msg_unit);
    else if (cfg->call != BENCH_UNARY)
        fprintf(f, ", one stream per slot for the whole run");
    fprintf(f, "\n  window       %.2f s after %.2f s of warm-up%s\n\n", d, res->warmup_s,
            res->interrupted ? " (interrupted)" : "");

    fprintf(f, "  calls        %" PRIu64 " (%" PRIu64 " OK, %" PRIu64 " errors)\n", c->calls,
            c->codes[RPC_OK], errors_of(c));
    if (cfg->call == BENCH_BIDI)
        fprintf(f, "  throughput   %.1f round trips/s\n", per_s(c->ops, d));
    else if (info->rate_in_msgs)
        fprintf(f, "  throughput   %.1f %ss/s, %.1f %ss/s\n", per_s(c->messages, d), info->msg_unit,
                per_s(c->ops, d), info->op_unit);
    else
        fprintf(f, "  throughput   %.1f calls/s\n", per_s(c->ops, d));

    fprintf(f, "  latency      per %s, %" PRIu64 " samples\n", info->op_unit, res->latency.total);
    text_hist(f, &res->latency);

    if (cfg->rate > 0)
        fprintf(f,
                "  queued       %" PRIu64 " %ss waited for a slot (longest queue %" PRIu64
                "), %" PRIu64 " never started\n",
                res->queued, info->op_unit, res->max_queue, res->unstarted);
    if (errors_of(c)) {
        fprintf(f, "  errors\n");
        for (int k = 1; k < BENCH_NCODES; k++)
            if (c->codes[k])
                fprintf(f, "    %-20s %10" PRIu64 "  %s\n", rpc_status_name(k), c->codes[k],
                        res->first_error[k]);
    }
    double cpu = res->cpu_user_s + res->cpu_sys_s;
    fprintf(f, "  client CPU   %.2f s user + %.2f s sys = %.0f%% of one core\n", res->cpu_user_s,
            res->cpu_sys_s, d > 0 ? 100 * cpu / d : 0);
}

/* A JSON string literal. */
static void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_us(FILE *f, const char *name, double ns, bool last)
{
    fprintf(f, "    \"%s\": %.3f%s\n", name, ns / 1e3, last ? "" : ",");
}

/* "name": {count, min, mean, percentiles, max} in microseconds, one line. */
static void json_hist(FILE *f, const char *name, const bench_hist *h, bool last)
{
    fprintf(f, "    \"%s\": {\"count\": %" PRIu64 ", \"min\": %.3f, \"mean\": %.3f", name, h->total,
            h->total ? (double)h->min / 1e3 : 0, bench_hist_mean(h) / 1e3);
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++)
        fprintf(f, ", \"%s\": %.3f", pcts[i].name,
                (double)bench_hist_percentile(h, pcts[i].p) / 1e3);
    fprintf(f, ", \"max\": %.3f}%s\n", (double)h->max / 1e3, last ? "" : ",");
}

static void json_order(FILE *f, const bench_config *cfg, const bench_results *res)
{
    fprintf(f, "  \"order\": {\"customer\": ");
    json_str(f, res->customer);
    fprintf(f, ", \"sku\": ");
    json_str(f, bench__order_sku(cfg));
    fprintf(f,
            ", \"quantity\": %lld, \"idempotency_keys\": %s, \"stock_before\": %lld, "
            "\"stock_added\": %lld},\n",
            (long long)cfg->quantity, cfg->no_key ? "false" : "true", (long long)res->stock_before,
            (long long)res->stock_added);
}

static void json_watch(FILE *f, const bench_results *res)
{
    const bench_watch_results *w = res->watch;
    double d = res->duration_s;
    fprintf(f, "  \"watch\": {\n");
    fprintf(f, "    \"subscribers\": %u,\n    \"subscribers_open\": %u,\n", w->subscribers,
            w->subscribers_open);
    fprintf(f, "    \"subscribers_live\": %u,\n    \"open_s\": %.3f,\n", w->subscribers_live,
            w->open_s);
    fprintf(f, "    \"sync_orders\": %" PRIu64 ",\n", w->sync_orders);
    fprintf(f,
            "    \"produced\": %" PRIu64 ",\n    \"produced_ok\": %" PRIu64
            ",\n    \"produced_window\": %" PRIu64 ",\n",
            w->produced, w->produced_ok, w->produced_window);
    fprintf(f,
            "    \"deliveries\": %" PRIu64 ",\n    \"deliveries_window\": %" PRIu64
            ",\n    \"expected\": %" PRIu64 ",\n",
            w->deliveries, w->deliveries_window, w->expected);
    fprintf(f,
            "    \"missing\": %" PRIu64 ",\n    \"duplicates\": %" PRIu64
            ",\n    \"subscribers_missing\": %u,\n    \"subscribers_duplicate\": %u,\n",
            w->missing, w->duplicates, w->subs_missing, w->subs_duplicate);
    fprintf(f, "    \"subscribers_behind\": %u,\n    \"drain_timed_out\": %s,\n", w->subs_behind,
            w->drain_timed_out ? "true" : "false");
    fprintf(f,
            "    \"seq_gaps\": %" PRIu64 ",\n    \"resumes\": %" PRIu64
            ",\n    \"other_events\": %" PRIu64 ",\n    \"unknown_deliveries\": %" PRIu64 ",\n",
            w->seq_gaps, w->resumes, w->other_events, w->unknown_deliveries);
    fprintf(f,
            "    \"deliveries_per_s\": %.3f,\n    \"deliveries_per_s_achieved\": %.3f,\n"
            "    \"orders_per_s\": %.3f,\n    \"deliver_s\": %.3f,\n",
            per_s(w->deliveries_window, d), per_s(w->deliveries_window, w->deliver_s),
            per_s(w->produced_window, d), w->deliver_s);
    fprintf(f, "    \"client_us_per_delivery\": %.4f,\n", client_us_per_delivery(res));
    fprintf(f, "    \"delivery_latency_from\": \"CreateOrder send (monotonic, ns; upper bound "
               "of commit to delivery)\",\n");
    json_hist(f, "delivery_us", &res->latency, false);
    json_hist(f, "commit_at_us", &w->commit_at, false);
    json_hist(f, "spread_us", &w->spread, false);
    json_hist(f, "create_us", &w->create, true);
    fprintf(f, "  },\n");
}

static void write_json(FILE *f, const bench_config *cfg, const bench_results *res)
{
    const bench_call_info *info = bench_call_info_of(cfg->call);
    const bench_counts *c = &res->counts;
    const bench_hist *h = &res->latency;
    double d = res->duration_s;
    fprintf(f, "{\n  \"tool\": \"oms-bench\",\n  \"config\": {\n    \"target\": ");
    json_str(f, cfg->target);
    fprintf(f, ",\n    \"address\": ");
    json_str(f, cfg->address);
    fprintf(f, ",\n    \"transport\": \"%s\",\n    \"server_name\": ", cfg->h2c ? "h2c" : "tls");
    json_str(f, cfg->server_name);
    fprintf(f, ",\n    \"call\": \"%s\",\n    \"method\": \"%s\",\n", info->name, info->path);
    fprintf(f, "    \"connections\": %u,\n    \"concurrency\": %u,\n", cfg->connections,
            cfg->concurrency);
    fprintf(f, "    \"duration_s\": %g,\n    \"warmup_s\": %g,\n", cfg->duration_s, cfg->warmup_s);
    fprintf(f, "    \"count\": %" PRIu64 ",\n", cfg->count);
    fprintf(f, "    \"rate\": %g,\n    \"open_loop\": %s,\n", cfg->rate,
            cfg->rate > 0 ? "true" : "false");
    fprintf(f, "    \"payload\": %zu,\n    \"request_bytes\": %zu,\n", cfg->payload,
            res->request_bytes);
    fprintf(f, "    \"messages_per_stream\": %u\n  },\n",
            cfg->call == BENCH_UNARY ? 1 : cfg->messages);
    if (order_mode(cfg))
        json_order(f, cfg, res);
    if (res->watch)
        json_watch(f, res);
    fprintf(f, "  \"interrupted\": %s,\n", res->interrupted ? "true" : "false");
    fprintf(f, "  \"duration_s\": %.6f,\n  \"warmup_s\": %.6f,\n", d, res->warmup_s);
    fprintf(f,
            "  \"calls\": %" PRIu64 ",\n  \"calls_ok\": %" PRIu64 ",\n  \"errors\": %" PRIu64 ",\n",
            c->calls, c->codes[RPC_OK], errors_of(c));
    fprintf(f, "  \"errors_by_code\": {");
    const char *sep = "";
    for (int k = 1; k < BENCH_NCODES; k++) {
        if (c->codes[k]) {
            fprintf(f, "%s\"%s\": %" PRIu64, sep, rpc_status_name(k), c->codes[k]);
            sep = ", ";
        }
    }
    fprintf(f, "},\n  \"error_messages\": {");
    sep = "";
    for (int k = 1; k < BENCH_NCODES; k++) {
        if (c->codes[k]) {
            fprintf(f, "%s\"%s\": ", sep, rpc_status_name(k));
            json_str(f, res->first_error[k]);
            sep = ", ";
        }
    }
    fprintf(f, "},\n");
    fprintf(f, "  \"ops\": %" PRIu64 ",\n  \"op_unit\": \"%s\",\n", c->ops, info->op_unit);
    fprintf(f, "  \"messages\": %" PRIu64 ",\n  \"message_unit\": \"%s\",\n", c->messages,
            info->msg_unit);
    fprintf(f, "  \"calls_per_s\": %.3f,\n  \"ops_per_s\": %.3f,\n  \"messages_per_s\": %.3f,\n",
            per_s(c->calls, d), per_s(c->ops, d), per_s(c->messages, d));
    fprintf(f, "  \"rate\": %.3f,\n  \"rate_unit\": \"%s\",\n",
            info->rate_in_msgs ? per_s(c->messages, d) : per_s(c->ops, d),
            info->rate_in_msgs ? "msgs/s" : "calls/s");
    fprintf(f, "  \"latency_us\": {\n    \"count\": %" PRIu64 ",\n", h->total);
    json_us(f, "min", h->total ? (double)h->min : 0, false);
    json_us(f, "mean", bench_hist_mean(h), false);
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++)
        json_us(f, pcts[i].name, (double)bench_hist_percentile(h, pcts[i].p), false);
    json_us(f, "max", (double)h->max, true);
    fprintf(f, "  },\n");
    fprintf(f,
            "  \"queued\": %" PRIu64 ",\n  \"max_queue\": %" PRIu64 ",\n  \"unstarted\": %" PRIu64
            ",\n",
            res->queued, res->max_queue, res->unstarted);
    double cpu = res->cpu_user_s + res->cpu_sys_s;
    fprintf(f, "  \"cpu\": {\"user_s\": %.3f, \"sys_s\": %.3f, \"utilization\": %.3f}\n}\n",
            res->cpu_user_s, res->cpu_sys_s, d > 0 ? cpu / d : 0);
}

int bench_report_json(const char *path, const bench_config *cfg, const bench_results *res)
{
    if (strcmp(path, "-") == 0) {
        write_json(stdout, cfg, res);
        return fflush(stdout) == 0 ? 0 : -1;
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    write_json(f, cfg, res);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        errno = e ? e : EIO;
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}
