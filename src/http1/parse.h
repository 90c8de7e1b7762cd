/* http1/parse.h - an HTTP/1.1 request parser (libhttp-parser underneath) with
 * the checks a server needs, shared by the admin server (http1/server.c) and
 * the HTTP/1.1 side of the gRPC port (http2/h1.c).
 *
 * It reads requests one after the other from a byte stream fed in pieces of
 * any size (a request split byte by byte parses the same as one read), keeps
 * each request's head (target, header names and values, NUL-terminated) in
 * one buffer of its own, and hands the body over as it comes, de-chunked.
 *
 * Refused, each with the status http1_parser_feed() returns (negated):
 *  - 431: target + header names and values over max_head_bytes, more than
 *    max_headers fields, or libhttp-parser's own 80 KiB cap on the raw head;
 *  - 400: what libhttp-parser refuses (bad request line, bad bytes, bad chunk
 *    size or hex overflow, duplicate Content-Length), and here: header names
 *    that are not RFC 9110 tokens (Debian builds the parser non-strict, which
 *    lets spaces in), control bytes (NUL, CR, LF from an obs-fold) in
 *    values, both Content-Length and Transfer-Encoding (request smuggling),
 *    a Transfer-Encoding other than "chunked", an HTTP version other than
 *    1.0 or 1.1 (an HTTP/2 preface included);
 *  - any status a callback returns.
 * After a refusal the parser is spent: the caller answers and closes.
 *
 * Errors and ownership: http1_parser_new returns NULL out of memory; the
 * parser owns its buffers; what a callback gets is borrowed for that call.
 */
#ifndef OMS_HTTP1_PARSE_H
#define OMS_HTTP1_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1/http1.h"

typedef struct http1_parser http1_parser;

#define HTTP1_NO_LENGTH UINT64_MAX

/* A request head, borrowed for the on_head call. Strings are NUL-terminated
 * (the target and values may also hold no NUL: control bytes are refused). */
typedef struct http1_head {
    const char *method; /* "GET", "POST", ... */
    const char *target; /* as sent: "/x?y=1", "http://h/x", "*" */
    size_t target_len;
    const http1_header *headers; /* names as sent (compare case-insensitively) */
    size_t n_headers;
    int http_minor;          /* 0 or 1 */
    uint64_t content_length; /* HTTP1_NO_LENGTH when none */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool keep_alive;         /* another request may follow this one's answer */
    bool upgrade;            /* Upgrade (with Connection: upgrade) or CONNECT: answered as
                                plain HTTP/1.1, then the connection must close */
} http1_head;

typedef struct http1_parse_ops {
    /* The head is complete. 0 goes on; an HTTP status (413, 400, ...) refuses
     * the request: parsing stops and feed returns -status. */
    int (*on_head)(void *data, const http1_head *h);
    /* Body bytes (de-chunked), borrowed. 0, or a status as for on_head. */
    int (*on_body)(void *data, const uint8_t *p, size_t n);
    /* The request's body ended. 0 parses on (a pipelined request may follow
     * in the same feed); 1 pauses: feed returns the bytes used so far, and
     * parsing goes on with http1_parser_resume() and the next feed (of the
     * bytes not used). A status > 1 refuses as for on_head. */
    int (*on_end)(void *data);
} http1_parse_ops;

typedef struct http1_parse_limits {
    size_t max_head_bytes; /* target + header names and values; at least 64 */
    size_t max_headers;    /* header fields; at least 1 */
} http1_parse_limits;

/* A parser for one connection. ops is borrowed (a static table), data is
 * passed to every callback. NULL out of memory. */
http1_parser *http1_parser_new(const http1_parse_limits *lim, const http1_parse_ops *ops,
                               void *data);
void http1_parser_free(http1_parser *p);

/* Parses n bytes. Returns the bytes used: n, or fewer when on_end paused
 * (the rest is the next request's: feed it again after resume) or when the
 * request was an upgrade (the rest belongs to no request we speak: answer
 * and close). Negative: -status, the request is refused (see above). */
long http1_parser_feed(http1_parser *p, const char *buf, size_t n);

/* Undoes an on_end pause. */
void http1_parser_resume(http1_parser *p);

/* A request's first byte came and its end has not yet. */
bool http1_parser_busy(const http1_parser *p);

/* The head of the request being parsed (valid from on_head to the next
 * request's first byte): for answers made after on_head returned. */
const http1_head *http1_parser_head(const http1_parser *p);

#endif
