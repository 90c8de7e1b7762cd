/* reflection.h - gRPC server reflection from an embedded descriptor set.
 *
 * Serves grpc.reflection.v1.ServerReflection and its older twin
 * grpc.reflection.v1alpha.ServerReflection (same schema, other package; grpcurl
 * tries v1 first and falls back to v1alpha, some clients only speak v1alpha).
 *
 * protobuf-c has no descriptor pool, so this module indexes a serialized
 * google.protobuf.FileDescriptorSet itself (grpc/grpc doc/server-reflection.md):
 * files by name, every fully-qualified symbol (messages including nested ones,
 * fields, oneofs, enums, enum values, services, methods, extensions) by name,
 * and extensions by (extendee, number). The set must hold every transitive
 * import of the served files, with the import paths used at compile time
 * (`protoc --include_imports --descriptor_set_out`), or clients fail with
 * "File not found"/"Symbol not found".
 *
 * Threading: an rpc_reflection is read-only once built, so one object may
 * serve calls on every loop.
 */
#ifndef OMS_RPC_REFLECTION_H
#define OMS_RPC_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/rpc.h"
#include "base/export.h"

typedef struct rpc_reflection rpc_reflection;

/* Parses fds/len, a serialized google.protobuf.FileDescriptorSet, and builds
 * the index. The bytes are borrowed for this call only: what is kept is
 * copied. A file name seen twice keeps its first occurrence. Returns NULL if
 * the set does not decode, a file has no name, or memory runs out. */
OMS_EXTERN rpc_reflection *rpc_reflection_new(const uint8_t *fds, size_t len);

/* Frees r. The services registered with rpc_reflection_register() use it, so
 * free it only after every server it was registered with is freed. NULL is
 * a no-op. */
OMS_EXTERN void rpc_reflection_free(rpc_reflection *r);

/* Registers grpc.reflection.v1.ServerReflection and
 * grpc.reflection.v1alpha.ServerReflection on srv, both answered from r.
 * list_services reports the services registered on srv at request time, so
 * the order of registration does not matter. r is borrowed and must outlive
 * srv. One rpc_reflection serves one server: registering it with a second
 * server returns RPC_EINVAL. Otherwise returns 0 or what
 * rpc_server_add_service() returns (RPC_EINVAL if a reflection service is
 * already registered on srv, RPC_ENOMEM); if the v1alpha registration fails,
 * v1 stays registered and the server should be dropped. */
OMS_EXTERN int rpc_reflection_register(rpc_server *srv, rpc_reflection *r);

/* --- index queries (used by the handlers; public for tests and tools) ---- */

/* Number of files in the index. */
OMS_EXTERN size_t rpc_reflection_file_count(const rpc_reflection *r);

/* Name of file i (e.g. "grpc/testing/test.proto"), or NULL when i is out of
 * range. The string belongs to r. */
OMS_EXTERN const char *rpc_reflection_file_name(const rpc_reflection *r, size_t i);

/* Serialized FileDescriptorProto of file i; *len gets its length. The bytes
 * belong to r. NULL when i is out of range. */
OMS_EXTERN const uint8_t *rpc_reflection_file_bytes(const rpc_reflection *r, size_t i, size_t *len);

/* Index of the file named name, or -1. */
OMS_EXTERN long rpc_reflection_find_file(const rpc_reflection *r, const char *name);

/* Index of the file defining the fully-qualified symbol (a leading '.' is
 * accepted), e.g. "grpc.testing.TestService", "grpc.testing.TestService.
 * UnaryCall", "grpc.testing.SimpleRequest.response_size", or -1. Enum values
 * are scoped like protobuf scopes them: as siblings of their enum
 * ("grpc.testing.COMPRESSABLE"). */
OMS_EXTERN long rpc_reflection_find_symbol(const rpc_reflection *r, const char *symbol);

/* Index of the file declaring extension number of the message type extendee
 * (fully qualified, leading '.' accepted), or -1. */
OMS_EXTERN long rpc_reflection_find_extension(const rpc_reflection *r, const char *extendee,
                                              int32_t number);

/* Extension numbers declared for the message type `type` (fully qualified,
 * leading '.' accepted), ascending: up to cap of them are written to out.
 * Returns how many exist (possibly more than cap), or -1 when type is not a
 * message in the index. */
OMS_EXTERN long rpc_reflection_extension_numbers(const rpc_reflection *r, const char *type,
                                                 int32_t *out, size_t cap);

/* Collects file i and its transitive dependencies, each once, file i first
 * then the others depth-first in import order, into out (capacity cap;
 * rpc_reflection_file_count(r) always suffices). Dependencies missing from
 * the set are skipped. Returns the number of indices written, or 0 when i is
 * out of range or memory runs out. */
OMS_EXTERN size_t rpc_reflection_file_closure(const rpc_reflection *r, size_t i, size_t *out,
                                              size_t cap);

#endif
