/* Order ids as durable blocks and the sweep ranges (store.h): the mark is
 * raised in blocks ahead of use and persisted, a run's range outlives a crash
 * as pending for the next start, ids without an order are listed page by
 * page, a swept range is gone, and a version-1 database migrates. */
#include <sqlite3.h>
#include <sys/wait.h>

#include "store_test_util.h"

static int64_t db_int(const char *dir, const char *sql)
{
    char path[256];
    snprintf(path, sizeof path, "%s/oms.db", dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
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

static void start_block(tenv *e, int64_t block)
{
    store_config cfg;
    store_config_init(&cfg);
    cfg.id_block = block;
    tenv_start(e, &cfg);
}

static int64_t mark(tenv *e)
{
    return db_int(e->dir, "SELECT value FROM meta WHERE key = 'order_hwm'");
}

/* Waits (up to 5 s) for the durable mark to reach want. */
static int64_t wait_mark(tenv *e, int64_t want)
{
    int64_t m = mark(e);
    for (int i = 0; i < 500 && m < want; i++) {
        usleep(10000);
        m = mark(e);
    }
    return m;
}

static int64_t take(tenv *e)
{
    char id[STORE_ID_MAX + 1];
    store_rc rc = store_next_order_id(e->st, id);
    for (int i = 0; i < 500 && rc == STORE_UNAVAILABLE; i++) {
        cr_assert_str_eq(id, "");
        usleep(10000);
        rc = store_next_order_id(e->st, id);
    }
    cr_assert_eq(rc, STORE_OK);
    return strtoll(id + 2, NULL, 10);
}

/* Opens the store at e->url in a child process, takes n ids there and exits
 * without closing: a crash. */
static void crashed_run(tenv *e, int64_t block, int n)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        store_config cfg;
        store_config_init(&cfg);
        cfg.url = e->url;
        cfg.id_block = block;
        char err[256], id[STORE_ID_MAX + 1];
        store *st = store_open(&cfg, err, sizeof err);
        if (!st)
            _exit(2);
        for (int i = 0; i < n; i++)
            if (store_next_order_id(st, id) != STORE_OK)
                _exit(3);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

Test(store_sweep, mark_raised_in_blocks_and_persisted)
{
    tenv e;
    tenv_mkdir(&e);
    start_block(&e, 8);
    cr_assert_eq(mark(&e), 8, "the first block is durable at open");
    cr_assert_eq(db_int(e.dir, "SELECT count(*) FROM sweep_ranges"), 1);
    cr_assert_eq(db_int(e.dir, "SELECT last FROM sweep_ranges WHERE first = 1"), 8);
    for (int64_t i = 1; i <= 4; i++)
        cr_assert_eq(take(&e), i);
    cr_assert_eq(mark(&e), 8, "half a block left: no raise yet");
    cr_assert_eq(take(&e), 5); /* within half a block: the writer raises */
    cr_assert_eq(wait_mark(&e, 16), 16);
    cr_assert_eq(db_int(e.dir, "SELECT last FROM sweep_ranges WHERE first = 1"), 16,
                 "the run's range grows with the mark");
    /* ids keep coming, never past a durable mark */
    for (int64_t i = 6; i <= 40; i++) {
        cr_assert_eq(take(&e), i);
        cr_assert_geq(mark(&e), i);
    }
    cr_assert_geq(wait_mark(&e, 48), 48);
    tenv_stop(&e);
    /* a clean stop trims the range and the mark to the ids handed out */
    cr_assert_eq(mark(&e), 40);
    cr_assert_eq(db_int(e.dir, "SELECT last FROM sweep_ranges WHERE first = 1"), 40);
    start_block(&e, 8);
    cr_assert_eq(take(&e), 41);
    tenv_close(&e);
}

Test(store_sweep, unused_run_leaves_no_range)
{
    tenv e;
    tenv_mkdir(&e);
    start_block(&e, 8);
    tenv_stop(&e);
    cr_assert_eq(db_int(e.dir, "SELECT count(*) FROM sweep_ranges"), 0);
    cr_assert_eq(mark(&e), 0);
    start_block(&e, 8);
    cr_assert_eq(store_pending_sweeps(e.st, NULL, 0), 0);
    cr_assert_eq(take(&e), 1);
    tenv_close(&e);
}

Test(store_sweep, crash_leaves_range_pending_and_swept_range_goes)
{
    tenv e;
    tenv_mkdir(&e);
    crashed_run(&e, 8, 3);
    cr_assert_eq(mark(&e), 8, "the mark stays where the crash left it");
    start_block(&e, 8);
    store_id_range r[4];
    cr_assert_eq(store_pending_sweeps(e.st, r, 4), 1);
    cr_assert_eq(r[0].first, 1);
    cr_assert_eq(r[0].last, 8);
    cr_assert_eq(take(&e), 9, "no id of the dead run again");
    tenv_stop(&e);

    /* a clean run leaves its range [9, 9] too: a release may be unfinished */
    crashed_run(&e, 8, 0); /* a crash with no ids taken: [10, 17] */
    start_block(&e, 8);
    size_t n = store_pending_sweeps(e.st, r, 4);
    cr_assert_eq(n, 3);
    cr_assert_eq(r[0].first, 1);
    cr_assert_eq(r[1].first, 9);
    cr_assert_eq(r[1].last, 9);
    cr_assert_eq(r[2].first, 10);
    cr_assert_eq(r[2].last, 17);
    cr_assert_eq(take(&e), 18);
    cr_assert_eq(store_sweep_done(e.st, &r[0]), STORE_OK);
    cr_assert_eq(store_sweep_done(e.st, &r[2]), STORE_OK);
    cr_assert_eq(store_sweep_done(e.st, &r[2]), STORE_OK, "again: fine");
    store_id_range own = {18, 25};
    cr_assert_eq(store_sweep_done(e.st, &own), STORE_OK);
    cr_assert_eq(db_int(e.dir, "SELECT count(*) FROM sweep_ranges WHERE first = 18"), 1,
                 "the run's own range stays");
    tenv_stop(&e);
    start_block(&e, 8);
    n = store_pending_sweeps(e.st, r, 4);
    cr_assert_eq(n, 2);
    cr_assert_eq(r[0].first, 9);
    cr_assert_eq(r[1].first, 18);
    cr_assert_eq(r[1].last, 18);
    /* all-in-one mode: the orphan release covers every earlier range */
    cr_assert_eq(store_release_orphans(e.st), 0);
    tenv_stop(&e);
    start_block(&e, 8);
    cr_assert_eq(store_pending_sweeps(e.st, NULL, 0), 0);
    tenv_close(&e);
}

Test(store_sweep, unused_ids_listed_by_pages)
{
    tenv e;
    tenv_mkdir(&e);
    start_block(&e, 64);
    char cust[STORE_ID_MAX + 1], id[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", cust), STORE_OK);
    /* orders at 2, 5, 6 and 10; 1, 3, 4, 7, 8, 9 taken without one */
    const bool with_order[] = {false, true, false, false, true, true, false, false, false, true};
    for (size_t i = 0; i < 10; i++) {
        if (with_order[i]) {
            cr_assert_eq(create_order(&e, cust, NULL, 1000, id, NULL), STORE_OK);
        } else {
            cr_assert_eq(store_next_order_id(e.st, id), STORE_OK);
        }
        char want[16];
        snprintf(want, sizeof want, "o-%zu", i + 1);
        cr_assert_str_eq(id, want);
    }
    int64_t out[4];
    cr_assert_eq(store_list_unused_order_ids(e.sl, 1, 12, out, 4), 4);
    cr_assert_eq(out[0], 1);
    cr_assert_eq(out[1], 3);
    cr_assert_eq(out[2], 4);
    cr_assert_eq(out[3], 7);
    cr_assert_eq(store_list_unused_order_ids(e.sl, out[3] + 1, 12, out, 4), 4);
    cr_assert_eq(out[0], 8);
    cr_assert_eq(out[1], 9);
    cr_assert_eq(out[2], 11, "past the last order too");
    cr_assert_eq(out[3], 12);
    cr_assert_eq(store_list_unused_order_ids(e.sl, 13, 12, out, 4), 0);
    cr_assert_eq(store_list_unused_order_ids(e.sl, 5, 6, out, 4), 0, "all ordered");
    cr_assert_eq(store_list_unused_order_ids(e.sl, 10, 11, out, 4), 1);
    cr_assert_eq(out[0], 11);
    cr_assert_eq(store_list_unused_order_ids(e.sl, 1, 12, out, 0), 0);
    /* a big range pages with bounded memory */
    int64_t page[100], total = 0, after = 0, last = 0;
    long n;
    do {
        n = store_list_unused_order_ids(e.sl, after + 1, 5000, page, 100);
        cr_assert_geq(n, 0);
        for (long i = 0; i < n; i++) {
            cr_assert_gt(page[i], last);
            last = page[i];
        }
        total += n;
        if (n)
            after = page[n - 1];
    } while (n == 100);
    cr_assert_eq(total, 5000 - 4);
    char s[STORE_ID_MAX + 1];
    store_format_order_id(s, 42);
    cr_assert_str_eq(s, "o-42");
    tenv_close(&e);
}

Test(store_sweep, migration_from_version_1)
{
    tenv e;
    tenv_open(&e);
    char cust[STORE_ID_MAX + 1], id[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", cust), STORE_OK);
    cr_assert_eq(create_order(&e, cust, NULL, 1000, id, NULL), STORE_OK);
    tenv_stop(&e);
    /* back to what a version-1 oms left: no sweep ranges, the mark at the
     * highest id it saw */
    db_exec(e.dir, "DROP INDEX orders_key_age; DROP INDEX orders_key;"
                   "CREATE UNIQUE INDEX orders_key ON orders(idempotency_key) "
                   "WHERE idempotency_key <> '';"
                   "DROP TABLE sweep_ranges; UPDATE schema_version SET version = 1;"
                   "UPDATE meta SET value = 7 WHERE key = 'order_hwm'");
    cr_assert_eq(db_int(e.dir, "SELECT count(*) FROM sqlite_master WHERE name = 'sweep_ranges'"),
                 0);
    start_block(&e, 16);
    cr_assert_eq(db_int(e.dir, "SELECT version FROM schema_version"), 3);
    cr_assert_eq(store_pending_sweeps(e.st, NULL, 0), 0, "a version-1 run left no range");
    cr_assert_eq(mark(&e), 7 + 16);
    cr_assert_eq(db_int(e.dir, "SELECT last FROM sweep_ranges WHERE first = 8"), 23);
    cr_assert_eq(take(&e), 8);
    store_order *o = NULL;
    cr_assert_eq(store_get_order(e.sl, id, &o), STORE_OK);
    store_order_free(o);
    tenv_close(&e);
}
