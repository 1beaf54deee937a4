"""Integration test framework: real culvert-edge / culvert-connector processes on loopback.

A test is a function `test_NAME(ctx)` in a module tests/integration/test_*.py; run.py runs each one in
its own child process with a deadline. `ctx` (class Ctx) owns everything the test starts:

    edge = ctx.edge()                       # writes edge.yml with free ports, starts, waits for admin
    t = edge.create_tunnel("app")          # `tunnel create --output json` -> {"id","name","token"}
    edge.route_add("app.culvert.test", "app")
    origin = ctx.origin("o1")               # origin.py on a free port
    conn = ctx.connector(edge, t["token"], ingress=[{"service": origin.url}])
    r = ctx.curl(edge.url("app.culvert.test", "/echo"), resolve=edge)
    assert r.status == 200

Every process is recorded with its PID and log file and stopped in ctx.cleanup() (SIGTERM, then
SIGKILL after a bound), which run.py calls in a finally block, also on failure and timeout. Every
wait is bounded. Logs of the processes of a failed test are printed by run.py.

Standard library only (Debian's python3), plus the curl and openssl commands.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ORIGIN_PY = os.path.join(HERE, "origin.py")
MKCERT = os.path.join(REPO, "tests", "tools", "mkcert.sh")
PYTHON = sys.executable or "/usr/bin/python3"

# Test hostnames: every name under culvert.test is covered by the public wildcard certificate.
DOMAIN = "culvert.test"
CORPUS_HOST = "corpus.test"

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "ERROR: UndefinedBehaviorSanitizer",
)


class Skip(Exception):
    """Raised by a test (ctx.skip) that cannot run here; reported as skip, not failure."""


class TestTimeout(Exception):
    """Raised in the test's main thread when run.py's deadline passes (SIGTERM to the child)."""


def full_only(why):
    """Decorator: the test is left out of the reduced (sanitizer) run, which must stay short: long
    waits on timers, timing and load measurements run in the plain build only. |why| says why."""

    def deco(fn):
        fn.full_only = why
        return fn

    return deco


def timeout(seconds):
    """Decorator: the test's deadline in seconds (doubled in --reduced, sanitizer builds)."""

    def deco(fn):
        fn.timeout = seconds
        return fn

    return deco


# ---- small helpers -----------------------------------------------------------------------------


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound to port 0 together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


