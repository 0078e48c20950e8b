#!/usr/bin/env bash
# The test command (README): sets up a fresh machine (services, npm packages, worker image) and runs every test
# with Node's built-in runner. Tests that need a service fail loudly when it is missing; nothing is skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/services.sh
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
ensure_node_modules
set -a
# shellcheck disable=SC1091
. "${WA_DATA_DIR:-$ROOT/data}/services.env"
set +a
if [ -f scripts/build-images.sh ] && [ "${WA_SKIP_DOCKER:-0}" != 1 ]; then bash scripts/build-images.sh; fi

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/*.test.ts test/security/*.test.ts)
exec node --import tsx --test --test-force-exit --test-concurrency=1 --test-timeout=600000 "${files[@]}"
