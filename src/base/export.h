/* OMS_EXTERN marks libomsrpc's public API (as UV_EXTERN does in uv.h).
 *
 * The libraries that make up libomsrpc.so (base, http2, rpc, metrics and the protobuf-c
 * code they carry; cmake/install.cmake) are compiled with
 * -fvisibility=hidden, so only declarations carrying OMS_EXTERN in the
 * installed headers (base/log.h, http2/http2.h, rpc/{rpc,rpc_client,health,
 * reflection,trace}.h, metrics/metrics.h) are exported from the shared library. Internals
 * (rpc__*, http2__*, everything in *_int.h) and the generated descriptors
 * (google__protobuf__*, grpc__health__*, ...) stay inside it. docs/ABI.md
 * says what a release may change. In the static libraries and the programs
 * the macro changes nothing. */
#ifndef OMS_BASE_EXPORT_H
#define OMS_BASE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define OMS_EXTERN __attribute__((visibility("default")))
#else
#define OMS_EXTERN
#endif

#endif
