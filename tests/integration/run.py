#!/usr/bin/python3
"""Runs the integration tests: real culvert-edge / culvert-connector processes on loopback.

    tests/integration/run.py [--build DIR] [--reduced] [-k PATTERN] [-v] [--keep] [--list] [-x]

Tests are the functions test_* of the modules tests/integration/test_*.py, in file order; each takes
a lib.Ctx. Each test runs in a child process of its own (its own process group) with a deadline
(@lib.timeout, default 60 s; doubled with --reduced). At the deadline the child gets SIGTERM, which
raises lib.TestTimeout in the test so its cleanup still stops every process it started; a child that
is still there 20 s later is killed with its whole process group.

One line per test (ok / FAIL / skip, seconds), then a summary; the exit code is 1 when any test
failed. A failed test's message and the tail of each of its process logs are printed, and its
directory (BUILD/itest/MODULE.TEST) is kept; passing tests' directories are removed unless --keep.

  --build DIR   where culvert-edge and culvert-connector are (default build)
  --reduced     the short variant for sanitizer builds: small bodies, no long waits
  -k PATTERN    run the tests whose "module.test" name contains PATTERN (repeatable; any matches)
  -v            stream every process log and each command while the tests run
  --keep        keep the directories of passing tests too
  -x            stop at the first failure
  --list        print the test names and exit
"""

import argparse
import fcntl
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import lib  # noqa: E402

DEFAULT_TIMEOUT = 60
KILL_GRACE = 20  # seconds between SIGTERM to a late child and SIGKILL of its process group
LOCK_WAIT = 600  # seconds a run waits for another run on the same build directory


