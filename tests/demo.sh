#!/bin/sh
# `make demo`: an edge, a connector and the built-in hello_world origin on loopback, with a
# generated local CA (PRODUCT.md section 5). Ctrl-C stops everything.
#   public HTTPS 127.0.0.1:8443   tunnel 127.0.0.1:7844   admin 127.0.0.1:7845
# DEMO_ONCE=1 fetches the page itself and exits (used by the tests).
set -eu
B=${1:-build}
D=build/demo
EDGE=$B/culvert-edge
CONN=$B/culvert-connector

rm -rf "$D"
mkdir -p "$D"
chmod 700 "$D"
sh tests/tools/mkcert.sh "$D" hello DNS:hello.localhost DNS:localhost
sh tests/tools/mkcert.sh "$D" tunnel DNS:localhost IP:127.0.0.1

cat > "$D/edge.yml" <<YAML
# culvert-edge configuration written by \`make demo\`
region: demo
data_dir: $PWD/$D/data
public:
  https: ["127.0.0.1:8443"]
  http: ["127.0.0.1:8080"]
  certificates:
    - { cert: $PWD/$D/hello.pem, key: $PWD/$D/hello.key }
tunnel:
  listen: ["127.0.0.1:7844"]
  advertise: ["127.0.0.1:7844"]
  ca: $PWD/$D/ca.pem
  cert: $PWD/$D/tunnel.pem
  key: $PWD/$D/tunnel.key
admin:
  listen: 127.0.0.1:7845
  token_file: $PWD/$D/admin.token
access_log: { path: $PWD/$D/access.log }
YAML

cat > "$D/config.yml" <<YAML
# culvert-connector configuration written by \`make demo\` (cloudflared's schema)
ingress:
  - hostname: hello.localhost
    service: hello_world
  - service: http_status:404
YAML

pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$EDGE" serve --config "$D/edge.yml" 2>"$D/edge.log" &
pids="$!"
i=0
until "$EDGE" tunnel list --config "$D/edge.yml" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
        echo "demo: the edge did not start; see $D/edge.log" >&2
        cat "$D/edge.log" >&2
        exit 1
    fi
    sleep 0.1
done
"$EDGE" tunnel create demo --config "$D/edge.yml" --output json > "$D/tunnel.json"
sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$D/tunnel.json" > "$D/token"
chmod 600 "$D/token"
"$EDGE" route add hello.localhost demo --config "$D/edge.yml" >/dev/null

"$CONN" run --config "$D/config.yml" --token-file "$D/token" --metrics 127.0.0.1:20241 \
    2>"$D/connector.log" &
pids="$pids $!"
i=0
until curl -sf http://127.0.0.1:20241/ready >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
        echo "demo: the connector did not register; see $D/connector.log" >&2
        cat "$D/connector.log" >&2
        exit 1
    fi
    sleep 0.1
done

echo
echo "Culvert demo is running: edge (HTTPS 127.0.0.1:8443, tunnel 7844, admin 7845), connector"
echo "with the built-in hello_world origin. Logs: $D/edge.log $D/connector.log $D/access.log"
echo
echo "Try:"
echo "  curl --cacert $D/ca.pem https://hello.localhost:8443/"
echo
if [ "${DEMO_ONCE:-0}" = 1 ]; then
    curl -sS --cacert "$D/ca.pem" https://hello.localhost:8443/
    exit 0
fi
echo "Press Ctrl-C to stop."
wait
