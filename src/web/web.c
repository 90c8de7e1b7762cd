/* web.c - embedded and on-disk lookup of the page's files (web.h). */
#include "web/web.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"

const char *web_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(name, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* Copies path into out (NUL-terminated, "/" -> "/index.html") when every
 * segment is [A-Za-z0-9._-]+ not starting with '.'. */
static int clean_path(const char *path, size_t len, char out[WEB_MAX_PATH])
{
    if (len == 1 && path[0] == '/') {
        path = "/index.html";
        len = 11;
    }
    if (len < 2 || len >= WEB_MAX_PATH || path[0] != '/')
        return WEB_BAD_PATH;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (c == '/') {
            if (i + 1 == len || path[i + 1] == '/' || path[i + 1] == '.')
                return WEB_BAD_PATH; /* empty, hidden or dot-dot segment */
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return WEB_BAD_PATH;
    }
    memcpy(out, path, len);
    out[len] = '\0';
    return WEB_OK;
}

static int lookup_embedded(const char *path, web_file *out)
{
    for (const web_asset *a = web_assets; a->path; a++) {
        if (strcmp(a->path, path) == 0) {
            out->content_type = a->content_type;
            out->data = a->data;
            out->len = a->len;
            snprintf(out->etag, sizeof out->etag, "%s", a->etag);
            return WEB_OK;
        }
    }
    return WEB_NOT_FOUND;
}

/* FNV-1a 64 of the bytes, for a disk file's ETag (development only). */
static uint64_t fnv64(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int lookup_disk(const char *root, const char *path, web_file *out)
{
    const char *type = web_content_type(path);
    if (!type)
        return WEB_NOT_FOUND;
    char full[4096];
    int n = snprintf(full, sizeof full, "%s%s", root, path);
    if (n < 0 || (size_t)n >= sizeof full)
        return WEB_BAD_PATH;
    /* No symlink as the last component: the page's files are plain files. */
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? WEB_NOT_FOUND : WEB_ERROR;
    struct stat st;
    int rc = WEB_ERROR;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0)
        goto out;
    if (!S_ISREG(st.st_mode)) {
        rc = WEB_NOT_FOUND;
        goto out;
    }
    if ((uint64_t)st.st_size > WEB_MAX_FILE) {
        rc = WEB_TOO_BIG;
        goto out;
    }
    size_t want = (size_t)st.st_size, got = 0;
    if (!(buf = oms_malloc(want ? want : 1)))
        goto out;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out; /* error, or the file shrank under us */
        got += (size_t)r;
    }
    out->content_type = type;
    out->data = buf;
    out->len = got;
    out->owned = buf;
    snprintf(out->etag, sizeof out->etag, "\"dev-%016llx\"", (unsigned long long)fnv64(buf, got));
    buf = NULL;
    rc = WEB_OK;
out:
    oms_free(buf);
    close(fd);
    return rc;
}

int web_lookup(const char *root, const char *path, size_t pathlen, web_file *out)
{
    memset(out, 0, sizeof *out);
    char clean[WEB_MAX_PATH];
    int rc = clean_path(path, pathlen, clean);
    if (rc != WEB_OK)
        return rc;
    return root ? lookup_disk(root, clean, out) : lookup_embedded(clean, out);
}

void web_file_release(web_file *f)
{
    if (f && f->owned) {
        oms_free(f->owned);
        f->owned = NULL;
        f->data = NULL;
    }
}
