/* interceptor.c - the authorization interceptor: authz_check() on every
 * call, after authentication attached (or did not attach) a principal. */
#include <string.h>

#include "authz/authz.h"
#include "base/log.h"

static rpc_intercept_action on_start(rpc_call *c, void *data, void **state)
{
    (void)state;
    const authz_policy *p = data;
    const rpc_principal *pr = rpc_call_principal(c);
    char why[256];
    switch (authz_check(p, rpc_call_path(c), pr, why, sizeof why)) {
    case AUTHZ_PUBLIC:
        return RPC_INTERCEPT_CONTINUE;
    case AUTHZ_ALLOWED:
        if (pr->source == RPC_PRINCIPAL_CERT) {
            /* Handlers see the scopes the policy gives the certificate. */
            rpc_principal eff;
            authz_cert_principal(p, pr->subject, &eff);
            eff.customer_id = pr->customer_id;
            if (rpc_call_set_principal(c, &eff) != 0) {
                rpc_call_reject(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
                return RPC_INTERCEPT_CONTINUE;
            }
        }
        return RPC_INTERCEPT_CONTINUE;
    case AUTHZ_UNAUTHENTICATED:
        rpc_call_reject(c, RPC_UNAUTHENTICATED, why);
        return RPC_INTERCEPT_CONTINUE;
    case AUTHZ_DENIED:
    default:
        /* The path is the client's: quoted, as every echoed input. */
        OMS_DEBUG("authz: %s denied: %s", RPC_QUOTE(rpc_call_path(c), strlen(rpc_call_path(c))),
                  why);
        rpc_call_reject(c, RPC_PERMISSION_DENIED, why);
        return RPC_INTERCEPT_CONTINUE;
    }
}

static const rpc_interceptor authz_interceptor = {.name = "authz", .on_start = on_start};

int authz_server_add(rpc_server *srv, const authz_policy *p)
{
    return rpc_server_add_interceptor(srv, &authz_interceptor, (void *)p);
}
