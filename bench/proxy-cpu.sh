#!/usr/bin/env bash
# Where a proxied WebSocket message's CPU goes, user space against kernel,
# for the gateway's `proxy` kind and for nginx proxying a plain WebSocket
# (issue 22): both with upstream-echo on core 0 beside them, the load tool
# (100 sessions, 128 B, window 1) on core 1, as `ONLY=proxy compare.sh`
# runs them, and the gateway's in-process echo (its client side alone;
# the upstream then idles). CPU comes from /proc/PID/stat (10 ms ticks) over the run and
# its warm-up, per message. ROUNDS rounds (default 3), alternating.
#   bash bench/proxy-cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
cargo build --release >&2
cargo build --release -p sockjs-bench >&2
command -v nginx >/dev/null || { echo "nginx is needed (apt-get install nginx-light)" >&2; exit 1; }
scratch
taskset -c 0 target/release/upstream-echo 127.0.0.1:8093 >/dev/null & up=$!
pids+=("$up")
wait_port 8093 upstream-echo
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
measure() { # label, server pid, url, load args...
  local label=$1 pid=$2 url=$3 result
  shift 3
  read -r u0 s0 < <(ticks "$pid")
  read -r a0 b0 < <(ticks "$up")
  result=$(taskset -c 1 target/release/sockjs-bench ws-echo --url "$url" "$@" --sessions 100 \
    --inflight 1 --size 128 --duration "$DURATION" --warmup 1 --label "$label" | sed -n 's/^RESULT //p')
  read -r u1 s1 < <(ticks "$pid")
  read -r a1 b1 < <(ticks "$up")
  python3 - "$result" "$label" "$DURATION" $((u1 - u0)) $((s1 - s0)) $((a1 - a0)) $((b1 - b0)) <<'PY'
import json, sys
r = json.loads(sys.argv[1])
if r["lost"] or r["errors"]:
    sys.exit(f"lost or failed messages: {r}")
label, duration = sys.argv[2], float(sys.argv[3])
# The ticks cover the warm-up second too, at about the same rate.
n = r["msgs_per_s"] * (duration + 1)
us = lambda ticks: round(int(ticks) / 100 / n * 1e6, 2)
print(json.dumps({"label": label, "msgs_per_s": round(r["msgs_per_s"]),
                  "server_user_us": us(sys.argv[4]), "server_sys_us": us(sys.argv[5]),
                  "upstream_user_us": us(sys.argv[6]), "upstream_sys_us": us(sys.argv[7])}))
PY
}
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r of $ROUNDS" >&2
  RUST_LOG=warn SOCKJS_GATEWAY__SERVICES__PROXIED__HEARTBEAT_DELAY=10 \
    taskset -c 0 target/release/sockjs-gateway --config bench/gateway.toml >/dev/null & gw=$!
  wait_port 8090 gateway
  measure proxy "$gw" http://127.0.0.1:8090/proxied
  # The same gateway's in-process echo: its client side alone.
  measure inproc "$gw" http://127.0.0.1:8090/echo
  kill "$gw"; wait "$gw" 2>/dev/null || true
  ngdir=$(mktemp -d -p "$dir")
  taskset -c 0 nginx -p "$ngdir" -c "$PWD/bench/nginx/ws-proxy.conf" -g 'daemon off;' >/dev/null & ng=$!
  wait_port 8094 nginx
  # nginx's one worker does the work; the master only waits.
  measure nginx "$(pgrep -P "$ng" | head -n 1)" http://127.0.0.1:8094/ --protocol raw
  kill "$ng"; wait "$ng" 2>/dev/null || true
done
