#!/usr/bin/env bash
# What forwarding costs (issue 9): two gateway nodes on one Redis, an
# xhr-polling echo session opened on node one, its sends and polls then
# sent straight to node one ("direct") or to node two, which looks the
# session up in Redis and forwards them ("forwarded"). One session
# measures the round trip (send + poll) without load; SESSIONS more show
# it under load. Every message is checked; a lost or wrong one fails the
# run. ROUNDS rounds (direct and forwarded alternate within each); the
# summary is the median and the spread (min-max) of each figure.
# Targets (issue 22): forwarded at least 40 % of direct under 50 sessions,
# forwarded p99 under 1 ms and added p50 under 0.2 ms for one session.
#   bash bench/cluster-forward.sh   (ROUNDS=3 DURATION=10 SESSIONS=50 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SESSIONS=${SESSIONS:-50}
REDIS_PORT=${REDIS_PORT:-16390}
cargo build --release >&2
cargo build --release -p sockjs-bench --bin sockjs-bench >&2
scratch
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >/dev/null & pids+=($!)
wait_port "$REDIS_PORT" redis-server
for n in 1 2; do
  cat >"$dir/n$n.toml" <<TOML
listen = "127.0.0.1:1808$n"
access_log = false
[cluster]
redis_url = "redis://127.0.0.1:$REDIS_PORT/0"
secret = "bench-cluster-secret-0123456789abcdef"
node_id = "n$n"
presence_interval = 0.5
[services.echo]
prefix = "/echo"
kind = "echo"
TOML
  # Both nodes share core 0, the load tool has core 1.
  RUST_LOG=warn taskset -c 0 target/release/sockjs-gateway --config "$dir/n$n.toml" >/dev/null & pids+=($!)
  wait_port "1808$n" "node n$n"
done
# Both nodes must be in Redis before a forward can find its owner.
for _ in $(seq 100); do
  [ "$(redis-cli -p "$REDIS_PORT" EXISTS sockjs-gateway:node:n1 sockjs-gateway:node:n2)" = 2 ] && break
  sleep 0.1
done
run() { # label, sessions, extra args...
  local label=$1 sessions=$2; shift 2
  taskset -c 1 target/release/sockjs-bench xhr-polling --url http://127.0.0.1:18081/echo \
    --sessions "$sessions" --duration "$DURATION" --warmup 1 --label "$label" "$@" |
    sed -n 's/^RESULT //p'
}
echo "machine busy before: $(machine_busy)%" >&2
results=()
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r of $ROUNDS" >&2
  for sessions in 1 "$SESSIONS"; do
    direct=$(run direct "$sessions")
    forwarded=$(run forwarded "$sessions" --via http://127.0.0.1:18082/echo)
    results+=("{\"sessions\": $sessions, \"direct\": $direct, \"forwarded\": $forwarded}")
  done
done
printf '%s\n' "${results[@]}" | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
for r in rows:
    for side in ("direct", "forwarded"):
        if r[side]["lost"] or r[side]["errors"]:
            sys.exit(f"lost or failed messages: {r}")
def fig(values, digits):
    values = sorted(values)
    return {"median": round(statistics.median(values), digits),
            "min": round(values[0], digits), "max": round(values[-1], digits)}
for n in sorted({r["sessions"] for r in rows}):
    these = [r for r in rows if r["sessions"] == n]
    d = [r["direct"] for r in these]
    f = [r["forwarded"] for r in these]
    print(json.dumps({
        "sessions": n, "rounds": len(these),
        "direct_msgs_per_s": fig([x["msgs_per_s"] for x in d], 0),
        "forwarded_msgs_per_s": fig([x["msgs_per_s"] for x in f], 0),
        "forwarded_share": fig([y["msgs_per_s"] / x["msgs_per_s"] for x, y in zip(d, f)], 3),
        "direct_p50_ms": fig([x["p50_ms"] for x in d], 3),
        "forwarded_p50_ms": fig([x["p50_ms"] for x in f], 3),
        "added_p50_ms": fig([y["p50_ms"] - x["p50_ms"] for x, y in zip(d, f)], 3),
        "direct_p99_ms": fig([x["p99_ms"] for x in d], 3),
        "forwarded_p99_ms": fig([x["p99_ms"] for x in f], 3),
    }))
'
