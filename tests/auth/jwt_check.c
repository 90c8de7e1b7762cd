/* jwt_check.c - verifies one token with src/auth, for run_jwt_interop.py
 * (tokens minted by another implementation, PyJWT).
 *
 *   auth_jwt_check [--keys FILE] [--secret FILE] [--iss X] [--aud Y]
 *                  [--leeway N] [--now UNIX] TOKEN
 *
 * Prints "ok alg=.. sub=.. kid=.. customer=.. scopes=a,b exp=N" (exit 0),
 * "fail CODE why" (exit 1) or "load: reason" (exit 2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/jwt.h"

int main(int argc, char **argv)
{
    auth_keys_config cfg = {.leeway_s = -1};
    long long now = (long long)time(NULL);
    const char *tok = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--keys") == 0 && v)
            cfg.jwt_keys_file = argv[++i];
        else if (strcmp(a, "--secret") == 0 && v)
            cfg.secret_file = argv[++i];
        else if (strcmp(a, "--iss") == 0 && v)
            cfg.issuer = argv[++i];
        else if (strcmp(a, "--aud") == 0 && v)
            cfg.audience = argv[++i];
        else if (strcmp(a, "--leeway") == 0 && v)
            cfg.leeway_s = atoi(argv[++i]);
        else if (strcmp(a, "--now") == 0 && v)
            now = atoll(argv[++i]);
        else if (!tok && a[0] != '-')
            tok = a;
        else {
            fprintf(stderr,
                    "usage: %s [--keys F] [--secret F] [--iss X] [--aud Y] "
                    "[--leeway N] [--now T] TOKEN\n",
                    argv[0]);
            return 2;
        }
    }
    char err[AUTH_ERRLEN];
    auth_keys *k = auth_keys_load(&cfg, err, sizeof err);
    if (!k) {
        printf("load: %s\n", err);
        return 2;
    }
    if (!tok) {
        printf("load: ok %zu keys%s\n", auth_keys_count(k),
               auth_keys_has_secret(k) ? " +secret" : "");
        auth_keys_unref(k);
        return 0;
    }
    auth_claims c;
    int rv = auth_jwt_verify(k, tok, strlen(tok), now, &c, err, sizeof err);
    if (rv != 0) {
        printf("fail %d %s\n", rv, err);
    } else {
        printf("ok alg=%s sub=%s kid=%s customer=%s scopes=", c.alg, c.sub ? c.sub : "-",
               c.kid ? c.kid : "-", c.customer_id ? c.customer_id : "-");
        for (size_t i = 0; i < c.nscopes; i++)
            printf("%s%s", i ? "," : "", c.scopes[i]);
        printf(" exp=%lld\n", (long long)c.exp);
        auth_claims_dispose(&c);
    }
    auth_keys_unref(k);
    return rv == 0 ? 0 : 1;
}
