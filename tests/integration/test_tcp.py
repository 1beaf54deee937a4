"""TCP services through the tunnel (issue 5; PRODUCT.md sections 2-4, PROTOCOL.md 8.6): tcp:// and
ssh:// ingress rules, `culvert-connector access ssh|tcp` (Upgrade: culvert-tcp), public TCP ports on
the edge (edge.yml tcp_ports) with and without PROXY protocol v2, WebSocket clients reaching a TCP
service, error pages, and idle streams.

The TCP origin is tcp_lib.py (an echo port and an "answer" port that replies after the client's
EOF); the SSH server is Debian's OpenSSH on a loopback port with keys made in the test directory."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import lib
import origin as ws
import tcp_lib
from lib import DOMAIN, expect, expect_eq


def h(name):
    return "%s.%s" % (name, DOMAIN)


ECHO, ANSWER, WEB, SSH, PP = h("echo"), h("answer"), h("web"), h("ssh"), h("pp")

MIB = 1024 * 1024


class TcpSetup:
    """An edge, a tunnel "tcp" routed from ECHO and ANSWER (plus |routes|), tcp_lib's origin and a
    connector with the rules ECHO -> echo port, ANSWER -> answer port, then |rules(origin)|, then
    a 404 catch-all. |web|: also origin.py behind WEB (an HTTP-only hostname)."""

    def __init__(self, ctx, edge_kw=None, rules=None, routes=(), web=False, tcp_ports=None, ha=2,
                 conn_kw=None):
        self.ctx = ctx
        kw = dict(edge_kw or {})
        if tcp_ports:
            kw.setdefault("extra", {})["tcp_ports"] = tcp_ports
        self.edge = ctx.edge(**kw)
        self.origin = tcp_lib.TcpOrigin(ctx)
        self.web = ctx.origin("web") if web else None
        hosts = [ECHO, ANSWER] + ([WEB] if web else []) + list(routes)
        self.tunnel = self.edge.tunnel_with_route("tcp", hosts)
        ingress = [{"hostname": ECHO, "service": self.origin.echo_url},
                   {"hostname": ANSWER, "service": self.origin.answer_url}]
        if web:
            ingress.append({"hostname": WEB, "service": self.web.url})
        ingress += list(rules(self.origin) if rules else [])
        ingress.append({"service": "http_status:404"})
        self.connector = ctx.connector(self.edge, self.tunnel["token"], ingress=ingress, ha=ha,
                                       **(conn_kw or {}))

    def access(self, hostname, name="access", **kw):
        return tcp_lib.Access(self.ctx, self.edge, hostname, name=name, **kw)


def sizes(ctx, full, reduced):
    return reduced if ctx.reduced else full


def connect_port(ctx, port, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout * ctx.slow)


def closed_at_once(ctx, port, send=b"hello"):
    """Connects to |port|, sends |send| and reads: (seconds until EOF or reset, bytes, how)."""
    s = connect_port(ctx, port)
    try:
        t0 = time.monotonic()
        try:
            s.sendall(send)
        except OSError:
            pass
        s.settimeout(5 * ctx.slow)
        got, how = tcp_lib.recv_all(s)
        return time.monotonic() - t0, got, how
    finally:
        s.close()


# ---- 1. a real OpenSSH server behind an ssh:// rule --------------------------------------------


def start_sshd(ctx):
    """sshd on a free loopback port, key login only, host and user keys in the test directory.
    Returns (port, user key path)."""
    sshd = "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        ctx.skip("openssh-server is not installed (no /usr/sbin/sshd)")
    d = ctx.mkdir("ssh")
    os.chmod(d, 0o700)
    for k in ("host_ed25519", "user_ed25519"):
        ctx.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", os.path.join(d, k)], check=0)
    with open(os.path.join(d, "user_ed25519.pub")) as f:
        lib.write_file(os.path.join(d, "authorized_keys"), f.read(), 0o600)
    if not os.path.isdir("/run/sshd"):
        # The privilege separation directory the package creates at boot; left in place.
        os.makedirs("/run/sshd", 0o755, exist_ok=True)
    port = lib.free_port()
    cfg = lib.write_file(os.path.join(d, "sshd_config"), """# written by tests/integration/test_tcp.py
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_ed25519
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
PrintLastLog no
UseDNS no
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
""".format(port=port, d=d))
    ctx.run([sshd, "-t", "-f", cfg], check=0)
    p = ctx.spawn("sshd", [sshd, "-D", "-e", "-f", cfg])
    p.wait_log(r"Server listening on 127\.0\.0\.1 port %d" % port, 10)
    return port, os.path.join(d, "user_ed25519")


def ssh_options(ctx, edge, key):
    proxy = "%s access ssh --hostname %%h --edge-url https://127.0.0.1:%d --edge-ca %s" % (
        ctx.connector_bin, edge.https_port, os.path.join(ctx.pki, "ca.pem"))
    return ["-F", "/dev/null", "-i", key, "-o", "ProxyCommand=" + proxy, "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=10", "-o", "LogLevel=ERROR"]


def no_sanitizer_report(r, what):
    """The access client runs as ssh's ProxyCommand: its stderr is ssh's."""
    for m in lib.SANITIZER_MARKERS:
        expect(m not in r.stderr, "%s: sanitizer report from the access client:\n%s" % (what, r.stderr[-3000:]))


def write_random_file(path, size):
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            b = os.urandom(min(left, 4 * MIB))
            f.write(b)
            h.update(b)
            left -= len(b)
    return h.hexdigest()


@lib.timeout(120)
def test_ssh_command_and_scp_both_ways_through_access_ssh(ctx):
    port, key = start_sshd(ctx)
    edge = ctx.edge()
    t = edge.tunnel_with_route("ssh", [SSH])
    ctx.connector(edge, t["token"], ingress=[{"hostname": SSH, "service": "ssh://127.0.0.1:%d" % port},
                                             {"service": "http_status:404"}])
    opts = ssh_options(ctx, edge, key)
    r = ctx.run(["ssh"] + opts + ["root@" + SSH, "echo", "hello"], timeout=30)
    no_sanitizer_report(r, "ssh echo hello")
    expect_eq((r.returncode, r.stdout), (0, "hello\n"),
              "ssh through `access ssh` running `echo hello` (stderr: %s)" % r.stderr[-1500:])
    # A hostname the edge does not know: ssh fails, and the access client's message says why.
    r = ctx.run(["ssh"] + opts + ["root@" + h("nowhere"), "true"], timeout=30)
    no_sanitizer_report(r, "ssh to an unknown hostname")
    expect(r.returncode != 0, "ssh to an unknown hostname succeeded")
    expect("culvert-connector access:" in r.stderr and "404" in r.stderr,
           "ssh to an unknown hostname: the access client did not say why (stderr: %s)" % r.stderr[-1500:])

    size = sizes(ctx, 200 * MIB, 8 * MIB)
    src = ctx.path("ssh", "upload.bin")
    want = write_random_file(src, size)
    remote = ctx.path("ssh", "remote.bin")
    t0 = time.monotonic()
    r = ctx.run(["scp", "-q"] + opts + [src, "root@%s:%s" % (SSH, remote)], timeout=90)
    up = time.monotonic() - t0
    no_sanitizer_report(r, "scp upload")
    expect_eq(r.returncode, 0, "scp of %d bytes to the server (stderr: %s)" % (size, r.stderr[-1500:]))
    expect_eq(os.path.getsize(remote), size, "size of the uploaded file at the server")
    expect_eq(lib.sha256_file(remote), want, "sha256 of the uploaded file at the server")
    os.unlink(src)

    back = ctx.path("ssh", "download.bin")
    t0 = time.monotonic()
    r = ctx.run(["scp", "-q"] + opts + ["root@%s:%s" % (SSH, remote), back], timeout=90)
    down = time.monotonic() - t0
    no_sanitizer_report(r, "scp download")
    expect_eq(r.returncode, 0, "scp of %d bytes from the server (stderr: %s)" % (size, r.stderr[-1500:]))
    expect_eq(os.path.getsize(back), size, "size of the downloaded file")
    expect_eq(lib.sha256_file(back), want, "sha256 of the downloaded file")
    ctx.note("scp %d bytes: up %.2fs (%.0f MiB/s), down %.2fs (%.0f MiB/s)" % (
        size, up, size / MIB / up, down, size / MIB / down))
    os.unlink(back)
    os.unlink(remote)


# ---- 2. access tcp with a plain TCP origin ---------------------------------------------------


@lib.timeout(90)
def test_access_tcp_parallel_connections_echo_byte_exact(ctx):
    st = TcpSetup(ctx)
    acc = st.access(ECHO)
    count, size = sizes(ctx, (100, MIB), (20, 256 * 1024))
    problems, secs = tcp_lib.echo_parallel(acc.connect, count, size, timeout=40 * ctx.slow)
    ctx.note("%d x %d bytes echoed in %.2fs" % (count, size, secs))
    expect(not problems, "%d of %d connections through access tcp failed:\n  %s" % (
        len(problems), count, "\n  ".join(sorted(problems)[:20])))
    opens = st.origin.events("open", port="echo")
    expect_eq(len(opens), count, "connections at the echo origin")
    expect(all(e["proxy"] is None for e in opens), "a PROXY header without proxyProtocol: %r" %
           [e["proxy"] for e in opens if e["proxy"]][:3])
    # Every client closed: each origin connection ends too (close_notify -> END_STREAM -> FIN).
    ctx.wait_until(lambda: len(st.origin.events("close", port="echo")) == count, 10,
                   "all %d origin connections to close after their clients did" % count)
    bad = [e for e in st.origin.events("close") if e["n"] != size]
    expect(not bad, "origin connections that did not receive exactly %d bytes: %r" % (size, bad[:5]))


@lib.timeout(60)
def test_access_tcp_half_close_reaches_origin_and_answer_arrives(ctx):
    st = TcpSetup(ctx)
    acc = st.access(ANSWER, name="access-answer")
    size = sizes(ctx, MIB, 256 * 1024)
    data = tcp_lib.pattern_bytes(size, 7)
    s = acc.connect()
    try:
        got, how = tcp_lib.half_close_exchange(s, data, 20 * ctx.slow)
    finally:
        s.close()
    p = tcp_lib.check_answer(got, how, data, "answer after shutdown(SHUT_WR) through access tcp")
    expect(p is None, p)
    ev = [e for e in st.origin.events("eof", port="answer")]
    expect_eq([e["n"] for e in ev], [size], "bytes the answer origin had at the client's EOF")

    # Nothing sent, shutdown at once (possibly before the edge's 101 reached the access client).
    s = acc.connect()
    try:
        got, how = tcp_lib.half_close_exchange(s, b"", 20 * ctx.slow)
    finally:
        s.close()
    p = tcp_lib.check_answer(got, how, b"", "answer to an empty half-closed connection")
    expect(p is None, p)

    # The echo origin: every byte comes back after our half-close, then its own FIN.
    acc2 = st.access(ECHO, name="access-echo")
    data = tcp_lib.pattern_bytes(size, 8)
    s = acc2.connect()
    try:
        got, how = tcp_lib.half_close_exchange(s, data, 20 * ctx.slow)
    finally:
        s.close()
    expect(got == data and how == "eof", "echo after half-close: %d of %d bytes back, read ended by %s" % (
        len(got), len(data), how))


@lib.timeout(60)
def test_culvert_tcp_upgrade_raw_pipe_and_close_notify_half_close(ctx):
    """The edge's side of `Upgrade: culvert-tcp` without the access client: 101 (with the request id)
    once the connector connected, then raw bytes; our close_notify ends our direction only."""
    st = TcpSetup(ctx)
    c = tcp_lib.CulvertTcpClient(ctx, st.edge.https_port, ANSWER)
    try:
        r = c.upgrade()
        expect(r is not None, "no answer to the culvert-tcp upgrade")
        expect_eq(r.status, 101, "culvert-tcp upgrade status (body %r)" % (r.body[:300] if r else b""))
        expect_eq((r.header("Upgrade") or "").lower(), "culvert-tcp", "Upgrade on the 101")
        expect(r.header("Culvert-Request-Id"), "no Culvert-Request-Id on the 101")
        data = tcp_lib.pattern_bytes(sizes(ctx, 512 * 1024, 64 * 1024), 51)
        c.send(data)
        c.shutdown_write()
        got, how = c.recv_all()
    finally:
        c.close()
    want = tcp_lib.expected_answer(data)
    expect(got == want, "answer after our close_notify: %d of %d bytes, first line %r" % (
        len(got), len(want), got.split(b"\n", 1)[0][:100]))
    expect_eq(how, "close_notify", "how the edge ended its direction after the service's FIN")

    c = tcp_lib.CulvertTcpClient(ctx, st.edge.https_port, ECHO)
    try:
        expect_eq(c.upgrade().status, 101, "culvert-tcp upgrade to the echo service")
        for i in range(20):
            msg = b"line %d\n" % i
            c.send(msg)
            got = c.buf
            c.buf = b""
            while len(got) < len(msg):
                d = c.read_some()
                expect(d, "the echo ended after %r" % got)
                got += d
            expect_eq(got, msg, "echo %d over the raw culvert-tcp pipe" % i)
        c.shutdown_write()
        got, how = c.recv_all()
        expect_eq((got, how), (b"", "close_notify"), "the echo service's end after our close_notify")
    finally:
        c.close()


@lib.timeout(60)
def test_ssh_and_rdp_rules_carry_any_tcp(ctx):
    rdp = h("rdp")
    st = TcpSetup(ctx, routes=[SSH, rdp], rules=lambda o: [
        {"hostname": SSH, "service": "ssh://127.0.0.1:%d" % o.echo_port},
        {"hostname": rdp, "service": "rdp://127.0.0.1:%d" % o.answer_port}])
    size = sizes(ctx, 256 * 1024, 64 * 1024)
    a_ssh = st.access(SSH, name="access-ssh-rule")
    s = a_ssh.connect()
    try:
        s.settimeout(20 * ctx.slow)
        p = tcp_lib.echo_once(s, tcp_lib.pattern_bytes(size, 61), "echo behind an ssh:// rule")
        expect(p is None, p)
    finally:
        s.close()
    a_rdp = st.access(rdp, name="access-rdp-rule")
    data = tcp_lib.pattern_bytes(size, 62)
    s = a_rdp.connect()
    try:
        got, how = tcp_lib.half_close_exchange(s, data, 20 * ctx.slow)
    finally:
        s.close()
    p = tcp_lib.check_answer(got, how, data, "answer behind an rdp:// rule")
    expect(p is None, p)


@lib.timeout(60)
def test_access_tcp_slow_reader_backpressure(ctx):
    """A client that stops reading while the echo service keeps sending: nothing is lost, and the
    edge, connector and access client hold only their windows' worth (PRODUCT.md section 4)."""
    st = TcpSetup(ctx)
    acc = st.access(ECHO)
    size = sizes(ctx, 64 * MIB, 4 * MIB)
    data = tcp_lib.pattern_bytes(size, 71)
    s = acc.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sampler = lib.MemSampler({"edge": st.edge.proc.pid, "connector": st.connector.proc.pid,
                              "access": acc.proc.pid})
    before = {n: lib.proc_status_kib(p).get("VmRSS", 0) for n, p in sampler.pids.items()}
    sampler.start()
    sent = [0]
    err = []

    def send():
        try:
            mv = memoryview(data)
            for off in range(0, size, 65536):
                s.sendall(mv[off:off + 65536])
                sent[0] = off + len(mv[off:off + 65536])
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        time.sleep(2.0)  # not reading: every buffer on the way fills, then the sender must stop
        held = sent[0]  # what kernel buffers and the processes took (noted; kernel sizes vary)
        s.settimeout(30 * ctx.slow)
        got = tcp_lib.recv_exact(s, size)
        t.join(30)
    finally:
        s.close()
        mem = sampler.stop()
    ctx.note("slow reader: %d of %d bytes taken while not reading; RSS %r (before %r)" % (held, size, mem, before))
    expect(not err, "sending failed: %s" % (err[:1],))
    expect(got == data, "slow reader: %d of %d bytes back, byte-exact: %s" % (len(got), size, got == data[:len(got)]))
    if not ctx.reduced:
        for n, m in mem.items():
            growth = (m["max_rss_kib"] - before[n]) / 1024.0
            expect(growth < 16, "%s grew by %.1f MiB while %.1f MiB waited behind a slow reader" % (
                n, growth, held / MIB))


