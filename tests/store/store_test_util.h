/* store_test_util.h - shared helpers of the store tests: a temporary
 * database, a store with one loop on the test's thread, and synchronous
 * wrappers around store_submit().
 *
 * One set of tests, two backends: with OMS_TEST_PG_URL set (scripts/pgtmp.py
 * run -- TEST, as ctest's unit.store_pg.* do) every tenv gets a fresh
 * PostgreSQL database of its own on that server instead of an SQLite file;
 * tests of one backend's internals skip on the other (TENV_SQLITE_ONLY). */
#ifndef OMS_STORE_TEST_UTIL_H
#define OMS_STORE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include <unistd.h>

#include "store/store.h"

typedef struct tenv {
    char dir[64];
    char url[256];
    char pgdb[64]; /* the PostgreSQL database made for this tenv, "" on SQLite */
    store *st;
    uv_loop_t loop;
    store_loop *sl;
} tenv;

/* The PostgreSQL server's URL when the tests run against PostgreSQL. */
static inline const char *tenv_pg(void)
{
    const char *u = getenv("OMS_TEST_PG_URL");
    return u && *u ? u : NULL;
}

#define TENV_SQLITE_ONLY()                                                                         \
    do {                                                                                           \
        if (tenv_pg())                                                                             \
            cr_skip_test("SQLite internals");                                                      \
    } while (0)

/* Runs sql on the server's admin database (the URL's own). */
static inline void tenv_pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(tenv_pg());
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* Runs sql on this tenv's database (PostgreSQL). */
static inline void tenv_pg_exec(const tenv *e, const char *sql)
{
    PGconn *c = PQconnectdb(e->url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static inline void tenv_mkdir(tenv *e)
{
    strcpy(e->dir, "/tmp/oms-store-XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir));
    snprintf(e->url, sizeof e->url, "sqlite:%s/oms.db", e->dir);
    e->pgdb[0] = '\0';
    const char *pg = tenv_pg();
    if (!pg)
        return;
    /* A database per tenv: the server URL with its path replaced. */
    static int n;
    snprintf(e->pgdb, sizeof e->pgdb, "t_%d_%d", (int)getpid(), ++n);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", e->pgdb);
    tenv_pg_admin(sql);
    const char *slash = strrchr(pg, '/');
    cr_assert(slash && slash > strstr(pg, "://") + 2, "OMS_TEST_PG_URL needs a /database");
    snprintf(e->url, sizeof e->url, "%.*s/%s", (int)(slash - pg), pg, e->pgdb);
}

static inline void tenv_rmdir(tenv *e)
{
    if (e->pgdb[0]) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", e->pgdb);
        tenv_pg_admin(sql);
        e->pgdb[0] = '\0';
    }
    DIR *d = opendir(e->dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", e->dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(e->dir);
}

/* Opens the store at e->url (cfg may be NULL) and a loop on this thread. */
static inline void tenv_start(tenv *e, store_config *cfg)
{
    store_config def;
    if (!cfg) {
        store_config_init(&def);
        cfg = &def;
    }
    cfg->url = e->url;
    char err[256];
    e->st = store_open(cfg, err, sizeof err);
    cr_assert_not_null(e->st, "store_open: %s", err);
    cr_assert_eq(uv_loop_init(&e->loop), 0);
    e->sl = store_loop_open(e->st, &e->loop, err, sizeof err);
    cr_assert_not_null(e->sl, "store_loop_open: %s", err);
}

static inline void tenv_stop(tenv *e)
{
    store_loop_close(e->sl);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&e->loop), 0);
    store_close(e->st);
    e->st = NULL;
}

static inline void tenv_open(tenv *e)
{
    tenv_mkdir(e);
    tenv_start(e, NULL);
}

static inline void tenv_close(tenv *e)
{
    tenv_stop(e);
    tenv_rmdir(e);
}

static inline void on_sync_done(store_write *w)
{
    (*(int *)w->data)++;
}

/* Submits w and runs the loop until it completes; returns w->rc. */
static inline store_rc run_write(tenv *e, store_write *w)
{
    int done = 0;
    w->done = on_sync_done;
    w->data = &done;
    store_submit(e->sl, w);
    cr_assert_eq(done, 0, "done must not fire inside store_submit");
    while (!done)
        uv_run(&e->loop, UV_RUN_ONCE);
    return w->rc;
}

static inline store_rc add_customer(tenv *e, const char *name, const char *email, char *id_out)
{
    store_write w = {.op = STORE_CUSTOMER_CREATE, .at = 1000};
    strcpy(w.customer.name, name);
    strcpy(w.customer.email, email);
    store_rc rc = run_write(e, &w);
    if (id_out)
        strcpy(id_out, w.customer.id);
    return rc;
}

static inline store_rc add_product(tenv *e, const char *sku, int64_t price, int64_t stock)
{
    store_write w = {.op = STORE_PRODUCT_UPSERT, .at = 1000};
    strcpy(w.product.sku, sku);
    snprintf(w.product.name, sizeof w.product.name, "product %s", sku);
    w.product.unit_price_cents = price;
    store_rc rc = run_write(e, &w);
    if (rc != STORE_OK || !stock)
        return rc;
    store_write a = {.op = STORE_STOCK_ADJUST, .at = 1001, .delta = stock};
    strcpy(a.product.sku, sku);
    return run_write(e, &a);
}

static inline store_rc reserve1(tenv *e, const char *order_id, const char *sku, int64_t qty)
{
    store_line l = {.quantity = qty};
    strcpy(l.sku, sku);
    store_write w = {.op = STORE_RESERVE, .at = 2000, .lines = &l, .nlines = 1};
    strcpy(w.order_id, order_id);
    store_rc rc = run_write(e, &w);
    store_order_free(w.result); /* a repeat's first reservation */
    return rc;
}

/* Creates an order with one line; id_out gets its id. */
static inline store_rc create_order(tenv *e, const char *customer, const char *key, int64_t at,
                                    char *id_out, store_order **existing)
{
    store_order *o = store_order_new(1);
    store_next_order_id(e->st, o->id);
    strcpy(o->customer_id, customer);
    strcpy(o->idempotency_key, key ? key : "");
    strcpy(o->lines[0].sku, "SKU-1");
    o->lines[0].quantity = 2;
    o->lines[0].unit_price_cents = 150;
    o->total_cents = 300;
    o->created_at = at;
    store_write w = {.op = STORE_ORDER_CREATE, .order = o, .at = at};
    store_rc rc = run_write(e, &w);
    if (id_out)
        strcpy(id_out, o->id);
    if (existing)
        *existing = w.result;
    else
        store_order_free(w.result);
    store_order_free(o);
    return rc;
}

static inline store_rc set_status(tenv *e, const char *id, int to, unsigned allowed,
                                  int64_t expected, store_write *out)
{
    store_write w = {.op = STORE_ORDER_SET_STATUS,
                     .at = 5000,
                     .to_status = to,
                     .allowed_from = allowed,
                     .expected_version = expected};
    strcpy(w.order_id, id);
    strcpy(w.reason, "changed my mind");
    store_rc rc = run_write(e, &w);
    if (out)
        *out = w;
    else
        store_order_free(w.result);
    return rc;
}

#endif