def port_busy(port, host="127.0.0.1"):
    """True when something listens on host:port or the port cannot be bound."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def decode_token(token):
    """The JSON object inside a tunnel token (PRODUCT.md section 2)."""
    return json.loads(b64url_decode(token).decode("utf-8"))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def write_file(path, data, mode=None):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)
    return path


def yaml_dump(obj, indent=0):
    """Block YAML for dicts/lists with JSON scalars (JSON strings are valid YAML scalars)."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, k, yaml_dump(v, indent + 1)))
            else:
                out.append("%s%s: %s\n" % (pad, k, json.dumps(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = yaml_dump(v, indent + 1)
                out.append("%s- %s" % (pad, inner.lstrip(" ")))
            else:
                out.append("%s- %s\n" % (pad, json.dumps(v)))
    else:
        out.append("%s%s\n" % (pad, json.dumps(obj)))
    return "".join(out)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what, expected, actual))


def tail(path, lines=40, max_bytes=64 * 1024):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(data.splitlines()[-lines:])


# ---- PKI ---------------------------------------------------------------------------------------


def make_pki(dir_):
    """The run's certificates (tests/tools/mkcert.sh): ca.pem; public.pem for *.culvert.test,
    *.wild.culvert.test, culvert.test, corpus.test, localhost; tunnel.pem for localhost and 127.0.0.1; other.pem from
    a second CA (other/ca.pem) for wrong-CA tests."""
    if os.path.exists(os.path.join(dir_, "done")):
        return dir_
    os.makedirs(dir_, exist_ok=True)
    runs = [
        [dir_, "public", "DNS:*." + DOMAIN, "DNS:*.wild." + DOMAIN, "DNS:" + DOMAIN, "DNS:" + CORPUS_HOST,
         "DNS:localhost"],
        [dir_, "tunnel", "DNS:localhost", "IP:127.0.0.1"],
        [os.path.join(dir_, "other"), "tunnel", "DNS:localhost", "IP:127.0.0.1"],
    ]
    for args in runs:
        r = subprocess.run(["sh", MKCERT] + args, cwd=REPO, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("mkcert.sh %s failed: %s" % (args, r.stderr.decode(errors="replace")))
    write_file(os.path.join(dir_, "done"), "ok\n")
    return dir_


# ---- processes ---------------------------------------------------------------------------------


class Proc:
    """A process started by the framework; stdout and stderr go to one log file."""

    def __init__(self, ctx, name, argv, env=None, cwd=None, stdin=subprocess.DEVNULL):
        self.ctx = ctx
        self.name = name
        self.argv = list(argv)
        self.log = ctx.path("%s.log" % name)
        n = 2
        while self.log in [p.log for p in ctx.procs]:
            self.log = ctx.path("%s.%d.log" % (name, n))
            n += 1
        ctx.note("start %s: %s" % (name, " ".join(self.argv)))
        self._logf = open(self.log, "ab")
        self.popen = subprocess.Popen(self.argv, stdin=stdin, stdout=self._logf, stderr=subprocess.STDOUT,
                                      env=env, cwd=cwd or ctx.dir, close_fds=True)
        self.pid = self.popen.pid
        self.stopped_cleanly = None
        self.is_culvert = os.path.basename(self.argv[0]).startswith("culvert-")
        ctx.procs.append(self)

    @property
    def returncode(self):
        return self.popen.poll()

    def alive(self):
        return self.popen.poll() is None

    def wait(self, timeout):
        """Exit code, or None if still running after |timeout| seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def send(self, sig):
        if self.alive():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=None, sig=signal.SIGTERM):
        """SIGTERM, wait up to |timeout| s, then SIGKILL. Returns the exit code."""
        if timeout is None:
            timeout = self.ctx.stop_timeout
        if self.alive():
            self.send(sig)
            rc = self.wait(timeout)
            if rc is None:
                self.ctx.warn("%s (pid %d) did not exit within %.1fs of %s; killed" %
                              (self.name, self.pid, timeout, signal.Signals(sig).name))
                self.popen.kill()
                self.wait(10)
                self.stopped_cleanly = False
            else:
                self.stopped_cleanly = True
        self._logf.close()
        return self.popen.poll()

    def kill(self):
        if self.alive():
            self.popen.kill()
            self.wait(10)
        self._logf.close()

    def text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout, start=0):
        """Waits until the log matches regex |pattern| (from byte |start|); returns the match."""
        rx = re.compile(pattern)
        m = None

        def found():
            nonlocal m
            m = rx.search(self.text()[start:])
            return m is not None

        self.ctx.wait_until(found, timeout, "log of %s to match %r" % (self.name, pattern))
        return m

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0


# ---- results of a request ----------------------------------------------------------------------


class Response:
    """An HTTP response: status, headers [(name, value)] in order, body bytes."""

    def __init__(self, status, headers, body, reason=""):
        self.status = status
        self.headers = headers
        self.body = body
        self.reason = reason

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %s %s, %d body bytes>" % (self.status, self.headers, len(self.body or b""))


class CurlResult(Response):
    def __init__(self, rc, status, headers, body, stderr, body_path=None):
        super().__init__(status, headers, body)
        self.rc = rc
        self.stderr = stderr
        self.body_path = body_path

    def __repr__(self):
        return "<curl rc=%d status=%s headers=%s body=%r stderr=%r>" % (
            self.rc, self.status, self.headers, (self.body or b"")[:300], self.stderr[-300:])


def parse_header_block(raw):
    """The last header block of a curl -D file: (status, [(name, value)])."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", raw) if b.strip()]
    if not blocks:
        return None, []
    lines = blocks[-1].splitlines()
    m = re.match(r"HTTP/[\d.]+ (\d{3})", lines[0])
    status = int(m.group(1)) if m else None
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return status, headers


