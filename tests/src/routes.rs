//! The gateway's route table and OpenAPI document as test input, so the
//! whole-system tests cover every route, including ones added later, without
//! listing them.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;
use vbp_gateway::{Policy, RouteTable, Target};

use crate::cast::CastOrg;

/// One served route.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    /// As served, with `{param}` segments: `/api/v1/orders/{order}`.
    pub path: String,
    pub params: Vec<String>,
    pub policy: Policy,
    pub target: Target,
}

impl RouteInfo {
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub fn permits(&self, org: &CastOrg) -> bool {
        self.policy.permits(&org.actor())
    }

    /// Open to every authenticated caller: reference data (directory,
    /// projects, supply lists, calendars) that is the same for everyone.
    pub fn is_public(&self) -> bool {
        self.policy.allowed_kinds().is_none() && self.policy.required_roles().is_empty()
    }

    pub fn has_body(&self) -> bool {
        matches!(self.method, Method::POST | Method::PUT | Method::PATCH)
    }

    /// The path with each `{param}` replaced by its value in `values`.
    pub fn fill(&self, values: &HashMap<String, String>) -> String {
        let mut path = self.path.clone();
        for param in &self.params {
            let value = values
                .get(param)
                .unwrap_or_else(|| panic!("{}: no value for {{{param}}}", self.name()));
            path = path.replace(&format!("{{{param}}}"), &encode(value));
        }
        path
    }

    /// The route's operation object in the OpenAPI document.
    pub fn operation<'a>(&self, doc: &'a Value) -> &'a Value {
        &doc["paths"][&self.path][self.method.as_str().to_ascii_lowercase()]
    }
}

/// Every route of [`RouteTable::standard`], in table order.
pub fn table() -> Vec<RouteInfo> {
    RouteTable::standard()
        .routes()
        .iter()
        .map(|route| RouteInfo {
            method: Method::from_bytes(route.method().as_str().as_bytes()).expect("method"),
            path: route.full_path(),
            params: route.path_params(),
            policy: route
                .policy_of()
                .cloned()
                .expect("every route has a policy"),
            target: route.target().clone(),
        })
        .collect()
}

/// Percent-encodes what is not unreserved in a path segment or query value.
pub fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `schema` with `$ref`s into `components/schemas` followed.
pub fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        let name = reference.rsplit('/').next().unwrap_or_default();
        schema = &doc["components"]["schemas"][name];
    }
    schema
}

/// The JSON schema of the route's request body, resolved.
pub fn body_schema<'a>(doc: &'a Value, route: &RouteInfo) -> Option<&'a Value> {
    let schema =
        route.operation(doc)["requestBody"]["content"]["application/json"].get("schema")?;
    Some(resolve(doc, schema))
}

/// A query parameter of the route: name, required, schema (resolved).
#[derive(Debug, Clone)]
pub struct QueryParam {
    pub name: String,
    pub required: bool,
    pub schema: Value,
}

pub fn query_params(doc: &Value, route: &RouteInfo) -> Vec<QueryParam> {
    route.operation(doc)["parameters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| QueryParam {
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            required: p["required"].as_bool().unwrap_or(false),
            schema: resolve(doc, &p["schema"]).clone(),
        })
        .collect()
}

/// `?a=1&b=2` from pairs (empty for none).
pub fn query_string(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("?{}", joined.join("&"))
}