@lib.timeout(60)
def test_access_ssh_on_a_socket_passes_the_services_half_close(ctx):
    """stdin and stdout one socket (socat's EXEC, inetd, systemd Accept=yes): the service ending its
    direction first must reach the local side as a FIN while the local side still sends. Closing
    fd 1 alone ends nothing while fd 0 holds the same socket."""
    greet = h("greet")
    st = TcpSetup(ctx, routes=[greet], ha=1,
                  rules=lambda o: [{"hostname": greet, "service": o.greet_url}])
    argv = [ctx.connector_bin, "access", "ssh", "--hostname", greet, "--edge-url",
            "https://127.0.0.1:%d" % st.edge.https_port, "--edge-ca", os.path.join(ctx.pki, "ca.pem")]
    mine, theirs = socket.socketpair()
    errf = open(ctx.path("access-ssh.stderr"), "w+b")
    try:
        p = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=errf, env=ctx.env, cwd=ctx.dir)
        ctx.aux.append(p)
        theirs.close()
        mine.settimeout(10 * ctx.slow)
        got, how = tcp_lib.recv_all(mine)
        expect_eq((got, how), (b"greet 1\n", "eof"),
                  "the greeting and the service's FIN on the access client's stdout (a socket)")
        data = tcp_lib.pattern_bytes(256 * 1024, 81)
        mine.sendall(data)  # our direction is still open
        mine.shutdown(socket.SHUT_WR)
        ctx.wait_until(lambda: st.origin.events("eof", port="greet"), 10 * ctx.slow,
                       "the service to see our EOF")
        ev = st.origin.events("eof", port="greet")[0]
        expect_eq((ev["n"], ev["sha256"]), (len(data), hashlib.sha256(data).hexdigest()),
                  "bytes the service got after its own FIN")
        try:
            rc = p.wait(10 * ctx.slow)
        except subprocess.TimeoutExpired:
            rc = None
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace")
        expect_eq(rc, 0, "access ssh's exit code once both directions ended (stderr: %s)" % err[-2000:])
        for m in lib.SANITIZER_MARKERS:
            expect(m not in err, "sanitizer report from access ssh:\n%s" % err[-3000:])
    finally:
        mine.close()
        errf.close()


