#!/usr/bin/env bash
# Creates a development CA and a server certificate for localhost, 127.0.0.1
# and ::1, and a JWT signing key pair, under DIR (default certs/), unless they
# are already there.
# Keys are never committed (.gitignore).
set -euo pipefail
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"
# A development JWT signing key (ES256): `omsctl token --key certs/jwt-signing.pem`
# mints tokens that `omsd --jwt-keys certs/jwt-public.pem` accepts.
if [ ! -s jwt-signing.pem ]; then
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
     -out jwt-signing.pem 2>/dev/null)
  rm -f jwt-public.pem
  echo "created a dev JWT signing key in $dir/jwt-signing.pem" >&2
fi
if [ ! -s jwt-public.pem ]; then
  openssl pkey -in jwt-signing.pem -pubout -out jwt-public.pem 2>/dev/null
  chmod 644 jwt-public.pem
fi
if [ -s ca.pem ] && [ -s server.pem ] && [ -s server.key ]; then
  exit 0
fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days 3650 -subj "/CN=oms dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
cat > server.cnf <<'CNF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
CNF
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 825 -extfile server.cnf 2>/dev/null
rm -f server.csr server.cnf ca.srl
chmod 644 ca.pem server.pem
echo "created dev CA and server certificate in $dir/" >&2