def discover(tests_dir):
    """[(module_name, func_name, timeout)] in file order."""
    tests = []
    for fn in sorted(os.listdir(tests_dir)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        modname = fn[:-3]
        mod = importlib.import_module(modname)
        funcs = []
        for name, obj in vars(mod).items():
            if name.startswith("test_") and callable(obj) and getattr(obj, "__module__", None) == modname:
                funcs.append((obj.__code__.co_firstlineno, name, getattr(obj, "timeout", DEFAULT_TIMEOUT)))
        for _, name, t in sorted(funcs):
            tests.append((modname, name, t))
    return tests


# ---- child: one test ---------------------------------------------------------------------------


def child_main(a):
    result = {"status": "fail", "message": "", "traceback": "", "logs": [], "warnings": []}
    ctx = None
    state = {"in_cleanup": False}

    def on_term(signum, frame):
        if not state["in_cleanup"]:
            raise lib.TestTimeout("deadline passed")

    signal.signal(signal.SIGTERM, on_term)
    try:
        mod = importlib.import_module(a.module)
        fn = getattr(mod, a.func)
        if a.reduced and getattr(fn, "full_only", None):
            raise lib.Skip("plain build only: " + fn.full_only)
        ctx = lib.Ctx(a.build, a.dir, a.pki, reduced=a.reduced, verbose=a.verbose, bin_dir=a.bin_dir)
        try:
            fn(ctx)
            result["status"] = "ok"
        finally:
            state["in_cleanup"] = True
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            problems = ctx.cleanup()
            result["logs"] = [p.log for p in ctx.procs]
            result["warnings"] = ctx.warnings
            if problems and result["status"] == "ok":
                result["status"] = "fail"
                result["message"] = "; ".join(problems)
            elif problems:
                result["warnings"] += problems
    except lib.Skip as e:
        result["status"] = "skip"
        result["message"] = str(e)
    except lib.TestTimeout:
        result["status"] = "fail"
        result["message"] = "timed out (the test's deadline passed)"
        result["traceback"] = traceback.format_exc()
    except BaseException as e:  # noqa: B036 - report everything, including KeyboardInterrupt
        result["status"] = "fail"
        result["message"] = "%s: %s" % (type(e).__name__, e)
        result["traceback"] = traceback.format_exc()
    if ctx is not None and not result["logs"]:
        result["logs"] = [p.log for p in ctx.procs]
    with open(os.path.join(a.dir, "result.json.tmp"), "w") as f:
        json.dump(result, f)
    os.rename(os.path.join(a.dir, "result.json.tmp"), os.path.join(a.dir, "result.json"))
    return 0


# ---- parent ------------------------------------------------------------------------------------


def run_one(a, root, pki, bin_dir, modname, func, tmo):
    name = "%s.%s" % (modname, func)
    d = os.path.join(root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    deadline = tmo * (2 if a.reduced else 1)
    argv = [sys.executable, os.path.abspath(__file__), "--child", "--module", modname, "--func", func,
            "--dir", d, "--pki", pki, "--build", a.build, "--bin-dir", bin_dir, "--tests-dir", a.tests_dir]
    if a.reduced:
        argv.append("--reduced")
    if a.verbose:
        argv.append("-v")
    out_path = os.path.join(d, "test.out")
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        p = subprocess.Popen(argv, stdout=None if a.verbose else out, stderr=subprocess.STDOUT if not a.verbose
                             else None, stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        timed_out = False
        try:
            p.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            timed_out = True
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                pass
        except KeyboardInterrupt:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                pass
            _killpg(p.pid)
            raise
        # Anything of the test's process group still alive is an orphan: kill it.
        _killpg(p.pid)
    secs = time.monotonic() - t0
    res_path = os.path.join(d, "result.json")
    if os.path.exists(res_path):
        with open(res_path) as f:
            res = json.load(f)
    else:
        res = {"status": "fail", "message": "the test process ended without a result (exit %s)%s" % (
            p.returncode, ", killed at the deadline" if timed_out else ""), "traceback": "", "logs": [],
            "warnings": []}
        res["logs"] = [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".log")]
    if timed_out and res["status"] != "fail":
        res["status"] = "fail"
        res["message"] = "timed out after %ds" % deadline
    return name, d, res, secs


def _killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def print_failure(d, res):
    print("    " + (res.get("message") or "").replace("\n", "\n    "))
    if res.get("traceback"):
        print("    " + res["traceback"].rstrip().replace("\n", "\n    "))
    for w in res.get("warnings", []):
        print("    warning: " + w)
    out = os.path.join(d, "test.out")
    if os.path.exists(out) and os.path.getsize(out) > 0:
        print("    --- test output (tail) ---")
        print("    " + lib.tail(out, 30).replace("\n", "\n    "))
    notes = os.path.join(d, "test.notes")
    if os.path.exists(notes):
        print("    --- commands (tail) ---")
        print("    " + lib.tail(notes, 25).replace("\n", "\n    "))
    for log in res.get("logs", []):
        print("    --- %s (tail) ---" % os.path.relpath(log, REPO))
        print("    " + lib.tail(log, 40).replace("\n", "\n    "))
    print("    (directory kept: %s)" % os.path.relpath(d, REPO))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--reduced", action="store_true")
    ap.add_argument("-k", action="append", default=[], dest="patterns")
    ap.add_argument("-v", action="store_true", dest="verbose")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-x", action="store_true", dest="exitfirst")
    ap.add_argument("--list", action="store_true")
    # child mode (internal)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--module", help=argparse.SUPPRESS)
    ap.add_argument("--func", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--pki", help=argparse.SUPPRESS)
    ap.add_argument("--bin-dir", help=argparse.SUPPRESS)
    ap.add_argument("--tests-dir", default=HERE, help=argparse.SUPPRESS)  # the framework's self-test
    a = ap.parse_args()
    os.chdir(REPO)
    a.tests_dir = os.path.abspath(a.tests_dir)
    if a.tests_dir != HERE:
        sys.path.insert(0, a.tests_dir)
    if a.child:
        return child_main(a)

    tests = discover(a.tests_dir)
    if a.patterns:
        tests = [t for t in tests if any(p in "%s.%s" % (t[0], t[1]) for p in a.patterns)]
    if a.list:
        for m, f, t in tests:
            print("%s.%s (%ds)" % (m, f, t))
        return 0
    for b in ("culvert-edge", "culvert-connector"):
        if not os.access(os.path.join(a.build, b), os.X_OK):
            print("run.py: %s/%s is missing: build it first (make%s)" % (
                a.build, b, " SANITIZE=1" if a.reduced else ""), file=sys.stderr)
            return 1
    root = os.path.join(os.path.abspath(a.build), "itest" if a.tests_dir == HERE else "itest-self")
    # One run at a time per directory: a second run would delete the first one's files.
    lock_fd = os.open(root + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("run.py: another integration run is using %s; waiting (up to %ds)" % (root, LOCK_WAIT),
              flush=True)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    print("run.py: gave up waiting for %s.lock" % root, file=sys.stderr)
                    return 1
                time.sleep(0.5)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    pki = lib.make_pki(os.path.join(root, "pki"))
    # Private copies of the binaries: a rebuild during the run does not change them under a test.
    bin_dir = os.path.join(root, "bin")
    os.makedirs(bin_dir)
    for b in ("culvert-edge", "culvert-connector"):
        shutil.copy2(os.path.join(a.build, b), os.path.join(bin_dir, b))
    print("integration tests: %d selected, build %s%s" % (len(tests), a.build,
                                                        ", reduced" if a.reduced else ""), flush=True)
    counts = {"ok": 0, "fail": 0, "skip": 0}
    failed = []
    t_start = time.monotonic()
    try:
        for modname, func, tmo in tests:
            name, d, res, secs = run_one(a, root, pki, bin_dir, modname, func, tmo)
            st = res["status"]
            counts[st] += 1
            label = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}[st]
            extra = ""
            if st == "skip":
                extra = "  (%s)" % res.get("message", "")
            print("%s  %-60s %6.2fs%s" % (label, name, secs, extra), flush=True)
            if st == "fail":
                failed.append(name)
                print_failure(d, res)
                sys.stdout.flush()
            else:
                for w in res.get("warnings", []):
                    print("      warning: %s" % w)
                if not a.keep:
                    shutil.rmtree(d, ignore_errors=True)
            if st == "fail" and a.exitfirst:
                break
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    total = time.monotonic() - t_start
    print("%d passed, %d failed, %d skipped in %.1fs" % (counts["ok"], counts["fail"], counts["skip"], total))
    for n in failed:
        print("FAILED %s" % n)
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
