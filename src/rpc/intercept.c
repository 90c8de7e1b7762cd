/* intercept.c - the server's interceptor chain: each call walks it before its
 * handler sees anything (rpc.h, "interceptors"), and every interceptor that
 * started is told once how the call ended.
 *
 * call.c holds the call's input back (c->gate) while the chain decides, and
 * calls rpc__call_ic_end() wherever a call ends (finish, deadline, stream
 * close). Servers without interceptors never get here (c->ics is NULL). */
#include <stdio.h>
#include <string.h>

#include "rpc/rpc_int.h"

/* The chain let the call through: hand it to its handler, or answer
 * UNIMPLEMENTED when it has none. */
static void pass(rpc_call *c)
{
    const rpc_method *m = c->method;
    if (!m->ops) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %s", m->input ? "method not implemented" : "unknown method",
                 RPC_QUOTE(m->path, m->pathlen));
        rpc_call_finish(c, RPC_UNIMPLEMENTED, msg);
        return;
    }
    rpc__call_start_handler(c);
}

/* Starts interceptors from c->ic_next on until one is pending or the call
 * ends; after the last, the call passes. */
static void run_chain(rpc_call *c)
{
    rpc_call_ref(c);
    while (!c->done && c->ic_next < c->nics) {
        uint32_t i = c->ic_next++;
        const rpc__icept *x = &c->ics[i];
        c->ic_started = i + 1;
        c->ic_mode = RPC_IC_IN_START;
        rpc_intercept_action a = x->ic.on_start(c, x->data, &c->ic_state[i]);
        bool pending = a == RPC_INTERCEPT_PENDING && c->ic_mode != RPC_IC_PROCEEDED;
        c->ic_mode = RPC_IC_IDLE;
        if (c->ic_end_due) { /* rejected inside on_start: tell them now */
            c->ic_end_due = false;
            rpc__call_ic_end(c);
        }
        if (!c->done && pending) {
            c->ic_mode = RPC_IC_PENDING;
            rpc_call_unref(c);
            return;
        }
    }
    if (!c->done)
        pass(c);
    rpc_call_unref(c);
}

void rpc__call_intercept(rpc_call *c)
{
    if (!c->done)
        run_chain(c);
}

void rpc__call_ic_end(rpc_call *c)
{
    if (c->ic_ended || !c->done)
        return;
    if (c->ic_mode == RPC_IC_IN_START || c->ic_mode == RPC_IC_PROCEEDED) {
        c->ic_end_due = true;
        return;
    }
    c->ic_ended = true;
    c->ic_mode = RPC_IC_IDLE;
    rpc_call_stats st;
    rpc_call_get_stats(c, &st);
    rpc_call_ref(c); /* an on_end may drop the reference its interceptor held */
    for (uint32_t i = c->ic_started; i-- > 0;) {
        const rpc__icept *x = &c->ics[i];
        if (x->ic.on_end)
            x->ic.on_end(c, x->data, c->ic_state[i], &st);
    }
    rpc_call_unref(c);
}

int rpc_call_proceed(rpc_call *c)
{
    if (c->done)
        return RPC_ECANCELLED;
    if (c->ic_mode == RPC_IC_IN_START) {
        c->ic_mode = RPC_IC_PROCEEDED;
        return 0;
    }
    if (c->ic_mode != RPC_IC_PENDING)
        return RPC_EINVAL;
    c->ic_mode = RPC_IC_IDLE;
    run_chain(c);
    return 0;
}

int rpc_call_reject(rpc_call *c, rpc_status code, const char *message)
{
    if (c->done)
        return RPC_ECANCELLED;
    if (code == RPC_OK || c->started)
        return RPC_EINVAL;
    if (c->ic_mode == RPC_IC_PENDING)
        c->ic_mode = RPC_IC_IDLE;
    rpc_call_finish(c, code, message);
    return 0;
}

/* --- what interceptors (and handlers) read ---------------------------------- */

const char *rpc_call_service(const rpc_call *c)
{
    return c->method->service;
}

const char *rpc_call_method(const rpc_call *c)
{
    return c->method->name;
}

rpc_call_type rpc_call_get_type(const rpc_call *c)
{
    const rpc_method_ops *ops = c->method->ops;
    if (!ops)
        return RPC_CALL_UNKNOWN;
    return (rpc_call_type)(ops->flags & (RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING));
}

void rpc_call_get_stats(const rpc_call *c, rpc_call_stats *out)
{
    out->code = c->done ? c->end_code : RPC_UNKNOWN;
    out->message = c->done ? c->end_message : NULL;
    out->duration_ns = 0;
    if (c->start_ns)
        out->duration_ns = (c->done ? c->end_ns : uv_hrtime()) - c->start_ns;
    out->msgs_received = c->msgs_in;
    out->bytes_received = c->bytes_in;
    out->msgs_sent = c->msgs_out;
    out->bytes_sent = c->bytes_out;
    out->principal = c->principal;
}
