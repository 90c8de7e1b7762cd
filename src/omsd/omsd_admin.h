/* omsd's admin listener (--metrics-listen): GET /metrics (Prometheus text
 * 0.0.4), /healthz, /readyz over HTTP/1.1 (src/http1).
 *
 * It runs on the main thread's loop, which otherwise only waits for signals:
 * a scrape (rendering reads every worker's counters with relaxed atomic
 * loads, and /proc) never runs on, or waits for, a worker loop, and a slow or
 * hostile admin client cannot delay a call. */
#ifndef OMSD_ADMIN_H
#define OMSD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "metrics/metrics.h"

typedef struct omsd_admin omsd_admin;

typedef struct omsd_admin_config {
    const char *host;
    int port;
    oms_metrics *metrics; /* borrowed; may be NULL */
    /* Appends more families to a scrape (transport, store...); may be NULL. */
    void (*collect)(void *arg, oms_mtext *t);
    /* Whether the process serves: false writes a reason (e.g. "draining")
     * into why (size n) and /readyz answers 503 with it. */
    bool (*ready)(void *arg, char *why, size_t n);
    void *arg;
} omsd_admin_config;

/* Listens on loop. Returns 0 with *out, or -1 with err. */
int omsd_admin_open(uv_loop_t *loop, const omsd_admin_config *cfg, omsd_admin **out, char *err,
                    size_t errlen);
int omsd_admin_port(const omsd_admin *a);
/* Stops listening and frees a (once its handles closed). NULL: no-op. */
void omsd_admin_close(omsd_admin *a);

#endif
