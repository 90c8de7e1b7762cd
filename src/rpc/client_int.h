/* client_int.h - internals of the client side (channel.c, client_call.c). */
#ifndef OMS_RPC_CLIENT_INT_H
#define OMS_RPC_CLIENT_INT_H

#include "rpc/rpc_client.h"
#include "rpc/rpc_int.h"

typedef enum sub_state {
    SUB_IDLE,       /* no connection; connects when a call needs it */
    SUB_CONNECTING, /* TCP/TLS handshake under way */
    SUB_READY,      /* connected: calls go here */
    SUB_FAILURE,    /* the last attempt failed: waiting out the backoff */
} sub_state;

/* One address of the target and its current connection. */
typedef struct rpc_subchannel {
    rpc_channel *ch;
    struct sockaddr_storage addr;
    char name[80]; /* "ip:port" for messages */
    sub_state state;
    http2_conn *conn;    /* the connection new calls use (NULL unless READY/CONNECTING) */
    uv_timer_t timer;    /* connect timeout, then backoff */
    uint64_t backoff_ms; /* the next backoff before jitter */
    char error[200];     /* why the last connection failed */
} rpc_subchannel;

/* One registered client interceptor. */
typedef struct rpc__client_icept {
    rpc_client_interceptor ic;
    void *data;
} rpc__client_icept;

#define RPC_REQ_FIXED 8

struct rpc_channel {
    uv_loop_t *loop;
    rpc__client_icept *ics; /* the interceptor chain, in order (append-only) */
    uint32_t nics;
    rpc_channel_config cfg; /* strings point into strs */
    char *strs;             /* owned copies of cfg's strings */
    http2_client *h2;
    rpc_subchannel *subs;
    size_t nsubs;
    size_t rr;           /* round-robin cursor */
    char authority[128]; /* :authority */
    bool tls;
    bool freeing;
    uint64_t rng;             /* jitter */
    int open_handles;         /* subchannel timers not yet closed */
    rpc_client_call *calls;   /* every live call (doubly linked) */
    rpc_client_call *waiting; /* calls waiting for a READY subchannel (singly linked) */
    /* work deferred to the next loop turn (first attempts, final statuses),
     * run from an idle handle so that a chain of calls cannot starve I/O */
    uv_idle_t idle;
    bool idle_on;
    rpc_client_call *defer_head, *defer_tail;
    /* the request headers every call sends, built once (client_call.c):
     * :method, :scheme, :path (a placeholder), :authority, content-type, te,
     * user-agent, grpc-accept-encoding; borrowed by the connections */
    http2_header req_h[RPC_REQ_FIXED];
    rpc_client_call *spare; /* freed calls kept for reuse (singly linked) */
    /* the last response descriptor asked about, and whether it has strings */
    const ProtobufCMessageDescriptor *strings_desc;
    bool strings_has;
    unsigned nspare;
    void (*done)(void *);
    void *done_arg;
};

/* The part of a call that is set up rather than zeroed, and that a spare
 * call (rpc_channel.spare) keeps: its buffers stay allocated for the next
 * call on the channel, so that a small call costs no malloc at all. */
typedef struct rpc__call_mem {
    rpc_client_call *spare_next; /* ch->spare */
    /* initialized when used (deadline_on, timer_on), so not zeroed */
    uv_timer_t deadline_timer; /* set up only with a deadline */
    uv_timer_t timer;          /* retry backoff; set up on the first retry */
    /* request bytes: everything sent while a retry is possible, then only
     * what is not yet written; its heap buffer is kept with a spare call */
    rpc_buf out;
    rpc_arena call_arena; /* path, metadata, trace, rpc_client_call_alloc: the call's life */
    rpc_arena arena;      /* trailer and header metadata of the final attempt */
    rpc_arena msg_arena;  /* the response message being delivered */
    ProtobufCAllocator msg_alloc;
    uint8_t call_inline[256];
    uint8_t inline_arena[256];
    uint8_t msg_inline[512];
} rpc__call_mem;

/* Spare calls a channel keeps (and their request buffers up to this size).
 * None under AddressSanitizer: a call used after its on_status must still
 * be reported, not find the next call in its place. */
