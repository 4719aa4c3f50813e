# Shell helpers of the benchmark scripts, sourced from the checkout's root: the interpreter,
# one cursorshare server under load settings, and a process's CPU time.
#   source benchmarks/server.sh

# PYTHON: as given, else the checkout's venv, else python3.
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# Start `cursorshare serve` on 127.0.0.1 and a free port, pinned to CPU $1, with the session
# and connection caps lifted (every client of a load point comes from one address) and log
# level warning; SERVER_ENV adds VAR=value pairs. Sets PORT and SERVER (its pid): install a
# trap that kills it, then call wait_server_ready.
start_server() {
  PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # shellcheck disable=SC2086
  env CURSORSHARE_MAX_SESSIONS=1000000 CURSORSHARE_MAX_SESSIONS_PER_ADDRESS=1000000 \
    CURSORSHARE_MAX_CONNECTIONS=1000000 CURSORSHARE_MAX_CONNECTIONS_PER_ADDRESS=1000000 \
    CURSORSHARE_LOG_LEVEL=warning ${SERVER_ENV:-} \
    taskset -c "$1" "$PYTHON" -m cursorshare serve --host 127.0.0.1 --port "$PORT" &
  SERVER=$!
}

# Until the server started by start_server answers /ws/info (at most about 10 s).
wait_server_ready() {
  for _ in $(seq 100); do
    if "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "http://127.0.0.1:$PORT/ws/info" 2>/dev/null; then return; fi
    sleep 0.1
  done
}

cpu_seconds() {  # user+sys of a process, from /proc/PID/stat (fields 14 and 15, in ticks)
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}
