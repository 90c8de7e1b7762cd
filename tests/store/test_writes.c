/* Customer, product, stock, reserve and release writes: success and error
 * paths, all-or-nothing reservations, idempotency, bounded inputs. */
#include "store_test_util.h"

Test(store_writes, customer_create_get_and_duplicate_email)
{
    tenv e;
    tenv_open(&e);
    char a[STORE_ID_MAX + 1], b[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", a), STORE_OK);
    cr_assert_eq(add_customer(&e, "Bob", "bob@example.com", b), STORE_OK);
    cr_assert_str_eq(a, "c-1");
    cr_assert_str_eq(b, "c-2");

    store_write w = {.op = STORE_CUSTOMER_CREATE, .at = 7};
    strcpy(w.customer.name, "Ann again");
    strcpy(w.customer.email, "ann@example.com");
    cr_assert_eq(run_write(&e, &w), STORE_EXISTS);
    cr_assert(strstr(w.msg, "ann@example.com"), "msg: %s", w.msg);

    store_customer c;
    cr_assert_eq(store_get_customer(e.sl, "c-1", &c), STORE_OK);
    cr_assert_str_eq(c.id, "c-1");
    cr_assert_str_eq(c.name, "Ann");
    cr_assert_eq(c.status, STORE_CUSTOMER_ACTIVE);
    cr_assert_eq(c.created_at, 1000);
    cr_assert_eq(store_get_customer(e.sl, "c-3", &c), STORE_NOT_FOUND);
    cr_assert_eq(store_get_customer(e.sl, "x-1", &c), STORE_NOT_FOUND);
    cr_assert_eq(store_get_customer(e.sl, "c-01", &c), STORE_NOT_FOUND);
    cr_assert_eq(store_get_customer(e.sl, "", &c), STORE_NOT_FOUND);
    tenv_close(&e);
}

Test(store_writes, customer_set_status)
{
    tenv e;
    tenv_open(&e);
    char a[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", a), STORE_OK);
    store_write w = {.op = STORE_CUSTOMER_SET_STATUS, .at = 9};
    strcpy(w.customer.id, a);
    w.customer.status = STORE_CUSTOMER_SUSPENDED;
    cr_assert_eq(run_write(&e, &w), STORE_OK, "%s", w.msg);
    cr_assert_str_eq(w.customer.name, "Ann");
    cr_assert_str_eq(w.customer.email, "ann@example.com");
    cr_assert_eq(w.customer.status, STORE_CUSTOMER_SUSPENDED);
    store_customer c;
    cr_assert_eq(store_get_customer(e.sl, a, &c), STORE_OK);
    cr_assert_eq(c.status, STORE_CUSTOMER_SUSPENDED);

    store_write nf = {.op = STORE_CUSTOMER_SET_STATUS, .at = 9};
    strcpy(nf.customer.id, "c-42");
    nf.customer.status = STORE_CUSTOMER_ACTIVE;
    cr_assert_eq(run_write(&e, &nf), STORE_NOT_FOUND);
    cr_assert(strstr(nf.msg, "c-42"));

    store_write bad = {.op = STORE_CUSTOMER_SET_STATUS, .at = 9};
    strcpy(bad.customer.id, a);
    bad.customer.status = 7;
    cr_assert_eq(run_write(&e, &bad), STORE_INVALID);
    tenv_close(&e);
}

Test(store_writes, product_upsert_keeps_stock)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "SKU-1", 150, 10), STORE_OK);
    store_write w = {.op = STORE_PRODUCT_UPSERT, .at = 3000};
    strcpy(w.product.sku, "SKU-1");
    strcpy(w.product.name, "renamed");
    w.product.unit_price_cents = 175;
    cr_assert_eq(run_write(&e, &w), STORE_OK, "%s", w.msg);
    cr_assert_eq(w.product.on_hand, 10);
    cr_assert_eq(w.product.reserved, 0);
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "SKU-1", &p), STORE_OK);
    cr_assert_str_eq(p.name, "renamed");
    cr_assert_eq(p.unit_price_cents, 175);
    cr_assert_eq(p.on_hand, 10);
    cr_assert_eq(p.updated_at, 3000);
    cr_assert_eq(store_get_product(e.sl, "NOPE", &p), STORE_NOT_FOUND);

    store_write neg = {.op = STORE_PRODUCT_UPSERT, .at = 3000};
    strcpy(neg.product.sku, "SKU-2");
    strcpy(neg.product.name, "x");
    neg.product.unit_price_cents = -1;
    cr_assert_eq(run_write(&e, &neg), STORE_INVALID);
    store_write empty = {.op = STORE_PRODUCT_UPSERT, .at = 3000};
    strcpy(empty.product.name, "x");
    cr_assert_eq(run_write(&e, &empty), STORE_INVALID);
    tenv_close(&e);
}

