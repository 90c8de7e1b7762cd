/* store_lines.c - fuzz target: the store's order-lines blob decoder
 * (src/store/record.c: store__lines_count/store__lines_decode), as the
 * readers use it on a row's lines column: count first, decode only what the
 * count accepted, into exactly that many lines.
 *
 * A decoded blob must also re-encode to the same bytes (the format has one
 * encoding per list of lines).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any over-read. */
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    long n = store__lines_count(p, size);
    /* Some readers refuse n > STORE_MAX_LINES, one (the order row) does not:
     * decode every count the counter accepts. */
    if (n >= 0) {
        store_line *lines = calloc((size_t)n ? (size_t)n : 1, sizeof *lines);
        if (lines) {
            store__lines_decode(p, size, lines, (size_t)n);
            /* A NUL inside a SKU shortens it on re-encoding, and the
             * encoder stops at STORE_MAX_LINES; otherwise the blob must
             * come back byte for byte. */
            int exact = n <= STORE_MAX_LINES;
            for (size_t off = 0; off < size; off += 1u + p[off] + 16u)
                if (memchr(p + off + 1, 0, p[off]))
                    exact = 0;
            uint8_t *back = malloc((size_t)n * (1 + STORE_SKU_MAX + 16) + 1);
            if (back) {
                size_t len = store__lines_encode(lines, (size_t)n, back);
                if (exact && (len != size || memcmp(back, p, size) != 0)) {
                    fprintf(stderr, "fuzz: lines blob does not re-encode to itself\n");
                    abort();
                }
                free(back);
            }
            free(lines);
        }
    }
    free(p);
    return 0;
}
