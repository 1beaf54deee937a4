"""High availability (issue 4; PRODUCT.md section 4; RELIABILITY.md §6): nearest-connector routing
behind delay relays, failover on SIGKILL, rolling restarts, edge restart backoff, the balance
policies, and liveness of a silent connector.

Connectors sit behind tests/tools/delayrelay (a fixed one-way delay, FIN and RST passed on at once)
when the test needs distinct distances; each connector's origin answers /name with its own name,
so the origin that served a request is in its body. The load client (ha_lib.Load) keeps one TLS
keep-alive connection per thread and records every request (index, start, end, status, name).
"""

import os
import re
import signal
import socket
import struct
import threading
import time

import ha_lib
import lib
from lib import DOMAIN, expect, expect_eq

HOST = "app." + DOMAIN


def _stack(ctx, limits=None, extra=None, tunnel="app", hosts=(HOST,)):
    edge = ctx.edge(limits=limits, extra=extra)
    t = edge.tunnel_with_route(tunnel, list(hosts))
    return edge, t


def _connector(ctx, edge, token, origin, name, region, ha=2, edge_addr=None, args=()):
    a = ["--region", region]
    if edge_addr is not None:
        a += ["--edge", edge_addr]
    return ctx.connector(edge, token, ingress=[{"service": origin.url}], ha=ha, name=name,
                         args=a + list(args))


# ---- the relay itself ------------------------------------------------------------------------------


