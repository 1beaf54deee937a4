"""Reload without restart (issue 4; PRODUCT.md section 4, Graceful stop): SIGHUP on the edge applies
a new certificate and new per-host timeouts, routes added with the CLI apply at once, an invalid
edge.yml is refused and the running configuration keeps serving; SIGHUP on the connector applies
new ingress rules without dropping a stream in flight, and refuses an invalid file."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import ha_lib
import lib
import origin as origin_mod
from lib import DOMAIN, expect, expect_eq

HOST = "app." + DOMAIN
OTHER = "other." + DOMAIN


def _served_cert(ctx, edge, sni):
    """(serial, subject) of the certificate the edge serves for |sni|, read with openssl s_client."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % edge.https_port,
                        "-servername", sni], input=b"", capture_output=True, timeout=20 * ctx.slow)
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
    expect(pem is not None, "openssl s_client printed no certificate: %r" % r.stderr[-500:])
    x = subprocess.run(["openssl", "x509", "-noout", "-serial", "-subject"], input=pem.group(0),
                       capture_output=True, timeout=20)
    out = x.stdout.decode()
    serial = re.search(r"serial=(\w+)", out).group(1)
    subject = re.search(r"subject=(.*)", out).group(1).strip()
    ctx.note("served certificate for %s: serial %s subject %s" % (sni, serial, subject))
    return serial, subject


def _new_public_cert(ctx, name):
    """A second public certificate from the run's CA (mkcert.sh), so clients still trust it."""
    d = ctx.mkdir("pki2")
    for f in ("ca.pem", "ca.key"):
        shutil.copy2(os.path.join(ctx.pki, f), os.path.join(d, f))
    r = subprocess.run(["sh", lib.MKCERT, d, name, "DNS:*." + DOMAIN, "DNS:" + DOMAIN], cwd=lib.REPO,
                       capture_output=True, timeout=60)
    expect(r.returncode == 0, "mkcert.sh: %s" % r.stderr.decode(errors="replace"))
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def _hup(ctx, proc, pattern, timeout=5):
    """SIGHUP |proc| and wait for |pattern| in the part of its log written after the signal."""
    start = proc.log_size()
    proc.send(signal.SIGHUP)
    return proc.wait_log(pattern, timeout, start=start)


def _download(ctx, edge, host, n, seed, rate):
    url = edge.url(host, "/bytes?n=%d&seed=%d" % (n, seed))
    return ctx.curl_popen(url, resolve=edge.resolve(host), extra=["--limit-rate", rate], timeout=60)


def _check_download(ctx, dl, n, seed, what):
    p, body, hdr = dl
    try:
        rc = p.wait(60 * ctx.slow)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("%s: the download did not finish" % what)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    with open(hdr, encoding="latin-1") as f:
        status, _ = lib.parse_header_block(f.read())
    expect(rc == 0 and status == 200, "%s: curl exit %s, status %s: %s" % (what, rc, status, err))
    size = os.path.getsize(body)
    expect_eq(size, n, "%s: bytes received" % what)
    expect_eq(lib.sha256_file(body), origin_mod.gen_sha256(n, seed), "%s: sha256 of the body" % what)


