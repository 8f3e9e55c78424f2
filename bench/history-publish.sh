#!/usr/bin/env bash
# The cost of history (issue 20): POST /api/publish to 100 destinations,
# with and without a [[services.stomp.history]] table covering them, on one
# gateway (history in memory) and on three clustered on Redis (history in
# Redis streams, appended by the script that publishes), in one run. The
# gateways and Redis share core 0; wrk (24 connections spread over the
# nodes' APIs, a Lua script varying the destination) has core 1. Reported:
# publications/s, server CPU per publication, and Redis's own CPU per
# publication. Any answer but 200 fails the run. Target: with history at
# least 50 % of the rate without, in each setup.
#
# Redis high availability (issue 31): the three nodes with history again,
# their Redis with a replica, with redis_min_replicas = 0 and = 1 (each
# publication acknowledged and delivered once the replica has it; target:
# at least 50 % of the rate against one plain Redis); and the failover gap:
# a master, its replica, three Sentinels (down-after-milliseconds 2000) and
# one node publishing every 20 ms through the API, the master killed (kill
# -9), the seconds until the first 200 (target: under 10 s).
#
# Redis Cluster (issue 32): three nodes with history publishing to 1,000
# destinations, on one Redis and on a Redis Cluster of three masters (no
# replicas; every Redis process on core 0 too). Reported besides: the CPU
# per publication of the busiest Redis process. Targets: the cluster's
# busiest at most 40 % of the one Redis's, and the gateways' own CPU per
# publication within 1.3x of theirs on one Redis. ONLY=cluster runs just
# these two rows.
#   bash bench/history-publish.sh     (ROUNDS=3 DURATION=10 ONLY=)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-24}
ONLY=${ONLY:-}
BASE=${BASE:-18280}
REDIS_PORT=$((BASE + 9))
# The Redis Cluster's masters: 18300-18302 by default (their cluster bus
# ports 10000 above).
SHARD_PORT=$((BASE + 20))
KEY=bench-api-key-0123456789
out=${OUT:-target/history-publish-$(date +%Y%m%d-%H%M%S).jsonl}
cargo build --release >&2
: > "$out"
scratch

for dests in 100 1000; do
  cat > "$dir/publish$dests.lua" <<LUA
local i = 0
request = function()
  i = i + 1
  local body = string.format('{"destination":"/topic/h/%d","body":"publication %d, a notification of about eighty bytes in all"}', i % $dests, i)
  return wrk.format("POST", "/api/publish",
    {["Authorization"] = "Bearer $KEY", ["Content-Type"] = "application/json"}, body)
end
LUA
done

node_config() { # index, cluster? (yes, no or shards), history?, min replicas
  gateway_head $((BASE + $1)) $((BASE + 4 + $1)) "$KEY"
  cat <<TOML
[auth]
anonymous = true
[services.stomp]
prefix = "/stomp"
kind = "stomp"
TOML
  if [ "$3" = yes ]; then
    printf '[[services.stomp.history]]\ndestinations = ["/topic/h/**"]\nsize = 100\nttl = 600\n'
  fi
  if [ "$2" = yes ]; then
    printf '[cluster]\nredis_url = "redis://127.0.0.1:%s/0"\nsecret = "bench-cluster-secret-0123456789abcdef"\nnode_id = "n%s"\n' "$REDIS_PORT" "$1"
    printf 'redis_min_replicas = %s\n' "${4:-0}"
  elif [ "$2" = shards ]; then
    printf '[cluster]\nredis_cluster_nodes = ["redis://127.0.0.1:%s", "redis://127.0.0.1:%s"]\n' "$SHARD_PORT" $((SHARD_PORT + 1))
    printf 'secret = "bench-cluster-secret-0123456789abcdef"\nnode_id = "n%s"\n' "$1"
  fi
}

# CPU seconds (user + system) of the PIDs given, summed.
cpu_seconds() {
  python3 - "$@" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
total = 0
for pid in sys.argv[1:]:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    total += (int(fields[11]) + int(fields[12])) / tick
print(total)
PY
}

