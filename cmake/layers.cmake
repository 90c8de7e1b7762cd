# The layering (STYLE.md §1) as part of the build: scripts/check_layers.py
# reads every #include under src/, tools/ and examples/ and fails on an
# upward include, another layer's internal header (*_int.h and headers that
# include one), nghttp2/OpenSSL/SQLite/libpq/zlib/jansson/http_parser outside
# the layers allowed, or an example using a header that is not installed. It
# runs on every build (ALL, ~0.1 s; a failure fails `make build`) and as the
# ctest layering.includes; tests/layering proves it catches planted
# violations. A check rather than per-layer include directories because the
# third-party headers live in /usr/include, on every compiler's default path,
# and a quoted "../http2/http2_int.h" resolves next to the including file
# whatever the include directories say: no CMake setting can stop either.
find_program(OMS_PYTHON3 NAMES python3 REQUIRED)
option(OMS_CHECK_LAYERS "Fail the build on an #include that crosses a layer boundary" ON)
if(OMS_CHECK_LAYERS)
  add_custom_target(oms_check_layers ALL
    COMMAND ${OMS_PYTHON3} ${CMAKE_SOURCE_DIR}/scripts/check_layers.py --root ${CMAKE_SOURCE_DIR}
    COMMENT "layering: checking #includes (scripts/check_layers.py)"
    VERBATIM)
endif()
