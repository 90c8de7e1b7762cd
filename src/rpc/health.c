/* health.c - grpc.health.v1.Health over rpc.h.
 *
 * Statuses live in a small array (a server has a handful of names). Watch
 * calls sit on one doubly-linked list; a change walks it and sends to the
 * watchers of that name. Sending goes through rpc_call_send(), which may end
 * calls, and ending a call unlinks its watcher, so the walk holds a reference
 * on the call it sends to and restarts from the head whenever the list
 * changed under it (a per-walk generation mark skips watchers already done).
 */
#include "base/alloc.h"
#include "rpc/health.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.omsrpc.h"

typedef Grpc__Health__V1__HealthCheckRequest health_request;
typedef Grpc__Health__V1__HealthCheckResponse health_response;

typedef struct health_entry {
    char *name; /* malloc */
    rpc_health_status status;
} health_entry;

/* One Watch call; lives in the call's arena. */
typedef struct health_watcher {
    struct health_watcher *prev, *next;
    rpc_health *h; /* NULL once unlinked */
    rpc_call *call;
    char *service;            /* arena copy of the watched name */
    rpc_health_status latest; /* newest status of the name */
    rpc_health_status sent;   /* last status queued on the stream; 0 before the first */
    bool waiting;             /* a send returned RPC_AGAIN: hold until on_ready */
    unsigned gen;             /* the notify walk that last visited this watcher */
} health_watcher;

struct rpc_health {
    health_entry *entries;
    size_t n_entries, cap_entries;
    health_watcher *watchers;   /* list head */
    unsigned long list_version; /* bumped on every link and unlink */
    unsigned gen;               /* notify walks so far */
    bool shut_down;
    rpc_service_impl impl;
    const rpc_method_ops *ops[GRPC__HEALTH__V1__HEALTH__N_METHODS]; /* impl's */
};

static health_entry *find_entry(const rpc_health *h, const char *name)
{
    for (size_t i = 0; i < h->n_entries; i++)
        if (strcmp(h->entries[i].name, name) == 0)
            return &h->entries[i];
    return NULL;
}

rpc_health_status rpc_health_get(const rpc_health *h, const char *service)
{
    const health_entry *e = find_entry(h, service ? service : "");
    return e ? e->status : RPC_HEALTH_SERVICE_UNKNOWN;
}

/* --- watchers -------------------------------------------------------------- */

static void link_watcher(rpc_health *h, health_watcher *w)
{
    w->h = h;
    w->prev = NULL;
    w->next = h->watchers;
    if (h->watchers)
        h->watchers->prev = w;
    h->watchers = w;
    h->list_version++;
}

static void unlink_watcher(health_watcher *w)
{
    rpc_health *h = w->h;
    if (!h)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        h->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->h = NULL;
    h->list_version++;
}

/* Sends w->latest unless it was the last status sent or the stream is full
 * (then on_ready sends whatever is latest by that time). Once the server
 * shuts down and the watcher has seen its final status, the Watch ends with
 * UNAVAILABLE, so that it does not hold its connection open for the whole
 * drain. The caller keeps w's call alive across this. */
static void push(health_watcher *w)
{
    if (w->waiting)
        return;
    if (w->latest != w->sent) {
        health_response resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)w->latest;
        w->sent = w->latest;
        int rv = grpc__health__v1__health__watch__send(w->call, &resp);
        if (rv == RPC_AGAIN) {
            w->waiting = true;
            return;
        }
        if (rv < 0) {
            unlink_watcher(w); /* the call is over; on_free follows */
            return;
        }
    }
    if (w->h && w->h->shut_down) {
        rpc_call *c = w->call;
        unlink_watcher(w);
        rpc_call_finish(c, RPC_UNAVAILABLE, "server is shutting down");
    }
}

/* Brings every watcher of service up to its current status. */
static void notify(rpc_health *h, const char *service)
{
    unsigned gen = ++h->gen;
    health_watcher *w = h->watchers;
    while (w) {
        if (w->gen == gen || strcmp(w->service, service) != 0) {
            w = w->next;
            continue;
        }
        w->gen = gen;
        w->latest = rpc_health_get(h, w->service);
        unsigned long version = h->list_version;
        rpc_call *c = w->call;
        rpc_call_ref(c); /* w lives in c's arena: keep it while we touch it */
        push(w);
        health_watcher *next = w->next;
        rpc_call_unref(c);
        w = h->list_version == version ? next : h->watchers;
    }
}

/* --- status changes -------------------------------------------------------- */

