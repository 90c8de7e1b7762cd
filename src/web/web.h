/* web - the live order page's files (web/ in the source tree): embedded in
 * the binary at build time, or read from a directory while developing
 * (omsd --web-root DIR). Knows nothing of HTTP transports; omsd answers GET
 * and HEAD requests with what web_lookup() finds.
 *
 * Paths are the request's path without its query: "/" means "/index.html".
 * Only [A-Za-z0-9._-] segments separated by '/' are looked up; no segment
 * may start with '.', so "..", hidden files and percent-encoded tricks never
 * reach the file system (WEB_BAD_PATH).
 */
#ifndef OMS_WEB_H
#define OMS_WEB_H

#include <stdbool.h>
#include <stddef.h>

/* An embedded file. */
typedef struct web_asset {
    const char *path;         /* "/index.html" */
    const char *content_type; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
    const char *etag; /* strong, quoted: "\"3f2a...\"" */
} web_asset;

/* Generated from web/ (src/web/embed.cmake); the last entry's path is NULL. */
extern const web_asset web_assets[];

/* What a lookup found. data is borrowed from web_assets (owned == NULL) or
 * read from disk into owned, which web_file_release() frees. */
typedef struct web_file {
    const char *content_type;
    const unsigned char *data;
    size_t len;
    char etag[48];
    void *owned;
} web_file;

enum {
    WEB_OK = 0,
    WEB_NOT_FOUND = -1, /* no such file (or not a regular file) */
    WEB_BAD_PATH = -2,  /* a path we never look up (see above) */
    WEB_TOO_BIG = -3,   /* a disk file over WEB_MAX_FILE */
    WEB_ERROR = -4,     /* reading failed, or out of memory */
};

#define WEB_MAX_FILE (4u << 20)
#define WEB_MAX_PATH 256

/* Looks path (pathlen bytes, need not be NUL-terminated) up: in root when
 * root is non-NULL (files there, read on every call), else among the
 * embedded files. Returns WEB_OK with *out filled, or an error above. */
int web_lookup(const char *root, const char *path, size_t pathlen, web_file *out);

/* Frees what a disk lookup read; NULL-safe and a no-op for embedded files. */
void web_file_release(web_file *f);

/* The MIME type for a file name by its extension, or NULL when the page has
 * no such kind of file. */
const char *web_content_type(const char *name);

/* --- answering a request (transport-neutral) ---------------------------------- */

/* A response header; both strings static or inside the web_reply. */
typedef struct web_header {
    const char *name, *value;
} web_header;

#define WEB_MAX_HEADERS 10

/* The answer to one request for the page. body is borrowed from the reply
 * (its file) or static text: keep the reply until the body was sent, then
 * web_reply_release(). */
typedef struct web_reply {
    int status; /* 200, 304, 404, 405, 400, 500 */
    web_header headers[WEB_MAX_HEADERS];
    size_t nheaders;
    const unsigned char *body; /* NULL: none (HEAD, 304) */
    size_t len;
    web_file file;
    char length[24];
} web_reply;

/* Answers method and path (no query; pathlen bytes) for the page's files,
 * from root (NULL: the embedded copy). if_none_match is the request's
 * If-None-Match header or NULL. GET and HEAD only (405 with Allow
 * otherwise); an ETag that matches gives 304. Every answer carries
 * content-type, content-length, cache-control: no-cache and the security
 * headers (a Content-Security-Policy that allows the page's own origin
 * only, nosniff, no referrer, no framing). */
void web_answer(const char *root, const char *method, const char *path, size_t pathlen,
                const char *if_none_match, web_reply *out);

void web_reply_release(web_reply *r);

#endif
