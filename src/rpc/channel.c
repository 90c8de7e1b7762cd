/* channel.c - a channel's addresses and connections: lazy connect, gRPC
 * connection backoff, round-robin over ready connections, GOAWAY. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "rpc/client_int.h"

void rpc_channel_config_init(rpc_channel_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->tls = true;
    cfg->backoff_initial_ms = 1000;
    cfg->backoff_multiplier = 1.6;
    cfg->backoff_jitter = 0.2;
    cfg->backoff_max_ms = 120000;
    cfg->connect_timeout_ms = 20000;
    cfg->keepalive_timeout_ms = 20000;
    cfg->max_recv_msg = 4u << 20;
    cfg->retry.max_attempts = 3;
    cfg->retry.initial_backoff_ms = 100;
    cfg->retry.max_backoff_ms = 2000;
    cfg->retry.backoff_multiplier = 2.0;
    cfg->retry.retryable_codes = 1u << RPC_UNAVAILABLE;
    cfg->retry.buffer_limit = 256u << 10;
}

/* Copies the config's strings into one block owned by the channel. */
static int copy_strings(rpc_channel *ch, const rpc_channel_config *cfg)
{
    const char **fields[] = {&ch->cfg.target,    &ch->cfg.ca_file,  &ch->cfg.server_name,
                             &ch->cfg.cert_file, &ch->cfg.key_file, &ch->cfg.user_agent,
                             &ch->cfg.token};
    const char *values[] = {cfg->target,   cfg->ca_file,    cfg->server_name, cfg->cert_file,
                            cfg->key_file, cfg->user_agent, cfg->token};
    enum { NSTRS = sizeof values / sizeof values[0] };
    size_t total = 0;
    for (size_t i = 0; i < NSTRS; i++)
        total += values[i] ? strlen(values[i]) + 1 : 0;
    ch->strs = oms_malloc(total ? total : 1);
    if (!ch->strs)
        return -1;
    char *p = ch->strs;
    for (size_t i = 0; i < NSTRS; i++) {
        if (!values[i]) {
            *fields[i] = NULL;
            continue;
        }
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        *fields[i] = p;
        p += n;
    }
    return 0;
}

/* Splits "host:port" / "[v6]:port" at the port. */
static int split_hostport(const char *s, size_t n, char *host, size_t hostlen, char *port,
                          size_t portlen)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || close + 1 >= s + n || close[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = NULL;
        for (const char *q = s; q < s + n; q++)
            if (*q == ':')
                colon = q;
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    size_t pl = (size_t)(s + n - colon - 1);
    if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
    for (size_t i = 0; i < pl; i++)
        if (port[i] < '0' || port[i] > '9')
            return -1;
    return 0;
}

/* Resolves every host:port of the target; each resolved address becomes a
 * subchannel. Resolution happens once, at channel creation. */