@lib.timeout(30)
def test_delayrelay_delays_each_way_keeps_order_and_passes_fin_and_rst_at_once(ctx):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    delay = 40
    relay = ha_lib.Relay(ctx, srv.getsockname()[1], delay, "relay")
    c = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    srv.settimeout(10)
    s, _ = srv.accept()
    s.settimeout(10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # One round trip: ~2 * delay.
    t0 = time.monotonic()
    c.sendall(b"ping")
    expect_eq(s.recv(16), b"ping", "bytes through the relay")
    s.sendall(b"pong")
    expect_eq(c.recv(16), b"pong", "bytes back through the relay")
    rtt = (time.monotonic() - t0) * 1000
    expect(2 * delay - 2 <= rtt <= 2 * delay + 60 * ctx.slow,
           "round trip through a %dms relay took %.1fms (want ~%dms)" % (delay, rtt, 2 * delay))
    # Many small writes arrive complete and in order.
    blob = os.urandom(300 * 1024)
    got = bytearray()

    def reader():
        while len(got) < len(blob):
            d = s.recv(65536)
            if not d:
                break
            got.extend(d)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    for off in range(0, len(blob), 3000):
        c.sendall(blob[off:off + 3000])
    th.join(10 * ctx.slow)
    expect(bytes(got) == blob, "300 KiB in 3000-byte writes: %d bytes arrived, equal: %s" % (
        len(got), bytes(got) == blob))
    # FIN passes at once (no delay) after the queued bytes; the other direction keeps flowing.
    c.sendall(b"tail")
    t0 = time.monotonic()
    c.shutdown(socket.SHUT_WR)
    rest = b""
    while True:
        d = s.recv(64)
        if not d:
            break
        rest += d
    fin_ms = (time.monotonic() - t0) * 1000
    expect_eq(rest, b"tail", "bytes queued before the FIN")
    expect(fin_ms < delay / 2, "the FIN took %.1fms through a %dms relay (should pass at once)" % (fin_ms, delay))
    s.sendall(b"after-fin")
    expect_eq(c.recv(64), b"after-fin", "the other direction after a half-close")
    # RST passes at once.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t0 = time.monotonic()
    s.close()
    err = None
    try:
        d = c.recv(64)
        err = "recv returned %r" % d
    except ConnectionResetError:
        pass
    rst_ms = (time.monotonic() - t0) * 1000
    expect(err is None, "after the target's RST the client saw no reset: %s" % err)
    expect(rst_ms < delay / 2, "the RST took %.1fms through a %dms relay" % (rst_ms, delay))
    c.close()
    # A refused target is a reset for the client.
    srv.close()
    try:
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
        d = c.recv(64)
        c.close()
        expect(False, "a connection to a refused target got %r instead of a reset" % d)
    except ConnectionResetError:
        pass  # at connect() or at the first read, depending on timing
    rc = relay.stop()
    expect_eq(rc, 0, "delayrelay exit code after SIGTERM")


# ---- (a) nearest connector, then failover on SIGKILL ----------------------------------------------


@lib.timeout(90)
def test_nearest_connector_takes_the_load_and_the_next_takes_over_after_sigkill(ctx):
    hb = 200
    edge, t = _stack(ctx, limits={"heartbeat_ms": "%dms" % hb})
    delays = {"near": 2, "mid": 20, "far": 60}
    origins = {}
    conns = {}
    relays = {}
    for region, d in delays.items():
        origins[region] = ha_lib.Origin(ctx, "o-" + region)
        relays[region] = ha_lib.Relay(ctx, edge.tunnel_port, d, "relay-" + region)
        conns[region] = _connector(ctx, edge, t["token"], origins[region], "c-" + region, region,
                                   edge_addr=relays[region].addr)
    ha_lib.wait_connections(ctx, edge, "app", {"near": 2, "mid": 2, "far": 2}, 10)

    # RTT samples settle: a few heartbeats, then each connection's srtt reflects its relay.
    def settled():
        v = ha_lib.by_region(edge, "app")
        rtts = {r: [c["rtt_ms"] for c in v.get(r, [])] for r in delays}
        ok = all(len(x) == 2 and all(2 * delays[r] * 0.8 <= y <= 2 * delays[r] + 30 * ctx.slow for y in x)
                 for r, x in rtts.items())
        ctx.note("rtt_ms by region: %r" % rtts)
        return ok

    ctx.wait_until(settled, 5, "smoothed RTTs near 2x each relay's delay (4, 40, 120 ms)", interval=hb / 1000)
    n_before = 600 if ctx.reduced else 2000
    load = ha_lib.Load(ctx, edge, HOST, threads=8, duration=60).start()
    try:
        load.wait_count(n_before, 40, "requests before the kill")
        t_kill = time.monotonic()
        conns["near"].proc.kill()
        ctx.note("SIGKILL c-near at %.3f after %d requests" % (t_kill, load.count()))
        time.sleep(1.5 * ctx.slow)
    finally:
        load.stop()
    res = load.snapshot()
    before = [r for r in res if r.t1 < t_kill]
    after = [r for r in res if r.t0 > t_kill]
    ctx.note("before the kill: %d requests, names %r; after: %d, names %r" % (
        len(before), dict(load.names(before)), len(after), dict(load.names(after))))
    # At least 95% of the requests before the kill went to the nearest connector.
    bad_before = [r for r in before if not r.ok]
    expect(not bad_before, "requests failed before the kill: %s" % bad_before[:10])
    near = load.names(before)["o-near"]
    expect(len(before) >= n_before and near >= 0.95 * len(before),
           "%d of %d requests before the kill went to the 2ms connector (want >= 95%%): %r" % (
               near, len(before), dict(load.names(before))))
    # No request failed except those already in flight at the killed connector's origin.
    at_origin = ha_lib.origin_indices(origins["near"])
    failed = load.failures()
    not_in_flight = [r for r in failed if r.i not in at_origin]
    expect(not not_in_flight,
           "%d requests failed that the killed connector's origin never saw (they should have been "
           "retried on another connector): %s\nwhat the edge logged:\n%s" % (
               len(not_in_flight), not_in_flight[:10], ha_lib.edge_story(edge, not_in_flight)))
    expect(len(failed) <= load.nthreads,
           "%d requests failed, more than the %d that can be in flight" % (len(failed), load.nthreads))
    for r in failed:
        expect(r.t0 < t_kill + 0.05, "request started %.3fs after the kill failed: %r" % (r.t0 - t_kill, r))
    # The 20ms connector takes over within 1 s of the kill.
    mid_after = sorted((r for r in res if r.ok and r.name == "o-mid" and r.t1 > t_kill), key=lambda r: r.t1)
    expect(mid_after, "no request went to the 20ms connector after the kill: %r" % dict(load.names(after)))
    first = mid_after[0].t1 - t_kill
    expect(first <= 1.0, "the first answer from the 20ms connector came %.3fs after the kill" % first)
    late = [r for r in res if r.t0 > t_kill + 1.0]
    expect(late, "no request started later than 1s after the kill")
    late_names = load.names(late)
    expect(late_names["o-mid"] >= 0.95 * len(late) and all(r.ok for r in late),
           "after the takeover the 20ms connector should serve (>=95%%): %r, failures %r" % (
               dict(late_names), [r for r in late if not r.ok][:5]))
    ctx.note("takeover: first o-mid answer %.3fs after the kill; %d failures (in flight at o-near)" % (
        first, len(failed)))


# ---- (b) rolling restart --------------------------------------------------------------------------


@lib.timeout(90)
def test_rolling_restart_of_two_connectors_under_load_fails_no_request(ctx):
    edge, t = _stack(ctx)
    origins = [ha_lib.Origin(ctx, "o1"), ha_lib.Origin(ctx, "o2")]
    conns = [_connector(ctx, edge, t["token"], origins[i], "c%d" % (i + 1), "r%d" % (i + 1))
             for i in range(2)]
    ha_lib.wait_connections(ctx, edge, "app", {"r1": 2, "r2": 2}, 10)
    load = ha_lib.Load(ctx, edge, HOST, threads=4, duration=80).start()
    marks = []
    try:
        load.wait_count(200, 20)
        for c in conns:
            t0 = time.monotonic()
            c.proc.send(signal.SIGTERM)
            rc = c.proc.wait(10 * ctx.slow)
            expect_eq(rc, 0, "exit code of %s after SIGTERM under load" % c.name)
            t_exit = time.monotonic()
            ctx.note("%s drained and exited in %.3fs" % (c.name, t_exit - t0))
            n = load.count()
            load.wait_count(n + 100, 20, "requests while %s is down" % c.name)
            t_restart = time.monotonic()
            c.start()  # the same flags, a new process (log c1.2.log)
            ha_lib.wait_connections(ctx, edge, "app", {"r1": 2, "r2": 2}, 10,
                                    "%s to register both connections again" % c.name)
            marks.append((c.name, t0, t_exit, t_restart))
            n = load.count()
            load.wait_count(n + 100, 20, "requests after %s is back" % c.name)
    finally:
        load.stop()
    res = load.snapshot()
    ctx.note("rolling restart: %d requests, names %r, marks %r" % (len(res), dict(load.names()), marks))
    expect(not load.failures(), "requests failed during the rolling restart: %s\nwhat the edge logged:\n%s" % (
        load.describe_failures(), ha_lib.edge_story(edge, load.failures())))
    for name, t0, t_exit, t_restart in marks:
        down = [r for r in res if r.t0 > t_exit and r.t1 < t_restart]
        expect(len(down) >= 50, "only %d requests ran while %s was down" % (len(down), name))
        served = load.names(down)
        expect(served.get("o" + name[1:], 0) == 0,
               "the origin of %s answered while it was down: %r" % (name, dict(served)))
    names = load.names()
    expect(names["o1"] > 0 and names["o2"] > 0, "both connectors served: %r" % dict(names))


@lib.timeout(60)
def test_connector_sigterm_exits_once_in_flight_streams_finish_not_at_the_grace_deadline(ctx):
    # PRODUCT.md section 4, Graceful stop: in-flight streams finish within grace-period; a drained
    # connector has nothing left to wait for. Requests take 300 ms here; the grace period is 5 s.
    edge, t = _stack(ctx)
    origin = ha_lib.Origin(ctx, "o1")
    c = ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], name="c1", grace="5s")
    slow_ms = 300
    load = ha_lib.Load(ctx, edge, HOST, path="/slow?ms=%d" % slow_ms, threads=4, duration=30).start()
    try:
        load.wait_count(8, 10)
        t_term = time.monotonic()
        c.proc.send(signal.SIGTERM)
        rc = c.proc.wait(15 * ctx.slow)
        took = time.monotonic() - t_term
    finally:
        load.stop()
    expect_eq(rc, 0, "exit code after SIGTERM")
    in_flight = [r for r in load.snapshot() if r.t0 < t_term]
    bad = [r for r in in_flight if not r.ok]
    expect(not bad, "requests in flight at SIGTERM did not finish: %s" % bad)
    expect(took < slow_ms / 1000.0 + 1.0 * ctx.slow,
           "the connector exited %.2fs after SIGTERM; its in-flight requests (%d ms each) were done "
           "long before, yet it waited for (most of) the 5s grace period:\n%s" % (
               took, slow_ms, lib.tail(c.proc.log, 8)))