# ---- 3. public TCP ports on the edge --------------------------------------------------------


@lib.timeout(60)
def test_access_tcp_moves_to_the_next_edge_address_after_a_connect_timeout(ctx):
    """The edge's name has two addresses and the first takes connections but never answers TLS
    (a dead edge behind DNS round robin): each connection moves on to the second address after
    --connect-timeout, as it does when the first one refuses, and says so. The access client
    runs in a network namespace of its own, whose /etc/hosts (ip netns exec mounts
    /etc/netns/NAME/hosts) gives the name both addresses (198.18.0.0/15, RELIABILITY.md §7)."""
    import ha_lib

    if os.geteuid() != 0:
        ctx.skip("needs root for ip netns")
    st = TcpSetup(ctx)
    hosts = lambda ns: {"hosts": "127.0.0.1 localhost\n%s edge.multi.test\n%s edge.multi.test\n" % (
        ns.ns_ip, ns.root_ip)}
    with ha_lib.netns_with_etc(ctx, "ax", hosts) as ns:
        # The edge, reached from the namespace at the root side of the veth pair.
        relay = ha_lib.Relay(ctx, st.edge.https_port, 0, listen_host=ns.root_ip)
        # The dead address: the namespace's own, same port, accepting and silent.
        silent = ctx.spawn("silent", ns.exec_argv([
            sys.executable, "-c",
            "import socket, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind((%r, %d)); s.listen(64); print('silent up', flush=True); held = []\n"
            "while True:\n    held.append(s.accept()[0])\n" % (ns.ns_ip, relay.port)]))
        silent.wait_log("silent up", 10)
        port = lib.free_port()
        acc = ctx.spawn("access", ns.exec_argv([
            ctx.connector_bin, "access", "tcp", "--hostname", ECHO, "--url", "%s:%d" % (ns.ns_ip, port),
            "--edge-url", "https://edge.multi.test:%d" % relay.port,
            "--edge-ca", os.path.join(ctx.pki, "ca.pem"), "--connect-timeout", "1s",
            "--loglevel", "info"]))
        acc.wait_log("listening on", 10)
        for i in range(2):
            s = socket.create_connection((ns.ns_ip, port), timeout=10 * ctx.slow)
            try:
                s.settimeout(10 * ctx.slow)
                data = tcp_lib.pattern_bytes(64 * 1024, i)
                tcp_lib.echo_once(s, data, "echo #%d through the second address" % i)
            finally:
                s.close()
        expect(re.search(r"edge address %s:%d: .*timed out; trying the next address" % (
            re.escape(ns.ns_ip), relay.port), acc.text()),
               "the access client did not try the silent address first:\n%s" % acc.text()[-2000:])
        acc.stop()
        silent.stop()
        relay.stop()


