/* ORDER_PLACE (reservation + order + event in one savepoint) and the
 * with-stock cancel of ORDER_SET_STATUS: the all-in-one single-transaction
 * ops. */
#include <stdint.h>

#include "store_test_util.h"

#define BIT(s)      (1u << (s))
#define CANCELLABLE (BIT(STORE_ORDER_PENDING) | BIT(STORE_ORDER_CONFIRMED))

/* A new order (fresh id) of n lines "sku:qty" pairs. */
static store_order *new_order(tenv *e, const char *key, size_t n, const char *const *skus,
                              const int64_t *qty)
{
    store_order *o = store_order_new(n);
    cr_assert_not_null(o);
    store_next_order_id(e->st, o->id);
    strcpy(o->customer_id, "c-1");
    strcpy(o->idempotency_key, key ? key : "");
    for (size_t i = 0; i < n; i++) {
        strcpy(o->lines[i].sku, skus[i]);
        o->lines[i].quantity = qty[i];
        o->lines[i].unit_price_cents = 1; /* ignored: the store prices */
    }
    o->total_cents = 7; /* ignored */
    o->created_at = 4000;
    return o;
}

static store_rc place(tenv *e, const store_order *o, store_write *out)
{
    store_write w = {.op = STORE_ORDER_PLACE, .order = o, .at = o->created_at};
    store_rc rc = run_write(e, &w);
    *out = w;
    return rc;
}

static int64_t reserved(tenv *e, const char *sku)
{
    store_product p;
    cr_assert_eq(store_get_product(e->sl, sku, &p), STORE_OK);
    return p.reserved;
}

static int count_orders(tenv *e)
{
    store_order *page[64];
    long n = store_list_orders(e->sl, &(store_order_filter){0}, "", page, 64);
    cr_assert_geq(n, 0);
    for (long i = 0; i < n; i++)
        store_order_free(page[i]);
    return (int)n;
}

Test(store_place, prices_totals_reserves_and_creates_in_one_commit)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 150, 10), STORE_OK);
    cr_assert_eq(add_product(&e, "B", 1000, 5), STORE_OK);
    store_stats s0;
    store_get_stats(e.st, &s0);

    const char *skus[] = {"A", "B"};
    int64_t qty[] = {2, 3};
    store_order *o = new_order(&e, "k-1", 2, skus, qty);
    store_write w;
    cr_assert_eq(place(&e, o, &w), STORE_OK, "%s", w.msg);
    store_stats s1;
    store_get_stats(e.st, &s1);
    cr_assert_eq(s1.commits - s0.commits, 1, "one commit per order");
    cr_assert_eq(w.event_seq, 1);
    cr_assert_not_null(w.result);
    cr_assert_str_eq(w.result->id, o->id);
    cr_assert_str_eq(w.result->idempotency_key, "k-1");
    cr_assert_eq(w.result->status, STORE_ORDER_PENDING);
    cr_assert_eq(w.result->version, 1);
    cr_assert_eq(w.result->nlines, 2);
    cr_assert_eq(w.result->lines[0].unit_price_cents, 150);
    cr_assert_eq(w.result->lines[1].unit_price_cents, 1000);
    cr_assert_eq(w.result->total_cents, 2 * 150 + 3 * 1000);
    cr_assert_eq(w.result->created_at, 4000);
    cr_assert_eq(w.result->updated_at, 4000);
    store_order_free(w.result);

    cr_assert_eq(reserved(&e, "A"), 2);
    cr_assert_eq(reserved(&e, "B"), 3);
    store_order *g = NULL;
    cr_assert_eq(store_get_order(e.sl, o->id, &g), STORE_OK);
    cr_assert_eq(g->total_cents, 3300);
    cr_assert_eq(g->lines[1].unit_price_cents, 1000);
    store_order_free(g);
    store_event ev[2];
    cr_assert_eq(store_read_events(e.sl, 1, NULL, ev, 2), 1);
    cr_assert_str_eq(ev[0].order_id, o->id);
    cr_assert_eq(ev[0].status, STORE_ORDER_PENDING);

    /* the reservation is RESERVE's: a repeat returns it, RELEASE frees it */
    store_line l = {.sku = "B", .quantity = 1};
    store_write r = {.op = STORE_RESERVE, .at = 4001, .lines = &l, .nlines = 1};
    strcpy(r.order_id, o->id);
    cr_assert_eq(run_write(&e, &r), STORE_OK, "%s", r.msg);
    cr_assert(r.existed);
    cr_assert_not_null(r.result);
    cr_assert_eq(r.result->nlines, 2);
    cr_assert_eq(r.result->lines[1].quantity, 3);
    store_order_free(r.result);
    store_write rel = {.op = STORE_RELEASE, .at = 4002};
    strcpy(rel.order_id, o->id);
    cr_assert_eq(run_write(&e, &rel), STORE_OK);
    cr_assert(rel.existed);
    cr_assert_eq(reserved(&e, "A"), 0);
    cr_assert_eq(reserved(&e, "B"), 0);
    store_order_free(o);
    tenv_close(&e);
}

