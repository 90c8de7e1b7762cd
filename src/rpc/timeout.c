/* timeout.c - the grpc-timeout header (PROTOCOL-HTTP2.md, "Requests"):
 * TimeoutValue (at most 8 ASCII digits) followed by one TimeoutUnit.
 */
#include "rpc_int.h"

#include <stdio.h>

#define MAX_DIGITS 8
#define MAX_VALUE  99999999u
#define SATURATE   (UINT64_MAX / 2)

int rpc__timeout_parse(const char *s, size_t len, uint64_t *ms)
{
    if (len < 2 || len > MAX_DIGITS + 1)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    /* Sub-millisecond units round up: truncating 1n to 0 ms would turn a
     * live deadline into one that has already passed. */
    uint64_t out;
    switch (s[len - 1]) {
    case 'H':
        out = v * 3600000u;
        break;
    case 'M':
        out = v * 60000u;
        break;
    case 'S':
        out = v * 1000u;
        break;
    case 'm':
        out = v;
        break;
    case 'u':
        out = (v + 999u) / 1000u;
        break;
    case 'n':
        out = (v + 999999u) / 1000000u;
        break;
    default:
        return -1;
    }
    /* With 8 digits the largest value, 99999999H, is about 3.6e14 ms, so
     * this cannot trigger today; it keeps the documented bound should the
     * digit limit ever be relaxed, and leaves room for now + timeout. */
    *ms = out > SATURATE ? SATURATE : out;
    return 0;
}

size_t rpc__timeout_format(uint64_t ms, char out[10])
{
    /* A zero or past deadline is sent as the smallest positive timeout, as
     * grpc core does: the spec asks for a positive value, and the peer will
     * expire the call at once either way. */
    if (ms == 0)
        return (size_t)snprintf(out, 10, "1n");
    /* Use the finest unit that fits in 8 digits, rounding up so the peer
     * never gives up before we would. */
    static const struct {
        uint64_t ms_per_unit;
        char unit;
    } units[] = {{1u, 'm'}, {1000u, 'S'}, {60000u, 'M'}, {3600000u, 'H'}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        uint64_t v = ms / units[i].ms_per_unit + (ms % units[i].ms_per_unit != 0);
        if (v <= MAX_VALUE)
            return (size_t)snprintf(out, 10, "%llu%c", (unsigned long long)v, units[i].unit);
    }
    return (size_t)snprintf(out, 10, "%u%c", MAX_VALUE, 'H');
}
