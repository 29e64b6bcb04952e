#!/usr/bin/env bash
# Run every Go fuzz target of the workspace for FUZZTIME each (default 5s),
# after its committed seed corpus (testdata/fuzz/<Name>) has passed. A
# failing input is written to the package's testdata/fuzz and fails the
# script: commit it with the fix, as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-5s}
status=0
while IFS=: read -r file name; do
  dir=$(dirname "$file")
  echo "fuzz $dir $name ($fuzztime)"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"; then
    status=1
  fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' libs services proto | sed 's/:func /:/' | sort)
exit $status