def tcp_port(listen_port, hostname, tunnel="tcp"):
    return {"listen": "127.0.0.1:%d" % listen_port, "tunnel": tunnel, "hostname": hostname}


@lib.timeout(60)
def test_public_tcp_port_echo_and_half_close(ctx):
    p_echo, p_answer = lib.free_ports(2)
    st = TcpSetup(ctx, tcp_ports=[tcp_port(p_echo, ECHO), tcp_port(p_answer, ANSWER)])
    ctx.wait_until(lambda: not closed_quickly_probe(ctx, p_echo), 10,
                   "the public TCP port to carry connections once the connector is up")
    count, size = sizes(ctx, (10, MIB), (5, 256 * 1024))
    problems, secs = tcp_lib.echo_parallel(lambda: connect_port(ctx, p_echo), count, size, 30 * ctx.slow)
    ctx.note("public port: %d x %d bytes echoed in %.2fs" % (count, size, secs))
    expect(not problems, "echo through the public TCP port:\n  " + "\n  ".join(problems[:20]))

    data = tcp_lib.pattern_bytes(sizes(ctx, MIB, 256 * 1024), 11)
    s = connect_port(ctx, p_answer)
    try:
        got, how = tcp_lib.half_close_exchange(s, data, 20 * ctx.slow)
    finally:
        s.close()
    p = tcp_lib.check_answer(got, how, data, "answer after shutdown(SHUT_WR) on the public TCP port")
    expect(p is None, p)

    s = connect_port(ctx, p_echo)
    try:
        got, how = tcp_lib.half_close_exchange(s, data, 20 * ctx.slow)
    finally:
        s.close()
    expect(got == data and how == "eof", "echo after half-close on the public port: %d of %d bytes, %s" % (
        len(got), len(data), how))
    expect(all(e["proxy"] is None for e in st.origin.events("open")),
           "a PROXY header reached the origin without proxyProtocol: %r" %
           [e["proxy"] for e in st.origin.events("open") if e["proxy"]][:3])


def closed_quickly_probe(ctx, port):
    """True when a connection to the echo |port| does not echo a probe (the path is not up yet)."""
    s = connect_port(ctx, port)
    try:
        s.settimeout(3 * ctx.slow)
        s.sendall(b"probe\n")
        got = tcp_lib.recv_exact(s, 6)
        return got != b"probe\n"
    except OSError:
        return True
    finally:
        s.close()


