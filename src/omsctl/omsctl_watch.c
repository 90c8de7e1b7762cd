/* omsctl_watch.c - the live commands: `watch` (WatchOrders, server
 * streaming, resumable) and `track` (TrackOrders, bidi, commands on stdin).
 *
 * Both run on ctl->loop until the stream ends, SIGINT/SIGTERM (exit 0) or
 * the --timeout duration passes (exit 0: for a stream, --timeout is how long
 * to watch, not a per-call deadline).
 *
 * watch resumes: when the stream fails with UNAVAILABLE (server gone,
 * connection lost), CANCELLED not asked for by us, or RESOURCE_EXHAUSTED (a
 * subscriber that fell too far behind), it waits (250 ms doubling to 5 s,
 * reset by each event) and starts again with since_seq = last seq seen + 1.
 * Events at or below the last seq are dropped, so a server that replays too
 * much cannot make a line appear twice.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "omsctl/omsctl.h"
#include "grpc/health/v1/health.omsrpc.h"
#include "oms/v1/order.omsrpc.h"

#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS   5000

/* Handles every live command has: signals and the --timeout duration. */
typedef struct live {
    omsctl *ctl;
    uv_signal_t sigint, sigterm;
    uv_timer_t duration;
    int open_handles; /* closed ones count down */
    bool stopping;    /* user asked to stop: the end of the call is not an error */
    void (*stop)(struct live *lv);
} live;

static void on_live_closed(uv_handle_t *h)
{
    live *lv = h->data;
    lv->open_handles--;
}

static void live_stop(live *lv)
{
    if (!lv->stopping) {
        lv->stopping = true;
        lv->stop(lv);
    }
}

static void on_live_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    live_stop(s->data);
}

static void on_live_duration(uv_timer_t *t)
{
    live_stop(t->data);
}

static void live_init(live *lv, omsctl *ctl, void (*stop)(live *))
{
    memset(lv, 0, sizeof *lv);
    lv->ctl = ctl;
    lv->stop = stop;
    uv_signal_init(&ctl->loop, &lv->sigint);
    uv_signal_init(&ctl->loop, &lv->sigterm);
    uv_timer_init(&ctl->loop, &lv->duration);
    lv->sigint.data = lv->sigterm.data = lv->duration.data = lv;
    lv->open_handles = 3;
    uv_signal_start(&lv->sigint, on_live_signal, SIGINT);
    uv_signal_start(&lv->sigterm, on_live_signal, SIGTERM);
    if (ctl->timeout_set && ctl->timeout_s > 0)
        uv_timer_start(&lv->duration, on_live_duration, (uint64_t)(ctl->timeout_s * 1000.0), 0);
    /* the signal handles must not keep the loop alive on their own (the
     * duration timer may: it is what ends the run) */
    uv_unref((uv_handle_t *)&lv->sigint);
    uv_unref((uv_handle_t *)&lv->sigterm);
}

static void live_close(live *lv)
{
    uv_close((uv_handle_t *)&lv->sigint, on_live_closed);
    uv_close((uv_handle_t *)&lv->sigterm, on_live_closed);
    uv_close((uv_handle_t *)&lv->duration, on_live_closed);
}

/* Whether the server answers at all: any status but UNAVAILABLE or
 * DEADLINE_EXCEEDED (UNIMPLEMENTED included) proves it is there. A stream
 * does not get headers before its first event, so this is how watch tells
 * "wrong target" (exit 2) from "server restarted" (reconnect). */
static int check_reachable(omsctl *ctl)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;
    char msg[512] = "";
    rpc_call_opts opts = {.timeout_ms = 10000};
    rpc_status code =
        grpc__health__v1__health__check__blocking(ctl->chan, &req, &resp, &opts, msg, sizeof msg);
    if (resp)
        grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    /* A server that is down is waited for (the stream's backoff loop says
     * so on stderr); a TLS failure is a configuration error that no retry
     * fixes. */
    if (code == RPC_UNAVAILABLE && strncmp(msg, "tls:", 4) == 0)
        return omsctl_fail(code, msg);
    return 0;
}

/* --- watch ----------------------------------------------------------------------- */

typedef struct watch_state {
    live lv;
    const char *customer_id;
    char **order_ids;
    size_t n_order_ids;
    int64_t since;    /* --since */
    int64_t last_seq; /* 0: none seen yet */
    rpc_client_call *call;
    uv_timer_t retry;
    uint64_t backoff_ms;
    unsigned attempts; /* calls started */
    bool done;
    int rc;
} watch_state;

static void start_watch(watch_state *w);

