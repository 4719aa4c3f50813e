#!/usr/bin/env bash
# One load point against a fresh cursorshare server pinned to one CPU, with the server's own
# CPU time per delivered update and, optionally, a py-spy profile of the server.
#
#   benchmarks/profile.sh                                # xhr-polling, 1000 clients, 200 rooms
#   TRANSPORT=xhr-streaming CLIENTS=200 ROOMS=1 benchmarks/profile.sh
#   PROFILE=1 benchmarks/profile.sh                      # + py-spy record of the server
#   SERVER_ENV="CURSORSHARE_TICK_MS=30" benchmarks/profile.sh   # extra server settings
#
# Prints the load client's report, then one line with the server's CPU seconds (user+sys from
# /proc, over the whole run including session setup) and what they cost per move sent and per
# message delivered. Environment: TRANSPORT (xhr-polling), CLIENTS (1000), ROOMS (200), RATE
# (30), DURATION (10), WARMUP (3), OBSERVERS (ROOMS), SERVER_CPU (0), GEN_CPUS (every other
# CPU), PROFILE (0; 1 writes a py-spy flame graph and raw samples to OUT_DIR), OUT_DIR
# (/tmp/cursorshare-profile), SERVER_ENV (extra VAR=value pairs for the server), PYTHON.
#
# For A/B comparisons on a shared machine, run the same command on both commits back to back
# and compare the CPU per delivered update, which the other programs of the machine disturb far
# less than the latency does. py-spy is `pip install py-spy`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source benchmarks/server.sh  # PYTHON, start_server, wait_server_ready, cpu_seconds
TRANSPORT="${TRANSPORT:-xhr-polling}"
CLIENTS="${CLIENTS:-1000}"
ROOMS="${ROOMS:-200}"
RATE="${RATE:-30}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
OBSERVERS="${OBSERVERS:-$ROOMS}"
SERVER_CPU="${SERVER_CPU:-0}"
if [[ -z "${GEN_CPUS:-}" ]]; then
  GEN_CPUS="$("$PYTHON" -c 'import os, sys; s = int(sys.argv[1]); print(",".join(str(c) for c in sorted(os.sched_getaffinity(0)) if c != s))' "$SERVER_CPU")"
fi
PROFILE="${PROFILE:-0}"
OUT_DIR="${OUT_DIR:-/tmp/cursorshare-profile}"
mkdir -p "$OUT_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_server "$SERVER_CPU"
SPY=""
SAMPLER=""
cleanup() {
  [[ -n "$SPY" ]] && kill "$SPY" 2>/dev/null || true
  [[ -n "$SAMPLER" ]] && kill "$SAMPLER" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT

wait_server_ready

if [[ "$PROFILE" == 1 ]]; then
  command -v py-spy >/dev/null || PATH="$(dirname "$PYTHON"):$PATH"
  py-spy record --pid "$SERVER" --rate 200 --format raw --output "$OUT_DIR/server.raw" \
    --duration "$((WARMUP + DURATION + 2))" >/dev/null 2>&1 &
  SPY=$!
fi

metrics() {  # the server's counters, as one JSON object
  "$PYTHON" -c 'import json, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
print(json.dumps({k: float(v) for k, _, v in (l.partition(" ") for l in text.splitlines())
                  if k.startswith("cursorshare_") and "{" not in k}))' "http://127.0.0.1:$PORT/metrics"
}

# The hub's tick, sampled once a second while the load runs (it adapts to the CPU load).
(
  while sleep 1; do
    "$PYTHON" -c 'import sys, urllib.request
for line in urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines():
    if line.startswith("cursorshare_hub_tick_seconds "): print(line.split()[1])' \
      "http://127.0.0.1:$PORT/metrics" 2>/dev/null || true
  done
) >"$OUT_DIR/ticks.txt" &
SAMPLER=$!
metrics_before="$(metrics)"
before="$(cpu_seconds "$SERVER")"
"$PYTHON" -m cursorshare bench --url "http://127.0.0.1:$PORT/ws" --transport "$TRANSPORT" \
  --clients "$CLIENTS" --rooms "$ROOMS" --rate "$RATE" --duration "$DURATION" \
  --warmup "$WARMUP" --observers "$OBSERVERS" --pin-cpu "$GEN_CPUS" --server-pid "$SERVER" \
  --json >"$OUT_DIR/result.json"
after="$(cpu_seconds "$SERVER")"
metrics_after="$(metrics)"
kill "$SAMPLER" 2>/dev/null || true

"$PYTHON" - "$OUT_DIR/result.json" "$before" "$after" "$DURATION" "$metrics_before" "$metrics_after" "$OUT_DIR/ticks.txt" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
m0, m1 = json.loads(sys.argv[5]), json.loads(sys.argv[6])
def grew(name):
    return m1.get(f"cursorshare_{name}_total", 0) - m0.get(f"cursorshare_{name}_total", 0)
cpu = float(sys.argv[3]) - float(sys.argv[2])
window = float(sys.argv[4])
keys = ("connected", "sent_per_s", "delivered_per_s", "coverage", "latency_p50_ms",
        "latency_p99_ms", "room_coverage_min", "room_p99_max_ms", "skipped", "reopens",
        "server_cpu_percent", "gen_cpu_percent", "other_cpu_percent", "errors")
print({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items() if k in keys})
for warning in result.get("warnings", []):
    print("warning:", warning)
sent = result.get("sent_per_s", 0) * window
delivered = result.get("delivered_per_s", 0) * window
cpu_window = result.get("server_cpu_percent", 0) / 100 * window
print(f"server CPU: {cpu:.2f} s over the run, {cpu_window:.2f} s in the window; "
      f"per 1000 moves sent {1000 * cpu_window / max(sent, 1):.3f} s, "
      f"per 1000 deliveries {1000 * cpu_window / max(delivered, 1):.4f} s; "
      f"receiving requests per client per s {result.get('reopens', 0) / window / max(result['connected'], 1):.1f}")
moves_in, payloads = grew("messages_in"), grew("hub_payloads_out")
ticks = sorted(1000 * float(t) for t in open(sys.argv[7]).read().split())
if ticks:
    print(f"hub tick over the run (sampled each second): min {ticks[0]:.0f} ms, "
          f"median {ticks[len(ticks) // 2]:.0f} ms, max {ticks[-1]:.0f} ms")
print(f"server counters over the run: {moves_in:.0f} moves in, {payloads:.0f} payloads out "
      f"({payloads / max(moves_in, 1):.2f} per move in); "
      f"server CPU per 1000 moves in {1000 * cpu / max(moves_in, 1):.3f} s, "
      f"per 1000 payloads out {1000 * cpu / max(payloads, 1):.3f} s")
EOF

if [[ -n "$SPY" ]]; then
  wait "$SPY" || true
  SPY=""
  echo "py-spy samples in $OUT_DIR/server.raw (benchmarks/profile_summary.py summarizes them)"
fi
