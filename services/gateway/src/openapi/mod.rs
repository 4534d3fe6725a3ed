//! The OpenAPI 3.1 document, generated from the route table and the contract
//! types when the gateway starts, served at `/api/openapi.json`, with a
//! viewer at `/api/docs`.
//!
//! Schemas come from schemars (one generator for the whole document, so every
//! type is a component referenced by `$ref`) and are bridged into utoipa's
//! model by [`bridge`]. The same pass derives how each route's query and path
//! parameters are typed, so the forwarder and the document cannot disagree.

pub mod bridge;

use std::collections::BTreeMap;

use anyhow::Context as _;
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse};
use bytes::Bytes;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required, Schema,
};

use crate::Gateway;
use crate::input::{ParamKind, ParamKinds, Scalar};
use crate::problem::{CONTENT_TYPE as PROBLEM_JSON, Problem};
use crate::routes::{Route, RouteTable, Target, system};

pub const DOCUMENT_PATH: &str = "/api/openapi.json";
pub const VIEWER_PATH: &str = "/api/docs";

const SCHEMAS: &str = "/components/schemas";
const SECURITY_SCHEME: &str = "bearer";

/// The document and what the forwarder needs from the same pass.
pub struct Built {
    pub document: OpenApi,
    pub json: Bytes,
    /// Per route of the table, in order.
    pub params: Vec<ParamKinds>,
}

/// Errors every route under `/api/v1` may answer, as shared responses.
const COMMON_ERRORS: [(StatusCode, &str, &str); 9] = [
    (
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Malformed JSON, a bad header or a parameter given twice with different values",
    ),
    (
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "No bearer token, or one that is malformed, expired, not yet valid, of a refused algorithm or signed by an unknown key",
    ),
    (
        StatusCode::FORBIDDEN,
        "Forbidden",
        "The caller's organisation kind or roles do not admit it to this route",
    ),
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        "The body exceeds the configured limit",
    ),
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        "A body that is not application/json",
    ),
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationFailed",
        "A field has the wrong type, an unknown value or breaks a rule; `field` names it",
    ),
    (
        StatusCode::TOO_MANY_REQUESTS,
        "RateLimited",
        "The organisation exceeds its rate limit; `Retry-After` says when to retry",
    ),
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "The target service is not running, the bus is unreachable, or the gateway is at its concurrency limit",
    ),
    (
        StatusCode::GATEWAY_TIMEOUT,
        "GatewayTimeout",
        "The target service did not answer within the timeout",
    ),
];

const DESCRIPTION: &str = "\
REST API of the VBP execution platform (集中带量采购执行平台): agreements, distribution, orders, \
prepayment and issue direct reporting after the tender is decided.

**Authentication.** Every `/api/v1` route takes a JWT bearer token with the claims `sub`, `org`, \
`org_kind` (hospital, manufacturer, distributor, bureau, integrator, operator), `region` (GB/T 2260), \
`roles`, `exp` and optionally `nbf`. Production tokens are RS256; HS256 dev tokens (`vbp token`) are \
accepted only in dev mode.

**Authorisation.** Each route names the organisation kinds (and roles) it admits; the service then \
scopes what the caller sees by the caller's organisation and region.

**Requests.** The RPC request a route sends is one JSON object: the JSON body (an object; empty \
means `{}`), plus each query parameter as a field (a repeated key becomes an array), plus each path \
parameter as a field. Query and path values are typed by the request schema. A field given by more \
than one source must have the same value in each, else the answer is 400 `conflicting_parameter`.

**Errors.** Every error is `application/problem+json` (RFC 9457) with a stable `code`, the offending \
`field` for validation errors, and the request's `trace_id` and `request_id`.

**Tracing.** `traceparent` (W3C) and `X-Request-Id` are honoured and returned; `X-Correlation-Id` \
(a UUID) joins a request to an existing business flow and is returned either way.";