static void on_watch_event(rpc_client_call *c, void *data, const Oms__V1__OrderEvent *e)
{
    watch_state *w = data;
    (void)c;
    w->backoff_ms = BACKOFF_FIRST_MS;
    if (w->last_seq && e->seq <= w->last_seq)
        return; /* already printed */
    w->last_seq = e->seq;
    omsctl_print_event(w->lv.ctl, e);
    if (omsctl_stdout_failed(w->lv.ctl))
        live_stop(&w->lv); /* the reader went away: nothing more to do */
}

static bool resumable(rpc_status code)
{
    return code == RPC_UNAVAILABLE || code == RPC_CANCELLED || code == RPC_RESOURCE_EXHAUSTED;
}

static void on_watch_retry(uv_timer_t *t)
{
    watch_state *w = t->data;
    start_watch(w);
}

static void watch_finish(watch_state *w, int rc)
{
    w->done = true;
    w->rc = rc;
    uv_timer_stop(&w->retry);
}

static void on_watch_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                            const rpc_metadata *trailers)
{
    watch_state *w = data;
    (void)trailers;
    omsctl_keep_details(w->lv.ctl, c);
    w->call = NULL;
    if (w->lv.stopping || code == RPC_OK) {
        watch_finish(w, OMSCTL_EXIT_OK);
        return;
    }
    if (!resumable(code)) {
        watch_finish(w, omsctl_fail_call(w->lv.ctl, code, message));
        return;
    }
    int64_t next = w->last_seq ? w->last_seq + 1 : w->since;
    fprintf(stderr, "omsctl: watch: %s: %s; reconnecting in %.1fs (", rpc_status_name((int)code),
            message, (double)w->backoff_ms / 1000.0);
    if (next)
        fprintf(stderr, "resuming at seq %lld)\n", (long long)next);
    else
        fprintf(stderr, "live events only: none seen yet)\n");
    uv_timer_start(&w->retry, on_watch_retry, w->backoff_ms, 0);
    w->backoff_ms *= 2;
    if (w->backoff_ms > BACKOFF_MAX_MS)
        w->backoff_ms = BACKOFF_MAX_MS;
}

static const Oms__V1__OrderService_WatchOrders_Callbacks watch_cb = {
    .on_message = on_watch_event,
    .on_status = on_watch_status,
};

static void start_watch(watch_state *w)
{
    Oms__V1__WatchOrdersRequest req = OMS__V1__WATCH_ORDERS_REQUEST__INIT;
    if (w->customer_id)
        req.customer_id = (char *)w->customer_id;
    req.order_ids = w->order_ids;
    req.n_order_ids = w->n_order_ids;
    req.since_seq = w->last_seq ? w->last_seq + 1 : w->since;
    /* No deadline: a watch runs until stopped. A resumed attempt waits for
     * the channel to connect (its own backoff) rather than failing fast, so
     * a long outage is one note on stderr, not one per attempt. */
    rpc_call_opts opts = {.wait_for_ready = w->attempts > 0};
    w->attempts++;
    w->call =
        oms__v1__order_service__watch_orders__call(w->lv.ctl->chan, &req, &opts, &watch_cb, w);
    if (!w->call)
        watch_finish(w, omsctl_fail(RPC_RESOURCE_EXHAUSTED, "out of memory"));
}

static void stop_watch(live *lv)
{
    watch_state *w = (watch_state *)lv; /* lv is the first member */
    if (w->call)
        rpc_client_call_cancel(w->call); /* on_status finishes */
    else
        watch_finish(w, OMSCTL_EXIT_OK);
}

static void on_retry_closed(uv_handle_t *h)
{
    watch_state *w = h->data;
    w->lv.open_handles--;
}