def _slow_at(origin):
    return sum(1 for r in origin.requests() if r["path"].startswith("/slow"))


@lib.timeout(60)
def test_edge_sigterm_closes_idle_connections_lets_in_flight_requests_finish_then_exits(ctx):
    edge = ctx.edge(grace_period="5s")
    t = edge.tunnel_with_route("app", [HOST])
    origin = ha_lib.Origin(ctx, "o1")
    c = ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], name="c1")
    idle = ctx.tls_connect(edge.https_port, HOST)
    idle.sendall(("GET /name HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST).encode())
    rd = lib.RawHTTP(idle)
    expect_eq(rd.read_response().status, 200, "a request on the keep-alive connection")
    slow_ms = 1000
    load = ha_lib.Load(ctx, edge, HOST, path="/slow?ms=%d" % slow_ms, threads=4, total=4).start()
    ctx.wait_until(lambda: _slow_at(origin) >= 4, 5, "4 slow requests at the origin")
    offset = c.proc.log_size()
    t_term = time.monotonic()
    edge.proc.send(signal.SIGTERM)
    expect(rd.closed_after(1.0 * ctx.slow), "the idle keep-alive connection was not closed on SIGTERM")
    idle.close()  # as a browser does on EOF (the edge waits a while for the peer's close)

    def refused():
        try:
            socket.create_connection(("127.0.0.1", edge.https_port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    ctx.wait_until(refused, 1, "new public connections to be refused while draining")
    c.proc.wait_log(r"edge \S+ is going away", 2, start=offset)
    load.wait(10)
    res = load.snapshot()
    expect(all(r.ok for r in res), "requests in flight at the edge's SIGTERM: %r" % res)
    rc = edge.proc.wait(10 * ctx.slow)
    took = time.monotonic() - t_term
    expect_eq(rc, 0, "exit code of the edge after the drain")
    expect(took < slow_ms / 1000.0 + 1.0 * ctx.slow,
           "the edge exited %.2fs after SIGTERM; its last requests ended after ~%.1fs (grace 5s)" % (
               took, slow_ms / 1000.0))
    expect(c.proc.alive(), "the connector exited when the edge went away")


@lib.timeout(60)
def test_second_sigterm_exits_at_once_on_connector_and_edge(ctx):
    edge = ctx.edge(grace_period="10s")
    t = edge.tunnel_with_route("app", [HOST])
    origin = ha_lib.Origin(ctx, "o1")
    c1 = ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], name="c1", grace="10s")
    slow = "/slow?ms=8000"
    for name, proc, again in (("connector", c1.proc, None), ("edge", edge.proc, "c2")):
        if again:
            ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], name=again)
        before = _slow_at(origin)
        load = ha_lib.Load(ctx, edge, HOST, path=slow, threads=2, total=2, timeout=20).start()
        ctx.wait_until(lambda: _slow_at(origin) >= before + 2, 5, "2 slow requests at the origin")
        proc.send(signal.SIGTERM)
        time.sleep(0.5)
        expect(proc.alive(), "the %s exited on the first SIGTERM with requests in flight (grace 10s)" % name)
        t0 = time.monotonic()
        proc.send(signal.SIGTERM)
        rc = proc.wait(5 * ctx.slow)
        took = time.monotonic() - t0
        expect(rc is not None, "the %s still runs 5s after a second SIGTERM" % name)
        expect_eq(rc, 0, "exit code of the %s after a second SIGTERM" % name)
        expect(took < 1.0 * ctx.slow, "the %s took %.2fs to exit after the second SIGTERM" % (name, took))
        load.stop()


