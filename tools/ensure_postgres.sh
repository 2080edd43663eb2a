#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, postgres) are installed, for the PostgreSQL tests.
#
# Idempotent: when initdb is on PATH or in /usr/lib/postgresql/*/bin it only says so. Otherwise,
# as root with apt-get, it installs Debian's `postgresql` package (running `apt-get update` only
# if the first try fails) and exits 1 if that fails. Without root or apt-get it says why it
# installs nothing and exits 0; the PostgreSQL tests then skip. It never starts a server: the
# tests start their own (tests/support/postgres.py).
set -uo pipefail

find_initdb() {
    local found
    if found=$(command -v initdb 2>/dev/null); then
        readlink -f "$found"
        return 0
    fi
    for found in $(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -rV); do
        if [ -x "$found" ]; then
            echo "$found"
            return 0
        fi
    done
    return 1
}

describe() {
    echo "$1 ($("$1" --version 2>/dev/null || echo "version unknown"))"
}

if initdb=$(find_initdb); then
    echo "ensure_postgres: found $(describe "$initdb")"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_postgres: no PostgreSQL server binaries, and not root so cannot install them;" \
        "the PostgreSQL tests will be skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_postgres: no PostgreSQL server binaries, and no apt-get to install them with;" \
        "the PostgreSQL tests will be skipped"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp -t ensure_postgres.XXXXXX)
trap 'rm -f "$log"' EXIT
install() {
    apt-get install -y --no-install-recommends postgresql >>"$log" 2>&1
}
if ! install; then
    if ! { apt-get update >>"$log" 2>&1 && install; }; then
        echo "ensure_postgres: apt-get install postgresql failed; its output ends with:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
fi
if ! initdb=$(find_initdb); then
    echo "ensure_postgres: installed the postgresql package but found no initdb" >&2
    exit 1
fi
echo "ensure_postgres: installed Debian's postgresql package: $(describe "$initdb")"
