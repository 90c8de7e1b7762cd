/* Tests of protoc-gen-omsrpc's server tables against the real rpc_server:
 * names, method order, call-type flags, UNIMPLEMENTED for missing handlers,
 * and registration errors. The generated code is compiled with -Werror as
 * part of this target's library (tests/CMakeLists.txt), so that it builds at
 * all is a test too. Dispatch through the trampolines is in test_stubs.c. */
#include <criterion/criterion.h>
#include <string.h>

#include "bare.omsrpc.h"
#include "cg/echo.omsrpc.h"

typedef Oms__Codegen__Deep__V1__Ping ping;

/* The typed signatures are the point: a handler of the wrong type for its
 * method does not compile. */
static void on_ping(rpc_call *c, const ping *req)
{
    (void)c;
    (void)req;
}

static void on_inner(rpc_call *c, const Oms__Codegen__Deep__V1__Outer__Inner *req)
{
    (void)c;
    (void)req;
}

static void on_msg(rpc_call *c, const Msg *req)
{
    (void)c;
    (void)req;
}

static void on_event(rpc_call *c)
{
    (void)c;
}

static void on_cancel(rpc_call *c, rpc_status code)
{
    (void)c;
    (void)code;
}

/* GetHTTPStatus has no handler: UNIMPLEMENTED. */
static const Oms__Codegen__Deep__V1__Echo_Server echo = {
    .unary = {.on_request = on_ping},
    .server_stream = {.on_request = on_ping, .on_ready = on_event, .on_cancel = on_cancel},
    .client_stream = {.on_request = on_ping, .on_half_close = on_event},
    .bidi = {.on_request = on_inner, .on_half_close = on_event, .on_free = on_event},
};

static const Oms__Codegen__Deep__V1__Other_Server other = {.unary = {.on_request = on_ping}};
static const Oms__Codegen__Deep__V1__Empty_Server empty = {0};
static const Bare_Server bare = {.say = {.on_request = on_msg}};

/* Every other Wide method is implemented. */
static const Oms__Codegen__Deep__V1__Wide_Server wide = {
    .m00 = {.on_request = on_ping},
    .m02 = {.on_request = on_ping},
    .m04 = {.on_request = on_ping},
    .m06 = {.on_request = on_ping},
    .m08 = {.on_request = on_ping},
    .m10 = {.on_request = on_ping},
    .m12 = {.on_request = on_ping},
    .m14 = {.on_request = on_ping},
    .m16 = {.on_request = on_ping},
    .m18 = {.on_request = on_ping},
    .m20 = {.on_request = on_ping},
    .m22 = {.on_request = on_ping},
};

static rpc_server *new_server(void)
{
    rpc_server_config cfg;
    rpc_server_config_init(&cfg);
    rpc_server *srv = rpc_server_new(&cfg);
    cr_assert_not_null(srv);
    return srv;
}

Test(codegen, register_server_adds_each_service_under_its_full_name)
{
    rpc_server *srv = new_server();
    int data;
    cr_assert_eq(oms__codegen__deep__v1__echo__register_server(srv, &echo, &data), 0);
    cr_assert_eq(oms__codegen__deep__v1__wide__register_server(srv, &wide, NULL), 0);
    cr_assert_eq(oms__codegen__deep__v1__other__register_server(srv, &other, NULL), 0);
    cr_assert_eq(oms__codegen__deep__v1__empty__register_server(srv, &empty, NULL), 0);
    cr_assert_eq(bare__register_server(srv, &bare, NULL), 0);

    static const char *const want[] = {"oms.codegen.deep.v1.Echo", "oms.codegen.deep.v1.Wide",
                                       "oms.codegen.deep.v1.Other", "oms.codegen.deep.v1.Empty",
                                       "Bare"};
    cr_assert_eq(rpc_server_service_count(srv), 5);
    for (size_t i = 0; i < 5; i++)
        cr_assert_str_eq(rpc_server_service_name(srv, i), want[i]);

    /* the same paths again, or no table at all */
    cr_assert_eq(oms__codegen__deep__v1__echo__register_server(srv, &echo, NULL), RPC_EINVAL);
    cr_assert_eq(bare__register_server(srv, NULL, NULL), RPC_EINVAL);
    rpc_server_free(srv);
}

