"""A connector with a valid token for tunnel B that does not follow the protocol (RELIABILITY.md
§2.3, T-09, T-15, T-35): tunnel A's visitors stay unaffected and the edge's memory stays bounded.
The hostile connector is tests/integration/fake_peer.py."""

import hashlib
import os
import struct
import time

import fake_peer
import ha_lib
import lib
import origin as origin_mod
from fake_peer import PING, PONG
from lib import DOMAIN, expect, expect_eq

HOST_A, HOST_B = "a." + DOMAIN, "b." + DOMAIN


def _two_tunnels(ctx, limits=None):
    """Edge with tunnel A (origin.py behind a real connector) and tunnel B (a fake connector)."""
    edge = ctx.edge(limits=limits)
    ta = edge.tunnel_with_route("ta", [HOST_A])
    tb = edge.tunnel_with_route("tb", [HOST_B])
    org = ctx.origin()
    ctx.connector(edge, ta["token"], ingress=[{"service": org.url}], ha=1)
    fake = fake_peer.FakeConnector(ctx, edge, tb["token"])
    return edge, fake


def _rss_kib(proc):
    with open("/proc/%d/status" % proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _sync(fake, timeout=30):
    """Waits until the edge has processed everything the fake connector sent before."""
    fake.send(fake_peer.frame(PING, b"syncsync"))
    f = fake.next_frame((PONG,), timeout)
    return f is not None


def _check_a(ctx, edge, what):
    r = edge.get(HOST_A, "/bytes?n=100000&seed=7", timeout=10)
    expect_eq(r.status, 200, "GET on tunnel A " + what)
    expect(r.body == b"".join(origin_mod.gen_bytes(100000, 7)),
           "tunnel A's body is byte-exact " + what)


def _goaway_flood(ctx, peer, log, who, payload, per_send):
    """Sends 10 x |per_send| GOAWAYs with |payload| through fake |peer|; |who|'s |log| must grow
    by less than 64 KiB (a log line each would be megabytes)."""
    size0 = os.path.getsize(log)
    g = fake_peer.frame(fake_peer.GOAWAY, payload)
    for _ in range(10):
        peer.send(g * per_send)
    expect(_sync(peer), "the %s answers PING after the GOAWAYs" % who)
    grown = os.path.getsize(log) - size0
    ctx.note("%s log grew by %d bytes" % (who, grown))
    expect(grown < 64 * 1024,
           "%s log grew by %d bytes for %d GOAWAY frames" % (who, grown, 10 * per_send))


@lib.timeout(90)
def test_interim_response_flood_does_not_grow_edge_memory(ctx):
    """HEADERS are not flow-controlled, so a connector that answers a request with endless 1xx
    interim responses (each relayed to the visitor) must not make the edge queue them without bound
    for a visitor that does not read: the edge gives up on the response after a few. Without the
    cap they filled the buffer budget (16 MiB here), and tunnel A's requests got 503."""
    edge, fake = _two_tunnels(ctx, limits={"buffer_budget": "16MiB"})
    _check_a(ctx, edge, "before the flood")
    v = ctx.tls_connect(edge.https_port, HOST_B, rcvbuf=4096)
    v.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST_B.encode())
    sid, _ = fake.next_request()
    expect(_sync(fake), "edge answers PING before the flood")
    rss0 = _rss_kib(edge.proc)
    chunk = fake_peer.response(sid, 103, [("link", "</a.css>; rel=preload")]) * 20000
    t0 = time.monotonic()
    try:
        for _ in range(60):  # 1.2 M interim responses, ~58 MB on the tunnel
            fake.send(chunk)
    except OSError:
        pass  # the edge may close the connection: allowed
    _sync(fake) or fake.closed.wait(10)
    grown = _rss_kib(edge.proc) - rss0
    ctx.note("edge RSS grew by %d KiB in %.1fs of 103 flood" % (grown, time.monotonic() - t0))
    expect(edge.proc.alive(), "edge alive after the flood")
    _check_a(ctx, edge, "after the flood")
    if not ctx.reduced:  # ASan's quarantine keeps freed blocks: RSS says nothing there
        expect(grown < 16 * 1024, "edge RSS grew by %d KiB under an interim-response flood" % grown)
    rd = lib.RawHTTP(v)
    interim = 0
    while True:
        r = rd.read_response()
        if r.status >= 200:
            break
        interim += 1
    ctx.note("visitor got %d interim responses, then %d" % (interim, r.status))
    expect_eq(r.status, 502, "the flooded visitor's answer")
    expect(interim <= 16, "interim responses relayed: %d" % interim)
    v.close()
    fake.close()


