/* Orders: creation, idempotency keys, status changes with CONFLICT and
 * PRECONDITION, events, and paged reads. */
#include "store_test_util.h"

#define BIT(s) (1u << (s))

Test(store_orders, create_and_get)
{
    tenv e;
    tenv_open(&e);
    store_order *o = store_order_new(2);
    store_next_order_id(e.st, o->id);
    cr_assert_str_eq(o->id, "o-1");
    strcpy(o->customer_id, "c-1");
    strcpy(o->lines[0].sku, "A");
    o->lines[0].quantity = 2;
    o->lines[0].unit_price_cents = 150;
    strcpy(o->lines[1].sku, "B");
    o->lines[1].quantity = 1;
    o->lines[1].unit_price_cents = 1000;
    o->total_cents = 1300;
    o->created_at = 1234;
    o->status = 99; /* ignored */
    store_write w = {.op = STORE_ORDER_CREATE, .order = o, .at = 1234};
    cr_assert_eq(run_write(&e, &w), STORE_OK, "%s", w.msg);
    cr_assert_eq(w.event_seq, 1);
    cr_assert_eq(store_last_seq(e.st), 1);

    store_order *g = NULL;
    cr_assert_eq(store_get_order(e.sl, "o-1", &g), STORE_OK);
    cr_assert_str_eq(g->id, "o-1");
    cr_assert_str_eq(g->customer_id, "c-1");
    cr_assert_str_eq(g->idempotency_key, "");
    cr_assert_eq(g->status, STORE_ORDER_PENDING);
    cr_assert_eq(g->version, 1);
    cr_assert_eq(g->total_cents, 1300);
    cr_assert_eq(g->created_at, 1234);
    cr_assert_eq(g->updated_at, 1234);
    cr_assert_eq(g->nlines, 2);
    cr_assert_str_eq(g->lines[1].sku, "B");
    cr_assert_eq(g->lines[1].quantity, 1);
    cr_assert_eq(g->lines[1].unit_price_cents, 1000);
    store_order_free(g);
    cr_assert_eq(store_get_order(e.sl, "o-2", &g), STORE_NOT_FOUND);
    cr_assert_null(g);
    cr_assert_eq(store_get_order(e.sl, "c-1", &g), STORE_NOT_FOUND);

    store_event ev[4];
    cr_assert_eq(store_read_events(e.sl, 1, NULL, ev, 4), 1);
    cr_assert_eq(ev[0].seq, 1);
    cr_assert_str_eq(ev[0].order_id, "o-1");
    cr_assert_str_eq(ev[0].customer_id, "c-1");
    cr_assert_eq(ev[0].status, STORE_ORDER_PENDING);
    cr_assert_eq(ev[0].previous_status, 0);
    cr_assert_eq(ev[0].version, 1);
    cr_assert_eq(ev[0].at, 1234);

    /* the same id twice */
    store_write again = {.op = STORE_ORDER_CREATE, .order = o, .at = 1234};
    cr_assert_eq(run_write(&e, &again), STORE_EXISTS);
    store_order_free(again.result);
    strcpy(o->id, "x-1");
    store_write bad = {.op = STORE_ORDER_CREATE, .order = o, .at = 1234};
    cr_assert_eq(run_write(&e, &bad), STORE_INVALID);
    cr_assert_eq(store_last_seq(e.st), 1);
    store_order_free(o);
    tenv_close(&e);
}

