#!/bin/sh
# Rebuilds the prebuilt modules `toolgate demo` embeds (policy-modules/dist/).
set -eu
cd "$(dirname "$0")"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
cargo build --release --target wasm32-unknown-unknown -p allowlist -p jit-grants -p task-budget
for m in allowlist jit_grants task_budget; do
  cp "target/wasm32-unknown-unknown/release/$m.wasm" "dist/$m.wasm"
done
ls -l dist/*.wasm
