//! A flapping JWKS endpoint: up, serving garbage of every shape, down
//! (nothing listening on its port), hanging (accepting, never answering),
//! and up again with a rotated key set —
//! while the gateway refreshes it in the background. Tokens signed by the
//! keys it already has keep working throughout, an unknown `kid` is refused
//! every time (fail closed), and the new key works once it is back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::common::tokens::{Key, claims};
use crate::common::{self, TestGateway};
use crate::identity::jwks::{
    Pki, Served, Shared, jwks_fetches, jwks_server, jwks_server_on, svid_jwks, url_issuer,
};
use crate::identity::{
    AGENT, PUBLIC, Refused, SPIRE, assert_refused, call, echo_upstream, metadata_url, route, server,
};

/// Waits until the issuer's failed fetches pass `above` (the background
/// refresh, every 300 ms, met the fault).
async fn wait_for_errors(gw: &TestGateway, above: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = common::metric(gw, &jwks_fetches("flap", "error")).await;
        if now > above {
            return now;
        }
        assert!(Instant::now() < deadline, "no failed JWKS fetch counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_keys_outlive_a_flapping_jwks_and_unknown_kids_fail_closed() {
    let pki = Pki::new();
    let (a, b) = (Key::es256("flap-a"), Key::es256("flap-b"));
    let served: Shared = Arc::new(Mutex::new(Served {
        doc: Some(svid_jwks(&[&a])),
        cache_control: None,
        raw: None,
    }));
    let docs = || vec![("/jwks", Arc::clone(&served))];
    let origin = jwks_server(&pki, docs()).await;
    let bind = origin.addr;
    let up = echo_upstream().await;
    let url = format!("https://{bind}/jwks");
    let gw = TestGateway::start(&format!(
        "{}{}{}",
        server(),
        url_issuer("flap", &url, Some(&pki.ca_file()), "300ms"),
        route(
            "flap",
            "/mcp",
            &up.url("/mcp"),
            Some("issuers = [\"flap\"]")
        ),
    ))
    .await;
    let aud = format!("{PUBLIC}/mcp");
    let token_a = a.sign(&claims(SPIRE, AGENT, &aud));
    let token_b = b.sign(&claims(SPIRE, AGENT, &aud));
    let md = metadata_url("/mcp");
    let unknown = Refused::token("unknown_kid", "token kid names no known key");
    let keys = "toolgate_issuer_keys{issuer=\"flap\"}";

    let r = call(&gw.url("/mcp"), &token_a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Garbage of every shape, each met by the background refresh: A stays.
    // A key set padded past the 512 KiB a JWKS may have; it names B, so only
    // the size limit keeps B out.
    let huge: &'static str = Box::leak(
        padded(svid_jwks(&[&a, &b]), MAX_JWKS_BYTES + 1)
            .to_string()
            .into_boxed_str(),
    );
    let garbage: [(&str, Option<&'static str>, Option<serde_json::Value>); 7] = [
        ("a document over the size limit", Some(huge), None),
        (
            "an HTML error page",
            Some("<html><body>502 Bad Gateway</body></html>"),
            None,
        ),
        (
            "truncated JSON",
            Some("{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-2"),
            None,
        ),
        (
            "JSON that is no key set",
            Some("{\"jwks\": \"soon\"}"),
            None,
        ),
        ("an empty body", Some(""), None),
        ("a 500", None, None),
        (
            "keys that do not build",
            None,
            Some(serde_json::json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "flap-b", "use": "jwt-svid", "x": "AAAA", "y": "AAAA"},
                {"kty": "oct", "kid": "flap-b", "use": "jwt-svid", "k": "c2VjcmV0"},
            ]})),
        ),
    ];
    let mut errors = common::metric(&gw, &jwks_fetches("flap", "error")).await;
    for (what, raw, doc) in garbage {
        {
            let mut s = served.lock().unwrap();
            s.raw = raw;
            s.doc = doc;
        }
        errors = wait_for_errors(&gw, errors).await;
        let r = call(&gw.url("/mcp"), &token_a).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{what}: known key refused: {}",
            r.text()
        );
        let r = call(&gw.url("/mcp"), &token_b).await;
        assert_refused(&r, &md, unknown, &[&token_b]);
        assert_eq!(common::metric(&gw, keys).await, 1.0, "{what}");
    }

    // Down: nothing listens on the port. Known keys answer at once; an
    // unknown kid is refused after one quick, failing refetch. The port
    // stays this test's meanwhile (bound, not listening), for the phases
    // that bring it back.
    drop(origin);
    let port = hold(bind).await;
    errors = wait_for_errors(&gw, errors).await;
    for _ in 0..3 {
        let started = Instant::now();
        let r = call(&gw.url("/mcp"), &token_a).await;
        assert_eq!(r.status, StatusCode::OK, "JWKS down: {}", r.text());
        let r = call(&gw.url("/mcp"), &token_b).await;
        assert_refused(&r, &md, unknown, &[&token_b]);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    errors = wait_for_errors(&gw, errors).await;

    // Hanging: the port accepts connections and never answers. While the
    // background refresh waits on it, the known key still answers at once.
    let hang = hanging(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hang.accepted() == 0 {
        assert!(
            Instant::now() < deadline,
            "the refresh did not reach the hanging port in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        let started = Instant::now();
        let r = call(&gw.url("/mcp"), &token_a).await;
        assert_eq!(r.status, StatusCode::OK, "JWKS hanging: {}", r.text());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a known key waited on the hanging JWKS: {:?}",
            started.elapsed()
        );
    }
    let listener = hang.stop().await;

    // Up again on the same port, rotated to A and B, in a document just
    // under the size limit: B works, A still does.
    served.lock().unwrap().raw = None;
    served.lock().unwrap().doc = Some(padded(svid_jwks(&[&a, &b]), MAX_JWKS_BYTES - 1024));
    let back = jwks_server_on(&pki, listener, docs());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = call(&gw.url("/mcp"), &token_b).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert_refused(&r, &md, unknown, &[&token_b]);
        assert!(Instant::now() < deadline, "the new key never became usable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = call(&gw.url("/mcp"), &token_a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(common::metric(&gw, keys).await, 2.0);
    assert!(common::metric(&gw, &jwks_fetches("flap", "ok")).await >= 2.0);
    assert!(errors >= 9.0, "every fault was met: {errors}");
    drop(back);
}

/// The most a JWKS document may hold (`identify/keys.rs`).
const MAX_JWKS_BYTES: usize = 512 * 1024;

/// `doc` with a `padding` member that makes its JSON text `bytes` long.
fn padded(mut doc: serde_json::Value, bytes: usize) -> serde_json::Value {
    doc["padding"] = serde_json::Value::String(String::new());
    let rest = bytes.saturating_sub(doc.to_string().len());
    doc["padding"] = serde_json::Value::String("x".repeat(rest));
    assert_eq!(doc.to_string().len(), bytes);
    doc
}

/// The port of `addr`, taken again (within 5 s, while the old server's
/// listener closes) by a socket that does not listen: connections to it are
/// refused. It allows address reuse (the old server's connections may
/// linger), so another socket that also does could still bind the port
/// while it does not listen; the kernel does not hand out a bound port for
/// port 0, which is how every other test binds.
async fn hold(addr: std::net::SocketAddr) -> tokio::net::TcpSocket {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        // The old server's closed connections may linger (TIME_WAIT).
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        match socket.bind(addr) {
            Ok(()) => return socket,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot bind {addr} again: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A listener that accepts connections and never answers; they close when
/// it stops.
struct Hanging {
    task: tokio::task::JoinHandle<tokio::net::TcpListener>,
    stop: tokio_util::sync::CancellationToken,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Hanging {
    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes the connections it holds and hands its listener back.
    async fn stop(mut self) -> tokio::net::TcpListener {
        self.stop.cancel();
        (&mut self.task).await.expect("the hanging listener's task")
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Makes `port` listen, hanging every connection.
fn hanging(port: tokio::net::TcpSocket) -> Hanging {
    let listener = port.listen(1024).expect("listen");
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                () = stopped.cancelled() => return listener,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        held.push(stream);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
    });
    Hanging {
        task,
        stop,
        accepted,
    }
}
