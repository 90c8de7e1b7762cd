/* omsd's own metric families beyond the gRPC ones: transport (http2), store
 * writer and order-event hub, rendered from counters the layers keep. */
#ifndef OMSD_METRICS_H
#define OMSD_METRICS_H

#include "http2/http2.h"
#include "metrics/metrics.h"
#include "orders/orders.h"
#include "store/store.h"

/* Sums n servers' counters (s[i], closed_by[i], h1[i]: http2_server_get_stats,
 * http2_server_get_closed_by and http2_server_get_http1_stats of server i)
 * into the oms_http2_* / oms_http1_* / oms_tls_* families. */
void omsd_metrics_transport(oms_mtext *t, const http2_server_stats *s,
                            const uint64_t (*closed_by)[HTTP2_CLOSE_REASONS],
                            const http2_http1_stats *h1, size_t n);
/* The oms_store_* families. */
void omsd_metrics_store(oms_mtext *t, const store_stats *s);
/* The oms_events_* families from n loops' hub statistics. */
void omsd_metrics_events(oms_mtext *t, const orders_loop_stats *s, size_t n);

#endif
