/* rpc_int.h - internals shared by the rpc layer's files (not installed).
 *
 * Small pure modules first (framing, percent-encoding, timeouts, status,
 * base64, compression); each is tested alone in tests/rpc/.
 */
#ifndef OMS_RPC_INT_H
#define OMS_RPC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base64.h"
#include "rpc/rpc.h"

/* --- buffers (buf.c) ---------------------------------------------------- */

/* A growable byte buffer. Embedded; init/dispose. */
typedef struct rpc_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} rpc_buf;

void rpc__buf_init(rpc_buf *b);
void rpc__buf_dispose(rpc_buf *b);
/* Makes room for n more bytes; returns 0 or -1 (ENOMEM). */
int rpc__buf_reserve(rpc_buf *b, size_t n);
/* As rpc__buf_reserve, but geometric growth stops at cap_limit bytes of
 * capacity (or at len + n if that is more): for buffers whose final size is
 * known, so that doubling does not allocate up to twice of it. */
int rpc__buf_reserve_upto(rpc_buf *b, size_t n, size_t cap_limit);
int rpc__buf_append(rpc_buf *b, const void *p, size_t n);
/* Drops the first n bytes. */
void rpc__buf_consume(rpc_buf *b, size_t n);

/* --- framing (framing.c) ------------------------------------------------ */

/* The 5-byte gRPC message prefix: 1 byte compressed flag, 4 bytes big-endian
 * length (doc/PROTOCOL-HTTP2.md, "Length-Prefixed-Message"). */
#define RPC_FRAME_HEADER 5

typedef enum rpc_deframe_result {
    RPC_DEFRAME_MORE = 0,      /* need more bytes */
    RPC_DEFRAME_MESSAGE = 1,   /* *msg, *len, *compressed describe a message */
    RPC_DEFRAME_TOO_BIG = -1,  /* declared length > max */
    RPC_DEFRAME_BAD_FLAG = -2, /* flag byte other than 0 or 1 */
    RPC_DEFRAME_NOMEM = -3     /* gathering a split message failed to allocate */
} rpc_deframe_result;

/* Incremental deframer: DATA payloads go in with any split or merge; whole
 * messages come out. Bytes of a message split across several feeds are
 * gathered in buf; a message inside one feed is returned without copying. */
typedef struct rpc_deframer {
    rpc_buf buf;    /* partial message (prefix + body so far) */
    size_t max_len; /* largest accepted message length (wire size) */
} rpc_deframer;

void rpc__deframer_init(rpc_deframer *d, size_t max_len);
void rpc__deframer_dispose(rpc_deframer *d);

/* Takes bytes from *p and *n (advancing them) until one message is complete or
 * input runs out. On RPC_DEFRAME_MESSAGE, *msg points into the input or into
 * d->buf and stays valid until the next call. On error, *len holds the
 * declared length (for TOO_BIG messages, 0 for BAD_FLAG). TOO_BIG is reported
 * as soon as the prefix is read and BAD_FLAG as soon as the flag byte is;
 * both are sticky (later calls return them again and consume nothing). */
rpc_deframe_result rpc__deframer_next(rpc_deframer *d, const uint8_t **p, size_t *n,
                                      const uint8_t **msg, size_t *len, bool *compressed);

/* Whether a partial message is pending (a truncated stream if the peer ends);
 * also true after an error. */
bool rpc__deframer_partial(const rpc_deframer *d);

/* Writes the 5-byte prefix for a message of len bytes. */
void rpc__frame_header(uint8_t out[RPC_FRAME_HEADER], bool compressed, uint32_t len);
/* frame.c: an rpc_frame's bytes (prefix included) and its message type. */
const uint8_t *rpc__frame_bytes(const rpc_frame *f, size_t *len);
const ProtobufCMessageDescriptor *rpc__frame_desc(const rpc_frame *f);

/* --- percent-encoding of grpc-message (percent.c) ------------------------ */

