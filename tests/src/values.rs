//! Valid-looking values for a schema, so a request reaches the rule under
//! test instead of stopping at the first missing field. Names the domain
//! knows get demo values (the running period, a winning product, the
//! caller's own hospital); the rest are built from the schema's type and
//! format.

use serde_json::{Map, Value, json};
use vbp_agreements::demo as d;
use vbp_kernel::OrgKind;

use crate::cast::CastOrg;
use crate::routes::resolve;

/// A winning product of the demo's period 2 and its price in fen.
pub const PRODUCT: &str = "C02010205103001108810000032";
pub const PRODUCT_PRICE_FEN: i64 = 69_800;

/// A value for a field or parameter called `name`, as `caller` would send it.
pub fn for_name(name: &str, caller: &CastOrg) -> Option<Value> {
    let own_or = |kind: OrgKind, fallback: &str| {
        if caller.kind == kind {
            caller.id.to_owned()
        } else {
            fallback.to_owned()
        }
    };
    Some(match name {
        "period" => json!(d::PERIOD_2),
        "project" => json!(d::PROJECT),
        "hospital" => json!(own_or(OrgKind::Hospital, d::FUXIN_HOSPITAL)),
        "manufacturer" => json!(own_or(OrgKind::Manufacturer, d::MANUFACTURER_B)),
        "distributor" => json!(own_or(OrgKind::Distributor, d::DISTRIBUTOR_FUXIN)),
        "integrator" => json!(d::INTEGRATOR),
        "national_code" => json!(PRODUCT),
        "region" | "hospital_region" => json!(if caller.kind == OrgKind::Bureau {
            caller.region
        } else {
            "210900"
        }),
        "month" => json!("2024-08-01"),
        "unit_price_fen" => json!(PRODUCT_PRICE_FEN),
        _ => return None,
    })
}

/// A value that satisfies `schema` (as far as the schema says).
pub fn for_schema(doc: &Value, schema: &Value, caller: &CastOrg, depth: usize) -> Value {
    let schema = resolve(doc, schema);
    if depth > 8 {
        return Value::Null;
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    for keyword in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = schema.get(keyword).and_then(Value::as_array) {
            let chosen = branches
                .iter()
                .find(|b| resolve(doc, b).get("type") != Some(&json!("null")))
                .or(branches.first());
            if let Some(branch) = chosen {
                return for_schema(doc, branch, caller, depth + 1);
            }
        }
    }
    match type_of(schema) {
        Some("object") => object_for(doc, schema, caller, depth),
        Some("array") => {
            let min = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            let item = schema.get("items").cloned().unwrap_or(json!({}));
            Value::Array(
                (0..min)
                    .map(|_| for_schema(doc, &item, caller, depth + 1))
                    .collect(),
            )
        }
        Some("integer") | Some("number") => {
            let min = schema.get("minimum").and_then(Value::as_i64).unwrap_or(1);
            json!(min.max(1))
        }
        Some("boolean") => json!(false),
        Some("string") => string_for(schema),
        _ => Value::Null,
    }
}

/// The schema's type, ignoring `null` in a type list.
pub fn type_of(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn string_for(schema: &Value) -> Value {
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    let pattern = schema.get("pattern").and_then(Value::as_str).unwrap_or("");
    let text = match format {
        "uuid" => uuid::Uuid::now_v7().to_string(),
        // The test clock's day: neither in the future nor before period 2.
        "date" => "2024-08-01".to_owned(),
        "date-time" => "2024-08-01T01:00:00Z".to_owned(),
        _ if pattern.contains("C[0-9]{26}") => PRODUCT.to_owned(),
        _ if pattern.contains("0000") => "210900".to_owned(),
        _ => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(1) as usize;
            "样".repeat(min.max(1))
        }
    };
    Value::String(text)
}

fn object_for(doc: &Value, schema: &Value, caller: &CastOrg, depth: usize) -> Value {
    let mut out = Map::new();
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            if !required.contains(&name.as_str()) {
                continue;
            }
            let value = for_name(name, caller)
                .filter(|v| {
                    let expected = type_of(resolve(doc, property));
                    expected == Some(if v.is_string() { "string" } else { "integer" })
                })
                .unwrap_or_else(|| for_schema(doc, property, caller, depth + 1));
            out.insert(name.clone(), value);
        }
    }
    Value::Object(out)
}