@lib.timeout(90)
def test_goaway_flood_does_not_flood_the_edge_log(ctx):
    """GOAWAY may be repeated (PROTOCOL.md §11.3), but 200,000 of them (4 MB on the tunnel) must
    not write a log line each: 21.4 MB of edge log before the limiter."""
    edge, fake = _two_tunnels(ctx)
    _goaway_flood(ctx, fake, edge.proc.log, "edge", struct.pack(">III", 0x7FFFFFFF, 0, 0), 20000)
    _check_a(ctx, edge, "after the GOAWAY flood")
    fake.close()


@lib.timeout(90)
def test_goaway_flood_from_an_edge_does_not_flood_the_connector_log(ctx):
    """The reverse of the test above (RELIABILITY.md §2.3: the connector treats the edge as
    potentially hostile): a fake edge repeats GOAWAY with a 256-octet reason."""
    edge = ctx.edge()
    t = edge.tunnel_with_route("tb", [HOST_B])
    edge.stop()
    fe = fake_peer.FakeEdge(ctx, edge.tunnel_port)
    c = ctx.connector(edge, t["token"], ha=1, wait_ready=False)
    fe.accept()
    ctx.wait_until(lambda: "registered tunnel connection" in c.proc.text(), 10, "registration")
    _goaway_flood(ctx, fe, c.proc.log, "connector", struct.pack(">III", 0, 0, 0) + b"r" * 256, 5000)
    expect(c.proc.alive(), "connector alive")
    fe.close()


@lib.timeout(90)
def test_valid_token_that_keeps_breaking_the_protocol_is_tarpitted(ctx):
    """A connector with a valid token that registers, breaks the protocol and reconnects, in a loop:
    only failed logins were tarpitted, so each turn cost the edge a TLS handshake and log lines for
    as long as it went on. After 10 such connections in a minute its address gets no answer to a
    registration (the registration deadline closes it), while another address registers at once."""
    edge = ctx.edge(limits={"register_ms": "1s"})
    tb = edge.tunnel_with_route("tb", [HOST_B])
    bad = fake_peer.frame(fake_peer.DATA, b"x", stream=2)  # §7.1: even ids are never opened
    for i in range(10):
        fake = fake_peer.FakeConnector(ctx, edge, tb["token"])
        fake.send(bad)
        g = fake.next_frame((fake_peer.GOAWAY,), 5 * ctx.slow)
        expect(g is not None and struct.unpack(">I", g[3][4:8])[0] == 0x01,
               "connection %d: GOAWAY PROTOCOL_ERROR for DATA on stream 2: %r" % (i, g))
        fake.close()
    t0 = time.monotonic()
    try:
        fake_peer.FakeConnector(ctx, edge, tb["token"])
        held = False
    except (EOFError, OSError, AssertionError):
        held = True
    took = time.monotonic() - t0
    expect(held, "the 11th registration from 127.0.0.1 was answered")
    expect(0.8 <= took <= 5 * ctx.slow,
           "the held registration ended after %.2fs (register_ms 1s)" % took)
    ctx.wait_until(lambda: "registration held" in edge.proc.text(), 5,
                   "the edge to log the held registration")
    other = fake_peer.FakeConnector(ctx, edge, tb["token"], src="127.0.0.2")
    expect(_sync(other), "a connector from 127.0.0.2 registered and answers PING")
    other.close()


