#!/usr/bin/env python3
"""Real MCP client (python `mcp` SDK 2.3.0 `Client` over its own streamable HTTP
transport), used as a downstream peer by toolgate's integration tests.

Usage:
    mcp_client.py --url URL [--era legacy|modern|auto] [--header 'Name: value']...
                  [--timeout SECONDS] [--trace] [--trace-id HEX32]
                  [scenario | list | discover | listen | call --tool NAME --args JSON [--tasks] [--elicit JSON]]

Modes: `listen` (2026-07-28) opens `subscriptions/listen` for tool-list changes and
`--resource` URIs and prints the events it got until the server closes it gracefully;
`call` prints the progress it was sent too. `--elicit JSON` answers every form
elicitation with JSON as content (input_required rounds are the SDK's own); `--tasks`
declares the tasks extension; `--open-urls` answers URL elicitations by opening the URL
(GET, as a browser would) and accepting, and `call` then prints what it opened.

Eras (`Client(mode=...)`):
    legacy  mode="legacy": initialize handshake (offers 2025-11-25), Mcp-Session-Id,
            GET SSE stream, DELETE on close.
    modern  mode="2026-07-28": version pinned, no handshake and no probe; every
            request is stateless and carries MCP-Protocol-Version / Mcp-Method
            (/ Mcp-Name) headers plus the _meta envelope.
    auto    mode="auto" (the SDK default): POST server/discover at 2026-07-28, adopt
            it if the server is modern, otherwise fall back to initialize.

stdout gets ONE JSON object on success (exit 0). On failure: exit 1, a readable
message on stderr (including the status and body of any HTTP error the server sent)
and, as the last stderr line, a JSON object {"error": str, "http_errors": [...]}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client import advertise
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ElicitResult, Implementation
from mcp_types.version import LATEST_MODERN_VERSION, MODERN_PROTOCOL_VERSIONS

MODES = {"legacy": "legacy", "modern": LATEST_MODERN_VERSION, "auto": "auto"}


class HttpRecorder:
    """httpx2 event hooks: remember the session id, every HTTP error (status + body)
    and optionally trace each exchange to stderr."""

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        self.session_id: str | None = None
        self.http_errors: list[dict[str, Any]] = []

    async def on_request(self, request: httpx2.Request) -> None:
        if self.trace:
            body: Any = None
            if request.method == "POST":
                try:
                    body = json.loads(request.content)
                except Exception:
                    body = None
            _trace(
                {
                    "dir": "request",
                    "method": request.method,
                    "url": str(request.url),
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                    "rpc_method": body.get("method") if isinstance(body, dict) else None,
                }
            )

    async def on_response(self, response: httpx2.Response) -> None:
        session_id = response.headers.get("mcp-session-id")
        if session_id:
            self.session_id = session_id
        if self.trace:
            _trace(
                {
                    "dir": "response",
                    "method": response.request.method,
                    "status": response.status_code,
                    "headers": {k.lower(): v for k, v in response.headers.items()},
                }
            )
        if response.status_code >= 400:
            try:
                body = (await response.aread()).decode("utf-8", "replace")
            except Exception as exc:  # body unreadable: still report the status
                body = f"<unreadable body: {exc}>"
            self.http_errors.append(
                {
                    "method": response.request.method,
                    "url": str(response.request.url),
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type"),
                    "body": body,
                }
            )


def _trace(obj: dict[str, Any]) -> None:
    sys.stderr.write("TRACE " + json.dumps(obj) + "\n")
    sys.stderr.flush()


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _text_of(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def _content_of(result: CallToolResult) -> list[Any]:
    return [block.model_dump(by_alias=True, mode="json", exclude_none=True) for block in result.content]


def _value_of(result: CallToolResult) -> Any:
    structured = result.structured_content
    if isinstance(structured, dict) and "result" in structured:
        return structured["result"]
    text = _text_of(result)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _checked(name: str, result: CallToolResult) -> CallToolResult:
    if result.is_error:
        raise RuntimeError(f"tool {name!r} returned isError=true: {_text_of(result)!r}")
    return result


async def _scenario(client: Client, recorder: HttpRecorder) -> dict[str, Any]:
    tools = sorted(tool.name for tool in (await client.list_tools()).tools)
    echo = _checked("echo", await client.call_tool("echo", {"text": "hello"}))
    added = _checked("add", await client.call_tool("add", {"a": 2, "b": 3}))

    progress: list[list[Any]] = []
    t0 = time.monotonic()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append([_number(value), round(time.monotonic() - t0, 4)])

    countdown = _checked(
        "countdown",
        await client.call_tool("countdown", {"n": 3, "delay_ms": 400}, progress_callback=on_progress),
    )
    result_t = round(time.monotonic() - t0, 4)
    return {
        "tools": tools,
        "echo": _text_of(echo),
        "add": _number(_value_of(added)),
        "countdown": {"text": _text_of(countdown), "progress": progress, "result_t": result_t},
    }


def _enter_trace(trace_id: str) -> None:
    """Run the client inside a trace the agent already has: the SDK puts its
    W3C context into every request's `_meta` (SEP-414); no HTTP header."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    span = NonRecordingSpan(
        SpanContext(
            trace_id=int(trace_id, 16),
            span_id=0x00F067AA0BA902B7,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    otel_context.attach(otel_trace.set_span_in_context(span))


async def _run(args: argparse.Namespace, recorder: HttpRecorder) -> dict[str, Any]:
    if args.trace_id:
        _enter_trace(args.trace_id)
    headers: dict[str, str] = {}
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"mcp_client.py: --header must be NAME:VALUE, got {raw!r}")
        headers[name.strip()] = value.strip()

    http = httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"request": [recorder.on_request], "response": [recorder.on_response]},
    )
    async with http:
        transport = streamable_http_client(args.url, http_client=http, terminate_on_close=True)
        extra: dict[str, Any] = {}
        opened: list[dict[str, Any]] = []
        if args.elicit is not None or args.open_urls:
            content = json.loads(args.elicit) if args.elicit is not None else {}

            async def on_elicit(context: Any, params: Any) -> ElicitResult:
                if getattr(params, "mode", "form") == "url":
                    if not args.open_urls:
                        return ElicitResult(action="decline")
                    # The human opens the page (and acts on it), then goes on.
                    async with httpx2.AsyncClient(timeout=30.0) as browser:
                        page = await browser.get(params.url)
                    opened.append({"url": params.url, "status": page.status_code, "message": params.message})
                    return ElicitResult(action="accept")
                return ElicitResult(action="accept", content=content)

            extra["elicitation_callback"] = on_elicit
        if args.tasks:
            extra["extensions"] = [advertise("io.modelcontextprotocol/tasks", {})]
        client = Client(
            transport,
            mode=MODES[args.era],
            client_info=Implementation(name="toolgate-test-client-py", version="1.0.0"),
            **extra,
        )
        async with client:
            protocol_version = client.protocol_version
            if args.mode == "list":
                listed = await client.list_tools()
                tools = sorted(tool.name for tool in listed.tools)
                return {
                    "protocol_version": protocol_version,
                    "tools": tools,
                    "cache_scope": listed.cache_scope if "cache_scope" in listed.model_fields_set else None,
                    "ttl_ms": listed.ttl_ms if "ttl_ms" in listed.model_fields_set else None,
                }
            if args.mode == "discover":
                # The raw `server/discover` result as it reached the client.
                raw = await client.session.send_discover(LATEST_MODERN_VERSION)
                return {"protocol_version": protocol_version, "result": raw}
            if args.mode == "listen":
                events: list[dict[str, Any]] = []
                async with client.listen(tools_list_changed=True, resource_subscriptions=args.resource) as sub:
                    async for event in sub:
                        events.append({"type": type(event).__name__, **({"uri": event.uri} if hasattr(event, "uri") else {})})
                return {"protocol_version": protocol_version, "events": events}
            if args.mode == "call":
                try:
                    arguments = json.loads(args.args)
                except ValueError as exc:
                    raise SystemExit(f"mcp_client.py: --args is not JSON: {exc}") from exc
                progress: list[Any] = []

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    progress.append(_number(value))

                result = await client.call_tool(args.tool, arguments, progress_callback=on_progress)
                return {
                    "isError": bool(result.is_error),
                    "text": _text_of(result),
                    "content": _content_of(result),
                    "progress": progress,
                    "opened": opened,
                }
            out = await _scenario(client, recorder)
        # Leaving `async with client` closed the transport (legacy: DELETE sent).
        era = "modern" if protocol_version in MODERN_PROTOCOL_VERSIONS else "legacy"
        return {
            "era": era,
            "protocol_version": protocol_version,
            "session_id": recorder.session_id,
            **out,
        }


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MCPError):
        data = f" data={json.dumps(exc.data)}" if exc.data is not None else ""
        return f"MCP error {exc.code}: {exc.message}{data}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="MCP endpoint, e.g. http://127.0.0.1:8080/mcp")
    parser.add_argument("--era", choices=sorted(MODES), default="legacy")
    parser.add_argument(
        "--header", action="append", default=[], metavar="NAME:VALUE", help="extra header on every HTTP request"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="overall deadline in seconds (default 60)")
    parser.add_argument("--trace", action="store_true", help="log every HTTP exchange to stderr as TRACE lines")
    parser.add_argument("--trace-id", metavar="HEX32", help="send W3C trace context for this trace id in _meta")
    parser.add_argument(
        "mode", nargs="?", choices=["scenario", "list", "discover", "listen", "call"], default="scenario"
    )
    parser.add_argument("--resource", action="append", default=[], help="resource URI to listen to (listen mode)")
    parser.add_argument("--elicit", metavar="JSON", help="answer form elicitations with this content")
    parser.add_argument("--tasks", action="store_true", help="declare the tasks extension")
    parser.add_argument(
        "--open-urls", action="store_true", help="answer URL elicitations by opening (GET) the URL, then accepting"
    )
    parser.add_argument("--tool", help="tool name (call mode)")
    parser.add_argument("--args", default="{}", help="tool arguments as a JSON object (call mode)")
    args = parser.parse_args()
    if args.mode == "call" and not args.tool:
        parser.error("call mode needs --tool")

    recorder = HttpRecorder(args.trace)

    async def bounded() -> dict[str, Any]:
        with anyio.fail_after(args.timeout):
            return await _run(args, recorder)

    try:
        out = anyio.run(bounded)
    except SystemExit:
        raise
    except BaseException as exc:  # report everything, including exception groups
        if isinstance(exc, KeyboardInterrupt):
            raise
        messages = [_describe(leaf) for leaf in _leaves(exc)]
        sys.stderr.write(f"mcp_client.py: {args.mode} against {args.url} (era {args.era}) failed:\n")
        for message in messages:
            sys.stderr.write(f"  {message}\n")
        for err in recorder.http_errors:
            sys.stderr.write(
                f"  server answered HTTP {err['status']} to {err['method']} {err['url']}"
                f" ({err['content_type']}): {err['body']}\n"
            )
        sys.stderr.write(json.dumps({"error": "; ".join(messages), "http_errors": recorder.http_errors}) + "\n")
        sys.stderr.flush()
        return 1
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
