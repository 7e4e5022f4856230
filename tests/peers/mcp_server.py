#!/usr/bin/env python3
"""Real MCP server (python `mcp` SDK 2.3.0) over Streamable HTTP, used as an upstream
peer by toolgate's integration tests.

One endpoint, `/mcp`, serves BOTH protocol eras through the SDK's own session manager
(`MCPServer.streamable_http_app`): requests without an `MCP-Protocol-Version` header or
with a handshake-era one (2024-11-05 .. 2025-11-25) take the legacy stateful path
(initialize, Mcp-Session-Id, GET stream, DELETE); a 2026-07-28 header takes the
stateless per-request path (Mcp-Method / Mcp-Name checked against the body, -32020 on
mismatch).

Usage:
    mcp_server.py [--host 127.0.0.1] [--port 0] [--header-log PATH] [--json-response]
                  [--allow-any-host] [--public-cache] [--confirm-tool] [--region-tool]

Prints exactly one line `LISTENING <port>` on stdout once it accepts requests.
Exits 0 on SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import sys
from collections.abc import Generator

from typing import Annotated

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, Elicit, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

# --------------------------------------------------------------------------- tools

# `--public-cache` (read before argparse: the server is built at import) marks
# list and discover results shareable for an hour, as a careless server might.
_PUBLIC_CACHE = "--public-cache" in sys.argv
_CACHE_HINTS = (
    {m: CacheHint(ttl_ms=3_600_000, scope="public") for m in ("tools/list", "server/discover")}
    if _PUBLIC_CACHE
    else None
)
mcp = MCPServer("toolgate-test-peer", version="1.0.0", log_level="WARNING", cache_hints=_CACHE_HINTS)


@mcp.tool()
def echo(text: str) -> str:
    """Return `text` unchanged."""
    return text


@mcp.tool()
def add(a: float, b: float) -> float:
    """Return a + b."""
    return a + b


@mcp.tool()
async def countdown(n: int, delay_ms: int, ctx: Context) -> str:
    """Send n progress notifications (progress=1..n, total=n), sleeping delay_ms before
    each one and once more before returning "liftoff"."""
    for i in range(1, n + 1):
        await anyio.sleep(delay_ms / 1000)
        await ctx.report_progress(i, n, f"T-{n - i}")
    await anyio.sleep(delay_ms / 1000)
    return "liftoff"


class Approver(BaseModel):
    name: str


def ask_approver() -> Elicit[Approver]:
    return Elicit("Who approves this action?", Approver)


def confirm(action: str, approver: Annotated[Approver, Resolve(ask_approver)]) -> str:
    """Ask who approves `action` (2026-07-28: an input_required round with a form
    elicitation and a sealed requestState), then return "<action> approved by <name>"."""
    return f"{action} approved by {approver.name}"


# `--confirm-tool` (read before argparse, like `--public-cache`) adds `confirm`.
if "--confirm-tool" in sys.argv:
    mcp.tool()(confirm)


def deploy(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], version: str) -> str:
    """Deploy `version` to `region`; `region` is mirrored into the `Mcp-Param-Region`
    header (2026-07-28, SEP-2243), which the SDK checks against the body."""
    return f"{version} deployed to {region}"


# `--region-tool` (read before argparse, like `--public-cache`) adds `deploy`.
if "--region-tool" in sys.argv:
    mcp.tool()(deploy)


@mcp.tool()
def fail() -> str:
    """Always fails: the call result has isError=true."""
    raise ToolError("deliberate failure from the fail tool")


# ---------------------------------------------------------------- header logging


class HeaderLogMiddleware:
    """Append one JSON line per HTTP request, before the request is handled."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: dict[str, str] = {}
            for raw_name, raw_value in scope["headers"]:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            line = json.dumps({"method": scope["method"], "path": scope["path"], "headers": headers})
            self.file.write(line + "\n")
            self.file.flush()
        await self.app(scope, receive, send)


# ------------------------------------------------------------------------ serving


class _Server(uvicorn.Server):
    """uvicorn server that exits 0 on SIGTERM/SIGINT. uvicorn's own handler still runs
    (graceful shutdown; sse-starlette hooks it to end open SSE streams), but the signal
    is not re-raised after shutdown as stock uvicorn does."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


async def _announce(server: uvicorn.Server, port: int) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.01)
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port (default)")
    parser.add_argument("--header-log", metavar="PATH", help="append one JSON line per HTTP request")
    parser.add_argument(
        "--json-response",
        action="store_true",
        help="answer requests with application/json instead of an SSE stream (progress notifications are then dropped)",
    )
    parser.add_argument(
        "--public-cache",
        action="store_true",
        help='tools/list and server/discover results say cacheScope "public", ttlMs one hour',
    )
    parser.add_argument(
        "--confirm-tool",
        action="store_true",
        help="add the `confirm` tool, which asks for an approver through an input_required round",
    )
    parser.add_argument(
        "--region-tool",
        action="store_true",
        help="add the `deploy` tool, whose `region` argument is mirrored into an Mcp-Param-Region header",
    )
    parser.add_argument(
        "--allow-any-host",
        action="store_true",
        help="disable the SDK's DNS-rebinding Host/Origin check (default: on for loopback hosts)",
    )
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    security = TransportSecuritySettings(enable_dns_rebinding_protection=False) if args.allow_any_host else None
    app: ASGIApp = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        json_response=args.json_response,
        host=args.host,
        transport_security=security,
    )
    if args.header_log:
        app = HeaderLogMiddleware(app, args.header_log)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    announcer = asyncio.create_task(_announce(server, port))
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
