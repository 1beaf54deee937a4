"""RELIABILITY.md T-02: the malformed-request corpus (tests/corpus/requests) against nginx and HAProxy
from Debian, each set up as a plain reverse proxy (one worker, defaults otherwise) in front of the
same lenient origin. Every vector that nginx or HAProxy rejects, the edge rejects too, unless the
difference is listed in DIFFERENCES below with its reason.

The edge's own verdicts are the corpus's `# expect:` lines, which test_corpus.py checks against the
running edge (same vectors, over TLS). Here each vector goes to each proxy over plain TCP, and the
first response classifies it:

- reject: a status >= 400 that the proxy made itself (the origin's responses carry its Server
  field, which both proxies are told to pass on) among the first N responses, N being the number of
  responses the edge gives (pipelined vectors), or the connection closed without a response;
- accept: the origin's responses came back;
- wait: nothing within 2 s and the connection still open (the proxy waits for more of the request).
"""

import concurrent.futures
import os
import shutil
import socket

import lib
from lib import expect
import test_corpus

ORIGIN_SERVER = "culvert-test-origin"
READ_TIMEOUT = 2.0

# Vectors the edge accepts although nginx or HAProxy rejects them, with the reason the edge is
# right to. A new entry needs a reason a reviewer can check. Today all are size limits: a
# well-formed request at the edge's documented limit (README, "Defaults and limits"; RELIABILITY.md
# §10) that is over a smaller default of nginx (8 KiB line buffers, large_client_header_buffers)
# or HAProxy (16 KiB buffers, tune.bufsize; 255-byte field names in its HTX representation). A
# size is not a parsing ambiguity: nothing about the request's framing differs, and the connector
# writes the origin a request head of its own making.
_AT_LIMIT = "well-formed, at the edge's limit, over the peer's smaller default buffer: "
DIFFERENCES = {
    "h91-url-at-limit.txt": _AT_LIMIT + "an 8,192-byte target (max_url 8 KiB); nginx's request line "
                            "buffer is 8 KiB for the whole line, method and version included",
    "h93-header-section-at-limit.txt": _AT_LIMIT + "a 32 KiB field section (max_header_bytes); nginx "
                                       "takes 8 KiB per line in 4 buffers, HAProxy 16 KiB in all",
    "h97-name-at-limit.txt": _AT_LIMIT + "a 256-byte field name; HAProxy's HTX keeps a name's length "
                             "in 8 bits",
    "h99-value-at-limit.txt": _AT_LIMIT + "a 16 KiB field value (HTTP1_MAX_VALUE); nginx's line buffer "
                              "is 8 KiB, HAProxy's whole buffer 16 KiB",
}

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        location / {{
            proxy_pass http://127.0.0.1:{origin};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_header Server;
        }}
    }}
}}
"""

HAPROXY_CFG = """
global
    nbthread 1
    pidfile {dir}/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend f
    bind 127.0.0.1:{port}
    default_backend b
backend b
    server origin 127.0.0.1:{origin}
