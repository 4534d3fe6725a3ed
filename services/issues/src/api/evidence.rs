//! Evidence files. The content never travels in an RPC message: the edge
//! asks for a slot ([`evidence_begin`]), streams the file into the object
//! store under the slot's name, then registers it ([`evidence_upload`]);
//! the service reads the object back, enforces the size limit, recognises
//! the type from the leading bytes (it must equal the declared one) and
//! computes the SHA-256 before recording the metadata. A refused file is
//! deleted from the store.

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use vbp_bus::{Context, RpcError};
use vbp_contracts::issues::*;
use vbp_kernel::{Actor, OrgKind};

use super::*;
use crate::domain;
use crate::store::EvidenceRow;

fn hospital_only(a: &Actor) -> R<()> {
    if a.org_kind != OrgKind::Hospital {
        return Err(RpcError::forbidden(format!(
            "only a hospital uploads evidence (you act for a {})",
            a.org_kind
        )));
    }
    Ok(())
}

fn check_declared(file_name: &str, content_type: &str) -> R<()> {
    if !domain::valid_file_name(file_name) {
        return Err(RpcError::invalid(
            "file_name",
            "file_name must be 1 to 200 characters without a path or control characters",
        ));
    }
    if !EVIDENCE_CONTENT_TYPES.contains(&content_type) {
        return Err(RpcError::invalid(
            "content_type",
            format!(
                "content_type {content_type:?} is not accepted; use one of {}",
                EVIDENCE_CONTENT_TYPES.join(", ")
            ),
        ));
    }
    Ok(())
}

/// `evidence/{org}/{id}`: the org prefix keeps one hospital from
/// registering another's upload.
fn object_prefix(a: &Actor) -> String {
    format!("evidence/{}/", a.org)
}

pub async fn evidence_begin(svc: Shared, ctx: Context, req: BeginEvidence) -> R<EvidenceSlot> {
    let a = actor(&ctx)?;
    hospital_only(a)?;
    check_declared(&req.file_name, &req.content_type)?;
    Ok(EvidenceSlot {
        object: format!("{}{}", object_prefix(a), EvidenceId::new()),
        max_bytes: svc.settings.evidence_max_bytes,
    })
}

/// What reading an object found.
struct Read {
    size: u64,
    head: Vec<u8>,
    sha256: String,
}

/// Reads the object, stopping one byte past `max` (so a larger file is
/// known to be too large without reading it all).
async fn read_object(svc: &Svc, object: &str, max: u64) -> R<Option<Read>> {
    let mut obj = match svc.evidence.get(object).await {
        Ok(o) => o,
        Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => {
            return Err(RpcError::new(
                503,
                "evidence_store_unavailable",
                format!("evidence store: {e}"),
            ));
        }
    };
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(16);
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = obj.read(&mut buf).await.map_err(|e| {
            RpcError::new(
                503,
                "evidence_store_unavailable",
                format!("evidence store: {e}"),
            )
        })?;
        if n == 0 {
            break;
        }
        if head.len() < 16 {
            let take = (16 - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if size > max {
            break;
        }
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Some(Read { size, head, sha256 }))
}

pub async fn evidence_upload(svc: Shared, ctx: Context, req: UploadEvidence) -> R<EvidenceView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    hospital_only(a)?;
    check_declared(&req.file_name, &req.content_type)?;
    let id = req
        .object
        .strip_prefix(&object_prefix(a))
        .and_then(|rest| rest.parse::<EvidenceId>().ok())
        .ok_or_else(|| {
            RpcError::invalid(
                "object",
                "object must be a slot given to your organisation by evidence_begin",
            )
        })?;
    let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM evidence WHERE id = $1)")
        .bind(id.as_uuid())
        .fetch_one(&svc.pool)
        .await?;
    if known {
        return Err(RpcError::conflict(
            "evidence_registered",
            format!("object: {} is already registered", req.object),
        ));
    }
    let max = svc.settings.evidence_max_bytes;
    let Some(read) = read_object(&svc, &req.object, max).await? else {
        return Err(RpcError::invalid(
            "object",
            format!("nothing was uploaded to {}", req.object),
        ));
    };
    let refuse = |e: RpcError| {
        let svc = svc.clone();
        let object = req.object.clone();
        async move {
            if let Err(d) = svc.evidence.delete(&object).await {
                tracing::warn!(%object, error = %d, "could not delete a refused evidence file");
            }
            Err(e)
        }
    };
    if read.size == 0 {
        return refuse(RpcError::invalid("file", "the file is empty")).await;
    }
    if read.size > max {
        return refuse(
            RpcError::new(
                413,
                "evidence_too_large",
                format!("file: larger than the limit of {max} bytes"),
            )
            .with_field("file"),
        )
        .await;
    }
    match domain::sniff_content_type(&read.head) {
        Some(t) if t == req.content_type => {}
        found => {
            return refuse(RpcError::invalid(
                "content_type",
                format!(
                    "declared {} but the content is {}",
                    req.content_type,
                    found.unwrap_or("not a PDF, JPEG or PNG file")
                ),
            ))
            .await;
        }
    }
    let row = EvidenceRow {
        id: id.as_uuid(),
        issue: None,
        object: req.object.clone(),
        file_name: req.file_name.clone(),
        content_type: req.content_type.clone(),
        size_bytes: read.size as i64,
        sha256: read.sha256,
        sealed: req.sealed,
        uploaded_by: a.org.as_uuid(),
        uploader: a.sub.clone(),
        uploaded_at: now,
    };
    let mut tx = svc.pool.begin().await?;
    store::insert_evidence(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(row.view())
}

pub async fn evidence_get(svc: Shared, ctx: Context, req: GetEvidence) -> R<EvidenceView> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    store::evidence_scoped(&mut conn, a, req.evidence.as_uuid())
        .await?
        .map(|e| e.view())
        .ok_or_else(|| RpcError::not_found(format!("evidence {} does not exist", req.evidence)))
}
