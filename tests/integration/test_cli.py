"""The edge's command line and admin API (PRODUCT.md section 2): tunnel and route commands, JSON
shapes, tokens, exit codes, serve --check."""

import base64
import hashlib
import os
import re
import ssl

import lib
from lib import DOMAIN, expect, expect_eq

UUID_RX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RFC3339_RX = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def ca_sha256_hex(ctx):
    with open(os.path.join(ctx.pki, "ca.pem")) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def check_token(ctx, edge, token, tunnel_id):
    expect(re.fullmatch(r"[A-Za-z0-9_-]+", token) is not None,
           "token is not base64url without padding: %r" % token)
    t = lib.decode_token(token)
    expect(isinstance(t, dict), "token JSON is not an object: %r" % (t,))
    expect_eq(t.get("v"), 1, "token v")
    expect_eq(t.get("id"), tunnel_id, "token id")
    secret = base64.b64decode(t.get("secret", "") + "=" * (-len(t.get("secret", "")) % 4),
                              altchars=b"-_" if ("-" in t.get("secret", "") or "_" in t.get("secret", ""))
                              else None)
    expect_eq(len(secret), 32, "length of the token's decoded secret")
    expect_eq(t.get("edges"), ["127.0.0.1:%d" % edge.tunnel_port], "token edges (tunnel.advertise)")
    expect_eq(str(t.get("ca_sha256", "")).lower(), ca_sha256_hex(ctx),
              "token ca_sha256 (SHA-256 of tunnel.ca's DER)")
    return t


@lib.timeout(60)
def test_tunnel_create_json_shape_and_token(ctx):
    edge = ctx.edge()
    t = edge.create_tunnel("alpha")
    expect_eq(sorted(k for k in ("id", "name", "token") if k in t), ["id", "name", "token"],
              "keys of tunnel create --output json")
    expect(isinstance(t["id"], str) and UUID_RX.match(t["id"]), "tunnel id is not a UUID: %r" % t["id"])
    expect_eq(t["name"], "alpha", "tunnel name")
    tok = check_token(ctx, edge, t["token"], t["id"])
    # A second tunnel gets another id and another secret.
    t2 = edge.create_tunnel("beta")
    expect(t2["id"] != t["id"], "two tunnels share an id")
    expect(lib.decode_token(t2["token"])["secret"] != tok["secret"], "two tunnels share a secret")
    # The name is unique.
    r = edge.cli("tunnel", "create", "alpha", check=None)
    expect(r.returncode != 0, "creating a second tunnel named alpha succeeded: %s" % r.stdout)
    # The admin token file was created with mode 0600.
    mode = os.stat(edge.admin_token).st_mode & 0o777
    expect_eq(oct(mode), oct(0o600), "mode of the generated admin token file")


@lib.timeout(60)
def test_tunnel_list_json_shape_and_connector_count(ctx):
    edge = ctx.edge()
    r = edge.cli("tunnel", "list", output_json=True)
    expect_eq(r.json, [], "tunnel list of a new edge")
    a = edge.create_tunnel("one")
    b = edge.create_tunnel("two")
    edge.route_add("one." + DOMAIN, "one")
    ctx.connector(edge, a["token"], ha=2)
    lst = edge.cli("tunnel", "list", output_json=True).json
    expect(isinstance(lst, list) and len(lst) == 2, "tunnel list: %r" % (lst,))
    by_name = {x.get("name"): x for x in lst}
    expect_eq(sorted(by_name), ["one", "two"], "names in tunnel list")
    for x in lst:
        for k, typ in (("id", str), ("name", str), ("created_at", str), ("connectors", int)):
            expect(isinstance(x.get(k), typ) and not isinstance(x.get(k), bool),
                   "tunnel list entry %r: %s is not a %s" % (x, k, typ.__name__))
        expect(RFC3339_RX.match(x["created_at"]), "created_at is not RFC 3339: %r" % x["created_at"])
    expect_eq(by_name["one"]["id"], a["id"], "id of tunnel one in list")
    expect_eq(by_name["two"]["id"], b["id"], "id of tunnel two in list")
    expect_eq(by_name["one"]["connectors"], 1, "connectors of tunnel one (one connector running)")
    expect_eq(by_name["two"]["connectors"], 0, "connectors of tunnel two")
    expect("token" not in by_name["one"] and "secret" not in by_name["one"],
           "tunnel list reveals a secret: %r" % by_name["one"])