# ---- (c) edge restart: reconnect with full-jitter backoff -------------------------------------------

RETRY_RE = re.compile(r"^(\S+) \S+ connector conn=(\d+) retrying connection to the edge in (\d+)ms "
                      r"\(attempt (\d+), window (\d+)ms\)", re.M)
LINE_RE = re.compile(r"^(\S+) \S+ connector conn=(\d+) (.*)$", re.M)


def _ts(text):
    """Seconds since the epoch of a log timestamp 2026-11-22T01:32:11.123Z."""
    import calendar
    base, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


@lib.timeout(90)
@lib.full_only("backoff timing")
def test_edge_restart_under_load_connectors_back_off_within_jitter_bounds(ctx):
    # A small base so that a short outage reaches the cap: windows 20, 40, ..., 640 ms, then 640.
    base_ms = 20
    max_exp = 5  # limits.h backoff_max_exp default (the connector has no flag for it)
    edge, t = _stack(ctx)
    origin = ha_lib.Origin(ctx, "o1")
    ha = 4
    c = ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], ha=ha, name="c1",
                      args=["--region", "r1"], start=False)
    c.argv[c.argv.index("--retry-base") + 1] = "%dms" % base_ms
    c.start()
    ha_lib.wait_connections(ctx, edge, "app", {"r1": ha}, 10)
    time.sleep(0.5)  # up for > 10 * base: a loss starts again from attempt 1
    load = ha_lib.Load(ctx, edge, HOST, threads=2, duration=80, reconnect_pause=0.05).start()
    try:
        load.wait_count(100, 20)
        offset = c.proc.log_size()
        t_down = time.monotonic()
        rc = edge.stop()
        expect_eq(rc, 0, "exit code of the edge after SIGTERM under load")
        outage = 2.0  # enough for 7 retries even at the top of every window (20+40+...+640 ms)
        time.sleep(outage)
        expect(c.proc.alive(), "the connector exited while the edge was down")
        edge.start()
        t_up = time.monotonic()
        ha_lib.wait_connections(ctx, edge, "app", {"r1": ha}, 15, "every connection to come back")
        t_back = time.monotonic()
        n = load.count()
        load.wait_count(n + 100, 20, "requests after the edge is back")
    finally:
        load.stop()
    ctx.note("edge down %.2fs, connections back %.2fs after the start" % (t_up - t_down, t_back - t_up))
    text = c.proc.text()[offset:]
    retries = RETRY_RE.findall(text)
    expect(retries, "no 'retrying connection to the edge' line after the edge stopped:\n%s" % text[-3000:])
    per_conn = {}
    for ts, idx, delay, attempt, window in retries:
        delay, attempt, window = int(delay), int(attempt), int(window)
        n = min(attempt - 1, max_exp)
        expect(window == (1 << n) * base_ms,
               "conn=%s attempt %d: window %dms, expected 2^%d * %dms" % (idx, attempt, window, n, base_ms))
        expect(0 <= delay < window, "conn=%s attempt %d: delay %dms outside [0, %dms)" % (idx, attempt, delay, window))
        per_conn.setdefault(int(idx), []).append((_ts(ts), attempt, delay))
    expect(sorted(per_conn) == list(range(ha)), "retries logged for connections %r, expected 0..%d" % (
        sorted(per_conn), ha - 1))
    for idx, lst in per_conn.items():
        attempts = [a for _, a, _ in lst]
        expect(attempts == list(range(1, len(attempts) + 1)),
               "conn=%d attempts %r: should count up from 1 during one outage" % (idx, attempts))
        # 2 s of outage: even with every delay at the top of its window (20 + 40 + ... + 640 +
        # 640 + ...) a connection retries 6 times or more; a hot loop would retry thousands of times.
        expect(6 <= len(attempts) <= 60, "conn=%d made %d retries during a %.1fs outage" % (
            idx, len(attempts), outage))
    capped = [a for lst in per_conn.values() for _, a, _ in lst if a > max_exp + 1]
    expect(capped, "no retry reached the capped window (attempt > %d): %r" % (max_exp + 1, per_conn))
    # The delay chosen is the delay taken: the next line of that connection (its dial result) comes
    # no sooner than the delay and not much later.
    lines = [(_ts(ts), int(idx), rest) for ts, idx, rest in LINE_RE.findall(text)]
    checked = 0
    for i, (ts, idx, rest) in enumerate(lines):
        m = re.match(r"retrying connection to the edge in (\d+)ms", rest)
        if not m:
            continue
        delay = int(m.group(1))
        nxt = [l_ts for l_ts, l_idx, l_rest in lines[i + 1:] if l_idx == idx]
        if not nxt:
            continue
        gap_ms = (nxt[0] - ts) * 1000
        # libuv timers count from the loop's cached time, which lags the log line by a few ms.
        expect(delay - 10 * ctx.slow <= gap_ms <= delay + 150 * ctx.slow,
               "conn=%d chose a %dms delay but dialed %.0fms later" % (idx, delay, gap_ms))
        checked += 1
    expect(checked >= ha, "could check the delay taken for only %d retries" % checked)
    delays = [int(d) for _, _, d, _, _ in retries]
    expect(len(set(delays)) > 1, "every retry chose the same delay %r: no jitter" % delays)
    # Requests: failures only while the edge was away; all good once the connections were back.
    res = load.snapshot()
    bad = [r for r in res if not r.ok and (r.t0 > t_back or r.t1 < t_down)]
    expect(not bad, "requests failed outside the outage: %s" % bad[:10])
    expect(any(r.ok for r in res if r.t0 > t_back), "no request succeeded after the edge came back")


