"""HTTP semantics end to end (PRODUCT.md sections 2 and 4, issue 3 "HTTP semantics end to end" and
"Streaming"): pipelining, HTTP/1.0 clients, HEAD, Expect: 100-continue, chunked bodies, Content-Length,
close-delimited origins, trailers, server-sent events, back-pressure from a slow reader, 2 GiB both
ways with bounded memory, the edge's timeouts (per host too), and smuggling cases the corpus lacks."""

import hashlib
import json
import os
import select
import socket
import time

import lib
import origin as origin_mod
import test_corpus
from lib import DOMAIN, expect, expect_eq

MiB = 1 << 20
GiB = 1 << 30
RSS_LIMIT_KIB = 64 * 1024


def h(name):
    return "%s.%s" % (name, DOMAIN)


def request_id_of(r):
    rid = r.header("Culvert-Request-Id")
    expect(rid, "response has no Culvert-Request-Id header: %r" % (r,))
    return rid


def connect(ctx, st, host=None, **kw):
    s = ctx.tls_connect(st.edge.https_port, host or st.host, **kw)
    return s, lib.RawHTTP(s)


def read_chunked(rd):
    """Reads a chunked body from |rd| chunk by chunk: (body, trailer lines, [(time, chunk)])."""
    chunks = []
    while True:
        line = rd._line()
        expect(line is not None, "connection closed inside a chunked body")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            break
        data = rd._take(n)
        chunks.append((time.time(), data))
        expect_eq(rd._take(2), b"\r\n", "chunk terminator")
    body = b"".join(d for _, d in chunks)
    trailers = []
    while True:
        t = rd._line()
        expect(t is not None, "connection closed inside the trailer section")
        if t == b"":
            break
        trailers.append(t)
    return body, trailers, chunks


def read_to_eof(rd):
    while rd._fill():
        pass
    data, rd.buf = rd.buf, b""
    return data


def chunk_encode(parts, trailers=b""):
    out = b""
    for p in parts:
        out += b"%x\r\n%s\r\n" % (len(p), p)
    return out + b"0\r\n" + trailers + b"\r\n"


# ---- connections and framing ----------------------------------------------------------------------


@lib.timeout(60)
def test_pipelined_mixed_requests_answered_in_order(ctx):
    st = lib.Stack(ctx)
    host = st.host
    reqs = [
        b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello" % host.encode(),
        b"POST /upload HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % host.encode()
        + chunk_encode([b"abc", b"defg"]),
        b"HEAD /bytes?n=1000 HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode(),
        b"HEAD /trailers HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode(),
        b"GET /bytes?n=3000&seed=4&chunked=1 HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode(),
        b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode(),
    ]
    s, rd = connect(ctx, st)
    try:
        s.sendall(b"".join(reqs))
        r1 = rd.read_response()
        r2 = rd.read_response()
        r3 = rd.read_response(head_only=True)
        r4 = rd.read_response(head_only=True)
        r5 = rd.read_response()
        r6 = rd.read_response()
        s.settimeout(0.5)
        try:
            rd._fill()
        except socket.timeout:
            pass
        extra = rd.buf
    finally:
        s.close()
    expect_eq(json.loads(r1.body), {"length": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}, "1: CL body")
    expect_eq(json.loads(r2.body), {"length": 7, "sha256": hashlib.sha256(b"abcdefg").hexdigest()},
              "2: chunked body")
    expect_eq((r3.status, r3.header("Content-Length")), (200, "1000"), "3: HEAD with Content-Length")
    expect_eq(r4.status, 200, "4: HEAD of a chunked resource")
    expect_eq(r5.status, 200, "5: chunked GET")
    expect_eq(hashlib.sha256(r5.body).hexdigest(), origin_mod.gen_sha256(3000, 4), "5: chunked body")
    expect_eq((r6.status, r6.body), (200, b"origin"), "6: GET /name after everything")
    expect_eq(extra, b"", "bytes after the sixth response (a HEAD answered with a body?)")
    ids = [request_id_of(r) for r in (r1, r2, r3, r4, r5, r6)]
    expect_eq(sorted(x["request_id"] for x in st.origin.requests()), sorted(ids), "request ids at the origin")


