/* trace.h - W3C Trace Context (https://www.w3.org/TR/trace-context/):
 * the traceparent and tracestate request headers.
 *
 * A server call's trace context is what its caller sent in a valid
 * traceparent (same trace id; the caller's span becomes the parent, and this
 * call gets a span id of its own), or, when the header is absent or invalid,
 * a new trace (random trace id, no parent). tracestate is kept only along a
 * valid traceparent. A call the server makes on a call's behalf carries the
 * same trace id with a new span id (rpc_trace_child), so one request can be
 * followed across services by its trace id (the access log writes it).
 *
 * Ids come from getrandom(2) (through a small per-thread pool): never zero.
 */
#ifndef OMS_RPC_TRACE_H
#define OMS_RPC_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/export.h"

/* The longest tracestate kept (the spec asks to propagate at least 512
 * characters); a longer one is dropped whole. */
#define RPC_TRACESTATE_MAX 512
/* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define RPC_TRACEPARENT_LEN 55

typedef struct rpc_trace {
    uint8_t trace_id[16];
    uint8_t span_id[8];                 /* this call's span */
    uint8_t parent_id[8];               /* the caller's span; zero when the trace started here */
    uint8_t flags;                      /* trace-flags; bit 0 = sampled */
    bool accepted;                      /* from the caller's traceparent (false: generated here) */
    char state[RPC_TRACESTATE_MAX + 1]; /* tracestate, "" if none */
} rpc_trace;

/* Parses a traceparent header value of n bytes (not NUL-terminated) strictly:
 * version two lowercase hex digits other than "ff"; for version 00 exactly
 * 55 characters, for a later version at least 55 with a '-' after them;
 * trace id 32 and parent id 16 lowercase hex digits, neither all zeros;
 * flags two lowercase hex digits. On success fills trace_id, parent_id
 * (= the caller's span id) and flags of *out and returns 0; otherwise
 * returns -1 and leaves *out alone. */
OMS_EXTERN int rpc_traceparent_parse(const void *v, size_t n, rpc_trace *out);

/* Whether n bytes are a tracestate value we pass on: at most
 * RPC_TRACESTATE_MAX printable ASCII characters (0x20..0x7e), at most 32
 * comma-separated members, each key=value with a non-empty key made of
 * lowercase letters, digits, '_', '-', '*', '/', '@' and a value without ','
 * and '=' (spaces around members allowed). */
OMS_EXTERN bool rpc_tracestate_valid(const void *v, size_t n);

/* Fills *out from a request's headers: tp/tplen the first traceparent value
 * (NULL if none), ntp how many traceparent headers there were (more than one
 * is invalid), ts/tslen the tracestate (NULL if none). Invalid or absent:
 * a new trace id. Either way a new span id. */
OMS_EXTERN void rpc_trace_from_headers(rpc_trace *out, const void *tp, size_t tplen, size_t ntp,
                                       const void *ts, size_t tslen);

/* A child context of parent for an outgoing call: same trace id, flags and
 * tracestate, parent_id = parent's span, a new span id. parent NULL: a new
 * trace. */
OMS_EXTERN void rpc_trace_child(rpc_trace *out, const rpc_trace *parent);

/* Writes the traceparent header value of t (this span as the parent of the
 * callee: "00-<trace>-<span>-<flags>") and a NUL into out. */
OMS_EXTERN void rpc_trace_format(const rpc_trace *t, char out[RPC_TRACEPARENT_LEN + 1]);

/* Lowercase hex of n bytes and a NUL into out (2n+1 bytes). */
OMS_EXTERN void rpc_trace_hex(const uint8_t *b, size_t n, char *out);

/* n random bytes from getrandom(2) (per-thread pool). Returns 0, or -1 when
 * the kernel gives none (then the bytes come from a weaker fallback). */
OMS_EXTERN int rpc_random_bytes(void *p, size_t n);

#endif
