#!/usr/bin/python3
"""Slow visitors for the slowloris test (RELIABILITY.md T-04), in a process of their own so that
their work does not share a GIL with the test's load client.

    slowclients.py --port P --sni NAME --cafile CA --headers N --handshakes M --interval S
                   --deadline S --out FILE

Opens N "slow header" connections (TLS handshake done, then a request head sent one byte every
|interval| seconds, never finished) and M "slow handshake" connections (TCP connected, then a TLS
ClientHello sent one byte every |interval|, each connection starting its trickle at a random point
of the first interval), all at once, each from a source address of its own
in 127.20.0.0/16 (the edge's per_ip_connections stays at its default). Each connection records
when it was opened, when its handshake finished (slow header), when the edge closed it and how
(the status of a response, "eof" or "reset"). The TLS handshakes go 8 at a time, so that the
client's own CPU stays low, and the plain connections are opened after them. Once every connection is open, writes the time (CLOCK_MONOTONIC, as
Python's time.monotonic) to FILE.ready. After every connection ended, or |deadline| seconds,
writes a JSON list of the records to FILE.
"""

import argparse
import asyncio
import json
import os
import random
import resource
import ssl
import time


def source(i):
    return "127.20.%d.%d" % (i // 250, i % 250 + 1)


def client_hello(sni):
    """The bytes of a TLS ClientHello for |sni|, from an SSLObject over memory BIOs."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


async def watch(reader, rec):
    """Reads until the edge closes; records the first response's status, or how it ended."""
    buf = b""
    try:
        while True:
            d = await reader.read(4096)
            if not d:
                break
            buf += d
    except (ConnectionResetError, ssl.SSLError, OSError) as e:
        rec["how"] = "reset" if not buf else rec.get("how")
        rec["error"] = type(e).__name__
    rec["closed"] = time.monotonic()
    if buf.startswith(b"HTTP/1.1 "):
        rec["how"] = buf[9:12].decode("ascii", "replace")
    elif "how" not in rec or rec["how"] is None:
        rec["how"] = "eof"


async def trickle(writer, data, interval, done):
    # Each connection at its own phase, as independent visitors would be: not 2,000 bytes in
    # the same millisecond every |interval|.
    try:
        await asyncio.wait_for(done.wait(), random.uniform(0, interval))
        return
    except asyncio.TimeoutError:
        pass
    for i in range(len(data)):
        if done.is_set():
            return
        try:
            writer.write(data[i:i + 1])
            await writer.drain()
        except (ConnectionError, OSError, RuntimeError):
            return
        try:
            await asyncio.wait_for(done.wait(), interval)
        except asyncio.TimeoutError:
            pass


async def hold(reader, writer, data, interval, rec):
    """Trickles |data| while watching for the edge's close; then closes our side."""
    done = asyncio.Event()
    t = asyncio.ensure_future(trickle(writer, data, interval, done))
    await watch(reader, rec)
    done.set()
    await t
    writer.close()


async def slow_header(i, a, tls, rec, gate, opened):
    async with gate:  # a few TLS handshakes at a time: the client's own CPU stays low
        rec.update(kind="header", src=source(i), opened=time.monotonic())
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", a.port, ssl=tls, server_hostname=a.sni,
                                                           local_addr=(source(i), 0),
                                                           ssl_handshake_timeout=60)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
            rec.update(how="connect failed", error="%s: %s" % (type(e).__name__, e), closed=time.monotonic())
            opened()
            return
        rec["handshake"] = time.monotonic()
    opened()
    head = b"GET /name HTTP/1.1\r\nHost: %s\r\nX-Slow: " % a.sni.encode() + b"a" * 200
    await hold(reader, writer, head, a.interval, rec)


async def slow_handshake(i, a, hello, rec, opened, after):
    await after.wait()  # once the TLS connections are open: their handshakes are the costly part
    rec.update(kind="handshake", src=source(i), opened=time.monotonic())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", a.port, local_addr=(source(i), 0))
    except OSError as e:
        rec.update(how="connect failed", error="%s: %s" % (type(e).__name__, e), closed=time.monotonic())
        opened()
        return
    rec["connected"] = time.monotonic()
    opened()
    await hold(reader, writer, hello, a.interval, rec)


async def main(a):
    tls = ssl.create_default_context(cafile=a.cafile)
    hello = client_hello(a.sni)
    n = a.headers + a.handshakes
    recs = [{} for _ in range(n)]
    gate = asyncio.Semaphore(8)
    left = [n]
    tls_open = asyncio.Event()

    def opened():
        left[0] -= 1
        if left[0] == a.handshakes:
            tls_open.set()
        if left[0] == 0:  # every connection is open (or failed): say when
            with open(a.out + ".ready", "w") as f:
                f.write("%.6f\n" % time.monotonic())

    tasks = [slow_header(i, a, tls, recs[i], gate, opened) for i in range(a.headers)]
    if a.headers == 0:
        tls_open.set()
    tasks += [slow_handshake(a.headers + j, a, hello, recs[a.headers + j], opened, tls_open)
              for j in range(a.handshakes)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), a.deadline)
    except asyncio.TimeoutError:
        pass
    return recs


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sni", required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--headers", type=int, default=0)
    p.add_argument("--handshakes", type=int, default=0)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--deadline", type=float, default=60)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    need = args.headers + args.handshakes + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard) if hard != resource.RLIM_INFINITY else need, hard))
    result = asyncio.run(main(args))
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f)
    os.rename(args.out + ".tmp", args.out)