@lib.timeout(60)
def test_http10_clients_with_and_without_keep_alive(ctx):
    st = lib.Stack(ctx)
    n = 200000
    # curl --http1.0, origin answering chunked: a close-delimited body, never chunked to 1.0.
    out = ctx.path("c10.bin")
    r = ctx.curl(st.url("/bytes?n=%d&seed=3&chunked=1" % n), resolve=st.resolve(), output=out,
                 extra=["--http1.0"])
    expect_eq((r.rc, r.status), (0, 200), "curl --http1.0 (chunked origin)")
    expect_eq(r.header("Transfer-Encoding"), None, "Transfer-Encoding sent to an HTTP/1.0 client")
    expect_eq(lib.sha256_file(out), origin_mod.gen_sha256(n, 3), "body to curl --http1.0")
    r = ctx.curl(st.url("/bytes?n=1234"), resolve=st.resolve(), extra=["--http1.0"])
    expect_eq((r.status, r.header("Content-Length"), len(r.body)), (200, "1234", 1234),
              "curl --http1.0 (Content-Length origin)")
    # Without keep-alive: one answer, then the edge closes.
    s, rd = connect(ctx, st)
    s.sendall(b"GET /name HTTP/1.0\r\nHost: %s\r\n\r\n" % st.host.encode())
    r = rd.read_response()
    expect_eq((r.status, r.body), (200, b"origin"), "HTTP/1.0 GET")
    expect(rd.closed_after(3 * ctx.slow), "the edge kept an HTTP/1.0 connection without keep-alive open")
    s.close()
    # With Connection: keep-alive: a Content-Length answer keeps the connection; an answer of unknown
    # length is close-delimited and ends it.
    s, rd = connect(ctx, st)
    try:
        s.sendall(b"POST /upload HTTP/1.0\r\nHost: %s\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc"
                  % st.host.encode())
        r = rd.read_response()
        expect_eq(r.status, 200, "HTTP/1.0 keep-alive POST")
        expect_eq(json.loads(r.body)["length"], 3, "HTTP/1.0 body at the origin")
        expect_eq((r.header("Connection") or "").lower(), "keep-alive", "Connection of a kept HTTP/1.0 answer")
        s.sendall(b"GET /bytes?n=5000&seed=9&chunked=1 HTTP/1.0\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n"
                  % st.host.encode())
        r = rd.read_response(head_only=True)
        expect_eq(r.status, 200, "second HTTP/1.0 request on the kept connection")
        expect_eq((r.header("Content-Length"), r.header("Transfer-Encoding")), (None, None),
                  "framing of an unknown-length answer to HTTP/1.0")
        expect_eq((r.header("Connection") or "").lower(), "close", "Connection of a close-delimited answer")
        body = read_to_eof(rd)
        expect_eq(hashlib.sha256(body).hexdigest(), origin_mod.gen_sha256(5000, 9), "close-delimited body")
    finally:
        s.close()
    # HTTP/1.0 without Host: the SNI names the site.
    s, rd = connect(ctx, st)
    s.sendall(b"GET /name HTTP/1.0\r\n\r\n")
    r = rd.read_response()
    s.close()
    expect_eq((r.status, r.body), (200, b"origin"), "HTTP/1.0 without Host")


@lib.timeout(60)
def test_content_length_preserved_and_head(ctx):
    st = lib.Stack(ctx)
    for n in (0, 1, 123457):
        r = st.get("/bytes?n=%d" % n)
        expect_eq((r.status, r.header("Content-Length"), r.header("Transfer-Encoding")), (200, str(n), None),
                  "GET of %d bytes with Content-Length" % n)
        expect_eq(len(r.body), n, "body length")
        r = ctx.curl(st.url("/bytes?n=%d" % n), resolve=st.resolve(), method="HEAD")
        expect_eq((r.status, r.header("Content-Length")), (200, str(n)), "HEAD of %d bytes" % n)
    r = st.get("/bytes?n=777&chunked=1")
    expect_eq((r.header("Content-Length"), (r.header("Transfer-Encoding") or "").lower()), (None, "chunked"),
              "an origin's chunked answer of unknown length is chunked to the visitor")
    expect_eq(len(r.body), 777, "chunked body length")


@lib.timeout(60)
def test_close_delimited_origin_response_arrives_whole(ctx):
    st = lib.Stack(ctx)
    n = 300000
    s, rd = connect(ctx, st)
    try:
        s.sendall(b"GET /close-delimited?n=%d&seed=5 HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, st.host.encode()))
        r = rd.read_response()
        expect_eq(r.status, 200, "close-delimited origin answer")
        expect_eq(len(r.body), n, "body length of a close-delimited origin answer")
        expect_eq(hashlib.sha256(r.body).hexdigest(), origin_mod.gen_sha256(n, 5), "body of a close-delimited answer")
        # The edge framed it itself: the visitor's connection goes on.
        s.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % st.host.encode())
        r2 = rd.read_response()
        expect_eq((r2.status, r2.body), (200, b"origin"), "next request on the same visitor connection")
    finally:
        s.close()
    expect(st.origin.events("conn_close"), "the origin's close-delimited connection was not closed")
    out = ctx.path("cd.bin")
    r = ctx.curl(st.url("/close-delimited?n=%d&seed=6" % n), resolve=st.resolve(), output=out, extra=["--http1.0"])
    expect_eq((r.rc, r.status), (0, 200), "close-delimited origin to an HTTP/1.0 client")
    expect_eq(lib.sha256_file(out), origin_mod.gen_sha256(n, 6), "body to the HTTP/1.0 client")


