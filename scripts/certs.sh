#!/usr/bin/env bash
# Creates a development CA and a server certificate for localhost, 127.0.0.1
# and ::1, and a JWT signing key pair, under DIR (default certs/), unless they
# are already there, and client certificates signed by that CA for mTLS
# (--client-ca): client.pem (identity spiffe://oms.local/client/dev) and
# orders.pem (the order service calling inventory and customers in a split
# deployment, --peer-cert; identity spiffe://oms.local/service/orders).
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
umask 077
if ! { [ -s ca.pem ] && [ -s server.pem ] && [ -s server.key ]; }; then
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
fi

# --- mTLS client certificates (made when missing and the CA key is here) ---
client_cert() { # NAME CN URI-SAN
  [ -s "$1.pem" ] && [ -s "$1.key" ] && return 0
  [ -s ca.key ] || { echo "no ca.key in $dir/: cannot make $1.pem" >&2; return 0; }
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" "subjectAltName=URI:$3" > "$1.cnf"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out "$1.pem" -days 825 -extfile "$1.cnf" 2>/dev/null
  rm -f "$1.csr" "$1.cnf" ca.srl
  chmod 644 "$1.pem"
  echo "created client certificate $dir/$1.pem ($3)" >&2
}
client_cert client "oms dev client" spiffe://oms.local/client/dev
client_cert orders "oms orders service" spiffe://oms.local/service/orders