static int resolve_target(rpc_channel *ch, char *err, size_t errlen)
{
    const char *t = ch->cfg.target;
    size_t cap = 0;
    char first_host[100] = "";
    while (*t) {
        const char *end = strchr(t, ',');
        size_t n = end ? (size_t)(end - t) : strlen(t);
        char host[100], port[8];
        if (split_hostport(t, n, host, sizeof host, port, sizeof port) != 0) {
            snprintf(err, errlen, "bad target '%.*s' (want host:port[,host:port...])", (int)n, t);
            return -1;
        }
        if (!first_host[0])
            snprintf(first_host, sizeof first_host, "%s", host);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int rv = getaddrinfo(host, port, &hints, &res);
        if (rv != 0) {
            snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rv));
            return -1;
        }
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
                continue;
            bool dup = false;
            for (size_t i = 0; i < ch->nsubs; i++)
                if (memcmp(&ch->subs[i].addr, ai->ai_addr, ai->ai_addrlen) == 0)
                    dup = true;
            if (dup)
                continue;
            if (ch->nsubs == cap) {
                cap = cap ? cap * 2 : 4;
                rpc_subchannel *subs = oms_realloc(ch->subs, cap * sizeof *subs);
                if (!subs) {
                    freeaddrinfo(res);
                    snprintf(err, errlen, "out of memory");
                    return -1;
                }
                ch->subs = subs;
            }
            rpc_subchannel *sc = &ch->subs[ch->nsubs++];
            memset(sc, 0, sizeof *sc);
            memcpy(&sc->addr, ai->ai_addr, ai->ai_addrlen);
            char ip[INET6_ADDRSTRLEN] = "";
            if (ai->ai_family == AF_INET6)
                uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, ip, sizeof ip);
            else
                uv_ip4_name((struct sockaddr_in *)ai->ai_addr, ip, sizeof ip);
            snprintf(sc->name, sizeof sc->name, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip,
                     port);
        }
        freeaddrinfo(res);
        t += n;
        if (*t == ',')
            t++;
    }
    if (ch->nsubs == 0) {
        snprintf(err, errlen, "target '%s' has no address", ch->cfg.target);
        return -1;
    }
    if (!ch->cfg.server_name)
        ch->cfg.server_name = NULL; /* per-subchannel default below */
    snprintf(ch->authority, sizeof ch->authority, "%s",
             ch->cfg.server_name ? ch->cfg.server_name : first_host);
    return 0;
}

