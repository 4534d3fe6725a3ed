//! schemars → utoipa. The contracts describe themselves with schemars (the
//! same schemas feed AsyncAPI and ingest validation); the OpenAPI document is
//! built with utoipa. Rather than describe every type twice, each schemars
//! schema is carried over node by node: sub-schemas are converted
//! recursively, the node's own keywords go through serde into utoipa's type,
//! and any keyword that type has no field for (`const`, `not`, ...) is kept
//! in its `extensions`, which serialise flat beside the known ones. The
//! result serialises back to the schemars JSON (a test checks this for every
//! schema in the document), so the bridge loses nothing.

use anyhow::{Context as _, bail};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOf, AnyOf, Array, ArrayItems, Object, OneOf, Ref, Schema, SchemaType,
};

/// Keywords a utoipa [`Ref`] can carry beside `$ref`.
const REF_SIBLINGS: [&str; 6] = [
    "description",
    "summary",
    "readOnly",
    "writeOnly",
    "default",
    "title",
];

/// Converts one JSON Schema (2020-12, as schemars writes it) into utoipa's model.
pub fn to_utoipa(schema: &Value) -> anyhow::Result<RefOr<Schema>> {
    match schema {
        // `true` admits anything: the empty schema.
        Value::Bool(true) => Ok(RefOr::T(Schema::Object(any_value()))),
        Value::Bool(false) => {
            let mut never = any_value();
            never.extensions = Some(Extensions::from_iter([("not", json!({}))]));
            Ok(RefOr::T(Schema::Object(never)))
        }
        Value::Object(map) => node(map),
        other => bail!("not a schema: {other}"),
    }
}

fn any_value() -> Object {
    let mut object = Object::default();
    object.schema_type = SchemaType::AnyValue;
    object
}

fn node(map: &Map<String, Value>) -> anyhow::Result<RefOr<Schema>> {
    if map.contains_key("$ref") {
        return reference(map);
    }
    for keyword in ["oneOf", "anyOf", "allOf"] {
        if map.contains_key(keyword) {
            return composite(map, keyword);
        }
    }
    let is_array = match map.get("type") {
        Some(Value::String(t)) => t == "array",
        Some(Value::Array(types)) => types.iter().any(|t| t == "array"),
        _ => false,
    } && map.contains_key("items");
    if is_array { array(map) } else { object(map) }
}

