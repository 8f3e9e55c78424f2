#!/usr/bin/env bash
# Recovery against Socket.IO 4.8 (issue 20): one process each, on core 0,
# its load tool on core 1, in the same run. CLIENTS clients (default 1,000)
# subscribe (the gateway: STOMP to a topic with history, in memory; Socket.IO:
# connection state recovery, in-memory adapter), drop their connections
# (not the server), MESSAGES (default 50) go out to all of them, and every
# client reconnects at once and recovers. Reported: server CPU per recovered
# message and the time until all recovered, and their ratio. Target: the
# gateway at most half of Socket.IO's CPU per recovered message.
#   bash bench/recovery-vs-socketio.sh     (ROUNDS=3 CLIENTS=1000 MESSAGES=50)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-1000}
MESSAGES=${MESSAGES:-50}
BASE=${BASE:-18480}
KEY=bench-api-key-0123456789
SECRET=bench-jwt-secret-0123456789abcdef0123
out=${OUT:-target/recovery-vs-socketio-$(date +%Y%m%d-%H%M%S).jsonl}
cargo build --release >&2
cargo build --release -p sockjs-bench >&2
if [ ! bench/socketio/node_modules/.package-lock.json -nt bench/socketio/package-lock.json ]; then
  (cd bench/socketio && npm ci --no-audit --no-fund >&2)
fi
: > "$out"
scratch

{ gateway_head "$BASE" $((BASE + 1)) "$KEY"; cat <<TOML
[auth]
jwt_secret = "$SECRET"
[services.stomp]
prefix = "/stomp"
kind = "stomp"
[[services.stomp.history]]
destinations = ["/topic/**"]
size = $((MESSAGES * 2))
ttl = 600
TOML
} > "$dir/gateway.toml"

record() { # server, result
  python3 - "$1" <<PY >> "$out"
import json, sys
r = json.loads(next(l for l in """$2""".splitlines() if l.startswith("RESULT "))[7:])
r["server"] = sys.argv[1]
print(json.dumps(r))
PY
  tail -n 1 "$out" >&2
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(1 if r["lost"] or r["errors"] else 0)' "$(tail -n 1 "$out")"
}

gateway() {
  RUST_LOG=error taskset -c 0 target/release/sockjs-gateway --config "$dir/gateway.toml" >/dev/null &
  local pid=$!
  pids+=("$pid")
  wait_port "$BASE" gateway
  local result
  result=$(taskset -c 1 target/release/recovery-storm --topic-only \
    --victim "ws://127.0.0.1:$BASE/stomp" --survivors "ws://127.0.0.1:$BASE/stomp" \
    --api "http://127.0.0.1:$((BASE + 1))" --api-key "$KEY" --secret "$SECRET" \
    --clients "$CLIENTS" --messages "$MESSAGES" --server-pids "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  record gateway "$result"
}

socketio() {
  (cd bench/socketio && exec taskset -c 0 node server.js "127.0.0.1:$((BASE + 2))") &
  local pid=$!
  pids+=("$pid")
  wait_port $((BASE + 2)) socket.io
  local result
  result=$(cd bench/socketio && taskset -c 1 node client.js "http://127.0.0.1:$((BASE + 2))" "$pid" "$CLIENTS" "$MESSAGES")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  record socket.io "$result"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS" >&2
  gateway
  socketio
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| server | clients | recovered per round | lost | p99 s | all recovered s (min-max) | server CPU µs per recovered (min-max) |")
print("|---|---|---|---|---|---|---|")
med = {}
for server in ("gateway", "socket.io"):
    rs = [r for r in rows if r["server"] == server]
    m = lambda k: statistics.median(r[k] for r in rs)
    span = lambda k, f: f"{min(r[k] for r in rs):{f}}-{max(r[k] for r in rs):{f}}"
    med[server] = m("server_cpu_us_per_recovered")
    print(f"| {server} | {rs[0]['clients']:,} | {m('recovered'):,.0f} | {sum(r['lost'] for r in rs)} | {m('p99_s'):.2f} | "
          f"{m('all_s'):.2f} ({span('all_s', '.2f')}) | {med[server]:.1f} ({span('server_cpu_us_per_recovered', '.1f')}) |")
print(f"CPU per recovered message, gateway / Socket.IO = {med['gateway'] / med['socket.io']:.2f} (target <= 0.50)")
PY
