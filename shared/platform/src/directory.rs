//! The organisation directory as services that need only who is who
//! project it: a table `orgs (id, kind, name, region, active, revision)` in
//! the service's own schema, keeping the newest revision of each record.

use sqlx::PgConnection;
use vbp_contracts::agreements::OrgRecord;

pub async fn upsert_org(conn: &mut PgConnection, r: &OrgRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO orgs (id, kind, name, region, active, revision) VALUES ($1,$2,$3,$4,$5,$6) \
         ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, \
         region = EXCLUDED.region, active = EXCLUDED.active, revision = EXCLUDED.revision \
         WHERE orgs.revision < EXCLUDED.revision",
    )
    .bind(r.org.as_uuid())
    .bind(r.kind.as_str())
    .bind(&r.name)
    .bind(r.region.as_u32() as i32)
    .bind(r.active)
    .bind(r.revision)
    .execute(conn)
    .await?;
    Ok(())
}
