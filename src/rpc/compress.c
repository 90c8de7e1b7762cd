/* compress.c - message compression (doc/compression.md): "gzip" is RFC 1952
 * and "deflate" is the zlib format (RFC 1950), as grpc core sends it.
 */
#include "rpc_int.h"

#include <limits.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define GZIP_WINDOW_BITS 31 /* 15 + 16: gzip wrapper */
#define ZLIB_WINDOW_BITS 15

/* Output buffers start with room for this much and then double. */
#define GROW_STEP (16 * 1024)
/* Inputs whose deflateBound() is below this get it reserved at once, so that
 * small messages compress in one pass. */
#define ONE_PASS_MAX (64 * 1024)

static const char *const NAMES[] = {
    [RPC_ENC_IDENTITY] = "identity",
    [RPC_ENC_GZIP] = "gzip",
    [RPC_ENC_DEFLATE] = "deflate",
};

/* Content codings are case-insensitive in HTTP (RFC 9110 section 8.4.1). */
rpc_encoding rpc__encoding_parse(const char *s, size_t len)
{
    for (int e = 0; e < (int)(sizeof NAMES / sizeof NAMES[0]); e++) {
        if (strlen(NAMES[e]) == len && strncasecmp(s, NAMES[e], len) == 0)
            return (rpc_encoding)e;
    }
    return RPC_ENC_UNKNOWN;
}

const char *rpc__encoding_name(rpc_encoding e)
{
    if (e < 0 || (size_t)e >= sizeof NAMES / sizeof NAMES[0])
        return "unknown";
    return NAMES[e];
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool rpc__encoding_accepted(const char *list, size_t len, rpc_encoding e)
{
    if (e == RPC_ENC_IDENTITY)
        return true;
    if (e == RPC_ENC_UNKNOWN)
        return false;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && list[i] != ',')
            i++;
        size_t end = i++;
        /* Drop whitespace and any ";q=..." parameter; gRPC sends neither,
         * but HTTP allows both. */
        for (size_t k = start; k < end; k++) {
            if (list[k] == ';') {
                end = k;
                break;
            }
        }
        while (start < end && is_ows(list[start]))
            start++;
        while (end > start && is_ows(list[end - 1]))
            end--;
        if (rpc__encoding_parse(list + start, end - start) == e)
            return true;
    }
    return false;
}

static int window_bits(rpc_encoding e)
{
    return e == RPC_ENC_GZIP ? GZIP_WINDOW_BITS : ZLIB_WINDOW_BITS;
}

/* zlib counts in uInt; feed it at most that much at a time. */
static uInt clamp_uint(size_t n)
{
    return n > UINT_MAX ? UINT_MAX : (uInt)n;
}

int rpc__compress(rpc_encoding e, const uint8_t *in, size_t len, rpc_buf *out)
{
    if (e == RPC_ENC_IDENTITY)
        return rpc__buf_append(out, in, len);
    if (e != RPC_ENC_GZIP && e != RPC_ENC_DEFLATE)
        return -1;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits(e), 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t start = out->len;
    /* Output never exceeds deflateBound(), so growth stops there; large
     * inputs start smaller since messages usually compress well. */
    size_t bound = deflateBound(&zs, (uLong)len);
    size_t cap_limit = bound > SIZE_MAX - start ? SIZE_MAX : start + bound;
    if (rpc__buf_reserve_upto(out, bound < ONE_PASS_MAX ? bound : GROW_STEP, cap_limit) != 0)
        goto fail;
    zs.next_in = (Bytef *)in; /* zlib's API is not const-correct */
    size_t left = len;
    for (;;) {
        if (out->cap == out->len && rpc__buf_reserve_upto(out, GROW_STEP, cap_limit) != 0)
            goto fail;
        zs.avail_in = clamp_uint(left);
        left -= zs.avail_in;
        zs.next_out = out->data + out->len;
        zs.avail_out = clamp_uint(out->cap - out->len);
        uInt had_out = zs.avail_out;
        int rv = deflate(&zs, left == 0 ? Z_FINISH : Z_NO_FLUSH);
        out->len += had_out - zs.avail_out;
        left += zs.avail_in;
        if (rv == Z_STREAM_END)
            break;
        if (rv != Z_OK && rv != Z_BUF_ERROR)
            goto fail;
    }
    deflateEnd(&zs);
    return 0;

fail:
    deflateEnd(&zs);
    out->len = start;
    return -1;
}

int rpc__decompress(rpc_encoding e, const uint8_t *in, size_t len, size_t max, rpc_buf *out)
{
    if (e == RPC_ENC_IDENTITY) {
        if (len > max)
            return -2;
        return rpc__buf_append(out, in, len);
    }
    if (e != RPC_ENC_GZIP && e != RPC_ENC_DEFLATE)
        return -1;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, window_bits(e)) != Z_OK)
        return -1;
    size_t start = out->len;
    /* Room for max + 1 bytes: producing the extra byte is how we learn the
     * output would pass max, without inflating a byte more than that. */
    size_t limit = max == SIZE_MAX ? max : max + 1;
    size_t cap_limit = limit > SIZE_MAX - start ? SIZE_MAX : start + limit;
    size_t produced = 0;
    int rv = -1;
    zs.next_in = (Bytef *)in;
    size_t left = len;
    for (;;) {
        if (out->cap == out->len) {
            /* Grow with the output, never by a guess from the compressed
             * size: the ratio is the sender's choice. */
            size_t step = GROW_STEP < limit - produced ? GROW_STEP : limit - produced;
            if (rpc__buf_reserve_upto(out, step, cap_limit) != 0)
                goto done;
        }
        size_t room = out->cap - out->len;
        if (room > limit - produced)
            room = limit - produced;
        zs.avail_in = clamp_uint(left);
        left -= zs.avail_in;
        zs.next_out = out->data + out->len;
        zs.avail_out = clamp_uint(room);
        uInt had_out = zs.avail_out;
        int zrv = inflate(&zs, Z_NO_FLUSH);
        out->len += had_out - zs.avail_out;
        produced += had_out - zs.avail_out;
        left += zs.avail_in;
        if (produced > max) {
            rv = -2;
            goto done;
        }
        if (zrv == Z_STREAM_END) {
            /* Bytes after the end of the stream are corrupt input, as in
             * grpc core: a message is one compressed stream. */
            rv = left == 0 ? 0 : -1;
            goto done;
        }
        if (zrv == Z_BUF_ERROR && zs.avail_out != 0) {
            /* Output room left but no progress: the input was truncated. */
            goto done;
        }
        if (zrv != Z_OK && zrv != Z_BUF_ERROR)
            goto done; /* Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR */
    }

done:
    inflateEnd(&zs);
    if (rv != 0)
        out->len = start;
    return rv;
}
