#!/usr/bin/env bash
# Issue 10's fd-limit scenario at full scale, as separate processes (each
# has its own open-file limit): a gateway, 100 sessions from 127.0.0.1 that
# echo every second, then two floods of WebSocket sessions from 127.0.0.2
# and 127.0.0.3 (FLOOD each, default 10000) held open; then /healthz,
# /echo/info and a new session from 127.0.0.1. Prints the outcomes as JSON
# lines and exits non-zero if an old session died, a probe hung or failed,
# or the gateway logged "Too many open files".
#   bash bench/fd-flood.sh        (needs an open-file limit of ~20000)
set -euo pipefail
cd "$(dirname "$0")/.."
FLOOD=${FLOOD:-10000}
PORT=${PORT:-18080}
cargo build --release >&2
cargo build --release -p sockjs-bench --bin fd-flood >&2
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
addr=127.0.0.1:$PORT
echo "{\"open_file_limit\":$(ulimit -n)}"
RUST_LOG=info SOCKJS_GATEWAY__ACCESS_LOG=false target/release/sockjs-gateway --listen "$addr" --api-listen 127.0.0.1:0 \
  >"$dir/gw.out" 2>"$dir/gw.err" & pids+=($!)
for _ in $(seq 50); do grep -q listening "$dir/gw.out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$dir/gw.out" || { cat "$dir/gw.err" >&2; echo "the gateway did not start" >&2; exit 1; }
# Waits for a load process's first line; says why not if it died first.
first_line() { # file, pid
  for _ in $(seq 600); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "$1: its process exited without a word" >&2; exit 1; }
    sleep 0.2
  done
  echo "$1: nothing in 120 s" >&2
  exit 1
}
grep "open files\|max_sessions" "$dir/gw.err" | sed 's/^.*] //' | while read -r l; do echo "{\"gateway\":\"$l\"}"; done
target/release/fd-flood old --from 127.0.0.1 --count 100 --hold 3600 "$addr" >"$dir/old.out" & pids+=($!)
first_line "$dir/old.out" $!
target/release/fd-flood hold --from 127.0.0.2 --count "$FLOOD" "$addr" >"$dir/a.out" & pids+=($!)
a=$!
target/release/fd-flood hold --from 127.0.0.3 --count "$FLOOD" "$addr" >"$dir/b.out" & pids+=($!)
first_line "$dir/a.out" $a
first_line "$dir/b.out" $!
cat "$dir/a.out" "$dir/b.out"
fail=0
for _ in 1 2 3; do
  target/release/fd-flood probe --from 127.0.0.1 "$addr" | tee "$dir/probe.out"
  grep -q '"what":"/healthz","result":"status 200"' "$dir/probe.out" || fail=1
  grep -q '"what":"/echo/info","result":"status 200"' "$dir/probe.out" || fail=1
  grep -q '"what":"session","result":"timed out"' "$dir/probe.out" && fail=1
  sleep 1
done
sleep 2
tail -1 "$dir/old.out"
tail -1 "$dir/old.out" | grep -q '"alive":100,' || fail=1
emfile=$(grep -c "Too many open files" "$dir/gw.err" || true)
echo "{\"too_many_open_files_logged\":$emfile}"
[ "$emfile" = 0 ] || fail=1
rm -rf "$dir"
exit $fail
