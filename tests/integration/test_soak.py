"""RELIABILITY.md T-40, the soak: `make soak` (SOAK_MINUTES, 120 by default) runs this module with
CULVERT_SOAK_MINUTES set; `make test` skips it. For the whole duration, at once:

- real requests at 200 per second (ha_lib.Load, paced) from 4 keep-alive connections;
- 200 WebSockets, idle, each echoing a message every 30 s (reopened when a restart cut them);
- 5 uploads of 1 MiB at a time, one after the other on each of 5 threads;
- two connectors (2 connections each), restarted in turn (SIGTERM, drain, start) every twelfth of
  the run (10 minutes in 2 hours).

Every 10 s it samples the edge's RSS and descriptors and the streams the connectors have open.
Then: no real request and no upload failed; the edge's RSS grew less than 1 MiB per hour (the
median of the last tenth of the samples against the median of the second tenth: the first is
warm-up) plus 1 MiB for the allocator's noise; once the load is gone, the edge holds no more
descriptors than before it and the connectors report no open stream (nothing leaked). The 1%
packet loss of RELIABILITY.md's soak needs a network namespace and runs in
test_ha_outbound.py's lossy-link test instead."""

import hashlib
import os
import signal
import statistics
import threading
import time

import ha_lib
import lib
from lib import expect, expect_eq

SOAK_MINUTES = float(os.environ.get("CULVERT_SOAK_MINUTES", "0") or 0)
SAMPLE_S = 10.0
WS_COUNT = 200
WS_ECHO_S = 30.0
UPLOADERS = 5
UPLOAD_BYTES = 1 << 20


def streams_open(conn):
    r = lib.http_get("127.0.0.1", conn.metrics_port, "/metrics", timeout=2)
    if r is None or r[0] != 200:
        return None
    for line in r[1].decode("utf-8", "replace").splitlines():
        if line.startswith("culvert_streams_open "):
            return int(float(line.split()[1]))
    return None


class WebSockets:
    """|n| idle WebSockets through the edge, each echoing a message every WS_ECHO_S seconds;
    one that a connector restart closed is reopened. Counts echoes, reopenings and failures."""

    def __init__(self, ctx, edge, host, n, stop):
        self.ctx, self.edge, self.host, self.n, self.stop = ctx, edge, host, n, stop
        self.echoes = self.reopened = 0
        self.errors = []
        self.socks = [None] * n
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i):
        s = self.ctx.tls_connect(self.edge.https_port, self.host, timeout=10)
        w = lib.WebSocket(s)
        r = w.handshake(self.host, "/ws/echo")
        if r is None or r.status != 101:
            s.close()
            raise OSError("handshake answered %r" % (r.status if r else None))
        self.socks[i] = w

    def _run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            for i in range(self.n):
                if self.stop.is_set():
                    break
                try:
                    if self.socks[i] is None:
                        self._open(i)
                    w = self.socks[i]
                    msg = ("ws %d at %.1f" % (i, t0)).encode()
                    w.send(0x1, msg)
                    w.sock.settimeout(10)
                    if w.recv_message() != (0x1, msg):
                        raise OSError("wrong echo")
                    self.echoes += 1
                except (OSError, ValueError, EOFError) as e:
                    if self.socks[i] is not None:
                        self.socks[i].sock.close()
                        self.socks[i] = None
                        self.reopened += 1  # cut by a connector restart: reopen next round
                    else:
                        self.errors.append("ws %d: %s" % (i, e))
            self.stop.wait(max(0.0, WS_ECHO_S - (time.monotonic() - t0)))
        for w in self.socks:
            if w is not None:
                w.sock.close()


