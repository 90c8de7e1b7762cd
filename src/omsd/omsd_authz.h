/* omsd_authz.h - omsd's authorization set-up: the policy chosen by
 * --authz-policy / --reflection-auth, loaded once at start and shared
 * (read-only) by every worker's rpc server. */
#ifndef OMS_APP_OMSD_AUTHZ_H
#define OMS_APP_OMSD_AUTHZ_H

#include <stdbool.h>

#include "authz/authz.h"

typedef struct omsd_authz {
    const char *policy_file; /* --authz-policy FILE, or NULL: the default policy */
    bool reflection_auth;    /* --reflection-auth */
    authz_policy *policy;    /* loaded by omsd_authz_load */
} omsd_authz;

/* Loads the policy file (or the default policy). On error prints
 * "omsd: FILE:LINE: why" to stderr and returns -1 (omsd exits 2); 0 on
 * success (a file's rule count is logged). */
int omsd_authz_load(omsd_authz *z);

/* Logs, once at start, the methods registered on srv (a worker's server,
 * services added) that the policy does not cover: each is denied to every
 * caller while authentication is on. */
void omsd_authz_log_uncovered(const omsd_authz *z, const rpc_server *srv);

/* Adds the authorization interceptor to a worker's rpc server. Only when
 * authentication is on, right after the authentication interceptor (which
 * attaches the principal). Returns 0, or -1 with a message printed. */
int omsd_authz_install(const omsd_authz *z, rpc_server *srv);

/* Frees the policy (after every worker's server is freed). */
void omsd_authz_dispose(omsd_authz *z);

#endif
