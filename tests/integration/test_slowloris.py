"""RELIABILITY.md T-04, slowloris and slow TLS handshakes: 150 visitors trickling a request head
one byte a second and 1,850 trickling a TLS ClientHello (tests/integration/slowclients.py, from
2,000 source addresses), while a load client sends real requests to the connector's hello_world
service at 1,000 requests a second. The timeouts are made short (header_read 4s, tls_handshake 4s)."""

import json
import os
import time

import ha_lib
import lib
from lib import expect

HEADER_READ = 4.0
TLS_HANDSHAKE = 4.0
SLOW_HEADERS = 150
SLOW_HANDSHAKES = 1850
MAX_CONNECTIONS = 2500
RATE = 1000  # real requests per second (RELIABILITY.md's wrk at 1,000 req/s), from 4 connections


def p99(results):
    lat = sorted(r.t1 - r.t0 for r in results)
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0


def slow_round(ctx, st, target, tag, watch_pid):
    """The slow visitors against |target| (an Edge) while the paced load runs against st.edge.
    Returns (records, requests made while every slow connection was held, window seconds, the
    most descriptors seen in |watch_pid|)."""
    out = os.path.join(ctx.dir, "slow-%s.json" % tag)
    slow = ctx.spawn("slowclients-" + tag, [lib.PYTHON, os.path.join(lib.HERE, "slowclients.py"),
                                            "--port", str(target.https_port), "--sni", st.host,
                                            "--cafile", os.path.join(ctx.pki, "ca.pem"),
                                            "--headers", str(SLOW_HEADERS), "--handshakes", str(SLOW_HANDSHAKES),
                                            "--interval", "1.0", "--deadline", "40", "--out", out])
    load = ha_lib.Load(ctx, st.edge, st.host, threads=4, duration=60, rate=RATE).start()
    fd_max = 0
    t_end = time.monotonic() + 60
    try:
        while not os.path.exists(out) and slow.alive() and time.monotonic() < t_end:
            # Not more often: listing 2,000 descriptors holds this process's GIL, which the load
            # client's threads need.
            fd_max = max(fd_max, lib.fd_count(watch_pid))
            time.sleep(0.5)
    finally:
        load.stop()
    expect(os.path.exists(out), "the slow clients (%s) wrote no result: %s" % (tag, lib.tail(slow.log)))
    with open(out) as f:
        recs = json.load(f)
    expect(os.path.exists(out + ".ready"), "the slow clients (%s) never had all their connections open" % tag)
    with open(out + ".ready") as f:
        t_ready = float(f.read())
    t_first_close = min(r["closed"] for r in recs if "closed" in r)
    expect(not load.failures(), "real requests failed (%s): %s" % (tag, load.describe_failures()))
    during = [r for r in load.snapshot() if t_ready <= r.t0 and r.t1 <= t_first_close]
    window = t_first_close - t_ready
    expect(len(during) >= 0.8 * RATE * window, "only %d real requests in the %.2fs while all slow "
           "visitors were held (%s)" % (len(during), window, tag))
    ctx.note("%s: %d real requests while the slow visitors were held (%.2fs), p99 %.1f ms" % (
        tag, len(during), window, p99(during) * 1000))
    return recs, during, window, fd_max


@lib.full_only("2,000 slow connections, twice, and a latency comparison: a load, not a code path")
@lib.timeout(120)
def test_slowloris_and_slow_handshakes_are_closed_on_time_while_real_traffic_flows(ctx):
    """Every slow head gets its 408 (or is closed) header_read after its handshake, +1 s at most;
    every slow handshake is closed tls_handshake after it began to connect, +1 s at most. The real
    requests all succeed, and those made while all 2,000 are held have a p99 latency under twice
    (or 5 ms over) the one measured in a first round, in which the same slow visitors went to a second edge
    (same settings) instead: everything shares two cores, so the first round puts the same load
    on the machine and leaves out only the edge's own work for the slow visitors. The edge never
    holds more descriptors than max_connections, and once the slow visitors are gone it is back
    to the descriptors it had (none leaked)."""
    edge_kw = {"limits": {"max_connections": MAX_CONNECTIONS}, "extra": {
        "timeouts": {"header_read": "%gs" % HEADER_READ, "tls_handshake": "%gs" % TLS_HANDSHAKE}}}
    st = lib.Stack(ctx, origin=False, edge_kw=edge_kw)
    decoy = ctx.edge(name="decoy", **edge_kw)
    pid = st.edge.proc.pid
    fds0 = lib.fd_count(pid)
    _, base, _, _ = slow_round(ctx, st, decoy, "decoy", pid)
    recs, during, window, fd_max = slow_round(ctx, st, st.edge, "edge", pid)
    ctx.note("edge fds %d before, %d at most" % (fds0, fd_max))

    problems = []
    spans = {"header": [], "handshake": []}
    hows = {}
    for r in recs:
        kind = r.get("kind")
        # A slow head's deadline runs from its handshake; a slow handshake's from the edge's
        # accept, which comes after the client began to connect ("opened").
        start = r.get("handshake") if kind == "header" else (r.get("opened") if "connected" in r else None)
        if start is None or "closed" not in r:
            problems.append("%s from %s: %s" % (kind, r.get("src"), r))
            continue
        span = r["closed"] - start
        spans[kind].append(span)
        hows[(kind, r.get("how"))] = hows.get((kind, r.get("how")), 0) + 1
        limit = HEADER_READ if kind == "header" else TLS_HANDSHAKE
        if not limit - 0.3 <= span <= limit + 1.0:
            problems.append("%s from %s closed %.2fs after it began (%s %.0fs): %s" % (
                kind, r["src"], span, "header_read" if kind == "header" else "tls_handshake", limit, r))
        if kind == "header" and r.get("how") not in ("408", "eof", "reset"):
            problems.append("slow head from %s ended with %r" % (r["src"], r.get("how")))
    for kind, xs in spans.items():
        if xs:
            xs.sort()
            ctx.note("%s: %d closed after %.2f-%.2fs (median %.2f)" % (kind, len(xs), xs[0], xs[-1], xs[len(xs) // 2]))
    ctx.note("endings: %r" % sorted(hows.items()))
    expect(len(recs) == SLOW_HEADERS + SLOW_HANDSHAKES, "%d slow visitors recorded" % len(recs))
    expect(not problems, "%d of %d slow visitors: %s" % (len(problems), len(recs), "\n".join(problems[:10])))
    # Twice the decoy round's p99, or 5 ms more than it: on loopback that p99 is 1-2 ms, where a
    # few hundred microseconds of scheduling on the two shared cores are already a factor of two
    # (in runs of this test the held round's p99 was 1-6 ms, the decoy round's 1.3-5.5 ms). An edge
    # that stalls on its slow visitors (a walk over every connection, a blocking step) makes the
    # real requests wait tens of milliseconds.
    bound = max(2 * p99(base), p99(base) + 0.005)
    expect(p99(during) <= bound, "real requests' p99 was %.1f ms while the edge held the slow visitors, "
           "%.1f ms while the decoy held them (want at most %.1f ms)" % (
               p99(during) * 1000, p99(base) * 1000, bound * 1000))
    expect(fd_max <= MAX_CONNECTIONS, "the edge held %d descriptors (max_connections %d)" % (fd_max, MAX_CONNECTIONS))
    ctx.wait_until(lambda: lib.fd_count(pid) <= fds0, 5, "the edge's descriptors back to %d (now %d)" % (
        fds0, lib.fd_count(pid)))
