#!/usr/bin/env bash
# One load point of benchmarks/sockjs_client_load/load.mjs (sockjs-client 1.6.1 in node)
# against a fresh cursorshare server: the server pinned to SERVER_CPU (0) with the settings
# benchmarks/profile.sh gives it (the session and connection caps lifted, log level warning),
# the generator pinned to GEN_CPU (1), then the server stopped.
#
#   benchmarks/sockjs_client_load/run.sh --transport xhr-streaming --clients 1000 --rooms 200
#   PARTS=2 benchmarks/sockjs_client_load/run.sh ...   # two node processes, one clock
#
# Every argument goes to load.mjs (--transport --clients --rooms --rate --duration --warmup
# --drain --observers); --url is set here. Prints each load.mjs process's JSON line, then one
# JSON line with the server's CPU seconds over the whole run (session setup included).
# Environment: SERVER_CPU (0), GEN_CPU (1), PARTS (1), SERVER_ENV (extra VAR=value pairs for
# the server), PYTHON.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
source benchmarks/server.sh  # PYTHON, start_server, wait_server_ready, cpu_seconds
SERVER_CPU="${SERVER_CPU:-0}"
GEN_CPU="${GEN_CPU:-1}"
PARTS="${PARTS:-1}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The pinned client, installed once (again only when the lock file changed).
if [[ ! -f "$HERE/node_modules/.package-lock.json" || "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

start_server "$SERVER_CPU"
GENS=()
cleanup() {
  for pid in "${GENS[@]}"; do kill "$pid" 2>/dev/null || true; done
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT

wait_server_ready

machine_busy_seconds() {  # every CPU's non-idle time, from /proc/stat (idle and iowait excluded)
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

before="$(cpu_seconds "$SERVER")"
machine_before="$(machine_busy_seconds)"
run_start="$(date +%s.%N)"
start_args=()
if ((PARTS > 1)); then
  # One clock for every process: the schedule starts when the slowest could have opened its
  # sessions (load.mjs opens them before it waits for --start).
  start_args=(--start "$(node -e 'console.log(Math.round(Date.now() + 20000))')")
fi
for ((p = 0; p < PARTS; p++)); do
  NODE_ENV=production taskset -c "$GEN_CPU" node "$HERE/load.mjs" \
    --url "http://127.0.0.1:$PORT/ws" --server-pid "$SERVER" --part "$p/$PARTS" "${start_args[@]}" "$@" &
  GENS+=($!)
done
status=0
for pid in "${GENS[@]}"; do wait "$pid" || status=$?; done
GENS=()
after="$(cpu_seconds "$SERVER")"
machine_after="$(machine_busy_seconds)"
run_end="$(date +%s.%N)"
# The machine's busy time over the run beside the server's: what is left is the generator's and
# every other program's (other helpers' tests on a shared machine show up here).
awk -v a="$after" -v b="$before" -v ma="$machine_after" -v mb="$machine_before" \
    -v t1="$run_end" -v t0="$run_start" 'BEGIN {
  printf "{\"run_s\": %.1f, \"server_cpu_seconds\": %.2f, \"machine_busy_seconds\": %.2f, \"machine_busy_percent_of_all_cpus\": %.1f}\n",
    t1 - t0, a - b, ma - mb, 100 * (ma - mb) / (t1 - t0) / '"$(nproc)"' }'
exit "$status"
