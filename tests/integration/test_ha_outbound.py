"""Outbound only (issue 4; PRODUCT.md section 4): the connector runs in a network namespace of its
own, reaching the edge (root namespace) over a veth pair with addresses in 198.18.0.0/15
(RELIABILITY.md §7). Inside the namespace it listens on nothing but its metrics address on loopback,
its only connections are the ones it dialled to the edge (and to its origin), and requests through
the edge still work. Over the same kind of link with 5% of the packets dropped each way
(RELIABILITY.md T-31), parallel downloads and uploads all arrive intact and the heartbeat never takes
a tunnel connection for dead; a link cut silently for 5 s fails requests fast, heals, and delivers no
POST twice (T-29); requests crafted to point the connector elsewhere make it connect to nothing
but its edge and origin (T-21). The namespace and the veth pair are removed at the end, also on
failure.
Needs root and iproute2 (and nft for the lossy link); skipped when `ip netns add` is not possible here."""

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time

import ha_lib
import lib
import origin as origin_mod
from lib import DOMAIN, expect, expect_eq

HOST = "app." + DOMAIN


def _sockets(ns, kind):
    """[(local, peer, users)] from `ss -H -n -p KIND` inside the namespace."""
    r = ns.run(["ss", "-H", "-n", "-p"] + kind)
    expect(r.returncode == 0, "ss %s in the namespace: %s" % (" ".join(kind), r.stderr))
    out = []
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) < 4:
            continue
        # -l/-t state lines: State Recv-Q Send-Q Local Peer [Process]; "state X" drops the State column
        m = re.search(r"(\S+:\d+|\[\S+\]:\d+|\*:\d+)\s+(\S+:\S+|\*)\s*(users:.*)?$", line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3) or ""))
    return out


def _stack_across(ctx, ns, limits=None, heartbeat=None):
    """An edge in the root namespace taking tunnel connections on the veth address, an origin there
    too, and a connector with two connections inside |ns| serving HOST from that origin. Returns
    (edge, tunnel port, origin, Connector, the connector's process) once both connections are
    registered. |limits| go to the edge, |heartbeat| (a duration) to the connector."""
    # The edge (root namespace) takes tunnel connections on the veth address, with a tunnel
    # certificate for it from the run's CA (the token pins that CA).
    pki2 = ctx.mkdir("pki2")
    for f in ("ca.pem", "ca.key"):
        with open(os.path.join(ctx.pki, f), "rb") as src:
            lib.write_file(os.path.join(pki2, f), src.read())
    r = subprocess.run(["sh", lib.MKCERT, pki2, "tunnel", "IP:" + ns.root_ip, "IP:127.0.0.1",
                        "DNS:localhost"], cwd=lib.REPO, capture_output=True, timeout=60)
    expect(r.returncode == 0, "mkcert.sh: %s" % r.stderr.decode(errors="replace"))
    edge = ctx.edge(start=False, limits=limits)
    port = edge.tunnel_port
    edge.cfg["tunnel"]["listen"] = ["%s:%d" % (ns.root_ip, port)]
    edge.cfg["tunnel"]["advertise"] = ["%s:%d" % (ns.root_ip, port)]
    edge.cfg["tunnel"]["cert"] = os.path.join(pki2, "tunnel.pem")
    edge.cfg["tunnel"]["key"] = os.path.join(pki2, "tunnel.key")
    edge.write_config()
    edge.start()
    t = edge.tunnel_with_route("app", [HOST])
    expect_eq(lib.decode_token(t["token"]).get("edges"), ["%s:%d" % (ns.root_ip, port)],
              "edge addresses in the token")
    # The origin is in the root namespace too, on the veth address: the connector dials it.
    origin = ha_lib.Origin(ctx, "o-root", host=ns.root_ip)
    c = lib.Connector(ctx, edge, t["token"], ingress=[{"service": origin.url}], name="c-ns",
                      start=False)
    if heartbeat is not None:
        c.argv[c.argv.index("--heartbeat") + 1] = heartbeat
    c.argv = ns.exec_argv(c.argv)
    conn_proc = ctx.spawn(c.name, c.argv, env=c.env)
    ns.procs.append(conn_proc)  # stopped by _netns before the namespace goes
    conn_proc.is_culvert = True  # `ip netns exec` execs the connector: same PID, same checks
    c.proc = conn_proc

    def registered():
        if not conn_proc.alive():
            raise AssertionError("the connector exited: %s" % lib.tail(conn_proc.log))
        return sum(len(k.get("connections", [])) for k in ha_lib.connectors(edge, "app")) == 2

    ctx.wait_until(registered, 15, "both connections from the namespace to register", interval=0.1)
    return edge, port, origin, c, conn_proc


