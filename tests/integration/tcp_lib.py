#!/usr/bin/python3
"""TCP services for the integration tests (issue 5): a raw TCP origin, PROXY protocol v2 parsing,
the `access tcp` client as a process, and byte-exact TCP clients.

As a program (started by TcpOrigin in its own process, never served from a test's process):

    tcp_lib.py --ready-file F --events F

listens on two free ports of 127.0.0.1 and writes {"echo": PORT, "answer": PORT} into --ready-file
(atomically):
  echo     every byte received is sent back at once; at the client's EOF (its shutdown(SHUT_WR)
           arriving as a FIN) the origin sends what is left, shuts its own direction down and
           closes.
  answer   reads until the client's EOF, then sends its answer and closes: one line
           "n=<bytes received> sha256=<hex of them>\\n" followed by the received bytes once more.
  greet    sends "greet <conn>\\n" and ends its direction (FIN) at once, then reads until the
           client's EOF (the server half-closes first; never with a PROXY header).
On both ports a connection may start with a PROXY protocol v2 header (haproxy's proxy-protocol.txt
section 2.2): it is recognised by its 12-byte signature, parsed, recorded and stripped (echoed
bytes never include it). A connection whose first byte differs from the signature has no header.

Event log (--events): one JSON object per line, {"event", "t", "conn", "port" ("echo"|"answer"),
"peer" [ip, port], ...}:
  open    after the PROXY check and the first data bytes: "proxy" (None, or parse_proxy_v2's
          dict), "head" (the first up to 64 data bytes after any header, latin-1 text)
  eof     the client's FIN arrived: "n" (data bytes received), "sha256"
  close   the connection ended: "n", "how" ("eof" | "reset" | "error: ..."), "sent"
"""

import argparse
import hashlib
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time

PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


# ---- PROXY protocol v2 -----------------------------------------------------------------------


def parse_proxy_v2(data):
    """Parses a whole PROXY v2 header |data| (signature included). Returns a dict: "version" (4 bits),
    "command" ("PROXY" | "LOCAL" | other number), "family" ("TCP4" | "TCP6" | "UNSPEC" | number),
    "src" and "dst" ([ip, port] or None), "length" (the header's address block length), "tlvs"
    ([type, length] ...); or {"error": why} for a malformed one."""
    if len(data) < 16 or data[:12] != PROXY_V2_SIG:
        return {"error": "no signature or shorter than 16 bytes: %r" % data[:16]}
    ver_cmd, fam, length = struct.unpack("!BBH", data[12:16])
    if len(data) != 16 + length:
        return {"error": "length field %d, header has %d bytes after the fixed part" %
                (length, len(data) - 16)}
    out = {"version": ver_cmd >> 4, "command": {0: "LOCAL", 1: "PROXY"}.get(ver_cmd & 0xF, ver_cmd & 0xF),
           "family": {0x00: "UNSPEC", 0x11: "TCP4", 0x21: "TCP6"}.get(fam, fam), "src": None,
           "dst": None, "length": length, "tlvs": []}
    body = data[16:]
    if fam == 0x11:
        if length < 12:
            return {"error": "TCP4 header with an address block of %d bytes" % length}
        s, d, sp, dp = struct.unpack("!4s4sHH", body[:12])
        out["src"] = [socket.inet_ntop(socket.AF_INET, s), sp]
        out["dst"] = [socket.inet_ntop(socket.AF_INET, d), dp]
        rest = body[12:]
    elif fam == 0x21:
        if length < 36:
            return {"error": "TCP6 header with an address block of %d bytes" % length}
        s, d, sp, dp = struct.unpack("!16s16sHH", body[:36])
        out["src"] = [socket.inet_ntop(socket.AF_INET6, s), sp]
        out["dst"] = [socket.inet_ntop(socket.AF_INET6, d), dp]
        rest = body[36:]
    else:
        rest = body if fam != 0 else b""
    while rest:
        if len(rest) < 3:
            return {"error": "truncated TLV %r" % rest}
        t, n = struct.unpack("!BH", rest[:3])
        if len(rest) < 3 + n:
            return {"error": "TLV type %d of %d bytes overruns the header" % (t, n)}
        out["tlvs"].append([t, n])
        rest = rest[3 + n:]
    return out


