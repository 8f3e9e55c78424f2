#!/usr/bin/env bash
# What forwarding costs (issue 9): two gateway nodes on one Redis, an
# xhr-polling echo session opened on node one, its sends and polls then
# sent straight to node one ("direct") or to node two, which looks the
# session up in Redis and forwards them ("forwarded"). One session
# measures the round trip (send + poll) without load; SESSIONS more show
# it under load. Every message is checked; a lost or wrong one fails the
# run. Target: forwarding adds under 1 ms at p50.
#   bash bench/cluster-forward.sh        (DURATION=10 SESSIONS=50 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-10}
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
for sessions in 1 "$SESSIONS"; do
  direct=$(run direct "$sessions")
  forwarded=$(run forwarded "$sessions" --via http://127.0.0.1:18082/echo)
  python3 - "$direct" "$forwarded" "$sessions" <<'PY'
import json, sys
d, f, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
added = f["p50_ms"] - d["p50_ms"]
print(json.dumps({"sessions": int(n),
                  "direct": {k: d[k] for k in ("msgs_per_s", "p50_ms", "p99_ms", "lost", "errors")},
                  "forwarded": {k: f[k] for k in ("msgs_per_s", "p50_ms", "p99_ms", "lost", "errors")},
                  "added_p50_ms": round(added, 3)}))
PY
done
