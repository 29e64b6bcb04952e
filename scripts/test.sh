#!/usr/bin/env bash
# Run every test of the workspace. Tests start their own embedded NATS and a
# private PostgreSQL cluster unless TEST_DATABASE_URL points at a server.
set -euo pipefail
cd "$(dirname "$0")/.."

go vet "$@"
# -p 2: the machine has two cores; the end-to-end tests are heavy already.
exec go test -count=1 -p 2 -timeout 30m "$@"
