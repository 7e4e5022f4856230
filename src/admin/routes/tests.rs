//! The admin path table: every endpoint, its methods and its role.

use super::*;

fn at(method: Method, path: &str) -> Result<Endpoint, Error> {
    route(&method, path)
}

#[test]
fn every_endpoint_routes_with_its_role() {
    use Endpoint as E;
    let table = [
        (Method::GET, "/v1/whoami", E::Whoami, Role::Viewer),
        (Method::GET, "/v1/tasks", E::ListTasks, Role::Viewer),
        (Method::POST, "/v1/tasks", E::CreateTask, Role::Operator),
        (
            Method::GET,
            "/v1/tasks/t1",
            E::ShowTask("t1".into()),
            Role::Viewer,
        ),
        (
            Method::POST,
            "/v1/tasks/t1/complete",
            E::EndTask("t1".into(), tasks::End::Complete),
            Role::Operator,
        ),
        (
            Method::POST,
            "/v1/tasks/t1/cancel",
            E::EndTask("t1".into(), tasks::End::Cancel),
            Role::Operator,
        ),
        (
            Method::POST,
            "/v1/tasks/t1/grants/revoke",
            E::RevokeTaskGrants("t1".into()),
            Role::Operator,
        ),
        (Method::GET, "/v1/grants", E::ListGrants, Role::Viewer),
        (Method::POST, "/v1/grants", E::IssueGrant, Role::Operator),
        (
            Method::GET,
            "/v1/grants/g1",
            E::ShowGrant("g1".into()),
            Role::Viewer,
        ),
        (
            Method::POST,
            "/v1/grants/g1/revoke",
            E::RevokeGrant("g1".into()),
            Role::Operator,
        ),
        (
            Method::POST,
            "/v1/agents/revoke-grants",
            E::RevokeAgentGrants,
            Role::Operator,
        ),
        (Method::GET, "/v1/approvals", E::ListApprovals, Role::Viewer),
        (
            Method::GET,
            "/v1/approvals/a1",
            E::ShowApproval("a1".into()),
            Role::Viewer,
        ),
        (
            Method::POST,
            "/v1/approvals/a1/approve",
            E::Approve("a1".into()),
            Role::Operator,
        ),
        (
            Method::POST,
            "/v1/approvals/a1/deny",
            E::Deny("a1".into()),
            Role::Operator,
        ),
        (Method::GET, "/v1/policies", E::ListPolicies, Role::Viewer),
        (Method::GET, "/policies", E::ListPolicies, Role::Viewer),
        (
            Method::POST,
            "/v1/policies/reload",
            E::ReloadPolicies,
            Role::Admin,
        ),
        (
            Method::POST,
            "/policies/reload",
            E::ReloadPolicies,
            Role::Admin,
        ),
        (
            Method::POST,
            "/v1/config/reload",
            E::ReloadConfig,
            Role::Admin,
        ),
    ];
    for (method, path, endpoint, role) in table {
        let found = at(method.clone(), path).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(found, endpoint, "{method} {path}");
        assert_eq!(found.role(), role, "{method} {path}");
        // Exactly the changes are audited.
        assert_eq!(found.action().is_some(), method == Method::POST, "{path}");
    }
}

#[test]
fn unknown_paths_and_methods() {
    for path in [
        "/v1",
        "/v1/tasks/",
        "/v1/tasks/t1/finish",
        "/v1/nope",
        "/v1/tasks/../grants",
        "/v2/tasks",
    ] {
        let e = at(Method::GET, path).unwrap_err();
        assert_eq!(e.code(), "not_found", "{path}");
    }
    let e = at(Method::DELETE, "/v1/tasks").unwrap_err();
    assert_eq!(e.code(), "method_not_allowed");
    let resp = e.into_response();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET, POST");
    let e = at(Method::GET, "/v1/tasks/t1/complete").unwrap_err();
    assert_eq!(e.into_response().headers()["allow"], "POST");
    let e = at(Method::POST, "/v1/whoami").unwrap_err();
    assert_eq!(e.into_response().headers()["allow"], "GET");
}

#[test]
fn escaped_ids_are_decoded_once() {
    assert_eq!(
        at(Method::GET, "/v1/tasks/task%5Fab").unwrap(),
        Endpoint::ShowTask("task_ab".into())
    );
}
