#!/usr/bin/python3
"""A test origin for the integration suite: threaded HTTP/1.1 with keep-alive.

Run as its own process by lib.Origin (never imported into a test's process to serve):

    origin.py --name NAME --ready-file F --log F [--port 0] [--host 127.0.0.1]

It binds, writes its port into --ready-file (atomically), and serves until SIGTERM.
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
  /slow?ms=N       sleeps N ms (at most 60 s), then answers "slow N"
  anything else    like /echo
A request with `Upgrade: websocket` and a valid key gets 101 with Sec-WebSocket-Accept, then every
byte received is echoed back raw until the client closes (enough for byte-level tests).

Request log: one JSON object per line per request, written before the answer:
  {"method", "path", "request_id" (Culvert-Request-Id or null), "name"}
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


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "culvert-test-origin"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet: the request log is the record
        pass

    # ---- request body ------------------------------------------------------------------------

    def read_body(self, sink):
        """Reads the request body (CL or chunked) into sink(bytes). Returns the length."""
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
        if (self.headers.get("Upgrade", "").lower() == "websocket"
                and self.headers.get("Sec-WebSocket-Key")):
            return self.websocket()
        if path == "/upload":
            h = hashlib.sha256()
            n = self.read_body(h.update)
            return self.answer_json({"length": n, "sha256": h.hexdigest()})
        if path == "/bytes":
            h = hashlib.sha256()
            self.read_body(h.update)
            n = int(q.get("n", ["0"])[0])
            seed = int(q.get("seed", ["1"])[0])
            chunked = q.get("chunked", ["0"])[0] == "1"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return
            for chunk in gen_bytes(n, seed):
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return
        if path.startswith("/status/"):
            self.read_body(lambda d: None)
            code = int(path[len("/status/"):])
            return self.answer(code, b"status %d\n" % code, "text/plain")
        if path == "/name":
            self.read_body(lambda d: None)
            return self.answer(200, self.server.origin_name.encode(), "text/plain")
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

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"].strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
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


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="origin")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()

    srv = Server((a.host, a.port), Handler)
    srv.origin_name = a.name
    srv.log_lock = threading.Lock()
    srv.log_file = open(a.log, "a", encoding="utf-8")

    def on_term(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    tmp = a.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.ready_file)
    print("origin %s listening on %s:%d" % (a.name, a.host, srv.server_address[1]), flush=True)
    srv.serve_forever(poll_interval=0.1)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
