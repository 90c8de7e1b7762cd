/* metrics - Prometheus metrics of the gRPC server and client calls, on rpc
 * interceptors, and the text exposition format (0.0.4).
 *
 * Counting never takes a lock: every loop (worker) counts into its own
 * block, with relaxed atomic loads and stores (one writer per block: a plain
 * add on x86-64 and arm64); a scrape, from any thread, reads every block with
 * relaxed loads and sums them. A scrape may so see one call's counters
 * half-updated (started but not yet handled), never torn values.
 *
 *     oms_metrics *m = oms_metrics_new(nloops);
 *     oms_metrics_add_server_method(m, "/pkg.Svc/Method", type); // every method served
 *     oms_metrics_add_client_method(m, "/pkg.Peer/Call");   // every method called
 *     oms_metrics_start(m);                                 // tables fixed from here
 *     oms_metrics_attach_server(m, i, loop_i_server);        // per loop i
 *     oms_metrics_attach_channel(m, i, loop_i_channel);
 *     ... oms_metrics_render(m, &text) from any thread ...
 *
 * Labels are go-grpc-middleware's (grpc_type, grpc_service, grpc_method,
 * grpc_code). A path no table holds (a client calling random names) counts as
 * grpc_service="unknown", grpc_method="unknown", grpc_type="unknown": label
 * sets stay bounded by the methods registered. A server method added with its
 * type (rpc_server_method_type) is in the output from the start with zero
 * values (grpc_server_handled_total with grpc_code="OK"), so that dashboards
 * and alerts see it before its first call; one added with RPC_CALL_UNKNOWN,
 * and the "unknown" row, appear once called (the type is learnt from the
 * call). Client methods appear once called, with the type of the call
 * (rpc_client_call_type). A program on libomsrpc counts its own calls the
 * same way (nloops 1, oms_metrics_attach_channel on its channel) and renders
 * the text wherever it serves or logs it (examples/hello/client.c --metrics).
 */
#ifndef OMS_METRICS_H
#define OMS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/export.h"
#include "rpc/rpc.h"
#include "rpc/rpc_client.h"

typedef struct oms_metrics oms_metrics;

/* An exposition text being built (oms_mtext_*). */
typedef struct oms_mtext {
    char *buf;
    size_t len, cap;
    int failed; /* an allocation failed: the text is incomplete */
} oms_mtext;

/* nloops blocks. NULL on ENOMEM. */
OMS_EXTERN oms_metrics *oms_metrics_new(size_t nloops);
OMS_EXTERN void oms_metrics_free(oms_metrics *m);

/* Before oms_metrics_start only. path "/pkg.Service/Method" (copied); type:
 * an rpc_call_type (its series start at zero), or RPC_CALL_UNKNOWN (the
 * method shows once called). Returns 0, -1 on ENOMEM or a malformed path
 * (ignored duplicates: 0). */
OMS_EXTERN int oms_metrics_add_server_method(oms_metrics *m, const char *path, int type);
OMS_EXTERN int oms_metrics_add_client_method(oms_metrics *m, const char *path);
/* Fixes the tables and allocates the blocks. Returns 0 or -1 (ENOMEM). */
OMS_EXTERN int oms_metrics_start(oms_metrics *m);

/* Adds the counting interceptor to srv / ch, counting into block i (the
 * block of the loop srv / ch runs on). Returns 0 or an rpc error code. */
OMS_EXTERN int oms_metrics_attach_server(oms_metrics *m, size_t i, rpc_server *srv);
OMS_EXTERN int oms_metrics_attach_channel(oms_metrics *m, size_t i, rpc_channel *ch);

/* Appends the grpc_server_* and grpc_client_* families to t. Any thread. */
OMS_EXTERN void oms_metrics_render(oms_metrics *m, oms_mtext *t);

/* Appends the process_* families (Linux /proc) and oms_build_info to t.
 * start_time: process start, Unix seconds. */
OMS_EXTERN void oms_metrics_render_process(oms_mtext *t, double start_time, const char *version,
                                           const char *commit);

/* --- exposition text ---------------------------------------------------- */

/* # HELP and # TYPE lines (type: counter, gauge, histogram). */
OMS_EXTERN void oms_mtext_family(oms_mtext *t, const char *name, const char *type,
                                 const char *help);
/* One sample: name{labels} value. labels is a NULL-terminated list of
 * key, value pairs (values escaped as the format wants: \\, \", \n); may be
 * NULL. A value that is a whole number prints without a fraction. */
OMS_EXTERN void oms_mtext_sample(oms_mtext *t, const char *name, const char *const *labels,
                                 double value);
/* The same, with one more label pair appended (le for histograms). */
OMS_EXTERN void oms_mtext_sample_extra(oms_mtext *t, const char *name, const char *const *labels,
                                       const char *key, const char *val, double value);
OMS_EXTERN void oms_mtext_dispose(oms_mtext *t);

#endif
