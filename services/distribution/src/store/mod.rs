//! Persistence in the `distribution` schema. Every function takes the
//! caller's connection, so a handler's state change and its outbox event
//! commit in one transaction.

pub mod authorisations;
pub mod changes;
pub mod directory;
pub mod listings;
pub mod relations;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vbp_kernel::{OrgId, RegionCode};

use crate::domain::region_range;

pub use authorisations::*;
pub use changes::*;
pub use directory::*;
pub use listings::*;
pub use relations::*;

/// Who may see what, as SQL parameters `($1 kind, $2 lo, $3 hi, $4 org)`:
/// `all`, `region` (hospital region in `lo..=hi`), `hospital`,
/// `manufacturer`, `distributor` (`org`) or `none`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub kind: &'static str,
    pub lo: i32,
    pub hi: i32,
    pub org: uuid::Uuid,
}

impl Scope {
    fn new(kind: &'static str, lo: i32, hi: i32, org: uuid::Uuid) -> Self {
        Self { kind, lo, hi, org }
    }
    pub fn all() -> Self {
        Self::new("all", 0, 999_999, uuid::Uuid::nil())
    }
    pub fn region(region: RegionCode) -> Self {
        let (lo, hi) = region_range(region);
        Self::new("region", lo, hi, uuid::Uuid::nil())
    }
    /// A hospital: its own rows; `region` is where it sits (authorisations
    /// covering it are visible to it).
    pub fn hospital(org: OrgId, region: RegionCode) -> Self {
        let v = region.as_u32() as i32;
        Self::new("hospital", v, v, org.as_uuid())
    }
    pub fn manufacturer(org: OrgId) -> Self {
        Self::new("manufacturer", 0, -1, org.as_uuid())
    }
    pub fn distributor(org: OrgId) -> Self {
        Self::new("distributor", 0, -1, org.as_uuid())
    }
    pub fn none() -> Self {
        Self::new("none", 0, -1, uuid::Uuid::nil())
    }
}

pub fn is_unique_violation(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            Some(db.constraint().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

/// Records that the demo `name` was loaded; false when it already was.
pub async fn mark_demo(
    conn: &mut PgConnection,
    name: &str,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO demo_marks (name, loaded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
