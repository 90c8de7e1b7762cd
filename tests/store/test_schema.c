/* Opening the SQLite store: URLs, migrations on a fresh database, reopening,
 * refusing a database from a newer oms. The test pokes at the file with
 * sqlite3 directly (the backend's own library; nothing above src/store
 * does). */
#include <sqlite3.h>

#include "store_test_util.h"

static int db_int(const char *dir, const char *sql)
{
    char path[256];
    snprintf(path, sizeof path, "%s/oms.db", dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    int v = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void db_exec(const char *dir, const char *sql)
{
    char path[256];
    snprintf(path, sizeof path, "%s/oms.db", dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

Test(store_schema, fresh_database_is_migrated)
{
    tenv e;
    tenv_open(&e);
    tenv_stop(&e);
    cr_assert_eq(db_int(e.dir, "SELECT version FROM schema_version"), 3);
    cr_assert_eq(db_int(e.dir, "SELECT count(*) FROM schema_version"), 1);
    cr_assert_eq(db_int(e.dir, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                               "name IN ('customers','products','reservations','orders','events')"),
                 5);
    cr_assert_eq(db_int(e.dir, "SELECT count(*) FROM sqlite_master WHERE name = 'events_order'"),
                 1);
    char mode[16] = "";
    {
        char path[256];
        snprintf(path, sizeof path, "%s/oms.db", e.dir);
        sqlite3 *db;
        sqlite3_open(path, &db);
        sqlite3_stmt *s;
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
        if (sqlite3_step(s) == SQLITE_ROW)
            snprintf(mode, sizeof mode, "%s", sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        sqlite3_close(db);
    }
    cr_assert_str_eq(mode, "wal");
    tenv_rmdir(&e);
}

Test(store_schema, reopen_keeps_version_and_data)
{
    tenv e;
    tenv_open(&e);
    char id[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", id), STORE_OK);
    tenv_stop(&e);
    tenv_start(&e, NULL);
    store_customer c;
    cr_assert_eq(store_get_customer(e.sl, id, &c), STORE_OK);
    cr_assert_str_eq(c.email, "ann@example.com");
    tenv_stop(&e);
    cr_assert_eq(db_int(e.dir, "SELECT version FROM schema_version"), 3);
    cr_assert_eq(db_int(e.dir, "SELECT count(*) FROM schema_version"), 1);
    tenv_rmdir(&e);
}

Test(store_schema, newer_schema_is_refused)
{
    tenv e;
    tenv_open(&e);
    tenv_stop(&e);
    db_exec(e.dir, "UPDATE schema_version SET version = 99");
    store_config cfg;
    store_config_init(&cfg);
    cfg.url = e.url;
    char err[256] = "";
    cr_assert_null(store_open(&cfg, err, sizeof err));
    cr_assert(strstr(err, "newer"), "err: %s", err);
    cr_assert(strstr(err, "99"), "err: %s", err);
    /* the database was left alone */
    cr_assert_eq(db_int(e.dir, "SELECT version FROM schema_version"), 99);
    tenv_rmdir(&e);
}

Test(store_schema, bad_urls_are_refused)
{
    store_config cfg;
    store_config_init(&cfg);
    cr_assert_eq(cfg.max_batch, 1024);
    char err[256];
    const char *bad[] = {"mysql://localhost/oms", "", "sqlite:", "sqlite::memory:", "oms.db"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.url = bad[i];
        err[0] = '\0';
        cr_assert_null(store_open(&cfg, err, sizeof err), "%s", bad[i]);
        cr_assert(err[0], "no reason for %s", bad[i]);
    }
    cfg.url = "sqlite:/nonexistent-dir/x/oms.db";
    cr_assert_null(store_open(&cfg, err, sizeof err));
    cr_assert(strstr(err, "sqlite:/nonexistent-dir/x/oms.db"), "err: %s", err);
    cr_assert(strstr(err, "unable to open"), "err: %s", err);
}

Test(store_schema, not_a_database_is_refused)
{
    tenv e;
    tenv_mkdir(&e);
    char path[256];
    snprintf(path, sizeof path, "%s/oms.db", e.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite database file. ", f);
    fclose(f);
    store_config cfg;
    store_config_init(&cfg);
    cfg.url = e.url;
    char err[256] = "";
    cr_assert_null(store_open(&cfg, err, sizeof err));
    cr_assert(err[0]);
    tenv_rmdir(&e);
}
