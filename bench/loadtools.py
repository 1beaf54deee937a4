#!/usr/bin/env python3
"""loadtools.py - load generators for the culvert-only benchmarks (bench/bench.py drives them).

  ws-origin   a WebSocket origin: answers every upgrade with 101 (RFC 6455 accept key), then
              echoes small frames; holds any number of idle connections.
  ws-clients  opens N WebSockets through the edge (HTTPS, SNI, Upgrade), source addresses spread
              over 127.0.0.0/8, reports when all are up, then obeys commands on stdin:
              "echo" (one small frame on every socket, count the echoes) and "quit".
  tunnels     creates T tunnels through the edge's admin API, then registers C connections per
              tunnel speaking the tunnel protocol itself (proto/PROTOCOL.md §2-4: TLS 1.3, ALPN
              culvert/1, preface, REGISTER, REGISTERED; PINGs answered with PONGs), reports
              timings, then holds them until "quit" on stdin. Each tunnel connects from a source
              address of its own (one connector host per tunnel).

Every tool prints one JSON object per line on stdout ({"event": ...}); diagnostics go to stderr.
Python 3 standard library only; one asyncio loop per tool.
"""

import argparse
import asyncio
import base64
import hashlib
import http.client
import json
import os
import resource
import ssl
import struct
import sys
import time
import uuid

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def emit(event, **kw):
    kw["event"] = event
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def warn(msg):
    sys.stderr.write("loadtools: %s\n" % msg)
    sys.stderr.flush()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    i = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[i]


def source_address(i):
    """The i-th client source address in 127.0.0.0/8 (never 127.0.0.0 or .255 host parts)."""
    return "127.%d.%d.%d" % (10 + (i // (250 * 250)) % 200, (i // 250) % 250, 1 + i % 250)


async def read_stdin_lines():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


# ---- WebSocket origin ------------------------------------------------------------------------

def ws_accept_key(key):
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


async def ws_origin_conn(reader, writer, stats):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    key = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    if key is None:
        body = b"not a websocket request\n"
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (len(body), body))
        writer.close()
        return
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + ws_accept_key(key) + b"\r\n\r\n")
    stats["open"] += 1
    stats["total"] += 1
    try:
        while True:
            hdr = await reader.readexactly(2)
            n = hdr[1] & 0x7F
            if n >= 126:  # the bench clients send small frames only
                break
            mask = await reader.readexactly(4) if hdr[1] & 0x80 else b"\0\0\0\0"
            payload = bytearray(await reader.readexactly(n))
            for i in range(n):
                payload[i] ^= mask[i % 4]
            op = hdr[0] & 0x0F
            if op == 0x8:
                writer.write(b"\x88\x00")
                break
            writer.write(bytes([0x80 | op, n]) + bytes(payload))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        stats["open"] -= 1
        writer.close()


async def ws_origin_main(args):
    raise_nofile()
    host, port = args.listen.rsplit(":", 1)
    stats = {"open": 0, "total": 0}
    server = await asyncio.start_server(lambda r, w: ws_origin_conn(r, w, stats), host, int(port),
                                        backlog=4096)
    emit("listening", address=args.listen)
    async with server:
        while True:
            await asyncio.sleep(5)
            warn("ws-origin: %d open, %d total" % (stats["open"], stats["total"]))


# ---- WebSocket clients ------------------------------------------------------------------------

async def ws_client_open(i, args, ctx, sem, conns, errors, times):
    async with sem:
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                args.connect_host, args.port, ssl=ctx, server_hostname=args.host,
                local_addr=(source_address(i), 0), limit=4096), args.timeout)
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            k = "connect: %s %s" % (type(e).__name__, str(e)[:60])
            errors[k] = errors.get(k, 0) + 1
            return
        key = base64.b64encode(os.urandom(16))
        writer.write(b"GET /ws/%d HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                     % (i, args.host.encode(), args.port, key))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), args.timeout)
        except Exception as e:  # noqa: BLE001
            k = "handshake: " + type(e).__name__
            errors[k] = errors.get(k, 0) + 1
            writer.close()
            return
        status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.1 ") else b"?"
        if status != b"101" or ws_accept_key(key) not in head:
            k = "status " + status.decode("latin-1")
            errors[k] = errors.get(k, 0) + 1
            if len(errors) < 20 and errors[k] == 1:
                warn("ws client %d: %r" % (i, head[:300]))
            writer.close()
            return
        times.append(time.monotonic() - t0)
        conns.append((reader, writer))


async def ws_echo(reader, writer, timeout):
    payload = b"ping"
    mask = os.urandom(4)
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in
                                                                      enumerate(payload)))
    try:
        hdr = await asyncio.wait_for(reader.readexactly(2), timeout)
        data = await asyncio.wait_for(reader.readexactly(hdr[1] & 0x7F), timeout)
        return data == payload
    except Exception:  # noqa: BLE001
        return False