int omsctl_cmd_watch(omsctl *ctl, int argc, char **argv)
{
    watch_state w;
    memset(&w, 0, sizeof w);
    char **ids = calloc((size_t)argc, sizeof *ids);
    if (!ids)
        return omsctl_fail(RPC_RESOURCE_EXHAUSTED, "out of memory");
    const char *since = NULL;
    bool rest = false;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *v;
        bool missing = false;
        if (!rest && strcmp(argv[i], "--") == 0) {
            rest = true;
        } else if (rest || argv[i][0] != '-' || argv[i][1] != '-') {
            ids[w.n_order_ids++] = argv[i]; /* bare ids: as --order */
        } else if (omsctl_opt(argc, argv, &i, "--order", &v, &missing)) {
            if (!missing)
                ids[w.n_order_ids++] = (char *)v;
        } else if (omsctl_opt(argc, argv, &i, "--customer", &v, &missing)) {
            w.customer_id = v;
        } else if (omsctl_opt(argc, argv, &i, "--since", &v, &missing)) {
            since = v;
        } else {
            static const char *const names[] = {"--order", "--customer", "--since"};
            rc = omsctl_unknown_option("watch", argv[i], names, 3);
        }
        if (missing)
            rc = omsctl_usage_error("watch", "%s needs a value", argv[i]);
    }
    if (rc == 0 && since && (omsctl_parse_i64(since, &w.since) != 0 || w.since < 0))
        rc = omsctl_usage_error("watch", "--since wants a sequence number, not '%s'", since);
    if (rc == 0) {
        ctl->fast_backoff = true;
        rc = omsctl_connect(ctl);
    }
    if (rc == 0)
        rc = check_reachable(ctl);
    if (rc != 0) {
        free(ids);
        return rc;
    }
    w.order_ids = ids;
    w.backoff_ms = BACKOFF_FIRST_MS;
    live_init(&w.lv, ctl, stop_watch);
    uv_timer_init(&ctl->loop, &w.retry);
    w.retry.data = &w;
    w.lv.open_handles++;
    start_watch(&w);
    omsctl_run_until(ctl, &w.done);
    if (w.call) { /* the loop ran dry: cannot happen while a call is open */
        rpc_client_call_cancel(w.call);
        omsctl_run_until(ctl, &w.done);
    }
    live_close(&w.lv);
    uv_close((uv_handle_t *)&w.retry, on_retry_closed);
    while (w.lv.open_handles > 0)
        uv_run(&ctl->loop, UV_RUN_ONCE);
    free(ids);
    return w.done ? w.rc : OMSCTL_EXIT_SERVER;
}

/* --- track ----------------------------------------------------------------------- */

#define TRACK_LINE_MAX 65536 /* longer command lines are refused */

typedef struct track_state {
    live lv;
    rpc_client_call *call;
    int64_t since;
    /* stdin: a stream (tty, pipe, socket) or, for files, uv_fs_read */
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
    } in;
    bool in_stream;  /* in is initialised */
    bool in_reading; /* uv_read_start is on */
    uv_fs_t fs_req;  /* file stdin */
    bool fs_pending; /* a uv_fs_read is in flight */
    char fs_buf[4096];
    bool in_eof; /* stdin ended: half-close once the buffer is sent */
    bool half_closed;
    bool blocked; /* RPC_AGAIN: wait for on_ready */
    char *line;   /* bytes of stdin not yet taken as commands */
    size_t len, cap;
    bool done;
    int rc;
} track_state;

static void track_pump(track_state *t);

/* Sends one TrackRequest; false if the call is over. */
static bool track_send(track_state *t, bool subscribe, char **ids, size_t n)
{
    Oms__V1__TrackRequest req = OMS__V1__TRACK_REQUEST__INIT;
    Oms__V1__TrackSubscribe sub = OMS__V1__TRACK_SUBSCRIBE__INIT;
    Oms__V1__TrackUnsubscribe unsub = OMS__V1__TRACK_UNSUBSCRIBE__INIT;
    if (subscribe) {
        sub.order_ids = ids;
        sub.n_order_ids = n;
        sub.since_seq = t->since;
        req.action_case = OMS__V1__TRACK_REQUEST__ACTION_SUBSCRIBE;
        req.subscribe = &sub;
    } else {
        unsub.order_ids = ids;
        unsub.n_order_ids = n;
        req.action_case = OMS__V1__TRACK_REQUEST__ACTION_UNSUBSCRIBE;
        req.unsubscribe = &unsub;
    }
    int rv = oms__v1__order_service__track_orders__client_send(t->call, &req);
    if (rv == RPC_AGAIN)
        t->blocked = true;
    return rv >= 0;
}

/* One command line from stdin. */
static void track_command(track_state *t, char *s)
{
    char *ids[64];
    size_t n = 0;
    bool subscribe;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0' || *s == '#')
        return;
    if (*s == '+' || *s == '-') {
        subscribe = *s == '+';
        s++;
    } else if (strncmp(s, "sub ", 4) == 0 || strncmp(s, "sub\t", 4) == 0) {
        subscribe = true;
        s += 4;
    } else if (strncmp(s, "unsub ", 6) == 0 || strncmp(s, "unsub\t", 6) == 0) {
        subscribe = false;
        s += 6;
    } else {
        fprintf(stderr, "omsctl: track: unknown command '%s' (+ID, -ID, sub ID..., unsub ID...)\n",
                s);
        return;
    }
    for (char *save = NULL, *tok = strtok_r(s, " \t\r", &save); tok;
         tok = strtok_r(NULL, " \t\r", &save)) {
        if (n == sizeof ids / sizeof ids[0]) {
            fprintf(stderr, "omsctl: track: at most 64 ids per line; the rest are ignored\n");
            break;
        }
        ids[n++] = tok;
    }
    if (n == 0) {
        fprintf(stderr, "omsctl: track: '%s' needs at least one order id\n",
                subscribe ? "sub" : "unsub");
        return;
    }
    track_send(t, subscribe, ids, n);
}

