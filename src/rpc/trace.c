/* trace.c - W3C trace context (trace.h) and the server call's accessor. */
#include "rpc/trace.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "rpc/rpc_int.h"

/* Per-thread pool, so that a call costs no system call: getrandom(2) refills
 * it 256 bytes at a time. */
#define POOL_SIZE 256
static _Thread_local uint8_t pool[POOL_SIZE];
static _Thread_local size_t pool_left;

/* xorshift over the clock and an address, only if getrandom fails (it does
 * not on Linux >= 3.17 once the pool is initialised). */
static void weak_fill(uint8_t *p, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)p;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

int rpc_random_bytes(void *out, size_t n)
{
    uint8_t *p = out;
    int rv = 0;
    while (n) {
        if (!pool_left) {
            ssize_t got;
            do
                got = getrandom(pool, sizeof pool, 0);
            while (got < 0 && errno == EINTR);
            if (got <= 0) {
                weak_fill(pool, sizeof pool);
                got = sizeof pool;
                rv = -1;
            }
            pool_left = (size_t)got;
        }
        size_t k = n < pool_left ? n : pool_left;
        memcpy(p, pool + (POOL_SIZE - pool_left), k);
        memset(pool + (POOL_SIZE - pool_left), 0, k); /* used bytes are not kept */
        pool_left -= k;
        p += k;
        n -= k;
    }
    return rv;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* A non-zero random id. */
static void new_id(uint8_t *b, size_t n)
{
    do
        rpc_random_bytes(b, n);
    while (all_zero(b, n));
}

static int hexval(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1; /* uppercase is invalid in traceparent */
}

/* n bytes from 2n lowercase hex digits. */
static int unhex(const uint8_t *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int rpc_traceparent_parse(const void *v, size_t n, rpc_trace *out)
{
    const uint8_t *s = v;
    uint8_t version, tid[16], pid[8], flags;
    if (!s || n < RPC_TRACEPARENT_LEN || unhex(s, 1, &version) != 0 || version == 0xff)
        return -1;
    if (version == 0 ? n != RPC_TRACEPARENT_LEN : (n > RPC_TRACEPARENT_LEN && s[55] != '-'))
        return -1;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    if (unhex(s + 3, 16, tid) != 0 || unhex(s + 36, 8, pid) != 0 || unhex(s + 53, 1, &flags) != 0)
        return -1;
    if (all_zero(tid, sizeof tid) || all_zero(pid, sizeof pid))
        return -1;
    memcpy(out->trace_id, tid, sizeof tid);
    memcpy(out->parent_id, pid, sizeof pid);
    out->flags = flags;
    return 0;
}

static bool key_char(uint8_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
           ch == '*' || ch == '/' || ch == '@';
}

bool rpc_tracestate_valid(const void *v, size_t n)
{
    const uint8_t *s = v;
    if (n > RPC_TRACESTATE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    size_t members = 0, i = 0;
    while (i <= n) {
        size_t end = i;
        while (end < n && s[end] != ',')
            end++;
        size_t a = i, b = end;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        if (a < b) { /* empty members are allowed and skipped */
            size_t eq = a;
            while (eq < b && s[eq] != '=')
                eq++;
            if (eq == a || eq == b || eq + 1 == b)
                return false; /* no key, no '=', or an empty value */
            for (size_t k = a; k < eq; k++)
                if (!key_char(s[k]))
                    return false;
            for (size_t k = eq + 1; k < b; k++)
                if (s[k] == '=')
                    return false;
            if (++members > 32)
                return false;
        }
        i = end + 1;
    }
    return true;
}

void rpc_trace_from_headers(rpc_trace *out, const void *tp, size_t tplen, size_t ntp,
                            const void *ts, size_t tslen)
{
    memset(out, 0, sizeof *out);
    if (tp && ntp == 1 && rpc_traceparent_parse(tp, tplen, out) == 0) {
        out->accepted = true;
        if (out->flags & ~1u && tplen == RPC_TRACEPARENT_LEN)
            out->flags &= 1u; /* version 00 defines only "sampled" */
        if (ts && rpc_tracestate_valid(ts, tslen)) {
            memcpy(out->state, ts, tslen);
            out->state[tslen] = '\0';
        }
    } else {
        new_id(out->trace_id, sizeof out->trace_id);
    }
    new_id(out->span_id, sizeof out->span_id);
}

void rpc_trace_child(rpc_trace *out, const rpc_trace *parent)
{
    if (!parent) {
        rpc_trace_from_headers(out, NULL, 0, 0, NULL, 0);
        return;
    }
    if (out != parent)
        *out = *parent;
    memcpy(out->parent_id, parent->span_id, sizeof out->parent_id);
    out->accepted = false;
    new_id(out->span_id, sizeof out->span_id);
}

void rpc_trace_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void rpc_trace_format(const rpc_trace *t, char out[RPC_TRACEPARENT_LEN + 1])
{
    memcpy(out, "00-", 3);
    rpc_trace_hex(t->trace_id, 16, out + 3);
    out[35] = '-';
    rpc_trace_hex(t->span_id, 8, out + 36);
    out[52] = '-';
    rpc_trace_hex(&t->flags, 1, out + 53);
}

const rpc_trace *rpc_call_trace(rpc_call *c)
{
    if (c->trace)
        return c->trace;
    rpc_trace *t = rpc_call_alloc(c, sizeof *t);
    if (!t)
        return NULL;
    size_t tplen = 0, tslen = 0, ntp = 0;
    const uint8_t *tp = NULL;
    for (size_t i = 0; i < c->md.count; i++)
        if (strcmp(c->md.items[i].key, "traceparent") == 0 && ntp++ == 0) {
            tp = c->md.items[i].value;
            tplen = c->md.items[i].len;
        }
    const uint8_t *ts = rpc_metadata_get(&c->md, "tracestate", &tslen);
    rpc_trace_from_headers(t, tp, tplen, ntp, ts, tslen);
    c->trace = t;
    return t;
}
