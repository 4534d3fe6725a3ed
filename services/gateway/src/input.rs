//! Turning an HTTP request into the one JSON object an RPC takes, refusing
//! bad input with a 4xx that names the field — never a 500.
//!
//! Merge rule (documented in the OpenAPI description too):
//! 1. the JSON body, which must be an object (an empty body is `{}`);
//! 2. every query parameter becomes a field; a repeated key becomes an array;
//! 3. every path parameter becomes a field;
//!
//! query and path values are typed by the route's request schema (an
//! `integer` property gets a number, a `boolean` gets `true`/`false`, the rest
//! stay strings). A field given by more than one source must have the same
//! value in each, else the request is refused with `conflicting_parameter`.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::problem::{Problem, codes};

/// Sanity bounds of a JSON body, checked before it is parsed.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    pub max_depth: usize,
    pub max_items: usize,
    pub max_string_bytes: usize,
}

/// Reads at most `limit` bytes; more is 413, decided from `Content-Length`
/// before reading when the client sent one.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("the request body could not be read: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A non-empty body must say it is JSON.
pub fn require_json(headers: &HeaderMap, body: &[u8]) -> Result<(), Problem> {
    if body.is_empty() {
        return Ok(());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be application/json, got {content_type:?}"),
        ))
    }
}

/// One linear pass over the bytes: nesting depth, elements per array or
/// object, and string length, so a hostile body is refused before a parser
/// allocates for it.
pub fn check_shape(bytes: &[u8], limits: JsonLimits) -> Result<(), Problem> {
    let too_complex =
        |what: String| Problem::new(StatusCode::BAD_REQUEST, codes::JSON_TOO_COMPLEX, what);
    let mut items: Vec<usize> = Vec::new();
    let (mut in_string, mut escaped, mut string_len) = (false, false, 0usize);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                continue;
            }
            string_len += 1;
            if string_len > limits.max_string_bytes {
                return Err(too_complex(format!(
                    "a JSON string is longer than {} bytes",
                    limits.max_string_bytes
                )));
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_len = 0;
            }
            b'[' | b'{' => {
                items.push(1);
                if items.len() > limits.max_depth {
                    return Err(too_complex(format!(
                        "the JSON nests deeper than {} levels",
                        limits.max_depth
                    )));
                }
            }
            b']' | b'}' => {
                items.pop();
            }
            b',' => {
                if let Some(count) = items.last_mut() {
                    *count += 1;
                    if *count > limits.max_items {
                        return Err(too_complex(format!(
                            "a JSON array or object has more than {} elements",
                            limits.max_items
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The body as a JSON object; empty is `{}`.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::invalid("", "the body must be a JSON object")),
        Err(e) => Err(Problem::malformed_json(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// How a query or path parameter's text becomes JSON, from the request schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    String,
    Integer,
    Number,
    Boolean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamKind {
    pub scalar: Scalar,
    /// The property is an array: every occurrence is an element.
    pub array: bool,
}

impl ParamKind {
    pub const TEXT: ParamKind = ParamKind {
        scalar: Scalar::String,
        array: false,
    };
}

/// Parameter kinds by property name; unknown names are text.
pub type ParamKinds = HashMap<String, ParamKind>;

fn coerce(name: &str, raw: &str, scalar: Scalar) -> Result<Value, Problem> {
    let bad =
        |expected: &str| Problem::invalid(name, format!("{name} must be {expected}, got {raw:?}"));
    match scalar {
        Scalar::String => Ok(Value::String(raw.to_owned())),
        Scalar::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| raw.parse::<u64>().map(Value::from))
            .map_err(|_| bad("an integer")),
        Scalar::Number => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("a number")),
        Scalar::Boolean => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad("true or false")),
        },
    }
}

/// A query parameter the route's request does not have is refused rather
/// than ignored: a misspelt filter (`?stat=open`) or one a route never had
/// (`?limit=`) would otherwise answer a different list than the caller asked.
pub fn known_query(query: &[(String, String)], kinds: &ParamKinds) -> Result<(), Problem> {
    let Some((name, _)) = query.iter().find(|(name, _)| !kinds.contains_key(name)) else {
        return Ok(());
    };
    let mut known: Vec<&str> = kinds.keys().map(String::as_str).collect();
    known.sort_unstable();
    let takes = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    Err(Problem::invalid(
        name,
        format!("{name} is not a parameter of this route (it takes: {takes})"),
    ))
}

/// Applies the merge rule of this module.
pub fn merge(
    mut body: Map<String, Value>,
    query: &[(String, String)],
    path: &[(String, String)],
    kinds: &ParamKinds,
) -> Result<Map<String, Value>, Problem> {
    let kind = |name: &str| kinds.get(name).copied().unwrap_or(ParamKind::TEXT);
    let mut from_query: Map<String, Value> = Map::new();
    for (name, raw) in query {
        let k = kind(name);
        let value = coerce(name, raw, k.scalar)?;
        match from_query.get_mut(name) {
            None if k.array => {
                from_query.insert(name.clone(), Value::Array(vec![value]));
            }
            None => {
                from_query.insert(name.clone(), value);
            }
            Some(Value::Array(values)) if k.array => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    let mut from_path: Map<String, Value> = Map::new();
    for (name, raw) in path {
        from_path.insert(name.clone(), coerce(name, raw, kind(name).scalar)?);
    }
    for (name, value) in from_query.into_iter().chain(from_path) {
        match body.get(&name) {
            Some(existing) if *existing != value => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    codes::CONFLICTING_PARAMETER,
                    format!("{name} is given twice with different values (body, query or path)"),
                )
                .with_field(name));
            }
            _ => {
                body.insert(name, value);
            }
        }
    }
    Ok(body)
}

/// Checks that `value` reads as `T`, naming the first offending field.
pub fn validate_as<T: DeserializeOwned>(value: &Value) -> Result<(), Problem> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map(drop)
        .map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            Problem::invalid(field_of(&path, &message), message)
        })
}

