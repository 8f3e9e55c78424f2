#!/usr/bin/env bash
# Fan-out across nodes (issue 9): publications from the HTTP API to
# SUBSCRIBERS STOMP clients (default 3,000), on one gateway against three
# gateways clustered on Redis with the subscribers spread over them, in one
# run. Every process under test (the gateways and Redis) shares core 0,
# where more nodes cannot mean more CPU; the load tool (stomp-fanout) has
# core 1. Burst (every message published at once; throughput) and paced
# (the next once all have the previous one; latency). Every delivery is
# checked (order, none lost or twice). Reported: deliveries/s, p99, and the
# CPU per delivered message over all those processes, with Redis's share.
# Target: three nodes at most 1.3x the CPU per delivery of one. Publishes
# ask no count of deliveries ("count": false): what is measured is the
# fan-out; COUNT=1 has every node count its deliveries before each answer
# (the API's default), which makes a one-at-a-time publisher wait for the
# slowest node each time.
#
# Redis Cluster (issue 32): the three nodes again on a Redis Cluster of three
# masters (no replicas, core 0 too): one destination is one shard's, so
# what is measured is a shard's cost per fan-out next to one Redis's.
#   bash bench/cluster-fanout.sh      (SUBSCRIBERS=3000 MESSAGES=100 ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SUBSCRIBERS=${SUBSCRIBERS:-3000}
MESSAGES=${MESSAGES:-100}
ROUNDS=${ROUNDS:-3}
BASE=${BASE:-18180}
REDIS_PORT=$((BASE + 9))
SHARD_PORT=$((BASE + 20))
KEY=bench-api-key-0123456789
out=${OUT:-target/cluster-fanout-$(date +%Y%m%d-%H%M%S).jsonl}
cargo build --release >&2
cargo build --release -p sockjs-bench >&2
: > "$out"
scratch

node_config() { # index, cluster? (yes, no or shards)
  gateway_head $((BASE + $1)) $((BASE + 4 + $1)) "$KEY"
  cat <<TOML
[auth]
anonymous = true
[services.stomp]
prefix = "/stomp"
kind = "stomp"
max_sessions = 25000
TOML
  if [ "$2" = yes ]; then
    printf '[cluster]\nredis_url = "redis://127.0.0.1:%s/0"\nsecret = "bench-cluster-secret-0123456789abcdef"\nnode_id = "n%s"\n' "$REDIS_PORT" "$1"
  elif [ "$2" = shards ]; then
    printf '[cluster]\nredis_cluster_nodes = ["redis://127.0.0.1:%s"]\n' "$SHARD_PORT"
    printf 'secret = "bench-cluster-secret-0123456789abcdef"\nnode_id = "n%s"\n' "$1"
  fi
}

start_node() { # index, cluster?
  node_config "$1" "$2" > "$dir/n$1.toml"
  RUST_LOG=warn taskset -c 0 target/release/sockjs-gateway --config "$dir/n$1.toml" >/dev/null &
  pids+=($!)
  node_pids+=($!)
  wait_port $((BASE + $1)) "gateway $1"
}

run() { # setup, mode, nodes, shards?
  local setup=$1 mode=$2 nodes=$3 shards=${4:-no} urls="" server cluster=no
  node_pids=()
  shard_pids=()
  local redis_pid=""
  if [ "$shards" = yes ]; then
    cluster=shards
    start_shards "$SHARD_PORT"
  elif [ "$nodes" -gt 1 ]; then
    cluster=yes
    start_redis "$REDIS_PORT"
  fi
  for i in $(seq 1 "$nodes"); do
    start_node "$i" "$cluster"
    urls="$urls${urls:+,}ws://127.0.0.1:$((BASE + i))/stomp/websocket"
  done
  if [ "$shards" = yes ]; then
    until_joined "$SHARD_PORT" "$nodes"
  elif [ "$nodes" -gt 1 ]; then
    until_joined "$REDIS_PORT" "$nodes"
  fi
  # Redis's processes: the one, or the cluster's masters.
  local redis_all
  redis_all=$(IFS=,; echo "${redis_pid}${shard_pids[*]}")
  server=$(IFS=,; echo "${node_pids[*]}${redis_all:+,$redis_all}")
  local busy
  busy=$(machine_busy)
  local result
  result=$(taskset -c 1 target/release/stomp-fanout --url "$urls" --api "http://127.0.0.1:$((BASE + 5))" \
    ${COUNT:+--count} \
    --api-key "$KEY" --subscribers "$SUBSCRIBERS" --messages "$MESSAGES" --mode "$mode" \
    --server-pid "$server" --label "$setup")
  echo "$result" | grep -v '^RESULT\|^CPU' >&2 || true
  python3 - "$setup" "$mode" "$busy" "$redis_all" <<PY >> "$out"
import json, sys
setup, mode, busy, redis = sys.argv[1:5]
redis = [p for p in redis.split(",") if p]
lines = """$result""".splitlines()
r = json.loads(next(l for l in lines if l.startswith("RESULT "))[7:])
cpu = next((json.loads(l[4:]) for l in lines if l.startswith("CPU ")), {})
deliveries = r["msgs_per_s"] * r["seconds"]
server_seconds = r["server_cpu_pct"] / 100 * r["seconds"]
row = {"setup": setup, "mode": mode, "subscribers": r["sessions"], "deliveries_per_s": r["msgs_per_s"],
       "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "lost": r["lost"], "errors": r["errors"],
       "cpu_us_per_delivery": 1e6 * server_seconds / deliveries if deliveries else None,
       "redis_share": sum(cpu.get(p) or 0 for p in redis) / server_seconds if redis and server_seconds else None,
       "busiest_redis_share": max(cpu.get(p) or 0 for p in redis) / server_seconds if redis and server_seconds else None,
       "machine_busy_pct": float(busy)}
print(json.dumps(row))
PY
  tail -n 1 "$out" >&2
  for p in "${node_pids[@]}" $redis_pid "${shard_pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(1 if r["lost"] or r["errors"] else 0)' "$(tail -n 1 "$out")"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS" >&2
  for mode in burst paced; do
    run one-node "$mode" 1
    run three-nodes "$mode" 3
    run redis-cluster "$mode" 3 yes
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| mode | setup | deliveries/s | p99 ms | CPU µs per delivery | Redis share |")
print("|---|---|---|---|---|---|")
med = {}
for mode in ("burst", "paced"):
    for setup in ("one-node", "three-nodes", "redis-cluster"):
        rs = [r for r in rows if r["mode"] == mode and r["setup"] == setup]
        m = lambda k: statistics.median(r[k] for r in rs)
        med[mode, setup] = m("cpu_us_per_delivery")
        share = [r["redis_share"] for r in rs if r["redis_share"] is not None]
        print(f"| {mode} | {setup} | {m('deliveries_per_s'):,.0f} | {m('p99_ms'):.1f} | {med[mode, setup]:.2f} | "
              f"{(f'{100 * statistics.median(share):.1f} %') if share else '-'} |")
for mode in ("burst", "paced"):
    ratio = med[mode, "three-nodes"] / med[mode, "one-node"]
    print(f"{mode}: CPU per delivery, three nodes / one node = {ratio:.2f}x (target <= 1.3x)")
    ratio = med[mode, "redis-cluster"] / med[mode, "three-nodes"]
    print(f"{mode}: CPU per delivery, three nodes on a Redis Cluster / on one Redis = {ratio:.2f}x")
PY
