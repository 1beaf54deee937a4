"""Requests through the tunnel over HTTPS (curl --resolve with the test CA): bodies both ways,
parallel requests, HEAD, the edge's own error pages, the headers the origin receives, loop and
Host/SNI checks, plain HTTP redirects (PRODUCT.md section 2 "Requests" and "Errors")."""

import hashlib
import json
import os
import re
import time

import lib
import origin as origin_mod
from lib import DOMAIN, expect, expect_eq

MiB = 1 << 20


def request_id_of(r):
    rid = r.header("Culvert-Request-Id")
    expect(rid, "response has no Culvert-Request-Id header: %r" % (r,))
    return rid


def check_error_page(r, status, what):
    """The edge's own answer: |status|, an HTML page naming the request id of the response."""
    expect_eq(r.status, status, "%s: status" % what)
    rid = request_id_of(r)
    ctype = r.header("Content-Type", "")
    expect("text/html" in ctype, "%s: Content-Type %r is not HTML" % (what, ctype))
    expect(rid in r.text(), "%s: the page does not name the request id %s:\n%s" % (what, rid, r.text()[:800]))
    return rid


@lib.timeout(60)
def test_get_hello_world(ctx):
    st = lib.Stack(ctx, origin=False)
    r = st.get("/hello?x=1", headers=["User-Agent: itest-agent"])
    expect_eq(r.status, 200, "GET hello_world through the tunnel")
    expect("Hello from Culvert" in r.text(), "hello_world page: %r" % r.text()[:500])
    expect("itest-agent" in r.text(), "hello_world does not show the user agent (request fields lost)")
    expect("/hello?x=1" in r.text(), "hello_world does not show the request target")
    request_id_of(r)


@lib.timeout(60)
def test_get_python_origin(ctx):
    st = lib.Stack(ctx)
    r = st.get("/echo/a%20b?q=1&r=2")
    expect_eq(r.status, 200, "GET /echo through the tunnel")
    j = r.json()
    expect_eq(j["method"], "GET", "method at the origin")
    expect_eq(j["path"], "/echo/a%20b?q=1&r=2", "request target at the origin")
    expect_eq(j["body_length"], 0, "body length at the origin")
    reqs = st.origin.requests()
    expect_eq(len(reqs), 1, "requests at the origin")
    expect_eq(reqs[0]["request_id"], request_id_of(r), "Culvert-Request-Id at the origin vs response")
    r = st.get("/name")
    expect_eq((r.status, r.body), (200, b"origin"), "GET /name")
    r = st.get("/status/418")
    expect_eq(r.status, 418, "an origin's status is relayed")


@lib.timeout(120)
def test_post_large_body_checksummed(ctx):
    st = lib.Stack(ctx)
    size = 1 * MiB if ctx.reduced else 10 * MiB
    path = ctx.path("upload.bin")
    data = os.urandom(size)
    lib.write_file(path, data)
    want = hashlib.sha256(data).hexdigest()
    r = ctx.curl(st.url("/upload"), resolve=st.resolve(), data_file=path,
                 headers=["Content-Type: application/octet-stream"], timeout=30)
    expect_eq(r.status, 200, "POST %d bytes (Content-Length)" % size)
    expect_eq(r.json(), {"length": size, "sha256": want}, "what the origin received (Content-Length)")
    # The same body with chunked framing from the visitor.
    r = ctx.curl(st.url("/upload"), resolve=st.resolve(), data_file=path,
                 headers=["Transfer-Encoding: chunked", "Content-Type: application/octet-stream"], timeout=30)
    expect_eq(r.status, 200, "POST %d bytes (chunked)" % size)
    expect_eq(r.json(), {"length": size, "sha256": want}, "what the origin received (chunked)")
    # Expect: 100-continue (curl sends it for bodies over 1 MiB; forced here).
    r = ctx.curl(st.url("/upload"), resolve=st.resolve(), data_file=path,
                 headers=["Expect: 100-continue"], timeout=30)
    expect_eq(r.status, 200, "POST with Expect: 100-continue")
    expect_eq(r.json(), {"length": size, "sha256": want}, "what the origin received (100-continue)")


