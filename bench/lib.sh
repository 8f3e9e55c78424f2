# Shell helpers the bench scripts share (sourced, not run).

# Waits until something listens on 127.0.0.1:PORT; exits if nothing does
# within TRIES tenths of a second (default 50).
wait_port() { # port, name, tries
  for _ in $(seq 1 "${3:-50}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$2 did not start" >&2
  exit 1
}

# Percent of the whole machine busy over half a second: what else runs.
machine_busy() {
  local a b
  read -r -a a < /proc/stat
  sleep 0.5
  read -r -a b < /proc/stat
  python3 -c '
import sys
a, b = (list(map(int, x.split())) for x in sys.argv[1:3])
total = sum(b) - sum(a)
idle = (b[3] + b[4]) - (a[3] + a[4])
print(round(100 * (total - idle) / total, 1) if total else 0)' "${a[*]:1}" "${b[*]:1}"
}

# A scratch directory ($dir) and the processes started ($pids: append to
# it), both gone when the script exits.
scratch() {
  dir=$(mktemp -d)
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
}

# Starts a redis-server of the bench's own on PORT, on core 0, saving
# nothing; its PID in $redis_pid.
start_redis() { # port
  taskset -c 0 redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >/dev/null &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_port "$1" redis-server
}

# Starts a Redis Cluster of three masters (no replicas) on PORT, PORT+1
# and PORT+2 (their cluster bus 10000 above), on core 0, saving nothing,
# and waits until every slot is served; their PIDs in $shard_pids.
start_shards() { # port
  shard_pids=()
  local addrs=()
  for k in 0 1 2; do
    local port=$(($1 + k))
    # A new cluster each time: no nodes.conf of an earlier one.
    rm -rf "$dir/shard$port"
    mkdir -p "$dir/shard$port"
    (cd "$dir/shard$port" && exec taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf --dir "$dir/shard$port" >/dev/null) &
    shard_pids+=($!)
    pids+=($!)
    addrs+=("127.0.0.1:$port")
  done
  for k in 0 1 2; do wait_port $(($1 + k)) "shard $k"; done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for k in 0 1 2; do
    until redis-cli -p $(($1 + k)) CLUSTER INFO | grep -q 'cluster_state:ok'; do sleep 0.1; done
  done
}

# Waits (10 s at most) until N gateway nodes have joined on Redis at PORT
# (any node of a Redis Cluster).
until_joined() { # port, n
  for _ in $(seq 100); do
    [ "$(redis-cli -c -p "$1" SCARD sockjs-gateway:nodes)" = "$2" ] && return 0
    sleep 0.1
  done
}

# What every bench gateway's TOML starts with: its port, its API's port
# and key, no access log, no static files.
gateway_head() { # port, api port, key
  cat <<TOML
listen = "127.0.0.1:$1"
access_log = false
static_dir = ""
sockjs_client_path = ""
[api]
listen = "127.0.0.1:$2"
key = "$3"
TOML
}
