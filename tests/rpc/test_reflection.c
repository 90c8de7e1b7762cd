/* Unit tests for the reflection index (src/rpc/reflection.c): lookups on the
 * descriptor set embedded in omsd, and on small hand-built sets for the
 * corner cases (extensions, duplicates, missing imports, bad input). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "rpc/reflection.h"

extern const unsigned char oms_descriptor_set[];
extern const size_t oms_descriptor_set_len;

static rpc_reflection *refl;

static void setup(void)
{
    refl = rpc_reflection_new(oms_descriptor_set, oms_descriptor_set_len);
    cr_assert_not_null(refl);
}

static void teardown(void)
{
    rpc_reflection_free(refl);
    refl = NULL;
}

/* Name of the file defining symbol, or NULL. */
static const char *file_of(const char *symbol)
{
    long f = rpc_reflection_find_symbol(refl, symbol);
    return f < 0 ? NULL : rpc_reflection_file_name(refl, (size_t)f);
}

TestSuite(rpc_reflection, .init = setup, .fini = teardown);

Test(rpc_reflection, indexes_every_file_of_the_set)
{
    static const char *const want[] = {
        "grpc/testing/empty.proto",
        "grpc/testing/messages.proto",
        "grpc/testing/test.proto",
        "grpc/health/v1/health.proto",
        "grpc/reflection/v1/reflection.proto",
        "grpc/reflection/v1alpha/reflection.proto",
        "oms/bench/v1/bench.proto",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        long f = rpc_reflection_find_file(refl, want[i]);
        cr_assert_geq(f, 0, "%s", want[i]);
        cr_assert_str_eq(rpc_reflection_file_name(refl, (size_t)f), want[i]);
    }
    cr_assert_eq(rpc_reflection_find_file(refl, "test.proto"), -1);
    cr_assert_eq(rpc_reflection_find_file(refl, "grpc/testing/nope.proto"), -1);
    cr_assert_null(rpc_reflection_file_name(refl, rpc_reflection_file_count(refl)));
}