/* Encodes per PROTOCOL-HTTP2.md: bytes outside 0x20..0x7E and '%' become
 * %XX. Returns a malloc'ed NUL-terminated string or NULL. */
char *rpc__percent_encode(const char *s, size_t len);
/* Decodes %XX sequences; malformed sequences are kept as they are. Returns a
 * malloc'ed NUL-terminated string (out_len gets its length) or NULL. */
char *rpc__percent_decode(const char *s, size_t len, size_t *out_len);

/* --- grpc-timeout (timeout.c) -------------------------------------------- */

/* Parses "TimeoutValue TimeoutUnit": 1..8 ASCII digits then one of H M S m u
 * n. Stores the timeout in milliseconds, rounded up, saturating at
 * UINT64_MAX / 2. Returns 0, or -1 if malformed. */
int rpc__timeout_parse(const char *s, size_t len, uint64_t *ms);
/* Formats ms as a grpc-timeout value (at most 8 digits; picks the finest unit
 * that fits, rounding up; 0 becomes "1n" since the value must be positive).
 * out must hold 10 bytes and is NUL-terminated. Returns the length. */
size_t rpc__timeout_format(uint64_t ms, char out[10]);

/* --- status (status.c) --------------------------------------------------- */

/* gRPC status for an HTTP/2 RST_STREAM/GOAWAY code (PROTOCOL-HTTP2.md,
 * "Errors"): NO_ERROR/PROTOCOL_ERROR/INTERNAL_ERROR/FLOW_CONTROL_ERROR/
 * SETTINGS_TIMEOUT/FRAME_SIZE_ERROR/COMPRESSION_ERROR/CONNECT_ERROR ->
 * INTERNAL, REFUSED_STREAM -> UNAVAILABLE, CANCEL -> CANCELLED,
 * ENHANCE_YOUR_CALM -> RESOURCE_EXHAUSTED, INADEQUATE_SECURITY ->
 * PERMISSION_DENIED; others INTERNAL. */
rpc_status rpc__status_from_h2(uint32_t h2_error);
/* gRPC status for a non-200 HTTP status (the client side; doc/http-grpc-
 * status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED, 403
 * PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, others
 * UNKNOWN. */
rpc_status rpc__status_from_http(int http_status);
/* "OK", "CANCELLED", ... ; "UNKNOWN_CODE" when out of range. */
const char *rpc__status_name(int code);

/* --- metadata keys and base64 (metadata.c) -------------------------------- */

/* Whether key is a legal metadata key (lower-case 0-9 a-z _ - .). */
bool rpc__md_key_valid(const char *key, size_t len);
/* Whether key ends in "-bin". */
bool rpc__md_key_is_bin(const char *key, size_t len);
/* Whether a non-bin value is legal (printable ASCII 0x20..0x7E). */
bool rpc__md_value_valid(const uint8_t *v, size_t len);
/* Whether key is reserved by gRPC/HTTP2: never surfaced as custom metadata
 * nor accepted from handlers. Reserved: ":..." pseudo-headers, every
 * "grpc-*" key, content-type, te, content-length and the connection-specific
 * fields (connection, keep-alive, proxy-connection, transfer-encoding,
 * upgrade). user-agent is not reserved. Compared case-insensitively. */
bool rpc__md_key_reserved(const char *key, size_t len);

/* Standard base64 with padding (base/base64.h). out must hold
 * rpc__base64_encoded_len(len) bytes; returns the length written. */
static inline size_t rpc__base64_encoded_len(size_t len)
{
    return oms_base64_encoded_len(len, 0);
}
static inline size_t rpc__base64_encode(const uint8_t *in, size_t len, char *out)
{
    return oms_base64_encode(in, len, out, 0);
}
/* Decodes standard base64, padded or not (gRPC peers send both), lenient on
 * the unused bits of the last character (as Go's default decoder). out must
 * hold len * 3 / 4 + 3 bytes. Returns the decoded length or -1 if malformed
 * (characters outside the alphabet, padding that does not end a 4-character
 * group, a lone trailing character). */
