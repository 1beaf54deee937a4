"""Origin keep-alive desync (RELIABILITY.md T-22): an origin whose answer leaves the connection in a
state nobody can trust (a body after a HEAD answer or a 204, junk after a 100, a 200 to an upgrade
request, a Content-Length body cut short) must not have its next request sent on that connection.
Each case is followed by a normal request, which must get the right answer, from another origin
connection. The origin here is written with raw sockets, so that it can misbehave."""

import socket
import threading
import time

import lib
from lib import DOMAIN, expect, expect_eq

HOST = "desync." + DOMAIN


class RawOrigin:
    """Numbers its connections from 1 and logs (connection, method, path) for every request it
    reads. Misbehaves by path (see answer()); any other path gets `200` with body `conn=N`."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.nconns = 0
        self.log = []
        self.socks = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closing = True
        for s in [self.lsock] + self.socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.nconns += 1
                n = self.nconns
                self.socks.append(c)
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c, n):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                clen = 0
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        clen = int(v.strip())
                while len(buf) < clen:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[clen:]
                with self.lock:
                    self.log.append((n, method, path))
                out, close = self.answer(n, method, path)
                c.sendall(out)
                if path == "/head-body-late":
                    time.sleep(0.1)
                    c.sendall(b"hello")
                if close:
                    c.shutdown(socket.SHUT_WR)
                    return
        except OSError:
            return
        finally:
            c.close()

    @staticmethod
    def answer(n, method, path):
        """(bytes to send, close afterwards)."""
        if path == "/head-body":    # (a) a HEAD answered with a body
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", False
        if path == "/head-body-late":  # (a) again, the body 100 ms after the head (_serve)
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", False
        if path == "/204-body":     # (b) a 204 with a body
            return b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged", False
        if path == "/100-junk":     # (c) junk after an interim 100
            return b"HTTP/1.1 100 Continue\r\n\r\n\x00junk\x7f\r\n\r\n", False
        if path == "/upgrade-200":  # (d) a 200 to an upgrade request, then bytes of the new protocol
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\x81\x05hello", False
        if path == "/short":        # (e) Content-Length 100, 40 bytes, close
            return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40, True
        body = b"conn=%d" % n
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body), False

    def conn_of(self, path):
        with self.lock:
            hits = [n for n, _, p in self.log if p == path]
        expect_eq(len(hits), 1, "requests for %s at the origin" % path)
        return hits[0]


def _raw(ctx, edge, request):
    """Sends |request| on a new TLS connection to the edge; returns the first response."""
    s = ctx.tls_connect(edge.https_port, HOST)
    try:
        s.sendall(request)
        return lib.RawHTTP(s).read_response()
    finally:
        s.close()


@lib.timeout(90)
def test_a_connection_the_origin_desynchronised_is_never_reused(ctx):
    origin = RawOrigin(ctx)
    try:
        edge = ctx.edge()
        t = edge.tunnel_with_route("desync", [HOST])
        # One connector connection and one origin connection at a time: a follow-up request
        # would be sent on the connection that the bad answer came from if the pool kept it.
        ctx.connector(edge, t["token"], ha=1, ingress=[{"service": origin.url}])
        follow = [0]

        def follow_up(case, bad_path):
            follow[0] += 1
            path = "/ok-%d" % follow[0]
            r = edge.get(HOST, path)
            expect_eq((r.status, r.body[:5]), (200, b"conn="), "%s: the next request's answer" % case)
            served_by = int(r.body[5:])
            bad = origin.conn_of(bad_path)
            expect_eq(origin.conn_of(path), served_by, "%s: the answer names the connection that "
                      "got the request" % case)
            expect(served_by != bad, "%s: the next request went to origin connection %d, the one "
                   "the bad answer came from" % (case, bad))

        r = edge.get(HOST, "/warm")  # an origin connection in the pool before the cases
        expect_eq(r.status, 200, "a normal request first")

        # (a) A HEAD answered with a body: the visitor gets the head only.
        r = ctx.curl(edge.url(HOST, "/head-body"), resolve=edge, method="HEAD")
        expect_eq((r.rc, r.status, r.header("Content-Length")), (0, 200, "5"), "(a) HEAD")
        follow_up("(a) HEAD answered with a body", "/head-body")
        # The same body sent 100 ms after the head, once the connection sits idle in the pool.
        r = ctx.curl(edge.url(HOST, "/head-body-late"), resolve=edge, method="HEAD")
        expect_eq((r.rc, r.status), (0, 200), "(a) HEAD, body later")
        time.sleep(0.3)
        follow_up("(a) HEAD answered with a body 100 ms later", "/head-body-late")

        # (b) A 204 followed by bytes (here, a forged second response).
        r = edge.get(HOST, "/204-body")
        expect_eq((r.status, r.body), (204, b""), "(b) 204")
        follow_up("(b) 204 with a body", "/204-body")

        # (c) Junk after a 100: the origin's answer is invalid.
        r = edge.get(HOST, "/100-junk")
        expect_eq(r.status, 502, "(c) junk after a 100")
        follow_up("(c) 100 then junk", "/100-junk")

        # (d) An upgrade request answered 200: relayed as a normal response (the edge then closes
        # the visitor's connection).
        resp = _raw(ctx, edge, ("GET /upgrade-200 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
                                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" % HOST).encode())
        expect(resp is not None, "(d) no answer to an upgrade request answered 200")
        expect_eq((resp.status, resp.body), (200, b"ok"), "(d) 200 to an upgrade request")
        follow_up("(d) 200 to an upgrade request", "/upgrade-200")

        # (e) A Content-Length body cut short: the visitor must not see a complete response.
        r = ctx.curl(edge.url(HOST, "/short"), resolve=edge)
        expect(r.rc != 0 and len(r.body or b"") < 100, "(e) a body cut short reached the visitor as a "
               "complete response: curl rc %d, %d bytes" % (r.rc, len(r.body or b"")))
        follow_up("(e) Content-Length body cut short", "/short")
        ctx.note("origin requests (connection, method, path): %r" % origin.log)
    finally:
        origin.close()