@lib.timeout(90)
def test_connector_cannot_claim_another_tunnels_hostnames(ctx):
    """RELIABILITY.md T-11, hostname hijack: tunnel B's connector (valid token) names tunnel A's
    hostnames in everything it can send: the software version and region of its REGISTER, frames
    of unknown types, a request block of its own on a stream it opens, a response block carrying
    `:authority` and `host`, GOAWAY debug data; in the exact name, upper case, with a trailing dot,
    as a wildcard. Nothing a connector sends names a hostname to the edge (routes are set by the
    operator), so: the routes and tunnels the edge lists are unchanged, every request for A's
    names (exact, upper case, trailing dot, a name under A's wildcard) reaches A's origin and none
    reaches B, and the edge logged each connection that broke the protocol."""
    edge = ctx.edge()
    wild_a = "*.wild." + DOMAIN
    ta = edge.tunnel_with_route("ta", [HOST_A, wild_a])
    tb = edge.tunnel_with_route("tb", [HOST_B])
    org = ctx.origin("origin-a")
    ctx.connector(edge, ta["token"], ingress=[{"service": org.url}], ha=1)
    routes0 = edge.cli("route", "list", output_json=True).json
    tunnels0 = sorted((t["name"], t["id"]) for t in edge.cli("tunnel", "list", output_json=True).json)
    claims = [HOST_A, HOST_A.upper(), HOST_A + ".", wild_a, "x.wild." + DOMAIN, "*." + DOMAIN]
    fakes = []
    # REGISTER: A's names as the software version and region label (printable, [A-Za-z0-9._-]).
    for c in claims:
        label = c.replace("*", "x").encode()
        fakes.append(fake_peer.FakeConnector(ctx, edge, tb["token"], version=label, region=label))
    keep = fakes[0]
    for c in claims:
        # Unknown frame types, ignored (under the flood limit); the connection stays.
        keep.send(fake_peer.frame(0x20, c.encode()) + fake_peer.frame(0x7f, c.encode(), stream=1))
    expect(_sync(keep), "B's connector answers PING after unknown frames naming A's hostnames")
    broken = 0
    src = 0
    for c in claims:
        for bad in (
                # a request of its own on a stream the connector opens (§7.1: the edge opens them)
                fake_peer.frame(fake_peer.HEADERS, fake_peer.block(0x01, [
                    (":method", "GET"), (":scheme", "https"), (":authority", c), (":path", "/")]),
                    fake_peer.END_HEADERS, 2),
                # a response on a stream that was never opened, naming the host
                fake_peer.frame(fake_peer.HEADERS, fake_peer.block(fake_peer.RESPONSE, [
                    (":status", "200"), (":authority", c), ("host", c)]), fake_peer.END_HEADERS, 1),
                # GOAWAY whose debug data names the host
                fake_peer.frame(fake_peer.GOAWAY, struct.pack(">II", 0, 0) + c.encode())):
            # each from an address of its own: ten broken connections a minute from one address
            # get its registrations held (test above)
            src += 1
            f = fake_peer.FakeConnector(ctx, edge, tb["token"], src="127.0.4.%d" % src)
            f.send(bad)
            g = f.next_frame((fake_peer.GOAWAY,), 5 * ctx.slow) if bad[3] != fake_peer.GOAWAY else None
            if bad[3] != fake_peer.GOAWAY:
                expect(g is not None, "no GOAWAY for a frame naming %s: %r" % (c, bad[:12]))
                broken += 1
            f.close()
    expect_eq(edge.cli("route", "list", output_json=True).json, routes0, "routes after B's claims")
    expect_eq(sorted((t["name"], t["id"]) for t in edge.cli("tunnel", "list", output_json=True).json),
              tunnels0, "tunnels after B's claims")
    n = 200 if ctx.reduced else 2000
    for host in (HOST_A, "x.wild." + DOMAIN):
        load = ha_lib.Load(ctx, edge, host, threads=4, total=n).start().wait(60)
        expect(not load.failures(), "requests for %s: %s" % (host, load.describe_failures()))
        expect_eq(dict(load.names()), {"origin-a": n}, "who answered %d requests for %s" % (n, host))
    for host in (HOST_A.upper(), HOST_A + "."):
        r, rd = ctx.raw_request(edge.https_port, b"GET /name HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                % host.encode(), sni=HOST_A)
        rd.sock.close()
        expect(r is not None and (r.status, r.body) == (200, b"origin-a"), "Host: %s -> %r" % (host, r))
    for f in fakes:
        expect(f.next_frame((fake_peer.HEADERS,), 0.1) is None, "a request reached tunnel B's connector")
        f.close()
    log = edge.proc.text()
    errors = log.count("PROTOCOL_ERROR")
    ctx.note("edge log: %d lines with PROTOCOL_ERROR for %d connections that broke the protocol" % (errors, broken))
    expect(errors >= broken, "the edge logged %d protocol errors for %d connections that broke the "
           "protocol" % (errors, broken))


@lib.timeout(60)
def test_same_connector_id_and_index_displaces_nothing(ctx):
    """RELIABILITY.md T-18, session displacement: a second registration with the token, the
    connector id and the connection indexes of a connector already up (what a copied config or a
    hostile holder of the token would send) is one more connection of that connector, never a
    replacement: the real connector's connections all stay, and once the impostor's are gone,
    requests reach the real connector's origin. (While they are there, the impostor may be sent
    requests: holding the token is holding the tunnel, as with cloudflared.)"""
    edge = ctx.edge()
    ta = edge.tunnel_with_route("ta", [HOST_A])
    org = ctx.origin("origin-a")
    ctx.connector(edge, ta["token"], ingress=[{"service": org.url}], ha=2)
    ha_lib.wait_connections(ctx, edge, "ta", {"": 2}, 10)
    real = ha_lib.connectors(edge, "ta")
    expect_eq(len(real), 1, "connectors before the impostor")
    cid = real[0]["id"]
    ids0 = sorted(c["id"] for c in real[0]["connections"])
    fakes = [fake_peer.FakeConnector(ctx, edge, ta["token"], connector_id=cid, index=i) for i in (0, 1)]
    for f in fakes:
        expect(_sync(f), "the impostor's connection answers PING")
    now = ha_lib.connectors(edge, "ta")
    expect_eq([k["id"] for k in now], [cid], "connectors with the impostor (one id)")
    ids1 = sorted(c["id"] for c in now[0]["connections"])
    expect(set(ids0) <= set(ids1) and len(ids1) == 4,
           "the real connector's connections %r, with the impostor's: %r" % (ids0, ids1))
    for f in fakes:
        f.close()
    ha_lib.wait_connections(ctx, edge, "ta", {"": 2}, 10, "the impostor's connections to go")
    expect_eq(sorted(c["id"] for c in ha_lib.connectors(edge, "ta")[0]["connections"]), ids0,
              "the real connector's connections after the impostor left")
    r = edge.get(HOST_A, "/name")
    expect_eq((r.status, r.body), (200, b"origin-a"), "GET through the real connector")


def _two_fakes(ctx):
    """Tunnel A served by two fake connectors: the test makes the one that gets a stream refuse
    it and watches what the other gets."""
    edge = ctx.edge()
    ta = edge.tunnel_with_route("ta", [HOST_A])
    return edge, [fake_peer.FakeConnector(ctx, edge, ta["token"]) for _ in range(2)]


def _post_to_fakes(ctx, edge, fakes, body):
    """Sends POST /upload with |body| for HOST_A; returns (the visitor's socket, the fake connector
    that got the request, its HEADERS frame)."""
    s = ctx.tls_connect(edge.https_port, HOST_A, timeout=20)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (HOST_A.encode(), len(body))
              + body)
    for _ in range(100):
        for f in fakes:
            h = f.next_frame((fake_peer.HEADERS,), 0.05)
            if h is not None:
                return s, f, h
    s.close()
    raise AssertionError("no fake connector got the request")