@lib.timeout(60)
def test_public_tcp_port_proxy_protocol_v2(ctx):
    p_pp, p_plain = lib.free_ports(2)
    st = TcpSetup(ctx, tcp_ports=[tcp_port(p_pp, PP), tcp_port(p_plain, ECHO)], routes=[PP],
                  rules=lambda o: [{"hostname": PP, "service": o.echo_url,
                                    "originRequest": {"proxyProtocol": "v2"}}])
    ctx.wait_until(lambda: not closed_quickly_probe(ctx, p_plain), 10, "the plain public TCP port to echo")
    size = sizes(ctx, 256 * 1024, 64 * 1024)

    # With proxyProtocol v2: the header names the visitor's address and port, then the bytes.
    s = connect_port(ctx, p_pp)
    try:
        s.settimeout(20 * ctx.slow)
        me = s.getsockname()
        data = b"PP-1 " + tcp_lib.pattern_bytes(size, 21)
        p = tcp_lib.echo_once(s, data, "echo with PROXY v2")
        expect(p is None, p)
    finally:
        s.close()
    ev = st.origin.event_by_head("PP-1 ")
    expect(ev is not None, "the origin did not record the PROXY v2 connection: %r" % st.origin.events())
    pp = ev["proxy"]
    expect(pp is not None, "no PROXY v2 header at the origin with proxyProtocol: v2")
    expect("error" not in pp, "malformed PROXY v2 header: %s" % pp.get("error"))
    expect_eq((pp["version"], pp["command"]), (2, "PROXY"), "PROXY v2 version and command")
    expect(pp["family"] in ("TCP4", "TCP6"), "PROXY v2 family %r" % pp["family"])
    src = [tcp_lib.unmap_v4(pp["src"][0]), pp["src"][1]]
    expect_eq(src, [me[0], me[1]], "PROXY v2 source: the visitor's address and port")
    dst = [tcp_lib.unmap_v4(pp["dst"][0]), pp["dst"][1]]
    expect_eq(dst, ["127.0.0.1", st.origin.echo_port], "PROXY v2 destination (origin_tcp.h: the target)")

    # The same origin behind a rule without proxyProtocol: no header.
    s = connect_port(ctx, p_plain)
    try:
        s.settimeout(20 * ctx.slow)
        p = tcp_lib.echo_once(s, b"PLAIN-1 " + tcp_lib.pattern_bytes(size, 22), "echo without PROXY")
        expect(p is None, p)
    finally:
        s.close()
    ev = st.origin.event_by_head("PLAIN-1 ")
    expect(ev is not None, "the origin did not record the plain connection")
    expect_eq(ev["proxy"], None, "PROXY header on a rule without proxyProtocol")

    # Through the access client, the header names the access client's address as the edge saw it.
    acc = st.access(PP)
    s = acc.connect()
    try:
        s.settimeout(20 * ctx.slow)
        p = tcp_lib.echo_once(s, b"PP-2 " + tcp_lib.pattern_bytes(size, 23), "echo with PROXY v2 via access")
        expect(p is None, p)
    finally:
        s.close()
    ev = st.origin.event_by_head("PP-2 ")
    expect(ev is not None and ev["proxy"] is not None and "error" not in ev["proxy"],
           "PROXY v2 header through access tcp: %r" % (ev,))
    expect_eq(tcp_lib.unmap_v4(ev["proxy"]["src"][0]), "127.0.0.1", "PROXY v2 source address via access tcp")
    expect(ev["proxy"]["src"][1] not in (0, acc.port), "PROXY v2 source port via access tcp: %r" % ev["proxy"])


@lib.timeout(60)
def test_public_tcp_port_before_its_tunnel_exists(ctx):
    origin = tcp_lib.TcpOrigin(ctx)
    port = lib.free_port()
    edge = ctx.edge(extra={"tcp_ports": [tcp_port(port, ECHO, tunnel="late")]})
    secs, got, how = closed_at_once(ctx, port)
    expect(got == b"" and secs < 1.5 * ctx.slow,
           "a tcp_port whose tunnel does not exist: expected a close at once, got %r after %.2fs (%s)" % (
               got[:100], secs, how))
    edge.proc.wait_log(r'tunnel "late" does not exist', 5)

    t = edge.create_tunnel("late")
    secs, got, how = closed_at_once(ctx, port)
    expect(got == b"" and secs < 1.5 * ctx.slow,
           "a tcp_port whose tunnel has no connector: expected a close at once, got %r after %.2fs (%s)" % (
               got[:100], secs, how))
    edge.proc.wait_log(r"no connector online", 5)
    expect_eq(origin.events(), [], "origin events before any connector")

    ctx.connector(edge, t["token"], ingress=[{"hostname": ECHO, "service": origin.echo_url},
                                             {"service": "http_status:404"}])
    ctx.wait_until(lambda: not closed_quickly_probe(ctx, port), 10,
                   "the tcp_port to carry connections once the tunnel and a connector exist")
    data = tcp_lib.pattern_bytes(sizes(ctx, MIB, 256 * 1024), 31)
    s = connect_port(ctx, port)
    try:
        got, how = tcp_lib.half_close_exchange(s, data, 20 * ctx.slow)
    finally:
        s.close()
    expect(got == data and how == "eof", "echo and half-close on the late tunnel's port: %d of %d bytes, %s" % (
        len(got), len(data), how))


@lib.timeout(60)
def test_public_tcp_ports_follow_a_reload(ctx):
    """SIGHUP (PRODUCT.md section 4): a kept port takes its new hostname, a new port opens, a removed
    one stops accepting; a connection in progress on a kept port goes on."""
    pa, pb = lib.free_ports(2)
    st = TcpSetup(ctx, tcp_ports=[tcp_port(pa, ECHO)])
    ctx.wait_until(lambda: not closed_quickly_probe(ctx, pa), 10, "port A to echo")
    s = connect_port(ctx, pa)
    try:
        s.settimeout(10 * ctx.slow)
        p = tcp_lib.echo_once(s, b"before the reload", "echo on A before the reload")
        expect(p is None, p)

        st.edge.cfg["tcp_ports"] = [tcp_port(pa, ANSWER), tcp_port(pb, ECHO)]
        st.edge.write_config()
        start = st.edge.proc.log_size()
        st.edge.proc.send(signal.SIGHUP)
        st.edge.proc.wait_log(r"configuration reloaded", 5, start)

        p = tcp_lib.echo_once(s, b"after the reload", "echo on A's connection opened before the reload")
        expect(p is None, p)
        data = tcp_lib.pattern_bytes(64 * 1024, 81)
        s2 = connect_port(ctx, pa)
        try:
            got, how = tcp_lib.half_close_exchange(s2, data, 10 * ctx.slow)
        finally:
            s2.close()
        p = tcp_lib.check_answer(got, how, data, "port A after its hostname changed to the answer service")
        expect(p is None, p)
        expect(not closed_quickly_probe(ctx, pb), "the port added by the reload does not echo")

        st.edge.cfg["tcp_ports"] = [tcp_port(pb, ECHO)]
        st.edge.write_config()
        start = st.edge.proc.log_size()
        st.edge.proc.send(signal.SIGHUP)
        st.edge.proc.wait_log(r"configuration reloaded", 5, start)
        try:
            x = connect_port(ctx, pa, timeout=2)
            x.close()
            raise AssertionError("port A still accepts connections after the reload removed it")
        except ConnectionRefusedError:
            pass
        expect(not closed_quickly_probe(ctx, pb), "port B stopped echoing after an unrelated reload")
    finally:
        s.close()


