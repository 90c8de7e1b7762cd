/* jwt.c - fuzz target: src/auth's JWT verifier and key loaders.
 *
 * Byte 0 % 4 picks what the rest of the input is:
 *  0  a token (and an Authorization value): auth_bearer_parse, then
 *     auth_jwt_verify against jwt/keys.pem (RSA, P-256, Ed25519 public keys)
 *     and jwt/secret (HS256), with issuer/audience checks when bit 2 is set;
 *  1  header JSON, a NUL, payload JSON (no NUL: the payload under
 *     {"alg":"HS256"}): signed here with the HS256 secret, so the claim
 *     checks behind the signature get fuzzed too;
 *  2  a keys file (PEM or JWKS) for auth_keys_load, through a memfd;
 *  3  base64url text: a strict decoder means what decodes re-encodes to
 *     exactly the input.
 * Invariants: a verified token is not expired and has an exp; a failure has
 * a reason that never holds 8 bytes of the token; verifying twice gives the
 * same answer. FUZZ_LOG=1 prints each verification's result.
 */
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "auth/auth_int.h"
#include "fuzz_check.h"

#define NOW 1800000000LL

static auth_keys *plain, *strict;
static uint8_t secret[256];
static size_t secret_len;

static void init(void)
{
    if (plain)
        return;
    auth_keys_config cfg = {.jwt_keys_file = OMS_FUZZ_DIR "/jwt/keys.pem",
                            .secret_file = OMS_FUZZ_DIR "/jwt/secret",
                            .leeway_s = -1};
    char err[AUTH_ERRLEN];
    plain = auth_keys_load(&cfg, err, sizeof err);
    cfg.issuer = "fuzz-iss";
    cfg.audience = "fuzz-aud";
    strict = auth_keys_load(&cfg, err, sizeof err);
    if (!plain || !strict) {
        fprintf(stderr, "fuzz: cannot load the keys: %s\n", err);
        abort();
    }
    FILE *f = fopen(OMS_FUZZ_DIR "/jwt/secret", "rb");
    CHECK(f);
    secret_len = fread(secret, 1, sizeof secret, f);
    fclose(f);
    while (secret_len && secret[secret_len - 1] == '\n')
        secret_len--;
}

static void check_verify(auth_keys *k, const char *tok, size_t len)
{
    auth_claims c, c2;
    char why[AUTH_ERRLEN] = "", why2[AUTH_ERRLEN] = "";
    int rv = auth_jwt_verify(k, tok, len, NOW, &c, why, sizeof why);
    int rv2 = auth_jwt_verify(k, tok, len, NOW, &c2, why2, sizeof why2);
    CHECK(rv == rv2);
    if (getenv("FUZZ_LOG"))
        fprintf(stderr, "fuzz: verify: %d %s\n", rv, rv ? why : "ok");
    if (rv == 0) {
        CHECK(c.exp >= NOW - AUTH_DEFAULT_LEEWAY);
        CHECK(c.nscopes <= AUTH_MAX_SCOPES);
        for (size_t i = 0; i < c.nscopes; i++)
            CHECK(c.scopes[i][0] != '\0');
        CHECK(!c.customer_id || c.customer_id[0] != '\0');
        auth_claims_dispose(&c);
        auth_claims_dispose(&c2);
        return;
    }
    CHECK(rv < 0 && why[0] != '\0' && strcmp(why, why2) == 0);
    CHECK(c.mem_ == NULL);
    for (size_t off = 0; off + 8 <= len; off++) {
        char win[9];
        memcpy(win, tok + off, 8);
        win[8] = '\0';
        if (strlen(win) == 8)
            CHECK(!strstr(why, win));
    }
}

static void fuzz_token(const uint8_t *p, size_t n, bool use_strict)
{
    const char *tok;
    size_t toklen;
    if (auth_bearer_parse(p, n, &tok, &toklen) == 0)
        CHECK(toklen > 0 && toklen <= n - 7 && tok == (const char *)p + 7);
    check_verify(use_strict ? strict : plain, (const char *)p, n);
}

static void fuzz_signed(const uint8_t *p, size_t n, bool use_strict)
{
    static const char dflt[] = "{\"alg\":\"HS256\"}";
    const uint8_t *nul = memchr(p, 0, n);
    const uint8_t *h = nul ? p : (const uint8_t *)dflt;
    size_t hl = nul ? (size_t)(nul - p) : sizeof dflt - 1;
    const uint8_t *pl = nul ? nul + 1 : p;
    size_t pll = nul ? n - hl - 1 : n;
    if (hl > AUTH_MAX_TOKEN || pll > AUTH_MAX_TOKEN)
        return;
    char *tok = malloc(auth__b64url_len(hl) + auth__b64url_len(pll) + 48);
    if (!tok)
        return;
    auth__b64url_encode(h, hl, tok);
    size_t at = strlen(tok);
    tok[at++] = '.';
    auth__b64url_encode(pl, pll, tok + at);
    at += strlen(tok + at);
    uint8_t mac[32];
    unsigned maclen = 0;
    CHECK(HMAC(EVP_sha256(), secret, (int)secret_len, (uint8_t *)tok, at, mac, &maclen));
    tok[at++] = '.';
    auth__b64url_encode(mac, 32, tok + at);
    check_verify(use_strict ? strict : plain, tok, strlen(tok));
    free(tok);
}

static void fuzz_keys_file(const uint8_t *p, size_t n)
{
    int fd = memfd_create("jwt-keys", 0);
    if (fd < 0)
        return;
    if (write(fd, p, n) == (ssize_t)n) {
        char path[64], err[AUTH_ERRLEN] = "";
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        auth_keys_config cfg = {.jwt_keys_file = path, .leeway_s = -1};
        auth_keys *k = auth_keys_load(&cfg, err, sizeof err);
        if (k) {
            CHECK(auth_keys_count(k) > 0);
            auth_keys_unref(k);
        } else {
            CHECK(err[0] != '\0');
        }
    }
    close(fd);
}

static void fuzz_b64(const uint8_t *p, size_t n)
{
    if (n > AUTH_MAX_TOKEN)
        return;
    uint8_t *out = malloc(n * 3 / 4 + 1);
    char *back = malloc(n + 2);
    if (out && back) {
        long m = auth__b64url_decode((const char *)p, n, out);
        if (m >= 0) {
            CHECK(auth__b64url_len((size_t)m) == n);
            auth__b64url_encode(out, (size_t)m, back);
            CHECK(memcmp(back, p, n) == 0);
        }
    }
    free(out);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size == 0)
        return 0;
    /* a copy of exactly the input, so ASan sees any over-read */
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, n);
    switch (data[0] % 4) {
    case 0:
        fuzz_token(p, n, data[0] & 4);
        break;
    case 1:
        fuzz_signed(p, n, data[0] & 4);
        break;
    case 2:
        fuzz_keys_file(p, n);
        break;
    case 3:
        fuzz_b64(p, n);
        break;
    }
    free(p);
    return 0;
}
