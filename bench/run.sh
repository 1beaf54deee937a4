#!/bin/sh
# bench/run.sh - `make bench` (after `make deps all`): installs the comparison's Debian packages,
# raises the open-file limit, and runs bench/bench.py in a scratch directory. Every process the run
# starts is listed in $WORK/pids (PID, start time, name); bench.py kills them by PID, and this
# script kills any still alive (same PID and start time) when it exits for whatever reason.
#
# Environment: BENCH_DURATION (s per wrk run, 10), BENCH_WS (10000), BENCH_TUNNELS (1000),
# BENCH_CALLGRIND_REQUESTS (2000), BENCH_MAX_SECONDS (1500), BENCH_KEEP=1 keeps the scratch
# directory (configs, logs, callgrind dumps). Arguments are passed to bench.py (--only culvert ...).
set -eu
cd "$(dirname "$0")/.."

PKGS="nginx haproxy wrk openssh-server openssh-client curl valgrind python3 openssl iproute2 procps"

# shellcheck disable=SC2086 # one word per package
sh tests/tools/apt-install.sh bench $PKGS
# linux-perf is for profiling by hand (NOTES.md); the run itself does not need it.
dpkg-query -W -f='${Status}' linux-perf 2>/dev/null | grep -q 'install ok installed' ||
    apt-get install -y -q --no-install-recommends linux-perf >/dev/null 2>&1 || true

# 10,000 WebSockets need more than 10,000 descriptors in the edge (and as many in the clients).
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 65536 ]; then
    ulimit -Hn 65536 2>/dev/null || true
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/culvert-bench.XXXXXX)
export WORK
killtree() {
    for c in $(ps --ppid "$1" -o pid= 2>/dev/null); do
        killtree "$c"
    done
    kill -9 "$1" 2>/dev/null || true
}
pypid=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    # bench.py stops what it started when told to (SIGTERM); give it the time to do so.
    if [ -n "$pypid" ] && kill -0 "$pypid" 2>/dev/null; then
        kill -TERM "$pypid" 2>/dev/null || true
        i=0
        while kill -0 "$pypid" 2>/dev/null && [ $i -lt 60 ]; do
            sleep 0.5
            i=$((i + 1))
        done
        kill -9 "$pypid" 2>/dev/null || true
    fi
    if [ -f "$WORK/pids" ]; then
        while read -r pid st name; do
            [ -r "/proc/$pid/stat" ] || continue
            now=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20)
            if [ "$now" = "$st" ]; then
                echo "bench: killing leftover $name (pid $pid)" >&2
                killtree "$pid"
            fi
        done < "$WORK/pids"
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: scratch directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 bench/bench.py --work "$WORK" "$@" &
pypid=$!
wait "$pypid"
