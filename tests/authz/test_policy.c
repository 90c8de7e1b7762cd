/* The policy: parsing (good and every kind of bad line), matching, implication
 * and certificate principals. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"
#include "base/alloc.h"

static char err[512];

static authz_policy *parse(const char *text)
{
    return authz_policy_parse("p.txt", text, strlen(text), false, err, sizeof err);
}

/* The text must fail with an error that starts with want. */
static void bad(const char *text, const char *want)
{
    authz_policy *p = parse(text);
    cr_assert_null(p, "accepted: %s", text);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "error \"%s\", want \"%s...\"", err, want);
}

static rpc_principal token(const char *const *scopes, size_t n)
{
    return (rpc_principal){
        .source = RPC_PRINCIPAL_TOKEN, .subject = "alice", .scopes = scopes, .n_scopes = n};
}

static authz_decision check(const authz_policy *p, const char *path, const char *scope)
{
    const char *s[1] = {scope};
    rpc_principal pr = token(s, scope ? 1 : 0);
    return authz_check(p, path, &pr, NULL, 0);
}

Test(authz_policy, good_file_all_directives)
{
    authz_policy *p = parse("# a comment\n"
                            "\n"
                            "   \t  \n"
                            "method /oms.v1.OrderService/GetOrder orders:read  # trailing\n"
                            "method\t/oms.v1.OrderService/*\torders:write other\r\n"
                            "public /x.Ping/*\n"
                            "principal spiffe://oms.local/service/orders inventory:write\n"
                            "principal cn-without-scopes\n"
                            "imply orders:admin orders:read orders:write\n"
                            "# UTF-8 in a comment is fine: café\n"
                            "method /a.B/C x"); /* no final newline */
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(authz_policy_rule_count(p), 7);
    authz_policy_free(p);
}

Test(authz_policy, empty_file_denies_everything_but_builtins)
{
    authz_policy *p = parse("");
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(check(p, "/oms.v1.OrderService/GetOrder", "orders:read"), AUTHZ_DENIED);
    cr_assert_eq(check(p, "/grpc.health.v1.Health/Check", NULL), AUTHZ_PUBLIC);
    cr_assert_eq(check(p, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", NULL),
                 AUTHZ_PUBLIC);
    authz_policy_free(p);
}

Test(authz_policy, bad_lines_name_file_and_line)
{
    bad("method /a.B/C x\nallow /a.B/C x\n", "p.txt:2: unknown directive \"allow\"");
    bad("method\n", "p.txt:1: method: missing its pattern");
    bad("method /a.B/C\n", "p.txt:1: method /a.B/C: no scope given");
    bad("public /a.B/C x\n", "p.txt:1: public /a.B/C: takes no scopes");
    bad("imply a\n", "p.txt:1: imply a: implies nothing");
    bad("imply a a\n", "p.txt:1: imply a: a scope cannot imply itself");
    bad("principal\n", "p.txt:1: principal: missing its name");
    bad("METHOD /a.B/C x\n", "p.txt:1: unknown directive");
    /* patterns */
    const char *pats[] = {"a.B/C", "/a.B",   "/a.B/",   "//C",     "/a.B/C/D", "/a..B/C",
                          "/.a/C", "/a./C",  "/a.B/C*", "/a.B/**", "/a-b/C",   "/a.B/C.d",
                          "/*/C",  "/a B/C", "*",       "/a.B/C?", "/a.B/-"};
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "method %s x\n", pats[i]);
        authz_policy *p = parse(text);
        cr_assert_null(p, "pattern %s accepted", pats[i]);
    }
    bad("method /a.B/C x\"y\n", "p.txt:1: bad scope");
    bad("method /a.B/C x\\y\n", "p.txt:1: bad scope");
    bad("method /a.B/C a b a\n", "p.txt:1: scope a given twice");
    /* duplicates, across method and public too */
    bad("method /a.B/C x\nmethod /a.B/C y\n", "p.txt:2: duplicate method /a.B/C (first at line 1)");
    bad("public /a.B/*\nmethod /a.B/* y\n", "p.txt:2: duplicate method /a.B/* (first at line 1)");
    bad("principal n a\nprincipal n b\n", "p.txt:2: duplicate principal n");
    bad("imply a b\nimply a c\n", "p.txt:2: duplicate imply a");
    /* bytes */
    bad("method /a.B/C x\x01\n", "p.txt:1: unexpected byte 0x01");
    bad("method /a.B/C x\x7f\n", "p.txt:1: unexpected byte 0x7f");
    bad("method /a.B/C caf\xc3\xa9\n", "p.txt:1: unexpected byte 0xc3");
    bad("# ok\n# \xc3\x28 bad\n", "p.txt:2: invalid UTF-8");
    bad("# \xed\xa0\x80 surrogate\n", "p.txt:1: invalid UTF-8");
    bad("# \xc0\xaf overlong\n", "p.txt:1: invalid UTF-8");
    bad("# \xf4\x90\x80\x80 too big\n", "p.txt:1: invalid UTF-8");
    bad("# \xe2\x82 cut", "p.txt:1: invalid UTF-8");
    authz_policy *p =
        authz_policy_parse("p.txt", "method /a.B/C x\0y\n", 18, false, err, sizeof err);
    cr_assert_null(p);
    cr_assert_str_eq(err, "p.txt:1: NUL byte");
}

