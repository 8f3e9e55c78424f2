#!/usr/bin/env bash
# Memory after load (issue 10): a gateway is flooded with 2 x FLOOD idle
# WebSocket sessions (default 9000 each, from 127.0.0.2 and 127.0.0.3),
# held HOLD seconds (default 5), then dropped; its RSS is read before, at
# the peak, and 0-60 s after. Target: within 60 s, RSS is back within
# 2 x the pre-flood figure + 16 MB. The same run with `trim_memory = false`
# shows what glibc's malloc keeps without it. Exits non-zero if the
# default misses the target.
#   bash bench/memory-after-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FLOOD=${FLOOD:-9000}
HOLD=${HOLD:-5}
PORT=${PORT:-18083}
cargo build --release >&2
cargo build --release -p sockjs-bench --bin fd-flood >&2
addr=127.0.0.1:$PORT
fail=0
for trim in true false; do
  RUST_LOG=warn SOCKJS_GATEWAY__ACCESS_LOG=false SOCKJS_GATEWAY__TRIM_MEMORY=$trim \
    target/release/sockjs-gateway --listen "$addr" --api-listen 127.0.0.1:0 >/dev/null 2>&1 & gw=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  rss() { awk '/VmRSS/{print int($2/1024)}' "/proc/$gw/status"; }
  pre=$(rss)
  target/release/fd-flood hold --from 127.0.0.2 --count "$FLOOD" --hold "$HOLD" "$addr" >/dev/null & a=$!
  target/release/fd-flood hold --from 127.0.0.3 --count "$FLOOD" --hold "$HOLD" "$addr" >/dev/null & b=$!
  peak=0
  while kill -0 "$a" 2>/dev/null || kill -0 "$b" 2>/dev/null; do
    r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.5
  done
  wait "$a" "$b" || true
  start=$(date +%s) after=""
  for t in 0 5 10 20 30 60; do
    while [ $(( $(date +%s) - start )) -lt "$t" ]; do sleep 0.2; done
    after="$after\"${t}s\":$(rss),"
  done
  kill "$gw"; wait "$gw" 2>/dev/null || true
  last=$(echo "$after" | sed 's/.*"60s":\([0-9]*\),$/\1/')
  target_mb=$(( 2 * pre + 16 ))
  ok=true; [ "$last" -le "$target_mb" ] || ok=false
  echo "{\"trim_memory\":$trim,\"sessions\":$(( 2 * FLOOD )),\"pre_mb\":$pre,\"peak_mb\":$peak,\"after_mb\":{${after%,}},\"target_mb\":$target_mb,\"met\":$ok}"
  if [ "$trim" = true ] && [ "$ok" = false ]; then fail=1; fi
done
exit $fail