@lib.timeout(60)
def test_chunked_upload_and_download_with_checksums(ctx):
    st = lib.Stack(ctx)
    big = 256 * 1024 if ctx.reduced else 3 * MiB
    sizes = [1, 2, 7, 4096, 65536, 100003, big, 3]
    parts = [os.urandom(k) for k in sizes]
    want = hashlib.sha256(b"".join(parts)).hexdigest()
    s, rd = connect(ctx, st)
    try:
        head = b"POST /upload?detail=1 HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % st.host.encode()
        s.sendall(head)
        for i, p in enumerate(parts):
            ext = b";ext=%d" % i if i % 2 else b""
            s.sendall(b"%x%s\r\n%s\r\n" % (len(p), ext, p))
        s.sendall(b"0\r\nX-Req-Trailer: t\r\n\r\n")
        r = rd.read_response()
        expect_eq(r.status, 200, "chunked upload")
        j = json.loads(r.body)
        expect_eq((j["length"], j["sha256"]), (sum(sizes), want), "chunked upload at the origin")
        expect_eq(j["trailers"], [], "request trailers at the origin (dropped, RELIABILITY.md 5.4)")
        # Download, chunked by the origin, read chunk by chunk.
        n = 2 * MiB if ctx.reduced else 20 * MiB
        s.sendall(b"GET /bytes?n=%d&seed=11&chunked=1 HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, st.host.encode()))
        r = rd.read_response(head_only=True)
        expect_eq((r.status, (r.header("Transfer-Encoding") or "").lower()), (200, "chunked"), "chunked download")
        body, trailers, _ = read_chunked(rd)
        expect_eq(len(body), n, "chunked download length")
        expect_eq(hashlib.sha256(body).hexdigest(), origin_mod.gen_sha256(n, 11), "chunked download sha256")
        expect_eq(trailers, [], "trailers of a chunked download")
    finally:
        s.close()


@lib.timeout(60)
def test_trailers_dropped_consistently(ctx):
    st = lib.Stack(ctx)
    s, rd = connect(ctx, st)
    try:
        for i in range(3):
            s.sendall(b"GET /trailers HTTP/1.1\r\nHost: %s\r\nTE: trailers\r\n\r\n" % st.host.encode())
            r = rd.read_response(head_only=True)
            expect_eq(r.status, 200, "GET /trailers #%d" % i)
            names = [k.lower() for k, _ in r.headers]
            for gone in ("x-checksum", "x-count", "trailer"):
                expect(gone not in names, "#%d: %s in the response head: %r" % (i, gone, r.headers))
            expect_eq((r.header("Transfer-Encoding") or "").lower(), "chunked", "#%d: framing" % i)
            body, trailers, _ = read_chunked(rd)
            expect_eq(body, b"body with trailers\n", "#%d: body" % i)
            expect_eq(trailers, [], "#%d: trailer fields relayed" % i)
    finally:
        s.close()
    # HTTP/1.0: no chunked framing, so no trailer section; the body is the body only.
    s, rd = connect(ctx, st)
    s.sendall(b"GET /trailers HTTP/1.0\r\nHost: %s\r\n\r\n" % st.host.encode())
    r = rd.read_response()
    s.close()
    expect_eq((r.status, r.body), (200, b"body with trailers\n"), "HTTP/1.0 GET /trailers")
    expect(r.header("X-Checksum") is None, "X-Checksum became a header for HTTP/1.0: %r" % r.headers)
    # A request trailer never becomes a header at the origin either.
    s, rd = connect(ctx, st)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % st.host.encode()
              + chunk_encode([b"abc"], b"X-Req-Trailer: t\r\n"))
    r = rd.read_response()
    s.close()
    expect_eq(r.status, 200, "POST /echo with a request trailer")
    names = [k.lower() for k, _ in json.loads(r.body)["headers"]]
    expect("x-req-trailer" not in names, "a request trailer arrived as a header: %r" % names)


# ---- Expect: 100-continue ----------------------------------------------------------------------------


def expect_request(host, path, n):
    return (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" %
            (path.encode(), host.encode(), n))


def time_to_first_response(s, rd, timeout):
    """(Response or None, seconds): the next response head within |timeout| s."""
    t0 = time.monotonic()
    s.settimeout(timeout)
    try:
        r = rd.read_response(head_only=True)
    except socket.timeout:
        r = None
    return r, time.monotonic() - t0


