/* sqlite_sweep.c - reads for the start-up sweep of split mode: the order
 * numbers of a range that have no order (store.h, "sweep ranges"). */
#include <stdio.h>

#include "base/log.h"
#include "sqlite_int.h"

long store__sqlite_list_unused_order_ids(store_loop *sl, int64_t first, int64_t last, int64_t *out,
                                         size_t limit)
{
    if (first < 1)
        first = 1;
    if (limit == 0 || first > last)
        return 0;
    /* Rare (a page per 64..4096 ids, at start-up): prepared per call. */
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(sl->db, "SELECT id FROM orders WHERE id >= ?1 AND id <= ?2 ORDER BY id",
                           -1, &s, NULL) != SQLITE_OK) {
        OMS_ERROR("store: list unused order ids: %s", sqlite3_errmsg(sl->db));
        return -(long)STORE_ERROR;
    }
    store__bind_int64(s, 1, first);
    store__bind_int64(s, 2, last);
    size_t n = 0;
    int64_t cur = first; /* the next number not yet accounted for */
    int rc = SQLITE_ROW;
    while (n < limit && cur <= last) {
        rc = store__step(s);
        int64_t next_order = last + 1; /* none left: the gap runs to the end */
        if (rc == SQLITE_ROW)
            next_order = sqlite3_column_int64(s, 0);
        else if (rc != SQLITE_DONE)
            break;
        while (cur < next_order && n < limit)
            out[n++] = cur++;
        if (rc == SQLITE_DONE)
            break;
        if (cur == next_order)
            cur++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        OMS_ERROR("store: list unused order ids: %s", sqlite3_errmsg(sl->db));
        sqlite3_finalize(s);
        return -(long)STORE_ERROR;
    }
    sqlite3_finalize(s);
    return (long)n;
}
