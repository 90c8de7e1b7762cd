/* The store's side of the order system's promises: a public Reserve cannot
 * take an id the next order gets, a public Release cannot free a live order's
 * stock, idempotency keys are per customer and are forgotten after their
 * retention. */
#include <inttypes.h>
#include <stdint.h>
#include <time.h>

#include "store_test_util.h"

#define BIT(s)      (1u << (s))
#define CANCELLABLE (BIT(STORE_ORDER_PENDING) | BIT(STORE_ORDER_CONFIRMED))

static int64_t reserved(tenv *e, const char *sku)
{
    store_product p;
    cr_assert_eq(store_get_product(e->sl, sku, &p), STORE_OK);
    return p.reserved;
}

/* ORDER_PLACE of one line under a fresh id; id_out gets the id. */
static store_rc place1(tenv *e, const char *customer, const char *key, const char *sku, int64_t qty,
                       char *id_out, store_write *out)
{
    store_order *o = store_order_new(1);
    cr_assert_not_null(o);
    cr_assert_eq(store_next_order_id(e->st, o->id), STORE_OK);
    strcpy(o->customer_id, customer);
    strcpy(o->idempotency_key, key ? key : "");
    strcpy(o->lines[0].sku, sku);
    o->lines[0].quantity = qty;
    o->created_at = 5000;
    store_write w = {.op = STORE_ORDER_PLACE, .order = o, .at = o->created_at};
    store_rc rc = run_write(e, &w);
    if (id_out)
        strcpy(id_out, o->id);
    store_order_free(o);
    if (out)
        *out = w;
    else
        store_order_free(w.result);
    return rc;
}

/* A public RESERVE (orders_local) of one line. */
static store_rc public_reserve(tenv *e, const char *order_id, const char *sku, int64_t qty,
                               store_write *out)
{
    store_line l = {.quantity = qty};
    strcpy(l.sku, sku);
    store_write w = {
        .op = STORE_RESERVE, .at = 6000, .lines = &l, .nlines = 1, .orders_local = true};
    strcpy(w.order_id, order_id);
    store_rc rc = run_write(e, &w);
    w.lines = NULL;
    *out = w;
    return rc;
}

static store_rc public_release(tenv *e, const char *order_id, store_write *out)
{
    store_write w = {.op = STORE_RELEASE, .at = 6000, .orders_local = true};
    strcpy(w.order_id, order_id);
    store_rc rc = run_write(e, &w);
    *out = w;
    return rc;
}

Test(store_integrity, reserve_cannot_take_the_next_order_id)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    char id[STORE_ID_MAX + 1];
    cr_assert_eq(place1(&e, "c-1", NULL, "A", 2, id, NULL), STORE_OK);

    /* the next ids are OrderService's: nothing is reserved under them */
    int64_t n;
    cr_assert(sscanf(id, "o-%" SCNd64, &n) == 1);
    char future[STORE_ID_MAX + 1];
    store_format_order_id(future, n + 1);
    store_write w;
    cr_assert_eq(public_reserve(&e, future, "A", 1, &w), STORE_PRECONDITION);
    cr_expect(strstr(w.msg, "does not exist") != NULL, "%s", w.msg);
    cr_assert_eq(reserved(&e, "A"), 2);

    /* the next order takes that id and succeeds */
    char next[STORE_ID_MAX + 1];
    cr_assert_eq(place1(&e, "c-1", NULL, "A", 1, next, NULL), STORE_OK);
    cr_assert_str_eq(next, future);
    cr_assert_eq(reserved(&e, "A"), 3);

    /* a live order's id: its reservation, unchanged, nothing more taken */
    cr_assert_eq(public_reserve(&e, id, "A", 5, &w), STORE_OK, "%s", w.msg);
    cr_assert(w.existed);
    cr_assert_not_null(w.result);
    cr_assert_eq(w.result->nlines, 1);
    cr_assert_eq(w.result->lines[0].quantity, 2);
    store_order_free(w.result);
    cr_assert_eq(reserved(&e, "A"), 3);

    /* a cancelled order's id (its stock went back with the cancel): refused */
    store_write c = {.op = STORE_ORDER_SET_STATUS,
                     .at = 5000,
                     .to_status = STORE_ORDER_CANCELLED,
                     .allowed_from = CANCELLABLE,
                     .with_stock = true};
    strcpy(c.order_id, id);
    cr_assert_eq(run_write(&e, &c), STORE_OK, "%s", c.msg);
    store_order_free(c.result);
    cr_assert_eq(reserved(&e, "A"), 1);
    cr_assert_eq(public_reserve(&e, id, "A", 1, &w), STORE_PRECONDITION);
    cr_assert_eq(reserved(&e, "A"), 1);

    /* ids not of the OrderService's form reserve as before */
    cr_assert_eq(public_reserve(&e, "hold-7", "A", 4, &w), STORE_OK, "%s", w.msg);
    cr_assert(!w.existed);
    cr_assert_eq(reserved(&e, "A"), 5);
    /* "o-01" is not canonical, so it never names an order */
    cr_assert_eq(public_reserve(&e, "o-01", "A", 1, &w), STORE_OK, "%s", w.msg);
    cr_assert_eq(reserved(&e, "A"), 6);
    tenv_close(&e);
}

