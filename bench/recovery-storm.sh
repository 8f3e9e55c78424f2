#!/usr/bin/env bash
# Recovery storm (issue 20): three gateways on Redis with history for a
# topic and every user queue; CLIENTS STOMP clients (default 5,000), each
# its own user, subscribed on node one to the topic and to its queue. Node
# one is killed, MESSAGES publications (default 50) go to the topic and to
# each queue through the other two nodes' API, and every client reconnects
# at once to those two and recovers. The gateways and Redis share core 0;
# the load tool (bench's recovery-storm) has core 1. Reported: time until
# each client recovered everything (p50, p99, all), none lost, and the
# survivors' and Redis's CPU per recovered message. Target: all recovered
# within 10 s, none lost.
#   bash bench/recovery-storm.sh     (ROUNDS=3 CLIENTS=5000 MESSAGES=50)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-5000}
MESSAGES=${MESSAGES:-50}
BASE=${BASE:-18380}
REDIS_PORT=$((BASE + 9))
KEY=bench-api-key-0123456789
SECRET=bench-jwt-secret-0123456789abcdef0123
out=${OUT:-target/recovery-storm-$(date +%Y%m%d-%H%M%S).jsonl}
cargo build --release >&2
cargo build --release -p sockjs-bench >&2
: > "$out"
scratch

node_config() { # index
  gateway_head $((BASE + $1)) $((BASE + 4 + $1)) "$KEY"
  cat <<TOML
[auth]
jwt_secret = "$SECRET"
[services.stomp]
prefix = "/stomp"
kind = "stomp"
subscribe = ["/topic/**", "/user/queue/**"]
max_sessions = 12000
[[services.stomp.history]]
destinations = ["/topic/**", "/user/queue/**"]
size = $((MESSAGES * 2))
ttl = 600
[cluster]
redis_url = "redis://127.0.0.1:$REDIS_PORT/0"
secret = "bench-cluster-secret-0123456789abcdef"
node_id = "n$1"
TOML
}

run() {
  start_redis "$REDIS_PORT"
  local node_pids=()
  for i in 1 2 3; do
    node_config "$i" > "$dir/n$i.toml"
    # GATEWAY_LOG=warn GATEWAY_ERR=FILE keeps the nodes' warnings.
    RUST_LOG=${GATEWAY_LOG:-error} taskset -c 0 target/release/sockjs-gateway --config "$dir/n$i.toml" >/dev/null 2>>"${GATEWAY_ERR:-/dev/null}" &
    pids+=($!)
    node_pids+=($!)
    wait_port $((BASE + i)) "gateway $i"
  done
  until_joined "$REDIS_PORT" 3
  local busy result
  busy=$(machine_busy)
  result=$(taskset -c 1 target/release/recovery-storm \
    --victim "ws://127.0.0.1:$((BASE + 1))/stomp" --victim-pid "${node_pids[0]}" \
    --survivors "ws://127.0.0.1:$((BASE + 2))/stomp,ws://127.0.0.1:$((BASE + 3))/stomp" \
    --api "http://127.0.0.1:$((BASE + 6)),http://127.0.0.1:$((BASE + 7))" --api-key "$KEY" \
    --secret "$SECRET" --clients "$CLIENTS" --messages "$MESSAGES" \
    --server-pids "${node_pids[1]},${node_pids[2]}" --redis-pid "$redis_pid")
  python3 - "$busy" <<PY >> "$out"
import json, sys
r = json.loads(next(l for l in """$result""".splitlines() if l.startswith("RESULT "))[7:])
r["machine_busy_pct"] = float(sys.argv[1])
print(json.dumps(r))
PY
  tail -n 1 "$out" >&2
  for p in "${node_pids[@]}" "$redis_pid"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(1 if r["lost"] or r["errors"] else 0)' "$(tail -n 1 "$out")"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS" >&2
  run
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
m = lambda k: statistics.median(r[k] for r in rows)
span = lambda k: f"{min(r[k] for r in rows):.2f}-{max(r[k] for r in rows):.2f}"
print("| clients | recovered per round | lost | p50 s | p99 s (min-max) | all s (min-max) | server CPU µs per recovered | Redis CPU µs per recovered |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {rows[0]['clients']:,} | {m('recovered'):,.0f} | {sum(r['lost'] for r in rows)} | {m('p50_s'):.2f} | "
      f"{m('p99_s'):.2f} ({span('p99_s')}) | {m('all_s'):.2f} ({span('all_s')}) | "
      f"{m('server_cpu_us_per_recovered'):.1f} | {m('redis_cpu_us_per_recovered'):.1f} |")
print(f"all recovered within {max(r['all_s'] for r in rows):.2f} s (target <= 10 s), none lost: {all(r['lost'] == 0 for r in rows)}")
PY
