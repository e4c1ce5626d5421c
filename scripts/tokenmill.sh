#!/usr/bin/env bash
# Build and run tokenmill with whatever it needs: the machine's GPU through its Vulkan driver,
# or Mesa's lavapipe (Vulkan on the CPU) when no GPU adapter is found.
# Usage: scripts/tokenmill.sh <tokenmill arguments>, e.g. scripts/tokenmill.sh run --chat --prompt "Hi"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if ! command -v cargo >/dev/null; then
  echo "tokenmill: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi
cargo build --release --quiet --bin tokenmill
bin="${CARGO_TARGET_DIR:-$root/target}/release/tokenmill"
# A real GPU (not a software rasterizer) on Vulkan, Metal or DX12 is used as it is.
if ! "$bin" devices --json 2>/dev/null | grep -q '"software": false'; then
  echo "tokenmill: no hardware GPU adapter found; using Mesa lavapipe (Vulkan on the CPU)" >&2
  source "$root/scripts/lavapipe.sh"
fi
exec "$bin" "$@"
