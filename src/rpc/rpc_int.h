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
int rpc__buf_append(rpc_buf *b, const void *p, size_t n);
/* Drops the first n bytes. */
void rpc__buf_consume(rpc_buf *b, size_t n);

/* --- framing (framing.c) ------------------------------------------------ */

/* The 5-byte gRPC message prefix: 1 byte compressed flag, 4 bytes big-endian
 * length (doc/PROTOCOL-HTTP2.md, "Length-Prefixed-Message"). */
#define RPC_FRAME_HEADER 5

typedef enum rpc_deframe_result {
    RPC_DEFRAME_MORE = 0,     /* need more bytes */
    RPC_DEFRAME_MESSAGE = 1,  /* *msg/*len/*compressed describe a message */
    RPC_DEFRAME_TOO_BIG = -1, /* declared length > max */
    RPC_DEFRAME_BAD_FLAG = -2 /* flag byte other than 0 or 1 */
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

/* Takes bytes from *p/*n (advancing them) until one message is complete or
 * input runs out. On RPC_DEFRAME_MESSAGE, *msg points into the input or into
 * d->buf and stays valid until the next call. On error, *len holds the
 * declared length (for TOO_BIG messages). */
rpc_deframe_result rpc__deframer_next(rpc_deframer *d, const uint8_t **p, size_t *n,
                                      const uint8_t **msg, size_t *len, bool *compressed);

/* Whether a partial message is pending (a truncated stream if the peer ends). */
bool rpc__deframer_partial(const rpc_deframer *d);

/* Writes the 5-byte prefix for a message of len bytes. */
void rpc__frame_header(uint8_t out[RPC_FRAME_HEADER], bool compressed, uint32_t len);

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
/* Formats ms as a grpc-timeout value (at most 8 digits; picks the unit).
 * out must hold 10 bytes. Returns the length. */
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
/* Whether key is reserved by gRPC/HTTP2 and never surfaced as custom metadata
 * (":..." pseudo-headers, content-type, te, user-agent is kept, grpc-*). */
bool rpc__md_key_reserved(const char *key, size_t len);

/* Standard base64 with padding. out must hold rpc__base64_encoded_len(len)
 * bytes; returns the length written. */
size_t rpc__base64_encoded_len(size_t len);
size_t rpc__base64_encode(const uint8_t *in, size_t len, char *out);
/* Decodes standard base64, padded or not (gRPC peers send both). out must
 * hold len * 3 / 4 + 3 bytes. Returns the decoded length or -1 if malformed. */
long rpc__base64_decode(const char *in, size_t len, uint8_t *out);

/* --- compression (compress.c) ---------------------------------------------- */

typedef enum rpc_encoding {
    RPC_ENC_IDENTITY = 0,
    RPC_ENC_GZIP = 1,
    RPC_ENC_DEFLATE = 2,
    RPC_ENC_UNKNOWN = -1,
} rpc_encoding;

/* Parses a grpc-encoding value. */
rpc_encoding rpc__encoding_parse(const char *s, size_t len);
const char *rpc__encoding_name(rpc_encoding e);
/* Whether a grpc-accept-encoding list ("gzip, identity") contains e. */
bool rpc__encoding_accepted(const char *list, size_t len, rpc_encoding e);

/* The value we advertise in grpc-accept-encoding. */
#define RPC_ACCEPT_ENCODING "identity,deflate,gzip"

/* Compresses in into out (appended) with gzip or deflate (zlib format).
 * Returns 0 or -1. */
int rpc__compress(rpc_encoding e, const uint8_t *in, size_t len, rpc_buf *out);
/* Decompresses into out (appended), failing with -2 if the result would pass
 * max bytes (a zip bomb stops early) and -1 if the input is corrupt. */
int rpc__decompress(rpc_encoding e, const uint8_t *in, size_t len, size_t max, rpc_buf *out);

#endif
