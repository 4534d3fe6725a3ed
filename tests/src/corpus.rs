//! Invalid inputs derived from a JSON schema: for each property, values that
//! break its type, format, enum, pattern, length or range, its absence when
//! it is required, and a stranger beside it when the object allows none.
//! Business amounts (quantities, fen) also get negative and absurdly large
//! values, which the schema alone does not forbid but the rules must.

use serde_json::{Map, Value, json};

use crate::routes::resolve;
use crate::values::type_of;

/// One segment of a path into a JSON document.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// `lines[0].quantity`, as serde and the services name fields.
pub fn field_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A bad value for one property.
#[derive(Debug, Clone)]
pub struct BadValue {
    pub rule: &'static str,
    pub value: Value,
    /// Still invalid when sent as query text (a number for a free string is not).
    pub invalid_as_text: bool,
}

/// One invalid body: what it breaks, at which field, and the body.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub rule: String,
    pub field: String,
    pub body: Value,
}

/// The schema a property really has: `Option<T>` is `anyOf [T, null]`.
pub fn effective<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let schema = resolve(doc, schema);
    for keyword in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(keyword).and_then(Value::as_array) {
            let real: Vec<&Value> = branches
                .iter()
                .map(|b| resolve(doc, b))
                .filter(|b| type_of(b) != Some("null") || b.get("enum").is_some())
                .collect();
            if let [only] = real.as_slice() {
                return effective(doc, only);
            }
        }
    }
    schema
}

fn is_amount(name: &str) -> bool {
    ["quantity", "_fen", "amount", "price", "volume"]
        .iter()
        .any(|w| name.contains(w))
}

/// Values that break `schema` (already [`effective`]) of a property `name`.
pub fn bad_values(schema: &Value, name: &str) -> Vec<BadValue> {
    let bad = |rule, value, invalid_as_text| BadValue {
        rule,
        value,
        invalid_as_text,
    };
    let mut out = Vec::new();
    if schema.get("enum").is_some() {
        out.push(bad("unknown enum value", json!("no_such_value"), true));
        out.push(bad("wrong type", json!(12345), false));
        return out;
    }
    match type_of(schema) {
        Some("string") => {
            out.push(bad("wrong type", json!(12345), false));
            let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
            let pattern = schema.get("pattern").and_then(Value::as_str).unwrap_or("");
            match format {
                "uuid" => out.push(bad("bad uuid", json!("not-a-uuid"), true)),
                "date" => out.push(bad("bad date", json!("2024-13-45"), true)),
                "date-time" => out.push(bad("bad date-time", json!("yesterday noon"), true)),
                _ => {}
            }
            if pattern.contains("C[0-9]{26}") {
                out.push(bad("bad national code", json!("C123"), true));
            } else if !pattern.is_empty() {
                out.push(bad("pattern", json!("99999X"), true));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                out.push(bad("too long", json!("x".repeat(max as usize + 1)), true));
            }
            if schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) >= 1 {
                out.push(bad("empty", json!(""), true));
            }
        }
        Some("integer") | Some("number") => {
            out.push(bad("wrong type", json!("ten"), true));
            out.push(bad("huge", json!(1e300), true));
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                out.push(bad("below minimum", json!(min as i64 - 1), true));
            } else if is_amount(name) {
                out.push(bad("negative amount", json!(-1), true));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                out.push(bad("above maximum", json!(max as i64 + 1), true));
            } else if is_amount(name) {
                out.push(bad("huge amount", json!(9_000_000_000_000_000_i64), true));
            }
        }
        Some("boolean") => out.push(bad("wrong type", json!("yes"), true)),
        Some("array") => {
            out.push(bad("wrong type", json!("not an array"), false));
            if schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) >= 1 {
                out.push(bad("empty list", json!([]), false));
            }
        }
        Some("object") => out.push(bad("wrong type", json!("not an object"), false)),
        _ => {}
    }
    out
}

/// Every mutation of `body` (valid-looking, built from `schema`) the schema
/// allows deriving.
pub fn mutations(doc: &Value, schema: &Value, body: &Value) -> Vec<Mutation> {
    let mut out = Vec::new();
    walk(
        doc,
        effective(doc, schema),
        body,
        &mut Vec::new(),
        body,
        &mut out,
        0,
    );
    out
}

