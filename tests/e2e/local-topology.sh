#!/usr/bin/env bash
# The compose demo's topology with local processes: nginx (the shipped
# config/nginx/ files) in front of two gateways (config/container.toml), and
# the Node.js backend (examples/node-backend) behind their /app proxy
# service, on loopback ports. Without arguments it smoke-tests the topology and stops;
# with --keep it stays up until Ctrl-C (open the printed URL).
#   cargo build --release && npm ci && bash tests/e2e/local-topology.sh --keep
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin="${GATEWAY_BIN:-$root/target/release/sockjs-gateway}"
port="${PORT:-18080}"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for p in "$port" $((port + 1)) $((port + 2)) $((port + 3)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is already in use; set PORT to a free base port" >&2
    exit 1
  fi
done

backend=127.0.0.1:$((port + 3))
[ -d examples/node-backend/node_modules/ws ] || npm ci --prefix examples/node-backend --no-audit --no-fund >&2
node examples/node-backend/server.mjs "$backend" > "$work/backend.out" &
pids+=($!)

start_gateway() {
  local listen=$1
  # The image's config, with the paths of this checkout and local addresses.
  SOCKJS_GATEWAY__STATIC_DIR="$root/static" \
  SOCKJS_GATEWAY__SOCKJS_CLIENT_PATH="$root/node_modules/sockjs-client/dist/sockjs.min.js" \
  SOCKJS_GATEWAY__SERVICES__APP__UPSTREAM="ws://$backend/socket" \
    "$bin" --config "$root/config/container.toml" --listen "$listen" > "$work/gw-${listen##*:}.out" &
  pids+=($!)
}
start_gateway 127.0.0.1:$((port + 1))
start_gateway 127.0.0.1:$((port + 2))

sed -e "s|include /etc/nginx/sockjs/|include $root/config/nginx/|" \
    -e "s|listen 8080;|listen 127.0.0.1:$port;|" \
    -e "s|server gateway1:8080;|server 127.0.0.1:$((port + 1));|" \
    -e "s|server gateway2:8080;|server 127.0.0.1:$((port + 2));|" \
    -e "s|pid /tmp/nginx.pid;|pid $work/nginx.pid;|" \
    -e "s|access_log /dev/stdout sockjs;|access_log $work/access.log sockjs;|" \
    config/nginx/nginx.conf > "$work/nginx.conf"
for line in "include $root/config/nginx/" "listen 127.0.0.1:$port;" "server 127.0.0.1:$((port + 2));" "pid $work/nginx.pid;"; do
  grep -qF "$line" "$work/nginx.conf" || { echo "nginx.conf substitution failed: $line" >&2; exit 1; }
done
nginx -p "$work" -c "$work/nginx.conf" -e stderr -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")

url="http://127.0.0.1:$port"
wait_up() { # url, process id
  for _ in $(seq 1 100); do
    kill -0 "$2" 2>/dev/null || { echo "process for $1 exited" >&2; exit 1; }
    curl -fs -o /dev/null "$1/healthz" && return 0
    sleep 0.1
  done
  echo "$1 did not come up" >&2
  exit 1
}
wait_up "http://$backend" "${pids[0]}"
wait_up "http://127.0.0.1:$((port + 1))" "${pids[1]}"
wait_up "http://127.0.0.1:$((port + 2))" "${pids[2]}"
wait_up "$url" "$nginx_pid"

check() { # name, expected, actual
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected [$2], got [$3]"; failed=1; fi
}
failed=0
check "greeting through nginx" "Welcome to SockJS!" "$(curl -fsS "$url/echo")"
check "demo page" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$url/lab.html")"
check "sockjs-client" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$url/sockjs-client/sockjs.min.js")"
check "info" "true" "$(curl -fsS "$url/echo/info" | python3 -c 'import json,sys; print(str(json.load(sys.stdin)["websocket"]).lower())')"
for i in 1 2 3 4 5 6; do
  sid="e2e$RANDOM$i"
  check "session $i opens" "o" "$(curl -fsS -X POST "$url/echo/000/$sid/xhr")"
  check "session $i send" "204" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '["hi"]' "$url/echo/000/$sid/xhr_send")"
  check "session $i echo" 'a["hi"]' "$(curl -fsS -X POST "$url/echo/000/$sid/xhr")"
done
sid="app$RANDOM"
check "proxied session opens once the backend accepted" "o" "$(curl -fsS -X POST "$url/app/000/$sid/xhr")"
check "the Node backend's greeting names the client" "127.0.0.1" "$(curl -fsS -X POST "$url/app/000/$sid/xhr" \
  | python3 -c 'import json,sys; f=sys.stdin.read(); print(json.loads(json.loads(f[1:])[0])["client"])')"
check "proxied send" "204" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '["through node"]' "$url/app/000/$sid/xhr_send")"
check "proxied echo" 'a["through node"]' "$(curl -fsS -X POST "$url/app/000/$sid/xhr")"
check "websocket upgrade" "101" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 --http1.1 \
  -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "$url/echo/000/ws$RANDOM/websocket" || true)"
upstreams=$(grep -o 'upstream=[0-9.:]*' "$work/access.log" | sort -u | wc -l)
check "both gateways served" "2" "$upstreams"

if [ "${1:-}" = "--keep" ]; then
  echo "topology up: $url (gateways on $((port + 1)) and $((port + 2))); Ctrl-C stops it"
  wait
fi
exit "$failed"
