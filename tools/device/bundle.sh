#!/usr/bin/env bash
# Makes a self-contained folder for checking the CUDA backend on a GPU host that has no network and
# no Node: this machine's node binary (xz-compressed; it needs only glibc and libstdc++), the built
# packages (@tp/core, @tp/backend-cuda with its addon and fatbin, @tp/backend-cpu for references)
# laid out as node_modules, the check scripts, and the decoder golden checkpoints (../shared does not travel). It must stay under 60 MB.
#
#   tools/device/bundle.sh [--out DIR] [--golden DIR] [--no-node] [--no-build]
#
# Default DIR: .cache/device/bundle. On the GPU host: DIR/check.sh --quick (see check.sh).
# The compressed node is cached in .cache/device/ (xz takes a minute or two on a small machine).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/.cache/device/bundle"
golden="${TP_GOLDEN_DIR:-$repo/../shared/golden}"
with_node=1
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --golden) golden=$2; shift 2 ;;
    --no-node) with_node=0; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bundle.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
say() { printf 'bundle: %s\n' "$*"; }
limit=$((60 * 1024 * 1024))

if [ "$build" = 1 ]; then
  say "building @tp/core, @tp/backend-cuda, @tp/backend-cpu"
  (cd "$repo" && pnpm exec turbo run build --filter=@tp/core --filter=@tp/backend-cuda --filter=@tp/backend-cpu --output-logs=errors-only)
fi
cuda_dist="$repo/packages/backend-cuda/dist"
for f in index.js tp_cuda.node kernels.fatbin; do
  if [ ! -f "$cuda_dist/$f" ]; then
    echo "bundle.sh: $cuda_dist/$f is missing; the GPU check needs the addon and the kernels (a C++ compiler and nvcc at pnpm build; see dist/build-info.json)" >&2
    exit 1
  fi
done
if [ ! -d "$golden" ]; then
  echo "bundle.sh: no golden checkpoints at $golden (--golden DIR)" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out/node_modules/@tp" "$out/node_modules/@huggingface" "$out/golden" "$out/lib"

# packages: package.json and dist/ of each (symlinks followed)
for pair in core:packages/core backend-cuda:packages/backend-cuda backend-cpu:packages/backend-cpu; do
  name=${pair%%:*}
  dir="$repo/${pair#*:}"
  mkdir -p "$out/node_modules/@tp/$name"
  cp "$dir/package.json" "$out/node_modules/@tp/$name/"
  cp -RL "$dir/dist" "$out/node_modules/@tp/$name/dist"
  find "$out/node_modules/@tp/$name/dist" -name '*.map' -delete
done
tokenizers=$(readlink -f "$repo/packages/core/node_modules/@huggingface/tokenizers")
cp -RL "$tokenizers" "$out/node_modules/@huggingface/tokenizers"

# the check
cp "$repo/tools/device/check.sh" "$repo/tools/device/check.mjs" "$repo/tools/device/torch_bench.py" "$out/"
cp "$repo/tools/device/lib/"*.mjs "$out/lib/"
chmod +x "$out/check.sh"

# the decoder golden checkpoints
families=$(cd "$repo/tools/device" && node -e "import('./lib/golden.mjs').then((m) => console.log(m.FAMILIES.join(' ')))" 2>/dev/null || true)
if [ -z "$families" ]; then
  families="llama mistral qwen2 qwen3 gemma phi3 mixtral qwen2_moe gpt_neox opt bloom falcon falcon_new_arch gptj gpt_neo gpt2 openai-gpt gpt_bigcode mpt phi codegen xglm"
fi
for f in $families; do
  [ -d "$golden/$f" ] && cp -R "$golden/$f" "$out/golden/$f"
done
cp "$golden/README.md" "$out/golden/" 2>/dev/null || true

# node, xz-compressed (cached by version and size)
if [ "$with_node" = 1 ]; then
  node_path=$(node -p 'process.execPath')
  cache="$repo/.cache/device/node-$(node -p 'process.version')-$(uname -m)-$(stat -c %s "$node_path").xz"
  if [ ! -f "$cache" ]; then
    say "compressing $node_path with xz (cached in $cache)"
    mkdir -p "$(dirname "$cache")"
    xz -T0 -6 -c "$node_path" >"$cache.part"
    mv "$cache.part" "$cache"
  fi
  cp "$cache" "$out/node.xz"
fi

cat >"$out/README.txt" <<EOF
tp CUDA backend check, bundled $(date -u +%Y-%m-%dT%H:%MZ) from $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo 'a working tree')
  ./check.sh --quick     conformance, golden TP=1/2 (six families), one benchmark: under 4 minutes
  ./check.sh             everything
  ./check.sh --dry-run   every step but the GPU ones (the CPU backend stands in)
node $(node -p 'process.version') $( [ "$with_node" = 1 ] && echo '(bundled as node.xz)' || echo '(not bundled: a node >= 20.19 on PATH is used)'); golden checkpoints: $(ls "$out/golden" | grep -vc README) families
EOF

size=$(du -sb "$out" | cut -f1)
say "$out: $(du -sh "$out" | cut -f1) ($size bytes)$( [ "$with_node" = 1 ] || echo ', without node')"
if [ "$size" -gt "$limit" ]; then
  echo "bundle.sh: the bundle is $size bytes, over the 60 MB limit" >&2
  exit 1
fi
