#!/usr/bin/env bash
# Where a server's user-space time goes per message, as repeatable
# instruction counts: runs the server under valgrind's callgrind (pinned to
# core 0) while sockjs-bench drives one scenario (core 1), then prints the
# instructions per message and the functions that execute most of them.
#   bash bench/profile.sh ours ws-echo
#   bash bench/profile.sh bare ws-echo
#   bash bench/profile.sh ours xhr-polling      (also xhr-streaming, eventsource)
#   bash bench/profile.sh proxy ws-echo         (kind = "proxy" to upstream-echo on core 1)
# Kernel time is not counted: callgrind sees user space only. Needs
# valgrind (Debian package). DURATION (default 8 s), TOP (default 25).
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:?ours, bare or proxy}
scenario=${2:?ws-echo, xhr-polling, xhr-streaming or eventsource}
DURATION=${DURATION:-8}
TOP=${TOP:-25}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
# Built as compare.sh builds them (one package per command: no rebuilds).
cargo build --release >&2
cargo build --release -p sockjs-bench >&2

dir=$(mktemp -d)
upstream=""
trap 'rm -rf "$dir"; [ -z "$upstream" ] || kill "$upstream" 2>/dev/null' EXIT
case $server in
  ours) cmd=(target/release/sockjs-gateway --config bench/gateway.toml); port=8090
        url=http://127.0.0.1:8090/echo; proto=sockjs ;;
  bare) cmd=(target/release/bare-ws-echo 127.0.0.1:8092); port=8092
        url=http://127.0.0.1:8092/ws; proto=raw ;;
  proxy) cmd=(target/release/sockjs-gateway --config bench/gateway.toml); port=8090
        url=http://127.0.0.1:8090/proxied; proto=sockjs
        taskset -c 1 target/release/upstream-echo 127.0.0.1:8093 >/dev/null &
        upstream=$! ;;
  *) echo "server: ours, bare or proxy" >&2; exit 2 ;;
esac
case $scenario in
  ws-echo) load=(--sessions 100 --inflight 1 --size 128) ;;
  xhr-polling|xhr-streaming|eventsource) load=(--sessions 50) ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac

RUST_LOG=warn taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$dir/out" \
  "${cmd[@]}" >/dev/null 2>"$dir/valgrind.log" &
pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
taskset -c 1 target/release/sockjs-bench "$scenario" --url "$url" --protocol "$proto" "${load[@]}" \
  --duration "$DURATION" --warmup 0 --label "$server" | sed -n 's/^RESULT //p' > "$dir/result"
kill -INT "$pid"
wait "$pid" || true

python3 - "$dir/result" "$dir/out" "$server" "$scenario" "$TOP" <<'PY'
import json, re, subprocess, sys
result, out, server, scenario, top = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
messages = json.load(open(result))["messages"]
total = next(int(l.split()[1]) for l in open(out) if l.startswith("totals:"))
print(f"{server} {scenario}: {messages} messages, {total / messages:,.0f} instructions per message (user space)")
annotated = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", out],
                           capture_output=True, text=True).stdout
rows = [l for l in annotated.splitlines() if re.match(r"^\s*[\d,]+ \(", l)][1:top + 1]
for l in rows:
    count = int(l.split()[0].replace(",", ""))
    name = l[l.index(")") + 1:].strip()
    name = re.sub(r"/root/\.cargo/registry/src/[^/]+/", "", name)
    name = re.sub(r"/rustc/[0-9a-f]+/library/", "", name)
    name = re.sub(r" \[[^\]]*\]$", "", name)
    print(f"{count / messages:8,.0f}  {name[:150]}")
PY