@lib.timeout(150)
def test_download_large_body_checksummed(ctx):
    st = lib.Stack(ctx)
    size = 2 * MiB if ctx.reduced else 50 * MiB
    for chunked, seed in ((False, 7), (True, 8)):
        n = size if not chunked else size // 4
        out = ctx.path("download-%d.bin" % seed)
        t0 = time.monotonic()
        r = ctx.curl(st.url("/bytes?n=%d&seed=%d%s" % (n, seed, "&chunked=1" if chunked else "")),
                     resolve=st.resolve(), output=out, timeout=30)
        secs = time.monotonic() - t0
        what = "download of %d bytes (%s)" % (n, "chunked" if chunked else "Content-Length")
        expect_eq((r.rc, r.status), (0, 200), what)
        expect_eq(os.path.getsize(out), n, "%s: size" % what)
        expect_eq(lib.sha256_file(out), origin_mod.gen_sha256(n, seed), "%s: sha256" % what)
        if not chunked:
            expect_eq(r.header("Content-Length"), str(n), "%s: Content-Length relayed" % what)
        ctx.note("%s in %.2fs (%.1f MiB/s)" % (what, secs, n / MiB / max(secs, 0.001)))
        os.unlink(out)


@lib.timeout(90)
def test_parallel_requests(ctx):
    st = lib.Stack(ctx)
    n_req = 20
    size = 64 * 1024 if ctx.reduced else 512 * 1024
    procs = []
    for i in range(n_req):
        procs.append((i,) + ctx.curl_popen(st.url("/bytes?n=%d&seed=%d" % (size + i, 100 + i)),
                                           resolve=st.resolve(), timeout=20))
    failures = []
    for i, p, body, hdr in procs:
        try:
            rc = p.wait(timeout=40 * ctx.slow)
        except Exception:
            p.kill()
            rc = "timeout"
        err = p.stderr.read().decode(errors="replace") if p.stderr else ""
        p.stderr.close()
        with open(hdr, encoding="latin-1") as f:
            status, _ = lib.parse_header_block(f.read())
        if rc != 0 or status != 200:
            failures.append("request %d: curl rc %s, status %s, %s" % (i, rc, status, err.strip()))
            continue
        got = lib.sha256_file(body)
        if got != origin_mod.gen_sha256(size + i, 100 + i):
            failures.append("request %d: body sha256 mismatch (%d bytes)" % (i, os.path.getsize(body)))
    expect(not failures, "parallel requests failed:\n  " + "\n  ".join(failures))
    ids = [r["request_id"] for r in st.origin.requests()]
    expect_eq(len(ids), n_req, "requests at the origin")
    expect_eq(len(set(ids)), n_req, "distinct request ids at the origin")


