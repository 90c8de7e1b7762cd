/* authn.c - credentials to principal (authn.h). */
#include "authn/authn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

static void reject_token(rpc_call *c, const char *why)
{
    char msg[AUTH_ERRLEN + 32];
    snprintf(msg, sizeof msg, "invalid bearer token: %s", why);
    rpc_call_reject(c, RPC_UNAUTHENTICATED, msg);
}

/* Verifies the bearer token of value[0..len) and attaches its principal. */
static void from_token(rpc_call *c, const authn_config *cfg, const uint8_t *value, size_t len)
{
    const char *tok;
    size_t toklen;
    if (auth_bearer_parse(value, len, &tok, &toklen) != 0) {
        rpc_call_reject(c, RPC_UNAUTHENTICATED,
                        "malformed authorization metadata: want \"Bearer <token>\"");
        return;
    }
    auth_keys *keys = cfg->keys ? auth_keys_slot_get(cfg->keys) : NULL;
    if (!keys) {
        rpc_call_reject(c, RPC_UNAUTHENTICATED, "bearer tokens are not accepted by this server");
        return;
    }
    auth_claims cl = {0};
    char why[AUTH_ERRLEN];
    /* Not time(): glibc serves it from a coarse clock that may still show the
     * previous second, and a token minted this second would read as issued
     * in the future (with --jwt-leeway 0). */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int rv = auth_jwt_verify(keys, tok, toklen, (int64_t)now.tv_sec, &cl, why, sizeof why);
    auth_keys_unref(keys);
    if (rv == AUTH_ENOMEM) {
        rpc_call_reject(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (rv != 0) {
        OMS_DEBUG("%s %s: bearer token refused: %s", rpc_call_peer(c), rpc_call_path(c), why);
        reject_token(c, why);
        return;
    }
    rpc_principal p = {
        .source = RPC_PRINCIPAL_TOKEN,
        .subject = cl.sub ? cl.sub : "",
        .customer_id = cl.customer_id,
        .scopes = cl.scopes,
        .n_scopes = cl.nscopes,
    };
    rv = rpc_call_set_principal(c, &p);
    auth_claims_dispose(&cl);
    if (rv != 0)
        rpc_call_reject(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

static rpc_intercept_action on_start(rpc_call *c, void *data, void **state)
{
    (void)state;
    const authn_config *cfg = data;
    if (authz_check(cfg->policy, rpc_call_path(c), NULL, NULL, 0) == AUTHZ_PUBLIC)
        return RPC_INTERCEPT_CONTINUE;
    size_t len;
    const rpc_metadata *md = rpc_call_metadata(c);
    const uint8_t *v = rpc_metadata_get(md, "authorization", &len);
    size_t n = 0;
    for (size_t i = 0; v && i < md->count; i++)
        n += strcmp(md->items[i].key, "authorization") == 0;
    if (n > 1) {
        /* Two credentials are ambiguous (a proxy may check one, we the
         * other): refused, whichever comes first. */
        rpc_call_reject(c, RPC_UNAUTHENTICATED, "more than one authorization header");
        return RPC_INTERCEPT_CONTINUE;
    }
    if (v) {
        from_token(c, cfg, v, len);
        return RPC_INTERCEPT_CONTINUE; /* ignored when it rejected */
    }
    const char *id = cfg->certs ? rpc_call_tls_identity(c) : NULL;
    if (id) {
        rpc_principal p;
        authz_cert_principal(cfg->policy, id, &p);
        if (rpc_call_set_principal(c, &p) != 0)
            rpc_call_reject(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return RPC_INTERCEPT_CONTINUE;
}

int authn_server_add(rpc_server *srv, const authn_config *cfg)
{
    if (!cfg || !cfg->policy)
        return RPC_EINVAL;
    static const rpc_interceptor ic = {.name = "authn", .on_start = on_start};
    return rpc_server_add_interceptor(srv, &ic, (void *)cfg);
}