/// The field an error is about. serde reports a missing field at the
/// enclosing object, so its name is taken from the message; an unknown
/// field's path already ends with it.
pub fn field_of(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(name) = rest.split('`').next()
    {
        return if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        };
    }
    parent.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: JsonLimits = JsonLimits {
        max_depth: 4,
        max_items: 3,
        max_string_bytes: 8,
    };

    #[test]
    fn shape_limits_depth_items_and_strings() {
        check_shape(br#"{"a":[1,2,3],"b":{"c":"12345678"}}"#, LIMITS).unwrap();
        let deep = check_shape(b"[[[[[1]]]]]", LIMITS).unwrap_err();
        assert_eq!(deep.code, codes::JSON_TOO_COMPLEX);
        assert!(deep.detail.contains("deeper than 4"), "{}", deep.detail);
        assert!(check_shape(b"[1,2,3,4]", LIMITS).is_err());
        assert!(check_shape(br#"{"a":"123456789"}"#, LIMITS).is_err());
        // Brackets and commas inside strings are text, and escapes do not end them.
        check_shape(
            br#"["[[[[[,,,,", "a\"]]"]"#,
            JsonLimits {
                max_string_bytes: 64,
                ..LIMITS
            },
        )
        .unwrap();
    }

    #[test]
    fn bodies_must_be_objects_or_empty() {
        assert!(parse_object(b"  ").unwrap().is_empty());
        assert_eq!(parse_object(b"[1]").unwrap_err().status, 422);
        let syntax = parse_object(b"{\"a\":").unwrap_err();
        assert_eq!(
            (syntax.status, syntax.code.as_str()),
            (400, codes::MALFORMED_JSON)
        );
    }

    #[test]
    fn a_query_parameter_the_route_lacks_is_refused_by_name() {
        let kinds: ParamKinds = [("page".to_owned(), ParamKind::TEXT)].into_iter().collect();
        let q = |k: &str| (k.to_owned(), "1".to_owned());
        assert!(known_query(&[q("page")], &kinds).is_ok());
        let p = known_query(&[q("page"), q("limit")], &kinds).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("limit"));
        assert!(p.detail.contains("it takes: page"), "{}", p.detail);
        let none = known_query(&[q("x")], &ParamKinds::new()).unwrap_err();
        assert!(none.detail.contains("it takes: none"), "{}", none.detail);
    }

    #[test]
    fn merge_types_parameters_and_refuses_conflicts() {
        let kinds: ParamKinds = [
            (
                "limit".to_owned(),
                ParamKind {
                    scalar: Scalar::Integer,
                    array: false,
                },
            ),
            (
                "tags".to_owned(),
                ParamKind {
                    scalar: Scalar::String,
                    array: true,
                },
            ),
            (
                "open".to_owned(),
                ParamKind {
                    scalar: Scalar::Boolean,
                    array: false,
                },
            ),
        ]
        .into();
        let body = parse_object(br#"{"name":"x","id":"p1"}"#).unwrap();
        let q = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let merged = merge(
            body.clone(),
            &[
                q("limit", "10"),
                q("tags", "a"),
                q("open", "true"),
                q("x", "1"),
                q("x", "2"),
            ],
            &[q("id", "p1")],
            &kinds,
        )
        .unwrap();
        assert_eq!(
            Value::Object(merged),
            json!({"name":"x","id":"p1","limit":10,"tags":["a"],"open":true,"x":["1","2"]})
        );
        let conflict = merge(body.clone(), &[], &[q("id", "p2")], &kinds).unwrap_err();
        assert_eq!(
            (conflict.code.as_str(), conflict.field.as_deref()),
            (codes::CONFLICTING_PARAMETER, Some("id"))
        );
        let typed = merge(body, &[q("limit", "ten")], &[], &kinds).unwrap_err();
        assert_eq!((typed.status, typed.field.as_deref()), (422, Some("limit")));
    }

    #[test]
    fn validation_names_nested_missing_and_unknown_fields() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Line {
            quantity: i64,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Order {
            lines: Vec<Line>,
        }
        let p =
            validate_as::<Order>(&json!({"lines":[{"quantity":1},{"quantity":"x"}]})).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("lines[1].quantity"));
        let p = validate_as::<Order>(&json!({})).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("lines"));
        let p = validate_as::<Order>(&json!({"lines":[{"quantity":1,"qty":2}]})).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("lines[0].qty"));
    }

    #[test]
    fn only_json_bodies_are_read() {
        let mut headers = HeaderMap::new();
        require_json(&headers, b"").unwrap();
        assert_eq!(require_json(&headers, b"{}").unwrap_err().status, 415);
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        require_json(&headers, b"{}").unwrap();
        headers.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().unwrap(),
        );
        require_json(&headers, b"{}").unwrap();
    }
}
