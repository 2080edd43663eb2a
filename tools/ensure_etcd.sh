#!/usr/bin/env bash
# Make sure the etcd server binary is installed, for the etcd discovery tests: Debian's
# `etcd-server` package, through tools/ensure_program.sh (see there: idempotent, installs only
# as root with apt-get, and without either says so and exits 0, so the etcd tests skip). It
# never starts a server: the tests start their own (tests/support/etcd_server.py). Where no
# systemd runs, the package's attempt to enable its service is a no-op.
exec bash "$(dirname "$0")/ensure_program.sh" "etcd (for the etcd discovery tests)" etcd etcd-server
