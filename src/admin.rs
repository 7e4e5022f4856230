//! Operator listener: liveness, readiness and Prometheus metrics, on its own
//! (loopback by default) address so agents never see it. The admin API for
//! tasks, grants and approvals joins it here.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use prometheus::{Encoder, TextEncoder};
use serde_json::json;

use crate::Body;
use crate::answer::{full, json_response};
use crate::gateway::Gateway;

pub async fn handle(gateway: Arc<Gateway>, req: Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::POST, "/policies/reload") => {
            match crate::decide::reload::reload(&gateway).await {
                Ok(modules) => json_response(
                    StatusCode::OK,
                    &json!({"reloaded": true, "modules": modules}),
                ),
                Err(error) => json_response(
                    StatusCode::CONFLICT,
                    &json!({"error": {"code": "policy_reload_failed", "message": error,
                                  "detail": "the last good policy set keeps serving"}}),
                ),
            }
        }
        (&Method::GET, "/policies") => {
            let modules: Vec<_> = gateway
                .snapshot()
                .policy
                .modules()
                .iter()
                .map(|m| json!({"name": &*m.name, "version": &*m.version, "sha256": m.hash}))
                .collect();
            json_response(StatusCode::OK, &json!({ "policies": modules }))
        }
        (&Method::GET, "/readyz") => {
            let routes = gateway.snapshot().routes().len();
            json_response(StatusCode::OK, &json!({"ready": true, "routes": routes}))
        }
        (&Method::GET, "/metrics") => {
            let mut buf = Vec::new();
            let families = gateway.recorder().registry().gather();
            match TextEncoder::new().encode(&families, &mut buf) {
                Ok(()) => {
                    let mut resp = Response::new(full(buf));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    resp
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
            }
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": "not_found",
                              "message": "try /healthz, /readyz, /metrics, GET /policies or POST /policies/reload"}}),
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
