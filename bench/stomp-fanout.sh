#!/usr/bin/env bash
# STOMP topic fan-out over WebSocket: the gateway's `stomp` kind against
# RabbitMQ's Web-STOMP plugin (Debian rabbitmq-server), in one run. Each
# broker pinned to core 0 (RabbitMQ with one Erlang scheduler, +S 1:1),
# the load tool (bench's stomp-fanout) to core 1. For each subscriber
# count, paced (the next publish once all have the previous one) and burst
# (all at once); deliveries/s and latency from publish to delivery, every
# message checked (order, no loss). A fresh broker process per run (a
# RabbitMQ left running would still be deleting its 5,000 queues on the
# gateway's core), brokers alternating order each round, medians of ROUNDS
# rounds; how busy the machine was just before each run is recorded.
#   bash bench/stomp-fanout.sh            (ROUNDS=3, SUBSCRIBERS="1000 5000")
#   ROUNDS=1 SUBSCRIBERS=200 DELIVERIES=4000 bash bench/stomp-fanout.sh   (smoke)
# The gateway's subscribers use its raw WebSocket (STOMP frames as
# WebSocket messages, like Web-STOMP); SOCKJS=1 adds a row for SockJS
# framing (what sockjs-client uses). Exits non-zero if the gateway lost or
# misordered a message.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
SUBSCRIBERS=${SUBSCRIBERS:-1000 5000}
# Messages per run: DELIVERIES / subscribers (at least 10).
DELIVERIES=${DELIVERIES:-200000}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
out=${OUT:-target/stomp-fanout-$(date +%Y%m%d-%H%M%S).jsonl}

for c in taskset setpriv; do command -v $c >/dev/null || { echo "$c (util-linux) is needed" >&2; exit 1; }; done
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || { echo "rabbitmq-server is needed: apt-get install rabbitmq-server" >&2; exit 1; }
cargo build --release >&2
cargo build --release -p sockjs-bench >&2
tool=target/release/stomp-fanout
: > "$out"

# RabbitMQ as a process of this script: its own node name, ports and
# directories, as the rabbitmq user (it refuses to run as root). setpriv,
# not su: su resets the open-file limit to 1024, too few for 5000
# subscribers.
rabbit_dir=""
rabbit_pid=""
start_rabbit() {
  rabbit_dir=$(mktemp -d /tmp/stomp-fanout-rabbit.XXXXXX)
  cp bench/rabbitmq/rabbitmq.conf "$rabbit_dir/"
  echo '[rabbitmq_web_stomp].' > "$rabbit_dir/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$rabbit_dir"
  setsid setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env -i PATH="$PATH" HOME="$rabbit_dir" \
    RABBITMQ_NODENAME=fanout@localhost RABBITMQ_DIST_PORT=25679 ERL_EPMD_PORT=4370 \
    RABBITMQ_MNESIA_BASE="$rabbit_dir/mnesia" RABBITMQ_LOG_BASE="$rabbit_dir/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit_dir/enabled_plugins" RABBITMQ_CONFIG_FILE="$rabbit_dir/rabbitmq" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1" \
    taskset -c "$SERVER_CORE" /usr/lib/rabbitmq/bin/rabbitmq-server > "$rabbit_dir/out.log" 2>&1 &
  local launcher=$!
  wait_port 15674 rabbitmq 600
  # The Erlang VM under the start script (setsid, setpriv, env and taskset exec).
  rabbit_pid=$(pgrep -P "$launcher" -x beam.smp | head -n 1) || true
  [ -n "$rabbit_pid" ] || { echo "rabbitmq: no beam.smp under $launcher" >&2; exit 1; }
}
stop_rabbit() {
  [ -n "$rabbit_pid" ] || return 0
  # The Erlang VM and its epmd, both started above (epmd on its own port).
  kill "$rabbit_pid" 2>/dev/null || true
  while kill -0 "$rabbit_pid" 2>/dev/null; do sleep 0.1; done
  pkill -u rabbitmq -x epmd 2>/dev/null || true
  rabbit_pid=""
  rm -rf "$rabbit_dir"
}
gateway_pid=""
start_gateway() {
  RUST_LOG=warn taskset -c "$SERVER_CORE" target/release/sockjs-gateway --config bench/gateway.toml >/dev/null &
  gateway_pid=$!
  wait_port 8090 gateway
}
stop_gateway() {
  kill "$gateway_pid" 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
  gateway_pid=""
}
trap 'stop_gateway; stop_rabbit' EXIT

round=0
run() { # label subscribers mode
  local label=$1 n=$2 mode=$3 messages=$(( DELIVERIES / $2 ))
  [ "$messages" -ge 10 ] || messages=10
  local args=(--subscribers "$n" --messages "$messages" --mode "$mode" --label "$label")
  local background
  background=$(machine_busy)
  case $label in
    gateway) start_gateway; args+=(--url ws://127.0.0.1:8090/stomp/websocket --server-pid "$gateway_pid") ;;
    gateway-sockjs) start_gateway; args+=(--url ws://127.0.0.1:8090/stomp --framing sockjs --server-pid "$gateway_pid") ;;
    rabbitmq) start_rabbit; args+=(--url ws://127.0.0.1:15674/ws --login guest --server-pid "$rabbit_pid") ;;
  esac
  echo "-- $label $n subscribers, $messages messages, $mode" >&2
  local result
  result=$(taskset -c "$TOOL_CORE" "$tool" "${args[@]}" | sed -n 's/^RESULT //p') || true
  if [ "$label" = rabbitmq ]; then stop_rabbit; else stop_gateway; fi
  if [ -z "$result" ]; then
    echo "$label produced no result" >&2
    exit 1
  fi
  echo "${result%\}},\"round\":$round,\"mode\":\"$mode\",\"background_cpu_pct\":$background}" >> "$out"
}

labels=(gateway rabbitmq)
[ -n "${SOCKJS:-}" ] && labels=(gateway gateway-sockjs rabbitmq)
for r in $(seq 1 "$ROUNDS"); do
  round=$r
  echo "== round $r of $ROUNDS" >&2
  order=("${labels[@]}")
  [ $((r % 2)) -eq 0 ] && order=($(printf '%s\n' "${labels[@]}" | tac))
  for n in $SUBSCRIBERS; do
    for mode in paced burst; do
      for label in "${order[@]}"; do run "$label" "$n" "$mode"; done
    done
  done
done
python3 bench/stomp_table.py "$out"
echo "raw results: $out" >&2
