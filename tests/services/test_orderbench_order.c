/* OrderBench order logic without calls: validation, totals with overflow,
 * ids, the stored copy, WatchOrders statuses. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "services/orderbench/orderbench_int.h"

typedef Oms__Bench__V1__LineItem line_item;
typedef Oms__Bench__V1__CreateOrderRequest create_req;

/* A request over caller-owned items (up to 4). */
typedef struct req_fixture {
    create_req req;
    line_item items[4];
    line_item *ptrs[4];
} req_fixture;

static create_req *make_req(req_fixture *f, const char *customer, size_t n, const int32_t *qty,
                            const int64_t *price)
{
    oms__bench__v1__create_order_request__init(&f->req);
    f->req.customer_id = (char *)customer;
    for (size_t i = 0; i < n; i++) {
        oms__bench__v1__line_item__init(&f->items[i]);
        f->items[i].sku = (char *)"sku";
        f->items[i].quantity = qty[i];
        f->items[i].unit_price_cents = price[i];
        f->ptrs[i] = &f->items[i];
    }
    f->req.n_items = n;
    f->req.items = n ? f->ptrs : NULL;
    return &f->req;
}

Test(orderbench_order, total_is_sum_of_lines)
{
    req_fixture f;
    int64_t total = -1;
    const char *why = NULL;
    const int32_t q[] = {2, 3, 1};
    const int64_t p[] = {150, 1000, -25};
    cr_assert_eq(orderbench_order_check(make_req(&f, "c-1", 3, q, p), &total, &why), RPC_OK);
    cr_assert_eq(total, 2 * 150 + 3 * 1000 - 25);

    cr_assert_eq(orderbench_order_check(make_req(&f, "c-1", 0, NULL, NULL), &total, &why), RPC_OK);
    cr_assert_eq(total, 0);
}

Test(orderbench_order, rejects_empty_customer_and_bad_quantity)
{
    req_fixture f;
    int64_t total;
    const char *why = NULL;
    const int32_t ok[] = {1};
    const int32_t zero[] = {1, 0};
    const int32_t neg[] = {-3};
    const int64_t p[] = {10, 10};
    cr_assert_eq(orderbench_order_check(make_req(&f, "", 1, ok, p), &total, &why),
                 RPC_INVALID_ARGUMENT);
    cr_assert_not_null(why);
    cr_assert_eq(orderbench_order_check(make_req(&f, "c", 2, zero, p), &total, &why),
                 RPC_INVALID_ARGUMENT);
    cr_assert_eq(orderbench_order_check(make_req(&f, "c", 1, neg, p), &total, &why),
                 RPC_INVALID_ARGUMENT);
}

Test(orderbench_order, total_overflow_is_invalid_argument)
{
    req_fixture f;
    int64_t total;
    const char *why = NULL;
    const int32_t q1[] = {INT32_MAX};
    const int64_t p1[] = {INT64_MAX / 2};
    cr_assert_eq(orderbench_order_check(make_req(&f, "c", 1, q1, p1), &total, &why),
                 RPC_INVALID_ARGUMENT);
    cr_assert_str_eq(why, "total_cents overflows int64");

    /* each line fits, the sum does not */
    const int32_t q2[] = {1, 1};
    const int64_t p2[] = {INT64_MAX, 1};
    cr_assert_eq(orderbench_order_check(make_req(&f, "c", 2, q2, p2), &total, &why),
                 RPC_INVALID_ARGUMENT);

    const int64_t p3[] = {INT64_MIN, -1};
    cr_assert_eq(orderbench_order_check(make_req(&f, "c", 2, q2, p3), &total, &why),
                 RPC_INVALID_ARGUMENT);

    /* right at the edge is fine */
    const int64_t p4[] = {INT64_MAX - 1, 1};
    cr_assert_eq(orderbench_order_check(make_req(&f, "c", 2, q2, p4), &total, &why), RPC_OK);
    cr_assert_eq(total, INT64_MAX);
}

Test(orderbench_order, ids)
{
    char id[BENCH_ID_MAX];
    cr_assert_eq(orderbench_order_id(id, 1), 3);
    cr_assert_str_eq(id, "o-1");
    cr_assert_eq(orderbench_order_id(id, 0), 3);
    cr_assert_str_eq(id, "o-0");
    orderbench_order_id(id, 1234567890);
    cr_assert_str_eq(id, "o-1234567890");
    cr_assert_eq(orderbench_order_id(id, UINT64_MAX), 22);
    cr_assert_str_eq(id, "o-18446744073709551615");
}

