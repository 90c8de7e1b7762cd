/* bench.h - oms-bench's load engine: the run configuration, running it on one
 * loop, and reporting the figures.
 *
 * A run drives one method of oms.bench.v1.OrderBench (or TestService's
 * StreamingInputCall for client streaming) through rpc_client.h over a fixed
 * number of connections (one rpc_channel each) with a fixed number of
 * operations in flight. An operation is what one latency sample measures: a
 * unary call, a whole stream (server and client streaming), or one
 * request->response round trip on a long-lived stream (bidi).
 *
 * Closed loop (rate 0): each of the `concurrency` slots starts its next
 * operation as soon as the last one ended. Open loop (rate > 0): operations
 * are due at fixed intervals from the start; a due operation takes a free slot
 * or waits in a queue, and its latency runs from when it was due, not from
 * when it started, so a stalled server cannot hide its stall
 * (coordinated omission).
 *
 * Everything that happens before the warm-up ended is left out of the
 * figures. At the end of the duration no new operation starts: unary calls in
 * flight finish (uncounted), streams are cancelled, bidi streams are
 * half-closed and their final status counted.
 */
#ifndef OMS_BENCH_H
#define OMS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "bench/histogram.h"
#include "rpc/rpc.h"

typedef enum bench_call_type {
    BENCH_UNARY,
    BENCH_SERVER_STREAM,
    BENCH_CLIENT_STREAM,
    BENCH_BIDI,
    BENCH_ORDER_CREATE, /* oms.v1.OrderService/CreateOrder, the durable path */
    BENCH_ORDER_WATCH,  /* WatchOrders fan-out: subscribers + a CreateOrder producer */
} bench_call_type;

typedef struct bench_config {
    const char *target;      /* as the user gave it (for reports) */
    const char *address;     /* one resolved address, "ip:port" or "[ip6]:port" */
    bool h2c;                /* cleartext instead of TLS */
    const char *ca_file;     /* TLS roots; NULL: the system's */
    const char *cert_file;   /* client certificate (mTLS), or NULL */
    const char *key_file;    /* its key (both or neither) */
    const char *server_name; /* SNI, certificate name and :authority */
    const char *token;       /* bearer token (call credentials); NULL: none */
    bench_call_type call;
    unsigned connections; /* rpc_channels, one connection each */
    unsigned concurrency; /* operations in flight, over all connections */
    double duration_s;    /* measured time */
    uint64_t count;       /* or: the window ends after this many operations (0: use
                             duration_s); for fixed-work runs (callgrind, h2load -n) */
    double warmup_s;      /* before it, not measured */
    double rate;          /* operations per second; 0 = closed loop */
    size_t payload;       /* request message size (bytes); 0 = minimal */
    unsigned messages;    /* per stream: server-stream responses asked for,
                             client-stream requests sent, bidi round trips
                             (0 = the stream lasts the whole run) */
    bool progress;        /* a line per second on stderr */
    /* order-create and order-watch (oms.v1) */
    const char *customer;  /* CreateOrder's customer_id (default c-1) */
    const char *sku;       /* its one line's SKU (default SKU-001) */
    int64_t quantity;      /* ... and quantity (default 1) */
    bool no_key;           /* no idempotency key (default: a unique one per call) */
    int64_t stock;         /* before the run, top the SKU's available stock up to this
                              (0: the default, 100,000,000; -1: leave it alone) */
    double drain_s;        /* order-watch: how long to wait for the last deliveries */
    double open_timeout_s; /* order-watch: for every subscriber to be live */
    /* order-watch: the producer's server (--producer-target, resolved like
     * address): another instance on the same database; NULL: address */
    const char *producer_address;
} bench_config;

/* Calls counted by how they ended (status codes 0..16). */
#define BENCH_NCODES 17

typedef struct bench_counts {
    uint64_t calls;               /* RPCs that ended */
    uint64_t codes[BENCH_NCODES]; /* ... by status code */
    uint64_t messages;            /* see bench_call_info.msg_unit */
    uint64_t ops;                 /* operations that succeeded (latency samples) */
} bench_counts;

/* order-watch: what the subscribers saw. Deliveries are creation events
 * (previous_status UNSPECIFIED) of orders the producer created after every
 * subscriber was live; each subscriber must see each of those exactly once. */