fn service_tag(tag: &str) -> Option<(&'static str, &'static str)> {
    Some(match tag {
        "agreements" => (
            "agreements",
            "协议、报量、协议采购量与采购进度 — agreements, volume reports, agreed volumes, procurement progress",
        ),
        "distribution" => (
            "distribution",
            "配送关系 — distribution relations: authorisation, selection, acceptance, changes",
        ),
        "orders" => (
            "orders",
            "订单、配送、验收、发票与结算 — orders, delivery, acceptance, invoices, settlement",
        ),
        "prepayment" => (
            "prepayment",
            "预付金测算、审核、划拨与冲抵 — prepayment calculation, approval, disbursement, offset",
        ),
        "issues" => (
            "issues",
            "集采问题直报 — issue direct reporting: filing, dispatch, SLA, escalation, ledger",
        ),
        "supervision" => (
            "supervision",
            "医保监管 — supervision: progress monitoring, reminders, notices, assessment, credit records, findings",
        ),
        system::TAG_INGEST => (
            system::TAG_INGEST,
            "集成平台数据接入 — integrator event ingest",
        ),
        system::TAG_FLOWS => (system::TAG_FLOWS, "业务流程追踪 — business flow timelines"),
        system::TAG_OPS => (
            system::TAG_OPS,
            "运维 — operator functions: service ping, dead letters",
        ),
        "platform" => (
            "platform",
            "健康检查与文档 — health, metrics and this document",
        ),
        _ => return None,
    })
}

/// Builds the document for `table`.
pub fn build(table: &RouteTable) -> anyhow::Result<Built> {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = SCHEMAS.into();
            s.meta_schema = None;
        })
        .into_generator();
    let problem_ref = generator.subschema_for::<Problem>().to_value();
    let mut per_route = Vec::new();
    for route in table.routes() {
        let request = route.request.map(|r| (r.schema)(&mut generator).to_value());
        let response = route
            .response
            .map(|r| (r.schema)(&mut generator).to_value());
        per_route.push((route, request, response));
    }
    let definitions = generator.take_definitions(true);

    let mut components = ComponentsBuilder::new().security_scheme(
        SECURITY_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "RS256 JWT from the identity provider (HS256 dev tokens in dev mode)",
                ))
                .build(),
        ),
    );
    for (name, schema) in &definitions {
        components = components.schema(
            name.clone(),
            bridge::to_utoipa(schema).with_context(|| format!("schema {name}"))?,
        );
    }
    let problem_schema = bridge::to_utoipa(&problem_ref)?;
    for (status, name, description) in COMMON_ERRORS {
        components =
            components.response(name, problem_response(status, description, &problem_schema));
    }

    let mut paths = Paths::new();
    let mut params = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    for (route, request, response) in &per_route {
        let request_object = request.as_ref().map(|r| resolve(r, &definitions));
        params.push(param_kinds(request_object, &definitions));
        let tag = route_tag(route);
        if !tags.contains(&tag) {
            tags.push(tag.clone());
        }
        let operation = operation(
            route,
            &tag,
            request.as_ref(),
            request_object,
            response.as_ref(),
            &definitions,
            &problem_schema,
        )?;
        paths.add_path_operation(
            route.full_path(),
            vec![http_method(&route.method)],
            operation,
        );
    }
    add_platform_paths(&mut paths);
    tags.push("platform".into());

    let document = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("VBP 集中带量采购执行平台 API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .security(Some([SecurityRequirement::new::<_, [&str; 0], &str>(
            SECURITY_SCHEME,
            [],
        )]))
        .tags(Some(tags.iter().map(|t| {
            let description = service_tag(t).map(|(_, d)| d);
            TagBuilder::new().name(t).description(description).build()
        })))
        .build();
    let json = serde_json::to_vec(&document).context("serialising the OpenAPI document")?;
    Ok(Built {
        document,
        json: Bytes::from(json),
        params,
    })
}

