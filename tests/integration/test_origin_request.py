"""originRequest options (PRODUCT.md section 3, issue 3), each observably changing what the origin
sees or what the visitor gets: httpHostHeader, connectTimeout, tlsTimeout, tcpKeepAlive,
keepAliveConnections, keepAliveTimeout, disableChunkedEncoding. (caPool, noTLSVerify,
originServerName and matchSNItoHost are in test_ingress.py, with the https services.)"""

import hashlib
import re
import select
import shutil
import socket
import subprocess
import time

import lib
from lib import DOMAIN, expect, expect_eq


def h(name):
    return "%s.%s" % (name, DOMAIN)


def request_id_of(r):
    rid = r.header("Culvert-Request-Id")
    expect(rid, "response has no Culvert-Request-Id header: %r" % (r,))
    return rid


def one_header(j, name):
    vs = [v for k, v in j["headers"] if k.lower() == name.lower()]
    expect(len(vs) == 1, "the origin got %d %s fields: %r" % (len(vs), name, j["headers"]))
    return vs[0]


class Blackhole:
    """A loopback address whose connects never complete: a listener with backlog 0 that never
    accepts, its accept queue filled first, so the kernel drops further SYNs (loopback only, no
    unroutable address)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(s)
            time.sleep(0.02)

    def check(self):
        """True when a new connect does not complete within 0.5 s."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", self.port))
            _, w, _ = select.select([], [s], [], 0.5)
            return not (w and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
        finally:
            s.close()


def parallel_gets(ctx, edge, hosts, path="/", timeout=40):
    """GETs |path| on each host at once (curl in the background); [(status, seconds)]."""
    t0 = time.monotonic()
    procs = [ctx.curl_popen(edge.url(host, path), resolve=edge.resolve(host), timeout=timeout) for host in hosts]
    out = [None] * len(procs)
    left = set(range(len(procs)))
    while left:
        for i in list(left):
            if procs[i][0].poll() is not None:
                with open(procs[i][2], encoding="latin-1") as f:
                    status, _ = lib.parse_header_block(f.read())
                out[i] = (lib.Response(status, [], b""), time.monotonic() - t0)
                left.discard(i)
        if time.monotonic() - t0 > timeout * ctx.slow + 10:
            raise AssertionError("requests to %r did not end" % hosts)
        time.sleep(0.02)
    return out


@lib.timeout(60)
def test_http_host_header_seen_by_the_origin(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("hh", [h("hh"), h("plain")])
    origin = ctx.origin("o")
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("hh"), "service": origin.url, "originRequest": {"httpHostHeader": "internal.example"}},
        {"service": origin.url},
    ])
    j = edge.get(h("hh"), "/echo").json()
    expect_eq(one_header(j, "Host"), "internal.example", "Host at the origin with httpHostHeader")
    expect_eq(one_header(j, "X-Forwarded-Host"), h("hh"), "X-Forwarded-Host with httpHostHeader")
    j = edge.get(h("plain"), "/echo").json()
    expect_eq(one_header(j, "Host").split(":")[0], h("plain"), "Host at the origin without httpHostHeader")


@lib.timeout(90)
@lib.full_only("waits for timeouts")
def test_connect_timeout_504(ctx):
    bh = Blackhole()
    if not bh.check():
        ctx.skip("this kernel completes connects to a full accept queue: no loopback blackhole")
    edge = ctx.edge()
    t = edge.tunnel_with_route("ct", [h("fast"), h("slow")])
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("fast"), "service": "http://127.0.0.1:%d" % bh.port,
         "originRequest": {"connectTimeout": "1s"}},
        {"hostname": h("slow"), "service": "http://127.0.0.1:%d" % bh.port,
         "originRequest": {"connectTimeout": "3s"}},
        {"service": "http_status:404"},
    ])
    (rf, tf), (rs, ts) = parallel_gets(ctx, edge, [h("fast"), h("slow")])
    ctx.note("connectTimeout 1s: %s after %.2fs; 3s: %s after %.2fs" % (rf.status, tf, rs.status, ts))
    expect_eq(rf.status, 504, "connectTimeout 1s to a blackhole: status")
    expect_eq(rs.status, 504, "connectTimeout 3s to a blackhole: status")
    expect(0.8 <= tf <= 2.5 * ctx.slow, "connectTimeout 1s: the 504 came after %.2fs (expected about 1s)" % tf)
    expect(2.8 <= ts <= 4.5 * ctx.slow, "connectTimeout 3s: the 504 came after %.2fs (expected about 3s)" % ts)


