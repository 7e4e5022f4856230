#!/usr/bin/env bash
# The load benchmark (README "Performance"), from a fresh clone:
#
#   benches/load.sh                 # full run: 5 interleaved rounds, ~15 min on 2 cores
#   benches/load.sh --rounds 1 --seconds 3      # a quick look
#   benches/load.sh profile [--seconds S] [--row b|c|e|g] [--audit]
#                                               # row (c), (e) the filtered tools/list,
#                                               # or (g) with the decision log (= --audit),
#                                               # under callgrind: instructions per request
#
# Installs what it needs (wrk and taskset from Debian, the wasm32 target),
# builds the policy modules and the release binaries, then runs
# `cargo bench --bench load` (benches/load/main.rs; its options: --rounds N,
# --seconds S, --rate RPS, --out DIR, --rows a,c,g,... (a quick comparison of
# some rows; also swap, scale), --no-wrk, --no-pin). Results go to
# target/load/: table.md, results.json and raw/ (every wrk output, the
# scale rows, the gateway's config and the tail of its log).
# LOAD_AUDIT_TOML adds settings to row (g)'s [audit] section, e.g.
#   LOAD_AUDIT_TOML='batch_interval = "10ms"' benches/load.sh --rows c,g --rounds 2
# LOAD_C_BIN=PATH runs another toolgate build as row (c); with LOAD_C_AUDIT=1 it
# writes the decision log too, so that the side-by-side figure compares two
# builds' logs (e.g. the last commit's binary against a change):
#   LOAD_C_BIN=/tmp/toolgate-before LOAD_C_AUDIT=1 benches/load.sh --rows c,g --rounds 2
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v taskset >/dev/null || need_apt+=(util-linux)
if [ "${1:-}" = profile ]; then
    command -v valgrind >/dev/null || need_apt+=(valgrind)
fi
if ((${#need_apt[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends "${need_apt[@]}"
fi
if command -v rustup >/dev/null; then
    rustup target add wasm32-unknown-unknown >/dev/null
fi
(cd policy-modules && cargo build --release --target wasm32-unknown-unknown -p allowlist -p jit-grants)
cargo bench --bench load -- "$@"
