#!/bin/sh
# Make sure Debian's Chromium is present for the browser tests (tests/e2e).
#
# Never `playwright install`: the tests drive the distribution's binary at /usr/lib/chromium/chromium.
# As root, install it with apt-get; otherwise say what to install and fail.
set -eu

CHROMIUM="${ROUNDTABLE_CHROMIUM:-/usr/lib/chromium/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "chromium: found $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "chromium: $CHROMIUM is missing and this is not root." >&2
    echo "  Install Debian's chromium package, e.g.:" >&2
    echo "    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium" >&2
    echo "  (or point ROUNDTABLE_CHROMIUM at a Chromium binary). Do not run 'playwright install'." >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: $CHROMIUM is missing and apt-get is not available; install Chromium with your package manager" >&2
    echo "  and set ROUNDTABLE_CHROMIUM to its binary." >&2
    exit 1
fi

echo "chromium: installing Debian's chromium package (about 120 MB) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium

if [ ! -x "$CHROMIUM" ]; then
    echo "chromium: installed, but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