Test(orderbench_order, create_numbers_stores_and_returns_the_order)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    req_fixture f;
    const int32_t q[] = {2, 1};
    const int64_t p[] = {500, 99};
    create_req *req = make_req(&f, "cust-42", 2, q, p);

    Oms__Bench__V1__Order order;
    char id[BENCH_ID_MAX];
    const char *why = NULL;
    cr_assert_eq(orderbench_order_create(&s, req, 1700000000123, &order, id, &why), RPC_OK);
    cr_assert_str_eq(order.id, "o-1");
    cr_assert_str_eq(order.customer_id, "cust-42");
    cr_assert_eq(order.n_items, 2);
    cr_assert_eq(order.total_cents, 1099);
    cr_assert_eq(order.status, OMS__BENCH__V1__ORDER_STATUS__ORDER_STATUS_PENDING);
    cr_assert_eq(order.created_at_unix_ms, 1700000000123);

    cr_assert_eq(orderbench_order_create(&s, req, 1, &order, id, &why), RPC_OK);
    cr_assert_str_eq(id, "o-2");
    cr_assert_eq(orderbench_store_count(&s), 2);

    /* the stored copy unpacks to the returned order */
    uint8_t buf[256];
    int32_t status;
    size_t len;
    cr_assert(orderbench_store_get(&s, "o-1", 3, &status, buf, sizeof buf, &len));
    cr_assert_eq(status, OMS__BENCH__V1__ORDER_STATUS__ORDER_STATUS_PENDING);
    cr_assert_leq(len, sizeof buf);
    Oms__Bench__V1__Order *got = oms__bench__v1__order__unpack(NULL, len, buf);
    cr_assert_not_null(got);
    cr_assert_str_eq(got->id, "o-1");
    cr_assert_str_eq(got->customer_id, "cust-42");
    cr_assert_eq(got->n_items, 2);
    cr_assert_str_eq(got->items[0]->sku, "sku");
    cr_assert_eq(got->items[0]->quantity, 2);
    cr_assert_eq(got->items[1]->unit_price_cents, 99);
    cr_assert_eq(got->total_cents, 1099);
    cr_assert_eq(got->created_at_unix_ms, 1700000000123);
    oms__bench__v1__order__free_unpacked(got, NULL);

    /* an invalid request takes no id and stores nothing */
    req_fixture g;
    const int32_t bad[] = {0};
    cr_assert_eq(orderbench_order_create(&s, make_req(&g, "c", 1, bad, p), 1, &order, id, &why),
                 RPC_INVALID_ARGUMENT);
    cr_assert_eq(orderbench_order_create(&s, req, 1, &order, id, &why), RPC_OK);
    cr_assert_str_eq(id, "o-3");
    cr_assert_eq(orderbench_store_count(&s), 3);
    orderbench_store_dispose(&s);
}

Test(orderbench_order, create_large_order_packs_off_stack)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    req_fixture f;
    static char sku[4000];
    memset(sku, 's', sizeof sku - 1);
    const int32_t q[] = {1};
    const int64_t p[] = {1};
    create_req *req = make_req(&f, "c", 1, q, p);
    f.items[0].sku = sku;
    Oms__Bench__V1__Order order;
    char id[BENCH_ID_MAX];
    const char *why;
    cr_assert_eq(orderbench_order_create(&s, req, 5, &order, id, &why), RPC_OK);
    int32_t status;
    size_t len;
    cr_assert(orderbench_store_get(&s, id, strlen(id), &status, NULL, 0, &len));
    cr_assert_eq(len, oms__bench__v1__order__get_packed_size(&order));
    cr_assert_gt(len, 4000);
    orderbench_store_dispose(&s);
}

Test(orderbench_order, watch_statuses_cycle_pending_to_cancelled)
{
    const int expect[] = {1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1};
    for (int k = 1; k <= 11; k++)
        cr_assert_eq(orderbench_watch_status(k), expect[k - 1], "k=%d", k);
    cr_assert_eq(orderbench_watch_status(INT32_MAX), 1 + (INT32_MAX - 1) % 5);
}