# ---- (d) balance policies ---------------------------------------------------------------------------


def _three(ctx, balance, ha=2):
    edge, t = _stack(ctx, extra={"balance": balance})
    origins = []
    for i in range(3):
        o = ha_lib.Origin(ctx, "o%d" % (i + 1))
        origins.append(o)
        _connector(ctx, edge, t["token"], o, "c%d" % (i + 1), "r%d" % (i + 1), ha=ha)
    ha_lib.wait_connections(ctx, edge, "app", {"r1": ha, "r2": ha, "r3": ha}, 10)
    return edge, origins


@lib.timeout(60)
@lib.full_only("a load distribution measurement")
def test_balance_round_robin_spreads_requests_over_connectors(ctx):
    edge, _ = _three(ctx, "round_robin")
    load = ha_lib.Load(ctx, edge, HOST, threads=1, total=120).start().wait(30)
    expect(not load.failures(), load.describe_failures())
    names = load.names()
    ctx.note("round_robin over 3 connectors x 2 connections, 120 sequential requests: %r" % dict(names))
    for o in ("o1", "o2", "o3"):
        expect(30 <= names[o] <= 50, "round_robin: %s got %d of 120 requests (want ~40): %r" % (
            o, names[o], dict(names)))


@lib.timeout(60)
@lib.full_only("a load distribution measurement")
def test_balance_least_streams_spreads_concurrent_requests(ctx):
    edge, origins = _three(ctx, "least_streams")
    n = 12
    slow_ms = 2000 if ctx.reduced else 1500
    load = ha_lib.Load(ctx, edge, HOST, path="/slow?ms=%d" % slow_ms, threads=n, total=n).start().wait(30)
    res = load.snapshot()
    expect(not load.failures(), load.describe_failures())
    expect(max(r.t0 for r in res) < min(r.t1 for r in res),
           "the %d slow requests did not overlap (the test needs them concurrent)" % n)
    # /slow answers "slow N", not the name: count at the origins instead.
    served = {o.name: _slow_at(o) for o in origins}
    ctx.note("least_streams, %d concurrent slow requests over 3 connectors x 2 connections: %r" % (n, served))
    expect(sum(served.values()) == n, "origins saw %r, expected %d requests in all" % (served, n))
    for name, k in served.items():
        expect(3 <= k <= 5, "least_streams: %s got %d of %d concurrent requests (want 4): %r" % (
            name, k, n, served))


