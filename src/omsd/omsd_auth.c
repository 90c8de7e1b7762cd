/* omsd_auth.c - omsd's auth set-up (omsd_auth.h). */
#include "omsd/omsd_auth.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"

static auth_keys *load_keys(const omsd_auth_opts *o, char *err, size_t n)
{
    auth_keys_config kc = {
        .jwt_keys_file = o->jwt_keys,
        .secret_file = o->jwt_secret_file,
        .issuer = o->jwt_issuer,
        .audience = o->jwt_audience,
        .leeway_s = o->jwt_leeway,
    };
    return auth_keys_load(&kc, err, n);
}

int omsd_auth_open(omsd_auth *a, const omsd_auth_opts *o)
{
    memset(a, 0, sizeof *a);
    a->opts = *o;
    char err[512];
    bool tokens = o->jwt_keys || o->jwt_secret_file;
    a->on = tokens || o->client_certs;
    if (!a->on) {
        if (o->jwt_issuer || o->jwt_audience)
            OMS_WARN("--jwt-issuer/--jwt-audience have no effect without --jwt-keys or "
                     "--jwt-secret-file");
        OMS_WARN("authentication is off (no --jwt-keys, --jwt-secret-file or --client-ca): "
                 "every call is allowed");
        return 0;
    }
    if (tokens) {
        auth_keys *k = load_keys(o, err, sizeof err);
        if (!k) {
            fprintf(stderr, "omsd: JWT keys: %s\n", err);
            return -1;
        }
        OMS_INFO("bearer tokens: %zu public key(s)%s%s%s%s%s", auth_keys_count(k),
                 auth_keys_has_secret(k) ? ", an HS256 secret" : "",
                 o->jwt_issuer ? ", issuer " : "", o->jwt_issuer ? o->jwt_issuer : "",
                 o->jwt_audience ? ", audience " : "", o->jwt_audience ? o->jwt_audience : "");
        if (auth_keys_slot_init(&a->keys, k) != 0) {
            auth_keys_unref(k);
            fprintf(stderr, "omsd: out of memory\n");
            return -1;
        }
        a->slot_on = true;
    }
    a->authn = (authn_config){
        .keys = tokens ? &a->keys : NULL,
        .policy = o->policy,
        .certs = o->client_certs,
    };
    return 0;
}

int omsd_auth_attach(omsd_auth *a, const omsd_authz *z, rpc_server *srv)
{
    if (!a->on)
        return 0;
    if (authn_server_add(srv, &a->authn) != 0) {
        fprintf(stderr, "omsd: out of memory\n");
        return -1;
    }
    return omsd_authz_install(z, srv);
}

void omsd_auth_reload(omsd_auth *a)
{
    if (!a->slot_on)
        return;
    char err[512];
    auth_keys *k = load_keys(&a->opts, err, sizeof err);
    if (!k) {
        OMS_WARN("SIGHUP: JWT keys not reloaded, keeping the old ones: %s", err);
        return;
    }
    OMS_INFO("SIGHUP: JWT keys reloaded (%zu public key(s)%s)", auth_keys_count(k),
             auth_keys_has_secret(k) ? ", an HS256 secret" : "");
    auth_keys_slot_set(&a->keys, k);
}

void omsd_auth_close(omsd_auth *a)
{
    if (a->slot_on)
        auth_keys_slot_dispose(&a->keys);
    memset(a, 0, sizeof *a);
}