def _read_to_end(fake, got, what):
    """Appends the DATA of |fake|'s next frames to |got| until END_STREAM; returns it."""
    while True:
        d = fake.next_frame((fake_peer.DATA,), 10)
        expect(d is not None, "%s stopped after %d body bytes" % (what, len(got)))
        got += d[3]
        if d[1] & fake_peer.END_STREAM:
            return got


def _answer_ok(fake, sid):
    fake.send(fake_peer.response(sid, 200, [("content-length", "2")])
              + fake_peer.frame(fake_peer.DATA, b"ok", fake_peer.END_STREAM, sid))


def _post_while_refused(ctx, edge, fakes, body, refuse_after):
    """POSTs |body| to /upload. The fake connector that takes the stream reads |refuse_after| body
    bytes, then refuses it (RESET REFUSED_STREAM, no DISPATCHED), as a connector going away
    does. Returns (the visitor's response, the body bytes the other fake got on a retried stream, or
    None if no stream reached it)."""
    s, first, h = _post_to_fakes(ctx, edge, fakes, body)
    try:
        got = 0
        while got < refuse_after:
            d = first.next_frame((fake_peer.DATA,), 10)
            expect(d is not None, "the fake connector got %d body bytes, waiting for %d" % (got, refuse_after))
            got += len(d[3])
        first.send(fake_peer.frame(fake_peer.RESET, struct.pack(">I", 0x07), stream=h[2]))
        other = fakes[1 - fakes.index(first)]
        retried = None
        h2 = other.next_frame((fake_peer.HEADERS,), 2)
        if h2 is not None:
            other.send(fake_peer.frame(fake_peer.WINDOW_UPDATE, struct.pack(">I", 1 << 20), stream=h2[2]))
            retried = _read_to_end(other, b"", "the retried stream")
            _answer_ok(other, h2[2])
        r = lib.RawHTTP(s).read_response()
        ctx.note("refused after %d body bytes; retried with %s; answer %r" % (
            got, "nothing" if retried is None else "%d bytes" % len(retried), r and (r.status, r.body[:100])))
        return r, retried
    finally:
        s.close()