@lib.timeout(90)
@lib.full_only("waits for timeouts")
def test_tls_timeout_504(ctx):
    # A TLS origin that never answers the handshake: the kernel completes the TCP connect (the
    # backlog has room), nothing ever accepts or speaks.
    mute = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    mute.bind(("127.0.0.1", 0))
    mute.listen(64)
    port = mute.getsockname()[1]
    edge = ctx.edge()
    t = edge.tunnel_with_route("tt", [h("fast"), h("slow")])
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("fast"), "service": "https://127.0.0.1:%d" % port,
         "originRequest": {"connectTimeout": "1s", "tlsTimeout": "1s", "noTLSVerify": True}},
        {"hostname": h("slow"), "service": "https://127.0.0.1:%d" % port,
         "originRequest": {"connectTimeout": "1s", "tlsTimeout": "4s", "noTLSVerify": True}},
        {"service": "http_status:404"},
    ])
    (rf, tf), (rs, ts) = parallel_gets(ctx, edge, [h("fast"), h("slow")])
    ctx.note("tlsTimeout 1s: %s after %.2fs; 4s: %s after %.2fs" % (rf.status, tf, rs.status, ts))
    expect_eq(rf.status, 504, "tlsTimeout 1s, handshake never answered: status")
    expect_eq(rs.status, 504, "tlsTimeout 4s, handshake never answered: status")
    expect(0.8 <= tf <= 2.6 * ctx.slow, "tlsTimeout 1s: the 504 came after %.2fs (expected 1-2s)" % tf)
    expect(3.8 <= ts <= 5.6 * ctx.slow, "tlsTimeout 4s: the 504 came after %.2fs (expected 4-5s)" % ts)
    mute.close()


def conns_of(origin):
    return [x["conn"] for x in origin.requests()]


@lib.timeout(90)
@lib.full_only("waits for the idle timeout")
def test_keep_alive_pool_reuse_cap_and_idle_timeout(ctx):
    edge = ctx.edge()
    names = ["reuse", "nokeep", "cap", "idle"]
    t = edge.tunnel_with_route("ka", [h(n) for n in names])
    o = {n: ctx.origin("o-" + n) for n in names}
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("reuse"), "service": o["reuse"].url},
        {"hostname": h("nokeep"), "service": o["nokeep"].url, "originRequest": {"keepAliveConnections": 0}},
        {"hostname": h("cap"), "service": o["cap"].url, "originRequest": {"keepAliveConnections": 2}},
        {"hostname": h("idle"), "service": o["idle"].url, "originRequest": {"keepAliveTimeout": "1s"}},
        {"service": "http_status:404"},
    ])
    # Default settings: sequential requests (each on a new visitor connection) share one origin
    # connection.
    for i in range(5):
        expect_eq(edge.get(h("reuse"), "/name").status, 200, "reuse: request %d" % i)
    expect_eq(len(set(conns_of(o["reuse"]))), 1, "origin connections for 5 sequential requests (default pool): %r"
              % conns_of(o["reuse"]))
    # keepAliveConnections: 0 keeps none: every request opens a connection, closed after it.
    for i in range(4):
        expect_eq(edge.get(h("nokeep"), "/name").status, 200, "nokeep: request %d" % i)
    expect_eq(len(set(conns_of(o["nokeep"]))), 4, "origin connections with keepAliveConnections 0: %r" %
              conns_of(o["nokeep"]))
    ctx.wait_until(lambda: len(o["nokeep"].events("conn_close")) == 4, 3,
                   "the 4 origin connections to close (keepAliveConnections 0)")
    # keepAliveConnections: 2: four parallel requests need four connections; two stay idle, the
    # surplus two are closed once they have sat unused through a sweep (about a second).
    procs = [ctx.curl_popen(edge.url(h("cap"), "/slow?ms=600"), resolve=edge.resolve(h("cap")), timeout=20)
             for _ in range(4)]
    for p, _, _ in procs:
        expect_eq(p.wait(30), 0, "cap: a parallel request failed")
    first = set(conns_of(o["cap"]))
    expect_eq(len(first), 4, "origin connections for 4 parallel requests")
    ctx.wait_until(lambda: len(o["cap"].events("conn_close")) == 2, 3,
                   "two of the four origin connections to close (keepAliveConnections 2)")
    time.sleep(0.3)
    expect_eq(len(o["cap"].events("conn_close")), 2, "origin connections closed (keepAliveConnections 2)")
    for i in range(4):
        expect_eq(edge.get(h("cap"), "/name").status, 200, "cap: sequential request %d" % i)
    later = conns_of(o["cap"])[4:]
    expect(set(later) <= first, "sequential requests after the parallel ones opened new connections: %r "
           "(kept: %r)" % (later, first))
    # keepAliveTimeout: 1s: an idle connection is closed by the connector about a second later; the
    # default pool keeps its connection over the same wait.
    r = edge.get(h("idle"), "/name")
    t_done = time.time()
    expect_eq(r.status, 200, "idle: first request")
    ctx.wait_until(lambda: o["idle"].events("conn_close"), 4, "the idle origin connection to be closed "
                   "(keepAliveTimeout 1s)")
    closed_after = o["idle"].events("conn_close")[0]["t"] - t_done
    ctx.note("keepAliveTimeout 1s: closed %.2fs after the response" % closed_after)
    expect(0.8 <= closed_after <= 3.0 * ctx.slow, "keepAliveTimeout 1s: the idle connection was closed %.2fs "
           "after the response" % closed_after)
    expect_eq(edge.get(h("idle"), "/name").status, 200, "idle: request after the timeout")
    expect_eq(len(set(conns_of(o["idle"]))), 2, "origin connections before and after keepAliveTimeout")
    expect_eq(o["reuse"].events("conn_close"), [], "the default pool (keepAliveTimeout 90s) closed a connection")
    expect_eq(edge.get(h("reuse"), "/name").status, 200, "reuse: request after the wait")
    expect_eq(len(set(conns_of(o["reuse"]))), 1, "default pool: one connection across the wait")


