/* hub_int.h - what hub.c (loops: inbox, ring, live fan-out) and hub_sub.c
 * (subscribers: filters, cursors, catch-up) share. Not for other files: they
 * use hub.h.
 */
#ifndef OMS_ORDERS_HUB_INT_H
#define OMS_ORDERS_HUB_INT_H

#include <stdatomic.h>

#include "orders/hub.h"

#define DEFAULT_RING 65536
#define MIN_RING     4
/* An inbox holds max(ring, INBOX_MIN) events (whole commits: the oldest
 * commits go first; one commit larger than that keeps its newest events):
 * enough for a few commits of max_batch requests even when the ring is small. */
#define INBOX_MIN 4096
/* Live fan-out: subscribers offered an event (or looked at for one) per
 * turn of the loop before the hub yields to it (the rest goes on from the
 * idle handle), so that one event to 10,000 subscribers does not hold up
 * the loop's other calls; and each turn's bytes go out with the turn. */
#define FANOUT_BUDGET 512
/* Events fanned out together (at most; and at most the ring). */
#define FAN_RANGE 64
/* Events a subscriber examines per turn before it yields to the loop. */
#define PUMP_BUDGET 4096
/* What the catching-up subscribers together spend per turn of the idle
 * handle (the rest stay scheduled for the next turns): at least one pump. */
#define IDLE_BUDGET 4096
/* Store page of an unfiltered (or customer) catch-up read. */
#define SCAN_PAGE 256
/* Subscribers with up to MERGE_IDS order ids (and nothing else) catch up with
 * one indexed read per id, PER_ID events each, merged in seq order. */
#define MERGE_IDS 8
#define PER_ID    64
#define PAGE_MAX  (MERGE_IDS * PER_ID > SCAN_PAGE ? MERGE_IDS * PER_ID : SCAN_PAGE)

#ifndef container_of
#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))
#endif

typedef struct hlink {
    struct hlink *prev, *next;
} hlink;

static inline void list_init(hlink *h)
{
    h->prev = h->next = h;
}

static inline bool list_empty(const hlink *h)
{
    return h->next == h;
}

static inline void list_push(hlink *h, hlink *l)
{
    l->prev = h->prev;
    l->next = h;
    h->prev->next = l;
    h->prev = l;
}

