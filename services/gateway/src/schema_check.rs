//! Checks a JSON value against the keywords of a contract's JSON Schema that
//! serde does not enforce when it reads the type: numeric ranges, string
//! lengths, item counts, enums and constants. Reading the value as its Rust
//! type (done first) has already checked types, required fields, unknown
//! fields and formats such as national codes, so the two together are the
//! schema check; `pattern` is left to those types' own parsers.
//!
//! Driving the range checks from the schema keeps them in one place: the
//! `#[schemars(range(..))]` attributes on the contract types.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `lines[0].quantity`; empty for the value itself.
    pub path: String,
    pub message: String,
}

#[derive(Clone)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn render(path: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Checks `value` against `schema`, a root schema whose `$ref`s point into
/// itself (`#/$defs/...`).
pub fn check(value: &Value, schema: &Value) -> Result<(), Violation> {
    let mut path = Vec::new();
    walk(value, schema, schema, &mut path)
}

fn violation(path: &[Segment<'_>], message: String) -> Violation {
    Violation {
        path: render(path),
        message,
    }
}

fn resolve<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

fn type_matches(value: &Value, ty: &str) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn walk<'v>(
    value: &'v Value,
    schema: &Value,
    root: &Value,
    path: &mut Vec<Segment<'v>>,
) -> Result<(), Violation> {
    let Some(schema) = schema.as_object() else {
        // `true` admits everything; `false` nothing.
        return match schema {
            Value::Bool(false) => Err(violation(path, "no value is allowed here".into())),
            _ => Ok(()),
        };
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = resolve(root, reference)
            .ok_or_else(|| violation(path, format!("unresolvable schema {reference}")))?;
        walk(value, target, root, path)?;
    }
    check_type(value, schema, path)?;
    check_enum(value, schema, path)?;
    check_number(value, schema, path)?;
    check_string(value, schema, path)?;
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for branch in all {
            walk(value, branch, root, path)?;
        }
    }
    for keyword in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(keyword).and_then(Value::as_array) {
            any_branch(value, branches, root, path)?;
        }
    }
    match value {
        Value::Object(fields) => check_object(fields, schema, root, path),
        Value::Array(items) => check_array(items, schema, root, path),
        _ => Ok(()),
    }
}

