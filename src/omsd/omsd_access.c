/* omsd_access.c - the access log (omsd_access.h). */
#include "omsd/omsd_access.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/json.h"
#include "base/log.h"
#include "rpc/trace.h"

#define DEFAULT_BUFFER (4u << 20)
/* A line longer than this loses its longest members (a hostile path). */
#define LINE_MAX_BYTES 4096
/* Input bytes of the principal and method kept (a longer one is cut). */
#define FIELD_MAX        256
#define WARN_INTERVAL_NS 1000000000ull
/* Lines wait this long to be written together: one writer wake-up per
 * interval, not per call (a futex wake-up and context switch per call showed
 * as the top cost under perf). A buffer an eighth full is written at once. */
#define FLUSH_INTERVAL_NS 10000000ull

struct omsd_access {
    char *path; /* NULL: standard output */
    int fd;
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    /* the ring: bytes [tail, head) are waiting; positions grow forever and
     * are taken modulo cap */
    char *ring;
    size_t cap;
    size_t head, tail;    /* under lock */
    bool stop, reopen;    /* under lock */
    bool writer_idle;     /* under lock: waiting on cond, nothing buffered */
    bool writer_batching; /* under lock: waiting FLUSH_INTERVAL_NS for more */
    atomic_uint_fast64_t dropped;
};

static const char *type_name(rpc_call_type t)
{
    switch (t) {
    case RPC_CALL_UNARY:
        return "unary";
    case RPC_CALL_CLIENT_STREAMING:
        return "client_streaming";
    case RPC_CALL_SERVER_STREAMING:
        return "server_streaming";
    case RPC_CALL_BIDI_STREAMING:
        return "bidi_streaming";
    default:
        return "unknown";
    }
}

static bool zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

size_t omsd_access_format(rpc_call *c, const rpc_call_stats *st, int64_t sec, long nsec, char *buf,
                          size_t cap)
{
    char when[32], tid[33], sid[17], pid[17];
    oms_json_time(when, sizeof when, sec, nsec);
    const rpc_trace *t = rpc_call_trace(c);
    oms_json j;
    oms_json_begin(&j, buf, cap);
    oms_json_cstr(&j, "time", when);
    oms_json_cstr(&j, "peer", rpc_call_peer(c));
    /* bounded so that the fields after them always fit (escaped, a byte
     * takes up to 6); the subject is validated by authentication */
    const char *sub = st->principal ? st->principal->subject : NULL;
    const char *path = rpc_call_path(c);
    oms_json_str(&j, "principal", sub, sub ? strnlen(sub, FIELD_MAX) : 0);
    oms_json_str(&j, "method", path, path ? strnlen(path, FIELD_MAX) : 0);
    oms_json_cstr(&j, "type", type_name(rpc_call_get_type(c)));
    oms_json_cstr(&j, "status", rpc_status_name((int)st->code));
    oms_json_u64(&j, "code", (uint64_t)st->code);
    oms_json_u64(&j, "duration_us", st->duration_ns / 1000u);
    oms_json_u64(&j, "msgs_received", st->msgs_received);
    oms_json_u64(&j, "bytes_received", st->bytes_received);
    oms_json_u64(&j, "msgs_sent", st->msgs_sent);
    oms_json_u64(&j, "bytes_sent", st->bytes_sent);
    if (t) {
        rpc_trace_hex(t->trace_id, sizeof t->trace_id, tid);
        rpc_trace_hex(t->span_id, sizeof t->span_id, sid);
        rpc_trace_hex(t->parent_id, sizeof t->parent_id, pid);
    }
    oms_json_cstr(&j, "trace_id", t ? tid : NULL);
    oms_json_cstr(&j, "span_id", t ? sid : NULL);
    oms_json_cstr(&j, "parent_span_id", t && !zero(t->parent_id, 8) ? pid : NULL);
    return oms_json_end(&j);
}

/* Copies one line into the ring, or counts it dropped. Never waits on I/O:
 * the lock is held by others only for a copy or an index update. */
static void push(omsd_access *a, const char *line, size_t n)
{
    uv_mutex_lock(&a->lock);
    if (a->cap - (a->head - a->tail) < n) {
        uv_mutex_unlock(&a->lock);
        atomic_fetch_add(&a->dropped, 1);
        return;
    }
    size_t at = a->head % a->cap, first = a->cap - at < n ? a->cap - at : n;
    memcpy(a->ring + at, line, first);
    memcpy(a->ring, line + first, n - first);
    a->head += n;
    bool wake = a->writer_idle || (a->writer_batching && a->head - a->tail >= a->cap / 8);
    uv_mutex_unlock(&a->lock);
    if (wake)
        uv_cond_signal(&a->cond);
}

static rpc_intercept_action on_start(rpc_call *c, void *data, void **state)
{
    (void)data;
    (void)state;
    rpc_call_trace(c); /* fixed now: the handler and peers see the same trace */
    return RPC_INTERCEPT_CONTINUE;
}

