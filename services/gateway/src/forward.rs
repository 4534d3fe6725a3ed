//! The generic forwarder: one HTTP request becomes one RPC, with the caller's
//! [`vbp_kernel::Actor`], the correlation id and the trace context, and the
//! reply becomes the HTTP answer — the service's JSON as is, or its error as
//! problem details with the status it chose.

use axum::extract::{FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use vbp_bus::Context;

use crate::problem::Problem;
use crate::request::RequestContext;
use crate::routes::Target;
use crate::{CompiledRoute, Gateway, input};

pub(crate) async fn forward(
    gateway: &Gateway,
    compiled: &CompiledRoute,
    request: Request,
) -> Result<Response, Problem> {
    let route = &compiled.route;
    let Target::Rpc { service, operation } = &route.target else {
        unreachable!("forward is only mounted for RPC routes")
    };
    let admitted = admit(gateway, compiled, request).await?;
    let payload = serde_json::to_vec(&admitted.input)
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(b"{}"));
    let rpc = match route.timeout {
        Some(timeout) => gateway.rpc.with_timeout(timeout),
        None => gateway.rpc.clone(),
    };
    match rpc
        .call_raw(*service, operation, &admitted.ctx, payload)
        .await
    {
        Ok(reply) => Ok(json_response(route.success, reply)),
        Err(e) => Err(Problem::from_call(*service, operation, e)),
    }
}

/// A request past the route's policy, with its input read and checked.
pub(crate) struct Admitted {
    /// Body, query and path parameters merged into one JSON object.
    pub input: Value,
    /// The caller and the request's correlation, for the RPC.
    pub ctx: Context,
}

/// Authenticates and authorises the caller, then merges body, query and
/// path into the route's request type, naming the first bad field.
pub(crate) async fn admit(
    gateway: &Gateway,
    compiled: &CompiledRoute,
    request: Request,
) -> Result<Admitted, Problem> {
    let route = &compiled.route;
    let (mut parts, body) = request.into_parts();
    let actor = gateway.admit(
        &parts.headers,
        route.policy.as_ref().expect("validated table"),
    )?;
    let path = if route.path.contains('{') {
        path_params(&mut parts).await?
    } else {
        Vec::new()
    };
    let query = query_params(&parts)?;
    if route.request.is_some() {
        input::known_query(&query, &compiled.params)?;
    }
    let bytes = input::read_body(&parts.headers, body, gateway.config.body_limit_bytes).await?;
    input::require_json(&parts.headers, &bytes)?;
    input::check_shape(&bytes, gateway.json_limits())?;
    let merged = Value::Object(input::merge(
        input::parse_object(&bytes)?,
        &query,
        &path,
        &compiled.params,
    )?);
    if let Some(request_type) = &route.request {
        (request_type.validate)(&merged)?;
    }
    if let Some(schema) = &compiled.request_schema {
        crate::schema_check::check(&merged, schema)
            .map_err(|v| Problem::invalid(v.path, v.message))?;
    }
    let context = RequestContext::of(&parts);
    Ok(Admitted {
        input: merged,
        ctx: Context::with_correlation(context.correlation, Some(actor)),
    })
}

pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The `{name}` segments of the matched route, percent-decoded.
pub(crate) async fn path_params(parts: &mut Parts) -> Result<Vec<(String, String)>, Problem> {
    let raw = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))?;
    Ok(raw
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn query_params(parts: &Parts) -> Result<Vec<(String, String)>, Problem> {
    if parts.uri.query().is_none_or(str::is_empty) {
        return Ok(Vec::new());
    }
    Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
}
