#!/usr/bin/env bash
# Makes a throwaway test CA and a server certificate it signs for 127.0.0.1 and localhost, for the
# Tencent REST stand-in (tests/tencent/standin.js), with the openssl CLI. Also a second CA that
# signed nothing the stand-in serves (other-ca.pem), for the wrong-CA cases.
# Usage: make_ca.sh DIR    writes DIR/ca.pem, DIR/server.pem, DIR/server.key, DIR/other-ca.pem
set -euo pipefail
dir=${1:?usage: make_ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
q() { openssl "$@" 2>/dev/null; }
for ca in ca other-ca; do
    q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=usersigd test $ca" -keyout "$ca.key" -out "$ca.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
done
q req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout server.key -out server.csr
printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
    'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >server.ext
q x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem other-ca.pem server.pem
openssl verify -CAfile ca.pem server.pem >/dev/null
