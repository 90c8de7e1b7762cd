/* omsd_auth.h - omsd's authentication and authorization set-up.
 *
 * Auth is on when bearer-token keys (--jwt-keys, --jwt-secret-file) or a
 * client CA (--client-ca) are given; then every worker's rpc server gets the
 * authentication interceptor (authn.h) followed by the authorization one
 * (authz.h), and keys reload on SIGHUP. Otherwise omsd logs one warning that
 * every call is allowed, and registers neither.
 */
#ifndef OMS_APP_OMSD_AUTH_H
#define OMS_APP_OMSD_AUTH_H

#include <stdbool.h>

#include "auth/jwt.h"
#include "authn/authn.h"
#include "authz/authz.h"
#include "rpc/rpc.h"

typedef struct omsd_auth_opts {
    const char *jwt_keys;        /* --jwt-keys FILE (PEM public keys or JWKS) */
    const char *jwt_secret_file; /* --jwt-secret-file FILE (HS256) */
    const char *jwt_issuer;      /* --jwt-issuer */
    const char *jwt_audience;    /* --jwt-audience */
    int jwt_leeway;              /* --jwt-leeway SECONDS; < 0: default 30 */
    const char *policy_file;     /* --authz-policy FILE; NULL: the default policy */
    bool reflection_auth;        /* --reflection-auth */
    bool client_certs;           /* --client-ca given: certificates are principals */
} omsd_auth_opts;

typedef struct omsd_auth {
    omsd_auth_opts opts;
    bool on;
    bool slot_on;
    auth_keys_slot keys;
    authz_policy *policy;
    authn_config authn;
} omsd_auth;

/* Loads keys and policy (the policy file is checked even with auth off).
 * Returns 0, or -1 with a message printed to stderr. */
int omsd_auth_open(omsd_auth *a, const omsd_auth_opts *o);
/* Registers the interceptors on srv when auth is on (before it serves), and
 * logs the registered methods no policy rule covers (first worker only:
 * log_uncovered). Returns 0 or -1 (out of memory, printed). */
int omsd_auth_attach(omsd_auth *a, rpc_server *srv, bool log_uncovered);
/* SIGHUP: re-reads the token keys; a bad file keeps the old keys and logs why. */
void omsd_auth_reload(omsd_auth *a);
void omsd_auth_close(omsd_auth *a);

#endif
