"""The connector's ingress (PRODUCT.md section 3, issue 3): every service type through the tunnel,
hostname and path rules with their precedence, `culvert-connector ingress rule` and `ingress
validate`, and a cloudflared-style config.yml (unsupported keys, tunnel + credentials-file)."""

import json
import os
import re
import signal

import lib
from lib import DOMAIN, expect, expect_eq


def request_id_of(r):
    rid = r.header("Culvert-Request-Id")
    expect(rid, "response has no Culvert-Request-Id header: %r" % (r,))
    return rid


def check_error_page(r, status, what):
    expect_eq(r.status, status, "%s: status" % what)
    rid = request_id_of(r)
    expect("text/html" in r.header("Content-Type", ""), "%s: not an HTML page: %r" % (what, r))
    expect(rid in r.text(), "%s: the page does not name the request id %s:\n%s" % (what, rid, r.text()[:800]))
    return r.text()


def h(name):
    return "%s.%s" % (name, DOMAIN)


def self_signed(ctx, name="selfsigned"):
    """A self-signed certificate for localhost (no CA the connector knows)."""
    cert, key = ctx.path(name + ".pem"), ctx.path(name + ".key")
    ctx.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost"], check=0)
    return cert, key


def public_cert(ctx):
    """The run's public certificate (from the test CA): *.culvert.test, culvert.test, localhost."""
    return os.path.join(ctx.pki, "public.pem"), os.path.join(ctx.pki, "public.key")


def ca_pem(ctx):
    return os.path.join(ctx.pki, "ca.pem")


# ---- service types -----------------------------------------------------------------------------


@lib.timeout(60)
def test_services_http_hello_world_http_status_and_tcp(ctx):
    edge = ctx.edge()
    hosts = [h("web"), h("hello"), h("teapot"), h("tcp"), h("other")]
    t = edge.tunnel_with_route("svc", hosts)
    origin = ctx.origin("web")
    closed = lib.free_port()
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("web"), "service": origin.url},
        {"hostname": h("hello"), "service": "hello_world"},
        {"hostname": h("teapot"), "service": "http_status:418"},
        {"hostname": h("tcp"), "service": "tcp://127.0.0.1:%d" % closed},
        {"service": "http_status:410"},
    ])
    r = edge.get(h("web"), "/echo?x=1")
    expect_eq(r.status, 200, "http:// service")
    expect_eq(r.json()["path"], "/echo?x=1", "path at the http:// origin")
    r = edge.get(h("hello"), "/")
    expect_eq(r.status, 200, "hello_world service")
    expect("Hello from Culvert" in r.text(), "hello_world page: %r" % r.text()[:300])
    r = edge.get(h("teapot"), "/anything")
    expect_eq(r.status, 418, "http_status:418 service")
    request_id_of(r)
    r = edge.get(h("other"), "/")
    expect_eq(r.status, 410, "the catch-all http_status:410")
    r = edge.get(h("tcp"), "/")
    text = check_error_page(r, 502, "a tcp:// service requested as plain HTTP")
    expect("TCP" in text, "the 502 page for a tcp:// hostname does not say it is a TCP service:\n%s" % text[:800])
    expect_eq(origin.request_count(), 1, "requests at the http:// origin")


