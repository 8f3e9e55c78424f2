#!/usr/bin/env bash
# The official SockJS 0.3.3 protocol suite (sockjs/sockjs-protocol, ported
# to Python 3 in ../shared/conformance) against the release binary serving
# config/protocol-test.toml on a free loopback port. Passes only when the
# suite prints exactly the expected count with nothing failed.
#   cargo build --release && bash tests/e2e/conformance.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin="${GATEWAY_BIN:-$root/target/release/sockjs-gateway}"
suite="${CONFORMANCE_DIR:-$root/../shared/conformance}"
# The 68 tests of sockjs-protocol.py less the Hixie-76 test_haproxy, plus
# the one of http-quirks.py.
expected="conformance: 68 passed, 0 failed"

[ -x "$suite/run.sh" ] || { echo "no suite at $suite (set CONFORMANCE_DIR)" >&2; exit 1; }
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$bin" --config "$root/config/protocol-test.toml" --listen 127.0.0.1:0 > "$work/out" 2> "$work/err" &
pid=$!
url=
for _ in $(seq 1 100); do
  url=$(sed -n 's|.*\(http://127\.0\.0\.1:[0-9]*\).*|\1|p' "$work/out" | head -1)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; echo "the gateway exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the gateway did not start" >&2; exit 1; }

out=$(bash "$suite/run.sh" "$url" 2>&1) || true
echo "$out"
last=$(echo "$out" | tail -1)
if [ "$last" != "$expected" ]; then
  echo "FAIL: expected '$expected', got '$last'" >&2
  exit 1
fi
