#!/usr/bin/env bash
# Make sure this machine has what entrasync's tests and `make run` start on
# their own: PostgreSQL's server binaries (Debian package `postgresql`).
# NATS needs nothing: it runs embedded. Safe to run again and again.
set -euo pipefail

if [ -n "${PG_BINDIR:-}" ] || compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  exit 0
fi
if [ -n "${TEST_DATABASE_URL:-}${DATABASE_URL:-}" ]; then
  exit 0 # an external server is configured; no local binaries needed
fi
echo "deps: PostgreSQL server binaries missing; installing Debian's postgresql package" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
