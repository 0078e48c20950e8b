#!/usr/bin/env bash
# Starts the product: local services (Redis, Temporal dev server, Docker), the orchestrator and the API (with the
# dashboard). Runs in the foreground; Ctrl-C stops what it started (sessions' workers keep their auth data).
#
#   bash scripts/start.sh --demo   embedded defaults + the WhatsApp simulator and 4 local SOCKS5 proxies:
#                                  provision, "scan" with a simulated phone, send messages, all on this machine.
#                                  One Docker container per session when Docker is available (the worker image is
#                                  built on first run), else one child process per session.
#   --runner docker|process        demo only: choose how sessions run (process: for machines without Docker).
#   bash scripts/start.sh          real WhatsApp: configuration from the environment and ./.env (see .env.example).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEMO=0
RUNNER_ARG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --demo) DEMO=1 ;;
    --runner)
      RUNNER_ARG="${2:-}"
      shift
      ;;
    --runner=*) RUNNER_ARG="${1#--runner=}" ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (use --demo [--runner docker|process] or nothing)" >&2; exit 2 ;;
  esac
  shift
done
case "$RUNNER_ARG" in
  "" | docker | process) ;;
  *) echo "--runner must be docker or process, not '$RUNNER_ARG'" >&2; exit 2 ;;
esac
[ -z "$RUNNER_ARG" ] || [ "$DEMO" = 1 ] || { echo "--runner is for --demo; otherwise set RUNNER in .env" >&2; exit 2; }

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
touch "$DATA/logs/orchestrator.log" "$DATA/logs/api.log"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "[start] stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$DEMO" = 1 ] && [ "${RUNNER:-process}" = process ]; then
    # Demo workers are child processes: stop them too; their auth folders stay for next time.
    for f in "$DATA"/run/"${TEMPORAL_TASK_QUEUE:-demo-sessions}"@*/*.json; do
      [ -f "$f" ] || continue
      pid="$(node -p "JSON.parse(require('fs').readFileSync('$f','utf8')).pid")"
      kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
  elif [ "$DEMO" = 1 ]; then
    # Demo containers (this demo's host label only): stopped and removed; their auth folders stay on the host, and
    # the next start recreates the containers of connected sessions without a new scan.
    mapfile -t ids < <(docker ps -aq --filter label=wa.managed-by=wa-orchestrator --filter "label=wa.host=${HOST_ID:-demo}")
    if [ ${#ids[@]} -gt 0 ]; then
      docker stop -t 10 "${ids[@]}" >/dev/null 2>&1 || true
      docker rm -f "${ids[@]}" >/dev/null 2>&1 || true
    fi
  fi
}
# Ctrl-C / SIGTERM: stop everything and exit at once (not back into `wait -n`, which would then report a process
# exit that was our own doing).
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

if [ "$DEMO" = 1 ]; then
  # Secrets are generated once and kept in data/demo.env, so a restart keeps the same key.
  if [ ! -f "$DATA/demo.env" ]; then
    {
      echo "API_KEY=demo-$(node -e "process.stdout.write(require('crypto').randomBytes(16).toString('hex'))")"
      echo "WEBHOOK_SECRET=$(node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))")"
    } >"$DATA/demo.env"
    chmod 600 "$DATA/demo.env"
  fi
  # Payload codec key (Temporal history encrypted at rest); added to older demo.env files too.
  if ! grep -q '^TEMPORAL_CODEC_KEYS=' "$DATA/demo.env"; then
    echo "TEMPORAL_CODEC_KEYS=demo1:$(node -e "process.stdout.write(require('crypto').randomBytes(32).toString('base64'))")" >>"$DATA/demo.env"
  fi
  set -a
  # shellcheck disable=SC1091
  . "$DATA/demo.env"
  API_PORT="${API_PORT:-3000}"
  # One container per session when Docker answers; --runner (or RUNNER) chooses explicitly.
  RUNNER="${RUNNER_ARG:-${RUNNER:-}}"
  if [ -z "$RUNNER" ]; then
    if [ "${WA_SKIP_DOCKER:-0}" != 1 ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      RUNNER=docker
    else
      RUNNER=process
      echo "[start] Docker is not available: sessions run as child processes (--runner process)"
    fi
  fi
  # Its own host label, so the demo's orchestrator never adopts or removes containers of another deployment on the
  # same Docker daemon (and its Ctrl-C removes only its own).
  HOST_ID="${HOST_ID:-demo}"
  PROXY_URLS="socks5h://demo:demo-secret@127.0.0.1:1080,socks5h://demo:demo-secret@127.0.0.1:1081,socks5h://demo:demo-secret@127.0.0.1:1082,socks5h://demo:demo-secret@127.0.0.1:1083"
  WA_WEBSOCKET_URL="ws://127.0.0.1:9400/ws/chat"
  DEMO_SIMULATOR_URL="http://127.0.0.1:9401"
  # Baileys 7 verifies the server certificate chain: workers trust the simulator's published development root.
  WORKER_ENV_WA_CERT_ROOT_PUBLIC_KEY="848f8477acda24c92840decc71a3e73d8fc560f8eb151a130cf1a52a70e8da03"
  WEBHOOK_URL="http://127.0.0.1:$API_PORT/api/webhook"
  SESSIONS_DIR="$DATA/demo/sessions"
  BACKUPS_DIR="$DATA/demo/backups"
  REDIS_KEY_PREFIX="${REDIS_KEY_PREFIX:-demo:}"
  WORKFLOW_ID_PREFIX="${WORKFLOW_ID_PREFIX:-demo}"
  TEMPORAL_TASK_QUEUE="${TEMPORAL_TASK_QUEUE:-demo-sessions}"
  DOCKER_NETWORK="host"
  set +a
  mkdir -p "$SESSIONS_DIR" "$BACKUPS_DIR"
  if [ "$RUNNER" = docker ]; then
    echo "[start] preparing the worker image (one container per session; the first build takes a few seconds)..."
    WORKER_IMAGE="$(bash scripts/build-images.sh 2> >(sed 's/^\[build-images\]/[start] image:/' >&2))" ||
      { echo "[start] the worker image did not build; try --runner process" >&2; exit 1; }
    export WORKER_IMAGE
  fi
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

orch_log_start=$(($(wc -c <"$DATA/logs/orchestrator.log") + 1))
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
  Runner:         ${RUNNER:-docker}$([ "${RUNNER:-docker}" = docker ] && echo " — one container per session (docker ps --filter name=wa_session_)" || echo " — one child process per session")
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
