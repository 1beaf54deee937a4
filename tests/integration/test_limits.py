"""Resource limits under hostile load (RELIABILITY.md §1.4, 3.5 and §0.5 item 5): idle sockets on
the tunnel port cannot lock connectors out, the public connection cap stays below the open-file
limit, and requests that end in resets (a dead origin, visitors who go away) never cost the tunnel
its connections."""

import hashlib
import json
import os
import re
import select
import socket
import ssl
import threading
import time

import ha_lib
import lib
import origin as origin_mod
from lib import DOMAIN, expect, expect_eq


def _hold_conns(addr, port, n, src):
    """Opens up to |n| plain TCP connections from |src| that never speak; returns the sockets."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((src, 0))
            s.connect_ex((addr, port))
        except OSError:
            s.close()
            continue
        out.append(s)
    return out


def _get_name_from(ctx, st, src):
    """GET /name over TLS from source address |src|: the Response (None if none came)."""
    tls = ssl.create_default_context(cafile=os.path.join(ctx.pki, "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", st.edge.https_port), timeout=5 * ctx.slow,
                                   source_address=(src, 0))
    s = tls.wrap_socket(raw, server_hostname=st.host)
    try:
        s.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % st.host.encode())
        return lib.RawHTTP(s).read_response()
    finally:
        s.close()


def _reap_closed(socks):
    """Closes and drops the sockets the edge has closed (readable with EOF or reset)."""
    alive = []
    r, _, _ = select.select(socks, [], [], 0) if socks else ([], [], [])
    ready = set(r)
    for s in socks:
        if s in ready:
            try:
                if s.recv(1) == b"":
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
        alive.append(s)
    return alive


@lib.timeout(60)
def test_idle_preauth_flood_from_one_address_does_not_lock_out_connectors(ctx):
    """RELIABILITY.md 3.5 / T-19: sockets that never start TLS, from one address, hold at most a
    quarter of the 64 registration slots; the excess is closed at once, and a connector from
    another address registers within 2 s while the flood keeps reopening what the edge closes."""
    edge = ctx.edge(limits={"register_ms": "4s"})
    t = edge.tunnel_with_route("flood", ["flood." + DOMAIN])
    flood = _hold_conns("127.0.0.1", edge.tunnel_port, 100, "127.0.0.2")
    try:
        time.sleep(0.5)
        flood = _reap_closed(flood)
        expect(len(flood) <= 16, "%d idle connections from one address still open (a quarter of "
                                 "pending_handshakes 64 is 16)" % len(flood))
        expect(len(flood) >= 8, "only %d of the idle connections were admitted" % len(flood))
        c = ctx.connector(edge, t["token"], name="legit", start=False)
        c.start(wait_ready=False)
        t0 = time.monotonic()
        ready = False
        while time.monotonic() - t0 < 2.0 * ctx.slow:
            flood = _reap_closed(flood)
            flood += _hold_conns("127.0.0.1", edge.tunnel_port, 100 - len(flood), "127.0.0.2")
            if c.ready():
                ready = True
                break
            time.sleep(0.05)
        took = time.monotonic() - t0
        expect(ready, "the connector did not register within %.1fs during the flood:\n%s" % (
            2.0 * ctx.slow, lib.tail(c.proc.log)))
        expect_eq(edge.get("flood." + DOMAIN).status, 200, "GET through the connector during the flood")
        ctx.note("connector registered %.2fs into the flood" % took)
        expect(re.search(r"dropped: \d+ registrations pending from this address", edge.proc.text()),
               "the edge did not log the per-address drop")
    finally:
        for s in flood:
            s.close()


@lib.timeout(90)
def test_dead_origin_resets_do_not_cost_the_tunnel_its_connections(ctx):
    """1,200 requests to a hostname whose origin refuses connections, faster than the reset budget
    refills (burst 1000, +33/s at the connector; the edge's burst is lowered to 50 here): each ends
    in a reset from the connector and a 502, which is a request's ordinary outcome and counts
    against neither side's budget (PROTOCOL.md §12). The tunnel keeps its connections, and a
    request to the healthy hostname of the same tunnel still answers."""
    edge = ctx.edge(limits={"reset_burst": 50, "reset_per_sec": 1, "keepalive_requests": 5000})
    dead, good = "dead." + DOMAIN, "good." + DOMAIN
    t = edge.tunnel_with_route("rb", [dead, good])
    c = ctx.connector(edge, t["token"], ha=2, ingress=[
        {"hostname": dead, "service": "http://127.0.0.1:%d" % lib.free_port()},
        {"service": "hello_world"}])
    ctx.wait_until(lambda: c.proc.text().count("registered tunnel connection") == 2, 10,
                   "both tunnel connections to register")
    s = ctx.tls_connect(edge.https_port, dead)
    rd = lib.RawHTTP(s)
    statuses = {}
    t0 = time.monotonic()
    try:
        for _ in range(12):
            s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % dead.encode() * 100)
            for _ in range(100):
                r = rd.read_response()
                statuses[r.status] = statuses.get(r.status, 0) + 1
    finally:
        s.close()
    ctx.note("1200 requests to the dead origin in %.2fs: %r" % (time.monotonic() - t0, statuses))
    expect_eq(statuses, {502: 1200}, "answers for the dead origin")
    expect_eq(edge.get(good).status, 200, "GET on the healthy hostname of the same tunnel")
    for name, text in (("edge", edge.proc.text()), ("connector", c.proc.text())):
        expect("reset budget" not in text, "the %s tripped its reset budget:\n%s" % (
            name, "\n".join(l for l in text.splitlines() if "budget" in l)[:2000]))
    expect_eq(c.proc.text().count("registered tunnel connection"), 2,
              "tunnel connections registered (a reconnect means one was dropped)")


@lib.timeout(60)
def test_public_connection_cap_stays_below_the_open_file_limit(ctx):
    """RELIABILITY.md §1.4: with an open-file limit of 256 (hard, so it cannot be raised), the edge
    lowers max_connections to 192 and says so; 250 idle public connections then leave room for the
    admin API and for a connector to register."""
    edge = ctx.edge(start=False)
    edge.proc = ctx.spawn(edge.name, ["prlimit", "--nofile=256:256", ctx.edge_bin, "serve", "--config",
                                      edge.config])
    edge.wait_admin()
    expect(re.search(r"max_connections 16384 lowered to 192", edge.proc.text()),
           "the edge did not log the lowered connection cap:\n%s" % lib.tail(edge.proc.log))
    t = edge.tunnel_with_route("fd", ["fd." + DOMAIN])
    flood = []
    try:
        for src in ("127.0.0.2", "127.0.0.3"):
            flood += _hold_conns("127.0.0.1", edge.https_port, 125, src)
        time.sleep(0.5)
        flood = _reap_closed(flood)
        expect(len(flood) <= 192, "%d idle public connections open (cap 192)" % len(flood))
        expect_eq(edge.cli("tunnel", "list", output_json=True).returncode, 0, "tunnel list during the flood")
        ctx.connector(edge, t["token"], ha=2)
    finally:
        for s in flood:
            s.close()
    ctx.wait_until(lambda: edge.get("fd." + DOMAIN).status == 200, 10, "a GET once the flood is gone")


@lib.timeout(120)
def test_requests_past_the_stream_limit_wait_for_a_slot_then_get_503(ctx):
    """RELIABILITY.md §10 (256 concurrent streams per connection; edge queue, then 503): with one
    connection full of slow requests, the next `stream_queue` requests (4 here) wait and are served
    when slots free, one of them after its visitor half-closed; one more gets 503 with Retry-After
    at once."""
    streams, queue = 256, 5
    edge = ctx.edge(limits={"per_ip_connections": 1024, "stream_queue": queue}, start=False)
    edge.cfg["public"]["http_redirect"] = False  # plain HTTP is served, for the half-close below
    edge.write_config()
    edge.start()
    host = "q." + DOMAIN
    t = edge.tunnel_with_route("q", [host])
    o = ha_lib.Origin(ctx, "o-q")
    ctx.connector(edge, t["token"], ha=1, ingress=[{"service": o.url}])
    slow_ms = 3000 if ctx.reduced else 2000
    load = ha_lib.Load(ctx, edge, host, path="/slow?ms=%d" % slow_ms, threads=streams + queue - 1,
                       total=streams + queue - 1, timeout=30).start()
    hc = None
    try:
        ctx.wait_until(lambda: sum(1 for r in o.requests() if r["path"].startswith("/slow")) >= streams,
                       15, "%d slow requests in flight at the origin" % streams, interval=0.1)
        time.sleep(0.3)  # the other 4 reach the edge and wait
        # The fifth waiting request's visitor half-closes (printf | nc on the plain HTTP
        # listener): still answered.
        hc = socket.create_connection(("127.0.0.1", edge.http_port), timeout=5 * ctx.slow)
        hc.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
        hc.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        t0 = time.monotonic()
        r, rd = ctx.raw_request(edge.https_port, b"GET /slow?ms=0 HTTP/1.1\r\nHost: %s\r\nConnection: "
                                b"close\r\n\r\n" % host.encode(), sni=host)
        rd.sock.close()
        took = time.monotonic() - t0
        expect_eq(r.status, 503, "status with the queue full")
        expect_eq(r.header("Retry-After"), "1", "Retry-After of the 503")
        expect(took < slow_ms / 1000.0 / 2, "the 503 came after %.2fs, not at once" % took)
        hc.settimeout(2 * slow_ms / 1000.0 + 10)
        half = lib.RawHTTP(hc).read_response()
        expect(half is not None and half.status == 200, "the half-closed waiting request: %r" % (half,))
        load.wait(2 * slow_ms / 1000.0 + 20)
    finally:
        load.stop()
        if hc is not None:
            hc.close()
    expect(not load.failures(), load.describe_failures())
    waited = [x for x in load.snapshot() if x.t1 - x.t0 >= 1.5 * slow_ms / 1000.0]
    expect(len(waited) >= queue - 1, "%d requests took two slow rounds (queued), expected %d" % (
        len(waited), queue - 1))
    expect_eq(sum(1 for x in o.requests() if x["path"].startswith("/slow?ms=%d" % slow_ms)), streams + queue - 1,
              "slow requests the origin served")


@lib.timeout(60)
def test_connector_and_connection_caps_refuse_with_a_clear_error(ctx):
    """RELIABILITY.md 3.4: connectors per tunnel and connections per connector are capped
    (connectors_per_tunnel, connections_per_connector in edge.yml `limits:`); the one over the cap
    is refused with a message saying which and a Retry After of 30 s, which the connector honours
    (PROTOCOL.md §4.5); the others keep serving."""
    edge = ctx.edge(limits={"connectors_per_tunnel": 1, "connections_per_connector": 2})
    t = edge.tunnel_with_route("caps", ["caps." + DOMAIN])
    first = ctx.connector(edge, t["token"], name="first", ha=3)
    second = ctx.connector(edge, t["token"], name="second", ha=1, start=False)
    second.start(wait_ready=False)
    for c, what in ((second, "too many connectors for this tunnel"),
                    (first, "too many connections for this connector")):
        ctx.wait_until(lambda: re.search(r"retrying connection to the edge in \d+ms", c.proc.text()) and
                       what in c.proc.text(), 10, "%s to be refused with %r" % (c.name, what))
        waits = [int(x) for x in re.findall(r"retrying connection to the edge in (\d+)ms", c.proc.text())]
        ctx.note("%s: retry delays after the refusal: %r" % (c.name, waits))
        expect(waits and waits[-1] >= 30000, "%s retried after %rms, before the edge's Retry After of 30 s"
               % (c.name, waits))
    expect_eq(edge.get("caps." + DOMAIN).status, 200, "GET through the first connector")
    rows = edge.cli("tunnel", "list", output_json=True).json
    expect_eq([r["connectors"] for r in rows if r["name"] == "caps"], [1], "connectors registered")


@lib.timeout(60)
def test_visitor_limits_keepalive_requests_per_ip_body_idle_send_idle(ctx):
    """RELIABILITY.md §10's visitor limits, each made small: keepalive_requests (the Nth response
    says Connection: close, then the connection closes), per_ip_connections (the one over the cap
    is refused, another address is not), body_idle_ms (a stalled body gets 408) and send_idle_ms (a
    visitor that stops reading is disconnected, not buffered for)."""
    st = lib.Stack(ctx, edge_kw={"limits": {"keepalive_requests": 3, "per_ip_connections": 4,
                                            "body_idle_ms": "1s", "send_idle_ms": "1s"}})
    host = st.host.encode()
    # keepalive_requests 3
    s = ctx.tls_connect(st.edge.https_port, st.host)
    rd = lib.RawHTTP(s)
    conn = []
    for _ in range(3):
        s.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
        r = rd.read_response()
        expect_eq(r.status, 200, "keep-alive request")
        conn.append((r.header("Connection") or "").lower())
    expect_eq(conn, ["", "", "close"], "Connection headers of three responses (keepalive_requests 3)")
    expect(rd.closed_after(2 * ctx.slow), "the connection stayed open after the third response")
    s.close()
    # per_ip_connections 4
    held = [ctx.tls_connect(st.edge.https_port, st.host) for _ in range(4)]
    try:
        refused = False
        try:
            extra = ctx.tls_connect(st.edge.https_port, st.host, timeout=3)
            extra.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
            refused = lib.RawHTTP(extra).read_response() is None
            extra.close()
        except (OSError, EOFError):
            refused = True
        expect(refused, "a fifth connection from 127.0.0.1 was served (per_ip_connections 4)")
        ctx.wait_until(lambda: "refused: per_ip_connections (4) open from this address" in
                       lib.tail(st.edge.proc.log, 100), 5, "the edge to log which limit refused")
        r = _get_name_from(ctx, st, "127.0.0.2")
        expect(r is not None and r.status == 200, "another address was refused too: %r" % (r,))
    finally:
        for h in held:
            h.close()

    def connect_when_free():  # the edge sees the four closes a moment later
        try:
            return ctx.tls_connect(st.edge.https_port, st.host)
        except OSError:
            return None

    # body_idle_ms 1s: 3 of 10 body bytes, then nothing
    s = ctx.wait_until(connect_when_free, 5, "a connection once the four are closed")
    t0 = time.monotonic()
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\nabc" % host)
    s.settimeout(10 * ctx.slow)
    r = lib.RawHTTP(s).read_response()
    took = time.monotonic() - t0
    s.close()
    expect(r is not None and r.status == 408, "a stalled body: %r" % (r,))
    expect(0.8 <= took <= 3.0 * ctx.slow, "the stalled body got its 408 after %.2fs (body_idle 1s)" % took)
    # body_min_bytes (1 KiB): a body trickled a byte every 0.25 s (RUDY, RELIABILITY.md T-05) gets
    # its 408 at body_idle too, though a byte comes well within every second; a slow but steady body
    # (2 KiB every 0.4 s, 2.4 s in all) is not cut off.
    s = ctx.wait_until(connect_when_free, 5, "a connection after the 408")
    t0 = time.monotonic()
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n" % host)
    answered = threading.Event()

    def trickle():  # the main thread reads the answer (select would also see TLS session tickets)
        for _ in range(40):
            if answered.wait(0.25):
                return
            try:
                s.sendall(b"x")
            except OSError:
                return

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    s.settimeout(12 * ctx.slow)
    try:
        r = lib.RawHTTP(s).read_response()
    finally:
        answered.set()
        t.join()
    took = time.monotonic() - t0
    s.close()
    expect(r is not None and r.status == 408, "a body trickled a byte at a time: %r after %.2fs" % (r, took))
    expect(0.8 <= took <= 3.0 * ctx.slow, "the trickled body got its 408 after %.2fs (body_idle 1s)" % took)
    s = ctx.wait_until(connect_when_free, 5, "a connection after the 408")
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 12288\r\n\r\n" % host)
    for _ in range(6):
        time.sleep(0.4)
        s.sendall(b"y" * 2048)
    s.settimeout(5 * ctx.slow)
    r = lib.RawHTTP(s).read_response()
    s.close()
    expect(r is not None and r.status == 200 and json.loads(r.body)["length"] == 12288,
           "a slow but steady body: %r" % (r,))
    # send_idle_ms 1s: a 64 MiB response to a visitor that reads nothing
    s = ctx.tls_connect(st.edge.https_port, st.host, rcvbuf=8192)  # the 408 closed the last one
    s.sendall(b"GET /bytes?n=67108864&fast=1 HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
    t0 = time.monotonic()
    ctx.wait_until(lambda: "send idle timeout" in st.edge.proc.text(), 5, "the edge to log the send idle timeout")
    ctx.note("send idle timeout logged %.2fs after the request (send_idle 1s)" % (time.monotonic() - t0))
    got = 0
    s.settimeout(5 * ctx.slow)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += len(d)
    except OSError:  # ssl.SSLError included
        pass
    s.close()
    expect(got < 64 << 20, "a visitor that read nothing until the send idle timeout still got the whole body")


@lib.full_only("a rate held for seconds; the sanitizer build runs the send-timeout unit cases")
@lib.timeout(60)
def test_send_idle_spares_a_slow_steady_reader(ctx):
    """send_idle_ms is a send timeout, like nginx's send_timeout: it restarts with every byte the
    visitor takes. The kernel asks the edge for more only once half its send buffer (tcp_wmem's
    maximum, 4 MiB by default, on loopback) drained; a visitor reading 128 KiB every 100 ms takes
    about 1.6 s for that. With send_idle_ms 1s it still gets a response larger than that buffer
    whole: its progress counts while the edge's own queue waits. With keepalive_idle_ms 1s the
    keep-alive deadline, which starts once the whole body is queued, ends the connection while
    the visitor still reads the tail: that close flushes the tail under the same send timeout,
    and the connection ends after the last byte."""
    st = lib.Stack(ctx, edge_kw={"limits": {"send_idle_ms": "1s", "keepalive_idle_ms": "1s"}})
    n = lib.tcp_wmem_max() + (1 << 20)
    s = ctx.tls_connect(st.edge.https_port, st.host, rcvbuf=16384, timeout=20)
    try:
        s.sendall(b"GET /bytes?n=%d&seed=5 HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, st.host.encode()))
        rd = lib.RawHTTP(s)
        r = rd.read_response(head_only=True)
        expect_eq((r.status, r.header("Content-Length")), (200, str(n)), "GET /bytes")
        body = bytearray(rd.buf)
        time.sleep(0.5)  # the edge fills the kernel's buffer and queues the rest
        t0 = time.monotonic()
        while len(body) < n:
            step = min(len(body) + 128 * 1024, n)
            while len(body) < step:
                try:
                    d = s.recv(step - len(body))
                except OSError as e:  # ssl.SSLError included
                    d, err = b"", e
                else:
                    err = None
                expect(d, "the edge closed the slow reader after %d of %d bytes (%.1f s in): %r"
                       % (len(body), n, time.monotonic() - t0, err))
                body += d
            time.sleep(0.1)
        took = time.monotonic() - t0
        expect(rd.closed_after(5 * ctx.slow), "the connection stayed open past keepalive_idle_ms after the response")
    finally:
        s.close()
    ctx.note("read %d KiB in %.1f s" % (n >> 10, took))
    expect_eq(hashlib.sha256(body).hexdigest(), origin_mod.gen_sha256(n, 5), "sha256 of the body")
    expect("send idle timeout" not in st.edge.proc.text(), "the edge logged a send idle timeout")


@lib.timeout(60)
def test_send_idle_holds_across_keepalive_requests(ctx):
    """The send timeout runs for the connection, not per request: a visitor that reads nothing but
    sends a new request every 0.4 s (each one would restart a per-request deadline) is still
    disconnected about send_idle_ms after the edge's output stopped moving."""
    st = lib.Stack(ctx, edge_kw={"limits": {"send_idle_ms": "1s"}})
    host = st.host.encode()
    # 200 kB responses fit their streams' windows: each comes whole to the edge; together they
    # overflow the kernel's buffers, and the edge's output waits.
    k = (lib.tcp_wmem_max() + (2 << 20)) // 200000 + 1
    s = ctx.tls_connect(st.edge.https_port, st.host, rcvbuf=16384, timeout=20)
    t0 = time.monotonic()
    cut = None
    try:
        s.sendall(b"".join(b"GET /bytes?n=200000 HTTP/1.1\r\nHost: %s\r\n\r\n" % host for _ in range(k)))
        while time.monotonic() - t0 < 8 * ctx.slow:
            time.sleep(0.4)
            if "send idle timeout" in st.edge.proc.text():
                cut = time.monotonic() - t0
                break
            try:
                s.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
            except OSError:
                pass  # the edge reset the connection; its log says why
    finally:
        s.close()
    expect(cut is not None, "a visitor that read nothing for 8 s while sending requests was not disconnected")
    paths = [r["path"] for r in st.origin.requests()]
    ctx.note("disconnected %.1f s after the first request; the origin saw %d of %d /bytes and %d /name"
             % (cut, paths.count("/bytes?n=200000"), k, paths.count("/name")))
    # The edge takes the next pipelined request only once its output queue drained (a visitor that
    # reads nothing cannot make it buffer a window per request): the last ones never reached it.
    expect(0 < paths.count("/bytes?n=200000") < k, "the origin served %d of %d pipelined /bytes"
           % (paths.count("/bytes?n=200000"), k))


