/* parse.c - libhttp-parser's callbacks turned into requests: the head
 * gathered under limits, the checks parse.h lists, the body passed on. */
#include <http_parser.h>
#include <strings.h>
#include <string.h>

#include "base/alloc.h"
#include "http1/parse.h"

const char *http1_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

struct http1_parser {
    http_parser hp;
    http1_parse_limits lim;
    const http1_parse_ops *ops;
    void *data;
    /* The head: target, then NUL-terminated header names and values. */
    char *head;
    size_t head_len, head_cap;
    size_t head_sent;  /* of which the client's bytes (the rest: our NULs) */
    size_t target_len; /* the target's bytes at head[0..] (NUL follows) */
    size_t *name_off, *value_off;
    http1_header *hs;
    size_t nheaders;
    unsigned n_clen, n_te; /* Content-Length / Transfer-Encoding fields seen */
    bool te_bad;           /* a Transfer-Encoding value other than "chunked" */
    bool in_value;         /* last header callback was a value */
    bool target_done;      /* a header callback came: the target is complete */
    bool busy;             /* a request's first byte came, its end not yet */
    bool spent;            /* refused: nothing more is parsed */
    int status;            /* a refusal's status, set by the callback that failed */
    const char *buf;       /* the bytes being fed (obs-fold look-back) */
    bool tail_lf;          /* the bytes fed before them end in LF and blanks */
    http1_head h;
};

/* Appends to the head buffer; sent: bytes the client sent (counted against
 * max_head_bytes), else a NUL of ours. */
static int head_append(http1_parser *p, const char *at, size_t len, bool sent)
{
    if ((sent && (p->head_sent += len) > p->lim.max_head_bytes) ||
        p->head_len + len > p->head_cap) {
        p->status = 431;
        return -1;
    }
    memcpy(p->head + p->head_len, at, len);
    p->head_len += len;
    return 0;
}

static int on_message_begin(http_parser *hp)
{
    http1_parser *p = hp->data;
    p->head_len = p->head_sent = p->target_len = p->nheaders = 0;
    p->n_clen = p->n_te = 0;
    p->te_bad = p->in_value = p->target_done = false;
    p->busy = true;
    memset(&p->h, 0, sizeof p->h);
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    http1_parser *p = hp->data;
    if (head_append(p, at, len, true) != 0)
        return -1;
    p->target_len = p->head_len;
    return 0;
}

static int end_target(http1_parser *p)
{
    if (p->target_done)
        return 0;
    p->target_done = true;
    return head_append(p, "", 1, false); /* NUL after the target */
}

/* RFC 9110 tchar. */
static bool is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch && strchr(extra, ch))))
            return false;
    }
    return true;
}

/* field-value bytes: visible ASCII, space, tab, obs-text; no other controls. */
static bool is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    http1_parser *p = hp->data;
    if (!is_token(at, len))
        return -1; /* 400 */
    if (end_target(p) != 0)
        return -1;
    if (p->in_value || p->nheaders == 0) {
        if (p->nheaders && head_append(p, "", 1, false) != 0) /* ends the previous value */
            return -1;
        if (p->nheaders == p->lim.max_headers) {
            p->status = 431;
            return -1;
        }
        p->name_off[p->nheaders] = p->head_len;
        p->value_off[p->nheaders] = SIZE_MAX;
        p->nheaders++;
        p->in_value = false;
    }
    return head_append(p, at, len, true);
}

/* Whether a value's bytes at `at` follow a line break and blanks: an
 * obs-fold (RFC 9112 section 5.2), which libhttp-parser joins to the value
 * before it. Looks back over the bytes of this feed, then at how the ones
 * fed before ended, so a fold split across reads is found too. */