async def ws_clients_main(args):
    nofile = raise_nofile()
    if nofile < args.n + 100:
        warn("RLIMIT_NOFILE %d is below %d: expect failures" % (nofile, args.n + 100))
    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    sem = asyncio.Semaphore(args.concurrency)
    conns, errors, times = [], {}, []
    t0 = time.monotonic()
    await asyncio.gather(*(ws_client_open(i, args, ctx, sem, conns, errors, times)
                           for i in range(args.n)))
    emit("established", requested=args.n, ok=len(conns), errors=errors,
         seconds=round(time.monotonic() - t0, 3), p50_ms=round((pct(times, 50) or 0) * 1000, 2),
         p99_ms=round((pct(times, 99) or 0) * 1000, 2))
    cmds = await read_stdin_lines()
    while True:
        line = (await cmds.readline()).decode().strip()
        if line == "echo":
            t1 = time.monotonic()
            sem2 = asyncio.Semaphore(args.concurrency)

            async def one(r, w):
                async with sem2:
                    return await ws_echo(r, w, args.timeout)
            res = await asyncio.gather(*(one(r, w) for r, w in conns))
            emit("echo", ok=sum(1 for x in res if x), sockets=len(conns),
                 seconds=round(time.monotonic() - t1, 3))
        elif line in ("quit", ""):
            break
    for _, w in conns:
        w.close()
    emit("closed", sockets=len(conns))


# ---- tunnels --------------------------------------------------------------------------------

FRAME_REGISTER, FRAME_REGISTERED, FRAME_PING, FRAME_PONG, FRAME_GOAWAY = 0x8, 0x9, 0x5, 0x6, 0x7
PREFACE = b"CVTUNNEL"


def frame(ftype, payload, flags=0, stream=0):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, stream) + payload


def register_payload(tunnel_id, secret, connector_id, index):
    version, region = b"culvert-bench", b"bench"
    settings = struct.pack(">IIIII", 262144, 16777216, 16384, 256, 65536)  # PROTOCOL.md §4.4
    return (struct.pack(">HH", 1, 1) + tunnel_id + secret + connector_id
            + struct.pack(">BBH", index, 0, 0) + settings
            + bytes([len(version)]) + version + bytes([len(region)]) + region)


def decode_token(text):
    pad = "=" * (-len(text) % 4)
    doc = json.loads(base64.urlsafe_b64decode(text + pad))
    secret = doc["secret"]
    spad = "=" * (-len(secret) % 4)
    try:
        raw = base64.b64decode(secret + spad, validate=True)
    except ValueError:
        raw = base64.urlsafe_b64decode(secret + spad)
    return uuid.UUID(doc["id"]).bytes, raw


class TunnelConn:
    def __init__(self):
        self.writer = None
        self.registered = asyncio.get_running_loop().create_future()
        self.pings = 0
        self.error = None


async def tunnel_conn_run(tc, reader, writer):
    try:
        while True:
            hdr = await reader.readexactly(9)
            n = (hdr[0] << 16) | (hdr[1] << 8) | hdr[2]
            ftype = hdr[3]
            payload = await reader.readexactly(n) if n else b""
            if ftype == FRAME_REGISTERED and not tc.registered.done():
                tc.registered.set_result(True)
            elif ftype == FRAME_PING:
                tc.pings += 1
                writer.write(frame(FRAME_PONG, payload))
            elif ftype == FRAME_GOAWAY:
                code = struct.unpack(">I", payload[4:8])[0] if len(payload) >= 8 else -1
                tc.error = "GOAWAY code 0x%x %s" % (code, payload[12:].decode("utf-8", "replace"))
                break
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as e:
        tc.error = tc.error or ("closed: " + type(e).__name__)
    finally:
        if not tc.registered.done():
            tc.registered.set_result(False)
        writer.close()