class RawHTTP:
    """Reads HTTP/1.1 responses from a socket (for raw requests over TLS or TCP)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(65536)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            # A TLS peer that closes without close_notify, or a reset: the end of the stream.
            self.eof = True
            self.error = e
            return False
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed inside a body")
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_response(self, head_only=False):
        """One response (interim 1xx are returned too), or None at a clean EOF."""
        line = self._line()
        if line is None:
            if self.buf:
                raise EOFError("partial response head: %r" % self.buf[:200])
            return None
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ?(.*)", line)
        if not m:
            raise ValueError("bad status line %r" % line[:200])
        status = int(m.group(1))
        headers = []
        while True:
            h = self._line()
            if h is None:
                raise EOFError("connection closed inside a response head")
            if h == b"":
                break
            k, _, v = h.partition(b":")
            headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
        r = Response(status, headers, b"", m.group(2).decode("latin-1"))
        if head_only or status < 200 or status in (204, 304):
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        if te is not None and "chunked" in te.lower():
            body = b""
            while True:
                sz = self._line()
                if sz is None:
                    raise EOFError("connection closed inside a chunked body")
                n = int(sz.split(b";")[0], 16)
                if n == 0:
                    while True:
                        t = self._line()
                        if t is None or t == b"":
                            break
                    break
                body += self._take(n)
                self._take(2)
            r.body = body
        elif cl is not None:
            r.body = self._take(int(cl))
        else:
            while self._fill():
                pass
            r.body, self.buf = self.buf, b""
        return r

    def closed_after(self, timeout):
        """True when the peer closes (EOF or reset) within |timeout| s with no further bytes."""
        self.sock.settimeout(timeout)
        try:
            while not self.eof:
                if not self._fill():
                    break
                if self.buf:
                    return False
            return self.eof
        except socket.timeout:
            return False


# ---- the context -------------------------------------------------------------------------------


class Ctx:
    def __init__(self, build, dir_, pki, reduced=False, verbose=False, bin_dir=None):
        self.build = os.path.abspath(build)
        self.dir = dir_
        self.pki = pki
        self.reduced = reduced
        self.verbose = verbose
        self.procs = []
        self.aux = []  # short-lived clients started in the background (killed at cleanup)
        self.secrets = {}  # text -> label: tokens, tunnel secrets, admin tokens (never in any log)
        self.warnings = []
        self.notes_path = os.path.join(dir_, "test.notes")
        self.slow = 2.0 if reduced else 1.0  # sanitizer builds are slower: scale the waits
        self.stop_timeout = 5.0 * self.slow
        self._tailer = None
        # run.py copies the binaries at the start of a run (BUILD/itest/bin), so that a rebuild
        # during the run cannot swap them under a test.
        bindir = bin_dir or self.build
        self.edge_bin = os.path.join(bindir, "culvert-edge")
        self.connector_bin = os.path.join(bindir, "culvert-connector")
        self.env = dict(os.environ)
        for k in ("CULVERT_TOKEN", "TUNNEL_TOKEN", "http_proxy", "https_proxy", "HTTP_PROXY",
                  "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "no_proxy", "NO_PROXY"):
            self.env.pop(k, None)
        self.env["HOME"] = dir_  # no ~/.culvert or ~/.cloudflared config from the machine
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        if verbose:
            self._tailer = threading.Thread(target=self._tail_logs, daemon=True)
            self._tailer.start()

    # -- files and notes

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def mkdir(self, *parts):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        return p

    def note(self, msg):
        with open(self.notes_path, "a") as f:
            f.write("%.3f %s\n" % (time.time(), msg))
        if self.verbose:
            print("  | %s" % msg, flush=True)

    def warn(self, msg):
        self.warnings.append(msg)
        self.note("WARNING: " + msg)

    def add_secret(self, label, text):
        """Registers a secret; cleanup fails the test if any culvert log or access log holds it."""
        if text and len(text) >= 16:
            self.secrets[text] = label

    def add_token(self, label, token):
        """A tunnel token and every text form of its secret."""
        self.add_secret(label + " token", token)
        try:
            secret = decode_token(token)["secret"]
            raw = base64.b64decode(secret + "=" * (-len(secret) % 4))
        except Exception:
            return
        s = secret.rstrip("=")
        for form in (s, s.replace("+", "-").replace("/", "_"), raw.hex(), raw.hex().upper()):
            self.add_secret(label + " secret", form)

    def skip(self, why):
        raise Skip(why)

    def _tail_logs(self):
        pos = {}
        while True:
            for p in list(self.procs):
                try:
                    with open(p.log, "rb") as f:
                        f.seek(pos.get(p.log, 0))
                        data = f.read()
                        pos[p.log] = f.tell()
                except OSError:
                    continue
                for line in data.decode("utf-8", "replace").splitlines():
                    print("  [%s] %s" % (p.name, line), flush=True)
            time.sleep(0.2)

    # -- waiting and running

    def wait_until(self, pred, timeout, what, interval=0.05):
        """Polls pred() until true; raises AssertionError naming |what| after |timeout| s."""
        deadline = time.monotonic() + timeout * self.slow
        last_exc = None
        while True:
            try:
                v = pred()
                if v:
                    return v
            except (OSError, ValueError) as e:
                last_exc = e
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                    timeout * self.slow, what, " (last error: %s)" % last_exc if last_exc else ""))
            time.sleep(interval)

    def run(self, argv, timeout=30, input=None, env=None, check=None):
        """Runs a short command; returns CompletedProcess with text stdout/stderr. |check|: the
        exit code it must have."""
        t0 = time.monotonic()
        r = subprocess.run(argv, input=input, capture_output=True, timeout=timeout * self.slow,
                           env=env or self.env, cwd=self.dir, text=True, errors="replace")
        self.note("run (%.2fs) rc=%d: %s\n    stdout: %s\n    stderr: %s" % (
            time.monotonic() - t0, r.returncode, " ".join(argv), r.stdout[-2000:].rstrip(),
            r.stderr[-2000:].rstrip()))
        if check is not None and r.returncode != check:
            raise AssertionError("%s: exit code %d, expected %d\nstdout: %s\nstderr: %s" % (
                " ".join(argv), r.returncode, check, r.stdout[-2000:], r.stderr[-2000:]))
        return r

    def spawn(self, name, argv, env=None, **kw):
        return Proc(self, name, argv, env=env or self.env, **kw)

    # -- components

    def edge(self, **kw):
        e = Edge(self, **kw)
        if kw.get("start", True):
            e.start()
        return e

    def origin(self, name="origin", **kw):
        return Origin(self, name, **kw)

    def connector(self, edge, token, **kw):
        c = Connector(self, edge, token, **kw)
        if kw.get("start", True):
            c.start(wait_ready=kw.get("wait_ready", True))
        return c

    # -- clients

    def curl(self, url, resolve=None, method=None, headers=(), data_file=None, data=None,
             output=None, timeout=30, extra=(), cacert=None, http_code_only=False):
        """curl -sS over HTTPS with the test CA. |resolve|: an Edge (its host:port pinned to
        127.0.0.1) or a list of --resolve strings. |output|: a file for the body (else in memory).
        Returns CurlResult (status None when no response)."""
        n = len(os.listdir(self.dir))
        hdr = self.path("curl-%d.h" % n)
        body_path = output or self.path("curl-%d.b" % n)
        argv = ["curl", "-sS", "--max-time", str(timeout * self.slow), "-D", hdr, "-o", body_path,
                "-w", "%{http_code}", "--cacert", cacert or os.path.join(self.pki, "ca.pem"),
                "--noproxy", "*"]
        for r in _resolves(url, resolve):
            argv += ["--resolve", r]
        if method == "HEAD":
            argv += ["-I"]  # curl writes the head to -o too: the body of a HEAD is checked raw
            body_path = os.devnull
            argv[argv.index("-o") + 1] = body_path
        elif method:
            argv += ["-X", method]
        for h in headers:
            argv += ["-H", h]
        if data_file is not None:
            argv += ["--data-binary", "@" + data_file]
        elif data is not None:
            argv += ["--data-binary", data]
        argv += list(extra) + [url]
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, timeout=timeout * self.slow + 10, env=self.env)
        stderr = p.stderr.decode(errors="replace")
        try:
            with open(hdr, "r", encoding="latin-1") as f:
                status, headers_ = parse_header_block(f.read())
        except OSError:
            status, headers_ = None, []
        body = None
        if method == "HEAD":
            body = b""
        elif output is None:
            try:
                with open(body_path, "rb") as f:
                    body = f.read()
            except OSError:
                body = b""
        self.note("curl (%.2fs) rc=%d status=%s: %s %s" % (time.monotonic() - t0, p.returncode,
                                                         status, " ".join(argv), stderr.strip()))
        return CurlResult(p.returncode, status, headers_, body, stderr, body_path)

    def curl_popen(self, url, resolve=None, extra=(), timeout=60):
        """Starts curl in the background writing the body to a file; for parallel requests.
        Returns (Popen, body_path, header_path)."""
        n = "%d-%d" % (len(os.listdir(self.dir)), threading.get_ident() % 10000)
        hdr = self.path("pcurl-%s-%s.h" % (n, time.monotonic_ns()))
        body = hdr[:-2] + ".b"
        argv = ["curl", "-sS", "--max-time", str(timeout * self.slow), "-D", hdr, "-o", body,
                "--cacert", os.path.join(self.pki, "ca.pem"), "--noproxy", "*"]
        for r in _resolves(url, resolve):
            argv += ["--resolve", r]
        argv += list(extra) + [url]
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)
        self.aux.append(p)
        return p, body, hdr

    def tls_connect(self, port, sni, timeout=10, host="127.0.0.1", rcvbuf=None):
        """A TLS socket to host:port with |sni| (None: no SNI), verifying with the test CA.
        |rcvbuf|: SO_RCVBUF set before connecting (a small window for slow-reader tests)."""
        c = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.pem"))
        if sni is None:
            c.check_hostname = False
        if rcvbuf is not None:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(timeout * self.slow)
            try:
                raw.connect((host, port))
            except Exception:
                raw.close()
                raise
        else:
            raw = socket.create_connection((host, port), timeout=timeout * self.slow)
        try:
            return c.wrap_socket(raw, server_hostname=sni)
        except Exception:
            raw.close()
            raise

    def raw_request(self, port, data, sni=None, tls=True, timeout=10, head_only=False):
        """Sends |data| on a new connection (TLS with |sni| when |tls|); returns the first
        Response and the RawHTTP reader (to read more or check for a close)."""
        if tls:
            s = self.tls_connect(port, sni, timeout)
        else:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout * self.slow)
        s.sendall(data)
        rd = RawHTTP(s)
        return rd.read_response(head_only=head_only), rd

    # -- teardown

    def cleanup(self):
        """Stops every process (reverse start order) and reports sanitizer output in their logs.
        Returns a list of problems that make the test fail."""
        problems = []
        for a in self.aux:
            if a.poll() is None:
                a.kill()
                a.wait(10)
        crash = {-signal.SIGABRT: "SIGABRT", -signal.SIGSEGV: "SIGSEGV", -signal.SIGBUS: "SIGBUS",
                 -signal.SIGILL: "SIGILL", -signal.SIGFPE: "SIGFPE"}
        for p in reversed(self.procs):
            try:
                was_alive = p.alive()
                rc = p.stop()
                if rc in crash:
                    problems.append("%s (pid %d) died of %s%s" % (p.name, p.pid, crash[rc],
                                                                 " after SIGTERM" if was_alive else ""))
                elif was_alive and p.is_culvert and rc not in (0, None) and p.stopped_cleanly:
                    problems.append("%s (pid %d) exited with code %s after SIGTERM (expected 0)" %
                                    (p.name, p.pid, rc))
            except Exception as e:  # never let one process keep the others alive
                problems.append("stopping %s: %s" % (p.name, e))
                try:
                    p.kill()
                except Exception:
                    pass
        # RELIABILITY.md T-20: no secret in any log of a culvert process or in an access log.
        logs = [(p.log, p.text()) for p in self.procs if p.is_culvert]
        for root, _, files in os.walk(self.dir):
            for f in files:
                if f.startswith("access") and f.endswith(".log"):
                    with open(os.path.join(root, f), "rb") as fh:
                        logs.append((os.path.join(root, f), fh.read().decode("utf-8", "replace")))
        for path, text in logs:
            for secret, label in self.secrets.items():
                if secret in text:
                    problems.append("a secret (%s) appears in %s" % (label, path))
        for p in self.procs:
            self.note("%s (pid %d) exit code %s%s" % (p.name, p.pid, p.returncode,
                                                      "" if p.stopped_cleanly is not None else
                                                      " (had exited before the cleanup)"))
            text = p.text()
            for m in SANITIZER_MARKERS:
                if m in text:
                    problems.append("sanitizer report in %s (%s)" % (p.log, m))
                    break
        return problems


def _resolves(url, resolve):
    if resolve is None:
        return []
    if isinstance(resolve, (list, tuple)):
        return list(resolve)
    m = re.match(r"https?://([^/:]+)(?::(\d+))?", url)
    host = m.group(1)
    port = m.group(2) or ("443" if url.startswith("https") else "80")
    return ["%s:%s:127.0.0.1" % (host, port)]


# ---- culvert-edge ------------------------------------------------------------------------------


class Edge:
    """A culvert-edge with its own edge.yml, data dir and free ports.

    Keywords: name ("edge"), region ("test"), limits (dict merged over the test defaults),
    grace_period ("2s"), extra (dict merged into edge.yml at the top level), http (True: a plain
    HTTP listener), start (True)."""

    def __init__(self, ctx, name="edge", region="test", limits=None, grace_period="2s", extra=None,
                 http=True, start=True):
        self.ctx = ctx
        self.name = name
        self.region = region
        self.dir = ctx.mkdir(name)
        self.https_port, self.http_port, self.tunnel_port, self.admin_port = free_ports(4)
        self.config = os.path.join(self.dir, "edge.yml")
        self.admin_token = os.path.join(self.dir, "admin.token")
        self.access_log = os.path.join(self.dir, "access.log")
        self.data_dir = os.path.join(self.dir, "data")
        pki = ctx.pki
        lim = {"heartbeat_ms": "1s"}
        lim.update(limits or {})
        cfg = {
            "region": region,
            "data_dir": self.data_dir,
            "public": {
                "https": ["127.0.0.1:%d" % self.https_port],
                "http": ["127.0.0.1:%d" % self.http_port] if http else [],
                "certificates": [{"cert": os.path.join(pki, "public.pem"),
                                  "key": os.path.join(pki, "public.key")}],
            },
            "tunnel": {
                "listen": ["127.0.0.1:%d" % self.tunnel_port],
                "advertise": ["127.0.0.1:%d" % self.tunnel_port],
                "ca": os.path.join(pki, "ca.pem"),
                "cert": os.path.join(pki, "tunnel.pem"),
                "key": os.path.join(pki, "tunnel.key"),
            },
            "admin": {"listen": "127.0.0.1:%d" % self.admin_port, "token_file": self.admin_token},
            "grace_period": grace_period,
            "access_log": {"path": self.access_log},
            "limits": lim,
        }
        for k, v in (extra or {}).items():
            cfg[k] = v
        self.cfg = cfg
        self.write_config()
        self.proc = None

    def write_config(self, text=None):
        write_file(self.config, text if text is not None else
                   "# written by tests/integration/lib.py\n" + yaml_dump(self.cfg))

    def start(self, wait=True):
        self.proc = self.ctx.spawn(self.name, [self.ctx.edge_bin, "serve", "--config", self.config])
        if wait:
            self.wait_admin()
        return self

    def wait_admin(self, timeout=10):
        """Waits until `tunnel list --config F` succeeds; fails early if the edge exits."""
        def up():
            if not self.proc.alive():
                raise AssertionError("culvert-edge exited with code %s while starting:\n%s" % (
                    self.proc.returncode, tail(self.proc.log)))
            r = subprocess.run([self.ctx.edge_bin, "tunnel", "list", "--config", self.config],
                               capture_output=True, timeout=10 * self.ctx.slow, env=self.ctx.env)
            return r.returncode == 0

        self.ctx.wait_until(up, timeout, "the admin API of %s" % self.name, interval=0.1)
        try:
            with open(self.admin_token) as f:
                self.ctx.add_secret("admin token of %s" % self.name, f.read().strip())
        except OSError:
            pass

    def stop(self, timeout=None):
        return self.proc.stop(timeout)

    def restart(self, wait=True):
        self.stop()
        return self.start(wait)

    # -- CLI

    def cli(self, *args, check=0, output_json=False, config=True, timeout=30):
        """Runs `culvert-edge ARGS [--config F] [--output json]`; checks the exit code when
        |check| is not None; returns CompletedProcess (with .json parsed when output_json)."""
        argv = [self.ctx.edge_bin] + list(args)
        if config:
            argv += ["--config", self.config]
        if output_json:
            argv += ["--output", "json"]
        r = self.ctx.run(argv, timeout=timeout, check=check)
        r.json = None
        if output_json and r.returncode == 0:
            try:
                r.json = json.loads(r.stdout)
            except ValueError as e:
                raise AssertionError("%s: stdout is not JSON (%s): %r" % (" ".join(argv), e,
                                                                          r.stdout[:500]))
            if isinstance(r.json, dict) and isinstance(r.json.get("token"), str):
                self.ctx.add_token("tunnel %s" % r.json.get("name"), r.json["token"])
        elif r.returncode == 0:
            for w in re.findall(r"[A-Za-z0-9_-]{60,}", r.stdout):  # a token printed as text
                try:
                    if decode_token(w).get("v") == 1:
                        self.ctx.add_token("tunnel (text output)", w)
                except Exception:
                    pass
        return r

    def create_tunnel(self, name):
        t = self.cli("tunnel", "create", name, output_json=True).json
        expect(isinstance(t, dict) and isinstance(t.get("token"), str),
               "tunnel create --output json: no token in %r" % (t,))
        return t

    def route_add(self, hostname, tunnel):
        return self.cli("route", "add", hostname, tunnel)

    def tunnel_with_route(self, name, hostnames):
        t = self.create_tunnel(name)
        for h in hostnames:
            self.route_add(h, name)
        return t

    # -- addresses

    def url(self, host, path="/", scheme="https"):
        port = self.https_port if scheme == "https" else self.http_port
        return "%s://%s:%d%s" % (scheme, host, port, path)

    def resolve(self, host, scheme="https"):
        port = self.https_port if scheme == "https" else self.http_port
        return ["%s:%d:127.0.0.1" % (host, port)]

    def get(self, host, path="/", **kw):
        """curl GET https://host:port/path through this edge."""
        return self.ctx.curl(self.url(host, path), resolve=self.resolve(host), **kw)