def unmap_v4(ip):
    """'::ffff:1.2.3.4' -> '1.2.3.4' (an IPv4-mapped address), else |ip|."""
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


# ---- the origin (server side) ------------------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        sock = self.request
        conn = srv.next_conn()
        peer = list(self.client_address[:2])
        state = {"n": 0, "sent": 0, "how": "eof"}

        def event(name, **kw):
            rec = {"event": name, "t": time.time(), "conn": conn, "port": srv.kind, "peer": peer}
            rec.update(kw)
            srv.write_event(rec)

        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if srv.kind == "greet":
                line = b"greet %d\n" % conn
                sock.sendall(line)
                state["sent"] += len(line)
                sock.shutdown(socket.SHUT_WR)
            buf = b""
            # A PROXY v2 header first? Read while what came so far could still be its signature.
            while len(buf) < 16 and PROXY_V2_SIG.startswith(buf[:12]):
                d = sock.recv(65536)
                if not d:
                    break
                buf += d
            proxy = None
            if buf[:12] == PROXY_V2_SIG and len(buf) >= 16:
                need = 16 + struct.unpack("!H", buf[14:16])[0]
                while len(buf) < need:
                    d = sock.recv(65536)
                    if not d:
                        break
                    buf += d
                proxy = parse_proxy_v2(buf[:need])
                buf = buf[need:]
            elif buf[:12] == PROXY_V2_SIG or (buf and PROXY_V2_SIG.startswith(buf)):
                proxy = {"error": "connection ended inside a PROXY header: %r" % buf}
                buf = b""
            if proxy is not None and not buf:
                buf = sock.recv(65536)  # the header came alone: "head" is the data after it
            event("open", proxy=proxy, head=buf[:64].decode("latin-1"))
            h = hashlib.sha256()
            kept = []
            while True:
                if buf:
                    state["n"] += len(buf)
                    h.update(buf)
                    if srv.kind == "echo":
                        sock.sendall(buf)
                        state["sent"] += len(buf)
                    else:
                        kept.append(buf)
                buf = sock.recv(262144)
                if not buf:
                    break
            event("eof", n=state["n"], sha256=h.hexdigest())
            if srv.kind == "hold":
                # Half-closed on purpose: never answer, never end. A read after EOF says nothing
                # more, so the kernel's TCP state tells when the proxy gives up: CLOSE_WAIT (8)
                # until its reset moves the socket to CLOSE (7).
                deadline = time.time() + 60
                st = 8
                while time.time() < deadline:
                    st = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
                    if st != 8:
                        break
                    time.sleep(0.05)
                state["how"] = "still open after 60 s" if st == 8 else "reset by peer (tcp state %d)" % st
                return
            if srv.kind == "answer":
                line = ("n=%d sha256=%s\n" % (state["n"], h.hexdigest())).encode()
                sock.sendall(line)
                state["sent"] += len(line)
                for k in kept:
                    sock.sendall(k)
                    state["sent"] += len(k)
            if srv.kind != "greet":
                sock.shutdown(socket.SHUT_WR)
            # Wait briefly for the peer's close so our close is not a reset of unread bytes.
            sock.settimeout(5)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
        except ConnectionResetError:
            state["how"] = "reset"
        except OSError as e:
            state["how"] = "error: %s" % e
        finally:
            event("close", n=state["n"], how=state["how"], sent=state["sent"])


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, kind, events):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.kind = kind
        self.events = events

    def next_conn(self):
        return self.events.next_conn()

    def write_event(self, rec):
        self.events.write(rec)