static inline long rpc__base64_decode(const char *in, size_t len, uint8_t *out)
{
    return oms_base64_decode(in, len, out, 0);
}

/* --- compression (compress.c) ---------------------------------------------- */

typedef enum rpc_encoding {
    RPC_ENC_IDENTITY = 0,
    RPC_ENC_GZIP = 1,
    RPC_ENC_DEFLATE = 2,
    RPC_ENC_UNKNOWN = -1,
} rpc_encoding;

/* Parses a grpc-encoding value (case-insensitive); RPC_ENC_UNKNOWN if it is
 * none of ours. */
rpc_encoding rpc__encoding_parse(const char *s, size_t len);
/* "identity", "gzip", "deflate"; "unknown" for anything else. */
const char *rpc__encoding_name(rpc_encoding e);
/* Whether a grpc-accept-encoding list ("gzip, identity") contains e.
 * Identity is always accepted. */
bool rpc__encoding_accepted(const char *list, size_t len, rpc_encoding e);

/* The value we advertise in grpc-accept-encoding. */
#define RPC_ACCEPT_ENCODING "identity,deflate,gzip"

/* Compresses in into out (appended) with gzip or deflate (zlib format);
 * identity appends a copy. Returns 0 or -1 (unknown encoding, ENOMEM); on
 * failure out is left as it was. */
int rpc__compress(rpc_encoding e, const uint8_t *in, size_t len, rpc_buf *out);
/* Decompresses into out (appended), failing with -2 if the result would pass
 * max bytes (a zip bomb stops early, having inflated at most max + 1 bytes)
 * and -1 if the input is corrupt or truncated, has bytes after the end of the
 * compressed stream, the encoding is unknown, or memory runs out. On failure
 * out is left as it was. */
int rpc__decompress(rpc_encoding e, const uint8_t *in, size_t len, size_t max, rpc_buf *out);

/* --- proto3 strings (utf8.c) ---------------------------------------------- */

typedef enum rpc_utf8_result {
    RPC_UTF8_OK = 0,
    RPC_UTF8_INVALID = 1, /* not well-formed UTF-8: overlong, surrogate, past
                             U+10FFFF, stray continuation, truncated */
    RPC_UTF8_NUL = 2,     /* well-formed up to a U+0000 */
} rpc_utf8_result;

/* Checks n bytes (Unicode's well-formed UTF-8, table 3-7) and refuses U+0000,
 * which protobuf-c's NUL-terminated strings cannot hold. The first problem
 * found wins. */
rpc_utf8_result rpc__utf8_check(const uint8_t *s, size_t n);

/* Whether messages of d have a string field, directly or in a nested message
 * (maps and oneofs included). Messages without one need no walk. Cost: one
 * pass over the descriptors reachable from d; call it once per method. */
bool rpc__desc_has_strings(const ProtobufCMessageDescriptor *d);

enum {
    RPC_STRINGS_BAD = -1,       /* a string field failed rpc__utf8_check */
    RPC_STRINGS_MALFORMED = -2, /* not a parsable message, or nested > 100 deep */
};

/* Walks the wire bytes of one message of type d and checks every string
 * field, in nested and repeated messages, oneofs and map entries too (unknown
 * fields are skipped). Returns 0, or RPC_STRINGS_BAD with why set to the
 * field's path and the problem ("lines[2].sku: invalid UTF-8", "customer_id:
 * contains NUL"; never the bytes themselves), or RPC_STRINGS_MALFORMED. why
 * is always NUL-terminated (whylen > 0) and cut to whylen. */
int rpc__check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, char *why,
                       size_t whylen);

/* --- arena (arena.c) -------------------------------------------------------- */

/* Bump allocator for what lives exactly as long as one call. The first chunk
 * is embedded in the owner so that small calls allocate nothing extra. */
