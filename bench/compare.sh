#!/usr/bin/env bash
# Runs the same SockJS scenarios against sockjs-gateway, sockjs-node (npm
# `sockjs`, bench/node/server.js) and a bare actix-ws echo (the ceiling), on
# one machine in one run: each server pinned to core 0, the load tool to
# core 1, servers alternating order each round, a fresh server process per
# scenario. Prints the median of ROUNDS rounds and the ratios.
#   bash bench/compare.sh            (ROUNDS=3 HOLD=60 by default)
#   ROUNDS=1 HOLD=10 QUICK=1 bash bench/compare.sh
# Smaller loads for a smoke run: IDLE_SESSIONS, BROADCAST_SIZES, DURATION.
# ONLY="ws-echo idle" runs just those scenarios; ONLY=proxy the proxy ones:
# the gateway's kind = "proxy" in front of bench's upstream-echo, against
# the in-process echo and against nginx proxying a plain WebSocket to the
# same upstream (PROXY_IDLE sessions held HOLD seconds, default 5000).
# ONLY=limits: the gateway with every limit on the echo service takes
# (max_sessions_per_ip, max_new_sessions_per_ip, max_messages_per_second,
# set far above what the load needs) against the same gateway with none.
# Exits non-zero if the gateway lost or corrupted any message.
# Ratios are reported as the median and the spread (min-max) of the
# per-round ratios; how busy the machine was just before each run is
# recorded with it (background_cpu_pct) and summarised under the table.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
HOLD=${HOLD:-60}
DURATION=${DURATION:-5}
IDLE_SESSIONS=${IDLE_SESSIONS:-10000}
BROADCAST_SIZES=${BROADCAST_SIZES:-1000 5000}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
# upstream-echo shares the server's core by default: the proxying gateway
# and nginx both pay for their upstream, as on a one-box deployment.
UPSTREAM_CORE=${UPSTREAM_CORE:-$SERVER_CORE}
out=${OUT:-target/bench-$(date +%Y%m%d-%H%M%S).jsonl}

command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
# The gateway exactly as `cargo build --release` builds it, and the bench
# package on its own: building both packages in one command unifies their
# dependencies' features, which rebuilds the gateway (and again after the
# next plain build). Built this way, an up-to-date tree builds nothing.
cargo build --release >&2
cargo build --release -p sockjs-bench >&2
for b in sockjs-gateway sockjs-bench bare-ws-echo upstream-echo; do
  [ -x "target/release/$b" ] || { echo "target/release/$b was not built" >&2; exit 1; }
done
if [ ! bench/node/node_modules/.package-lock.json -nt bench/node/package-lock.json ]; then
  (cd bench/node && npm ci --no-audit --no-fund >&2)
fi
bench=target/release/sockjs-bench
: > "$out"

PROXY_IDLE=${PROXY_IDLE:-5000}
port() { case $1 in ours|inproc|proxy|limited) echo 8090 ;; node) echo 8091 ;; bare) echo 8092 ;; nginx) echo 8094 ;; esac; }
url() { # server, service
  case $1 in
    bare) echo "http://127.0.0.1:8092/ws" ;;
    nginx) echo "http://127.0.0.1:8094/" ;;
    proxy) echo "http://127.0.0.1:8090/proxied" ;;
    *) echo "http://127.0.0.1:$(port "$1")/$2" ;;
  esac
}
# Labels whose load speaks a plain WebSocket rather than SockJS.
raw() { [ "$1" = bare ] || [ "$1" = nginx ]; }

kill_wait() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

upstream_pid=""
start_upstream() {
  taskset -c "$UPSTREAM_CORE" target/release/upstream-echo 127.0.0.1:8093 >/dev/null &
  upstream_pid=$!
  wait_port 8093 upstream-echo
}

server_pid=""
nginx_dir=""
start() { # server
  case $1 in
    proxy|nginx) start_upstream ;;
  esac
  # Every limit of the echo service on, none reached: what checking costs.
  local limits=()
  [ "$1" = limited ] && limits=(SOCKJS_GATEWAY__SERVICES__ECHO__MAX_SESSIONS_PER_IP=1000000
    SOCKJS_GATEWAY__SERVICES__ECHO__MAX_NEW_SESSIONS_PER_IP=1000000
    SOCKJS_GATEWAY__SERVICES__ECHO__MAX_MESSAGES_PER_SECOND=1000000)
  case $1 in
    ours|inproc|proxy|limited) env "${limits[@]}" RUST_LOG=warn SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT_DELAY=10 SOCKJS_GATEWAY__SERVICES__BROADCAST__HEARTBEAT_DELAY=10 \
            SOCKJS_GATEWAY__SERVICES__PROXIED__HEARTBEAT_DELAY=10 \
            taskset -c "$SERVER_CORE" target/release/sockjs-gateway --config bench/gateway.toml >/dev/null & ;;
    nginx) nginx_dir=$(mktemp -d)
           taskset -c "$SERVER_CORE" nginx -p "$nginx_dir" -c "$PWD/bench/nginx/ws-proxy.conf" -g 'daemon off;' >/dev/null & ;;
    node) (cd bench/node && HEARTBEAT=10 exec taskset -c "$SERVER_CORE" node server.js 127.0.0.1:8091 >/dev/null) & ;;
    bare) taskset -c "$SERVER_CORE" target/release/bare-ws-echo 127.0.0.1:8092 >/dev/null & ;;
  esac
  server_pid=$!
  wait_port "$(port "$1")" "$1"
}
stop() {
  kill_wait "$server_pid"
  if [ -n "$upstream_pid" ]; then
    kill_wait "$upstream_pid"
    upstream_pid=""
  fi
  if [ -n "$nginx_dir" ]; then
    rm -rf "$nginx_dir"
    nginx_dir=""
  fi
  # node runs under a subshell: make sure the port is free again.
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/8091") 2>/dev/null || break
    pkill -f "node server.js 127.0.0.1:8091" 2>/dev/null || true
    sleep 0.05
  done
}