Test(codegen, server_impl_describes_the_service)
{
    rpc_service_impl impl;
    const rpc_method_ops *ops[OMS__CODEGEN__DEEP__V1__ECHO__N_METHODS];
    int data;
    cr_assert_eq(OMS__CODEGEN__DEEP__V1__ECHO__N_METHODS, 5);
    cr_assert_eq(oms__codegen__deep__v1__echo__server_impl(&impl, ops, &echo, &data), 0);
    cr_assert_eq(impl.desc, &oms__codegen__deep__v1__echo__descriptor);
    cr_assert_eq(impl.ops, ops);
    cr_assert_eq(impl.data, &data);
    cr_assert_eq(impl.typed, &echo, "the trampolines' typed table");

    static const struct {
        const char *name;
        int flags; /* -1: no ops (UNIMPLEMENTED) */
        const ProtobufCMessageDescriptor *in, *out;
    } want[] = {
        {"Unary", 0, &oms__codegen__deep__v1__ping__descriptor,
         &oms__codegen__deep__v1__pong__descriptor},
        {"ServerStream", RPC_SERVER_STREAMING, &oms__codegen__deep__v1__ping__descriptor,
         &oms__codegen__deep__v1__pong__descriptor},
        {"ClientStream", RPC_CLIENT_STREAMING, &oms__codegen__deep__v1__ping__descriptor,
         &oms__codegen__deep__v1__pong__descriptor},
        {"Bidi", RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING,
         &oms__codegen__deep__v1__outer__inner__descriptor,
         &oms__codegen__types__v1__blob__descriptor},
        {"GetHTTPStatus", -1, &oms__codegen__deep__v1__ping__descriptor,
         &oms__codegen__deep__v1__pong__descriptor},
    };
    const ProtobufCServiceDescriptor *d = impl.desc;
    cr_assert_eq(d->n_methods, 5);
    for (size_t i = 0; i < 5; i++) {
        /* the path rpc routes by is "/<desc->name>/<method name>" */
        cr_assert_str_eq(d->methods[i].name, want[i].name, "method %zu", i);
        cr_assert_eq(d->methods[i].input, want[i].in);
        cr_assert_eq(d->methods[i].output, want[i].out);
        if (want[i].flags < 0) {
            cr_assert_null(ops[i], "%s has no handler: UNIMPLEMENTED", want[i].name);
            continue;
        }
        cr_assert_not_null(ops[i]);
        cr_assert_eq(ops[i]->flags, (unsigned)want[i].flags, "%s", want[i].name);
        cr_assert_not_null(ops[i]->on_message);
        /* the optional members are trampolines that check the typed table */
        cr_assert_not_null(ops[i]->on_ready);
        cr_assert_not_null(ops[i]->on_cancel);
        cr_assert_not_null(ops[i]->on_free);
        if (want[i].flags & RPC_CLIENT_STREAMING)
            cr_assert_not_null(ops[i]->on_half_close);
        else
            cr_assert_null(ops[i]->on_half_close, "rpc never calls it for %s", want[i].name);
    }
    cr_assert_str_eq(d->name, "oms.codegen.deep.v1.Echo");
}

Test(codegen, many_methods_keep_proto_order)
{
    rpc_service_impl impl;
    const rpc_method_ops *ops[OMS__CODEGEN__DEEP__V1__WIDE__N_METHODS];
    cr_assert_eq(OMS__CODEGEN__DEEP__V1__WIDE__N_METHODS, 24);
    cr_assert_eq(oms__codegen__deep__v1__wide__server_impl(&impl, ops, &wide, NULL), 0);
    for (size_t i = 0; i < 24; i++) {
        char name[8];
        snprintf(name, sizeof name, "M%02zu", i);
        cr_assert_str_eq(impl.desc->methods[i].name, name);
        if (i % 2) {
            cr_assert_null(ops[i], "%s", name);
            continue;
        }
        unsigned flags = i == 20   ? (unsigned)RPC_SERVER_STREAMING
                         : i == 22 ? (unsigned)(RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING)
                                   : 0u;
        cr_assert_eq(ops[i]->flags, flags, "%s", name);
    }
    /* the ops of two services never mix, even for a shared method name */
    const rpc_method_ops *echo_ops[5], *other_ops[1];
    rpc_service_impl e, o;
    cr_assert_eq(oms__codegen__deep__v1__echo__server_impl(&e, echo_ops, &echo, NULL), 0);
    cr_assert_eq(oms__codegen__deep__v1__other__server_impl(&o, other_ops, &other, NULL), 0);
    cr_assert_neq(echo_ops[0], other_ops[0]);
    cr_assert_eq(o.desc, &oms__codegen__deep__v1__other__descriptor);
}

Test(codegen, service_without_methods_and_bad_arguments)
{
    rpc_service_impl impl;
    const rpc_method_ops *ops[1];
    cr_assert_eq(OMS__CODEGEN__DEEP__V1__EMPTY__N_METHODS, 0);
    cr_assert_eq(oms__codegen__deep__v1__empty__server_impl(&impl, ops, &empty, NULL), 0);
    cr_assert_eq(impl.desc->n_methods, 0);
    cr_assert_eq(oms__codegen__deep__v1__empty__server_impl(NULL, ops, &empty, NULL), RPC_EINVAL);
    cr_assert_eq(oms__codegen__deep__v1__empty__server_impl(&impl, NULL, &empty, NULL), RPC_EINVAL);
    cr_assert_eq(oms__codegen__deep__v1__empty__server_impl(&impl, ops, NULL, NULL), RPC_EINVAL);
}