class _Events:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", encoding="utf-8")
        self.count = 0

    def next_conn(self):
        with self.lock:
            self.count += 1
            return self.count

    def write(self, rec):
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--events", required=True)
    a = ap.parse_args()
    import signal

    ev = _Events(a.events)
    servers = {k: _Server(k, ev) for k in ("echo", "answer", "hold", "greet")}
    for s in servers.values():
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    tmp = a.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({k: s.server_address[1] for k, s in servers.items()}, f)
    os.rename(tmp, a.ready_file)
    print("tcp origin: echo on %d, answer on %d, hold on %d" % (
        servers["echo"].server_address[1], servers["answer"].server_address[1],
        servers["hold"].server_address[1]), flush=True)
    while not done.wait(0.2):
        pass
    # Every event line is already flushed; connection threads may be blocked in a read: no joins.
    os._exit(0)


# ---- the test side -----------------------------------------------------------------------------


class TcpOrigin:
    """tcp_lib.py as a process of |ctx|: .echo_port, .answer_port, .hold_port, .events()."""

    def __init__(self, ctx, name="tcp-origin"):
        import lib

        self.ctx = ctx
        self.name = name
        self.dir = ctx.mkdir(name)
        self.ready_file = os.path.join(self.dir, "ports.json")
        self.event_log = os.path.join(self.dir, "events.jsonl")
        lib.write_file(self.event_log, "")
        self.proc = ctx.spawn(name, [lib.PYTHON, os.path.abspath(__file__), "--ready-file",
                                     self.ready_file, "--events", self.event_log])

        def ready():
            if not self.proc.alive():
                raise AssertionError("%s exited: %s" % (name, lib.tail(self.proc.log)))
            return os.path.exists(self.ready_file)

        ctx.wait_until(ready, 10, "%s to listen" % name)
        with open(self.ready_file) as f:
            ports = json.load(f)
        self.echo_port = ports["echo"]
        self.answer_port = ports["answer"]
        self.hold_port = ports["hold"]  # reads to EOF, then neither answers nor ends (half-closed)
        self.greet_port = ports["greet"]  # sends a line and its FIN at once, then reads to EOF
        self.echo_url = "tcp://127.0.0.1:%d" % self.echo_port
        self.answer_url = "tcp://127.0.0.1:%d" % self.answer_port
        self.hold_url = "tcp://127.0.0.1:%d" % self.hold_port
        self.greet_url = "tcp://127.0.0.1:%d" % self.greet_port

    def events(self, name=None, port=None):
        out = []
        with open(self.event_log) as f:
            for line in f:
                line = line.strip()
                if line:
                    e = json.loads(line)
                    if (name is None or e["event"] == name) and (port is None or e["port"] == port):
                        out.append(e)
        return out

    def event_by_head(self, head):
        """The "open" event of the connection whose data began with |head| (None if none yet)."""
        for e in self.events("open"):
            if e["head"].startswith(head):
                return e
        return None

    def conn_events(self, conn):
        return [e for e in self.events() if e["conn"] == conn]


class Access:
    """`culvert-connector access tcp` for |hostname| through |edge| on a free local port."""

    def __init__(self, ctx, edge, hostname, name="access", headers=(), extra=()):
        import lib

        self.ctx = ctx
        self.port = lib.free_port()
        self.argv = [ctx.connector_bin, "access", "tcp", "--hostname", hostname,
                     "--url", "127.0.0.1:%d" % self.port,
                     "--edge-url", "https://127.0.0.1:%d" % edge.https_port,
                     "--edge-ca", os.path.join(ctx.pki, "ca.pem")]
        for h in headers:
            self.argv += ["--header", h]
        self.argv += list(extra)
        self.proc = ctx.spawn(name, self.argv)

        def listening():
            if not self.proc.alive():
                raise AssertionError("access tcp exited with code %s while starting:\n%s" % (
                    self.proc.returncode, lib.tail(self.proc.log)))
            return "listening on" in self.proc.text()

        ctx.wait_until(listening, 10, "access tcp to listen on 127.0.0.1:%d" % self.port)

    def connect(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout * self.ctx.slow)