# ---- culvert-connector -------------------------------------------------------------------------


class Connector:
    """A culvert-connector for |edge| with |token| (written to a 0600 --token-file).

    Keywords: ingress (list of rules, written to config.yml; default: hello_world catch-all),
    url (--url instead of ingress), ha (2), name ("connector"), args (extra flags), token_mode
    ("file" | "flag" | "env" | "none": no token at all, the config names the credentials),
    loglevel ("info"), start, wait_ready, config (dict of more top-level config.yml keys, e.g.
    originRequest), config_text (config.yml written verbatim instead)."""

    def __init__(self, ctx, edge, token, ingress=None, url=None, ha=2, name="connector", args=(),
                 token_mode="file", loglevel="info", start=True, wait_ready=True, grace="2s",
                 config=None, config_text=None):
        self.ctx = ctx
        self.edge = edge
        self.token = token
        self.name = name
        self.dir = ctx.mkdir(name)
        self.metrics_port = free_port()
        self.token_file = os.path.join(self.dir, "token")
        if token is not None:
            write_file(self.token_file, token + "\n", 0o600)
        self.config = os.path.join(self.dir, "config.yml")
        self.url = url
        cfg = dict(config or {})
        if url is None and config_text is None:
            cfg["ingress"] = ingress if ingress is not None else [{"service": "hello_world"}]
        if config_text is not None:
            write_file(self.config, config_text)
        else:
            write_file(self.config, "# written by tests/integration/lib.py\n" + yaml_dump(cfg) if cfg
                       else "# empty\n{}\n")
        self.argv = [ctx.connector_bin, "run", "--config", self.config,
                     "--metrics", "127.0.0.1:%d" % self.metrics_port,
                     "--retry-base", "100ms", "--heartbeat", "1s", "--grace-period", grace,
                     "--ha-connections", str(ha), "--loglevel", loglevel]
        if url is not None:
            self.argv += ["--url", url]
        self.env = dict(ctx.env)
        if token_mode == "file":
            self.argv += ["--token-file", self.token_file]
        elif token_mode == "flag":
            self.argv += ["--token", token]
        elif token_mode == "env":
            self.env["CULVERT_TOKEN"] = token
        self.argv += list(args)
        self.proc = None

    def start(self, wait_ready=True):
        self.proc = self.ctx.spawn(self.name, self.argv, env=self.env)
        if wait_ready:
            self.wait_ready()
        return self

    def ready(self):
        s = http_get("127.0.0.1", self.metrics_port, "/ready", timeout=2)
        return s is not None and s[0] == 200

    def wait_ready(self, timeout=10):
        def ok():
            if not self.proc.alive():
                raise AssertionError("culvert-connector exited with code %s while starting:\n%s" % (
                    self.proc.returncode, tail(self.proc.log)))
            return self.ready()

        self.ctx.wait_until(ok, timeout, "/ready of %s to answer 200" % self.name, interval=0.1)

    def stop(self, timeout=None):
        return self.proc.stop(timeout)


