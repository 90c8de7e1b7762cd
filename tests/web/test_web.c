/* The live page's files: the embedded copy matches web/, and the on-disk
 * lookup (--web-root) never leaves its directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "web/web.h"

#ifndef OMS_SOURCE_DIR
#error "OMS_SOURCE_DIR must be defined"
#endif

static int find(const char *root, const char *path, web_file *f)
{
    return web_lookup(root, path, strlen(path), f);
}

Test(web, embedded_files_match_the_source_tree)
{
    static const char *names[] = {"/index.html", "/app.css", "/app.js"};
    for (size_t i = 0; i < 3; i++) {
        web_file emb, disk;
        cr_assert_eq(find(NULL, names[i], &emb), WEB_OK, "%s", names[i]);
        cr_assert_eq(find(OMS_SOURCE_DIR "/web", names[i], &disk), WEB_OK, "%s", names[i]);
        cr_expect_eq(emb.len, disk.len, "%s", names[i]);
        cr_expect(memcmp(emb.data, disk.data, emb.len) == 0, "%s differs", names[i]);
        cr_expect_str_eq(emb.content_type, disk.content_type);
        cr_expect_eq(emb.etag[0], '"');
        cr_expect_null(emb.owned);
        web_file_release(&emb);
        web_file_release(&disk);
        cr_expect_null(disk.owned);
    }
}

Test(web, root_is_the_index_and_types_follow_the_extension)
{
    web_file f;
    cr_assert_eq(find(NULL, "/", &f), WEB_OK);
    cr_expect_str_eq(f.content_type, "text/html; charset=utf-8");
    cr_expect(f.len > 100 && memmem(f.data, f.len, "<!doctype html>", 15));
    cr_assert_eq(find(NULL, "/app.js", &f), WEB_OK);
    cr_expect_str_eq(f.content_type, "text/javascript; charset=utf-8");
    cr_assert_eq(find(NULL, "/app.css", &f), WEB_OK);
    cr_expect_str_eq(f.content_type, "text/css; charset=utf-8");
    cr_expect_eq(find(NULL, "/missing.js", &f), WEB_NOT_FOUND);
    cr_expect_eq(find(NULL, "/index.html/", &f), WEB_BAD_PATH);
    /* a path need not be NUL-terminated */
    cr_expect_eq(web_lookup(NULL, "/app.jsXYZ", 7, &f), WEB_OK);
    cr_expect_str_eq(f.content_type, "text/javascript; charset=utf-8");
}

Test(web, hostile_paths_never_reach_the_file_system)
{
    static const char *bad[] = {
        "",           "index.html", "//",        "/../etc/passwd", "/..",     "/.hidden",
        "/a/../b.js", "/a//b",      "/%2e%2e/x", "/app.js?x",      "/app js", "/\x01.js",
        "/é.js",      "/a\\b.js",   "/./a.js",   "/app.js/",       "/a/./b",
    };
    web_file f;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(find(NULL, bad[i], &f), WEB_BAD_PATH, "embedded: '%s'", bad[i]);
        cr_expect_eq(find("/", bad[i], &f), WEB_BAD_PATH, "disk: '%s'", bad[i]);
    }
    char nul[] = "/app.js\0.html";
    cr_expect_eq(web_lookup(NULL, nul, sizeof nul - 1, &f), WEB_BAD_PATH, "NUL inside");
    char longp[WEB_MAX_PATH + 8];
    memset(longp, 'a', sizeof longp);
    longp[0] = '/';
    memcpy(longp + sizeof longp - 4, ".js", 3);
    cr_expect_eq(web_lookup(NULL, longp, sizeof longp - 1, &f), WEB_BAD_PATH, "too long");
}

static char dir[] = "/tmp/oms-web-XXXXXX";

static void write_file(const char *name, const char *body)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s: %s", p, strerror(errno));
    fputs(body, f);
    fclose(f);
}