static void track_stop_reading(track_state *t)
{
    if (t->in_reading) {
        uv_read_stop((uv_stream_t *)&t->in);
        t->in_reading = false;
    }
}

static void on_stdin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    track_state *t = h->data;
    (void)hint;
    if (t->cap - t->len < 4096) {
        size_t cap = t->cap ? t->cap * 2 : 8192;
        char *p = realloc(t->line, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
        t->line = p;
        t->cap = cap;
    }
    *buf = uv_buf_init(t->line + t->len, (unsigned)(t->cap - t->len));
}

static void take_input(track_state *t, const char *p, size_t n, bool in_place)
{
    if (!in_place) {
        if (t->cap - t->len < n + 1) {
            size_t cap = t->cap ? t->cap : 8192;
            while (cap - t->len < n + 1)
                cap *= 2;
            char *q = realloc(t->line, cap);
            if (!q) {
                fprintf(stderr, "omsctl: out of memory\n");
                exit(OMSCTL_EXIT_SERVER);
            }
            t->line = q;
            t->cap = cap;
        }
        memcpy(t->line + t->len, p, n);
    }
    t->len += n;
    if (t->len > TRACK_LINE_MAX && !memchr(t->line, '\n', t->len)) {
        fprintf(stderr, "omsctl: track: command line longer than %d bytes dropped\n",
                TRACK_LINE_MAX);
        t->len = 0;
    }
}

static void on_stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    track_state *t = s->data;
    (void)buf;
    if (n > 0)
        take_input(t, NULL, (size_t)n, true);
    else if (n < 0) {
        if (n != UV_EOF)
            fprintf(stderr, "omsctl: track: reading standard input: %s\n", uv_strerror((int)n));
        t->in_eof = true;
        track_stop_reading(t);
    }
    track_pump(t);
}

static void on_stdin_file(uv_fs_t *req)
{
    track_state *t = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    t->fs_pending = false;
    if (n > 0) {
        take_input(t, t->fs_buf, (size_t)n, false);
    } else {
        if (n < 0)
            fprintf(stderr, "omsctl: track: reading standard input: %s\n", uv_strerror((int)n));
        t->in_eof = true;
    }
    track_pump(t);
}

/* Takes whole lines as commands while the stream can take them, keeps stdin
 * reading only then, and half-closes after the last line of input. */
static void track_pump(track_state *t)
{
    if (t->done || t->half_closed || t->lv.stopping)
        return;
    while (!t->blocked) {
        char *nl = t->len ? memchr(t->line, '\n', t->len) : NULL;
        if (!nl) {
            if (!t->in_eof || t->len == 0)
                break;
            nl = t->line + t->len; /* the last line has no newline */
            if (t->len == t->cap) {
                char *p = realloc(t->line, t->cap + 1);
                if (!p)
                    break;
                t->line = p;
                nl = t->line + t->len;
            }
            t->len++;
        }
        *nl = '\0';
        size_t used = (size_t)(nl - t->line) + 1;
        track_command(t, t->line);
        memmove(t->line, t->line + used, t->len - used);
        t->len -= used;
    }
    if (t->blocked) {
        track_stop_reading(t);
        return;
    }
    if (t->in_eof) {
        if (t->len == 0 && !t->half_closed) {
            t->half_closed = true;
            rpc_client_call_close_send(t->call);
        }
        return;
    }
    if (t->in_stream && !t->in_reading) {
        int rv = uv_read_start((uv_stream_t *)&t->in, on_stdin_alloc, on_stdin_read);
        if (rv != 0) {
            fprintf(stderr, "omsctl: track: standard input: %s\n", uv_strerror(rv));
            t->in_eof = true;
            track_pump(t);
            return;
        }
        t->in_reading = true;
    } else if (!t->in_stream && !t->fs_pending) {
        uv_buf_t b = uv_buf_init(t->fs_buf, sizeof t->fs_buf);
        t->fs_req.data = t;
        if (uv_fs_read(&t->lv.ctl->loop, &t->fs_req, 0, &b, 1, -1, on_stdin_file) == 0)
            t->fs_pending = true;
        else
            t->in_eof = true;
    }
}

