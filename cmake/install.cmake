# libomsrpc, installable: `cmake --install <build> --prefix <prefix>` puts
#
#   include/oms/{base,http2,rpc,metrics}/*.h
#                                      the public headers; users compile with
#                                      -I<prefix>/include/oms, so they include
#                                      each other as "rpc/rpc.h" as in-tree
#   lib/libomsrpc.so.X.Y.Z, .so.X.Y, .so, lib/libomsrpc.a
#                                      base + http2 + rpc + metrics, with the protobuf-c
#                                      code of health, reflection and descriptor
#   bin/protoc-gen-omsrpc              the protoc plugin (typed tables, stubs)
#   lib/pkgconfig/omsrpc.pc
#   lib/cmake/omsrpc/                  find_package(omsrpc CONFIG): targets
#                                      omsrpc::omsrpc (shared), omsrpc::omsrpc_static,
#                                      omsrpc::protoc-gen-omsrpc and omsrpc_generate()
#
# Both libraries are built from the layer libraries' objects (compiled once,
# PIC), not from the layer targets themselves: linking those would drag their
# PkgConfig:: targets into the export and every static layer archive into
# users' links. tests/install checks the result the way a user would use it.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Their dependencies, as the .pc file and the package config find them too
# (cmake/omsrpcConfig.cmake.in makes the same two pkg-config calls): the
# public headers include uv.h and protobuf-c/protobuf-c.h; nghttp2, OpenSSL,
# zlib and jansson (pbjson, Connect's JSON) stay inside the library (needed only when linking it statically).
set(OMSRPC_PC_REQUIRES libprotobuf-c libuv)
set(OMSRPC_PC_REQUIRES_PRIVATE libnghttp2 openssl zlib jansson)
pkg_check_modules(OMSRPC_PUBLIC_DEPS REQUIRED IMPORTED_TARGET ${OMSRPC_PC_REQUIRES})
pkg_check_modules(OMSRPC_PRIVATE_DEPS REQUIRED IMPORTED_TARGET ${OMSRPC_PC_REQUIRES_PRIVATE})

# Of oms_proto (every .proto of the build, PIC) only what src/rpc uses: health
# and reflection (health.c, reflection.c and their server tables) and
# descriptor (reflection.c), google.rpc.Status with Any and the detail
# messages (status_details.c). The test and bench protos stay out. Should
# CMake ever name objects differently, the filter drops these and the
# --no-undefined link of omsrpc below fails.
set(OMSRPC_PROTO_OBJECTS
    "$<FILTER:$<TARGET_OBJECTS:oms_proto>,INCLUDE,/(grpc/health/v1/health|grpc/reflection/v1/reflection|grpc/reflection/v1alpha/reflection|google/protobuf/descriptor|google/rpc/status|google/rpc/error_details|google/protobuf/any|google/protobuf/duration)\\.pb-c\\.c\\.o$>")
set(OMSRPC_OBJECTS
    $<TARGET_OBJECTS:oms_base> $<TARGET_OBJECTS:oms_http1_parse> $<TARGET_OBJECTS:oms_http2>
    $<TARGET_OBJECTS:oms_pbjson> $<TARGET_OBJECTS:oms_rpc>
    $<TARGET_OBJECTS:oms_rpc_gen> $<TARGET_OBJECTS:oms_metrics> ${OMSRPC_PROTO_OBJECTS})

# While the major version is 0 every minor release may break the ABI, so the
# SONAME carries both (libomsrpc.so.0.1); from 1.0 on, the major alone.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(OMSRPC_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  set(OMSRPC_COMPATIBILITY SameMinorVersion)
else()
  set(OMSRPC_SOVERSION ${PROJECT_VERSION_MAJOR})
  set(OMSRPC_COMPATIBILITY SameMajorVersion)
endif()

add_library(omsrpc SHARED ${OMSRPC_OBJECTS})
add_library(omsrpc_static STATIC ${OMSRPC_OBJECTS})
set_target_properties(omsrpc PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${OMSRPC_SOVERSION}
                                        LINKER_LANGUAGE C)