class CulvertTcpClient:
    """The edge's `Upgrade: culvert-tcp` spoken directly (what `access tcp` does), over TLS 1.3 with
    memory BIOs so that each direction can end on its own: shutdown_write() sends close_notify and
    reading continues until the edge's close_notify (or the connection's end).

        c = CulvertTcpClient(ctx, edge.https_port, host)   # TLS handshake with SNI |host|
        r = c.upgrade()                                    # lib.Response: 101, or an error page
        c.send(b"..."); c.shutdown_write(); data, how = c.recv_all()
    """

    def __init__(self, ctx, port, host, timeout=10):
        import ssl

        self.ssl = ssl
        self.host = host
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * ctx.slow)
        c = ssl.create_default_context(cafile=os.path.join(ctx.pki, "ca.pem"))
        c.minimum_version = ssl.TLSVersion.TLSv1_3
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = c.wrap_bio(self.inc, self.out, server_hostname=host)
        self.buf = b""
        self.eof = None  # "close_notify" | "eof" | "reset" once the edge's direction ended
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ConnectionError("the edge closed the connection during the TLS handshake")
        self._flush()

    def _flush(self):
        d = self.out.read()
        if d:
            self.sock.sendall(d)

    def _fill(self):
        try:
            d = self.sock.recv(262144)
        except ConnectionResetError:
            self.inc.write_eof()
            self.eof = self.eof or "reset"
            return False
        if not d:
            self.inc.write_eof()
            return False
        self.inc.write(d)
        return True

    def read_some(self):
        """Application bytes (b"" once the edge's direction has ended; see .eof)."""
        ssl = self.ssl
        while True:
            try:
                d = self.obj.read(262144)
                if d:
                    return d
                self.eof = self.eof or "close_notify"
                return b""
            except ssl.SSLZeroReturnError:
                self.eof = self.eof or "close_notify"
                return b""
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    if self.eof is None:
                        self.eof = "eof"
                    # A read after the transport's end either raises (no close_notify) or not.
                    try:
                        d = self.obj.read(262144)
                        if d:
                            return d
                    except (ssl.SSLError, ssl.SSLZeroReturnError):
                        pass
                    return b""
            except ssl.SSLError:
                self.eof = self.eof or "eof"
                return b""

    def upgrade(self, headers=()):
        """Sends the culvert-tcp upgrade request; returns the answer's lib.Response (for a 101,
        bytes read past its head stay in .buf)."""
        import lib

        req = ["GET / HTTP/1.1", "Host: %s" % self.host, "Upgrade: culvert-tcp", "Connection: Upgrade"]
        req += list(headers)
        self.send(("\r\n".join(req) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            d = self.read_some()
            if not d:
                return None
            self.buf += d
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = [(k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in lines[1:])]
        r = lib.Response(status, hdrs, b"", lines[0])
        if status != 101:
            n = int(r.header("Content-Length") or "0")
            while len(self.buf) < n:
                d = self.read_some()
                if not d:
                    break
                self.buf += d
            r.body, self.buf = self.buf[:n], self.buf[n:]
        return r

    def send(self, data):
        mv = memoryview(data)
        for off in range(0, len(data), 16384):
            self.obj.write(mv[off:off + 16384])
            self._flush()

    def shutdown_write(self):
        """close_notify: the end of our direction (the edge may keep sending)."""
        try:
            self.obj.unwrap()
        except (self.ssl.SSLWantReadError, self.ssl.SSLError):
            pass
        self._flush()

    def recv_all(self):
        """Reads until the edge's direction ends: (bytes, how: "close_notify" | "eof" | "reset")."""
        parts = [self.buf]
        self.buf = b""
        try:
            while True:
                d = self.read_some()
                if not d:
                    break
                parts.append(d)
        except socket.timeout:
            return b"".join(parts), "timeout"
        return b"".join(parts), self.eof

    def close(self):
        self.sock.close()


def pattern_bytes(n, seed):
    """|n| deterministic bytes, different for each |seed|; never starts with '\\r' (so never looks
    like a PROXY header to the origin)."""
    out = bytearray()
    h = hashlib.sha256(b"culvert-tcp-%d" % seed).digest()
    block = hashlib.shake_256(h).digest(65536)
    i = 0
    while len(out) < n:
        out += struct.pack("!I", i) + block[4:]
        i += 1
    out[0] = 0x41  # 'A'
    return bytes(out[:n])


def recv_exact(sock, n):
    """Reads exactly |n| bytes; returns fewer only at EOF."""
    parts = []
    got = 0
    while got < n:
        d = sock.recv(min(262144, n - got))
        if not d:
            break
        parts.append(d)
        got += len(d)
    return b"".join(parts)


def recv_all(sock):
    """Reads until EOF. Returns (bytes, how): how is "eof", "reset" or "timeout"."""
    parts = []
    try:
        while True:
            d = sock.recv(262144)
            if not d:
                return b"".join(parts), "eof"
            parts.append(d)
    except ConnectionResetError:
        return b"".join(parts), "reset"
    except socket.timeout:
        return b"".join(parts), "timeout"


def echo_once(sock, data, what="echo"):
    """Sends |data| (from a thread, so neither side's buffers can deadlock) and reads as many bytes
    back. Returns a problem string or None."""
    err = []

    def send():
        try:
            mv = memoryview(data)
            for off in range(0, len(data), 65536):
                sock.sendall(mv[off:off + 65536])
        except OSError as e:
            err.append("send: %s" % e)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        got = recv_exact(sock, len(data))
    except OSError as e:
        got = None
        err.append("recv: %s" % e)
    t.join(30)
    if err:
        return "%s: %s" % (what, "; ".join(err))
    if got != data:
        first = next((i for i in range(min(len(got), len(data))) if got[i] != data[i]), min(len(got), len(data)))
        return "%s: %d of %d bytes came back, first difference at byte %d" % (what, len(got), len(data), first)
    return None


def echo_parallel(connect, count, size, timeout):
    """|count| connections at once from |connect()|, each sending |size| bytes of its own pattern and
    reading them back byte-exact. Returns (problems, seconds)."""
    problems = []
    lock = threading.Lock()

    def one(i):
        data = pattern_bytes(size, i)
        s = None
        try:
            s = connect()
            s.settimeout(timeout)
            p = echo_once(s, data, "connection %d" % i)
        except OSError as e:
            p = "connection %d: %s" % (i, e)
        finally:
            if s is not None:
                s.close()
        if p:
            with lock:
                problems.append(p)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    alive = sum(1 for t in threads if t.is_alive())
    if alive:
        problems.append("%d connections still running after %.0f s" % (alive, timeout + 10))
    return problems, time.monotonic() - t0


def half_close_exchange(sock, data, timeout):
    """Sends |data|, then shutdown(SHUT_WR), then reads until the peer closes. For the answer
    origin. Returns (answer bytes, how the read ended)."""
    sock.settimeout(timeout)
    err = []

    def send():
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    got, how = recv_all(sock)
    t.join(timeout)
    if err:
        how += " (send failed: %s)" % err[0]
    return got, how


def expected_answer(data):
    return ("n=%d sha256=%s\n" % (len(data), hashlib.sha256(data).hexdigest())).encode() + data


def check_answer(got, how, data, what):
    """Problem string or None for an answer-origin reply."""
    want = expected_answer(data)
    if got == want and how == "eof":
        return None
    line = got.split(b"\n", 1)[0][:120]
    return "%s: expected %d answer bytes then EOF; got %d bytes (first line %r), read ended by %s" % (
        what, len(want), len(got), line, how)


if __name__ == "__main__":
    sys.exit(main())
