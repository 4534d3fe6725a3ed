//! Ids of rows that exist, to put in `{param}` path segments: every string
//! field of every list the operator (who sees everything) can read, by field
//! name, so `{agreement}` gets the `agreement` ids of `GET /agreements`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reqwest::Method;
use serde_json::Value;

use crate::cast::CastOrg;
use crate::routes::{self, RouteInfo, query_string};
use crate::system::System;
use crate::values;

/// Values seen, by field name.
pub type Samples = BTreeMap<String, BTreeSet<String>>;

/// The required query parameters of `route` as `caller` would fill them,
/// after `overrides`.
pub fn required_query(
    doc: &Value,
    route: &RouteInfo,
    caller: &CastOrg,
    overrides: &[(String, String)],
) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = overrides.to_vec();
    for param in routes::query_params(doc, route) {
        if !param.required || pairs.iter().any(|(k, _)| *k == param.name) {
            continue;
        }
        let value = values::for_name(&param.name, caller)
            .unwrap_or_else(|| values::for_schema(doc, &param.schema, caller, 0));
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        pairs.push((param.name, text));
    }
    pairs
}

/// Every string field of `value`, by name, into `into`.
pub fn collect(value: &Value, into: &mut Samples) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect(v, into)),
        Value::Object(map) => {
            for (key, item) in map {
                if let Value::String(s) = item {
                    into.entry(key.clone()).or_default().insert(s.clone());
                }
                collect(item, into);
            }
        }
        _ => {}
    }
}

/// What `reader` sees in every list it may read: the routes without path
/// parameters, and those under the demo's running period.
pub async fn gather(
    system: &System,
    doc: &Value,
    table: &[RouteInfo],
    reader: &CastOrg,
) -> Samples {
    let period = HashMap::from([(
        "period".to_owned(),
        vbp_agreements::demo::PERIOD_2.to_owned(),
    )]);
    let mut samples = Samples::new();
    for route in table {
        let listable = route.method == Method::GET
            && route.permits(reader)
            && (route.params.is_empty() || route.params == ["period"]);
        if !listable {
            continue;
        }
        let path = format!(
            "{}{}",
            route.fill(&period),
            query_string(&required_query(doc, route, reader, &[]))
        );
        let answer = system.get(&path, reader).await;
        if answer.status == 200 {
            collect(&answer.json, &mut samples);
        }
    }
    samples
}

/// The route reading the row a `{param}` of `route` names
/// (`POST /agreements/{agreement}/confirm` → `/api/v1/agreements/{agreement}`),
/// when the table has one.
pub fn row_route(table: &[RouteInfo], route: &RouteInfo, param: &str) -> Option<String> {
    let marker = format!("{{{param}}}");
    let at = route.path.find(&marker)?;
    let row = &route.path[..at + marker.len()];
    table
        .iter()
        .any(|r| r.method == Method::GET && r.path == row)
        .then(|| row.to_owned())
}