fn route_tag(route: &Route) -> String {
    match (&route.tag, &route.target) {
        (Some(tag), _) => tag.clone(),
        (None, Target::Rpc { service, .. }) => service.to_string(),
        (None, Target::Ingest) => system::TAG_INGEST.to_owned(),
        (None, Target::Flow) => system::TAG_FLOWS.to_owned(),
        (None, Target::Reconcile) => system::TAG_RECONCILIATION.to_owned(),
        (None, Target::Export) => crate::export::TAG.to_owned(),
    }
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        Method::TRACE => HttpMethod::Trace,
        _ => HttpMethod::Get,
    }
}

fn problem_response(status: StatusCode, description: &str, problem: &RefOr<Schema>) -> Response {
    let mut builder = ResponseBuilder::new()
        .description(format!("{} — {description}", status.as_u16()))
        .content(
            PROBLEM_JSON,
            ContentBuilder::new().schema(Some(problem.clone())).build(),
        );
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        builder = builder.header(
            "Retry-After",
            utoipa::openapi::HeaderBuilder::new()
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::Integer),
                ))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    builder.build()
}

/// The object schema behind a (possibly `$ref`) schema.
fn resolve<'a>(schema: &'a Value, definitions: &'a Map<String, Value>) -> &'a Value {
    let mut current = schema;
    for _ in 0..8 {
        let Some(name) = current
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(&format!("#{SCHEMAS}/")))
        else {
            break;
        };
        match definitions.get(name) {
            Some(target) => current = target,
            None => break,
        }
    }
    current
}

fn properties(object: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    object
        .and_then(|o| o.get("properties"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

fn required(object: Option<&Value>) -> Vec<&str> {
    object
        .and_then(|o| o.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// How each property of the request reads from a query or path string.
fn param_kinds(request: Option<&Value>, definitions: &Map<String, Value>) -> ParamKinds {
    properties(request)
        .map(|(name, schema)| (name.clone(), kind_of(schema, definitions)))
        .collect()
}

fn kind_of(schema: &Value, definitions: &Map<String, Value>) -> ParamKind {
    let schema = resolve(schema, definitions);
    for keyword in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(keyword).and_then(Value::as_array)
            && let Some(branch) = branches
                .iter()
                .find(|b| b.get("type") != Some(&json!("null")))
        {
            return kind_of(branch, definitions);
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let scalar = |t: &str| match t {
        "integer" => Scalar::Integer,
        "number" => Scalar::Number,
        "boolean" => Scalar::Boolean,
        _ => Scalar::String,
    };
    match types.into_iter().find(|t| *t != "null") {
        Some("array") => ParamKind {
            scalar: schema
                .get("items")
                .map(|items| kind_of(items, definitions).scalar)
                .unwrap_or(Scalar::String),
            array: true,
        },
        Some(t) => ParamKind {
            scalar: scalar(t),
            array: false,
        },
        None => ParamKind::TEXT,
    }
}

fn operation(
    route: &Route,
    tag: &str,
    request: Option<&Value>,
    request_object: Option<&Value>,
    response: Option<&Value>,
    definitions: &Map<String, Value>,
    problem: &RefOr<Schema>,
) -> anyhow::Result<utoipa::openapi::path::Operation> {
    let policy = route.policy_of().expect("validated table");
    let summary = match (route.summary_zh.is_empty(), route.summary_en.is_empty()) {
        (false, false) => format!("{} · {}", route.summary_zh, route.summary_en),
        (false, true) => route.summary_zh.clone(),
        _ => route.summary_en.clone(),
    };
    let mut description = route.description.clone().unwrap_or_default();
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(&format!("**Allowed:** {}.", policy.describe()));

    let mut builder = OperationBuilder::new()
        .operation_id(Some(route.operation_id_or_default()))
        .summary(Some(summary))
        .description(Some(description))
        .tag(tag);

    let path_params = route.path_params();
    let required_fields = required(request_object);
    for name in &path_params {
        let schema = properties(request_object)
            .find(|(n, _)| *n == name)
            .map(|(_, s)| bridge::to_utoipa(s))
            .transpose()?
            .unwrap_or_else(|| {
                RefOr::T(Schema::Object(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String)
                        .build(),
                ))
            });
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(schema)),
        );
    }
    let has_body = matches!(route.method, Method::POST | Method::PUT | Method::PATCH);
    if let Some(request) = request {
        if has_body {
            let body_required = required_fields
                .iter()
                .any(|f| !path_params.iter().any(|p| p == f));
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(if body_required {
                        Required::True
                    } else {
                        Required::False
                    }))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(bridge::to_utoipa(request)?))
                            .build(),
                    )
                    .build(),
            ));
        } else {
            for (name, schema) in
                properties(request_object).filter(|(n, _)| !path_params.contains(n))
            {
                let description = schema
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let kind = kind_of(schema, definitions);
                builder = builder.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Query)
                        .required(if required_fields.contains(&name.as_str()) {
                            Required::True
                        } else {
                            Required::False
                        })
                        .description(description)
                        .explode(kind.array.then_some(true))
                        .schema(Some(bridge::to_utoipa(schema)?)),
                );
            }
        }
    }

    let mut success = ResponseBuilder::new().description(
        route
            .success
            .canonical_reason()
            .unwrap_or("Success")
            .to_owned(),
    );
    if let Some(response) = response {
        success = success.content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(bridge::to_utoipa(response)?))
                .build(),
        );
    }
    builder = builder.response(route.success.as_str(), success.build());
    for (status, name, _) in COMMON_ERRORS {
        builder = builder.response(
            status.as_str(),
            RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))),
        );
    }
    for (status, when) in &route.errors {
        builder = builder.response(status.as_str(), problem_response(*status, when, problem));
    }
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "x-vbp-policy".to_owned(),
        json!({
            "org_kinds": policy.allowed_kinds().map(|k| k.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
            "roles": policy.required_roles(),
        }),
    );
    if let Target::Rpc { service, operation } = &route.target {
        extensions.insert(
            "x-vbp-rpc".to_owned(),
            json!({ "service": service, "operation": operation }),
        );
    }
    Ok(builder
        .extensions(Some(Extensions::from_iter(extensions)))
        .build())
}