Test(store_orders, idempotency_key_returns_first_order)
{
    tenv e;
    tenv_open(&e);
    char first[STORE_ID_MAX + 1], second[STORE_ID_MAX + 1];
    cr_assert_eq(create_order(&e, "c-1", "key-1", 100, first, NULL), STORE_OK);
    store_order *ex = NULL;
    cr_assert_eq(create_order(&e, "c-1", "key-1", 200, second, &ex), STORE_EXISTS);
    cr_assert_str_neq(first, second);
    cr_assert_not_null(ex);
    cr_assert_str_eq(ex->id, first);
    cr_assert_eq(ex->created_at, 100);
    cr_assert_eq(ex->nlines, 1);
    store_order_free(ex);
    /* empty keys never collide */
    cr_assert_eq(create_order(&e, "c-1", "", 300, NULL, NULL), STORE_OK);
    cr_assert_eq(create_order(&e, "c-1", "", 300, NULL, NULL), STORE_OK);
    store_order *k = NULL;
    cr_assert_eq(store_find_order_by_key(e.sl, "c-1", "key-1", &k), STORE_OK);
    cr_assert_str_eq(k->id, first);
    store_order_free(k);
    cr_assert_eq(store_find_order_by_key(e.sl, "c-1", "key-2", &k), STORE_NOT_FOUND);
    cr_assert_eq(store_find_order_by_key(e.sl, "c-1", "", &k), STORE_NOT_FOUND);
    cr_assert_eq(store_last_seq(e.st), 3);
    tenv_close(&e);
}

Test(store_orders, status_changes)
{
    tenv e;
    tenv_open(&e);
    char id[STORE_ID_MAX + 1];
    cr_assert_eq(create_order(&e, "c-1", NULL, 100, id, NULL), STORE_OK);

    store_write w;
    cr_assert_eq(set_status(&e, id, STORE_ORDER_CONFIRMED, BIT(STORE_ORDER_PENDING), 1, &w),
                 STORE_OK, "%s", w.msg);
    cr_assert_eq(w.previous_status, STORE_ORDER_PENDING);
    cr_assert_eq(w.event_seq, 2);
    cr_assert_not_null(w.result);
    cr_assert_eq(w.result->status, STORE_ORDER_CONFIRMED);
    cr_assert_eq(w.result->version, 2);
    cr_assert_eq(w.result->updated_at, 5000);
    cr_assert_str_eq(w.result->cancel_reason, "");
    store_order_free(w.result);

    /* stale expected_version */
    cr_assert_eq(set_status(&e, id, STORE_ORDER_SHIPPED, BIT(STORE_ORDER_CONFIRMED), 1, &w),
                 STORE_CONFLICT);
    cr_assert_null(w.result);
    /* illegal transition */
    cr_assert_eq(set_status(&e, id, STORE_ORDER_DELIVERED, BIT(STORE_ORDER_SHIPPED), 0, &w),
                 STORE_PRECONDITION);
    cr_assert_str_eq(w.msg, "order o-1 is CONFIRMED; cannot become DELIVERED");
    cr_assert_null(w.result);
    /* unknown order */
    cr_assert_eq(set_status(&e, "o-77", STORE_ORDER_SHIPPED, ~0u, 0, NULL), STORE_NOT_FOUND);
    cr_assert_eq(set_status(&e, "bogus", STORE_ORDER_SHIPPED, ~0u, 0, NULL), STORE_NOT_FOUND);

    cr_assert_eq(set_status(&e, id, STORE_ORDER_CANCELLED,
                            BIT(STORE_ORDER_PENDING) | BIT(STORE_ORDER_CONFIRMED), 0, &w),
                 STORE_OK);
    cr_assert_eq(w.previous_status, STORE_ORDER_CONFIRMED);
    cr_assert_str_eq(w.result->cancel_reason, "changed my mind");
    cr_assert_eq(w.event_seq, 3);
    store_order_free(w.result);

    store_order *g;
    cr_assert_eq(store_get_order(e.sl, id, &g), STORE_OK);
    cr_assert_eq(g->status, STORE_ORDER_CANCELLED);
    cr_assert_eq(g->version, 3);
    cr_assert_str_eq(g->cancel_reason, "changed my mind");
    store_order_free(g);

    store_event ev[8];
    cr_assert_eq(store_read_events(e.sl, 0, id, ev, 8), 3);
    cr_assert_eq(ev[2].previous_status, STORE_ORDER_CONFIRMED);
    cr_assert_eq(ev[2].status, STORE_ORDER_CANCELLED);
    cr_assert_eq(ev[2].version, 3);
    cr_assert_eq(store_last_seq(e.st), 3);
    tenv_close(&e);
}

