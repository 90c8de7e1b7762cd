/* answer.c - HTTP semantics for the page's files (web.h): methods, ETags,
 * caching and security headers, independent of the transport. */
#include <stdio.h>
#include <string.h>

#include "web/web.h"

/* The page loads its own script and style and talks to its own origin. */
#define WEB_CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src "        \
    "'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static void add(web_reply *r, const char *name, const char *value)
{
    if (r->nheaders < WEB_MAX_HEADERS)
        r->headers[r->nheaders++] = (web_header){name, value};
}

static void text(web_reply *r, int status, const char *body)
{
    r->status = status;
    r->body = (const unsigned char *)body;
    r->len = strlen(body);
    add(r, "content-type", "text/plain; charset=utf-8");
}

/* Whether the If-None-Match list names etag (or is "*"). */
static bool etag_listed(const char *list, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/') /* weak comparison (RFC 9110 13.1.2) */
            p += 2;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == n && memcmp(p, etag, n) == 0)
            return true;
        p = end;
    }
    return false;
}

void web_answer(const char *root, const char *method, const char *path, size_t pathlen,
                const char *if_none_match, web_reply *out)
{
    memset(out, 0, sizeof *out);
    add(out, "cache-control", "no-cache");
    add(out, "content-security-policy", WEB_CSP);
    add(out, "x-content-type-options", "nosniff");
    add(out, "referrer-policy", "no-referrer");
    add(out, "x-frame-options", "DENY");
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        add(out, "allow", "GET, HEAD");
        text(out, 405, "oms: the page answers GET and HEAD\n");
    } else {
        int rc = web_lookup(root, path, pathlen, &out->file);
        if (rc == WEB_OK) {
            add(out, "content-type", out->file.content_type);
            add(out, "etag", out->file.etag);
            if (if_none_match && etag_listed(if_none_match, out->file.etag)) {
                out->status = 304;
            } else {
                out->status = 200;
                out->body = out->file.data;
                out->len = out->file.len;
            }
        } else if (rc == WEB_NOT_FOUND || rc == WEB_BAD_PATH) {
            text(out, 404, "oms: not found\n");
        } else {
            text(out, 500, "oms: the file could not be read\n");
        }
    }
    if (out->status != 304) {
        snprintf(out->length, sizeof out->length, "%zu", out->len);
        add(out, "content-length", out->length);
    }
    if (head || out->status == 304) {
        out->body = NULL; /* content-length still tells the size (HEAD) */
    }
}

void web_reply_release(web_reply *r)
{
    web_file_release(&r->file);
}
