/* watch_run.c - order-watch: the fan-out latency of oms.v1 order events.
 *
 * 1. Setup (order_setup.c) on the producer's own connection (to
 *    --producer-target when given: another instance on the same database,
 *    so that the latency is from a commit on one to a delivery by another).
 * 2. --concurrency WatchOrders subscribers (every order, since_seq 0, i.e.
 *    live events only) spread round-robin over --connections connections.
 * 3. Sync: until every subscriber has received an event (from then on its
 *    stream is live: no gap, no duplicate), a "sync" CreateOrder every
 *    SYNC_MS. A subscriber that only got its response headers may not be
 *    registered with the server's hub yet, so headers alone prove nothing.
 * 4. Load: the producer sends CreateOrder open loop at --rate for --warmup
 *    then --duration seconds, remembering each call's send time; the answer
 *    names the order id. Every subscriber must then receive each of those
 *    orders' creation events (previous_status UNSPECIFIED) exactly once; its
 *    delivery latency is the receive time minus the CreateOrder send time on
 *    the same monotonic clock (ns). That is an upper bound of commit ->
 *    delivery: it also holds the request's way in, validation, reservation
 *    and the commit itself (the producer's CreateOrder latency is reported
 *    beside it). An event may well arrive before its CreateOrder answer: its
 *    arrival is kept until the answer says which order it was.
 *    OrderEvent.at (unix ms, set just before the commit) gives a second,
 *    wall-clock figure at millisecond resolution, also an upper bound.
 * 5. Drain: no new orders; wait (at most --drain s) until every answered
 *    order reached every subscriber, then cancel the subscribers and count
 *    what is missing.
 *
 * A subscriber stream that ends early (RESOURCE_EXHAUSTED from a server that
 * cut a slow reader, UNAVAILABLE) is counted as an error and resumed with
 * since_seq = last seq + 1, as a real client would; replayed events then
 * count like live ones (and show in the latency).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_int.h"
#include "oms/v1/order.omsrpc.h"

#define SYNC_MS           100
#define RESUME_MS         20
#define MAX_RESUMES       50 /* per subscriber */
#define CREATE_TIMEOUT_MS 30000

typedef struct watch_run watch_run;

typedef struct sub {
    watch_run *w;
    rpc_client_call *call;
    rpc_channel *ch;
    int64_t last_seq; /* 0: none seen yet */
    uint64_t seen;    /* creation events of produced orders */
    uint64_t dups;
    uint32_t resumes;
    bool open, live, cancelled;
    struct sub *next_resume;
} sub;

/* An order seen (in an event or a CreateOrder answer), by id. */
enum { ENT_PENDING, ENT_SYNC, ENT_PRODUCED };

typedef struct early {
    uint32_t sub;
    int64_t at; /* OrderEvent.at */
    uint64_t t; /* arrival, uv_hrtime */
} early;

typedef struct order_ent {
    char *id; /* NULL: free slot */
    uint64_t send_ns;
    uint64_t first_t, last_t; /* its first and last delivery (window orders) */
    uint8_t kind;
    bool window;
    early *early; /* deliveries before the CreateOrder answer */
    uint32_t nearly, capearly;
} order_ent;

/* One CreateOrder of the producer (sync or load). */
typedef struct pcall {
    watch_run *w;
    uint64_t send_ns;
    bool sync;
    bool window;
} pcall;

enum { PH_OPEN, PH_LOAD, PH_DRAIN, PH_DONE };

