#!/usr/bin/env bash
# Builds the container image and runs it here, without a Docker engine:
#  1. a Debian bookworm base made with debootstrap (nothing is pulled);
#  2. the Dockerfile's `prebuilt` target on it, with buildah
#     (--isolation chroot), from the binary cargo built and the
#     sockjs-client npm installed: the runtime stage of the normal build;
#  3. the image's own entrypoint, command and user, run inside it with
#     `buildah run`, on the host network;
#  4. checks: /healthz, an echo session over WebSocket and over
#     xhr-polling, the iframe page's client script, and the process's uid.
# Needs root, buildah and debootstrap (Debian packages).
#   cargo build --release && npm ci && bash tests/e2e/image-check.sh
# The base is cached in IMAGE_CHECK_CACHE (default target/image-check).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
cache="${IMAGE_CHECK_CACHE:-$root/target/image-check}"
port="${PORT:-18480}"
export BUILDAH_ISOLATION=chroot
image=localhost/sockjs-gateway:check

for tool in buildah debootstrap curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
for f in target/release/sockjs-gateway node_modules/sockjs-client/dist/sockjs.min.js; do
  [ -e "$f" ] || { echo "$f is missing: run cargo build --release && npm ci" >&2; exit 1; }
done
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is already in use; set PORT" >&2
  exit 1
fi

echo "== base: debian bookworm by debootstrap"
base_image=$(bash tests/e2e/debian-base.sh "$cache")

echo "== image: Dockerfile target prebuilt"
# Docker format: OCI image configs have no HEALTHCHECK.
buildah build -q --isolation chroot --network host --layers --format docker \
  --build-arg "BASE=$base_image" --target prebuilt -t "$image" . >/dev/null

# The image's own metadata decides what runs, as whom, and the health check.
meta=$(buildah inspect --type image "$image")
field() { python3 -c '
import json, shlex, sys
c = json.loads(sys.stdin.read())["Docker"]["config"]
f = sys.argv[1]
if f == "user": print(c.get("User", ""))
elif f == "command": print(shlex.join((c.get("Entrypoint") or []) + (c.get("Cmd") or [])))
elif f == "healthcheck":
    t = (c.get("Healthcheck") or {}).get("Test") or []
    print(shlex.join(t[1:]) if t[:1] == ["CMD"] else "")
' "$1" <<< "$meta"; }
user=$(field user)
entry=$(field command)
health=$(field healthcheck)
echo "user $user; command: $entry; healthcheck: $health"
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || { echo "the image runs as root" >&2; exit 1; }
[ -n "$health" ] || { echo "the image has no HEALTHCHECK" >&2; exit 1; }

ctr=$(buildah from "$image")
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  buildah rm "$ctr" >/dev/null 2>&1 || echo "could not remove container $ctr" >&2
}
trap cleanup EXIT INT TERM
log="$cache/run.log"
mkdir -p "$cache"
# shellcheck disable=SC2086 # the image's command, split as the engine would
buildah run --isolation chroot --network host --user "$user" \
  --env "SOCKJS_GATEWAY__LISTEN=127.0.0.1:$port" "$ctr" -- $entry > "$log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "$url/healthz" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "the image's gateway exited" >&2; exit 1; }
  sleep 0.1
done

failed=0
check() { # name, expected, actual
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected [$2], got [$3]"; failed=1; fi
}
check "healthz" "ok" "$(curl -fsS "$url/healthz")"
# The HEALTHCHECK, inside the image, against the port it expects (8080):
# run it with the port this check uses.
# shellcheck disable=SC2086 # the image's command, split as the engine would
check "the image's HEALTHCHECK passes" "0" "$(buildah run --isolation chroot --network host "$ctr" -- \
  ${health//127.0.0.1:8080/127.0.0.1:$port} >/dev/null 2>&1; echo $?)"
sid="img$RANDOM"
check "xhr-polling opens" "o" "$(curl -fsS -X POST "$url/echo/000/$sid/xhr")"
check "xhr-polling send" "204" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '["über"]' "$url/echo/000/$sid/xhr_send")"
check "xhr-polling echo" 'a["über"]' "$(curl -fsS -X POST "$url/echo/000/$sid/xhr")"
# The notifications demo: its STOMP client is in the image; its sign-in
# (anyone can be anyone) is off unless SOCKJS_GATEWAY__AUTH__DEMO_LOGIN=true,
# as the compose demo sets it.
check "stomp client" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$url/stomp-client/stomp.umd.min.js")"
check "demo sign-in off by default" "404" "$(curl -s -o /dev/null -w '%{http_code}' "$url/demo/token?user=ann")"
check "websocket echo" 'o a["hello from the image"]' "$(python3 - "$port" <<'EOF'
# One SockJS WebSocket session by hand: handshake, a masked text frame,
# then the first two frames back.
import base64, os, socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET /echo/000/ws{os.getpid()}/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, buf = buf.split(b"\r\n\r\n", 1)
assert b" 101 " in head.split(b"\r\n")[0], head
def frame():
    global buf
    while True:
        if len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                n, off = struct.unpack(">H", buf[2:4])[0], 4
            if len(buf) >= off + n:
                data, buf = buf[off:off + n], buf[off + n:]
                return data.decode()
        buf += s.recv(4096)
payload = b'["hello from the image"]'
mask = os.urandom(4)
s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
print(frame(), frame())
EOF
)"
iframe=$(curl -fsS "$url/echo/iframe.html")
src=$(sed -n 's/.*<script src="\([^"]*\)".*/\1/p' <<< "$iframe" | head -n 1)
script_url=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urljoin(sys.argv[1], sys.argv[2]))' "$url/echo/iframe.html" "$src")
check "iframe page's client script ($script_url)" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$script_url")"
check "it is sockjs-client" "1" "$(curl -fsS "$script_url" | grep -c -m1 'SockJS' || true)"
# The process that holds the listening socket is the gateway itself.
gw_pid=$(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true)
check "the gateway runs as the image's user" "$user" "$( [ -n "$gw_pid" ] && awk '/^Uid:/ {print $2}' "/proc/$gw_pid/status")"
exit "$failed"
