"""A scripted, possibly hostile, connector for integration tests (RELIABILITY.md T-09, T-15, T-35).

It speaks the mux of proto/PROTOCOL.md with a valid tunnel token: preface, REGISTER, then whatever a
test writes. A reader thread answers PINGs (so the edge keeps the connection) and queues every
other frame for the test. Standard library only, like the rest of the suite."""

import os
import queue
import socket
import ssl
import struct
import threading
import uuid

import lib

DATA, HEADERS, CONTINUATION, RESET, WINDOW_UPDATE = 0x0, 0x1, 0x2, 0x3, 0x4
PING, PONG, GOAWAY, REGISTER, REGISTERED, DISPATCHED = 0x5, 0x6, 0x7, 0x8, 0x9, 0xA
END_STREAM, END_HEADERS = 0x1, 0x4
RESPONSE, TRAILERS = 0x10, 0x11


def frame(ftype, payload=b"", flags=0, stream=0):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, stream) + payload


def block(btype, fields):
    """A metadata block (PROTOCOL.md §8.1) from (name, value) pairs of bytes or str."""
    out = struct.pack(">BH", btype, len(fields))
    for name, value in fields:
        name = name.encode() if isinstance(name, str) else name
        value = value.encode() if isinstance(value, str) else value
        out += struct.pack(">HH", len(name), len(value)) + name + value
    return out


def response(stream, status, fields=(), end=False):
    """One HEADERS frame with a RESPONSE block."""
    flags = END_HEADERS | (END_STREAM if end else 0)
    return frame(HEADERS, block(RESPONSE, [(":status", str(status))] + list(fields)), flags, stream)


def decode_block(p):
    btype, count = struct.unpack(">BH", p[:3])
    off, fields = 3, []
    for _ in range(count):
        nl, vl = struct.unpack(">HH", p[off:off + 4])
        off += 4
        fields.append((p[off:off + nl].decode("latin-1"), p[off + nl:off + nl + vl].decode("latin-1")))
        off += nl + vl
    return btype, fields


class FakeConnector:
    def __init__(self, ctx, edge, token, settings=(262144, 16777216, 16384, 256, 65536)):
        doc = lib.decode_token(token)
        sec = doc["secret"]
        try:
            secret = lib.b64url_decode(sec)
        except ValueError:
            import base64
            secret = base64.b64decode(sec + "=" * (-len(sec) % 4))
        tls = ssl.create_default_context(cafile=os.path.join(ctx.pki, "ca.pem"))
        tls.check_hostname = False
        tls.set_alpn_protocols(["culvert/1"])
        raw = socket.create_connection(("127.0.0.1", edge.tunnel_port), timeout=10 * ctx.slow)
        self.sock = tls.wrap_socket(raw, server_hostname="localhost")
        self.frames = queue.Queue()
        self.closed = threading.Event()
        self.wlock = threading.Lock()
        version, region = b"fake-peer", b""
        reg = (struct.pack(">HH", 1, 1) + uuid.UUID(doc["id"]).bytes + secret + uuid.uuid4().bytes
               + struct.pack(">BBH", 0, 0, 0) + struct.pack(">IIIII", *settings)
               + bytes([len(version)]) + version + bytes([len(region)]) + region)
        self.send(b"CVTUNNEL" + frame(REGISTER, reg))
        t, _, _, p = self._read_frame()
        lib.expect(t == REGISTERED, "fake connector: REGISTERED expected, got type %d %r" % (t, p))
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self._run, daemon=True)
        self.reader.start()

    def _recv_exact(self, n):
        out = b""
        while len(out) < n:
            d = self.sock.recv(n - len(out))
            if not d:
                raise EOFError
            out += d
        return out

    def _read_frame(self):
        h = self._recv_exact(9)
        n = (h[0] << 16) | (h[1] << 8) | h[2]
        sid = struct.unpack(">I", h[5:9])[0] & 0x7FFFFFFF
        return h[3], h[4], sid, self._recv_exact(n) if n else b""

    def _run(self):
        try:
            while True:
                t, fl, sid, p = self._read_frame()
                if t == PING:
                    self.send(frame(PONG, p))
                    continue
                self.frames.put((t, fl, sid, p))
        except (EOFError, OSError, ssl.SSLError):
            pass
        finally:
            self.closed.set()

    def send(self, data):
        with self.wlock:
            self.sock.sendall(data)

    def next_frame(self, types, timeout):
        """The next queued frame whose type is in |types| (others are dropped), or None."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                f = self.frames.get(timeout=left)
            except queue.Empty:
                return None
            if f[0] in types:
                return f

    def next_request(self, timeout=10):
        """(stream id, fields) of the next request the edge opens."""
        f = self.next_frame((HEADERS,), timeout)
        lib.expect(f is not None, "fake connector: no request within %ss" % timeout)
        return f[2], decode_block(f[3])[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class FakeEdge:
    """A scripted edge on |port| (a real edge's tunnel port, after that edge stopped, so that its
    tokens point here) with the test PKI's tunnel certificate. accept() takes one connector
    connection, checks its REGISTER and answers REGISTERED; then the test writes frames."""

    def __init__(self, ctx, port):
        self.ctx = ctx
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_3
        chain = ctx.path("fake-edge-chain.pem")  # the connector pins the CA: it must be sent
        with open(chain, "wb") as out:
            for name in ("tunnel.pem", "ca.pem"):
                with open(os.path.join(ctx.pki, name), "rb") as f:
                    out.write(f.read())
        tls.load_cert_chain(chain, os.path.join(ctx.pki, "tunnel.key"))
        tls.set_alpn_protocols(["culvert/1"])
        self.tls = tls
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(8)
        self.lsock.settimeout(10 * ctx.slow)
        self.sock = None
        self.frames = queue.Queue()
        self.closed = threading.Event()
        self.wlock = threading.Lock()

    def accept(self):
        raw, _ = self.lsock.accept()
        raw.settimeout(10 * self.ctx.slow)
        self.sock = self.tls.wrap_socket(raw, server_side=True)
        pre = FakeConnector._recv_exact(self, 8)
        lib.expect(pre == b"CVTUNNEL", "fake edge: preface %r" % pre)
        t, _, _, p = FakeConnector._read_frame(self)
        lib.expect(t == REGISTER, "fake edge: REGISTER expected, got type %d" % t)
        region, name = b"fake", b"fake-edge"
        regd = (struct.pack(">HHQ", 1, 0, 1) + struct.pack(">IIIII", 262144, 16777216, 16384, 256, 65536)
                + struct.pack(">I", 5000) + bytes([len(region)]) + region + bytes([len(name)]) + name)
        self.send(frame(REGISTERED, regd))
        self.sock.settimeout(None)
        threading.Thread(target=self._run, daemon=True).start()

    _recv_exact = FakeConnector._recv_exact
    _read_frame = FakeConnector._read_frame
    _run = FakeConnector._run
    send = FakeConnector.send
    next_frame = FakeConnector.next_frame

    def close(self):
        for s in (self.sock, self.lsock):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass
