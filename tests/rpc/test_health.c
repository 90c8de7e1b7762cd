/* Unit tests for the health registry (src/rpc/health.c): statuses, shutdown
 * and the service table. Check and Watch need live calls and are covered by
 * the integration tests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "rpc/health.h"

Test(rpc_health, whole_server_starts_serving)
{
    rpc_health *h = rpc_health_new();
    cr_assert_not_null(h);
    cr_assert_eq(rpc_health_get(h, ""), RPC_HEALTH_SERVING);
    cr_assert_eq(rpc_health_get(h, NULL), RPC_HEALTH_SERVING, "NULL means the whole server");
    cr_assert_eq(rpc_health_get(h, "oms.v1.OrderService"), RPC_HEALTH_SERVICE_UNKNOWN);
    rpc_health_free(h);
}

Test(rpc_health, set_change_and_forget)
{
    rpc_health *h = rpc_health_new();
    cr_assert_eq(rpc_health_set(h, "a.A", RPC_HEALTH_NOT_SERVING), 0);
    cr_assert_eq(rpc_health_get(h, "a.A"), RPC_HEALTH_NOT_SERVING);
    cr_assert_eq(rpc_health_set(h, "a.A", RPC_HEALTH_SERVING), 0);
    cr_assert_eq(rpc_health_get(h, "a.A"), RPC_HEALTH_SERVING);
    cr_assert_eq(rpc_health_set(h, "a.A", RPC_HEALTH_SERVING), 0, "same status again");

    /* the name is copied */
    char name[] = "b.B";
    cr_assert_eq(rpc_health_set(h, name, RPC_HEALTH_SERVING), 0);
    name[0] = 'x';
    cr_assert_eq(rpc_health_get(h, "b.B"), RPC_HEALTH_SERVING);

    cr_assert_eq(rpc_health_set(h, "a.A", RPC_HEALTH_SERVICE_UNKNOWN), 0);
    cr_assert_eq(rpc_health_get(h, "a.A"), RPC_HEALTH_SERVICE_UNKNOWN);
    cr_assert_eq(rpc_health_get(h, "b.B"), RPC_HEALTH_SERVING, "others stay");
    cr_assert_eq(rpc_health_set(h, "never.Set", RPC_HEALTH_SERVICE_UNKNOWN), 0);

    /* enough names to grow the table */
    for (int i = 0; i < 40; i++) {
        char n[32];
        snprintf(n, sizeof n, "svc.S%d", i);
        cr_assert_eq(rpc_health_set(h, n, i % 2 ? RPC_HEALTH_SERVING : RPC_HEALTH_NOT_SERVING), 0);
    }
    cr_assert_eq(rpc_health_get(h, "svc.S7"), RPC_HEALTH_SERVING);
    cr_assert_eq(rpc_health_get(h, "svc.S8"), RPC_HEALTH_NOT_SERVING);
    rpc_health_free(h);
}

Test(rpc_health, rejects_bad_arguments)
{
    rpc_health *h = rpc_health_new();
    cr_assert_eq(rpc_health_set(h, NULL, RPC_HEALTH_SERVING), RPC_EINVAL);
    cr_assert_eq(rpc_health_set(h, "a", (rpc_health_status)0), RPC_EINVAL);
    cr_assert_eq(rpc_health_set(h, "a", (rpc_health_status)4), RPC_EINVAL);
    cr_assert_eq(rpc_health_set(NULL, "a", RPC_HEALTH_SERVING), RPC_EINVAL);
    rpc_health_free(h);
    rpc_health_free(NULL);
}

Test(rpc_health, shutdown_sets_everything_not_serving_and_sticks)
{
    rpc_health *h = rpc_health_new();
    rpc_health_set(h, "a.A", RPC_HEALTH_SERVING);
    rpc_health_set(h, "b.B", RPC_HEALTH_NOT_SERVING);
    rpc_health_shutdown(h);
    cr_assert_eq(rpc_health_get(h, ""), RPC_HEALTH_NOT_SERVING);
    cr_assert_eq(rpc_health_get(h, "a.A"), RPC_HEALTH_NOT_SERVING);
    cr_assert_eq(rpc_health_get(h, "b.B"), RPC_HEALTH_NOT_SERVING);

    cr_assert_eq(rpc_health_set(h, "a.A", RPC_HEALTH_SERVING), 0);
    cr_assert_eq(rpc_health_get(h, "a.A"), RPC_HEALTH_NOT_SERVING, "ignored after shutdown");
    cr_assert_eq(rpc_health_set(h, "c.C", RPC_HEALTH_SERVING), 0);
    cr_assert_eq(rpc_health_get(h, "c.C"), RPC_HEALTH_SERVICE_UNKNOWN);
    rpc_health_shutdown(h);
    rpc_health_free(h);
}

Test(rpc_health, impl_serves_check_and_watch)
{
    rpc_health *h = rpc_health_new();
    const rpc_service_impl *impl = rpc_health_impl(h);
    cr_assert_eq(impl->desc, &grpc__health__v1__health__descriptor);
    cr_assert_str_eq(impl->desc->name, "grpc.health.v1.Health");
    cr_assert_eq(impl->data, h);
    for (unsigned i = 0; i < impl->desc->n_methods; i++) {
        const rpc_method_ops *ops = impl->ops[i];
        cr_assert_not_null(ops);
        cr_assert_not_null(ops->on_message);
        if (strcmp(impl->desc->methods[i].name, "Check") == 0) {
            cr_assert_eq(ops->flags, 0u, "Check is unary");
        } else {
            cr_assert_str_eq(impl->desc->methods[i].name, "Watch");
            cr_assert_eq(ops->flags, (unsigned)RPC_SERVER_STREAMING);
            cr_assert_not_null(ops->on_ready, "Watch is pulled");
            cr_assert_not_null(ops->on_cancel);
            cr_assert_not_null(ops->on_free);
        }
    }
    rpc_health_free(h);
}
