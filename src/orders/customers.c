/* customers.c - oms.v1.CustomerService over the store.
 *
 * Reads are synchronous on the call's loop (its store_loop); writes go to the
 * store writer in a store_write from the call's arena, with a call reference
 * held until the write's completion runs on the loop, which answers unless
 * the call ended meanwhile.
 */
#include <stdio.h>
#include <string.h>

#include "orders/list_stream.h"
#include "orders/orders_int.h"

/* A write made for a call: the request and the call it answers. */
typedef struct cust_write {
    store_write w;
    rpc_call *c;
} cust_write;

/* The call's orders_loop, or NULL after finishing c with UNAVAILABLE. */
static orders_loop *call_loop(rpc_call *c)
{
    orders_loop *ol = orders__call_loop(c);
    if (!ol)
        rpc_call_finish(c, RPC_UNAVAILABLE, "order system not attached to this loop");
    return ol;
}

/* A zeroed write for c from its arena, or NULL after finishing c. */
static cust_write *write_new(rpc_call *c, store_op op)
{
    cust_write *cw = rpc_call_alloc(c, sizeof *cw);
    if (!cw) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    cw->c = c;
    cw->w.op = op;
    cw->w.data = cw;
    cw->w.at = orders__now_ms();
    return cw;
}

/* Queues cw on ol's store connection; done runs on the loop, with the call
 * still referenced. */
static void write_submit(orders_loop *ol, cust_write *cw, store_write_cb done)
{
    cw->w.done = done;
    rpc_call_ref(cw->c);
    store_submit(ol->sl, &cw->w);
}

/* Completion shared by the unary writes: the customer, or the store's error. */
static void on_customer_written(store_write *w)
{
    cust_write *cw = w->data;
    rpc_call *c = cw->c;
    if (!rpc_call_done(c)) {
        if (w->rc == STORE_OK) {
            Oms__V1__Customer m;
            orders__customer_msg(&w->customer, &m);
            orders__reply(c, &m.base);
        } else {
            rpc_call_finish(c, orders__status(w->rc), w->msg[0] ? w->msg : store_rc_name(w->rc));
        }
    }
    rpc_call_unref(c);
}

/* --- validation ---------------------------------------------------------------- */

static bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* A dot-atom local part: printable ASCII without specials, dots not leading,
 * trailing or doubled; at most 64 bytes. */
static bool local_ok(const char *s, size_t n)
{
    static const char specials[] = "!#$%&'*+/=?^_`{|}~-";
    if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!is_alnum(ch) && !strchr(specials, ch)) {
            return false;
        }
    }
    return true;
}

/* Host name labels of [A-Za-z0-9-] (not leading or trailing '-'), 1..63 bytes
 * each, at least two of them, the last (the TLD) at least two letters. */
static bool domain_ok(const char *s, size_t n)
{
    size_t labels = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!is_alnum(s[i]) && s[i] != '-')
                return false;
            continue;
        }
        size_t len = i - start;
        if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
            return false;
        labels++;
        if (i == n) {
            if (len < 2)
                return false;
            for (size_t k = start; k < i; k++)
                if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z')))
                    return false;
        }
        start = i + 1;
    }
    return labels >= 2;
}

/* "local@domain.tld", at most STORE_EMAIL_MAX bytes. */
static bool email_ok(const char *s)
{
    size_t n = strlen(s);
    const char *at = strchr(s, '@');
    if (n == 0 || n > STORE_EMAIL_MAX || !at || strchr(at + 1, '@'))
        return false;
    size_t ln = (size_t)(at - s);
    return local_ok(s, ln) && domain_ok(at + 1, n - ln - 1);
}

/* Ids are "c-<n>" of 1..STORE_ID_MAX bytes; finishes c if id is unusable. */
static bool id_ok(rpc_call *c, const char *id)
{
    char why[96];
    if (!orders__check_len("id", id, 1, STORE_ID_MAX, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return false;
    }
    return true;
}

/* --- CreateCustomer / GetCustomer / SetCustomerStatus (unary) ------------------------ */

static void on_create_customer(rpc_call *c, const Oms__V1__CreateCustomerRequest *req)
{
    if (orders__call_owner(c)) {
        rpc_call_finish(c, RPC_PERMISSION_DENIED,
                        "a token bound to a customer cannot create customers");
        return;
    }
    char why[160];
    size_t nlen = strlen(req->name);
    if (!orders__check_name("name", req->name, STORE_NAME_MAX, why, sizeof why) ||
        !orders__check_len("email", req->email, 1, STORE_EMAIL_MAX, why, sizeof why)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, why, NULL);
        return;
    }
    if (!email_ok(req->email)) {
        orders__fail(c, RPC_INVALID_ARGUMENT, "email: must look like local@domain.tld", NULL);
        return;
    }
    orders_loop *ol = call_loop(c);
    cust_write *cw = ol ? write_new(c, STORE_CUSTOMER_CREATE) : NULL;
    if (!cw)
        return;
    memcpy(cw->w.customer.name, req->name, nlen + 1);
    memcpy(cw->w.customer.email, req->email, strlen(req->email) + 1);
    write_submit(ol, cw, on_customer_written);
}