@lib.timeout(60)
def test_edge_sighup_applies_certificate_and_host_timeout_cli_route_at_once_invalid_file_refused(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("app", [HOST, OTHER])
    origin = ha_lib.Origin(ctx, "o1")
    conn = ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], name="c1")
    pid = edge.proc.pid
    old_serial, old_subject = _served_cert(ctx, edge, HOST)
    r = edge.get(HOST, "/slow?ms=1500")
    expect_eq(r.status, 200, "GET /slow?ms=1500 before the reload (response_header default 100s)")
    # A download in flight across the reload must not be dropped.
    n = (2 if ctx.reduced else 4) * 1024 * 1024
    dl = _download(ctx, edge, HOST, n, 7, "1M")
    time.sleep(0.3)

    cert, key = _new_public_cert(ctx, "public2")
    edge.cfg["public"]["certificates"] = [{"cert": cert, "key": key}]
    edge.cfg["hosts"] = [{"hostname": HOST, "timeouts": {"response_header": "1s"}}]
    edge.write_config()
    expect(dl[0].poll() is None, "the download ended before the reload (too fast to test anything)")
    _hup(ctx, edge.proc, r"configuration reloaded from")
    new_serial, new_subject = _served_cert(ctx, edge, HOST)
    expect(new_serial != old_serial, "the certificate served after SIGHUP is still serial %s" % old_serial)
    expect("public2" in new_subject, "subject after SIGHUP: %s (want CN=public2; before: %s)" % (
        new_subject, old_subject))
    t0 = time.monotonic()
    r = edge.get(HOST, "/slow?ms=2500")
    took = time.monotonic() - t0
    expect_eq(r.status, 504, "GET /slow?ms=2500 on %s after the reload (response_header 1s)" % HOST)
    expect(0.9 <= took <= 2.0 * ctx.slow, "the 504 came after %.2fs (response_header 1s)" % took)
    expect_eq(edge.get(HOST, "/slow?ms=200").status, 200, "a fast answer under the new timeout")
    expect_eq(edge.get(OTHER, "/slow?ms=1500").status, 200,
              "%s has no per-host timeout: the default still applies" % OTHER)

    # A route added with the CLI is served at once (no reload, no wait).
    newhost = "fresh." + DOMAIN
    expect_eq(edge.get(newhost, "/name").status, 404, "an unrouted host before route add")
    edge.route_add(newhost, "app")
    r = edge.get(newhost, "/name")
    expect_eq((r.status, r.text()), (200, "o1"), "GET right after `route add`")

    # Invalid files are refused with a logged reason; the running configuration keeps serving.
    good = open(edge.config).read()
    edge.write_config(good + "\npublic: [unclosed\n")
    m = _hup(ctx, edge.proc, r"reload refused[^\n]*")
    ctx.note("edge: %s" % m.group(0))
    edge.cfg["public"]["certificates"] = [{"cert": cert + ".missing", "key": key}]
    edge.write_config()
    m = _hup(ctx, edge.proc, r"reload refused[^\n]*")
    ctx.note("edge: %s" % m.group(0))
    # An unusable tunnel key (serve --check says exit 2) refuses the whole file: its other changes
    # (here the per-host timeout) are not applied without it.
    bad_key = ctx.path("bad-tunnel.key")
    lib.write_file(bad_key, "not a key\n", 0o600)
    edge.cfg["public"]["certificates"] = [{"cert": cert, "key": key}]
    edge.cfg["hosts"] = [{"hostname": HOST, "timeouts": {"response_header": "10s"}}]
    edge.cfg["tunnel"]["key"] = bad_key
    edge.write_config()
    expect_eq(ctx.run([ctx.edge_bin, "serve", "--check", "--config", edge.config]).returncode, 2,
              "serve --check on a file with an unusable tunnel.key")
    m = _hup(ctx, edge.proc, r"reload refused[^\n]*tunnel\.key[^\n]*")
    ctx.note("edge: %s" % m.group(0))
    expect(edge.proc.alive() and edge.proc.pid == pid, "the edge exited on an invalid reload")
    expect_eq(_served_cert(ctx, edge, HOST)[0], new_serial, "certificate after refused reloads")
    expect_eq(edge.get(HOST, "/slow?ms=1500").status, 504, "per-host timeout after refused reloads")
    r = edge.get(newhost, "/name")
    expect_eq((r.status, r.text()), (200, "o1"), "serving after refused reloads")
    _check_download(ctx, dl, n, 7, "download in flight across the SIGHUPs")
    expect(conn.proc.alive(), "the connector died")


