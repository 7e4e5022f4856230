#!/usr/bin/env node
// Real MCP client (TypeScript SDK @modelcontextprotocol/sdk 1.32.2: Client +
// StreamableHTTPClientTransport), used as a downstream peer by toolgate's
// integration tests.
//
// Usage:
//   node mcp_client.mjs --url URL [--era legacy] [--header 'Name: value']...
//                       [--timeout SECONDS] [--trace] [scenario | list | call --tool NAME --args JSON]
//
// The TS SDK 1.32.2 speaks only the handshake era: initialize offering 2025-11-25
// (it accepts 2025-11-25/2025-06-18/2025-03-26/2024-11-05/2024-10-07), Mcp-Session-Id,
// a GET SSE stream after notifications/initialized, and DELETE via
// transport.terminateSession() on close. `--era` accepts only "legacy".
//
// stdout gets ONE JSON object on success (exit 0). On failure: exit 1, a readable
// message on stderr (including the status and body of any HTTP error the server sent)
// and, as the last stderr line, a JSON object {"error": str, "http_errors": [...]}.

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    era: { type: 'string', default: 'legacy' },
    header: { type: 'string', multiple: true, default: [] },
    timeout: { type: 'string', default: '60' },
    trace: { type: 'boolean', default: false },
    tool: { type: 'string' },
    args: { type: 'string', default: '{}' },
  },
});

function usage(msg) {
  process.stderr.write(`mcp_client.mjs: ${msg}\n`);
  process.exit(2);
}

const mode = positionals[0] ?? 'scenario';
if (!['scenario', 'list', 'call'].includes(mode)) usage(`unknown mode ${JSON.stringify(mode)}`);
if (positionals.length > 1) usage(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
if (!opts.url) usage('--url is required');
if (opts.era !== 'legacy') usage(`--era ${opts.era}: the TS SDK 1.32.2 only speaks the legacy (2025-xx) era`);
if (mode === 'call' && !opts.tool) usage('call mode needs --tool');

const headers = {};
for (const raw of opts.header) {
  const i = raw.indexOf(':');
  if (i <= 0) usage(`--header must be NAME:VALUE, got ${JSON.stringify(raw)}`);
  headers[raw.slice(0, i).trim()] = raw.slice(i + 1).trim();
}

const httpErrors = [];

function trace(obj) {
  if (opts.trace) process.stderr.write(`TRACE ${JSON.stringify(obj)}\n`);
}

// fetch wrapper: records every HTTP error (status + body) and optionally traces.
async function recordingFetch(input, init) {
  const method = init?.method ?? 'GET';
  const url = String(input instanceof Request ? input.url : input);
  let rpcMethod = null;
  if (typeof init?.body === 'string') {
    try {
      rpcMethod = JSON.parse(init.body).method ?? null;
    } catch {
      rpcMethod = null;
    }
  }
  trace({ dir: 'request', method, url, headers: Object.fromEntries(new Headers(init?.headers).entries()), rpc_method: rpcMethod });
  const response = await fetch(input, init);
  trace({ dir: 'response', method, status: response.status, headers: Object.fromEntries(response.headers.entries()) });
  if (response.status >= 400) {
    let body;
    try {
      body = await response.clone().text();
    } catch (err) {
      body = `<unreadable body: ${err}>`;
    }
    httpErrors.push({ method, url, status: response.status, content_type: response.headers.get('content-type'), body });
  }
  return response;
}

const textOf = (result) => (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');

function valueOf(result) {
  const sc = result.structuredContent;
  if (sc && typeof sc === 'object' && 'result' in sc) return sc.result;
  const text = textOf(result);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function checked(name, result) {
  if (result.isError) throw new Error(`tool ${JSON.stringify(name)} returned isError=true: ${JSON.stringify(textOf(result))}`);
  return result;
}

const round4 = (x) => Math.round(x * 10000) / 10000;

async function run() {
  const transport = new StreamableHTTPClientTransport(new URL(opts.url), {
    requestInit: { headers },
    fetch: recordingFetch,
  });
  const client = new Client({ name: 'toolgate-test-client-ts', version: '1.0.0' });
  await client.connect(transport);
  const sessionId = transport.sessionId ?? null;
  const protocolVersion = transport.protocolVersion ?? null;
  let out;
  try {
    if (mode === 'list') {
      const { tools } = await client.listTools();
      out = { tools: tools.map((t) => t.name).sort() };
    } else if (mode === 'call') {
      let args;
      try {
        args = JSON.parse(opts.args);
      } catch (err) {
        usage(`--args is not JSON: ${err.message}`);
      }
      const result = await client.callTool({ name: opts.tool, arguments: args });
      out = { isError: Boolean(result.isError), text: textOf(result), content: result.content ?? [] };
    } else {
      const { tools } = await client.listTools();
      const echo = checked('echo', await client.callTool({ name: 'echo', arguments: { text: 'hello' } }));
      const add = checked('add', await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }));
      const progress = [];
      const t0 = performance.now();
      const countdown = checked(
        'countdown',
        await client.callTool({ name: 'countdown', arguments: { n: 3, delay_ms: 400 } }, undefined, {
          onprogress: (p) => progress.push([p.progress, round4((performance.now() - t0) / 1000)]),
        }),
      );
      const resultT = round4((performance.now() - t0) / 1000);
      out = {
        era: 'legacy',
        protocol_version: protocolVersion,
        session_id: sessionId,
        tools: tools.map((t) => t.name).sort(),
        echo: textOf(echo),
        add: valueOf(add),
        countdown: { text: textOf(countdown), progress, result_t: resultT },
      };
    }
  } finally {
    // Explicit session termination: HTTP DELETE with Mcp-Session-Id.
    try {
      await transport.terminateSession();
    } finally {
      await client.close();
    }
  }
  return out;
}

function describe(err) {
  if (err && typeof err === 'object') {
    const code = err.code !== undefined ? ` (code ${err.code})` : '';
    const cause = err.cause ? ` [cause: ${err.cause.message ?? err.cause}]` : '';
    return `${err.name ?? 'Error'}${code}: ${err.message}${cause}`;
  }
  return String(err);
}

const deadline = setTimeout(() => {
  fail(new Error(`timed out after ${opts.timeout}s`));
}, Number(opts.timeout) * 1000);

function fail(err) {
  const message = describe(err);
  process.stderr.write(`mcp_client.mjs: ${mode} against ${opts.url} (era ${opts.era}) failed:\n  ${message}\n`);
  for (const e of httpErrors) {
    process.stderr.write(`  server answered HTTP ${e.status} to ${e.method} ${e.url} (${e.content_type}): ${e.body}\n`);
  }
  process.stderr.write(`${JSON.stringify({ error: message, http_errors: httpErrors })}\n`, () => process.exit(1));
}

run().then(
  (out) => {
    clearTimeout(deadline);
    process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
  },
  (err) => {
    clearTimeout(deadline);
    fail(err);
  },
);