struct watch_run {
    uv_loop_t *loop;
    const bench_config *cfg;
    bench_results *res;
    bench_watch_results *wr;
    rpc_channel **chans; /* subscribers' */
    unsigned nchans;
    rpc_channel *prod;
    sub *subs;
    unsigned nsubs;
    int phase;
    bench_phase ph; /* warm-up, window (phase.h) */
    bool finished;
    bool failed;
    char fail_msg[256];
    /* orders */
    order_ent *tab;
    size_t tabcap, tabn;
    /* producer */
    Oms__V1__CreateOrderRequest req;
    Oms__V1__CreateOrderLine line;
    Oms__V1__CreateOrderLine *lines[1];
    char key_prefix[48];
    uint64_t next_key;
    unsigned creates_inflight;
    bool sync_inflight;
    uint64_t next_due;
    int tfd;
    uint64_t armed_at;
    /* times (uv_hrtime ns) */
    uint64_t t_open, t_drain;
    uint64_t t_first_window_send, t_last_window_delivery;
    int64_t wall_offset_ns; /* CLOCK_REALTIME - uv_hrtime */
    /* progress */
    uint64_t last_deliveries, last_produced;
    bench_hist interval_hist;
    /* handles */
    uv_timer_t phase_timer, sync_timer, progress_timer, resume_timer;
    uv_poll_t tick;
    uv_signal_t sigint;
    sub *resumes;
    int sigints;
};

/* --- the order table --------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int tab_grow(watch_run *w)
{
    size_t ncap = w->tabcap ? w->tabcap * 2 : 4096;
    order_ent *nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -1;
    for (size_t i = 0; i < w->tabcap; i++) {
        if (!w->tab[i].id)
            continue;
        size_t j = hash_str(w->tab[i].id) & (ncap - 1);
        while (nt[j].id)
            j = (j + 1) & (ncap - 1);
        nt[j] = w->tab[i];
    }
    free(w->tab);
    w->tab = nt;
    w->tabcap = ncap;
    return 0;
}

/* The entry of id, made (ENT_PENDING) if new; NULL when out of memory. */
static order_ent *tab_get(watch_run *w, const char *id)
{
    if ((w->tabn + 1) * 2 > w->tabcap && tab_grow(w) != 0)
        return NULL;
    size_t j = hash_str(id) & (w->tabcap - 1);
    while (w->tab[j].id) {
        if (strcmp(w->tab[j].id, id) == 0)
            return &w->tab[j];
        j = (j + 1) & (w->tabcap - 1);
    }
    char *dup = strdup(id);
    if (!dup)
        return NULL;
    w->tab[j] = (order_ent){.id = dup, .kind = ENT_PENDING};
    w->tabn++;
    return &w->tab[j];
}

static void tab_free(watch_run *w)
{
    for (size_t i = 0; i < w->tabcap; i++) {
        free(w->tab[i].id);
        free(w->tab[i].early);
    }
    free(w->tab);
    w->tab = NULL;
}

/* --- counting ----------------------------------------------------------------- */

static void count_error(watch_run *w, rpc_status code, const char *msg)
{
    unsigned k = (unsigned)code < BENCH_NCODES ? (unsigned)code : RPC_UNKNOWN;
    w->res->counts.calls++;
    w->res->counts.codes[k]++;
    if (k != RPC_OK && !w->res->first_error[k][0])
        snprintf(w->res->first_error[k], sizeof w->res->first_error[k], "%s",
                 msg && *msg ? msg : "(no message)");
}

static void finish(watch_run *w);

/* During the drain: is everything there? */
static void check_drained(watch_run *w)
{
    if (w->phase != PH_DRAIN || w->creates_inflight)
        return;
    if (w->wr->deliveries >= w->wr->produced_ok * (uint64_t)w->nsubs)
        finish(w);
}

/* Subscriber u received order e's creation event at t. */
static void deliver(watch_run *w, sub *u, order_ent *e, uint64_t t, int64_t at)
{
    bench_watch_results *wr = w->wr;
    u->seen++;
    wr->deliveries++;
    if (!e->window)
        return;
    uint64_t ns = t > e->send_ns ? t - e->send_ns : 0;
    wr->deliveries_window++;
    w->res->counts.ops++;
    w->res->counts.messages++;
    bench_hist_record(&w->res->latency, ns);
    bench_hist_record(&w->interval_hist, ns);
    int64_t wall = (int64_t)t + w->wall_offset_ns;
    int64_t d = wall - at * 1000000;
    bench_hist_record(&wr->commit_at, d > 0 ? (uint64_t)d : 0);
    if (t > w->t_last_window_delivery)
        w->t_last_window_delivery = t;
    if (!e->first_t || t < e->first_t)
        e->first_t = t;
    if (t > e->last_t)
        e->last_t = t;
}