static inline void list_del(hlink *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

/* --- id index: order id or customer id -> its subscribers (hub_sub.c) ----------- */

typedef struct member member;

typedef struct key_node {
    struct key_node *next; /* bucket chain */
    member *head;          /* members for this id */
    uint32_t hash;
    char id[STORE_ID_MAX + 1];
} key_node;

typedef struct key_table {
    key_node **b;
    size_t nb, n;
} key_table;

/* One (subscriber, id) pair. */
struct member {
    orders_sub *s;
    key_node *k;
    member *prev, *next; /* in k's list */
    int64_t floor;       /* events of this id with seq <= floor are not for s */
};

uint32_t orders__hash_id(const char *s);
key_node *orders__table_find(const key_table *t, const char *id, uint32_t h);
void orders__table_dispose(key_table *t);
/* Frees k once no member is left on it. */
void orders__table_drop_if_empty(key_table *t, key_node *k);

/* --- the hub, its loops, their subscribers --------------------------------------- */

/* The match-all LIVE subscribers of one connection (ops->group): they stand
 * together in live_all, tail the last of them. */
typedef struct live_group {
    struct live_group *next; /* bucket chain */
    hlink *tail;
    size_t n;
    uint32_t hash;
    char key[64]; /* truncated: two connections may share a group (order only) */
} live_group;

#define GROUP_BUCKETS 1024

/* One commit's events, copied once on the writer thread (outside every lock)
 * and shared by the loops it is handed to: each gets a link (in links[],
 * allocated with the batch) put on its inbox under its lock, so the writer
 * moves pointers only while it holds the locks. The last loop to be done
 * with it frees it. */
typedef struct hub_batch hub_batch;

typedef struct hub_link {
    hub_batch *b;
    struct hub_link *next; /* in a loop's inbox */
    size_t from;           /* the loop takes b->evs[from..n) (an oversized commit) */
} hub_link;

struct hub_batch {
    atomic_size_t refs; /* loops that still hold a link */
    size_t n;
    hub_link *links; /* nlinks of them, after evs */
    store_event evs[];
};

struct orders_hub {
    size_t ring;
    uv_mutex_t lock;  /* guards loops[], nloops, last_seq */
    int64_t last_seq; /* newest seq published */
    orders_hub_loop *loops[ORDERS_MAX_LOOPS];
    size_t nloops;
};

enum { SUB_LIVE, SUB_CATCHING, SUB_DEAD };

struct orders_sub {
    orders_hub_loop *hl;
    const orders_sub_ops *ops;
    void *arg;
    int state;
    bool started, all, blocked, closing, freed;
    int64_t pos;      /* every event with seq <= pos was dealt with */
    int64_t close_at; /* closing: end OK once pos reaches it */
    member *cust;     /* the customer filter, or NULL */
    member **mem;     /* order id members */
    size_t nmem, memcap;
    uint32_t *slot; /* open addressing over mem: index + 1, 0 empty */
    size_t nslot;
    hlink node;        /* in hl->subs */
    hlink live;        /* in hl->live_all while LIVE and matching every order */
    live_group *group; /* its group in live_all, or NULL */
    hlink sched;       /* in hl->sched (to pump) or hl->zombies (to free) */
    bool in_sched;
};

struct orders_hub_loop {
    orders_hub *hub;
    orders_loop *ol;
    orders_hub_source src;
    uv_async_t async;
    uv_idle_t idle;
    int open_handles;

    uv_mutex_t mu;               /* guards the inbox */
    hub_link *in_head, *in_tail; /* commits published, oldest first */
    size_t nin;                  /* events in them (past each link's from) */
    int64_t lost;                /* newest seq not handed over (no memory), or 0 */

    /* loop thread only */
    store_event *ring;
    rpc_frame **frames; /* frames[i]: ring[i] encoded (orders__hub_frame), or NULL */
    size_t cap;
    rpc_frame *tmpf; /* the last event encoded from outside the ring */
    int64_t tmpf_seq;
    int64_t lo, hi;
    store_event *page; /* catch-up scratch, PAGE_MAX events */
    key_table by_order, by_customer;
    hlink subs, live_all, sched, zombies;
    live_group **groups; /* GROUP_BUCKETS, made on first use */

    /* Live fan-out, a budget per turn (FANOUT_BUDGET). The commits taken
     * from the inbox and not yet through the ring: */
    hub_link *pend; /* the first; its events from pend_i on are left */
    size_t pend_i;
    int64_t pend_lost; /* the inbox's lost when it was taken */
    /* The events being fanned out, seqs [fan_lo, fan_hi] (fan_hi the
     * ring's hi), while fanning. Until the walk reached it, a LIVE
     * subscriber has dealt with everything up to fan_lo - 1 (live_hi()).
     * The walk offers a match-all subscriber the whole range at once (one
     * visit, its events queued together: one DATA frame when the loop is
     * behind), then goes event by event (fan_cur) through the order id
     * members and the customer's, each walk with a bookmark standing after
     * the last one visited. */
    bool fanning;
    int64_t fan_lo, fan_hi, fan_cur;
    int fan_phase;    /* FAN_ALL, FAN_ORDER, FAN_CUSTOMER */
    hlink fan_mark;   /* in live_all during FAN_ALL */
    member fan_mem;   /* s == NULL: in a key's member list during the others */
    key_table *fan_t; /* the table fan_mem.k is in */
    int depth;        /* > 0 while the hub iterates: frees are deferred */
    bool draining, closing;
    orders_hub_stats st;
    int64_t now_ms; /* wall clock (unix ms) when the current slice or pump began */
};

enum { FAN_ALL, FAN_ORDER, FAN_CUSTOMER };

/* What every LIVE subscriber of hl has dealt with (see fanning). */
static inline int64_t live_hi(const orders_hub_loop *hl)
{
    return hl->fanning ? hl->fan_lo - 1 : hl->hi;
}

/* hub.c: queues s to be pumped from the loop's idle handle (a CATCHING one
 * out of budget, or behind after a ring restart); takes it off again. */
void orders__hub_schedule(orders_sub *s);
void orders__hub_unschedule(orders_sub *s);
/* hub.c: frees the subscribers freed while the hub iterated (depth 0 only). */
void orders__hub_reap(orders_hub_loop *hl);

/* hub_sub.c */
/* CLOCK_REALTIME in ms (store_event.at's clock). */
int64_t orders__wall_ms(void);
void orders__sub_set_catching(orders_sub *s);
/* Takes s out of live_all (and its group); a no-op when it is not in it. */
void orders__sub_live_leave(orders_sub *s);
/* Ends s through ops->end (once). */
void orders__sub_end(orders_sub *s, rpc_status code, const char *msg);
/* Hands e to s (pos must already cover e): RPC_AGAIN blocks it (CATCHING),
 * an error kills it. */
void orders__sub_emit(orders_sub *s, const store_event *e);
/* Brings a CATCHING s forward until LIVE, blocked, ended or out of budget. */
size_t orders__sub_pump(orders_sub *s);
/* Unlinks s from everything and frees it. */
void orders__sub_destroy(orders_sub *s);
/* 0, or -1 with why[] if s breaks a wake-up invariant (orders__hub_loop_check). */
int orders__sub_check(const orders_sub *s, char *why, size_t n);
/* Debug builds: aborts with a dump if s (or, with s NULL, any subscriber of
 * hl) breaks a wake-up invariant. Release builds: nothing. */
#ifdef NDEBUG
#define HUB_ASSERT_OK(hl, s) ((void)0)
#else
void orders__hub_assert_ok(orders_hub_loop *hl, const orders_sub *s, const char *where);
#define HUB_ASSERT_OK(hl, s) orders__hub_assert_ok((hl), (s), __func__)
#endif

#endif
