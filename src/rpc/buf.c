/* buf.c - the growable byte buffer every rpc file appends into. */
#include "base/alloc.h"
#include "rpc_int.h"

#include <stdlib.h>
#include <string.h>

/* Small buffers start at this size so that a stream of tiny messages does not
 * realloc on every append. */
#define BUF_MIN_CAP 256

void rpc__buf_init(rpc_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void rpc__buf_dispose(rpc_buf *b)
{
    oms_free(b->data);
    rpc__buf_init(b);
}

int rpc__buf_reserve(rpc_buf *b, size_t n)
{
    return rpc__buf_reserve_upto(b, n, SIZE_MAX);
}

int rpc__buf_reserve_upto(rpc_buf *b, size_t n, size_t cap_limit)
{
    if (n <= b->cap - b->len)
        return 0;
    if (n > SIZE_MAX - b->len)
        return -1;
    size_t need = b->len + n;
    /* Doubling keeps appends amortised O(1); fall back to the exact size when
     * doubling would overflow or still not be enough. */
    size_t cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
    while (cap < need && cap <= SIZE_MAX / 2)
        cap *= 2;
    if (cap < need)
        cap = need;
    if (cap > cap_limit)
        cap = need > cap_limit ? need : cap_limit;
    uint8_t *p = oms_realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int rpc__buf_append(rpc_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (rpc__buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void rpc__buf_consume(rpc_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
