/* run.c - the load engine: channels and slots, closed and open loop,
 * warm-up/window/drain phases, counting, progress. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench/bench_int.h"
#include "grpc/testing/empty.pb-c.h"
#include "oms/bench/v1/bench.pb-c.h"
#include "oms/v1/order.pb-c.h"

/* How long calls in flight at the end may take before they are cancelled. */
#define DRAIN_MS 2000
/* The preflight call's deadline (it also waits for the connection). */
#define PREFLIGHT_MS 10000

static const bench_call_info infos[] = {
    [BENCH_UNARY] = {"unary", "/oms.bench.v1.OrderBench/CreateOrder", "call", "response", false},
    [BENCH_SERVER_STREAM] = {"server-stream", "/oms.bench.v1.OrderBench/WatchOrders", "stream",
                             "response", true},
    [BENCH_CLIENT_STREAM] = {"client-stream", "/grpc.testing.TestService/StreamingInputCall",
                             "stream", "request", true},
    [BENCH_BIDI] = {"bidi", "/oms.bench.v1.OrderBench/Track", "round trip", "round trip", true},
    [BENCH_ORDER_CREATE] = {"order-create", "/oms.v1.OrderService/CreateOrder", "call", "response",
                            false},
    [BENCH_ORDER_WATCH] = {"order-watch", "/oms.v1.OrderService/WatchOrders", "delivery", "event",
                           true},
};

static const bench_driver *const drivers[] = {
    [BENCH_UNARY] = &bench_unary_driver,
    [BENCH_SERVER_STREAM] = &bench_server_stream_driver,
    [BENCH_CLIENT_STREAM] = &bench_client_stream_driver,
    [BENCH_BIDI] = &bench_bidi_driver,
    [BENCH_ORDER_CREATE] = &bench_order_create_driver,
    [BENCH_ORDER_WATCH] = NULL, /* its own engine: watch_run.c */
};

const bench_call_info *bench_call_info_of(bench_call_type t)
{
    return &infos[t];
}

int bench_call_parse(const char *s, bench_call_type *out)
{
    for (size_t i = 0; i < sizeof infos / sizeof infos[0]; i++) {
        if (strcmp(s, infos[i].name) == 0) {
            *out = (bench_call_type)i;
            return 0;
        }
    }
    return -1;
}

size_t bench__fit_length(size_t target, size_t min, size_t (*size_at)(void *arg, size_t len),
                         void *arg)
{
    size_t base = size_at(arg, min);
    if (base >= target)
        return min;
    /* One more byte of field is usually one more byte of message; length
     * prefixes that grow a byte make it overshoot, which the walk fixes. */
    size_t len = min + (target - base);
    while (len > min && size_at(arg, len - 1) >= target)
        len--;
    while (size_at(arg, len) < target)
        len++;
    return len;
}

/* --- counting ---------------------------------------------------------------- */

static void start_op(bench_slot *s, uint64_t t);
static void stop_run(bench_engine *r);

/* When the i-th operation of an open-loop run falls due. */
static uint64_t due_time(const bench_engine *r, uint64_t i)
{
    return r->ph.t_start + (uint64_t)((double)i * 1e9 / r->cfg->rate);
}

/* s has nothing in flight: give it the next operation (closed loop: at once;
 * open loop: the oldest due one) or park it. */
static void slot_idle(bench_slot *s)
{
    bench_engine *r = s->run;
    if (!r->running)
        return;
    if (r->cfg->rate <= 0) {
        start_op(s, uv_hrtime());
    } else if (r->queue_head < r->next_due) {
        start_op(s, due_time(r, r->queue_head++));
    } else {
        s->next_free = r->free_slots;
        r->free_slots = s;
    }
}

void bench__op_done(bench_slot *s, bool reusable)
{
    bench_engine *r = s->run;
    uint64_t now = uv_hrtime();
    uint64_t ns = now > s->op_start ? now - s->op_start : 0;
    s->busy = false;
    if (r->ph.measuring) {
        r->res->counts.ops++;
        bench_hist_record(&r->res->latency, ns);
    }
    if (r->cfg->progress) {
        r->interval.ops++;
        bench_hist_record(&r->interval_hist, ns);
    }
    /* --count: the window ends with its N-th operation (what is still in
     * flight drains, uncounted, as at the end of a timed window) */
    if (r->ph.measuring && r->cfg->count && r->res->counts.ops >= r->cfg->count) {
        s->count_end = s->call != NULL; /* its call ends in the window too */
        stop_run(r);
    }
    if (reusable)
        slot_idle(s);
}