Test(store_integrity, release_cannot_free_a_live_order)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 1), STORE_OK);
    char id[STORE_ID_MAX + 1];
    cr_assert_eq(place1(&e, "c-1", NULL, "A", 1, id, NULL), STORE_OK);
    store_write w;
    cr_assert_eq(public_release(&e, id, &w), STORE_PRECONDITION);
    cr_expect(strstr(w.msg, "is PENDING; cancel it") != NULL, "%s", w.msg);
    cr_assert(!w.existed);
    cr_assert_eq(reserved(&e, "A"), 1);
    /* so the last unit cannot be sold twice */
    cr_assert_eq(place1(&e, "c-2", NULL, "A", 1, NULL, NULL), STORE_PRECONDITION);

    /* confirmed, shipped, delivered: still not releasable */
    cr_assert_eq(set_status(&e, id, STORE_ORDER_CONFIRMED, BIT(STORE_ORDER_PENDING), 0, NULL),
                 STORE_OK);
    cr_assert_eq(public_release(&e, id, &w), STORE_PRECONDITION);
    cr_assert_eq(reserved(&e, "A"), 1);

    /* unknown order ids and other ids: OK, nothing to release */
    cr_assert_eq(public_release(&e, "o-999", &w), STORE_OK);
    cr_assert(!w.existed);
    cr_assert_eq(public_release(&e, "hold-1", &w), STORE_OK);
    cr_assert(!w.existed);

    /* without orders_local (split mode's inventory) the id is just a key */
    store_write s = {.op = STORE_RELEASE, .at = 7000};
    strcpy(s.order_id, id);
    cr_assert_eq(run_write(&e, &s), STORE_OK);
    cr_assert(s.existed);
    cr_assert_eq(reserved(&e, "A"), 0);
    tenv_close(&e);
}

Test(store_integrity, place_skips_an_id_that_names_a_reservation)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    /* what an older oms let a public Reserve do: take the next order id */
    char next[STORE_ID_MAX + 1];
    store_format_order_id(next, 1);
    cr_assert_eq(reserve1(&e, next, "A", 3), STORE_OK);
    int64_t seq = store_last_seq(e.st);
    store_write w;
    char id[STORE_ID_MAX + 1];
    cr_assert_eq(place1(&e, "c-1", NULL, "A", 1, id, &w), STORE_EXISTS);
    cr_assert_str_eq(id, next);
    cr_assert_null(w.result, "no order to answer with: the caller takes a fresh id");
    cr_expect(strstr(w.msg, "names a reservation") != NULL, "%s", w.msg);
    cr_assert_eq(store_last_seq(e.st), seq, "no event");
    cr_assert_eq(reserved(&e, "A"), 3, "nothing more reserved");
    store_order *o = NULL;
    cr_assert_eq(store_get_order(e.sl, next, &o), STORE_NOT_FOUND);
    /* the next id works */
    cr_assert_eq(place1(&e, "c-1", NULL, "A", 1, id, NULL), STORE_OK);
    cr_assert_eq(reserved(&e, "A"), 4);
    tenv_close(&e);
}

