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
#   bash bench/history-publish.sh     (ROUNDS=3 DURATION=10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-24}
BASE=${BASE:-18280}
REDIS_PORT=$((BASE + 9))
KEY=bench-api-key-0123456789
out=${OUT:-target/history-publish-$(date +%Y%m%d-%H%M%S).jsonl}
cargo build --release >&2
: > "$out"
scratch

cat > "$dir/publish.lua" <<LUA
local i = 0
request = function()
  i = i + 1
  local body = string.format('{"destination":"/topic/h/%d","body":"publication %d, a notification of about eighty bytes in all"}', i % 100, i)
  return wrk.format("POST", "/api/publish",
    {["Authorization"] = "Bearer $KEY", ["Content-Type"] = "application/json"}, body)
end
LUA

node_config() { # index, cluster?, history?
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

run() { # setup, nodes, history
  local setup=$1 nodes=$2 history=$3
  local node_pids=() redis_pid="" cluster=no
  if [ "$nodes" -gt 1 ]; then
    cluster=yes
    start_redis "$REDIS_PORT"
  fi
  for i in $(seq 1 "$nodes"); do
    node_config "$i" "$cluster" "$history" > "$dir/n$i.toml"
    RUST_LOG=warn taskset -c 0 target/release/sockjs-gateway --config "$dir/n$i.toml" >/dev/null &
    pids+=($!)
    node_pids+=($!)
    wait_port $((BASE + 4 + i)) "gateway $i API"
  done
  if [ "$nodes" -gt 1 ]; then
    until_joined "$REDIS_PORT" "$nodes"
  fi
  local busy before_all before_redis=0
  busy=$(machine_busy)
  before_all=$(cpu_seconds "${node_pids[@]}" $redis_pid)
  [ -n "$redis_pid" ] && before_redis=$(cpu_seconds "$redis_pid")
  local wrk_pids=()
  for i in $(seq 1 "$nodes"); do
    taskset -c 1 wrk -t1 -c$((CONNECTIONS / nodes)) -d"${DURATION}s" -s "$dir/publish.lua" \
      "http://127.0.0.1:$((BASE + 4 + i))" > "$dir/wrk$i.txt" &
    wrk_pids+=($!)
  done
  for p in "${wrk_pids[@]}"; do wait "$p"; done
  local after_all after_redis=0
  after_all=$(cpu_seconds "${node_pids[@]}" $redis_pid)
  [ -n "$redis_pid" ] && after_redis=$(cpu_seconds "$redis_pid")
  python3 - "$setup" "$history" "$busy" "$before_all" "$after_all" "$before_redis" "$after_redis" "$DURATION" "$dir"/wrk*.txt <<'PY' >> "$out"
import json, re, sys
setup, history, busy, b_all, a_all, b_redis, a_redis, duration = sys.argv[1:9]
requests, bad, errors = 0, 0, 0
for path in sys.argv[9:]:
    text = open(path).read()
    requests += int(re.search(r"(\d+) requests in", text).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    bad += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors += sum(map(int, m.groups())) if m else 0
server = float(a_all) - float(b_all)
redis = float(a_redis) - float(b_redis)
row = {"setup": setup, "history": history == "yes", "publications_per_s": requests / float(duration),
       "cpu_us_per_publication": 1e6 * server / requests if requests else None,
       "redis_us_per_publication": 1e6 * redis / requests if requests and redis else None,
       "non_200": bad, "socket_errors": errors, "machine_busy_pct": float(busy)}
print(json.dumps(row))
PY
  tail -n 1 "$out" >&2
  if [ "$history" = yes ] && [ -n "$redis_pid" ]; then
    # What history holds after the run: a stream and its meta per destination.
    echo "redis keys: $(redis-cli -p "$REDIS_PORT" DBSIZE), memory: $(redis-cli -p "$REDIS_PORT" INFO memory | grep '^used_memory_human' | tr -d '\r')" >&2
  fi
  for p in "${node_pids[@]}" $redis_pid; do kill "$p"; wait "$p" 2>/dev/null || true; done
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(1 if r["non_200"] or r["socket_errors"] else 0)' "$(tail -n 1 "$out")"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS" >&2
  for history in no yes; do
    run one-node 1 "$history"
    run three-nodes 3 "$history"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| setup | history | publications/s (min-max) | CPU µs per publication | Redis µs per publication |")
print("|---|---|---|---|---|")
rate = {}
for setup in ("one-node", "three-nodes"):
    for history in (False, True):
        rs = [r for r in rows if r["setup"] == setup and r["history"] == history]
        rates = [r["publications_per_s"] for r in rs]
        rate[setup, history] = statistics.median(rates)
        cpu = statistics.median(r["cpu_us_per_publication"] for r in rs)
        redis = [r["redis_us_per_publication"] for r in rs if r["redis_us_per_publication"]]
        print(f"| {setup} | {'on' if history else 'off'} | {rate[setup, history]:,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) | "
              f"{cpu:.1f} | {statistics.median(redis):.1f} |" if redis else
              f"| {setup} | {'on' if history else 'off'} | {rate[setup, history]:,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) | {cpu:.1f} | - |")
for setup in ("one-node", "three-nodes"):
    print(f"{setup}: with history / without = {rate[setup, True] / rate[setup, False]:.2f} (target >= 0.50)")
PY