typedef struct rpc_arena_chunk {
    struct rpc_arena_chunk *next;
    size_t used, cap;
    /* followed by cap bytes */
} rpc_arena_chunk;

typedef struct rpc_arena {
    rpc_arena_chunk *chunks; /* heap chunks, newest first */
    uint8_t *inline_buf;
    size_t inline_used, inline_cap;
} rpc_arena;

void rpc__arena_init(rpc_arena *a, void *inline_buf, size_t cap);
void rpc__arena_dispose(rpc_arena *a);
/* Zeroed, 16-byte aligned; NULL on ENOMEM. */
void *rpc__arena_alloc(rpc_arena *a, size_t n);
char *rpc__arena_strndup(rpc_arena *a, const char *s, size_t n);

/* --- rich error details (status_details.c) ---------------------------------- */

/* Serializes google.rpc.Status {code, message, details as google.protobuf.Any
 * "type.googleapis.com/<full name>"} into memory from a. details are only
 * read. Returns 0 (*out, *outlen set; out lives as long as a) or RPC_ENOMEM. */
int rpc__status_details_pack(rpc_arena *a, rpc_status code, const char *message,
                             const ProtobufCMessage *const *details, size_t n, uint8_t **out,
                             size_t *outlen);

/* --- web wire protocols: pure pieces (wire.c) -------------------------------- */

/* How a call is carried. gRPC is the native one; the others are framings of
 * the same call for browsers and curl (web.c holds their differences). */
typedef enum rpc_proto {
    RPC_PROTO_GRPC = 0,       /* application/grpc[+proto] */
    RPC_PROTO_GRPC_WEB,       /* application/grpc-web[+proto]: trailers in a 0x80 frame */
    RPC_PROTO_GRPC_WEB_TEXT,  /* application/grpc-web-text[+proto]: the same, base64 */
    RPC_PROTO_CONNECT,        /* Connect unary (POST application/proto|json, or GET) */
    RPC_PROTO_CONNECT_STREAM, /* application/connect+proto|json: envelopes */
    RPC_PROTO_NONE = -1,      /* a content-type none of them takes */
} rpc_proto;

/* The protocol of a request's content-type (parameters after ';' ignored,
 * names case-insensitive); *json says whether messages are JSON. */
rpc_proto rpc__wire_detect(const char *ctype, size_t len, bool *json);

/* Incremental base64 decoder for grpc-web-text bodies: input in any split;
 * each 4-character group decodes alone, so pieces encoded one by one (with
 * padding between them) decode as well as one text. */
typedef struct rpc_b64_stream {
    char carry[4];
    uint8_t ncarry;
} rpc_b64_stream;

/* Decodes what completes of in[0..n) into out (appended). Returns 0, or -1
 * if the text is not base64 (out is left with what decoded before it) or on
 * ENOMEM (-2). */
int rpc__b64_stream_feed(rpc_b64_stream *st, const char *in, size_t n, rpc_buf *out);
/* The text ended: a last group without its padding decodes now. Returns 0 or
 * -1 (a lone character is left, or it does not decode). */
int rpc__b64_stream_end(rpc_b64_stream *st, rpc_buf *out);

/* Appends the grpc-web trailer frame: flag 0x80, 4-byte length, then each
 * header as "name: value\r\n". Returns 0 or RPC_ENOMEM. */
int rpc__grpcweb_trailer_frame(rpc_buf *out, const http2_header *h, size_t n);

/* The Connect protocol's code name ("not_found", "canceled", ...; "unknown"
 * for a code out of range) and HTTP status for a status code (its table:
 * 400 invalid_argument/failed_precondition/out_of_range, 401, 403, 404, 409
 * already_exists/aborted, 429, 499 canceled, 501, 503, 504, 500 others). */
const char *rpc__connect_code_name(rpc_status code);
int rpc__connect_http_status(rpc_status code);

