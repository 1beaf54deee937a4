#!/usr/bin/python3
"""A test origin for the integration suite: threaded HTTP/1.1 with keep-alive.

Run as its own process by lib.Origin (never imported into a test's process to serve):

    origin.py --name NAME --ready-file F --log F [--events F] [--port 0] [--host 127.0.0.1]
              [--unix PATH] [--tls-cert F --tls-key F]

It binds, writes its port (or "unix:PATH" with --unix) into --ready-file (atomically), and serves
until SIGTERM. --unix listens on a unix socket instead of TCP; --tls-cert/--tls-key make it an HTTPS
(or unix+tls) origin that records the SNI each connection asked for.
Deliberately lenient (Python's http.server parser): a smuggled request shows up as an extra line
in the request log (RELIABILITY.md T-01).

Endpoints (any method unless said):
  /echo            JSON: method, path, headers ([[name, value], ...] in arrival order, case kept),
                   body_length, body_sha256, name
  /upload          reads the body (Content-Length or chunked), answers JSON {length, sha256}
  /bytes?n=N[&seed=S][&chunked=1]
                   N bytes of gen_bytes(N, S) (deterministic), Content-Length or chunked
  /status/NNN      answers status NNN with a short body (none for 1xx/204/304)
  /name            answers the origin's --name as text
  /redirect?to=URL 302 with Location: URL
  /slow?ms=N       sleeps N ms (at most 60 s), then answers "slow N"
  anything else    like /echo
  /bytes?...&fast=1 the bytes of gen_fast(N, S) instead (a faster generator, for GiB transfers)
  /bytes?...&id=X  records how many body bytes it has written so far, read with /progress?id=X
  ?drop_next=1     (any endpoint) answers normally, then reads the next request on the same
                   connection and closes 100 ms later without answering it (event "dropped")
  /progress?id=X   JSON {"sent": bytes written so far by /bytes?id=X, "done": bool} (asked directly,
                   not through the tunnel)
  /upload          also takes ?no100=1: no interim 100 Continue for Expect: 100-continue (else
                   http.server sends one at once), and ?detail=1: the JSON also has "trailers"
                   (the request's trailer fields), "expect", "transfer_encoding", "content_length"
                   (the request's fields, or null)
  /sse?n=N&ms=M    text/event-stream, chunked: N events "id: I\ndata: event I\n\n", one every M ms;
                   the event log gets {"event": "sse_sent", "i", "t"} just before each is written
  /trailers        a chunked body with a Trailer header and trailer fields (X-Checksum, X-Count)
  /close-delimited?n=N[&seed=S]
                   HTTP/1.1 200 with neither Content-Length nor Transfer-Encoding: gen_bytes(N, S)
                   then the connection closes
A request with `Upgrade: websocket` and a valid key:
  /ws/echo[?close_after_ms=MS&code=C]
                   101, then a frame-level WebSocket server (RFC 6455): client frames must be
                   masked; text and binary frames are echoed frame by frame (same opcode and FIN),
                   ping is answered with pong; a close is answered with a close of the same code
                   and the connection ends. With close_after_ms the origin itself sends a close
                   (code C, reason "origin closing") after MS ms and waits for the client's reply.
                   Events: ws_open, ws_frame (opcode, length), ws_close_received (code, reason),
                   ws_close_sent (code), ws_end.
  /ws/bad-accept   101 with a wrong Sec-WebSocket-Accept, then raw echo (must never reach a visitor)
  /ws/refuse       a normal 200 answer (no upgrade), its body 50 ms after its head
  anything else    101, then every byte received is echoed back raw until the client closes.

Request log: one JSON object per line per request, written before the answer:
  {"method", "path", "request_id" (Culvert-Request-Id or null), "name", "conn" (the connection's
   number, from 1), "host" (the Host field), "sni" (TLS origins: the SNI of the connection)}
Event log (--events): one JSON object per line, {"event", "t" (time.time()), "conn", ...}:
  conn_open and conn_close for every connection, plus the events named above.
"""

