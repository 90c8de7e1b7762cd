/* Transport, store and event-hub metric families (see omsd_metrics.h). */
#include <stdio.h>
#include <string.h>

#include "omsd/omsd_metrics.h"

static void one(oms_mtext *t, const char *name, const char *type, const char *help, double v)
{
    oms_mtext_family(t, name, type, help);
    oms_mtext_sample(t, name, NULL, v);
}

void omsd_metrics_transport(oms_mtext *t, const http2_server_stats *s,
                            const uint64_t (*closed_by)[HTTP2_CLOSE_REASONS],
                            const http2_http1_stats *h1, size_t n)
{
    uint64_t by[HTTP2_CLOSE_REASONS] = {0};
    http2_http1_stats h1sum = {0};
    http2_server_stats sum;
    memset(&sum, 0, sizeof sum);
    for (size_t i = 0; i < n; i++) {
        sum.accepted += s[i].accepted;
        sum.refused += s[i].refused;
        sum.closed += s[i].closed;
        sum.streams_opened += s[i].streams_opened;
        sum.streams_closed += s[i].streams_closed;
        for (size_t k = 0; k < HTTP2_GOAWAY_CODES; k++)
            sum.goaway_sent[k] += s[i].goaway_sent[k];
        sum.tls_handshakes += s[i].tls_handshakes;
        sum.tls_failures += s[i].tls_failures;
        sum.bytes_in += s[i].bytes_in;
        sum.bytes_out += s[i].bytes_out;
        for (size_t k = 0; k < HTTP2_CLOSE_REASONS; k++)
            by[k] += closed_by[i][k];
        h1sum.connections += h1[i].connections;
        h1sum.requests += h1[i].requests;
        h1sum.refused += h1[i].refused;
    }
    one(t, "oms_http2_connections_accepted_total", "counter",
        "Connections accepted within the connection cap (HTTP/2 and HTTP/1.1).",
        (double)sum.accepted);
    one(t, "oms_http2_connections_refused_total", "counter",
        "Connections closed at once because the connection cap was reached.", (double)sum.refused);
    oms_mtext_family(
        t, "oms_http2_connections_closed_total", "counter",
        "Connections closed, by reason (refused ones included, as limit; HTTP/1.1: peer "
        "for EOF or Connection: close, idle for keep-alive, protocol_error after a "
        "refused request, keepalive_timeout for the header timeout).");
    for (int k = 0; k < HTTP2_CLOSE_REASONS; k++) {
        const char *labels[] = {"reason", http2_close_reason_name(k), NULL};
        oms_mtext_sample(t, "oms_http2_connections_closed_total", labels, (double)by[k]);
    }
    uint64_t open = sum.accepted + sum.refused;
    one(t, "oms_http2_connections_open", "gauge", "Connections open now.",
        (double)(open > sum.closed ? open - sum.closed : 0));
    one(t, "oms_http2_streams_total", "counter",
        "Request streams opened by clients (an HTTP/1.1 request is one).",
        (double)sum.streams_opened);
    one(t, "oms_http2_streams_open", "gauge", "Request streams open now.",
        (double)(sum.streams_opened > sum.streams_closed ? sum.streams_opened - sum.streams_closed
                                                         : 0));
    oms_mtext_family(t, "oms_http2_goaway_sent_total", "counter",
                     "GOAWAY frames sent, by HTTP/2 error code.");
    for (uint32_t k = 0; k < HTTP2_GOAWAY_CODES; k++)
        if (sum.goaway_sent[k] || k == 0) {
            const char *labels[] = {"error_code", http2_error_name(k), NULL};
            oms_mtext_sample(t, "oms_http2_goaway_sent_total", labels, (double)sum.goaway_sent[k]);
        }
    one(t, "oms_tls_handshakes_total", "counter", "TLS handshakes completed (ALPN h2 or http/1.1).",
        (double)sum.tls_handshakes);
    one(t, "oms_tls_handshake_failures_total", "counter",
        "TLS handshakes that failed (bad certificate, no ALPN h2, garbage).",
        (double)sum.tls_failures);
    one(t, "oms_http1_connections_total", "counter",
        "Connections that spoke HTTP/1.1 (ALPN http/1.1, or a request line in cleartext).",
        (double)h1sum.connections);
    one(t, "oms_http1_requests_total", "counter", "HTTP/1.1 requests handed to the handlers.",
        (double)h1sum.requests);
    one(t, "oms_http1_refused_total", "counter",
        "HTTP/1.1 requests refused by the transport (400, 405, 408, 413, 431), then closed.",
        (double)h1sum.refused);
    one(t, "oms_http2_received_bytes_total", "counter",
        "Bytes read from gRPC connections (TLS records included).", (double)sum.bytes_in);
    one(t, "oms_http2_sent_bytes_total", "counter",
        "Bytes written to gRPC connections (TLS records included).", (double)sum.bytes_out);
}