void bench__messages(bench_engine *r, uint64_t n)
{
    if (r->ph.measuring)
        r->res->counts.messages += n;
    r->interval.messages += n;
}

static void on_finish_timer(uv_timer_t *t);

/* Restarts the slots whose call failed, once per loop iteration. A call that
 * fails without touching the network (no connection: fail fast) ends from a
 * 0 ms timer, and a call started from its on_status begins with one too; on
 * libuv 1.44 a 0 ms timer started inside a timer callback runs in the same
 * timers pass, so restarting such slots at once would loop there forever,
 * never reaching the phase that frees closed calls. */
static void on_restart_check(uv_check_t *h)
{
    bench_engine *r = h->data;
    bench_slot *list = r->restarts;
    r->restarts = NULL;
    uv_check_stop(h);
    while (list) {
        bench_slot *s = list;
        list = s->next_restart;
        s->next_restart = NULL;
        if (!s->call)
            slot_idle(s);
    }
}

void bench__call_ended(bench_slot *s, rpc_status code, const char *message)
{
    bench_engine *r = s->run;
    unsigned k = (unsigned)code < BENCH_NCODES ? (unsigned)code : RPC_UNKNOWN;
    if (!s->cancelled && (r->ph.measuring || s->count_end)) {
        r->res->counts.calls++;
        r->res->counts.codes[k]++;
        if (k != RPC_OK && !r->res->first_error[k][0])
            snprintf(r->res->first_error[k], sizeof r->res->first_error[k], "%s",
                     message && *message ? message : "(no message)");
    }
    if (!s->cancelled) {
        r->interval.calls++;
        r->interval.codes[k]++;
    }
    s->call = NULL;
    s->busy = false; /* an operation still in flight failed with the call */
    s->cancelled = s->closing = s->count_end = false;
    s->sent = s->received = 0;
    r->inflight--;
    if (!r->running) {
        /* Draining: the channels go once every call has ended, from the loop
         * rather than from inside this call's on_status. */
        if (r->inflight == 0 && !r->finished)
            uv_timer_start(&r->phase_timer, on_finish_timer, 0, 0);
        return;
    }
    if (code == RPC_OK) {
        slot_idle(s);
        return;
    }
    s->next_restart = r->restarts;
    r->restarts = s;
    uv_check_start(&r->restart_check, on_restart_check);
}

rpc_client_call *bench__start_call(bench_slot *s, const char *path,
                                   const ProtobufCMessageDescriptor *resp,
                                   const rpc_client_ops *ops)
{
    return bench__adopt_call(s, rpc_channel_call(s->ch, path, resp, ops, s, NULL));
}

rpc_client_call *bench__adopt_call(bench_slot *s, rpc_client_call *c)
{
    bench_engine *r = s->run;
    if (!c) {
        /* Counted as an error; the slot stays out of the run rather than
         * spinning on a failing allocator. */
        s->busy = false;
        if (r->ph.measuring) {
            r->res->counts.calls++;
            r->res->counts.codes[RPC_RESOURCE_EXHAUSTED]++;
            snprintf(r->res->first_error[RPC_RESOURCE_EXHAUSTED], sizeof r->res->first_error[0],
                     "client out of memory");
        }
        return NULL;
    }
    s->call = c;
    s->sent = s->received = 0;
    r->inflight++;
    return c;
}

static void start_op(bench_slot *s, uint64_t t)
{
    s->busy = true;
    s->op_start = t;
    s->run->drv->start(s);
}

/* --- open loop ----------------------------------------------------------------- */

/* Hands every operation now due to a free slot, or queues it, and sets the
 * timerfd for the next one. A timerfd rather than a uv_timer: libuv timers
 * have millisecond resolution, which would start calls up to 1 ms late and
 * add that to every latency measured from the due time. */
static void schedule_due(bench_engine *r)
{
    uint64_t now = uv_hrtime();
    while (r->running) {
        uint64_t t = due_time(r, r->next_due);
        if (t > now) {
            if (t != r->armed_at) {
                struct itimerspec its = {
                    .it_value = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)}};
                timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL);
                r->armed_at = t;
            }
            return;
        }
        r->next_due++;
        if (r->free_slots) {
            /* a slot is free only while nothing waits */
            bench_slot *s = r->free_slots;
            r->free_slots = s->next_free;
            r->queue_head++;
            start_op(s, t);
            continue;
        }
        if (r->ph.measuring) {
            r->res->queued++;
            uint64_t depth = r->next_due - r->queue_head;
            if (depth > r->res->max_queue)
                r->res->max_queue = depth;
        }
    }
}

