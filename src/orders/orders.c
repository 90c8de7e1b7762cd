/* orders.c - the orders object's life (orders.h), its per-loop state, and
 * what every service file shares: store results as gRPC statuses, peer
 * deadlines, replies and record -> message conversions. Also seeds the demo
 * catalog into an empty store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "orders/hub.h"
#include "orders/orders_int.h"

#define PAGE_MAX 1000

void orders_config_init(orders_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->services = ORDERS_SVC_ALL;
    cfg->store_url = "sqlite:./oms.db";
    cfg->demo_data = true;
    cfg->peer_tls = true;
    cfg->peer_timeout_ms = 5000;
    cfg->event_ring = 65536;
    cfg->page_size = 100;
    cfg->max_import_rows = 100000;
    cfg->idempotency_retention_ms = 24 * 3600 * 1000;
    cfg->orphan_sweep_ms = 5000;
}

/* --- demo data ---------------------------------------------------------------- */

typedef struct demo_run {
    int pending;                  /* writes not completed yet */
    int failed;                   /* writes that did not succeed */
    char msg[STORE_MSG_MAX + 32]; /* the first failure's */
} demo_run;

static void on_demo_write(store_write *w)
{
    demo_run *d = w->data;
    d->pending--;
    if (w->rc != STORE_OK && d->failed++ == 0)
        snprintf(d->msg, sizeof d->msg, "%s: %s", store_rc_name(w->rc), w->msg);
}

/* Runs loop until every write submitted through d completed. */
static void demo_wait(uv_loop_t *loop, demo_run *d)
{
    while (d->pending > 0)
        uv_run(loop, UV_RUN_ONCE);
}

static const struct {
    const char *name, *email;
} demo_customers[] = {
    {"Ada Lovelace", "ada@example.com"},
    {"Grace Hopper", "grace@example.com"},
    {"Alan Turing", "alan@example.com"},
};

static const struct {
    const char *sku, *name;
    int64_t price, stock;
} demo_products[] = {
    {"SKU-001", "Analytical Engine gear", 1999, 500},
    {"SKU-002", "Punched card deck", 499, 1000},
    {"SKU-003", "Compiler manual", 2950, 250},
    {"SKU-004", "Tape drive", 12900, 100},
    {"SKU-005", "Relay module", 350, 800},
    {"SKU-006", "Vacuum tube", 799, 600},
};

#define NDEMO_C (sizeof demo_customers / sizeof demo_customers[0])
#define NDEMO_P (sizeof demo_products / sizeof demo_products[0])

/* Seeds customers (if hosted) and products with stock (if hosted) into a
 * store that has neither, through a private loop run to completion. Products
 * are upserted before their stock is adjusted: two rounds of writes. */
