"""WebSocket through the tunnel (PRODUCT.md section 2, issue 3): a frame-level echo origin
(origin.py /ws/echo) and our own client (lib.WebSocket: handshake, masked frames, ping/pong,
close). The edge checks the handshake both ways: raw mode only after the origin's 101 with the
right Sec-WebSocket-Accept; malformed upgrade requests are refused before they reach the origin."""

import hashlib
import os
import socket
import time

import lib
import origin as ws
from lib import expect, expect_eq


def open_ws(ctx, st, path="/ws/echo", host=None):
    s = ctx.tls_connect(st.edge.https_port, host or st.host)
    w = lib.WebSocket(s)
    r = w.handshake(host or st.host, path)
    return w, r


def expect_open(w, r, what):
    expect(r is not None, "%s: no answer to the handshake" % what)
    expect_eq(r.status, 101, "%s: handshake status" % what)
    expect(r.accept_ok, "%s: Sec-WebSocket-Accept %r does not answer the key %r" %
           (what, r.header("Sec-WebSocket-Accept"), w.key))
    expect_eq((r.header("Upgrade") or "").lower(), "websocket", "%s: Upgrade" % what)
    expect(r.header("Culvert-Request-Id"), "%s: no Culvert-Request-Id on the 101" % what)


@lib.timeout(60)
def test_websocket_echo_exchange(ctx):
    st = lib.Stack(ctx)
    w, r = open_ws(ctx, st)
    try:
        expect_open(w, r, "echo")
        w.send_text("hello, culvert")
        expect_eq(w.recv_message(), (ws.WS_TEXT, b"hello, culvert"), "text echo")
        big = os.urandom(64 * 1024 if ctx.reduced else 1024 * 1024)
        w.send_binary(big)
        op, data = w.recv_message(timeout=20)
        expect_eq(op, ws.WS_BINARY, "binary echo opcode")
        expect_eq(hashlib.sha256(data).hexdigest(), hashlib.sha256(big).hexdigest(), "binary echo (%d bytes)" % len(big))
        # A fragmented message: three frames, echoed frame by frame, joined here.
        w.send(ws.WS_TEXT, b"frag", fin=False)
        w.send(ws.WS_CONT, b"men", fin=False)
        w.ping(b"between fragments")  # control frames may come between fragments (RFC 6455 5.4)
        w.send(ws.WS_CONT, b"ted", fin=True)
        got = []
        for _ in range(4):
            fin, op, masked, payload = w.recv_frame()
            expect(not masked, "a frame from the origin arrived masked")
            got.append((op, payload, fin))
        expect_eq(got, [(ws.WS_TEXT, b"frag", False), (ws.WS_CONT, b"men", False),
                        (ws.WS_PONG, b"between fragments", True), (ws.WS_CONT, b"ted", True)],
                  "frames of a fragmented message with a ping inside")
        # Many small messages back to back.
        for i in range(50):
            w.send_text("m%d" % i)
        for i in range(50):
            expect_eq(w.recv_message(), (ws.WS_TEXT, b"m%d" % i), "message %d of 50" % i)
        w.close(1000, "done")
        expect_eq(w.recv_message()[0], ws.WS_CLOSE, "close answer")
    finally:
        w.sock.close()
    recs = st.origin.requests()
    expect_eq(len(recs), 1, "requests at the origin")
    expect_eq(recs[0]["path"], "/ws/echo", "WebSocket path at the origin")