@lib.timeout(60)
def test_https_origin_ca_pool_server_name_and_match_sni(ctx):
    edge = ctx.edge()
    names = ["ca", "system", "osn", "match", "badname"]
    t = edge.tunnel_with_route("tls", [h(n) for n in names])
    origin = ctx.origin("tls-origin", tls=public_cert(ctx))
    ctx.connector(edge, t["token"], config={"originRequest": {"caPool": ca_pem(ctx)}}, ingress=[
        # caPool from the top-level originRequest
        {"hostname": h("ca"), "service": origin.url},
        # the rule unsets caPool: the system store does not know the test CA
        {"hostname": h("system"), "service": origin.url, "originRequest": {"caPool": ""}},
        {"hostname": h("osn"), "service": origin.url,
         "originRequest": {"originServerName": "named." + DOMAIN}},
        {"hostname": h("match"), "service": origin.url, "originRequest": {"matchSNItoHost": True}},
        # the certificate does not name elsewhere.example: refused
        {"hostname": h("badname"), "service": origin.url,
         "originRequest": {"originServerName": "elsewhere.example"}},
        {"service": "http_status:404"},
    ])

    def sni_of(host):
        r = edge.get(host, "/echo")
        expect_eq(r.status, 200, "https origin through %s" % host)
        rid = request_id_of(r)
        recs = [x for x in origin.requests() if x["request_id"] == rid]
        expect_eq(len(recs), 1, "requests with id %s at the origin" % rid)
        return recs[0]["sni"]

    expect_eq(sni_of(h("ca")), "localhost", "SNI at the origin (service https://localhost:PORT)")
    expect_eq(sni_of(h("osn")), "named." + DOMAIN, "SNI with originServerName")
    expect_eq(sni_of(h("match")), h("match"), "SNI with matchSNItoHost")
    n = origin.request_count()
    check_error_page(edge.get(h("system"), "/echo"), 502, "https origin from a private CA without caPool")
    check_error_page(edge.get(h("badname"), "/echo"), 502,
                     "originServerName that the origin's certificate does not name")
    expect_eq(origin.request_count(), n, "requests that reached the origin over refused TLS")
    expect(len(origin.events("tls_error")) >= 2,
           "the origin saw no failed handshakes for the refused connections: %r" % origin.events("tls_error"))


@lib.timeout(60)
def test_self_signed_origin_needs_no_tls_verify(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("ss", [h("strict"), h("lax")])
    origin = ctx.origin("selfsigned", tls=self_signed(ctx))
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("strict"), "service": origin.url},
        {"hostname": h("lax"), "service": origin.url, "originRequest": {"noTLSVerify": True}},
        {"service": "http_status:404"},
    ])
    check_error_page(edge.get(h("strict"), "/echo"), 502, "self-signed origin without noTLSVerify")
    expect_eq(origin.request_count(), 0, "requests at the self-signed origin after the refusal")
    r = edge.get(h("lax"), "/echo")
    expect_eq(r.status, 200, "self-signed origin with noTLSVerify: true")
    expect_eq(r.json()["name"], "selfsigned", "origin that answered")
    # Twice more: the refused pool and the accepted one stay apart.
    check_error_page(edge.get(h("strict"), "/echo"), 502, "self-signed origin without noTLSVerify (again)")
    expect_eq(edge.get(h("lax"), "/name").status, 200, "noTLSVerify again")
    expect_eq(origin.request_count(), 2, "requests at the self-signed origin")


