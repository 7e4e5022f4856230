#!/usr/bin/env node
// Real MCP client of the TypeScript SDK v2 (@modelcontextprotocol/client 2.4.0:
// Client + StreamableHTTPClientTransport) in the 2026-07-28 era, used as a
// downstream peer by toolgate's integration tests. The legacy era stays with
// mcp_client.mjs (SDK 1.32.2).
//
// Usage:
//   node mcp_client_v2.mjs --url URL [--header 'Name: value']... [--timeout SECONDS]
//                          [--trace-id HEX32] [--open-urls] [--elicit JSON]
//                          [--tamper 'Name: value']...
//                          [list | discover | listen [--resource URI]... |
//                           call --tool NAME --args JSON]
//
// The client pins the 2026-07-28 revision (versionNegotiation {pin}): connect()
// sends `server/discover` and no `initialize`; every request then carries
// MCP-Protocol-Version, Mcp-Method (and Mcp-Name) headers, the `_meta` envelope
// (protocol version, client info, client capabilities), and `Mcp-Param-*` headers
// mirrored from a tool's `x-mcp-header` arguments (SEP-2243, from the cached
// tools/list). `input_required` rounds are answered by the SDK itself through the
// `elicitation/create` handler registered here, then retried with `inputResponses`
// and the byte-exact `requestState`.
//
// `listen` opens `subscriptions/listen` (tool-list changes and each --resource) with
// client.listen() and prints every notification the SDK dispatched until the stream
// closed (`closed`: graceful when the server ended it with its result).
//
// Options:
//   --trace-id HEX32   the SDK has no OpenTelemetry hook: the W3C context goes into the
//                      call's `_meta.traceparent`, the typed key the SDK documents for it.
//   --open-urls        declares URL-mode elicitation and answers a URL elicitation by
//                      opening the URL (GET, as a browser would), then accepting.
//   --elicit JSON      declares form-mode elicitation and answers forms with JSON.
//   --tamper 'N: v'    on the wire, after the SDK built a tools/call POST, sets header N
//                      to v (an intermediary altering a mirrored header).
//
// Every HTTP request the client sent is reported in `requests` (its JSON-RPC method and
// id, the MCP headers, `_meta`, any `requestState` it echoed, the HTTP status and, for
// a JSON answer, the answer's id), so tests can see what the SDK put on the wire and
// what came back.
//
// stdout gets ONE JSON object (exit 0), also when the server answered a call with a
// JSON-RPC error (then `error` holds {code, message, data}). Other failures: exit 1,
// a readable message on stderr and, as the last stderr line, a JSON object
// {"error": str, "http_errors": [...]}.

import { parseArgs } from 'node:util';
import { Client, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const VERSION = '2026-07-28';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    header: { type: 'string', multiple: true, default: [] },
    tamper: { type: 'string', multiple: true, default: [] },
    timeout: { type: 'string', default: '60' },
    'trace-id': { type: 'string' },
    'open-urls': { type: 'boolean', default: false },
    elicit: { type: 'string' },
    resource: { type: 'string', multiple: true, default: [] },
    tool: { type: 'string' },
    args: { type: 'string', default: '{}' },
  },
});

function usage(msg) {
  process.stderr.write(`mcp_client_v2.mjs: ${msg}\n`);
  process.exit(2);
}