@lib.timeout(60)
def test_expect_continue_relays_the_origin_100(ctx):
    # The edge's own 100 would come only after 5 s here: a quick 100 is the origin's.
    st = lib.Stack(ctx, edge_kw={"limits": {"expect_continue_ms": "5s"}})
    body = os.urandom(100000)
    s, rd = connect(ctx, st)
    try:
        s.sendall(expect_request(st.host, "/upload?detail=1", len(body)))
        r, secs = time_to_first_response(s, rd, 3 * ctx.slow)
        expect(r is not None, "no 100 Continue within %.1fs although the origin sends one at once" % secs)
        expect_eq(r.status, 100, "first answer to Expect: 100-continue")
        ctx.note("origin's 100 after %.3fs" % secs)
        s.sendall(body)
        s.settimeout(10 * ctx.slow)
        r = rd.read_response()
        expect_eq(r.status, 200, "final answer after the body")
        j = json.loads(r.body)
        expect_eq((j["length"], j["sha256"]), (len(body), hashlib.sha256(body).hexdigest()), "body at the origin")
        expect_eq(j["expect"], "100-continue", "Expect at the origin")
    finally:
        s.close()
    # An origin that never sends 100: nothing before the edge's timer (5 s); the client may send the
    # body anyway and gets the final answer, with no stray 100.
    s, rd = connect(ctx, st)
    try:
        s.sendall(expect_request(st.host, "/upload?no100=1", len(body)))
        r, secs = time_to_first_response(s, rd, 1.5)
        expect(r is None, "got %r after %.2fs: the origin sends no 100 and expect_continue_ms is 5s" %
               (r, secs))
        s.sendall(body)
        s.settimeout(10 * ctx.slow)
        r = rd.read_response()
        expect_eq(r.status, 200, "final answer (no 100 expected before it)")
        expect_eq(json.loads(r.body)["length"], len(body), "body at the origin")
    finally:
        s.close()


@lib.timeout(60)
def test_expect_continue_edge_sends_its_own_100_after_300ms(ctx):
    st = lib.Stack(ctx)  # limits.expect_continue_ms: the default 300 ms
    body = os.urandom(50000)
    s, rd = connect(ctx, st)
    try:
        s.sendall(expect_request(st.host, "/upload?no100=1", len(body)))
        r, secs = time_to_first_response(s, rd, 3 * ctx.slow)
        expect(r is not None, "no 100 Continue within %.1fs (the edge's own is due after 300 ms)" % secs)
        expect_eq(r.status, 100, "first answer to Expect: 100-continue")
        ctx.note("edge's own 100 after %.3fs" % secs)
        expect(0.25 <= secs <= 1.0 * ctx.slow, "the edge's own 100 came after %.3fs (expected about 0.3 s)" % secs)
        s.sendall(body)
        s.settimeout(10 * ctx.slow)
        r = rd.read_response()
        expect_eq(r.status, 200, "final answer")
        j = json.loads(r.body)
        expect_eq((j["length"], j["sha256"]), (len(body), hashlib.sha256(body).hexdigest()), "body at the origin")
        # The next request on the connection is not disturbed by a late 100.
        s.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % st.host.encode())
        r = rd.read_response()
        expect_eq((r.status, r.body), (200, b"origin"), "next request on the connection")
    finally:
        s.close()


# ---- streaming ------------------------------------------------------------------------------------------


@lib.timeout(60)
@lib.full_only("arrival timing")
def test_server_sent_events_arrive_before_the_next_is_sent(ctx):
    st = lib.Stack(ctx)
    n, ms = 5, 300
    s, rd = connect(ctx, st)
    try:
        s.sendall(b"GET /sse?n=%d&ms=%d HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n" %
                  (n, ms, st.host.encode()))
        s.settimeout(10 * ctx.slow)
        r = rd.read_response(head_only=True)
        expect_eq(r.status, 200, "GET /sse")
        expect("text/event-stream" in r.header("Content-Type", ""), "Content-Type %r" % r.header("Content-Type"))
        _, _, chunks = read_chunked(rd)
    finally:
        s.close()
    arrived = {}
    stream = b""
    for t, data in chunks:
        stream += data
        for part in stream.split(b"\n\n")[:-1]:
            for line in part.split(b"\n"):
                if line.startswith(b"id: "):
                    arrived.setdefault(int(line[4:]), t)
    expect_eq(sorted(arrived), list(range(n)), "events received")
    sent = {e["i"]: e["t"] for e in st.origin.events("sse_sent")}
    expect_eq(sorted(sent), list(range(n)), "events the origin sent")
    report = ["event %d: sent %.3f, arrived %+.3fs" % (i, sent[i] - sent[0], arrived[i] - sent[i]) for i in range(n)]
    ctx.note("SSE timing:\n  " + "\n  ".join(report))
    for i in range(n - 1):
        expect(arrived[i] < sent[i + 1], "event %d arrived after the origin sent event %d (buffered):\n  %s" %
               (i, i + 1, "\n  ".join(report)))
    expect(arrived[n - 1] - sent[n - 1] < 0.25 * ctx.slow, "the last event took %.3fs" % (arrived[n - 1] - sent[n - 1]))


