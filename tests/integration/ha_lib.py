"""Helpers for the high-availability tests (issue 4): the delay relay, a keep-alive load client that
records every request, the edge's view of a tunnel's connectors, and network namespaces.

Import next to lib (tests/integration/ is on sys.path when run.py runs a test):

    import ha_lib
    relay = ha_lib.Relay(ctx, edge.tunnel_port, 20, "relay20")      # delayrelay, port from its log
    load = ha_lib.Load(ctx, edge, host, threads=8).start()            # GET /name?i=K in a loop
    ...
    load.stop()
    load.failures()                                                   # [Result] with status != 200

Every wait is bounded; every thread and process is stopped by the test or by ctx.cleanup().
"""

import collections
import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time

import lib
from lib import expect

RELAY_READY = re.compile(r"delayrelay listening on \S+:(\d+) ->")


# ---- the delay relay ---------------------------------------------------------------------------


def relay_bin(ctx):
    """tests/tools/delayrelay.c, built by `make` into BUILD/tools/ (BUILD/asan/tools/ for --reduced)."""
    path = os.path.join(ctx.build, "tools", "delayrelay")
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing: build it with make%s (tests/tools/*.c)" % (
            path, " SANITIZE=1" if ctx.reduced else ""))
    return path


class Relay:
    """delayrelay on a free port of |listen_host| in front of target_host:target_port, adding
    |delay_ms| each way (a round trip through it costs 2 * delay_ms more). |netns|: run it inside
    that network namespace (ip netns exec)."""

    def __init__(self, ctx, target_port, delay_ms, name="relay", target_host="127.0.0.1",
                 listen_host="127.0.0.1", netns=None):
        self.ctx = ctx
        self.delay_ms = delay_ms
        argv = [relay_bin(ctx), "0", "%s:%d" % (target_host, target_port), str(delay_ms),
                "--listen-host", listen_host]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns] + argv
        self.proc = ctx.spawn(name, argv)
        m = self.proc.wait_log(RELAY_READY.pattern, 10)
        self.port = int(m.group(1))
        self.host = listen_host

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def stop(self):
        return self.proc.stop()


# ---- origins ------------------------------------------------------------------------------------------

# origin.py unchanged, with TCP_NODELAY on its sockets: http.server writes the head and the body
# separately, and Nagle plus the peer's delayed ACK then costs ~40 ms per response, which would cap
# a keep-alive load at ~25 requests/s per connection.
class Origin(lib.Origin):
    """lib.Origin (origin.py, same endpoints and request log) listening on |host|."""

    def __init__(self, ctx, name="origin", host="127.0.0.1"):  # not super(): no TLS, unix or event log
        self.ctx = ctx
        self.name = name
        self.dir = ctx.mkdir(name)
        self.ready_file = os.path.join(self.dir, "port")
        self.request_log = os.path.join(self.dir, "requests.jsonl")
        lib.write_file(self.request_log, "")
        self.proc = ctx.spawn(name, [lib.PYTHON, lib.ORIGIN_PY, "--name", name,
                                     "--ready-file", self.ready_file, "--log", self.request_log,
                                     "--host", host])

        def ready():
            if not self.proc.alive():
                raise AssertionError("origin %s exited: %s" % (name, lib.tail(self.proc.log)))
            return os.path.exists(self.ready_file)

        ctx.wait_until(ready, 10, "origin %s to listen" % name)
        with open(self.ready_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://%s:%d" % (host, self.port)


# ---- the load client ---------------------------------------------------------------------------


class Result:
    """One request of a Load: index |i| (the ?i= of its path), monotonic start and end, HTTP status
    (None when no response), the origin's name (body of /name) and an error text."""

    __slots__ = ("i", "t0", "t1", "status", "body", "err", "worker")

    def __init__(self, i, t0, worker):
        self.i = i
        self.t0 = t0
        self.t1 = None
        self.status = None
        self.body = b""
        self.err = None
        self.worker = worker

    @property
    def ok(self):
        return self.status == 200 and self.err is None

    @property
    def name(self):
        return self.body.decode("utf-8", "replace").strip() if self.ok else None

    def __repr__(self):
        return "<req i=%d t0=%.3f t1=%s status=%s name=%s err=%s>" % (
            self.i, self.t0, "%.3f" % self.t1 if self.t1 is not None else None, self.status,
            self.name, self.err)


class Load:
    """|threads| workers, each with its own keep-alive TLS connection to |edge| (SNI and Host
    |host|), sending `GET path?i=K` one after another (or, with |rate|, at |rate| requests per
    second in all, as wrk2 would) until |total| requests were started, stop() is called, or
    |duration| seconds (scaled by ctx.slow) pass. A failed connection is reopened
    after |reconnect_pause| s. Every request is recorded as a Result, failures included."""

    def __init__(self, ctx, edge, host, path="/name", threads=8, total=None, duration=60.0,
                 timeout=10.0, reconnect_pause=0.02, port=None, rate=None):
        self.ctx = ctx
        self.host = host
        self.port = port if port is not None else edge.https_port
        self.path = path
        self.nthreads = threads
        self.total = total
        self.deadline = None
        self.duration = duration * ctx.slow
        self.timeout = timeout * ctx.slow
        self.reconnect_pause = reconnect_pause
        self.interval = threads / rate if rate else 0.0  # each worker's pace at |rate| req/s in all
        self.results = []
        self.lock = threading.Lock()
        self.next_i = 0
        self.stopping = threading.Event()
        self.threads = []
        self.tls = ssl.create_default_context(cafile=os.path.join(ctx.pki, "ca.pem"))
        self.connects = 0

    # -- running

    def start(self):
        self.deadline = time.monotonic() + self.duration
        for w in range(self.nthreads):
            t = threading.Thread(target=self._worker, args=(w,), daemon=True)
            self.threads.append(t)
            t.start()
        self.ctx.note("load: %d threads on https://%s:%d%s (total %s)" % (
            self.nthreads, self.host, self.port, self.path, self.total))
        return self

    def _take(self):
        with self.lock:
            if self.stopping.is_set() or time.monotonic() >= self.deadline:
                return None
            if self.total is not None and self.next_i >= self.total:
                return None
            i = self.next_i
            self.next_i += 1
            return i

    def _connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = self.tls.wrap_socket(raw, server_hostname=self.host)
        except Exception:
            raw.close()
            raise
        with self.lock:
            self.connects += 1
        return s

    def _worker(self, w):
        sock = None
        rd = None
        due = time.monotonic() + w * self.interval / self.nthreads
        while True:
            if self.interval:  # paced: the next request at its slot, not at once
                due += self.interval
                if self.stopping.wait(max(0.0, due - time.monotonic())):
                    break
            i = self._take()
            if i is None:
                break
            sep = "&" if "?" in self.path else "?"
            r = Result(i, time.monotonic(), w)
            try:
                if sock is None:
                    sock = self._connect()
                    rd = lib.RawHTTP(sock)
                req = "GET %s%si=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.path, sep, i, self.host)
                sock.sendall(req.encode())
                resp = rd.read_response()
                if resp is None:
                    raise EOFError("connection closed before a response")
                r.status = resp.status
                r.body = resp.body
                if (resp.header("Connection") or "").lower() == "close":
                    sock.close()
                    sock = None
            except (OSError, ValueError, EOFError, ssl.SSLError) as e:
                r.err = "%s: %s" % (type(e).__name__, e)
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass
                    sock = None
            r.t1 = time.monotonic()
            with self.lock:
                self.results.append(r)
            if r.err is not None:
                self.stopping.wait(self.reconnect_pause)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def count(self):
        with self.lock:
            return len(self.results)

    def wait_count(self, n, timeout, what="requests"):
        """Waits (bounded) until |n| requests have completed."""
        self.ctx.wait_until(lambda: self.count() >= n or not self.alive(), timeout,
                            "%d %s to complete (have %d)" % (n, what, self.count()), interval=0.02)
        expect(self.count() >= n, "the load ended after %d requests, before %d" % (self.count(), n))

    def alive(self):
        return any(t.is_alive() for t in self.threads)

    def stop(self, timeout=None):
        """Stops the workers (each finishes the request it is in) and waits for them (bounded)."""
        self.stopping.set()
        end = time.monotonic() + (timeout if timeout is not None else self.timeout + 5)
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        expect(not self.alive(), "load threads still running %.0fs after stop()" % (
            timeout if timeout is not None else self.timeout + 5))
        self.ctx.note("load: stopped after %d requests (%d failed, %d connections)" % (
            len(self.results), len(self.failures()), self.connects))
        return self

    def wait(self, timeout):
        """Waits (bounded) for the workers to end by themselves (|total| reached or deadline)."""
        end = time.monotonic() + timeout * self.ctx.slow
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        expect(not self.alive(), "the load did not finish within %.0fs" % (timeout * self.ctx.slow))
        return self

    # -- results

    def snapshot(self):
        with self.lock:
            return sorted(self.results, key=lambda r: r.i)

    def failures(self):
        return [r for r in self.snapshot() if not r.ok]

    def names(self, results=None):
        return collections.Counter(r.name for r in (results if results is not None else self.snapshot())
                                   if r.ok)

    def describe_failures(self, limit=10):
        f = self.failures()
        return "%d failed: %s" % (len(f), "; ".join(repr(r) for r in f[:limit]))


def origin_indices(origin):
    """The ?i= indices of the requests |origin| logged (it logs before it answers)."""
    out = set()
    for rec in origin.requests():
        m = re.search(r"[?&]i=(\d+)", rec.get("path") or "")
        if m:
            out.add(int(m.group(1)))
    return out


def edge_story(edge, results, limit=4):
    """What the edge logged about some requests of a Load: the access log line of each (found by
    its ?i=) and every edge log line naming its request id. For failure messages."""
    try:
        with open(edge.access_log, encoding="utf-8", errors="replace") as f:
            access = f.read().splitlines()
    except OSError:
        access = []
    log = edge.proc.text().splitlines() if edge.proc is not None else []
    out = []
    for r in list(results)[:limit]:
        line = next((a for a in access if re.search(r"[?&]i=%d[ &]" % r.i, a)), None)
        out.append("i=%d access: %s" % (r.i, line))
        m = re.search(r"rid=(\w+)", line or "")
        if m:
            out += ["    " + x for x in log if "rid=%s" % m.group(1) in x]
    return "\n".join(out)


# ---- the edge's view -----------------------------------------------------------------------------


def connectors(edge, tunnel):
    """`tunnel info TUNNEL --output json` -> the list of connectors (each with its connections)."""
    v = edge.cli("tunnel", "info", tunnel, output_json=True).json
    return v.get("connectors", []) if isinstance(v, dict) else []


def by_region(edge, tunnel):
    """{region: [connection, ...]} from tunnel info (connectors started with --region)."""
    out = {}
    for k in connectors(edge, tunnel):
        out.setdefault(k.get("region"), []).extend(k.get("connections", []))
    return out


def wait_connections(ctx, edge, tunnel, want, timeout=10, what=None):
    """Waits until tunnel info shows |want| = {region: number of connections} exactly."""
    last = {}

    def ok():
        nonlocal last
        last = {r: len(c) for r, c in by_region(edge, tunnel).items()}
        return all(last.get(r, 0) == n for r, n in want.items())

    try:
        ctx.wait_until(ok, timeout, what or "connections %r" % (want,), interval=0.1)
    except AssertionError as e:
        raise AssertionError("%s (last seen: %r)" % (e, last))


def curl_name(ctx, edge, host, path="/name"):
    r = edge.get(host, path)
    return r.status, (r.body or b"").decode("utf-8", "replace").strip()


# ---- network namespaces ----------------------------------------------------------------------------


class Netns:
    """A network namespace with a veth pair to the root namespace: |root_ip| on the root side,
    |ns_ip| inside, a /30 of 198.18.0.0/15 (RELIABILITY.md §7) chosen from the PID so that two runs
    at once (plain and sanitizer builds) do not collide; loopback up inside. delete() removes both;
    call it in a finally block."""

    def __init__(self, ctx, tag):
        self.ctx = ctx
        pid = os.getpid()
        suffix = "%d" % (pid % 100000)
        self.name = "cv%s%s" % (tag, suffix)
        self.veth_root = ("cv%sr%s" % (tag, suffix))[:15]
        self.veth_ns = ("cv%sn%s" % (tag, suffix))[:15]
        base = (198 << 24) | (18 << 16) | ((pid % 32768) * 4)
        self.root_ip = socket.inet_ntoa((base + 1).to_bytes(4, "big"))
        self.ns_ip = socket.inet_ntoa((base + 2).to_bytes(4, "big"))
        self.prefix = 30
        self.created = False
        self.veth_created = False

    def _ip(self, *args, check=True):
        r = self.ctx.run(["ip"] + list(args), timeout=10)
        if check and r.returncode != 0:
            raise AssertionError("ip %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
        return r

    def create(self):
        """Returns None on success, or the reason the namespace cannot be made (to skip)."""
        r = self._ip("netns", "add", self.name, check=False)
        if r.returncode != 0:
            return "ip netns add failed (%s)" % r.stderr.strip()
        self.created = True
        r = self._ip("link", "add", self.veth_root, "type", "veth", "peer", "name", self.veth_ns,
                     check=False)
        if r.returncode != 0:
            return "ip link add type veth failed (%s)" % r.stderr.strip()
        self.veth_created = True
        self._ip("link", "set", self.veth_ns, "netns", self.name)
        self._ip("addr", "add", "%s/%d" % (self.root_ip, self.prefix), "dev", self.veth_root)
        self._ip("link", "set", self.veth_root, "up")
        self._ip("-n", self.name, "addr", "add", "%s/%d" % (self.ns_ip, self.prefix), "dev", self.veth_ns)
        self._ip("-n", self.name, "link", "set", self.veth_ns, "up")
        self._ip("-n", self.name, "link", "set", "lo", "up")
        return None

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def run(self, argv, timeout=10):
        return self.ctx.run(self.exec_argv(argv), timeout=timeout)

    def delete(self):
        """Removes the veth pair and the namespace; safe to call twice or after a partial create."""
        problems = []
        if self.veth_created:
            r = self._ip("link", "del", self.veth_root, check=False)
            if r.returncode != 0 and "Cannot find device" not in r.stderr:
                problems.append("ip link del %s: %s" % (self.veth_root, r.stderr.strip()))
            self.veth_created = False
        if self.created:
            r = self._ip("netns", "del", self.name, check=False)
            if r.returncode != 0:
                problems.append("ip netns del %s: %s" % (self.name, r.stderr.strip()))
            self.created = False
        return problems


@contextlib.contextmanager
def netns_with_etc(ctx, tag, files):
    """A created Netns whose processes (ip netns exec) see |files| ({NAME: text}, or a function
    of the Netns giving it, for files that name its addresses) as /etc/NAME: ip netns exec mounts
    /etc/netns/NS/NAME over it. Skips the test without root or netns; removes the files, the veth
    pair and the namespace at the end, also on failure."""
    if os.geteuid() != 0:
        ctx.skip("needs root for ip netns")
    ns = Netns(ctx, tag)
    etc = os.path.join("/etc/netns", ns.name)
    try:
        why = ns.create()
        if why is not None:
            ctx.skip(why)
        os.makedirs(etc, exist_ok=True)
        for name, text in (files(ns) if callable(files) else files).items():
            lib.write_file(os.path.join(etc, name), text)
        yield ns
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        problems = ns.delete()
        expect(not problems, "cleanup: %s" % problems)


def netns_exists(name):
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return any(line.split()[0] == name for line in r.stdout.splitlines() if line.strip())
