/* rc.c - store results by name, for logs and status messages. */
#include "store/store.h"

const char *store_rc_name(store_rc rc)
{
    static const char *const names[] = {
        [STORE_OK] = "OK",
        [STORE_NOT_FOUND] = "NOT_FOUND",
        [STORE_EXISTS] = "EXISTS",
        [STORE_CONFLICT] = "CONFLICT",
        [STORE_PRECONDITION] = "PRECONDITION",
        [STORE_INVALID] = "INVALID",
        [STORE_ERROR] = "ERROR",
        [STORE_CLOSED] = "CLOSED",
        [STORE_UNAVAILABLE] = "UNAVAILABLE",
        [STORE_FULL] = "FULL",
    };
    if ((unsigned)rc < sizeof names / sizeof names[0])
        return names[rc];
    return "UNKNOWN";
}

store_rc store_count_rc(long n)
{
    if (n >= 0)
        return STORE_OK;
    if (n < -(long)STORE_FULL) /* not a store_rc */
        return STORE_ERROR;
    return (store_rc)-n;
}
