/* hub.h - the event hub's subscriber core (hub.c, hub_sub.c), shared by watch.c and the
 * unit tests. orders_int.h declares the hub's lifecycle; this header adds the
 * subscribers that WatchOrders and TrackOrders calls are built on, with no
 * rpc_call in sight, so the ring and cursor logic can be tested on their own.
 *
 * Per loop the hub keeps a ring of the most recent events, [lo, hi] in seq
 * (hi: the newest seq the loop has). A subscriber has a cursor pos (every
 * event with seq <= pos has been dealt with: sent, or not for it) and is
 *  - LIVE: it has everything up to hi; each new event that matches its
 *    filter is sent as it enters the ring (subscribers are indexed by order
 *    id and customer id, so fan-out does not scan them). The fan-out of one
 *    event may span several turns of the loop (a budget of sends per turn,
 *    so that the loop's other calls go on): until it reached a LIVE
 *    subscriber, that one has everything up to hi - 1 (orders__sub_pos);
 *    the next event enters the ring once the previous one reached everyone.
 *    Each event is packed once per loop (orders__hub_frame) and those bytes
 *    go to every subscriber;
 *  - CATCHING UP: after a send returned RPC_AGAIN (then it waits for
 *    orders__sub_ready()), or when it starts in the past. It is pumped from
 *    the ring while pos + 1 >= lo, else from the store in pages, until
 *    pos reaches hi and it is LIVE again.
 * A subscriber that reads nothing thus costs its cursor and filter, never a
 * queue: it gets every matching event later, in seq order, once each.
 *
 * Threading: everything here but orders__hub_publish runs on the
 * subscriber's loop thread.
 */
#ifndef OMS_ORDERS_HUB_H
#define OMS_ORDERS_HUB_H

#include "orders/orders_int.h"

/* Order ids one subscriber may watch or track (request validation). */
#define ORDERS_SUB_MAX_IDS 1000

typedef struct orders_sub orders_sub;

typedef struct orders_sub_ops {
    /* Sends e (borrowed for the call). Returns 0 (more may follow now),
     * RPC_AGAIN (queued; call orders__sub_ready() when more may be sent) or
     * < 0 (the subscriber is over: the hub stops sending; the owner still
     * frees it). Must not call into the hub. */
    int (*send)(void *arg, const store_event *e);
    /* The hub ends the subscription: code RPC_OK once the target of
     * orders__sub_close_after() was reached, RPC_INTERNAL when a store read
     * failed, or the code given to orders__hub_loop_end_all(). msg is
     * borrowed. Nothing else is called after it; the owner still frees s
     * (orders__sub_free may be called from here). */
    void (*end)(void *arg, rpc_status code, const char *msg);
    /* Optional, for state dumps and checks: writes one line about the
     * owner's send side (flow control) into buf (size n); and whether the
     * owner will call orders__sub_ready() after the RPC_AGAIN it returned
     * (true when unsure). */
    int (*describe)(void *arg, char *buf, size_t n);
    bool (*armed)(void *arg);
    /* Optional: the owner's connection (e.g. its peer "ip:port"; read when
     * the subscriber goes live, not kept). Match-all subscribers of one
     * connection are kept together in the fan-out order, so that each turn's
     * budget of sends goes to few connections, which then get one larger
     * write each instead of many small ones. */
    const char *(*group)(void *arg);
} orders_sub_ops;

/* Where a loop's hub reads old events and the newest seq from. By default
 * ol's store (store_read_events on ol->sl, store_last_seq on ol->o->st, or 0
 * when ol->o is NULL); tests put a fake store here. */
typedef struct orders_hub_source {
    long (*read_events)(void *arg, int64_t from_seq, const char *order_id, store_event *out,
                        size_t limit);
    int64_t (*last_seq)(void *arg);
    void *arg;
} orders_hub_source;

/* Replaces hl's source (copied); before any subscriber starts. */
void orders__hub_loop_set_source(orders_hub_loop *hl, const orders_hub_source *src);

/* The newest seq known on hl's thread: max(ring hi, the newest published,
 * the store's last). A since_seq above this + 1 names an event that does not
 * exist yet. */
int64_t orders__hub_loop_last_seq(orders_hub_loop *hl);

/* Whether orders__hub_loop_end_all() ran (a drain): new subscribers are
 * refused. */
bool orders__hub_loop_draining(const orders_hub_loop *hl);

/* Ends every subscriber of hl through its ops->end with code and a message
 * "<msg>; resume with since_seq=<pos+1>", and refuses new ones. */
void orders__hub_loop_end_all(orders_hub_loop *hl, rpc_status code, const char *msg);

