#!/usr/bin/env bash
# Soak: one gateway under mixed transports at once for DURATION seconds
# (default 600): SockJS WebSocket echo (50 sessions, 4 in flight each),
# xhr-polling, xhr-streaming (across response_limit rollovers) and
# eventsource echo (20 sessions each), and broadcast bursts to 200 fresh
# sessions one after another (session churn). Every tool checks order, loss
# and duplicates; the gateway's RSS and open descriptors are sampled every
# 30 s. Prints one JSON line per tool, the samples, and a summary; exits
# non-zero on any loss, duplicate, error or failed tool.
#   bash bench/soak.sh                 (10 minutes)
#   DURATION=30 bash bench/soak.sh     (a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
PORT=${PORT:-8096}
cargo build --release >&2
cargo build --release -p sockjs-bench >&2
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
RUST_LOG=warn target/release/sockjs-gateway --config bench/gateway.toml --listen "127.0.0.1:$PORT" \
  >/dev/null 2>"$dir/gw.err" & gw=$!; pids+=("$gw")
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$PORT
bench=target/release/sockjs-bench
sample() { echo "{\"t\":$1,\"rss_mb\":$(awk '/VmRSS/{print int($2/1024)}' "/proc/$gw/status"),\"fds\":$(ls "/proc/$gw/fd" | wc -l)}"; }
sample 0 > "$dir/samples"
tools=()
start_tool() { # name args...
  local name=$1; shift
  "$bench" "$@" --warmup 0 >"$dir/$name.out" 2>"$dir/$name.err" & pids+=($!); tools+=("$name:$!")
}
start_tool ws-echo ws-echo --url "$base/echo" --sessions 50 --inflight 4 --duration "$DURATION"
start_tool xhr-polling xhr-polling --url "$base/echo" --sessions 20 --duration "$DURATION"
start_tool xhr-streaming xhr-streaming --url "$base/echo" --sessions 20 --duration "$DURATION"
start_tool eventsource eventsource --url "$base/echo" --sessions 20 --duration "$DURATION"
(
  end=$(( $(date +%s) + DURATION ))
  n=0
  while [ "$(date +%s)" -lt "$end" ]; do
    "$bench" broadcast --url "$base/broadcast" --sessions 200 --messages 50 >>"$dir/broadcast.out" 2>>"$dir/broadcast.err" \
      || echo "RESULT {\"scenario\":\"broadcast\",\"failed\":true}" >>"$dir/broadcast.out"
    n=$((n + 1))
  done
) & pids+=($!); bpid=$!
t=0
while kill -0 "$bpid" 2>/dev/null; do
  sleep 1; t=$((t + 1))
  [ $((t % 30)) -eq 0 ] && sample "$t" >> "$dir/samples"
done
fail=0
for entry in "${tools[@]}"; do
  name=${entry%%:*} pid=${entry#*:}
  wait "$pid" || fail=1
  sed -n 's/^RESULT //p' "$dir/$name.out"
done
wait "$bpid" || true
sample "$t" >> "$dir/samples"
cat "$dir/samples"
python3 - "$dir" "$fail" <<'PY'
import json, sys, glob, os
d, fail = sys.argv[1], int(sys.argv[2])
results = []
for f in glob.glob(os.path.join(d, "*.out")):
    for line in open(f):
        if line.startswith("RESULT "):
            results.append(json.loads(line[7:]))
bursts = [r for r in results if r.get("scenario") == "broadcast"]
others = [r for r in results if r.get("scenario") != "broadcast"]
lost = sum(r.get("lost", 0) for r in results)
errors = sum(r.get("errors", 0) for r in results)
failed = sum(1 for r in results if r.get("failed"))
samples = [json.loads(l) for l in open(os.path.join(d, "samples"))]
summary = {
    "soak_seconds": samples[-1]["t"],
    "messages": sum(r.get("messages", 0) for r in results),
    "broadcast_bursts": len(bursts),
    "lost": lost, "errors": errors, "failed_tools": failed + fail,
    "rss_mb": [samples[0]["rss_mb"], max(s["rss_mb"] for s in samples), samples[-1]["rss_mb"]],
    "fds": [samples[0]["fds"], max(s["fds"] for s in samples), samples[-1]["fds"]],
}
print(json.dumps(summary))
sys.exit(1 if lost or errors or failed or fail or len(others) != 4 else 0)
PY
