"""Outbound only (issue 4; PRODUCT.md section 4): the connector runs in a network namespace of its
own, reaching the edge (root namespace) over a veth pair with addresses in 198.18.0.0/15
(RELIABILITY.md §7). Inside the namespace it listens on nothing but its metrics address on loopback,
its only connections are the ones it dialled to the edge (and to its origin), and requests through
the edge still work. Over the same kind of link with 5% of the packets dropped each way
(RELIABILITY.md T-31), parallel downloads and uploads all arrive intact and the heartbeat never takes
a tunnel connection for dead. The namespace and the veth pair are removed at the end, also on failure.
Needs root and iproute2 (and nft for the lossy link); skipped when `ip netns add` is not possible here."""

import hashlib
import json
import os
import re
import signal
import subprocess
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


def _stack_across(ctx, ns, limits=None):
    """An edge in the root namespace taking tunnel connections on the veth address, an origin there
    too, and a connector with two connections inside |ns| serving HOST from that origin. Returns
    (edge, tunnel port, origin, Connector, the connector's process) once both connections are
    registered."""
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
    c.argv = ns.exec_argv(c.argv)
    conn_proc = ctx.spawn(c.name, c.argv, env=c.env)
    conn_proc.is_culvert = True  # `ip netns exec` execs the connector: same PID, same checks
    c.proc = conn_proc

    def registered():
        if not conn_proc.alive():
            raise AssertionError("the connector exited: %s" % lib.tail(conn_proc.log))
        return sum(len(k.get("connections", [])) for k in ha_lib.connectors(edge, "app")) == 2

    try:
        ctx.wait_until(registered, 15, "both connections from the namespace to register", interval=0.1)
    except BaseException:
        conn_proc.stop()  # before the namespace goes
        raise
    return edge, port, origin, c, conn_proc


def _expect_cleaned(ns, problems):
    left = ha_lib.netns_exists(ns.name)
    veth = subprocess.run(["ip", "link", "show", "dev", ns.veth_root], capture_output=True, timeout=10)
    expect(not problems, "cleaning up the namespace: %s" % problems)
    expect(not left, "network namespace %s still exists" % ns.name)
    expect(veth.returncode != 0, "veth %s still exists" % ns.veth_root)


@lib.timeout(60)
def test_connector_in_its_own_netns_listens_only_on_loopback_metrics_and_serves(ctx):
    if os.geteuid() != 0:
        ctx.skip("needs root for ip netns")
    ns = ha_lib.Netns(ctx, "ob")
    conn_proc = None
    try:
        why = ns.create()
        if why is not None:
            ctx.skip("cannot make a network namespace here: %s" % why)
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
        conn_proc.send(signal.SIGTERM)
        rc = conn_proc.wait(10 * ctx.slow)
        expect_eq(rc, 0, "exit code of the connector after SIGTERM")
    finally:
        if conn_proc is not None and conn_proc.alive():
            conn_proc.stop()
        problems = ns.delete()
    _expect_cleaned(ns, problems)


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
    try:
        r = subprocess.run(ns.exec_argv(["nft", "-f", "-"]), input=rules, capture_output=True,
                           text=True, timeout=10)
    except FileNotFoundError:
        return "nft is not installed"
    return None if r.returncode == 0 else "nft: %s" % r.stderr.strip()


def _dropped(ns):
    """Packets the two rules of _drop_randomly dropped so far."""
    r = ns.run(["nft", "list", "table", "inet", "cvloss"])
    expect(r.returncode == 0, "nft list table: %s" % r.stderr)
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", r.stdout))


def _conn_ids(edge):
    return sorted(x["id"] for k in ha_lib.connectors(edge, "app") for x in k.get("connections", []))


@lib.full_only("20 s of transfers over a lossy link")
@lib.timeout(150)
def test_transfers_over_a_lossy_link_arrive_intact_and_no_connection_is_taken_for_dead(ctx):
    """RELIABILITY.md T-31, smaller: 5% of packets dropped each way on the link between the
    connector and the edge (the origin is across it too). 24 downloads and 24 uploads of 1 MiB, 8
    at a time, all complete with the right bytes; the tunnel connections the edge listed before are
    the ones it lists after (the 1 s heartbeat, 5 misses, never fired), and nothing was reset."""
    if os.geteuid() != 0:
        ctx.skip("needs root for ip netns")
    ns = ha_lib.Netns(ctx, "ls")
    conn_proc = None
    try:
        why = ns.create()
        if why is not None:
            ctx.skip("cannot make a network namespace here: %s" % why)
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
        jobs = [("down", i) for i in range(24)] + [("up", i) for i in range(24)]
        jobs = [j for pair in zip(jobs[:24], jobs[24:]) for j in pair]  # interleaved
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
        dropped = _dropped(ns)
        ctx.note("48 MiB over the lossy link in %.1fs; %d packets dropped" % (secs, dropped))
        expect(not failures, "transfers over a lossy link failed:\n  " + "\n  ".join(failures))
        expect(dropped >= 100, "only %d packets were dropped: the link was not lossy" % dropped)
        expect_eq(_conn_ids(edge), before, "tunnel connections after the transfers (none replaced)")
        warned = [line for line in lib.tail(conn_proc.log, 400).splitlines()
                  if re.search(r" (WRN|ERR) ", line)]
        expect(not warned, "the connector warned during the transfers:\n%s" % "\n".join(warned))
        edge_log = [line for line in lib.tail(edge.proc.log, 400).splitlines()
                    if re.search(r"heartbeat|reset|lost|PROTOCOL_ERROR", line, re.I)]
        expect(not edge_log, "the edge logged a lost connection or a reset:\n%s" % "\n".join(edge_log))
        conn_proc.send(signal.SIGTERM)
        rc = conn_proc.wait(10 * ctx.slow)
        expect_eq(rc, 0, "exit code of the connector after SIGTERM")
    finally:
        if conn_proc is not None and conn_proc.alive():
            conn_proc.stop()
        problems = ns.delete()
    _expect_cleaned(ns, problems)

