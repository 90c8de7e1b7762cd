/* policy.c - the authorization policy: the line parser, the default policy,
 * and the check of a method path against a principal's scopes.
 *
 * Parsing keeps each directive's words; finish() then interns the scope names
 * (sorted, so a principal's scope is found by binary search), closes the
 * imply graph (bitsets, Warshall) and gives each method rule the set of
 * scopes it accepts: its own and every scope that implies one of them. A
 * check is then a binary search for the rule and one per principal scope.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"
#include "base/alloc.h"

enum { D_METHOD, D_PUBLIC, D_PRINCIPAL, D_IMPLY };

static const char *const directive_names[] = {
    [D_METHOD] = "method", [D_PUBLIC] = "public", [D_PRINCIPAL] = "principal", [D_IMPLY] = "imply"};

/* One directive line. name: the pattern, principal or implying scope. */
typedef struct dir {
    int kind;
    unsigned line;
    char *name;
    char **words; /* scopes */
    size_t nwords;
} dir;

/* A method or public rule, sorted by pattern ("/svc/Method", or "/svc/" and a star). */
typedef struct rule {
    const char *pattern;
    const dir *d;
    uint64_t *accept; /* bitset over policy scope ids; NULL for public rules */
} rule;

/* A named mTLS principal, sorted by name. */
typedef struct principal {
    const char *name;
    const dir *d;
} principal;

struct authz_policy {
    dir *dirs;
    size_t ndirs, dircap;
    rule *rules;
    size_t nrules;
    principal *principals;
    size_t nprincipals;
    char **scopes; /* distinct scope names, sorted; borrowed from dirs */
    size_t nscopes;
    size_t words; /* uint64_t words per bitset */
    bool reflection_auth;
};

#define HEALTH_PREFIX "/grpc.health.v1.Health/"
#define REFL_V1       "/grpc.reflection.v1.ServerReflection/"
#define REFL_V1ALPHA  "/grpc.reflection.v1alpha.ServerReflection/"

static const char default_policy[] =
    "# issue 12's default policy (docs/AUTHZ-POLICY.md)\n"
    "method /oms.v1.OrderService/GetOrder orders:read\n"
    "method /oms.v1.OrderService/ListOrders orders:read\n"
    "method /oms.v1.OrderService/WatchOrders orders:read\n"
    "method /oms.v1.OrderService/TrackOrders orders:read\n"
    "method /oms.v1.OrderService/CreateOrder orders:write\n"
    "method /oms.v1.OrderService/CancelOrder orders:write\n"
    "method /oms.v1.OrderService/ImportOrders orders:write\n"
    "method /oms.v1.OrderService/UpdateOrderStatus orders:admin\n"
    "imply orders:admin orders:read orders:write\n"
    "method /oms.v1.InventoryService/GetProduct inventory:read\n"
    "method /oms.v1.InventoryService/ListProducts inventory:read\n"
    "method /oms.v1.InventoryService/UpsertProduct inventory:write\n"
    "method /oms.v1.InventoryService/AdjustStock inventory:write\n"
    "method /oms.v1.InventoryService/Reserve inventory:write\n"
    "method /oms.v1.InventoryService/Release inventory:write\n"
    "method /oms.v1.CustomerService/GetCustomer customers:read\n"
    "method /oms.v1.CustomerService/ListCustomers customers:read\n"
    "method /oms.v1.CustomerService/CreateCustomer customers:write\n"
    "method /oms.v1.CustomerService/SetCustomerStatus customers:write\n"
    "method /grpc.testing.TestService/* test\n"
    "method /oms.bench.v1.OrderBench/* bench\n"
    "public /grpc.health.v1.Health/*\n"
    "# used only with --reflection-auth; reflection is public otherwise\n"
    "method /grpc.reflection.v1.ServerReflection/* reflection\n"
    "method /grpc.reflection.v1alpha.ServerReflection/* reflection\n";

/* --- errors ----------------------------------------------------------------- */

