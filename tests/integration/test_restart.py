"""Edge restart (PRODUCT.md section 4, High availability): stop the edge with SIGTERM, start it
again on the same ports and data dir; the connector reconnects by itself (backoff) and requests
succeed again within a bounded time; tunnels and routes survive in data_dir."""

import re
import signal
import time

import lib
from lib import DOMAIN, expect, expect_eq


@lib.timeout(90)
def test_edge_restart_connector_reconnects(ctx):
    st = lib.Stack(ctx)
    edge = st.edge
    before = edge.cli("tunnel", "list", output_json=True).json
    expect_eq(st.get("/name").status, 200, "GET before the restart")
    t0 = time.monotonic()
    rc = edge.stop(timeout=5 * ctx.slow)
    expect_eq(rc, 0, "exit code of the edge after SIGTERM (idle)")
    expect(edge.proc.stopped_cleanly, "the edge did not exit on SIGTERM within %.0fs" % (5 * ctx.slow))
    ctx.note("edge stopped in %.2fs" % (time.monotonic() - t0))
    # The connector notices: /ready is no longer 200 once it has no connection (bounded).
    ctx.wait_until(lambda: not st.connector.ready(), 5, "the connector's /ready to stop answering 200")
    expect(st.connector.proc.alive(), "the connector exited when the edge went away")
    # Down for a moment, so that the connector goes through a few failed attempts (backoff).
    time.sleep(1.0)
    expect(st.connector.proc.alive(), "the connector exited while the edge was down")
    # Backoff, not a hot loop: with --retry-base 100ms and doubling windows, a connection makes a
    # handful of attempts in ~1.3 s of outage; a loop without backoff would make hundreds.
    text = st.connector.proc.text()
    for idx in (0, 1):
        n = len(re.findall(r"conn=%d cannot connect" % idx, text))
        expect(1 <= n <= 12, "connection %d made %d connect attempts while the edge was down for ~1.3s" % (idx, n))
    edge.start()
    t1 = time.monotonic()
    after = edge.cli("tunnel", "list", output_json=True).json
    expect_eq([(x["id"], x["name"]) for x in after], [(x["id"], x["name"]) for x in before],
              "tunnels after the restart (data_dir)")
    routes = edge.cli("route", "list", output_json=True).json
    expect_eq([(x["hostname"], x["tunnel"]) for x in routes], [(st.host, "app")], "routes after the restart")
    # With --retry-base 100ms the backoff window stays small: back within 10 s.
    ctx.wait_until(st.connector.ready, 10, "the connector to reconnect (/ready 200)", interval=0.1)
    ctx.wait_until(lambda: st.get("/name").status == 200, 10, "a request to succeed after the restart",
                   interval=0.2)
    ctx.note("back in %.2fs after the edge started" % (time.monotonic() - t1))
    r = st.get("/echo")
    expect_eq(r.status, 200, "GET /echo after the restart")
    # Both HA connections come back.
    def conns():
        v = edge.cli("tunnel", "info", "app", output_json=True).json
        return sum(len(c.get("connections", [])) for c in v.get("connectors", [])) == 2

    ctx.wait_until(conns, 10, "both HA connections to register again", interval=0.2)
    log = st.connector.proc.text()
    expect("retry" in log.lower() or "reconnect" in log.lower(),
           "the connector log says nothing about retrying:\n%s" % lib.tail(st.connector.proc.log))


@lib.timeout(60)
def test_edge_sigterm_exits_promptly_when_idle(ctx):
    edge = ctx.edge()
    edge.tunnel_with_route("idle", ["idle." + DOMAIN])
    t0 = time.monotonic()
    rc = edge.stop(timeout=5 * ctx.slow)
    secs = time.monotonic() - t0
    expect_eq(rc, 0, "exit code after SIGTERM")
    # Nothing in flight: no reason to wait for the grace period (2 s here).
    expect(secs < 1.5 * ctx.slow, "an idle edge took %.2fs to exit on SIGTERM" % secs)