/* --- subscribers ---------------------------------------------------------------- */

static void sub_start(sub *u);

static void mark_open(watch_run *w, sub *u)
{
    if (!u->open) {
        u->open = true;
        w->wr->subscribers_open++;
    }
}

static void start_load(watch_run *w);

static void on_sub_headers(rpc_client_call *c, void *data, const rpc_metadata *md)
{
    sub *u = data;
    (void)c;
    (void)md;
    if (!u->w->finished)
        mark_open(u->w, u);
}

static void on_sub_event(rpc_client_call *c, void *data, const Oms__V1__OrderEvent *ev)
{
    sub *u = data;
    watch_run *w = u->w;
    (void)c;
    if (w->finished)
        return;
    uint64_t t = uv_hrtime();
    bench_watch_results *wr = w->wr;
    mark_open(w, u);
    if (!u->live) {
        u->live = true;
        if (++wr->subscribers_live == w->nsubs && w->phase == PH_OPEN)
            start_load(w);
    }
    if (ev->seq <= u->last_seq) {
        if (u->dups++ == 0)
            wr->subs_duplicate++;
        wr->duplicates++;
        return;
    }
    if (u->last_seq && ev->seq > u->last_seq + 1)
        wr->seq_gaps += (uint64_t)(ev->seq - u->last_seq - 1);
    u->last_seq = ev->seq;
    if (ev->previous_status != OMS__V1__ORDER_STATUS__ORDER_STATUS_UNSPECIFIED || !ev->order_id) {
        wr->other_events++;
        return;
    }
    order_ent *e = tab_get(w, ev->order_id);
    if (!e) {
        wr->other_events++;
        return;
    }
    if (e->kind == ENT_SYNC) {
        wr->other_events++;
        return;
    }
    if (e->kind == ENT_PRODUCED) {
        deliver(w, u, e, t, ev->at);
        check_drained(w);
        return;
    }
    /* Not answered yet (or not ours): keep the arrival. */
    if (e->nearly == e->capearly) {
        uint32_t ncap = e->capearly ? e->capearly * 2 : 16;
        early *ne = realloc(e->early, ncap * sizeof *ne);
        if (!ne) {
            wr->other_events++;
            return;
        }
        e->early = ne;
        e->capearly = ncap;
    }
    e->early[e->nearly++] = (early){.sub = (uint32_t)(u - w->subs), .at = ev->at, .t = t};
}

static void on_resume_timer(uv_timer_t *t)
{
    watch_run *w = t->data;
    sub *list = w->resumes;
    w->resumes = NULL;
    while (list) {
        sub *u = list;
        list = u->next_resume;
        u->next_resume = NULL;
        if (!w->finished && !u->call)
            sub_start(u);
    }
}

static void on_sub_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                          const rpc_metadata *trailers)
{
    sub *u = data;
    watch_run *w = u->w;
    (void)c;
    (void)trailers;
    u->call = NULL;
    if (w->finished || u->cancelled)
        return;
    if (code == RPC_OK) {
        code = RPC_INTERNAL;
        message = "WatchOrders ended OK while the run went on";
    }
    count_error(w, code, message);
    if (u->resumes >= MAX_RESUMES)
        return; /* its missing events will show */
    u->resumes++;
    w->wr->resumes++;
    u->next_resume = w->resumes;
    w->resumes = u;
    if (!uv_is_active((uv_handle_t *)&w->resume_timer))
        uv_timer_start(&w->resume_timer, on_resume_timer, RESUME_MS, 0);
}