def http_get(host, port, path, timeout=5, headers=None):
    """A plain HTTP/1.1 GET on loopback: (status, body) or None when nothing answers."""
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    try:
        req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n" % (path, host, port)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        s.sendall((req + "\r\n").encode())
        r = RawHTTP(s).read_response()
        return (r.status, r.body) if r else None
    except (OSError, ValueError, EOFError):
        return None
    finally:
        s.close()


# ---- origin ------------------------------------------------------------------------------------


class Origin:
    """origin.py in its own process on a free port; .url is http://127.0.0.1:PORT.

    Keywords: tls ((cert, key) PEM files: an HTTPS origin; .url is https://localhost:PORT, since
    the test certificates name localhost), unix (True: listen on a unix socket in the origin's
    directory; .url is unix:PATH, or unix+tls:PATH with tls)."""

    def __init__(self, ctx, name="origin", tls=None, unix=False):
        self.ctx = ctx
        self.name = name
        self.dir = ctx.mkdir(name)
        self.ready_file = os.path.join(self.dir, "port")
        self.request_log = os.path.join(self.dir, "requests.jsonl")
        self.event_log = os.path.join(self.dir, "events.jsonl")
        write_file(self.request_log, "")
        write_file(self.event_log, "")
        argv = [PYTHON, ORIGIN_PY, "--name", name, "--ready-file", self.ready_file,
                "--log", self.request_log, "--events", self.event_log]
        self.unix_path = None
        if unix:
            self.unix_path = os.path.join(self.dir, "s.sock")
            argv += ["--unix", self.unix_path]
        if tls is not None:
            argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = ctx.spawn(name, argv)

        def ready():
            if not self.proc.alive():
                raise AssertionError("origin %s exited: %s" % (name, tail(self.proc.log)))
            return os.path.exists(self.ready_file)

        ctx.wait_until(ready, 10, "origin %s to listen" % name)
        with open(self.ready_file) as f:
            where = f.read().strip()
        if unix:
            self.port = None
            self.url = ("unix+tls:" if tls else "unix:") + self.unix_path
        else:
            self.port = int(where)
            self.url = ("https://localhost:%d" if tls else "http://127.0.0.1:%d") % self.port

    def requests(self):
        """Every request the origin parsed so far: [{"method","path","request_id","name","conn",
        "host","sni"}]."""
        out = []
        with open(self.request_log) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
        return out

    def request_count(self):
        return len(self.requests())

    def events(self, name=None):
        """The origin's event log ([{"event","t","conn",...}]), only events |name| if given."""
        out = []
        with open(self.event_log) as f:
            for line in f:
                line = line.strip()
                if line:
                    e = json.loads(line)
                    if name is None or e["event"] == name:
                        out.append(e)
        return out

    def progress(self, key):
        """{"sent", "done"} of /bytes?id=KEY, asked directly (not through the tunnel)."""
        r = http_get("127.0.0.1", self.port, "/progress?id=%s" % key, timeout=5)
        if r is None or r[0] != 200:
            raise AssertionError("origin %s: /progress?id=%s did not answer: %r" % (self.name, key, r))
        return json.loads(r[1])