Test(store_place, all_or_nothing)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 150, 10), STORE_OK);
    cr_assert_eq(add_product(&e, "B", 1000, 2), STORE_OK);

    const char *skus[] = {"A", "B"};
    int64_t qty[] = {4, 3};
    store_order *o = new_order(&e, "k-short", 2, skus, qty);
    store_write w;
    cr_assert_eq(place(&e, o, &w), STORE_PRECONDITION);
    cr_assert_str_eq(w.msg, "sku B: 2 available, 3 requested");
    cr_assert_null(w.result);
    cr_assert_eq(w.event_seq, 0);
    cr_assert_eq(reserved(&e, "A"), 0, "A's reservation rolled back with B's shortage");
    cr_assert_eq(reserved(&e, "B"), 0);
    cr_assert_eq(store_last_seq(e.st), 0, "no seq taken");
    cr_assert_eq(count_orders(&e), 0);
    store_order *g = NULL;
    cr_assert_eq(store_find_order_by_key(e.sl, o->customer_id, "k-short", &g), STORE_NOT_FOUND);
    store_write rel = {.op = STORE_RELEASE, .at = 4002};
    strcpy(rel.order_id, o->id);
    cr_assert_eq(run_write(&e, &rel), STORE_OK);
    cr_assert_not(rel.existed, "no reservation left behind");
    store_order_free(o);

    /* an unknown SKU */
    const char *ghost[] = {"A", "GHOST"};
    int64_t one[] = {1, 1};
    o = new_order(&e, NULL, 2, ghost, one);
    cr_assert_eq(place(&e, o, &w), STORE_NOT_FOUND);
    cr_assert_str_eq(w.msg, "sku GHOST not found");
    cr_assert_eq(reserved(&e, "A"), 0);
    store_order_free(o);

    /* bad input */
    o = new_order(&e, NULL, 1, skus, (int64_t[]){0});
    cr_assert_eq(place(&e, o, &w), STORE_INVALID);
    store_order_free(o);
    o = store_order_new(0);
    store_next_order_id(e.st, o->id);
    strcpy(o->customer_id, "c-1");
    cr_assert_eq(place(&e, o, &w), STORE_INVALID);
    store_order_free(o);

    /* the next order gets seq 1: nothing was consumed */
    o = new_order(&e, NULL, 2, skus, (int64_t[]){10, 2});
    cr_assert_eq(place(&e, o, &w), STORE_OK, "%s", w.msg);
    cr_assert_eq(w.event_seq, 1);
    store_order_free(w.result);
    cr_assert_eq(reserved(&e, "A"), 10);
    cr_assert_eq(reserved(&e, "B"), 2);
    store_order_free(o);
    tenv_close(&e);
}

