//! The decision input as a Cedar request (decide stage): who (principal),
//! doing what (action), to which tool (resource), in what context — plus the
//! principal, tool and route entities, merged into the config's entities.
//! README "Mapping" is the contract; this file is its implementation.

use cedar_policy::{Context, Entities, Entity, EntityUid, Request};
use serde_json::{Map, Value, json};
use toolgate_policy_sdk::{Identity, Input, Phase};

use crate::value::{to_cedar, to_record};

/// One call's Cedar request and the entities it is evaluated against.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) request: Request,
    pub(crate) entities: Entities,
}

/// Builds the request for `input` over the config's `entities`.
pub(crate) fn build(input: &Input, entities: &Entities) -> Result<Call, String> {
    let principal = principal(&input.identity);
    let route = input.route.name.as_str();
    let tool = format!("{route}/{}", input.tool.name);
    let action = match input.phase {
        Phase::Call => "call",
        Phase::List => "list",
        Phase::Grant => "grant",
    };
    let request_entities = [
        principal.clone(),
        entity(
            "Tool",
            &tool,
            json!({"name": input.tool.name, "route": route}),
            &[("Route", route)],
        ),
        entity("Route", route, json!({"kind": route_kind(input)}), &[]),
    ];
    let merged = request_entities
        .into_iter()
        .map(|e| Entity::from_json_value(merge(e, entities)?, None).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let entities = entities
        .clone()
        .upsert_entities(merged, None)
        .map_err(|e| e.to_string())?;
    let context = Context::from_json_value(context(input), None).map_err(|e| e.to_string())?;
    let request = Request::new(
        uid(&principal["uid"])?,
        uid(&json!({"type": "Action", "id": action}))?,
        uid(&json!({"type": "Tool", "id": tool}))?,
        context,
        None,
    )
    .map_err(|e| e.to_string())?;
    Ok(Call { request, entities })
}

/// `Agent::"<subject>"` (or the delegated agent), `Anonymous::"anonymous"`.
fn principal(identity: &Identity) -> Value {
    let Some(workload) = identity.workload() else {
        return entity("Anonymous", "anonymous", json!({}), &[]);
    };
    let id = workload
        .delegation
        .agent
        .as_deref()
        .unwrap_or(&workload.subject);
    let mut attrs = Map::new();
    attrs.insert("scopes".into(), json!(workload.scopes));
    if let Some(trust_domain) = identity.trust_domain() {
        attrs.insert("trust_domain".into(), json!(trust_domain));
    }
    if !workload.issuer.is_empty() {
        attrs.insert("issuer".into(), json!(workload.issuer));
    }
    entity("Agent", id, Value::Object(attrs), &[])
}

/// The request context (README "Mapping"); keys without a value are absent.
fn context(input: &Input) -> Value {
    let mut context = Map::new();
    context.insert("arguments".into(), to_record(&input.tool.arguments));
    let task_id = input
        .task
        .as_ref()
        .map(|task| task.id.clone())
        .filter(|id| !id.is_empty())
        .or_else(|| input.identity.workload()?.task_id.clone());
    if let Some(task_id) = task_id {
        context.insert("task_id".into(), json!(task_id));
    }
    if let Some(task) = &input.task {
        let labels = to_cedar(&Value::Object(task.labels.clone())).unwrap_or_default();
        context.insert(
            "task".into(),
            json!({"purpose": task.purpose, "labels": labels}),
        );
    }
    context.insert("grants_count".into(), json!(input.grants.len()));
    let calls_total = input.counters.as_ref().map_or(0, |c| c.total);
    context.insert(
        "calls_total".into(),
        to_cedar(&json!(calls_total)).unwrap_or_default(),
    );
    if let Some(workload) = input.identity.workload()
        && workload.delegation.agent.is_some()
    {
        let user = workload
            .delegation
            .user
            .as_deref()
            .unwrap_or(&workload.subject);
        context.insert(
            "on_behalf_of".into(),
            json!({"__entity": {"type": "User", "id": user}}),
        );
    }
    Value::Object(context)
}

fn route_kind(input: &Input) -> &'static str {
    match input.route.kind {
        toolgate_policy_sdk::RouteKind::Mcp => "mcp",
        toolgate_policy_sdk::RouteKind::Http => "http",
    }
}

/// An entity in Cedar's JSON entity format.
fn entity(kind: &str, id: &str, attrs: Value, parents: &[(&str, &str)]) -> Value {
    let parents: Vec<Value> = parents
        .iter()
        .map(|(kind, id)| json!({"type": kind, "id": id}))
        .collect();
    json!({"uid": {"type": kind, "id": id}, "attrs": attrs, "parents": parents})
}

/// A request entity combined with the config's entity of the same uid, if
/// any: the config's parents and attributes stay (so `principal in Team::"x"`
/// works), the input's attributes win (they come from the verified token).
fn merge(mut request: Value, entities: &Entities) -> Result<Value, String> {
    let Some(configured) = entities.get(&uid(&request["uid"])?) else {
        return Ok(request);
    };
    let mut configured = configured.to_json_value().map_err(|e| e.to_string())?;
    if let (Some(attrs), Some(ours)) = (
        configured["attrs"].as_object_mut(),
        request["attrs"].as_object(),
    ) {
        attrs.extend(ours.clone());
    }
    if let (Some(parents), Some(ours)) = (
        configured["parents"].as_array_mut(),
        request["parents"].as_array_mut(),
    ) {
        for parent in ours.drain(..) {
            if !parents.contains(&parent) {
                parents.push(parent);
            }
        }
    }
    Ok(configured)
}

fn uid(json: &Value) -> Result<EntityUid, String> {
    EntityUid::from_json(json.clone()).map_err(|e| e.to_string())
}
