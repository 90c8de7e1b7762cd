/* sqlite_schema.c - connection pragmas and versioned schema migrations.
 *
 * schema_version holds one row: the number of migrations applied. Each
 * migration runs in its own IMMEDIATE transaction together with the version
 * bump, so a crash leaves the database at one version or the next, never in
 * between. A database whose version is newer than migrations[] is refused:
 * an older oms must not write a schema it does not know.
 *
 * Shape notes (the hot path is RESERVE + ORDER_CREATE):
 *  - order lines are a BLOB column (record.c), not rows;
 *  - orders and events are rowid tables keyed by the numeric id / seq, so
 *    inserts append to the right edge of the B-tree;
 *  - products and reservations are WITHOUT ROWID: one B-tree each;
 *  - meta.order_hwm remembers the highest order number the writer saw in a
 *    reservation or order, so store_next_order_id() never reuses one after a
 *    restart without scanning reservations at open; since version 2 it is
 *    also raised in blocks ahead of the ids handed out (never below one);
 *  - sweep_ranges (version 2): per run, [first id, mark] it could hand out,
 *    kept until the next start swept it (store.h);
 *  - idempotency keys (version 3) are unique per customer; a forgotten key
 *    is '' (the order stays).
 */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "sqlite_int.h"

static const char *const migrations[] = {
    /* 1: the initial schema */
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta(key, value) VALUES ('order_hwm', 0);"
    "CREATE TABLE customers ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  email TEXT NOT NULL UNIQUE,"
    "  status INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE products ("
    "  sku TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  unit_price INTEGER NOT NULL,"
    "  on_hand INTEGER NOT NULL DEFAULT 0,"
    "  reserved INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE reservations ("
    "  order_id TEXT PRIMARY KEY,"
    "  lines BLOB NOT NULL,"
    "  released INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  released_at INTEGER) WITHOUT ROWID;"
    "CREATE TABLE orders ("
    "  id INTEGER PRIMARY KEY,"
    "  customer_id TEXT NOT NULL,"
    "  idempotency_key TEXT NOT NULL DEFAULT '',"
    "  status INTEGER NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  total INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  cancel_reason TEXT NOT NULL DEFAULT '',"
    "  lines BLOB NOT NULL);"
    "CREATE UNIQUE INDEX orders_key ON orders(idempotency_key) WHERE idempotency_key <> '';"
    "CREATE INDEX orders_customer ON orders(customer_id, id);"
    "CREATE INDEX orders_created ON orders(created_at);"
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY,"
    "  order_id INTEGER NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  previous_status INTEGER NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  at INTEGER NOT NULL);"
    "CREATE INDEX events_order ON events(order_id, seq);",
    /* 2: per run, the order ids it could hand out (meta.order_hwm is now a
     * durable reservation of an id block: no id above it was handed out) */
    "CREATE TABLE sweep_ranges ("
    "  first INTEGER PRIMARY KEY,"
    "  last INTEGER NOT NULL);",
    /* 3: idempotency keys are the customer's, not global (two customers may
     * use the same key), and expire: the age index finds the keys to forget
     * without visiting orders whose key is already gone */
    "DROP INDEX orders_key;"
    "CREATE UNIQUE INDEX orders_key ON orders(customer_id, idempotency_key) "
    "  WHERE idempotency_key <> '';"
    "CREATE INDEX orders_key_age ON orders(created_at) WHERE idempotency_key <> '';",
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int store__schema_version(void)
{
    return NMIGRATIONS;
}

static int exec(store *st, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite:%s: %s", st->path, msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* The version recorded in the database; 0 for a fresh one. -1 on error. */
static int read_version(store *st, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT version FROM schema_version", -1, &s, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "sqlite:%s: %s", st->path, sqlite3_errmsg(st->db));
        return -1;
    }
    int v = 0, rc = store__step(s);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    else if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "sqlite:%s: %s", st->path, sqlite3_errmsg(st->db));
        v = -1;
    }
    sqlite3_finalize(s);
    return v;
}

int store__schema_migrate(store *st, char *err, size_t errlen)
{
    /* WAL: readers never block the writer nor wait for it. FULL: each
     * COMMIT fsyncs the WAL, so a completed write survives a power cut. */
    if (exec(st, "PRAGMA journal_mode=WAL", err, errlen) != 0 ||
        exec(st, "PRAGMA synchronous=FULL", err, errlen) != 0 ||
        exec(st, "PRAGMA foreign_keys=ON", err, errlen) != 0 ||
        exec(st, "PRAGMA cache_size=-65536", err, errlen) != 0 ||
        exec(st, "PRAGMA wal_autocheckpoint=4000", err, errlen) != 0 ||
        exec(st, "PRAGMA journal_size_limit=67108864", err, errlen) != 0)
        return -1;
    char check[16];
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode", -1, &s, NULL) == SQLITE_OK &&
        store__step(s) == SQLITE_ROW)
        store__col_text(s, 0, check, sizeof check);
    else
        check[0] = '\0';
    sqlite3_finalize(s);
    if (strcmp(check, "wal") != 0) {
        snprintf(err, errlen, "sqlite:%s: cannot use WAL journal mode (got '%s')", st->path, check);
        return -1;
    }

    for (;;) {
        if (exec(st, "BEGIN IMMEDIATE", err, errlen) != 0)
            return -1;
        if (exec(st, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", err,
                 errlen) != 0)
            goto fail;
        int v = read_version(st, err, errlen);
        if (v < 0)
            goto fail;
        if (v > NMIGRATIONS) {
            snprintf(err, errlen,
                     "sqlite:%s: schema version %d is newer than this oms supports (%d)", st->path,
                     v, NMIGRATIONS);
            goto fail;
        }
        if (v == NMIGRATIONS) {
            if (exec(st, "COMMIT", err, errlen) != 0)
                goto fail;
            return 0;
        }
        if (exec(st, migrations[v], err, errlen) != 0)
            goto fail;
        char sql[96];
        snprintf(sql, sizeof sql,
                 v == 0 ? "INSERT INTO schema_version(version) VALUES (%d)"
                        : "UPDATE schema_version SET version = %d",
                 v + 1);
        if (exec(st, sql, err, errlen) != 0 || exec(st, "COMMIT", err, errlen) != 0)
            goto fail;
        OMS_INFO("store: sqlite:%s: schema migrated to version %d", st->path, v + 1);
    }