/* Appends s as a JSON string (quotes included); bytes that are not UTF-8
 * become U+FFFD. Returns 0 or RPC_ENOMEM. */
int rpc__json_string(rpc_buf *out, const char *s, size_t len);
/* Appends the Connect error object {"code":"...","message":"..."} (message
 * left out when NULL or empty). Returns 0 or RPC_ENOMEM. */
int rpc__connect_error_json(rpc_buf *out, rpc_status code, const char *message);

/* Parses Connect-Timeout-Ms (1..10 ASCII digits). Returns 0 or -1. */
int rpc__connect_timeout_parse(const char *s, size_t len, uint64_t *ms);

/* A Connect GET's query (?connect=v1&encoding=json|proto&message=...
 * &base64=1&compression=gzip), decoded: message in its wire form (percent-
 * and, with base64=1, URL-safe-base64-decoded) into out. Returns 0, or -1
 * with why set (a missing or malformed parameter). */
typedef struct rpc_connect_get {
    bool json;
    rpc_encoding compression;
} rpc_connect_get;
int rpc__connect_get_parse(const char *query, size_t len, rpc_connect_get *q, rpc_buf *out,
                           const char **why);

/* --- CORS (cors.c) ------------------------------------------------------------ */

/* The allowed origins of a server: a copy of rpc_server_config.cors_origins
 * split at commas. */
typedef struct rpc_cors {
    char **origins;
    size_t n;
    bool any; /* "*" is one of them */
} rpc_cors;

/* Parses a comma-separated list (NULL or "": none). Returns 0 or RPC_ENOMEM /
 * RPC_EINVAL (an empty entry). */
int rpc__cors_init(rpc_cors *c, const char *list);
void rpc__cors_dispose(rpc_cors *c);
/* Whether origin may call (never for NULL). */
bool rpc__cors_allowed(const rpc_cors *c, const char *origin, size_t len);
/* Answers a preflight OPTIONS request on s (request headers h[0..n)): 204
 * with the Access-Control-Allow-* headers for an allowed origin, 403
 * otherwise. */
void rpc__cors_preflight(const rpc_cors *c, http2_stream *s, const http2_header *h, size_t n);

/* --- server calls (server.c, call.c) ------------------------------------------ */

typedef struct rpc_method {
    const char *path; /* "/pkg.Service/Method", owned by the server */
    size_t pathlen;
    const char *service; /* "pkg.Service" (the server's copy) */
    const char *name;    /* "Method": the tail of path */
    const ProtobufCMessageDescriptor *input;
    const ProtobufCMessageDescriptor *output;
    const rpc_method_ops *ops; /* NULL: UNIMPLEMENTED */
    bool check_strings;        /* input has string fields: rpc__check_strings */
    void *service_data;
    const void *typed;
} rpc_method;

/* One registered server interceptor (server.c). */
typedef struct rpc__icept {
    rpc_interceptor ic;
    void *data;
} rpc__icept;

/* Where a call's interceptor chain is (rpc_call.ic_mode). */
enum {
    RPC_IC_IDLE = 0,     /* no interceptor is deciding */
    RPC_IC_IN_START = 1, /* inside an on_start */
    RPC_IC_PENDING = 2,  /* an on_start returned PENDING: waiting for proceed/reject */
    RPC_IC_PROCEEDED = 3 /* rpc_call_proceed() from inside on_start */
};

