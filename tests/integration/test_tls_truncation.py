"""TLS truncation (RELIABILITY.md T-25). A visitor whose TCP connection ends without close_notify in
the middle of a request body has abandoned the request: the origin sees it aborted (its connection
closed) within a second, and nothing else is disturbed. When the edge ends a connection itself
(`Connection: close`, the keep-alive deadline), it says so with close_notify before its FIN, so a
client can tell a complete answer from a cut one."""

import socket
import time

import lib
import tcp_lib
from lib import expect, expect_eq


@lib.timeout(60)
def test_visitor_fin_without_close_notify_mid_body_aborts_the_origin_request(ctx):
    st = lib.Stack(ctx)
    c = tcp_lib.CulvertTcpClient(ctx, st.edge.https_port, st.host)
    try:
        c.send(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 1048576\r\n\r\n" % st.host.encode()
               + b"u" * 65536)

        def upload_at_origin():
            return [q for q in st.origin.requests() if q["path"] == "/upload"]

        ctx.wait_until(upload_at_origin, 10, "the upload to reach the origin")
        conn = upload_at_origin()[0]["conn"]
        time.sleep(0.2)  # the 64 KiB sent are through; the origin waits for the rest
        expect(not [e for e in st.origin.events("conn_close") if e["conn"] == conn],
               "the origin connection closed before the visitor's FIN")
        t_fin = time.time()
        c.sock.shutdown(socket.SHUT_WR)  # a TCP FIN, no close_notify

        def closed():
            return [e for e in st.origin.events("conn_close") if e["conn"] == conn]

        ctx.wait_until(closed, 5, "the origin connection of the abandoned upload to close")
        after = closed()[0]["t"] - t_fin
        ctx.note("the origin's connection closed %.3fs after the visitor's FIN" % after)
        expect(after <= 1.0 * ctx.slow, "the abandoned upload reached the origin's end %.2fs after the "
               "visitor's FIN (at most 1 s)" % after)
    finally:
        c.sock.close()
    r = st.get("/name")
    expect_eq(r.status, 200, "a request after the abandoned upload")


def _ending(ctx, st, request, wait=None):
    """Sends |request| on a new TLS connection and reads until the edge ends it: (bytes, how)."""
    c = tcp_lib.CulvertTcpClient(ctx, st.edge.https_port, st.host)
    try:
        c.send(request)
        if wait is not None:
            time.sleep(wait)
        c.sock.settimeout(10 * ctx.slow)
        return c.recv_all()
    finally:
        c.sock.close()


@lib.timeout(60)
def test_edge_ends_its_connections_with_close_notify(ctx):
    st = lib.Stack(ctx, edge_kw={"extra": {"timeouts": {"keepalive_idle": "1s"}}})
    host = st.host.encode()
    data, how = _ending(ctx, st, b"GET /name HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host)
    expect(data.startswith(b"HTTP/1.1 200 "), "answer to a Connection: close request: %r" % data[:80])
    expect_eq(how, "close_notify", "how the edge ended a connection after Connection: close")
    data, how = _ending(ctx, st, b"GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
    expect(data.startswith(b"HTTP/1.1 200 "), "answer before the keep-alive deadline: %r" % data[:80])
    expect_eq(how, "close_notify", "how the edge ended an idle keep-alive connection")
    data, how = _ending(ctx, st, b"GET /name HTTP/1.0\r\nHost: %s\r\n\r\n" % host)
    expect(data.startswith(b"HTTP/1.1 200 "), "answer to an HTTP/1.0 request: %r" % data[:80])
    expect_eq(how, "close_notify", "how the edge ended an HTTP/1.0 connection")