@lib.timeout(90)
def test_buffer_budget_refuses_new_requests_then_sheds_the_biggest_holders(ctx):
    """RELIABILITY.md §10 / T-34 (small): 40 visitors each fetch 4 MiB and read nothing, which
    would hold about 12 MiB of edge buffers against a buffer_budget of 8 MiB. Past 98% the edge
    closes the visitor connections that hold the most; at 90% a new request gets 503 with
    Retry-After; the edge keeps running and serves normally once the load is gone."""
    st = lib.Stack(ctx, edge_kw={"limits": {"buffer_budget": "8MiB", "per_ip_connections": 1024}})
    host = st.host.encode()
    slow = []
    try:
        for _ in range(40):
            s = ctx.tls_connect(st.edge.https_port, st.host, rcvbuf=4096)
            s.sendall(b"GET /bytes?n=4194304&fast=1 HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
            slow.append(s)
        ctx.wait_until(lambda: "closing this visitor connection" in st.edge.proc.text(), 20,
                       "the edge to shed visitors over 98% of buffer_budget")
        # The slow visitors keep the buffers between 90% and 98%: new requests are refused.
        probes = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 * ctx.slow and not any(p[0] == 503 for p in probes):
            r, rd = ctx.raw_request(st.edge.https_port, b"GET /name HTTP/1.1\r\nHost: %s\r\n"
                                    b"Connection: close\r\n\r\n" % host, sni=st.host)
            rd.sock.close()
            probes.append((r.status, r.header("Retry-After")))
            time.sleep(0.05)
        # The slow visitors' own requests may have met the 90% mark while the load built up.
        heads = []
        for x in slow:
            x.settimeout(0.5 * ctx.slow)
            try:
                head = x.recv(4096)
            except OSError:  # shed (reset), or nothing yet
                head = b""
            if head.startswith(b"HTTP/1.1 "):
                heads.append((int(head[9:12]), b"\r\nretry-after: 1\r\n" in head.lower()))
        ctx.note("probes during the overload: %r; slow visitors' answers: %r" % (probes[:10], heads))
        expect((503, "1") in probes or (503, True) in heads,
               "no request got 503 with Retry-After: 1 while over 90%%: %r %r" % (probes[:10], heads))
        shed = st.edge.proc.text().count("closing this visitor connection")
        ctx.note("visitor connections shed: %d of 40" % shed)
        expect(1 <= shed < 40, "%d of the 40 slow visitors were shed" % shed)
    finally:
        for s in slow:
            s.close()
    expect(st.edge.proc.alive(), "the edge exited under the overload")
    ctx.wait_until(lambda: st.get("/name").status == 200, 10, "a GET to succeed once the slow visitors are gone")


@lib.full_only("hundreds of aborted requests against a budget: a load, not a code path")
@lib.timeout(60)
def test_visitor_aborts_are_budgeted_per_address_with_429(ctx):
    """RELIABILITY.md T-36 (the edge's side of rapid reset): requests abandoned while their stream
    is open draw from a per-address budget (reset_burst 5, reset_per_sec 2 here); once it is empty
    the address's new requests get 429 with Retry-After and the trip is logged with the address;
    another address is served; after a refill the first is served again."""
    st = lib.Stack(ctx, edge_kw={"limits": {"reset_burst": 5, "reset_per_sec": 2}})
    host = st.host.encode()
    # 10 aborts 0.1 s apart: 5 + about 2 refilled, so the budget runs out by the 8th.
    for _ in range(10):
        s = ctx.tls_connect(st.edge.https_port, st.host)
        s.sendall(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
        time.sleep(0.1)  # the stream is open at the connector
        s.close()
    ctx.wait_until(lambda: "client=127.0.0.1 abort budget exhausted" in st.edge.proc.text(), 5,
                   "the edge to log the exhausted abort budget of 127.0.0.1")
    r, rd = ctx.raw_request(st.edge.https_port, b"GET /name HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                            % host, sni=st.host)
    rd.sock.close()
    expect_eq((r.status, r.header("Retry-After")), (429, "1"), "a request from the address that abandoned 10")
    r2 = _get_name_from(ctx, st, "127.0.0.2")
    expect(r2 is not None and r2.status == 200, "another address: %r" % (r2,))
    ctx.wait_until(lambda: st.get("/name").status == 200, 5, "127.0.0.1 to be served once its budget refills")
    # Stopping a body half way (FIN) abandons the request too.
    time.sleep(2.5)  # a full bucket again (5 at 2/s)
    for _ in range(10):
        s = ctx.tls_connect(st.edge.https_port, st.host)
        s.sendall(b"POST /slow?ms=3000 HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\nabc" % host)
        time.sleep(0.1)
        s.shutdown(socket.SHUT_WR)
        s.close()
    r, rd = ctx.raw_request(st.edge.https_port, b"GET /name HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                            % host, sni=st.host)
    rd.sock.close()
    expect_eq(r.status, 429, "a request after 10 bodies stopped half way")


@lib.timeout(60)
def test_pipelined_requests_wait_while_a_non_reader_holds_output(ctx):
    """RELIABILITY.md T-06 / §6 slow reader: a visitor that pipelines many requests for responses
    that fit their stream window and reads nothing must not make the edge buffer them all (each
    new request brings a fresh window): the next request waits until the output queue drains.
    That wait is not keep-alive idleness (the requests are there; a stalled reader is the send
    timeout's): after 2 s with keepalive_idle_ms 1s, once the visitor reads, every response
    arrives, in order."""
    st = lib.Stack(ctx, edge_kw={"limits": {"keepalive_idle_ms": "1s", "send_idle_ms": "10s"}})
    host = st.host.encode()
    size = 200000
    k = (lib.tcp_wmem_max() + (8 << 20)) // size
    s = ctx.tls_connect(st.edge.https_port, st.host, rcvbuf=4096, timeout=20)
    try:
        s.sendall(b"".join(b"GET /bytes?n=%d&fast=1 HTTP/1.1\r\nHost: %s\r\n\r\n" % (size, host)
                           for _ in range(k)))
        time.sleep(2.0)  # twice keepalive_idle_ms, whatever the build's speed
        served = [r["path"] for r in st.origin.requests()].count("/bytes?n=%d&fast=1" % size)
        ctx.note("the origin served %d of %d pipelined requests to a visitor reading nothing"
                 % (served, k))
        expect(served * size <= lib.tcp_wmem_max() + (2 << 20),
               "the edge took %d responses of %d bytes for a visitor that reads nothing (send "
               "buffer %d)" % (served, size, lib.tcp_wmem_max()))
        rd = lib.RawHTTP(s)
        for i in range(k):
            r = rd.read_response()
            expect(r is not None and r.status == 200 and len(r.body) == size,
                   "response %d of %d: %r" % (i + 1, k, r))
    finally:
        s.close()


@lib.full_only("1,000 oversized requests")
@lib.timeout(120)
def test_oversized_heads_and_chunk_extensions_are_refused_and_cost_no_memory(ctx):
    """RELIABILITY.md T-03: a 33 KiB header block and 101 fields get 431, a 9 KiB target 414, 5 KiB
    of chunk extensions on one chunk and 5,000 bytes of them spread over 1,000 chunks 400 (the limit
    is 4 KiB of extensions per request, §1.3: a thousand 1-byte extensions, 2 KiB, are within it),
    each on its own connection, 60 times over;
    the edge's RSS grows by less than 1 MiB across them (measured after 15 rounds, once its caches
    have their working size), and the origin sees none of the refused heads."""
    st = lib.Stack(ctx)
    host = st.host.encode()
    big_block = b"".join(b"X-Pad-%02d: %s\r\n" % (i, b"p" * 1000) for i in range(33))
    many_fields = b"".join(b"X-F%d: v\r\n" % i for i in range(101))
    chunked = b"POST /upload HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % host
    cases = [
        ("33 KiB header block", b"GET /a HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (host, big_block), 431),
        ("101 fields", b"GET /b HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (host, many_fields), 431),
        ("9 KiB target", b"GET /" + b"t" * 9216 + b" HTTP/1.1\r\nHost: %s\r\n\r\n" % host, 414),
        ("5 KiB chunk extension", chunked + b"1;e=" + b"x" * 5120 + b"\r\na\r\n0\r\n\r\n", 400),
        # CVE-2024-22019's shape: many chunks, each extension small, the total over 4 KiB.
        ("1,000 chunks with a 5-byte extension each", chunked + b"1;eeeee\r\na\r\n" * 1000
         + b"0\r\n\r\n", 400),
    ]
    pid = st.edge.proc.pid
    base = None
    for rnd in range(60):
        if rnd == 15:
            base = lib.proc_status_kib(pid)["VmRSS"]
        for what, data, want in cases:
            r, rd = ctx.raw_request(st.edge.https_port, data, sni=st.host)
            rd.sock.close()
            if r is None or r.status != want:
                raise AssertionError("%s (round %d): expected %d, got %s" % (
                    what, rnd, want, r.status if r else "no answer"))
    grown = lib.proc_status_kib(pid)["VmRSS"] - base
    ctx.note("edge RSS grew %d KiB over rounds 15-60 (%d requests)" % (grown, 45 * len(cases)))
    expect(grown < 1024, "the edge's RSS grew %d KiB over 225 refused requests" % grown)
    paths = [q["path"] for q in st.origin.requests()]
    expect(all(p == "/upload" for p in paths), "refused heads reached the origin: %r" % sorted(set(paths))[:5])
    expect_eq(st.get("/name").status, 200, "a normal request afterwards")
