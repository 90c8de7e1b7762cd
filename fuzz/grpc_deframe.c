/* grpc_deframe.c - fuzz target: the gRPC message deframer with decompression
 * (src/rpc/framing.c, compress.c), used the way a call uses them: DATA
 * payloads of any size go in, whole messages come out, and compressed ones
 * are inflated under the receive limit.
 *
 * Input: byte 0 = options (bits 0-1: grpc-encoding identity/gzip/deflate/
 * unknown; bits 2-4: the DATA payload size, 1 byte to the whole input; bits
 * 5-7: the limit), then the stream of length-prefixed messages. Every
 * uncompressed message is also compressed and inflated back (round trip).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "rpc/rpc_int.h"

static const size_t chunk_sizes[8] = {1, 2, 3, 5, 16, 100, 4096, SIZE_MAX};
static const size_t limits[8] = {0, 1, 16, 100, 1024, 4096, 65536, 4 << 20};

static void on_message(rpc_encoding enc, size_t max, const uint8_t *msg, size_t len,
                       bool compressed)
{
    rpc_buf out;
    rpc__buf_init(&out);
    if (compressed) {
        int rv = rpc__decompress(enc, msg, len, max, &out);
        CHECK(rv == 0 || rv == -1 || rv == -2);
        CHECK(rv == 0 ? out.len <= max : out.len == 0);
    } else {
        /* round trip through the same encoding */
        if (enc != RPC_ENC_UNKNOWN && rpc__compress(enc, msg, len, &out) == 0) {
            rpc_buf back;
            rpc__buf_init(&back);
            CHECK(rpc__decompress(enc, out.data, out.len, len, &back) == 0);
            CHECK(back.len == len && (len == 0 || memcmp(back.data, msg, len) == 0));
            rpc__buf_dispose(&back);
        }
    }
    rpc__buf_dispose(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const rpc_encoding encs[4] = {RPC_ENC_IDENTITY, RPC_ENC_GZIP, RPC_ENC_DEFLATE,
                                         RPC_ENC_UNKNOWN};
    rpc_encoding enc = encs[data[0] & 3];
    size_t chunk = chunk_sizes[(data[0] >> 2) & 7];
    size_t max = limits[(data[0] >> 5) & 7];
    const uint8_t *in = data + 1;
    size_t left = size - 1;

    rpc_deframer d;
    rpc__deframer_init(&d, max);
    int done = 0;
    while (left > 0 && !done) {
        size_t n = left < chunk ? left : chunk;
        /* Each DATA payload in a buffer of its own size, as nghttp2 hands
         * them over, so that ASan sees a read past the payload. */
        uint8_t *payload = malloc(n);
        CHECK(payload != NULL);
        memcpy(payload, in, n);
        in += n;
        left -= n;
        const uint8_t *p = payload;
        size_t pn = n;
        for (;;) {
            const uint8_t *msg;
            size_t len = 0;
            bool compressed = false;
            rpc_deframe_result r = rpc__deframer_next(&d, &p, &pn, &msg, &len, &compressed);
            if (r == RPC_DEFRAME_MESSAGE) {
                CHECK(len <= max);
                on_message(enc, max, msg, len, compressed);
                continue;
            }
            if (r == RPC_DEFRAME_MORE) {
                CHECK(pn == 0);
                break;
            }
            CHECK(r == RPC_DEFRAME_TOO_BIG || r == RPC_DEFRAME_BAD_FLAG);
            CHECK(rpc__deframer_partial(&d));
            done = 1; /* the call ends here */
            break;
        }
        free(payload);
    }
    rpc__deframer_dispose(&d);
    return 0;
}
