/* policy.c - what a server allows a connection over time, and how many it
 * holds at once.
 *
 * One timer per server connection, armed for the earliest of its deadlines:
 *   handshake  TLS handshake and client preface within handshake_timeout_ms;
 *   idle       no open stream for idle_timeout_ms: GOAWAY(NO_ERROR), and the
 *              connection closes once that is written (no stream is left);
 *   age        max_age_ms after accept: GOAWAY(NO_ERROR), the calls in flight
 *              finish; age_grace_ms later whatever is left is closed;
 *   keepalive  keepalive_ms without a byte from the peer: a PING; no ACK
 *              within keepalive_timeout_ms closes the connection (a half-open
 *              peer and its subscriptions go away).
 * Deadlines are checked lazily: activity only updates timestamps (last read,
 * when the last stream closed), and the timer, when it fires early, re-arms
 * for the deadline as it stands then. So the hot path never touches the timer.
 *
 * The connection cap is a counter shared by every server of the process (one
 * per loop): a connection over it is accepted and closed at once, so the
 * backlog does not fill and the peer learns at once; refusals are logged at
 * most once a second per server.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http2/http2_int.h"

struct http2_conn_limit {
    atomic_size_t open;
    size_t max;
};

http2_conn_limit *http2_conn_limit_new(size_t max)
{
    http2_conn_limit *l = oms_calloc(1, sizeof *l);
    if (l)
        l->max = max;
    return l;
}

void http2_conn_limit_free(http2_conn_limit *l)
{
    oms_free(l);
}

size_t http2_conn_limit_open(const http2_conn_limit *l)
{
    return atomic_load(&((http2_conn_limit *)l)->open);
}

bool http2__limit_take(http2_conn_limit *l)
{
    if (!l)
        return true;
    if (atomic_fetch_add(&l->open, 1) < l->max)
        return true;
    atomic_fetch_sub(&l->open, 1);
    return false;
}

void http2__limit_give(http2_conn_limit *l)
{
    if (l)
        atomic_fetch_sub(&l->open, 1);
}

void http2__limit_refused(http2_server *srv)
{
    uint64_t now = uv_now(srv->ep.loop);
    srv->refused++;
    if (now - srv->refused_logged < 1000 && srv->refused_logged)
        return;
    OMS_WARN("refused %llu connection(s) over the limit of %zu open connections",
             (unsigned long long)srv->refused, srv->cfg.conn_limit->max);
    srv->refused = 0;
    srv->refused_logged = now ? now : 1;
}

static bool policy_on(const http2_ep *ep)
{
    return ep->handshake_timeout_ms || ep->idle_timeout_ms || ep->max_age_ms || ep->keepalive_ms ||
           ep->http1; /* HTTP/1.1's header timeout, keep-alive idle and linger (h1.c) */
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

/* The earliest deadline (loop ms) of c's policy, 0 for none. */
static uint64_t next_deadline(const http2_conn *c, uint64_t now)
{
    const http2_ep *ep = c->ep;
    uint64_t t = 0;
    if (!c->greeted && ep->handshake_timeout_ms)
        t = earliest(t, c->born + ep->handshake_timeout_ms);
    if (ep->max_age_ms && !c->age_goaway)
        t = earliest(t, c->born + ep->max_age_ms);
    if (c->age_goaway && ep->age_grace_ms)
        t = earliest(t, c->goaway_at + ep->age_grace_ms);
    if (c->drain_notice && !c->goaway_sent)
        t = earliest(t, c->drain_at + HTTP2_DRAIN_ACK_WAIT_MS);
    if (c->h1) /* its own idle and header deadlines; no PINGs */
        return earliest(t, http2__h1_deadline(c));
    if (ep->idle_timeout_ms && !c->goaway_sent && !c->drain_notice)
        t = earliest(t,
                     c->nstreams ? now + ep->idle_timeout_ms : c->idle_since + ep->idle_timeout_ms);
    if (ep->keepalive_ms && c->greeted)
        t = earliest(t, c->last_ping ? c->last_ping + ep->keepalive_timeout_ms
                                     : c->last_read + ep->keepalive_ms);
    return t;
}

static void on_policy_timer(uv_timer_t *t);

void http2__policy_arm(http2_conn *c)
{
    if (c->closing || !c->timer.loop)
        return;
    uint64_t now = uv_now(c->ep->loop);
    uint64_t t = next_deadline(c, now);
    if (!t) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_policy_timer, t > now ? t - now : 0, 0);
}

/* GOAWAY(NO_ERROR) with the last stream id: calls in flight finish, the
 * connection closes once none is left. */
static void policy_goaway(http2_conn *c, const char *why)
{
    OMS_DEBUG("conn %s: %s; sending GOAWAY", c->peer, why);
    http2__conn_why(c, strcmp(why, "idle") == 0 ? HTTP2_CLOSE_IDLE : HTTP2_CLOSE_AGE);
    if (!c->reason[0])
        snprintf(c->reason, sizeof c->reason, "%s", why);
    http2__conn_drain(c);
}

