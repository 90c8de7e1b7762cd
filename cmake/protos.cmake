# protobuf-c sources are generated at build time (never committed), and one
# FileDescriptorSet with every transitive import is embedded for reflection.

set(GRPC_PROTO_DIR /usr/share/grpc-proto CACHE PATH "Debian grpc-proto package root")
set(PROTOBUF_INCLUDE_DIR /usr/include CACHE PATH "Where google/protobuf/*.proto live")
set(OMS_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${OMS_GEN_DIR})

set(OMS_PROTO_PATH -I${CMAKE_SOURCE_DIR}/proto -I${GRPC_PROTO_DIR} -I${PROTOBUF_INCLUDE_DIR})

# Every .proto compiled to C: (import path, root dir) pairs.
set(OMS_PROTOS
    grpc/testing/empty.proto
    grpc/testing/messages.proto
    grpc/testing/test.proto
    grpc/health/v1/health.proto
    grpc/reflection/v1/reflection.proto
    grpc/reflection/v1alpha/reflection.proto
    oms/bench/v1/bench.proto
    google/protobuf/descriptor.proto)

# The protos omsd serves; the descriptor set carries them and their imports.
set(OMS_SERVED_PROTOS
    grpc/testing/test.proto
    grpc/health/v1/health.proto
    grpc/reflection/v1/reflection.proto
    grpc/reflection/v1alpha/reflection.proto
    oms/bench/v1/bench.proto)

function(oms_proto_source out_var rel)
  foreach(root ${CMAKE_SOURCE_DIR}/proto ${GRPC_PROTO_DIR} ${PROTOBUF_INCLUDE_DIR})
    if(EXISTS ${root}/${rel})
      set(${out_var} ${root}/${rel} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "proto ${rel} not found (install grpc-proto and libprotobuf-dev)")
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
set_target_properties(oms_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)

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
