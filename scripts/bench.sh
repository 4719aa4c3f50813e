#!/usr/bin/env bash
# The benchmark table of docs/benchmarks.md: cursorshare against the sockjs-node tutorial server.
#
#   scripts/bench.sh                      # the full table (15+ minutes), updates the doc
#   DURATION=5 CLIENTS=50,200 scripts/bench.sh          # a shorter run
#   UPDATE_DOC=0 scripts/bench.sh --servers cursorshare # extra args go to `bench compare`
#
# Environment: DURATION (measured s per point, 15), WARMUP (3), RATE (30), CLIENTS (50,200,500),
# TRANSPORTS (all four), OBSERVERS (50), IDLE_SESSIONS (5000, 0 to skip), OUT_DIR (where the
# JSON and markdown go, /tmp/cursorshare-bench), SOCKJS_NODE_DIR (scratch folder for the
# sockjs-node server and its node_modules, /tmp/cursorshare-bench-sockjs-node), UPDATE_DOC (1:
# rewrite the results region of docs/benchmarks.md), QUIET_WAIT (s to wait before each point
# for other programs to go quiet, 60), PYTHON (.venv/bin/python if present).
#
# Every server runs on 127.0.0.1 only, pinned to CPU 0; the load generator pins itself to CPU 1.
# Run it on an otherwise idle machine: the report warns when other processes took CPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DURATION="${DURATION:-15}"
WARMUP="${WARMUP:-3}"
RATE="${RATE:-30}"
CLIENTS="${CLIENTS:-50,200,500}"
TRANSPORTS="${TRANSPORTS:-websocket,xhr-streaming,eventsource,xhr-polling}"
OBSERVERS="${OBSERVERS:-50}"
IDLE_SESSIONS="${IDLE_SESSIONS:-5000}"
OUT_DIR="${OUT_DIR:-/tmp/cursorshare-bench}"
SOCKJS_NODE_DIR="${SOCKJS_NODE_DIR:-/tmp/cursorshare-bench-sockjs-node}"
UPDATE_DOC="${UPDATE_DOC:-1}"
QUIET_WAIT="${QUIET_WAIT:-60}"

command -v node >/dev/null || { echo "bench.sh: node is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "bench.sh: npm is required" >&2; exit 1; }
command -v taskset >/dev/null || echo "bench.sh: taskset not found: servers will not be pinned" >&2

# The sockjs-node tutorial server, installed from its lock file into a scratch folder.
mkdir -p "$SOCKJS_NODE_DIR" "$OUT_DIR"
cp bench/sockjs-node/package.json bench/sockjs-node/package-lock.json \
   bench/sockjs-node/server.js "$SOCKJS_NODE_DIR/"
(cd "$SOCKJS_NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

args=(
  -m cursorshare.bench compare
  --transports "$TRANSPORTS" --clients "$CLIENTS" --rate "$RATE"
  --duration "$DURATION" --warmup "$WARMUP" --observers "$OBSERVERS"
  --idle-sessions "$IDLE_SESSIONS" --quiet-wait "$QUIET_WAIT"
  --sockjs-node-dir "$SOCKJS_NODE_DIR"
  --out "$OUT_DIR/results.json" --markdown "$OUT_DIR/results.md"
)
if [[ "$UPDATE_DOC" == 1 ]]; then
  args+=(--update-doc docs/benchmarks.md)
fi

echo "bench.sh: $PYTHON ${args[*]} $*"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "${args[@]}" "$@"
echo "bench.sh: results in $OUT_DIR/results.json and $OUT_DIR/results.md"