static bool folded(const http1_parser *p, const char *at)
{
    const char *q = at;
    while (q > p->buf && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    return q > p->buf ? q[-1] == '\n' : p->tail_lf;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    http1_parser *p = hp->data;
    if (!is_field_value(at, len) || folded(p, at))
        return -1; /* 400 */
    size_t i = p->nheaders - 1;
    if (!p->in_value) {
        if (head_append(p, "", 1, false) != 0) /* ends the name */
            return -1;
        p->value_off[i] = p->head_len;
        p->in_value = true;
    }
    return head_append(p, at, len, true);
}

/* Trims optional whitespace around a value in place. */
static const char *trim(const char *v, size_t *n)
{
    size_t len = strlen(v);
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    *n = len;
    return v;
}

static int on_headers_complete(http_parser *hp)
{
    http1_parser *p = hp->data;
    if (end_target(p) != 0)
        return -1;
    if (p->nheaders) {
        if (!p->in_value) { /* a name without a value: an empty value */
            if (head_append(p, "", 1, false) != 0)
                return -1;
            p->value_off[p->nheaders - 1] = p->head_len;
        }
        if (head_append(p, "", 1, false) != 0)
            return -1;
    }
    for (size_t i = 0; i < p->nheaders; i++) {
        http1_header *x = &p->hs[i];
        x->name = p->head + p->name_off[i];
        x->value = p->head + p->value_off[i];
        if (strcasecmp(x->name, "content-length") == 0) {
            p->n_clen++;
        } else if (strcasecmp(x->name, "transfer-encoding") == 0) {
            size_t n;
            const char *v = trim(x->value, &n);
            p->n_te++;
            p->te_bad |= !(n == 7 && strncasecmp(v, "chunked", 7) == 0);
        }
    }
    /* RFC 9112 section 6.1: both framings, or an encoding we cannot undo
     * (or "chunked" not last), is how requests are smuggled past proxies
     * that read the other one: refused. */
    if ((p->n_clen && p->n_te) || p->n_te > 1 || p->te_bad || hp->http_major != 1 ||
        hp->http_minor > 1)
        return -1;
    p->h = (http1_head){
        .method = http_method_str((enum http_method)hp->method),
        .target = p->head,
        .target_len = p->target_len,
        .headers = p->hs,
        .n_headers = p->nheaders,
        .http_minor = hp->http_minor,
        .content_length = p->n_clen ? hp->content_length : HTTP1_NO_LENGTH,
        .chunked = p->n_te != 0,
        .upgrade = hp->upgrade || hp->method == HTTP_CONNECT,
    };
    p->h.keep_alive = http_should_keep_alive(hp) && !p->h.upgrade;
    int st = p->ops->on_head ? p->ops->on_head(p->data, &p->h) : 0;
    if (st) {
        p->status = st;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    http1_parser *p = hp->data;
    int st = p->ops->on_body ? p->ops->on_body(p->data, (const uint8_t *)at, len) : 0;
    if (st) {
        p->status = st;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    http1_parser *p = hp->data;
    p->busy = false;
    int st = p->ops->on_end ? p->ops->on_end(p->data) : 0;
    if (st > 1) {
        p->status = st;
        return -1;
    }
    if (st == 1)
        http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

http1_parser *http1_parser_new(const http1_parse_limits *lim, const http1_parse_ops *ops,
                               void *data)
{
    http1_parser *p = oms_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->lim = *lim;
    if (p->lim.max_head_bytes < 64)
        p->lim.max_head_bytes = 64;
    if (p->lim.max_headers < 1)
        p->lim.max_headers = 1;
    p->ops = ops;
    p->data = data;
    /* the client's bytes, a NUL after each of them, and a spare one */
    p->head_cap = p->lim.max_head_bytes + 2 * p->lim.max_headers + 2;
    p->head = oms_malloc(p->head_cap);
    p->name_off = oms_calloc(p->lim.max_headers, sizeof *p->name_off);
    p->value_off = oms_calloc(p->lim.max_headers, sizeof *p->value_off);
    p->hs = oms_calloc(p->lim.max_headers, sizeof *p->hs);
    if (!p->head || !p->name_off || !p->value_off || !p->hs) {
        http1_parser_free(p);
        return NULL;
    }
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
    return p;
}

void http1_parser_free(http1_parser *p)
{
    if (!p)
        return;
    oms_free(p->head);
    oms_free(p->name_off);
    oms_free(p->value_off);
    oms_free(p->hs);
    oms_free(p);
}

long http1_parser_feed(http1_parser *p, const char *buf, size_t n)
{
    if (p->spent)
        return -(p->status ? p->status : 400);
    p->buf = buf;
    size_t used = http_parser_execute(&p->hp, &settings, buf, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    const char *q = buf + used;
    while (q > buf && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    if (q > buf)
        p->tail_lf = q[-1] == '\n';
    if (e == HPE_PAUSED)
        return (long)used;
    if (e != HPE_OK) {
        p->spent = true;
        if (!p->status)
            p->status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
        return -p->status;
    }
    if (p->hp.upgrade)
        p->spent = true; /* the rest is another protocol's: nothing more here */
    return (long)used;
}

void http1_parser_resume(http1_parser *p)
{
    http_parser_pause(&p->hp, 0);
}

bool http1_parser_busy(const http1_parser *p)
{
    return p->busy;
}

const http1_head *http1_parser_head(const http1_parser *p)
{
    return &p->h;
}