static void on_end(rpc_call *c, void *data, void *state, const rpc_call_stats *st)
{
    (void)state;
    char line[LINE_MAX_BYTES];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = omsd_access_format(c, st, (int64_t)ts.tv_sec, ts.tv_nsec, line, sizeof line);
    push(data, line, n);
}

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* Writes n bytes, all of them unless the file fails. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void writer_main(void *arg)
{
    omsd_access *a = arg;
    uint64_t reported = 0, last_warn = 0, write_errors = 0;
    uv_mutex_lock(&a->lock);
    for (;;) {
        while (a->head == a->tail && !a->stop && !a->reopen) {
            a->writer_idle = true;
            /* wakes at least once a second to report drops */
            uv_cond_timedwait(&a->cond, &a->lock, WARN_INTERVAL_NS);
            a->writer_idle = false;
            if (atomic_load(&a->dropped) != reported)
                break;
        }
        if (a->head != a->tail && !a->stop && !a->reopen && a->head - a->tail < a->cap / 8) {
            a->writer_batching = true;
            uv_cond_timedwait(&a->cond, &a->lock, FLUSH_INTERVAL_NS);
            a->writer_batching = false;
        }
        bool reopen = a->reopen, stop = a->stop;
        a->reopen = false;
        size_t tail = a->tail, head = a->head;
        uv_mutex_unlock(&a->lock);

        if (reopen && a->path) {
            int fd = open_file(a->path);
            if (fd < 0) {
                OMS_ERROR("access-log: cannot reopen %s: %s (keeping the old file)", a->path,
                          strerror(errno));
            } else {
                close(a->fd);
                a->fd = fd;
                OMS_INFO("access-log: reopened %s", a->path);
            }
        }
        /* [tail, head) is ours until tail moves: producers write elsewhere */
        while (tail != head) {
            size_t at = tail % a->cap, n = head - tail;
            if (n > a->cap - at)
                n = a->cap - at;
            int rv = write_all(a->fd, a->ring + at, n);
            if (rv != 0 && write_errors++ == 0)
                OMS_ERROR("access-log: write: %s (lines are lost while it fails)", strerror(-rv));
            tail += n;
        }
        uint64_t d = atomic_load(&a->dropped), now = uv_hrtime();
        if (d != reported && (last_warn == 0 || now - last_warn >= WARN_INTERVAL_NS)) {
            OMS_WARN("access-log: %llu line(s) dropped: the log cannot keep up with the calls "
                     "(%llu in all)",
                     (unsigned long long)(d - reported), (unsigned long long)d);
            reported = d;
            last_warn = now;
        }
        uv_mutex_lock(&a->lock);
        a->tail = tail;
        if (stop && a->head == a->tail)
            break;
    }
    uv_mutex_unlock(&a->lock);
}

omsd_access *omsd_access_open(const char *path, size_t buffer_bytes, char *err, size_t errlen)
{
    omsd_access *a = oms_calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cap = buffer_bytes ? buffer_bytes : DEFAULT_BUFFER;
    if (a->cap < 2 * LINE_MAX_BYTES)
        a->cap = 2 * LINE_MAX_BYTES;
    a->fd = -1;
    atomic_init(&a->dropped, 0);
    if (strcmp(path, "-") == 0) {
        a->fd = STDOUT_FILENO;
    } else {
        if (!(a->path = oms_strdup(path))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if ((a->fd = open_file(path)) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
    }
    if (!(a->ring = oms_malloc(a->cap))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (uv_mutex_init(&a->lock) != 0 || uv_cond_init(&a->cond) != 0 ||
        uv_thread_create(&a->thread, writer_main, a) != 0) {
        snprintf(err, errlen, "cannot start the writer thread");
        goto fail; /* (a failed init leaks a mutex at most: the process exits) */
    }
    return a;
fail:
    if (a->fd > STDERR_FILENO)
        close(a->fd);
    oms_free(a->ring);
    oms_free(a->path);
    oms_free(a);
    return NULL;
}

int omsd_access_attach(omsd_access *a, rpc_server *srv)
{
    static const rpc_interceptor ic = {
        .name = "access-log", .on_start = on_start, .on_end = on_end};
    return rpc_server_add_interceptor(srv, &ic, a);
}

void omsd_access_reopen(omsd_access *a)
{
    uv_mutex_lock(&a->lock);
    a->reopen = true;
    uv_mutex_unlock(&a->lock);
    uv_cond_signal(&a->cond);
}

uint64_t omsd_access_dropped(omsd_access *a)
{
    return atomic_load(&a->dropped);
}

void omsd_access_close(omsd_access *a)
{
    if (!a)
        return;
    uv_mutex_lock(&a->lock);
    a->stop = true;
    uv_mutex_unlock(&a->lock);
    uv_cond_signal(&a->cond);
    uv_thread_join(&a->thread);
    uv_cond_destroy(&a->cond);
    uv_mutex_destroy(&a->lock);
    if (a->fd > STDERR_FILENO)
        close(a->fd);
    oms_free(a->ring);
    oms_free(a->path);
    oms_free(a);
}
