"""Renegotiation (RELIABILITY.md T-26), with `openssl s_client`: a TLS 1.2 visitor that asks to
renegotiate is refused with a no_renegotiation alert, repeatedly, and the edge goes on serving; the
tunnel port accepts nothing older than TLS 1.3."""

import subprocess
import time

import lib
from lib import expect, expect_eq


def _s_client(ctx, port, args, stdin=b"", pause=0.0, timeout=20):
    """Runs openssl s_client; |stdin| is a list of chunks written |pause| s apart (its commands,
    such as "R", are read only when stdin is not closed at once). Returns (exit code, output)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
            "%s/ca.pem" % ctx.pki] + list(args)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ctx.aux.append(p)
    try:
        for chunk in (stdin if isinstance(stdin, list) else [stdin]):
            time.sleep(pause)
            p.stdin.write(chunk)
            p.stdin.flush()
        time.sleep(pause)
        p.stdin.close()
    except BrokenPipeError:
        pass
    out = p.stdout.read().decode(errors="replace")
    rc = p.wait(timeout * ctx.slow)
    ctx.note("%s: exit %d\n%s" % (" ".join(argv), rc, out[-2000:]))
    return rc, out


@lib.timeout(90)
def test_renegotiation_is_refused_and_the_edge_goes_on(ctx):
    st = lib.Stack(ctx)
    host = st.host
    # s_client reads commands from stdin when run interactively: "R" asks for a renegotiation;
    # a request follows on the same connection.
    req = ("GET /name HTTP/1.1\nHost: %s\n\n" % host).encode()
    for i in range(2 if ctx.reduced else 5):
        rc, out = _s_client(ctx, st.edge.https_port, ["-servername", host, "-tls1_2", "-crlf"],
                            [b"R\n", req], pause=0.2)
        expect("RENEGOTIATING" in out, "s_client did not try to renegotiate: %s" % out[-800:])
        # The edge answers with a no_renegotiation alert (which OpenSSL's client then treats as the
        # end of the connection) and no second handshake happens: one certificate chain shown.
        expect("no renegotiation" in out, "the edge's refusal (no_renegotiation): %s" % out[-800:])
        expect_eq(out.count("Server certificate"), 1, "server certificates shown (a second means a "
                  "renegotiation happened)")
        expect(st.edge.proc.alive(), "the edge is not running after renegotiation attempt %d" % i)
    r = st.get("/name")
    expect_eq(r.status, 200, "a request on a new connection after the renegotiation attempts")
    # TLS 1.3 has no renegotiation at all; the tunnel port refuses anything older.
    rc, out = _s_client(ctx, st.edge.tunnel_port, ["-tls1_2"])
    expect(rc != 0 and "alert protocol version" in out and "Cipher is (NONE)" in out,
           "a TLS 1.2 handshake with the tunnel port did not fail with a protocol_version alert: %s"
           % out[-800:])
