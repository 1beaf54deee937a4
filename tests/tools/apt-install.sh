#!/bin/sh
# tests/tools/apt-install.sh WHO PACKAGE... - installs the Debian packages not yet installed, for
# `make deps` and `make bench` (WHO prefixes the messages). Package scripts must not start system
# services (nginx on :80, sshd on :22, haproxy): the tests and the benchmark start their own
# instances on loopback ports, so an absent /usr/sbin/policy-rc.d is made to say "no" (exit 101)
# for the install and removed afterwards. Not root with packages missing: says what to run, exit 1.
set -eu
who=$1
shift
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "$who: installing missing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
    echo "$who: not root; run: sudo apt-get install -y$missing" >&2
    exit 1
fi
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
rc=0
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $missing; } ||
    rc=$?
[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
[ "$rc" = 0 ] || { echo "$who: apt-get failed" >&2; exit 1; }