static const Oms__V1__OrderService_WatchOrders_Callbacks sub_cbs = {
    .on_headers = on_sub_headers,
    .on_message = on_sub_event,
    .on_status = on_sub_status,
};

static void sub_start(sub *u)
{
    Oms__V1__WatchOrdersRequest req = OMS__V1__WATCH_ORDERS_REQUEST__INIT;
    req.customer_id = "";
    req.since_seq = u->last_seq ? u->last_seq + 1 : 0;
    u->call = oms__v1__order_service__watch_orders__call(u->ch, &req, NULL, &sub_cbs, u);
    if (!u->call)
        count_error(u->w, RPC_RESOURCE_EXHAUSTED, "client out of memory");
}

/* --- the producer ---------------------------------------------------------------- */

static void on_created(void *data, rpc_status code, const char *message, const Oms__V1__Order *o)
{
    pcall *p = data;
    watch_run *w = p->w;
    bench_watch_results *wr = w->wr;
    uint64_t t = uv_hrtime();
    w->creates_inflight--;
    if (p->sync)
        w->sync_inflight = false;
    if (w->finished) {
        free(p);
        return;
    }
    if (code == RPC_OK && (!o->id || !*o->id)) {
        code = RPC_INTERNAL;
        message = "CreateOrder answered OK without an order id";
    }
    if (!p->sync || code != RPC_OK)
        count_error(w, code, message);
    if (code == RPC_OK) {
        order_ent *e = tab_get(w, o->id);
        if (e && e->kind != ENT_PENDING) {
            count_error(w, RPC_INTERNAL, "CreateOrder answered an order id twice");
        } else if (e) {
            e->kind = p->sync ? ENT_SYNC : ENT_PRODUCED;
            e->send_ns = p->send_ns;
            e->window = p->window;
            if (!p->sync) {
                wr->produced_ok++;
                if (p->window) {
                    wr->produced_window++;
                    bench_hist_record(&wr->create, t - p->send_ns);
                }
            }
            for (uint32_t i = 0; i < e->nearly; i++) {
                if (p->sync)
                    wr->other_events++;
                else
                    deliver(w, &w->subs[e->early[i].sub], e, e->early[i].t, e->early[i].at);
            }
            free(e->early);
            e->early = NULL;
            e->nearly = e->capearly = 0;
        }
    }
    free(p);
    check_drained(w);
}

static void send_create(watch_run *w, bool sync)
{
    pcall *p = malloc(sizeof *p);
    if (!p) {
        count_error(w, RPC_RESOURCE_EXHAUSTED, "client out of memory");
        return;
    }
    char key[96];
    snprintf(key, sizeof key, "%s%" PRIu64, w->key_prefix, w->next_key++);
    w->req.idempotency_key = w->cfg->no_key ? "" : key;
    p->w = w;
    p->sync = sync;
    p->window = w->ph.measuring && !sync;
    p->send_ns = uv_hrtime();
    rpc_call_opts opts = {.timeout_ms = CREATE_TIMEOUT_MS};
    rpc_client_call *c =
        oms__v1__order_service__create_order__call(w->prod, &w->req, &opts, on_created, p);
    w->req.idempotency_key = "";
    if (!c) {
        free(p);
        count_error(w, RPC_RESOURCE_EXHAUSTED, "client out of memory");
        return;
    }
    w->creates_inflight++;
    if (sync) {
        w->sync_inflight = true;
        w->wr->sync_orders++;
    } else {
        w->wr->produced++;
        if (p->window && !w->t_first_window_send)
            w->t_first_window_send = p->send_ns;
    }
}

static uint64_t due_time(const watch_run *w, uint64_t i)
{
    return w->ph.t_start + (uint64_t)((double)i * 1e9 / w->cfg->rate);
}

/* Sends every order now due and arms the timerfd for the next one (a
 * timerfd: libuv timers have millisecond resolution). */