/// The routes outside `/api/v1`, documented so the document covers the port.
fn add_platform_paths(paths: &mut Paths) {
    let public = |id: &str, summary: &str, content_type: &str| {
        OperationBuilder::new()
            .operation_id(Some(id))
            .summary(Some(summary))
            .tag("platform")
            .securities(Some(Vec::<SecurityRequirement>::new()))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("OK")
                    .content(content_type, ContentBuilder::new().build())
                    .build(),
            )
    };
    let ready = public(
        "readyz",
        "就绪检查 · Readiness: NATS reachable and every service answering its ping",
        "application/json",
    )
    .response(
        "503",
        ResponseBuilder::new()
            .description("Not ready; `checks` names what failed")
            .build(),
    )
    .build();
    let entries = [
        (
            "/healthz",
            public("healthz", "存活检查 · Liveness", "application/json").build(),
        ),
        ("/readyz", ready),
        (
            "/metrics",
            public(
                "metrics",
                "Prometheus 指标 · Prometheus metrics",
                "text/plain",
            )
            .build(),
        ),
        (
            DOCUMENT_PATH,
            public(
                "openapi",
                "本文档 · This OpenAPI document",
                "application/json",
            )
            .build(),
        ),
        (
            VIEWER_PATH,
            public("docs", "文档浏览 · Browsable documentation", "text/html").build(),
        ),
    ];
    for (path, operation) in entries {
        paths
            .paths
            .insert(path.to_owned(), PathItem::new(HttpMethod::Get, operation));
    }
}

pub async fn document(
    axum::extract::State(gateway): axum::extract::State<Gateway>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        gateway.openapi.clone(),
    )
}