def origin_plateau(ctx, st, rid):
    """Waits until the origin has written nothing more of response |rid| for a second (the visitor
    stopped reading and the buffers on the way are full); returns the bytes it had written."""
    last, stable_since, t0 = -1, time.monotonic(), time.monotonic()
    while time.monotonic() - stable_since < 1.0 * ctx.slow:
        sent = st.origin.progress(rid)["sent"]
        if sent != last:
            last, stable_since = sent, time.monotonic()
        expect(time.monotonic() - t0 < 20 * ctx.slow, "the origin kept writing for 20 s (at %d bytes) while "
               "the visitor read nothing" % sent)
        time.sleep(0.1)
    return last


@lib.timeout(90)
@lib.full_only("a back-pressure measurement over time")
def test_slow_reader_holds_the_origin_back(ctx):
    st = lib.Stack(ctx)
    pids = {"edge": st.edge.proc.pid, "connector": st.connector.proc.pid}
    mem = lib.MemSampler(pids).start()
    s, rd = connect(ctx, st, rcvbuf=64 * 1024, timeout=20)
    try:
        s.sendall(b"GET /bytes?n=%d&fast=1&seed=2&id=slow HTTP/1.1\r\nHost: %s\r\n\r\n" % (GiB, st.host.encode()))
        r = rd.read_response(head_only=True)
        expect_eq((r.status, r.header("Content-Length")), (200, str(GiB)), "GET of 1 GiB")
        got = len(rd.buf)
        rd.buf = b""
        while got < 256 * 1024:
            d = s.recv(65536)
            expect(d, "the connection closed after %d bytes" % got)
            got += len(d)
        # Stop reading: the origin must stop too once the buffers on the way are full.
        plateau = origin_plateau(ctx, st, "slow")
        ctx.note("the origin stopped at %.1f MiB while the visitor had read %d KiB" % (plateau / MiB, got // 1024))
        expect(plateau < 48 * MiB, "the origin wrote %.1f MiB of a 1 GiB body the visitor was not reading: "
               "not held back" % (plateau / MiB))
        expect(plateau > got, "the origin's progress (%d) is below what the visitor read (%d)" % (plateau, got))
        # Reading again (about 8 MiB/s) releases the origin.
        want = got + 16 * MiB
        while got < want:
            d = s.recv(65536)
            expect(d, "the connection closed while reading")
            got += len(d)
            time.sleep(len(d) / (8.0 * MiB))
        ctx.wait_until(lambda: st.origin.progress("slow")["sent"] > plateau + 8 * MiB, 5,
                       "the origin to write again once the visitor reads")
    finally:
        s.close()
    usage = mem.stop()
    ctx.note("memory during the slow read: %r" % usage)
    # Closing the visitor connection cancels the stream: the origin connection goes too.
    ctx.wait_until(lambda: st.origin.events("conn_close"), 10, "the origin connection to close after the "
                   "visitor went away")
    expect(not st.origin.progress("slow")["done"], "the whole 1 GiB was sent to a visitor that left")
    if ctx.reduced:
        ctx.warn("reduced mode (sanitizer build): RSS bound not asserted (edge %d KiB, connector %d KiB)" %
                 (usage["edge"]["hwm_kib"], usage["connector"]["hwm_kib"]))
        return
    for name, u in usage.items():
        expect(u["max_rss_kib"] < RSS_LIMIT_KIB and u["hwm_kib"] < RSS_LIMIT_KIB,
               "%s memory with a slow reader: peak RSS %d KiB, VmHWM %d KiB (limit %d KiB)" %
               (name, u["max_rss_kib"], u["hwm_kib"], RSS_LIMIT_KIB))


@lib.timeout(90)
def test_fast_reader_that_stalls_stays_bounded(ctx):
    """A visitor that reads fast grows its stream window (4 MiB) and may queue half of it on the edge;
    when it then stops reading, the edge holds at most that (6 MiB) and the origin is held back."""
    st = lib.Stack(ctx)
    idle_kib = lib.proc_status_kib(st.edge.proc.pid)["VmRSS"]
    s, rd = connect(ctx, st, rcvbuf=64 * 1024, timeout=20)
    try:
        s.sendall(b"GET /bytes?n=%d&fast=1&seed=3&id=stall HTTP/1.1\r\nHost: %s\r\n\r\n" % (GiB, st.host.encode()))
        r = rd.read_response(head_only=True)
        expect_eq(r.status, 200, "GET of 1 GiB")
        got = len(rd.buf)
        rd.buf = b""
        fast = (8 if ctx.reduced else 64) * MiB
        while got < fast:
            d = s.recv(1 << 20)
            expect(d, "the connection closed after %d bytes" % got)
            got += len(d)
        last = origin_plateau(ctx, st, "stall")
        held_kib = lib.proc_status_kib(st.edge.proc.pid)["VmRSS"] - idle_kib
        ctx.note("stalled after %d MiB: the origin stopped %.1f MiB ahead; edge RSS +%d KiB" %
                 (got // MiB, (last - got) / MiB, held_kib))
        expect(last - got < 48 * MiB, "the origin wrote %.1f MiB past what the stalled visitor read: not held "
               "back" % ((last - got) / MiB))
        if not ctx.reduced:
            # 6 MiB of queue, OpenSSL's and the allocator's share on top.
            expect(held_kib < 16 * 1024, "the edge grew %d KiB for one stalled visitor (bound: 4 MiB window "
                   "plus a 2 MiB queue)" % held_kib)
        want = got + 8 * MiB
        while got < want:
            d = s.recv(1 << 20)
            expect(d, "the connection closed while reading again")
            got += len(d)
        ctx.wait_until(lambda: st.origin.progress("stall")["sent"] > last, 5,
                       "the origin to write again once the visitor reads")
    finally:
        s.close()


def big_size(ctx):
    return 16 * MiB if ctx.reduced else 2 * GiB


def check_memory(ctx, usage, what):
    ctx.note("%s: memory %r" % (what, usage))
    if ctx.reduced:
        ctx.warn("reduced mode (sanitizer build): %s used %d MiB bodies and no RSS bound (edge VmHWM %d KiB, "
                 "connector VmHWM %d KiB)" % (what, big_size(ctx) // MiB, usage["edge"]["hwm_kib"],
                                              usage["connector"]["hwm_kib"]))
        return
    for name, u in usage.items():
        expect(u["samples"] > 10, "too few memory samples: %r" % u)
        expect(u["max_rss_kib"] < RSS_LIMIT_KIB and u["hwm_kib"] < RSS_LIMIT_KIB,
               "%s during %s: peak RSS %d KiB, VmHWM %d KiB (limit %d KiB)" %
               (name, what, u["max_rss_kib"], u["hwm_kib"], RSS_LIMIT_KIB))


@lib.timeout(150)
def test_upload_2gib_with_bounded_memory(ctx):
    st = lib.Stack(ctx)
    n = big_size(ctx)
    mem = lib.MemSampler({"edge": st.edge.proc.pid, "connector": st.connector.proc.pid}).start()
    hsh = hashlib.sha256()
    t0 = time.monotonic()
    s, rd = connect(ctx, st, timeout=60)
    try:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                  b"Content-Type: application/octet-stream\r\n\r\n" % (st.host.encode(), n))
        for chunk in origin_mod.gen_fast(n, 21):
            hsh.update(chunk)
            s.sendall(chunk)
        r = rd.read_response()
    finally:
        s.close()
    secs = time.monotonic() - t0
    usage = mem.stop()
    ctx.note("uploaded %d MiB in %.1fs (%.0f MiB/s)" % (n // MiB, secs, n / MiB / secs))
    expect_eq(r.status, 200, "upload of %d bytes" % n)
    expect_eq(json.loads(r.body), {"length": n, "sha256": hsh.hexdigest()}, "what the origin received")
    check_memory(ctx, usage, "a %d MiB upload" % (n // MiB))


@lib.timeout(150)
def test_download_2gib_with_bounded_memory(ctx):
    st = lib.Stack(ctx)
    n = big_size(ctx)
    mem = lib.MemSampler({"edge": st.edge.proc.pid, "connector": st.connector.proc.pid}).start()
    hsh = hashlib.sha256()
    t0 = time.monotonic()
    s, rd = connect(ctx, st, timeout=60)
    try:
        s.sendall(b"GET /bytes?n=%d&seed=22&fast=1 HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, st.host.encode()))
        r = rd.read_response(head_only=True)
        expect_eq((r.status, r.header("Content-Length")), (200, str(n)), "download head")
        got = len(rd.buf)
        hsh.update(rd.buf)
        rd.buf = b""
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while got < n:
            k = s.recv_into(view, min(len(buf), n - got))
            expect(k > 0, "the connection closed after %d of %d bytes" % (got, n))
            hsh.update(view[:k])
            got += k
    finally:
        s.close()
    secs = time.monotonic() - t0
    usage = mem.stop()
    ctx.note("downloaded %d MiB in %.1fs (%.0f MiB/s)" % (n // MiB, secs, n / MiB / secs))
    expect_eq(hsh.hexdigest(), origin_mod.gen_fast_sha256(n, 22), "sha256 of the %d bytes downloaded" % n)
    check_memory(ctx, usage, "a %d MiB download" % (n // MiB))


# ---- the edge's timeouts -------------------------------------------------------------------------------


def wait_status(ctx, proc, hdr, timeout):
    rc = proc.wait(timeout)
    with open(hdr, encoding="latin-1") as f:
        status, _ = lib.parse_header_block(f.read())
    return rc, status


@lib.timeout(60)
@lib.full_only("waits for timeouts")
def test_per_host_response_header_timeout(ctx):
    hosts = [h("slowpoke"), h("patient"), "a.wild." + DOMAIN]
    st = lib.Stack(ctx, hosts=hosts, edge_kw={"extra": {"hosts": [
        {"hostname": h("slowpoke"), "timeouts": {"response_header": "1s"}},
        {"hostname": "*.wild." + DOMAIN, "timeouts": {"response_header": "1s"}},
    ]}})
    t0 = time.monotonic()
    procs = {host: ctx.curl_popen(st.edge.url(host, "/slow?ms=2500"), resolve=st.edge.resolve(host), timeout=20)
             for host in hosts}
    done = {}
    while len(done) < len(procs):
        for host, (p, _, hdr) in procs.items():
            if host not in done and p.poll() is not None:
                done[host] = (wait_status(ctx, p, hdr, 1)[1], time.monotonic() - t0)
        expect(time.monotonic() - t0 < 20 * ctx.slow, "requests did not end: %r" % done)
        time.sleep(0.02)
    ctx.note("per-host response_header: %r" % done)
    for host in (h("slowpoke"), "a.wild." + DOMAIN):
        status, secs = done[host]
        expect_eq(status, 504, "%s (response_header 1s) with a 2.5 s origin" % host)
        expect(secs < 2.2 * ctx.slow, "%s: the 504 came after %.2fs (response_header 1s)" % (host, secs))
    status, secs = done[h("patient")]
    expect_eq(status, 200, "%s (default response_header) with a 2.5 s origin" % h("patient"))


@lib.timeout(60)
@lib.full_only("waits for timeouts")
def test_header_read_timeout_408_per_sni(ctx):
    st = lib.Stack(ctx, hosts=[h("quick"), h("calm")], edge_kw={"extra": {
        "timeouts": {"header_read": "2s"},
        "hosts": [{"hostname": h("quick"), "timeouts": {"header_read": "1s"}}]}})
    half = b"GET /name HTTP/1.1\r\nHost: %s\r\nX-Half: "

    def half_head(host, trickle=False, delay=0.0):
        s, rd = connect(ctx, st, host=host)
        t0 = time.monotonic()
        time.sleep(delay)
        s.sendall(half % host.encode())
        if trickle:  # one byte every 0.3 s: the deadline is for the whole head, not per byte
            for _ in range(10):
                readable, _, _ = select.select([s], [], [], 0.3)
                if readable:
                    break
                try:
                    s.sendall(b"x")
                except OSError:
                    break
        s.settimeout(10 * ctx.slow)
        try:
            r = rd.read_response()
        except (OSError, EOFError):
            r = None
        secs = time.monotonic() - t0
        closed = rd.closed_after(2 * ctx.slow)
        s.close()
        return r, secs, closed

    r, secs, closed = half_head(h("quick"))
    expect(r is not None, "no answer to half a head (header_read 1s for this SNI)")
    expect_eq(r.status, 408, "half a head, header_read 1s")
    expect(0.8 <= secs <= 2.0 * ctx.slow, "the 408 came after %.2fs (header_read 1s)" % secs)
    expect(closed, "the connection stayed open after the 408")
    r, secs, _ = half_head(h("quick"), trickle=True)
    expect(r is not None and r.status == 408, "a head trickling in byte by byte: %r" % (r,))
    expect(secs <= 2.2 * ctx.slow, "the trickled head got its 408 after %.2fs (header_read 1s)" % secs)
    # The deadline is a total from the handshake: idling 0.9 s before the first byte does not buy
    # another second (a deadline restarted at the first byte would answer at about 1.9 s).
    r, secs, _ = half_head(h("quick"), delay=0.9)
    expect(r is not None and r.status == 408, "a head started late: %r" % (r,))
    expect(secs <= 1.5 * ctx.slow, "a head started 0.9 s after the handshake got its 408 after %.2fs "
           "(header_read 1s counts from the handshake)" % secs)
    # The other SNI has the global 2 s: still waiting after 1.4 s, then completes normally.
    s, rd = connect(ctx, st, host=h("calm"))
    try:
        s.sendall(half % h("calm").encode())
        r, secs = time_to_first_response(s, rd, 1.4)
        expect(r is None, "an answer after %.2fs for half a head on the SNI with header_read 2s: %r" % (secs, r))
        s.sendall(b"1\r\n\r\n")
        s.settimeout(10 * ctx.slow)
        r = rd.read_response()
        expect_eq((r.status, r.body), (200, b"origin"), "the completed head")
    finally:
        s.close()
    r, secs, closed = half_head(h("calm"))
    expect(r is not None and r.status == 408, "half a head, header_read 2s: %r" % (r,))
    expect(1.8 <= secs <= 3.0 * ctx.slow, "the 408 came after %.2fs (header_read 2s)" % secs)


@lib.timeout(60)
@lib.full_only("waits for timeouts")
def test_keepalive_idle_close_per_sni(ctx):
    st = lib.Stack(ctx, hosts=[h("brief"), h("lingering")], edge_kw={"extra": {
        "timeouts": {"keepalive_idle": "3s"},
        "hosts": [{"hostname": h("brief"), "timeouts": {"keepalive_idle": "1s"}}]}})

    def idle_close_after(host, probe_at=None):
        s, rd = connect(ctx, st, host=host)
        try:
            s.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
            r = rd.read_response()
            expect_eq(r.status, 200, "%s: request" % host)
            if probe_at is not None:
                time.sleep(probe_at)
                s.sendall(b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
                r = rd.read_response()
                expect(r is not None and r.status == 200, "%s: a request after %.1fs idle (keepalive_idle "
                       "3s): %r" % (host, probe_at, r))
            t0 = time.monotonic()
            closed = rd.closed_after(6 * ctx.slow)
            return closed, time.monotonic() - t0
        finally:
            s.close()

    closed, secs = idle_close_after(h("brief"))
    expect(closed, "%s (keepalive_idle 1s): the idle connection was not closed" % h("brief"))
    expect(0.8 <= secs <= 2.0 * ctx.slow, "%s: closed after %.2fs idle (keepalive_idle 1s)" % (h("brief"), secs))
    closed, secs = idle_close_after(h("lingering"), probe_at=1.8)
    expect(closed, "%s (keepalive_idle 3s): the idle connection was not closed" % h("lingering"))
    expect(2.7 <= secs <= 4.5 * ctx.slow, "%s: closed after %.2fs idle (keepalive_idle 3s)" % (h("lingering"), secs))


# ---- smuggling cases the corpus (tests/corpus/requests) lacks ------------------------------------------

EXTRA_VECTORS = [
    ("x01-upgrade-unknown-token", [400],
     b"GET / HTTP/1.1\r\nHost: corpus.test\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n"),
    ("x02-upgrade-tls", [400],
     b"GET / HTTP/1.1\r\nHost: corpus.test\r\nConnection: Upgrade\r\nUpgrade: TLS/1.2\r\n\r\n"),
    ("x03-websocket-with-http2-settings", [400],
     b"GET / HTTP/1.1\r\nHost: corpus.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
     b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"),
    ("x04-nul-in-target", [400], b"GET /a\x00b HTTP/1.1\r\nHost: corpus.test\r\n\r\n"),
    ("x05-nul-in-name", [400], b"GET / HTTP/1.1\r\nHost: corpus.test\r\nX-A\x00b: c\r\n\r\n"),
    ("x06-separator-in-name", [400], b"GET / HTTP/1.1\r\nHost: corpus.test\r\nX-A(b): c\r\n\r\n"),
    ("x07-two-equal-hosts", [400], b"GET / HTTP/1.1\r\nHost: corpus.test\r\nHost: corpus.test\r\n\r\n"),
    ("x08-cl-then-te-chunked-smuggle", [400],
     b"POST / HTTP/1.1\r\nHost: corpus.test\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n"),
    ("x09-valid-then-bare-lf-smuggle", [200, 400],
     b"GET / HTTP/1.1\r\nHost: corpus.test\r\n\r\nGET /s HTTP/1.1\nHost: corpus.test\n\n"),
]


@lib.timeout(60)
def test_smuggling_cases_beyond_the_corpus(ctx):
    names = {v[0] for v in test_corpus.load_corpus()}
    for n, _, _ in EXTRA_VECTORS:
        expect(n + ".txt" not in names, "%s is in the corpus now: drop it here" % n)
    problems, n_fwd, n_origin = test_corpus.run_vectors(ctx, EXTRA_VECTORS)
    ctx.note("%d extra vectors, %d forwarded, %d at the origin" % (len(EXTRA_VECTORS), n_fwd, n_origin))
    expect(not problems, "%d problem(s):\n  %s" % (len(problems), "\n  ".join(sorted(problems))))


@lib.timeout(60)
def test_response_cut_by_the_origin_reaches_the_visitor_cut(ctx):
    """RELIABILITY.md §6 / T-28 (haproxy's truncated_response.vtc): when the origin closes in the
    middle of a body, the visitor gets every byte the origin sent and then an abort: never the
    full Content-Length, never a terminating chunk."""
    st = lib.Stack(ctx)
    want = b"".join(origin_mod.gen_bytes(1000, 7))[:500]
    for chunked in (0, 1):
        r = ctx.curl(st.url("/truncated?n=1000&chunked=%d" % chunked), resolve=st.resolve())
        what = "chunked" if chunked else "Content-Length 1000"
        expect_eq(r.status, 200, "%s: status" % what)
        expect(r.rc in (18, 56), "%s: curl saw a clean end (rc %d, %d bytes); a cut response must "
                                 "end in an abort" % (what, r.rc, len(r.body)))
        expect_eq(r.body, want, "%s: the bytes the origin sent before it closed" % what)
