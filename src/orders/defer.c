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
 */
#include "base/alloc.h"
#include "base/log.h"
#include "orders/orders_int.h"

typedef struct orders_defer {
    uv_check_t check;
    uv_idle_t idle;
    orders_deferred *head, **tail;
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

static void on_closed(uv_handle_t *h)
{
    orders_defer *q = h->data;
    if (--q->handles == 0)
        oms_free(q);
}

int orders__defer_open(orders_loop *ol)
{
    orders_defer *q = oms_calloc(1, sizeof *q);
    if (!q)
        return -1;
    q->tail = &q->head;
    int rv = uv_check_init(ol->loop, &q->check);
    if (rv != 0) {
        oms_free(q);
        goto fail;
    }
    q->check.data = q;
    q->handles = 1;
    if ((rv = uv_idle_init(ol->loop, &q->idle)) != 0) {
        uv_close((uv_handle_t *)&q->check, on_closed); /* frees q as the loop runs */
        goto fail;
    }
    q->idle.data = q;
    q->handles = 2;
    ol->defer = q;
    return 0;
fail:
    OMS_ERROR("orders: completion queue: %s", uv_strerror(rv));
    return -1;
}

void orders__defer(orders_loop *ol, orders_deferred *d, orders_deferred_cb cb)
{
    orders_defer *q = ol->defer;
    d->cb = cb;
    d->next = NULL;
    if (!q->head) {
        /* Neither fails with a callback given. */
        uv_check_start(&q->check, on_check);
        uv_idle_start(&q->idle, on_idle);
    }
    *q->tail = d;
    q->tail = &d->next;
}

void orders__defer_flush(orders_loop *ol)
{
    orders_defer *q = ol->defer;
    if (!q)
        return;
    size_t turns = 0;
    while (q->head) {
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
}
