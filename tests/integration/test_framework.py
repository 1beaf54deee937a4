"""Self-tests of the framework: the runner reports pass/fail/skip/timeout/crash correctly and stops
what a test started; the test origin answers as the other tests assume (no culvert process)."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import lib
import origin as origin_mod
from lib import expect, expect_eq

SAMPLE = '''
import os
import time

import lib


def test_passes(ctx):
    lib.expect_eq(1 + 1, 2, "sum")


def test_fails(ctx):
    lib.expect_eq(1, 2, "deliberate mismatch")


def test_skips(ctx):
    ctx.skip("not here")


@lib.timeout(2)
def test_times_out(ctx):
    p = ctx.spawn("sleeper", ["sleep", "1000"])
    with open(os.environ["SELFTEST_PIDFILE"], "w") as f:
        f.write(str(p.pid))
    time.sleep(100)


def test_crash_is_failure(ctx):
    p = ctx.spawn("crasher", ["sh", "-c", "kill -SEGV $$"])
    p.wait(5)
'''


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


@lib.timeout(60)
@lib.full_only("tests the runner itself, not the binaries")
def test_runner_reports_and_cleans_up(ctx):
    d = ctx.mkdir("selftests")
    lib.write_file(os.path.join(d, "test_sample.py"), SAMPLE)
    pidfile = ctx.path("sleeper.pid")
    env = dict(ctx.env)
    env["SELFTEST_PIDFILE"] = pidfile
    run_py = os.path.join(lib.HERE, "run.py")
    argv = [sys.executable, run_py, "--build", ctx.build, "--tests-dir", d]
    if ctx.reduced:
        argv.append("--reduced")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=lib.REPO)
    out = r.stdout
    ctx.note("self-run output:\n" + out + r.stderr)
    expect_eq(r.returncode, 1, "exit code of a run with failures")
    lines = {l.split()[1]: l.split()[0] for l in out.splitlines()
             if len(l.split()) > 1 and l.split()[0] in ("ok", "FAIL", "skip")}
    expect_eq(lines, {
        "test_sample.test_passes": "ok",
        "test_sample.test_fails": "FAIL",
        "test_sample.test_skips": "skip",
        "test_sample.test_times_out": "FAIL",
        "test_sample.test_crash_is_failure": "FAIL",
    }, "per-test results")
    expect("deliberate mismatch" in out, "the failure message is not printed")
    expect("timed out" in out, "the timeout is not reported")
    expect("died of SIGSEGV" in out, "the crash is not reported")
    expect("1 passed, 3 failed, 1 skipped" in out, "summary line:\n%s" % out[-500:])
    pid = int(open(pidfile).read())
    ctx.wait_until(lambda: not pid_alive(pid), 5, "the timed-out test's process %d to be gone" % pid)
    # -k selects.
    r = subprocess.run(argv + ["-k", "test_passes"], capture_output=True, text=True, timeout=60, env=env,
                       cwd=lib.REPO)
    expect_eq(r.returncode, 0, "exit code of a passing selection")
    expect("1 passed, 0 failed, 0 skipped" in r.stdout, "summary of -k test_passes:\n%s" % r.stdout)


def origin_request(port, data, head_only=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(data)
        return lib.RawHTTP(s).read_response(head_only=head_only)
    finally:
        s.close()


@lib.timeout(30)
def test_origin_endpoints(ctx):
    o = ctx.origin("o")
    # /echo: headers in order with case and repeats kept; body length and hash.
    body = b"hello world"
    r = origin_request(o.port, b"POST /echo?x=1 HTTP/1.1\r\nHost: h\r\nX-B: 1\r\nx-a: 2\r\nX-B: 3\r\n"
                               b"Culvert-Request-Id: rid1\r\nContent-Length: 11\r\n\r\n" + body)
    j = json.loads(r.body)
    expect_eq(j["method"], "POST", "echo method")
    expect_eq(j["path"], "/echo?x=1", "echo path")
    expect_eq(j["headers"][:4], [["Host", "h"], ["X-B", "1"], ["x-a", "2"], ["X-B", "3"]], "echo headers")
    expect_eq((j["body_length"], j["body_sha256"]), (11, hashlib.sha256(body).hexdigest()), "echo body")
    # /upload with a chunked body.
    r = origin_request(o.port, b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    expect_eq(json.loads(r.body), {"length": 11, "sha256": hashlib.sha256(body).hexdigest()}, "chunked upload")
    # /bytes, both framings, equal to the generator the tests use.
    for q in ("n=200000&seed=5", "n=200000&seed=5&chunked=1"):
        r = origin_request(o.port, ("GET /bytes?%s HTTP/1.1\r\nHost: h\r\n\r\n" % q).encode())
        expect_eq(hashlib.sha256(r.body).hexdigest(), origin_mod.gen_sha256(200000, 5), "/bytes?%s" % q)
    expect(origin_mod.gen_sha256(1000, 1) != origin_mod.gen_sha256(1000, 2), "the seed changes the bytes")
    r = origin_request(o.port, b"HEAD /bytes?n=77 HTTP/1.1\r\nHost: h\r\n\r\n", head_only=True)
    expect_eq(r.header("Content-Length"), "77", "HEAD /bytes Content-Length")
    expect_eq(origin_request(o.port, b"GET /status/204 HTTP/1.1\r\nHost: h\r\n\r\n").status, 204, "/status/204")
    expect_eq(origin_request(o.port, b"GET /name HTTP/1.1\r\nHost: h\r\n\r\n").body, b"o", "/name")
    t0 = time.monotonic()
    expect_eq(origin_request(o.port, b"GET /slow?ms=300 HTTP/1.1\r\nHost: h\r\n\r\n").status, 200, "/slow")
    expect(time.monotonic() - t0 >= 0.3, "/slow answered early")
    reqs = o.requests()
    expect_eq(len(reqs), 8, "request log lines")
    expect_eq(reqs[0]["request_id"], "rid1", "request id in the log")
    # A WebSocket upgrade: 101 with the RFC 6455 accept value, then raw echo.
    s = socket.create_connection(("127.0.0.1", o.port), timeout=10)
    try:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        rd = lib.RawHTTP(s)
        r = rd.read_response()
        expect_eq(r.status, 101, "upgrade status")
        expect_eq(r.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Accept")
        s.sendall(b"ping")
        while len(rd.buf) < 4 and rd._fill():
            pass
        expect_eq(rd.buf, b"ping", "echo after the upgrade")
    finally:
        s.close()