# ---- a ready-made setup ------------------------------------------------------------------------


class Stack:
    """edge + one tunnel + routes + origin + connector, the common setup of the proxy tests."""

    def __init__(self, ctx, hosts=("app." + DOMAIN,), tunnel="app", ha=2, edge_kw=None, origin=True,
                 ingress=None):
        self.ctx = ctx
        self.edge = ctx.edge(**(edge_kw or {}))
        self.tunnel = self.edge.tunnel_with_route(tunnel, hosts)
        self.hosts = list(hosts)
        self.host = self.hosts[0]
        self.origin = ctx.origin("origin") if origin else None
        if ingress is None:
            ingress = [{"service": self.origin.url if origin else "hello_world"}]
        self.connector = ctx.connector(self.edge, self.tunnel["token"], ingress=ingress, ha=ha)

    def get(self, path="/", host=None, **kw):
        return self.edge.get(host or self.host, path, **kw)

    def url(self, path="/", host=None):
        return self.edge.url(host or self.host, path)

    def resolve(self, host=None):
        return self.edge.resolve(host or self.host)


# ---- WebSocket client ----------------------------------------------------------------------------


class WebSocket:
    """A small RFC 6455 client over a connected socket (usually ctx.tls_connect to the edge):
    handshake, masked frames, ping/pong, close. Frame coding is origin.py's (ws_encode,
    ws_read_frame), so the test origin and this client agree on one implementation that the
    culvert binaries must carry unchanged."""

    def __init__(self, sock):
        import origin as origin_mod  # the frame codec; origin.py sits next to this file

        self.o = origin_mod
        self.sock = sock
        self.rd = RawHTTP(sock)
        self.key = None
        self.response = None

    @staticmethod
    def new_key():
        return base64.b64encode(os.urandom(16)).decode()

    def handshake(self, host, path="/ws/echo", key=None, headers=(), version="13"):
        """Sends the upgrade request and reads the answer's head (and body, unless 101).
        Returns the Response; .accept_ok says whether a 101's Sec-WebSocket-Accept is right."""
        self.key = key or self.new_key()
        req = ["GET %s HTTP/1.1" % path, "Host: %s" % host, "Upgrade: websocket",
               "Connection: Upgrade", "Sec-WebSocket-Key: %s" % self.key]
        if version is not None:
            req.append("Sec-WebSocket-Version: %s" % version)
        req += list(headers)
        self.sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
        r = self.rd.read_response()
        while r is not None and 100 <= r.status < 200 and r.status != 101:
            r = self.rd.read_response()
        self.response = r
        if r is not None:
            r.accept_ok = r.status == 101 and r.header("Sec-WebSocket-Accept") == self.o.ws_accept(self.key)
        return r

    def send(self, opcode, payload=b"", fin=True):
        self.sock.sendall(self.o.ws_encode(opcode, payload, fin, mask_key=os.urandom(4)))

    def send_text(self, text):
        self.send(self.o.WS_TEXT, text.encode("utf-8"))

    def send_binary(self, data):
        self.send(self.o.WS_BINARY, data)

    def ping(self, payload=b""):
        self.send(self.o.WS_PING, payload)

    def close(self, code=1000, reason=""):
        self.send(self.o.WS_CLOSE, self.o.ws_close_payload(code, reason))

    def recv_frame(self, timeout=10):
        """(fin, opcode, masked, payload) of the next frame; EOFError when the stream ended,
        socket.timeout after |timeout| s."""
        self.sock.settimeout(timeout)
        return self.o.ws_read_frame(self.rd._take)

    def recv_message(self, timeout=10):
        """The next data message, fragments joined: (opcode, payload). Control frames in between
        are returned as they come: (opcode, payload) with opcode >= 8."""
        first_op = None
        parts = []
        while True:
            fin, op, _, payload = self.recv_frame(timeout)
            if op >= 8:
                return op, payload
            if first_op is None:
                first_op = op
            parts.append(payload)
            if fin:
                return first_op, b"".join(parts)

    def closed_after(self, timeout):
        """True when the peer closes the connection within |timeout| s with no more bytes."""
        return self.rd.closed_after(timeout)