static void make_dir(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(web, disk_root_serves_plain_files_only, .init = make_dir, .fini = remove_dir)
{
    write_file("index.html", "<p>dev copy</p>");
    write_file("secret.txt", "not a page file");
    write_file("big.js", "");
    char p[300], q[300];
    snprintf(p, sizeof p, "%s/link.js", dir);
    cr_assert_eq(symlink("/etc/hostname", p), 0);
    snprintf(p, sizeof p, "%s/sub.js", dir);
    cr_assert_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/big.js", dir);
    cr_assert_eq(truncate(p, WEB_MAX_FILE + 1), 0);

    web_file f;
    cr_assert_eq(find(dir, "/", &f), WEB_OK);
    cr_expect_eq(f.len, 15);
    cr_expect(memcmp(f.data, "<p>dev copy</p>", 15) == 0);
    cr_expect_not_null(f.owned);
    char etag[sizeof f.etag];
    snprintf(etag, sizeof etag, "%s", f.etag);
    web_file_release(&f);

    write_file("index.html", "<p>changed</p>"); /* read again on every call */
    cr_assert_eq(find(dir, "/index.html", &f), WEB_OK);
    cr_expect_eq(f.len, 14);
    cr_expect_str_neq(f.etag, etag, "the ETag follows the content");
    web_file_release(&f);

    cr_expect_eq(find(dir, "/secret.txt", &f), WEB_NOT_FOUND, "not a page file type");
    cr_expect_eq(find(dir, "/link.js", &f), WEB_NOT_FOUND, "a symlink is not followed");
    cr_expect_eq(find(dir, "/sub.js", &f), WEB_NOT_FOUND, "a directory");
    cr_expect_eq(find(dir, "/big.js", &f), WEB_TOO_BIG);
    cr_expect_eq(find(dir, "/none.js", &f), WEB_NOT_FOUND);
    snprintf(q, sizeof q, "%s/nowhere", dir);
    cr_expect_eq(find(q, "/index.html", &f), WEB_NOT_FOUND, "a root that does not exist");
}

static const char *header(const web_reply *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void answer(const char *method, const char *path, const char *inm, web_reply *r)
{
    web_answer(NULL, method, path, strlen(path), inm, r);
}

Test(web, answer_get_head_and_security_headers)
{
    web_reply r;
    answer("GET", "/", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_expect_not_null(r.body);
    cr_expect_str_eq(header(&r, "content-type"), "text/html; charset=utf-8");
    char len[24];
    snprintf(len, sizeof len, "%zu", r.len);
    cr_expect_str_eq(header(&r, "content-length"), len);
    cr_expect_str_eq(header(&r, "cache-control"), "no-cache");
    cr_expect_str_eq(header(&r, "x-content-type-options"), "nosniff");
    const char *csp = header(&r, "content-security-policy");
    cr_assert_not_null(csp);
    cr_expect(strstr(csp, "default-src 'none'") && strstr(csp, "connect-src 'self'") &&
              strstr(csp, "frame-ancestors 'none'"));
    cr_expect_not_null(header(&r, "etag"));
    web_reply_release(&r);

    answer("HEAD", "/app.js", NULL, &r);
    cr_expect_eq(r.status, 200);
    cr_expect_null(r.body, "HEAD sends no body");
    cr_expect_str_neq(header(&r, "content-length"), "0", "but tells its size");
    web_reply_release(&r);
}

Test(web, answer_etags_and_errors)
{
    web_reply r;
    answer("GET", "/app.css", NULL, &r);
    char etag[48];
    snprintf(etag, sizeof etag, "%s", header(&r, "etag"));
    web_reply_release(&r);

    char list[128];
    snprintf(list, sizeof list, "\"nope\", W/%s ", etag);
    answer("GET", "/app.css", list, &r);
    cr_expect_eq(r.status, 304, "a listed (weak) ETag");
    cr_expect_null(r.body);
    cr_expect_null(header(&r, "content-length"));
    web_reply_release(&r);
    answer("GET", "/app.css", "*", &r);
    cr_expect_eq(r.status, 304);
    answer("GET", "/app.css", "\"other\"", &r);
    cr_expect_eq(r.status, 200);
    answer("GET", "/app.css", "", &r);
    cr_expect_eq(r.status, 200);

    answer("POST", "/", NULL, &r);
    cr_expect_eq(r.status, 405);
    cr_expect_str_eq(header(&r, "allow"), "GET, HEAD");
    answer("DELETE", "/app.js", NULL, &r);
    cr_expect_eq(r.status, 405);
    answer("GET", "/nothing.html", NULL, &r);
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(header(&r, "content-type"), "text/plain; charset=utf-8");
    answer("GET", "/../../etc/passwd", NULL, &r);
    cr_expect_eq(r.status, 404, "a path never looked up is simply not found");
}
