"""`make demo` (PRODUCT.md section 5): tests/demo.sh with DEMO_ONCE=1 fetches the hello_world page
through a local edge and connector and exits. It uses fixed ports; skipped when any is busy."""

import os

import lib
from lib import expect, expect_eq

DEMO_PORTS = (8443, 8080, 7844, 7845, 20241)


@lib.timeout(90)
def test_demo_once(ctx):
    busy = [p for p in DEMO_PORTS if lib.port_busy(p)]
    if busy:
        ctx.skip("demo ports busy: %s" % ", ".join(map(str, busy)))
    env = dict(ctx.env)
    env["DEMO_ONCE"] = "1"
    p = ctx.spawn("demo", ["sh", os.path.join(lib.REPO, "tests", "demo.sh"), ctx.build], env=env, cwd=lib.REPO)
    rc = p.wait(60 * ctx.slow)
    expect(rc is not None, "demo.sh still running after %.0fs" % (60 * ctx.slow))
    out = p.text()
    expect_eq(rc, 0, "exit code of DEMO_ONCE=1 sh tests/demo.sh")
    expect("Hello from Culvert" in out, "the demo did not print the hello page:\n%s" % out[-3000:])
    # The demo stopped what it started: its ports are free again.
    ctx.wait_until(lambda: not [q for q in DEMO_PORTS if lib.port_busy(q)], 10,
                   "the demo's ports to be free after it exited")
