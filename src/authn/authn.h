/* authn.h - authentication: who is calling, as an rpc server interceptor.
 *
 * Turns the credentials a call carries into its rpc_principal:
 *  - a bearer token (`authorization: Bearer <JWT>`), verified against the
 *    keys in an auth_keys_slot (src/auth/jwt.h): subject, customer_id and
 *    scopes come from its claims;
 *  - else a verified TLS client certificate (rpc_call_tls_identity()), whose
 *    scopes the authorization policy gives (authz_cert_principal).
 * A token wins over a certificate: it is the narrower statement (a customer's
 * token sent over a service's mTLS connection acts for that customer only).
 *
 * Credentials that are present but bad (not "Bearer <token>", malformed,
 * badly signed, expired, not yet valid, wrong issuer or audience, unknown key)
 * end the call with UNAUTHENTICATED and a short reason that never contains the
 * token. A call without credentials goes on without a principal: the
 * authorization interceptor (authz.h), registered after this one, answers
 * UNAUTHENTICATED for methods that are not public. Public methods (health,
 * and reflection unless --reflection-auth) go on untouched, whatever
 * credentials they carry.
 *
 * Threading: the config is read-only and shared by every worker loop; the key
 * slot is swapped under its own lock (SIGHUP reload), and each verification
 * holds a reference to the keys it started with.
 */
#ifndef OMS_AUTHN_H
#define OMS_AUTHN_H

#include <stdbool.h>

#include "auth/jwt.h"
#include "authz/authz.h"
#include "rpc/rpc.h"

typedef struct authn_config {
    auth_keys_slot *keys;       /* token keys; NULL: bearer tokens are refused */
    const authz_policy *policy; /* public methods and certificate scopes */
    bool certs;                 /* verified client certificates are principals */
} authn_config;

/* Adds the authentication interceptor to srv's chain; register it before
 * authz_server_add(). cfg is borrowed and must outlive srv. Returns 0,
 * RPC_EINVAL (no policy) or RPC_ENOMEM. */
int authn_server_add(rpc_server *srv, const authn_config *cfg);

#endif
