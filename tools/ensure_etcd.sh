#!/usr/bin/env bash
# Make sure the etcd server binary is installed, for the etcd discovery tests.
#
# Idempotent: when etcd is on PATH it only says so. Otherwise, as root with apt-get, it installs
# Debian's `etcd-server` package (running `apt-get update` only if the first try fails) and exits
# 1 if that fails. Without root or apt-get it says why it installs nothing and exits 0; the etcd
# tests then skip. It never starts a server: the tests start their own
# (tests/support/etcd_server.py). The package's postinst may try to enable or start a systemd
# service; where no systemd runs that is a no-op, and its failing is ignored.
set -uo pipefail

describe() {
    echo "$1 ($("$1" --version 2>/dev/null | head -n 1 || echo "version unknown"))"
}

if etcd=$(command -v etcd 2>/dev/null); then
    echo "ensure_etcd: found $(describe "$etcd")"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_etcd: no etcd server binary, and not root so cannot install it;" \
        "the etcd tests will be skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_etcd: no etcd server binary, and no apt-get to install it with;" \
        "the etcd tests will be skipped"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp -t ensure_etcd.XXXXXX)
trap 'rm -f "$log"' EXIT
install() {
    apt-get install -y --no-install-recommends etcd-server >>"$log" 2>&1
}
if ! install; then
    if ! { apt-get update >>"$log" 2>&1 && install; }; then
        echo "ensure_etcd: apt-get install etcd-server failed; its output ends with:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
fi
if ! etcd=$(command -v etcd 2>/dev/null); then
    echo "ensure_etcd: installed the etcd-server package but found no etcd on PATH" >&2
    exit 1
fi
echo "ensure_etcd: installed Debian's etcd-server package: $(describe "$etcd")"
