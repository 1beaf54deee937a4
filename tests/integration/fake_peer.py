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
        name, value = p[off:off + nl], p[off + nl:off + nl + vl]
        fields.append((name.decode("latin-1"), value.decode("latin-1")))
        off += nl + vl
    return btype, fields


class _Peer:
    """One TLS connection driven by one I/O thread: OpenSSL objects are not safe to read and write
    from two threads at once, so test writes are queued and the thread sends them, answering PINGs
    in between."""

    def _setup_io(self):
        self.frames = queue.Queue()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.flushed = threading.Condition(self.lock)
        self.out = bytearray()
        self.inbuf = bytearray()

    def _recv_exact(self, n):
        """Blocking read, only before the I/O thread starts (the handshake)."""
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

    def _start_io(self):
        self.sock.setblocking(False)
        threading.Thread(target=self._run, daemon=True).start()

    def _parse(self):
        while len(self.inbuf) >= 9:
            h = self.inbuf
            n = (h[0] << 16) | (h[1] << 8) | h[2]
            if len(h) < 9 + n:
                return
            t, fl = h[3], h[4]
            sid = struct.unpack(">I", bytes(h[5:9]))[0] & 0x7FFFFFFF
            p = bytes(h[9:9 + n])
            del self.inbuf[:9 + n]
            if t == PING:
                with self.lock:
                    self.out += frame(PONG, p)
            else:
                self.frames.put((t, fl, sid, p))

    def _run(self):
        import select
        try:
            while True:
                with self.lock:
                    want_w = len(self.out) > 0
                r, w, _ = select.select([self.sock], [self.sock] if want_w else [], [], 0.05)
                if r or self.sock.pending():
                    try:
                        while True:
                            d = self.sock.recv(65536)
                            if not d:
                                raise EOFError
                            self.inbuf += d
                            if not self.sock.pending():
                                break
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        pass
                    self._parse()
                if w:
                    with self.lock:
                        chunk = bytes(self.out[:65536])
                    try:
                        k = self.sock.send(chunk)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        k = 0
                    with self.lock:
                        del self.out[:k]
                        if not self.out:
                            self.flushed.notify_all()
        except (EOFError, OSError, ValueError, ssl.SSLError):
            pass  # ValueError: close() closed the socket under select()
        finally:
            with self.lock:
                self.closed.set()
                self.flushed.notify_all()

    def send(self, data):
        """Queues |data| and waits until the I/O thread wrote it; OSError if the peer closed."""
        with self.lock:
            if self.closed.is_set():
                raise OSError("fake peer: connection closed")
            self.out += data
            while self.out and not self.closed.is_set():
                self.flushed.wait(1)
            if self.out:
                raise OSError("fake peer: connection closed with %d bytes unsent" % len(self.out))

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

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class FakeConnector(_Peer):
    def __init__(self, ctx, edge, token, settings=(262144, 16777216, 16384, 256, 65536), src="127.0.0.1",
                 version=b"fake-peer", region=b"", connector_id=None, index=0):
        doc = lib.decode_token(token)
        secret = lib.b64url_decode(doc["secret"])  # also takes the standard alphabet
        tls = ssl.create_default_context(cafile=os.path.join(ctx.pki, "ca.pem"))
        tls.check_hostname = False
        tls.set_alpn_protocols(["culvert/1"])
        raw = socket.create_connection(("127.0.0.1", edge.tunnel_port), timeout=10 * ctx.slow,
                                       source_address=(src, 0))
        self.sock = tls.wrap_socket(raw, server_hostname="localhost")
        self._setup_io()
        cid = uuid.UUID(connector_id) if connector_id else uuid.uuid4()
        reg = (struct.pack(">HH", 1, 1) + uuid.UUID(doc["id"]).bytes + secret + cid.bytes
               + struct.pack(">BBH", index, 0, 0) + struct.pack(">IIIII", *settings)
               + bytes([len(version)]) + version + bytes([len(region)]) + region)
        self.sock.sendall(b"CVTUNNEL" + frame(REGISTER, reg))
        t, _, _, p = self._read_frame()
        lib.expect(t == REGISTERED, "fake connector: REGISTERED expected, got type %d %r" % (t, p))
        self._start_io()

    def next_request(self, timeout=10):
        """(stream id, fields) of the next request the edge opens."""
        f = self.next_frame((HEADERS,), timeout)
        lib.expect(f is not None, "fake connector: no request within %ss" % timeout)
        return f[2], decode_block(f[3])[1]


class FakeEdge(_Peer):
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
        self._setup_io()

    def accept(self):
        raw, _ = self.lsock.accept()
        raw.settimeout(10 * self.ctx.slow)
        self.sock = self.tls.wrap_socket(raw, server_side=True)
        pre = self._recv_exact(8)
        lib.expect(pre == b"CVTUNNEL", "fake edge: preface %r" % pre)
        t, _, _, p = self._read_frame()
        lib.expect(t == REGISTER, "fake edge: REGISTER expected, got type %d" % t)
        region, name = b"fake", b"fake-edge"
        settings = struct.pack(">IIIII", 262144, 16777216, 16384, 256, 65536)  # §4.4 defaults
        regd = (struct.pack(">HHQ", 1, 0, 1) + settings + struct.pack(">I", 5000)
                + bytes([len(region)]) + region + bytes([len(name)]) + name)
        self.sock.sendall(frame(REGISTERED, regd))
        self._start_io()

    def close(self):
        _Peer.close(self)
        self.lsock.close()