static void schedule_due(watch_run *w)
{
    uint64_t now = uv_hrtime();
    while (w->phase == PH_LOAD) {
        uint64_t t = due_time(w, w->next_due);
        if (t > now) {
            if (t != w->armed_at) {
                struct itimerspec its = {
                    .it_value = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)}};
                timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
                w->armed_at = t;
            }
            return;
        }
        w->next_due++;
        send_create(w, false);
    }
}

static void on_tick(uv_poll_t *p, int status, int events)
{
    watch_run *w = p->data;
    (void)status;
    (void)events;
    uint64_t expirations;
    if (read(w->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    schedule_due(w);
}

/* --- phases ----------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

/* Everything ends: channels (and with them every call) go. */
static void finish(watch_run *w)
{
    if (w->finished)
        return;
    w->finished = true;
    if (!w->t_drain)
        w->t_drain = uv_hrtime();
    w->phase = PH_DONE;
    uv_close((uv_handle_t *)&w->phase_timer, on_closed);
    bench__phase_close(&w->ph);
    uv_close((uv_handle_t *)&w->sync_timer, on_closed);
    uv_close((uv_handle_t *)&w->progress_timer, on_closed);
    uv_close((uv_handle_t *)&w->resume_timer, on_closed);
    uv_close((uv_handle_t *)&w->tick, on_closed);
    uv_close((uv_handle_t *)&w->sigint, on_closed);
    for (unsigned i = 0; i < w->nsubs; i++)
        w->subs[i].cancelled = true;
    for (unsigned i = 0; i < w->nchans; i++)
        rpc_channel_free(w->chans[i], NULL, NULL);
    if (w->prod)
        rpc_channel_free(w->prod, NULL, NULL);
}

static void on_drain_timeout(uv_timer_t *t)
{
    watch_run *w = t->data;
    w->wr->drain_timed_out = true;
    finish(w);
}

/* The window is over: no new orders; the last deliveries may come. */
static void stop_load(watch_run *w)
{
    if (w->phase != PH_LOAD)
        return;
    bench__phase_stop(&w->ph, w->res);
    w->phase = PH_DRAIN;
    uv_poll_stop(&w->tick);
    uv_timer_stop(&w->progress_timer);
    uint64_t ms = (uint64_t)llround(w->cfg->drain_s * 1000);
    uv_timer_start(&w->phase_timer, on_drain_timeout, ms ? ms : 1, 0);
    check_drained(w);
}

static void on_window_end(bench_phase *p)
{
    stop_load(p->data);
}

static void on_progress(uv_timer_t *t)
{
    watch_run *w = t->data;
    bench_watch_results *wr = w->wr;
    uint64_t now = uv_hrtime();
    char p50[32], p99[32];
    bench__format_ns(p50, sizeof p50, (double)bench_hist_percentile(&w->interval_hist, 50));
    bench__format_ns(p99, sizeof p99, (double)bench_hist_percentile(&w->interval_hist, 99));
    if (w->phase == PH_OPEN) {
        fprintf(stderr,
                "[%5.1fs] open    %u of %u subscribers open, %u live, %" PRIu64 " sync orders\n",
                (double)(now - w->t_open) / 1e9, wr->subscribers_open, w->nsubs,
                wr->subscribers_live, wr->sync_orders);
        return;
    }
    fprintf(stderr,
            "[%5.1fs] %-7s %6" PRIu64 " orders  %10" PRIu64 " deliveries/s  p50 %s  p99 %s  "
            "errors %" PRIu64 "  creates in flight %u\n",
            (double)(now - w->ph.t_start) / 1e9, w->ph.measuring ? "run" : "warm-up",
            wr->produced - w->last_produced, wr->deliveries - w->last_deliveries, p50, p99,
            w->res->counts.calls - w->res->counts.codes[RPC_OK], w->creates_inflight);
    w->last_produced = wr->produced;
    w->last_deliveries = wr->deliveries;
    bench_hist_reset(&w->interval_hist);
}

/* Every subscriber is live: the producer starts. */
static void start_load(watch_run *w)
{
    w->phase = PH_LOAD;
    uv_timer_stop(&w->sync_timer);
    uv_timer_stop(&w->phase_timer); /* the open timeout; the drain's from now on */
    bench__phase_start(&w->ph);
    w->wr->open_s = (double)(w->ph.t_start - w->t_open) / 1e9;
    w->last_deliveries = w->wr->deliveries;
    uv_poll_start(&w->tick, UV_READABLE, on_tick);
    schedule_due(w);
}

static void on_sync(uv_timer_t *t)
{
    watch_run *w = t->data;
    if (w->phase == PH_OPEN && !w->sync_inflight)
        send_create(w, true);
}

static void on_open_timeout(uv_timer_t *t)
{
    watch_run *w = t->data;
    if (w->phase != PH_OPEN)
        return;
    w->failed = true;
    snprintf(w->fail_msg, sizeof w->fail_msg,
             "only %u of %u subscribers live (%u open) after %.0f s (the server allows "
             "--max-streams streams per connection: use more --connections)",
             w->wr->subscribers_live, w->nsubs, w->wr->subscribers_open, w->cfg->open_timeout_s);
    finish(w);
}

static void on_sigint(uv_signal_t *h, int signum)
{
    watch_run *w = h->data;
    (void)signum;
    if (++w->sigints > 2)
        _exit(130);
    w->res->interrupted = true;
    if (w->phase == PH_LOAD)
        stop_load(w);
    else if (w->phase == PH_OPEN) {
        w->failed = true;
        snprintf(w->fail_msg, sizeof w->fail_msg, "interrupted before the load started");
        finish(w);
    } else
        finish(w);
}

/* --- the run ---------------------------------------------------------------------- */

static void tally(watch_run *w)
{
    bench_watch_results *wr = w->wr;
    wr->expected = wr->produced_ok * (uint64_t)w->nsubs;
    int64_t newest = 0;
    for (unsigned i = 0; i < w->nsubs; i++)
        if (w->subs[i].last_seq > newest)
            newest = w->subs[i].last_seq;
    for (unsigned i = 0; i < w->nsubs; i++) {
        sub *u = &w->subs[i];
        if (u->seen < wr->produced_ok) {
            wr->missing += wr->produced_ok - u->seen;
            wr->subs_missing++;
            if (u->last_seq < newest)
                wr->subs_behind++;
        }
    }
    for (size_t i = 0; i < w->tabcap; i++) {
        order_ent *e = &w->tab[i];
        if (e->id && e->kind == ENT_PENDING)
            wr->unknown_deliveries += e->nearly;
        if (e->id && e->kind == ENT_PRODUCED && e->window && e->first_t)
            bench_hist_record(&wr->spread, e->last_t - e->first_t);
    }
    if (w->t_first_window_send && w->t_last_window_delivery > w->t_first_window_send)
        wr->deliver_s = (double)(w->t_last_window_delivery - w->t_first_window_send) / 1e9;
}

int bench__run_watch(uv_loop_t *loop, const bench_config *cfg, bench_results *res, char *err,
                     size_t errlen)
{
    watch_run run = {.loop = loop, .cfg = cfg, .res = res, .tfd = -1};
    watch_run *w = &run;
    int rv = -1;
    bench_watch_results *wr = calloc(1, sizeof *wr);
    if (!wr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    res->watch = w->wr = wr;
    wr->subscribers = cfg->concurrency;
    if (bench_hist_init(&res->latency, 1000, 60000000000u, 6) != 0 ||
        bench_hist_init(&wr->create, 1000, 60000000000u, 6) != 0 ||
        bench_hist_init(&wr->commit_at, 1000, 60000000000u, 6) != 0 ||
        bench_hist_init(&wr->spread, 1000, 60000000000u, 6) != 0 ||
        bench_hist_init(&w->interval_hist, 1000, 60000000000u, 6) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    w->subs = calloc(cfg->concurrency, sizeof *w->subs);
    w->chans = calloc(cfg->connections, sizeof *w->chans);
    if (!w->subs || !w->chans) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->tfd < 0) {
        snprintf(err, errlen, "timerfd_create: %s", strerror(errno));
        goto out;
    }
    rpc_channel_config cc;
    bench__channel_config(cfg, &cc);
    rpc_channel_config pc = cc; /* --producer-target: another instance */
    if (cfg->producer_address)
        pc.target = cfg->producer_address;
    if (!(w->prod = rpc_channel_new(loop, &pc, err, errlen)))
        goto out;
    for (unsigned i = 0; i < cfg->connections; i++) {
        if (!(w->chans[i] = rpc_channel_new(loop, &cc, err, errlen)))
            goto out_channels;
        w->nchans++;
    }
    /* The producer's request; the setup fills in the customer. */
    if (bench__order_setup(w->prod, cfg, res, err, errlen) != 0)
        goto out_channels;
    oms__v1__create_order_request__init(&w->req);
    oms__v1__create_order_line__init(&w->line);
    w->req.customer_id = (char *)res->customer;
    w->line.sku = (char *)bench__order_sku(cfg);
    w->line.quantity = cfg->quantity;
    w->lines[0] = &w->line;
    w->req.n_lines = 1;
    w->req.lines = w->lines;
    w->req.idempotency_key = "";
    bench__key_prefix(w->key_prefix, sizeof w->key_prefix);
    res->request_bytes = protobuf_c_message_get_packed_size(&w->req.base);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t hr = uv_hrtime();
    w->wall_offset_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - (int64_t)hr;

    uv_timer_init(loop, &w->phase_timer);
    bench__phase_init(&w->ph, loop, cfg, on_window_end, w);
    uv_timer_init(loop, &w->sync_timer);
    uv_timer_init(loop, &w->progress_timer);
    uv_timer_init(loop, &w->resume_timer);
    uv_poll_init(loop, &w->tick, w->tfd);
    uv_signal_init(loop, &w->sigint);
    w->phase_timer.data = w->sync_timer.data = w->progress_timer.data = w->resume_timer.data = w;
    w->tick.data = w->sigint.data = w;
    uv_signal_start(&w->sigint, on_sigint, SIGINT);

    w->nsubs = cfg->concurrency;
    w->t_open = uv_hrtime();
    for (unsigned i = 0; i < w->nsubs; i++) {
        w->subs[i].w = w;
        w->subs[i].ch = w->chans[i % w->nchans];
        sub_start(&w->subs[i]);
    }
    uv_timer_start(&w->sync_timer, on_sync, SYNC_MS, SYNC_MS);
    uint64_t ms = (uint64_t)llround(cfg->open_timeout_s * 1000);
    uv_timer_start(&w->phase_timer, on_open_timeout, ms ? ms : 1, 0);
    if (cfg->progress)
        uv_timer_start(&w->progress_timer, on_progress, 1000, 1000);
    uv_run(loop, UV_RUN_DEFAULT);
    tally(w);
    if (w->failed) {
        snprintf(err, errlen, "%s", w->fail_msg);
    } else if (!w->ph.t_start) {
        snprintf(err, errlen, "interrupted before the load started");
    } else {
        rv = 0;
    }
    goto out;
out_channels:
    for (unsigned i = 0; i < w->nchans; i++)
        rpc_channel_free(w->chans[i], NULL, NULL);
    rpc_channel_free(w->prod, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
out:
    if (w->tfd >= 0)
        close(w->tfd);
    free(w->subs);
    free(w->chans);
    tab_free(w);
    bench_hist_dispose(&w->interval_hist);
    return rv;
}
