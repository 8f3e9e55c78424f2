#!/usr/bin/env bash
# The compose demo's topology with local processes: nginx (the shipped
# config/nginx/ files, plain round-robin) in front of three gateways
# (config/container.toml) clustered on Debian's redis-server, and the
# Node.js backend (examples/node-backend) behind their /app proxy service,
# on loopback ports. Without arguments it smoke-tests the topology and stops;
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

for p in "$port" $((port + 1)) $((port + 2)) $((port + 3)) $((port + 4)) $((port + 5)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is already in use; set PORT to a free base port" >&2
    exit 1
  fi
done

backend=127.0.0.1:$((port + 4))
redis_port=$((port + 5))
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" > "$work/redis.out" &
pids+=($!)
[ -d examples/node-backend/node_modules/ws ] || npm ci --prefix examples/node-backend --no-audit --no-fund >&2
node examples/node-backend/server.mjs "$backend" > "$work/backend.out" &
pids+=($!)

# The compose file's demo sign-in secret, shared by the gateways.
demo_secret=$(sed -n 's/^ *SOCKJS_GATEWAY__AUTH__DEMO_LOGIN_SECRET: "\(.*\)"$/\1/p' docker-compose.yml)
[ -n "$demo_secret" ] || { echo "docker-compose.yml sets no demo_login_secret" >&2; exit 1; }
start_gateway() {
  local listen=$1 node=$2
  # The image's config, with the paths of this checkout and local addresses,
  # and the compose file's cluster and sign-in settings.
  SOCKJS_GATEWAY__CLUSTER__REDIS_URL="redis://127.0.0.1:$redis_port/0" \
  SOCKJS_GATEWAY__CLUSTER__NODE_ID="$node" \
  SOCKJS_GATEWAY__CLUSTER__ADVERTISE="http://$listen" \
  SOCKJS_GATEWAY__SHUTDOWN__DRAIN_DELAY=5 \
  SOCKJS_GATEWAY__AUTH__DEMO_LOGIN=true \
  SOCKJS_GATEWAY__AUTH__DEMO_LOGIN_SECRET="$demo_secret" \
  SOCKJS_GATEWAY__CLUSTER__SECRET="local-topology-cluster-secret-0123456789" \
  SOCKJS_GATEWAY__TRUSTED_PROXIES=127.0.0.1/32 \
  SOCKJS_GATEWAY__STATIC_DIR="$root/static" \
  SOCKJS_GATEWAY__SOCKJS_CLIENT_PATH="$root/node_modules/sockjs-client/dist/sockjs.min.js" \
  SOCKJS_GATEWAY__STOMP_CLIENT_PATH="$root/node_modules/@stomp/stompjs/bundles/stomp.umd.min.js" \
  SOCKJS_GATEWAY__SERVICES__APP__UPSTREAM="ws://$backend/socket" \
    "$bin" --config "$root/config/container.toml" --listen "$listen" > "$work/gw-${listen##*:}.out" &
  pids+=($!)
}
start_gateway 127.0.0.1:$((port + 1)) gateway1
start_gateway 127.0.0.1:$((port + 2)) gateway2
start_gateway 127.0.0.1:$((port + 3)) gateway3

# The shipped config: its upstreams file pointed at these gateways, its
# other includes at the checkout.
sed -e "s|server 127.0.0.1:8091;|server 127.0.0.1:$((port + 1));|" \
    -e "s|server 127.0.0.1:8092;|server 127.0.0.1:$((port + 2));|" \
    -e "s|server 127.0.0.1:8093;|server 127.0.0.1:$((port + 3));|" \
    config/nginx/sockjs-upstreams.conf > "$work/sockjs-upstreams.conf"
sed -e "s|include sockjs-upstreams.conf;|include $work/sockjs-upstreams.conf;|" \
    -e "s|include sockjs-|include $root/config/nginx/sockjs-|" \
    -e "s|listen 8080;|listen 127.0.0.1:$port;|" \
    -e "s|pid /tmp/nginx.pid;|pid $work/nginx.pid;|" \
    -e "s|access_log /dev/stdout sockjs;|access_log $work/access.log sockjs;|" \
    config/nginx/nginx.conf > "$work/nginx.conf"
for line in "include $root/config/nginx/sockjs-proxy.conf;" "include $work/sockjs-upstreams.conf;" "listen 127.0.0.1:$port;" "pid $work/nginx.pid;"; do
  grep -qF "$line" "$work/nginx.conf" || { echo "nginx.conf substitution failed: $line" >&2; exit 1; }
done
grep -qF "server 127.0.0.1:$((port + 3));" "$work/sockjs-upstreams.conf" || { echo "sockjs-upstreams.conf substitution failed" >&2; exit 1; }
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
wait_up "http://127.0.0.1:$((port + 1))" "${pids[2]}"
wait_up "http://127.0.0.1:$((port + 2))" "${pids[3]}"
wait_up "http://127.0.0.1:$((port + 3))" "${pids[4]}"
wait_up "$url" "$nginx_pid"
# Each node in Redis (its presence), so that the others can forward to it.
for _ in $(seq 1 100); do
  [ "$(redis-cli -p "$redis_port" EXISTS sockjs-gateway:node:gateway1 sockjs-gateway:node:gateway2 sockjs-gateway:node:gateway3)" = 3 ] && break
  sleep 0.1
done

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
check "all three gateways served" "3" "$upstreams"
spread=$(grep -o 'session=e2e[0-9]* upstream=[0-9.:]*' "$work/access.log" | sort -u | cut -d' ' -f1 | uniq -d | wc -l)
check "round-robin sent a session's requests to several gateways" "true" "$([ "$spread" -ge 1 ] && echo true || echo "$spread")"
# A chat message from one session reaches another, wherever each lives.
a="chatA$RANDOM" b="chatB$RANDOM"
curl -fsS -X POST "$url/chat/000/$a/xhr" >/dev/null
curl -fsS -X POST "$url/chat/000/$b/xhr" >/dev/null
curl -fsS -o /dev/null -X POST -d '["across nodes"]' "$url/chat/000/$a/xhr_send"
check "chat across nodes" 'a["across nodes"]' "$(curl -fsS -X POST "$url/chat/000/$b/xhr")"
# The notifications demo: its page and client, and a demo token from one
# gateway signing in on another (a user queue is refused to anonymous
# sessions, so a RECEIPT for one means the token was accepted).
check "notifications page" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$url/notifications.html")"
check "stomp client" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$url/stomp-client/stomp.umd.min.js")"
stomp_send() { # session url, frame with \n for line breaks
  local body
  body=$(python3 -c 'import json,sys; print(json.dumps([sys.argv[1].replace("\\n", "\n") + "\0"]))' "$2")
  curl -fsS -o /dev/null -X POST -d "$body" "$1/xhr_send"
}
token=$(curl -fsS "http://127.0.0.1:$((port + 1))/demo/token?user=ann" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
on2="http://127.0.0.1:$((port + 2))/stomp/000/stomp$RANDOM"
curl -fsS -o /dev/null -X POST "$on2/xhr"
stomp_send "$on2" "CONNECT\naccept-version:1.2\nAuthorization:Bearer $token\n\n"
stomp_send "$on2" "SUBSCRIBE\nid:1\ndestination:/user/queue/x\nreceipt:r1\n\n"
answer=""
for _ in 1 2 3; do
  answer+=$(curl -fsS --max-time 10 -X POST "$on2/xhr")
  grep -qE 'RECEIPT|ERROR' <<< "$answer" && break
done
check "a demo token from gateway1 signs in on gateway2" "RECEIPT" "$(grep -oE 'RECEIPT|ERROR' <<< "$answer" | head -n 1)"
# A node lost: its sessions answer 4503 at once through the others, and
# new sessions work on the live ones.
owned="lost$RANDOM"
check "a session opened on gateway3" "o" "$(curl -fsS -X POST "http://127.0.0.1:$((port + 3))/echo/000/$owned/xhr")"
kill -9 "${pids[4]}"
check "a dead node's session closes at once" 'c[4503,"The node holding this session is gone"]' \
  "$(curl -fsS -X POST "$url/echo/000/$owned/xhr")"
for i in 1 2 3; do
  sid="after$RANDOM$i"
  check "session $i after the loss opens" "o" "$(curl -fsS -X POST "$url/echo/000/$sid/xhr")"
done

if [ "${1:-}" = "--keep" ]; then
  echo "topology up: $url (gateways on $((port + 1)) and $((port + 2))); Ctrl-C stops it"
  wait
fi
exit "$failed"
