#!/usr/bin/env bash
# sockjs-client's own browser suite (karma, headless Chromium) against our server or the
# sockjs-node reference, one result line per test for comparing the two (see docs/conformance.md).
#
#   tests/interop/run-sockjs-client-browser-suite.sh CHECKOUT [ours|reference] [RESULTS]
#
# CHECKOUT is sockjs-client at tag v1.6.1 (git archive v1.6.1 | tar -x -C CHECKOUT); its npm
# packages are installed and its test bundle built there on first use. Nothing of it is
# copied into this repository.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
checkout="$(cd "${1:?usage: $0 CHECKOUT [ours|reference] [RESULTS]}" && pwd)"
target="${2:-ours}"
results="$(realpath -m "${3:-$checkout/browser-suite-$target.txt}")"
server_port="${SUITE_SERVER_PORT:-18089}"

cd "$checkout"
[[ -d node_modules ]] || npm ci --no-audit --no-fund --loglevel=error
[[ -f tests/html/lib/sockjs.js ]] || npx gulp testbundle >/dev/null
cp "$here/sockjs-client-karma.cjs" karma.outside.cjs

server_pid=""
trap '[[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid"; true' EXIT
if [[ "$target" == ours ]]; then
  # The suite reaches the server through karma's proxy at /sockjs-test/, as its own test
  # server is configured: the iframe pages must load the client from there.
  log="$(mktemp)"
  "$repo/.venv/bin/python" -m cursorshare.sockjs.conformance --host 127.0.0.1 \
    --port "$server_port" --static tests/html --sockjs-url /sockjs-test/lib/sockjs.js >"$log" 2>&1 &
  server_pid=$!
  until grep -q "conformance server on" "$log"; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.2
  done
fi

CHROME_BIN="${CHROME_BIN:-/usr/bin/chromium}" SUITE_TARGET="$target" \
  SUITE_SERVER_PORT="$server_port" SUITE_RESULTS="$results" \
  npx karma start karma.outside.cjs 2>&1 | grep -E "^suite:|ERROR" || true
echo "per-test results: $results"
grep -q . "$results"
! grep -q "^FAIL" "$results"
