"""The malformed-request corpus (tests/corpus/requests/*.txt, README.md there) replayed over TLS to
the edge for a routed hostname, corpus.test (RELIABILITY.md T-01, the smuggling check).

For each file: every status of `# expect:` comes back in order on one connection; after an error
status the edge closes the connection; no further bytes follow the expected responses (a response
to a smuggled request would). At the origin, a deliberately lenient Python parser that logs every
request it parses: exactly the requests the edge answered 200 (forwarded) arrive, each once, with
the request id the edge returned; nothing else arrives, for any vector.
"""

import concurrent.futures
import glob
import os
import re
import time

import lib
from lib import CORPUS_HOST, expect

CORPUS_DIR = os.path.join(lib.REPO, "tests", "corpus", "requests")
PARALLEL = 6


def unescape(text):
    """The corpus escapes: \\r \\n \\t \\\\ \\xHH; file newlines are layout only."""
    raw = text.replace("\n", "")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            n = raw[i + 1]
            if n == "r":
                out += b"\r"
                i += 2
                continue
            if n == "n":
                out += b"\n"
                i += 2
                continue
            if n == "t":
                out += b"\t"
                i += 2
                continue
            if n == "\\":
                out += b"\\"
                i += 2
                continue
            if n == "x" and re.match(r"[0-9A-Fa-f]{2}", raw[i + 2:i + 4]):
                out.append(int(raw[i + 2:i + 4], 16))
                i += 4
                continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


def load_corpus():
    """[(name, [expected statuses], request bytes)] in file-name order."""
    vectors = []
    for path in sorted(glob.glob(os.path.join(CORPUS_DIR, "*.txt"))):
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        expect_line = None
        i = 0
        while i < len(lines) and lines[i].startswith("#"):
            m = re.match(r"#\s*expect:\s*(.*)$", lines[i])
            if m and expect_line is None:
                expect_line = m.group(1)
            i += 1
        if expect_line is None:
            raise AssertionError("%s: no '# expect:' line" % path)
        statuses = [int(x) for x in expect_line.split()]
        data = unescape("\n".join(lines[i:]))
        vectors.append((os.path.basename(path), statuses, data))
    return vectors


def replay(ctx, port, name, statuses, data, read_timeout):
    """Sends one vector; returns (problems, [(status, request id)])."""
    problems = []
    got = []
    try:
        s = ctx.tls_connect(port, CORPUS_HOST, timeout=read_timeout)
    except OSError as e:
        return ["%s: TLS connect failed: %s" % (name, e)], got
    rd = lib.RawHTTP(s)
    try:
        s.settimeout(read_timeout * ctx.slow)
        try:
            s.sendall(data)
        except OSError as e:
            # The edge may refuse early and close while we are still sending; read what it said.
            ctx.note("%s: send stopped: %s" % (name, e))
        for want in statuses:
            try:
                r = rd.read_response()
                while r is not None and r.status == 100:
                    r = rd.read_response()
            except (OSError, ValueError, EOFError) as e:
                problems.append("%s: expected %d, reading failed: %s: %s" % (name, want, type(e).__name__, e))
                return problems, got
            if r is None:
                problems.append("%s: expected %d, the connection closed first" % (name, want))
                return problems, got
            got.append((r.status, r.header("Culvert-Request-Id")))
            if r.status != want:
                problems.append("%s: expected %d, got %d %s" % (name, want, r.status, r.body[:120]))
                return problems, got
            if r.status == 101:
                return problems, got  # the bytes that follow belong to the upgraded protocol
        last = statuses[-1]
        if last >= 400:
            if not rd.closed_after(2 * ctx.slow):
                problems.append("%s: the connection stayed open after %d (buffered %r)" % (name, last, rd.buf[:80]))
        else:
            s.settimeout(0.3)
            try:
                rd._fill()
            except OSError:
                pass
            if rd.buf:
                problems.append("%s: bytes after the expected responses: %r" % (name, rd.buf[:200]))
    finally:
        s.close()
    return problems, got


def corpus_stack(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("corpus", [CORPUS_HOST])
    origin = ctx.origin("origin")
    ctx.connector(edge, t["token"], ingress=[{"service": origin.url}], ha=2)
    return edge, origin


def run_vectors(ctx, vectors):
    edge, origin = corpus_stack(ctx)
    problems = []
    forwarded = []  # request ids of the requests the edge answered 2xx/101 (forwarded)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        futs = {pool.submit(replay, ctx, edge.https_port, name, st, data, 5): name for name, st, data in vectors}
        for f in concurrent.futures.as_completed(futs):
            p, got = f.result()
            problems += p
            for status, rid in got:
                if status < 300:
                    if not rid:
                        problems.append("%s: a forwarded response without Culvert-Request-Id" % futs[f])
                    forwarded.append(rid)
    ctx.note("replayed %d vectors in %.2fs" % (len(vectors), time.monotonic() - t0))
    # Anything still in flight at the origin has had time to arrive.
    time.sleep(0.3 * ctx.slow)
    at_origin = origin.requests()
    ids = [r["request_id"] for r in at_origin]
    for r in at_origin:
        if r["request_id"] not in forwarded:
            problems.append("a request reached the origin that the edge did not answer as forwarded: %r" % r)
    for rid in set(ids):
        if ids.count(rid) > 1:
            problems.append("request id %s reached the origin %d times" % (rid, ids.count(rid)))
    for rid in forwarded:
        if rid not in ids:
            problems.append("request id %s was answered 2xx but never reached the origin" % rid)
    return problems, len(forwarded), len(at_origin)


@lib.timeout(120)
def test_corpus_requests_and_no_smuggling(ctx):
    vectors = [v for v in load_corpus() if 101 not in v[1]]
    expect(len(vectors) >= 100, "corpus too small: %d vectors in %s" % (len(vectors), CORPUS_DIR))
    problems, n_fwd, n_origin = run_vectors(ctx, vectors)
    ctx.note("%d vectors, %d forwarded, %d at the origin" % (len(vectors), n_fwd, n_origin))
    expect(not problems, "%d problem(s) over %d vectors:\n  %s" % (len(problems), len(vectors),
                                                                 "\n  ".join(sorted(problems))))


@lib.timeout(60)
def test_corpus_websocket_upgrade(ctx):
    vectors = [v for v in load_corpus() if 101 in v[1]]
    expect(vectors, "no upgrade vector in the corpus")
    problems, _, _ = run_vectors(ctx, vectors)
    expect(not problems, "\n  ".join(sorted(problems)))


@lib.timeout(10)
def test_corpus_reader(ctx):
    """The corpus reader itself (no processes)."""
    expect(unescape("a\\r\\n\n\\tb\\\\\\x41\\x7f") == b"a\r\n\tb\\A\x7f", "unescape")
    vs = {name: (st, data) for name, st, data in load_corpus()}
    st, data = vs["h102-pipelined-two.txt"]
    expect(st == [200, 200], "h102 statuses %r" % st)
    expect(data == b"GET / HTTP/1.1\r\nHost: corpus.test\r\n\r\nGET /two HTTP/1.1\r\nHost: corpus.test\r\n\r\n",
           "h102 bytes %r" % data)
