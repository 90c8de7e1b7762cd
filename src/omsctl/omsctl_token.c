/* omsctl_token.c - `omsctl token`: mints a development JWT with a local key
 * (src/auth's signer). No server is involved: the token goes to stdout for
 * --token/OMS_TOKEN or `grpcurl -H "authorization: Bearer ..."`.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omsctl/omsctl.h"
#include "auth/jwt.h"

#define MAX_TTL_S (366LL * 24 * 3600)

/* "3600", "45s", "30m", "1h", "2d": seconds in (0, MAX_TTL_S]. Returns 0 or -1. */
static int parse_ttl(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0)
        return -1;
    long long mul = 1;
    switch (*end) {
    case 'd':
        mul = 86400;
        end++;
        break;
    case 'h':
        mul = 3600;
        end++;
        break;
    case 'm':
        mul = 60;
        end++;
        break;
    case 's':
        end++;
        break;
    }
    if (*end != '\0' || v > MAX_TTL_S / mul)
        return -1;
    *out = v * mul;
    return 0;
}

int omsctl_cmd_token(omsctl *ctl, int argc, char **argv)
{
    enum { KEY, ALG, SUB, SCOPE, CUSTOMER, TTL, ISS, AUD, KID, N };
    static const char *const names[N] = {"--key", "--alg", "--sub", "--scope", "--customer",
                                         "--ttl", "--iss", "--aud", "--kid"};
    const char *v[N] = {0};
    int npos, rc;
    if ((rc = omsctl_parse_args("token", argc, argv, 1, names, v, N, &npos)) != 0)
        return rc;
    if (npos > 0)
        return omsctl_usage_error("token", "unexpected argument '%s'", argv[1]);
    if (!v[KEY])
        return omsctl_usage_error("token", "--key FILE is required");
    if (!v[SUB] || !*v[SUB])
        return omsctl_usage_error("token", "--sub NAME is required");
    auth_alg alg = AUTH_ALG_DEFAULT;
    if (v[ALG] && auth_alg_parse(v[ALG], &alg) != 0)
        return omsctl_usage_error("token", "--alg must be RS256, ES256, EdDSA or HS256");
    int64_t ttl = 3600;
    if (v[TTL] && parse_ttl(v[TTL], &ttl) != 0)
        return omsctl_usage_error("token", "bad --ttl '%s' (e.g. 3600, 30m, 1h, 7d; at most 366d)",
                                  v[TTL]);
    if (v[CUSTOMER] && !*v[CUSTOMER])
        return omsctl_usage_error("token", "--customer must not be empty");

    char err[AUTH_ERRLEN];
    auth_signer *s = auth_signer_load(v[KEY], alg, err, sizeof err);
    if (!s) {
        fprintf(stderr, "omsctl: %s\n", err);
        return OMSCTL_EXIT_USAGE;
    }
    int64_t now = (int64_t)time(NULL);
    auth_token_params p = {.sub = v[SUB],
                           .scope = v[SCOPE],
                           .customer_id = v[CUSTOMER],
                           .iss = v[ISS],
                           .aud = v[AUD],
                           .kid = v[KID],
                           .iat = now,
                           .exp = now + ttl};
    char *tok = NULL;
    rc = auth_jwt_sign(s, &p, &tok, err, sizeof err);
    auth_signer_free(s);
    if (rc != 0) {
        fprintf(stderr, "omsctl: %s\n", err);
        return OMSCTL_EXIT_USAGE;
    }
    if (ctl->json) {
        printf("{\"token\":");
        omsctl_json_str(stdout, tok);
        printf(",\"expires_at\":%lld}\n", (long long)p.exp);
    } else {
        printf("%s\n", tok);
    }
    free(tok);
    return OMSCTL_EXIT_OK;
}