@contextlib.contextmanager
def _netns(ctx, tag):
    """A created ha_lib.Netns (the test is skipped without root or namespaces). At the end, also on
    failure, what is listed in its .procs (processes, the _Poster) is stopped and the namespace and its veth pair
    removed; on success, checked gone."""
    if os.geteuid() != 0:
        ctx.skip("needs root for ip netns")
    ns = ha_lib.Netns(ctx, tag)
    ns.procs = []
    try:
        why = ns.create()
        if why is not None:
            ctx.skip("cannot make a network namespace here: %s" % why)
        yield ns
    finally:
        for p in ns.procs:
            if p.alive():
                p.stop()
        problems = ns.delete()
    left = ha_lib.netns_exists(ns.name)
    veth = subprocess.run(["ip", "link", "show", "dev", ns.veth_root], capture_output=True, timeout=10)
    expect(not problems, "cleaning up the namespace: %s" % problems)
    expect(not left, "network namespace %s still exists" % ns.name)
    expect(veth.returncode != 0, "veth %s still exists" % ns.veth_root)


def _sigterm_exits_0(ctx, proc):
    proc.send(signal.SIGTERM)
    expect_eq(proc.wait(10 * ctx.slow), 0, "exit code of the connector after SIGTERM")


@lib.timeout(60)
def test_connector_in_its_own_netns_listens_only_on_loopback_metrics_and_serves(ctx):
    with _netns(ctx, "ob") as ns:
        edge, port, origin, c, conn_proc = _stack_across(ctx, ns)
        r = ns.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/ready" % c.metrics_port])
        expect(r.returncode == 0 and '"status":200' in r.stdout.replace(" ", ""),
               "/ready inside the namespace: %s %s" % (r.stdout, r.stderr))
        r = edge.get(HOST, "/name")
        expect_eq((r.status, r.text()), (200, "o-root"), "a request through the edge")

        pid = "pid=%d," % conn_proc.pid
        listening = _sockets(ns, ["-l", "-t", "-u", "-w"])
        ctx.note("listening sockets in the namespace: %r" % listening)
        mine = [s for s in listening if pid in s[2]]
        expect_eq([s[0] for s in mine], ["127.0.0.1:%d" % c.metrics_port],
                  "the connector's listening sockets (only the metrics address on loopback)")
        others = [s for s in listening if pid not in s[2]]
        expect(not others, "other listening sockets in the connector's namespace: %r" % others)
        r = ns.run(["ss", "-H", "-l", "-x", "-p"])
        unix = [line for line in r.stdout.splitlines() if pid in line]
        expect(r.returncode == 0 and not unix, "the connector listens on unix sockets: %r" % unix)
        est = _sockets(ns, ["-t", "state", "established"])
        ctx.note("established TCP in the namespace: %r" % est)
        peers = sorted(s[1] for s in est if pid in s[2])
        tunnel = "%s:%d" % (ns.root_ip, port)
        expect(peers.count(tunnel) == 2 and all(p in (tunnel, "%s:%d" % (ns.root_ip, origin.port))
                                                for p in peers),
               "the connector's connections should be the 2 it dialled to the edge (and its origin's): %r" % peers)
        _sigterm_exits_0(ctx, conn_proc)


def _nft_load(ns, rules):
    """Loads |rules| (an nft script) inside the namespace. Returns None, or why it cannot."""
    try:
        r = subprocess.run(ns.exec_argv(["nft", "-f", "-"]), input=rules, capture_output=True,
                           text=True, timeout=10)
    except FileNotFoundError:
        return "nft is not installed"
    return None if r.returncode == 0 else "nft: %s" % r.stderr.strip()