typedef struct parser {
    authz_policy *p;
    const char *name;
    unsigned line;
    char *err;
    size_t errlen;
} parser;

static int fail(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(parser *ps, const char *fmt, ...)
{
    if (!ps->err || !ps->errlen)
        return -1;
    int n = ps->line ? snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, ps->line)
                     : snprintf(ps->err, ps->errlen, "%s: ", ps->name);
    if (n >= 0 && (size_t)n < ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* --- lexical rules -------------------------------------------------------------- */

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        unsigned cp = c & (0x3Fu >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* OAuth 2.0 scope-token characters (RFC 6749 3.3), '#' left out: it starts a
 * comment here. */
static bool scope_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AUTHZ_MAX_SCOPE_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7E || c == '"' || c == '\\' || c == '#')
            return false;
    }
    return true;
}

static bool ident_char(char c, bool dot)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (dot && c == '.');
}

/* "/pkg.Service/Method", or "/pkg.Service/" and a star (every method). */
static bool pattern_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 4 || n > AUTHZ_MAX_NAME_LEN || s[0] != '/')
        return false;
    const char *slash = strchr(s + 1, '/');
    if (!slash || slash == s + 1 || s[1] == '.' || slash[-1] == '.')
        return false;
    for (const char *q = s + 1; q < slash; q++)
        if (!ident_char(*q, true) || (q[0] == '.' && q[1] == '.'))
            return false;
    const char *m = slash + 1;
    if (strcmp(m, "*") == 0)
        return true;
    if (!*m)
        return false;
    for (; *m; m++)
        if (!ident_char(*m, false))
            return false;
    return true;
}

/* A certificate identity: printable ASCII without spaces or '#'. */
static bool principal_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AUTHZ_MAX_NAME_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7E || s[i] == '#')
            return false;
    return true;
}

/* --- parsing ---------------------------------------------------------------------- */

static void dir_dispose(dir *d)
{
    oms_free(d->name);
    for (size_t i = 0; i < d->nwords; i++)
        oms_free(d->words[i]);
    oms_free(d->words);
}

void authz_policy_free(authz_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ndirs; i++)
        dir_dispose(&p->dirs[i]);
    oms_free(p->dirs);
    for (size_t i = 0; i < p->nrules; i++)
        oms_free(p->rules[i].accept);
    oms_free(p->rules);
    oms_free(p->principals);
    oms_free(p->scopes);
    oms_free(p);
}

size_t authz_policy_rule_count(const authz_policy *p)
{
    return p->ndirs;
}

/* The earlier directive of the same kind group and name, or NULL. Method and
 * public rules share one namespace (a pattern is either). */