/* A histogram from non-cumulative bucket counts; total: observations. */
static void histogram(oms_mtext *t, const char *name, const char *help, const uint64_t *bounds,
                      const uint64_t *counts, size_t nb, double scale, uint64_t total, double sum)
{
    char n[128], le[32];
    oms_mtext_family(t, name, "histogram", help);
    snprintf(n, sizeof n, "%s_bucket", name);
    uint64_t cum = 0;
    for (size_t i = 0; i < nb; i++) {
        cum += counts[i];
        snprintf(le, sizeof le, "%g", (double)bounds[i] * scale);
        oms_mtext_sample_extra(t, n, NULL, "le", le, (double)cum);
    }
    if (total < cum)
        total = cum;
    oms_mtext_sample_extra(t, n, NULL, "le", "+Inf", (double)total);
    snprintf(n, sizeof n, "%s_sum", name);
    oms_mtext_sample(t, n, NULL, sum);
    snprintf(n, sizeof n, "%s_count", name);
    oms_mtext_sample(t, n, NULL, (double)total);
}

void omsd_metrics_store(oms_mtext *t, const store_stats *s)
{
    histogram(t, "oms_store_commit_seconds",
              "Time in COMMIT (the fsync) per store transaction, seconds.", store_commit_bounds_us,
              s->commit_hist, STORE_COMMIT_BUCKETS, 1e-6, s->commits, (double)s->commit_us / 1e6);
    histogram(t, "oms_store_batch_size", "Write requests per store transaction.",
              store_batch_bounds, s->batch_hist, STORE_BATCH_BUCKETS, 1, s->batches,
              (double)s->batch_requests);
    one(t, "oms_store_queue_depth", "gauge", "Write requests waiting for the store writer.",
        (double)s->queued);
    one(t, "oms_store_transaction_failures_total", "counter",
        "Store transactions that failed and were rolled back.", (double)s->failed);
    one(t, "oms_store_available", "gauge",
        "1 unless the latest store transaction failed (/readyz: 503 for 30 s after).",
        s->last_failed ? 0 : 1);
}

void omsd_metrics_events(oms_mtext *t, const orders_loop_stats *s, size_t n)
{
    orders_loop_stats sum;
    memset(&sum, 0, sizeof sum);
    for (size_t i = 0; i < n; i++) {
        sum.subscribers += s[i].subscribers;
        sum.live += s[i].live;
        sum.sent += s[i].sent;
        sum.store_reads += s[i].store_reads;
        sum.ring_restarts += s[i].ring_restarts;
        for (size_t k = 0; k < ORDERS_LAG_BUCKETS; k++)
            sum.lag_hist[k] += s[i].lag_hist[k];
        sum.lag_count += s[i].lag_count;
        sum.lag_sum_ms += s[i].lag_sum_ms;
    }
    oms_mtext_family(t, "oms_events_subscribers", "gauge",
                     "WatchOrders subscribers by state (sampled each second).");
    const char *live[] = {"state", "live", NULL};
    const char *catching[] = {"state", "catching_up", NULL};
    oms_mtext_sample(t, "oms_events_subscribers", live, (double)sum.live);
    oms_mtext_sample(t, "oms_events_subscribers", catching,
                     (double)(sum.subscribers > sum.live ? sum.subscribers - sum.live : 0));
    one(t, "oms_events_sent_total", "counter", "Order events handed to WatchOrders streams.",
        (double)sum.sent);
    one(t, "oms_events_store_reads_total", "counter",
        "Store reads by subscribers catching up (behind the in-memory ring).",
        (double)sum.store_reads);
    one(t, "oms_events_ring_restarts_total", "counter",
        "Times a loop's event ring restarted (inbox overflow or a lost publish).",
        (double)sum.ring_restarts);
    histogram(t, "oms_events_delivery_lag_seconds",
              "Order events: store transaction (ms clock) to handed to a WatchOrders stream, "
              "seconds (sampled each second).",
              orders_lag_bounds_ms, sum.lag_hist, ORDERS_LAG_BUCKETS, 1e-3, sum.lag_count,
              (double)sum.lag_sum_ms / 1e3);
}