@lib.timeout(90)
@lib.full_only("a saturation load measurement")
def test_nearest_spills_to_the_next_connector_when_the_nearest_is_saturated(ctx):
    # The connector advertises max_concurrent_streams 256 per connection (limits.h; no flag changes
    # it): with one connection, 256 streams in flight saturate the nearest connector.
    streams = 256
    edge, t = _stack(ctx, limits={"heartbeat_ms": "200ms", "per_ip_connections": 1024})
    near_o = ha_lib.Origin(ctx, "o-near")
    far_o = ha_lib.Origin(ctx, "o-far")
    relay = ha_lib.Relay(ctx, edge.tunnel_port, 20, "relay-far")
    _connector(ctx, edge, t["token"], near_o, "c-near", "near", ha=1)
    _connector(ctx, edge, t["token"], far_o, "c-far", "far", ha=1, edge_addr=relay.addr)
    ha_lib.wait_connections(ctx, edge, "app", {"near": 1, "far": 1}, 10)

    def rtts_ready():
        v = ha_lib.by_region(edge, "app")
        return all(c["rtt_ms"] > 0 for r in ("near", "far") for c in v.get(r, [])) and \
            v["far"][0]["rtt_ms"] > 30 and v["near"][0]["rtt_ms"] < 10

    ctx.wait_until(rtts_ready, 5, "RTT samples (near < 10ms, far > 30ms)", interval=0.1)
    expect_eq(ha_lib.curl_name(ctx, edge, HOST), (200, "o-near"), "unloaded: the nearest connector")
    slow_ms = 5000 if ctx.reduced else 4000  # long enough for 256 dispatches and the probes
    load = ha_lib.Load(ctx, edge, HOST, path="/slow?ms=%d" % slow_ms, threads=streams, total=streams,
                       timeout=30).start()
    try:
        def at_near():
            return sum(1 for r in near_o.requests() if r["path"].startswith("/slow"))

        ctx.wait_until(lambda: at_near() >= streams, 15,
                       "%d slow requests in flight at the nearest connector's origin" % streams, interval=0.1)
        t_full = time.monotonic()
        probes = [ha_lib.curl_name(ctx, edge, HOST) for _ in range(10)]
        t_probes = time.monotonic()
        ctx.note("probes while the nearest is saturated (%.2fs): %r" % (t_probes - t_full, probes))
        expect(t_probes - t_full < slow_ms / 1000.0 - 0.5,
               "the probes took too long to be sure the slow requests were still in flight")
        expect(all(p == (200, "o-far") for p in probes),
               "with %d streams open on the nearest connector, requests should spill to the next: %r" % (
                   streams, probes))
        load.wait(slow_ms / 1000.0 + 20)
    finally:
        load.stop()
    expect(not load.failures(), load.describe_failures())
    slow_far = sum(1 for r in far_o.requests() if r["path"].startswith("/slow"))
    expect_eq(slow_far, 0, "slow requests at the far origin (the nearest had room for all %d)" % streams)
    expect_eq(ha_lib.curl_name(ctx, edge, HOST), (200, "o-near"), "after the load: the nearest again")