static int seed_demo(orders *o, char *err, size_t errlen)
{
    uv_loop_t loop;
    char lerr[256];
    int rv = -1;
    if (uv_loop_init(&loop) != 0) {
        snprintf(err, errlen, "demo data: uv_loop_init failed");
        return -1;
    }
    store_loop *sl = store_loop_open(o->st, &loop, lerr, sizeof lerr);
    if (!sl) {
        snprintf(err, errlen, "demo data: %s", lerr);
        goto fail_sl;
    }
    store_customer c1;
    store_product p1;
    long nc = store_list_customers(sl, "", &c1, 1);
    long np = store_list_products(sl, "", &p1, 1);
    if (nc < 0 || np < 0) {
        snprintf(err, errlen, "demo data: reading the store failed");
        goto fail_read;
    }
    if (nc > 0 || np > 0) {
        rv = 0; /* not an empty store: leave it alone */
        goto fail_read;
    }

    bool customers = o->cfg.services & ORDERS_SVC_CUSTOMERS;
    bool products = o->cfg.services & ORDERS_SVC_INVENTORY;
    store_write *w = oms_calloc(NDEMO_C + 2 * NDEMO_P, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "demo data: out of memory");
        goto fail_read;
    }
    demo_run d = {0};
    int64_t now = orders__now_ms();
    size_t k = 0;
    for (size_t i = 0; customers && i < NDEMO_C; i++, k++) {
        w[k].op = STORE_CUSTOMER_CREATE;
        snprintf(w[k].customer.name, sizeof w[k].customer.name, "%s", demo_customers[i].name);
        snprintf(w[k].customer.email, sizeof w[k].customer.email, "%s", demo_customers[i].email);
    }
    for (size_t i = 0; products && i < NDEMO_P; i++, k++) {
        w[k].op = STORE_PRODUCT_UPSERT;
        snprintf(w[k].product.sku, sizeof w[k].product.sku, "%s", demo_products[i].sku);
        snprintf(w[k].product.name, sizeof w[k].product.name, "%s", demo_products[i].name);
        w[k].product.unit_price_cents = demo_products[i].price;
    }
    size_t first = k;
    for (size_t i = 0; i < first; i++) {
        w[i].done = on_demo_write;
        w[i].data = &d;
        w[i].at = now;
        d.pending++;
        store_submit(sl, &w[i]);
    }
    demo_wait(&loop, &d);
    for (size_t i = 0; products && d.failed == 0 && i < NDEMO_P; i++, k++) {
        w[k].op = STORE_STOCK_ADJUST;
        snprintf(w[k].product.sku, sizeof w[k].product.sku, "%s", demo_products[i].sku);
        w[k].delta = demo_products[i].stock;
        w[k].done = on_demo_write;
        w[k].data = &d;
        w[k].at = now;
        d.pending++;
        store_submit(sl, &w[k]);
    }
    demo_wait(&loop, &d);
    oms_free(w);
    if (d.failed) {
        snprintf(err, errlen, "demo data: %d writes failed, first: %s", d.failed, d.msg);
        goto fail_read;
    }
    OMS_INFO("orders: demo data: %zu customers, %zu products", customers ? NDEMO_C : 0,
             products ? NDEMO_P : 0);
    rv = 0;

fail_read:
    store_loop_close(sl);
    uv_run(&loop, UV_RUN_DEFAULT); /* its close callbacks free it */
fail_sl:
    if (uv_loop_close(&loop) != 0)
        OMS_WARN("orders: demo data loop left handles open");
    return rv;
}

/* --- open / close --------------------------------------------------------------- */

