//! Micro-benchmarks of the per-call work the gateway adds: understanding a
//! JSON-RPC body, picking a route, and passing SSE events through the parser.
//! The end-to-end load benchmark against a bare proxy is separate (see README).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;

use toolgate::config;
use toolgate::mcp::{Envelope, sse};
use toolgate::snapshot::Snapshot;

fn understand(c: &mut Criterion) {
    let call = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_issues","arguments":{"repo":"acme/app","query":"label:bug state:open","limit":20}}}"#;
    let mut g = c.benchmark_group("understand");
    g.throughput(Throughput::Bytes(call.len() as u64));
    g.bench_function("tools_call_parse", |b| {
        b.iter(|| {
            let env = Envelope::parse(black_box(call)).expect("valid");
            black_box(env.messages[0].tool_call().is_some())
        })
    });
    g.finish();
}

fn route(c: &mut Criterion) {
    toolgate::install_crypto_provider();
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath = \"/mcp/tool{i}\"\nupstream = \"http://127.0.0.1:1/mcp\"\n"
        ));
    }
    let cfg = config::load_str(&text, "bench", Path::new(".")).expect("valid config");
    let snapshot = Snapshot::build(&cfg, None).expect("snapshot");
    c.bench_function("route_for_50_routes", |b| {
        b.iter(|| black_box(snapshot.route_for(black_box("/mcp/tool37/extra"))).is_some())
    });
}

fn sse_passthrough(c: &mut Criterion) {
    let event = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"p\",\"progress\":1,\"total\":10}}\n\n";
    let chunk: Vec<u8> = event
        .iter()
        .copied()
        .cycle()
        .take(event.len() * 64)
        .collect();
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("parse_64_events", |b| {
        b.iter(|| {
            let mut p = sse::Parser::new(1 << 20);
            black_box(p.push(black_box(&chunk)).expect("events").len())
        })
    });
    g.finish();
}

criterion_group!(benches, understand, route, sse_passthrough);
criterion_main!(benches);
