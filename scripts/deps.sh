#!/usr/bin/env bash
# Installs the Debian 12 packages oms needs to build, run and test, if missing.
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config git openssl
  libnghttp2-dev libuv1-dev libssl-dev zlib1g-dev libsystemd-dev systemd
  libsqlite3-dev libpq-dev postgresql libjansson-dev libhttp-parser-dev prometheus libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev grpc-proto
  golang-github-gogo-googleapis-dev
  libcriterion-dev
  python3 python3-grpcio python3-protobuf protobuf-compiler-grpc python3-h2 python3-jwt python3-cryptography
  nghttp2-client gnuplot-nox curl chromium python3-websocket
  golang-go golang-github-spf13-cobra-dev golang-github-fatih-color-dev golang-golang-x-net-dev
  clang libclang-rt-14-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The web tests' independent clients come from the npm registry (not Debian):
# buf (`buf curl --protocol grpcweb|connect`) and the Connect client for node
# (@connectrpc/connect-node), installed once into the build
# tree (OMS_NPM_PREFIX, default build/npm; `make` passes $(BUILD)/npm). A
# machine without npm or the registry still builds: the web test then says
# what is missing.
npm_prefix=${OMS_NPM_PREFIX:-$(cd "$(dirname "$0")/.." && pwd)/build/npm}
if [ ! -x "$npm_prefix/node_modules/.bin/buf" ] ||
   [ ! -d "$npm_prefix/node_modules/@connectrpc/connect-node" ]; then
  if command -v npm >/dev/null; then
    mkdir -p "$npm_prefix"
    npm install --prefix "$npm_prefix" --no-audit --no-fund --silent @bufbuild/buf@1.75.0 \
      @bufbuild/protobuf@2 @connectrpc/connect@2 @connectrpc/connect-node@2 >&2 ||
      echo "deps.sh: npm install failed: the web test will fail" >&2
  else
    echo "deps.sh: npm not found (apt-get install npm): the web test needs npm packages" >&2
  fi
fi
