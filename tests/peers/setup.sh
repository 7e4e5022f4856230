#!/usr/bin/env bash
# Install the real MCP peers used by toolgate's integration tests:
#   .venv/         Python venv with requirements.txt (mcp 2.3.0 SDK, both eras)
#   node_modules/  from package-lock.json: @modelcontextprotocol/sdk 1.32.2 (legacy
#                  era) and @modelcontextprotocol/client 2.4.0 (2026-07-28 era)
# Idempotent: each half is skipped when its stamp file holds the sha256 of the
# file it was installed from. Works from any cwd.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${PYTHON:-python3}"

# Serialize concurrent runs (parallel test binaries) by locking this script itself.
if command -v flock >/dev/null 2>&1; then
    exec 9<"$(basename "${BASH_SOURCE[0]}")"
    flock 9
fi

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# --- Python -------------------------------------------------------------------
req_sum="$(sha256_of requirements.txt)"
if [[ -x .venv/bin/python && -f .venv/.stamp && "$(cat .venv/.stamp)" == "$req_sum" ]]; then
    echo "setup.sh: .venv up to date"
else
    echo "setup.sh: creating .venv and installing requirements.txt"
    rm -rf .venv
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    # Fail now, not inside a test, if the SDK is unusable.
    .venv/bin/python -c 'import mcp, mcp.client.streamable_http, mcp.server, uvicorn, httpx2'
    echo "$req_sum" > .venv/.stamp
fi

# --- Node ---------------------------------------------------------------------
if [[ -f package-lock.json ]]; then
    lock_sum="$(sha256_of package-lock.json)"
    if [[ -d node_modules/@modelcontextprotocol/sdk && -d node_modules/@modelcontextprotocol/client \
          && -f node_modules/.stamp && "$(cat node_modules/.stamp)" == "$lock_sum" ]]; then
        echo "setup.sh: node_modules up to date"
    else
        echo "setup.sh: npm ci"
        npm ci --no-audit --no-fund --loglevel=error >&2
        echo "$lock_sum" > node_modules/.stamp
    fi
else
    echo "setup.sh: no package-lock.json, npm install"
    npm install --no-audit --no-fund --loglevel=error >&2
    sha256_of package-lock.json > node_modules/.stamp
fi