Test(store_integrity, idempotency_keys_are_per_customer)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    char a[STORE_ID_MAX + 1], b[STORE_ID_MAX + 1];
    cr_assert_eq(place1(&e, "c-1", "k", "A", 1, a, NULL), STORE_OK);
    cr_assert_eq(place1(&e, "c-2", "k", "A", 2, b, NULL), STORE_OK, "another customer's key");
    cr_assert_str_neq(a, b);
    store_write w;
    cr_assert_eq(place1(&e, "c-2", "k", "A", 2, NULL, &w), STORE_EXISTS);
    cr_assert_not_null(w.result);
    cr_assert_str_eq(w.result->id, b);
    cr_assert_str_eq(w.result->customer_id, "c-2");
    store_order_free(w.result);
    store_order *o = NULL;
    cr_assert_eq(store_find_order_by_key(e.sl, "c-1", "k", &o), STORE_OK);
    cr_assert_str_eq(o->id, a);
    store_order_free(o);
    cr_assert_eq(store_find_order_by_key(e.sl, "c-3", "k", &o), STORE_NOT_FOUND);
    /* split mode's ORDER_CREATE keys the same way */
    cr_assert_eq(create_order(&e, "c-3", "k", 100, NULL, NULL), STORE_OK);
    store_order *ex = NULL;
    cr_assert_eq(create_order(&e, "c-3", "k", 100, NULL, &ex), STORE_EXISTS);
    cr_assert_not_null(ex);
    cr_assert_str_eq(ex->customer_id, "c-3");
    store_order_free(ex);
    tenv_close(&e);
}

Test(store_integrity, keys_forget_frees_old_keys_only)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(create_order(&e, "c-1", "old", 1000, NULL, NULL), STORE_OK);
    cr_assert_eq(create_order(&e, "c-1", "new", 9000, NULL, NULL), STORE_OK);
    store_write w = {.op = STORE_KEYS_FORGET, .at = 10000, .delta = 5000};
    cr_assert_eq(run_write(&e, &w), STORE_OK, "%s", w.msg);
    cr_assert_eq(w.delta, 1);
    store_order *o = NULL;
    cr_assert_eq(store_find_order_by_key(e.sl, "c-1", "old", &o), STORE_NOT_FOUND);
    cr_assert_eq(store_find_order_by_key(e.sl, "c-1", "new", &o), STORE_OK);
    store_order_free(o);
    /* the forgotten key makes a new order; the old order stays */
    cr_assert_eq(create_order(&e, "c-1", "old", 11000, NULL, NULL), STORE_OK);
    w = (store_write){.op = STORE_KEYS_FORGET, .at = 12000, .delta = 5000};
    cr_assert_eq(run_write(&e, &w), STORE_OK);
    cr_assert_eq(w.delta, 0, "nothing older left");
    tenv_close(&e);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The writer forgets keys past key_retention_ms by itself, also when no
 * write comes. Waits for the background pass (polls the read side, bounded
 * by 10 s): the pass is due a quarter of the retention after the last one. */
Test(store_integrity, retention_forgets_in_the_background)
{
    tenv e;
    tenv_mkdir(&e);
    store_config cfg;
    store_config_init(&cfg);
    cfg.key_retention_ms = 400;
    tenv_start(&e, &cfg);
    int64_t now = wall_ms();
    cr_assert_eq(create_order(&e, "c-1", "stale", now - 60000, NULL, NULL), STORE_OK);
    cr_assert_eq(create_order(&e, "c-1", "fresh", now + 600000, NULL, NULL), STORE_OK);
    store_order *o = NULL;
    store_rc rc = STORE_OK;
    for (int i = 0; i < 1000 && rc == STORE_OK; i++) {
        store_order_free(o);
        o = NULL;
        rc = store_find_order_by_key(e.sl, "c-1", "stale", &o);
        if (rc == STORE_OK)
            nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    cr_assert_eq(rc, STORE_NOT_FOUND, "the stale key was not forgotten within 10 s");
    cr_assert_eq(store_find_order_by_key(e.sl, "c-1", "fresh", &o), STORE_OK);
    store_order_free(o);
    tenv_close(&e);
}
