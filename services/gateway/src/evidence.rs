//! Evidence files of issue direct reports (集采问题直报) cross the edge as
//! raw bodies, not JSON: an RPC message is limited to 1 MiB by the broker,
//! so the file goes to the JetStream object store instead.
//!
//! Upload: the issues service is asked for a slot (so a wrong name or type
//! is refused before any byte is read), the body is streamed into the
//! evidence bucket under the slot's name with the slot's size limit, and the
//! service is asked to register it; the service reads the object back,
//! checks size, type and SHA-256, and deletes what it refuses.
//!
//! Download: the service answers the file's metadata only if the caller may
//! see it; the content is then streamed from the bucket.

use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vbp_bus::Context;
use vbp_contracts::issues::{
    BeginEvidence, EvidenceBegin, EvidenceGet, EvidenceSlot, EvidenceUpload, EvidenceView,
    GetEvidence, UploadEvidence, evidence_bucket,
};
use vbp_contracts::{RpcOp, Service};

use crate::problem::{Problem, codes};
use crate::request::RequestContext;
use crate::routes::Route;
use crate::{CompiledRoute, Gateway, forward};

/// Operation id of the upload route.
pub const UPLOAD: &str = "issues_evidence_upload";
/// Operation id of the content download route.
pub const CONTENT: &str = "issues_evidence_content";

/// Whether `route` moves file content (served here rather than forwarded).
pub(crate) fn streams(route: &Route) -> bool {
    matches!(route.operation_id.as_deref(), Some(UPLOAD | CONTENT))
}

pub(crate) async fn handle(
    gateway: &Gateway,
    compiled: &CompiledRoute,
    request: Request,
) -> Result<Response, Problem> {
    let route = &compiled.route;
    let (mut parts, body) = request.into_parts();
    let actor = gateway.admit(
        &parts.headers,
        route.policy.as_ref().expect("validated table"),
    )?;
    let ctx = Context::with_correlation(RequestContext::of(&parts).correlation, Some(actor));
    if route.operation_id.as_deref() == Some(UPLOAD) {
        upload(gateway, &ctx, &parts, body).await
    } else {
        let path = forward::path_params(&mut parts).await?;
        let id = path
            .iter()
            .find(|(k, _)| k == "evidence")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    codes::VALIDATION_FAILED,
                    "evidence must be an evidence id",
                )
                .with_field("evidence")
            })?;
        download(gateway, &ctx, id).await
    }
}

async fn call<Op: RpcOp>(
    gateway: &Gateway,
    ctx: &Context,
    req: &Op::Request,
) -> Result<Op::Response, Problem>
where
    Op::Response: DeserializeOwned,
{
    let payload = Bytes::from(serde_json::to_vec(req).unwrap_or_default());
    let reply = gateway
        .rpc
        .call_raw(Service::Issues, Op::NAME, ctx, payload)
        .await
        .map_err(|e| Problem::from_call(Service::Issues, Op::NAME, e))?;
    serde_json::from_slice(&reply).map_err(|e| {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            codes::BAD_GATEWAY,
            format!("the issues service answered {} unreadably: {e}", Op::NAME),
        )
    })
}

async fn bucket(
    gateway: &Gateway,
) -> Result<async_nats::jetstream::object_store::ObjectStore, Problem> {
    gateway
        .platform
        .js
        .get_object_store(evidence_bucket(&gateway.platform.ns))
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SERVICE_UNAVAILABLE,
                format!("the evidence store is not available ({e}); retry later"),
            )
            .retry_after(5)
        })
}

#[derive(Deserialize)]
struct UploadQuery {
    file_name: String,
    #[serde(default)]
    sealed: bool,
}

fn too_large(max: u64) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::PAYLOAD_TOO_LARGE,
        format!("file: larger than the limit of {max} bytes"),
    )
    .with_field("file")
}

async fn upload(
    gateway: &Gateway,
    ctx: &Context,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Response, Problem> {
    let Query(q) = Query::<UploadQuery>::try_from_uri(&parts.uri).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::VALIDATION_FAILED,
            format!(
                "file_name (and optionally sealed) are query parameters: {}",
                e.body_text()
            ),
        )
        .with_field("file_name")
    })?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let slot: EvidenceSlot = call::<EvidenceBegin>(
        gateway,
        ctx,
        &BeginEvidence {
            file_name: q.file_name.clone(),
            content_type: content_type.clone(),
        },
    )
    .await?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > slot.max_bytes) {
        return Err(too_large(slot.max_bytes));
    }
    let store = bucket(gateway).await?;
    // The body is piped into the store as it arrives; the feeder stops one
    // byte past the limit so an oversized file is never stored whole.
    let (mut writer, mut reader) = tokio::io::duplex(64 * 1024);
    let max = slot.max_bytes;
    let feed = async move {
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "body_read_failed",
                    format!("reading the upload failed: {e}"),
                )
            })?;
            total += chunk.len() as u64;
            if total > max {
                return Err(too_large(max));
            }
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        Ok(total)
    };
    let object = slot.object.clone();
    let (fed, put) = tokio::join!(feed, store.put(object.as_str(), &mut reader));
    if fed.is_err() || put.is_err() {
        let _ = store.delete(&object).await;
    }
    fed?;
    put.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVICE_UNAVAILABLE,
            format!("storing the file failed ({e}); retry later"),
        )
        .retry_after(5)
    })?;
    let view: EvidenceView = call::<EvidenceUpload>(
        gateway,
        ctx,
        &UploadEvidence {
            object,
            file_name: q.file_name,
            content_type,
            sealed: q.sealed,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// `filename*` of RFC 6266 / 5987: UTF-8, percent-encoded.
fn disposition(file_name: &str) -> String {
    let encoded: String = file_name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename*=UTF-8''{encoded}")
}

async fn download(
    gateway: &Gateway,
    ctx: &Context,
    evidence: vbp_contracts::issues::EvidenceId,
) -> Result<Response, Problem> {
    let view: EvidenceView = call::<EvidenceGet>(gateway, ctx, &GetEvidence { evidence }).await?;
    let store = bucket(gateway).await?;
    let object = store.get(&view.object).await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVICE_UNAVAILABLE,
            format!("reading evidence {evidence} failed ({e}); retry later"),
        )
        .retry_after(5)
    })?;
    let stream = futures::stream::unfold(Some(object), |object| async move {
        let mut object = object?;
        let mut buf = vec![0u8; 64 * 1024];
        match object.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(object)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, view.content_type.clone());
    set(header::CONTENT_LENGTH, view.size_bytes.to_string());
    set(header::CONTENT_DISPOSITION, disposition(&view.file_name));
    set(header::ETAG, format!("\"{}\"", view.sha256));
    set(
        header::HeaderName::from_static("x-content-sha256"),
        view.sha256.clone(),
    );
    Ok(response)
}