Test(store_writes, stock_adjust_paths)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "SKU-1", 100, 10), STORE_OK);
    cr_assert_eq(reserve1(&e, "o-1", "SKU-1", 4), STORE_OK);

    store_write w = {.op = STORE_STOCK_ADJUST, .at = 4000, .delta = -6};
    strcpy(w.product.sku, "SKU-1");
    cr_assert_eq(run_write(&e, &w), STORE_OK, "%s", w.msg);
    cr_assert_eq(w.product.on_hand, 4);
    cr_assert_eq(w.product.reserved, 4);
    cr_assert_eq(w.product.unit_price_cents, 100);

    store_write below = {.op = STORE_STOCK_ADJUST, .at = 4000, .delta = -1};
    strcpy(below.product.sku, "SKU-1");
    cr_assert_eq(run_write(&e, &below), STORE_PRECONDITION);
    cr_assert(strstr(below.msg, "SKU-1"), "msg: %s", below.msg);

    store_write over = {.op = STORE_STOCK_ADJUST, .at = 4000, .delta = INT64_MAX};
    strcpy(over.product.sku, "SKU-1");
    cr_assert_eq(run_write(&e, &over), STORE_INVALID);

    store_write nf = {.op = STORE_STOCK_ADJUST, .at = 4000, .delta = 1};
    strcpy(nf.product.sku, "SKU-9");
    cr_assert_eq(run_write(&e, &nf), STORE_NOT_FOUND);
    cr_assert(strstr(nf.msg, "SKU-9"));

    store_product p;
    cr_assert_eq(store_get_product(e.sl, "SKU-1", &p), STORE_OK);
    cr_assert_eq(p.on_hand, 4);
    cr_assert_eq(p.reserved, 4);
    tenv_close(&e);
}

Test(store_writes, reserve_all_or_nothing)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    cr_assert_eq(add_product(&e, "B", 250, 3), STORE_OK);

    store_line l[3] = {{.sku = "A", .quantity = 2}, {.sku = "B", .quantity = 5}};
    store_write w = {.op = STORE_RESERVE, .at = 10, .lines = l, .nlines = 2};
    strcpy(w.order_id, "o-1");
    cr_assert_eq(run_write(&e, &w), STORE_PRECONDITION);
    cr_assert_str_eq(w.msg, "sku B: 3 available, 5 requested");
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 0, "A stays unreserved");

    store_line u[2] = {{.sku = "A", .quantity = 1}, {.sku = "ZZZ", .quantity = 1}};
    store_write nf = {.op = STORE_RESERVE, .at = 10, .lines = u, .nlines = 2};
    strcpy(nf.order_id, "o-1");
    cr_assert_eq(run_write(&e, &nf), STORE_NOT_FOUND);
    cr_assert(strstr(nf.msg, "ZZZ"), "msg: %s", nf.msg);
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 0);

    /* the same sku twice counts twice */
    store_line d[2] = {{.sku = "B", .quantity = 2}, {.sku = "B", .quantity = 2}};
    store_write dup = {.op = STORE_RESERVE, .at = 10, .lines = d, .nlines = 2};
    strcpy(dup.order_id, "o-1");
    cr_assert_eq(run_write(&e, &dup), STORE_PRECONDITION);
    cr_assert_str_eq(dup.msg, "sku B: 1 available, 2 requested");

    l[1].quantity = 3;
    store_write ok = {.op = STORE_RESERVE, .at = 10, .lines = l, .nlines = 2};
    strcpy(ok.order_id, "o-1");
    cr_assert_eq(run_write(&e, &ok), STORE_OK, "%s", ok.msg);
    cr_assert_not(ok.existed);
    cr_assert_eq(l[0].unit_price_cents, 100);
    cr_assert_eq(l[1].unit_price_cents, 250);
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 2);
    cr_assert_eq(store_get_product(e.sl, "B", &p), STORE_OK);
    cr_assert_eq(p.reserved, 3);

    store_line zero = {.sku = "A", .quantity = 0};
    store_write z = {.op = STORE_RESERVE, .at = 10, .lines = &zero, .nlines = 1};
    strcpy(z.order_id, "o-2");
    cr_assert_eq(run_write(&e, &z), STORE_INVALID);
    store_write none = {.op = STORE_RESERVE, .at = 10, .lines = l, .nlines = 0};
    strcpy(none.order_id, "o-2");
    cr_assert_eq(run_write(&e, &none), STORE_INVALID);
    store_write many = {.op = STORE_RESERVE, .at = 10, .lines = l, .nlines = STORE_MAX_LINES + 1};
    strcpy(many.order_id, "o-2");
    cr_assert_eq(run_write(&e, &many), STORE_INVALID);
    tenv_close(&e);
}

