/* keygate.c - one CreateOrder flow at a time per customer and idempotency key
 * (orders_int.h), process-wide.
 *
 * Holders hang in a hash table under orders.lock, each with the FIFO queue of
 * the flows waiting behind it. Leaving hands the key straight to the first
 * waiter, with the rest of the queue, and posts its turn to its loop
 * (defer.c), so a key is never free while someone waits for it and a turn
 * never runs on another loop's thread.
 */
#include <string.h>

#include "orders/orders_int.h"

static uint32_t key_hash(const char *customer_id, const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a over "customer\0key" */
    for (const char *p = customer_id;; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
        if (!*p)
            break;
    }
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

static bool same_key(const orders_key_wait *a, const orders_key_wait *b)
{
    return a->hash == b->hash && strcmp(a->key, b->key) == 0 &&
           strcmp(a->customer_id, b->customer_id) == 0;
}

static orders_key_wait **slot_of(orders *o, uint32_t hash)
{
    return &o->key_holders[hash % ORDERS_KEY_BUCKETS];
}

bool orders__key_enter(orders_key_wait *w, orders_loop *ol, const char *customer_id,
                       const char *key, orders_deferred_cb on_turn)
{
    orders *o = ol->o;
    *w = (orders_key_wait){.ol = ol, .customer_id = customer_id, .key = key};
    w->hash = key_hash(customer_id, key);
    w->d.cb = on_turn;
    w->queue_tail = &w->queue;
    uv_mutex_lock(&o->lock);
    orders_key_wait **slot = slot_of(o, w->hash);
    for (orders_key_wait *h = *slot; h; h = h->next) {
        if (same_key(h, w)) {
            *h->queue_tail = w;
            h->queue_tail = &w->queue;
            uv_mutex_unlock(&o->lock);
            return false;
        }
    }
    w->next = *slot;
    *slot = w;
    uv_mutex_unlock(&o->lock);
    return true;
}

void orders__key_leave(orders_key_wait *w)
{
    orders *o = w->ol->o;
    uv_mutex_lock(&o->lock);
    orders_key_wait **pp = slot_of(o, w->hash);
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp) {
        orders_key_wait *heir = w->queue;
        if (heir) {
            heir->queue_tail = heir->queue ? w->queue_tail : &heir->queue;
            heir->next = w->next;
            *pp = heir;
            orders__defer_post(heir->ol, &heir->d, heir->d.cb);
        } else {
            *pp = w->next;
        }
    }
    uv_mutex_unlock(&o->lock);
}

/* Takes ol's waiters out of the queue behind h; refused ones collect in
 * *out (a list through ->next). */
static void take_loop_waiters(orders_key_wait *h, orders_loop *ol, orders_key_wait **out)
{
    orders_key_wait **pp = &h->queue;
    h->queue_tail = &h->queue;
    while (*pp) {
        orders_key_wait *x = *pp;
        if (x->ol == ol) {
            *pp = x->queue;
            x->queue = NULL;
            x->next = *out;
            *out = x;
        } else {
            h->queue_tail = &x->queue;
            pp = &x->queue;
        }
    }
}

void orders__key_detach(orders_loop *ol)
{
    orders *o = ol->o;
    orders_key_wait *refused = NULL;
    uv_mutex_lock(&o->lock);
    for (size_t i = 0; i < ORDERS_KEY_BUCKETS; i++)
        for (orders_key_wait *h = o->key_holders[i]; h; h = h->next)
            take_loop_waiters(h, ol, &refused);
    uv_mutex_unlock(&o->lock);
    while (refused) {
        orders_key_wait *x = refused;
        refused = x->next;
        x->next = NULL;
        x->refused = true;
        orders__defer(ol, &x->d, x->d.cb);
    }
}