Test(store_orders, events_by_range_and_by_order)
{
    tenv e;
    tenv_open(&e);
    char a[STORE_ID_MAX + 1], b[STORE_ID_MAX + 1];
    cr_assert_eq(create_order(&e, "c-1", NULL, 1, a, NULL), STORE_OK);
    cr_assert_eq(create_order(&e, "c-2", NULL, 2, b, NULL), STORE_OK);
    cr_assert_eq(set_status(&e, a, STORE_ORDER_CONFIRMED, ~0u, 0, NULL), STORE_OK);
    cr_assert_eq(set_status(&e, b, STORE_ORDER_CONFIRMED, ~0u, 0, NULL), STORE_OK);
    cr_assert_eq(set_status(&e, a, STORE_ORDER_SHIPPED, ~0u, 0, NULL), STORE_OK);

    store_event ev[8];
    cr_assert_eq(store_read_events(e.sl, 0, NULL, ev, 8), 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ev[i].seq, i + 1);
    cr_assert_eq(store_read_events(e.sl, 3, NULL, ev, 2), 2);
    cr_assert_eq(ev[0].seq, 3);
    cr_assert_eq(ev[1].seq, 4);
    cr_assert_eq(store_read_events(e.sl, 6, NULL, ev, 8), 0);

    cr_assert_eq(store_read_events(e.sl, 0, a, ev, 8), 3);
    cr_assert_eq(ev[0].seq, 1);
    cr_assert_eq(ev[1].seq, 3);
    cr_assert_eq(ev[2].seq, 5);
    cr_assert_eq(store_read_events(e.sl, 2, a, ev, 1), 1);
    cr_assert_eq(ev[0].seq, 3);
    cr_assert_eq(store_read_events(e.sl, 0, b, ev, 8), 2);
    cr_assert_str_eq(ev[1].customer_id, "c-2");
    cr_assert_eq(store_read_events(e.sl, 0, "o-99", ev, 8), 0);
    cr_assert_eq(store_read_events(e.sl, 0, "nope", ev, 8), 0);
    tenv_close(&e);
}

static long page_all(tenv *e, const store_order_filter *f, size_t limit, char ids[][16], size_t max)
{
    char after[STORE_ID_MAX + 1] = "";
    size_t total = 0;
    store_order *page[16];
    for (;;) {
        long n = store_list_orders(e->sl, f, after, page, limit);
        cr_assert_geq(n, 0);
        for (long i = 0; i < n; i++) {
            cr_assert_lt(total, max);
            strcpy(ids[total++], page[i]->id);
            strcpy(after, page[i]->id);
            store_order_free(page[i]);
        }
        if ((size_t)n < limit)
            return (long)total;
    }
}