Test(store_writes, reserve_is_idempotent_per_order)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    cr_assert_eq(reserve1(&e, "o-7", "A", 4), STORE_OK);
    /* a retry: existed, nothing more reserved, prices from the first one */
    cr_assert_eq(add_product(&e, "A", 999, 0), STORE_OK);
    store_line l = {.sku = "A", .quantity = 4};
    store_write w = {.op = STORE_RESERVE, .at = 11, .lines = &l, .nlines = 1};
    strcpy(w.order_id, "o-7");
    cr_assert_eq(run_write(&e, &w), STORE_OK, "%s", w.msg);
    cr_assert(w.existed);
    cr_assert_eq(l.unit_price_cents, 100);
    cr_assert_not_null(w.result);
    cr_assert_str_eq(w.result->id, "o-7");
    cr_assert_eq(w.result->nlines, 1);
    store_order_free(w.result);
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 4);
    /* other lines for the same order id: the first reservation, unchanged */
    cr_assert_eq(add_product(&e, "B", 7, 10), STORE_OK);
    store_line other[2] = {{.sku = "B", .quantity = 2}, {.sku = "A", .quantity = 9}};
    store_write w2 = {.op = STORE_RESERVE, .at = 12, .lines = other, .nlines = 2};
    strcpy(w2.order_id, "o-7");
    cr_assert_eq(run_write(&e, &w2), STORE_OK, "%s", w2.msg);
    cr_assert(w2.existed);
    cr_assert_not_null(w2.result);
    cr_assert_eq(w2.result->nlines, 1);
    cr_assert_str_eq(w2.result->lines[0].sku, "A");
    cr_assert_eq(w2.result->lines[0].quantity, 4);
    cr_assert_eq(w2.result->lines[0].unit_price_cents, 100);
    store_order_free(w2.result);
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 4);
    cr_assert_eq(store_get_product(e.sl, "B", &p), STORE_OK);
    cr_assert_eq(p.reserved, 0);
    /* any id string works for reservations (split deployments) */
    cr_assert_eq(reserve1(&e, "remote-order-1", "A", 1), STORE_OK);
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 5);
    tenv_close(&e);
}

Test(store_writes, release_is_idempotent)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    cr_assert_eq(add_product(&e, "B", 100, 10), STORE_OK);
    store_line l[2] = {{.sku = "A", .quantity = 3}, {.sku = "B", .quantity = 1}};
    store_write r = {.op = STORE_RESERVE, .at = 10, .lines = l, .nlines = 2};
    strcpy(r.order_id, "o-3");
    cr_assert_eq(run_write(&e, &r), STORE_OK);

    for (int i = 0; i < 2; i++) {
        store_write w = {.op = STORE_RELEASE, .at = 12};
        strcpy(w.order_id, "o-3");
        cr_assert_eq(run_write(&e, &w), STORE_OK, "%s", w.msg);
        cr_assert_eq(w.existed, i == 0);
        store_product p;
        cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
        cr_assert_eq(p.reserved, 0);
        cr_assert_eq(p.on_hand, 10);
        cr_assert_eq(store_get_product(e.sl, "B", &p), STORE_OK);
        cr_assert_eq(p.reserved, 0);
    }
    store_write unknown = {.op = STORE_RELEASE, .at = 12};
    strcpy(unknown.order_id, "o-999");
    cr_assert_eq(run_write(&e, &unknown), STORE_OK);
    cr_assert_not(unknown.existed);
    /* a released reservation is not revived by a late retry */
    cr_assert_eq(reserve1(&e, "o-3", "A", 3), STORE_PRECONDITION);
    tenv_close(&e);
}

Test(store_writes, unterminated_fields_are_refused)
{
    tenv e;
    tenv_open(&e);
    store_write w = {.op = STORE_CUSTOMER_CREATE, .at = 1};
    memset(w.customer.name, 'n', sizeof w.customer.name);
    strcpy(w.customer.email, "x@example.com");
    cr_assert_eq(run_write(&e, &w), STORE_INVALID);

    store_write p = {.op = STORE_PRODUCT_UPSERT, .at = 1};
    memset(p.product.sku, 's', sizeof p.product.sku);
    strcpy(p.product.name, "x");
    cr_assert_eq(run_write(&e, &p), STORE_INVALID);

    store_write r = {.op = STORE_RELEASE, .at = 1};
    memset(r.order_id, 'o', sizeof r.order_id);
    cr_assert_eq(run_write(&e, &r), STORE_INVALID);

    /* longest legal values round-trip */
    store_write c = {.op = STORE_CUSTOMER_CREATE, .at = 1};
    memset(c.customer.name, 'n', STORE_NAME_MAX);
    memset(c.customer.email, 'e', STORE_EMAIL_MAX);
    cr_assert_eq(run_write(&e, &c), STORE_OK, "%s", c.msg);
    store_customer got;
    cr_assert_eq(store_get_customer(e.sl, c.customer.id, &got), STORE_OK);
    cr_assert_eq(strlen(got.name), STORE_NAME_MAX);
    cr_assert_eq(strlen(got.email), STORE_EMAIL_MAX);

    char sku[STORE_SKU_MAX + 2];
    memset(sku, 'k', sizeof sku - 1);
    sku[sizeof sku - 1] = '\0';
    store_product pr;
    cr_assert_eq(store_get_product(e.sl, sku, &pr), STORE_NOT_FOUND);
    tenv_close(&e);
}