run() { # setup, nodes, history, replica (0: none; 1: one, waited for; r: one, not waited for), destinations, shards?
  local setup=$1 nodes=$2 history=$3 replica=${4:-0} dests=${5:-100} shards=${6:-no}
  local node_pids=() redis_pid="" replica_pid="" cluster=no shard_pids=()
  if [ "$shards" = yes ]; then
    cluster=shards
    start_shards "$SHARD_PORT"
  elif [ "$nodes" -gt 1 ]; then
    cluster=yes
    start_redis "$REDIS_PORT"
  fi
  if [ "$replica" != 0 ]; then
    start_replica
  fi
  local wait=0
  [ "$replica" = 1 ] && wait=1
  for i in $(seq 1 "$nodes"); do
    node_config "$i" "$cluster" "$history" "$wait" > "$dir/n$i.toml"
    RUST_LOG=warn taskset -c 0 target/release/sockjs-gateway --config "$dir/n$i.toml" >/dev/null &
    pids+=($!)
    node_pids+=($!)
    wait_port $((BASE + 4 + i)) "gateway $i API"
  done
  if [ "$shards" = yes ]; then
    until_joined "$SHARD_PORT" "$nodes"
  elif [ "$nodes" -gt 1 ]; then
    until_joined "$REDIS_PORT" "$nodes"
  fi
  local redis_pids=($redis_pid "${shard_pids[@]}")
  local busy before_nodes before_redis=()
  busy=$(machine_busy)
  before_nodes=$(cpu_seconds "${node_pids[@]}")
  for p in "${redis_pids[@]}"; do before_redis+=("$(cpu_seconds "$p")"); done
  local wrk_pids=()
  for i in $(seq 1 "$nodes"); do
    taskset -c 1 wrk -t1 -c$((CONNECTIONS / nodes)) -d"${DURATION}s" -s "$dir/publish$dests.lua" \
      "http://127.0.0.1:$((BASE + 4 + i))" > "$dir/wrk$i.txt" &
    wrk_pids+=($!)
  done
  for p in "${wrk_pids[@]}"; do wait "$p"; done
  local after_nodes redis_used=()
  after_nodes=$(cpu_seconds "${node_pids[@]}")
  for k in "${!redis_pids[@]}"; do
    redis_used+=("$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "${before_redis[$k]}" "$(cpu_seconds "${redis_pids[$k]}")")")
  done
  python3 - "$setup" "$history" "$busy" "$before_nodes" "$after_nodes" "$(IFS=,; echo "${redis_used[*]}")" "$DURATION" "$dests" "$dir"/wrk*.txt <<'PY' >> "$out"
import json, re, sys
setup, history, busy, b_nodes, a_nodes, redis_used, duration, dests = sys.argv[1:9]
requests, bad, errors = 0, 0, 0
for path in sys.argv[9:]:
    text = open(path).read()
    requests += int(re.search(r"(\d+) requests in", text).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    bad += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors += sum(map(int, m.groups())) if m else 0
nodes = float(a_nodes) - float(b_nodes)
used = [float(u) for u in redis_used.split(",") if u]
redis = sum(used)
per = lambda seconds: 1e6 * seconds / requests if requests and seconds else None
row = {"setup": setup, "history": history == "yes", "destinations": int(dests),
       "publications_per_s": requests / float(duration),
       "cpu_us_per_publication": per(nodes + redis),
       "gateway_us_per_publication": per(nodes),
       "redis_us_per_publication": per(redis),
       "busiest_redis_us_per_publication": per(max(used)) if used else None,
       "redis_processes": len(used),
       "non_200": bad, "socket_errors": errors, "machine_busy_pct": float(busy)}
print(json.dumps(row))
PY
  tail -n 1 "$out" >&2
  if [ "$history" = yes ] && [ -n "$redis_pid" ]; then
    # What history holds after the run: a stream and its meta per destination.
    echo "redis keys: $(redis-cli -p "$REDIS_PORT" DBSIZE), memory: $(redis-cli -p "$REDIS_PORT" INFO memory | grep '^used_memory_human' | tr -d '\r')" >&2
  fi
  if [ "$shards" = yes ]; then
    # Each shard's part of the streams (and of the 16,384 slot boot keys).
    for k in 0 1 2; do echo "shard $k keys: $(redis-cli -p $((SHARD_PORT + k)) DBSIZE)" >&2; done
  fi
  for p in "${node_pids[@]}" $redis_pid $replica_pid "${shard_pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(1 if r["non_200"] or r["socket_errors"] else 0)' "$(tail -n 1 "$out")"
}

# A replica of the bench's Redis on the next port, on core 0, once it is
# linked; its PID in $replica_pid.
start_replica() {
  taskset -c 0 redis-server --port $((REDIS_PORT + 1)) --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --dbfilename replica.rdb --replicaof 127.0.0.1 "$REDIS_PORT" >/dev/null &
  replica_pid=$!
  pids+=("$replica_pid")
  wait_port $((REDIS_PORT + 1)) "the replica"
  until redis-cli -p $((REDIS_PORT + 1)) INFO replication | grep -q 'master_link_status:up'; do sleep 0.1; done
}

# Seconds from kill -9 of the master to the first 200 of a node on
# Sentinel, one row.
failover_gap() {
  local sentinels=() urls=()
  start_redis "$REDIS_PORT"
  local master=$redis_pid
  # Killed below, on purpose: no word from the shell about it.
  disown "$master"
  start_replica
  local replica=$replica_pid
  for p in $((REDIS_PORT + 2)) $((REDIS_PORT + 3)) $((REDIS_PORT + 4)); do
    printf 'port %s\nbind 127.0.0.1\nsentinel monitor m 127.0.0.1 %s 2\nsentinel down-after-milliseconds m 2000\nsentinel failover-timeout m 10000\n' \
      "$p" "$REDIS_PORT" > "$dir/sentinel-$p.conf"
    taskset -c 0 redis-server "$dir/sentinel-$p.conf" --sentinel >/dev/null &
    sentinels+=($!)
    pids+=($!)
    urls+=("\"redis://127.0.0.1:$p\"")
  done
  for p in $((REDIS_PORT + 2)) $((REDIS_PORT + 3)) $((REDIS_PORT + 4)); do
    wait_port "$p" sentinel
    until [ "$(redis-cli -p "$p" SENTINEL MASTER m | sed -n '/^num-other-sentinels$/{n;p}')" = 2 ] \
      && [ "$(redis-cli -p "$p" SENTINEL MASTER m | sed -n '/^num-slaves$/{n;p}')" = 1 ]; do sleep 0.2; done
  done
  { gateway_head $((BASE + 1)) $((BASE + 5)) "$KEY"
    printf '[auth]\nanonymous = true\n[services.stomp]\nprefix = "/stomp"\nkind = "stomp"\n[[services.stomp.history]]\ndestinations = ["/topic/h/**"]\n'
    printf '[cluster]\nredis_sentinels = [%s]\nredis_master_name = "m"\nsecret = "bench-cluster-secret-0123456789abcdef"\n' "$(IFS=,; echo "${urls[*]}")"
  } > "$dir/ha.toml"
  RUST_LOG=warn taskset -c 0 target/release/sockjs-gateway --config "$dir/ha.toml" >/dev/null 2>&1 &
  local node=$!
  pids+=("$node")
  wait_port $((BASE + 5)) "the node's API"
  python3 - "http://127.0.0.1:$((BASE + 5))/api/publish" "$KEY" "$master" <<'PY' >> "$out"
import json, os, signal, sys, time, urllib.request, urllib.error
url, key, master = sys.argv[1], sys.argv[2], int(sys.argv[3])
def publish(n):
    body = json.dumps({"destination": "/topic/h/gap", "body": str(n), "idempotency_key": f"gap-{n}"}).encode()
    req = urllib.request.Request(url, body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return 0
# Up and publishing (the node may need a moment to find the master).
n = 0
until = time.time() + 15
while n < 50:
    n += 1
    while publish(n) != 200:
        assert time.time() < until, "no 200 before the kill"
        time.sleep(0.05)
    time.sleep(0.02)
os.kill(master, signal.SIGKILL)
killed = time.time()
refused = 0
while True:
    n += 1
    if publish(n) == 200:
        break
    refused += 1
    assert time.time() - killed < 60, "no 200 within 60 s of the kill"
    time.sleep(0.02)
print(json.dumps({"setup": "sentinel-failover", "failover_gap_s": round(time.time() - killed, 2), "refused_meanwhile": refused}))
PY
  tail -n 1 "$out" >&2
  for p in "$node" "$replica" "${sentinels[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS" >&2
  if [ "$ONLY" != cluster ]; then
    for history in no yes; do
      run one-node 1 "$history"
      run three-nodes 3 "$history"
    done
    run three-nodes-replica 3 yes r
    run three-nodes-replica-waited 3 yes 1
    failover_gap
  fi
  run three-nodes-1000 3 yes 0 1000
  run redis-cluster-1000 3 yes 0 1000 yes
done
python3 - "$out" <<'PY'
import json, statistics, sys
all_rows = [json.loads(l) for l in open(sys.argv[1])]
gaps = [r for r in all_rows if r["setup"] == "sentinel-failover"]
rows = [r for r in all_rows if r["setup"] != "sentinel-failover"]
print("| setup | history | publications/s (min-max) | CPU µs per publication | gateways' µs | Redis µs (busiest process) |")
print("|---|---|---|---|---|---|")
rate, med = {}, {}
setups = ("one-node", "three-nodes", "three-nodes-replica", "three-nodes-replica-waited",
          "three-nodes-1000", "redis-cluster-1000")
spread = lambda xs: f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"
for setup in setups:
    for history in (False, True):
        rs = [r for r in rows if r["setup"] == setup and r["history"] == history]
        if not rs:
            continue
        rates = [r["publications_per_s"] for r in rs]
        rate[setup, history] = statistics.median(rates)
        cpu = statistics.median(r["cpu_us_per_publication"] for r in rs)
        gateways = [r["gateway_us_per_publication"] for r in rs]
        redis = [r["redis_us_per_publication"] for r in rs if r["redis_us_per_publication"]]
        busiest = [r["busiest_redis_us_per_publication"] for r in rs if r["busiest_redis_us_per_publication"]]
        med[setup] = (statistics.median(gateways), statistics.median(busiest) if busiest else None)
        redis_cell = f"{statistics.median(redis):.1f} ({spread(busiest)})" if redis else "-"
        print(f"| {setup} | {'on' if history else 'off'} | {rate[setup, history]:,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) | "
              f"{cpu:.1f} | {spread(gateways)} | {redis_cell} |")
for setup in ("one-node", "three-nodes"):
    if (setup, False) in rate:
        print(f"{setup}: with history / without = {rate[setup, True] / rate[setup, False]:.2f} (target >= 0.50)")
if ("three-nodes-replica-waited", True) in rate:
    print(f"redis_min_replicas = 1 / one plain Redis = {rate['three-nodes-replica-waited', True] / rate['three-nodes', True]:.2f}"
          f" (= 0 with a replica: {rate['three-nodes-replica', True] / rate['three-nodes', True]:.2f}; target >= 0.50)")
if gaps:
    g = [r["failover_gap_s"] for r in gaps]
    print(f"failover gap, kill -9 of the master to the first 200: median {statistics.median(g):.1f} s ({min(g):.1f}-{max(g):.1f}; target < 10)")
one, sharded = med.get("three-nodes-1000"), med.get("redis-cluster-1000")
if one and sharded:
    print(f"Redis Cluster, 1,000 destinations: busiest Redis process / one Redis = {sharded[1] / one[1]:.2f} (target <= 0.40); "
          f"gateways' CPU per publication / on one Redis = {sharded[0] / one[0]:.2f} (target <= 1.30)")
PY
