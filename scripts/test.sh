#!/usr/bin/env bash
# The whole test suite: makes sure a Vulkan adapter exists (Mesa 25 lavapipe when the machine
# has no GPU), then fmt check, clippy, the wasm32 library build, and every test in release mode.
# With CI=true a missing adapter fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

step "model"
bash models/fetch.sh

step "GPU adapter"
# Use the machine's own Vulkan driver when TOKENMILL_SYSTEM_VULKAN=1, else the private lavapipe.
if [ -z "${TOKENMILL_SYSTEM_VULKAN:-}" ]; then
  source scripts/lavapipe.sh
fi
cargo build --release --quiet
adapters=$("${CARGO_TARGET_DIR:-target}/release/tokenmill" devices --json)
echo "$adapters" | grep -E '"(name|backend)"' | paste - - | sed 's/^ */  /'
if ! echo "$adapters" | grep -q '"backend": "vulkan"'; then
  echo "no Vulkan adapter found" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --release --all-targets -- -D warnings

step "wasm32 library build"
cargo build --release --lib --no-default-features --target wasm32-unknown-unknown

step "tests (release)"
cargo test --release -- --test-threads="${TEST_THREADS:-1}"