def _nft_counted(ns, table):
    """Packets counted so far by the counters of inet |table| in the namespace."""
    r = ns.run(["nft", "list", "table", "inet", table])
    expect(r.returncode == 0, "nft list table %s: %s" % (table, r.stderr))
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", r.stdout))


def _drop_randomly(ns, percent):
    """Drops |percent|% of the packets that cross the veth, each way, picked at random (nft numgen
    inside the namespace: this kernel has no netem). Segmentation offload is turned off on both
    ends first (gso_max_segs 1), so that a packet is one MSS-sized segment, as on a wire, not a
    64 KiB super-packet whose loss would take 45 segments at once. Returns None, or why it cannot."""
    for argv in (["ip", "link", "set", "dev", ns.veth_root, "gso_max_segs", "1"],
                 ["ip", "-n", ns.name, "link", "set", "dev", ns.veth_ns, "gso_max_segs", "1"]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return "%s: %s" % (" ".join(argv), r.stderr.strip())
    rules = """table inet cvloss {{
  chain in {{ type filter hook input priority 0; policy accept;
    iifname "{dev}" numgen random mod 100 < {p} counter drop; }}
  chain out {{ type filter hook output priority 0; policy accept;
    oifname "{dev}" numgen random mod 100 < {p} counter drop; }}
}}
""".format(dev=ns.veth_ns, p=percent)
    return _nft_load(ns, rules)


def _conn_ids(edge):
    return sorted(x["id"] for k in ha_lib.connectors(edge, "app") for x in k.get("connections", []))


@lib.full_only("seconds of transfers over a lossy link")
@lib.timeout(150)
def test_transfers_over_a_lossy_link_arrive_intact_and_no_connection_is_taken_for_dead(ctx):
    """RELIABILITY.md T-31, smaller: 5% of packets dropped each way on the link between the
    connector and the edge (the origin is across it too). 12 downloads and 12 uploads of 1 MiB, 8
    at a time, all complete with the right bytes; the tunnel connections the edge listed before are
    the ones it lists after (the 1 s heartbeat, 5 misses, never fired), and nothing was reset."""
    with _netns(ctx, "ls") as ns:
        edge, _, origin, c, conn_proc = _stack_across(ctx, ns)
        before = _conn_ids(edge)
        why = _drop_randomly(ns, 5)
        if why is not None:
            ctx.skip("cannot drop packets on the veth: %s" % why)
        size = 1 << 20
        upload = ctx.path("upload.bin")
        data = os.urandom(size)
        lib.write_file(upload, data)
        want_up = {"length": size, "sha256": hashlib.sha256(data).hexdigest()}
        jobs = [j for i in range(12) for j in (("down", i), ("up", i))]
        failures = []
        t0 = time.monotonic()
        while jobs:
            batch, jobs = jobs[:8], jobs[8:]
            running = []
            for kind, i in batch:
                if kind == "down":
                    url, extra = edge.url(HOST, "/bytes?n=%d&seed=%d" % (size, 500 + i)), ()
                else:
                    url, extra = edge.url(HOST, "/upload"), ("--data-binary", "@" + upload)
                running.append((kind, i) + ctx.curl_popen(url, resolve=edge, extra=extra, timeout=60))
            for kind, i, p, body, hdr in running:
                try:
                    rc = p.wait(timeout=70 * ctx.slow)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    rc = "timeout"
                err = p.stderr.read().decode(errors="replace").strip()
                p.stderr.close()
                try:
                    with open(hdr, encoding="latin-1") as f:
                        status, _ = lib.parse_header_block(f.read())
                except OSError:
                    status = None
                what = "%s %d" % ("download" if kind == "down" else "upload", i)
                if rc != 0 or status != 200:
                    failures.append("%s: curl rc %s, status %s, %s" % (what, rc, status, err))
                elif kind == "down" and lib.sha256_file(body) != origin_mod.gen_sha256(size, 500 + i):
                    failures.append("%s: sha256 mismatch (%d bytes)" % (what, os.path.getsize(body)))
                elif kind == "up":
                    with open(body, "rb") as f:
                        got = json.loads(f.read() or b"null")
                    if got != want_up:
                        failures.append("%s: the origin received %r" % (what, got))
                os.unlink(body)
        secs = time.monotonic() - t0
        dropped = _nft_counted(ns, "cvloss")
        ctx.note("24 MiB over the lossy link in %.1fs; %d packets dropped" % (secs, dropped))
        expect(not failures, "transfers over a lossy link failed:\n  " + "\n  ".join(failures))
        expect(dropped >= 100, "only %d packets were dropped: the link was not lossy" % dropped)
        expect_eq(_conn_ids(edge), before, "tunnel connections after the transfers (none replaced)")
        warned = [line for line in lib.tail(conn_proc.log, 400).splitlines()
                  if re.search(r" (WRN|ERR) ", line)]
        expect(not warned, "the connector warned during the transfers:\n%s" % "\n".join(warned))
        edge_log = [line for line in lib.tail(edge.proc.log, 400).splitlines()
                    if re.search(r"heartbeat|reset|lost|PROTOCOL_ERROR", line, re.I)]
        expect(not edge_log, "the edge logged a lost connection or a reset:\n%s" % "\n".join(edge_log))
        _sigterm_exits_0(ctx, conn_proc)


def _cut(ns, on):
    """Drops every packet across the veth, both ways, with no RST or ICMP (on), or stops (off)."""
    if on:
        rules = """table inet cvcut {{
  chain in {{ type filter hook input priority 0; policy accept; iifname "{dev}" drop; }}
  chain out {{ type filter hook output priority 0; policy accept; oifname "{dev}" drop; }}
}}
""".format(dev=ns.veth_ns)
        return _nft_load(ns, rules)
    r = ns.run(["nft", "delete", "table", "inet", "cvcut"])
    expect(r.returncode == 0, "nft delete table: %s" % r.stderr)
    return None


class _Poster:
    """POST /echo?seq=N (a small body) every |interval| s, each on a new TLS connection, from one
    thread; records (seq, start, end, status or None, error)."""

    def __init__(self, ctx, edge, interval=0.1):
        self.ctx = ctx
        self.edge = edge
        self.interval = interval
        self.results = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def alive(self):
        return self.thread.is_alive()

    def stop(self):
        self.stopping.set()
        self.thread.join(30 * self.ctx.slow)

    def _run(self):
        seq = 0
        while not self.stopping.is_set():
            t0 = time.monotonic()
            status, err = None, None
            try:
                s = self.ctx.tls_connect(self.edge.https_port, HOST, timeout=15)
                try:
                    body = b"post %d" % seq
                    s.sendall(b"POST /echo?seq=%d HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                              b"Connection: close\r\n\r\n%s" % (seq, HOST.encode(), len(body), body))
                    resp = lib.RawHTTP(s).read_response()
                    status = resp.status if resp is not None else None
                finally:
                    s.close()
            except (OSError, ValueError, EOFError) as e:
                err = "%s: %s" % (type(e).__name__, e)
            t1 = time.monotonic()
            self.results.append((seq, t0, t1, status, err))
            seq += 1
            self.stopping.wait(max(0.0, self.interval - (t1 - t0)))


@lib.full_only("a partition of several seconds")
@lib.timeout(120)
def test_partition_then_heal_fails_fast_reconnects_and_delivers_no_post_twice(ctx):
    """RELIABILITY.md T-29, with short timers: every packet between the connector and the edge is
    dropped (no RST) for 5 s under a POST every 100 ms, then the link heals. The edge takes the
    connections for dead after its 5 missed 500 ms heartbeats and answers 502 at once from then on;
    requests caught on the dead link are answered by then too; the connector finds both
    connections dead by its own heartbeat in the same time, reconnects once the link is back, and
    POSTs reach the origin again. The
    origin never sees a POST twice."""
    hb, misses = 0.5, 5
    with _netns(ctx, "pt") as ns:
        edge, _, origin, c, conn_proc = _stack_across(ctx, ns, limits={"heartbeat_ms": "500ms"},
                                                      heartbeat="500ms")
        before = _conn_ids(edge)
        poster = _Poster(ctx, edge).start()
        ns.procs.insert(0, poster)  # stopped first if the test fails
        time.sleep(1.0)
        why = _cut(ns, True)
        if why is not None:
            ctx.skip("cannot drop packets on the veth: %s" % why)
        t_cut = time.monotonic()
        t_drop = None
        t_conn_dead = None  # the connector's own heartbeat gave up on both connections
        while time.monotonic() < t_cut + 5.0:
            if t_drop is None and not _conn_ids(edge):
                t_drop = time.monotonic()
            if t_conn_dead is None and lib.tail(conn_proc.log, 200).count("heartbeat lost") >= 2:
                t_conn_dead = time.monotonic()
            time.sleep(0.05)
        _cut(ns, False)
        t_heal = time.monotonic()
        ctx.wait_until(lambda: len(_conn_ids(edge)) == 2, 15 * ctx.slow,
                       "the connector to register both connections again after the heal", interval=0.1)
        t_back = time.monotonic()
        time.sleep(1.0)
        poster.stop()
        res = list(poster.results)
        ctx.note("cut at 0; edge dropped the connections at %s, the connector at %s; healed at %.2f; "
                 "back at %.2f" % ("%.2f" % (t_drop - t_cut) if t_drop else None,
                                   "%.2f" % (t_conn_dead - t_cut) if t_conn_dead else None,
                                   t_heal - t_cut, t_back - t_cut))
        ctx.note("POSTs (seq, start, seconds, status): %s" % " ".join(
            "%d@%.2f+%.2f=%s" % (q, t0 - t_cut, t1 - t0, st) for q, t0, t1, st, _ in res))
        expect(t_drop is not None, "the edge still listed the connections 5 s into the partition")
        drop = t_drop - t_cut
        expect(drop <= (misses + 1) * hb + 0.5 * ctx.slow,
               "the edge took %.2fs to find the link dead (heartbeat %.1fs x %d misses)" % (drop, hb, misses))
        expect(t_conn_dead is not None, "the connector did not find its connections dead by its own "
               "heartbeat within 5 s of the cut")
        # Its pings run on their own phase: up to one more interval than the edge's count.
        expect(t_conn_dead - t_cut <= (misses + 2) * hb + 0.5 * ctx.slow,
               "the connector took %.2fs to find the link dead" % (t_conn_dead - t_cut))
        expect(set(_conn_ids(edge)).isdisjoint(before), "the connections after the heal are new ones")
        expect(t_back - t_heal <= 10 * ctx.slow, "the connector took %.2fs to come back after the heal" % (
            t_back - t_heal))
        # Before the cut: 200. In flight at the cut: ended by the time the edge dropped the link,
        # whichever way (its response may have been cut mid-body: the visitor sees the cut).
        # Started on the dead link: a 502 once the edge dropped it. Started after the drop: 502 at
        # once. After the reconnect: 200 again.
        problems = []
        slack = 0.5 * ctx.slow
        for seq, t0, t1, status, err in res:
            if t1 <= t_cut:
                ok, what = status == 200, "before the cut"
            elif t0 < t_cut:
                ok, what = t_drop is not None and t1 <= t_drop + slack, "in flight at the cut"
            elif t_drop is not None and t0 < t_drop + 0.1:
                ok, what = status == 502 and t1 <= t_drop + slack, "on the dead link"
            elif t0 < t_heal:
                ok, what = status == 502 and t1 - t0 <= slack, "during the outage"
            elif t0 < t_back + 0.2:
                ok, what = status in (200, 502), "while the connector came back"
            else:
                ok, what = status == 200, "after the reconnect"
            if not ok:
                problems.append("seq %d %s: status %s, %s, %.3fs from the cut to its end, %.3fs long" % (
                    seq, what, status, err, t1 - t_cut, t1 - t0))
        expect(not problems, "requests around the partition:\n  " + "\n  ".join(problems))
        outage = [r for r in res if t_drop is not None and t_drop + 0.1 <= r[1] < t_heal]
        after = [r for r in res if r[1] >= t_back + 0.2]
        expect(len(outage) >= 10 and len(after) >= 3, "too few requests in the phases: %d during the "
               "outage, %d after" % (len(outage), len(after)))
        paths = [q["path"] for q in origin.requests() if q["method"] == "POST"]
        twice = sorted(set(p for p in paths if paths.count(p) > 1))
        expect(not twice, "POSTs the origin received twice: %s" % twice)
        # Every POST answered 200 reached the origin. One that reached it without a 200 can only be
        # the one in flight when the link was cut (its answer was lost with the link: a 502).
        reached = set(int(p.rsplit("=", 1)[1]) for p in paths)
        ok = set(q for q, _, _, st, _ in res if st == 200)
        expect(ok <= reached, "POSTs answered 200 that the origin never saw: %s" % sorted(ok - reached))
        in_flight = set(q for q, t0, t1, _, _ in res if t0 < t_cut < t1)
        expect(reached - ok <= in_flight, "POSTs that reached the origin without a 200: %s (in flight at "
               "the cut: %s)" % (sorted(reached - ok), sorted(in_flight)))
        _sigterm_exits_0(ctx, conn_proc)



@lib.timeout(60)
def test_crafted_requests_never_make_the_connector_connect_elsewhere(ctx):
    """RELIABILITY.md T-21: requests built to point the connector at another address (an
    absolute-form target, `@` in the path, CONNECT, jump and rewrite headers, an origin's redirect
    to the cloud metadata address) reach the configured origin or are refused, and the connector
    opens no connection to any other address: inside its namespace, with a default route out of
    the veth so that any address would be reachable, an nft counter of the connection attempts
    (TCP SYN, any UDP) to anything but the edge and the origin's address stays at 0. A connection
    attempt from the namespace afterwards must be counted, or the counter proved nothing."""
    with _netns(ctx, "sf") as ns:
        edge, _, origin, c, conn_proc = _stack_across(ctx, ns)
        r = ns.run(["ip", "route", "add", "default", "via", ns.root_ip])
        expect(r.returncode == 0, "default route in the namespace: %s" % r.stderr)
        rules = """table inet cvssrf {{
  chain out {{ type filter hook output priority 0; policy accept;
    meta nfproto ipv4 ip daddr != {root} tcp flags & (syn | ack) == syn counter
    meta nfproto ipv6 tcp flags & (syn | ack) == syn counter
    meta l4proto udp counter
  }}
}}
""".format(root=ns.root_ip)
        why = _nft_load(ns, rules)
        if why is not None:
            ctx.skip(why)

        def attempts():
            return _nft_counted(ns, "cvssrf")

        meta = "http://169.254.169.254/latest/meta-data/"
        r = edge.get(HOST, "/redirect?to=" + meta)
        expect_eq((r.status, r.header("Location")), (302, meta), "an origin's redirect, relayed as it is")
        answers = {}
        crafted = {
            "absolute-form target": "GET %s HTTP/1.1\r\nHost: %s\r\n" % (meta, HOST),
            "@ in the path": "GET /@169.254.169.254/latest HTTP/1.1\r\nHost: %s\r\n" % HOST,
            "CONNECT": "CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n",
            "jump and rewrite headers": (
                "GET /echo HTTP/1.1\r\nHost: %s\r\nCf-Access-Jump-Destination: 169.254.169.254:80\r\n"
                "X-Forwarded-Host: 169.254.169.254\r\nForwarded: host=169.254.169.254\r\n"
                "X-Original-URL: %s\r\nX-Rewrite-URL: %s\r\n" % (HOST, meta, meta)),
            "culvert-tcp upgrade to an http service": (
                "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: culvert-tcp\r\n" % HOST),
        }
        for what, head in crafted.items():
            resp, rd = ctx.raw_request(edge.https_port, (head + "Connection: close\r\n\r\n").encode(), sni=HOST)
            rd.sock.close()
            answers[what] = resp.status if resp is not None else None
        ctx.note("answers to the crafted requests: %r" % answers)
        expect(all(s is not None for s in answers.values()), "crafted requests without an answer: %r" % answers)
        expect_eq(answers["@ in the path"], 200, "a path with @ goes to the configured origin")
        time.sleep(0.3)
        expect_eq(attempts(), 0, "connection attempts from the connector's namespace to other addresses")
        # The control: an attempt from the namespace to the metadata address is counted.
        ns.run(["curl", "-sS", "--max-time", "1", meta], timeout=10)
        expect(attempts() >= 1, "a connection attempt to 169.254.169.254 from the namespace was not counted")
        _sigterm_exits_0(ctx, conn_proc)