static void on_track_event(rpc_client_call *c, void *data, const Oms__V1__OrderEvent *e)
{
    track_state *t = data;
    (void)c;
    omsctl_print_event(t->lv.ctl, e);
    if (omsctl_stdout_failed(t->lv.ctl))
        live_stop(&t->lv); /* the reader went away */
}

static void on_track_ready(rpc_client_call *c, void *data)
{
    track_state *t = data;
    (void)c;
    t->blocked = false;
    track_pump(t);
}

static void on_track_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                            const rpc_metadata *trailers)
{
    track_state *t = data;
    (void)trailers;
    omsctl_keep_details(t->lv.ctl, c);
    t->call = NULL;
    t->done = true;
    track_stop_reading(t);
    t->rc = (t->lv.stopping || code == RPC_OK) ? OMSCTL_EXIT_OK
                                               : omsctl_fail_call(t->lv.ctl, code, message);
}

static const Oms__V1__OrderService_TrackOrders_Callbacks track_cb = {
    .on_message = on_track_event,
    .on_ready = on_track_ready,
    .on_status = on_track_status,
};

static void stop_track(live *lv)
{
    track_state *t = (track_state *)lv; /* lv is the first member */
    track_stop_reading(t);
    if (t->call)
        rpc_client_call_cancel(t->call);
}

static void on_stdin_closed(uv_handle_t *h)
{
    track_state *t = h->data;
    t->lv.open_handles--;
}

/* Opens stdin on the loop: tty or pipe/socket as a stream, else (a file,
 * /dev/null) through uv_fs_read. */
static int track_open_stdin(track_state *t, uv_loop_t *loop)
{
    uv_handle_type type = uv_guess_handle(0);
    int rv = 0;
    if (type == UV_TTY) {
        rv = uv_tty_init(loop, &t->in.tty, 0, 1);
    } else if (type == UV_NAMED_PIPE || type == UV_TCP) {
        rv = uv_pipe_init(loop, &t->in.pipe, 0);
        if (rv == 0 && (rv = uv_pipe_open(&t->in.pipe, 0)) != 0) {
            t->in.pipe.data = t;
            t->lv.open_handles++;
            uv_close((uv_handle_t *)&t->in.pipe, on_stdin_closed);
            return rv;
        }
    } else {
        return 0; /* file-like */
    }
    if (rv != 0)
        return rv;
    t->in_stream = true;
    t->lv.open_handles++;
    ((uv_handle_t *)&t->in)->data = t;
    return 0;
}

int omsctl_cmd_track(omsctl *ctl, int argc, char **argv)
{
    static const char *const names[] = {"--since"};
    const char *vals[1] = {NULL};
    int npos, rc;
    if ((rc = omsctl_parse_args("track", argc, argv, 1, names, vals, 1, &npos)) != 0)
        return rc;
    track_state *t = calloc(1, sizeof *t);
    if (!t)
        return omsctl_fail(RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (vals[0] && (omsctl_parse_i64(vals[0], &t->since) != 0 || t->since < 0)) {
        free(t);
        return omsctl_usage_error("track", "--since wants a sequence number, not '%s'", vals[0]);
    }
    if ((rc = omsctl_connect(ctl)) != 0) {
        free(t);
        return rc;
    }
    live_init(&t->lv, ctl, stop_track);
    if ((rc = track_open_stdin(t, &ctl->loop)) != 0) {
        fprintf(stderr, "omsctl: track: standard input: %s\n", uv_strerror(rc));
        t->in_eof = true; /* follow the given ids; nothing to read */
    }
    rpc_call_opts opts = {0}; /* no deadline: --timeout is the live duration */
    t->call = oms__v1__order_service__track_orders__call(ctl->chan, &opts, &track_cb, t);
    if (!t->call) {
        t->done = true;
        t->rc = omsctl_fail(RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        if (npos > 0)
            track_send(t, true, argv + 1, (size_t)npos);
        track_pump(t);
        omsctl_run_until(ctl, &t->done);
    }
    if (!t->done) { /* the loop ran dry: cannot happen while a call is open */
        t->done = true;
        t->rc = OMSCTL_EXIT_SERVER;
    }
    track_stop_reading(t);
    if (t->in_stream)
        uv_close((uv_handle_t *)&t->in, on_stdin_closed);
    live_close(&t->lv);
    while (t->lv.open_handles > 0 || t->fs_pending)
        uv_run(&ctl->loop, UV_RUN_ONCE);
    rc = t->rc;
    free(t->line);
    free(t);
    return rc;
}