@lib.timeout(60)
def test_nearest_keeps_concurrent_requests_on_the_nearest_connector_whatever_its_connections_rtt(ctx):
    # PRODUCT.md section 4: each new request goes to the connector with the lowest smoothed RTT
    # (tunnel.c: a connector's distance is its best connection's srtt), over that connection.
    # Connector A has one direct connection and one through a 40 ms relay (two edge addresses); B
    # is 10 ms away. A's busier direct connection must not hand the choice to its slow one and so
    # to B: A is nearest and has room, so it serves every request, and over its direct connection
    # (spreading them to A's least-loaded connection sent half of them through the relay).
    edge, t = _stack(ctx, limits={"heartbeat_ms": "200ms"})
    oa = ha_lib.Origin(ctx, "o-a")
    ob = ha_lib.Origin(ctx, "o-b")
    far = ha_lib.Relay(ctx, edge.tunnel_port, 40, "relay-a-far")
    mid = ha_lib.Relay(ctx, edge.tunnel_port, 10, "relay-b")
    _connector(ctx, edge, t["token"], oa, "c-a", "a", ha=2,
               args=["--edge", "127.0.0.1:%d" % edge.tunnel_port, "--edge", far.addr])
    _connector(ctx, edge, t["token"], ob, "c-b", "b", ha=1, edge_addr=mid.addr)
    ha_lib.wait_connections(ctx, edge, "app", {"a": 2, "b": 1}, 10)

    def rtts_ready():
        v = ha_lib.by_region(edge, "app")
        a = sorted(c["rtt_ms"] for c in v.get("a", []))
        b = [c["rtt_ms"] for c in v.get("b", [])]
        return len(a) == 2 and len(b) == 1 and 0 < a[0] < 10 and a[1] > 60 and 15 < b[0] < 60

    ctx.wait_until(rtts_ready, 5, "RTT samples (A: <10 and >60 ms, B: ~20 ms)", interval=0.1)
    n = 6
    load = ha_lib.Load(ctx, edge, HOST, path="/slow?ms=1000", threads=n, total=n).start()

    def streams_of_a():  # {"direct"/"relay": streams} of A's two connections, once all n are open
        v = ha_lib.by_region(edge, "app").get("a", [])
        got = {("direct" if c["rtt_ms"] < 10 else "relay"): c.get("streams") for c in v}
        return got if sum(x or 0 for x in got.values()) == n else None

    on_a = ctx.wait_until(streams_of_a, 5, "%d streams open on connector A" % n, interval=0.05)
    expect_eq(on_a, {"direct": n, "relay": 0}, "A's streams by connection (the direct one is nearest)")
    load.wait(20)
    expect(not load.failures(), load.describe_failures())
    served = {"o-a": _slow_at(oa), "o-b": _slow_at(ob)}
    ctx.note("%d concurrent requests: %r" % (n, served))
    expect_eq(served, {"o-a": n, "o-b": 0}, "concurrent requests by origin (A is nearest, not saturated)")


# ---- (f) liveness: a silent connector -----------------------------------------------------------------


@lib.timeout(60)
@lib.full_only("heartbeat timing")
def test_silent_connector_is_dropped_after_missed_heartbeats_and_reconnects_after_sigcont(ctx):
    hb_ms = 300
    misses = 3
    edge, t = _stack(ctx, limits={"heartbeat_ms": "%dms" % hb_ms, "heartbeat_misses": misses})
    oa = ha_lib.Origin(ctx, "o-a")
    ob = ha_lib.Origin(ctx, "o-b")
    relay = ha_lib.Relay(ctx, edge.tunnel_port, 20, "relay-b")
    # A is direct (nearest): new requests go to it until the edge drops it. B is 20 ms away.
    ca = _connector(ctx, edge, t["token"], oa, "c-a", "a")
    _connector(ctx, edge, t["token"], ob, "c-b", "b", edge_addr=relay.addr)
    ha_lib.wait_connections(ctx, edge, "app", {"a": 2, "b": 2}, 10)
    ctx.wait_until(lambda: all(c["rtt_ms"] > 0 for c in ha_lib.by_region(edge, "app").get("b", [])), 5,
                   "RTT samples from B")
    expect_eq(ha_lib.curl_name(ctx, edge, HOST), (200, "o-a"), "before: the nearest connector A")
    ca.proc.send(signal.SIGSTOP)
    t_stop = time.monotonic()
    try:
        # Requests sent now go to A (still looks healthy) and wait; when the edge drops A they were
        # never dispatched, so they are retried on B.
        hung = ha_lib.Load(ctx, edge, HOST, threads=4, total=4, timeout=15).start()
        t_drop = None
        while time.monotonic() < t_stop + 10 * ctx.slow:
            if len(ha_lib.by_region(edge, "app").get("a", [])) == 0:
                t_drop = time.monotonic()
                break
            time.sleep(0.05)
        expect(t_drop is not None, "the edge still lists A's connections 10s after SIGSTOP")
        drop = t_drop - t_stop
        ctx.note("A dropped %.3fs after SIGSTOP (heartbeat %dms x %d misses)" % (drop, hb_ms, misses))
        lo = misses * hb_ms / 1000.0 - 0.05
        hi = (misses + 1) * hb_ms / 1000.0 + 0.5 * ctx.slow
        expect(lo <= drop <= hi, "A dropped %.3fs after it went silent; expected between %.2fs and %.2fs" % (
            drop, lo, hi))
        hung.wait(10)
        res = hung.snapshot()
        expect(all(r.ok and r.name == "o-b" for r in res),
               "requests sent to the silent connector should be retried on B: %r\nwhat the edge "
               "logged:\n%s" % (res, ha_lib.edge_story(edge, [r for r in res if not r.ok])))
        expect(all(r.t1 <= t_drop + 1.0 * ctx.slow for r in res),
               "requests held by the silent connector ended long after the drop: %r (drop at %.3f)" % (res, t_drop))
        # New requests go straight to B, no waiting for a dead link.
        quick = ha_lib.Load(ctx, edge, HOST, threads=1, total=20).start().wait(10)
        qres = quick.snapshot()
        expect(all(r.ok and r.name == "o-b" for r in qres), "after the drop: %r" % qres[:5])
        slowest = max(r.t1 - r.t0 for r in qres)
        expect(slowest < 0.5 * ctx.slow, "a request after the drop took %.3fs" % slowest)
    finally:
        ca.proc.send(signal.SIGCONT)
    t_cont = time.monotonic()
    ha_lib.wait_connections(ctx, edge, "app", {"a": 2, "b": 2}, 10, "A to reconnect after SIGCONT")
    ctx.note("A back %.3fs after SIGCONT" % (time.monotonic() - t_cont))
    ctx.wait_until(lambda: ha_lib.curl_name(ctx, edge, HOST) == (200, "o-a"), 5,
                   "requests to reach A again (nearest)", interval=0.2)