typedef struct bench_watch_results {
    unsigned subscribers;        /* asked for (--concurrency) */
    unsigned subscribers_open;   /* got response headers or an event */
    unsigned subscribers_live;   /* saw an event: from then on none may be missing */
    double open_s;               /* from starting the streams to all live */
    uint64_t sync_orders;        /* CreateOrders sent to find out when all were live */
    uint64_t produced;           /* producer CreateOrders sent (warm-up and window) */
    uint64_t produced_ok;        /* ... answered OK: each expected by every subscriber */
    uint64_t produced_window;    /* ... of them sent inside the window (latency measured) */
    uint64_t deliveries;         /* creation events of produced orders, over all subscribers */
    uint64_t deliveries_window;  /* ... of orders sent inside the window */
    uint64_t expected;           /* produced_ok * subscribers */
    uint64_t missing;            /* expected deliveries that never came, over all subscribers */
    uint64_t duplicates;         /* events whose seq a subscriber had already seen */
    uint64_t seq_gaps;           /* seqs skipped in a subscriber's stream (any order's) */
    unsigned subs_missing;       /* subscribers with at least one missing delivery */
    unsigned subs_behind;        /* ... of them still behind at the end: their last seq
                                    below the newest any subscriber saw (late, not skipped:
                                    skipped events show as seq_gaps) */
    bool drain_timed_out;        /* --drain ran out before every delivery came */
    unsigned subs_duplicate;     /* ... with at least one duplicate */
    uint64_t resumes;            /* streams that ended early, resumed with since_seq */
    uint64_t other_events;       /* events of other orders (sync, other clients, updates) */
    uint64_t unknown_deliveries; /* events of orders whose create never answered OK */
    double deliver_s;            /* delivery window: first producer send to last delivery */
    bench_hist create;           /* ns: the producer's CreateOrder calls (window) */
    bench_hist commit_at;        /* ns, ms resolution: OrderEvent.at -> delivered (wall clock) */
    bench_hist spread;           /* ns per window order: its first delivery -> its last one
                                    (the fan-out itself, whatever the commit took) */
} bench_watch_results;

/* The figures of a finished run. */
typedef struct bench_results {
    double duration_s; /* the measured window, as it really was */
    double warmup_s;
    bool interrupted;    /* SIGINT ended it early */
    bench_counts counts; /* inside the window */
    bench_hist latency;  /* nanoseconds per operation */
    uint64_t queued;     /* open loop: operations that waited for a slot */
    uint64_t max_queue;  /* ... the longest the queue got */
    uint64_t unstarted;  /* ... still queued when the run ended */
    double cpu_user_s;   /* this process, during the window */
    double cpu_sys_s;
    size_t request_bytes;                /* serialized size of one request message */
    char first_error[BENCH_NCODES][160]; /* the first message seen per code */
    /* order-create and order-watch: the SKU's stock around the run (-1 unknown) */
    int64_t stock_before; /* available when the run was set up, before any top-up */
    int64_t stock_added;  /* AdjustStock delta of the top-up (0: none) */
    const char *customer; /* the customer the orders went to */
    char customer_buf[80];
    bench_watch_results *watch; /* order-watch only */
} bench_results;

/* What a call type drives and how its figures are named. */
typedef struct bench_call_info {
    const char *name;     /* "unary", as on the command line */
    const char *path;     /* "/oms.bench.v1.OrderBench/CreateOrder" */
    const char *op_unit;  /* what a latency sample is: "call", "stream", "round trip" */
    const char *msg_unit; /* what `messages` counts: "response", "request", ... */
    bool rate_in_msgs;    /* the headline rate is messages/s, not calls/s */
} bench_call_info;

const bench_call_info *bench_call_info_of(bench_call_type t);
/* Parses "unary", "server-stream", "client-stream", "bidi". */
int bench_call_parse(const char *s, bench_call_type *out);

/* Runs cfg to the end on loop (which must have nothing else on it), filling
 * res (release it with bench_results_dispose()). Returns 0, or -1 with a
 * reason in err when the run could not start (bad TLS files, target
 * unreachable, out of memory); res is then empty but still to be disposed. */
int bench_run(uv_loop_t *loop, const bench_config *cfg, bench_results *res, char *err,
              size_t errlen);
void bench_results_dispose(bench_results *res);

/* The summary table, for people. */
void bench_report_text(FILE *f, const bench_config *cfg, const bench_results *res);
/* Every figure as one JSON object (latencies in microseconds). Returns 0 or
 * -1 (errno set) when the file cannot be written. */
int bench_report_json(const char *path, const bench_config *cfg, const bench_results *res);

/* "OK", "UNAVAILABLE", ... */
const char *bench_code_name(int code);

#endif