#if defined(__SANITIZE_ADDRESS__) /* GCC */
#define RPC__ASAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define RPC__ASAN 1
#endif
#endif
#ifdef RPC__ASAN
#define RPC_CALL_SPARE 0
#else
#define RPC_CALL_SPARE 32
#endif
#define RPC_CALL_SPARE_BUF 4096

struct rpc_client_call {
    /* --- zeroed for every call (up to `kept`) --- */
    rpc_channel *ch;
    rpc_client_call *prev, *next; /* ch->calls */
    rpc_client_call *wait_next;   /* ch->waiting */
    bool waiting;
    const rpc_client_ops *ops;
    const ProtobufCMessageDescriptor *resp_desc;
    bool check_strings; /* resp_desc has string fields: rpc__check_strings */
    bool keep_resp;     /* unary response: its message lives until on_status */
    void *data;
    char *path; /* in call_arena */
    size_t pathlen;
    rpc_md *md; /* request metadata (copies in call_arena) */
    size_t nmd;
    /* interceptors: the channel's first nics (those registered when the call
     * was made); on_start ran for the first ic_started */
    uint32_t nics;
    uint32_t ic_started;
    bool ic_ran;       /* the chain ran (before the first attempt) */
    uint64_t start_ns; /* uv_hrtime() at rpc_channel_call (with interceptors) */
    uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
    uint64_t deadline; /* loop time in ms, 0 = none */
    bool compress;
    bool wait_for_ready;
    struct rpc_trace *trace; /* opts->trace copied (call_arena); NULL: none */
    /* the current attempt */
    http2_stream *stream;
    int attempts;
    rpc_deframer deframer;
    rpc_encoding resp_enc;
    bool headers_seen; /* response headers of this attempt arrived: committed */
    bool status_seen;  /* grpc-status of this attempt is known */
    rpc_status att_code;
    char *att_message;
    rpc_md *trailers;
    size_t ntrailers;
    uint8_t *details; /* grpc-status-details-bin, decoded (in arena); NULL: none */
    size_t details_len;
    bool server_status; /* the attempt ended with the server's grpc-status */
    size_t out_written;
    bool committed; /* no more retries: replay bytes dropped */
    bool half_close;
    bool blocked;         /* a send returned RPC_AGAIN: tell on_ready */
    bool refused;         /* the server refused the attempt unprocessed (REFUSED_STREAM) */
    int transparent;      /* transparent retries so far */
    bool last_compressed; /* the response message being delivered was compressed */
    bool resp_kept;       /* keep_resp: the first response message is in msg_arena */
    /* ending */
    bool done; /* on_status delivered or scheduled */
    rpc_status final_code;
    char *final_message;
    bool deadline_on;
    bool timer_on;
    int handles;  /* timers set up and not yet closed */
    int defer_op; /* queued on ch->defer_head: RPC_DEFER_* */
    rpc_client_call *defer_next;
    /* --- set up for every call, not zeroed; kept with a spare call --- */
    rpc__call_mem mem;
};

enum { RPC_DEFER_START = 1, RPC_DEFER_STATUS = 2 };

/* channel.c: runs op for c on the next loop turn (a later op replaces a
 * queued one). */
void rpc__channel_defer(rpc_channel *ch, rpc_client_call *c, int op);

/* channel.c: hands c a READY connection now, or queues it. Returns false if
 * the call must fail now (*why says why). */
bool rpc__channel_pick(rpc_channel *ch, rpc_client_call *c, http2_conn **conn, char *why,
                       size_t whylen);
void rpc__channel_unwait(rpc_channel *ch, rpc_client_call *c);
/* Uniform in [0, 1). */
double rpc__channel_random(rpc_channel *ch);

/* client_call.c: the interceptor behind rpc_channel_config.token and
 * token_provider (data: the channel). */
extern const rpc_client_interceptor rpc__token_interceptor;

/* client_call.c: frees the channel's spare calls. */
void rpc__channel_drop_spares(rpc_channel *ch);
/* client_call.c: the channel found a connection (or gave up: conn NULL). */
void rpc__client_call_dispatch(rpc_client_call *c, http2_conn *conn, const char *error);
/* Ends the call with a local status, delivered from the loop. */
void rpc__client_call_fail(rpc_client_call *c, rpc_status code, const char *message);
/* The deferred ops. */
void rpc__client_call_start(rpc_client_call *c);
void rpc__client_call_deliver(rpc_client_call *c);

#endif
