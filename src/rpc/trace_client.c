/* trace_client.c - W3C trace context on client calls (rpc_client.h). */
#include <string.h>

#include "rpc/client_int.h"
#include "rpc/trace.h"

const rpc_trace *rpc_client_call_trace(const rpc_client_call *c)
{
    return c->trace;
}

/* A child span of the call's trace (a new trace without one): its
 * traceparent, and the tracestate passed through. A call whose metadata
 * cannot be added goes without (tracing never fails a call). */
static void on_trace_start(rpc_client_call *c, void *data)
{
    (void)data;
    rpc_trace t;
    rpc_trace_child(&t, c->trace);
    char tp[RPC_TRACEPARENT_LEN + 1];
    rpc_trace_format(&t, tp);
    if (rpc_client_call_add_md(c, "traceparent", (const uint8_t *)tp, RPC_TRACEPARENT_LEN) != 0)
        return;
    if (t.state[0])
        rpc_client_call_add_md(c, "tracestate", (const uint8_t *)t.state, strlen(t.state));
}

const rpc_client_interceptor *rpc_trace_client_interceptor(void)
{
    static const rpc_client_interceptor ic = {.name = "trace", .on_start = on_trace_start};
    return &ic;
}