fn walk(
    doc: &Value,
    schema: &Value,
    root: &Value,
    path: &mut Vec<Seg>,
    here: &Value,
    out: &mut Vec<Mutation>,
    depth: usize,
) {
    if depth > 6 {
        return;
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        let mut at = path.clone();
        at.push(Seg::Key("zz_unknown".into()));
        out.push(Mutation {
            rule: "unknown field".into(),
            field: field_path(&at),
            body: set(root, &at, json!(1)),
        });
    }
    for (name, property) in properties {
        let property = effective(doc, property);
        path.push(Seg::Key(name.clone()));
        for bad in bad_values(property, name) {
            out.push(Mutation {
                rule: bad.rule.into(),
                field: field_path(path),
                body: set(root, path, bad.value),
            });
        }
        if required.contains(&name.as_str()) && here.get(name).is_some() {
            out.push(Mutation {
                rule: "missing required field".into(),
                field: field_path(path),
                body: remove(root, path),
            });
        }
        if let Some(child) = here.get(name) {
            match type_of(property) {
                Some("object") => walk(doc, property, root, path, child, out, depth + 1),
                Some("array") => {
                    if let (Some(first), Some(items)) = (child.get(0), property.get("items")) {
                        path.push(Seg::Index(0));
                        walk(
                            doc,
                            effective(doc, items),
                            root,
                            path,
                            first,
                            out,
                            depth + 1,
                        );
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        path.pop();
    }
}

/// `root` with the value at `path` replaced (created when absent).
pub fn set(root: &Value, path: &[Seg], value: Value) -> Value {
    let mut out = root.clone();
    let mut node = &mut out;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match seg {
            Seg::Key(k) => {
                if !node.is_object() {
                    *node = Value::Object(Map::new());
                }
                let map = node.as_object_mut().expect("object");
                if last {
                    map.insert(k.clone(), value);
                    return out;
                }
                node = map.entry(k.clone()).or_insert(Value::Null);
            }
            Seg::Index(idx) => {
                let Some(item) = node.get_mut(*idx) else {
                    return out;
                };
                if last {
                    *item = value;
                    return out;
                }
                node = item;
            }
        }
    }
    out
}

/// `root` without the value at `path`.
pub fn remove(root: &Value, path: &[Seg]) -> Value {
    let mut out = root.clone();
    let Some((last, parents)) = path.split_last() else {
        return out;
    };
    let mut node = &mut out;
    for seg in parents {
        let next = match seg {
            Seg::Key(k) => node.get_mut(k.as_str()),
            Seg::Index(i) => node.get_mut(*i),
        };
        match next {
            Some(n) => node = n,
            None => return out,
        }
    }
    match last {
        Seg::Key(k) => {
            if let Some(map) = node.as_object_mut() {
                map.remove(k);
            }
        }
        Seg::Index(i) => {
            if let Some(items) = node.as_array_mut()
                && *i < items.len()
            {
                items.remove(*i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_cover_types_requirements_and_nesting() {
        let doc = json!({});
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["lines"],
            "properties": {
                "lines": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["quantity"],
                    "properties": {"quantity": {"type": "integer"}}
                }}
            }
        });
        let body = json!({"lines": [{"quantity": 1}]});
        let all = mutations(&doc, &schema, &body);
        let rules: Vec<(String, String)> = all
            .iter()
            .map(|m| (m.field.clone(), m.rule.clone()))
            .collect();
        for expected in [
            ("zz_unknown", "unknown field"),
            ("lines", "missing required field"),
            ("lines", "empty list"),
            ("lines[0].quantity", "negative amount"),
            ("lines[0].quantity", "missing required field"),
        ] {
            assert!(
                rules.contains(&(expected.0.to_owned(), expected.1.to_owned())),
                "{expected:?} in {rules:?}"
            );
        }
        let negative = all
            .iter()
            .find(|m| m.rule == "negative amount")
            .expect("negative");
        assert_eq!(negative.body, json!({"lines": [{"quantity": -1}]}));
        assert_eq!(
            remove(
                &body,
                &[
                    Seg::Key("lines".into()),
                    Seg::Index(0),
                    Seg::Key("quantity".into())
                ]
            ),
            json!({"lines": [{}]})
        );
    }
}
