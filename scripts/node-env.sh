# Sourced (not run) by every entry script after scripts/services.sh: puts the project's Node 24 LTS
# (data/tools/node, installed by scripts/services.sh) first on PATH, so node, npm, npx, tsx and every process they
# start (API, orchestrator, process-runner workers, tests: all spawn process.execPath) run on it. The machine's own
# node is left as it is. Expects ROOT (the repository root); honours WA_DATA_DIR like scripts/services.sh.
WA_NODE_BIN="${WA_DATA_DIR:-$ROOT/data}/tools/node/bin"
if [ ! -x "$WA_NODE_BIN/node" ]; then
  echo "$(basename "$0"): Node 24 is missing from $WA_NODE_BIN; run: bash scripts/services.sh" >&2
  exit 1
fi
case ":$PATH:" in
  ":$WA_NODE_BIN:"*) ;;
  *) PATH="$WA_NODE_BIN:$PATH" ;;
esac
# Native addons built by npm (node-gyp) compile against this Node's own headers, whatever a user .npmrc `nodedir`
# says (node-gyp gives this variable precedence; npm itself does not read it, so it prints no config warning).
npm_package_config_node_gyp_nodedir="$(cd -P "$WA_NODE_BIN/.." && pwd)"
export PATH WA_NODE_BIN npm_package_config_node_gyp_nodedir
hash -r

# Installs the locked packages when node_modules is missing, and rebuilds native addons once when node_modules was
# built by a Node with another ABI (e.g. a checkout installed before the switch to Node 24).
ensure_node_modules() {
  local abi stamp=node_modules/.node-abi
  abi="$(node -p process.versions.modules)"
  if [ ! -d node_modules/@temporalio/worker ]; then
    npm install --no-audit --no-fund
    echo "$abi" >"$stamp"
  elif [ "$(cat "$stamp" 2>/dev/null)" != "$abi" ]; then
    echo "[node] rebuilding native addons for node $(node --version)"
    npm rebuild >/dev/null
    echo "$abi" >"$stamp"
  fi
}