Test(authz_policy, bounds)
{
    /* a line over the limit */
    size_t n = AUTHZ_MAX_LINE + 40;
    char *text = malloc(n + 1);
    memset(text, ' ', n);
    memcpy(text, "method /a.B/C x", 15);
    text[n] = '\0';
    bad(text, "p.txt:1: line longer than 1024 bytes");
    free(text);
    /* too many scopes on a line */
    char line[1024] = "method /a.B/C";
    for (int i = 0; i < AUTHZ_MAX_LINE_WORDS + 1; i++)
        snprintf(line + strlen(line), sizeof line - strlen(line), " s%d", i);
    bad(line, "p.txt:1: more than 32 scopes on one line");
    /* a scope too long */
    char longscope[300] = "method /a.B/C ";
    memset(longscope + strlen(longscope), 'x', AUTHZ_MAX_SCOPE_LEN + 1);
    bad(longscope, "p.txt:1: bad scope");
    /* too many directives: a huge file, one rule a line */
    size_t cap = (AUTHZ_MAX_RULES + 2) * 40;
    text = malloc(cap);
    size_t off = 0;
    for (int i = 0; i < AUTHZ_MAX_RULES + 1; i++)
        off += (size_t)snprintf(text + off, cap - off, "method /s.S/M%d x\n", i);
    authz_policy *p = authz_policy_parse("p.txt", text, off, false, err, sizeof err);
    cr_assert_null(p);
    cr_assert(strstr(err, ":4097: more than 4096 directives"), "%s", err);
    /* exactly at the limit is fine, and checks still work */
    off = 0;
    for (int i = 0; i < AUTHZ_MAX_RULES; i++)
        off += (size_t)snprintf(text + off, cap - off, "method /s.S/M%d x%d\n", i, i % 1000);
    p = authz_policy_parse("p.txt", text, off, false, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(check(p, "/s.S/M4095", "x95"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/s.S/M4095", "x96"), AUTHZ_DENIED);
    authz_policy_free(p);
    free(text);
    /* a file over AUTHZ_MAX_FILE: of comments only */
    size_t big = AUTHZ_MAX_FILE + 1;
    text = malloc(big);
    for (size_t i = 0; i < big; i++)
        text[i] = (i % 100 == 99) ? '\n' : '#';
    p = authz_policy_parse("p.txt", text, big, false, err, sizeof err);
    cr_assert_null(p);
    cr_assert_str_eq(err, "p.txt: larger than 1048576 bytes");
    /* ... and just under it parses */
    p = authz_policy_parse("p.txt", text, big - 1, false, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    authz_policy_free(p);
    free(text);
    /* too many imply lines */
    cap = (AUTHZ_MAX_IMPLY + 2) * 32;
    text = malloc(cap);
    off = 0;
    for (int i = 0; i < AUTHZ_MAX_IMPLY + 1; i++)
        off += (size_t)snprintf(text + off, cap - off, "imply a%d a%d\n", i, i + 1);
    p = authz_policy_parse("p.txt", text, off, false, err, sizeof err);
    cr_assert_null(p);
    cr_assert(strstr(err, ":257: more than 256 imply lines"), "%s", err);
    free(text);
}

Test(authz_policy, too_many_distinct_scopes)
{
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    size_t off = 0;
    for (int i = 0; i < 40; i++) { /* 40 lines x 30 scopes = 1200 > 1024 */
        off += (size_t)snprintf(text + off, cap - off, "method /s.S/M%d", i);
        for (int j = 0; j < 30; j++)
            off += (size_t)snprintf(text + off, cap - off, " s%d", i * 30 + j);
        text[off++] = '\n';
    }
    authz_policy *p = authz_policy_parse("p.txt", text, off, false, err, sizeof err);
    cr_assert_null(p);
    cr_assert_str_eq(err, "p.txt: more than 1024 distinct scopes");
    free(text);
}

Test(authz_policy, load_file_errors)
{
    authz_policy *p = authz_policy_load("/nonexistent/policy", false, err, sizeof err);
    cr_assert_null(p);
    cr_assert_str_eq(err, "/nonexistent/policy: No such file or directory");
    char path[] = "/tmp/authz_test_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("method /a.B/C x\nbogus\n", f);
    fclose(f);
    p = authz_policy_load(path, false, err, sizeof err);
    cr_assert_null(p);
    char want[128];
    snprintf(want, sizeof want, "%s:2: unknown directive \"bogus\"", path);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    f = fopen(path, "w");
    fputs("method /a.B/C x\n", f);
    fclose(f);
    p = authz_policy_load(path, false, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    authz_policy_free(p);
    unlink(path);
}

Test(authz_policy, matching_exact_wildcard_public_unknown)
{
    authz_policy *p = parse("method /s.S/* read\n"
                            "method /s.S/Write write\n"
                            "public /s.S/Ping\n"
                            "public /pub.P/*\n");
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(check(p, "/s.S/Get", "read"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/s.S/Get", "write"), AUTHZ_DENIED);
    /* the exact rule wins over the wildcard */
    cr_assert_eq(check(p, "/s.S/Write", "write"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/s.S/Write", "read"), AUTHZ_DENIED);
    cr_assert_eq(check(p, "/s.S/Ping", NULL), AUTHZ_PUBLIC);
    cr_assert_eq(authz_check(p, "/s.S/Ping", NULL, NULL, 0), AUTHZ_PUBLIC);
    cr_assert_eq(authz_check(p, "/pub.P/Anything", NULL, NULL, 0), AUTHZ_PUBLIC);
    /* not covered: denied, even with every scope */
    char why[128];
    rpc_principal all = {.source = RPC_PRINCIPAL_TOKEN, .subject = "x", .all_scopes = true};
    cr_assert_eq(authz_check(p, "/other.O/M", &all, why, sizeof why), AUTHZ_DENIED);
    cr_assert_str_eq(why, "method not covered by the authorization policy");
    /* a prefix of a service is not the service */
    cr_assert_eq(check(p, "/s.SS/Get", "read"), AUTHZ_DENIED);
    cr_assert_eq(check(p, "/s/Get", "read"), AUTHZ_DENIED);
    cr_assert_eq(check(p, "", "read"), AUTHZ_DENIED);
    cr_assert_eq(check(p, "/", "read"), AUTHZ_DENIED);
    cr_assert_eq(check(p, "/s.S/*", "read"), AUTHZ_ALLOWED); /* a literal path "*": the wildcard */
    /* no principal */
    cr_assert_eq(authz_check(p, "/s.S/Get", NULL, why, sizeof why), AUTHZ_UNAUTHENTICATED);
    cr_assert_str_eq(why, "authentication required");
    cr_assert_eq(authz_check(p, "/other.O/M", NULL, why, sizeof why), AUTHZ_UNAUTHENTICATED);
    /* the message names the scope */
    const char *s[] = {"nope"};
    rpc_principal pr = token(s, 1);
    cr_assert_eq(authz_check(p, "/s.S/Write", &pr, why, sizeof why), AUTHZ_DENIED);
    cr_assert_str_eq(why, "missing scope write");
    /* a long path does not overflow anything */
    char longpath[2048];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[1000] = '/';
    longpath[sizeof longpath - 1] = '\0';
    cr_assert_eq(check(p, longpath, "read"), AUTHZ_DENIED);
    authz_policy_free(p);
}

Test(authz_policy, any_of_several_scopes)
{
    authz_policy *p = parse("method /s.S/M a b\n");
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(check(p, "/s.S/M", "a"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/s.S/M", "b"), AUTHZ_ALLOWED);
    char why[64];
    const char *s[] = {"c", "d"};
    rpc_principal pr = token(s, 2);
    cr_assert_eq(authz_check(p, "/s.S/M", &pr, why, sizeof why), AUTHZ_DENIED);
    cr_assert_str_eq(why, "missing scope a or b");
    /* a message buffer too small is cut, not overrun */
    char tiny[8];
    cr_assert_eq(authz_check(p, "/s.S/M", &pr, tiny, sizeof tiny), AUTHZ_DENIED);
    cr_assert_str_eq(tiny, "missing");
    authz_policy_free(p);
}

Test(authz_policy, implication_transitive)
{
    authz_policy *p = parse("method /s.S/R r\n"
                            "method /s.S/W w\n"
                            "method /s.S/A admin\n"
                            "imply super admin\n" /* declared before admin's: order is free */
                            "imply admin r w\n");
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(check(p, "/s.S/R", "admin"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/s.S/W", "admin"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/s.S/A", "admin"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/s.S/R", "super"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/s.S/A", "super"), AUTHZ_ALLOWED);
    /* not backwards */
    cr_assert_eq(check(p, "/s.S/A", "r"), AUTHZ_DENIED);
    cr_assert_eq(check(p, "/s.S/W", "r"), AUTHZ_DENIED);
    authz_policy_free(p);
    /* a cycle is harmless */
    p = parse("method /s.S/R r\nimply a b\nimply b a r\n");
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(check(p, "/s.S/R", "a"), AUTHZ_ALLOWED);
    authz_policy_free(p);
}

Test(authz_policy, default_policy_table)
{
    authz_policy *p = authz_policy_default(false, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    static const struct {
        const char *method, *scope;
    } table[] = {
        {"/oms.v1.OrderService/GetOrder", "orders:read"},
        {"/oms.v1.OrderService/ListOrders", "orders:read"},
        {"/oms.v1.OrderService/WatchOrders", "orders:read"},
        {"/oms.v1.OrderService/TrackOrders", "orders:read"},
        {"/oms.v1.OrderService/CreateOrder", "orders:write"},
        {"/oms.v1.OrderService/CancelOrder", "orders:write"},
        {"/oms.v1.OrderService/ImportOrders", "orders:write"},
        {"/oms.v1.OrderService/UpdateOrderStatus", "orders:admin"},
        {"/oms.v1.InventoryService/GetProduct", "inventory:read"},
        {"/oms.v1.InventoryService/ListProducts", "inventory:read"},
        {"/oms.v1.InventoryService/UpsertProduct", "inventory:write"},
        {"/oms.v1.InventoryService/AdjustStock", "inventory:write"},
        {"/oms.v1.InventoryService/Reserve", "inventory:write"},
        {"/oms.v1.InventoryService/Release", "inventory:write"},
        {"/oms.v1.CustomerService/GetCustomer", "customers:read"},
        {"/oms.v1.CustomerService/ListCustomers", "customers:read"},
        {"/oms.v1.CustomerService/CreateCustomer", "customers:write"},
        {"/oms.v1.CustomerService/SetCustomerStatus", "customers:write"},
        {"/grpc.testing.TestService/UnaryCall", "test"},
        {"/oms.bench.v1.OrderBench/CreateOrder", "bench"},
    };
    const char *others[] = {
        "orders:read",    "orders:write",    "orders:admin", "inventory:read", "inventory:write",
        "customers:read", "customers:write", "test",         "bench"};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        cr_assert_eq(check(p, table[i].method, table[i].scope), AUTHZ_ALLOWED, "%s",
                     table[i].method);
        cr_assert_eq(authz_check(p, table[i].method, NULL, NULL, 0), AUTHZ_UNAUTHENTICATED);
        for (size_t j = 0; j < sizeof others / sizeof others[0]; j++) {
            bool admin_ok = strcmp(others[j], "orders:admin") == 0 &&
                            strncmp(table[i].method, "/oms.v1.OrderService/", 21) == 0;
            if (strcmp(others[j], table[i].scope) == 0 || admin_ok)
                continue;
            cr_assert_eq(check(p, table[i].method, others[j]), AUTHZ_DENIED, "%s with %s",
                         table[i].method, others[j]);
        }
    }
    cr_assert_eq(check(p, "/oms.v1.OrderService/CreateOrder", "orders:admin"), AUTHZ_ALLOWED);
    cr_assert_eq(check(p, "/oms.v1.OrderService/GetOrder", "orders:admin"), AUTHZ_ALLOWED);
    cr_assert_eq(authz_check(p, "/grpc.health.v1.Health/Watch", NULL, NULL, 0), AUTHZ_PUBLIC);
    cr_assert_eq(authz_check(p, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                             NULL, NULL, 0),
                 AUTHZ_PUBLIC);
    cr_assert_eq(check(p, "/oms.v1.OrderService/NoSuch", "orders:admin"), AUTHZ_DENIED);
    authz_policy_free(p);

    /* --reflection-auth: reflection needs the "reflection" scope; health stays public */
    p = authz_policy_default(true, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    const char *refl = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    cr_assert_eq(authz_check(p, refl, NULL, NULL, 0), AUTHZ_UNAUTHENTICATED);
    cr_assert_eq(check(p, refl, "orders:read"), AUTHZ_DENIED);
    cr_assert_eq(check(p, refl, "reflection"), AUTHZ_ALLOWED);
    cr_assert_eq(authz_check(p, "/grpc.health.v1.Health/Check", NULL, NULL, 0), AUTHZ_PUBLIC);
    authz_policy_free(p);
}

Test(authz_policy, cert_principal_narrowing)
{
    authz_policy *p = parse("method /inv.I/Reserve inventory:write\n"
                            "method /cust.C/Get customers:read\n"
                            "method /ord.O/Get orders:read\n"
                            "imply orders:admin orders:read\n"
                            "principal spiffe://oms.local/service/orders inventory:write "
                            "customers:read\n"
                            "principal spiffe://oms.local/admin orders:admin\n"
                            "principal blocked\n");
    cr_assert_not_null(p, "%s", err);
    rpc_principal out;
    authz_cert_principal(p, "spiffe://oms.local/service/orders", &out);
    cr_assert_eq(out.source, RPC_PRINCIPAL_CERT);
    cr_assert_str_eq(out.subject, "spiffe://oms.local/service/orders");
    cr_assert_not(out.all_scopes);
    cr_assert_eq(out.n_scopes, 2);
    cr_assert_str_eq(out.scopes[0], "inventory:write");
    cr_assert_str_eq(out.scopes[1], "customers:read");
    cr_assert_null(out.customer_id);
    authz_cert_principal(p, "spiffe://oms.local/other", &out);
    cr_assert(out.all_scopes);
    cr_assert_eq(out.n_scopes, 0);

    /* authz_check narrows CERT principals whatever scopes they came with */
    rpc_principal cert = {.source = RPC_PRINCIPAL_CERT,
                          .subject = "spiffe://oms.local/service/orders",
                          .all_scopes = true};
    char why[64];
    cr_assert_eq(authz_check(p, "/inv.I/Reserve", &cert, why, sizeof why), AUTHZ_ALLOWED);
    cr_assert_eq(authz_check(p, "/cust.C/Get", &cert, why, sizeof why), AUTHZ_ALLOWED);
    cr_assert_eq(authz_check(p, "/ord.O/Get", &cert, why, sizeof why), AUTHZ_DENIED);
    cr_assert_str_eq(why, "missing scope orders:read");
    /* implications apply to named principals */
    cert.subject = "spiffe://oms.local/admin";
    cr_assert_eq(authz_check(p, "/ord.O/Get", &cert, why, sizeof why), AUTHZ_ALLOWED);
    /* named with no scopes: nothing but public methods */
    cert.subject = "blocked";
    cr_assert_eq(authz_check(p, "/ord.O/Get", &cert, why, sizeof why), AUTHZ_DENIED);
    /* unnamed: every scope, but an uncovered method stays denied */
    cert.subject = "spiffe://oms.local/someone";
    cert.all_scopes = false;
    cr_assert_eq(authz_check(p, "/ord.O/Get", &cert, why, sizeof why), AUTHZ_ALLOWED);
    cr_assert_eq(authz_check(p, "/no.N/M", &cert, why, sizeof why), AUTHZ_DENIED);
    /* a token principal whose sub equals a principal name is not narrowed */
    const char *s[] = {"orders:read"};
    rpc_principal tok = token(s, 1);
    tok.subject = "spiffe://oms.local/service/orders";
    cr_assert_eq(authz_check(p, "/ord.O/Get", &tok, why, sizeof why), AUTHZ_ALLOWED);
    authz_policy_free(p);
}

/* Every allocation of a parse failing in turn: NULL with "out of memory",
 * nothing leaked (the sanitizer build checks), never a half-built policy. */
Test(authz_policy, allocation_failures)
{
    oms_alloc_count_on();
    authz_policy *p = authz_policy_default(true, err, sizeof err);
    uint64_t total = oms_alloc_counted();
    cr_assert_not_null(p, "%s", err);
    authz_policy_free(p);
    cr_assert_gt(total, 10);
    for (uint64_t n = 1; n <= total; n++) {
        oms_alloc_fail_nth(n);
        p = authz_policy_default(true, err, sizeof err);
        bool failed = oms_alloc_failed();
        oms_alloc_fail_nth(0);
        if (failed) {
            cr_assert_null(p, "allocation %llu failed, yet a policy came back",
                           (unsigned long long)n);
            cr_assert(strstr(err, "out of memory"), "allocation %llu: %s", (unsigned long long)n,
                      err);
        } else {
            cr_assert_not_null(p, "%s", err);
            authz_policy_free(p);
        }
    }
}
