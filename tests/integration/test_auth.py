"""Tunnel tokens at the connector (PRODUCT.md section 3, RELIABILITY.md T-20): a rejected token is
final (exit 1, a message saying authentication failed), secrets never appear in logs or in
/proc/PID/cmdline, and a token file others can read is refused."""

import base64
import json
import os
import re

import lib
from lib import DOMAIN, expect, expect_eq


def token_with(token, **changes):
    """|token| with fields of its JSON replaced, re-encoded as base64url without padding."""
    j = lib.decode_token(token)
    j.update(changes)
    raw = json.dumps(j, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def secret_forms(token):
    """Every text form of the token's secret a log line might carry."""
    secret = lib.decode_token(token)["secret"]
    s = secret.rstrip("=")
    raw = base64.b64decode(secret + "=" * (-len(secret) % 4))
    return [token, s, s.replace("+", "-").replace("/", "_"), raw.hex(), raw.hex().upper()]


def assert_absent(ctx, forms, texts, what):
    for name, text in texts:
        for f in forms:
            expect(f not in text, "%s: a token/secret form (%s...) appears in %s" % (what, f[:8], name))


@lib.timeout(60)
def test_wrong_token_is_final(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("auth", ["auth." + DOMAIN])
    other = edge.create_tunnel("other")
    wrong_secret = base64.b64encode(os.urandom(32)).decode()
    cases = [
        ("wrong-secret", token_with(t["token"], secret=wrong_secret)),
        ("unknown-tunnel", token_with(t["token"], id="0b0e7ad1-5d8c-4c6e-9a4a-7f3f6b1c2d3e")),
        ("other-tunnels-secret", token_with(t["token"], secret=lib.decode_token(other["token"])["secret"])),
    ]
    messages = {}
    for name, tok in cases:
        c = ctx.connector(edge, tok, name=name, start=False, loglevel="debug")
        c.start(wait_ready=False)
        rc = c.proc.wait(5 * ctx.slow)
        expect(rc is not None, "%s: the connector is still running %.0fs after a rejected token" % (name, 5 * ctx.slow))
        expect_eq(rc, 1, "%s: exit code" % name)
        text = c.proc.text()
        expect(re.search(r"authentication failed", text, re.I),
               "%s: the log does not say authentication failed:\n%s" % (name, lib.tail(c.proc.log)))
        assert_absent(ctx, secret_forms(tok) + secret_forms(t["token"]), [(c.proc.log, text)], name)
        # The metrics endpoint is gone with the process; nothing was served.
        expect(not c.ready(), "%s: /ready answers after exit" % name)
        messages[name] = [l for l in text.splitlines() if re.search(r"rejected|authenticat", l, re.I)]
    # An unknown tunnel and a wrong secret get the same answer from the edge.
    strip = lambda ls: [re.sub(r"^\S+ \S+ \S+ |conn=\d+ |\d+\.\d+\.\d+\.\d+:\d+", "", l) for l in ls]
    expect_eq(strip(messages["unknown-tunnel"])[:1], strip(messages["wrong-secret"])[:1],
              "the connector's message for an unknown tunnel vs a wrong secret")
    # The edge's log never holds a secret either.
    assert_absent(ctx, sum((secret_forms(tok) for _, tok in cases), []) + secret_forms(t["token"]),
                  [(edge.proc.log, edge.proc.text())], "edge log")
    # The right token still works afterwards.
    ctx.connector(edge, t["token"], name="good")
    expect_eq(edge.get("auth." + DOMAIN).status, 200, "GET with the right token")


@lib.timeout(60)
def test_token_flag_not_in_cmdline_or_logs(ctx):
    edge = ctx.edge()
    t = edge.tunnel_with_route("flag", ["flag." + DOMAIN])
    c = ctx.connector(edge, t["token"], token_mode="flag", loglevel="debug", name="flagconn")
    expect(t["token"] in c.argv, "the test did not pass --token")
    with open("/proc/%d/cmdline" % c.proc.pid, "rb") as f:
        cmdline = f.read().decode("latin-1")
    assert_absent(ctx, secret_forms(t["token"]), [("/proc/%d/cmdline" % c.proc.pid, cmdline)], "--token")
    expect("--token" in cmdline, "cmdline lost the --token flag itself: %r" % cmdline)
    r = edge.get("flag." + DOMAIN)
    expect_eq(r.status, 200, "GET through a connector started with --token")
    # $CULVERT_TOKEN works too.
    c2 = ctx.connector(edge, t["token"], token_mode="env", name="envconn")
    c.stop()
    expect_eq(edge.get("flag." + DOMAIN).status, 200, "GET through a connector started with $CULVERT_TOKEN")
    c2.stop()
    edge.stop()
    assert_absent(ctx, secret_forms(t["token"]),
                  [(p.log, p.text()) for p in ctx.procs], "logs of a run with a valid token")


@lib.timeout(30)
def test_token_file_readable_by_others_refused(ctx):
    edge = ctx.edge()
    t = edge.create_tunnel("perm")
    c = ctx.connector(edge, t["token"], name="perm", start=False)
    os.chmod(c.token_file, 0o644)
    c.start(wait_ready=False)
    rc = c.proc.wait(5 * ctx.slow)
    expect(rc not in (None, 0), "a connector with a 0644 token file did not refuse to start (rc %s)" % rc)
    text = c.proc.text()
    expect(c.token_file in text or "token" in text.lower(),
           "the message does not name the token file: %r" % text[-500:])
    assert_absent(ctx, secret_forms(t["token"]), [(c.proc.log, text)], "0644 token file")
    expect_eq(edge.cli("tunnel", "list", output_json=True).json[0]["connectors"], 0,
              "connectors registered with a refused token file")



@lib.timeout(90)
def test_failed_auth_from_one_address_is_tarpitted_after_ten_a_minute(ctx):
    """RELIABILITY.md §10 (failed auth: 10/min/IP, then tarpit): the first ten wrong tokens from an
    address get "authentication failed" at once (final: exit 1); the eleventh gets no answer, and
    the registration deadline closes its connection, so guessing costs the guesser time."""
    edge = ctx.edge(limits={"register_ms": "2s"})
    t = edge.tunnel_with_route("tarpit", ["tarpit." + DOMAIN])
    wrong = token_with(t["token"], secret=base64.b64encode(os.urandom(32)).decode())
    for i in range(10):
        c = ctx.connector(edge, wrong, name="guess%d" % i, start=False, ha=1)
        c.start(wait_ready=False)
        expect_eq(c.proc.wait(5 * ctx.slow), 1, "guess %d: exit code (authentication failed is final)" % i)
    c = ctx.connector(edge, wrong, name="guess10", start=False, ha=1)
    c.start(wait_ready=False)
    ctx.wait_until(lambda: "answer withheld" in edge.proc.text(), 5, "the edge to withhold its answer")
    expect(c.proc.wait(1.0) is None, "the eleventh guess got an answer at once (exit %s)" % c.proc.returncode)
    ctx.wait_until(lambda: "registration deadline expired" in edge.proc.text(), 5,
                   "the registration deadline (2s) to close the tarpitted connection")
    c.stop()


@lib.timeout(60)
def test_rotated_token_is_final_even_when_the_address_is_tarpitted(ctx):
    """PRODUCT.md section 2-3: rotate-token disconnects the connectors of the old token, and that
    rejection is final (exit 1). Replicas behind one NAT address share its failed-auth budget (ten
    a minute, then no answer): a connector must not need another refused registration to stop."""
    edge = ctx.edge()
    t = edge.tunnel_with_route("rot", ["rot." + DOMAIN])
    c = ctx.connector(edge, t["token"], ha=2, name="replica")
    wrong = token_with(t["token"], secret=base64.b64encode(os.urandom(32)).decode())
    guesses = [ctx.connector(edge, wrong, name="guess%d" % i, start=False, ha=1) for i in range(10)]
    for g in guesses:
        g.start(wait_ready=False)
    for i, g in enumerate(guesses):
        expect_eq(g.proc.wait(5 * ctx.slow), 1, "guess %d: exit code" % i)
    edge.cli("tunnel", "rotate-token", "rot")
    rc = c.proc.wait(3 * ctx.slow)
    expect_eq(rc, 1, "exit code of the connector within 3s of rotate-token (address tarpitted)")
    expect(re.search(r"rejected this connector", c.proc.text()),
           "the connector does not say the edge rejected it:\n%s" % lib.tail(c.proc.log))
