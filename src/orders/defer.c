/* defer.c - completions delivered from the loop (orders_int.h).
 *
 * A port or flow that knows its result at once queues it here instead of
 * calling back from inside, the way libuv queues the error of a uv_write()
 * that failed at once. A check handle runs the queue right after the loop's
 * I/O phase, so a result queued by an I/O callback (an RPC handler starting a
 * flow) is delivered in the same loop iteration; while anything is queued an
 * idle handle keeps the loop from blocking for I/O, so a result queued from
 * anywhere else (a timer, a check callback, a completion run from here) waits
 * one loop turn at most. Both handles are stopped while the queue is empty.
 *
 * Another thread hands a completion to this loop with orders__defer_post():
 * it goes into an inbox under a mutex and an async handle wakes the loop,
 * which moves the inbox into the queue.
 */
#include "base/alloc.h"
#include "base/log.h"
#include "orders/orders_int.h"

typedef struct orders_defer {
    uv_check_t check;
    uv_idle_t idle;
    uv_async_t async;
    orders_deferred *head, **tail;
    uv_mutex_t lock; /* guards the inbox */
    orders_deferred *in_head, **in_tail;
    int handles; /* open; the last close callback frees */
} orders_defer;

/* Takes the queue as it is and runs it: what the callbacks queue waits for
 * the next turn, so a chain of deferrals cannot starve the loop's I/O. */
static void run_queue(orders_defer *q)
{
    orders_deferred *d = q->head;
    q->head = NULL;
    q->tail = &q->head;
    while (d) {
        orders_deferred *next = d->next;
        d->next = NULL;
        d->cb(d); /* may free d */
        d = next;
    }
}

static void on_check(uv_check_t *h)
{
    orders_defer *q = h->data;
    run_queue(q);
    if (!q->head) {
        uv_check_stop(&q->check);
        uv_idle_stop(&q->idle);
    }
}

/* Only there to make the loop poll without blocking while work is queued. */
static void on_idle(uv_idle_t *h)
{
    (void)h;
}

static void enqueue(orders_defer *q, orders_deferred *d)
{
    if (!q->head) {
        /* Neither fails with a callback given. */
        uv_check_start(&q->check, on_check);
        uv_idle_start(&q->idle, on_idle);
    }
    *q->tail = d;
    q->tail = &d->next;
}

/* Moves the inbox into the queue; true when it held anything. */
static bool take_inbox(orders_defer *q)
{
    uv_mutex_lock(&q->lock);
    orders_deferred *d = q->in_head;
    q->in_head = NULL;
    q->in_tail = &q->in_head;
    uv_mutex_unlock(&q->lock);
    bool any = d != NULL;
    while (d) {
        orders_deferred *next = d->next;
        d->next = NULL;
        enqueue(q, d);
        d = next;
    }
    return any;
}

/* Runs what other threads posted, in the order they posted it. */
static void on_async(uv_async_t *h)
{
    orders_defer *q = h->data;
    if (take_inbox(q))
        on_check(&q->check);
}

static void on_closed(uv_handle_t *h)
{
    orders_defer *q = h->data;
    if (--q->handles == 0) {
        uv_mutex_destroy(&q->lock);
        oms_free(q);
    }
}

int orders__defer_open(orders_loop *ol)
{
    orders_defer *q = oms_calloc(1, sizeof *q);
    if (!q)
        return -1;
    q->tail = &q->head;
    q->in_tail = &q->in_head;
    int rv = uv_mutex_init(&q->lock);
    if (rv != 0) {
        oms_free(q);
        goto fail;
    }
    /* Each handle's close callback counts down; the last frees q. */
    uv_handle_t *opened[3];
    int n = 0;
    if ((rv = uv_check_init(ol->loop, &q->check)) == 0) {
        opened[n++] = (uv_handle_t *)&q->check;
        if ((rv = uv_idle_init(ol->loop, &q->idle)) == 0) {
            opened[n++] = (uv_handle_t *)&q->idle;
            if ((rv = uv_async_init(ol->loop, &q->async, on_async)) == 0)
                opened[n++] = (uv_handle_t *)&q->async;
        }
    }
    q->handles = n;
    for (int i = 0; i < n; i++)
        opened[i]->data = q;
    if (rv != 0) {
        if (n == 0) {
            uv_mutex_destroy(&q->lock);
            oms_free(q);
        }
        for (int i = 0; i < n; i++)
            uv_close(opened[i], on_closed); /* frees q as the loop runs */
        goto fail;
    }
    ol->defer = q;
    return 0;
fail:
    OMS_ERROR("orders: completion queue: %s", uv_strerror(rv));
    return -1;
}

void orders__defer(orders_loop *ol, orders_deferred *d, orders_deferred_cb cb)
{
    d->cb = cb;
    d->next = NULL;
    enqueue(ol->defer, d);
}

void orders__defer_post(orders_loop *ol, orders_deferred *d, orders_deferred_cb cb)
{
    orders_defer *q = ol->defer;
    d->cb = cb;
    d->next = NULL;
    uv_mutex_lock(&q->lock);
    *q->in_tail = d;
    q->in_tail = &d->next;
    uv_mutex_unlock(&q->lock);
    uv_async_send(&q->async); /* fails only on a closed handle: see defer_close */
}

void orders__defer_flush(orders_loop *ol)
{
    orders_defer *q = ol->defer;
    if (!q)
        return;
    size_t turns = 0;
    while (take_inbox(q) || q->head) {
        run_queue(q);
        turns++;
    }
    if (turns)
        OMS_DEBUG("orders: %zu rounds of completions run at detach", turns);
}

void orders__defer_close(orders_loop *ol)
{
    orders_defer *q = ol->defer;
    if (!q)
        return;
    orders__defer_flush(ol);
    ol->defer = NULL;
    uv_close((uv_handle_t *)&q->check, on_closed);
    uv_close((uv_handle_t *)&q->idle, on_closed);
    uv_close((uv_handle_t *)&q->async, on_closed);
}
