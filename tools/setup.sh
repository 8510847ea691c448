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

# WebGPU without a GPU: Mesa's lavapipe (software Vulkan) lets the WebGPU backend and its tests run
# on any machine. As root on Debian bookworm it comes from bookworm-backports (Mesa 25, the version
# the backend is tested with); elsewhere this only says what is missing. Failing to install is a
# warning, not an error: the rest of tp does not need it (and CI's WebGPU tests then fail loudly).
install_lavapipe() {
  local installed
  installed=$(dpkg-query -W -f='${Status}\n' libvulkan1 mesa-vulkan-drivers 2>/dev/null | grep -c 'install ok installed' || true)
  if [ "$installed" = 2 ] && compgen -G '/usr/share/vulkan/icd.d/lvp_icd*.json' >/dev/null; then return 0; fi # there: stay quiet
  local codename=""
  [ -r /etc/os-release ] && codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || [ "$codename" != bookworm ]; then
    say "note: Vulkan (libvulkan1, mesa-vulkan-drivers) is not installed; the WebGPU backend needs a GPU driver or lavapipe (as root on Debian bookworm this script installs it)"
    return 0
  fi
  say "installing libvulkan1 and mesa-vulkan-drivers (lavapipe) from bookworm-backports"
  local sources=/etc/apt/sources.list.d/bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat >"$sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  fi
  if ! { apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports libvulkan1 mesa-vulkan-drivers >/dev/null; }; then
    say "warning: installing lavapipe failed; the WebGPU backend's tests will find no adapter"
  fi
}
install_lavapipe

# Chromium for the WebGPU backend's browser test (headless, driven by playwright-core). As root on
# Debian it comes from the distribution (bookworm-security); elsewhere this only says it is missing.
install_chromium() {
  if command -v chromium >/dev/null 2>&1; then return 0; fi # there: stay quiet
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || ! grep -qs '^ID=debian' /etc/os-release; then
    say "note: chromium is not installed; the WebGPU backend's browser test needs it (as root on Debian this script installs it)"
    return 0
  fi
  say "installing chromium (for the WebGPU browser test)"
  if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    say "warning: installing chromium failed; the WebGPU browser test will not run"
  fi
}
install_chromium

say "installing dependencies (pnpm $(pnpm --version))"
pnpm install --frozen-lockfile

say "building"
pnpm build

say "done. Try: pnpm demo, pnpm test, pnpm tp plan <model-dir> --tp 2"
