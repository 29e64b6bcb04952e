#!/usr/bin/env bash
# Run every test of the workspace, with the race detector. Tests start
# their own embedded NATS and a private PostgreSQL cluster unless
# TEST_DATABASE_URL points at a server.
#
# The first race build of the Graph SDK takes several minutes; later runs
# use the build cache. RACE=0 runs without the detector.
set -euo pipefail
cd "$(dirname "$0")/.."

race=-race
[ "${RACE:-1}" = 0 ] && race=

go vet "$@"
# The scripts must at least parse: make bench runs bench.sh, which no test
# does, and an apostrophe in its report's text once broke its quoting.
for script in scripts/*.sh; do bash -n "$script"; done
# -p 2: the machine has two cores; the end-to-end tests are heavy already.
exec go test $race -count=1 -p 2 -timeout 30m "$@"