Test(rpc_reflection, symbol_to_file)
{
    static const struct {
        const char *symbol, *file;
    } table[] = {
        {"grpc.testing.TestService", "grpc/testing/test.proto"},
        {"grpc.testing.TestService.UnaryCall", "grpc/testing/test.proto"},
        {"grpc.testing.TestService.FullDuplexCall", "grpc/testing/test.proto"},
        {"grpc.testing.UnimplementedService", "grpc/testing/test.proto"},
        {"grpc.testing.SimpleRequest", "grpc/testing/messages.proto"},
        {"grpc.testing.SimpleRequest.response_size", "grpc/testing/messages.proto"},
        {"grpc.testing.Empty", "grpc/testing/empty.proto"},
        /* nested message, nested enum, a map entry */
        {"grpc.testing.LoadBalancerStatsResponse.RpcsByPeer", "grpc/testing/messages.proto"},
        {"grpc.testing.ClientConfigureRequest.RpcType", "grpc/testing/messages.proto"},
        {"grpc.testing.LoadBalancerStatsResponse.RpcsByPeerEntry", "grpc/testing/messages.proto"},
        /* an enum, and one of its values (scoped beside the enum) */
        {"grpc.testing.PayloadType", "grpc/testing/messages.proto"},
        {"grpc.testing.COMPRESSABLE", "grpc/testing/messages.proto"},
        {"grpc.health.v1.Health", "grpc/health/v1/health.proto"},
        {"grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"},
        {"grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"},
        {"grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"},
        {"grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"},
        {"grpc.reflection.v1alpha.ServerReflectionRequest.message_request",
         "grpc/reflection/v1alpha/reflection.proto"},
        {"oms.bench.v1.OrderBench", "oms/bench/v1/bench.proto"},
        /* clients sometimes send the leading dot of a resolved name */
        {".grpc.testing.SimpleResponse", "grpc/testing/messages.proto"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const char *got = file_of(table[i].symbol);
        cr_assert_not_null(got, "%s not found", table[i].symbol);
        cr_assert_str_eq(got, table[i].file, "%s", table[i].symbol);
    }
}

Test(rpc_reflection, unknown_symbol_is_not_found)
{
    cr_assert_null(file_of("grpc.testing.NoSuchMessage"));
    cr_assert_null(file_of("grpc.testing.TestService.NoSuchCall"));
    cr_assert_null(file_of("SimpleRequest"));
    cr_assert_null(file_of("grpc.testing.SimpleReques"));
    cr_assert_null(file_of(""));
}

Test(rpc_reflection, transitive_deps_of_test_proto)
{
    long f = rpc_reflection_find_file(refl, "grpc/testing/test.proto");
    cr_assert_geq(f, 0);
    size_t n = rpc_reflection_file_count(refl);
    size_t *out = calloc(n, sizeof(*out));
    size_t got = rpc_reflection_file_closure(refl, (size_t)f, out, n);
    cr_assert_eq(got, 3);
    /* The requested file comes first: grpcurl takes the first as the answer. */
    cr_assert_eq(out[0], (size_t)f);
    const char *a = rpc_reflection_file_name(refl, out[1]);
    const char *b = rpc_reflection_file_name(refl, out[2]);
    cr_assert((strcmp(a, "grpc/testing/empty.proto") == 0 &&
               strcmp(b, "grpc/testing/messages.proto") == 0) ||
                  (strcmp(b, "grpc/testing/empty.proto") == 0 &&
                   strcmp(a, "grpc/testing/messages.proto") == 0),
              "deps: %s, %s", a, b);

    long e = rpc_reflection_find_file(refl, "grpc/testing/empty.proto");
    cr_assert_eq(rpc_reflection_file_closure(refl, (size_t)e, out, n), 1);
    cr_assert_eq(out[0], (size_t)e);
    cr_assert_eq(rpc_reflection_file_closure(refl, n, out, n), 0);
    free(out);
}

Test(rpc_reflection, file_bytes_are_the_file_descriptor)
{
    for (size_t i = 0; i < rpc_reflection_file_count(refl); i++) {
        size_t len = 0;
        const uint8_t *p = rpc_reflection_file_bytes(refl, i, &len);
        cr_assert_not_null(p);
        Google__Protobuf__FileDescriptorProto *fd =
            google__protobuf__file_descriptor_proto__unpack(NULL, len, p);
        cr_assert_not_null(fd);
        cr_assert_str_eq(fd->name, rpc_reflection_file_name(refl, i));
        google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    }
}

Test(rpc_reflection, extension_queries_on_a_set_without_extensions)
{
    int32_t nums[4];
    cr_assert_eq(rpc_reflection_extension_numbers(refl, "grpc.testing.SimpleRequest", nums, 4), 0);
    cr_assert_eq(rpc_reflection_extension_numbers(refl, "grpc.testing.NoSuch", nums, 4), -1);
    /* a service is not a message type */
    cr_assert_eq(rpc_reflection_extension_numbers(refl, "grpc.testing.TestService", nums, 4), -1);
    cr_assert_eq(rpc_reflection_find_extension(refl, "grpc.testing.SimpleRequest", 100), -1);
}

/* --- hand-built sets -------------------------------------------------------- */

/* Packs a set of files; the caller frees the result. */
static uint8_t *pack_set(Google__Protobuf__FileDescriptorProto **files, size_t n, size_t *len)
{
    Google__Protobuf__FileDescriptorSet set = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
    set.n_file = n;
    set.file = files;
    *len = google__protobuf__file_descriptor_set__get_packed_size(&set);
    uint8_t *buf = malloc(*len ? *len : 1);
    google__protobuf__file_descriptor_set__pack(&set, buf);
    return buf;
}

Test(rpc_reflection_sets, extensions_duplicates_and_missing_imports)
{
    /* a.proto: package p; message M { extensions 100 to 200; } */
    Google__Protobuf__DescriptorProto m = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
    m.name = "M";
    Google__Protobuf__DescriptorProto *msgs[] = {&m};
    Google__Protobuf__FileDescriptorProto a = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    a.name = "a.proto";
    a.package = "p";
    a.n_message_type = 1;
    a.message_type = msgs;

    /* b.proto: package q; import "a.proto"; import "missing.proto";
     * extend p.M { int32 ext = 150; int32 ext2 = 120; } */
    Google__Protobuf__FieldDescriptorProto e1 = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT;
    e1.name = "ext";
    e1.has_number = 1;
    e1.number = 150;
    e1.extendee = ".p.M";
    Google__Protobuf__FieldDescriptorProto e2 = e1;
    e2.name = "ext2";
    e2.number = 120;
    Google__Protobuf__FieldDescriptorProto *exts[] = {&e1, &e2};
    char *deps[] = {"a.proto", "missing.proto"};
    Google__Protobuf__FileDescriptorProto b = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    b.name = "b.proto";
    b.package = "q";
    b.n_dependency = 2;
    b.dependency = deps;
    b.n_extension = 2;
    b.extension = exts;

    /* a second "a.proto" that must be ignored */
    Google__Protobuf__FileDescriptorProto a2 = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    a2.name = "a.proto";
    a2.package = "other";

    Google__Protobuf__FileDescriptorProto *files[] = {&a, &b, &a2};
    size_t len;
    uint8_t *buf = pack_set(files, 3, &len);
    rpc_reflection *r = rpc_reflection_new(buf, len);
    free(buf);
    cr_assert_not_null(r);

    cr_assert_eq(rpc_reflection_file_count(r), 2);
    long fa = rpc_reflection_find_file(r, "a.proto");
    long fb = rpc_reflection_find_file(r, "b.proto");
    cr_assert_geq(fa, 0);
    cr_assert_geq(fb, 0);
    cr_assert_eq(rpc_reflection_find_symbol(r, "p.M"), fa);
    cr_assert_eq(rpc_reflection_find_symbol(r, "q.ext"), fb);
    cr_assert_eq(rpc_reflection_find_extension(r, "p.M", 150), fb);
    cr_assert_eq(rpc_reflection_find_extension(r, ".p.M", 120), fb);
    cr_assert_eq(rpc_reflection_find_extension(r, "p.M", 121), -1);

    int32_t nums[4];
    cr_assert_eq(rpc_reflection_extension_numbers(r, "p.M", nums, 4), 2);
    cr_assert_eq(nums[0], 120);
    cr_assert_eq(nums[1], 150);
    cr_assert_eq(rpc_reflection_extension_numbers(r, "p.M", nums, 1), 2, "count past cap");

    size_t out[2];
    cr_assert_eq(rpc_reflection_file_closure(r, (size_t)fb, out, 2), 2, "missing import skipped");
    cr_assert_eq(out[0], (size_t)fb);
    cr_assert_eq(out[1], (size_t)fa);
    rpc_reflection_free(r);
}

Test(rpc_reflection_sets, no_package_and_empty_set)
{
    Google__Protobuf__DescriptorProto m = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
    m.name = "Top";
    Google__Protobuf__DescriptorProto *msgs[] = {&m};
    Google__Protobuf__FileDescriptorProto a = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    a.name = "top.proto";
    a.n_message_type = 1;
    a.message_type = msgs;
    Google__Protobuf__FileDescriptorProto *files[] = {&a};
    size_t len;
    uint8_t *buf = pack_set(files, 1, &len);
    rpc_reflection *r = rpc_reflection_new(buf, len);
    free(buf);
    cr_assert_not_null(r);
    cr_assert_eq(rpc_reflection_find_symbol(r, "Top"), 0);
    cr_assert_eq(rpc_reflection_find_symbol(r, ".Top"), 0);
    rpc_reflection_free(r);

    r = rpc_reflection_new(NULL, 0);
    cr_assert_not_null(r, "an empty set is a valid set");
    cr_assert_eq(rpc_reflection_file_count(r), 0);
    cr_assert_eq(rpc_reflection_find_symbol(r, "x"), -1);
    cr_assert_eq(rpc_reflection_find_file(r, "x"), -1);
    rpc_reflection_free(r);
}

Test(rpc_reflection_sets, rejects_garbage_and_nameless_files)
{
    static const uint8_t truncated[] = {0x0a, 0x05, 0x0a, 0x01};
    cr_assert_null(rpc_reflection_new(truncated, sizeof truncated));

    Google__Protobuf__FileDescriptorProto a = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
    Google__Protobuf__FileDescriptorProto *files[] = {&a};
    size_t len;
    uint8_t *buf = pack_set(files, 1, &len);
    cr_assert_null(rpc_reflection_new(buf, len));
    free(buf);
}