fail:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static const char *const writer_sql[WS__COUNT] = {
    [WS_BEGIN] = "BEGIN IMMEDIATE",
    [WS_COMMIT] = "COMMIT",
    [WS_ROLLBACK] = "ROLLBACK",
    [WS_SAVEPOINT] = "SAVEPOINT w",
    [WS_RELEASE_SP] = "RELEASE w",
    [WS_ROLLBACK_SP] = "ROLLBACK TO w",
    [WS_CUSTOMER_INSERT] = "INSERT INTO customers(name, email, status, created_at) "
                           "VALUES (?1, ?2, 1, ?3)",
    [WS_CUSTOMER_SET_STATUS] = "UPDATE customers SET status = ?2 WHERE id = ?1 "
                               "RETURNING name, email, status, created_at",
    [WS_PRODUCT_UPSERT] =
        "INSERT INTO products(sku, name, unit_price, on_hand, reserved, updated_at) "
        "VALUES (?1, ?2, ?3, 0, 0, ?4) ON CONFLICT(sku) DO UPDATE SET name = excluded.name, "
        "unit_price = excluded.unit_price, updated_at = excluded.updated_at "
        "RETURNING on_hand, reserved",
    [WS_PRODUCT_GET] = "SELECT name, unit_price, on_hand, reserved, updated_at "
                       "FROM products WHERE sku = ?1",
    [WS_PRODUCT_SET_ON_HAND] = "UPDATE products SET on_hand = ?2, updated_at = ?3 WHERE sku = ?1",
    [WS_PRODUCT_RESERVE] = "UPDATE products SET reserved = reserved + ?2 "
                           "WHERE sku = ?1 AND on_hand - reserved >= ?2 RETURNING unit_price",
    [WS_PRODUCT_UNRESERVE] = "UPDATE products SET reserved = max(reserved - ?2, 0) WHERE sku = ?1",
    [WS_RESERVATION_GET] = "SELECT lines, released FROM reservations WHERE order_id = ?1",
    [WS_RESERVATION_INSERT] = "INSERT INTO reservations(order_id, lines, released, created_at) "
                              "VALUES (?1, ?2, 0, ?3)",
    [WS_RESERVATION_RELEASE] = "UPDATE reservations SET released = 1, released_at = ?2 "
                               "WHERE order_id = ?1",
    [WS_ORDER_INSERT] = "INSERT INTO orders(id, customer_id, idempotency_key, status, version, "
                        "total, created_at, updated_at, cancel_reason, lines) "
                        "VALUES (?1, ?2, ?3, 1, 1, ?4, ?5, ?5, '', ?6)",
    [WS_ORDER_GET] = "SELECT id, customer_id, idempotency_key, cancel_reason, status, version, "
                     "total, created_at, updated_at, lines FROM orders WHERE id = ?1",
    [WS_ORDER_GET_BY_KEY] = "SELECT id, customer_id, idempotency_key, cancel_reason, status, "
                            "version, total, created_at, updated_at, lines FROM orders "
                            "WHERE customer_id = ?1 AND idempotency_key = ?2 "
                            "AND idempotency_key <> ''",
    [WS_ORDER_UPDATE_STATUS] = "UPDATE orders SET status = ?2, version = ?3, updated_at = ?4, "
                               "cancel_reason = ?5 WHERE id = ?1",
    [WS_EVENT_INSERT] = "INSERT INTO events(seq, order_id, customer_id, status, previous_status, "
                        "version, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [WS_META_SET_HWM] = "UPDATE meta SET value = ?1 WHERE key = 'order_hwm' AND value < ?1",
    [WS_LIVE_RESERVATIONS] = "SELECT order_id FROM reservations WHERE released = 0",
    [WS_ORDER_EXISTS] = "SELECT status FROM orders WHERE id = ?1",
    [WS_PRODUCT_AVAILABLE] = "SELECT unit_price, on_hand - reserved FROM products WHERE sku = ?1",
    [WS_PRODUCT_ADD_RESERVED] = "UPDATE products SET reserved = reserved + ?2 WHERE sku = ?1",
    [WS_KEYS_FORGET] = "UPDATE orders SET idempotency_key = '' WHERE id IN (SELECT id FROM orders "
                       "WHERE idempotency_key <> '' AND created_at < ?1 LIMIT ?2)",
};

int store__prepare_writer(store *st, char *err, size_t errlen)
{
    for (int i = 0; i < WS__COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, writer_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->ws[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "sqlite:%s: %s", st->path, sqlite3_errmsg(st->db));
            return -1;
        }
    }
    return 0;
}