struct rpc_call {
    rpc_server *srv;
    http2_stream *stream; /* NULL once the stream closed */
    uv_loop_t *loop;
    const rpc_method *method;
    rpc_arena arena;
    ProtobufCAllocator allocator; /* over the arena */
    rpc_deframer deframer;
    rpc_buf inbox;   /* received bytes held back while sending is blocked or paused */
    rpc_buf scratch; /* packing/compression space for large messages */
    rpc_metadata md;
    ProtobufCMessage *req; /* the one request of non-client-streaming methods */
    rpc_buf initial_md;    /* packed [u32 klen][key][u32 vlen][value] */
    rpc_buf trailing_md;
    rpc_encoding req_enc;  /* grpc-encoding of the request */
    rpc_encoding resp_enc; /* encoding used when a response is compressed */
    uv_timer_t deadline;
    uv_timer_t timer;
    void (*timer_cb)(rpc_call *c);
    void *data;
    const rpc_principal *principal; /* in the arena; NULL: none attached */
    const char *tls_identity;       /* the connection's, kept after the stream goes */
    const struct rpc_trace *trace;  /* in the arena, made by rpc_call_trace(); NULL: not yet */
    int refs;
    unsigned nreq;
    /* traffic, for rpc_call_stats: whole messages and their wire bytes */
    uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
    /* interceptors: all zero/NULL when the server has none */
    const rpc__icept *ics; /* the server's chain */
    uint32_t nics;
    uint32_t ic_next;    /* next interceptor to start */
    uint32_t ic_started; /* how many on_start ran (each gets one on_end) */
    uint8_t ic_mode;     /* RPC_IC_* */
    void **ic_state;     /* per interceptor slot, in the arena */
    const char *peer;    /* copied at start, for on_end after the stream went */
    uint64_t start_ns;   /* uv_hrtime() at the request headers */
    uint64_t end_ns;
    rpc_status end_code;
    const char *end_message; /* in the arena; NULL: none */
    bool gate : 1;           /* interceptors are deciding: hold input */
    bool started : 1;        /* the handler sees the call */
    bool ic_end_due : 1;     /* ended inside on_start: on_end once it returns */
    bool ic_ended : 1;       /* on_end fired */
    bool deadline_on : 1;
    bool timer_on : 1;
    bool headers_sent : 1;
    bool half_closed : 1; /* the client ended its side */
    bool end_seen : 1;    /* on_end arrived (maybe not yet processed: inbox) */
    bool done : 1;        /* finished or cancelled: the handler is told nothing more */
    bool blocked : 1;     /* a send returned RPC_AGAIN: wait for on_writable */
    bool compress : 1;
    bool last_compressed : 1;
    bool in_input : 1; /* processing input: do not re-enter */
    bool paused : 1;   /* rpc_call_pause_input(): hold requests back */
    /* the wire protocol (web.c); all zero for gRPC */
    bool json : 1;           /* messages are JSON (Connect) */
    bool credit_early : 1;   /* web.c credits request bytes as they arrive */
    bool web_compressed : 1; /* Connect unary: the held response is compressed */
    int8_t proto;            /* rpc_proto */
    const char *origin;      /* CORS: the allowed Origin to echo (arena); NULL: none */
    rpc_b64_stream b64;      /* grpc-web-text: the request's open base64 group */
    rpc_buf web_in;          /* Connect unary: the request body */
    rpc_buf web_out;         /* Connect unary: the response message, sent at the end */
    uint8_t inline_arena[1024];
};

/* call.c */
rpc_call *rpc__call_new(rpc_server *srv, http2_stream *s, const rpc_method *m);
/* A call to a path no service registered (servers with interceptors only):
 * its method, in the call's arena, has no ops. */
rpc_call *rpc__call_new_unknown(rpc_server *srv, http2_stream *s, const char *path, size_t len);
void rpc__call_on_data(rpc_call *c, const uint8_t *p, size_t n);
void rpc__call_on_end(rpc_call *c);
void rpc__call_on_writable(rpc_call *c);
/* call_debug.c: debug builds (no NDEBUG) abort, with the call's state
 * logged, when c breaks the send path's wake-up invariant (rpc_call_check);
 * release builds do nothing. */
#ifdef NDEBUG
#define RPC_ASSERT_SEND_OK(c) ((void)0)
#else
void rpc__call_assert_send_ok(const rpc_call *c, const char *where);
#define RPC_ASSERT_SEND_OK(c) rpc__call_assert_send_ok((c), __func__)
#endif
void rpc__call_on_close(rpc_call *c, uint32_t h2_error);
/* Starts the deadline timer. */
void rpc__call_set_deadline(rpc_call *c, uint64_t ms);
/* intercept.c: runs the interceptor chain of a call whose headers are
 * parsed (c->ics set): then the handler, or UNIMPLEMENTED for a method
 * without one. */
