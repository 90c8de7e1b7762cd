/* omsd_authz.c - omsd's authorization set-up (omsd_authz.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omsd/omsd_authz.h"
#include "base/log.h"

int omsd_authz_load(omsd_authz *z)
{
    char err[512];
    z->policy = z->policy_file
                    ? authz_policy_load(z->policy_file, z->reflection_auth, err, sizeof err)
                    : authz_policy_default(z->reflection_auth, err, sizeof err);
    if (!z->policy) {
        fprintf(stderr, "omsd: %s\n", err);
        return -1;
    }
    if (z->policy_file)
        OMS_INFO("authorization policy %s: rules: %zu", z->policy_file,
                 authz_policy_rule_count(z->policy));
    return 0;
}

/* The first UNCOVERED_MAX uncovered paths (borrowed from the server). */
#define UNCOVERED_MAX 64

typedef struct uncovered {
    const char *paths[UNCOVERED_MAX];
    size_t n;
} uncovered;

static void on_uncovered(const char *path, void *arg)
{
    uncovered *u = arg;
    if (u->n < UNCOVERED_MAX)
        u->paths[u->n++] = path;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void omsd_authz_log_uncovered(const omsd_authz *z, const rpc_server *srv)
{
    uncovered u = {.n = 0};
    size_t n = authz_policy_uncovered(z->policy, srv, on_uncovered, &u);
    if (!n)
        return;
    qsort(u.paths, u.n, sizeof u.paths[0], cmp_path);
    char list[2048];
    size_t len = 0;
    for (size_t i = 0; i < u.n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? " " : "", u.paths[i]);
    OMS_WARN("authorization policy %s: %zu registered methods have no rule (denied whenever "
             "authentication is on): %s%s",
             z->policy_file ? z->policy_file : "(default)", n, list,
             n > u.n || len >= sizeof list ? " ..." : "");
}

int omsd_authz_install(const omsd_authz *z, rpc_server *srv)
{
    if (authz_server_add(srv, z->policy) != 0) {
        fprintf(stderr, "omsd: cannot add the authorization interceptor (out of memory)\n");
        return -1;
    }
    return 0;
}

void omsd_authz_dispose(omsd_authz *z)
{
    authz_policy_free(z->policy);
    z->policy = NULL;
}