def keepalive_timers(port):
    """The keep-alive timers (seconds) of established connections to 127.0.0.1:|port|, from ss."""
    r = subprocess.run(["ss", "-tnoH", "state", "established", "( dport = :%d )" % port],
                       capture_output=True, text=True, timeout=10)
    out = []
    for line in r.stdout.splitlines():
        m = re.search(r"timer:\(keepalive,([\d.]+)(min|sec|ms)", line)
        if m:
            num, unit = m.group(1), m.group(2)
            if unit == "ms" and "." in num:
                v = float(num)  # iproute2 prints 6 s 976 ms as "6.976ms"
            else:
                v = float(num) * {"min": 60, "sec": 1, "ms": 0.001}[unit]
            out.append(v)
        else:
            out.append(None)
    return out


@lib.timeout(60)
def test_tcp_keep_alive_on_origin_connections(ctx):
    if shutil.which("ss") is None:
        ctx.skip("ss (iproute2) is not installed: TCP keep-alive timers cannot be observed")
    edge = ctx.edge()
    t = edge.tunnel_with_route("tk", [h("ka7"), h("ka0")])
    o7 = ctx.origin("o7")
    o0 = ctx.origin("o0")
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("ka7"), "service": o7.url, "originRequest": {"tcpKeepAlive": "7s"}},
        {"hostname": h("ka0"), "service": o0.url, "originRequest": {"tcpKeepAlive": "0s"}},
        {"service": "http_status:404"},
    ])
    expect_eq(edge.get(h("ka7"), "/name").status, 200, "tcpKeepAlive 7s: request")
    expect_eq(edge.get(h("ka0"), "/name").status, 200, "tcpKeepAlive 0s: request")
    t7 = keepalive_timers(o7.port)
    t0 = keepalive_timers(o0.port)
    ctx.note("keep-alive timers: 7s rule %r, 0s rule %r" % (t7, t0))
    expect_eq(len(t7), 1, "pooled connections to the tcpKeepAlive 7s origin")
    expect(t7[0] is not None and 0 < t7[0] <= 7.0, "tcpKeepAlive 7s: the connection's keep-alive timer is %r" % t7)
    expect_eq(t0, [None], "tcpKeepAlive 0s: keep-alive timers on the pooled connection")