static void on_get_customer(rpc_call *c, const Oms__V1__GetCustomerRequest *req)
{
    if (!id_ok(c, req->id))
        return;
    orders_loop *ol = call_loop(c);
    if (!ol)
        return;
    store_customer r;
    /* A customer-bound caller sees its own record only; another customer's
     * is answered as a missing one (not even read). */
    store_rc rc =
        orders__owner_ok(c, req->id) ? store_get_customer(ol->sl, req->id, &r) : STORE_NOT_FOUND;
    if (rc != STORE_OK) {
        char msg[192];
        const char *q = RPC_QUOTE(req->id, strlen(req->id));
        if (rc == STORE_NOT_FOUND)
            snprintf(msg, sizeof msg, "customer %s not found", q);
        else
            snprintf(msg, sizeof msg, "reading customer %s: %s", q, store_rc_name(rc));
        rpc_call_finish(c, orders__status(rc), msg);
        return;
    }
    Oms__V1__Customer m;
    orders__customer_msg(&r, &m);
    orders__reply(c, &m.base);
}

static void on_set_customer_status(rpc_call *c, const Oms__V1__SetCustomerStatusRequest *req)
{
    if (!id_ok(c, req->id))
        return;
    if (req->status != OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE &&
        req->status != OMS__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED) {
        orders__fail(c, RPC_INVALID_ARGUMENT, "status: must be ACTIVE or SUSPENDED", NULL);
        return;
    }
    /* A customer-bound caller changes no status: not its own (a suspended
     * customer must not lift its suspension), and another customer's is
     * answered as the store answers a missing one. */
    if (orders__call_owner(c)) {
        if (!orders__owner_ok(c, req->id)) {
            char msg[64];
            snprintf(msg, sizeof msg, "customer %s not found", req->id);
            rpc_call_finish(c, RPC_NOT_FOUND, msg);
        } else {
            rpc_call_finish(c, RPC_PERMISSION_DENIED,
                            "a token bound to a customer cannot change customer status");
        }
        return;
    }
    orders_loop *ol = call_loop(c);
    cust_write *cw = ol ? write_new(c, STORE_CUSTOMER_SET_STATUS) : NULL;
    if (!cw)
        return;
    memcpy(cw->w.customer.id, req->id, strlen(req->id) + 1);
    cw->w.customer.status = (int)req->status;
    write_submit(ol, cw, on_customer_written);
}

/* --- ListCustomers (server streaming) ----------------------------------------------- */

static long read_customers(store_loop *sl, const char *after, void *page, size_t limit)
{
    return store_list_customers(sl, after, page, limit);
}

static const char *customer_key(const void *rec)
{
    return ((const store_customer *)rec)->id;
}

static int send_customer(rpc_call *c, const void *rec)
{
    Oms__V1__Customer m;
    orders__customer_msg(rec, &m);
    return oms__v1__customer_service__list_customers__send(c, &m);
}

static const orders_pager customer_pager = {
    .rec_size = sizeof(store_customer),
    .read = read_customers,
    .key = customer_key,
    .send = send_customer,
    .read_failed = "reading customers failed",
};

/* ListCustomers for a customer-bound caller: its own record (if it exists),
 * after the same page_size check as a full listing. */
static void list_own_customer(rpc_call *c, const char *owner, int32_t page_size)
{
    if (page_size < 0) {
        orders__fail(c, RPC_INVALID_ARGUMENT, "page_size: must be >= 0", NULL);
        return;
    }
    orders_loop *ol = call_loop(c);
    if (!ol)
        return;
    store_customer r;
    store_rc rc = owner[0] && strlen(owner) <= STORE_ID_MAX ? store_get_customer(ol->sl, owner, &r)
                                                            : STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND) {
        rpc_call_finish(c, RPC_OK, NULL);
        return;
    }
    if (rc != STORE_OK) {
        rpc_call_finish(c, orders__status(rc), customer_pager.read_failed);
        return;
    }
    Oms__V1__Customer m;
    orders__customer_msg(&r, &m);
    orders__reply(c, &m.base);
}

static void on_list_customers(rpc_call *c, const Oms__V1__ListCustomersRequest *req)
{
    const char *owner = orders__call_owner(c);
    if (owner)
        list_own_customer(c, owner, req->page_size);
    else
        orders__list_start(c, &customer_pager, req->page_size);
}

const Oms__V1__CustomerService_Server orders__customer_handlers = {
    .create_customer = {.on_request = on_create_customer},
    .get_customer = {.on_request = on_get_customer},
    .list_customers = {.on_request = on_list_customers, .on_ready = orders__list_ready},
    .set_customer_status = {.on_request = on_set_customer_status},
};
