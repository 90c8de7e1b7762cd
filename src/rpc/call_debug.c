/* call_debug.c - a server call's send state for humans and tests: one line
 * per call (blocked on RPC_AGAIN, done, the stream below), and the rpc send
 * path's wake-up invariant: a call blocked by RPC_AGAIN gets on_ready. */
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "rpc/rpc_int.h"

int rpc_call_describe(const rpc_call *c, char *buf, size_t n)
{
    int k = snprintf(buf, n, "call %s: send blocked %d, done %d, half-closed %d; ", c->method->path,
                     c->blocked, c->done, c->half_closed);
    if (k < 0 || (size_t)k >= n)
        return k < 0 ? 0 : (int)n - 1;
    if (!c->stream)
        return k + snprintf(buf + k, n - (size_t)k, "stream closed");
    return k + http2_stream_describe(c->stream, buf + k, n - (size_t)k);
}

bool rpc_call_ready_armed(const rpc_call *c)
{
    if (c->done || !c->stream)
        return true; /* over: on_cancel or on_free follows, not on_ready */
    return c->blocked && http2_stream_writable_armed(c->stream);
}

int rpc_call_check(const rpc_call *c, char *why, size_t n)
{
    if (c->done || !c->stream)
        return 0;
    if (c->blocked && !http2_stream_writable_armed(c->stream)) {
        snprintf(why, n,
                 "call %s: blocked by RPC_AGAIN but its stream will not call "
                 "on_writable (on_ready lost)",
                 c->method->path);
        return -1;
    }
    return http2_stream_check(c->stream, why, n);
}

#ifndef NDEBUG
void rpc__call_assert_send_ok(const rpc_call *c, const char *where)
{
    char why[200], line[640];
    if (rpc_call_check(c, why, sizeof why) == 0)
        return;
    rpc_call_describe(c, line, sizeof line);
    OMS_ERROR("rpc send invariant broken in %s: %s; %s", where, why, line);
    abort();
}
#endif