@lib.timeout(60)
def test_single_origin_takes_cloudflareds_legacy_origin_keys(ctx):
    """cloudflared's single-origin keys (no-tls-verify, http-host-header, ...) set the options of
    the `url:` origin, as they do in cloudflared; beside ingress rules they are warned about."""
    edge = ctx.edge()
    t = edge.tunnel_with_route("legacy", [h("legacy")])
    origin = ctx.origin("selfsigned", tls=self_signed(ctx))
    c = ctx.connector(edge, t["token"], config_text=(
        "url: %s\nno-tls-verify: true\nhttp-host-header: internal.example\n"
        "proxy-connect-timeout: 5s\n" % origin.url))
    r = edge.get(h("legacy"), "/echo")
    expect_eq(r.status, 200, "self-signed url: origin with no-tls-verify: true")
    host = next((v for k, v in r.json()["headers"] if k.lower() == "host"), None)
    expect_eq(host, "internal.example", "Host the origin saw (http-host-header)")
    expect("no-tls-verify" not in c.proc.text(), "a warning about an applied key:\n%s" % c.proc.text())
    c.stop()
    # Without it, the same origin is refused; a bad value names the file, line and key.
    c = ctx.connector(edge, t["token"], name="strict", config_text="url: %s\n" % origin.url)
    check_error_page(edge.get(h("legacy"), "/echo"), 502, "self-signed url: origin without no-tls-verify")
    c.stop()
    bad = ctx.path("bad.yml")
    lib.write_file(bad, "url: %s\nno-tls-verify: maybe\n" % origin.url)
    r = ctx.run([ctx.connector_bin, "ingress", "validate", "--config", bad], check=2)
    expect(re.search(r"bad\.yml:2:\d+: no-tls-verify", r.stderr), "error for no-tls-verify: maybe: %r" % r.stderr)
    # The same as flags (`cloudflared tunnel --url https://... --no-tls-verify`), kept by a reload.
    c = ctx.connector(edge, t["token"], name="flags", url=origin.url, config_text="loglevel: info\n",
                      args=["--no-tls-verify", "--http-host-header", "flags.example"])
    for when in ("flags", "after a reload"):
        r = edge.get(h("legacy"), "/echo")
        expect_eq(r.status, 200, "--url of a self-signed origin with --no-tls-verify, %s" % when)
        host = next((v for k, v in r.json()["headers"] if k.lower() == "host"), None)
        expect_eq(host, "flags.example", "Host the origin saw (--http-host-header), %s" % when)
        mark = c.proc.log_size()
        c.proc.send(signal.SIGHUP)
        c.proc.wait_log(r"ingress reloaded", 10, start=mark)
    c.stop()
    r = ctx.run([ctx.connector_bin, "run", "--url", origin.url, "--no-tls-verify=maybe", "--token", "x"],
                check=2)
    expect("--no-tls-verify: expected a boolean" in r.stderr, "--no-tls-verify=maybe: %r" % r.stderr)
    # A value of quotes only (each escaped for the YAML reading) is judged like any other.
    r = ctx.run([ctx.connector_bin, "run", "--url", origin.url, "--http-host-header", '"' * 4096,
                 "--token", "x"], check=2)
    expect("--http-host-header: longer than" in r.stderr, "a 4096-quote Host header: %r" % r.stderr)
    # Beside ingress rules they do nothing, as in cloudflared, and say so.
    good = ctx.path("rules.yml")
    lib.write_file(good, "no-tls-verify: true\ningress:\n  - service: %s\n" % origin.url)
    r = ctx.run([ctx.connector_bin, "ingress", "validate", "--config", good], check=0)
    expect(re.search(r"rules\.yml:1:1: no-tls-verify: applies only to a single origin", r.stderr),
           "warning for no-tls-verify beside ingress rules: %r" % r.stderr)


