#!/bin/sh
# Builds the gRPC C++ reference peer from Debian packages only:
#   bench/peers/cpp/build.sh OUT_DIR   ->   OUT_DIR/oms-bench-cpp
# Installs libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc g++ pkg-config
# (and cmake) with apt-get when one is missing (needs root for that).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)

PKGS="libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc protobuf-compiler g++ pkg-config cmake"
MISSING=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        MISSING="$MISSING $p"
    fi
done
if [ -n "$MISSING" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: missing Debian packages:$MISSING (run as root to install them)" >&2
        exit 1
    fi
    echo "$0: installing$MISSING" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y $MISSING >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y $MISSING >&2; }
fi

cmake -S "$HERE" -B "$OUT/cmake" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$OUT/cmake" -j"$(nproc)" >&2
cp "$OUT/cmake/oms-bench-cpp" "$OUT/oms-bench-cpp"
echo "$OUT/oms-bench-cpp"
