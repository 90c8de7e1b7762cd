/* health.h - grpc.health.v1.Health (Check, Watch).
 *
 * An rpc_health holds a serving status per service name, "" standing for the
 * whole server. Check answers a known name with its status and an unknown one
 * with NOT_FOUND. Watch sends the current status at once (SERVICE_UNKNOWN for
 * a name not set, and the call stays open), then one message per change. A
 * watcher that cannot keep up is never queued more than one pending status:
 * while its stream is full only the latest status is remembered and sent when
 * the stream drains, so memory does not grow with the change rate.
 *
 * Threading: an rpc_health belongs to one loop. rpc_health_set() and
 * rpc_health_shutdown() must be called on the loop thread that runs the
 * Health calls (they send on the watching calls). Serving health from several
 * loops needs a per-loop object fed through uv_async_t; not done yet.
 */
#ifndef OMS_RPC_HEALTH_H
#define OMS_RPC_HEALTH_H

#include "rpc/rpc.h"
#include "base/export.h"

typedef struct rpc_health rpc_health;

/* The values of grpc.health.v1.HealthCheckResponse.ServingStatus. */
typedef enum rpc_health_status {
    RPC_HEALTH_SERVING = 1,
    RPC_HEALTH_NOT_SERVING = 2,
    RPC_HEALTH_SERVICE_UNKNOWN = 3, /* not set: Check says NOT_FOUND */
} rpc_health_status;

/* Creates a health registry with "" (the whole server) SERVING, as grpc-go
 * and gRPC C++ do. Returns NULL on ENOMEM. */
OMS_EXTERN rpc_health *rpc_health_new(void);

/* Frees h. Calls still open lose their link to it (watchers are detached
 * and get no more updates), but Check and Watch calls must not start after
 * this: free h after the server it was registered with. NULL is a no-op. */
OMS_EXTERN void rpc_health_free(rpc_health *h);

/* Sets the status of service (copied; "" for the whole server) and sends it
 * to every Watch call on that name whose last status differs.
 * RPC_HEALTH_SERVICE_UNKNOWN forgets the name (Check then answers NOT_FOUND).
 * After rpc_health_shutdown() changes are ignored and 0 is returned.
 * Loop thread only. Returns 0, RPC_EINVAL (NULL name or a status out of
 * range) or RPC_ENOMEM. */
OMS_EXTERN int rpc_health_set(rpc_health *h, const char *service, rpc_health_status status);

/* The status of service, RPC_HEALTH_SERVICE_UNKNOWN when not set. */
OMS_EXTERN rpc_health_status rpc_health_get(const rpc_health *h, const char *service);

/* Sets every known service NOT_SERVING (watchers are told) and ignores later
 * rpc_health_set() calls, so load balancers drain the server before it stops
 * (omsd calls this on SIGTERM, before the drain). Each Watch then ends with
 * UNAVAILABLE once its NOT_SERVING is out, so watchers do not hold their
 * connections open through the drain. Loop thread only. */
OMS_EXTERN void rpc_health_shutdown(rpc_health *h);

/* The Health service to pass to rpc_server_add_service(). The table belongs
 * to h and lives as long as h. */
OMS_EXTERN const rpc_service_impl *rpc_health_impl(rpc_health *h);

#endif