@lib.timeout(60)
def test_tunnel_info_shows_routes_and_connections(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("info", ["info." + DOMAIN, "*.wild." + DOMAIN])
    conn = ctx.connector(edge, t["token"], ha=2, args=["--region", "lab-1"])
    # Both HA connections register; wait until info shows them.
    def two_connections():
        v = edge.cli("tunnel", "info", "info", output_json=True).json
        cs = v.get("connectors") or []
        return v if cs and len(cs[0].get("connections") or []) == 2 else None

    info = ctx.wait_until(two_connections, 10, "tunnel info to show 2 connections")
    expect_eq(info.get("id"), t["id"], "info id")
    expect_eq(info.get("name"), "info", "info name")
    expect(RFC3339_RX.match(str(info.get("created_at"))), "info created_at: %r" % info.get("created_at"))
    routes = info.get("routes")
    expect(isinstance(routes, list), "info routes is not a list: %r" % (routes,))
    names = sorted(r if isinstance(r, str) else r.get("hostname") for r in routes)
    expect_eq(names, sorted(["info." + DOMAIN, "*.wild." + DOMAIN]), "routes in tunnel info")
    cs = info["connectors"]
    expect_eq(len(cs), 1, "number of connectors in tunnel info")
    c = cs[0]
    for k in ("id", "version", "region"):
        expect(isinstance(c.get(k), str), "connector %s is not a string: %r" % (k, c))
    expect(UUID_RX.match(c["id"]), "connector id is not a UUID: %r" % c["id"])
    expect_eq(c["region"], "lab-1", "connector region (--region)")
    ids = set()
    for cn in c["connections"]:
        expect(isinstance(cn.get("id"), str), "connection id: %r" % cn)
        expect(isinstance(cn.get("edge"), str), "connection edge: %r" % cn)
        expect(isinstance(cn.get("rtt_ms"), (int, float)) and not isinstance(cn.get("rtt_ms"), bool),
               "connection rtt_ms is not a number: %r" % cn)
        expect(cn.get("streams") == 0, "connection streams of an idle tunnel: %r" % cn)
        expect(RFC3339_RX.match(str(cn.get("opened_at"))), "connection opened_at: %r" % cn)
        ids.add(cn["id"])
    expect_eq(len(ids), 2, "distinct connection ids")
    # Text output is readable: it names the tunnel, its id and its routes.
    txt = edge.cli("tunnel", "info", "info").stdout
    for s in ("info", t["id"], "info." + DOMAIN, "streams 0"):
        expect(s in txt, "tunnel info text lacks %r:\n%s" % (s, txt))
    expect(not txt.lstrip().startswith(("{", "[")), "tunnel info text output is JSON:\n%s" % txt)
    conn.stop()
    # After the connector stops, info shows no connector (within a bounded time).
    ctx.wait_until(lambda: edge.cli("tunnel", "info", "info", output_json=True).json.get("connectors") == [],
                   10, "tunnel info to show no connector after it stopped")


@lib.timeout(60)
def test_route_add_list_delete(ctx):
    edge = ctx.edge()
    edge.create_tunnel("r1")
    edge.create_tunnel("r2")
    edge.route_add("a." + DOMAIN, "r1")
    edge.route_add("*.w." + DOMAIN, "r2")
    lst = edge.cli("route", "list", output_json=True).json
    expect(isinstance(lst, list), "route list is not a list: %r" % (lst,))
    for x in lst:
        expect(isinstance(x.get("hostname"), str) and isinstance(x.get("tunnel"), str),
               "route list entry shape: %r" % x)
    got = sorted((x["hostname"], x["tunnel"]) for x in lst)
    expect_eq(got, [("*.w." + DOMAIN, "r2"), ("a." + DOMAIN, "r1")], "routes")
    # Text form names both.
    txt = edge.cli("route", "list").stdout
    for s in ("a." + DOMAIN, "*.w." + DOMAIN, "r1", "r2"):
        expect(s in txt, "route list text lacks %r:\n%s" % (s, txt))
    # A hostname routes to one tunnel only.
    r = edge.cli("route", "add", "a." + DOMAIN, "r2", check=None)
    expect(r.returncode != 0, "routing a.%s a second time succeeded" % DOMAIN)
    # A route to a tunnel that does not exist.
    r = edge.cli("route", "add", "b." + DOMAIN, "nosuch", check=1)
    # An invalid hostname is a usage error.
    edge.cli("route", "add", "bad host!", "r1", check=2)
    # Upper case is normalised (one normaliser): the route is listed in lower case.
    edge.route_add("UPPER." + DOMAIN, "r1")
    names = [x["hostname"] for x in edge.cli("route", "list", output_json=True).json]
    expect("upper." + DOMAIN in names, "route added as UPPER. not listed in lower case: %r" % names)
    edge.cli("route", "delete", "a." + DOMAIN)
    names = [x["hostname"] for x in edge.cli("route", "list", output_json=True).json]
    expect("a." + DOMAIN not in names, "deleted route still listed: %r" % names)
    expect("*.w." + DOMAIN in names, "deleting a route removed another: %r" % names)
    edge.cli("route", "delete", "a." + DOMAIN, check=1)


@lib.timeout(60)
def test_route_overlapping_another_tunnels_wildcard_needs_allow_overlap(ctx):
    """RELIABILITY.md 2.2: a route that takes part of another tunnel's wildcard (or a wildcard
    that covers another tunnel's name) changes where some requests go; it is refused with a message
    naming the other route, and accepted with --allow-overlap. Overlaps within one tunnel are fine."""
    edge = ctx.edge()
    edge.create_tunnel("ta")
    edge.create_tunnel("tb")
    edge.route_add("*.a." + DOMAIN, "ta")
    edge.route_add("pay.a." + DOMAIN, "ta")  # same tunnel: no question
    r = edge.cli("route", "add", "shop.a." + DOMAIN, "tb", check=1)
    expect("*.a." + DOMAIN in r.stderr and '"ta"' in r.stderr and "--allow-overlap" in r.stderr,
           "the refusal does not name the overlapping route and the option: %r" % r.stderr)
    r = edge.cli("route", "add", "*.x.a." + DOMAIN, "tb", check=1)
    edge.route_add("solo." + DOMAIN, "ta")
    r = edge.cli("route", "add", "*." + DOMAIN, "tb", check=1)  # covers ta's names
    names = sorted((x["hostname"], x["tunnel"]) for x in edge.cli("route", "list", output_json=True).json)
    expect_eq(names, [("*.a." + DOMAIN, "ta"), ("pay.a." + DOMAIN, "ta"), ("solo." + DOMAIN, "ta")],
              "routes after the refusals")
    edge.cli("route", "add", "shop.a." + DOMAIN, "tb", "--allow-overlap")
    routes = dict((x["hostname"], x["tunnel"]) for x in edge.cli("route", "list", output_json=True).json)
    expect_eq(routes.get("shop.a." + DOMAIN), "tb", "shop.a. routed with --allow-overlap")
    edge.cli("tunnel", "list", "--allow-overlap", check=2)


@lib.timeout(60)
def test_rotate_token_disconnects_old_token(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("rot", ["rot." + DOMAIN])
    conn = ctx.connector(edge, t["token"], ha=2)
    expect_eq(edge.get("rot." + DOMAIN).status, 200, "GET through the tunnel before rotation")
    r = edge.cli("tunnel", "rotate-token", "rot", output_json=True).json
    for k in ("id", "name", "token"):
        expect(k in r, "rotate-token --output json lacks %r: %r" % (k, r))
    expect_eq(r["id"], t["id"], "rotate-token keeps the tunnel id")
    expect_eq(r["name"], "rot", "rotate-token name")
    expect(r["token"] != t["token"], "rotate-token gave the same token")
    new = check_token(ctx, edge, r["token"], t["id"])
    expect(new["secret"] != lib.decode_token(t["token"])["secret"], "rotate-token kept the secret")
    # The connector with the old token is disconnected, and its re-registration is refused: exit 1.
    rc = conn.proc.wait(10 * ctx.slow)
    expect_eq(rc, 1, "exit code of the connector whose token was rotated (within 10s)")
    expect(re.search(r"authenticat|rejected", conn.proc.text(), re.I),
           "connector log does not say the token was rejected:\n%s" % lib.tail(conn.proc.log))
    # A new connector with the old token fails, one with the new token serves.
    old = ctx.connector(edge, t["token"], name="old", start=False)
    old.start(wait_ready=False)
    expect_eq(old.proc.wait(10 * ctx.slow), 1, "exit code of a connector started with the old token")
    ctx.connector(edge, r["token"], name="new")
    expect_eq(edge.get("rot." + DOMAIN).status, 200, "GET through the tunnel with the new token")


@lib.timeout(60)
def test_tunnel_delete_removes_routes(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("gone", ["gone." + DOMAIN, "gone2." + DOMAIN])
    edge.tunnel_with_route("kept", ["kept." + DOMAIN])
    conn = ctx.connector(edge, t["token"])
    expect_eq(edge.get("gone." + DOMAIN).status, 200, "GET before the delete")
    edge.cli("tunnel", "delete", "gone")
    # Its connections are closed (RELIABILITY.md T-14: within 5 s) and its token no longer works.
    rc = conn.proc.wait(5 * ctx.slow)
    expect_eq(rc, 1, "exit code of the connector of a deleted tunnel (within 5s)")
    routes = edge.cli("route", "list", output_json=True).json
    expect_eq(sorted(x["hostname"] for x in routes), ["kept." + DOMAIN], "routes after tunnel delete")
    names = [x["name"] for x in edge.cli("tunnel", "list", output_json=True).json]
    expect_eq(names, ["kept"], "tunnels after delete")
    edge.cli("tunnel", "info", "gone", check=1)
    edge.cli("tunnel", "delete", "gone", check=1)
    r = edge.get("gone." + DOMAIN)
    expect_eq(r.status, 404, "a hostname of a deleted tunnel")
    # The name can be used again, with a new id.
    again = edge.create_tunnel("gone")
    expect_eq(again["name"], "gone", "re-created tunnel name")


@lib.timeout(60)
def test_text_output_is_readable(ctx):
    edge = ctx.edge()
    r = edge.cli("tunnel", "create", "txt")
    expect(not r.stdout.lstrip().startswith("{"), "tunnel create text output is JSON:\n%s" % r.stdout)
    # The token is printed once, on its own, and decodes; the id is named.
    toks = [w for w in re.findall(r"[A-Za-z0-9_-]{40,}", r.stdout)]
    ok = False
    for w in toks:
        try:
            j = lib.decode_token(w)
            ok = isinstance(j, dict) and j.get("v") == 1
        except Exception:
            continue
        if ok:
            tid = j["id"]
            break
    expect(ok, "tunnel create text output holds no decodable token:\n%s" % r.stdout)
    expect(tid in r.stdout, "tunnel create text output does not name the id %s:\n%s" % (tid, r.stdout))
    edge.route_add("txt." + DOMAIN, "txt")
    lst = edge.cli("tunnel", "list").stdout
    expect("txt" in lst and tid in lst, "tunnel list text lacks name or id:\n%s" % lst)
    expect(not lst.lstrip().startswith("["), "tunnel list text output is JSON:\n%s" % lst)
    r = edge.cli("tunnel", "rotate-token", "txt")
    expect(re.search(r"[A-Za-z0-9_-]{40,}", r.stdout), "rotate-token text prints no token:\n%s" % r.stdout)
    # A connector without a region: "region -", not an empty column.
    tok = re.search(r"[A-Za-z0-9_-]{60,}", r.stdout).group(0)
    ctx.add_token("rotated txt", tok)
    ctx.connector(edge, tok, ha=1)
    info = edge.cli("tunnel", "info", "txt").stdout
    expect(re.search(r"connector \S+\s+version \S+\s+region -\s+1 connection\b", info),
           "tunnel info text for a connector without a region:\n%s" % info)


@lib.timeout(60)
def test_exit_codes_and_help(ctx):
    edge = ctx.edge()
    e = ctx.edge_bin
    c = ctx.connector_bin
    # --help and --version: 0, on stdout.
    for argv in ([e, "--help"], [e, "--version"], [e, "tunnel", "--help"], [e, "route", "--help"],
                 [e, "tunnel", "create", "--help"], [e, "serve", "--help"], [c, "--help"],
                 [c, "--version"], [c, "run", "--help"]):
        r = ctx.run(argv, check=0)
        expect(r.stdout.strip() != "", "%s printed nothing on stdout" % " ".join(argv))
    expect(re.search(r"culvert-edge \S+", ctx.run([e, "--version"]).stdout), "edge --version text")
    # Each command's help lists the options it takes: --allow-overlap only where it is accepted.
    expect("--allow-overlap" in ctx.run([e, "route", "add", "--help"], check=0).stdout,
           "route add --help does not name --allow-overlap")
    for argv in ([e, "tunnel", "list", "--help"], [e, "tunnel", "create", "--help"],
                 [e, "route", "delete", "--help"]):
        expect("--allow-overlap" not in ctx.run(argv, check=0).stdout,
               "%s names --allow-overlap, which it refuses" % " ".join(argv[1:]))
    # Unknown tunnel: 1, with a message.
    for args in (("tunnel", "info", "nosuch"), ("tunnel", "delete", "nosuch"),
                 ("tunnel", "rotate-token", "nosuch")):
        r = edge.cli(*args, check=1)
        expect(r.stderr.strip() != "", "%s: no message on stderr" % " ".join(args))
    # Usage errors: 2, naming the problem. (CLI commands get --config so that only the usage is wrong.)
    cfg = ["--config", edge.config]
    for argv in ([e], [e, "frobnicate"], [e, "tunnel"] + cfg, [e, "tunnel", "frobnicate"] + cfg,
                 [e, "tunnel", "create"] + cfg, [e, "tunnel", "create", "a", "b"] + cfg,
                 [e, "route", "add", "x." + DOMAIN] + cfg, [e, "tunnel", "list", "--bogus-flag"] + cfg,
                 [e, "tunnel", "list", "--output", "yaml"] + cfg, [e, "serve", "--bogus"],
                 [c], [c, "frobnicate"], [c, "run", "--bogus-flag"]):
        r = ctx.run(argv, check=2)
        expect(r.stderr.strip() != "", "%s: exit 2 without a message on stderr" % " ".join(argv))
    # An invalid tunnel name is a usage error.
    edge.cli("tunnel", "create", "bad name/with slash", check=2)


@lib.timeout(30)
def test_connector_help_on_every_subcommand(ctx):
    """--help on every culvert-connector subcommand: usage on stdout, exit 0 (PRODUCT.md section 2,
    exit codes of both programs); the bare group without a subcommand is a usage error (2)."""
    c = ctx.connector_bin
    for args in (["--help"], ["run", "--help"], ["ingress", "--help"], ["ingress", "-h"],
                 ["ingress", "validate", "--help"], ["ingress", "rule", "--help"],
                 ["access", "--help"], ["access", "tcp", "--help"], ["access", "ssh", "--help"]):
        r = ctx.run([c] + args)
        expect_eq(r.returncode, 0, "exit code of culvert-connector %s" % " ".join(args))
        expect("usage:" in r.stdout, "culvert-connector %s: no usage on stdout: %r" % (
            " ".join(args), r.stdout))
    for args in (["ingress"], ["ingress", "frobnicate"], ["access"]):
        r = ctx.run([c] + args, check=2)
        expect(r.stderr.strip() != "", "culvert-connector %s: no message on stderr" % " ".join(args))


@lib.timeout(60)
def test_connector_says_when_edge_ca_is_overridden_by_the_tokens_pin(ctx):
    """A token that pins the edge's CA wins over --edge-ca (PRODUCT.md "Token"); the connector
    says that the file is not used instead of ignoring it silently."""
    edge = ctx.edge()
    t = edge.create_tunnel("pinned")
    expect(lib.decode_token(t["token"]).get("ca_sha256"), "the test edge's tokens pin its CA")
    unused = ctx.path("no-such-ca.pem")
    c = ctx.connector(edge, t["token"], args=["--edge-ca", unused])
    c.proc.wait_log(r"edge-ca %s is not used: the token pins" % re.escape(unused), 10)


@lib.timeout(60)
def test_cli_against_stopped_edge(ctx):
    edge = ctx.edge()
    edge.create_tunnel("x")
    edge.stop()
    for args in (("tunnel", "list"), ("route", "list"), ("tunnel", "create", "y")):
        r = edge.cli(*args, check=None)
        expect(r.returncode != 0, "%s against a stopped edge exited 0" % " ".join(args))
        expect_eq(r.returncode, 1, "exit code of %s against a stopped edge" % " ".join(args))
        expect(re.search(r"cannot reach.*admin", r.stderr, re.I),
               "%s: stderr does not say the admin API cannot be reached: %r" % (" ".join(args), r.stderr))
        expect(r.stdout.strip() == "", "%s printed on stdout: %r" % (" ".join(args), r.stdout))


@lib.timeout(60)
def test_cli_against_a_service_that_is_not_the_admin_api(ctx):
    """Another JSON-speaking service on the --admin address: the CLI says so and exits 1; it used
    to print "No tunnels" and exit 0."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def answer(self):
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = answer

        def log_message(self, *a):
            pass

    r = ctx.run([ctx.edge_bin, "tunnel", "list", "--admin", "ftp://127.0.0.1:1"], check=2)
    expect("ftp://" in r.stderr and "http://HOST:PORT" in r.stderr, "--admin ftp://: %r" % r.stderr)
    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        tok = ctx.path("admin.token")
        lib.write_file(tok, "x" * 43 + "\n", 0o600)
        for args in (("tunnel", "list"), ("route", "list"), ("tunnel", "info", "x"),
                     ("tunnel", "create", "y"), ("route", "add", "a." + DOMAIN, "y")):
            argv = [ctx.edge_bin] + list(args) + ["--admin", "http://127.0.0.1:%d" % srv.server_port,
                                                  "--admin-token-file", tok]
            r = ctx.run(argv, check=1)
            expect("admin" in r.stderr and "127.0.0.1:%d" % srv.server_port in r.stderr,
                   "%s: stderr does not name the address and the admin API: %r" % (" ".join(args), r.stderr))
            expect_eq(r.stdout.strip(), "", "%s: stdout" % " ".join(args))
    finally:
        srv.shutdown()
        srv.server_close()


@lib.timeout(30)
def test_admin_api_answers_expect_100_continue(ctx):
    """A client that sends Expect: 100-continue (curl does for larger bodies) hears 100 Continue
    before it sends its body, or its 401 at once; it waited for the client's own timeout (1 s in
    curl) either way."""
    import socket

    edge = ctx.edge()
    with open(edge.admin_token) as f:
        token = f.read().strip()
    body = b'{"name": "expect"}'
    for auth, want in (("Bearer " + token, b"HTTP/1.1 100 Continue\r\n\r\n"), ("Bearer nope", b"HTTP/1.1 401")):
        s = socket.create_connection(("127.0.0.1", edge.admin_port), timeout=5)
        try:
            s.sendall(("POST /v1/tunnels HTTP/1.1\r\nHost: a\r\nAuthorization: %s\r\n"
                       "Content-Type: application/json\r\nContent-Length: %d\r\n"
                       "Expect: 100-continue\r\n\r\n" % (auth, len(body))).encode())
            s.settimeout(0.5)  # well under a client's own wait (1 s in curl)
            got = b""
            try:
                while len(got) < len(want):
                    chunk = s.recv(len(want) - len(got))
                    if not chunk:
                        break
                    got += chunk
            except socket.timeout:
                pass
            expect_eq(got, want, "the admin API's first answer to an Expect: 100-continue head (%s)" %
                      auth.split()[1][:4])
            if want.startswith(b"HTTP/1.1 100"):
                s.settimeout(5)
                s.sendall(body)
                r = lib.RawHTTP(s).read_response()
                expect_eq(r.status, 201, "tunnel create after 100 Continue")
        finally:
            s.close()
    expect("expect" in edge.cli("tunnel", "list").stdout, "the tunnel created after 100 Continue")


@lib.timeout(30)
def test_a_failed_state_write_names_data_dir(ctx):
    """When the state cannot be saved (a full disk; here a directory where its temporary file
    goes), the CLI's message names data_dir, not only the errno; nothing was changed."""
    edge = ctx.edge()
    tmp = os.path.join(edge.data_dir, "state.json.tmp")
    os.mkdir(tmp)
    try:
        r = edge.cli("tunnel", "create", "nospace", check=1)
        expect("data_dir %s" % edge.data_dir in r.stderr, "tunnel create with the state unwritable: %r" %
               r.stderr)
        expect("nospace" not in edge.cli("tunnel", "list").stdout, "the tunnel exists after the failure")
    finally:
        os.rmdir(tmp)
    edge.create_tunnel("nospace")


@lib.timeout(30)
def test_serve_check(ctx):
    edge = ctx.edge(start=False)
    r = edge.cli("serve", "--check", check=0)
    expect("configuration OK" in r.stdout, "serve --check stdout: %r" % r.stdout)
    good = open(edge.config).read()
    lines = good.splitlines()

    def broken(name, text, want_line, want_words):
        path = ctx.path(name)
        lib.write_file(path, text)
        r = ctx.run([ctx.edge_bin, "serve", "--check", "--config", path], check=2)
        expect("configuration OK" not in r.stdout, "%s: says configuration OK" % name)
        msg = r.stderr
        expect(re.search(re.escape(path) + r":%d\b" % want_line, msg) or
               re.search(re.escape(name) + r":%d\b" % want_line, msg),
               "%s: message does not name file:%d: %r" % (name, want_line, msg))
        for w in want_words:
            expect(w in msg, "%s: message does not name %r: %r" % (name, w, msg))
        expect(len(msg.strip().splitlines()) <= 3, "%s: message is not short: %r" % (name, msg))

    # An unknown key at the top level (line 2 of the file).
    broken("unknown-key.yml", lines[0] + "\nbogus_key: 1\n" + "\n".join(lines[1:]) + "\n", 2, ["bogus_key"])
    # A bad duration: grace_period is in the file; replace its value.
    idx = next(i for i, l in enumerate(lines) if l.startswith("grace_period:"))
    bad = list(lines)
    bad[idx] = "grace_period: 10 parsecs"
    broken("bad-duration.yml", "\n".join(bad) + "\n", idx + 1, ["grace_period"])
    # An unknown key nested in a section.
    idx = next(i for i, l in enumerate(lines) if l.startswith("admin:"))
    bad = list(lines)
    bad.insert(idx + 1, "  listen_twice: 127.0.0.1:1")
    broken("nested-unknown.yml", "\n".join(bad) + "\n", idx + 2, ["listen_twice"])
    # A missing file: 2, naming it.
    r = ctx.run([ctx.edge_bin, "serve", "--check", "--config", ctx.path("nope.yml")], check=2)
    expect("nope.yml" in r.stderr, "missing config: message does not name the file: %r" % r.stderr)
    # What serve needs from the file system: the access log (opened, as nginx -t does) and
    # data_dir (created when missing, then written). --check said OK and serve exited 1.
    for key, value, words in (
            ("access_log", {"path": ctx.path("no-dir", "access.log")}, ["access_log.path", "no-dir"]),
            ("data_dir", os.path.join(edge.config, "data"), ["data_dir", "not a directory"]),
            ("data_dir", "/proc/culvert-nope", ["data_dir", "cannot create"])):
        cfg = dict(edge.cfg)
        cfg[key] = value
        path = ctx.path("paths.yml")
        lib.write_file(path, lib.yaml_dump(cfg))
        r = ctx.run([ctx.edge_bin, "serve", "--check", "--config", path], check=2)
        expect(all(w in r.stderr for w in words) and "paths.yml" in r.stderr,
               "serve --check with %s %r: %r" % (key, value, r.stderr))
    # A data_dir others can write is refused by serve, so by --check too.
    os.makedirs(ctx.path("open"), mode=0o777, exist_ok=True)
    os.chmod(ctx.path("open"), 0o777)
    cfg = dict(edge.cfg)
    cfg["data_dir"] = ctx.path("open")
    lib.write_file(ctx.path("paths.yml"), lib.yaml_dump(cfg))
    r = ctx.run([ctx.edge_bin, "serve", "--check", "--config", ctx.path("paths.yml")], check=2)
    expect("others can write" in r.stderr and "chmod 700" in r.stderr, "--check, mode 0777: %r" % r.stderr)
    cfg = dict(edge.cfg)
    cfg["data_dir"] = ctx.path("new", "data")
    lib.write_file(ctx.path("paths.yml"), lib.yaml_dump(cfg))
    r = ctx.run([ctx.edge_bin, "serve", "--check", "--config", ctx.path("paths.yml")], check=0)
    # Nothing left behind: run as root, it would leave what the service's user cannot use.
    expect(not os.path.exists(ctx.path("new")), "--check left the data_dir it tried behind")
    expect(not os.path.exists(edge.access_log), "--check left the access log it opened behind")


@lib.timeout(60)
def test_serve_check_certificate_errors_name_file_line_and_key(ctx):
    """A certificate or key that cannot be used is a configuration error: exit 2 with a message
    naming edge.yml's file:line and the key (PRODUCT.md section 2), besides the PEM file."""
    edge = ctx.edge(start=False)
    lines = open(edge.config).read().splitlines()

    def check(name, old, new, key):
        idx = next(i for i, l in enumerate(lines) if old in l)
        bad = list(lines)
        bad[idx] = bad[idx].replace(old, new)
        path = ctx.path(name)
        lib.write_file(path, "\n".join(bad) + "\n")
        r = ctx.run([ctx.edge_bin, "serve", "--check", "--config", path], check=2)
        msg = r.stderr
        expect(re.search(re.escape(path) + r":%d:\d+: " % (idx + 1) + re.escape(key), msg),
               "%s: message does not name %s:%d: %s: %r" % (name, path, idx + 1, key, msg))
        expect(new in msg, "%s: message does not name the PEM file %s: %r" % (name, new, msg))

    pki = ctx.pki
    check("cert-missing.yml", os.path.join(pki, "public.pem"), os.path.join(pki, "nope.pem"),
          "public.certificates[0].cert")
    check("key-mismatch.yml", os.path.join(pki, "public.key"), os.path.join(pki, "tunnel.key"),
          "public.certificates[0].key")
    check("tunnel-cert-missing.yml", os.path.join(pki, "tunnel.pem"), os.path.join(pki, "gone.pem"),
          "tunnel.cert")


@lib.timeout(60)
def test_admin_unix_socket_replaces_only_a_stale_socket(ctx):
    """admin.listen unix:PATH: a stale socket left by a crash is replaced (mode 0600), but a file
    that is not a socket, or the live socket of another edge, is never deleted: the edge refuses
    to start, naming the path. It used to unlink whatever was there."""
    import socket

    path = ctx.path("a.sock")

    def unix_edge(name):
        e = ctx.edge(name=name, start=False)
        e.cfg["admin"]["listen"] = "unix:" + path
        e.write_config()
        return e

    first = unix_edge("first")
    lib.write_file(path, "not a socket\n")
    first.start(wait=False)
    expect_eq(first.proc.wait(10 * ctx.slow), 1, "exit code with a regular file at admin.listen")
    expect(path in first.proc.text() and "not a socket" in first.proc.text(),
           "the edge does not name the file in the way:\n%s" % lib.tail(first.proc.log))
    with open(path) as f:
        expect_eq(f.read(), "not a socket\n", "the file at admin.listen after the refused start")
    os.unlink(path)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # what a kill -9 leaves behind
    first.start()
    expect_eq(oct(os.stat(path).st_mode & 0o777), oct(0o600), "mode of the admin socket")
    first.create_tunnel("one")
    second = unix_edge("second")
    second.start(wait=False)
    expect_eq(second.proc.wait(10 * ctx.slow), 1, "exit code with another edge on admin.listen")
    expect(path in second.proc.text() and "in use" in second.proc.text(),
           "the edge does not say the socket is in use:\n%s" % lib.tail(second.proc.log))
    names = [t["name"] for t in first.cli("tunnel", "list", output_json=True).json]
    expect_eq(names, ["one"], "tunnels of the first edge through its admin socket")


@lib.timeout(60)
def test_idle_admin_connections_cannot_lock_the_admin_api_out(ctx):
    """Any local user can open connections to a loopback admin port: 64 unauthenticated ones that
    never finish a request used to take every slot (30 s each, renewable), and the CLI was reset
    with "is culvert-edge serve running?". The oldest one now makes room."""
    import socket

    edge = ctx.edge()
    held = []
    try:
        for _ in range(80):
            s = socket.create_connection(("127.0.0.1", edge.admin_port), timeout=5)
            s.sendall(b"GET /v1/status HTTP/1.1\r\n")
            held.append(s)
        for i in range(3):
            edge.create_tunnel("t%d" % i)
        expect(edge.proc.alive(), "the edge exited")
    finally:
        for s in held:
            s.close()


@lib.timeout(60)
def test_a_damaged_state_file_stops_the_edge_and_says_what_to_do(ctx):
    """A truncated state.json: the edge exits 1 naming the file and saying what to do, never
    starts empty (that would drop every tunnel) and never rewrites the file."""
    edge = ctx.edge()
    edge.create_tunnel("kept")
    edge.route_add("kept." + DOMAIN, "kept")
    edge.stop()
    state = os.path.join(edge.data_dir, "state.json")
    with open(state, "rb") as f:
        good = f.read()
    lib.write_file(state, good[:len(good) // 2], 0o600)
    edge.start(wait=False)
    expect_eq(edge.proc.wait(10 * ctx.slow), 1, "exit code with a truncated state.json")
    out = edge.proc.text()
    expect(state in out and re.search(r"backup", out),
           "the error does not name %s and say what to do:\n%s" % (state, lib.tail(edge.proc.log)))
    with open(state, "rb") as f:
        expect_eq(f.read(), good[:len(good) // 2], "state.json after the refused start")
    lib.write_file(state, good, 0o600)
    edge.start()
    routes = edge.cli("route", "list", output_json=True).json
    expect_eq([(r["hostname"], r["tunnel"]) for r in routes], [("kept." + DOMAIN, "kept")],
              "routes once the file is restored")
