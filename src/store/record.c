/* record.c - order records, public ids and the private lines encoding.
 *
 * Order lines are stored as one BLOB per order (and per reservation) rather
 * than one row per line: a CreateOrder then costs one insert, not 1 + lines.
 * Each line is: u8 sku length, the sku bytes, quantity and unit price as
 * 8-byte little-endian integers. Nothing outside src/store sees this.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "sqlite_int.h"

store_order *store_order_new(size_t nlines)
{
    if (nlines > (SIZE_MAX - sizeof(store_order)) / sizeof(store_line))
        return NULL;
    store_order *o = oms_calloc(1, sizeof *o + nlines * sizeof o->lines[0]);
    if (o)
        o->nlines = nlines;
    return o;
}

void store_order_free(store_order *o)
{
    oms_free(o);
}

bool store__parse_id(const char *id, char prefix, int64_t *n)
{
    if (!id || id[0] != prefix || id[1] != '-')
        return false;
    const char *p = id + 2;
    if (*p < '1' || *p > '9')
        return false;
    int64_t v = 0;
    size_t digits = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || ++digits > 18)
            return false;
        v = v * 10 + (*p - '0');
    }
    *n = v;
    return true;
}

void store__format_id(char out[STORE_ID_MAX + 1], char prefix, int64_t n)
{
    snprintf(out, STORE_ID_MAX + 1, "%c-%lld", prefix, (long long)n);
}

void store__copy(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

void store__col_text(sqlite3_stmt *s, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    if (n > cap - 1)
        n = cap - 1;
    if (t)
        memcpy(dst, t, n);
    else
        n = 0;
    dst[n] = '\0';
}

static void put64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(u >> (8 * i));
}

static int64_t get64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)p[i] << (8 * i);
    return (int64_t)u;
}

size_t store__lines_encode(const store_line *lines, size_t n, uint8_t *buf)
{
    uint8_t *p = buf;
    if (n > STORE_MAX_LINES)
        n = STORE_MAX_LINES;
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(lines[i].sku, STORE_SKU_MAX);
        *p++ = (uint8_t)len;
        memcpy(p, lines[i].sku, len);
        p += len;
        put64(p, lines[i].quantity);
        put64(p + 8, lines[i].unit_price_cents);
        p += 16;
    }
    return (size_t)(p - buf);
}

long store__lines_count(const uint8_t *p, size_t len)
{
    long n = 0;
    size_t off = 0;
    while (off < len) {
        size_t l = p[off];
        if (l > STORE_SKU_MAX || len - off < 1 + l + 16)
            return -1;
        off += 1 + l + 16;
        n++;
    }
    return n;
}

void store__lines_decode(const uint8_t *p, size_t len, store_line *out, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n && off < len; i++) {
        size_t l = p[off++];
        memcpy(out[i].sku, p + off, l);
        out[i].sku[l] = '\0';
        off += l;
        out[i].quantity = get64(p + off);
        out[i].unit_price_cents = get64(p + off + 8);
        off += 16;
    }
}

/* The statement whose last bind failed on this thread, and the failure:
 * store__step returns it instead of running the statement with a missing
 * parameter, so the caller's step check fails the operation. */
static _Thread_local sqlite3_stmt *bind_failed;
static _Thread_local int bind_failed_rc;

static void bind_rc(sqlite3_stmt *s, int rc)
{
    if (rc != SQLITE_OK) {
        bind_failed = s;
        bind_failed_rc = rc;
    }
}

void store__bind_int(sqlite3_stmt *s, int i, int v)
{
    bind_rc(s, sqlite3_bind_int(s, i, v));
}

void store__bind_int64(sqlite3_stmt *s, int i, int64_t v)
{
    bind_rc(s, sqlite3_bind_int64(s, i, v));
}

void store__bind_text(sqlite3_stmt *s, int i, const char *v, int n, void (*d)(void *))
{
    bind_rc(s, sqlite3_bind_text(s, i, v, n, d));
}

void store__bind_blob(sqlite3_stmt *s, int i, const void *v, int n, void (*d)(void *))
{
    bind_rc(s, sqlite3_bind_blob(s, i, v, n, d));
}

int store__step(sqlite3_stmt *s)
{
    if (bind_failed == s) {
        bind_failed = NULL;
        return bind_failed_rc;
    }
    return sqlite3_step(s);
}