@lib.timeout(120)
@lib.full_only("50 connector processes and a timing histogram")
def test_edge_restart_reconnect_storm_is_spread_by_jitter(ctx):
    """RELIABILITY.md T-30's reconnect storm: 50 connectors (100 connections) lose their edge for
    2 s. When it is back, their first dials spread over the backoff windows they had reached (full
    jitter) instead of arriving together: no window of one backoff base (100 ms here, RELIABILITY.md's
    "1 s bucket" at the default 1 s base) holds more than 30% of them, and all 100 are back. The dial
    times come from the connectors' logs (each retry line gives its delay)."""
    base_ms = 100
    n_conn, ha = 50, 2
    edge, t = _stack(ctx)
    origin = ha_lib.Origin(ctx, "o1")
    conns = []
    for i in range(n_conn):
        c = ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], ha=ha, name="c%d" % i,
                          args=["--region", "r"], start=False, wait_ready=False)
        c.argv[c.argv.index("--retry-base") + 1] = "%dms" % base_ms
        c.start(wait_ready=False)
        conns.append(c)
    ha_lib.wait_connections(ctx, edge, "app", {"r": n_conn * ha}, 30, "all 100 connections")
    time.sleep(1.5)  # up for > 10 * base: the outage starts again from attempt 1
    offsets = [c.proc.log_size() for c in conns]
    expect_eq(edge.stop(), 0, "exit code of the edge after SIGTERM")
    time.sleep(2.0)  # windows 100, 200, 400, 800, 1600 ms: attempts 4-6 by now
    t_up = time.time()
    edge.start()
    ha_lib.wait_connections(ctx, edge, "app", {"r": n_conn * ha}, 30, "all 100 connections back")
    first = []  # per connection, its first dial after the edge was back (s after t_up)
    for c, off in zip(conns, offsets):
        dials = {}
        for ts, idx, delay, _, _ in RETRY_RE.findall(c.proc.text()[off:]):
            at = _ts(ts) + int(delay) / 1000.0 - t_up
            if at >= 0:
                dials.setdefault(idx, []).append(at)
        first += [min(v) for v in dials.values()]
    expect(len(first) == n_conn * ha, "%d connections logged a dial after the restart" % len(first))
    buckets = {}
    for x in first:
        b = int(x * 1000 // base_ms)
        buckets[b] = buckets.get(b, 0) + 1
    top = max(buckets.values())
    ctx.note("first dials after the restart over %.2fs; per %d ms: %s" % (
        max(first) - min(first), base_ms, " ".join("%d" % buckets.get(b, 0) for b in range(max(buckets) + 1))))
    expect(top <= 0.3 * len(first), "%d of %d connections dialled within one %d ms window" % (
        top, len(first), base_ms))
