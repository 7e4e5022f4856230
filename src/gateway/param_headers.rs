//! Understand stage, 2026-07-28, what the gateway learnt: the `Mcp-Param-*`
//! headers each route's tools declare (`x-mcp-header`), read from every
//! `tools/list` answer the gateway filters. A `tools/call` of a tool whose
//! declarations it knows is checked header by header against the argument
//! each one mirrors; of one it does not know (no list seen since start, or
//! too many tools), each header must still carry a value its arguments hold
//! (`era::check_modern_headers`). A client that meets a refusal refetches
//! the list (as SEP-2243 asks), which teaches the gateway a changed schema.

use dashmap::DashMap;
use http::HeaderMap;
use serde_json::Value;

use crate::mcp::era::{self, mirrored};

/// Most tools remembered at once, across routes; past it, tools not yet
/// known are left to the general rule.
const MAX_TOOLS: usize = 65_536;

/// The declarations per (route, tool), as last listed.
#[derive(Debug, Default)]
pub(crate) struct ParamHeaders {
    learnt: DashMap<(String, String), Vec<mirrored::Declared>>,
}

impl ParamHeaders {
    /// Learns what `tool`, as an upstream on `route` lists it, mirrors. A
    /// tool without an input schema (a notification naming it) teaches
    /// nothing; one with declarations clients refuse is forgotten.
    pub(crate) fn learn(&self, route: &str, name: &str, tool: &Value) {
        if tool.get("inputSchema").is_none() {
            return;
        }
        let key = (route.to_owned(), name.to_owned());
        match mirrored::declarations(tool) {
            Some(declared) => {
                if self.learnt.len() < MAX_TOOLS || self.learnt.contains_key(&key) {
                    self.learnt.insert(key, declared);
                }
            }
            None => {
                self.learnt.remove(&key);
            }
        }
    }

    /// Checks a `tools/call`'s `Mcp-Param-*` headers against what `tool`
    /// on `route` was last listed to mirror, if that is known.
    pub(crate) fn check(
        &self,
        route: &str,
        tool: &str,
        headers: &HeaderMap,
        arguments: &Value,
    ) -> Result<(), era::Error> {
        let key = (route.to_owned(), tool.to_owned());
        match self.learnt.get(&key) {
            Some(declared) => mirrored::check(&declared, headers, arguments),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    #[test]
    fn only_listed_schemas_teach_and_each_route_keeps_its_own() {
        let learnt = ParamHeaders::default();
        let tool = json!({"name": "deploy", "inputSchema": {"properties": {
            "region": {"type": "string", "x-mcp-header": "Region"}, "version": {"type": "string"}}}});
        let mut headers = HeaderMap::new();
        headers.insert("mcp-param-region", HeaderValue::from_static("1.2"));
        let args = json!({"region": "eu", "version": "1.2"});

        // Unknown: left to the general rule.
        assert!(learnt.check("r", "deploy", &headers, &args).is_ok());
        learnt.learn("r", "deploy", &tool);
        assert!(learnt.check("r", "deploy", &headers, &args).is_err());
        assert!(learnt.check("other", "deploy", &headers, &args).is_ok());
        // A notification naming the tool teaches nothing.
        learnt.learn("r", "deploy", &json!({"name": "deploy"}));
        assert!(learnt.check("r", "deploy", &headers, &args).is_err());
        // A schema clients refuse is forgotten.
        let bad = json!({"name": "deploy", "inputSchema": {"properties": {
            "region": {"x-mcp-header": "not a token"}}}});
        learnt.learn("r", "deploy", &bad);
        assert!(learnt.check("r", "deploy", &headers, &args).is_ok());
    }
}