Test(store_place, idempotency_key_exists_reserves_nothing)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 150, 3), STORE_OK);
    const char *skus[] = {"A"};
    store_order *o1 = new_order(&e, "k-1", 1, skus, (int64_t[]){2});
    store_write w;
    cr_assert_eq(place(&e, o1, &w), STORE_OK, "%s", w.msg);
    store_order_free(w.result);

    /* the same key, enough stock: EXISTS with the first order */
    store_order *o2 = new_order(&e, "k-1", 1, skus, (int64_t[]){1});
    cr_assert_eq(place(&e, o2, &w), STORE_EXISTS);
    cr_assert_not_null(w.result);
    cr_assert_str_eq(w.result->id, o1->id);
    cr_assert_eq(w.result->lines[0].quantity, 2);
    store_order_free(w.result);
    cr_assert_eq(reserved(&e, "A"), 2, "nothing reserved for the repeat");
    cr_assert_eq(store_last_seq(e.st), 1);

    /* the same key, stock gone: still EXISTS, not PRECONDITION */
    store_order *o3 = new_order(&e, "k-1", 1, skus, (int64_t[]){5});
    cr_assert_eq(place(&e, o3, &w), STORE_EXISTS, "%s", w.msg);
    cr_assert_not_null(w.result);
    cr_assert_str_eq(w.result->id, o1->id);
    store_order_free(w.result);
    cr_assert_eq(reserved(&e, "A"), 2);
    cr_assert_eq(store_last_seq(e.st), 1);
    cr_assert_eq(count_orders(&e), 1);

    /* the same order id again (a caller bug): EXISTS, nothing more reserved */
    cr_assert_eq(place(&e, o1, &w), STORE_EXISTS);
    store_order_free(w.result);
    cr_assert_eq(reserved(&e, "A"), 2);
    store_order_free(o1);
    store_order_free(o2);
    store_order_free(o3);
    tenv_close(&e);
}

Test(store_place, total_overflow_is_invalid)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "BIG", INT64_MAX / 2, 10), STORE_OK);
    cr_assert_eq(add_product(&e, "A", 1, 10), STORE_OK);
    const char *one[] = {"BIG"};
    store_order *o = new_order(&e, NULL, 1, one, (int64_t[]){3});
    store_write w;
    cr_assert_eq(place(&e, o, &w), STORE_INVALID);
    cr_assert(strstr(w.msg, "overflow"), "%s", w.msg);
    store_order_free(o);
    /* the sum overflows, not a line */
    const char *two[] = {"A", "BIG"};
    o = new_order(&e, NULL, 2, two, (int64_t[]){2, 2});
    cr_assert_eq(place(&e, o, &w), STORE_INVALID);
    cr_assert_eq(reserved(&e, "BIG"), 0);
    cr_assert_eq(reserved(&e, "A"), 0);
    cr_assert_eq(store_last_seq(e.st), 0);
    cr_assert_eq(count_orders(&e), 0);
    store_order_free(o);
    tenv_close(&e);
}

Test(store_place, cancel_with_stock_releases_in_the_same_transaction)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 150, 10), STORE_OK);
    cr_assert_eq(add_product(&e, "B", 20, 10), STORE_OK);
    const char *skus[] = {"A", "B"};
    store_order *o = new_order(&e, NULL, 2, skus, (int64_t[]){4, 1});
    store_write w;
    cr_assert_eq(place(&e, o, &w), STORE_OK, "%s", w.msg);
    store_order_free(w.result);

    /* a refused cancel (stale version) releases nothing */
    store_write c = {.op = STORE_ORDER_SET_STATUS,
                     .at = 5000,
                     .to_status = STORE_ORDER_CANCELLED,
                     .allowed_from = CANCELLABLE,
                     .expected_version = 7,
                     .with_stock = true};
    strcpy(c.order_id, o->id);
    cr_assert_eq(run_write(&e, &c), STORE_CONFLICT);
    cr_assert_eq(reserved(&e, "A"), 4);

    store_stats s0;
    store_get_stats(e.st, &s0);
    c.expected_version = 1;
    strcpy(c.reason, "no longer needed");
    cr_assert_eq(run_write(&e, &c), STORE_OK, "%s", c.msg);
    store_stats s1;
    store_get_stats(e.st, &s1);
    cr_assert_eq(s1.commits - s0.commits, 1);
    cr_assert(c.existed, "a reservation was released");
    cr_assert_eq(c.previous_status, STORE_ORDER_PENDING);
    cr_assert_eq(c.event_seq, 2);
    cr_assert_not_null(c.result);
    cr_assert_eq(c.result->status, STORE_ORDER_CANCELLED);
    cr_assert_str_eq(c.result->cancel_reason, "no longer needed");
    store_order_free(c.result);
    cr_assert_eq(reserved(&e, "A"), 0);
    cr_assert_eq(reserved(&e, "B"), 0);
    store_write rel = {.op = STORE_RELEASE, .at = 5001};
    strcpy(rel.order_id, o->id);
    cr_assert_eq(run_write(&e, &rel), STORE_OK);
    cr_assert_not(rel.existed, "already released by the cancel");
    store_order_free(o);

    /* with_stock on another move, or without it, leaves the reservation */
    o = new_order(&e, NULL, 1, skus, (int64_t[]){3});
    cr_assert_eq(place(&e, o, &w), STORE_OK, "%s", w.msg);
    store_order_free(w.result);
    store_write cf = {.op = STORE_ORDER_SET_STATUS,
                      .at = 5002,
                      .to_status = STORE_ORDER_CONFIRMED,
                      .allowed_from = BIT(STORE_ORDER_PENDING),
                      .with_stock = true};
    strcpy(cf.order_id, o->id);
    cr_assert_eq(run_write(&e, &cf), STORE_OK, "%s", cf.msg);
    store_order_free(cf.result);
    cr_assert_eq(reserved(&e, "A"), 3);
    cr_assert_eq(set_status(&e, o->id, STORE_ORDER_CANCELLED, CANCELLABLE, 0, NULL), STORE_OK);
    cr_assert_eq(reserved(&e, "A"), 3,
                 "a cancel without with_stock leaves the release to the caller");
    store_order_free(o);
    tenv_close(&e);
}