Test(store_orders, list_orders_paging_and_filters)
{
    tenv e;
    tenv_open(&e);
    /* 25 orders: customers c-1/c-2 alternating, created at 100 * i; every
     * third confirmed */
    char ids[25][STORE_ID_MAX + 1];
    for (int i = 0; i < 25; i++) {
        cr_assert_eq(create_order(&e, i % 2 ? "c-2" : "c-1", NULL, 100 * (i + 1), ids[i], NULL),
                     STORE_OK);
        if (i % 3 == 0)
            cr_assert_eq(set_status(&e, ids[i], STORE_ORDER_CONFIRMED, ~0u, 0, NULL), STORE_OK);
    }
    char got[32][16];
    cr_assert_eq(page_all(&e, NULL, 4, got, 32), 25);
    for (int i = 0; i < 25; i++)
        cr_assert_str_eq(got[i], ids[i]);
    /* numeric order: o-10 after o-9 */
    cr_assert_str_eq(got[9], "o-10");

    store_order_filter f = {.customer_id = "c-2"};
    cr_assert_eq(page_all(&e, &f, 5, got, 32), 12);
    cr_assert_str_eq(got[0], "o-2");
    cr_assert_str_eq(got[11], "o-24");

    store_order_filter s = {.status = STORE_ORDER_CONFIRMED};
    cr_assert_eq(page_all(&e, &s, 3, got, 32), 9);
    cr_assert_str_eq(got[1], "o-4");

    store_order_filter cs = {.customer_id = "c-1", .status = STORE_ORDER_CONFIRMED};
    cr_assert_eq(page_all(&e, &cs, 2, got, 32), 5); /* i = 0, 6, 12, 18, 24 */
    cr_assert_str_eq(got[4], "o-25");

    store_order_filter t = {.created_from = 500, .created_to = 1000};
    cr_assert_eq(page_all(&e, &t, 2, got, 32), 5); /* created 500..900 */
    cr_assert_str_eq(got[0], "o-5");
    cr_assert_str_eq(got[4], "o-9");

    store_order_filter from = {.created_from = 2400};
    cr_assert_eq(page_all(&e, &from, 16, got, 32), 2);
    store_order_filter later = {.created_from = 99999};
    cr_assert_eq(page_all(&e, &later, 16, got, 32), 0);
    store_order_filter upto = {.created_to = 301};
    cr_assert_eq(page_all(&e, &upto, 1, got, 32), 3);
    cr_assert_str_eq(got[2], "o-3");
    store_order_filter ct = {.customer_id = "c-2", .created_from = 1000, .created_to = 1500};
    cr_assert_eq(page_all(&e, &ct, 1, got, 32), 3); /* o-10, o-12, o-14 */
    cr_assert_str_eq(got[0], "o-10");
    cr_assert_str_eq(got[2], "o-14");
    store_order_filter nobody = {.customer_id = "c-3"};
    cr_assert_eq(page_all(&e, &nobody, 16, got, 32), 0);

    store_order *page[4];
    cr_assert_eq(store_list_orders(e.sl, NULL, "garbage", page, 4), -(long)STORE_INVALID);
    cr_assert_eq(store_list_orders(e.sl, NULL, "o-25", page, 4), 0);
    tenv_close(&e);
}

Test(store_orders, list_customers_and_products)
{
    tenv e;
    tenv_open(&e);
    for (int i = 0; i < 12; i++) {
        char name[32], email[64];
        snprintf(name, sizeof name, "n%d", i);
        snprintf(email, sizeof email, "u%d@example.com", i);
        cr_assert_eq(add_customer(&e, name, email, NULL), STORE_OK);
    }
    store_customer cs[5];
    char after[STORE_ID_MAX + 1] = "";
    int total = 0;
    for (;;) {
        long n = store_list_customers(e.sl, after, cs, 5);
        cr_assert_geq(n, 0);
        for (long i = 0; i < n; i++) {
            char want[16];
            snprintf(want, sizeof want, "c-%d", ++total);
            cr_assert_str_eq(cs[i].id, want);
        }
        if (n < 5)
            break;
        strcpy(after, cs[n - 1].id);
    }
    cr_assert_eq(total, 12);
    cr_assert_eq(store_list_customers(e.sl, "zzz", cs, 5), -(long)STORE_INVALID);

    const char *skus[] = {"B-2", "A-1", "C-3", "A-10", "B-1"};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(add_product(&e, skus[i], 100 + i, i), STORE_OK);
    store_product ps[2];
    const char *want[] = {"A-1", "A-10", "B-1", "B-2", "C-3"};
    char asku[STORE_SKU_MAX + 1] = "";
    int k = 0;
    for (;;) {
        long n = store_list_products(e.sl, asku, ps, 2);
        cr_assert_geq(n, 0);
        for (long i = 0; i < n; i++)
            cr_assert_str_eq(ps[i].sku, want[k++]);
        if (n < 2)
            break;
        strcpy(asku, ps[n - 1].sku);
    }
    cr_assert_eq(k, 5);
    cr_assert_eq(store_list_products(e.sl, NULL, ps, 2), 2);
    cr_assert_eq(ps[1].on_hand, 3); /* A-10 got stock 3 */
    tenv_close(&e);
}