# ---- process memory ------------------------------------------------------------------------------


def tcp_wmem_max():
    """The most a TCP send buffer grows to here (tcp_wmem's third field): on loopback the kernel
    takes about that much of a response before the sender's own queue starts to fill."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2])


def fd_count(pid):
    """How many descriptors process |pid| has open (0 when it is gone)."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def proc_status_kib(pid):
    """{"VmRSS": KiB, "VmHWM": KiB} from /proc/PID/status ({} when the process is gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class MemSampler:
    """Samples VmRSS of processes ({name: pid}) every |interval| s in a thread; stop() returns
    {name: {"max_rss_kib", "hwm_kib", "samples"}} (VmHWM, the kernel's peak, read at the end)."""

    def __init__(self, pids, interval=0.05):
        self.pids = dict(pids)
        self.interval = interval
        self.max_rss = {n: 0 for n in self.pids}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            for n, pid in self.pids.items():
                v = proc_status_kib(pid).get("VmRSS")
                if v is not None and v > self.max_rss[n]:
                    self.max_rss[n] = v
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        out = {}
        for n, pid in self.pids.items():
            st = proc_status_kib(pid)
            out[n] = {"max_rss_kib": max(self.max_rss[n], st.get("VmRSS", 0)),
                      "hwm_kib": st.get("VmHWM", 0), "samples": self.samples}
        return out
