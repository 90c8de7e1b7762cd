/* bench_int.h - internals of the load engine: slots, drivers, the run. */
#ifndef OMS_BENCH_INT_H
#define OMS_BENCH_INT_H

#include "bench/bench.h"
#include "bench/phase.h"
#include "rpc/rpc_client.h"

typedef struct bench_engine bench_engine;
typedef struct bench_slot bench_slot;

/* One unit of concurrency: at most one operation in flight, on one channel.
 * Drivers keep their per-call state here (the call's data is the slot). */
struct bench_slot {
    bench_engine *run;
    rpc_channel *ch;
    rpc_client_call *call;    /* the current RPC, NULL between calls */
    uint64_t op_start;        /* ns (uv_hrtime): when the operation started or was due */
    bool busy;                /* an operation is in flight */
    bool cancelled;           /* the run cancelled call: its status is not counted */
    bool closing;             /* bidi: half-closed, waiting for the status */
    bool count_end;           /* count the call's end even after the window (bidi
                                 streams half-closed by the end of the run) */
    uint32_t sent;            /* request messages sent on the current call */
    uint32_t received;        /* response messages received on it */
    bench_slot *next_free;    /* open loop: stack of idle slots */
    bench_slot *next_restart; /* run->restarts */
};

/* What differs between call types. */
typedef struct bench_driver {
    /* Builds the request message(s) for cfg; stores their size. */
    int (*init)(bench_engine *r, char *err, size_t errlen);
    void (*dispose)(bench_engine *r);
    /* Starts an operation on an idle slot (s->busy and s->op_start are set). */
    void (*start)(bench_slot *s);
    /* The run is over: end or let finish what s has in flight. */
    void (*stop)(bench_slot *s);
    /* Optional: after the channels exist and before the preflight, with the
     * loop not running (blocking calls allowed): readies the server. */
    int (*setup)(bench_engine *r, char *err, size_t errlen);
} bench_driver;

extern const bench_driver bench_unary_driver;
extern const bench_driver bench_server_stream_driver;
extern const bench_driver bench_client_stream_driver;
extern const bench_driver bench_bidi_driver;
extern const bench_driver bench_order_create_driver;

struct bench_engine {
    uv_loop_t *loop;
    const bench_config *cfg;
    const bench_driver *drv;
    bench_results *res;
    rpc_channel **channels;
    unsigned nchannels;
    bench_slot *slots;
    unsigned nslots;
    bench_phase ph;    /* warm-up, window (phase.h) */
    bool running;      /* new operations may start */
    bool finished;     /* drained; channels being freed */
    unsigned inflight; /* calls started and not yet ended */
    /* open loop */
    uint64_t next_due;   /* index of the next operation to fall due */
    uint64_t queue_head; /* operations [queue_head, next_due) are due and waiting */
    uint64_t armed_at;   /* the timerfd's expiry, 0 = disarmed */
    int tfd;
    bench_slot *free_slots;
    /* slots whose call failed, restarted from restart_check */
    bench_slot *restarts;
    /* progress: counters since the last line, latencies included */
    bench_counts interval;
    bench_hist interval_hist;
    uint64_t t_last_progress;
    /* handles */
    uv_timer_t phase_timer; /* drain deadline, finish */
    uv_timer_t progress_timer;
    uv_poll_t tick; /* open loop: the timerfd */
    uv_check_t restart_check;
    uv_signal_t sigint;
    int sigints;
    /* preflight */
    unsigned preflight_left;
    bool preflight_failed;
    char preflight_error[200];
    rpc_client_call **pre_calls; /* one per channel, NULL once ended */
    /* driver state */
    void *drv_data;
};

/* --- for drivers (run.c) --- */

/* The smallest length L >= min for which size_at(arg, L), a non-decreasing
 * function, is at least target (or min when size_at(min) already is): sizes a
 * padding field so that a message packs to about target bytes. */
size_t bench__fit_length(size_t target, size_t min, size_t (*size_at)(void *arg, size_t len),
                         void *arg);

/* Starts an RPC for s on its channel with the driver's method and ops (data =
 * s). Returns NULL when out of memory, after counting a RESOURCE_EXHAUSTED
 * error: s then stays idle for the rest of the run and the caller just
 * returns. */
rpc_client_call *bench__start_call(bench_slot *s, const char *path,
                                   const ProtobufCMessageDescriptor *resp,
                                   const rpc_client_ops *ops);

/* For a call started by a generated stub (which keeps the call's data slot
 * for itself, so its callbacks get s some other way): accounts c to s as
 * bench__start_call() does. c NULL (ENOMEM) is counted the same way too. */
rpc_client_call *bench__adopt_call(bench_slot *s, rpc_client_call *c);

/* order_setup.c: before an order-system run, on ch with its loop not running:
 * checks the customer (creates one when none was named and c-1 does not
 * exist) and the product (upserts a missing one), and tops the SKU's
 * available stock up to cfg->stock (default 100,000,000). Fills
 * res->customer, res->stock_before and res->stock_added. Returns 0, or -1
 * with a reason in err ("cannot reach ..." when the target does not
 * answer). */
int bench__order_setup(rpc_channel *ch, const bench_config *cfg, bench_results *res, char *err,
                       size_t errlen);

/* The customer and SKU of a run (defaults applied). */
const char *bench__order_sku(const bench_config *cfg);

/* A prefix that makes idempotency keys unique to this process run. */
void bench__key_prefix(char *buf, size_t len);

/* watch_run.c: the order-watch run (its own engine: subscribers, a producer). */
int bench__run_watch(uv_loop_t *loop, const bench_config *cfg, bench_results *res, char *err,
                     size_t errlen);

/* The channel configuration every run uses. */
void bench__channel_config(const bench_config *cfg, rpc_channel_config *cc);

/* Sends the one request of a call and half-closes; cancels the call if either
 * fails (its status then reports it). RPC_AGAIN only means "wait before
 * sending more": the request is queued. */
void bench__send_last(rpc_client_call *c, const ProtobufCMessage *req);

/* s's operation succeeded now: record its latency. reusable: s can take the
 * next operation at once (bidi, stream still open); otherwise s waits for
 * its call's status. */
void bench__op_done(bench_slot *s, bool reusable);

/* s's call ended (its on_status): count it by code; an operation still in
 * flight failed. s->call is cleared and s takes its next operation: at once
 * after OK, from the next loop iteration after an error. */
void bench__call_ended(bench_slot *s, rpc_status code, const char *message);

/* n messages went by (counted if inside the window). */
void bench__messages(bench_engine *r, uint64_t n);

/* report.c: "812 us", "2.10 ms", "1.23 s" */
void bench__format_ns(char *buf, size_t len, double ns);

#endif