static int dup_str(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    return (*out = oms_strdup(s)) ? 0 : -1;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

static void free_strings(orders *o)
{
    oms_free(o->store_url);
    oms_free(o->inventory_target);
    oms_free(o->customers_target);
    oms_free(o->peer_ca_file);
    oms_free(o->peer_server_name);
    oms_free(o->peer_cert_file);
    oms_free(o->peer_key_file);
    oms_free(o->peer_token);
}

/* Copies cfg into o, strings too, with defaults for zeros and page_size capped. */
static int copy_config(orders *o, const orders_config *cfg, char *err, size_t errlen)
{
    o->cfg = *cfg;
    if (dup_str(empty(cfg->store_url) ? "sqlite:./oms.db" : cfg->store_url, &o->store_url) ||
        dup_str(cfg->inventory_target, &o->inventory_target) ||
        dup_str(cfg->customers_target, &o->customers_target) ||
        dup_str(cfg->peer_ca_file, &o->peer_ca_file) ||
        dup_str(cfg->peer_server_name, &o->peer_server_name) ||
        dup_str(cfg->peer_cert_file, &o->peer_cert_file) ||
        dup_str(cfg->peer_key_file, &o->peer_key_file) ||
        dup_str(cfg->peer_token, &o->peer_token)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    o->cfg.store_url = o->store_url;
    o->cfg.inventory_target = o->inventory_target;
    o->cfg.customers_target = o->customers_target;
    o->cfg.peer_ca_file = o->peer_ca_file;
    o->cfg.peer_server_name = o->peer_server_name;
    o->cfg.peer_cert_file = o->peer_cert_file;
    o->cfg.peer_key_file = o->peer_key_file;
    o->cfg.peer_token = o->peer_token;
    if (o->cfg.page_size == 0)
        o->cfg.page_size = 100;
    if (o->cfg.page_size > PAGE_MAX)
        o->cfg.page_size = PAGE_MAX;
    if (o->cfg.event_ring == 0)
        o->cfg.event_ring = 65536;
    if (o->cfg.max_import_rows == 0)
        o->cfg.max_import_rows = 100000;
    if (o->cfg.peer_timeout_ms == 0)
        o->cfg.peer_timeout_ms = 5000;
    return 0;
}

static int check_config(const orders_config *cfg, char *err, size_t errlen)
{
    if (cfg->services == 0 || (cfg->services & ~(unsigned)ORDERS_SVC_ALL)) {
        snprintf(err, errlen, "services: pick one or more of customers, inventory, orders");
        return -1;
    }
    if (!(cfg->services & ORDERS_SVC_ORDERS))
        return 0;
    if (!(cfg->services & ORDERS_SVC_INVENTORY) && empty(cfg->inventory_target)) {
        snprintf(err, errlen,
                 "the order service needs the inventory service: host it or give its target");
        return -1;
    }
    if (!(cfg->services & ORDERS_SVC_CUSTOMERS) && empty(cfg->customers_target)) {
        snprintf(err, errlen,
                 "the order service needs the customer service: host it or give its target");
        return -1;
    }
    return 0;
}

orders *orders_open(const orders_config *cfg, char *err, size_t errlen)
{
    char serr[256];
    if (check_config(cfg, err, errlen) != 0)
        return NULL;
    orders *o = oms_calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (copy_config(o, cfg, err, errlen) != 0)
        goto fail_cfg;
    if (uv_mutex_init(&o->lock) != 0) {
        snprintf(err, errlen, "uv_mutex_init failed");
        goto fail_cfg;
    }
    if (o->cfg.services & ORDERS_SVC_ORDERS) {
        if (!(o->hub = orders__hub_new(o->cfg.event_ring))) {
            snprintf(err, errlen, "out of memory (event hub)");
            goto fail_hub;
        }
    }

    store_config scfg;
    store_config_init(&scfg);
    scfg.url = o->cfg.store_url;
    scfg.key_retention_ms =
        o->cfg.idempotency_retention_ms > 0 ? o->cfg.idempotency_retention_ms : 0;
    scfg.event_poll_ms = o->cfg.event_poll_ms;
    /* As at the start (store_release_orphans): only where reservations and
     * orders share the store. */
    if (o->cfg.services == ORDERS_SVC_ALL)
        scfg.orphan_sweep_ms = o->cfg.orphan_sweep_ms;
    if (o->hub) {
        scfg.on_events = orders__hub_publish;
        scfg.events_arg = o->hub;
    }
    if (!(o->st = store_open(&scfg, serr, sizeof serr))) {
        snprintf(err, errlen, "%s", serr);
        goto fail_store;
    }

    /* Only where reservations and orders share this store can a reservation
     * without its order be told from one whose order is still being made. */
    if (o->cfg.services == ORDERS_SVC_ALL) {
        long n = store_release_orphans(o->st);
        if (n < 0)
            OMS_WARN("orders: releasing orphaned reservations failed");
        else if (n > 0)
            OMS_INFO("orders: released %ld orphaned reservations", n);
        else
            OMS_DEBUG("orders: no orphaned reservations");
    }
    if (o->cfg.demo_data && (o->cfg.services & (ORDERS_SVC_CUSTOMERS | ORDERS_SVC_INVENTORY))) {
        if (seed_demo(o, err, errlen) != 0)
            goto fail_demo;
    }
    return o;

fail_demo:
    store_close(o->st);
fail_store:
    orders__hub_free(o->hub);
fail_hub:
    uv_mutex_destroy(&o->lock);
fail_cfg:
    free_strings(o);
    oms_free(o);
    return NULL;
}

int orders_register(orders *o, rpc_server *srv)
{
    int rc;
    if (o->cfg.services & ORDERS_SVC_CUSTOMERS) {
        rc = oms__v1__customer_service__register_server(srv, &orders__customer_handlers, o);
        if (rc != 0)
            return rc;
    }
    if (o->cfg.services & ORDERS_SVC_INVENTORY) {
        rc = oms__v1__inventory_service__register_server(srv, &orders__inventory_handlers, o);
        if (rc != 0)
            return rc;
    }
    if (o->cfg.services & ORDERS_SVC_ORDERS) {
        rc = oms__v1__order_service__register_server(srv, &orders__order_handlers, o);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* --- loops ------------------------------------------------------------------------ */

static rpc_channel *peer_channel(orders *o, uv_loop_t *loop, const char *target, char *err,
                                 size_t errlen)
{
    rpc_channel_config cc;
    rpc_channel_config_init(&cc);
    cc.target = target;
    cc.tls = o->cfg.peer_tls;
    cc.ca_file = o->cfg.peer_ca_file;
    cc.server_name = o->cfg.peer_server_name;
    cc.cert_file = o->cfg.peer_cert_file;
    cc.key_file = o->cfg.peer_key_file;
    cc.token = o->cfg.peer_token;
    /* cc.retry: the default policy retries UNAVAILABLE */
    rpc_channel *ch = rpc_channel_new(loop, &cc, err, errlen);
    /* Every peer call carries the trace context of the call it is made for
     * (a new trace for background work), so one order can be followed across
     * the split deployment by its trace id. */
    if (ch && rpc_channel_add_interceptor(ch, rpc_trace_client_interceptor(), NULL) != 0)
        OMS_WARN("orders: peer %s: out of memory: calls go without trace context", target);
    if (ch && o->cfg.on_peer_channel)
        o->cfg.on_peer_channel(o->cfg.peer_channel_arg, loop, ch);
    return ch;
}

/* Slot of loop in o->loops, or -1. Slots are never moved: a lookup on one
 * loop's thread may run while another loop attaches or detaches. */
static int find_slot(orders *o, uv_loop_t *loop)
{
    size_t n = __atomic_load_n(&o->nloops, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; i++)
        if (__atomic_load_n(&o->loop_keys[i], __ATOMIC_ACQUIRE) == loop)
            return (int)i;
    return -1;
}

int orders_loop_attach(orders *o, uv_loop_t *loop, char *err, size_t errlen)
{
    char lerr[256];
    unsigned svc = o->cfg.services;
    uv_mutex_lock(&o->lock);
    if (find_slot(o, loop) >= 0) {
        snprintf(err, errlen, "loop already attached");
        goto fail_slot;
    }
    size_t slot = o->nloops;
    for (size_t i = 0; i < o->nloops; i++)
        if (!o->loop_keys[i]) {
            slot = i;
            break;
        }
    if (slot >= ORDERS_MAX_LOOPS) {
        snprintf(err, errlen, "more than %d loops", ORDERS_MAX_LOOPS);
        goto fail_slot;
    }
    orders_loop *ol = oms_calloc(1, sizeof *ol);
    if (!ol) {
        snprintf(err, errlen, "out of memory");
        goto fail_slot;
    }
    ol->o = o;
    ol->loop = loop;
    if (orders__defer_open(ol) != 0) {
        snprintf(err, errlen, "out of memory (completion queue)");
        goto fail_defer;
    }
    if (!(ol->sl = store_loop_open(o->st, loop, lerr, sizeof lerr))) {
        snprintf(err, errlen, "%s", lerr);
        goto fail_sl;
    }
    if (o->hub && !(ol->hl = orders__hub_loop_open(o->hub, ol))) {
        snprintf(err, errlen, "out of memory (event queue)");
        goto fail_hl;
    }
    if (svc & ORDERS_SVC_CUSTOMERS) {
        ol->customers = &orders__local_customers;
    } else if (svc & ORDERS_SVC_ORDERS) {
        ol->customers = &orders__remote_customers;
        if (!(ol->customers_ch =
                  peer_channel(o, loop, o->cfg.customers_target, lerr, sizeof lerr))) {
            snprintf(err, errlen, "customers target %s: %s", o->cfg.customers_target, lerr);
            goto fail_cch;
        }
    }
    if (svc & ORDERS_SVC_INVENTORY) {
        ol->inventory = &orders__local_inventory;
    } else if (svc & ORDERS_SVC_ORDERS) {
        ol->inventory = &orders__remote_inventory;
        if (!(ol->inventory_ch =
                  peer_channel(o, loop, o->cfg.inventory_target, lerr, sizeof lerr))) {
            snprintf(err, errlen, "inventory target %s: %s", o->cfg.inventory_target, lerr);
            goto fail_ich;
        }
    }

    __atomic_store_n(&o->loops[slot], ol, __ATOMIC_RELEASE);
    __atomic_store_n(&o->loop_keys[slot], loop, __ATOMIC_RELEASE);
    if (slot == o->nloops)
        __atomic_store_n(&o->nloops, slot + 1, __ATOMIC_RELEASE);
    /* Split mode: dead runs' reservations under ids without an order. */
    if (!o->sweep_started && (svc & ORDERS_SVC_ORDERS) && !(svc & ORDERS_SVC_INVENTORY)) {
        o->sweep_started = true;
        orders__sweep_start(ol);
    }
    uv_mutex_unlock(&o->lock);
    return 0;

fail_ich:
    rpc_channel_free(ol->customers_ch, NULL, NULL);
fail_cch:
    if (ol->hl)
        orders__hub_loop_close(ol->hl);
fail_hl:
    store_loop_close(ol->sl);
fail_sl:
    orders__defer_close(ol);
fail_defer:
    oms_free(ol);
fail_slot:
    uv_mutex_unlock(&o->lock);
    return -1;
}

orders_loop *orders__loop(orders *o, uv_loop_t *loop)
{
    int i = find_slot(o, loop);
    return i < 0 ? NULL : __atomic_load_n(&o->loops[i], __ATOMIC_ACQUIRE);
}

orders_loop *orders__call_loop(rpc_call *c)
{
    return orders__loop(rpc_call_service_data(c), rpc_call_loop(c));
}

void orders_loop_drain(orders *o, uv_loop_t *loop)
{
    orders_loop *ol = orders__loop(o, loop);
    if (ol && ol->hl)
        orders__hub_loop_drain(ol->hl);
}

void orders_loop_dump(orders *o, uv_loop_t *loop)
{
    orders_loop *ol = orders__loop(o, loop);
    if (ol && ol->hl)
        orders__hub_loop_dump(ol->hl);
}

void orders_loop_get_stats(orders *o, uv_loop_t *loop, orders_loop_stats *out)
{
    memset(out, 0, sizeof *out);
    orders_loop *ol = orders__loop(o, loop);
    if (!ol || !ol->hl)
        return;
    orders_hub_stats hs;
    orders__hub_loop_stats(ol->hl, &hs);
    out->subscribers = hs.subs;
    out->live = hs.live;
    out->sent = hs.sent;
    out->store_reads = hs.store_reads;
    out->ring_restarts = hs.gaps;
    memcpy(out->lag_hist, hs.lag_hist, sizeof out->lag_hist);
    out->lag_count = hs.lag_count;
    out->lag_sum_ms = hs.lag_sum_ms;
}

void orders_store_stats(orders *o, store_stats *out)
{
    store_get_stats(o->st, out);
}

void orders_loop_detach(orders *o, uv_loop_t *loop)
{
    uv_mutex_lock(&o->lock);
    int i = find_slot(o, loop);
    if (i < 0) {
        uv_mutex_unlock(&o->lock);
        return;
    }
    orders_loop *ol = o->loops[i];
    __atomic_store_n(&o->loop_keys[i], NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&o->loops[i], NULL, __ATOMIC_RELEASE);
    uv_mutex_unlock(&o->lock);

    /* Writes still in flight complete now, while everything they may touch
     * (ports, channels, the completion queue) is still there. */
    store_loop_flush(ol->sl);
    /* Sweep and retries first: their calls are on the channels freed next. */
    orders__sweep_stop(ol);
    orders__remote_loop_stop(ol);
    orders__key_detach(ol); /* before the flush, which reports the refusals */
    /* Completions still queued run now, while the channels and the store are
     * there (none should be: the loop's calls ended); a release's first
     * attempt that was still queued is reported left behind, not started. */
    orders__defer_flush(ol);
    rpc_channel_free(ol->customers_ch, NULL, NULL);
    rpc_channel_free(ol->inventory_ch, NULL, NULL);
    if (ol->hl)
        orders__hub_loop_close(ol->hl);
    orders__defer_close(ol); /* what the teardown queued, while the store is there */
    store_loop_close(ol->sl);
    oms_free(ol);
}

void orders_close(orders *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->nloops; i++)
        if (o->loop_keys[i])
            OMS_WARN("orders: closing with loop %p still attached", (void *)o->loop_keys[i]);
    store_close(o->st); /* the writer's last on_events run before it returns */
    orders__hub_free(o->hub);
    uv_mutex_destroy(&o->lock);
    free_strings(o);
    oms_free(o);
}

/* --- shared helpers ---------------------------------------------------------------- */

int64_t orders__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

rpc_status orders__status(store_rc rc)
{
    switch (rc) {
    case STORE_OK:
        return RPC_OK;
    case STORE_NOT_FOUND:
        return RPC_NOT_FOUND;
    case STORE_EXISTS:
        return RPC_ALREADY_EXISTS;
    case STORE_CONFLICT:
        return RPC_ABORTED;
    case STORE_PRECONDITION:
        return RPC_FAILED_PRECONDITION;
    case STORE_INVALID:
        return RPC_INVALID_ARGUMENT;
    case STORE_CLOSED:
    case STORE_UNAVAILABLE:
        return RPC_UNAVAILABLE;
    case STORE_FULL:
        return RPC_RESOURCE_EXHAUSTED;
    case STORE_ERROR:
    default:
        return RPC_INTERNAL;
    }
}

uint64_t orders__peer_timeout(const orders *o, const rpc_call *c)
{
    uint64_t cap = o->cfg.peer_timeout_ms;
    uint64_t left = c ? rpc_call_remaining_ms(c) : 0;
    if (left == 0 || (cap && left > cap))
        return cap;
    return left;
}

const char *orders__call_owner(const rpc_call *c)
{
    const rpc_principal *p = rpc_call_principal(c);
    return p ? p->customer_id : NULL;
}

bool orders__owner_ok(const rpc_call *c, const char *customer_id)
{
    const char *owner = orders__call_owner(c);
    /* An empty customer_id claim matches no customer: orders always have one. */
    return !owner || (owner[0] && customer_id && strcmp(owner, customer_id) == 0);
}

void orders__reply(rpc_call *c, const ProtobufCMessage *m)
{
    int rc = rpc_call_send(c, m);
    if (rc >= 0)
        rpc_call_finish(c, RPC_OK, NULL);
    else
        rpc_call_finish_send_error(c, rc);
}

/* Length of the UTF-8 sequence at p (shortest form, no surrogates, at most
 * U+10FFFF), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))
            return 0;
        return (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
            return 0;
        return (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

bool orders__name_ok(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
        size_t k = utf8_len(p + i); /* stops at the NUL: never reads past it */
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* --- records -> messages ------------------------------------------------------------- */

void orders__customer_msg(const store_customer *r, Oms__V1__Customer *m)
{
    oms__v1__customer__init(m);
    m->id = (char *)r->id;
    m->name = (char *)r->name;
    m->email = (char *)r->email;
    m->status = (Oms__V1__CustomerStatus)r->status;
    m->created_at = r->created_at;
}

void orders__product_msg(const store_product *r, Oms__V1__Product *m)
{
    oms__v1__product__init(m);
    m->sku = (char *)r->sku;
    m->name = (char *)r->name;
    m->unit_price_cents = r->unit_price_cents;
    m->on_hand = r->on_hand;
    m->reserved = r->reserved;
    m->available = r->on_hand - r->reserved;
    m->updated_at = r->updated_at;
}

void orders__order_msg(const store_order *r, Oms__V1__Order *m, Oms__V1__OrderLine *lines,
                       Oms__V1__OrderLine **linep)
{
    oms__v1__order__init(m);
    m->id = (char *)r->id;
    m->customer_id = (char *)r->customer_id;
    m->total_cents = r->total_cents;
    m->status = (Oms__V1__OrderStatus)r->status;
    m->version = r->version;
    m->created_at = r->created_at;
    m->updated_at = r->updated_at;
    m->cancel_reason = (char *)r->cancel_reason;
    for (size_t i = 0; i < r->nlines; i++) {
        const store_line *l = &r->lines[i];
        oms__v1__order_line__init(&lines[i]);
        lines[i].sku = (char *)l->sku;
        lines[i].quantity = l->quantity;
        lines[i].unit_price_cents = l->unit_price_cents;
        int64_t t = 0;
        lines[i].line_total_cents =
            orders__line_total(l->quantity, l->unit_price_cents, &t) ? t : 0;
        linep[i] = &lines[i];
    }
    m->n_lines = r->nlines;
    m->lines = linep;
}

void orders__event_msg(const store_event *r, Oms__V1__OrderEvent *m)
{
    oms__v1__order_event__init(m);
    m->seq = r->seq;
    m->order_id = (char *)r->order_id;
    m->customer_id = (char *)r->customer_id;
    m->status = (Oms__V1__OrderStatus)r->status;
    m->previous_status = (Oms__V1__OrderStatus)r->previous_status;
    m->version = r->version;
    m->at = r->at;
}