@lib.timeout(60)
def test_connector_sighup_applies_new_ingress_keeps_stream_in_flight_invalid_file_refused(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("app", [HOST, OTHER])
    oa = ha_lib.Origin(ctx, "oa")
    ob = ha_lib.Origin(ctx, "ob")
    conn = ctx.connector(edge, t["token"], name="c1",
                         ingress=[{"hostname": HOST, "service": oa.url}, {"service": "http_status:404"}])
    expect_eq(ha_lib.curl_name(ctx, edge, HOST), (200, "oa"), "before: %s -> oa" % HOST)
    expect_eq(ha_lib.curl_name(ctx, edge, OTHER)[0], 404, "before: %s -> catch-all 404" % OTHER)
    n = (2 if ctx.reduced else 3) * 1024 * 1024
    dl = _download(ctx, edge, HOST, n, 11, "1M")
    time.sleep(0.3)
    lib.write_file(conn.config, "# reloaded by the test\n" + lib.yaml_dump({"ingress": [
        {"hostname": OTHER, "service": ob.url},
        {"hostname": HOST, "service": ob.url},
        {"service": "http_status:404"},
    ]}))
    expect(dl[0].poll() is None, "the download ended before the reload (too fast to test anything)")
    _hup(ctx, conn.proc, r"ingress reloaded: 3 rules")
    expect_eq(ha_lib.curl_name(ctx, edge, OTHER), (200, "ob"), "after SIGHUP: the new rule for %s" % OTHER)
    expect_eq(ha_lib.curl_name(ctx, edge, HOST), (200, "ob"), "after SIGHUP: %s moved to ob" % HOST)
    pid = conn.proc.pid
    good = open(conn.config).read()
    # No catch-all rule last: refused by validation.
    lib.write_file(conn.config, "# invalid\n" + lib.yaml_dump({"ingress": [{"hostname": HOST, "service": oa.url}]}))
    m = _hup(ctx, conn.proc, r"reload refused[^\n]*")
    ctx.note("connector: %s" % m.group(0))
    lib.write_file(conn.config, good + "\ningress: [unclosed\n")
    m = _hup(ctx, conn.proc, r"reload refused[^\n]*")
    ctx.note("connector: %s" % m.group(0))
    expect(conn.proc.alive() and conn.proc.pid == pid, "the connector exited on an invalid reload")
    expect_eq(ha_lib.curl_name(ctx, edge, OTHER), (200, "ob"), "after refused reloads: rules kept")
    expect_eq(ha_lib.curl_name(ctx, edge, HOST), (200, "ob"), "after refused reloads: rules kept")
    _check_download(ctx, dl, n, 11, "download in flight across the connector's SIGHUPs")
    # The stream in flight kept its origin: oa saw the download, ob did not.
    expect(any(r["path"].startswith("/bytes") for r in oa.requests()), "oa never saw the download")
    expect(not any(r["path"].startswith("/bytes") for r in ob.requests()), "the download was re-sent to ob")


@lib.timeout(60)
def test_edge_sighup_while_draining_is_ignored_and_reopens_no_listener(ctx):
    # SIGHUP during a SIGTERM drain (a reload hook racing a stop) must not undo the drain: the
    # tcp_ports listeners closed by SIGTERM stay closed, so no new visitor holds the drain open.
    port = lib.free_port()
    edge = ctx.edge(grace_period="10s", extra={"tcp_ports": [
        {"listen": "127.0.0.1:%d" % port, "tunnel": "app", "hostname": "ssh." + DOMAIN}]})
    t = edge.tunnel_with_route("app", [HOST])
    origin = ha_lib.Origin(ctx, "o1")
    ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], name="c1")
    load = ha_lib.Load(ctx, edge, HOST, path="/slow?ms=3000", threads=1, total=1).start()
    ctx.wait_until(lambda: any(r["path"].startswith("/slow") for r in origin.requests()), 5,
                   "the slow request at the origin")

    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    expect(not refused(), "the tcp port is not open before SIGTERM")
    edge.proc.send(signal.SIGTERM)
    ctx.wait_until(refused, 2, "the tcp port to close on SIGTERM")
    _hup(ctx, edge.proc, r"configuration reloaded|reload ignored")
    expect(refused(), "the tcp port accepts connections again after a SIGHUP during the drain")
    expect(edge.proc.alive(), "the edge exited before its in-flight request ended")
    edge.proc.send(signal.SIGTERM)
    expect_eq(edge.proc.wait(5 * ctx.slow), 0, "exit code after the second SIGTERM")
    load.stop()