@lib.timeout(60)
def test_websocket_close_from_client_reaches_origin(ctx):
    st = lib.Stack(ctx)
    w, r = open_ws(ctx, st)
    try:
        expect_open(w, r, "client close")
        w.send_text("before close")
        expect_eq(w.recv_message(), (ws.WS_TEXT, b"before close"), "echo before the close")
        w.close(4000, "client says bye")
        op, payload = w.recv_message(timeout=5)
        expect_eq(op, ws.WS_CLOSE, "the origin's answer to our close")
        expect_eq(ws.ws_parse_close(payload)[0], 4000, "code of the origin's close answer")
        expect(w.closed_after(5 * ctx.slow), "the edge did not close the connection after the close handshake")
    finally:
        w.sock.close()
    ctx.wait_until(lambda: st.origin.events("ws_close_received"), 5, "the origin to receive the close")
    ev = st.origin.events("ws_close_received")[0]
    expect_eq((ev["code"], ev["reason"]), (4000, "client says bye"), "close frame at the origin")
    ctx.wait_until(lambda: st.origin.events("ws_end"), 5, "the origin's WebSocket to end")


@lib.timeout(60)
def test_websocket_close_from_origin_reaches_client(ctx):
    st = lib.Stack(ctx)
    w, r = open_ws(ctx, st, path="/ws/echo?close_after_ms=300&code=4001")
    try:
        expect_open(w, r, "origin close")
        t0 = time.monotonic()
        op, payload = w.recv_message(timeout=5 * ctx.slow)
        secs = time.monotonic() - t0
        expect_eq(op, ws.WS_CLOSE, "the origin's close frame")
        expect_eq(ws.ws_parse_close(payload), (4001, "origin closing"), "code and reason of the origin's close")
        expect(secs < 2 * ctx.slow, "the origin's close took %.2fs to arrive" % secs)
        w.close(4001, "")
        expect(w.closed_after(5 * ctx.slow), "the connection stayed open after the close handshake")
    finally:
        w.sock.close()
    ctx.wait_until(lambda: st.origin.events("ws_close_received"), 5, "the client's close answer at the origin")
    expect_eq(st.origin.events("ws_close_received")[0]["code"], 4001, "code of the client's answer at the origin")


@lib.timeout(60)
def test_websocket_tcp_close_from_either_side(ctx):
    """Without a close handshake: the origin dropping its TCP connection ends the visitor's, and the
    visitor dropping its connection ends the origin's."""
    st = lib.Stack(ctx)
    # Raw echo (/ws/raw): the origin ends when the visitor goes.
    w, r = open_ws(ctx, st, path="/ws/raw")
    expect_open(w, r, "raw")
    w.sock.sendall(b"\x81\x02hi")  # raw echo: bytes come back as they are
    expect_eq(w.rd._take(4), b"\x81\x02hi", "raw echo")
    w.sock.close()
    ctx.wait_until(lambda: st.origin.events("conn_close"), 5, "the origin connection to close after the visitor left")
    # The origin ends (close handshake answered, then its TCP close): the visitor's connection ends.
    w, r = open_ws(ctx, st)
    try:
        expect_open(w, r, "origin goes")
        w.close(1001, "")
        expect_eq(w.recv_message()[0], ws.WS_CLOSE, "close answer")
        expect(w.closed_after(5 * ctx.slow), "the visitor's connection stayed open after the origin closed")
    finally:
        w.sock.close()


@lib.timeout(60)
@lib.full_only("waits across heartbeats")
def test_idle_websocket_survives_heartbeats(ctx):
    st = lib.Stack(ctx, edge_kw={"limits": {"heartbeat_ms": "500ms"}})
    w, r = open_ws(ctx, st)
    try:
        expect_open(w, r, "idle")
        w.send_text("before idling")
        expect_eq(w.recv_message(), (ws.WS_TEXT, b"before idling"), "echo before idling")
        # About six edge heartbeats with nothing on the WebSocket.
        w.sock.settimeout(3.0)
        try:
            d = w.sock.recv(1)
            raise AssertionError("the idle WebSocket got %r (closed or data) while idle" % d)
        except socket.timeout:
            pass
        w.send_text("after idling")
        expect_eq(w.recv_message(), (ws.WS_TEXT, b"after idling"), "echo after 3 s idle")
    finally:
        w.sock.close()
    closes = [e for e in st.origin.events("conn_close")]
    expect(len(closes) <= 1, "origin connections closed: %r" % closes)


