#!/usr/bin/env bash
# Run every Go benchmark of the workspace once and print a table.
# BENCH selects benchmarks (default: all), BENCHTIME sets -benchtime.
# Numbers from one run on a shared machine are noisy: compare ratios
# measured in the same run, not absolute values across runs.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=$(sed -n 's|^\t\./\(.*\)|./\1/...|p' go.work)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench "${BENCH:-.}" -benchtime "${BENCHTIME:-1x}" -benchmem $pkgs | tee "$out" >&2

table() {
  echo "| benchmark | n | ns/op | other metrics |"
  echo "|---|---:|---:|---|"
  awk '/^Benchmark/ {
    name=$1; n=$2; nsop=""; rest="";
    for (i=3; i<=NF; i+=2) {
      if ($(i+1)=="ns/op") nsop=$i; else rest=rest $i " " $(i+1) "; ";
    }
    printf "| %s | %s | %s | %s |\n", name, n, nsop, rest
  }' "$out"
}

echo
table
# The table is also kept in bench/RESULTS.md, with what it was measured on.
mkdir -p bench
{
  echo "# entrasync benchmarks"
  echo
  echo "Written by \`make bench\` (scripts/bench.sh). One run on one machine:"
  echo "compare ratios within this table, not figures across runs."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- $(go version)"
  echo "- $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'), $(nproc) CPUs"
  echo "- BENCH=${BENCH:-.} BENCHTIME=${BENCHTIME:-1x}"
  echo
  table
} > bench/RESULTS.md
echo
echo "written to bench/RESULTS.md"
