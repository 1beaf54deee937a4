"""Outbound only (issue 4; PRODUCT.md section 4): the connector runs in a network namespace of its
own, reaching the edge (root namespace) over a veth pair with addresses in 198.18.0.0/15
(RELIABILITY.md §7). Inside the namespace it listens on nothing but its metrics address on loopback,
its only connections are the ones it dialled to the edge (and to its origin), and requests through
the edge still work. The namespace and the veth pair are removed at the end, also on failure.
Needs root and iproute2; skipped when `ip netns add` is not possible here."""

import os
import re
import signal
import subprocess

import ha_lib
import lib
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
        # The edge (root namespace) takes tunnel connections on the veth address, with a tunnel
        # certificate for it from the run's CA (the token pins that CA).
        pki2 = ctx.mkdir("pki2")
        for f in ("ca.pem", "ca.key"):
            with open(os.path.join(ctx.pki, f), "rb") as src:
                lib.write_file(os.path.join(pki2, f), src.read())
        r = subprocess.run(["sh", lib.MKCERT, pki2, "tunnel", "IP:" + ns.root_ip, "IP:127.0.0.1",
                            "DNS:localhost"], cwd=lib.REPO, capture_output=True, timeout=60)
        expect(r.returncode == 0, "mkcert.sh: %s" % r.stderr.decode(errors="replace"))
        edge = ctx.edge(start=False)
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

        ctx.wait_until(registered, 15, "both connections from the namespace to register", interval=0.1)
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
        left = ha_lib.netns_exists(ns.name)
        veth = subprocess.run(["ip", "link", "show", "dev", ns.veth_root], capture_output=True, timeout=10)
    expect(not problems, "cleaning up the namespace: %s" % problems)
    expect(not left, "network namespace %s still exists" % ns.name)
    expect(veth.returncode != 0, "veth %s still exists" % ns.veth_root)