import argparse
import base64
import hashlib
import http.client
import http.server
import json
import os
import random
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.parse

GEN_CHUNK = 65536

# http.server refuses more than 100 header fields (http.client._MAXHEADERS); the edge forwards up
# to its own limit plus the fields it adds, so the origin must take more.
http.client._MAXHEADERS = 10000


def gen_bytes(n, seed=1):
    """Yields n deterministic bytes in chunks (the same for the origin and the tests)."""
    rnd = random.Random(seed)
    left = n
    while left > 0:
        k = min(GEN_CHUNK, left)
        block = rnd.randbytes(GEN_CHUNK)
        yield block[:k]
        left -= k


def gen_sha256(n, seed=1):
    h = hashlib.sha256()
    for chunk in gen_bytes(n, seed):
        h.update(chunk)
    return h.hexdigest()


FAST_BLOCK = 1 << 20


def gen_fast(n, seed=1):
    """Yields n deterministic bytes in blocks of 1 MiB, fast enough for GiB transfers: one random
    MiB for the seed, each block starting with its own number (so a lost, repeated or reordered
    block changes the checksum)."""
    base = random.Random(seed).randbytes(FAST_BLOCK)
    left = n
    i = 0
    while left > 0:
        block = struct.pack(">Q", i) + base[8:]
        k = min(FAST_BLOCK, left)
        yield block[:k] if k < FAST_BLOCK else block
        left -= k
        i += 1


def gen_fast_sha256(n, seed=1):
    h = hashlib.sha256()
    for chunk in gen_fast(n, seed):
        h.update(chunk)
    return h.hexdigest()


# ---- WebSocket frames (RFC 6455 section 5), shared with lib.WebSocket -------------------------

WS_CONT, WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_accept(key):
    """The Sec-WebSocket-Accept answering Sec-WebSocket-Key |key|."""
    return base64.b64encode(hashlib.sha1((key.strip() + WS_GUID).encode()).digest()).decode()


def ws_mask(payload, key):
    if not payload:
        return b""
    k = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(len(payload), "big")


def ws_encode(opcode, payload=b"", fin=True, mask_key=None, rsv=0):
    """One frame; masked with the 4-byte |mask_key| when given (client to server)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask_key is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask_key is not None:
        return head + mask_key + ws_mask(payload, mask_key)
    return head + payload


def ws_close_payload(code, reason=""):
    return struct.pack("!H", code) + reason.encode("utf-8")


def ws_parse_close(payload):
    """(code or None, reason) of a Close frame's payload."""
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


