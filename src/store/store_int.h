/* store_int.h - what the store's backends share, private to src/store.
 *
 *   store.c          store_open picks the backend by URL; the public calls
 *                    dispatch through its table
 *   sqlite*.c        the SQLite backend ("sqlite:PATH")
 *   pg*.c            the PostgreSQL backend ("postgres://...", "postgresql://...")
 *   record.c         records, ids ("c-<n>", "o-<n>"), the lines blob
 *
 * Each backend's store and store_loop begin with a store__base, whose table
 * the public functions in store.c call through: a store or store_loop pointer
 * converts to a pointer to its first member.
 */
#ifndef OMS_STORE_STORE_INT_H
#define OMS_STORE_STORE_INT_H

#include "store/store.h"

/* A backend: the public calls, same contracts as in store.h. */
typedef struct store__backend {
    const char *name; /* "sqlite", "postgres" */
    void (*close)(store *st);
    store_rc (*next_order_id)(store *st, char out[STORE_ID_MAX + 1]);
    size_t (*pending_sweeps)(store *st, store_id_range *out, size_t cap);
    store_rc (*sweep_done)(store *st, const store_id_range *r);
    int64_t (*last_seq)(store *st);
    long (*release_orphans)(store *st);
    void (*get_stats)(store *st, store_stats *out);
    store_loop *(*loop_open)(store *st, uv_loop_t *loop, char *err, size_t errlen);
    void (*loop_close)(store_loop *sl);
    void (*submit)(store_loop *sl, store_write *w);
    long (*list_unused_order_ids)(store_loop *sl, int64_t first, int64_t last, int64_t *out,
                                  size_t limit);
    store_rc (*get_customer)(store_loop *sl, const char *id, store_customer *out);
    store_rc (*get_product)(store_loop *sl, const char *sku, store_product *out);
    long (*list_customers)(store_loop *sl, const char *after_id, store_customer *out, size_t limit);
    long (*list_products)(store_loop *sl, const char *after_sku, store_product *out, size_t limit);
    store_rc (*get_order)(store_loop *sl, const char *id, store_order **out);
    store_rc (*find_order_by_key)(store_loop *sl, const char *customer_id,
                                  const char *idempotency_key, store_order **out);
    long (*list_orders)(store_loop *sl, const store_order_filter *f, const char *after_id,
                        store_order **out, size_t limit);
    long (*read_events)(store_loop *sl, int64_t from_seq, const char *order_id, store_event *out,
                        size_t limit);
} store__backend;

/* The first member of every backend's store and store_loop. */
typedef struct store__base {
    const store__backend *be;
} store__base;

/* The backends' openers (store_open's contract; the URL's prefix chose). */
store *store__sqlite_open(const store_config *cfg, char *err, size_t errlen);
store *store__pg_open(const store_config *cfg, char *err, size_t errlen);

/* record.c */
/* "c-12" / "o-12" -> 12; returns false unless the id is prefix, '-', 1..18
 * digits without a leading zero. */
bool store__parse_id(const char *id, char prefix, int64_t *n);
void store__format_id(char out[STORE_ID_MAX + 1], char prefix, int64_t n);
/* Copies at most cap-1 bytes and NUL-terminates. */
void store__copy(char *dst, size_t cap, const char *src);
#define STORE__LINES_BLOB_MAX (STORE_MAX_LINES * (1 + STORE_SKU_MAX + 16))
/* Encodes lines into buf (at least STORE__LINES_BLOB_MAX bytes); returns the
 * size. */
size_t store__lines_encode(const store_line *lines, size_t n, uint8_t *buf);
/* Counts the lines of a blob; -1 if malformed. */
long store__lines_count(const uint8_t *p, size_t len);
/* Decodes n lines (as counted) into out. */
void store__lines_decode(const uint8_t *p, size_t len, store_line *out, size_t n);

#endif
