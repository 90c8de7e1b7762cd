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
#include "omsd/omsd_authz.h"
#include "authz/authz.h"
#include "rpc/rpc.h"

typedef struct omsd_auth_opts {
    const char *jwt_keys;        /* --jwt-keys FILE (PEM public keys or JWKS) */
    const char *jwt_secret_file; /* --jwt-secret-file FILE (HS256) */
    const char *jwt_issuer;      /* --jwt-issuer */
    const char *jwt_audience;    /* --jwt-audience */
    int jwt_leeway;              /* --jwt-leeway SECONDS; < 0: default 30 */
    const authz_policy *policy;  /* omsd_authz's (borrowed; outlives the servers) */
    bool client_certs;           /* --client-ca given: certificates are principals */
} omsd_auth_opts;

typedef struct omsd_auth {
    omsd_auth_opts opts;
    bool on;
    bool slot_on;
    auth_keys_slot keys;
    authn_config authn;
} omsd_auth;

/* Loads the token keys. Returns 0, or -1 with a message printed to stderr. */
int omsd_auth_open(omsd_auth *a, const omsd_auth_opts *o);
/* Registers, when auth is on, the authentication interceptor and then z's
 * authorization one on srv (before it serves). Returns 0 or -1 (printed). */
int omsd_auth_attach(omsd_auth *a, const omsd_authz *z, rpc_server *srv);
/* SIGHUP: re-reads the token keys; a bad file keeps the old keys and logs why. */
void omsd_auth_reload(omsd_auth *a);
void omsd_auth_close(omsd_auth *a);

#endif
