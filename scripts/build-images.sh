#!/usr/bin/env bash
# Builds the wa-worker container image OFFLINE (no registry needed):
#   1. wa-node-base:24 — a minimal base image made with `docker import` from a root filesystem holding the project's
#      Node 24 binary (data/tools/node, installed by scripts/services.sh), the shared libraries `ldd` lists, and
#      /etc/passwd with a non-root user (uid 1000, "node").
#   2. whatsapp-worker-image:<version from package.json> — wa-worker/Dockerfile built with
#      --build-arg BASE_IMAGE=wa-node-base:24 from a staged context: the worker bundled with esbuild (packages external)
#      plus only the production node_modules it imports (their dependency closure, copied from the host's install).
# Idempotent and fast when up to date: each image carries a label with the hash of its inputs and is only rebuilt
# when that hash changes. For a real deployment, pass BASE_IMAGE=node:24-bookworm-slim (skips step 1).
#
# Env: BASE_IMAGE (default: build wa-node-base:24), IMAGE_NAME (whatsapp-worker-image), STAGE_DIR, FORCE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The project's Node 24 when scripts/services.sh installed it (a production host may bring its own node and a
# BASE_IMAGE instead).
if [ -x "${WA_DATA_DIR:-$ROOT/data}/tools/node/bin/node" ]; then
  # shellcheck source=scripts/node-env.sh
  . scripts/node-env.sh
fi

VERSION="$(node -p "require('./package.json').version")"
IMAGE_NAME="${IMAGE_NAME:-whatsapp-worker-image}"
IMAGE="${IMAGE_NAME}:${VERSION}"
NODE_MAJOR=24
LOCAL_BASE="wa-node-base:$NODE_MAJOR"
BASE_IMAGE="${BASE_IMAGE:-}"
STAGE_DIR="${STAGE_DIR:-$ROOT/node_modules/.cache/wa-worker-image}"
FORCE="${FORCE:-0}"

log() { printf '[build-images] %s\n' "$*" >&2; }
label_of() { docker image inspect "$1" --format "{{ index .Config.Labels \"$2\" }}" 2>/dev/null || true; }

command -v docker >/dev/null || { log "docker is not installed"; exit 1; }
docker info >/dev/null 2>&1 || { log "the docker daemon is not reachable"; exit 1; }