static void on_policy_timer(uv_timer_t *t)
{
    http2_conn *c = t->data;
    const http2_ep *ep = c->ep;
    uint64_t now = uv_now(ep->loop);
    if (c->closing)
        return;
    if (!c->greeted && ep->handshake_timeout_ms && now >= c->born + ep->handshake_timeout_ms) {
        OMS_INFO("conn %s: no %s within %llu ms; closing", c->peer,
                 c->handshake_done || !c->ssl ? "HTTP/2 preface" : "TLS handshake",
                 (unsigned long long)ep->handshake_timeout_ms);
        http2__conn_why(c, HTTP2_CLOSE_KEEPALIVE_TIMEOUT);
        http2__conn_fail(c, "handshake timeout");
        return;
    }
    if (c->age_goaway && ep->age_grace_ms && now >= c->goaway_at + ep->age_grace_ms) {
        OMS_INFO("conn %s: max connection age and its grace over; closing", c->peer);
        http2__conn_why(c, HTTP2_CLOSE_AGE);
        http2__conn_fail(c, "max connection age");
        return;
    }
    if (ep->max_age_ms && !c->age_goaway && now >= c->born + ep->max_age_ms) {
        c->age_goaway = 1;
        c->goaway_at = now;
        policy_goaway(c, "max connection age");
    }
    if (c->h1) {
        if (!c->closing)
            http2__h1_on_timer(c, now);
        if (!c->closing)
            http2__policy_arm(c);
        return;
    }
    if (c->drain_notice && !c->goaway_sent && now >= c->drain_at + HTTP2_DRAIN_ACK_WAIT_MS)
        http2__conn_drain_finish(c);
    if (ep->idle_timeout_ms && !c->goaway_sent && !c->drain_notice && c->nstreams == 0 &&
        now >= c->idle_since + ep->idle_timeout_ms)
        policy_goaway(c, "idle");
    if (ep->keepalive_ms && c->greeted && c->session) {
        if (c->last_ping && now >= c->last_ping + ep->keepalive_timeout_ms) {
            OMS_INFO("conn %s: keepalive PING unanswered for %llu ms; closing", c->peer,
                     (unsigned long long)ep->keepalive_timeout_ms);
            http2__conn_why(c, HTTP2_CLOSE_KEEPALIVE_TIMEOUT);
            http2__conn_fail(c, "keepalive timeout");
            return;
        }
        if (!c->last_ping && now >= c->last_read + ep->keepalive_ms &&
            nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) == 0) {
            c->last_ping = now ? now : 1;
            http2__conn_mark_dirty(c);
        }
    }
    if (!c->closing)
        http2__policy_arm(c);
}

/* grpc-go: at most 2 strikes; 2 h is its "keepalive must not be active"
 * spacing for PINGs without calls. */
#define PING_MAX_STRIKES 2
#define PING_IDLE_MIN_MS (2 * 3600 * 1000)

void http2__policy_ping(http2_conn *c)
{
    const http2_ep *ep = c->ep;
    if (!ep->ping_min_ms || c->close_on_goaway || !c->session)
        return;
    uint64_t now = uv_now(ep->loop);
    uint64_t prev = c->ping_at;
    c->ping_at = now ? now : 1;
    if (c->ping_reset) { /* we sent HEADERS or DATA since the last one */
        c->ping_reset = 0;
        c->ping_strikes = 0;
        return;
    }
    uint64_t min = c->nstreams == 0 && !ep->ping_without_calls ? PING_IDLE_MIN_MS : ep->ping_min_ms;
    if (prev && now - prev < min)
        c->ping_strikes++;
    if (c->ping_strikes <= PING_MAX_STRIKES)
        return;
    OMS_INFO("conn %s: too many PINGs (%u strikes); sending GOAWAY", c->peer, c->ping_strikes);
    if (!c->reason[0])
        snprintf(c->reason, sizeof c->reason, "too many pings");
    http2__conn_why(c, HTTP2_CLOSE_FLOOD);
    int rv = nghttp2_submit_goaway(
        c->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->session),
        NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)"too_many_pings", 14);
    if (rv != 0) {
        http2__conn_fail(c, "GOAWAY: %s", nghttp2_strerror(rv));
        return;
    }
    http2__count_goaway(&c->ep->ctr, NGHTTP2_ENHANCE_YOUR_CALM);
    c->close_on_goaway = 1;
    c->goaway_sent = 1;
    http2__conn_mark_dirty(c);
}

void http2__policy_start(http2_conn *c)
{
    http2_ep *ep = c->ep;
    uint64_t now = uv_now(ep->loop);
    c->born = c->last_read = c->idle_since = now;
    if (!policy_on(ep))
        return;
    uv_timer_init(ep->loop, &c->timer);
    c->timer.data = c;
    c->handles++;
    http2__policy_arm(c);
}