fn check_type(
    value: &Value,
    schema: &Map<String, Value>,
    path: &[Segment<'_>],
) -> Result<(), Violation> {
    let ok = match schema.get("type") {
        Some(Value::String(ty)) => type_matches(value, ty),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .any(|t| type_matches(value, t)),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(violation(
            path,
            format!("must be of type {}", schema["type"]),
        ))
    }
}

fn check_enum(
    value: &Value,
    schema: &Map<String, Value>,
    path: &[Segment<'_>],
) -> Result<(), Violation> {
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(violation(
            path,
            format!("must be one of {}", Value::Array(options.clone())),
        ));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(violation(path, format!("must be {constant}")));
    }
    Ok(())
}

fn check_number(
    value: &Value,
    schema: &Map<String, Value>,
    path: &[Segment<'_>],
) -> Result<(), Violation> {
    let Some(n) = value.as_f64() else {
        return Ok(());
    };
    let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
    if let Some(min) = bound("minimum")
        && n < min
    {
        return Err(violation(
            path,
            format!("must be at least {}", schema["minimum"]),
        ));
    }
    if let Some(max) = bound("maximum")
        && n > max
    {
        return Err(violation(
            path,
            format!("must be at most {}", schema["maximum"]),
        ));
    }
    if let Some(min) = bound("exclusiveMinimum")
        && n <= min
    {
        return Err(violation(
            path,
            format!("must be greater than {}", schema["exclusiveMinimum"]),
        ));
    }
    if let Some(max) = bound("exclusiveMaximum")
        && n >= max
    {
        return Err(violation(
            path,
            format!("must be less than {}", schema["exclusiveMaximum"]),
        ));
    }
    Ok(())
}

fn check_string(
    value: &Value,
    schema: &Map<String, Value>,
    path: &[Segment<'_>],
) -> Result<(), Violation> {
    let Some(s) = value.as_str() else {
        return Ok(());
    };
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        return Err(violation(
            path,
            format!("must be at least {min} characters long"),
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        return Err(violation(
            path,
            format!("must be at most {max} characters long"),
        ));
    }
    Ok(())
}

fn check_object<'v>(
    fields: &'v Map<String, Value>,
    schema: &Map<String, Value>,
    root: &Value,
    path: &mut Vec<Segment<'v>>,
) -> Result<(), Violation> {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                let mut at = render(path);
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(name);
                return Err(Violation {
                    path: at,
                    message: "is required".into(),
                });
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, field) in fields {
        let declared = properties.and_then(|p| p.get(name));
        let sub = match declared {
            Some(s) => Some(s),
            None => schema.get("additionalProperties"),
        };
        if let Some(sub) = sub {
            path.push(Segment::Key(name));
            let result = walk(field, sub, root, path);
            path.pop();
            result?;
        }
    }
    Ok(())
}

fn check_array<'v>(
    items: &'v [Value],
    schema: &Map<String, Value>,
    root: &Value,
    path: &mut Vec<Segment<'v>>,
) -> Result<(), Violation> {
    let n = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && n < min
    {
        return Err(violation(path, format!("must have at least {min} items")));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && n > max
    {
        return Err(violation(path, format!("must have at most {max} items")));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            path.push(Segment::Index(i));
            let result = walk(item, item_schema, root, path);
            path.pop();
            result?;
        }
    }
    Ok(())
}

/// Passes when one branch does; otherwise reports the branch that got
/// furthest into the value, which names the most precise field.
fn any_branch<'v>(
    value: &'v Value,
    branches: &[Value],
    root: &Value,
    path: &mut Vec<Segment<'v>>,
) -> Result<(), Violation> {
    let mut best: Option<Violation> = None;
    for branch in branches {
        match walk(value, branch, root, path) {
            Ok(()) => return Ok(()),
            Err(v) => {
                if best.as_ref().is_none_or(|b| v.path.len() > b.path.len()) {
                    best = Some(v);
                }
            }
        }
    }
    match best {
        Some(v) => Err(v),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_schema() -> Value {
        serde_json::to_value(vbp_contracts::ingest::schema_of("order_placed").unwrap()).unwrap()
    }

    fn order() -> Value {
        json!({
            "external_id": "PO-1",
            "hospital": "0190b6d4-7c3e-7def-8a12-3456789abcde",
            "distributor": "0190b6d4-7c3e-7def-8a12-3456789abcdf",
            "placed_at": "2024-08-01T01:00:00Z",
            "lines": [{"national_code": "C15011121200000107660000016", "quantity": 2, "unit_price_fen": 100}],
        })
    }

    #[test]
    fn contract_ranges_are_enforced_with_the_field_path() {
        let schema = order_schema();
        check(&order(), &schema).unwrap();
        let mut zero = order();
        zero["lines"][0]["quantity"] = json!(0);
        let v = check(&zero, &schema).unwrap_err();
        assert_eq!(v.path, "lines[0].quantity");
        assert!(v.message.contains("at least 1"), "{}", v.message);
        let mut huge = order();
        huge["lines"][0]["quantity"] = json!(1_000_001);
        assert_eq!(check(&huge, &schema).unwrap_err().path, "lines[0].quantity");
        let mut empty = order();
        empty["lines"] = json!([]);
        assert_eq!(check(&empty, &schema).unwrap_err().path, "lines");
        let mut long_id = order();
        long_id["external_id"] = json!("x".repeat(65));
        assert_eq!(check(&long_id, &schema).unwrap_err().path, "external_id");
    }

    #[test]
    fn branches_enums_and_nulls() {
        let schema = json!({
            "type": "object",
            "properties": {
                "kind": {"oneOf": [{"const": "a"}, {"const": "b"}]},
                "note": {"type": ["string", "null"], "maxLength": 3},
                "n": {"anyOf": [{"$ref": "#/$defs/Small"}, {"type": "null"}]}
            },
            "additionalProperties": false,
            "$defs": {"Small": {"type": "integer", "maximum": 5}}
        });
        check(&json!({"kind": "a", "note": null, "n": null}), &schema).unwrap();
        assert_eq!(
            check(&json!({"kind": "c"}), &schema).unwrap_err().path,
            "kind"
        );
        assert_eq!(
            check(&json!({"note": "long"}), &schema).unwrap_err().path,
            "note"
        );
        assert_eq!(check(&json!({"n": 6}), &schema).unwrap_err().path, "n");
        assert_eq!(check(&json!({"x": 1}), &schema).unwrap_err().path, "x");
    }
}
