#!/usr/bin/env bash
# The CUDA backend's check on a GPU host: runs check.mjs with the node bundled next to it (bundle.sh
# ships it xz-compressed; it needs only glibc and libstdc++), or a node >= 20.19 on PATH.
#
#   ./check.sh --quick        conformance, golden TP=1/2 (six families), one benchmark: under 4 minutes
#   ./check.sh                everything (all 22 decoder families, worlds 1-4, the TP=2 benchmark)
#   ./check.sh --dry-run      every step but the GPU ones, the CPU backend standing in (any machine)
#
# Prints a short table last; exits 1 when a check failed. No network is needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

node_bin=""
if [ -f "$here/node.xz" ]; then
  node_bin="$here/bin/node"
  if [ ! -x "$node_bin" ]; then
    mkdir -p "$here/bin"
    if command -v xz >/dev/null 2>&1; then
      xz -dc "$here/node.xz" >"$node_bin.part"
    elif command -v python3 >/dev/null 2>&1; then
      python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$here/node.xz" "$node_bin.part"
    else
      echo "check.sh: cannot decompress node.xz: neither xz nor python3 is installed" >&2
      exit 2
    fi
    chmod +x "$node_bin.part"
    mv "$node_bin.part" "$node_bin"
  fi
elif command -v node >/dev/null 2>&1; then
  node_bin=$(command -v node)
else
  echo "check.sh: no node: run bundle.sh (it ships one) or install Node >= 20.19" >&2
  exit 2
fi

if ! "$node_bin" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "check.sh: $("$node_bin" --version) is too old; tp needs Node >= 20.19" >&2
  exit 2
fi
exec "$node_bin" "$here/check.mjs" "$@"
