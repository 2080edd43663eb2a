#!/usr/bin/env bash
# Make sure a system program is installed: ensure_program.sh WHAT COMMAND PACKAGE...
#
# Idempotent: when COMMAND is on PATH it only says so. Otherwise, as root with apt-get, it
# installs Debian's PACKAGEs (running `apt-get update` only if the first try fails) and exits 1
# if that fails. Without root or apt-get it says why it installs nothing and exits 0: what
# needs the program then says it is missing (tests skip, services say the feature is off).
set -uo pipefail

if [ "$#" -lt 3 ]; then
    echo "usage: $0 WHAT COMMAND PACKAGE..." >&2
    exit 2
fi
what=$1 command=$2
shift 2

if found=$(command -v "$command" 2>/dev/null); then
    echo "ensure_program: $what found at $found"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_program: no $command on PATH, and no root with apt-get to install $* with;" \
        "$what stays unavailable"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp -t ensure_program.XXXXXX)
trap 'rm -f "$log"' EXIT
install() {
    apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1
}
if ! install "$@"; then
    if ! { apt-get update >>"$log" 2>&1 && install "$@"; }; then
        echo "ensure_program: apt-get install $* failed; its output ends with:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
fi
if ! found=$(command -v "$command" 2>/dev/null); then
    echo "ensure_program: installed $* but found no $command on PATH" >&2
    exit 1
fi
echo "ensure_program: installed Debian's $* for $what ($found)"
