# protobuf-c sources are generated at build time (never committed), and one
# FileDescriptorSet with every transitive import is embedded for reflection.

set(GRPC_PROTO_DIR /usr/share/grpc-proto CACHE PATH "Debian grpc-proto package root")
set(PROTOBUF_INCLUDE_DIR /usr/include CACHE PATH "Where google/protobuf/*.proto live")
# google/rpc/{status,error_details}.proto (rich error details): Debian 12's
# grpc-proto does not ship them; golang-github-gogo-googleapis-dev does, as
# plain googleapis copies (package google.rpc, no gogo imports).
set(GOOGLEAPIS_PROTO_DIR /usr/share/gocode/src/github.com/gogo/googleapis CACHE PATH
    "Where google/rpc/*.proto live (Debian golang-github-gogo-googleapis-dev)")
set(OMS_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${OMS_GEN_DIR})

set(OMS_PROTO_PATH -I${CMAKE_SOURCE_DIR}/proto -I${GRPC_PROTO_DIR} -I${GOOGLEAPIS_PROTO_DIR}
    -I${PROTOBUF_INCLUDE_DIR})

# Every .proto compiled to C: (import path, root dir) pairs.
set(OMS_PROTOS
    grpc/testing/empty.proto
    grpc/testing/messages.proto
    grpc/testing/test.proto
    grpc/health/v1/health.proto
    grpc/reflection/v1/reflection.proto
    grpc/reflection/v1alpha/reflection.proto
    oms/bench/v1/bench.proto
    oms/v1/customer.proto
    oms/v1/inventory.proto
    oms/v1/order.proto
    google/rpc/status.proto
    google/rpc/error_details.proto
    google/protobuf/any.proto
    google/protobuf/duration.proto
    google/protobuf/descriptor.proto)

# The protos omsd serves; the descriptor set carries them and their imports.
# google.rpc's detail messages are in it too, so that a reflection client can
# resolve the type_url of the Any messages in grpc-status-details-bin.
set(OMS_SERVED_PROTOS
    google/rpc/status.proto
    google/rpc/error_details.proto
    grpc/testing/test.proto
    grpc/health/v1/health.proto
    grpc/reflection/v1/reflection.proto
    grpc/reflection/v1alpha/reflection.proto
    oms/bench/v1/bench.proto
    oms/v1/customer.proto
    oms/v1/inventory.proto
    oms/v1/order.proto)

function(oms_proto_source out_var rel)
  foreach(root ${CMAKE_SOURCE_DIR}/proto ${GRPC_PROTO_DIR} ${GOOGLEAPIS_PROTO_DIR}
               ${PROTOBUF_INCLUDE_DIR})
    if(EXISTS ${root}/${rel})
      set(${out_var} ${root}/${rel} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "proto ${rel} not found (install grpc-proto, "
                      "golang-github-gogo-googleapis-dev and libprotobuf-dev)")
endfunction()

set(OMS_GEN_SOURCES)
set(OMS_PROTO_FILES)
foreach(rel ${OMS_PROTOS})
  oms_proto_source(src ${rel})
  list(APPEND OMS_PROTO_FILES ${src})
  string(REGEX REPLACE "\\.proto$" "" stem ${rel})
  set(c ${OMS_GEN_DIR}/${stem}.pb-c.c)
  set(h ${OMS_GEN_DIR}/${stem}.pb-c.h)
  add_custom_command(
    OUTPUT ${c} ${h}
    COMMAND ${PROTOC_C} ${OMS_PROTO_PATH} --c_out=${OMS_GEN_DIR} ${rel}
    DEPENDS ${src}
    COMMENT "protoc-c ${rel}"
    VERBATIM)
  list(APPEND OMS_GEN_SOURCES ${c})
endforeach()

add_library(oms_proto STATIC ${OMS_GEN_SOURCES})
target_include_directories(oms_proto PUBLIC ${OMS_GEN_DIR})
target_link_libraries(oms_proto PUBLIC PkgConfig::PROTOBUFC)
# Hidden: libomsrpc.so carries some of these objects (cmake/install.cmake) and
# exports none of their descriptors (docs/ABI.md).
set_target_properties(oms_proto PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)

# Descriptor set -> C array.
set(OMS_FDS ${OMS_GEN_DIR}/oms.fds)
set(OMS_FDS_C ${OMS_GEN_DIR}/oms_fds.c)
add_custom_command(
  OUTPUT ${OMS_FDS}
  COMMAND ${PROTOC} ${OMS_PROTO_PATH} --include_imports --descriptor_set_out=${OMS_FDS}
          ${OMS_SERVED_PROTOS}
  DEPENDS ${OMS_PROTO_FILES}
  COMMENT "protoc descriptor set"
  VERBATIM)
add_custom_command(
  OUTPUT ${OMS_FDS_C}
  COMMAND ${CMAKE_COMMAND} -DIN=${OMS_FDS} -DOUT=${OMS_FDS_C} -DSYM=oms_descriptor_set
          -P ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
  DEPENDS ${OMS_FDS} ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
  VERBATIM)
add_library(oms_fds STATIC ${OMS_FDS_C})

# --- typed server tables and client stubs (tools/protoc-gen-omsrpc) -------------