typedef struct orders_hub_stats {
    int64_t lo, hi;                        /* the ring holds seqs [lo, hi] (empty when lo > hi) */
    size_t subs;                           /* subscribers of the loop */
    size_t live;                           /* ... of which LIVE */
    uint64_t sent;                         /* events handed to ops->send */
    uint64_t store_reads;                  /* store_read_events calls by the catch-up */
    uint64_t blocked;                      /* sends that returned RPC_AGAIN */
    uint64_t gaps;                         /* ring restarts (inbox overflow or lost publish) */
    uint64_t lag_hist[ORDERS_LAG_BUCKETS]; /* delivery lag (orders_loop_stats) */
    uint64_t lag_count, lag_sum_ms;
} orders_hub_stats;

void orders__hub_loop_stats(const orders_hub_loop *hl, orders_hub_stats *out);

/* Logs (at info) the loop's ring, inbox and schedule, then one line per
 * subscriber: state, cursor and how far behind the ring's head it is,
 * blocked / scheduled, and its owner's send state (ops->describe), with any
 * broken invariant. Loop thread only. */
void orders__hub_loop_dump(orders_hub_loop *hl);

/* The hub's wake-up invariants, at rest (not from inside a hub call): a
 * started subscriber that is behind (CATCHING) is either blocked, with its
 * owner armed to call orders__sub_ready() (ops->armed), or scheduled on the
 * idle handle, which is then running; a LIVE one is not blocked. Returns how
 * many subscribers break them, the first one's story in why[] (size n).
 * Debug builds (no NDEBUG) check them after every hub callback and abort on
 * a violation. */
size_t orders__hub_loop_check(const orders_hub_loop *hl, char *why, size_t n);

/* The OrderEvent message of e (an event handed to ops->send by hl's hub)
 * encoded once for every subscriber of hl it goes to, to send with
 * rpc_call_send_frame. Borrowed: valid until that ops->send returns
 * (rpc_frame_ref to keep it). NULL on ENOMEM: pack the message instead.
 * Events of the ring keep their frame while they are in it; one from the
 * store (a catch-up page) is kept until the next such event. */
rpc_frame *orders__hub_frame(orders_hub_loop *hl, const store_event *e);

/* A subscriber of hl matching nothing yet. ops (borrowed, must outlive s) and
 * arg are how the hub reaches its owner. NULL on ENOMEM. */
orders_sub *orders__sub_new(orders_hub_loop *hl, const orders_sub_ops *ops, void *arg);

/* Sets a WatchOrders filter before orders__sub_start: events of customer_id
 * (NULL or "" for none) or of one of ids[0..n) (copied; duplicates are
 * fine). Neither: every order. Ids must be valid (1..STORE_ID_MAX bytes).
 * Returns 0 or -1 on ENOMEM. */
int orders__sub_watch(orders_sub *s, const char *customer_id, const char *const *ids, size_t n);

/* Starts delivering: since_seq 0, events committed from now on; N > 0,
 * every matching event with seq >= N (from the ring or the store), then live
 * ones. since_seq must be in [0, orders__hub_loop_last_seq() + 1] (the
 * caller validates). May send (and end s) before it returns. */
void orders__sub_start(orders_sub *s, int64_t since_seq);

/* TrackOrders subscribe, on a started subscriber: adds ids with since_seq as
 * in orders__sub_start, for these ids only (their events with seq >= N come
 * first if the subscriber is already past N, then it goes on, with no
 * duplicate for the ids it had). Ids already tracked are left as they are.
 * Returns 0 or -1 on ENOMEM (then s is unchanged). May send. */
int orders__sub_track(orders_sub *s, const char *const *ids, size_t n, int64_t since_seq);

/* TrackOrders unsubscribe: no more events of these ids (unknown ones are
 * ignored). */
void orders__sub_untrack(orders_sub *s, const char *const *ids, size_t n);

/* Order ids s has, and how many of ids[0..n) it does not have yet (for a
 * limit check before orders__sub_track). */
size_t orders__sub_nids(const orders_sub *s);
size_t orders__sub_count_new(const orders_sub *s, const char *const *ids, size_t n);

/* Ends s with RPC_OK (ops->end) once it has dealt with every event up to the
 * loop's current hi; at once if it already has (TrackOrders half-close). */
void orders__sub_close_after(orders_sub *s);

/* More may be sent after RPC_AGAIN (the call's on_ready). */
void orders__sub_ready(orders_sub *s);

/* The subscriber's cursor: every event with seq <= it was dealt with. */
int64_t orders__sub_pos(const orders_sub *s);

/* Unlinks and frees s (on cancel, on free). NULL is fine. Safe from inside
 * ops->end. */
void orders__sub_free(orders_sub *s);

#endif