static void on_count(store_write *w)
{
    (*(int *)w->data)++;
}

/* Successes and failures of both ops in one batch: the seqs stay gap-free. */
Test(store_place, seq_gap_free_in_one_batch)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 10, 100), STORE_OK);
    cr_assert_eq(add_product(&e, "S", 10, 1), STORE_OK);
    cr_assert_eq(add_product(&e, "BIG", INT64_MAX / 2, 100), STORE_OK);
    const char *a[] = {"A"}, *as[] = {"A", "S"}, *big[] = {"BIG"};
    enum { N = 12 };
    store_order *os[N];
    store_write ws[N];
    int done = 0;
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0: /* OK */
            os[i] = new_order(&e, NULL, 1, a, (int64_t[]){1});
            break;
        case 1: /* short S (after A): PRECONDITION */
            os[i] = new_order(&e, NULL, 2, as, (int64_t[]){1, 5});
            break;
        case 2: /* overflow: INVALID */
            os[i] = new_order(&e, NULL, 1, big, (int64_t[]){4});
            break;
        default: /* the key of order 0: EXISTS */
            os[i] = new_order(&e, "dup", 1, a, (int64_t[]){1});
            break;
        }
        if (i == 0) /* orders 3, 7, 11 repeat its key */
            strcpy(os[i]->idempotency_key, "dup");
        ws[i] = (store_write){
            .op = STORE_ORDER_PLACE, .order = os[i], .at = 4000, .done = on_count, .data = &done};
    }
    for (int i = 0; i < N; i++)
        store_submit(e.sl, &ws[i]);
    while (done < N)
        uv_run(&e.loop, UV_RUN_ONCE);
    int64_t want = 1;
    for (int i = 0; i < N; i++) {
        static const store_rc exp[] = {STORE_OK, STORE_PRECONDITION, STORE_INVALID, STORE_EXISTS};
        store_rc rc = ws[i].rc;
        cr_assert_eq(rc, exp[i % 4], "order %d: %s %s", i, store_rc_name(rc), ws[i].msg);
        if (rc == STORE_OK)
            cr_assert_eq(ws[i].event_seq, want++, "order %d", i);
        else
            cr_assert_eq(ws[i].event_seq, 0);
        store_order_free(ws[i].result);
        store_order_free(os[i]);
    }
    cr_assert_eq(store_last_seq(e.st), want - 1);
    store_event ev[N];
    long n = store_read_events(e.sl, 1, NULL, ev, N);
    cr_assert_eq(n, want - 1);
    for (long i = 0; i < n; i++)
        cr_assert_eq(ev[i].seq, i + 1);
    cr_assert_eq(reserved(&e, "A"), want - 1);
    cr_assert_eq(reserved(&e, "S"), 0);
    cr_assert_eq(reserved(&e, "BIG"), 0);
    tenv_close(&e);
}