/// A page that loads a standard viewer (Scalar) from a CDN: no assets are
/// built or vendored, and the document stays the single source.
pub async fn viewer() -> impl IntoResponse {
    Html(format!(
        r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>VBP 集中带量采购执行平台 API</title>
</head>
<body>
<script id="api-reference" data-url="{DOCUMENT_PATH}"></script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
</body>
</html>
"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> (Built, Value) {
        let built = build(&RouteTable::standard()).unwrap();
        let value: Value = serde_json::from_slice(&built.json).unwrap();
        (built, value)
    }

    #[test]
    fn every_route_is_documented_with_policy_and_errors() {
        let (built, doc) = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(built.params.len(), RouteTable::standard().routes().len());
        for route in RouteTable::standard().routes() {
            let method = route.method.as_str().to_ascii_lowercase();
            let op = &doc["paths"][route.full_path()][&method];
            assert!(
                op.is_object(),
                "{} {} missing",
                route.method,
                route.full_path()
            );
            assert!(op["summary"].as_str().unwrap().contains(" · "), "{op}");
            assert!(op["x-vbp-policy"].is_object());
            for code in ["401", "403", "422", "429", "503", "504"] {
                assert!(
                    op["responses"][code].is_object(),
                    "{code} on {}",
                    route.full_path()
                );
            }
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
    }

    #[test]
    fn contract_types_are_components_and_refs_resolve() {
        let (_, doc) = doc();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "Problem",
            "IngestBatch",
            "IngestItem",
            "OrderPlaced",
            "FlowTimeline",
            "FlowEntry",
            "PingResponse",
            "Actor",
            "OrgKind",
        ] {
            assert!(schemas.contains_key(name), "{name} missing");
        }
        let text = serde_json::to_string(&doc).unwrap();
        for piece in text.split("\"$ref\":\"").skip(1) {
            let target = piece.split('"').next().unwrap();
            let pointer = target.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "dangling {target}");
        }
        assert_eq!(
            doc["components"]["schemas"]["IngestOrderLine"]["properties"]["quantity"]["minimum"],
            1
        );
    }

    #[test]
    fn the_bridge_is_lossless_for_every_component() {
        let mut generator = SchemaSettings::draft2020_12()
            .with(|s| {
                s.definitions_path = SCHEMAS.into();
                s.meta_schema = None;
            })
            .into_generator();
        generator.subschema_for::<Problem>();
        for route in RouteTable::standard().routes() {
            route.request.map(|r| (r.schema)(&mut generator));
            route.response.map(|r| (r.schema)(&mut generator));
        }
        let expected = generator.take_definitions(true);
        let (_, doc) = doc();
        for (name, schema) in &expected {
            let mut want = schema.clone();
            normalise(&mut want);
            assert_eq!(doc["components"]["schemas"][name], want, "{name}");
        }
    }

    /// The bridge's one intended rewrite: a `true` sub-schema becomes `{}`
    /// (`additionalProperties: true` stays, utoipa models it).
    fn normalise(value: &mut Value) {
        let Value::Object(map) = value else { return };
        let fix = |v: &mut Value| {
            if *v == Value::Bool(true) {
                *v = json!({});
            } else {
                normalise(v);
            }
        };
        for (key, v) in map.iter_mut() {
            match (key.as_str(), v) {
                ("properties", Value::Object(props)) => props.values_mut().for_each(fix),
                ("items", v) => fix(v),
                ("oneOf" | "anyOf" | "allOf", Value::Array(branches)) => {
                    branches.iter_mut().for_each(fix)
                }
                ("additionalProperties", v) => normalise(v),
                _ => {}
            }
        }
    }

    #[test]
    fn query_parameters_are_typed_from_the_request_schema() {
        let (built, doc) = doc();
        let table = RouteTable::standard();
        let (i, _) = table
            .routes()
            .iter()
            .enumerate()
            .find(|(_, r)| r.path.ends_with("/dead-letters") && r.method == Method::GET)
            .unwrap();
        assert_eq!(built.params[i]["limit"].scalar, Scalar::Integer);
        let op = &doc["paths"]["/api/v1/services/orders/dead-letters"]["get"];
        assert_eq!(op["parameters"][0]["name"], "limit");
        assert_eq!(op["parameters"][0]["in"], "query");
    }
}