@lib.timeout(60)
def test_unix_and_unix_tls_services(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("unix", [h("sock"), h("socktls"), h("sockbad")])
    plain = ctx.origin("unix-plain", unix=True)
    tls = ctx.origin("unix-tls", unix=True, tls=public_cert(ctx))
    ctx.connector(edge, t["token"], ingress=[
        {"hostname": h("sock"), "service": plain.url},
        {"hostname": h("socktls"), "service": tls.url,
         "originRequest": {"caPool": ca_pem(ctx), "originServerName": "localhost"}},
        {"hostname": h("sockbad"), "service": tls.url,
         "originRequest": {"originServerName": "localhost"}},  # system store: refused
        {"service": "http_status:404"},
    ])
    expect(plain.url.startswith("unix:/") and tls.url.startswith("unix+tls:/"), "urls %s %s" % (plain.url, tls.url))
    for i in range(3):
        r = edge.get(h("sock"), "/echo?i=%d" % i)
        expect_eq(r.status, 200, "unix: service, request %d" % i)
        expect_eq(r.json()["name"], "unix-plain", "origin behind unix:")
    r = ctx.curl(edge.url(h("sock"), "/upload"), resolve=edge.resolve(h("sock")), data="x" * 1000)
    expect_eq(r.json(), {"length": 1000, "sha256": __import__("hashlib").sha256(b"x" * 1000).hexdigest()},
              "a body through unix:")
    r = edge.get(h("socktls"), "/echo")
    expect_eq(r.status, 200, "unix+tls: service with caPool")
    expect_eq(r.json()["name"], "unix-tls", "origin behind unix+tls:")
    recs = tls.requests()
    expect_eq([x["sni"] for x in recs], ["localhost"], "SNI at the unix+tls origin (originServerName)")
    check_error_page(edge.get(h("sockbad"), "/echo"), 502, "unix+tls: with a private CA and no caPool")
    expect_eq(tls.request_count(), 1, "requests at the unix+tls origin")
    # Keep-alive applies to unix sockets too: one connection served the plain origin's requests.
    conns = {x["conn"] for x in plain.requests()}
    expect_eq(len(conns), 1, "origin connections for 4 sequential requests over unix: (%r)" % plain.requests())


# ---- rules ---------------------------------------------------------------------------------------


def rules_config(origin_url):
    """The rule set of the precedence tests, as (rules, expected `ingress rule` description per
    rule number)."""
    rules = [
        {"hostname": h("app"), "path": "^/api/", "service": "http_status:231"},
        {"hostname": h("app"), "path": "(?i)^/admin", "service": "http_status:232"},
        {"hostname": h("app"), "path": "^/v\\d+/", "service": "http_status:234"},
        {"path": "^/first", "service": "http_status:240"},
        {"hostname": "*." + DOMAIN, "service": "http_status:230"},
        {"hostname": h("exact"), "service": "http_status:233"},
        {"hostname": "*.wild." + DOMAIN, "service": origin_url + "/base/"},
        {"path": "^/late", "service": "http_status:241"},
        {"service": "http_status:250"},
    ]
    desc = {}
    for i, r in enumerate(rules, 1):
        lines = ["Matched rule #%d" % i]
        if "hostname" in r:
            lines.append("\thostname: %s" % r["hostname"])
        if "path" in r:
            lines.append("\tpath: %s" % r["path"])
        lines.append("\tservice: %s" % (r["service"].rstrip("/")))
        desc[i] = "\n".join(lines) + "\n"
    return rules, desc


# (host, path, rule number, status through the tunnel, why)
RULE_CASES = [
    ("app", "/api/x", 1, 231, "path ^/api/"),
    ("app", "/%61pi/x", 1, 231, "the path is matched percent-decoded"),
    ("app", "/x?y=/api/", 5, 230, "the query string is not part of the path"),
    ("app", "/API/x", 5, 230, "^/api/ is case-sensitive"),
    ("app", "/ADMIN/panel", 2, 232, "(?i) makes a path case-insensitive"),
    ("app", "/v12/items", 3, 234, "\\d in a path"),
    ("app", "/vx/items", 5, 230, "\\d needs a digit"),
    ("exact", "/x", 6, 233, "an exact hostname beats an earlier wildcard"),
    ("exact", "/first", 4, 240, "an earlier rule without hostname keeps its place"),
    ("o", "/late", 5, 230, "a later rule without hostname does not beat the wildcard"),
    ("a.wild", "/x", 7, 200, "a longer wildcard beats an earlier shorter one"),
    ("", "/late", 8, 241, "culvert.test: only host-less rules match"),
    ("", "/other", 9, 250, "the catch-all"),
]


def case_host(name):
    return DOMAIN if name == "" else h(name)


@lib.timeout(60)
def test_rules_hostname_path_and_precedence_through_the_tunnel(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("rules", sorted({case_host(c[0]) for c in RULE_CASES}))
    origin = ctx.origin("wild")
    rules, _ = rules_config(origin.url)
    ctx.connector(edge, t["token"], ingress=rules)
    problems = []
    for host, path, num, status, why in RULE_CASES:
        r = edge.get(case_host(host), path)
        if r.status != status:
            problems.append("%s%s: expected %d (rule #%d: %s), got %s" % (case_host(host), path, status, num,
                                                                          why, r.status))
    expect(not problems, "rules through the tunnel:\n  " + "\n  ".join(problems))
    recs = origin.requests()
    expect_eq([x["path"] for x in recs], ["/base/x"], "path at the origin of http://...:PORT/base/")


@lib.timeout(60)
def test_ingress_rule_command_prints_the_matching_rule(ctx):
    rules, desc = rules_config("http://127.0.0.1:8080")
    cfg = ctx.path("config.yml")
    lib.write_file(cfg, lib.yaml_dump({"ingress": rules}))
    problems = []
    for host, path, num, _, why in RULE_CASES:
        url = "https://%s%s" % (case_host(host), path)
        r = ctx.run([ctx.connector_bin, "ingress", "rule", url, "--config", cfg])
        if r.returncode != 0:
            problems.append("%s: exit %d, stderr %r" % (url, r.returncode, r.stderr))
            continue
        if desc[num] not in r.stdout:
            problems.append("%s (%s): expected\n%s  got\n%s" % (url, why, desc[num], r.stdout))
        others = [n for n in re.findall(r"Matched rule #(\d+)", r.stdout)]
        if others != [str(num)]:
            problems.append("%s: 'Matched rule' lines %r" % (url, others))
    expect(not problems, "ingress rule:\n  " + "\n  ".join(problems))
    r = ctx.run([ctx.connector_bin, "ingress", "rule", "https://" + h("app") + "/api/", "--config", cfg])
    expect(r.stdout.startswith("Using rules from %s\n" % cfg), "first line of ingress rule: %r" % r.stdout[:200])
    # Usage errors: no URL, a URL without a host.
    r = ctx.run([ctx.connector_bin, "ingress", "rule", "--config", cfg])
    expect_eq(r.returncode, 2, "ingress rule without a URL: exit code")
    r = ctx.run([ctx.connector_bin, "ingress", "rule", "/just/a/path", "--config", cfg])
    expect_eq(r.returncode, 2, "ingress rule with a URL without a host: exit code")
    expect(r.stderr.strip(), "ingress rule with a bad URL printed no message")


# ---- validate ------------------------------------------------------------------------------------


# (file name, text, line, col, key path, words of the reason)
BROKEN = [
    ("not-catch-all.yml",
     "ingress:\n  - hostname: a.example.com\n    service: http://localhost:8000\n",
     2, 5, "ingress[0]", "last ingress rule must match all"),
    ("catch-all-first.yml",
     "ingress:\n  - service: http_status:404\n  - hostname: a.example.com\n    service: http://localhost:8000\n",
     2, 5, "ingress[0]", "catch-all"),
    ("bad-regex.yml",
     "ingress:\n  - hostname: a.example.com\n    path: \"(unclosed\"\n    service: http://localhost:8000\n"
     "  - service: http_status:404\n",
     3, 11, "ingress[0].path", "regular expression"),
    ("host-port.yml",
     "ingress:\n  - hostname: a.example.com:8443\n    service: http://localhost:8000\n  - service: http_status:404\n",
     2, 15, "ingress[0].hostname", "port"),
    ("bad-scheme.yml",
     "ingress:\n  - hostname: a.example.com\n    service: ftp://localhost:21\n  - service: http_status:404\n",
     3, 14, "ingress[0].service", "ftp"),
    ("bad-duration.yml",
     "originRequest:\n  connectTimeout: soon\ningress:\n  - service: http_status:404\n",
     2, 19, "originRequest.connectTimeout", "duration"),
    ("no-service.yml",
     "ingress:\n  - hostname: a.example.com\n  - service: http_status:404\n",
     2, 5, "ingress[0].service", "service"),
    ("bad-bool.yml",
     "ingress:\n  - service: http_status:404\n    originRequest:\n      noTLSVerify: maybe\n",
     4, 20, "ingress[0].originRequest.noTLSVerify", "boolean"),
    ("bad-status.yml",
     "ingress:\n  - hostname: a.example.com\n    service: http_status:99\n  - service: http_status:404\n",
     3, 14, "ingress[0].service", ""),
    ("yaml-syntax.yml", "ingress: [\n", 2, 1, "", ""),
]


@lib.timeout(60)
def test_ingress_validate_exit_codes_and_messages(ctx):
    good = ctx.path("good.yml")
    lib.write_file(good, lib.yaml_dump({"ingress": rules_config("http://127.0.0.1:8080")[0]}))
    r = ctx.run([ctx.connector_bin, "ingress", "validate", "--config", good])
    expect_eq(r.returncode, 0, "validate a good file: exit code (stderr %r)" % r.stderr)
    expect_eq(r.stdout.strip().splitlines()[-1:], ["OK"], "validate a good file: last line of stdout")
    expect("warning" not in r.stderr, "warnings for a clean file: %r" % r.stderr)
    problems = []
    for name, text, line, col, key, words in BROKEN:
        path = ctx.path(name)
        lib.write_file(path, text)
        r = ctx.run([ctx.connector_bin, "ingress", "validate", "--config", path])
        if r.returncode != 2:
            problems.append("%s: exit code %d, expected 2 (stdout %r)" % (name, r.returncode, r.stdout))
            continue
        if "OK" in r.stdout.split():
            problems.append("%s: printed OK" % name)
        want = "%s:%d:%d: %s" % (path, line, col, key)
        if want not in r.stderr:
            problems.append("%s: the message does not start with %r: %r" % (name, want, r.stderr))
        if words and words.lower() not in r.stderr.lower():
            problems.append("%s: the message does not say %r: %r" % (name, words, r.stderr))
    # Unknown keys and unsupported cloudflared keys are warnings: still valid.
    warn = ctx.path("warnings.yml")
    lib.write_file(warn, "ingress:\n  - hostname: a.example.com\n    service: http://localhost:8000\n"
                         "    colour: blue\n  - service: http_status:404\nprotocol: quic\n")
    r = ctx.run([ctx.connector_bin, "ingress", "validate", "--config", warn])
    if r.returncode != 0:
        problems.append("warnings.yml: exit code %d, expected 0: %r" % (r.returncode, r.stderr))
    for want in ("%s:6:1: protocol: not supported by culvert" % warn, "%s:4:5: ingress[0].colour: unknown key" % warn):
        if want not in r.stderr:
            problems.append("warnings.yml: no warning %r in %r" % (want, r.stderr))
    r = ctx.run([ctx.connector_bin, "ingress", "validate", "--config", ctx.path("missing.yml")])
    if r.returncode == 0 or "missing.yml" not in r.stderr:
        problems.append("a missing file: exit %d, stderr %r" % (r.returncode, r.stderr))
    expect(not problems, "ingress validate:\n  " + "\n  ".join(problems))


# ---- cloudflared's config.yml --------------------------------------------------------------------


CLOUDFLARED_UNSUPPORTED = ["protocol", "no-autoupdate", "retries", "warp-routing", "noHappyEyeballs",
                           "proxyType"]


def cloudflared_config(ctx, tunnel_id, creds, origin_url, metrics_port):
    return """# a config.yml as cloudflared users write it
tunnel: %s
credentials-file: %s
edge-ca: %s
protocol: http2
no-autoupdate: true
retries: 5
metrics: 127.0.0.1:%d
loglevel: info
grace-period: 2s
warp-routing:
  enabled: false
originRequest:
  connectTimeout: 10s
  noHappyEyeballs: true
ingress:
  - hostname: %s
    service: %s
    originRequest:
      proxyType: socks
      httpHostHeader: internal.example
  - service: http_status:404
""" % (tunnel_id, creds, ca_pem(ctx), metrics_port, h("cf"), origin_url)


def write_credentials(ctx, edge, t, path):
    tok = lib.decode_token(t["token"])
    creds = {"AccountTag": "0123456789abcdef0123456789abcdef", "TunnelSecret": tok["secret"],
             "TunnelID": t["id"], "Edge": ["127.0.0.1:%d" % edge.tunnel_port]}
    lib.write_file(path, json.dumps(creds), 0o600)
    return path


@lib.timeout(60)
def test_cloudflared_config_with_credentials_file_and_unsupported_keys(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("cf", [h("cf")])
    origin = ctx.origin("cf-origin")
    conn_dir = ctx.mkdir("cf")
    creds = write_credentials(ctx, edge, t, os.path.join(conn_dir, "%s.json" % t["id"]))
    metrics = lib.free_port()
    text = cloudflared_config(ctx, t["id"], creds, origin.url, metrics)
    # No token anywhere: tunnel: + credentials-file: are the only credentials (the framework's
    # --metrics, --loglevel and --grace-period flags win over the file's keys, as flags do).
    c = ctx.connector(edge, None, token_mode="none", config_text=text)
    r = edge.get(h("cf"), "/echo")
    expect_eq(r.status, 200, "a request through a connector started from a cloudflared config")
    hosts = [v for k, v in r.json()["headers"] if k.lower() == "host"]
    expect_eq(hosts, ["internal.example"], "Host at the origin (the rule's httpHostHeader)")
    log = c.proc.text()
    missing = [k for k in CLOUDFLARED_UNSUPPORTED
               if not re.search(r"%s: not supported by culvert" % re.escape(k), log)]
    expect(not missing, "no 'not supported by culvert' warning naming %r in the connector log:\n%s" %
           (missing, lib.tail(c.proc.log, 30)))
    expect(c.proc.alive(), "the connector exited")


@lib.timeout(60)
def test_credentials_file_tunnel_id_must_agree(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("cf", [h("cf")])
    other = edge.create_tunnel("other")
    creds = write_credentials(ctx, edge, t, ctx.path("creds.json"))
    cfg = ctx.path("config.yml")
    lib.write_file(cfg, cloudflared_config(ctx, other["id"], creds, "http://127.0.0.1:9", lib.free_port()))
    r = ctx.run([ctx.connector_bin, "run", "--config", cfg], timeout=15)
    expect_eq(r.returncode, 2, "tunnel: naming another tunnel than the credentials file: exit code")
    expect(other["id"] in r.stderr and t["id"] in r.stderr and "match" in r.stderr,
           "the message should name both ids: %r" % r.stderr)
    # A credentials file that others can read is refused, as token files are.
    os.chmod(creds, 0o644)
    lib.write_file(cfg, cloudflared_config(ctx, t["id"], creds, "http://127.0.0.1:9", lib.free_port()))
    r = ctx.run([ctx.connector_bin, "run", "--config", cfg], timeout=15)
    expect(r.returncode != 0, "a credentials file readable by others was accepted")
    expect("creds.json" in r.stderr, "the refusal does not name the file: %r" % r.stderr)


# ---- link-local and metadata origins (RELIABILITY.md 5.1) --------------------------------------

# A name (not an IP literal, so it passes the config check) that getaddrinfo turns into
# 169.254.169.254, the cloud metadata address: only the check after resolution can refuse it.
METADATA_NAME = "0xa9.0xfe.0xa9.0xfe"


@lib.timeout(60)
def test_link_local_and_metadata_origins_refused(ctx):
    import tcp_lib

    # An IP literal: refused when the config is read, with file, line and key.
    bad = ctx.path("metadata.yml")
    lib.write_file(bad, "ingress:\n"
                        "  - hostname: meta.example.com\n"
                        "    service: http://169.254.169.254\n"
                        "  - service: http_status:404\n")
    r = ctx.run([ctx.connector_bin, "ingress", "validate", "--config", bad])
    expect_eq(r.returncode, 2, "validate a rule pointing at 169.254.169.254: exit code")
    expect("%s:3:14: ingress[0].service: 169.254.169.254 is a link-local or cloud metadata address" % bad
           in r.stderr + r.stdout, "validate's message: %r" % (r.stderr + r.stdout))
    expect("allowLinkLocal" in r.stderr + r.stdout, "the message does not say how to allow it: %r" % r.stderr)

    # A name resolving to it: the request gets a 502, the connector says why, nothing is dialled.
    edge = ctx.edge()
    web, tcp = h("meta-web"), h("meta-tcp")
    t = edge.tunnel_with_route("meta", [web, tcp, h("meta-other")])
    conn = ctx.connector(edge, t["token"], ingress=[
        {"hostname": web, "service": "http://%s:80" % METADATA_NAME},
        {"hostname": tcp, "service": "tcp://%s:22" % METADATA_NAME},
        {"service": "http_status:404"},
    ])
    r = edge.get(web, "/latest/meta-data/")
    check_error_page(r, 502, "an http:// origin whose name resolves to 169.254.169.254")
    conn.proc.wait_log(r"%s resolves only to link-local or metadata addresses, refused" % re.escape(METADATA_NAME),
                       10 * ctx.slow)
    c = tcp_lib.CulvertTcpClient(ctx, edge.https_port, tcp)
    try:
        r = c.upgrade()
    finally:
        c.close()
    expect(r is not None and r.status == 502, "culvert-tcp to a tcp:// service resolving to 169.254.169.254: %r" % (r,))
    log = conn.proc.text()
    expect(log.count("resolves only to link-local or metadata addresses, refused") >= 2,
           "the connector did not refuse both services before dialling:\n%s" % log[-2000:])
    expect("cannot connect" not in log and "timed out" not in log,
           "the connector tried to connect to the metadata address:\n%s" % log[-2000:])
    # The connector and its other rules keep working.
    r = edge.get(h("meta-other"), "/")
    expect_eq(r.status, 404, "a request after the refusals (the connector's catch-all)")
    expect(r.header("Culvert-Request-Id"), "the 404 did not come through the tunnel: %r" % (r,))
