/* list_stream.h - server-streaming List calls over store pages (not installed). */
#ifndef OMS_ORDERS_LIST_STREAM_H
#define OMS_ORDERS_LIST_STREAM_H

#include "orders/orders_int.h"

/* list_stream.c: a server-streaming List call paging through the store by a
 * string key (ListCustomers, ListProducts). The pager is static data. */
typedef struct orders_pager {
    size_t rec_size; /* bytes of one record */
    /* Up to limit records after key `after` ("" from the start) into page;
     * the count, or a negative store_rc (store_count_rc). */
    long (*read)(store_loop *sl, const char *after, void *page, size_t limit);
    const char *(*key)(const void *rec);       /* the record's paging key */
    int (*send)(rpc_call *c, const void *rec); /* rpc_call_send's result */
    const char *read_failed;                   /* the message when a read fails */
} orders_pager;

/* Validates page_size (0: cfg.page_size, capped by it) and starts streaming.
 * The pager's state lives in the call's data slot. */
void orders__list_start(rpc_call *c, const orders_pager *p, int32_t page_size);
/* The method's on_ready. */
void orders__list_ready(rpc_call *c);

#endif