@lib.timeout(60)
def test_upload_refused_before_dispatch_is_retried_with_its_body(ctx):
    """PRODUCT.md: requests a connector had not yet handed to its origin are retried on another
    connector. A POST whose stream is refused (RESET REFUSED_STREAM, what a connector going away
    answers for streams it will not take) after part of its body went out is retried on the other
    connector with the whole body, each byte once."""
    edge, fakes = _two_fakes(ctx)
    body = os.urandom(600000)
    # Refused once 200 KB went out: less than the stream window (256 KiB), which is all a stream
    # carries before its connector returns credit.
    r, retried = _post_while_refused(ctx, edge, fakes, body, 200000)
    expect(retried is not None, "the refused upload was not retried: %r" % (r and (r.status, r.body[:200]),))
    expect(retried == body, "the retried stream carried %d bytes, not the %d-byte body" % (len(retried), len(body)))
    expect(r is not None and (r.status, r.body) == (200, b"ok"), "the answer: %r" % (r and (r.status, r.body[:200]),))
    expect("retrying on another connection (stream refused, with the body sent so far)" in edge.proc.text(),
           "the edge logged no retry with the body")


@lib.timeout(60)
def test_upload_body_waits_at_the_kept_size_until_dispatched(ctx):
    """The copy of a request body kept for a retry is bounded (256 KiB, edge/public.c REPLAY_MAX,
    the default stream window): until the connector says DISPATCHED the edge sends no more than
    that, even to a connector that grants more credit, so every stream refused before DISPATCHED
    can be retried whole. Once DISPATCHED comes, the rest of the body flows."""
    edge, fakes = _two_fakes(ctx)
    body = os.urandom(600000)
    s, f, h = _post_to_fakes(ctx, edge, fakes, body)
    try:
        f.send(fake_peer.frame(fake_peer.WINDOW_UPDATE, struct.pack(">I", 1 << 20), stream=h[2]))
        got = b""
        while True:
            d = f.next_frame((fake_peer.DATA,), 0.5)
            if d is None:
                break
            got += d[3]
        expect_eq(len(got), 256 * 1024, "body bytes sent before DISPATCHED, with 1 MiB more credit granted")
        f.send(fake_peer.frame(fake_peer.DISPATCHED, b"", stream=h[2]))
        got = _read_to_end(f, got, "the body after DISPATCHED")
        expect(got == body, "the connector got %d bytes, not the %d-byte body" % (len(got), len(body)))
        _answer_ok(f, h[2])
        r = lib.RawHTTP(s).read_response()
        expect(r is not None and (r.status, r.body) == (200, b"ok"), "the answer: %r" % (r and (r.status, r.body[:200]),))
    finally:
        s.close()