static int set_status(rpc_health *h, const char *service, rpc_health_status status)
{
    health_entry *e = find_entry(h, service);
    if (status == RPC_HEALTH_SERVICE_UNKNOWN) {
        if (!e)
            return 0;
        char *name = e->name;
        *e = h->entries[--h->n_entries];
        notify(h, name);
        oms_free(name);
        return 0;
    }
    if (e) {
        if (e->status == status)
            return 0;
        e->status = status;
        notify(h, e->name);
        return 0;
    }
    if (h->n_entries == h->cap_entries) {
        size_t cap = h->cap_entries ? h->cap_entries * 2 : 8;
        health_entry *n = oms_realloc(h->entries, cap * sizeof(*n));
        if (!n)
            return RPC_ENOMEM;
        h->entries = n;
        h->cap_entries = cap;
    }
    char *name = oms_strdup(service);
    if (!name)
        return RPC_ENOMEM;
    h->entries[h->n_entries++] = (health_entry){.name = name, .status = status};
    notify(h, name);
    return 0;
}

int rpc_health_set(rpc_health *h, const char *service, rpc_health_status status)
{
    if (!h || !service || status < RPC_HEALTH_SERVING || status > RPC_HEALTH_SERVICE_UNKNOWN)
        return RPC_EINVAL;
    if (h->shut_down)
        return 0;
    return set_status(h, service, status);
}

void rpc_health_shutdown(rpc_health *h)
{
    h->shut_down = true;
    /* Only statuses change here, never the array, so entries stay put while
     * notify() sends. */
    for (size_t i = 0; i < h->n_entries; i++) {
        if (h->entries[i].status == RPC_HEALTH_NOT_SERVING)
            continue;
        h->entries[i].status = RPC_HEALTH_NOT_SERVING;
        notify(h, h->entries[i].name);
    }
    /* End the watches that are not waiting for window (those end from
     * on_ready once their last status is out). */
    for (health_watcher *w = h->watchers, *next; w; w = next) {
        next = w->next;
        rpc_call *c = w->call;
        rpc_call_ref(c);
        push(w);
        rpc_call_unref(c);
    }
}

/* --- handlers -------------------------------------------------------------- */

static const char *request_service(const health_request *req)
{
    return req->service ? req->service : "";
}

static void on_check_message(rpc_call *c, const health_request *req)
{
    rpc_health *h = rpc_call_service_data(c);
    rpc_health_status status = rpc_health_get(h, request_service(req));
    if (status == RPC_HEALTH_SERVICE_UNKNOWN) {
        rpc_call_finish(c, RPC_NOT_FOUND, "unknown service");
        return;
    }
    health_response resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    int rv = grpc__health__v1__health__check__send(c, &resp);
    rpc_call_finish(c, rv < 0 ? RPC_INTERNAL : RPC_OK, NULL);
}

/* Watch: the call stays open until the client or the server ends it. */
static void on_watch_message(rpc_call *c, const health_request *req)
{
    rpc_health *h = rpc_call_service_data(c);
    const char *name = request_service(req);
    size_t len = strlen(name);
    health_watcher *w = rpc_call_alloc(c, sizeof(*w));
    char *copy = w ? rpc_call_alloc(c, len + 1) : NULL;
    if (!copy) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    memcpy(copy, name, len + 1);
    w->call = c;
    w->service = copy;
    w->latest = rpc_health_get(h, name);
    link_watcher(h, w);
    rpc_call_set_data(c, w);
    push(w);
}

static void on_watch_ready(rpc_call *c)
{
    health_watcher *w = rpc_call_data(c);
    if (!w || !w->h)
        return;
    w->waiting = false;
    push(w);
}

static void on_watch_cancel(rpc_call *c, rpc_status code)
{
    (void)code;
    health_watcher *w = rpc_call_data(c);
    if (w)
        unlink_watcher(w);
}

static void on_watch_free(rpc_call *c)
{
    health_watcher *w = rpc_call_data(c);
    if (w)
        unlink_watcher(w);
}

static const Grpc__Health__V1__Health_Server health_handlers = {
    .check = {.on_request = on_check_message},
    .watch =
        {
            .on_request = on_watch_message,
            .on_ready = on_watch_ready,
            .on_cancel = on_watch_cancel,
            .on_free = on_watch_free,
        },
};

/* --- lifetime -------------------------------------------------------------- */

rpc_health *rpc_health_new(void)
{
    rpc_health *h = oms_calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    if (grpc__health__v1__health__server_impl(&h->impl, h->ops, &health_handlers, h) != 0 ||
        set_status(h, "", RPC_HEALTH_SERVING) != 0) {
        rpc_health_free(h);
        return NULL;
    }
    return h;
}

void rpc_health_free(rpc_health *h)
{
    if (!h)
        return;
    while (h->watchers)
        unlink_watcher(h->watchers);
    for (size_t i = 0; i < h->n_entries; i++)
        oms_free(h->entries[i].name);
    oms_free(h->entries);
    oms_free(h);
}

const rpc_service_impl *rpc_health_impl(rpc_health *h)
{
    return &h->impl;
}
