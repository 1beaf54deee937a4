#!/usr/bin/env python3
"""bench.py - Culvert's benchmark harness (issue 6). `make bench` runs it through bench/run.sh.

One run, everything on loopback, every proxy with one worker/thread:
  direct      wrk/curl -> origin nginx
  tls1        -> nginx HTTPS -> origin
  chain2      -> nginx HTTPS -> nginx (upstream over TLS) -> origin
  haproxy-h2  -> HAProxy HTTPS -> one HTTP/2-over-TLS connection -> HAProxy -> origin
  ssh-R       -> nginx HTTPS -> sshd's -R listener -> ssh client -> origin
  culvert     -> culvert-edge HTTPS -> tunnel -> culvert-connector -> origin
then, for culvert only: idle WebSockets, many tunnels on one edge, callgrind instructions per request.

Results: bench/results/<stamp>.tsv (raw) and .md (tables, ratios, targets), plus latest.{tsv,md}.
Every process started is recorded (PID and start time) in WORK/pids and killed by PID at the end;
bench/run.sh kills whatever is left from that file if this script itself dies. See bench/NOTES.md.
"""

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "bench.localhost"      # every HTTPS scenario's SNI and Host
WS_HOST = "ws.localhost"      # culvert WebSocket test
T0 = time.monotonic()
HA_CONNECTIONS = 4            # culvert-connector's default ha-connections
PEERS = ["tls1", "chain2", "haproxy-h2", "ssh-R"]
SCENARIOS = ["direct"] + PEERS + ["culvert"]