rpc_channel *rpc_channel_new(uv_loop_t *loop, const rpc_channel_config *cfg, char *err,
                             size_t errlen)
{
    rpc_channel *ch = oms_calloc(1, sizeof *ch);
    if (!ch) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ch->loop = loop;
    ch->cfg = *cfg;
    ch->tls = cfg->tls;
    ch->rng = uv_hrtime() | 1;
    if (!cfg->target || copy_strings(ch, cfg) != 0) {
        snprintf(err, errlen, cfg->target ? "out of memory" : "no target");
        goto fail;
    }
    if (ch->cfg.retry.max_attempts < 1)
        ch->cfg.retry.max_attempts = 1;
    if (ch->cfg.retry.max_attempts > 5) /* gRFC A6 caps attempts at 5 */
        ch->cfg.retry.max_attempts = 5;
    if (resolve_target(ch, err, errlen) != 0)
        goto fail;
    /* Call credentials are the first interceptor: later ones see the
     * authorization metadata, and it rides on every attempt. */
    if ((cfg->token || cfg->token_provider) &&
        rpc_channel_add_interceptor(ch, &rpc__token_interceptor, ch) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    http2_client_config hc;
    http2_client_config_init(&hc);
    hc.tls = cfg->tls;
    hc.ca_file = cfg->ca_file;
    hc.cert_file = cfg->cert_file;
    hc.key_file = cfg->key_file;
    hc.keepalive_ms = cfg->keepalive_ms;
    hc.keepalive_timeout_ms = cfg->keepalive_timeout_ms;
    if (http2_client_new(loop, &hc, &ch->h2, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < ch->nsubs; i++) {
        rpc_subchannel *sc = &ch->subs[i];
        sc->ch = ch;
        sc->backoff_ms = ch->cfg.backoff_initial_ms;
        uv_timer_init(loop, &sc->timer);
        sc->timer.data = sc;
        ch->open_handles++;
    }
    return ch;
fail:
    oms_free(ch->ics);
    oms_free(ch->subs);
    oms_free(ch->strs);
    oms_free(ch);
    return NULL;
}

int rpc_channel_add_interceptor(rpc_channel *ch, const rpc_client_interceptor *ic, void *data)
{
    if (!ic || ch->nics == UINT32_MAX)
        return RPC_EINVAL;
    rpc__client_icept *a = oms_realloc(ch->ics, (ch->nics + 1) * sizeof *a);
    if (!a)
        return RPC_ENOMEM;
    a[ch->nics++] = (rpc__client_icept){*ic, data};
    ch->ics = a;
    return 0;
}

/* xorshift64*: jitter needs no quality, only no shared state. */
double rpc__channel_random(rpc_channel *ch)
{
    uint64_t x = ch->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ch->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

/* --- connection management ----------------------------------------------- */

static void sub_connect(rpc_subchannel *sc);

static void fail_waiting_if_hopeless(rpc_channel *ch);

/* Once a channel is in use, every address is kept connected (as gRPC's
 * round_robin does), so that a server that comes back gets its share of
 * calls again; the backoff bounds the attempts on a dead one. */
static void on_backoff_over(uv_timer_t *t)
{
    rpc_subchannel *sc = t->data;
    sc->state = SUB_IDLE;
    sub_connect(sc);
}

/* gRPC doc/connection-backoff.md: the next wait is the current backoff with
 * +/- jitter, and the backoff grows by the multiplier up to the max. */
static void sub_failed(rpc_subchannel *sc, const char *why)
{
    rpc_channel *ch = sc->ch;
    snprintf(sc->error, sizeof sc->error, "%s", why);
    sc->state = SUB_FAILURE;
    sc->conn = NULL;
    double jitter = ch->cfg.backoff_jitter * (2.0 * rpc__channel_random(ch) - 1.0);
    uint64_t wait = (uint64_t)((double)sc->backoff_ms * (1.0 + jitter));
    double next = (double)sc->backoff_ms * ch->cfg.backoff_multiplier;
    sc->backoff_ms =
        next > (double)ch->cfg.backoff_max_ms ? ch->cfg.backoff_max_ms : (uint64_t)next;
    OMS_DEBUG("channel %s: %s: %s; retrying in %llu ms", ch->cfg.target, sc->name, why,
              (unsigned long long)wait);
    if (!ch->freeing)
        uv_timer_start(&sc->timer, on_backoff_over, wait, 0);
    fail_waiting_if_hopeless(ch);
}

static void dispatch_waiting(rpc_channel *ch);

static void on_connected(http2_conn *conn)
{
    rpc_subchannel *sc = http2_conn_data(conn);
    if (sc->conn != conn)
        return;
    uv_timer_stop(&sc->timer);
    sc->state = SUB_READY;
    sc->backoff_ms = sc->ch->cfg.backoff_initial_ms; /* reset after a success */
    sc->error[0] = '\0';
    dispatch_waiting(sc->ch);
}

static void on_goaway(http2_conn *conn, uint32_t h2_error)
{
    rpc_subchannel *sc = http2_conn_data(conn);
    (void)h2_error;
    if (sc->conn != conn)
        return;
    /* In-flight streams finish on the old connection; new calls get a fresh
     * one. */
    sc->conn = NULL;
    sc->state = SUB_IDLE;
    sub_connect(sc);
}

static void on_conn_close(http2_conn *conn, const char *reason)
{
    rpc_subchannel *sc = http2_conn_data(conn);
    if (sc->conn != conn)
        return; /* an old, drained connection */
    uv_timer_stop(&sc->timer);
    if (sc->state == SUB_READY) {
        /* A working connection went away: back to IDLE, reconnect on demand. */
        sc->conn = NULL;
        sc->state = SUB_IDLE;
        snprintf(sc->error, sizeof sc->error, "%s", reason);
        sub_connect(sc);
        return;
    }
    sub_failed(sc, reason);
}

static const http2_conn_handler conn_handler = {
    .on_connected = on_connected,
    .on_goaway = on_goaway,
    .on_close = on_conn_close,
};

static void on_connect_timeout(uv_timer_t *t)
{
    rpc_subchannel *sc = t->data;
    if (sc->state == SUB_CONNECTING && sc->conn)
        http2_conn_close(sc->conn, "connect timeout");
}

static void sub_connect(rpc_subchannel *sc)
{
    rpc_channel *ch = sc->ch;
    if (sc->state != SUB_IDLE || ch->freeing)
        return;
    sc->state = SUB_CONNECTING;
    const char *name = ch->tls ? ch->cfg.server_name : NULL;
    char host[100], port[8];
    if (ch->tls && !name &&
        split_hostport(ch->cfg.target, strcspn(ch->cfg.target, ","), host, sizeof host, port,
                       sizeof port) == 0)
        name = host; /* verify against the name the user gave */
    http2_conn *conn;
    int rv = http2_client_connect(ch->h2, (const struct sockaddr *)&sc->addr, name, &conn_handler,
                                  sc, &conn);
    if (rv != 0) {
        char why[120];
        snprintf(why, sizeof why, "connect %s: %s", sc->name, uv_strerror(rv));
        sub_failed(sc, why);
        return;
    }
    sc->conn = conn;
    uv_timer_start(&sc->timer, on_connect_timeout, ch->cfg.connect_timeout_ms, 0);
}

/* Fails waiting calls when no subchannel can serve them soon: every one is in
 * backoff. wait_for_ready calls stay. */
static void fail_waiting_if_hopeless(rpc_channel *ch)
{
    const char *why = NULL;
    for (size_t i = 0; i < ch->nsubs; i++) {
        if (ch->subs[i].state != SUB_FAILURE)
            return;
        why = ch->subs[i].error;
    }
    rpc_client_call **pp = &ch->waiting;
    while (*pp) {
        rpc_client_call *c = *pp;
        if (c->wait_for_ready) {
            pp = &c->wait_next;
            continue;
        }
        *pp = c->wait_next;
        c->waiting = false;
        c->wait_next = NULL;
        rpc__client_call_dispatch(c, NULL, why);
    }
}

static rpc_subchannel *pick_ready(rpc_channel *ch)
{
    for (size_t i = 0; i < ch->nsubs; i++) {
        rpc_subchannel *sc = &ch->subs[(ch->rr + i) % ch->nsubs];
        if (sc->state == SUB_READY && sc->conn) {
            ch->rr = (ch->rr + i + 1) % ch->nsubs;
            return sc;
        }
    }
    return NULL;
}

static void dispatch_waiting(rpc_channel *ch)
{
    while (ch->waiting) {
        rpc_subchannel *sc = pick_ready(ch);
        if (!sc)
            return;
        rpc_client_call *c = ch->waiting;
        ch->waiting = c->wait_next;
        c->wait_next = NULL;
        c->waiting = false;
        rpc__client_call_dispatch(c, sc->conn, NULL);
    }
}

bool rpc__channel_pick(rpc_channel *ch, rpc_client_call *c, http2_conn **conn, char *why,
                       size_t whylen)
{
    *conn = NULL;
    if (ch->freeing) {
        snprintf(why, whylen, "channel closed");
        return false;
    }
    rpc_subchannel *sc = pick_ready(ch);
    if (sc) {
        *conn = sc->conn;
        return true;
    }
    bool hopeless = true;
    for (size_t i = 0; i < ch->nsubs; i++) {
        if (ch->subs[i].state != SUB_FAILURE)
            hopeless = false;
        else
            snprintf(why, whylen, "%s", ch->subs[i].error);
    }
    if (hopeless && !c->wait_for_ready)
        return false;
    /* Queue it (appended: calls keep their order) and wake idle addresses. */
    rpc_client_call **pp = &ch->waiting;
    while (*pp)
        pp = &(*pp)->wait_next;
    *pp = c;
    c->wait_next = NULL;
    c->waiting = true;
    for (size_t i = 0; i < ch->nsubs; i++)
        sub_connect(&ch->subs[i]);
    return true;
}

void rpc__channel_unwait(rpc_channel *ch, rpc_client_call *c)
{
    if (!c->waiting)
        return;
    for (rpc_client_call **pp = &ch->waiting; *pp; pp = &(*pp)->wait_next) {
        if (*pp == c) {
            *pp = c->wait_next;
            break;
        }
    }
    c->waiting = false;
    c->wait_next = NULL;
}

/* --- deferred work ------------------------------------------------------------ */

/* Runs what was queued before this turn; what those calls queue waits for
 * the next turn, after I/O has been polled. */
/* Runs the work queued so far, then once more what that queued (a call
 * started from another's on_status): its request then leaves in this loop
 * turn's flush rather than one turn later. Never more than that: a chain of
 * calls cannot starve I/O. */
static void on_idle(uv_idle_t *h)
{
    rpc_channel *ch = h->data;
    for (int pass = 0; pass < 2 && ch->defer_head; pass++) {
        rpc_client_call *c = ch->defer_head;
        ch->defer_head = ch->defer_tail = NULL;
        while (c) {
            rpc_client_call *next = c->defer_next;
            int op = c->defer_op;
            c->defer_next = NULL;
            c->defer_op = 0;
            if (op == RPC_DEFER_START)
                rpc__client_call_start(c);
            else if (op == RPC_DEFER_STATUS)
                rpc__client_call_deliver(c); /* may free c */
            c = next;
        }
    }
    if (!ch->defer_head)
        uv_idle_stop(&ch->idle);
}

void rpc__channel_defer(rpc_channel *ch, rpc_client_call *c, int op)
{
    if (c->defer_op) { /* already queued: the later op wins */
        c->defer_op = op;
        return;
    }
    c->defer_op = op;
    c->defer_next = NULL;
    if (ch->defer_tail)
        ch->defer_tail->defer_next = c;
    else
        ch->defer_head = c;
    ch->defer_tail = c;
    if (!ch->idle_on) {
        uv_idle_init(ch->loop, &ch->idle);
        ch->idle.data = ch;
        ch->idle_on = true;
    }
    uv_idle_start(&ch->idle, on_idle);
}

/* --- teardown --------------------------------------------------------------- */

static void release(rpc_channel *ch)
{
    void (*done)(void *) = ch->done;
    void *arg = ch->done_arg;
    rpc__channel_drop_spares(ch);
    oms_free(ch->subs);
    oms_free(ch->strs);
    oms_free(ch->ics);
    oms_free(ch);
    if (done)
        done(arg);
}

static void on_idle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void maybe_done(rpc_channel *ch)
{
    if (ch->open_handles || ch->h2 || ch->calls)
        return;
    if (ch->idle_on) {
        ch->idle_on = false;
        uv_close((uv_handle_t *)&ch->idle, on_idle_closed);
        return;
    }
    release(ch);
}

static void on_timer_closed(uv_handle_t *h)
{
    rpc_subchannel *sc = h->data;
    rpc_channel *ch = sc->ch;
    ch->open_handles--;
    maybe_done(ch);
}

static void on_h2_freed(void *arg)
{
    rpc_channel *ch = arg;
    ch->h2 = NULL;
    maybe_done(ch);
}

/* Called by client_call.c when a call is freed. */
void rpc__channel_call_gone(rpc_channel *ch);
void rpc__channel_call_gone(rpc_channel *ch)
{
    if (ch->freeing)
        maybe_done(ch);
}

void rpc_channel_free(rpc_channel *ch, void (*done)(void *arg), void *arg)
{
    if (!ch || ch->freeing)
        return;
    ch->freeing = true;
    ch->done = done;
    ch->done_arg = arg;
    while (ch->waiting) {
        rpc_client_call *c = ch->waiting;
        ch->waiting = c->wait_next;
        c->waiting = false;
        c->wait_next = NULL;
        rpc__client_call_fail(c, RPC_CANCELLED, "channel closed");
    }
    for (rpc_client_call *c = ch->calls, *next; c; c = next) {
        next = c->next;
        rpc_client_call_cancel(c);
    }
    for (size_t i = 0; i < ch->nsubs; i++) {
        uv_timer_stop(&ch->subs[i].timer);
        uv_close((uv_handle_t *)&ch->subs[i].timer, on_timer_closed);
    }
    http2_client_free(ch->h2, on_h2_freed, ch);
}