static const dir *find_dup(const authz_policy *p, int kind, const char *name)
{
    for (size_t i = 0; i < p->ndirs; i++) {
        const dir *d = &p->dirs[i];
        bool same_group = (d->kind == kind) || ((d->kind == D_METHOD || d->kind == D_PUBLIC) &&
                                                (kind == D_METHOD || kind == D_PUBLIC));
        if (same_group && strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

/* Splits line (NUL-terminated, comment removed) into words at spaces/tabs. */
static size_t split(char *line, char **w, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (n == max)
            return max + 1;
        w[n++] = t;
    }
    return n;
}

static int parse_line(parser *ps, char *line)
{
    authz_policy *p = ps->p;
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    char *w[AUTHZ_MAX_LINE_WORDS + 2];
    size_t n = split(line, w, AUTHZ_MAX_LINE_WORDS + 2);
    if (n == 0)
        return 0;
    if (n > AUTHZ_MAX_LINE_WORDS + 2)
        return fail(ps, "more than %d scopes on one line", AUTHZ_MAX_LINE_WORDS);
    int kind = -1;
    for (int k = 0; k < 4; k++)
        if (strcmp(w[0], directive_names[k]) == 0)
            kind = k;
    if (kind < 0)
        return fail(ps, "unknown directive \"%s\" (method, public, principal or imply)",
                    RPC_QUOTE(w[0], strlen(w[0])));
    if (n < 2)
        return fail(ps, "%s: missing its %s", w[0],
                    kind == D_PRINCIPAL ? "name"
                    : kind == D_IMPLY   ? "scope"
                                        : "pattern");
    const char *name = w[1];
    switch (kind) {
    case D_METHOD:
    case D_PUBLIC:
        if (!pattern_ok(name))
            return fail(ps,
                        "bad pattern \"%s\" (want /package.Service/Method or /package.Service/*)",
                        RPC_QUOTE(name, strlen(name)));
        if (kind == D_METHOD && n < 3)
            return fail(ps, "method %s: no scope given (use public for no scope)", name);
        if (kind == D_PUBLIC && n > 2)
            return fail(ps, "public %s: takes no scopes", name);
        break;
    case D_PRINCIPAL:
        if (!principal_name_ok(name))
            return fail(ps, "bad principal name \"%s\"", RPC_QUOTE(name, strlen(name)));
        break;
    case D_IMPLY:
        if (!scope_ok(name))
            return fail(ps, "bad scope \"%s\"", RPC_QUOTE(name, strlen(name)));
        if (n < 3)
            return fail(ps, "imply %s: implies nothing", name);
        break;
    }
    for (size_t i = 2; i < n; i++) {
        if (!scope_ok(w[i]))
            return fail(ps, "bad scope \"%s\"", RPC_QUOTE(w[i], strlen(w[i])));
        if (kind == D_IMPLY && strcmp(w[i], name) == 0)
            return fail(ps, "imply %s: a scope cannot imply itself", name);
        for (size_t j = 2; j < i; j++)
            if (strcmp(w[i], w[j]) == 0)
                return fail(ps, "scope %s given twice", w[i]);
    }
    const dir *dup = find_dup(p, kind, name);
    if (dup)
        return fail(ps, "duplicate %s %s (first at line %u)", directive_names[kind], name,
                    dup->line);
    if (p->ndirs == AUTHZ_MAX_RULES)
        return fail(ps, "more than %d directives", AUTHZ_MAX_RULES);
    if (kind == D_IMPLY) {
        size_t nimply = 0;
        for (size_t i = 0; i < p->ndirs; i++)
            nimply += p->dirs[i].kind == D_IMPLY;
        if (nimply == AUTHZ_MAX_IMPLY)
            return fail(ps, "more than %d imply lines", AUTHZ_MAX_IMPLY);
    }
    if (p->ndirs == p->dircap) {
        size_t cap = p->dircap ? p->dircap * 2 : 32;
        dir *d = oms_realloc(p->dirs, cap * sizeof *d);
        if (!d)
            return fail(ps, "out of memory");
        p->dirs = d;
        p->dircap = cap;
    }
    dir *d = &p->dirs[p->ndirs];
    *d = (dir){.kind = kind, .line = ps->line};
    d->name = oms_strdup(name);
    d->words = n > 2 ? oms_calloc(n - 2, sizeof *d->words) : NULL;
    if (!d->name || (n > 2 && !d->words)) {
        dir_dispose(d);
        return fail(ps, "out of memory");
    }
    p->ndirs++; /* from here on, freed with the policy */
    for (size_t i = 2; i < n; i++) {
        if (!(d->words[i - 2] = oms_strdup(w[i])))
            return fail(ps, "out of memory");
        d->nwords++;
    }
    return 0;
}

/* --- finishing: scope ids, implication closure, sorted tables -------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_rule(const void *a, const void *b)
{
    return strcmp(((const rule *)a)->pattern, ((const rule *)b)->pattern);
}

static int cmp_principal(const void *a, const void *b)
{
    return strcmp(((const principal *)a)->name, ((const principal *)b)->name);
}

/* The id of scope s, or -1 when no directive names it. */
static long scope_id(const authz_policy *p, const char *s)
{
    char *const *hit =
        p->nscopes ? bsearch(&s, p->scopes, p->nscopes, sizeof *p->scopes, cmp_str) : NULL;
    return hit ? (long)(hit - p->scopes) : -1;
}

static void bit_set(uint64_t *b, long i)
{
    b[i / 64] |= 1ull << (i % 64);
}

static bool bit_get(const uint64_t *b, long i)
{
    return (b[i / 64] >> (i % 64)) & 1u;
}

static int finish(parser *ps)
{
    authz_policy *p = ps->p;
    ps->line = 0;
    /* Every scope named anywhere, sorted and deduplicated. */
    size_t total = 0;
    for (size_t i = 0; i < p->ndirs; i++)
        total += p->dirs[i].nwords + (p->dirs[i].kind == D_IMPLY);
    if (total) {
        p->scopes = oms_calloc(total, sizeof *p->scopes);
        if (!p->scopes)
            return fail(ps, "out of memory");
    }
    for (size_t i = 0; i < p->ndirs; i++) {
        const dir *d = &p->dirs[i];
        if (d->kind == D_IMPLY)
            p->scopes[p->nscopes++] = d->name;
        for (size_t j = 0; j < d->nwords; j++)
            p->scopes[p->nscopes++] = d->words[j];
    }
    if (p->nscopes)
        qsort(p->scopes, p->nscopes, sizeof *p->scopes, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < p->nscopes; i++)
        if (u == 0 || strcmp(p->scopes[u - 1], p->scopes[i]) != 0)
            p->scopes[u++] = p->scopes[i];
    p->nscopes = u;
    if (p->nscopes > AUTHZ_MAX_SCOPES)
        return fail(ps, "more than %d distinct scopes", AUTHZ_MAX_SCOPES);
    p->words = (p->nscopes + 63) / 64;
    if (p->words == 0)
        p->words = 1;

    /* reach[i]: the scopes imply line i's scope implies, transitively. */
    size_t nimply = 0;
    for (size_t i = 0; i < p->ndirs; i++)
        nimply += p->dirs[i].kind == D_IMPLY;
    const dir **imp = nimply ? oms_calloc(nimply, sizeof *imp) : NULL;
    uint64_t *reach = nimply ? oms_calloc(nimply * p->words, sizeof *reach) : NULL;
    long *src = nimply ? oms_calloc(nimply, sizeof *src) : NULL;
    if (nimply && (!imp || !reach || !src)) {
        oms_free(imp);
        oms_free(reach);
        oms_free(src);
        return fail(ps, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < p->ndirs; i++)
        if (p->dirs[i].kind == D_IMPLY)
            imp[k++] = &p->dirs[i];
    for (size_t i = 0; i < nimply; i++) {
        src[i] = scope_id(p, imp[i]->name);
        for (size_t j = 0; j < imp[i]->nwords; j++)
            bit_set(reach + i * p->words, scope_id(p, imp[i]->words[j]));
    }
    /* Warshall: whoever reaches j's scope reaches all j reaches. */
    for (size_t j = 0; j < nimply; j++)
        for (size_t i = 0; i < nimply; i++)
            if (bit_get(reach + i * p->words, src[j]))
                for (size_t w = 0; w < p->words; w++)
                    reach[i * p->words + w] |= reach[j * p->words + w];

    /* Method and public rules, sorted by pattern, each with what it accepts. */
    size_t nrules = 0, nprinc = 0;
    for (size_t i = 0; i < p->ndirs; i++) {
        nrules += p->dirs[i].kind == D_METHOD || p->dirs[i].kind == D_PUBLIC;
        nprinc += p->dirs[i].kind == D_PRINCIPAL;
    }
    p->rules = nrules ? oms_calloc(nrules, sizeof *p->rules) : NULL;
    p->principals = nprinc ? oms_calloc(nprinc, sizeof *p->principals) : NULL;
    int rv = 0;
    if ((nrules && !p->rules) || (nprinc && !p->principals)) {
        rv = fail(ps, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->ndirs && rv == 0; i++) {
        const dir *d = &p->dirs[i];
        if (d->kind == D_PRINCIPAL) {
            p->principals[p->nprincipals++] = (principal){.name = d->name, .d = d};
            continue;
        }
        if (d->kind != D_METHOD && d->kind != D_PUBLIC)
            continue;
        rule *r = &p->rules[p->nrules++];
        r->pattern = d->name;
        r->d = d;
        if (d->kind == D_PUBLIC)
            continue;
        if (!(r->accept = oms_calloc(p->words, sizeof *r->accept))) {
            rv = fail(ps, "out of memory");
            break;
        }
        for (size_t j = 0; j < d->nwords; j++)
            bit_set(r->accept, scope_id(p, d->words[j]));
        for (size_t x = 0; x < nimply; x++)
            for (size_t j = 0; j < d->nwords; j++)
                if (bit_get(reach + x * p->words, scope_id(p, d->words[j])))
                    bit_set(r->accept, src[x]);
    }
    if (rv == 0) {
        if (p->nrules)
            qsort(p->rules, p->nrules, sizeof *p->rules, cmp_rule);
        if (p->nprincipals)
            qsort(p->principals, p->nprincipals, sizeof *p->principals, cmp_principal);
    }
out:
    oms_free(imp);
    oms_free(reach);
    oms_free(src);
    return rv;
}

authz_policy *authz_policy_parse(const char *name, const char *text, size_t len,
                                 bool reflection_auth, char *err, size_t errlen)
{
    parser ps = {.name = name ? name : "policy", .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (len > AUTHZ_MAX_FILE) {
        fail(&ps, "larger than %u bytes", AUTHZ_MAX_FILE);
        return NULL;
    }
    if (!(ps.p = oms_calloc(1, sizeof *ps.p))) {
        fail(&ps, "out of memory");
        return NULL;
    }
    ps.p->reflection_auth = reflection_auth;
    char buf[AUTHZ_MAX_LINE + 1];
    size_t pos = 0;
    while (pos < len) {
        ps.line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *s = text + pos;
        pos += n + (nl != NULL);
        if (n > AUTHZ_MAX_LINE) {
            fail(&ps, "line longer than %d bytes", AUTHZ_MAX_LINE);
            goto fail;
        }
        if (memchr(s, '\0', n)) {
            fail(&ps, "NUL byte");
            goto fail;
        }
        if (!utf8_ok((const unsigned char *)s, n)) {
            fail(&ps, "invalid UTF-8");
            goto fail;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        /* Outside comments only printable ASCII and blanks are meaningful. */
        for (size_t i = 0; i < n && buf[i] != '#'; i++) {
            unsigned char c = (unsigned char)buf[i];
            if ((c < 0x20 && c != '\t' && c != '\r') || c >= 0x7F) {
                fail(&ps, "unexpected byte 0x%02x outside a comment", c);
                goto fail;
            }
        }
        if (parse_line(&ps, buf) != 0)
            goto fail;
    }
    if (finish(&ps) != 0)
        goto fail;
    return ps.p;
fail:
    authz_policy_free(ps.p);
    return NULL;
}

authz_policy *authz_policy_default(bool reflection_auth, char *err, size_t errlen)
{
    return authz_policy_parse("<default policy>", default_policy, sizeof default_policy - 1,
                              reflection_auth, err, errlen);
}

authz_policy *authz_policy_load(const char *path, bool reflection_auth, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = oms_malloc(AUTHZ_MAX_FILE + 1);
    if (!text) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    size_t len = fread(text, 1, AUTHZ_MAX_FILE + 1, f);
    bool bad = ferror(f);
    fclose(f);
    authz_policy *p = NULL;
    if (bad)
        snprintf(err, errlen, "%s: read error", path);
    else
        p = authz_policy_parse(path, text, len, reflection_auth, err, errlen);
    oms_free(text);
    return p;
}

/* --- checking -------------------------------------------------------------------- */

static const rule *find_rule(const authz_policy *p, const char *pattern)
{
    rule key = {.pattern = pattern};
    return p->nrules ? bsearch(&key, p->rules, p->nrules, sizeof *p->rules, cmp_rule) : NULL;
}

/* The rule for path: its own, else its service's wildcard; NULL if none. */
static const rule *rule_for(const authz_policy *p, const char *path)
{
    const rule *r = find_rule(p, path);
    if (r)
        return r;
    const char *slash = strrchr(path, '/');
    char key[AUTHZ_MAX_NAME_LEN + 2];
    size_t n = slash ? (size_t)(slash - path) + 1 : 0;
    if (!slash || slash == path || n + 2 > sizeof key)
        return NULL;
    memcpy(key, path, n);
    key[n] = '*';
    key[n + 1] = '\0';
    return find_rule(p, key);
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

void authz_cert_principal(const authz_policy *p, const char *identity, rpc_principal *out)
{
    *out = (rpc_principal){.source = RPC_PRINCIPAL_CERT, .subject = identity};
    principal key = {.name = identity};
    const principal *hit =
        p->nprincipals && identity
            ? bsearch(&key, p->principals, p->nprincipals, sizeof *p->principals, cmp_principal)
            : NULL;
    if (hit) {
        out->scopes = (const char *const *)hit->d->words;
        out->n_scopes = hit->d->nwords;
    } else {
        out->all_scopes = true;
    }
}

static void say(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t n, const char *fmt, ...)
{
    if (!why || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

authz_decision authz_check(const authz_policy *p, const char *path, const rpc_principal *pr,
                           char *why, size_t n)
{
    if (why && n)
        why[0] = '\0';
    if (has_prefix(path, HEALTH_PREFIX))
        return AUTHZ_PUBLIC;
    if (!p->reflection_auth && (has_prefix(path, REFL_V1) || has_prefix(path, REFL_V1ALPHA)))
        return AUTHZ_PUBLIC;
    const rule *r = rule_for(p, path);
    if (r && r->d->kind == D_PUBLIC)
        return AUTHZ_PUBLIC;
    if (!pr) {
        say(why, n, "authentication required");
        return AUTHZ_UNAUTHENTICATED;
    }
    if (!r) {
        say(why, n, "method not covered by the authorization policy");
        return AUTHZ_DENIED;
    }
    rpc_principal narrowed;
    if (pr->source == RPC_PRINCIPAL_CERT) {
        authz_cert_principal(p, pr->subject, &narrowed);
        pr = &narrowed;
    }
    if (pr->all_scopes)
        return AUTHZ_ALLOWED;
    for (size_t i = 0; i < pr->n_scopes; i++) {
        long id = pr->scopes[i] ? scope_id(p, pr->scopes[i]) : -1;
        if (id >= 0 && bit_get(r->accept, id))
            return AUTHZ_ALLOWED;
    }
    if (why && n) {
        size_t off = (size_t)snprintf(why, n, "missing scope ");
        for (size_t i = 0; i < r->d->nwords && off < n; i++)
            off += (size_t)snprintf(why + off, n - off, "%s%s", i ? " or " : "", r->d->words[i]);
    }
    return AUTHZ_DENIED;
}

typedef struct uncovered_ctx {
    const authz_policy *p;
    void (*cb)(const char *path, void *arg);
    void *arg;
    size_t count;
} uncovered_ctx;

static void on_method(const char *path, void *arg)
{
    uncovered_ctx *u = arg;
    /* Built-in public methods are covered whatever the rules say. */
    if (authz_check(u->p, path, NULL, NULL, 0) == AUTHZ_PUBLIC || rule_for(u->p, path))
        return;
    u->count++;
    if (u->cb)
        u->cb(path, u->arg);
}

size_t authz_policy_uncovered(const authz_policy *p, const rpc_server *srv,
                              void (*cb)(const char *path, void *arg), void *arg)
{
    uncovered_ctx u = {.p = p, .cb = cb, .arg = arg};
    rpc_server_each_method(srv, on_method, &u);
    return u.count;
}