static void on_tick(uv_poll_t *p, int status, int events)
{
    bench_engine *r = p->data;
    (void)status;
    (void)events;
    uint64_t expirations;
    if (read(r->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    schedule_due(r);
}

/* --- phases --------------------------------------------------------------------- */

/* Every call has ended: close the channels and our handles; uv_run returns
 * once they are gone. */
static void finish(bench_engine *r)
{
    if (r->finished)
        return;
    r->finished = true;
    r->running = false;
    uv_close((uv_handle_t *)&r->phase_timer, NULL);
    bench__phase_close(&r->ph);
    uv_close((uv_handle_t *)&r->progress_timer, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->restart_check, NULL);
    if (r->tfd >= 0)
        uv_close((uv_handle_t *)&r->tick, NULL);
    for (unsigned i = 0; i < r->nchannels; i++)
        if (r->channels[i])
            rpc_channel_free(r->channels[i], NULL, NULL);
}

static void on_finish_timer(uv_timer_t *t)
{
    finish(t->data);
}

static void on_drain_timeout(uv_timer_t *t)
{
    bench_engine *r = t->data;
    for (unsigned i = 0; i < r->nslots; i++) {
        bench_slot *s = &r->slots[i];
        if (s->call && !s->cancelled) {
            s->cancelled = true;
            rpc_client_call_cancel(s->call);
        }
    }
}

/* The window is over (or SIGINT): no new operations; what is in flight
 * drains. */
static void stop_run(bench_engine *r)
{
    if (!r->running)
        return;
    bench__phase_stop(&r->ph, r->res);
    r->running = false;
    r->res->unstarted = r->next_due - r->queue_head;
    uv_timer_stop(&r->progress_timer);
    if (r->tfd >= 0)
        uv_poll_stop(&r->tick);
    for (unsigned i = 0; i < r->nslots; i++)
        if (r->slots[i].call)
            r->drv->stop(&r->slots[i]);
    if (r->inflight == 0)
        uv_timer_start(&r->phase_timer, on_finish_timer, 0, 0);
    else
        uv_timer_start(&r->phase_timer, on_drain_timeout, DRAIN_MS, 0);
}

static void on_window_end(bench_phase *p)
{
    stop_run(p->data);
}

static void on_progress(uv_timer_t *t)
{
    bench_engine *r = t->data;
    const bench_call_info *info = bench_call_info_of(r->cfg->call);
    uint64_t now = uv_hrtime();
    double dt = (double)(now - r->t_last_progress) / 1e9;
    /* a second that began in the warm-up is labelled so */
    bool warm = bench__phase_warm_since(&r->ph, r->t_last_progress);
    r->t_last_progress = now;
    uint64_t n = info->rate_in_msgs ? r->interval.messages : r->interval.ops;
    uint64_t errors = r->interval.calls - r->interval.codes[RPC_OK];
    char p50[32], p99[32];
    bench__format_ns(p50, sizeof p50, (double)bench_hist_percentile(&r->interval_hist, 50));
    bench__format_ns(p99, sizeof p99, (double)bench_hist_percentile(&r->interval_hist, 99));
    fprintf(stderr, "[%5.1fs] %-7s %10.0f %s/s  p50 %s  p99 %s  errors %" PRIu64 "  in flight %u",
            (double)(now - r->ph.t_start) / 1e9, warm ? "warm-up" : "run",
            dt > 0 ? (double)n / dt : 0.0, info->rate_in_msgs ? "msgs" : "calls", p50, p99, errors,
            r->inflight);
    if (r->cfg->rate > 0)
        fprintf(stderr, "  queued %" PRIu64, r->next_due - r->queue_head);
    fputc('\n', stderr);
    memset(&r->interval, 0, sizeof r->interval);
    bench_hist_reset(&r->interval_hist);
}

/* Preflight done: the load starts on every slot. */
static void start_load(bench_engine *r)
{
    r->running = true;
    bench__phase_start(&r->ph);
    r->t_last_progress = r->ph.t_start;
    if (r->cfg->progress)
        uv_timer_start(&r->progress_timer, on_progress, 1000, 1000);
    if (r->cfg->rate > 0) {
        /* every slot starts free; slots are handed out from the front */
        for (unsigned i = r->nslots; i-- > 0;) {
            r->slots[i].next_free = r->free_slots;
            r->free_slots = &r->slots[i];
        }
        uv_poll_start(&r->tick, UV_READABLE, on_tick);
        schedule_due(r);
    } else {
        for (unsigned i = 0; i < r->nslots && r->running; i++)
            start_op(&r->slots[i], r->ph.t_start);
    }
}

static void on_sigint(uv_signal_t *h, int signum)
{
    bench_engine *r = h->data;
    (void)signum;
    r->sigints++;
    if (r->sigints > 2)
        _exit(130);
    r->res->interrupted = true;
    if (r->running) {
        stop_run(r);
    } else if (r->pre_calls) {
        for (unsigned i = 0; i < r->nchannels; i++)
            if (r->pre_calls[i])
                rpc_client_call_cancel(r->pre_calls[i]);
    } else if (!r->finished) {
        on_drain_timeout(&r->phase_timer); /* a second ^C: stop waiting */
    }
}

/* --- preflight -------------------------------------------------------------------- */

/* Before the clock starts, one cheap call per channel connects it and proves
 * the target answers: any status from the server will do (NOT_FOUND,
 * UNIMPLEMENTED), only a transport failure stops the run. */
static void on_preflight_status(rpc_client_call *c, rpc_status code, const char *message,
                                const rpc_metadata *trailers)
{
    bench_engine *r = rpc_client_call_data(c);
    (void)trailers;
    for (unsigned i = 0; i < r->nchannels; i++)
        if (r->pre_calls[i] == c)
            r->pre_calls[i] = NULL;
    if (r->finished)
        return; /* setup failed: the channels are going */
    if ((code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED || code == RPC_CANCELLED) &&
        !r->preflight_failed && !r->res->interrupted) {
        r->preflight_failed = true;
        snprintf(r->preflight_error, sizeof r->preflight_error, "%s: %s",
                 bench_code_name((int)code), message);
    }
    if (--r->preflight_left > 0)
        return;
    free(r->pre_calls);
    r->pre_calls = NULL;
    if (r->preflight_failed || r->res->interrupted)
        uv_timer_start(&r->phase_timer, on_finish_timer, 0, 0);
    else
        start_load(r);
}

static const rpc_client_ops preflight_ops = {.on_status = on_preflight_status};

static int preflight(bench_engine *r)
{
    /* The client-streaming target is TestService; the order modes
     * oms.v1.OrderService; the others OrderBench. */
    Grpc__Testing__Empty empty = GRPC__TESTING__EMPTY__INIT;
    Oms__Bench__V1__GetOrderRequest get = OMS__BENCH__V1__GET_ORDER_REQUEST__INIT;
    Oms__V1__GetOrderRequest oget = OMS__V1__GET_ORDER_REQUEST__INIT;
    get.id = "";
    oget.id = "";
    bool testing = r->cfg->call == BENCH_CLIENT_STREAM;
    bool orders = r->cfg->call == BENCH_ORDER_CREATE;
    const char *path = testing  ? "/grpc.testing.TestService/EmptyCall"
                       : orders ? "/oms.v1.OrderService/GetOrder"
                                : "/oms.bench.v1.OrderBench/GetOrder";
    const ProtobufCMessageDescriptor *resp = testing  ? &grpc__testing__empty__descriptor
                                             : orders ? &oms__v1__order__descriptor
                                                      : &oms__bench__v1__order__descriptor;
    const ProtobufCMessage *req = testing ? &empty.base : orders ? &oget.base : &get.base;
    rpc_call_opts opts = {.timeout_ms = PREFLIGHT_MS};
    r->pre_calls = calloc(r->nchannels, sizeof *r->pre_calls);
    if (!r->pre_calls)
        return -1;
    for (unsigned i = 0; i < r->nchannels; i++) {
        rpc_client_call *c = rpc_channel_call(r->channels[i], path, resp, &preflight_ops, r, &opts);
        if (!c)
            return -1;
        r->pre_calls[i] = c;
        r->preflight_left++;
        bench__send_last(c, req);
    }
    return 0;
}

void bench__send_last(rpc_client_call *c, const ProtobufCMessage *req)
{
    if (rpc_client_call_send(c, req) < 0 || rpc_client_call_close_send(c) < 0)
        rpc_client_call_cancel(c);
}

/* --- setup ---------------------------------------------------------------------- */

void bench__channel_config(const bench_config *cfg, rpc_channel_config *cc)
{
    rpc_channel_config_init(cc);
    cc->target = cfg->address;
    cc->tls = !cfg->h2c;
    cc->ca_file = cfg->ca_file;
    cc->cert_file = cfg->cert_file;
    cc->key_file = cfg->key_file;
    cc->server_name = cfg->server_name;
    cc->token = cfg->token;
    cc->connect_timeout_ms = PREFLIGHT_MS;
    cc->user_agent = "oms-bench/0.1";
    /* Responses echo the request (CreateOrder returns its items). */
    if (cfg->payload * 2 + (1u << 20) > cc->max_recv_msg)
        cc->max_recv_msg = cfg->payload * 2 + (1u << 20);
    /* A load generator reports failures rather than hiding them behind
     * retries, and with no retries there is nothing to keep for replay. */
    cc->retry.max_attempts = 1;
    cc->retry.buffer_limit = 0;
}

static int make_channels(bench_engine *r, char *err, size_t errlen)
{
    const bench_config *cfg = r->cfg;
    rpc_channel_config cc;
    bench__channel_config(cfg, &cc);
    r->channels = calloc(cfg->connections, sizeof *r->channels);
    if (!r->channels) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < cfg->connections; i++) {
        r->channels[i] = rpc_channel_new(r->loop, &cc, err, errlen);
        if (!r->channels[i])
            return -1;
        r->nchannels++;
    }
    return 0;
}

int bench_run(uv_loop_t *loop, const bench_config *cfg, bench_results *res, char *err,
              size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->stock_before = -1;
    if (cfg->call == BENCH_ORDER_WATCH)
        return bench__run_watch(loop, cfg, res, err, errlen);
    bench_engine run = {.loop = loop, .cfg = cfg, .drv = drivers[cfg->call], .res = res, .tfd = -1};
    bench_engine *r = &run;
    int rv = -1;
    if (bench_hist_init(&res->latency, 1000, 60000000000u, 6) != 0 ||
        bench_hist_init(&r->interval_hist, 1000, 60000000000u, 6) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (r->drv->init(r, err, errlen) != 0)
        goto out;
    r->slots = calloc(cfg->concurrency, sizeof *r->slots);
    if (!r->slots) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (cfg->rate > 0) {
        r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (r->tfd < 0) {
            snprintf(err, errlen, "timerfd_create: %s", strerror(errno));
            goto out;
        }
    }
    if (make_channels(r, err, errlen) != 0)
        goto out_channels;
    r->nslots = cfg->concurrency;
    for (unsigned i = 0; i < r->nslots; i++) {
        r->slots[i].run = r;
        r->slots[i].ch = r->channels[i % r->nchannels];
    }
    uv_timer_init(loop, &r->phase_timer);
    r->phase_timer.data = r;
    bench__phase_init(&r->ph, loop, cfg, on_window_end, r);
    uv_timer_init(loop, &r->progress_timer);
    r->progress_timer.data = r;
    uv_check_init(loop, &r->restart_check);
    r->restart_check.data = r;
    uv_signal_init(loop, &r->sigint);
    r->sigint.data = r;
    uv_signal_start(&r->sigint, on_sigint, SIGINT);
    if (r->tfd >= 0) {
        uv_poll_init(loop, &r->tick, r->tfd);
        r->tick.data = r;
    }
    if (r->drv->setup && r->drv->setup(r, err, errlen) != 0) {
        finish(r);
        uv_run(loop, UV_RUN_DEFAULT);
        goto out;
    }
    if (preflight(r) != 0) {
        snprintf(err, errlen, "out of memory");
        finish(r); /* cancels the preflight calls made so far */
        uv_run(loop, UV_RUN_DEFAULT);
        goto out;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    if (r->preflight_failed) {
        snprintf(err, errlen, "cannot reach %s: %s", cfg->target, r->preflight_error);
    } else if (!r->ph.t_start) {
        snprintf(err, errlen, "interrupted before the load started");
    } else {
        rv = 0;
    }
    goto out;
out_channels:
    for (unsigned i = 0; i < r->nchannels; i++)
        rpc_channel_free(r->channels[i], NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
out:
    free(r->pre_calls);
    if (r->tfd >= 0)
        close(r->tfd);
    free(r->channels);
    free(r->slots);
    if (r->drv->dispose)
        r->drv->dispose(r);
    bench_hist_dispose(&r->interval_hist);
    return rv;
}

void bench_results_dispose(bench_results *res)
{
    bench_hist_dispose(&res->latency);
    if (res->watch) {
        bench_hist_dispose(&res->watch->create);
        bench_hist_dispose(&res->watch->commit_at);
        bench_hist_dispose(&res->watch->spread);
        free(res->watch);
        res->watch = NULL;
    }
}