async def tunnel_open(args, ctx, sem, tid, secret, cid, index, src, conns, errors, times, tasks):
    async with sem:
        t0 = time.monotonic()
        tc = TunnelConn()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                args.connect_host, args.port, ssl=ctx, server_hostname=args.servername,
                local_addr=(src, 0), limit=65536), args.timeout)
        except Exception as e:  # noqa: BLE001
            k = "connect: " + type(e).__name__
            errors[k] = errors.get(k, 0) + 1
            return
        tc.writer = writer
        writer.write(PREFACE + frame(FRAME_REGISTER, register_payload(tid, secret, cid, index)))
        tasks.append(asyncio.ensure_future(tunnel_conn_run(tc, reader, writer)))
        try:
            ok = await asyncio.wait_for(asyncio.shield(tc.registered), args.timeout)
        except asyncio.TimeoutError:
            ok = False
            tc.error = tc.error or "no REGISTERED within %ss" % args.timeout
        if not ok:
            k = tc.error or "closed"
            errors[k] = errors.get(k, 0) + 1
            writer.close()
            return
        times.append(time.monotonic() - t0)
        conns.append(tc)


def admin_create_tunnels(args):
    token = open(args.admin_token_file).read().strip()
    host, port = args.admin.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    creds = []
    t0 = time.monotonic()
    for i in range(args.tunnels):
        body = json.dumps({"name": "%s-%d" % (args.prefix, i)})
        conn.request("POST", "/v1/tunnels", body=body, headers={
            "Authorization": "Bearer " + token, "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 201:
            raise RuntimeError("POST /v1/tunnels: %d %s" % (r.status, data[:200]))
        creds.append(decode_token(json.loads(data)["token"]))
    conn.close()
    return creds, time.monotonic() - t0


def admin_status(args):
    token = open(args.admin_token_file).read().strip()
    host, port = args.admin.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/v1/status", headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return json.loads(data) if r.status == 200 else {"status": r.status}


async def tunnels_main(args):
    raise_nofile()
    creds, secs = await asyncio.get_running_loop().run_in_executor(None, admin_create_tunnels, args)
    emit("created", tunnels=len(creds), seconds=round(secs, 3))
    cmds = await read_stdin_lines()
    line = (await cmds.readline()).decode().strip()
    if line != "connect":
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=args.cafile)
    ctx.set_alpn_protocols(["culvert/1"])
    sem = asyncio.Semaphore(args.concurrency)
    conns, errors, times, tasks = [], {}, [], []
    jobs = []
    for k, (tid, secret) in enumerate(creds):
        cid = uuid.uuid4().bytes
        src = source_address(k)  # one connector host per tunnel (the edge caps pending per address)
        for index in range(args.conns):
            jobs.append(tunnel_open(args, ctx, sem, tid, secret, cid, index, src, conns, errors, times,
                                    tasks))
    t0 = time.monotonic()
    await asyncio.gather(*jobs)
    secs = time.monotonic() - t0
    status = await asyncio.get_running_loop().run_in_executor(None, admin_status, args)
    emit("registered", requested=len(jobs), ok=len(conns), errors=errors, seconds=round(secs, 3),
         p50_ms=round((pct(times, 50) or 0) * 1000, 2), p99_ms=round((pct(times, 99) or 0) * 1000, 2),
         edge_status=status)
    while True:
        line = (await cmds.readline()).decode().strip()
        if line == "check":
            alive = sum(1 for c in conns if c.error is None)
            emit("check", alive=alive, pings=sum(c.pings for c in conns),
                 errors=sorted({c.error for c in conns if c.error})[:5])
        elif line in ("quit", ""):
            break
    for c in conns:
        c.writer.close()
    for t in tasks:
        t.cancel()
    emit("closed", connections=len(conns))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ws-origin")
    p.add_argument("--listen", required=True)
    p = sub.add_parser("ws-clients")
    p.add_argument("--connect-host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", required=True, help="SNI and Host")
    p.add_argument("--cafile", required=True)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("tunnels")
    p.add_argument("--admin", required=True)
    p.add_argument("--admin-token-file", required=True)
    p.add_argument("--connect-host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--servername", default="127.0.0.1")
    p.add_argument("--cafile", required=True)
    p.add_argument("--tunnels", type=int, default=1000)
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--prefix", default="bench")
    args = ap.parse_args()
    fn = {"ws-origin": ws_origin_main, "ws-clients": ws_clients_main, "tunnels": tunnels_main}
    try:
        asyncio.run(fn[args.cmd](args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
