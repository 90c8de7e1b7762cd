/* services.h - the demo/benchmark services omsd serves, as rpc_service_impl
 * tables ready for rpc_server_add_service().
 *
 *  - grpc.testing.TestService: the gRPC interop suite's server side
 *    (grpc/grpc doc/interop-test-descriptions.md). UnimplementedService is
 *    deliberately not served: the interop suite expects it to be unknown.
 *  - oms.bench.v1.OrderBench: the benchmark contract of
 *    proto/oms/bench/v1/bench.proto, with its process-wide order map.
 *
 * The method tables are protoc-gen-omsrpc's typed server tables (X.omsrpc.h);
 * each service is an object made once at start-up. Its tables are read-only
 * afterwards, so one object may serve every loop of the server; the object
 * must outlive the rpc_server it was added to (free it after
 * rpc_server_free()). Typical wiring:
 *
 *     interop_service *is = interop_service_new();
 *     orderbench_service *bs = orderbench_service_new();
 *     if (!is || !bs) goto fail;
 *     rpc_server_add_service(srv, interop_test_service(is));
 *     rpc_server_add_service(srv, orderbench_service_impl(bs));
 */
#ifndef OMS_APP_SERVICES_H
#define OMS_APP_SERVICES_H

#include "rpc/rpc.h"

/* --- grpc.testing interop services -------------------------------------- */

typedef struct interop_service interop_service;

/* Creates the interop services. Returns NULL on ENOMEM, or if the generated
 * server table and protoc-c's descriptors disagree (a proto/code mismatch). */
interop_service *interop_service_new(void);
/* Frees s (NULL is fine). Only after the servers using it are freed. */
void interop_service_free(interop_service *s);

/* grpc.testing.TestService. Borrowed from s; valid until s is freed.
 * UnimplementedCall (and any method added to the proto later) answers
 * UNIMPLEMENTED. */
const rpc_service_impl *interop_test_service(const interop_service *s);

/* --- oms.bench.v1.OrderBench -------------------------------------------- */

typedef struct orderbench_service orderbench_service;

/* Creates the OrderBench service, owning the process-wide order map and id
 * counter (shared, under a mutex, by every loop serving it). Returns NULL on
 * ENOMEM or a proto/code mismatch. */
orderbench_service *orderbench_service_new(void);
/* Frees b and every stored order (NULL is fine). Only after the servers
 * using it are freed. */
void orderbench_service_free(orderbench_service *b);

/* The service table. Borrowed from b; valid until b is freed. */
const rpc_service_impl *orderbench_service_impl(const orderbench_service *b);

#endif
