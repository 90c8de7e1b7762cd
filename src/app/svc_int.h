/* svc_int.h - helpers shared by the service tables in src/app (not installed).
 */
#ifndef OMS_APP_SVC_INT_H
#define OMS_APP_SVC_INT_H

#include <stdlib.h>
#include <string.h>

#include "rpc/rpc.h"

/* A method implemented by a service file, by its name in the .proto. */
typedef struct svc_method {
    const char *name; /* "UnaryCall" */
    const rpc_method_ops *ops;
} svc_method;

/* Builds the ops array rpc_service_impl wants (ops[i] serves desc->methods[i])
 * by matching method names, so nothing depends on the order protoc-c emits.
 * Methods of desc missing from impl get NULL (UNIMPLEMENTED). Returns a
 * malloc'ed array (caller frees) or NULL on ENOMEM or when a name in impl is
 * not a method of desc. n may be 0 (all UNIMPLEMENTED). */
static inline const rpc_method_ops **svc__bind_methods(const ProtobufCServiceDescriptor *desc,
                                                       const svc_method *impl, size_t n)
{
    size_t slots = desc->n_methods ? desc->n_methods : 1;
    const rpc_method_ops **ops = calloc(slots, sizeof *ops);
    if (!ops)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        size_t i = 0;
        while (i < desc->n_methods && strcmp(desc->methods[i].name, impl[k].name) != 0)
            i++;
        if (i == desc->n_methods) {
            free(ops);
            return NULL;
        }
        ops[i] = impl[k].ops;
    }
    return ops;
}

/* Ends the call after rpc_call_send() failed with rc < 0. A cancelled call is
 * left alone; rpc_call_finish() is a no-op on a call that already ended. */
static inline void svc__send_failed(rpc_call *c, int rc)
{
    if (rc == RPC_ECANCELLED)
        return;
    if (rc == RPC_ETOOBIG)
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "response message too large");
    else
        rpc_call_finish(c, RPC_INTERNAL, "failed to send response");
}

#endif
