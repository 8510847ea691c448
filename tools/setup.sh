#!/usr/bin/env bash
# Sets up a fresh machine for tp: checks Node, installs pnpm 12.4.2 when missing, installs the
# workspace from the lockfile and builds every package. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.4.2
say() { printf 'setup: %s\n' "$*"; }

node_version=$(node -p 'process.versions.node' 2>/dev/null || true)
if [ -z "$node_version" ]; then
  echo "setup: Node.js is not installed; tp needs Node >= 20.19 (https://nodejs.org)" >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "setup: Node $node_version is too old; tp needs Node >= 20.19" >&2
  exit 1
fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  say "installing pnpm $PNPM_VERSION"
  npm install --global "pnpm@$PNPM_VERSION" --no-audit --no-fund >/dev/null
fi

say "installing dependencies (pnpm $(pnpm --version))"
pnpm install --frozen-lockfile

say "building"
pnpm build

say "done. Try: pnpm demo, pnpm test, pnpm tp plan <model-dir> --tp 2"