void rpc__call_intercept(rpc_call *c);
/* intercept.c: the call ended (done): the started interceptors' on_end, once
 * (deferred while an on_start runs). */
void rpc__call_ic_end(rpc_call *c);
/* call.c: the chain let the call through: input flows to the handler. */
void rpc__call_start_handler(rpc_call *c);
/* call.c, for web.c: the former halves of rpc__call_on_data/on_end, after
 * the protocol's transformation of the bytes; the response headers (0 or
 * RPC_ENOMEM/RPC_ECANCELLED); packed metadata as headers (-bin values
 * base64) appended to h from *n (false on ENOMEM), and their count. */
void rpc__call_feed(rpc_call *c, const uint8_t *p, size_t n);
void rpc__call_end_input(rpc_call *c);
int rpc__call_send_headers(rpc_call *c);
bool rpc__call_md_headers(rpc_call *c, const rpc_buf *b, http2_header *h, size_t *n);
size_t rpc__call_md_count(const rpc_buf *b);

/* web.c: the web protocols on a call (see its head comment). */
/* Most headers rpc__web_base_headers writes. */
#define RPC_WEB_HEADERS_MAX 8
/* Sets c up for proto (json: JSON messages; origin: an allowed Origin to
 * echo, or NULL; query: a Connect GET's, or NULL). Returns 0, or an error
 * after which the call is finished (a shape the protocol cannot carry, a
 * bad query) or must be (RPC_ENOMEM). */
int rpc__web_open(rpc_call *c, rpc_proto proto, bool json, const char *origin, size_t originlen,
                  const char *query, size_t querylen);
/* Request headers of the web protocols that are not custom metadata
 * (connect-*, content-encoding, accept-encoding, origin). */
bool rpc__web_header_reserved(const char *name, size_t len);
/* :status, content-type, encodings and CORS headers into h (room for
 * RPC_WEB_HEADERS_MAX); returns their number. status is borrowed. */
size_t rpc__web_base_headers(rpc_call *c, http2_header *h, const char *status);
/* Queues one frame (prefix included) as the protocol carries it: as it is,
 * base64, or held (Connect unary). http2_stream_write's results. */
int rpc__web_write(rpc_call *c, const uint8_t *frame, size_t flen);
/* Sends the call's status the protocol's way and ends the stream. */
void rpc__web_status(rpc_call *c, rpc_status code, const char *message);
/* Request bytes and end of grpc-web-text and Connect unary calls. */
void rpc__web_on_data(rpc_call *c, const uint8_t *p, size_t n);
void rpc__web_on_end(rpc_call *c);
/* JSON request/response messages (Connect). decode: NULL with the call
 * finished (INVALID_ARGUMENT naming the field), or with *nomem set. encode:
 * an oms_malloc'ed text, or NULL with the call finished. */
ProtobufCMessage *rpc__web_decode_json(rpc_call *c, const uint8_t *p, size_t len,
                                       ProtobufCAllocator *alloc, bool *nomem);
char *rpc__web_encode_json(rpc_call *c, const ProtobufCMessage *m, size_t *len);

/* Trailers-Only answer on a stream that has no call (bad request). */
void rpc__respond_error(http2_stream *s, rpc_status code, const char *message);
/* server.c */
void rpc__server_call_started(rpc_server *srv);
void rpc__server_call_freed(rpc_server *srv);
const rpc_server_config *rpc__server_config(const rpc_server *srv);
/* The server's interceptor chain; NULL and *n = 0 when it has none. */
const rpc__icept *rpc__server_interceptors(const rpc_server *srv, uint32_t *n);

#endif
