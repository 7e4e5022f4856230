//! Row (b), the baseline: a bare hyper pass-through proxy. It forwards each
//! request to the upstream over a pooled keep-alive client and streams the
//! answer back — no auth, no parsing, no policy, no logging. Its runtime is
//! built like the gateway's (multi-thread, `TOKIO_WORKER_THREADS` workers).

use std::convert::Infallible;

use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Body = UnsyncBoxBody<bytes::Bytes, hyper::Error>;

/// Serves until killed; prints `LISTENING <port>` once bound.
pub(crate) fn serve(upstream_port: u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        println!("LISTENING {port}");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build(connector);
        let authority: Authority = format!("127.0.0.1:{upstream_port}")
            .parse()
            .expect("authority");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, authority) = (client.clone(), authority.clone());
            tokio::spawn(async move {
                let service =
                    service_fn(move |req| forward(client.clone(), authority.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn forward(
    client: Client<HttpConnector, Incoming>,
    authority: Authority,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let mut uri = parts.uri.into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority.clone());
    parts.uri = Uri::from_parts(uri).unwrap_or_default();
    if let Ok(host) = header::HeaderValue::from_str(authority.as_str()) {
        parts.headers.insert(header::HOST, host);
    }
    match client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => Ok(resp.map(BodyExt::boxed_unsync)),
        Err(_) => {
            let mut resp = Response::new(
                Empty::new()
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            );
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(resp)
        }
    }
}
