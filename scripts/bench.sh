#!/usr/bin/env bash
# The benchmark tables of docs/benchmarks.md: cursorshare against the sockjs-node tutorial
# server, one room and many rooms, written by `python -m benchmarks.compare`.
#
#   scripts/bench.sh                      # both tables (about 20 minutes), updates the doc
#   DURATION=5 CLIENTS=50,200 MANY_ROOMS=1000:200 scripts/bench.sh   # a shorter run
#   UPDATE_DOC=0 scripts/bench.sh --servers cursorshare   # extra args go to benchmarks.compare
#
# Environment: DURATION (measured s per point, 15), WARMUP (3), RATE (30), CLIENTS (one-room
# N values, 50,200,500), MANY_ROOMS (many-rooms N:K points, 1000:200,2000:400; "none" to
# skip), TRANSPORTS (all four), OBSERVERS (50), IDLE_SESSIONS (5000, 0 to skip), SERVER_CPU
# (the CPU the servers are pinned to, 0), GEN_CPUS (the CPUs the load generator processes are
# pinned to, round-robin: every CPU but SERVER_CPU), PROCESSES (load generator processes, one
# per GEN_CPUS entry), OUT_DIR (where the JSON and markdown go, /tmp/cursorshare-bench),
# SOCKJS_NODE_DIR (scratch folder for the sockjs-node server and its node_modules,
# /tmp/cursorshare-bench-sockjs-node), UPDATE_DOC (1: rewrite the results region of
# docs/benchmarks.md), QUIET_WAIT (s to wait before each point for other programs to go
# quiet, 60), PYTHON (.venv/bin/python if present).
#
# Every server runs on 127.0.0.1 only, pinned to SERVER_CPU; the load generator processes are
# pinned to GEN_CPUS. Run it on an otherwise idle machine: the report warns when other
# processes took CPU, and marks with † every point where a generator process was saturated.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source benchmarks/server.sh  # PYTHON
DURATION="${DURATION:-15}"
WARMUP="${WARMUP:-3}"
RATE="${RATE:-30}"
CLIENTS="${CLIENTS:-50,200,500}"
MANY_ROOMS="${MANY_ROOMS:-1000:200,2000:400}"
TRANSPORTS="${TRANSPORTS:-websocket,xhr-streaming,eventsource,xhr-polling}"
OBSERVERS="${OBSERVERS:-50}"
IDLE_SESSIONS="${IDLE_SESSIONS:-5000}"
SERVER_CPU="${SERVER_CPU:-0}"
if [[ -z "${GEN_CPUS:-}" ]]; then
  # Every CPU this script may use except the servers' one (just CPU 1 on a two-CPU machine).
  GEN_CPUS="$("$PYTHON" -c 'import os, sys; s = int(sys.argv[1]); print(",".join(str(c) for c in sorted(os.sched_getaffinity(0)) if c != s) or "none")' "$SERVER_CPU")"
fi
OUT_DIR="${OUT_DIR:-/tmp/cursorshare-bench}"
SOCKJS_NODE_DIR="${SOCKJS_NODE_DIR:-/tmp/cursorshare-bench-sockjs-node}"
UPDATE_DOC="${UPDATE_DOC:-1}"
QUIET_WAIT="${QUIET_WAIT:-60}"

command -v node >/dev/null || { echo "bench.sh: node is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "bench.sh: npm is required" >&2; exit 1; }
command -v taskset >/dev/null || echo "bench.sh: taskset not found: servers will not be pinned" >&2
"$PYTHON" -c 'import psutil, httptools' 2>/dev/null || {
  echo "bench.sh: psutil and httptools are required: pip install -e '.[bench]'" >&2; exit 1; }

mkdir -p "$OUT_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

args=(
  -m benchmarks.compare
  --transports "$TRANSPORTS" --clients "$CLIENTS" --many-rooms "$MANY_ROOMS" --rate "$RATE"
  --duration "$DURATION" --warmup "$WARMUP" --observers "$OBSERVERS"
  --idle-sessions "$IDLE_SESSIONS" --quiet-wait "$QUIET_WAIT"
  --server-cpu "$SERVER_CPU" --gen-cpus "$GEN_CPUS"
  --sockjs-node-dir "$SOCKJS_NODE_DIR"
  --out "$OUT_DIR/results.json" --markdown "$OUT_DIR/results.md"
)
if [[ -n "${PROCESSES:-}" ]]; then
  args+=(--processes "$PROCESSES")
fi
if [[ "$UPDATE_DOC" == 1 ]]; then
  args+=(--update-doc docs/benchmarks.md)
fi

echo "bench.sh: $PYTHON ${args[*]} $*"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "${args[@]}" "$@"
echo "bench.sh: results in $OUT_DIR/results.json and $OUT_DIR/results.md"
