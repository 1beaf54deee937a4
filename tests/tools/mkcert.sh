#!/bin/sh
# mkcert.sh DIR NAME SAN... : a local test PKI with the openssl command line.
#   DIR/ca.pem, DIR/ca.key        a CA (created once per DIR)
#   DIR/NAME.pem, DIR/NAME.key    a leaf signed by it, with the SANs given (DNS:x or IP:x)
# Used by `make demo` and the integration tests; never for production.
set -eu
dir=$1
name=$2
shift 2
mkdir -p "$dir"
if [ ! -f "$dir/ca.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=Culvert local test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
    chmod 600 "$dir/ca.key"
fi
san=""
for s in "$@"; do
    san="${san:+$san,}$s"
done
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" > "$dir/$name.ext"
openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
chmod 600 "$dir/$name.key"
rm -f "$dir/$name.csr" "$dir/$name.ext"