@lib.timeout(60)
def test_wrong_accept_from_origin_gives_502_never_101(ctx):
    st = lib.Stack(ctx)
    s = ctx.tls_connect(st.edge.https_port, st.host)
    try:
        key = lib.WebSocket.new_key()
        s.sendall(("GET /ws/bad-accept HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (st.host, key)).encode())
        s.sendall(ws.ws_encode(ws.WS_TEXT, b"must not pass", mask_key=b"abcd"))
        rd = lib.RawHTTP(s)
        s.settimeout(10 * ctx.slow)
        r = rd.read_response()
        expect(r is not None, "no answer to an upgrade the origin answered with a wrong accept")
        expect_eq(r.status, 502, "status when the origin's Sec-WebSocket-Accept is wrong")
        expect(r.header("Culvert-Request-Id") in r.text(), "the 502 page does not name the request id")
        rest = b""
        s.settimeout(2 * ctx.slow)
        try:
            while rd._fill():
                pass
        except socket.timeout:
            pass
        rest = rd.buf
        expect(b"101" not in rest and b"must not pass" not in rest,
               "bytes after the 502: %r" % rest[:200])
    finally:
        s.close()


@lib.timeout(60)
def test_origin_refusing_the_upgrade(ctx):
    st = lib.Stack(ctx)
    w, r = open_ws(ctx, st, path="/ws/refuse")
    try:
        expect(r is not None, "no answer")
        expect_eq((r.status, r.body), (200, b"no upgrade here\n"), "an origin answering 200 to an upgrade")
        expect(w.closed_after(5 * ctx.slow), "the connection stayed open after a refused upgrade")
    finally:
        w.sock.close()


def raw_upgrade(ctx, st, lines, body=b""):
    s = ctx.tls_connect(st.edge.https_port, st.host)
    try:
        s.sendall(("\r\n".join(["GET /ws/echo HTTP/1.1", "Host: %s" % st.host] + lines) + "\r\n\r\n").encode() + body)
        rd = lib.RawHTTP(s)
        s.settimeout(10 * ctx.slow)
        r = rd.read_response()
        closed = rd.closed_after(3 * ctx.slow)
    finally:
        s.close()
    return r, closed


@lib.timeout(60)
def test_invalid_websocket_requests_refused(ctx):
    st = lib.Stack(ctx)
    key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
    up = ["Upgrade: websocket", "Connection: Upgrade"]
    cases = [
        ("no key", up + ["Sec-WebSocket-Version: 13"], b"", 400),
        ("a Content-Length body", up + [key, "Sec-WebSocket-Version: 13", "Content-Length: 5"], b"hello", 400),
        ("a chunked body", up + [key, "Sec-WebSocket-Version: 13", "Transfer-Encoding: chunked"], b"0\r\n\r\n", 400),
        ("version 8", up + [key, "Sec-WebSocket-Version: 8"], b"", 426),
        ("version 14", up + [key, "Sec-WebSocket-Version: 14"], b"", 426),
        ("Upgrade: h2c", ["Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings",
                          "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"], b"", 400),
        ("HTTP2-Settings alone", ["HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"], b"", 400),
        ("an unknown upgrade", ["Upgrade: foo", "Connection: Upgrade"], b"", 400),
    ]
    problems = []
    for what, lines, body, want in cases:
        r, closed = raw_upgrade(ctx, st, lines, body)
        if r is None:
            problems.append("%s: no answer" % what)
            continue
        if r.status != want:
            problems.append("%s: expected %d, got %d" % (what, want, r.status))
        if want == 426 and r.header("Sec-WebSocket-Version") != "13":
            problems.append("%s: the 426 carries Sec-WebSocket-Version %r, expected 13" %
                            (what, r.header("Sec-WebSocket-Version")))
        if not closed:
            problems.append("%s: the connection stayed open after %d" % (what, r.status))
    expect(not problems, "invalid upgrades:\n  " + "\n  ".join(problems))
    expect_eq(st.origin.requests(), [], "requests that reached the origin")