round=0
run() { # server scenario service args...
  local server=$1 scenario=$2 service=$3
  shift 3
  local proto=()
  raw "$server" && proto=(--protocol raw)
  local background
  background=$(machine_busy)
  start "$server"
  local pid=$server_pid
  [ "$server" = node ] && pid=$(pgrep -f "node server.js 127.0.0.1:8091" | head -n 1)
  # nginx's one worker does the work; the master only waits.
  [ "$server" = nginx ] && pid=$(pgrep -P "$server_pid" | head -n 1)
  echo "-- $server $scenario $*" >&2
  # The tool exits 1 when a server loses messages; that is a result (the
  # table judges it), but a run with no RESULT line at all is not.
  local result
  result=$(taskset -c "$TOOL_CORE" "$bench" "$scenario" --url "$(url "$server" "$service")" "${proto[@]}" \
    --server-pid "$pid" --label "$server" "$@" | sed -n 's/^RESULT //p') || true
  stop
  if [ -z "$result" ]; then
    echo "$server $scenario produced no result" >&2
    [ "$server" = node ] || exit 1
    return 0
  fi
  echo "${result%\}},\"round\":$round,\"group\":\"$group\",\"background_cpu_pct\":$background}" >> "$out"
}

want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
group=core

scenarios() { # round
  local order=(ours node bare)
  [ $(($1 % 2)) -eq 0 ] && order=(bare node ours)
  want ws-echo && for s in "${order[@]}"; do run "$s" ws-echo echo --sessions 100 --inflight 1 --size 128 --duration "$DURATION"; done
  want xhr-polling && for s in "${order[@]}"; do [ "$s" = bare ] || run "$s" xhr-polling echo --sessions 50 --duration "$DURATION"; done
  want xhr-streaming && for s in "${order[@]}"; do [ "$s" = bare ] || run "$s" xhr-streaming echo --sessions 50 --duration "$DURATION"; done
  want eventsource && for s in "${order[@]}"; do [ "$s" = bare ] || run "$s" eventsource echo --sessions 50 --duration "$DURATION"; done
  want idle && for s in "${order[@]}"; do run "$s" idle echo --sessions "$IDLE_SESSIONS" --hold 3; done
  want broadcast && for n in $BROADCAST_SIZES; do
    for s in "${order[@]}"; do [ "$s" = bare ] || run "$s" broadcast broadcast --sessions "$n" --messages 200; done
  done
  if [ -z "${QUICK:-}" ] && want idle; then
    for s in "${order[@]}"; do
      [ "$s" = bare ] || run "$s" idle echo --sessions 19500 --hold "$HOLD" --min-heartbeats $((HOLD / 10 - 1))
    done
  fi
  if want proxy; then
    group=proxy
    local porder=(proxy nginx inproc)
    [ $(($1 % 2)) -eq 0 ] && porder=(inproc nginx proxy)
    for s in "${porder[@]}"; do run "$s" ws-echo echo --sessions 100 --inflight 1 --size 128 --duration "$DURATION"; done
    for s in "${porder[@]}"; do [ "$s" = nginx ] || run "$s" xhr-polling echo --sessions 50 --duration "$DURATION"; done
    local hold=$HOLD
    [ -n "${QUICK:-}" ] && hold=3
    for s in "${porder[@]}"; do
      [ "$s" = nginx ] || run "$s" idle echo --sessions "$PROXY_IDLE" --hold "$hold" --min-heartbeats $((hold / 10 > 1 ? hold / 10 - 1 : 0))
    done
    group=core
  fi
  if want limits; then
    group=limits
    local lorder=(ours limited)
    [ $(($1 % 2)) -eq 0 ] && lorder=(limited ours)
    for s in "${lorder[@]}"; do run "$s" ws-echo echo --sessions 100 --inflight 1 --size 128 --duration "$DURATION"; done
    for s in "${lorder[@]}"; do run "$s" xhr-polling echo --sessions 50 --duration "$DURATION"; done
    group=core
  fi
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r of $ROUNDS" >&2
  round=$r
  scenarios "$r"
done
python3 bench/table.py "$out"
echo "raw results: $out" >&2