"""


def start_nginx(ctx, origin_port):
    d = ctx.mkdir("nginx")
    port = lib.free_port()
    conf = lib.write_file(os.path.join(d, "nginx.conf"), NGINX_CONF.format(dir=d, port=port, origin=origin_port))
    proc = ctx.spawn("nginx", [shutil.which("nginx"), "-p", d, "-c", conf])
    ctx.wait_until(lambda: lib.port_busy(port), 10, "nginx to listen")
    return proc, port


def start_haproxy(ctx, origin_port):
    d = ctx.mkdir("haproxy")
    port = lib.free_port()
    cfg = lib.write_file(os.path.join(d, "haproxy.cfg"), HAPROXY_CFG.format(dir=d, port=port, origin=origin_port))
    proc = ctx.spawn("haproxy", [shutil.which("haproxy"), "-db", "-f", cfg])
    ctx.wait_until(lambda: lib.port_busy(port), 10, "haproxy to listen")
    return proc, port


def verdict(port, data, n):
    """(kind, detail) of one vector sent to 127.0.0.1:|port|, reading up to |n| responses (as many
    as the edge gives); kind is reject, accept or wait."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
    except OSError as e:
        return "error", "connect: %s" % e
    rd = lib.RawHTTP(s)
    got = []
    try:
        s.settimeout(READ_TIMEOUT)
        try:
            s.sendall(data)
        except OSError:
            pass  # refused early; read what it said
        while len(got) < n:
            try:
                r = rd.read_response()
                while r is not None and 100 <= r.status < 200 and r.status != 101:
                    r = rd.read_response()
            except socket.timeout:
                if not got:
                    return "wait", "no response in %.0fs" % READ_TIMEOUT
                break
            except (OSError, ValueError, EOFError) as e:
                if not got:
                    return "reject", "closed: %s" % type(e).__name__
                break
            if r is None:
                if not got:
                    return "reject", "closed without a response"
                break
            from_origin = (r.header("Server") or "") == ORIGIN_SERVER
            got.append("%d%s" % (r.status, "" if from_origin else "p"))
            if r.status >= 400 and not from_origin:
                return "reject", " ".join(got)
            if r.status == 101:
                break
        return "accept", " ".join(got)
    finally:
        s.close()


def edge_verdict(statuses):
    return "reject" if any(st >= 400 for st in statuses) else "accept"


@lib.full_only("two more proxies and the whole corpus: the parser paths are the corpus test's")
@lib.timeout(120)
def test_corpus_against_nginx_and_haproxy_edge_rejects_whatever_they_reject(ctx):
    for tool in ("nginx", "haproxy"):
        if shutil.which(tool) is None:
            ctx.skip("%s is not installed (make deps installs it)" % tool)
    origin = ctx.origin("origin")
    proxies = {}
    proxies["nginx"] = start_nginx(ctx, origin.port)
    proxies["haproxy"] = start_haproxy(ctx, origin.port)
    vectors = test_corpus.load_corpus()
    rows = {}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = {}
        for name, statuses, data in vectors:
            for proxy, (_, port) in proxies.items():
                futs[pool.submit(verdict, port, data, len(statuses))] = (name, proxy)
        for f in concurrent.futures.as_completed(futs):
            name, proxy = futs[f]
            rows.setdefault(name, {})[proxy] = f.result()
    problems = []
    counts = {}
    for name, statuses, _ in vectors:
        edge = edge_verdict(statuses)
        row = rows[name]
        for proxy in proxies:
            key = (proxy, row[proxy][0], edge)
            counts[key] = counts.get(key, 0) + 1
            if row[proxy][0] == "error":
                problems.append("%s: %s %s" % (name, proxy, row[proxy][1]))
        ctx.note("%-40s edge %-6s (%s)  nginx %-6s (%s)  haproxy %-6s (%s)" % (
            name, edge, " ".join(map(str, statuses)), row["nginx"][0], row["nginx"][1],
            row["haproxy"][0], row["haproxy"][1]))
        rejecters = [p for p in proxies if row[p][0] == "reject"]
        if name in DIFFERENCES and not (rejecters and edge == "accept"):
            problems.append("%s is listed in DIFFERENCES but no longer differs" % name)
        if rejecters and edge == "accept" and name not in DIFFERENCES:
            problems.append("%s: rejected by %s (%s) but accepted by the edge (expect %s)" % (
                name, " and ".join(rejecters), ", ".join(row[p][1] for p in rejecters),
                " ".join(map(str, statuses))))
    ctx.note("verdicts (proxy, proxy's, edge's): %r" % sorted(counts.items()))
    for proxy, (proc, _) in proxies.items():
        expect(proc.alive(), "%s exited during the run: %s" % (proxy, lib.tail(proc.log)))
    stale = [n for n in DIFFERENCES if n not in rows]
    expect(not stale, "DIFFERENCES names vectors that are not in the corpus: %r" % stale)
    expect(not problems, "%d vectors: %s" % (len(problems), "\n".join(problems)))