const mode = positionals[0] ?? 'list';
if (!['list', 'discover', 'listen', 'call'].includes(mode)) usage(`unknown mode ${JSON.stringify(mode)}`);
if (positionals.length > 1) usage(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
if (!opts.url) usage('--url is required');
if (mode === 'call' && !opts.tool) usage('call mode needs --tool');
if (opts['trace-id'] !== undefined && !/^[0-9a-f]{32}$/.test(opts['trace-id'])) usage('--trace-id must be 32 lowercase hex digits');

function headerPairs(list, flag) {
  return list.map((raw) => {
    const i = raw.indexOf(':');
    if (i <= 0) usage(`${flag} must be NAME:VALUE, got ${JSON.stringify(raw)}`);
    return [raw.slice(0, i).trim(), raw.slice(i + 1).trim()];
  });
}
const headers = Object.fromEntries(headerPairs(opts.header, '--header'));
const tampered = headerPairs(opts.tamper, '--tamper');
let elicitContent = {};
if (opts.elicit !== undefined) {
  try {
    elicitContent = JSON.parse(opts.elicit);
  } catch (err) {
    usage(`--elicit is not JSON: ${err.message}`);
  }
}

const httpErrors = [];
const requests = [];
const opened = [];

const WIRE_HEADERS = ['mcp-protocol-version', 'mcp-method', 'mcp-name', 'mcp-session-id'];

// fetch wrapper: notes what went on the wire, applies --tamper to tools/call POSTs,
// and records every HTTP error (status + body).
async function recordingFetch(input, init) {
  const method = init?.method ?? 'GET';
  const url = String(input instanceof Request ? input.url : input);
  const sent = new Headers(init?.headers);
  let rpc = null;
  if (typeof init?.body === 'string') {
    try {
      rpc = JSON.parse(init.body);
    } catch {
      rpc = null;
    }
  }
  if (rpc?.method === 'tools/call') for (const [name, value] of tampered) sent.set(name, value);
  const seen = {};
  for (const [name, value] of sent.entries()) {
    if (WIRE_HEADERS.includes(name) || name.startsWith('mcp-param-')) seen[name] = value;
  }
  const entry = { http_method: method, rpc_method: rpc?.method ?? null, id: rpc?.id ?? null, headers: seen, meta: rpc?.params?._meta ?? null, request_state: rpc?.params?.requestState ?? null };
  requests.push(entry);
  const response = await fetch(input, { ...init, headers: sent });
  entry.status = response.status;
  if (response.headers.get('content-type')?.startsWith('application/json')) {
    // The JSON answer's id, to show the answer came back to the request that asked.
    try {
      entry.answer_id = (await response.clone().json()).id ?? null;
    } catch {
      entry.answer_id = null;
    }
  }
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

function capabilities() {
  const elicitation = {};
  if (opts.elicit !== undefined) elicitation.form = {};
  if (opts['open-urls']) elicitation.url = {};
  return Object.keys(elicitation).length === 0 ? {} : { elicitation };
}

// An elicitation the server (or toolgate) embedded in an `input_required` result.
async function onElicit(request) {
  const params = request.params;
  if (params.mode === 'url') {
    if (!opts['open-urls']) return { action: 'decline' };
    // The human opens the page (and acts on it), then goes on.
    const page = await fetch(params.url);
    await page.text().catch(() => '');
    opened.push({ url: params.url, status: page.status, message: params.message });
    return { action: 'accept' };
  }
  return { action: 'accept', content: elicitContent };
}

async function run() {
  const transport = new StreamableHTTPClientTransport(new URL(opts.url), {
    requestInit: { headers },
    fetch: recordingFetch,
  });
  const client = new Client(
    { name: 'toolgate-test-client-ts-v2', version: '1.0.0' },
    { capabilities: capabilities(), versionNegotiation: { mode: { pin: VERSION } } },
  );
  if (capabilities().elicitation) client.setRequestHandler('elicitation/create', onElicit);
  await client.connect(transport);
  const base = {
    era: client.getProtocolEra() ?? null,
    protocol_version: client.getNegotiatedProtocolVersion() ?? null,
  };
  try {
    if (mode === 'list') {
      const listed = await client.listTools(undefined, { cacheMode: 'bypass' });
      return {
        ...base,
        tools: listed.tools.map((t) => t.name).sort(),
        cache_scope: listed.cacheScope ?? null,
        ttl_ms: listed.ttlMs ?? null,
      };
    }
    if (mode === 'listen') {
      const events = [];
      const record = async (n) => {
        events.push({ method: n.method, ...(n.params?.name && { name: n.params.name }), ...(n.params?.uri && { uri: n.params.uri }) });
      };
      client.setNotificationHandler('notifications/tools/list_changed', record);
      client.setNotificationHandler('notifications/resources/updated', record);
      client.fallbackNotificationHandler = record;
      const sub = await client.listen({ toolsListChanged: true, resourceSubscriptions: opts.resource });
      const closed = await sub.closed;
      return { ...base, honored: sub.honoredFilter, closed, events };
    }
    if (mode === 'discover') {
      // The connect-time discover result, then one sent on its own.
      const atConnect = client.getDiscoverResult() ?? null;
      const result = await client.discover();
      return { ...base, at_connect: atConnect, result };
    }
    let args;
    try {
      args = JSON.parse(opts.args);
    } catch (err) {
      usage(`--args is not JSON: ${err.message}`);
    }
    // A tool's x-mcp-header declarations come from the cached tools/list.
    await client.listTools();
    const params = { name: opts.tool, arguments: args };
    if (opts['trace-id'] !== undefined) params._meta = { traceparent: `00-${opts['trace-id']}-00f067aa0ba902b7-01` };
    try {
      const result = await client.callTool(params);
      return { ...base, isError: Boolean(result.isError), text: textOf(result), content: result.content ?? [], opened };
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return { ...base, error: { code: err.code, message: err.message, data: err.data ?? null }, opened };
    }
  } finally {
    await client.close();
  }
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
  process.stderr.write(`mcp_client_v2.mjs: ${mode} against ${opts.url} failed:\n  ${message}\n`);
  for (const e of httpErrors) {
    process.stderr.write(`  server answered HTTP ${e.status} to ${e.method} ${e.url} (${e.content_type}): ${e.body}\n`);
  }
  process.stderr.write(`${JSON.stringify({ error: message, http_errors: httpErrors })}\n`, () => process.exit(1));
}

run().then(
  (out) => {
    clearTimeout(deadline);
    process.stdout.write(`${JSON.stringify({ ...out, requests })}\n`, () => process.exit(0));
  },
  (err) => {
    clearTimeout(deadline);
    fail(err);
  },
);