def ws_read_frame(read_exact):
    """Reads one frame with |read_exact(n)| (raises EOFError at the end of the stream).
    Returns (fin, opcode, masked, payload) with the payload unmasked."""
    b0, b1 = read_exact(2)
    fin = bool(b0 & 0x80)
    opcode = b0 & 0x0F
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(8))[0]
    key = read_exact(4) if masked else None
    payload = read_exact(n) if n else b""
    if masked:
        payload = ws_mask(payload, key)
    return fin, opcode, masked, payload


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "culvert-test-origin"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet: the request log is the record
        pass

    # ---- connections and events --------------------------------------------------------------

    def setup(self):
        self.conn_id = self.server.next_conn_id()
        self.drop_next = False
        self.sni = None
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError) as e:
                self.event("tls_error", error=str(e)[:200])
                self.tls_failed = True
            else:
                self.tls_failed = False
            self.sni = getattr(self.request, "culvert_sni", None)
            self.request.settimeout(None)
        else:
            self.tls_failed = False
        self.event("conn_open", sni=self.sni)
        # http.server writes the head and the body separately: without TCP_NODELAY, Nagle plus the
        # peer's delayed ACK hold every keep-alive response back by about 40 ms (TCP only: the
        # option does not exist on unix sockets). (A first setup() of the class set it, but this
        # one replaced it.)
        self.disable_nagle_algorithm = self.request.family in (socket.AF_INET, socket.AF_INET6)
        super().setup()

    def handle(self):
        if self.tls_failed:
            return
        super().handle()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        self.event("conn_close")

    def event(self, name, **kw):
        rec = {"event": name, "t": time.time(), "conn": self.conn_id}
        rec.update(kw)
        self.server.write_event(rec)

    def handle_expect_100(self):
        # http.server answers 100 Continue at once; ?no100=1 asks for an origin that never does.
        if "no100=1" in self.path:
            return True
        return super().handle_expect_100()

    # ---- request body ------------------------------------------------------------------------

    def read_body(self, sink):
        """Reads the request body (CL or chunked) into sink(bytes). Returns the length. The
        trailer fields of a chunked body are kept in self.trailers ([[name, value], ...])."""
        self.trailers = []
        te = self.headers.get("Transfer-Encoding")
        if te is not None and te.strip().lower() == "chunked":
            total = 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:  # trailers until the empty line
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                        k, _, v = t.decode("latin-1").partition(":")
                        self.trailers.append([k.strip(), v.strip()])
                    return total
                left = size
                while left > 0:
                    data = self.rfile.read(min(left, 65536))
                    if not data:
                        raise ConnectionError("eof in chunk")
                    sink(data)
                    left -= len(data)
                    total += len(data)
                self.rfile.readline(3)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return 0
        left = int(cl)
        total = 0
        while left > 0:
            data = self.rfile.read(min(left, 65536))
            if not data:
                raise ConnectionError("eof in body")
            sink(data)
            left -= len(data)
            total += len(data)
        return total

    # ---- answers -----------------------------------------------------------------------------

    def answer(self, status, body, ctype="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (extra or []):
            self.send_header(k, v)
        if status < 200 or status in (204, 304):
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def answer_json(self, obj, status=200):
        self.answer(status, (json.dumps(obj) + "\n").encode())

    def log_request_line(self):
        rec = {
            "method": self.command,
            "path": self.path,
            "request_id": self.headers.get("Culvert-Request-Id"),
            "name": self.server.origin_name,
            "conn": self.conn_id,
            "host": self.headers.get("Host"),
            "sni": self.sni,
        }
        with self.server.log_lock:
            self.server.log_file.write(json.dumps(rec) + "\n")
            self.server.log_file.flush()

    def handle_one_request(self):
        # http.server's own, with the dispatch replaced so every method reaches dispatch().
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.dispatch()
            self.wfile.flush()
        except (ConnectionError, socket.timeout, ValueError):
            self.close_connection = True

    def dispatch(self):
        self.log_request_line()
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        path = url.path
        if self.drop_next:
            # Asked for by the previous request on this connection: close without an answer, as an
            # origin whose keep-alive timeout just expired does.
            self.event("dropped", path=self.path)
            time.sleep(0.1)  # whatever the proxy sends with the request has arrived by then
            self.close_connection = True
            return
        if q.get("drop_next", ["0"])[0] == "1":
            self.drop_next = True
        if (self.headers.get("Upgrade", "").lower() == "websocket"
                and self.headers.get("Sec-WebSocket-Key")):
            if path == "/ws/echo":
                return self.websocket_frames(q)
            if path == "/ws/bad-accept":
                return self.websocket(bad_accept=True)
            if path == "/ws/refuse":
                # A plain answer, its body 50 ms after its head (two reads for the proxy).
                body = b"no upgrade here\n"
                self.close_connection = True
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                time.sleep(0.05)
                self.wfile.write(body)
                return
            return self.websocket()
        if path == "/upload":
            h = hashlib.sha256()
            n = self.read_body(h.update)
            out = {"length": n, "sha256": h.hexdigest()}
            if q.get("detail", ["0"])[0] == "1":
                out.update({"trailers": self.trailers, "expect": self.headers.get("Expect"),
                            "transfer_encoding": self.headers.get("Transfer-Encoding"),
                            "content_length": self.headers.get("Content-Length")})
            return self.answer_json(out)
        if path == "/progress":
            key = q.get("id", [""])[0]
            with self.server.log_lock:
                p = dict(self.server.progress.get(key, {"sent": 0, "done": False}))
            return self.answer_json(p)
        if path == "/bytes":
            h = hashlib.sha256()
            self.read_body(h.update)
            n = int(q.get("n", ["0"])[0])
            seed = int(q.get("seed", ["1"])[0])
            chunked = q.get("chunked", ["0"])[0] == "1"
            gen = gen_fast if q.get("fast", ["0"])[0] == "1" else gen_bytes
            key = q.get("id", [None])[0]
            self.bytes_head(n, chunked)
            if self.command == "HEAD":
                return
            sent = 0
            for chunk in gen(n, seed):
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
                sent += len(chunk)
                if key is not None:
                    with self.server.log_lock:
                        self.server.progress[key] = {"sent": sent, "done": sent >= n}
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/sse":
            self.read_body(lambda d: None)
            n = int(q.get("n", ["3"])[0])
            ms = int(q.get("ms", ["300"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(n):
                if i > 0:
                    time.sleep(ms / 1000.0)
                ev = b"id: %d\ndata: event %d\n\n" % (i, i)
                self.event("sse_sent", i=i)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/trailers":
            self.read_body(lambda d: None)
            body = b"body with trailers\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum, X-Count")
            self.end_headers()
            if self.command == "HEAD":
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
            self.wfile.write(b"0\r\nX-Checksum: %s\r\nX-Count: 1\r\n\r\n" %
                             hashlib.sha256(body).hexdigest().encode())
            return
        if path == "/close-delimited":
            self.read_body(lambda d: None)
            n = int(q.get("n", ["0"])[0])
            seed = int(q.get("seed", ["1"])[0])
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            for chunk in gen_bytes(n, seed):
                self.wfile.write(chunk)
            return
        if path == "/truncated":
            # Announces n bytes (Content-Length, or chunked with chunked=1), sends the first half,
            # then closes: a response cut short by the origin.
            self.read_body(lambda d: None)
            n = int(q.get("n", ["1000"])[0])
            chunked = q.get("chunked", ["0"])[0] == "1"
            self.close_connection = True
            self.bytes_head(n, chunked)
            half = b"".join(gen_bytes(n, 7))[: n // 2]
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
            else:
                self.wfile.write(half)
            self.wfile.flush()
            return
        if path.startswith("/status/"):
            self.read_body(lambda d: None)
            code = int(path[len("/status/"):])
            return self.answer(code, b"status %d\n" % code, "text/plain")
        if path == "/name":
            self.read_body(lambda d: None)
            return self.answer(200, self.server.origin_name.encode(), "text/plain")
        if path == "/redirect":
            self.read_body(lambda d: None)
            return self.answer(302, b"moved\n", "text/plain", [("Location", q.get("to", ["/"])[0])])
        if path == "/slow":
            self.read_body(lambda d: None)
            ms = min(int(q.get("ms", ["0"])[0]), 60000)
            time.sleep(ms / 1000.0)
            return self.answer(200, b"slow %d\n" % ms, "text/plain")
        h = hashlib.sha256()
        n = self.read_body(h.update)
        return self.answer_json({
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_length": n,
            "body_sha256": h.hexdigest(),
            "name": self.server.origin_name,
        })

    def bytes_head(self, n, chunked):
        """200, application/octet-stream, chunked or Content-Length |n|."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(n))
        self.end_headers()

    def websocket(self, bad_accept=False):
        key = self.headers["Sec-WebSocket-Key"].strip()
        accept = ws_accept(key)
        if bad_accept:
            accept = ws_accept(key + "x")
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            data = self.rfile.read1(65536)
            if not data:
                return
            self.wfile.write(data)
            self.wfile.flush()


    def websocket_frames(self, q):
        """A frame-level WebSocket endpoint (see the module's docstring)."""
        key = self.headers["Sec-WebSocket-Key"].strip()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self.event("ws_open", path=self.path)
        wlock = threading.Lock()
        state = {"close_sent": False}

        def send(opcode, payload=b"", fin=True):
            with wlock:
                self.wfile.write(ws_encode(opcode, payload, fin))
                self.wfile.flush()

        def send_close(code, reason):
            with wlock:
                if state["close_sent"]:
                    return
                state["close_sent"] = True
                self.wfile.write(ws_encode(WS_CLOSE, ws_close_payload(code, reason)))
                self.wfile.flush()
            self.event("ws_close_sent", code=code)

        if "close_after_ms" in q:
            after = int(q["close_after_ms"][0]) / 1000.0
            code = int(q.get("code", ["1000"])[0])

            def closer():
                time.sleep(after)
                try:
                    send_close(code, "origin closing")
                except OSError:
                    pass

            threading.Thread(target=closer, daemon=True).start()

        def read_exact(n):
            data = self.rfile.read(n)
            if len(data) < n:
                raise EOFError("end of stream")
            return data

        try:
            while True:
                fin, opcode, masked, payload = ws_read_frame(read_exact)
                self.event("ws_frame", opcode=opcode, length=len(payload), fin=fin, masked=masked)
                if not masked:
                    send_close(1002, "client frames must be masked")
                    return
                if opcode == WS_CLOSE:
                    code, reason = ws_parse_close(payload)
                    self.event("ws_close_received", code=code, reason=reason)
                    send_close(code if code is not None else 1000, "")
                    return  # the server closes the TCP connection first (RFC 6455 7.1.1)
                if opcode == WS_PING:
                    send(WS_PONG, payload)
                elif opcode in (WS_TEXT, WS_BINARY, WS_CONT):
                    send(opcode, payload, fin)
        except (EOFError, OSError, ValueError):
            pass
        finally:
            self.event("ws_end")


class ServerMixin:
    """Connection numbers, the event log and /bytes progress, shared by the TCP and unix servers."""

    def init_origin(self, name, log, events, tls_ctx):
        self.origin_name = name
        self.log_lock = threading.Lock()
        self.log_file = open(log, "a", encoding="utf-8")
        self.events_file = open(events, "a", encoding="utf-8") if events else None
        self.progress = {}
        self.conn_counter = 0
        self.tls_ctx = tls_ctx

    def next_conn_id(self):
        with self.log_lock:
            self.conn_counter += 1
            return self.conn_counter

    def write_event(self, rec):
        if self.events_file is None:
            return
        with self.log_lock:
            self.events_file.write(json.dumps(rec) + "\n")
            self.events_file.flush()

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_ctx is not None:
            # The handshake runs in the connection's thread (Handler.setup), not in the accept loop.
            sock = self.tls_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class Server(ServerMixin, http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class UnixServer(ServerMixin, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


def make_tls_ctx(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def on_sni(sslsock, server_name, _ctx):
        sslsock.culvert_sni = server_name

    ctx.sni_callback = on_sni
    return ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="origin")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--events")
    ap.add_argument("--unix")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args()

    tls_ctx = make_tls_ctx(a.tls_cert, a.tls_key) if a.tls_cert else None
    if a.unix:
        if os.path.exists(a.unix):
            os.unlink(a.unix)
        srv = UnixServer(a.unix, Handler)
    else:
        srv = Server((a.host, a.port), Handler)
    srv.init_origin(a.name, a.log, a.events, tls_ctx)

    def on_term(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    tmp = a.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("unix:%s\n" % a.unix if a.unix else "%d\n" % srv.server_address[1])
    os.rename(tmp, a.ready_file)
    if a.unix:
        print("origin %s listening on unix:%s%s" % (a.name, a.unix, " (TLS)" if tls_ctx else ""), flush=True)
    else:
        print("origin %s listening on %s:%d%s" % (a.name, a.host, srv.server_address[1],
                                                  " (TLS)" if tls_ctx else ""), flush=True)
    srv.serve_forever(poll_interval=0.1)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
