/* sqlite.c - the SQLite store: opening, the writer's SQL (writer.c runs the
 * queue and the group commit: one BEGIN IMMEDIATE ... COMMIT per batch, a
 * SAVEPOINT where a request can fail half-way, one fsync per batch), order-id
 * marks, store_loops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "sqlite_int.h"

/* Whether the background forgetting of old idempotency keys is due (writer
 * thread). */
static bool forget_due(const store *st, int64_t now)
{
    return st->key_retention_ms > 0 && now >= st->next_forget_ms;
}

/* Forgets keys past the retention inside the current transaction. Not
 * fatal when the statement fails and the transaction survives: tried again
 * next time. Returns false when SQLite rolled the transaction back. */
static bool forget_keys(store *st, int64_t now)
{
    sqlite3_stmt *s = st->ws[WS_KEYS_FORGET];
    store__bind_int64(s, 1, now - st->key_retention_ms);
    store__bind_int(s, 2, STORE_KEYS_FORGET_MAX);
    int rc = store__step(s);
    sqlite3_reset(s);
    /* A full page: more are due at once; else look again a quarter of the
     * retention later (at least 100 ms, at most a minute). */
    int64_t period = st->key_retention_ms / 4;
    period = period < 100 ? 100 : period > 60000 ? 60000 : period;
    bool full = rc == SQLITE_DONE && sqlite3_changes(st->db) >= STORE_KEYS_FORGET_MAX;
    st->next_forget_ms = full ? now : now + period;
    if (rc == SQLITE_DONE)
        return true;
    OMS_WARN("store: sqlite:%s: forgetting old idempotency keys: %s", st->path,
             sqlite3_errmsg(st->db));
    return !sqlite3_get_autocommit(st->db);
}

/* Runs a cached no-parameter statement (BEGIN, COMMIT, SAVEPOINT...). */
static int run(store *st, int which)
{
    sqlite3_stmt *s = st->ws[which];
    int rc = store__step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* --- the writer's ops (writer.c) ---------------------------------------------------- */

/* What a failed SQLite call means for the caller: a full disk is
 * RESOURCE_EXHAUSTED territory, a database that cannot be written now (made
 * read-only, I/O errors, locked by another process) is UNAVAILABLE; both clear
 * by themselves once the fault does, as every batch tries afresh. Anything
 * else is a store error. */
static store_rc classify(int sqlite_code)
{
    switch (sqlite_code & 0xff) {
    case SQLITE_FULL:
        return STORE_FULL;
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
        return STORE_UNAVAILABLE;
    default:
        return STORE_ERROR;
    }
}

static int64_t sq_due_at(void *be, int64_t now)
{
    store *st = be;
    if (atomic_load(&st->mark_wanted))
        return now;
    return st->key_retention_ms > 0 ? st->next_forget_ms : INT64_MAX;
}

static int sq_begin(void *be, bool any)
{
    store *st = be;
    st->batch_hwm = st->hwm_persisted;
    st->batch_noted = 0;
    st->new_mark = 0;
    st->now = store__wall_ms();
    st->forget = forget_due(st, st->now);
    if (!any && !atomic_load(&st->mark_wanted) && !st->forget)
        return 0;
    return run(st, WS_BEGIN) == SQLITE_OK ? 1 : -1;
}

static store_rc sq_apply(void *be, store_write *w)
{
    return store__apply(be, w);
}

static bool sq_savepoint(void *be, store__sp_step step)
{
    store *st = be;
    switch (step) {
    case STORE__SP_BEGIN:
        return run(st, WS_SAVEPOINT) == SQLITE_OK;
    case STORE__SP_RELEASE:
        return run(st, WS_RELEASE_SP) == SQLITE_OK;
    case STORE__SP_ROLLBACK:
        return run(st, WS_ROLLBACK_SP) == SQLITE_OK && run(st, WS_RELEASE_SP) == SQLITE_OK;
    }
    return false;
}

static bool sq_lost(void *be)
{
    return sqlite3_get_autocommit(((store *)be)->db);
}

static store_rc sq_error(void *be, char *why, size_t cap)
{
    store *st = be;
    if (cap)
        store__copy(why, cap, sqlite3_errmsg(st->db));
    return classify(sqlite3_extended_errcode(st->db));
}

/* Forgetting old idempotency keys rides along (or runs alone); so does a
 * raise of the order-id mark (one more block, and this run's sweep range
 * grows with it); then the high-water mark of the order numbers written. */
static bool sq_finish(void *be)
{
    store *st = be;
    if (st->forget && !forget_keys(st, st->now))
        return false;
    if (atomic_exchange(&st->mark_wanted, false)) {
        st->new_mark = atomic_load(&st->id_mark) + st->id_block;
        if (st->new_mark > st->batch_hwm)
            st->batch_hwm = st->new_mark;
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE sweep_ranges SET last = %lld WHERE first = %lld",
                 (long long)st->new_mark, (long long)st->run_first);
        if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            return false;
    }
    if (st->batch_hwm > st->hwm_persisted) {
        sqlite3_stmt *s = st->ws[WS_META_SET_HWM];
        store__bind_int64(s, 1, st->batch_hwm);
        int rc = store__step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return false;
    }
    return true;
}