def uploader(ctx, edge, host, stop, results):
    """1 MiB POSTs to /upload one after the other until |stop|; appends (ok, detail)."""
    body = os.urandom(UPLOAD_BYTES)
    digest = hashlib.sha256(body).hexdigest()
    head = ("POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (host, len(body))).encode()
    while not stop.is_set():
        try:
            s = ctx.tls_connect(edge.https_port, host, timeout=30)
            try:
                s.sendall(head + body)
                r = lib.RawHTTP(s).read_response()
            finally:
                s.close()
            ok = r is not None and r.status == 200 and r.json().get("sha256") == digest
            results.append((ok, None if ok else "upload answered %r" % ((r.status, r.body[:200]) if r else None,)))
        except (OSError, ValueError, EOFError) as e:
            results.append((False, "upload: %s: %s" % (type(e).__name__, e)))
            stop.wait(1)


@lib.timeout(int(SOAK_MINUTES * 60) + 300 if SOAK_MINUTES else 60)
def test_soak_mixed_load_with_connector_restarts_leaks_nothing(ctx):
    if not SOAK_MINUTES:
        ctx.skip("the soak runs with make soak (CULVERT_SOAK_MINUTES)")
    duration = SOAK_MINUTES * 60
    host = "app." + lib.DOMAIN
    edge = ctx.edge()
    t = edge.tunnel_with_route("app", [host])
    origin = ctx.origin("origin")
    conns = [ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], ha=2, name="c%d" % i,
                           args=["--region", "r%d" % i]) for i in (1, 2)]
    ha_lib.wait_connections(ctx, edge, "app", {"r1": 2, "r2": 2}, 10)
    fds0 = lib.fd_count(edge.proc.pid)
    stop = threading.Event()
    load = ha_lib.Load(ctx, edge, host, threads=4, duration=duration + 60, rate=200).start()
    wss = WebSockets(ctx, edge, host, WS_COUNT, stop)
    wss.thread.start()
    uploads = []
    ups = [threading.Thread(target=uploader, args=(ctx, edge, host, stop, uploads), daemon=True)
           for _ in range(UPLOADERS)]
    for u in ups:
        u.start()
    samples = []  # (s since start, edge RSS KiB, edge fds, streams open)
    restarts = 0
    t0 = time.monotonic()
    next_restart = t0 + duration / 12
    try:
        while time.monotonic() - t0 < duration:
            streams = [streams_open(c) for c in conns]
            samples.append((time.monotonic() - t0, lib.proc_status_kib(edge.proc.pid).get("VmRSS", 0),
                            lib.fd_count(edge.proc.pid), streams))
            expect(edge.proc.alive(), "the edge exited during the soak")
            if time.monotonic() >= next_restart:
                c = conns[restarts % 2]
                c.proc.send(signal.SIGTERM)
                expect_eq(c.proc.wait(30), 0, "exit code of %s after SIGTERM" % c.name)
                c.start()
                ha_lib.wait_connections(ctx, edge, "app", {"r1": 2, "r2": 2}, 30,
                                        "%s to register again" % c.name)
                restarts += 1
                next_restart += duration / 12
                ctx.note("restarted %s (%d restarts)" % (c.name, restarts))
            time.sleep(max(0.0, min(SAMPLE_S, duration - (time.monotonic() - t0))))
    finally:
        stop.set()
        load.stop()
        wss.thread.join(60)
        for u in ups:
            u.join(60)
    ctx.wait_until(lambda: all(streams_open(c) == 0 for c in conns), 30, "the connectors' streams to close")
    ctx.wait_until(lambda: lib.fd_count(edge.proc.pid) <= fds0, 30, "the edge's descriptors back to %d" % fds0)
    failed_uploads = [d for ok, d in uploads if not ok]
    n = len(samples)
    tenth = max(1, n // 10)
    rss_early = statistics.median(x[1] for x in samples[tenth:2 * tenth])
    rss_late = statistics.median(x[1] for x in samples[-tenth:])
    hours = (samples[-1][0] - samples[tenth][0]) / 3600.0
    ctx.note("soak %.0f min: %d requests (%d failed), %d uploads (%d failed), %d echoes on %d WebSockets "
             "(%d reopened after restarts, %d errors), %d connector restarts; edge RSS %d -> %d KiB "
             "(%.2f MiB/h), fds %d..%d (idle %d), streams %r" % (
                 duration / 60, load.count(), len(load.failures()), len(uploads), len(failed_uploads),
                 wss.echoes, WS_COUNT, wss.reopened, len(wss.errors), restarts, rss_early, rss_late,
                 (rss_late - rss_early) / 1024.0 / max(hours, 1e-9), min(x[2] for x in samples),
                 max(x[2] for x in samples), fds0, [x[3] for x in samples[-3:]]))
    expect(not load.failures(), "requests failed during the soak: %s" % load.describe_failures())
    expect(not failed_uploads, "%d uploads failed: %s" % (len(failed_uploads), failed_uploads[:5]))
    expect(not wss.errors, "WebSocket errors: %s" % wss.errors[:5])
    expect(len(uploads) > 0 and wss.echoes > 0, "no upload or no WebSocket echo completed")
    expect(rss_late - rss_early <= 1024 * hours + 1024,
           "the edge's RSS grew from %d to %d KiB over %.2f h (allowed: 1 MiB/h + 1 MiB)" % (
               rss_early, rss_late, hours))