@lib.timeout(60)
def test_unreachable_tcp_target_gives_clear_errors(ctx):
    dead = h("dead")
    closed = lib.free_port()
    p_dead = lib.free_port()
    st = TcpSetup(ctx, routes=[dead], tcp_ports=[tcp_port(p_dead, dead)],
                  rules=lambda o: [{"hostname": dead, "service": "tcp://127.0.0.1:%d" % closed}])
    # culvert-tcp: an error page instead of the 101.
    c = tcp_lib.CulvertTcpClient(ctx, st.edge.https_port, dead)
    try:
        r = c.upgrade()
    finally:
        c.close()
    expect(r is not None, "no answer to a culvert-tcp upgrade for an unreachable service")
    expect_eq(r.status, 502, "culvert-tcp upgrade to an unreachable service (body %r)" % r.body[:300])
    rid = r.header("Culvert-Request-Id")
    expect(rid and rid.encode() in r.body, "the 502 page does not name the request id %r: %r" % (rid, r.body[:500]))
    expect(b"could not reach" in r.body, "the 502 page does not say the service could not be reached: %r" %
           r.body[:500])
    # A WebSocket client: the same 502, never a 101.
    s = ctx.tls_connect(st.edge.https_port, dead)
    try:
        w = lib.WebSocket(s)
        r = w.handshake(dead, "/")
    finally:
        s.close()
    expect(r is not None and r.status == 502, "WebSocket to an unreachable TCP service: %r" % (r,))
    # access tcp: the edge's answer on stderr, the local connection closed.
    acc = st.access(dead)
    start = acc.proc.log_size()
    s = acc.connect()
    try:
        s.settimeout(10 * ctx.slow)
        got, how = tcp_lib.recv_all(s)
    finally:
        s.close()
    expect(got == b"" and how in ("eof", "reset"), "access tcp to an unreachable service: got %r (%s)" % (
        got[:200], how))
    line = acc.proc.wait_log(r"culvert-connector access: .*dead\.culvert\.test.*", 5, start).group(0)
    expect("502" in line and "could not reach" in line, "access tcp's message for an unreachable service: %r" % line)
    expect_eq(acc.proc.stop(), 0, "access tcp's exit code after SIGTERM (a failed connection is not fatal)")
    # The public TCP port: closed at once.
    secs, got, how = closed_at_once(ctx, p_dead)
    expect(got == b"" and secs < 2 * ctx.slow, "public TCP port to an unreachable service: %r after %.2fs (%s)" % (
        got[:100], secs, how))


# ---- 4. WebSocket clients to a TCP service ----------------------------------------------------


def ws_open(ctx, st, host):
    s = ctx.tls_connect(st.edge.https_port, host)
    w = lib.WebSocket(s)
    r = w.handshake(host, "/")
    expect(r is not None, "%s: no answer to the WebSocket handshake" % host)
    expect_eq(r.status, 101, "%s: WebSocket handshake status (body %r)" % (host, r.body[:300]))
    expect(r.accept_ok, "%s: Sec-WebSocket-Accept %r does not answer the key %r" % (
        host, r.header("Sec-WebSocket-Accept"), w.key))
    expect_eq((r.header("Upgrade") or "").lower(), "websocket", "%s: Upgrade on the 101" % host)
    return w


def ws_read_data(w, n=None, timeout=10):
    """Reads data frames until |n| payload bytes (or, with n None, until a Close frame).
    Returns (payload, close frame payload or None)."""
    parts = []
    got = 0
    while n is None or got < n:
        fin, op, masked, payload = w.recv_frame(timeout)
        expect(not masked, "a frame from the edge arrived masked")
        if op == ws.WS_CLOSE:
            return b"".join(parts), payload
        if op in (ws.WS_PING, ws.WS_PONG):
            continue
        expect(op in (ws.WS_BINARY, ws.WS_CONT), "unexpected frame opcode %d" % op)
        parts.append(payload)
        got += len(payload)
    return b"".join(parts), None


