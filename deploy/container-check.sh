#!/bin/sh
# `make container-check`: runs the images built from deploy/Containerfile (`make image`) the way
# the comments there describe, on this machine's loopback, and carries requests through them:
#   - culvert-edge in a container with its ports published on 127.0.0.1 (container 8443/8080/7844),
#     edge.yml and certificates mounted read-only, the data directory on a volume;
#   - `tunnel create` and `route add` with `docker exec`;
#   - culvert-connector in a container on the host's network with TUNNEL_TOKEN, serving the
#     built-in hello_world origin;
#   - a request over HTTPS, a redirect from plain HTTP naming the advertised port, and both
#     containers stopped with SIGTERM and exiting 0.
# Every container and file it makes is removed at the end. CONTAINER=podman to use podman.
set -eu
C=${CONTAINER:-docker}
D=$(mktemp -d /tmp/culvert-container-check.XXXXXX)
EDGE=culvert-check-edge-$$
CONN=culvert-check-connector-$$
HOST=hello.localhost

cleanup() {
    $C rm -f "$EDGE" "$CONN" >/dev/null 2>&1 || true
    rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "container-check: FAILED: $*" >&2
    echo "--- edge logs" >&2
    $C logs "$EDGE" 2>&1 | tail -20 >&2 || true
    echo "--- connector logs" >&2
    $C logs "$CONN" 2>&1 | tail -20 >&2 || true
    exit 1
}

free_ports() {
    python3 -c 'import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}
set -- $(free_ports)
HTTPS=$1 HTTP=$2 TUNNEL=$3 METRICS=$4

mkdir -p "$D/etc" "$D/data"
sh tests/tools/mkcert.sh "$D/etc" hello DNS:$HOST >/dev/null
sh tests/tools/mkcert.sh "$D/etc" tunnel DNS:localhost IP:127.0.0.1 >/dev/null
# The image runs as uid 65532: the keys and the data directory are its own.
chown 65532:65532 "$D/etc/hello.key" "$D/etc/tunnel.key" "$D/data"
cat > "$D/etc/edge.yml" <<YAML
data_dir: /var/lib/culvert
public:
  https: ["0.0.0.0:8443"]
  http: ["0.0.0.0:8080"]
  advertise_ports: { https: $HTTPS, http: $HTTP }
  certificates:
    - { cert: /etc/culvert/hello.pem, key: /etc/culvert/hello.key }
tunnel:
  listen: ["0.0.0.0:7844"]
  advertise: ["127.0.0.1:$TUNNEL"]
  ca: /etc/culvert/ca.pem
  cert: /etc/culvert/tunnel.pem
  key: /etc/culvert/tunnel.key
admin:
  token_file: /var/lib/culvert/admin.token
access_log: { path: "-" }
YAML

$C run -d --name "$EDGE" -p "127.0.0.1:$HTTPS:8443" -p "127.0.0.1:$HTTP:8080" -p "127.0.0.1:$TUNNEL:7844" \
    -v "$D/etc:/etc/culvert:ro" -v "$D/data:/var/lib/culvert" culvert-edge >/dev/null
i=0
until $C exec "$EDGE" culvert-edge tunnel list --config /etc/culvert/edge.yml >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -le 50 ] || fail "the edge's admin API did not answer within 10 s"
    sleep 0.2
done
TOKEN=$($C exec "$EDGE" culvert-edge tunnel create home --config /etc/culvert/edge.yml --output json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') || fail "tunnel create"
$C exec "$EDGE" culvert-edge route add $HOST home --config /etc/culvert/edge.yml >/dev/null || fail "route add"

$C run -d --name "$CONN" --network host -e TUNNEL_TOKEN="$TOKEN" culvert-connector \
    run --url hello_world --metrics "127.0.0.1:$METRICS" >/dev/null
i=0
until curl -fs "http://127.0.0.1:$METRICS/ready" >/dev/null; do
    i=$((i + 1))
    [ $i -le 50 ] || fail "the connector was not ready within 10 s"
    sleep 0.2
done

page=$(curl -fsS --cacert "$D/etc/ca.pem" --resolve "$HOST:$HTTPS:127.0.0.1" "https://$HOST:$HTTPS/") ||
    fail "GET https://$HOST:$HTTPS/"
case $page in *"Hello from Culvert"*) ;; *) fail "the hello_world page did not come back" ;; esac
loc=$(curl -sS -o /dev/null -w '%{redirect_url}' --resolve "$HOST:$HTTP:127.0.0.1" "http://$HOST:$HTTP/a?b=c")
[ "$loc" = "https://$HOST:$HTTPS/a?b=c" ] || fail "plain HTTP redirected to '$loc'"

$C stop -t 40 "$CONN" >/dev/null
$C stop -t 40 "$EDGE" >/dev/null
for n in "$CONN" "$EDGE"; do
    rc=$($C inspect -f '{{.State.ExitCode}}' "$n")
    [ "$rc" = 0 ] || fail "$n exited with $rc after SIGTERM"
done
echo "container-check: OK (edge and connector images carried HTTPS and redirected HTTP; both drained on SIGTERM)"
