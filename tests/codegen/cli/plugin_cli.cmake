# protoc-gen-omsrpc from the command line (ctest unit.codegen.plugin_cli):
#   cmake -DPROTOC=... -DPLUGIN=... -DSRC=tests/codegen -DOUT=dir -P plugin_cli.cmake
# Checks what the compiled tests cannot: no output for a file without
# services, errors for options and name clashes, keyword member names.

function(run out_dir)
  file(REMOVE_RECURSE ${out_dir})
  file(MAKE_DIRECTORY ${out_dir})
  execute_process(
    COMMAND ${PROTOC} --plugin=protoc-gen-omsrpc=${PLUGIN} -I${SRC}/proto -I${SRC}/cli
            --omsrpc_out=${out_dir} ${ARGN}
    RESULT_VARIABLE rc ERROR_VARIABLE err)
  set(rc ${rc} PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

# A file without services: nothing at all.
run(${OUT}/none cg/types.proto)
file(GLOB_RECURSE files ${OUT}/none/*)
if(NOT rc EQUAL 0 OR files)
  message(FATAL_ERROR "types.proto: rc=${rc} err=${err} files=${files}")
endif()

# Options are refused.
run(${OUT}/opt --omsrpc_opt=fast cg/echo.proto)
if(rc EQUAL 0 OR NOT err MATCHES "unknown parameter \"fast\"")
  message(FATAL_ERROR "--omsrpc_opt: rc=${rc} err=${err}")
endif()

# A method named like our registration function is refused, with a reason.
run(${OUT}/clash clash.proto)
if(rc EQUAL 0 OR NOT err MATCHES "cli__s__register_server.*rename the method")
  message(FATAL_ERROR "clash.proto: rc=${rc} err=${err}")
endif()

# A C keyword as method name: the struct member gets a '_'.
run(${OUT}/kw keyword.proto)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "keyword.proto: rc=${rc} err=${err}")
endif()
file(READ ${OUT}/kw/keyword.omsrpc.h h)
if(NOT h MATCHES "} return_;" OR NOT h MATCHES "cli__k__return__send\\(")
  message(FATAL_ERROR "keyword.proto: no member return_ / cli__k__return__send in\n${h}")
endif()

# Two files in one run, each with its three outputs.
run(${OUT}/two cg/echo.proto bare.proto)
foreach(f cg/echo.omsrpc.h cg/echo.omsrpc.c cg/echo.omsrpc-client.c bare.omsrpc.h bare.omsrpc.c
          bare.omsrpc-client.c)
  if(NOT EXISTS ${OUT}/two/${f})
    message(FATAL_ERROR "missing ${f} (rc=${rc} err=${err})")
  endif()
endforeach()
message(STATUS "plugin_cli: all checks passed")
