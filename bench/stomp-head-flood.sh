#!/usr/bin/env bash
# The pre-auth STOMP head flood (issue 18): one xhr_send of N short lines,
# ["SEND\n","a\n","a\n",...], to a fresh session of a stomp service that
# never saw a CONNECT. Prints the gateway's CPU seconds per request for
# each N (linear work: each doubling of N about doubles it), with the
# default limits and with max_headers lifted so the whole head is
# buffered; then /healthz's answer time while two 32,000-line floods run
# at once on a 2-worker gateway.
#   cargo build --release && bash bench/stomp-head-flood.sh
#   GATEWAY_BIN=/path/to/another/build bash bench/stomp-head-flood.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin="${GATEWAY_BIN:-target/release/sockjs-gateway}"
PORT="${PORT:-18190}"
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

run() { # label, extra service keys
  cat >"$dir/gw.toml" <<TOML
listen = "127.0.0.1:$PORT"
workers = 2
access_log = false
[auth]
anonymous = true
[services.stomp]
prefix = "/stomp"
kind = "stomp"
$2
TOML
  RUST_LOG=error "$bin" --config "$dir/gw.toml" >/dev/null &
  pid=$!
  wait_port "$PORT" gateway
  python3 - "$PORT" "$pid" "$1" <<'PY'
import http.client, json, os, sys, threading, time
port, pid, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def post(path, body=""):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", path, body)
    r = c.getresponse(); r.read(); c.close()
    return r.status
def flood(sid, n):
    post(f"/stomp/000/{sid}/xhr")
    return post(f"/stomp/000/{sid}/xhr_send", json.dumps(["SEND\n"] + ["a\n"] * n))
for n in (4000, 8000, 16000, 32000):
    before = cpu()
    status = flood(f"f{n}", n)
    print(f"{label}: n={n:6d} status {status} cpu {cpu() - before:.3f} s")
threads = [threading.Thread(target=flood, args=(f"t{i}", 32000)) for i in range(2)]
for t in threads: t.start()
worst = 0.0
while any(t.is_alive() for t in threads):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/healthz"); c.getresponse().read(); c.close()
    worst = max(worst, time.monotonic() - t0)
    time.sleep(0.01)
for t in threads: t.join()
print(f"{label}: /healthz during two 32,000-line floods: worst {worst:.3f} s")
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

run "default limits" ""
run "max_headers lifted" "max_headers = 1000000
max_frame_bytes = 4194304"
