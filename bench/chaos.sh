#!/usr/bin/env bash
# The fault test (issue 29): three gateways on Redis behind nginx, clients
# on three transports recovering as docs/stomp.md says, a publisher that
# retries with idempotency_key, and a fault every 15-20 s, one at a time
# and two at once (bench/chaos.mjs says which). Prints
#   chaos: A acknowledged, S silent losses, D duplicates, O out of order, L announced losses
# and fails unless S, D and O are 0 and every retried publication arrived
# once. Needs redis-server, nginx and `npm ci`.
#   bash bench/chaos.sh                 (SECONDS_TO_RUN=180 CLIENTS=30 RATE=100)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release >&2
[ -d node_modules/sockjs-client ] || npm ci --no-audit --no-fund >&2
out=${OUT:-target/chaos-$(date +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$(dirname "$out")"
node bench/chaos.mjs | tee -a "$out"
