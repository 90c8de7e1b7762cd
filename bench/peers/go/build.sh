#!/bin/sh
# Builds the grpc-go reference peer from Debian packages only (GOPATH mode, no
# module downloads):
#   bench/peers/go/build.sh OUT_DIR   ->   OUT_DIR/oms-bench-go
# Installs golang-go golang-google-grpc-dev golang-google-protobuf-dev
# golang-github-golang-protobuf-1-5-dev protobuf-compiler grpc-proto with
# apt-get when one is missing (needs root). The 1-5 package matters: grpc-go's
# codec goes through github.com/golang/protobuf, and the 1.3 version of it
# (golang-github-golang-protobuf-1-3-dev, pulled in by golang-goprotobuf-dev)
# panics on the APIv2 messages protoc-gen-go generates; apt replaces 1-3 by 1-5.
# The Go stubs are generated into a temporary GOPATH and never land in the tree.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)

PKGS="golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
      protobuf-compiler grpc-proto"
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
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $MISSING >&2 ||
        { apt-get update >&2 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $MISSING >&2; }
fi

GP=$(mktemp -d "${TMPDIR:-/tmp}/oms-bench-go.XXXXXX")
trap 'rm -rf "$GP"' EXIT INT TERM
# GOPATH mode against the Debian sources in /usr/share/gocode; nothing is
# fetched. The build cache goes to the temp dir too (works as any user).
export GOPATH="$GP:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOPROXY=off \
       GOCACHE="$GP/cache" CGO_ENABLED=0
PKG=omsbenchgo

# protoc plugins from the Debian Go sources: protoc-gen-go (APIv2, from
# golang-google-protobuf-dev; /usr/bin/protoc-gen-go is the old 1.3 one) and
# protoc-gen-go-grpc (from golang-google-grpc-dev).
go build -o "$GP/bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$GP/bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc

BENCH=oms/bench/v1/bench.proto
TESTING="grpc/testing/empty.proto grpc/testing/messages.proto grpc/testing/test.proto"
M="M$BENCH=$PKG/benchpb"
for f in $TESTING; do M="$M,M$f=$PKG/grpctesting"; done
mkdir -p "$GP/src"
protoc -I "$ROOT/proto" -I /usr/share/grpc-proto \
    --plugin=protoc-gen-go="$GP/bin/protoc-gen-go" \
    --plugin=protoc-gen-go-grpc="$GP/bin/protoc-gen-go-grpc" \
    --go_out="$M:$GP/src" --go-grpc_out="$M:$GP/src" \
    "$BENCH" $TESTING

mkdir -p "$GP/src/$PKG/cmd/oms-bench-go"
cp "$HERE/main.go" "$GP/src/$PKG/cmd/oms-bench-go/"
(cd "$GP/src/$PKG/cmd/oms-bench-go" && go vet . >&2 && go build -trimpath -o "$OUT/oms-bench-go" .)
echo "$OUT/oms-bench-go"