def log(msg):
    sys.stderr.write("[bench %6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


class BenchError(Exception):
    pass


class RunTimeout(Exception):
    """The whole run exceeded --max-seconds (raised from SIGALRM; no scenario handler catches it)."""


# ---- processes ----------------------------------------------------------------------------------

def proc_table():
    """pid -> (ppid, utime+stime ticks, starttime) for every process."""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        f = s[s.rfind(")") + 2:].split()
        t[int(d)] = (int(f[1]), int(f[11]) + int(f[12]), int(f[19]))
    return t


def descendants(roots, table=None):
    """The roots and every process below them (those alive now)."""
    table = table if table is not None else proc_table()
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [r for r in roots if r in table]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return int(s[s.rfind(")") + 2:].split()[19])
    except OSError:
        return None


class Procs:
    """Every process the harness starts, by name; killed by PID (with its descendants)."""

    def __init__(self, work):
        self.work = work
        self.procs = {}
        self.pidfile = os.path.join(work, "pids")

    def start(self, name, argv, env=None, stdin=None, stdout=None, cwd=None):
        if name in self.procs:
            raise BenchError("process %s already running" % name)
        logf = open(os.path.join(self.work, "logs", name + ".log"), "ab")
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             stdout=stdout if stdout is not None else logf, stderr=logf, env=e,
                             cwd=cwd or self.work)
        logf.close()
        with open(self.pidfile, "a") as f:
            f.write("%d %s %s\n" % (p.pid, start_time(p.pid), name))
        p.bench_name = name
        self.procs[name] = p
        return p

    def pid(self, name):
        return self.procs[name].pid

    def alive(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def stop(self, name, sig=signal.SIGTERM, wait=10.0, again=False):
        """Stops |name| with |sig| (and, with |again|, the same signal a second time after |wait|
        seconds: culvert's "exit at once"), then SIGKILL; kills what is left of its tree. Returns
        (exit status, how it ended: "signal", "second signal", "SIGKILL" or "already exited")."""
        p = self.procs.pop(name, None)
        if p is None:
            return None, "not running"
        table = proc_table()
        tree = [(q, table[q][2]) for q in descendants([p.pid], table) if q != p.pid]
        how = "already exited"
        if p.poll() is None:
            how = "signal"
            p.send_signal(sig)
            try:
                p.wait(wait)
            except subprocess.TimeoutExpired:
                if again:
                    log("%s (pid %d) still running %.0fs after the signal: sending it again" % (
                        name, p.pid, wait))
                    how = "second signal"
                    p.send_signal(sig)
                    try:
                        p.wait(5)
                    except subprocess.TimeoutExpired:
                        pass
                if p.poll() is None:
                    log("%s (pid %d) did not stop: SIGKILL" % (name, p.pid))
                    how = "SIGKILL"
                    p.kill()
                    p.wait(5)
        for q, st in tree:
            if start_time(q) == st:
                try:
                    os.kill(q, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return p.returncode, how

    def stop_all(self):
        for name in reversed(list(self.procs)):
            try:
                self.stop(name, wait=5.0)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                log("stopping %s: %s" % (name, e))


def cpu_ticks(roots):
    table = proc_table()
    return {p: (table[p][1], table[p][2]) for p in descendants(roots, table)}


def machine_ticks():
    """/proc/stat's first line: user nice system idle iowait irq softirq steal (both cores)."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:9]]


def machine_shares(before, after):
    """Percent of all cores that were busy, idle (with iowait) and stolen by the hypervisor
    between two machine_ticks() readings."""
    d = [b - a for a, b in zip(before, after)]
    total = max(1, sum(d))
    idle = (d[3] + d[4]) * 100.0 / total
    steal = d[7] * 100.0 / total
    return 100.0 - idle - steal, idle, steal


def cpu_delta_s(before, after):
    """CPU seconds used between two cpu_ticks() snapshots (new processes count from zero)."""
    total = 0
    for p, (ticks, st) in after.items():
        b = before.get(p)
        total += ticks - (b[0] if b is not None and b[1] == st else 0)
    return total / CLK_TCK


def mem_kib(roots):
    """(sum VmRSS, sum VmHWM) in KiB over the roots' process trees."""
    rss = hwm = 0
    for p in descendants(roots):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    return rss, hwm


def clear_hwm(roots):
    """Resets VmHWM (peak RSS) of the trees, so the next peak is that of the next phase."""
    for p in descendants(roots):
        try:
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")
        except OSError:
            pass


# ---- helpers ------------------------------------------------------------------------------------

_used_ports = set()


def free_port():
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise BenchError("no free port")


def wait_port(port, timeout=20.0, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise BenchError("%s exited with %s before listening on %d" % (
                getattr(proc, "bench_name", "process"), proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError("nothing listens on 127.0.0.1:%d after %.0fs" % (port, timeout))


def run(argv, timeout, check=True, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise BenchError("%s: exit %d: %s" % (" ".join(argv[:3]), r.returncode,
                                               r.stderr.decode(errors="replace")[-500:]))
    return r


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port with the given host name as SNI and Host (no DNS, no /etc/hosts)."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Target:
    """Where clients go for one scenario."""

    def __init__(self, scheme, port, host, cafile):
        self.scheme, self.port, self.host, self.cafile = scheme, port, host, cafile

    def url(self, path):
        return "%s://%s:%d%s" % (self.scheme, self.host, self.port, path)

    def curl_args(self):
        if self.scheme == "https":
            return ["--cacert", self.cafile, "--resolve", "%s:%d:127.0.0.1" % (self.host, self.port)]
        return []

    def connection(self, timeout=10.0):
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.cafile)
            return LoopbackHTTPS(self.host, self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self, path, timeout=10.0):
        c = self.connection(timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


def wait_http(target, path, timeout=20.0, procs=()):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        for p in procs:
            if p.poll() is not None:
                raise BenchError("%s exited with %s" % (getattr(p, "bench_name", "?"), p.returncode))
        try:
            st, body = target.get(path, 5.0)
            if st == 200:
                return body
            last = "HTTP %d %r" % (st, body[:120])
        except (OSError, http.client.HTTPException) as e:
            last = "%s: %s" % (type(e).__name__, e)
        time.sleep(0.1)
    raise BenchError("%s did not answer 200 within %.0fs (last: %s)" % (target.url(path), timeout, last))


def background_cpu(seconds=2.0):
    """What else uses the CPU before the run: "N% of 2 cores; top: comm pid (x%), ..."."""
    t0 = proc_table()
    time.sleep(seconds)
    t1 = proc_table()
    me = set(descendants([os.getpid()], t1))
    use = []
    for pid, (_, ticks, st) in t1.items():
        if pid in me:
            continue
        b = t0.get(pid)
        d = ticks - (b[1] if b is not None and b[2] == st else 0)
        if d > 0:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:60]
            except OSError:
                cmd = "?"
            use.append((d, pid, cmd))
    use.sort(reverse=True)
    total = sum(u[0] for u in use) / CLK_TCK / seconds * 100
    top = ", ".join("`%s` pid %d (%.0f%%)" % (c, p, d / CLK_TCK / seconds * 100) for d, p, c in use[:3]
                    if d / CLK_TCK / seconds >= 0.05)
    return "%.0f%% of one core%s" % (total, ("; top: " + top) if top else "")


# ---- load generators ----------------------------------------------------------------------------

def wrk(target, path, conns, seconds, threads):
    env = dict(os.environ, BENCH_CONNECT="127.0.0.1")
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--timeout", "5s",
            "-s", os.path.join(HERE, "wrk_report.lua"), target.url(path)]
    r = run(argv, timeout=seconds + 60, env=env)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if m is None:
        raise BenchError("wrk printed no result: %s %s" % (out[-400:], r.stderr.decode()[-400:]))
    d = json.loads(m.group(1))
    secs = d["duration_us"] / 1e6
    d["rps"] = d["requests"] / secs if secs > 0 else 0.0
    d["mbps"] = d["bytes"] / secs / 1e6 if secs > 0 else 0.0
    d["errors"] = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return d


def curl_transfer(target, kind, path, upload_file, timeout):
    argv = ["curl", "-sS", "--http1.1", "-o", "/dev/null", "--max-time", str(timeout)] + \
        target.curl_args()
    if kind == "download":
        argv += ["-w", "%{http_code} %{size_download} %{time_total}"]
    else:
        # No "Expect: 100-continue": measure the transfer, not the interim-response wait.
        argv += ["-X", "POST", "-T", upload_file, "-H", "Expect:",
                 "-w", "%{http_code} %{size_upload} %{time_total}"]
    r = run(argv + [target.url(path)], timeout=timeout + 10, check=False)
    parts = r.stdout.decode().split()
    if r.returncode != 0 or len(parts) != 3 or parts[0] != "200":
        raise BenchError("curl %s %s: exit %d, %s %s" % (kind, path, r.returncode, " ".join(parts),
                                                         r.stderr.decode(errors="replace")[-300:]))
    size, secs = int(parts[1]), float(parts[2])
    return size, secs


# ---- the run ------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.a = args
        self.work = args.work
        self.procs = Procs(self.work)
        self.build = os.path.abspath(args.build)
        self.edge_bin = os.path.join(self.build, "culvert-edge")
        self.conn_bin = os.path.join(self.build, "culvert-connector")
        self.results = {}   # scenario -> {metric: value}
        self.errors = []    # (scenario, text)
        self.notes = []     # observations printed under the tables
        self.meta = {}
        self.dirs = {}
        for d in ("logs", "www", "tmp", "pki", "conf", "cg"):
            self.dirs[d] = os.path.join(self.work, d)
            os.makedirs(self.dirs[d], exist_ok=True)
        os.chmod(self.work, 0o755)
        self.origin_port = None
        self.metrics_ports = {}  # connector name -> its metrics port

    # -- setup --

    def setup(self):
        www = self.dirs["www"]
        with open(os.path.join(www, "100b.html"), "wb") as f:
            f.write((b"<!doctype html><title>bench</title><p>" + b"x" * 100)[:99] + b"\n")
        with open(os.path.join(www, "1m.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        with open(os.path.join(www, "100m.bin"), "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(100):
                f.write(block)
        self.upload_file = os.path.join(www, "100m.bin")
        pki = self.dirs["pki"]
        mk = os.path.join(ROOT, "tests", "tools", "mkcert.sh")
        run(["sh", mk, pki, "bench", "DNS:" + HOST, "DNS:" + WS_HOST], timeout=30)
        run(["sh", mk, pki, "tunnel", "DNS:localhost", "IP:127.0.0.1"], timeout=30)
        self.ca = os.path.join(pki, "ca.pem")
        self.cert = os.path.join(pki, "bench.pem")
        self.key = os.path.join(pki, "bench.key")
        self.certkey = os.path.join(pki, "bench.certkey.pem")  # HAProxy wants both in one file
        with open(self.certkey, "w") as f:
            f.write(open(self.cert).read() + open(self.key).read())
        os.chmod(self.certkey, 0o600)
        self.start_origin()

    def nginx_conf(self, name, servers, upstreams=""):
        t = os.path.join(self.dirs["tmp"], name)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(t, sub), exist_ok=True)
        conf = """# written by bench/bench.py
daemon off;
master_process on;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {logs}/{name}.error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{upstreams}
{servers}
}}
""".format(tmp=t, logs=self.dirs["logs"], name=name, upstreams=upstreams, servers=servers)
        path = os.path.join(self.dirs["conf"], name + ".nginx.conf")
        write(path, conf)
        return path

    def start_nginx(self, name, conf, port):
        run(["nginx", "-t", "-q", "-c", conf, "-e", os.path.join(self.dirs["logs"], name + ".t.log")],
            timeout=20)
        p = self.procs.start(name, ["nginx", "-c", conf, "-e",
                                    os.path.join(self.dirs["logs"], name + ".error.log")])
        wait_port(port, proc=p)
        return p

    def tls_server_lines(self):
        return """        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;""".format(cert=self.cert, key=self.key)

    PROXY_LINES = """            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;"""

    def start_origin(self):
        port = free_port()
        servers = """    upstream origin_self {{ server 127.0.0.1:{port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {www};
        keepalive_requests 1000000;
        client_max_body_size 0;
        location / {{ }}
        # Uploads: nginx reads the whole request body (to a temporary file) before it proxies a
        # request, and proxy_pass_request_body off then passes only the head to /sink, which
        # answers 200. So POST /upload answers 200 only after every byte of the body was read.
        location = /upload {{
            proxy_pass http://origin_self/sink;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Transfer-Encoding "";
        }}
        location = /sink {{ return 200 "ok\\n"; }}
    }}""".format(port=port, www=self.dirs["www"])
        conf = self.nginx_conf("origin", servers)
        self.start_nginx("origin", conf, port)
        self.origin_port = port
        t = Target("http", port, "127.0.0.1", None)
        body = wait_http(t, "/100b.html")
        if len(body) != 100:
            raise BenchError("origin serves %d bytes for /100b.html" % len(body))
        self.check_target(t)

    def check_target(self, t):
        """Every scenario must serve the same bytes before it is measured."""
        st, body = t.get("/100b.html")
        if st != 200 or len(body) != 100:
            raise BenchError("GET /100b.html: %d, %d bytes" % (st, len(body)))
        st, body = t.get("/1m.bin")
        if st != 200 or len(body) != 1 << 20:
            raise BenchError("GET /1m.bin: %d, %d bytes" % (st, len(body)))
        c = t.connection(30)
        try:
            c.request("POST", "/upload", body=os.urandom(3 << 20))
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise BenchError("POST /upload (3 MiB): %d" % r.status)
        finally:
            c.close()

    # -- scenarios: each returns (Target, {role: process name}) --

    def sc_direct(self):
        return Target("http", self.origin_port, "127.0.0.1", None), {}

    def nginx_front(self, name, upstream_block, proxy_pass, extra=""):
        port = free_port()
        servers = """    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        server_name {host};
{tls}
        client_max_body_size 0;
        location / {{
            proxy_pass {proxy_pass};
{proxy}
{extra}
        }}
    }}""".format(port=port, host=HOST, tls=self.tls_server_lines(), proxy_pass=proxy_pass,
                 proxy=self.PROXY_LINES, extra=extra)
        conf = self.nginx_conf(name, servers, upstream_block)
        self.start_nginx(name, conf, port)
        return port

    def sc_tls1(self):
        up = "    upstream origin {{ server 127.0.0.1:{}; keepalive 256; }}".format(self.origin_port)
        port = self.nginx_front("tls1-nginx", up, "http://origin")
        return Target("https", port, HOST, self.ca), {"nginx": "tls1-nginx"}

    def sc_chain2(self):
        up = "    upstream origin {{ server 127.0.0.1:{}; keepalive 256; }}".format(self.origin_port)
        hop2 = self.nginx_front("chain2-hop2", up, "http://origin")
        up1 = "    upstream hop2 {{ server 127.0.0.1:{}; keepalive 256; }}".format(hop2)
        extra = """            proxy_ssl_server_name on;
            proxy_ssl_name {host};
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_session_reuse on;""".format(host=HOST, ca=self.ca)
        port = self.nginx_front("chain2-front", up1, "https://hop2", extra)
        return Target("https", port, HOST, self.ca), {"front": "chain2-front", "hop2": "chain2-hop2"}

    def haproxy_conf(self, name, text):
        path = os.path.join(self.dirs["conf"], name + ".haproxy.cfg")
        write(path, "# written by bench/bench.py\n" + text)
        run(["haproxy", "-c", "-q", "-f", path], timeout=20)
        return path

    def sc_haproxy_h2(self):
        pa, pb = free_port(), free_port()
        common = """global
    nbthread 1
    maxconn 4096
    tune.h2.max-concurrent-streams 1000
    tune.h2.initial-window-size 262144
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always
"""
        b = self.haproxy_conf("haproxy-b", common + """frontend fe
    bind 127.0.0.1:{pb} ssl crt {crt} alpn h2
    default_backend origin
backend origin
    server origin 127.0.0.1:{po}
""".format(pb=pb, crt=self.certkey, po=self.origin_port))
        a = self.haproxy_conf("haproxy-a", common + """frontend fe
    bind 127.0.0.1:{pa} ssl crt {crt} alpn http/1.1
    default_backend hop2
backend hop2
    server hop2 127.0.0.1:{pb} ssl verify required ca-file {ca} sni str({host}) verifyhost {host} alpn h2
""".format(pa=pa, pb=pb, crt=self.certkey, ca=self.ca, host=HOST))
        p = self.procs.start("haproxy-b", ["haproxy", "-db", "-f", b])
        wait_port(pb, proc=p)
        p = self.procs.start("haproxy-a", ["haproxy", "-db", "-f", a])
        wait_port(pa, proc=p)
        self.haproxy_link = (pa, pb)
        return Target("https", pa, HOST, self.ca), {"haproxy-a": "haproxy-a", "haproxy-b": "haproxy-b"}

    def sc_ssh_r(self):
        d = os.path.join(self.work, "ssh")
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700)
        for f in ("host_ed25519", "host_ed25519.pub", "client_ed25519", "client_ed25519.pub"):
            if os.path.exists(os.path.join(d, f)):
                os.unlink(os.path.join(d, f))
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, "host_ed25519")], 20)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, "client_ed25519")], 20)
        shutil.copy(os.path.join(d, "client_ed25519.pub"), os.path.join(d, "authorized_keys"))
        if not os.path.isdir("/run/sshd"):
            # sshd's privilege separation directory, which the openssh-server package creates at
            # boot. Left in place afterwards: another sshd on the machine may need it too.
            os.makedirs("/run/sshd", 0o755)
        ps, pr = free_port(), free_port()
        cfg = os.path.join(self.dirs["conf"], "sshd_config")
        write(cfg, """# written by bench/bench.py: a private sshd on loopback, key login only
Port {ps}
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
AllowTcpForwarding remote
GatewayPorts no
X11Forwarding no
PrintMotd no
UseDNS no
LogLevel ERROR
""".format(ps=ps, d=d))
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        run([sshd, "-t", "-f", cfg], 20)
        p = self.procs.start("sshd", [sshd, "-D", "-e", "-f", cfg])
        wait_port(ps, proc=p)
        user = os.environ.get("USER") or "root"
        p = self.procs.start("ssh-client", [
            "ssh", "-N", "-F", "/dev/null", "-i", os.path.join(d, "client_ed25519"), "-p", str(ps),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
            "-R", "127.0.0.1:%d:127.0.0.1:%d" % (pr, self.origin_port), "%s@127.0.0.1" % user])
        wait_port(pr, proc=p)
        up = "    upstream sshr {{ server 127.0.0.1:{}; keepalive 256; }}".format(pr)
        port = self.nginx_front("sshr-nginx", up, "http://sshr")
        return Target("https", port, HOST, self.ca), {"nginx": "sshr-nginx", "sshd": "sshd",
                                                      "ssh": "ssh-client"}

    # -- culvert --

    def edge_conf(self, tag, extra=""):
        d = os.path.join(self.work, "culvert-" + tag)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700)
        ports = {"https": free_port(), "tunnel": free_port(), "admin": free_port()}
        cfg = os.path.join(d, "edge.yml")
        write(cfg, """# written by bench/bench.py: default settings but loopback addresses and no access log
region: bench
data_dir: {d}/data
public:
  https: ["127.0.0.1:{https}"]
  http: []
  certificates:
    - {{ cert: {cert}, key: {key} }}
tunnel:
  listen: ["127.0.0.1:{tunnel}"]
  advertise: ["127.0.0.1:{tunnel}"]
  ca: {ca}
  cert: {pki}/tunnel.pem
  key: {pki}/tunnel.key
admin:
  listen: 127.0.0.1:{admin}
  token_file: {d}/admin.token
access_log: {{ path: "off" }}
{extra}""".format(d=d, cert=self.cert, key=self.key, ca=self.ca, pki=self.dirs["pki"], extra=extra,
                  **ports))
        return d, cfg, ports

    def start_edge(self, name, cfg, ports, wrapper=(), timeout=20.0):
        p = self.procs.start(name, list(wrapper) + [self.edge_bin, "serve", "--config", cfg])
        wait_port(ports["https"], timeout=timeout, proc=p)
        wait_port(ports["admin"], timeout=timeout, proc=p)
        return p

    def edge_cli(self, cfg, *argv):
        return run([self.edge_bin] + list(argv) + ["--config", cfg], timeout=30).stdout.decode()

    def make_tunnel(self, d, cfg, name, hostname):
        out = self.edge_cli(cfg, "tunnel", "create", name, "--output", "json")
        token = json.loads(out)["token"]
        tf = os.path.join(d, name + ".token")
        write(tf, token + "\n", 0o600)
        self.edge_cli(cfg, "route", "add", hostname, name)
        return tf

    def start_connector(self, name, d, token_file, hostname, service, wrapper=(), timeout=20.0):
        cfg = os.path.join(d, name + ".yml")
        write(cfg, """# written by bench/bench.py (cloudflared's schema), default settings
ingress:
  - hostname: {h}
    service: {s}
  - service: http_status:404
""".format(h=hostname, s=service))
        mport = free_port()
        self.metrics_ports[name] = mport
        p = self.procs.start(name, list(wrapper) + [self.conn_bin, "run", "--config", cfg,
                                                   "--token-file", token_file,
                                                   "--metrics", "127.0.0.1:%d" % mport])
        wait_http(Target("http", mport, "127.0.0.1", None), "/ready", timeout=timeout, procs=[p])
        return p

    def tunnel_conns(self, d, ports, tunnel):
        """Registered connections of |tunnel|, from the edge's admin API."""
        token = open(os.path.join(d, "admin.token")).read().strip()
        c = http.client.HTTPConnection("127.0.0.1", ports["admin"], timeout=10)
        try:
            c.request("GET", "/v1/tunnels/" + tunnel, headers={"Authorization": "Bearer " + token})
            resp = c.getresponse()
            doc = json.loads(resp.read())
        finally:
            c.close()
        return sum(len(k.get("connections", [])) for k in doc.get("connectors", []))

    def wait_tunnel_conns(self, d, ports, tunnel, n, timeout=30.0):
        """The connector staggers its ha-connections: measure only once all are registered."""
        end = time.monotonic() + timeout
        got = 0
        while time.monotonic() < end:
            got = self.tunnel_conns(d, ports, tunnel)
            if got >= n:
                return got
            time.sleep(0.2)
        raise BenchError("tunnel %s has %d of %d connections after %.0fs" % (tunnel, got, n, timeout))

    def sc_culvert(self):
        d, cfg, ports = self.edge_conf("main")
        self.start_edge("culvert-edge", cfg, ports)
        tf = self.make_tunnel(d, cfg, "bench", HOST)
        self.start_connector("culvert-connector", d, tf, HOST, "http://127.0.0.1:%d" % self.origin_port)
        self.wait_tunnel_conns(d, ports, "bench", HA_CONNECTIONS)
        return Target("https", ports["https"], HOST, self.ca), {"edge": "culvert-edge",
                                                                 "connector": "culvert-connector"}

    # -- measuring one scenario --

    def roots(self, roles):
        return [self.procs.pid(n) for n in roles.values() if self.alive_or_fail(n)]

    def alive_or_fail(self, name):
        if not self.procs.alive(name):
            p = self.procs.procs.get(name)
            raise BenchError("%s is not running (exit %s); see %s" % (
                name, p.returncode if p else "?", os.path.join(self.dirs["logs"], name + ".log")))
        return True

    PHASE_ERRORS = (BenchError, subprocess.TimeoutExpired, OSError, http.client.HTTPException)

    def start_scenario(self, name, starter):
        """Starts one scenario and checks it (idle RSS after one small request, content check).
        Returns (r, target, roles), or None after recording the failure."""
        r = self.results.setdefault(name, {})
        log("== %s: starting" % name)
        roles = {}
        try:
            target, roles = starter()
            wait_http(target, "/100b.html", timeout=30, procs=[self.procs.procs[n] for n in roles.values()])
            time.sleep(1.0)
            self.mem_snapshot(r, "idle", roles)  # started, one small request served
            self.check_target(target)
        except self.PHASE_ERRORS as e:
            self.fail(name, r, "start", e)
            self.stop_roles(name, roles)
            return None
        return r, target, roles

    def measure_all(self, names, starters):
        """Starts every scenario, then runs each phase in rounds: every round measures every live
        scenario once, one after the other, so slow drifts in the machine's speed (other tenants,
        frequency) fall on all of them alike instead of on whichever ran in a bad minute. Each
        reported value is the median over the rounds (bulk: over all transfers). A failed phase is
        recorded and followed by a health check; a scenario whose proxy no longer answers is
        stopped and left out of later rounds."""
        a = self.a
        live = {}
        for name in names:
            got = self.start_scenario(name, starters[name])
            if got is not None:
                live[name] = got
        for name, (r, target, roles) in list(live.items()):
            try:
                clear_hwm(self.roots(roles))
                wrk(target, "/100b.html", 50, a.warmup, a.wrk_threads)
            except self.PHASE_ERRORS as e:
                self.fail(name, r, "warm-up", e)
                self.stop_roles(name, roles)
                del live[name]
        self.deadline = time.monotonic() + a.scenario_timeout * max(1, len(live))
        rounds = {name: {} for name in live}
        phases = [("small50", lambda n, rr, t, ro: self.phase_small(n, rr, t, ro, 50)),
                  ("small200", lambda n, rr, t, ro: self.phase_small(n, rr, t, ro, 200)),
                  ("bulk", self.phase_bulk),
                  ("mib10", self.phase_mib10)]
        for phase, fn in phases:
            for rnd in range(a.rounds):
                for name, (r, target, roles) in list(live.items()):
                    rr = {}
                    try:
                        if time.monotonic() > self.deadline:
                            raise BenchError("time budget (%ds per scenario) exhausted" % a.scenario_timeout)
                        log("%s: %s, round %d of %d" % (name, phase, rnd + 1, a.rounds))
                        fn(name, rr, target, roles)
                        rounds[name].setdefault(phase, []).append(rr)
                    except self.PHASE_ERRORS as e:
                        self.fail(name, r, phase, e)
                        if not self.healthy(name, target, "after the failed %s phase" % phase):
                            self.wrap_up(name, r, target, roles, rounds[name], healthy_check=False)
                            del live[name]
            if phase == "small50":
                # VmHWM since the warm-up: the "peak RSS under the 50-connection load".
                for name, (r, target, roles) in live.items():
                    self.mem_snapshot(r, "peak50", roles, hwm=True)
                if "haproxy-h2" in live:
                    self.note_haproxy_links()
        for name, (r, target, roles) in live.items():
            self.wrap_up(name, r, target, roles, rounds[name])

    def wrap_up(self, name, r, target, roles, rounds, healthy_check=True):
        """Medians of the rounds into |r|, the last checks, peak RSS, stop."""
        aggregate(r, rounds)
        if healthy_check:
            # Catches a proxy left broken by the last phase (e.g. by clients that went away
            # mid-response when wrk stopped).
            self.healthy(name, target, "after the last phase (1 MiB x 10)")
        for role, n in roles.items():
            if n in self.metrics_ports:
                self.note_open_streams(name, r, role, n)
        try:
            self.mem_snapshot(r, "peak", roles, hwm=True)
        except self.PHASE_ERRORS as e:
            self.fail(name, r, "memory", e)
        self.stop_roles(name, roles)

    def fail(self, name, r, phase, e):
        log("%s: %s FAILED: %s" % (name, phase, e))
        self.errors.append((name, "%s: %s" % (phase, e)))
        r.setdefault("failed", "%s: %s" % (phase, e))

    def healthy(self, name, target, when):
        """GET the small page and the 1 MiB file 4 times each (10 s each, a new connection each);
        notes a proxy that stopped working."""
        for path, size in (("/100b.html", 100), ("/1m.bin", 1 << 20)) * 4:
            c = target.connection(10)
            try:
                c.request("GET", path)
                resp = c.getresponse()
                got = 0
                try:
                    got = len(resp.read())
                except (OSError, http.client.HTTPException) as e:
                    raise BenchError("HTTP %d, then %s after %d of %d body bytes" % (
                        resp.status, type(e).__name__, got, size))
                if resp.status != 200 or got != size:
                    raise BenchError("HTTP %d with %d of %d body bytes" % (resp.status, got, size))
            except (BenchError, OSError, http.client.HTTPException) as e:
                msg = "%s stopped working %s: GET %s: %s" % (name, when, path, e)
                log(msg)
                self.errors.append((name, msg))
                return False
            finally:
                c.close()
        return True

    def note_open_streams(self, name, r, role, n):
        """A connector should hold no stream once the clients are gone (read from its /metrics)."""
        time.sleep(2.0)
        try:
            st, body = Target("http", self.metrics_ports[n], "127.0.0.1", None).get("/metrics", 5.0)
            m = re.search(rb"^culvert_streams_open (\d+)", body, re.M)
            if st != 200 or m is None:
                return
            k = int(m.group(1))
            r["streams_open_after_%s" % role] = k
            if k:
                msg = ("%s: the %s still holds %d stream(s) 2 s after the last client went away "
                       "(culvert_streams_open in its /metrics)" % (name, n, k))
                log(msg)
                self.notes.append(msg)
        except (OSError, http.client.HTTPException) as e:
            self.notes.append("%s: cannot read %s's /metrics: %s" % (name, n, e))

    def stop_roles(self, name, roles):
        for n in list(roles.values())[::-1]:
            self.stop_proc(name, n)

    def stop_proc(self, scenario, n, wait=10.0):
        """Stops one process; notes a bad exit. Culvert processes drain on SIGTERM (up to
        grace_period, 30 s) and exit at once on a second SIGTERM."""
        culvert = n.startswith(("culvert-", "ws-edge", "ws-connector", "tun-edge", "cg-"))
        rc, how = self.procs.stop(n, wait=wait, again=culvert)
        if how in ("second signal", "SIGKILL") or rc not in (0, None, -signal.SIGTERM):
            self.notes.append("%s: %s stopped by %s after SIGTERM + %.0f s (exit status %s); see its "
                              "log %s" % (scenario, n, how, wait, rc,
                                          os.path.join(self.dirs["logs"], n + ".log")))

    def phase_small(self, name, r, target, roles, conns):
        a = self.a
        c0, m0 = cpu_ticks(self.roots(roles)), machine_ticks()
        w = wrk(target, "/100b.html", conns, a.duration, a.wrk_threads)
        c1, m1 = cpu_ticks(self.roots(roles)), machine_ticks()
        k = "small%d" % conns
        r[k + "_busy_pct"], r[k + "_idle_pct"], r[k + "_steal_pct"] = machine_shares(m0, m1)
        r[k + "_rps"] = w["rps"]
        r[k + "_p50_ms"] = w["p50_us"] / 1000.0
        r[k + "_p99_ms"] = w["p99_us"] / 1000.0
        r[k + "_errors"] = w["errors"]
        r[k + "_requests"] = w["requests"]
        if roles:
            r[k + "_cpu_us_per_req"] = cpu_delta_s(c0, c1) / max(1, w["requests"]) * 1e6
            r[k + "_cpu_util"] = cpu_delta_s(c0, c1) / (w["duration_us"] / 1e6)
        log("%s: %d connections: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors" % (
            name, conns, w["rps"], w["p50_us"] / 1000, w["p99_us"] / 1000, w["errors"]))
        if w["errors"]:
            self.notes.append("%s: %d errors at %d connections (%s)" % (name, w["errors"], conns, ", ".join(
                "%s %d" % (k2, w[k2]) for k2 in ("connect", "read", "write", "status", "timeout") if w[k2])))

    def phase_bulk(self, name, r, target, roles):
        """--bulk-runs downloads then as many uploads; raw speeds and CPU (aggregate() derives
        best, median and CPU per GB over all rounds)."""
        a = self.a
        for kind, path in (("download", "/100m.bin"), ("upload", "/upload")):
            speeds = []
            c0 = cpu_ticks(self.roots(roles))
            for _ in range(a.bulk_runs):
                if time.monotonic() > self.deadline:
                    raise BenchError("scenario time budget (%ds) exhausted" % a.scenario_timeout)
                size, secs = curl_transfer(target, kind, path, self.upload_file, a.bulk_timeout)
                if size != 100 << 20:
                    raise BenchError("%s moved %d bytes, not 100 MiB" % (kind, size))
                speeds.append(size / secs / 1e6)
            c1 = cpu_ticks(self.roots(roles))
            r["_%s_speeds" % kind] = speeds
            r["_%s_bytes" % kind] = len(speeds) * (100 << 20)
            if roles:
                r["_%s_cpu_s" % kind] = cpu_delta_s(c0, c1)
            log("%s: 100 MiB %s: %s MB/s" % (name, kind, " ".join("%.0f" % v for v in speeds)))

    def phase_mib10(self, name, r, target, roles):
        a = self.a
        c0 = cpu_ticks(self.roots(roles))
        w = wrk(target, "/1m.bin", 10, a.duration, a.wrk_threads)
        c1 = cpu_ticks(self.roots(roles))
        r["mib10_mbps"] = w["mbps"]
        r["mib10_errors"] = w["errors"]
        if roles and w["bytes"]:
            r["mib10_cpu_s_per_gb"] = cpu_delta_s(c0, c1) / (w["bytes"] / 1e9)
        log("%s: 1 MiB x 10 connections: %.0f MB/s, %d errors" % (name, w["mbps"], w["errors"]))

    def mem_snapshot(self, r, label, roles, hwm=False):
        total = 0
        for role, n in roles.items():
            rss, peak = mem_kib([self.procs.pid(n)])
            v = peak if hwm else rss
            r["rss_%s_kib.%s" % (label, role)] = v
            total += v
        if roles:
            r["rss_%s_kib" % label] = total

    def note_haproxy_links(self):
        """How many TLS connections HAProxy A keeps to B (the issue wants one multiplexed link)."""
        pa, pb = self.haproxy_link
        try:
            out = run(["ss", "-Htn", "state", "established", "( dport = :%d )" % pb], 10).stdout.decode()
            n = len([ln for ln in out.splitlines() if ln.strip()])
            self.results["haproxy-h2"]["h2_links_during_load"] = n
            self.notes.append("haproxy-h2: HAProxy A held %d connection(s) to HAProxy B after the "
                              "50-connection load" % n)
        except (BenchError, OSError, subprocess.TimeoutExpired) as e:
            self.notes.append("haproxy-h2: could not count the A->B connections: %s" % e)

    # -- culvert only --

    def culvert_ws(self):
        a = self.a
        tag = "culvert-ws"
        r = self.results.setdefault("culvert", {})
        n = a.ws
        per = 256 * HA_CONNECTIONS  # a connector's streams: max_concurrent_streams x ha-connections
        k = a.ws_connectors or max(1, math.ceil(n / per))
        log("== culvert: %d idle WebSockets through %d connector(s)" % (n, k))
        names = []
        try:
            d, cfg, ports = self.edge_conf("ws")
            self.start_edge("ws-edge", cfg, ports)
            names.append("ws-edge")
            tf = self.make_tunnel(d, cfg, "ws", WS_HOST)
            wport = free_port()
            p = self.procs.start("ws-origin", [sys.executable, os.path.join(HERE, "loadtools.py"),
                                               "ws-origin", "--listen", "127.0.0.1:%d" % wport])
            names.append("ws-origin")
            wait_port(wport, proc=p)
            conns = []
            for i in range(k):
                nm = "ws-connector-%d" % i
                self.start_connector(nm, d, tf, WS_HOST, "http://127.0.0.1:%d" % wport)
                names.append(nm)
                conns.append(nm)
            self.wait_tunnel_conns(d, ports, "ws", k * HA_CONNECTIONS)
            time.sleep(1.0)
            e0, _ = mem_kib([self.procs.pid("ws-edge")])
            c0, _ = mem_kib([self.procs.pid(x) for x in conns])
            r["ws_connectors"] = k
            r["ws_edge_rss_before_kib"] = e0
            r["ws_connectors_rss_before_kib"] = c0
            cl = self.procs.start("ws-clients", [
                sys.executable, os.path.join(HERE, "loadtools.py"), "ws-clients", "--port",
                str(ports["https"]), "--host", WS_HOST, "--cafile", self.ca, "--n", str(n)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            names.append("ws-clients")
            ev = self.read_event(cl, "established", a.ws_timeout)
            r["ws_requested"] = n
            r["ws_established"] = ev["ok"]
            r["ws_open_seconds"] = ev["seconds"]
            log("culvert ws: %d/%d up in %.1fs, errors %s" % (ev["ok"], n, ev["seconds"], ev["errors"]))
            if ev["errors"]:
                self.notes.append("culvert WebSockets: %d of %d upgrades failed: %s" % (
                    n - ev["ok"], n, json.dumps(ev["errors"])))
            time.sleep(3.0)  # idle
            e1, _ = mem_kib([self.procs.pid("ws-edge")])
            c1, _ = mem_kib([self.procs.pid(x) for x in conns])
            r["ws_edge_rss_kib"] = e1
            r["ws_connectors_rss_kib"] = c1
            if ev["ok"]:
                r["ws_edge_kib_per_socket"] = (e1 - e0) / ev["ok"]
                r["ws_connector_kib_per_socket"] = (c1 - c0) / ev["ok"]
            cl.stdin.write(b"echo\n")
            cl.stdin.flush()
            ev2 = self.read_event(cl, "echo", 120)
            r["ws_echo_ok"] = ev2["ok"]
            log("culvert ws: edge %+.0f KiB, connectors %+.0f KiB; echo on %d/%d" % (
                e1 - e0, c1 - c0, ev2["ok"], ev2["sockets"]))
            if ev2["ok"] != ev2["sockets"]:
                self.notes.append("culvert WebSockets: only %d of %d open sockets echoed a frame" % (
                    ev2["ok"], ev2["sockets"]))
            cl.stdin.write(b"quit\n")
            cl.stdin.flush()
            self.read_event(cl, "closed", 60)
        except (BenchError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as e:
            log("culvert ws FAILED: %s" % e)
            self.errors.append(("culvert-ws", str(e)))
        finally:
            for nm in reversed(names):
                self.stop_proc(tag, nm)

    def read_event(self, p, event, timeout):
        """Reads loadtools JSON lines from |p| until |event| (or fails after |timeout| s)."""
        import select
        end = time.monotonic() + timeout
        buf = b""
        fd = p.stdout.fileno()
        while time.monotonic() < end:
            rl, _, _ = select.select([fd], [], [], max(0.0, min(1.0, end - time.monotonic())))
            if not rl:
                if p.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                ev = json.loads(line)
                if ev.get("event") == event:
                    return ev
        raise BenchError("%s: no '%s' within %ds (exit %s); see %s" % (
            getattr(p, "bench_name", "?"), event, timeout, p.poll(),
            os.path.join(self.dirs["logs"], getattr(p, "bench_name", "?") + ".log")))

    def culvert_tunnels(self):
        a = self.a
        tag = "culvert-tunnels"
        r = self.results.setdefault("culvert", {})
        log("== culvert: %d tunnels x %d connections on one edge" % (a.tunnels, a.tunnel_conns))
        names = []
        try:
            d, cfg, ports = self.edge_conf("tunnels")
            self.start_edge("tun-edge", cfg, ports)
            names.append("tun-edge")
            time.sleep(0.5)
            edge = [self.procs.pid("tun-edge")]
            r["tunnels_edge_rss_empty_kib"] = mem_kib(edge)[0]
            tool = self.procs.start("tunnels-tool", [
                sys.executable, os.path.join(HERE, "loadtools.py"), "tunnels",
                "--admin", "127.0.0.1:%d" % ports["admin"],
                "--admin-token-file", os.path.join(d, "admin.token"), "--port", str(ports["tunnel"]),
                "--cafile", self.ca, "--tunnels", str(a.tunnels), "--conns", str(a.tunnel_conns)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            names.append("tunnels-tool")
            ev = self.read_event(tool, "created", a.tunnels_timeout)
            r["tunnels_create_seconds"] = ev["seconds"]
            r["tunnels_created"] = ev["tunnels"]
            time.sleep(0.5)
            r["tunnels_edge_rss_created_kib"] = mem_kib(edge)[0]
            clear_hwm(edge)
            tool.stdin.write(b"connect\n")
            tool.stdin.flush()
            ev = self.read_event(tool, "registered", a.tunnels_timeout)
            r["tunnels_requested_conns"] = ev["requested"]
            r["tunnels_registered_conns"] = ev["ok"]
            r["tunnels_register_seconds"] = ev["seconds"]
            r["tunnels_register_p50_ms"] = ev["p50_ms"]
            r["tunnels_register_p99_ms"] = ev["p99_ms"]
            st = ev.get("edge_status", {})
            if "connections" in st:
                r["tunnels_edge_status_connections"] = st["connections"]
            log("culvert tunnels: %d/%d registered in %.1fs (p50 %.1f ms, p99 %.1f ms), errors %s" % (
                ev["ok"], ev["requested"], ev["seconds"], ev["p50_ms"], ev["p99_ms"], ev["errors"]))
            if ev["errors"]:
                self.notes.append("culvert tunnels: %d of %d registrations failed: %s" % (
                    ev["requested"] - ev["ok"], ev["requested"], json.dumps(ev["errors"])))
            time.sleep(6.0)  # past one heartbeat interval: PINGs flow on every connection
            rss, hwm = mem_kib(edge)
            r["tunnels_edge_rss_kib"] = rss
            r["tunnels_edge_peak_kib"] = hwm
            if ev["ok"]:
                r["tunnels_edge_kib_per_conn"] = (rss - r["tunnels_edge_rss_created_kib"]) / ev["ok"]
            tool.stdin.write(b"check\n")
            tool.stdin.flush()
            ev = self.read_event(tool, "check", 30)
            r["tunnels_alive_after_hold"] = ev["alive"]
            if ev["alive"] != r["tunnels_registered_conns"]:
                self.notes.append("culvert tunnels: %d of %d connections were still up after 6 s: %s" % (
                    ev["alive"], r["tunnels_registered_conns"], ev["errors"]))
            log("culvert tunnels: edge RSS %.1f MiB (peak %.1f MiB), %d alive" % (
                rss / 1024, hwm / 1024, ev["alive"]))
            tool.stdin.write(b"quit\n")
            tool.stdin.flush()
            self.read_event(tool, "closed", 60)
        except (BenchError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as e:
            log("culvert tunnels FAILED: %s" % e)
            self.errors.append(("culvert-tunnels", str(e)))
        finally:
            for nm in reversed(names):
                self.stop_proc(tag, nm)

    def culvert_callgrind(self):
        a = self.a
        tag = "culvert-callgrind"
        r = self.results.setdefault("culvert", {})
        n = a.callgrind_requests
        log("== culvert: callgrind, %d requests" % n)
        names = []
        cg = self.dirs["cg"]
        vg = ["valgrind", "--tool=callgrind", "--dump-instr=no", "--collect-jumps=no"]
        try:
            d, cfg, ports = self.edge_conf("callgrind")
            self.start_edge("cg-edge", cfg, ports, wrapper=vg + [
                "--callgrind-out-file=%s/edge.%%p" % cg], timeout=90)
            names.append("cg-edge")
            tf = self.make_tunnel(d, cfg, "cg", HOST)
            self.start_connector("cg-connector", d, tf, HOST, "http://127.0.0.1:%d" % self.origin_port,
                                 wrapper=vg + ["--callgrind-out-file=%s/connector.%%p" % cg],
                                 timeout=90)
            names.append("cg-connector")
            self.wait_tunnel_conns(d, ports, "cg", HA_CONNECTIONS, timeout=90)
            t = Target("https", ports["https"], HOST, self.ca)
            wait_http(t, "/100b.html", timeout=60)
            self.requests(t, 50)
            pids = {"edge": self.procs.pid("cg-edge"), "connector": self.procs.pid("cg-connector")}
            for pid in pids.values():
                run(["callgrind_control", "-z", str(pid)], 60)
            t0 = time.monotonic()
            done = self.requests(t, n)
            secs = time.monotonic() - t0
            for role, pid in pids.items():
                before = set(os.listdir(cg))
                run(["callgrind_control", "-d", str(pid)], 60)
                dumps = sorted(set(os.listdir(cg)) - before)
                ir = None
                for f in dumps:
                    with open(os.path.join(cg, f)) as fh:
                        for line in fh:
                            if line.startswith(("totals:", "summary:")):
                                ir = int(line.split()[1])
                if ir is None:
                    raise BenchError("callgrind dump of %s not found (files: %s)" % (role, dumps))
                r["callgrind_%s_ir_per_req" % role] = ir / done
            r["callgrind_requests"] = done
            log("culvert callgrind: %d requests in %.1fs: edge %.0f Ir/req, connector %.0f Ir/req" % (
                done, secs, r["callgrind_edge_ir_per_req"], r["callgrind_connector_ir_per_req"]))
        except (BenchError, subprocess.TimeoutExpired, OSError, http.client.HTTPException) as e:
            log("culvert callgrind FAILED: %s" % e)
            self.errors.append(("culvert-callgrind", str(e)))
        finally:
            for nm in reversed(names):
                self.stop_proc(tag, nm, wait=60)

    def requests(self, t, n):
        """|n| sequential keep-alive GETs of the small page (reconnecting when the server closes)."""
        done = 0
        c = None
        while done < n:
            if c is None:
                c = t.connection(60)
            try:
                c.request("GET", "/100b.html")
                resp = c.getresponse()
                body = resp.read()
                if resp.status != 200 or len(body) != 100:
                    raise BenchError("request %d: HTTP %d, %d bytes" % (done, resp.status, len(body)))
                done += 1
                if resp.will_close:
                    c.close()
                    c = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                c.close()
                c = None
        if c is not None:
            c.close()
        return done

    # -- the whole run --

    def run_all(self):
        self.collect_meta()
        self.setup()
        starters = {"direct": self.sc_direct, "tls1": self.sc_tls1, "chain2": self.sc_chain2,
                    "haproxy-h2": self.sc_haproxy_h2, "ssh-R": self.sc_ssh_r, "culvert": self.sc_culvert}
        self.measure_all([n for n in SCENARIOS if not self.a.only or n in self.a.only], starters)
        extras = {"ws": self.culvert_ws, "tunnels": self.culvert_tunnels,
                  "callgrind": self.culvert_callgrind}
        for name, fn in extras.items():
            if self.a.only and "culvert-" + name not in self.a.only:
                continue
            fn()
        self.meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        self.meta["elapsed_s"] = round(time.monotonic() - T0, 1)

    def collect_meta(self):
        m = self.meta
        m["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        cpu = "?"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        m["cpu"] = cpu
        m["cores"] = os.cpu_count()
        try:
            m["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        except (ValueError, OSError):
            pass
        m["kernel"] = platform.release()
        try:
            m["os"] = [ln.split("=", 1)[1].strip().strip('"') for ln in open("/etc/os-release")
                       if ln.startswith("PRETTY_NAME=")][0]
        except (OSError, IndexError):
            m["os"] = "?"
        m["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
        m["background_cpu"] = background_cpu()

        def ver(argv, rx, stream="stdout"):
            try:
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
                text = (r.stdout + r.stderr).decode(errors="replace")
                mm = re.search(rx, text)
                return mm.group(1) if mm else text.strip().splitlines()[0]
            except (OSError, subprocess.TimeoutExpired, IndexError):
                return "?"
        m["nginx"] = ver(["nginx", "-v"], r"nginx/(\S+)")
        m["haproxy"] = ver(["haproxy", "-v"], r"version (\S+)")
        m["openssh"] = ver(["ssh", "-V"], r"OpenSSH_(\S+)")
        m["openssl"] = ver(["openssl", "version"], r"OpenSSL (\S+)")
        m["wrk"] = ver(["wrk", "-v"], r"wrk (\S+)")
        m["curl"] = ver(["curl", "-V"], r"curl (\S+)")
        m["valgrind"] = ver(["valgrind", "--version"], r"valgrind-(\S+)")
        m["culvert"] = ver([self.edge_bin, "--version"], r"(\d+\.\d+\S*)")
        try:
            rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip()
            dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no",
                                    "--", "common", "edge", "connector"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip()
            m["commit"] = rev + ("+local changes" if dirty else "")
        except (OSError, subprocess.TimeoutExpired):
            m["commit"] = "?"
        m["settings"] = "%d rounds, scenarios interleaved; wrk -t%d, %ds per wrk run (+%ds warm-up); " \
            "%d bulk runs each way per round; %d WebSockets, %d tunnels x %d, %d callgrind requests" % (
                self.a.rounds, self.a.wrk_threads, self.a.duration, self.a.warmup, self.a.bulk_runs,
                self.a.ws, self.a.tunnels, self.a.tunnel_conns, self.a.callgrind_requests)


# ---- reporting ----------------------------------------------------------------------------------

HIGHER = "higher"
LOWER = "lower"
# metric key, label, unit, better direction, format
MAIN_METRICS = [
    ("small50_rps", "req/s @50", "req/s", HIGHER, "%.0f"),
    ("small50_p50_ms", "p50 @50", "ms", LOWER, "%.2f"),
    ("small50_p99_ms", "p99 @50", "ms", LOWER, "%.2f"),
    ("small50_errors", "errors @50", "", LOWER, "%d"),
    ("small200_rps", "req/s @200", "req/s", HIGHER, "%.0f"),
    ("small200_p50_ms", "p50 @200", "ms", LOWER, "%.2f"),
    ("small200_p99_ms", "p99 @200", "ms", LOWER, "%.2f"),
    ("small200_errors", "errors @200", "", LOWER, "%d"),
    ("mib10_mbps", "1 MiB x10 MB/s", "MB/s", HIGHER, "%.0f"),
    ("download_best_mbps", "100 MiB down best", "MB/s", HIGHER, "%.0f"),
    ("download_median_mbps", "100 MiB down median", "MB/s", HIGHER, "%.0f"),
    ("upload_best_mbps", "100 MiB up best", "MB/s", HIGHER, "%.0f"),
    ("upload_median_mbps", "100 MiB up median", "MB/s", HIGHER, "%.0f"),
    ("small50_cpu_us_per_req", "CPU µs/req @50", "µs", LOWER, "%.1f"),
    ("small200_cpu_us_per_req", "CPU µs/req @200", "µs", LOWER, "%.1f"),
    ("mib10_cpu_s_per_gb", "CPU s/GB (1 MiB)", "s/GB", LOWER, "%.2f"),
    ("download_cpu_s_per_gb", "CPU s/GB down", "s/GB", LOWER, "%.2f"),
    ("upload_cpu_s_per_gb", "CPU s/GB up", "s/GB", LOWER, "%.2f"),
    ("bulk_cpu_s_per_gb", "CPU s/GB bulk", "s/GB", LOWER, "%.2f"),
    ("rss_idle_kib", "RSS idle MiB", "MiB", LOWER, "%.1f"),
    ("rss_peak50_kib", "RSS peak @50 MiB", "MiB", LOWER, "%.1f"),
    ("rss_peak_kib", "RSS peak all MiB", "MiB", LOWER, "%.1f"),
    ("small50_cpu_util", "proxy cores @50", "cores", LOWER, "%.2f"),
    ("small50_busy_pct", "busy @50 %", "%", LOWER, "%.0f"),
    ("small50_idle_pct", "idle @50 %", "%", LOWER, "%.0f"),
    ("small50_steal_pct", "steal @50 %", "%", LOWER, "%.0f"),
    ("small200_cpu_util", "proxy cores @200", "cores", LOWER, "%.2f"),
    ("small200_busy_pct", "busy @200 %", "%", LOWER, "%.0f"),
    ("small200_idle_pct", "idle @200 %", "%", LOWER, "%.0f"),
    ("small200_steal_pct", "steal @200 %", "%", LOWER, "%.0f"),
]
TABLES = [
    ("Small responses (100 B, keep-alive, wrk)", ["small50_rps", "small50_p50_ms", "small50_p99_ms",
                                                  "small50_errors", "small200_rps", "small200_p50_ms",
                                                  "small200_p99_ms", "small200_errors"]),
    ("Bulk (MB = 10^6 bytes)", ["mib10_mbps", "download_best_mbps", "download_median_mbps",
                                "upload_best_mbps", "upload_median_mbps"]),
    ("Cost of the proxy processes (CPU from /proc utime+stime; RSS summed over processes)",
     ["small50_cpu_us_per_req", "small200_cpu_us_per_req", "mib10_cpu_s_per_gb",
      "download_cpu_s_per_gb", "upload_cpu_s_per_gb", "bulk_cpu_s_per_gb", "rss_idle_kib",
      "rss_peak50_kib", "rss_peak_kib"]),
    ("The machine during the small-response loads (/proc/stat over all cores: busy, idle, taken by "
     "the hypervisor; proxy cores = CPU seconds of the proxy processes per second)",
     ["small50_cpu_util", "small50_busy_pct", "small50_idle_pct", "small50_steal_pct",
      "small200_cpu_util", "small200_busy_pct", "small200_idle_pct", "small200_steal_pct"]),
]
RATIO_METRICS = ["small50_rps", "small50_p99_ms", "small200_rps", "mib10_mbps", "download_median_mbps",
                 "upload_median_mbps", "small50_cpu_us_per_req", "bulk_cpu_s_per_gb", "rss_peak50_kib"]
METRIC = {m[0]: m for m in MAIN_METRICS}


def aggregate(r, rounds):
    """Folds per-round results (|rounds|: phase -> list of dicts) into |r|: medians of values,
    sums of counts (errors, requests), and for bulk the best and median over every transfer of
    every round with CPU per GB over all of them. The per-round values stay in |r| as
    KEY.roundN for the TSV."""
    for phase, rrs in rounds.items():
        keys = sorted({k for rr in rrs for k in rr if not k.startswith("_")})
        for k in keys:
            vals = [rr[k] for rr in rrs if k in rr]
            if k.endswith(("_errors", "_requests")):
                r[k] = sum(vals)
            else:
                r[k] = statistics.median(vals)
            if len(rrs) > 1:
                for i, rr in enumerate(rrs):
                    if k in rr:
                        r["%s.round%d" % (k, i + 1)] = rr[k]
        if phase != "bulk":
            continue
        cpu_total, bytes_total = 0.0, 0
        for kind in ("download", "upload"):
            speeds = [v for rr in rrs for v in rr.get("_%s_speeds" % kind, [])]
            if not speeds:
                continue
            r[kind + "_best_mbps"] = max(speeds)
            r[kind + "_median_mbps"] = statistics.median(speeds)
            r[kind + "_runs"] = len(speeds)
            nbytes = sum(rr.get("_%s_bytes" % kind, 0) for rr in rrs)
            cpu = [rr["_%s_cpu_s" % kind] for rr in rrs if "_%s_cpu_s" % kind in rr]
            if cpu and nbytes:
                r[kind + "_cpu_s_per_gb"] = sum(cpu) / (nbytes / 1e9)
                cpu_total += sum(cpu)
                bytes_total += nbytes
        if bytes_total:
            r["bulk_cpu_s_per_gb"] = cpu_total / (bytes_total / 1e9)


def fmt(key, v):
    """A value for the tables: KiB keys in MiB, known metrics with their format, others plainly."""
    if v is None:
        return "n/a"
    m = METRIC.get(key)
    if key.split(".")[0].endswith("_kib"):
        return "%.1f" % (v / 1024.0)
    if m is not None:
        return m[4] % v
    if isinstance(v, float):
        return "%.0f" % v if abs(v) >= 100 else "%.2f" % v
    return str(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def targets(res):
    """The targets of issue 6: (text, measured text, verdict)."""
    c = res.get("culvert", {})
    g = lambda sc, k: res.get(sc, {}).get(k)  # noqa: E731
    out = []

    def check(text, measured, ok):
        if ok is None:
            out.append((text, measured, "n/a"))
        else:
            out.append((text, measured, "PASS" if ok else "MISS"))

    def rel(key, peer, factor, higher=True):
        a, b = g("culvert", key), g(peer, key)
        r = ratio(a, b)
        if r is None:
            return "n/a", None
        return "%.2fx (%s vs %s)" % (r, fmt(key, a), fmt(key, b)), (r >= factor if higher else r <= factor)

    for peer, f in (("haproxy-h2", 1.1), ("chain2", 1.3), ("ssh-R", 3.0)):
        m, ok = rel("small50_rps", peer, f)
        check("small @50: culvert req/s >= %.1fx %s" % (f, peer), m, ok)
    m, ok = rel("small50_p99_ms", "haproxy-h2", 1.0, higher=False)
    check("small @50: culvert p99 <= haproxy-h2", m, ok)
    for kind in ("download", "upload"):
        m, ok = rel(kind + "_median_mbps", "chain2", 1.0)
        check("bulk %s: culvert MB/s (median) >= 1.0x chain2" % kind, m, ok)
        m2, ok2 = rel(kind + "_median_mbps", "tls1", 1.0)
        check("bulk %s: culvert MB/s (median) >= tls1 (aim)" % kind, m2, ok2)
    m, ok = rel("small50_cpu_us_per_req", "haproxy-h2", 1.0, higher=False)
    check("CPU per request (@50): culvert <= haproxy-h2", m, ok)
    m, ok = rel("bulk_cpu_s_per_gb", "chain2", 1.0, higher=False)
    check("CPU per GB (100 MiB down+up): culvert <= chain2", m, ok)
    v = c.get("rss_peak50_kib")
    check("edge + connector peak RSS under the 50-connection load <= 24 MiB",
          "n/a" if v is None else "%.1f MiB" % (v / 1024), None if v is None else v <= 24 * 1024)
    v = c.get("rss_idle_kib.connector")
    check("idle connector RSS <= 8 MiB", "n/a" if v is None else "%.1f MiB" % (v / 1024),
          None if v is None else v <= 8 * 1024)
    v = c.get("ws_edge_kib_per_socket")
    n = c.get("ws_established")
    req = c.get("ws_requested")
    ok = None
    if v is not None and req is not None and req >= 10000:
        ok = v <= 32 and n == req
    check("edge RSS per idle WebSocket <= 32 KiB, with 10,000 open",
          "n/a" if v is None else "%.1f KiB (%s of %s open)" % (v, n, req), ok)
    v = c.get("tunnels_edge_rss_kib")
    n = c.get("tunnels_registered_conns")
    req = c.get("tunnels_requested_conns")
    ok = None
    if v is not None and req is not None and req >= 4000:
        ok = v <= 256 * 1024 and n == req
    check("1,000 tunnels x 4 connections on one edge within 256 MiB",
          "n/a" if v is None else "%.1f MiB with %s of %s connections registered" % (v / 1024, n, req), ok)
    return out


def report(b, stamp):
    res, meta = b.results, b.meta
    # TSV: raw values
    tsv = ["# culvert bench %s" % stamp]
    for k in sorted(meta):
        tsv.append("# %s\t%s" % (k, meta[k]))
    tsv.append("scenario\tmetric\tvalue")
    for sc in SCENARIOS:
        for k in sorted(res.get(sc, {})):
            v = res[sc][k]
            tsv.append("%s\t%s\t%s" % (sc, k, ("%.6g" % v) if isinstance(v, float) else v))
    for sc, err in b.errors:
        tsv.append("%s\terror\t%s" % (sc, err.replace("\t", " ").replace("\n", " ")))

    md = ["# Culvert benchmark, started %s" % meta.get("date", stamp), ""]
    md.append("Machine: %s, %s cores, %s GiB, %s, kernel %s. Load average at start %s, at end %s." % (
        meta.get("cpu"), meta.get("cores"), meta.get("memory_gib"), meta.get("os"), meta.get("kernel"),
        " ".join(meta.get("loadavg_start", [])), " ".join(meta.get("loadavg_end", []))))
    md.append("")
    md.append("CPU used by other processes just before the run: %s." % meta.get("background_cpu", "?"))
    md.append("")
    md.append("Versions: culvert %s (commit %s), nginx %s, HAProxy %s, OpenSSH %s, OpenSSL %s, wrk %s, "
              "curl %s, valgrind %s." % (meta.get("culvert"), meta.get("commit"), meta.get("nginx"),
                                         meta.get("haproxy"), meta.get("openssh"), meta.get("openssl"),
                                         meta.get("wrk"), meta.get("curl"), meta.get("valgrind")))
    md.append("")
    md.append("Settings: %s. Whole run: %s s. Every proxy runs one worker/thread; the origin is nginx "
              "with one worker. See bench/NOTES.md for the set-up of each scenario." % (
                  meta.get("settings"), meta.get("elapsed_s")))
    md.append("")
    present = [sc for sc in SCENARIOS if sc in res]
    for title, keys in TABLES:
        md.append("## " + title)
        md.append("")
        md.append("| scenario | " + " | ".join(METRIC[k][1] for k in keys) + " |")
        md.append("|---|" + "---:|" * len(keys))
        for sc in present:
            md.append("| %s | " % sc + " | ".join(fmt(k, res[sc].get(k)) for k in keys) + " |")
        md.append("")
    md.append("## Ratios against direct (scenario / direct)")
    md.append("")
    keys = [k for k in RATIO_METRICS if not k.startswith(("small50_cpu", "bulk_cpu", "rss"))]
    md.append("| scenario | " + " | ".join(METRIC[k][1] for k in keys) + " |")
    md.append("|---|" + "---:|" * len(keys))
    for sc in present:
        if sc == "direct":
            continue
        md.append("| %s | " % sc + " | ".join(
            ("%.2f" % ratio(res[sc].get(k), res["direct"].get(k))) if "direct" in res and
            ratio(res[sc].get(k), res["direct"].get(k)) is not None else "n/a" for k in keys) + " |")
    md.append("")
    md.append("## Culvert against each peer (culvert / peer; higher is better for req/s and MB/s, "
              "lower for latency, CPU and RSS)")
    md.append("")
    peers = [p for p in PEERS if p in res]
    md.append("| metric | " + " | ".join(peers) + " |")
    md.append("|---|" + "---:|" * len(peers))
    for k in RATIO_METRICS:
        cells = []
        for p in peers:
            r = ratio(res.get("culvert", {}).get(k), res[p].get(k))
            cells.append("n/a" if r is None else "%.2f" % r)
        md.append("| %s (%s better) | " % (METRIC[k][1], METRIC[k][3]) + " | ".join(cells) + " |")
    md.append("")
    c = res.get("culvert", {})
    md.append("## Culvert only")
    md.append("")
    md.append("| measurement | value |")
    md.append("|---|---:|")
    rows = [
        ("edge RSS idle / peak @50 (MiB)", "%s / %s" % (fmt("x_kib", c.get("rss_idle_kib.edge")),
                                                      fmt("x_kib", c.get("rss_peak50_kib.edge")))),
        ("connector RSS idle / peak @50 (MiB)", "%s / %s" % (
            fmt("x_kib", c.get("rss_idle_kib.connector")), fmt("x_kib", c.get("rss_peak50_kib.connector")))),
        ("idle WebSockets established / requested", "%s / %s (through %s connector(s))" % (
            c.get("ws_established", "n/a"), c.get("ws_requested", "n/a"), c.get("ws_connectors", "n/a"))),
        ("time to open them (s)", fmt("", c.get("ws_open_seconds"))),
        ("edge RSS before / with them (MiB)", "%s / %s" % (fmt("x_kib", c.get("ws_edge_rss_before_kib")),
                                                          fmt("x_kib", c.get("ws_edge_rss_kib")))),
        ("edge KiB per idle WebSocket", fmt("", c.get("ws_edge_kib_per_socket"))),
        ("connector(s) KiB per idle WebSocket", fmt("", c.get("ws_connector_kib_per_socket"))),
        ("WebSockets that echoed a frame afterwards", str(c.get("ws_echo_ok", "n/a"))),
        ("tunnel connections registered / requested", "%s / %s" % (
            c.get("tunnels_registered_conns", "n/a"), c.get("tunnels_requested_conns", "n/a"))),
        ("registration time, all (s) / p50 / p99 per connection (ms)", "%s / %s / %s" % (
            fmt("", c.get("tunnels_register_seconds")), fmt("", c.get("tunnels_register_p50_ms")),
            fmt("", c.get("tunnels_register_p99_ms")))),
        ("time to create the tunnels through the admin API (s)", fmt("", c.get("tunnels_create_seconds"))),
        ("edge RSS: empty / %s tunnels created / all registered (MiB)" % c.get("tunnels_created", "n/a"),
         "%s / %s / %s" % (
            fmt("x_kib", c.get("tunnels_edge_rss_empty_kib")),
            fmt("x_kib", c.get("tunnels_edge_rss_created_kib")), fmt("x_kib", c.get("tunnels_edge_rss_kib")))),
        ("edge peak RSS while registering (MiB)", fmt("x_kib", c.get("tunnels_edge_peak_kib"))),
        ("edge KiB per registered tunnel connection", fmt("", c.get("tunnels_edge_kib_per_conn"))),
        ("callgrind: edge Ir per request", fmt("", c.get("callgrind_edge_ir_per_req"))),
        ("callgrind: connector Ir per request", fmt("", c.get("callgrind_connector_ir_per_req"))),
    ]
    for a_, b_ in rows:
        md.append("| %s | %s |" % (a_, b_))
    md.append("")
    md.append("## Targets (issue 6)")
    md.append("")
    md.append("| target | measured | verdict |")
    md.append("|---|---|---|")
    for t, m, v in targets(res):
        md.append("| %s | %s | **%s** |" % (t, m, v))
    md.append("")
    if b.errors or b.notes:
        md.append("## Failures and observations")
        md.append("")
        for sc, err in b.errors:
            md.append("- **%s failed**: %s" % (sc, err))
        for n in b.notes:
            md.append("- %s" % n)
        md.append("")
    return "\n".join(tsv) + "\n", "\n".join(md)


def main():
    ap = argparse.ArgumentParser(description="Culvert benchmark harness (issue 6)")
    ap.add_argument("--work", required=True, help="scratch directory (bench/run.sh makes one)")
    ap.add_argument("--build", default=os.environ.get("BENCH_BUILD", os.path.join(ROOT, "build")))
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--only", nargs="*", help="scenarios to run (%s, culvert-ws, culvert-tunnels, "
                    "culvert-callgrind)" % ", ".join(SCENARIOS))
    ap.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "6")))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--wrk-threads", type=int, default=int(os.environ.get("BENCH_WRK_THREADS", "1")))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")),
                    help="each phase measures every scenario this many times, interleaved")
    ap.add_argument("--bulk-runs", type=int, default=3, help="100 MiB transfers each way per round")
    ap.add_argument("--bulk-timeout", type=int, default=60, help="seconds for one 100 MiB transfer")
    ap.add_argument("--ws", type=int, default=int(os.environ.get("BENCH_WS", "10000")))
    ap.add_argument("--ws-connectors", type=int, default=int(os.environ.get("BENCH_WS_CONNECTORS", "0")))
    ap.add_argument("--ws-timeout", type=int, default=240)
    ap.add_argument("--tunnels", type=int, default=int(os.environ.get("BENCH_TUNNELS", "1000")))
    ap.add_argument("--tunnel-conns", type=int, default=4)
    ap.add_argument("--tunnels-timeout", type=int, default=240)
    ap.add_argument("--callgrind-requests", type=int,
                    default=int(os.environ.get("BENCH_CALLGRIND_REQUESTS", "2000")))
    ap.add_argument("--scenario-timeout", type=int, default=240)
    ap.add_argument("--max-seconds", type=int, default=int(os.environ.get("BENCH_MAX_SECONDS", "1500")))
    ap.add_argument("--no-save", action="store_true", help="print the report, do not write results/")
    a = ap.parse_args()

    b = Bench(a)

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)

    def on_alarm(sig, frame):
        raise RunTimeout("the whole run exceeded %ds (--max-seconds)" % a.max_seconds)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(a.max_seconds)
    rc = 0
    try:
        for tool in ("nginx", "haproxy", "wrk", "curl", "valgrind", "ssh", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise BenchError("%s is not installed (bench/run.sh installs it)" % tool)
        for f in (b.edge_bin, b.conn_bin):
            if not os.access(f, os.X_OK):
                raise BenchError("%s is missing: run make first" % f)
        b.run_all()
    except (BenchError, RunTimeout, KeyboardInterrupt) as e:
        log("run aborted: %s" % (e or "interrupted"))
        b.errors.append(("run", "aborted: %s" % (e or "interrupted")))
        rc = 1
    finally:
        signal.alarm(0)
        b.procs.stop_all()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    tsv, md = report(b, stamp)
    print(md)
    if not a.no_save:
        os.makedirs(a.results, exist_ok=True)
        for ext, text in (("tsv", tsv), ("md", md + "\n")):
            path = os.path.join(a.results, "%s.%s" % (stamp, ext))
            write(path, text)
            shutil.copy(path, os.path.join(a.results, "latest." + ext))
        log("results: %s/%s.{tsv,md} (and latest.*)" % (a.results, stamp))
    if b.errors:
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