set_target_properties(omsrpc_static PROPERTIES OUTPUT_NAME omsrpc LINKER_LANGUAGE C)
# An object missing from the list above fails here, not in a user's link.
target_link_options(omsrpc PRIVATE -Wl,--no-undefined)
target_link_libraries(omsrpc PUBLIC PkgConfig::OMSRPC_PUBLIC_DEPS
                      PRIVATE PkgConfig::OMSRPC_PRIVATE_DEPS ${HTTP_PARSER_LIBRARY} m)
target_link_libraries(omsrpc_static PUBLIC PkgConfig::OMSRPC_PUBLIC_DEPS
                      PRIVATE PkgConfig::OMSRPC_PRIVATE_DEPS ${HTTP_PARSER_LIBRARY} m)
set(OMSRPC_PC_CFLAGS "")
set(OMSRPC_PC_LIBS "")
foreach(t omsrpc omsrpc_static)
  target_include_directories(${t} INTERFACE $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/src>
                             $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/oms>)
  # A sanitized library needs the sanitizer runtimes in every program that
  # links it, so an OMS_SANITIZE build makes its users sanitized too.
  if(OMS_SANITIZE)
    target_compile_options(${t} INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(${t} INTERFACE -fsanitize=address,undefined)
    set(OMSRPC_PC_CFLAGS " -fsanitize=address,undefined -fno-omit-frame-pointer")
    set(OMSRPC_PC_LIBS " -fsanitize=address,undefined")
  endif()
endforeach()

install(FILES src/base/export.h src/base/log.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/oms/base)
install(FILES src/http2/http2.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/oms/http2)
install(FILES src/rpc/rpc.h src/rpc/rpc_client.h src/rpc/health.h src/rpc/reflection.h src/rpc/trace.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/oms/rpc)
install(FILES src/metrics/metrics.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/oms/metrics)
install(TARGETS omsrpc omsrpc_static protoc-gen-omsrpc EXPORT omsrpcTargets
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})

# As words, for omsrpc.pc and omsrpcConfig.cmake.
string(JOIN " " OMSRPC_PC_REQUIRES ${OMSRPC_PC_REQUIRES})
string(JOIN " " OMSRPC_PC_REQUIRES_PRIVATE ${OMSRPC_PC_REQUIRES_PRIVATE})

set(OMSRPC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/omsrpc)
install(EXPORT omsrpcTargets NAMESPACE omsrpc:: DESTINATION ${OMSRPC_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/omsrpcConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/omsrpcConfig.cmake
                              INSTALL_DESTINATION ${OMSRPC_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/omsrpcConfigVersion.cmake
                                 COMPATIBILITY ${OMSRPC_COMPATIBILITY})
install(FILES ${CMAKE_BINARY_DIR}/omsrpcConfig.cmake ${CMAKE_BINARY_DIR}/omsrpcConfigVersion.cmake
        DESTINATION ${OMSRPC_CMAKE_DIR})

# omsrpc.pc names the prefix given to `cmake --install --prefix`, known only
# at install time: the file is written then, into the build tree, and
# installed from there.
install(CODE "
  set(prefix \"\${CMAKE_INSTALL_PREFIX}\")
  set(includedir \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(libdir \"${CMAKE_INSTALL_LIBDIR}\")
  set(version \"${PROJECT_VERSION}\")
  set(requires \"${OMSRPC_PC_REQUIRES}\")
  set(requires_private \"${OMSRPC_PC_REQUIRES_PRIVATE}\")
  set(extra_cflags \"${OMSRPC_PC_CFLAGS}\")
  set(extra_libs \"${OMSRPC_PC_LIBS}\")
  configure_file(\"${CMAKE_CURRENT_LIST_DIR}/omsrpc.pc.in\" \"${CMAKE_BINARY_DIR}/omsrpc.pc\" @ONLY)
")
install(FILES ${CMAKE_BINARY_DIR}/omsrpc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