# oms_omsrpc_generate(<prefix> OUT_DIR <dir> IMPORT_DIRS <dir>... PROTOS <rel>...)
#
# Runs protoc with protoc-gen-omsrpc over each proto (named relative to its
# import dir, as protoc-c's outputs are) and sets, in the caller's scope,
# <prefix>_SERVER_SOURCES (X.omsrpc.c), <prefix>_CLIENT_SOURCES
# (X.omsrpc-client.c) and <prefix>_HEADERS (X.omsrpc.h). Pass only protos that
# declare a service: the plugin writes nothing for the others. The generated
# code includes protoc-c's X.pb-c.h from the same OUT_DIR, and, like every
# custom command output, can only be compiled by targets of the calling
# directory.
function(oms_omsrpc_generate prefix)
  cmake_parse_arguments(PARSE_ARGV 1 A "" "OUT_DIR" "IMPORT_DIRS;PROTOS")
  set(ipath)
  foreach(dir ${A_IMPORT_DIRS})
    list(APPEND ipath -I${dir})
  endforeach()
  set(server)
  set(client)
  set(headers)
  foreach(rel ${A_PROTOS})
    set(src)
    foreach(dir ${A_IMPORT_DIRS})
      if(NOT src AND EXISTS ${dir}/${rel})
        set(src ${dir}/${rel})
      endif()
    endforeach()
    if(NOT src)
      message(FATAL_ERROR "oms_omsrpc_generate: ${rel} not found in ${A_IMPORT_DIRS}")
    endif()
    string(REGEX REPLACE "\\.proto$" "" stem ${A_OUT_DIR}/${rel})
    add_custom_command(
      OUTPUT ${stem}.omsrpc.h ${stem}.omsrpc.c ${stem}.omsrpc-client.c
      COMMAND ${PROTOC} --plugin=protoc-gen-omsrpc=$<TARGET_FILE:protoc-gen-omsrpc> ${ipath}
              --omsrpc_out=${A_OUT_DIR} ${rel}
      DEPENDS ${src} protoc-gen-omsrpc
      COMMENT "protoc-gen-omsrpc ${rel}"
      VERBATIM)
    list(APPEND server ${stem}.omsrpc.c)
    list(APPEND client ${stem}.omsrpc-client.c)
    list(APPEND headers ${stem}.omsrpc.h)
  endforeach()
  set(${prefix}_SERVER_SOURCES ${server} PARENT_SCOPE)
  set(${prefix}_CLIENT_SOURCES ${client} PARENT_SCOPE)
  set(${prefix}_HEADERS ${headers} PARENT_SCOPE)
endfunction()

set(OMS_IMPORT_DIRS ${CMAKE_SOURCE_DIR}/proto ${GRPC_PROTO_DIR} ${GOOGLEAPIS_PROTO_DIR}
    ${PROTOBUF_INCLUDE_DIR})

# Services oms_rpc implements itself. Their server tables are compiled here
# (the generated files can only be used in this directory) into an object
# library that src/rpc folds into oms_rpc.
oms_omsrpc_generate(OMS_RPC_GEN OUT_DIR ${OMS_GEN_DIR} IMPORT_DIRS ${OMS_IMPORT_DIRS}
  PROTOS grpc/health/v1/health.proto
         grpc/reflection/v1/reflection.proto
         grpc/reflection/v1alpha/reflection.proto)
add_library(oms_rpc_gen OBJECT ${OMS_RPC_GEN_SERVER_SOURCES})
target_include_directories(oms_rpc_gen PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_compile_options(oms_rpc_gen PRIVATE ${OMS_WARNINGS})
target_link_libraries(oms_rpc_gen PUBLIC oms_proto PkgConfig::LIBUV)
set_target_properties(oms_rpc_gen PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)

# The services of src/services and src/orders (TestService, OrderBench, the order
# system): their server tables sit above oms_rpc, in a library of their own.
oms_omsrpc_generate(OMS_SVC_GEN OUT_DIR ${OMS_GEN_DIR} IMPORT_DIRS ${OMS_IMPORT_DIRS}
  PROTOS grpc/testing/test.proto oms/bench/v1/bench.proto oms/v1/customer.proto
         oms/v1/inventory.proto oms/v1/order.proto)
add_library(oms_svc_gen STATIC ${OMS_SVC_GEN_SERVER_SOURCES})
target_compile_options(oms_svc_gen PRIVATE ${OMS_WARNINGS})
target_link_libraries(oms_svc_gen PUBLIC oms_rpc oms_proto)

# Client stubs of every service above, kept apart from the server tables so
# that omsd links none of them. Built with everything else (so they always
# compile, warning-free), linked by nothing until the rpc_client.h
# implementation exists.
add_library(oms_client_gen STATIC ${OMS_RPC_GEN_CLIENT_SOURCES} ${OMS_SVC_GEN_CLIENT_SOURCES})
target_compile_options(oms_client_gen PRIVATE ${OMS_WARNINGS})
target_link_libraries(oms_client_gen PUBLIC oms_rpc oms_proto)

# One plugin run writes a proto's server and client files; two libraries use
# them. A single owner target runs the rules, so that a parallel build never
# runs the same rule twice at once.
add_custom_target(oms_omsrpc_sources DEPENDS ${OMS_RPC_GEN_SERVER_SOURCES}
                  ${OMS_RPC_GEN_CLIENT_SOURCES} ${OMS_SVC_GEN_SERVER_SOURCES}
                  ${OMS_SVC_GEN_CLIENT_SOURCES})
add_dependencies(oms_rpc_gen oms_omsrpc_sources)
add_dependencies(oms_svc_gen oms_omsrpc_sources)
add_dependencies(oms_client_gen oms_omsrpc_sources)
