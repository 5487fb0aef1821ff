#!/bin/sh
# Make sure Debian's Janus (with janus-tools, whose janus-pp-rec converts sfu recordings), coturn, openssl, jq and nats-server
# are present for the tests (tests/sfu, tests/e2e, the TURN tests, and tests/nodes, which start their own NATS server in
# the namespace when ROUNDTABLE_TEST_BUS_URL is unset or cannot be reached from there).
#
# The server installs them itself when it starts (`make run`, ROUNDTABLE_SFU_INSTALL / ROUNDTABLE_TURN_INSTALL), but
# the test suite runs in a private network namespace (tests/netns.py) where apt-get cannot reach a mirror: so
# `make test` installs them first, as it does Chromium. As root with apt-get, install what is missing; otherwise
# say what to install and fail.
set -eu

missing=""
command -v janus >/dev/null 2>&1 || [ -x /usr/bin/janus ] || missing="$missing janus"
command -v janus-pp-rec >/dev/null 2>&1 || missing="$missing janus-tools"
command -v turnserver >/dev/null 2>&1 || [ -x /usr/bin/turnserver ] || missing="$missing coturn"
# The outside check of an audit anchor in docs/records.md is run verbatim by a test.
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v jq >/dev/null 2>&1 || missing="$missing jq"
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing="$missing nats-server"
# The load balancer of docker-compose.nodes.yml, run in front of real nodes by tests/nodes/test_load_balancer.py.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing="$missing haproxy"

if [ -z "$missing" ]; then
    echo "media parts: found janus $(janus --version 2>/dev/null | head -n1 || true), janus-pp-rec, turnserver, openssl, jq, nats-server, haproxy"
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "media parts: missing Debian packages:$missing (and this is not root with apt-get)." >&2
    echo "  Install them, e.g.: sudo DEBIAN_FRONTEND=noninteractive apt-get install -y$missing" >&2
    exit 1
fi

echo "media parts: installing Debian's$missing ..."
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! apt-get install -y --no-install-recommends $missing; then
    apt-get update
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $missing
fi
# The packages' own services are not ours: Roundtable runs its own Janus and coturn with its own configuration. (A NATS
# server the package may start on 127.0.0.1:4222 is left alone: it is what ROUNDTABLE_BUS_URL may name on this host.)
for unit in janus coturn haproxy; do
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$unit" >/dev/null 2>&1 || true; fi
done
echo "media parts: installed$missing"
