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
  nghttp2-client gnuplot-nox curl
  golang-go golang-github-spf13-cobra-dev golang-github-fatih-color-dev golang-golang-x-net-dev
  clang libclang-rt-14-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