static bool sq_commit(void *be)
{
    return run(be, WS_COMMIT) == SQLITE_OK;
}

static void sq_committed(void *be)
{
    store *st = be;
    st->hwm_persisted = st->batch_hwm;
    if (st->batch_noted > st->max_noted)
        st->max_noted = st->batch_noted;
    if (st->new_mark) {
        atomic_store(&st->id_mark, st->new_mark);
        /* A burst took half a block during this commit: another one. */
        if (st->new_mark - atomic_load(&st->next_order) < st->id_block / 2)
            atomic_store(&st->mark_wanted, true);
    }
    store__writer *wr = &st->wr;
    store__writer_raise_seq(wr, wr->seq);
    if (wr->nevs && wr->on_events)
        wr->on_events(wr->events_arg, wr->evs, wr->nevs);
}

/* Rolls the transaction back unless SQLite already did (I/O error, full
 * disk) or none is open. why is copied first, as the rollback replaces
 * SQLite's message. */
static store_rc sq_abort(void *be, const store_write *w, char *why, size_t cap)
{
    store *st = be;
    int code = w && w->rc != STORE_ERROR ? SQLITE_OK : sqlite3_extended_errcode(st->db);
    store__copy(why, cap, w ? w->msg : sqlite3_errmsg(st->db));
    if (!sqlite3_get_autocommit(st->db))
        run(st, WS_ROLLBACK);
    return classify(code);
}

static const store__writer_ops sqlite_writer_ops = {
    .due_at = sq_due_at,
    .begin = sq_begin,
    .apply = sq_apply,
    .savepoint = sq_savepoint,
    .lost = sq_lost,
    .error = sq_error,
    .finish = sq_finish,
    .commit = sq_commit,
    .committed = sq_committed,
    .abort = sq_abort,
    .error_aborts = false,
};

/* --- internal requests, waited for ------------------------------------------------ */

long store__sqlite_release_orphans(store *st)
{
    int64_t n = 0;
    if (store__writer_run_sync(&st->wr, STORE__OP_RELEASE_ORPHANS, &n) != STORE_OK)
        return -1;
    return (long)n; /* the count of releases */
}

store_rc store__sqlite_sweep_done(store *st, const store_id_range *r)
{
    int64_t first = r->first;
    if (first >= st->run_first)
        return STORE_OK; /* this run's own range stays */
    return store__writer_run_sync(&st->wr, STORE__OP_SWEEP_DONE, &first);
}

size_t store__sqlite_pending_sweeps(store *st, store_id_range *out, size_t cap)
{
    for (size_t i = 0; i < st->npending && i < cap; i++)
        out[i] = st->pending[i];
    return st->npending;
}

/* --- open and close ----------------------------------------------------------------- */

