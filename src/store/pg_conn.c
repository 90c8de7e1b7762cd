/* pg_conn.c - libpq helpers of the PostgreSQL backend: connections with
 * bounded reconnects, text parameters, binary results, SQLSTATE meanings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "pg_int.h"

int64_t store__pg_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t store__pg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* scheme://[user[:password]@]host[:port][/db][?query] -> without password
 * and query: a password may sit in either. */
void store__pg_redact(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    if (!p) {
        snprintf(out, cap, "postgres");
        return;
    }
    p += 3;
    size_t end = strcspn(p, "?");
    const char *at = memchr(p, '@', end);
    const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (colon)
        snprintf(out, cap, "%.*s%.*s%.*s", (int)(p - url), url, (int)(colon - p), p,
                 (int)(p + end - at), at);
    else
        snprintf(out, cap, "%.*s", (int)(p - url + (ptrdiff_t)end), url);
}

/* Server notices ("relation already exists, skipping") are not errors:
 * dropped instead of printed on stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int prepare_all(PGconn *c, const char *const *stmts, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        PGresult *r = PQprepare(c, name, stmts[i], 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok && err)
            snprintf(err, errlen, "preparing statement %d: %s", i, PQerrorMessage(c));
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

int store__pg_connect(pg_conn *pc, const char *url, const char *const *stmts, int n, char *err,
                      size_t errlen)
{
    /* Defaults first: the URL's own settings (expand_dbname) override them. */
    const char *keys[] = {"connect_timeout",
                          "application_name",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "dbname",
                          NULL};
    const char *vals[] = {"5", "omsd", "10", "5", "3", url, NULL};
    pc->c = PQconnectdbParams(keys, vals, 1);
    pc->prepared = 0;
    if (!pc->c || PQstatus(pc->c) != CONNECTION_OK) {
        char name[256];
        store__pg_redact(url, name, sizeof name);
        const char *m = pc->c ? PQerrorMessage(pc->c) : "out of memory";
        size_t len = strlen(m);
        while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
            len--;
        snprintf(err, errlen, "%s: %.*s", name, (int)len, m);
        PQfinish(pc->c);
        pc->c = NULL;
        return -1;
    }
    PQsetNoticeProcessor(pc->c, on_notice, NULL);
    if (prepare_all(pc->c, stmts, n, err, errlen) != 0) {
        PQfinish(pc->c);
        pc->c = NULL;
        return -1;
    }
    pc->backoff_ms = 100;
    return 0;
}

int store__pg_ensure(pg_conn *pc, const char *url, const char *const *stmts, int n)
{
    if (pc->c && PQstatus(pc->c) == CONNECTION_OK)
        return 0;
    int64_t now = store__pg_mono_ms();
    if (now < pc->retry_at_ms)
        return -1;
    store__pg_disconnect(pc);
    char err[256];
    if (store__pg_connect(pc, url, stmts, n, err, sizeof err) == 0) {
        char name[256];
        store__pg_redact(url, name, sizeof name);
        OMS_INFO("store: reconnected to %s", name);
        return 0;
    }
    if (pc->backoff_ms < 100)
        pc->backoff_ms = 100;
    pc->retry_at_ms = store__pg_mono_ms() + pc->backoff_ms;
    OMS_WARN("store: reconnect failed (next try in %lld ms): %s", (long long)pc->backoff_ms, err);
    pc->backoff_ms = pc->backoff_ms * 2 > 2000 ? 2000 : pc->backoff_ms * 2;
    return -1;
}

void store__pg_disconnect(pg_conn *pc)
{
    PQfinish(pc->c);
    pc->c = NULL;
    pc->prepared = 0;
}

void store__pg_p_i64(pg_params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)v);
    p->v[p->n] = p->num[p->n];
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

void store__pg_p_text(pg_params *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

void store__pg_p_bytea(pg_params *p, const void *b, size_t n)
{
    p->v[p->n] = n ? b : "";
    p->len[p->n] = (int)n;
    p->fmt[p->n] = 1;
    p->n++;
}

PGresult *store__pg_run(PGconn *c, int i, const pg_params *p)
{
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    static const pg_params none = {0};
    if (!p)
        p = &none;
    return PQexecPrepared(c, name, p->n, p->v, p->len, p->fmt, 1);
}

bool store__pg_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

int64_t store__pg_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
    int len = PQgetlength(r, row, col);
    uint64_t u = 0;
    for (int i = 0; i < len && i < 8; i++)
        u = (u << 8) | v[i];
    if (len == 4)
        return (int32_t)(uint32_t)u;
    if (len == 2)
        return (int16_t)(uint16_t)u;
    if (len == 1) /* bool */
        return (int64_t)u;
    return (int64_t)u;
}

void store__pg_text(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    size_t n = (size_t)PQgetlength(r, row, col);
    if (n > cap - 1)
        n = cap - 1;
    memcpy(dst, PQgetvalue(r, row, col), n);
    dst[n] = '\0';
}

const char *store__pg_describe(const char *state, bool conn_bad)
{
    if (!state || !*state)
        return conn_bad ? "database unavailable" : "database error (details in the server log)";
    static const struct {
        const char *state, *text;
    } known[] = {
        {"53100", "database disk full"},
        {"25006", "database is read-only"},
        {"53300", "database has too many connections"},
        {"53200", "database out of memory"},
        {"40001", "database transaction conflict"},
        {"40P01", "database transaction conflict"},
        {"55P03", "database lock not available"},
        {"57014", "database statement timed out"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(state, known[i].state) == 0)
            return known[i].text;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
        return "database unavailable";
    return "database error (details in the server log)";
}

store_rc store__pg_classify(const char *state, bool conn_bad)
{
    if (!state || !*state)
        return conn_bad ? STORE_UNAVAILABLE : STORE_ERROR;
    if (strcmp(state, "53100") == 0) /* disk_full */
        return STORE_FULL;
    if (strncmp(state, "08", 2) == 0 ||  /* connection exceptions */
        strncmp(state, "57P", 3) == 0 || /* admin/crash shutdown, cannot connect now */
        strcmp(state, "25006") == 0 ||   /* read_only_sql_transaction */
        strcmp(state, "53300") == 0 ||   /* too_many_connections */
        strcmp(state, "53200") == 0 ||   /* out_of_memory (server) */
        strcmp(state, "40001") == 0 ||   /* serialization_failure */
        strcmp(state, "40P01") == 0 ||   /* deadlock_detected */
        strcmp(state, "55P03") == 0 ||   /* lock_not_available */
        strcmp(state, "57014") == 0)     /* query_canceled (statement_timeout) */
        return STORE_UNAVAILABLE;
    return STORE_ERROR;
}
