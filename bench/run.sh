#!/bin/sh
# Runs the chatd-versus-nchan benchmarks of docs/BENCHMARKS.md.
#
#   bench/run.sh [OUTDIR]          the full set (about 15 minutes) and the
#                                  10-minute idle hold (about 12 minutes)
#   QUICK=1 bench/run.sh [OUTDIR]  the full set only
#
# Needs Go, nginx and libnginx-mod-nchan (apt-get install nginx
# libnginx-mod-nchan). Writes OUTDIR/bench.md, OUTDIR/bench.json,
# OUTDIR/idle.md and the chart docs/benchmarks.svg. All traffic stays on
# 127.0.0.0/8; both servers are started and stopped by chatbench.
set -eu

cd "$(dirname "$0")/.."
# An older Go set not to fetch toolchains takes the release go.mod names.
export GOTOOLCHAIN=auto
out=${1:-/tmp/chatbench-results}
mkdir -p "$out"

go build -o "$out/chatd" ./cmd/chatd
go build -o "$out/chatbench" ./cmd/chatbench

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- . ':!docs' 2>/dev/null)" ]; then
	rev="$rev with local changes"
fi

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$out/chatbench" -chatd-bin "$out/chatd" -quiet-load 2 -quiet-wait 1m \
	-note "chatd at $rev" \
	-md "$out/bench.md" -json "$out/bench.json" -svg docs/benchmarks.svg

if [ -z "${QUICK:-}" ]; then
	"$out/chatbench" -chatd-bin "$out/chatd" -quiet-load 2 -quiet-wait 1m \
		-scenarios idle -idle-hold 10m -note "chatd at $rev" \
		-md "$out/idle.md" -json "$out/idle.json"
fi