static int open_db(const char *path, sqlite3 **db, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(
        path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "sqlite:%s: %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, 5000);
    return 0;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && store__step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Reads the previous runs' sweep ranges, then durably reserves this run's
 * first block of ids (start + 1 .. start + id_block) and records it as this
 * run's range. */
static int open_id_block(store *st, int64_t start, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    size_t cap = 0;
    int rc = sqlite3_prepare_v2(st->db, "SELECT first, last FROM sweep_ranges ORDER BY first", -1,
                                &s, NULL);
    while (rc == SQLITE_OK && (rc = store__step(s)) == SQLITE_ROW) {
        if (st->npending == cap) {
            cap = cap ? cap * 2 : 8;
            void *p = oms_realloc(st->pending, cap * sizeof *st->pending);
            if (!p) {
                sqlite3_finalize(s);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            st->pending = p;
        }
        st->pending[st->npending].first = sqlite3_column_int64(s, 0);
        st->pending[st->npending].last = sqlite3_column_int64(s, 1);
        st->npending++;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "sqlite:%s: reading sweep ranges: %s", st->path,
                 sqlite3_errmsg(st->db));
        return -1;
    }
    int64_t mark = start + st->id_block;
    char sql[320], *msg = NULL;
    snprintf(sql, sizeof sql,
             "BEGIN IMMEDIATE;"
             "UPDATE meta SET value = %lld WHERE key = 'order_hwm' AND value < %lld;"
             "INSERT OR REPLACE INTO sweep_ranges(first, last) VALUES (%lld, %lld);"
             "COMMIT;",
             (long long)mark, (long long)mark, (long long)(start + 1), (long long)mark);
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite:%s: reserving order ids: %s", st->path,
                 msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        if (!sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    st->run_first = start + 1;
    st->max_noted = start;
    st->hwm_persisted = mark;
    atomic_store(&st->id_mark, mark);
    return 0;
}

/* At a clean close (the writer stopped): this run's range shrinks to the ids
 * it handed out (or goes, if none), and the mark comes back down to the
 * highest id handed out or written, so the next run goes on from there. */
static void trim_run_range(store *st)
{
    int64_t n = atomic_load(&st->next_order);
    int64_t mark = n > st->max_noted ? n : st->max_noted;
    char sql[400];
    if (n < st->run_first)
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE; DELETE FROM sweep_ranges WHERE first = %lld;"
                 "UPDATE meta SET value = %lld WHERE key = 'order_hwm'; COMMIT;",
                 (long long)st->run_first, (long long)mark);
    else
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE; UPDATE sweep_ranges SET last = %lld WHERE first = %lld;"
                 "UPDATE meta SET value = %lld WHERE key = 'order_hwm'; COMMIT;",
                 (long long)n, (long long)st->run_first, (long long)mark);
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        if (!sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        OMS_WARN("store: sqlite:%s: trimming this run's sweep range: %s", st->path,
                 sqlite3_errmsg(st->db));
    }
}

static void free_store(store *st)
{
    for (int i = 0; i < WS__COUNT; i++)
        sqlite3_finalize(st->ws[i]);
    sqlite3_close(st->db);
    store__writer_dispose(&st->wr);
    oms_free(st->blob);
    oms_free(st->pending);
    oms_free(st);
}

/* SQLite's memory statistics take a global mutex on every allocation; the
 * store does not use them. Must run before SQLite initialises (a no-op
 * otherwise). */
/* SQLite allocates through base/alloc.h too, so that a failing allocator
 * reaches its SQLITE_NOMEM paths and ours behind them. SQLite asks for sizes
 * back (xSize): each block carries its size in an 8-byte header (SQLite
 * wants 8-byte alignment). */
static void *sq_malloc(int n)
{
    uint64_t *p = oms_malloc((size_t)n + 8);
    if (!p)
        return NULL;
    p[0] = (uint64_t)n;
    return p + 1;
}

static void sq_free(void *p)
{
    if (p)
        oms_free((uint64_t *)p - 1);
}

static void *sq_realloc(void *p, int n)
{
    uint64_t *q = oms_realloc((uint64_t *)p - 1, (size_t)n + 8);
    if (!q)
        return NULL;
    q[0] = (uint64_t)n;
    return q + 1;
}

static int sq_size(void *p)
{
    return p ? (int)((uint64_t *)p)[-1] : 0;
}

static int sq_roundup(int n)
{
    return (n + 7) & ~7;
}

static int sq_init(void *arg)
{
    (void)arg;
    return SQLITE_OK;
}

static void sq_shutdown(void *arg)
{
    (void)arg;
}

/* Before SQLite initializes (first store_open); if something else
 * initialized it first, the calls fail and SQLite keeps its defaults. */
static void configure_sqlite(void)
{
    static const sqlite3_mem_methods mem = {sq_malloc,  sq_free, sq_realloc,  sq_size,
                                            sq_roundup, sq_init, sq_shutdown, NULL};
    sqlite3_config(SQLITE_CONFIG_MALLOC, &mem);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

store *store__sqlite_open(const store_config *cfg, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_sqlite);
    if (errlen)
        err[0] = '\0';
    const char *url = cfg && cfg->url ? cfg->url : "";
    if (strncmp(url, "sqlite:", 7) != 0) {
        snprintf(err, errlen, "unsupported store url '%.200s' (want sqlite:PATH or postgres://...)",
                 url);
        return NULL;
    }
    const char *path = url + 7;
    if (!*path || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
        snprintf(err, errlen, "%.200s: a database file path is required", url);
        return NULL;
    }
    if (strlen(path) >= sizeof((store *)0)->path) {
        snprintf(err, errlen, "sqlite: path too long");
        return NULL;
    }
    store *st = oms_calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->base.be = &store__sqlite_backend;
    st->base.wr = &st->wr;
    strcpy(st->path, path);
    snprintf(st->name, sizeof st->name, "sqlite:%s", path);
    int wr_rc = store__writer_init(&st->wr, &sqlite_writer_ops, st, st->name, cfg);
    st->blob = oms_malloc(STORE__LINES_BLOB_MAX);
    if (wr_rc != 0 || !st->blob) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (open_db(path, &st->db, err, errlen) != 0)
        goto fail;
    if (store__schema_migrate(st, err, errlen) != 0 || store__prepare_writer(st, err, errlen) != 0)
        goto fail;
    st->wr.seq = query_int(st->db, "SELECT max(seq) FROM events");
    store__writer_raise_seq(&st->wr, st->wr.seq);
    int64_t hwm = query_int(st->db, "SELECT value FROM meta WHERE key = 'order_hwm'");
    int64_t max_order = query_int(st->db, "SELECT max(id) FROM orders");
    int64_t start = hwm > max_order ? hwm : max_order;
    st->id_block = cfg->id_block > 0 ? cfg->id_block : 16384;
    st->key_retention_ms = cfg->key_retention_ms > 0 ? cfg->key_retention_ms : 0;
    st->next_forget_ms = store__wall_ms(); /* a first look right after the start */
    if (open_id_block(st, start, err, errlen) != 0)
        goto fail;
    atomic_store(&st->next_order, start);
    if (store__writer_start(&st->wr) != 0) {
        snprintf(err, errlen, "sqlite:%s: cannot start the writer thread", path);
        goto fail;
    }
    return st;
fail:
    free_store(st);
    return NULL;
}

void store__sqlite_close(store *st)
{
    if (!st)
        return;
    store__writer_stop(&st->wr);
    trim_run_range(st);
    store__writer_log_totals(&st->wr);
    free_store(st);
}

/* Asks the writer to raise the order-id mark (once until it took it up). */
static void want_mark(store *st)
{
    if (!atomic_exchange(&st->mark_wanted, true))
        store__writer_wake(&st->wr);
}

store_rc store__sqlite_next_order_id(store *st, char out[STORE_ID_MAX + 1])
{
    int64_t n = atomic_load(&st->next_order), mark;
    do {
        mark = atomic_load(&st->id_mark);
        if (n >= mark) { /* the next block is not durable yet */
            want_mark(st);
            out[0] = '\0';
            return STORE_UNAVAILABLE;
        }
    } while (!atomic_compare_exchange_weak(&st->next_order, &n, n + 1));
    n++;
    if (mark - n < st->id_block / 2)
        want_mark(st);
    store__format_id(out, 'o', n);
    return STORE_OK;
}

void store_format_order_id(char out[STORE_ID_MAX + 1], int64_t n)
{
    store__format_id(out, 'o', n);
}

/* --- store_loop --------------------------------------------------------------------- */

store_loop *store__sqlite_loop_open(store *st, uv_loop_t *loop, char *err, size_t errlen)
{
    store_loop *sl = oms_calloc(1, sizeof *sl);
    if (!sl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sl->st = st;
    if (open_db(st->path, &sl->db, err, errlen) != 0)
        goto fail;
    sqlite3_exec(sl->db, "PRAGMA query_only=1", NULL, NULL, NULL);
    if (store__prepare_reader(sl, err, errlen) != 0 ||
        store__loop_start(&sl->lb, &store__sqlite_backend, &st->wr, loop, err, errlen) != 0)
        goto fail_db;
    return sl;
fail_db:
    store__finalize_reader(sl);
    sqlite3_close(sl->db);
fail:
    oms_free(sl);
    return NULL;
}

void store__sqlite_loop_close(store_loop *sl)
{
    if (!sl)
        return;
    store__finalize_reader(sl);
    sqlite3_close(sl->db);
    sl->db = NULL;
    store__loop_dispose(&sl->lb);
}

const store__backend store__sqlite_backend = {
    .name = "sqlite",
    .close = store__sqlite_close,
    .next_order_id = store__sqlite_next_order_id,
    .pending_sweeps = store__sqlite_pending_sweeps,
    .sweep_done = store__sqlite_sweep_done,
    .release_orphans = store__sqlite_release_orphans,
    .loop_open = store__sqlite_loop_open,
    .loop_close = store__sqlite_loop_close,
    .list_unused_order_ids = store__sqlite_list_unused_order_ids,
    .get_customer = store__sqlite_get_customer,
    .get_product = store__sqlite_get_product,
    .list_customers = store__sqlite_list_customers,
    .list_products = store__sqlite_list_products,
    .get_order = store__sqlite_get_order,
    .find_order_by_key = store__sqlite_find_order_by_key,
    .list_orders = store__sqlite_list_orders,
    .read_events = store__sqlite_read_events,
};