@lib.full_only("waits out a grace period")
@lib.timeout(60)
def test_edge_exit_is_not_held_by_a_visitor_that_stopped_reading(ctx):
    """SIGTERM with a visitor that stopped reading a Connection: close response: the edge may be
    closing that connection gracefully already, flushing the tail for as long as the visitor reads
    (up to send_idle_ms, 60 s). The grace period (2 s here) still bounds the exit: at its end every
    public connection is closed, graceful closes included."""
    st = lib.Stack(ctx)
    # The kernel's send buffer (up to tcp_wmem's maximum) takes most of it, the edge queues the rest
    # and, since the whole body has come, closes.
    n = lib.tcp_wmem_max() + (100 << 10)
    s = ctx.tls_connect(st.edge.https_port, st.host, rcvbuf=16384, timeout=20)
    try:
        s.sendall(b"GET /bytes?n=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (n, st.host.encode()))
        r = lib.RawHTTP(s).read_response(head_only=True)
        expect_eq(r.status, 200, "GET /bytes")
        time.sleep(1.5)
        t0 = time.monotonic()
        rc = st.edge.stop(timeout=20 * ctx.slow)
        secs = time.monotonic() - t0
    finally:
        s.close()
    ctx.note("the edge exited %.2fs after SIGTERM" % secs)
    expect(st.edge.proc.stopped_cleanly, "the edge did not exit within 20 s of SIGTERM")
    expect_eq(rc, 0, "exit code after SIGTERM")
    expect(secs < 2.0 + 3.0 * ctx.slow, "the edge took %.2fs to exit with a 2 s grace period" % secs)


@lib.full_only("waits out a 4 s request during a drain")
@lib.timeout(60)
def test_connector_is_not_ready_while_its_only_edge_drains(ctx):
    """The edge's SIGTERM drain sends GOAWAY: the connections stay up for the streams in flight
    but take no new ones, so the connector's /ready stops answering 200 at once (cloudflared counts
    such connections out of readyConnections too); it answered 200 until the edge exited."""
    st = lib.Stack(ctx, edge_kw={"grace_period": "10s"})
    slow, _, _ = ctx.curl_popen(st.url("/slow?ms=4000"), resolve=st.resolve())
    ctx.wait_until(lambda: any("/slow" in r.get("path", "") for r in st.origin.requests()), 5,
                   "the slow request at the origin")
    expect(st.connector.ready(), "the connector is ready before the drain")
    st.edge.proc.send(signal.SIGTERM)
    ctx.wait_until(lambda: not st.connector.ready(), 2, "/ready to stop answering 200 during the drain")
    expect(st.edge.proc.alive(), "the edge exited before its in-flight request ended")
    expect_eq(slow.wait(15 * ctx.slow), 0, "curl exit code of the request in flight (it completes)")
    expect_eq(st.edge.proc.wait(10 * ctx.slow), 0, "the edge's exit code after its drain")


@lib.timeout(60)
def test_connector_exits_promptly_while_a_dns_lookup_hangs(ctx):
    """SIGTERM while the connector is resolving the edge's name and the resolver never answers:
    nothing is in flight, so it exits at once, and so does SIGINT; it waited for the lookup's
    thread (the resolver's whole timeout, 20 s here). The connector runs in a network namespace
    whose resolv.conf (ip netns exec mounts /etc/netns/NAME/resolv.conf) names a DNS server on
    the namespace's loopback that reads queries and never answers."""
    import sys

    import ha_lib

    edge = ctx.edge()
    t = edge.create_tunnel("dns")
    with ha_lib.netns_with_etc(ctx, "dn", {
            "resolv.conf": "nameserver 127.0.0.1\noptions timeout:10 attempts:2\n"}) as ns:
        dns = ctx.spawn("blackhole-dns", ns.exec_argv([
            sys.executable, "-c",
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 53))\n"
            "print('dns up', flush=True)\n"
            "while True:\n    print('query', len(s.recvfrom(2048)[0]), flush=True)\n"]))
        dns.wait_log("dns up", 10)
        token_file = ctx.path("token")
        lib.write_file(token_file, t["token"] + "\n", 0o600)
        for sig in (signal.SIGTERM, signal.SIGINT):
            mark = dns.log_size()
            c = ctx.spawn("connector-%s" % sig.name, ns.exec_argv([
                ctx.connector_bin, "run", "--token-file", token_file, "--url", "hello_world",
                "--edge", "edge.blackhole.test:7844", "--metrics", "off", "--ha-connections", "1"]))
            dns.wait_log("query", 10, start=mark)  # the lookup is running
            t0 = time.monotonic()
            c.send(sig)
            rc = c.wait(3 * ctx.slow)
            expect(rc is not None, "the connector still runs %.0fs after %s during a DNS lookup" % (
                3 * ctx.slow, sig.name))
            expect_eq(rc, 0, "exit code after %s" % sig.name)
            ctx.note("%s: exited in %.2fs" % (sig.name, time.monotonic() - t0))
            expect("exiting without waiting for 1 DNS lookup" in c.text(),
                   "the connector does not say it left a lookup behind:\n%s" % c.text()[-1500:])
        dns.stop()
