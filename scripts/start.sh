#!/usr/bin/env bash
# Starts the product: local services (Redis, Temporal dev server, Docker), the orchestrator and the API (with the
# dashboard). Runs in the foreground; Ctrl-C stops what it started (sessions' workers keep their auth data).
#
#   bash scripts/start.sh --demo   embedded defaults + the WhatsApp simulator and 4 local SOCKS5 proxies:
#                                  provision, "scan" with a simulated phone, send messages, all on this machine.
#   bash scripts/start.sh          real WhatsApp: configuration from the environment and ./.env (see .env.example).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEMO=0
for arg in "$@"; do
  case "$arg" in
    --demo) DEMO=1 ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (use --demo or nothing)" >&2; exit 2 ;;
  esac
done

bash scripts/services.sh
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
ensure_node_modules
DATA="${WA_DATA_DIR:-$ROOT/data}"
set -a
# shellcheck disable=SC1091
. "$DATA/services.env"
set +a
mkdir -p "$DATA/logs"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "[start] stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$DEMO" = 1 ]; then
    # Demo workers are child processes (RUNNER=process): stop them too; their auth folders stay for next time.
    for f in "$DATA"/run/"$TEMPORAL_TASK_QUEUE"@*/*.json; do
      [ -f "$f" ] || continue
      pid="$(node -p "JSON.parse(require('fs').readFileSync('$f','utf8')).pid")"
      kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
  fi
}
trap cleanup INT TERM EXIT

if [ "$DEMO" = 1 ]; then
  # Secrets are generated once and kept in data/demo.env, so a restart keeps the same key.
  if [ ! -f "$DATA/demo.env" ]; then
    {
      echo "API_KEY=demo-$(node -e "process.stdout.write(require('crypto').randomBytes(16).toString('hex'))")"
      echo "WEBHOOK_SECRET=$(node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))")"
    } >"$DATA/demo.env"
    chmod 600 "$DATA/demo.env"
  fi
  set -a
  # shellcheck disable=SC1091
  . "$DATA/demo.env"
  API_PORT="${API_PORT:-3000}"
  RUNNER="${RUNNER:-process}"
  PROXY_URLS="socks5h://demo:demo-secret@127.0.0.1:1080,socks5h://demo:demo-secret@127.0.0.1:1081,socks5h://demo:demo-secret@127.0.0.1:1082,socks5h://demo:demo-secret@127.0.0.1:1083"
  WA_WEBSOCKET_URL="ws://127.0.0.1:9400/ws/chat"
  DEMO_SIMULATOR_URL="http://127.0.0.1:9401"
  WEBHOOK_URL="http://127.0.0.1:$API_PORT/api/webhook"
  SESSIONS_DIR="$DATA/demo/sessions"
  BACKUPS_DIR="$DATA/demo/backups"
  REDIS_KEY_PREFIX="${REDIS_KEY_PREFIX:-demo:}"
  WORKFLOW_ID_PREFIX="${WORKFLOW_ID_PREFIX:-demo}"
  TEMPORAL_TASK_QUEUE="${TEMPORAL_TASK_QUEUE:-demo-sessions}"
  DOCKER_NETWORK="host"
  set +a
  mkdir -p "$SESSIONS_DIR" "$BACKUPS_DIR"
  node --import tsx simulator/main.ts >"$DATA/logs/simulator.out" 2>"$DATA/logs/simulator.log" &
  pids+=($!)
else
  if [ -f .env ]; then
    set -a
    # shellcheck disable=SC1091
    . ./.env
    set +a
  fi
  API_PORT="${API_PORT:-3000}"
fi

# Fail fast, with the one configuration message, before starting anything long-lived.
node --import tsx -e "import('./common/config.ts').then((m) => m.loadConfigOrExit())"

orch_log_start=$(($(wc -c <"$DATA/logs/orchestrator.log" 2>/dev/null || echo 0) + 1))
node --import tsx orchestrator/main.ts >>"$DATA/logs/orchestrator.log" 2>&1 &
pids+=($!)
node --import tsx api/main.ts >>"$DATA/logs/api.log" 2>&1 &
pids+=($!)

orchestrator_ready() { tail -c "+$orch_log_start" "$DATA/logs/orchestrator.log" 2>/dev/null | grep -q 'orchestrator ready'; }
for _ in $(seq 1 240); do
  if curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && orchestrator_ready; then break; fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "[start] a process exited early; see $DATA/logs/" >&2; exit 1; }
  done
  sleep 0.25
done
curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null || { echo "[start] API not ready; see $DATA/logs/api.log" >&2; exit 1; }
orchestrator_ready || { echo "[start] orchestrator not ready; see $DATA/logs/orchestrator.log" >&2; exit 1; }

cat <<EOF

  WhatsApp session orchestrator is running$([ "$DEMO" = 1 ] && echo " (demo: simulated WhatsApp, 4 local SOCKS5 proxies)")
  Dashboard:      http://127.0.0.1:$API_PORT/
  API key:        $API_KEY
  API docs:       http://127.0.0.1:$API_PORT/api/openapi.json
  Temporal UI:    ${TEMPORAL_UI_URL:-http://127.0.0.1:8233}
  Logs:           $DATA/logs/

  Try it:
    curl -s -X POST -H "X-API-Key: $API_KEY" -H 'content-type: application/json' \\
         -d '{"sessionId":"demo1"}' http://127.0.0.1:$API_PORT/api/sessions/provision
$([ "$DEMO" = 1 ] && echo "    curl -s -X POST -H \"X-API-Key: $API_KEY\" -H 'content-type: application/json' -d '{\"phone\":\"15550001111\"}' \\
         http://127.0.0.1:$API_PORT/api/demo/sessions/demo1/scan      # a simulated phone scans the QR")
    curl -s -H "X-API-Key: $API_KEY" http://127.0.0.1:$API_PORT/api/sessions/demo1/status

  Ctrl-C stops it.
EOF
wait -n "${pids[@]}" || true
echo "[start] a process exited; see $DATA/logs/" >&2