@lib.timeout(60)
def test_websocket_client_to_tcp_service(ctx):
    st = TcpSetup(ctx)
    size = sizes(ctx, 512 * 1024, 64 * 1024)
    w = ws_open(ctx, st, ECHO)
    try:
        data = tcp_lib.pattern_bytes(size, 41)
        # Binary frames of several sizes; the bytes come back framed however the connector likes.
        cuts = [0, 1, 126, 65536 + 3, len(data)]
        for a, b in zip(cuts, cuts[1:]):
            w.send_binary(data[a:b])
        got, close = ws_read_data(w, len(data), timeout=20 * ctx.slow)
        expect(close is None, "Close frame %r before the echo was complete" % (close,))
        expect_eq((len(got), hashlib.sha256(got).hexdigest()), (len(data), hashlib.sha256(data).hexdigest()),
                  "bytes echoed through the WebSocket")
        w.ping(b"are you there")
        fin, op, _, payload = w.recv_frame(5 * ctx.slow)
        expect_eq((op, payload), (ws.WS_PONG, b"are you there"), "the answer to a ping")
        # Our Close ends our direction: the echo origin sees EOF, closes, and that becomes a Close.
        w.close(1000, "bye")
        rest, close = ws_read_data(w, None, timeout=10 * ctx.slow)
        expect_eq(rest, b"", "data after our Close on the echo service")
        expect(close is not None, "no Close frame after the echo service ended")
        expect(w.closed_after(5 * ctx.slow), "the edge kept the connection open after the Close handshake")
    finally:
        w.sock.close()

    # The answer service replies only after our Close: its answer must still arrive, then a Close.
    w = ws_open(ctx, st, ANSWER)
    try:
        data = tcp_lib.pattern_bytes(size, 42)
        for off in range(0, len(data), 100000):
            w.send_binary(data[off:off + 100000])
        w.close(1000, "done sending")
        got, close = ws_read_data(w, None, timeout=20 * ctx.slow)
        want = tcp_lib.expected_answer(data)
        expect(got == want, "answer after our Close: %d of %d bytes, first line %r" % (
            len(got), len(want), got.split(b"\n", 1)[0][:100]))
        expect(close is not None, "no Close frame after the answer")
        code, _ = ws.ws_parse_close(close)
        expect(code in (None, 1000), "Close code after the service ended normally: %r" % code)
        expect(w.closed_after(5 * ctx.slow), "the edge kept the connection open after the Close handshake")
    finally:
        w.sock.close()
    ev = st.origin.events("eof", port="answer")
    expect_eq([e["n"] for e in ev], [len(data)], "bytes at the answer origin when our Close arrived")


def ws_raw_handshake(ctx, st, host, lines):
    s = ctx.tls_connect(st.edge.https_port, host)
    try:
        s.sendall(("\r\n".join(["GET / HTTP/1.1", "Host: %s" % host, "Upgrade: websocket",
                                "Connection: Upgrade"] + lines) + "\r\n\r\n").encode())
        rd = lib.RawHTTP(s)
        s.settimeout(10 * ctx.slow)
        return rd.read_response()
    finally:
        s.close()


@lib.timeout(60)
def test_websocket_bad_handshake_to_tcp_service_refused(ctx):
    st = TcpSetup(ctx)
    good_key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
    cases = [
        ("a key that is not base64", ["Sec-WebSocket-Key: not a key at all!!", "Sec-WebSocket-Version: 13"], 400),
        ("a key of 8 bytes", ["Sec-WebSocket-Key: AAAAAAAAAAA=", "Sec-WebSocket-Version: 13"], 400),
        ("no key", ["Sec-WebSocket-Version: 13"], 400),
        ("version 8", [good_key, "Sec-WebSocket-Version: 8"], 426),
        ("version 14", [good_key, "Sec-WebSocket-Version: 14"], 426),
    ]
    problems = []
    for host in (ECHO, ANSWER):
        for what, lines, want in cases:
            r = ws_raw_handshake(ctx, st, host, lines)
            if r is None:
                problems.append("%s, %s: no answer" % (host, what))
                continue
            if r.status != want:
                problems.append("%s, %s: expected %d, got %d" % (host, what, want, r.status))
            if want == 426 and r.header("Sec-WebSocket-Version") != "13":
                problems.append("%s, %s: the 426 carries Sec-WebSocket-Version %r, expected 13" % (
                    host, what, r.header("Sec-WebSocket-Version")))
    expect(not problems, "bad handshakes to a TCP service:\n  " + "\n  ".join(problems))
    # And a good one still works on the same setup.
    w = ws_open(ctx, st, ECHO)
    try:
        w.send_binary(b"still fine")
        got, _ = ws_read_data(w, 10, timeout=10 * ctx.slow)
        expect_eq(got, b"still fine", "echo after the refused handshakes")
    finally:
        w.sock.close()
    expect(all(e["head"].startswith("still fine") for e in st.origin.events("open")),
           "a refused handshake reached the TCP origin: %r" % st.origin.events("open"))


# ---- 5. error pages --------------------------------------------------------------------------


@lib.timeout(60)
def test_tcp_hostname_requested_as_plain_http_gets_error_page(ctx):
    st = TcpSetup(ctx)
    r = st.edge.get(ECHO, "/index.html")
    expect(r.status is not None and 500 <= r.status < 600, "GET on a TCP hostname: status %r" % r.status)
    rid = r.header("Culvert-Request-Id")
    expect(rid, "the error answer has no Culvert-Request-Id")
    text = r.text()
    expect("text/html" in (r.header("Content-Type") or ""), "not an HTML page: %r" % (r,))
    expect(rid in text, "the page does not name the request id %s:\n%s" % (rid, text[:800]))
    expect("TCP" in text or "no HTTP service" in text,
           "the page does not say the hostname is a TCP service:\n%s" % text[:800])
    r = st.edge.get(ECHO, "/", headers=["Accept: application/json"])
    j = r.json()
    expect_eq((j.get("status"), j.get("request_id")), (r.status, r.header("Culvert-Request-Id")),
              "JSON error for a TCP hostname")
    time.sleep(0.3)
    heads = [e["head"] for e in st.origin.events("open")]
    expect(not any("GET" in x for x in heads), "the HTTP request reached the TCP service: %r" % heads)


@lib.timeout(60)
def test_access_tcp_to_http_only_or_unknown_hostname_says_why_and_closes(ctx):
    st = TcpSetup(ctx, web=True)
    cases = [(WEB, "access-web", ["404", "no TCP service"]), (h("nowhere"), "access-nowhere", ["404"])]
    for host, name, words in cases:
        acc = st.access(host, name=name)
        start = acc.proc.log_size()
        s = acc.connect()
        try:
            s.sendall(b"hello?")
            s.settimeout(10 * ctx.slow)
            t0 = time.monotonic()
            got, how = tcp_lib.recv_all(s)
            secs = time.monotonic() - t0
        finally:
            s.close()
        expect(got == b"" and how in ("eof", "reset"),
               "access tcp to %s: expected the local connection closed without bytes, got %r (%s)" % (
                   host, got[:200], how))
        ctx.note("access tcp to %s: local connection closed after %.2fs (%s)" % (host, secs, how))
        m = acc.proc.wait_log(r"culvert-connector access: .*%s.*" % host.replace(".", r"\."), 5, start)
        line = m.group(0)
        for w in words:
            expect(w in line, "access tcp to %s: the message %r does not say %r" % (host, line, w))
        expect_eq(acc.proc.stop(), 0, "access tcp to %s: exit code after SIGTERM" % host)
    expect_eq(st.web.requests(), [], "requests at the HTTP origin from access tcp")


