/* framing.c - gRPC Length-Prefixed-Message framing.
 *
 * HTTP/2 splits and merges DATA frames as it likes, so the deframer takes
 * bytes in any chunking and hands back whole messages. A message that lies
 * entirely in the caller's input is returned in place; only messages that
 * straddle two feeds are gathered in d->buf.
 *
 * The deframer keeps no state besides its buffer; what the buffer holds says
 * where it stands (see buf_state()). That keeps the struct small and makes it
 * impossible for a flag and the buffer to disagree.
 */
#include "rpc_int.h"

#include <string.h>

/* A gathering buffer above this size is freed once its message was handed
 * out, so one large message does not pin memory for the rest of the stream. */
#define KEEP_CAP (64 * 1024)

enum buf_state {
    ST_EMPTY,    /* between messages */
    ST_PARTIAL,  /* part of a prefix or body gathered */
    ST_DONE,     /* holds the message the previous call returned */
    ST_BAD_FLAG, /* holds a flag byte other than 0 or 1 */
    ST_TOO_BIG,  /* holds a prefix declaring more than max_len */
};

static uint32_t read_len(const uint8_t *h)
{
    return (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | (uint32_t)h[4];
}

static bool too_big(const rpc_deframer *d, uint32_t len)
{
#if SIZE_MAX <= UINT32_MAX
    /* With a 32-bit size_t, RPC_FRAME_HEADER + len could wrap. */
    if (len > SIZE_MAX - RPC_FRAME_HEADER)
        return true;
#endif
    return len > d->max_len;
}

/* Errors stay in the buffer, so they are sticky: a caller that keeps feeding
 * after an error gets the same error again rather than garbage resynced as
 * messages. */
static enum buf_state buf_state(const rpc_deframer *d)
{
    const rpc_buf *b = &d->buf;
    if (b->len == 0)
        return ST_EMPTY;
    if (b->data[0] > 1)
        return ST_BAD_FLAG;
    if (b->len < RPC_FRAME_HEADER)
        return ST_PARTIAL;
    uint32_t len = read_len(b->data);
    if (too_big(d, len))
        return ST_TOO_BIG;
    return b->len == RPC_FRAME_HEADER + (size_t)len ? ST_DONE : ST_PARTIAL;
}

/* Capacity follows the bytes that actually arrived, never the declared
 * length: a peer that declares 4 MiB and sends 6 bytes must not make us
 * allocate 4 MiB per stream. Growth stops at the message's total size so a
 * large message does not end up with twice its size allocated. */
static int gather(rpc_buf *b, const uint8_t **p, size_t *n, size_t take, size_t total)
{
    if (take == 0)
        return 0;
    if (rpc__buf_reserve_upto(b, take, total) != 0)
        return -1;
    memcpy(b->data + b->len, *p, take);
    b->len += take;
    *p += take;
    *n -= take;
    return 0;
}

void rpc__deframer_init(rpc_deframer *d, size_t max_len)
{
    rpc__buf_init(&d->buf);
    d->max_len = max_len;
}

void rpc__deframer_dispose(rpc_deframer *d)
{
    rpc__buf_dispose(&d->buf);
}

rpc_deframe_result rpc__deframer_next(rpc_deframer *d, const uint8_t **p, size_t *n,
                                      const uint8_t **msg, size_t *len, bool *compressed)
{
    rpc_buf *b = &d->buf;

    switch (buf_state(d)) {
    case ST_DONE:
        if (b->cap > KEEP_CAP)
            rpc__buf_dispose(b);
        b->len = 0;
        break;
    case ST_BAD_FLAG:
        *len = 0;
        return RPC_DEFRAME_BAD_FLAG;
    case ST_TOO_BIG:
        *len = read_len(b->data);
        return RPC_DEFRAME_TOO_BIG;
    case ST_EMPTY:
    case ST_PARTIAL:
        break;
    }

    /* Fast path: a whole message at the start of the input, returned in place. */
    if (b->len == 0 && *n >= RPC_FRAME_HEADER && (*p)[0] <= 1) {
        uint32_t mlen = read_len(*p);
        if (!too_big(d, mlen) && *n - RPC_FRAME_HEADER >= mlen) {
            *msg = *p + RPC_FRAME_HEADER;
            *len = mlen;
            *compressed = (*p)[0] == 1;
            *p += RPC_FRAME_HEADER + mlen;
            *n -= RPC_FRAME_HEADER + mlen;
            return RPC_DEFRAME_MESSAGE;
        }
    }

    if (b->len < RPC_FRAME_HEADER) {
        if (*n == 0)
            return RPC_DEFRAME_MORE;
        /* Check the flag as soon as it arrives: nothing after a bad flag
         * byte can be trusted, not even the length. */
        if (b->len == 0 && (*p)[0] > 1) {
            if (gather(b, p, n, 1, SIZE_MAX) != 0)
                return RPC_DEFRAME_NOMEM;
            *len = 0;
            return RPC_DEFRAME_BAD_FLAG;
        }
        size_t take = RPC_FRAME_HEADER - b->len;
        if (take > *n)
            take = *n;
        if (gather(b, p, n, take, SIZE_MAX) != 0)
            return RPC_DEFRAME_NOMEM;
        if (b->len < RPC_FRAME_HEADER)
            return RPC_DEFRAME_MORE;
        uint32_t mlen = read_len(b->data);
        if (too_big(d, mlen)) {
            /* Reported now, before any of the body is buffered. */
            *len = mlen;
            return RPC_DEFRAME_TOO_BIG;
        }
    }

    uint32_t mlen = read_len(b->data);
    size_t total = RPC_FRAME_HEADER + (size_t)mlen;
    size_t take = total - b->len;
    if (take > *n)
        take = *n;
    if (gather(b, p, n, take, total) != 0)
        return RPC_DEFRAME_NOMEM;
    if (b->len < total)
        return RPC_DEFRAME_MORE;
    *msg = b->data + RPC_FRAME_HEADER;
    *len = mlen;
    *compressed = b->data[0] == 1;
    return RPC_DEFRAME_MESSAGE;
}

bool rpc__deframer_partial(const rpc_deframer *d)
{
    enum buf_state st = buf_state(d);
    return st != ST_EMPTY && st != ST_DONE;
}

void rpc__frame_header(uint8_t out[RPC_FRAME_HEADER], bool compressed, uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}