@lib.timeout(60)
def test_disable_chunked_encoding_411_and_content_length_bodies(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("dc", [h("nochunk"), h("chunk")])
    o = ctx.origin("o")
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("nochunk"), "service": o.url, "originRequest": {"disableChunkedEncoding": True}},
        {"service": o.url},
    ])
    body = b"0123456789" * 3000
    want = hashlib.sha256(body).hexdigest()
    path = ctx.path("body.bin")
    lib.write_file(path, body)

    def upload(host, chunked):
        hdrs = ["Transfer-Encoding: chunked"] if chunked else []
        return ctx.curl(edge.url(host, "/upload?detail=1"), resolve=edge.resolve(host), data_file=path,
                        headers=hdrs + ["Content-Type: application/octet-stream"])

    r = upload(h("nochunk"), chunked=True)
    expect_eq(r.status, 411, "disableChunkedEncoding: a chunked upload")
    request_id_of(r)
    expect_eq(o.request_count(), 0, "requests at the origin after the 411")
    r = upload(h("nochunk"), chunked=False)
    expect_eq(r.status, 200, "disableChunkedEncoding: a Content-Length upload")
    j = r.json()
    expect_eq((j["length"], j["sha256"]), (len(body), want), "body at the origin (Content-Length)")
    expect_eq((j["content_length"], j["transfer_encoding"]), (str(len(body)), None),
              "framing at the origin (Content-Length)")
    r = upload(h("chunk"), chunked=True)
    expect_eq(r.status, 200, "a chunked upload without disableChunkedEncoding")
    j = r.json()
    expect_eq((j["length"], j["sha256"]), (len(body), want), "body at the origin (chunked)")
    expect_eq(j["transfer_encoding"], "chunked", "framing at the origin (chunked)")
    # GET without a body is unaffected.
    expect_eq(edge.get(h("nochunk"), "/name").status, 200, "disableChunkedEncoding: a GET")


@lib.timeout(60)
def test_pooled_connection_closed_by_the_origin_is_retried_once(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("rt", [h("rt")])
    o = ctx.origin("o")
    ctx.connector(edge, t["token"], ingress=[{"service": o.url}])
    # The origin answers, then drops the next request on that connection without a byte: the
    # connector must retry it on a fresh connection (nothing was sent to the visitor yet).
    expect_eq(edge.get(h("rt"), "/name?drop_next=1").status, 200, "first request")
    r = edge.get(h("rt"), "/echo?second=1")
    expect_eq(r.status, 200, "a request whose pooled connection the origin closed")
    rid = request_id_of(r)
    tries = [x for x in o.requests() if x["request_id"] == rid]
    expect_eq(len(tries), 2, "arrivals of the retried request at the origin (dropped once, then answered)")
    expect(tries[0]["conn"] != tries[1]["conn"], "the retry used the same connection: %r" % tries)
    expect_eq(len(o.events("dropped")), 1, "requests the origin dropped")
    # A request with a body that already went out is not retried: the visitor gets an error.
    expect_eq(edge.get(h("rt"), "/name?drop_next=1").status, 200, "third request")
    n_before = o.request_count()
    r = ctx.curl(edge.url(h("rt"), "/upload"), resolve=edge.resolve(h("rt")), data="x" * 1000)
    expect_eq(r.status, 502, "a POST whose body went to a connection the origin dropped")
    expect_eq(o.request_count() - n_before, 1, "arrivals of the POST (never retried)")


@lib.timeout(60)
def test_origin_failures_are_warnings(ctx):
    """A visitor's 502 for an origin that cannot be reached shows in the connector's log at
    --loglevel warn (cloudflared logs "Unable to reach the origin service" as an error); the
    reason was an info line, so a connector run at warn said nothing."""
    edge = ctx.edge()
    t = edge.tunnel_with_route("dead", ["dead." + DOMAIN])
    c = ctx.connector(edge, t["token"], url="http://127.0.0.1:%d" % lib.free_port(), loglevel="warn")
    r = edge.get("dead." + DOMAIN, "/x")
    expect_eq(r.status, 502, "GET to an origin port nobody listens on")
    c.proc.wait_log(r"WRN .*origin stream=\d+ .*(refused|cannot connect)", 10)