/// Deserialises `map` into `T` with the given keywords replaced by
/// placeholders (their real values are converted separately), then returns
/// what `T` could not hold.
fn shell<T: DeserializeOwned + serde::Serialize>(
    map: &Map<String, Value>,
    placeholders: &[(&str, Value)],
) -> anyhow::Result<(T, Map<String, Value>)> {
    let mut shell = map.clone();
    for (key, placeholder) in placeholders {
        if shell.contains_key(*key) {
            shell.insert((*key).to_owned(), placeholder.clone());
        }
    }
    let value: T = serde_json::from_value(Value::Object(shell)).context("reading a schema node")?;
    let written = serde_json::to_value(&value)?;
    let kept = written.as_object().cloned().unwrap_or_default();
    let leftovers = map
        .iter()
        .filter(|(k, _)| !kept.contains_key(*k) && !placeholders.iter().any(|(p, _)| p == k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((value, leftovers))
}

fn extensions(leftovers: Map<String, Value>) -> Option<Extensions> {
    (!leftovers.is_empty()).then(|| Extensions::from_iter(leftovers))
}

fn reference(map: &Map<String, Value>) -> anyhow::Result<RefOr<Schema>> {
    let (siblings, others): (Map<String, Value>, Map<String, Value>) = map
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| k == "$ref" || REF_SIBLINGS.contains(&k.as_str()));
    let reference: Ref =
        serde_json::from_value(Value::Object(siblings)).context("reading a $ref")?;
    if others.is_empty() {
        return Ok(RefOr::Ref(reference));
    }
    // Keywords a Ref cannot hold: the same constraint as allOf [ref] + them.
    let mut all_of = AllOf::new();
    all_of.items = vec![RefOr::Ref(reference)];
    all_of.extensions = extensions(others);
    Ok(RefOr::T(Schema::AllOf(all_of)))
}

fn branches(map: &Map<String, Value>, keyword: &str) -> anyhow::Result<Vec<RefOr<Schema>>> {
    map.get(keyword)
        .and_then(Value::as_array)
        .with_context(|| format!("{keyword} must be an array"))?
        .iter()
        .map(to_utoipa)
        .collect()
}

fn composite(map: &Map<String, Value>, keyword: &str) -> anyhow::Result<RefOr<Schema>> {
    let items = branches(map, keyword)?;
    // A node may carry several composites; the ones not modelled here stay
    // as extensions and are converted only as plain JSON.
    let placeholder = [(keyword, json!([]))];
    let schema = match keyword {
        "oneOf" => {
            let (mut s, rest): (OneOf, _) = shell(map, &placeholder)?;
            s.items = items;
            s.extensions = extensions(rest);
            Schema::OneOf(s)
        }
        "anyOf" => {
            let (mut s, rest): (AnyOf, _) = shell(map, &placeholder)?;
            s.items = items;
            s.extensions = extensions(rest);
            Schema::AnyOf(s)
        }
        _ => {
            let (mut s, rest): (AllOf, _) = shell(map, &placeholder)?;
            s.items = items;
            s.extensions = extensions(rest);
            Schema::AllOf(s)
        }
    };
    Ok(RefOr::T(schema))
}

fn array(map: &Map<String, Value>) -> anyhow::Result<RefOr<Schema>> {
    let items = map
        .get("items")
        .map(to_utoipa)
        .transpose()?
        .context("array without items")?;
    let (mut array, rest): (Array, _) = shell(map, &[("items", json!({"type": "object"}))])?;
    array.items = ArrayItems::RefOrSchema(Box::new(items));
    if rest.is_empty() {
        return Ok(RefOr::T(Schema::Array(array)));
    }
    // Array has no extensions: keep the rest on an allOf around it.
    let mut all_of = AllOf::new();
    all_of.items = vec![RefOr::T(Schema::Array(array))];
    all_of.extensions = extensions(rest);
    Ok(RefOr::T(Schema::AllOf(all_of)))
}

fn object(map: &Map<String, Value>) -> anyhow::Result<RefOr<Schema>> {
    let typeless = !map.contains_key("type");
    let mut placeholders = vec![
        ("properties", json!({})),
        ("additionalProperties", json!(true)),
    ];
    if typeless {
        placeholders.push(("type", Value::Null));
    }
    let mut with_type = map.clone();
    if typeless {
        with_type.insert("type".into(), Value::Null);
    }
    let (mut object, rest): (Object, _) = shell(&with_type, &placeholders)?;
    if typeless {
        object.schema_type = SchemaType::AnyValue;
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, schema) in properties {
            object.properties.insert(name.clone(), to_utoipa(schema)?);
        }
    }
    object.additional_properties = match map.get("additionalProperties") {
        None => None,
        Some(Value::Bool(b)) => Some(Box::new(AdditionalProperties::FreeForm(*b))),
        Some(schema) => Some(Box::new(AdditionalProperties::RefOr(to_utoipa(schema)?))),
    };
    let rest: Map<String, Value> = rest
        .into_iter()
        .filter(|(k, _)| k != "type" || !typeless)
        .collect();
    object.extensions = extensions(rest);
    Ok(RefOr::T(Schema::Object(object)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(schema: Value) -> Value {
        serde_json::to_value(to_utoipa(&schema).unwrap()).unwrap()
    }

    #[test]
    fn keywords_without_a_utoipa_field_survive() {
        let schema = json!({
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"oneOf": [
                    {"type": "string", "const": "hospital", "description": "医疗机构"},
                    {"type": "string", "const": "bureau"}
                ]},
                "note": {"type": ["string", "null"], "maxLength": 3},
                "org": {"$ref": "#/components/schemas/OrgId", "description": "who"},
                "n": {"anyOf": [{"$ref": "#/components/schemas/Small"}, {"type": "null"}]},
                "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}, "minItems": 1, "maxItems": 500},
                "any": true,
                "map": {"type": "object", "additionalProperties": {"type": "integer", "format": "int64"}},
                "pattern": {"type": "string", "pattern": "^C[0-9]{19}$", "examples": ["C1"]}
            },
            "additionalProperties": false
        });
        let mut expected = schema.clone();
        // The one rewrite: the `true` schema is written as `{}`.
        expected["properties"]["any"] = json!({});
        assert_eq!(round_trip(schema), expected);
    }

    #[test]
    fn refs_with_foreign_siblings_become_all_of() {
        let schema = json!({"$ref": "#/components/schemas/X", "deprecated": true});
        assert_eq!(
            round_trip(schema),
            json!({"allOf": [{"$ref": "#/components/schemas/X"}], "deprecated": true})
        );
    }
}
