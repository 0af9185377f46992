#!/usr/bin/env bash
# Makes a throwaway test CA and a server certificate it signs for 127.0.0.1 and localhost, for the
# Tencent REST stand-in (tests/tencent/standin.js), with the openssl CLI. Also a second CA that
# signed nothing the stand-in serves (other-ca.pem), for the wrong-CA cases, and a certificate of
# the right CA for another name only (wrong-name.pem, DNS:wrong-name.invalid), which the stand-in
# presents to a client that asks for "localhost" by SNI: the host-name check's case.
# Usage: make_ca.sh DIR    writes DIR/ca.pem, DIR/server.pem, DIR/server.key, DIR/other-ca.pem,
#                          DIR/wrong-name.pem, DIR/wrong-name.key
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
leaf() { # leaf NAME SAN
    q req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$1.key" -out "$1.csr"
    printf '%s\n' "subjectAltName=$2" 'basicConstraints=CA:FALSE' \
        'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >"$1.ext"
    q x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.pem"
    rm -f "$1.csr" "$1.ext"
    openssl verify -CAfile ca.pem "$1.pem" >/dev/null
}
leaf server 'IP:127.0.0.1,DNS:localhost'
leaf wrong-name 'DNS:wrong-name.invalid'
rm -f ca.srl
chmod 644 ca.pem other-ca.pem server.pem wrong-name.pem