# ---- 6. idle streams -------------------------------------------------------------------------


@lib.timeout(60)
@lib.full_only("waits across heartbeats")
def test_idle_access_tcp_stream_survives_heartbeats(ctx):
    st = TcpSetup(ctx, edge_kw={"limits": {"heartbeat_ms": "500ms"}})
    acc = st.access(ECHO)
    s = acc.connect()
    try:
        p = tcp_lib.echo_once(s, b"before idling", "echo before idling")
        expect(p is None, p)
        s.settimeout(4.0)  # eight edge heartbeats, four of the connector's
        try:
            d = s.recv(1)
            raise AssertionError("the idle TCP stream got %r (data or its end) while idle" % d)
        except socket.timeout:
            pass
        s.settimeout(10)
        p = tcp_lib.echo_once(s, b"after idling", "echo after 4 s idle")
        expect(p is None, p)
    finally:
        s.close()
    closes = [e for e in st.origin.events("close") if e["how"] != "eof"]
    expect_eq(closes, [], "origin connections that ended abnormally")


@lib.timeout(60)
@lib.full_only("measures an idle timeout")
def test_tcp_idle_timeout_closes_an_idle_stream(ctx):
    idle = h("idle")
    st = TcpSetup(ctx, routes=[idle], rules=lambda o: [
        {"hostname": idle, "service": o.echo_url, "originRequest": {"tcpIdleTimeout": "1s"}}])
    acc = st.access(idle)
    # Traffic every 300 ms keeps a stream open past the limit: it is an idle limit, not a lifetime.
    s = acc.connect()
    try:
        s.settimeout(5)
        t0 = time.monotonic()
        i = 0
        while True:
            p = tcp_lib.echo_once(s, b"tick %d " % i, "tick %d" % i)
            expect(p is None, "%s (a busy stream was closed by tcpIdleTimeout)" % p)
            last = time.monotonic()
            if last - t0 >= 2.5:
                break
            time.sleep(0.3)
            i += 1
        # Now idle: the stream ends about 1 s after the last byte.
        got, how = tcp_lib.recv_all(s)
        secs = time.monotonic() - last
    finally:
        s.close()
    expect_eq(acc.proc.stop(), 0, "access tcp's exit code after SIGTERM")
    expect_eq(got, b"", "bytes while idle")
    expect(how in ("eof", "reset"), "the idle stream did not end within 5 s (%s)" % how)
    expect(0.8 <= secs <= 2.5, "tcpIdleTimeout 1s ended the idle stream after %.2fs" % secs)
    ctx.note("tcpIdleTimeout 1s: idle stream ended after %.2fs (%s)" % (secs, how))
    ctx.wait_until(lambda: st.origin.events("close"), 5, "the origin connection to end with the idle stream")
    # A stream on the echo rule (no tcpIdleTimeout) idle as long is not closed.
    acc2 = st.access(ECHO, name="access-echo")
    s = acc2.connect()
    try:
        p = tcp_lib.echo_once(s, b"no limit", "echo on a rule without tcpIdleTimeout")
        expect(p is None, p)
        s.settimeout(2.0)
        try:
            d = s.recv(1)
            raise AssertionError("a stream without tcpIdleTimeout ended or got %r within 2 s idle" % d)
        except socket.timeout:
            pass
    finally:
        s.close()


@lib.timeout(60)
@lib.full_only("measures an idle timeout")
def test_idle_half_closed_stream_is_reset_after_stream_idle(ctx):
    """RELIABILITY.md T-23's last clause: a stream closed in one direction that then carries
    nothing is reset after stream_idle (300 s by default; --stream-idle 1s here), on both sides,
    and its origin connection closed; an open stream as idle is not (no tcpIdleTimeout)."""
    hold = h("hold")
    st = TcpSetup(ctx, routes=[hold], conn_kw={"args": ["--stream-idle", "1s"]},
                  rules=lambda o: [{"hostname": hold, "service": o.hold_url}])
    # Idle but open in both directions: stream_idle does not apply.
    acc = st.access(ECHO)
    s = acc.connect()
    try:
        p = tcp_lib.echo_once(s, b"before idling", "echo before idling")
        expect(p is None, p)
        time.sleep(2.5)
        p = tcp_lib.echo_once(s, b"after 2.5 s idle", "echo after 2.5 s idle")
        expect(p is None, "%s (an open idle stream was closed by stream_idle)" % p)
    finally:
        s.close()
    # Half-closed: the visitor's close_notify reaches the origin as EOF; the origin holds its side.
    c = tcp_lib.CulvertTcpClient(ctx, st.edge.https_port, hold)
    try:
        r = c.upgrade()
        expect(r is not None and r.status == 101, "culvert-tcp upgrade to the hold service: %r" % (r,))
        c.send(b"half-close me")
        c.shutdown_write()
        t0 = time.monotonic()
        data, how = c.recv_all()
        secs = time.monotonic() - t0
        expect(st.origin.events("eof", port="hold"), "the origin did not see the visitor's half-close")
    finally:
        c.close()
    expect_eq(data, b"", "bytes from the held service")
    expect(how in ("eof", "reset", "close_notify"), "the half-closed stream did not end (%s)" % how)
    expect(0.7 <= secs <= 4 * ctx.slow, "stream_idle 1s ended the half-closed stream after %.2fs (%s)" % (secs, how))
    ctx.note("--stream-idle 1s: half-closed stream ended after %.2fs (%s)" % (secs, how))
    ctx.wait_until(lambda: [e for e in st.origin.events("close", port="hold") if e["how"] != "still open after 60 s"],
                   5 * ctx.slow, "the origin connection of the half-closed stream to be closed")
    st.connector.proc.wait_log(r"no traffic for 1000ms \(half-closed\)", 5 * ctx.slow)