@lib.timeout(60)
def test_head(ctx):
    st = lib.Stack(ctx)
    r = ctx.curl(st.url("/bytes?n=12345"), resolve=st.resolve(), method="HEAD")
    expect_eq((r.rc, r.status), (0, 200), "HEAD /bytes")
    expect_eq(r.header("Content-Length"), "12345", "Content-Length of a HEAD answer")
    # A HEAD followed by a GET on the same connection (raw): no stray body bytes in between.
    host = st.host
    s = ctx.tls_connect(st.edge.https_port, host)
    rd = lib.RawHTTP(s)
    try:
        s.sendall(("HEAD /bytes?n=100 HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
        r1 = rd.read_response(head_only=True)
        s.sendall(("GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
        r2 = rd.read_response()
    finally:
        s.close()
    expect_eq(r1.status, 200, "raw HEAD status")
    expect_eq(r1.header("Content-Length"), "100", "raw HEAD Content-Length")
    expect_eq((r2.status, r2.body), (200, b"origin"), "GET after HEAD on the same connection")


@lib.timeout(60)
def test_unknown_hostname_404(ctx):
    st = lib.Stack(ctx, origin=False)
    host = "nosuch." + DOMAIN
    r = st.edge.get(host, "/some/path")
    check_error_page(r, 404, "unknown hostname")
    r = st.edge.get(host, "/", headers=["Accept: application/json"])
    expect_eq(r.status, 404, "unknown hostname (JSON): status")
    expect("application/json" in r.header("Content-Type", ""), "unknown hostname (JSON): Content-Type %r"
           % r.header("Content-Type"))
    j = r.json()
    expect_eq(j.get("status"), 404, "JSON status")
    expect(isinstance(j.get("error"), str) and j["error"], "JSON error: %r" % j)
    expect_eq(j.get("request_id"), request_id_of(r), "JSON request_id vs header")
    # Two requests get two ids.
    r2 = st.edge.get(host, "/")
    expect(request_id_of(r2) != j["request_id"], "two requests got the same request id")
    # Accept over two lines is one list (RFC 9110 §5.3): JSON when the second line prefers it.
    r = st.edge.get(host, "/", headers=["Accept: text/html;q=0.1", "Accept: application/json"])
    expect("application/json" in r.header("Content-Type", ""),
           "Accept on two lines, JSON preferred: Content-Type %r" % r.header("Content-Type"))


@lib.timeout(60)
def test_routed_host_without_connector_502(ctx):
    st = lib.Stack(ctx, origin=False)
    st.edge.tunnel_with_route("idle", ["idle." + DOMAIN])
    r = st.edge.get("idle." + DOMAIN, "/")
    check_error_page(r, 502, "routed hostname, no connector online")
    r = st.edge.get("idle." + DOMAIN, "/", headers=["Accept: application/json"])
    expect_eq(r.json().get("status"), 502, "JSON status (no connector)")
    # The served tunnel still works; once its connector stops, its hostname answers 502 too.
    expect_eq(st.get("/").status, 200, "the tunnel with a connector")
    st.connector.stop()
    ctx.wait_until(lambda: st.get("/").status == 502, 10, "502 after the only connector stopped")
    check_error_page(st.get("/"), 502, "after the connector stopped")


@lib.timeout(60)
def test_headers_at_the_origin(ctx):
    st = lib.Stack(ctx)
    hdrs = [
        "X-Forwarded-For: 203.0.113.7",
        "X-Forwarded-Proto: http",
        "X-Forwarded-Host: evil.example",
        "Culvert-Request-Id: forged-id",
        "Culvert-Connecting-IP: 198.51.100.1",
        "Culvert-Anything: visitor",
        "Connection: keep-alive, X-Hop-Named",
        "X-Hop-Named: 1",
        "Keep-Alive: timeout=5",
        "Proxy-Connection: keep-alive",
        "TE: trailers",
        "Upgrade-Insecure-Requests: 1",
        "X-Custom: kept value",
        "X-Repeated: one",
        "X-Repeated: two",
        "CDN-Loop: other-cdn",
    ]
    r = st.get("/echo", headers=hdrs)
    expect_eq(r.status, 200, "GET /echo with visitor headers")
    j = r.json()
    got = j["headers"]
    names = [k.lower() for k, _ in got]

    def all_of(name):
        return [v for k, v in got if k.lower() == name.lower()]

    def one(name):
        vs = all_of(name)
        expect(len(vs) == 1, "origin got %d %s fields: %r" % (len(vs), name, vs))
        return vs[0]

    rid = request_id_of(r)
    expect_eq(one("Culvert-Request-Id"), rid, "Culvert-Request-Id at the origin (vs the response's)")
    expect(rid != "forged-id", "the visitor chose the request id")
    expect_eq(one("X-Forwarded-For"), "203.0.113.7, 127.0.0.1", "X-Forwarded-For (appended)")
    expect_eq(one("X-Forwarded-Proto"), "https", "X-Forwarded-Proto")
    expect_eq(one("X-Forwarded-Host"), st.host, "X-Forwarded-Host")
    expect_eq(one("Culvert-Connecting-IP"), "127.0.0.1", "Culvert-Connecting-IP")
    loop = one("CDN-Loop")
    expect("other-cdn" in loop and re.search(r"culvert-test\s*$", loop),
           "CDN-Loop should keep other-cdn and append culvert-test: %r" % loop)
    expect_eq(one("Host").split(":")[0], st.host, "Host at the origin")
    for gone in ("X-Hop-Named", "Keep-Alive", "Proxy-Connection", "TE", "Culvert-Anything"):
        expect(gone.lower() not in names, "%s reached the origin: %r" % (gone, got))
    culvert = sorted(k.lower() for k in names if k.startswith("culvert-"))
    expect_eq(culvert, ["culvert-connecting-ip", "culvert-request-id"], "Culvert-* fields at the origin")
    expect_eq(one("X-Custom"), "kept value", "an end-to-end field")
    expect_eq(one("Upgrade-Insecure-Requests"), "1", "an end-to-end field that looks like Upgrade")
    expect_eq(all_of("X-Repeated"), ["one", "two"], "repeated fields, in order")
    # The access log names the request id.
    ctx.wait_until(lambda: rid in open(st.edge.access_log).read(), 5, "the request id in the access log")


@lib.timeout(60)
def test_connection_cannot_remove_the_forwarding_fields(ctx):
    """RELIABILITY.md T-24 and CVE-2022-31813: a visitor that names the forwarding fields in
    Connection (as hop-by-hop, to be removed) does not keep them from the origin: X-Forwarded-For
    still ends with the visitor's real address, Culvert-Connecting-IP, X-Forwarded-Proto and Host
    are the edge's. A field it names that is not the edge's own is removed."""
    st = lib.Stack(ctx)
    r = st.get("/echo", headers=[
        "Connection: close, X-Forwarded-For, Culvert-Connecting-IP, X-Forwarded-Proto, "
        "X-Forwarded-Host, Host, Culvert-Request-Id, CDN-Loop, X-Hop",
        "X-Forwarded-For: 203.0.113.9", "X-Hop: 1"])
    expect_eq(r.status, 200, "GET /echo with forwarding fields named in Connection")
    got = r.json()["headers"]

    def one(name):
        vs = [v for k, v in got if k.lower() == name.lower()]
        expect(len(vs) == 1, "origin got %d %s fields: %r" % (len(vs), name, got))
        return vs[0]

    expect_eq(one("X-Forwarded-For"), "203.0.113.9, 127.0.0.1", "X-Forwarded-For at the origin")
    expect_eq(one("Culvert-Connecting-IP"), "127.0.0.1", "Culvert-Connecting-IP at the origin")
    expect_eq(one("X-Forwarded-Proto"), "https", "X-Forwarded-Proto at the origin")
    expect_eq(one("X-Forwarded-Host"), st.host, "X-Forwarded-Host at the origin")
    expect_eq(one("Host").split(":")[0], st.host, "Host at the origin")
    expect_eq(one("Culvert-Request-Id"), request_id_of(r), "Culvert-Request-Id at the origin")
    expect(re.search(r"culvert-test\s*$", one("CDN-Loop")), "CDN-Loop at the origin: %r" % one("CDN-Loop"))
    expect("x-hop" not in [k.lower() for k, _ in got], "a field named in Connection reached the origin")


@lib.timeout(60)
def test_own_loop_marker_508(ctx):
    st = lib.Stack(ctx)
    for v in ("culvert-test", "other-cdn, culvert-test", "culvert-test; x=1"):
        r = st.get("/echo", headers=["CDN-Loop: " + v])
        check_error_page(r, 508, "CDN-Loop: %s" % v)
    r = st.get("/echo", headers=["CDN-Loop: culvert-other-region"])
    expect_eq(r.status, 200, "another edge's marker (culvert-other-region) is not a loop")
    expect_eq(st.origin.request_count(), 1, "requests that reached the origin (only the last one)")


@lib.timeout(60)
def test_host_port_and_sni_checks_421(ctx):
    st = lib.Stack(ctx)
    other = "other." + DOMAIN
    st.edge.route_add(other, "app")
    port = st.edge.https_port
    # Host naming the listener's own port is fine (curl sends it).
    expect_eq(st.get("/name").status, 200, "Host with the listener's port")
    r = st.get("/name", headers=["Host: %s" % st.host])
    expect_eq(r.status, 200, "Host without a port")
    r = st.get("/name", headers=["Host: %s:%d" % (st.host, port + 1 if port < 65535 else port - 1)])
    check_error_page(r, 421, "Host with another port")
    r = st.get("/name", headers=["Host: %s:443" % st.host])
    check_error_page(r, 421, "Host with port 443 on a listener on %d" % port)
    # SNI names one routed host, Host another (both routed to the same tunnel): 421.
    r = st.get("/name", headers=["Host: %s:%d" % (other, port)])
    check_error_page(r, 421, "SNI %s, Host %s" % (st.host, other))
    # The check is made on every request of a connection: first OK, second mismatching.
    s = ctx.tls_connect(port, st.host)
    rd = lib.RawHTTP(s)
    try:
        s.sendall(("GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % st.host).encode())
        r1 = rd.read_response()
        s.sendall(("GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % other).encode())
        r2 = rd.read_response()
    finally:
        s.close()
    expect_eq(r1.status, 200, "first request on the connection")
    expect_eq(r2.status if r2 else None, 421, "second request, Host naming another host than SNI")
    # No SNI at all (a client connecting by IP address): Host alone does not pass.
    r, rd = ctx.raw_request(port, ("GET /name HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" %
                                   st.host).encode(), sni=None)
    rd.sock.close()
    expect_eq(r.status, 421, "no SNI, Host %s" % st.host)
    expect_eq(st.origin.request_count(), 3, "requests that reached the origin (only the three accepted)")


@lib.timeout(60)
def test_plain_http_redirects_routed_hosts_only(ctx):
    st = lib.Stack(ctx)
    r = ctx.curl(st.edge.url(st.host, "/a/b?c=d", scheme="http"), resolve=st.edge.resolve(st.host, "http"))
    expect_eq(r.status, 301, "GET on the http listener for a routed host")
    expect_eq(r.header("Location"), "https://%s:%d/a/b?c=d" % (st.host, st.edge.https_port),
              "Location of the redirect")
    host = "nosuch." + DOMAIN
    r = ctx.curl(st.edge.url(host, "/", scheme="http"), resolve=st.edge.resolve(host, "http"))
    expect_eq(r.status, 404, "GET on the http listener for an unknown host")
    expect_eq(r.header("Location"), None, "Location for an unknown host")
    r = ctx.curl(st.edge.url(host, "/", scheme="http"), resolve=st.edge.resolve(host, "http"),
                 headers=["Host: evil.test"])
    expect_eq(r.status, 404, "http listener, Host evil.test")
    expect(r.header("Location") is None, "a Location for Host evil.test: %r" % r.header("Location"))
    expect_eq(st.origin.request_count(), 0, "requests that reached the origin over plain HTTP")


@lib.timeout(60)
def test_url_flag_serves_every_routed_hostname(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("one", ["a." + DOMAIN, "b." + DOMAIN])
    origin = ctx.origin("single")
    ctx.connector(edge, t["token"], url=origin.url)
    for h in ("a." + DOMAIN, "b." + DOMAIN):
        r = edge.get(h, "/echo")
        expect_eq(r.status, 200, "GET %s through a --url connector" % h)
        expect_eq(r.json()["name"], "single", "origin that answered %s" % h)
        expect_eq(next(v for k, v in r.json()["headers"] if k.lower() == "x-forwarded-host"), h,
                  "X-Forwarded-Host for %s" % h)


@lib.timeout(60)
def test_wildcard_and_exact_routes_apply_at_once(ctx):
    edge = ctx.edge()
    wild = edge.tunnel_with_route("wild", ["*.wild." + DOMAIN])
    exact = edge.create_tunnel("exact")
    # Another tunnel's name under the wildcard: refused unless asked for (RELIABILITY.md 2.2).
    edge.cli("route", "add", "x.wild." + DOMAIN, "exact", check=1)
    edge.cli("route", "add", "x.wild." + DOMAIN, "exact", "--allow-overlap")
    ow = ctx.origin("origin-wild")
    ox = ctx.origin("origin-exact")
    ctx.connector(edge, wild["token"], ingress=[{"service": ow.url}], name="conn-wild")
    ctx.connector(edge, exact["token"], ingress=[{"service": ox.url}], name="conn-exact")

    def name_of(host):
        r = edge.get(host, "/name")
        return r.status, r.body

    expect_eq(name_of("a.wild." + DOMAIN), (200, b"origin-wild"), "a.wild -> the wildcard's tunnel")
    expect_eq(name_of("x.wild." + DOMAIN), (200, b"origin-exact"), "x.wild -> the exact route beats the wildcard")
    r = edge.get("X.Wild." + DOMAIN.upper(), "/name")
    expect_eq((r.status, r.body), (200, b"origin-exact"), "upper-case Host and SNI normalise to x.wild")
    # Routes apply at once: delete the exact route, x.wild falls to the wildcard; delete that, 404.
    edge.cli("route", "delete", "x.wild." + DOMAIN)
    expect_eq(name_of("x.wild." + DOMAIN), (200, b"origin-wild"), "x.wild after its exact route was deleted")
    edge.cli("route", "delete", "*.wild." + DOMAIN)
    check_error_page(edge.get("a.wild." + DOMAIN, "/name"), 404, "a.wild after the wildcard was deleted")
    expect_eq(len(ow.requests()) + len(ox.requests()), 4, "requests at the origins")


@lib.timeout(60)
def test_origin_unreachable_502_and_timeout_504(ctx):
    edge = ctx.edge(extra={"timeouts": {"response_header": "1s"}})
    t = edge.tunnel_with_route("bad", ["down." + DOMAIN, "slow." + DOMAIN])
    origin = ctx.origin("slowpoke")
    closed = lib.free_port()
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": "down." + DOMAIN, "service": "http://127.0.0.1:%d" % closed},
        {"hostname": "slow." + DOMAIN, "service": origin.url},
        {"service": "http_status:404"},
    ])
    check_error_page(edge.get("down." + DOMAIN, "/"), 502, "origin refusing connections")
    r = edge.get("down." + DOMAIN, "/", headers=["Accept: application/json"])
    expect_eq(r.json().get("status"), 502, "JSON status for an unreachable origin")
    t0 = time.monotonic()
    r = edge.get("slow." + DOMAIN, "/slow?ms=%d" % (4000 * ctx.slow))
    secs = time.monotonic() - t0
    check_error_page(r, 504, "origin slower than timeouts.response_header (1s)")
    expect(secs < 3.5 * ctx.slow, "the 504 came after %.2fs (response_header is 1s)" % secs)
    expect_eq(edge.get("slow." + DOMAIN, "/slow?ms=10").status, 200, "a fast answer on the same host")


@lib.timeout(60)
def test_keep_alive_many_requests_on_one_connection(ctx):
    st = lib.Stack(ctx)
    s = ctx.tls_connect(st.edge.https_port, st.host)
    rd = lib.RawHTTP(s)
    n = 20 if ctx.reduced else 50
    try:
        for i in range(n):
            body = b"x" * i
            s.sendall(("POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" %
                       (st.host, len(body))).encode() + body)
            r = rd.read_response()
            expect(r is not None, "request %d: the connection closed" % i)
            expect_eq(r.status, 200, "request %d on one connection" % i)
            expect_eq(json.loads(r.body)["length"], i, "request %d: body length at the origin" % i)
        # Pipelined: three requests in one write, answered in order.
        s.sendall(b"".join(("GET /status/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (code, st.host)).encode()
                           for code in (201, 202, 203)))
        got = [rd.read_response().status for _ in range(3)]
        expect_eq(got, [201, 202, 203], "pipelined responses, in order")
    finally:
        s.close()
    expect_eq(st.origin.request_count(), n + 3, "requests at the origin")


def access_log_lines(edge):
    with open(edge.access_log) as f:
        return f.read().splitlines()


@lib.timeout(60)
def test_malformed_requests_are_in_the_access_log_under_their_request_id(ctx):
    """The error page of a request the edge could not parse (400, 414, 431) names a request id; the
    access log must have a line with it, as nginx logs its 400s and 414s, or an operator given the
    id by a visitor finds nothing. A request whose body turns out malformed after its head went to
    the origin keeps the id the origin saw, and gets JSON when it asked for JSON."""
    st = lib.Stack(ctx)
    port = st.edge.https_port
    cases = [
        ("obs-fold", b"GET /a HTTP/1.1\r\nHost: %s\r\nX-A: a\r\n b\r\n\r\n" % st.host.encode(), 400),
        ("long target", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: %s\r\n\r\n" % st.host.encode(),
         414),
        ("large field", b"GET /b HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n" % (st.host.encode(),
                                                                                b"b" * 17000), 431),
    ]
    for what, data, status in cases:
        r, rd = ctx.raw_request(port, data, sni=st.host)
        rd.sock.close()
        expect_eq(r.status if r else None, status, what)
        rid = request_id_of(r)
        ctx.wait_until(lambda: any(("rid=%s" % rid) in l for l in access_log_lines(st.edge)), 5,
                       "a line with rid=%s (%s, %d) in the access log" % (rid, what, status))
        line = [l for l in access_log_lines(st.edge) if ("rid=%s" % rid) in l][0]
        expect((" %d " % status) in line, "%s: access log line without status %d: %r" % (what, status, line))

    # A chunked body that breaks after the head was forwarded: same id at the origin, in the 400
    # and in the access log.
    s = ctx.tls_connect(port, st.host)
    rd = lib.RawHTTP(s)
    try:
        s.sendall(("POST /upload HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n" % st.host).encode())
        ctx.wait_until(lambda: any(q["path"] == "/upload" for q in st.origin.requests()), 5,
                       "the POST at the origin")
        sent_rid = [q for q in st.origin.requests() if q["path"] == "/upload"][0]["request_id"]
        s.sendall(b"zz\r\nbad\r\n")
        r = rd.read_response()
    finally:
        s.close()
    expect_eq(r.status if r else None, 400, "a malformed chunk size after the head")
    expect_eq(request_id_of(r), sent_rid, "the 400's request id vs the one the origin received")
    expect("application/json" in r.header("Content-Type", ""), "the 400 of a request asking for JSON "
           "has Content-Type %r" % r.header("Content-Type"))
    expect_eq(r.json().get("request_id"), sent_rid, "request_id in the JSON 400")
    ctx.wait_until(lambda: any(("rid=%s" % sent_rid) in l and "POST /upload" in l and " 400 " in l
                               for l in access_log_lines(st.edge)), 5,
                   "the POST's 400 in the access log under rid=%s" % sent_rid)


@lib.timeout(60)
def test_json_access_log_lines_are_json_whatever_the_visitor_sends(ctx):
    """access_log format json: every line is a JSON text (UTF-8, RFC 8259) that a log shipper can
    parse, even when a visitor's field holds bytes that are not UTF-8 (obs-text is legal in a field
    value); valid UTF-8 comes through unchanged."""
    st = lib.Stack(ctx, edge_kw={"extra": {"access_log": {
        "path": ctx.path("edge", "access.log"), "format": "json"}}})
    agents = [b"Z\xc3\xbcrich \xe2\x82\xac", b"bad \xff\xc3( \xed\xa0\x80 \xc0\xaf end"]
    rids = []
    for ua in agents:
        r, rd = ctx.raw_request(st.edge.https_port, b"GET /name HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                                b"Referer: https://r.test/\xfe\r\nConnection: close\r\n\r\n"
                                % (st.host.encode(), ua), sni=st.host)
        rd.sock.close()
        expect_eq(r.status if r else None, 200, "GET with User-Agent %r" % ua)
        rids.append(request_id_of(r))
    ctx.wait_until(lambda: all(rid.encode() in open(st.edge.access_log, "rb").read() for rid in rids),
                   5, "both requests in the access log")
    got = {}
    with open(st.edge.access_log, "rb") as f:
        for raw in f:
            try:
                j = json.loads(raw)
            except ValueError as e:
                raise AssertionError("access log line is not JSON (%s): %r" % (e, raw))
            got[j["request_id"]] = j
    expect_eq(got[rids[0]]["user_agent"], agents[0].decode(), "a UTF-8 User-Agent in the JSON log")
    bad = got[rids[1]]["user_agent"]
    expect(bad.startswith("bad ") and bad.endswith(" end"), "the rest of a non-UTF-8 User-Agent: %r" % bad)


@lib.timeout(60)
def test_access_log_counts_body_bytes_of_the_edges_own_answers(ctx):
    """The combined format's size is nginx's $body_bytes_sent: the body only. A proxied response is
    logged so; the edge's own answers (error pages, redirects) must be too, not head plus body."""
    st = lib.Stack(ctx)
    checks = []
    r = st.edge.get("nosuch." + DOMAIN, "/")
    checks.append((request_id_of(r), len(r.body), "404 page"))
    r = st.edge.get("nosuch." + DOMAIN, "/", headers=["Accept: application/json"])
    checks.append((request_id_of(r), len(r.body), "404 JSON"))
    r = st.edge.get("nosuch." + DOMAIN, "/", method="HEAD")
    checks.append((request_id_of(r), 0, "404 to HEAD"))
    r = st.get("/bytes?n=1234")
    checks.append((request_id_of(r), 1234, "proxied 200"))
    ctx.wait_until(lambda: all(("rid=%s" % rid) in "\n".join(access_log_lines(st.edge))
                               for rid, _, _ in checks), 5, "every request in the access log")
    lines = access_log_lines(st.edge)
    for rid, n, what in checks:
        line = [l for l in lines if ("rid=%s" % rid) in l][0]
        m = re.search(r'" (\d{3}) (\d+) "', line)
        expect(m is not None, "%s: no status and size in %r" % (what, line))
        expect_eq(int(m.group(2)), n, "%s: bytes in the access log (%r)" % (what, line))


@lib.timeout(60)
def test_requests_refused_while_parsed_get_json_when_they_ask(ctx):
    """A request refused by the parser's checks at the end of its head (400 framing or h2c, 405
    TRACE) gets its error page as JSON when its Accept prefers JSON, like the edge's other answers
    (PRODUCT.md section 2, "Errors the visitor sees")."""
    st = lib.Stack(ctx)
    host = st.host.encode()
    cases = [
        ("CL and TE", b"POST /a HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\nContent-Length: 1\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % host, 400),
        ("TRACE", b"TRACE /a HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n\r\n" % host, 405),
        ("Upgrade: h2c", b"GET /b HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\nConnection: Upgrade, "
         b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n" % host, 400),
    ]
    for what, data, status in cases:
        r, rd = ctx.raw_request(st.edge.https_port, data, sni=st.host)
        rd.sock.close()
        expect_eq(r.status if r else None, status, what)
        expect("application/json" in r.header("Content-Type", ""), "%s: Content-Type %r" % (
            what, r.header("Content-Type")))
        j = r.json()
        expect_eq(j.get("status"), status, "%s: JSON status" % what)
        expect_eq(j.get("request_id"), request_id_of(r), "%s: JSON request_id" % what)
    # Without Accept (or preferring HTML) it stays a page.
    r, rd = ctx.raw_request(st.edge.https_port, b"TRACE /a HTTP/1.1\r\nHost: %s\r\n\r\n" % host, sni=st.host)
    rd.sock.close()
    check_error_page(r, 405, "TRACE without Accept")