# ---------------------------------------------------------------- 1. local base image (docker import)
build_local_base() {
  local node_bin libs fingerprint rootfs
  node_bin="$(readlink -f "$(command -v node)")"
  [[ "$("$node_bin" --version)" == "v$NODE_MAJOR."* ]] ||
    { log "$LOCAL_BASE needs Node $NODE_MAJOR, found $node_bin $("$node_bin" --version): run bash scripts/services.sh or pass BASE_IMAGE=node:24-bookworm-slim"; exit 1; }
  # The system libraries node links, and those of the native addon the worker loads (sharp's libvips: libresolv).
  libs="$(
    for bin in "$node_bin" "$ROOT"/node_modules/@img/sharp-linux-*/lib/*.node; do
      [[ -f "$bin" ]] || continue
      ldd "$bin"
    done | awk '/=>/ && $3 ~ /^\// && $3 !~ /node_modules/ { print $3 } !/=>/ && $1 ~ /^\/.*[^:]$/ { print $1 }' | sort -u
  )"
  fingerprint="$(
    {
      echo "base-v1"
      sha256sum "$node_bin" | cut -d' ' -f1
      for l in $libs; do sha256sum "$(readlink -f "$l")" | cut -d' ' -f1; done
    } | sha256sum | cut -c1-32
  )"
  if [[ "$FORCE" != 1 && "$(label_of "$LOCAL_BASE" wa.base.fingerprint)" == "$fingerprint" ]]; then
    log "$LOCAL_BASE is up to date"
    return
  fi
  log "building $LOCAL_BASE from $node_bin ($("$node_bin" --version)) and $(echo "$libs" | wc -l) shared libraries"
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' RETURN
  mkdir -p "$rootfs"/{usr/local/bin,etc,tmp,app}
  chmod 1777 "$rootfs/tmp"
  cp "$node_bin" "$rootfs/usr/local/bin/node"
  for l in $libs; do
    mkdir -p "$rootfs$(dirname "$l")"
    cp -L "$l" "$rootfs$l"
  done
  cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
node:x:1000:1000:node:/home/node:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
  cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
node:x:1000:
nogroup:x:65534:
EOF
  echo 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
  tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . |
    docker import \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
      --change "LABEL wa.base.fingerprint=$fingerprint" \
      --change 'CMD ["node"]' \
      - "$LOCAL_BASE" >/dev/null
  "$(command -v docker)" run --rm --network none "$LOCAL_BASE" node -e 'process.exit(0)' ||
    { log "$LOCAL_BASE does not run node"; exit 1; }
}

if [[ -z "$BASE_IMAGE" ]]; then
  build_local_base
  BASE_IMAGE="$LOCAL_BASE"
fi
BASE_ID="$(docker image inspect "$BASE_IMAGE" --format '{{.Id}}' 2>/dev/null || true)"
[[ -n "$BASE_ID" ]] || { log "base image $BASE_IMAGE is not available locally (no registry here)"; exit 1; }

# ---------------------------------------------------------------- 2. staged build context
APP="$STAGE_DIR/app"
mkdir -p "$APP"

# Bundle the worker and the health check (our TypeScript only; npm packages stay external).
"$ROOT/node_modules/esbuild/bin/esbuild" wa-worker/main.ts wa-worker/healthcheck.ts \
  --bundle --platform=node --format=esm --target=node24 --packages=external \
  --outdir="$STAGE_DIR/bundle" --out-extension:.js=.mjs --metafile="$STAGE_DIR/meta.json" --log-level=warning
for f in main healthcheck; do
  cmp -s "$STAGE_DIR/bundle/$f.mjs" "$APP/$f.mjs" 2>/dev/null || cp "$STAGE_DIR/bundle/$f.mjs" "$APP/$f.mjs"
done

# Copy the production dependency closure of the bundle's external imports from the host's node_modules.
node --input-type=module - "$ROOT" "$STAGE_DIR" <<'EOF'
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
const [root, stage] = process.argv.slice(2);
const meta = JSON.parse(fs.readFileSync(path.join(stage, 'meta.json'), 'utf8'));
const roots = new Set();
for (const input of Object.values(meta.inputs)) {
  for (const imp of input.imports ?? []) {
    if (!imp.external || imp.path.startsWith('node:')) continue;
    const parts = imp.path.split('/');
    roots.add(imp.path.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
  }
}
const builtins = new Set((await import('node:module')).builtinModules);
// Node resolution: from a package directory, look in its own node_modules, then each ancestor's.
function resolvePkg(fromDir, name) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === path.dirname(dir)) return null;
  }
}
const closure = new Map(); // dir -> name@version
const queue = [...roots].filter((n) => !builtins.has(n)).map((n) => [root, n, true]);
while (queue.length) {
  const [from, name, required] = queue.shift();
  const dir = resolvePkg(from, name);
  if (!dir) {
    if (required) throw new Error(`cannot resolve ${name} from ${from}`);
    continue;
  }
  if (closure.has(dir)) continue;
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  closure.set(dir, `${pkg.name}@${pkg.version}`);
  for (const d of Object.keys(pkg.dependencies ?? {})) queue.push([dir, d, true]);
  for (const d of Object.keys(pkg.optionalDependencies ?? {})) queue.push([dir, d, false]);
}
const manifest = [...closure.entries()].map(([d, id]) => `${path.relative(root, d)} ${id}`).sort().join('\n');
const manifestFile = path.join(stage, 'modules.manifest');
const dest = path.join(stage, 'app');
const previous = fs.existsSync(manifestFile) ? fs.readFileSync(manifestFile, 'utf8') : '';
if (previous === manifest && fs.existsSync(path.join(dest, 'node_modules'))) {
  console.error(`[build-images] node_modules closure unchanged (${closure.size} packages)`);
  process.exit(0);
}
fs.rmSync(path.join(dest, 'node_modules'), { recursive: true, force: true });
const drop = /(\.d\.ts|\.d\.mts|\.d\.cts|\.map|\.md|\.markdown|\.tsbuildinfo)$/i;
for (const dir of closure.keys()) {
  const rel = path.relative(root, dir);
  fs.cpSync(dir, path.join(dest, rel), {
    recursive: true,
    filter: (src) => {
      const r = path.relative(dir, src);
      if (r === 'node_modules' || r.startsWith(`node_modules${path.sep}`)) return false;
      return !(fs.statSync(src).isFile() && drop.test(src) && !/LICEN[SC]E/i.test(src));
    },
  });
}
fs.writeFileSync(path.join(dest, 'package.json'), JSON.stringify({ name: 'wa-worker', private: true, type: 'module' }) + '\n');
// Build-stage check: every external import of the bundle resolves inside the image.
fs.writeFileSync(
  path.join(dest, 'verify-modules.mjs'),
  `const names = ${JSON.stringify([...roots].filter((n) => !builtins.has(n)).sort())};\n` +
    `for (const n of names) await import(n);\nconsole.log('modules ok: ' + names.join(', '));\n`,
);
fs.writeFileSync(manifestFile, manifest);
console.error(`[build-images] staged ${closure.size} packages: ${[...roots].sort().join(', ')} (+ dependencies)`);
EOF

# ---------------------------------------------------------------- 3. worker image
INPUTS="$(
  {
    echo "worker-v1 $BASE_ID"
    sha256sum wa-worker/Dockerfile
    (cd "$STAGE_DIR" && find app -type f -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-32
)"
if [[ "$FORCE" != 1 && "$(label_of "$IMAGE" wa.worker.inputs)" == "$INPUTS" ]]; then
  log "$IMAGE is up to date"
else
  log "building $IMAGE on $BASE_IMAGE"
  # Its output is kept for a failure only: a successful build prints nothing (not even the notice that the
  # legacy builder is deprecated, which Debian's docker.io prints on every build without buildx).
  if ! build_out="$(docker build --quiet \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --label wa.worker.inputs="$INPUTS" \
    --label org.opencontainers.image.version="$VERSION" \
    -t "$IMAGE" -f wa-worker/Dockerfile "$STAGE_DIR" 2>&1 >/dev/null)"; then
    printf '%s\n' "$build_out" >&2
    log "docker build of $IMAGE failed"
    exit 1
  fi
  # Drop the build stage and superseded worker images (only images this script labelled).
  docker image prune --all --force --filter "label=wa.stage=wa-worker-build" >/dev/null 2>&1 || true
  docker image prune --force --filter "label=wa.worker.inputs" >/dev/null 2>&1 || true
fi
SIZE="$(docker image inspect "$IMAGE" --format '{{.Size}}')"
log "$IMAGE ready ($((SIZE / 1024 / 1024)) MB)"
echo "$IMAGE"
