//! Persistence in the `agreements` schema. Every function takes the caller's
//! connection, so a handler's state change and its outbox event commit in
//! one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::{
    AgreedVolumeLine, AgreedVolumeView, AgreementId, AgreementLine, AgreementState, AgreementView,
    DistributorConfirmation, HospitalLevel, OrgRecord, OrgView, PaperSigning, PeriodId, PeriodView,
    ProductGroup, ProjectId, QuantityLine, SupplyItem, VolumeReportView,
};
use vbp_kernel::{CodeKind, Money, NationalCode, OrgId, OrgKind, RegionCode};

use crate::domain::{region_from_i32, region_range};

/// Who may see what, as SQL parameters: `kind` is `all`, `region` (subtree
/// `lo..=hi`), `hospital` (`org`), `enterprise` (`org` as manufacturer or
/// named distributor) or `none`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub kind: &'static str,
    pub lo: i32,
    pub hi: i32,
    pub org: uuid::Uuid,
}

impl Scope {
    pub fn all() -> Self {
        Self {
            kind: "all",
            lo: 0,
            hi: 999_999,
            org: uuid::Uuid::nil(),
        }
    }
    pub fn region(region: RegionCode) -> Self {
        let (lo, hi) = region_range(region);
        Self {
            kind: "region",
            lo,
            hi,
            org: uuid::Uuid::nil(),
        }
    }
    pub fn hospital(org: OrgId) -> Self {
        Self {
            kind: "hospital",
            lo: 0,
            hi: -1,
            org: org.as_uuid(),
        }
    }
    pub fn enterprise(org: OrgId) -> Self {
        Self {
            kind: "enterprise",
            lo: 0,
            hi: -1,
            org: org.as_uuid(),
        }
    }
    pub fn none() -> Self {
        Self {
            kind: "none",
            lo: 0,
            hi: -1,
            org: uuid::Uuid::nil(),
        }
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

// ---------------------------------------------------------------------------
// Orgs
// ---------------------------------------------------------------------------

fn level_of(s: Option<String>) -> Option<HospitalLevel> {
    match s.as_deref() {
        Some("tertiary") => Some(HospitalLevel::Tertiary),
        Some("secondary") => Some(HospitalLevel::Secondary),
        Some("primary") => Some(HospitalLevel::Primary),
        Some("ungraded") => Some(HospitalLevel::Ungraded),
        _ => None,
    }
}

fn org_of(row: &sqlx::postgres::PgRow) -> Result<OrgView, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let acts_for: Vec<uuid::Uuid> = row.try_get("acts_for")?;
    Ok(OrgView {
        record: OrgRecord {
            org: OrgId::from_uuid(row.try_get("id")?),
            kind: kind.parse().unwrap_or(OrgKind::Operator),
            name: row.try_get("name")?,
            region: region_from_i32(row.try_get("region")?),
            nhsa_code: row.try_get("nhsa_code")?,
            level: level_of(row.try_get("level")?),
            uscc: row.try_get("uscc")?,
            is_manufacturer: row.try_get("is_manufacturer")?,
            is_distributor: row.try_get("is_distributor")?,
            acts_for: acts_for.into_iter().map(OrgId::from_uuid).collect(),
            active: row.try_get("active")?,
            revision: row.try_get("revision")?,
        },
        registered_at: row.try_get("registered_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const ORG_COLUMNS: &str = "id, kind, name, region, nhsa_code, level, uscc, is_manufacturer, \
    is_distributor, acts_for, active, revision, registered_at, updated_at";

pub async fn insert_org(
    conn: &mut PgConnection,
    r: &OrgRecord,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let acts_for: Vec<uuid::Uuid> = r.acts_for.iter().map(|o| o.as_uuid()).collect();
    sqlx::query(
        "INSERT INTO orgs (id, kind, name, region, nhsa_code, level, uscc, is_manufacturer, \
         is_distributor, acts_for, active, revision, registered_at, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$13)",
    )
    .bind(r.org.as_uuid())
    .bind(r.kind.as_str())
    .bind(&r.name)
    .bind(r.region.as_u32() as i32)
    .bind(&r.nhsa_code)
    .bind(r.level.map(|l| l.as_str()))
    .bind(&r.uscc)
    .bind(r.is_manufacturer)
    .bind(r.is_distributor)
    .bind(&acts_for)
    .bind(r.active)
    .bind(r.revision)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_org(
    conn: &mut PgConnection,
    r: &OrgRecord,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let acts_for: Vec<uuid::Uuid> = r.acts_for.iter().map(|o| o.as_uuid()).collect();
    sqlx::query(
        "UPDATE orgs SET name = $2, level = $3, is_manufacturer = $4, is_distributor = $5, \
         acts_for = $6, active = $7, revision = $8, updated_at = $9 WHERE id = $1",
    )
    .bind(r.org.as_uuid())
    .bind(&r.name)
    .bind(r.level.map(|l| l.as_str()))
    .bind(r.is_manufacturer)
    .bind(r.is_distributor)
    .bind(&acts_for)
    .bind(r.active)
    .bind(r.revision)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_org(conn: &mut PgConnection, id: OrgId) -> Result<Option<OrgView>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(org_of).transpose()
}

pub async fn get_org_for_update(
    conn: &mut PgConnection,
    id: OrgId,
) -> Result<Option<OrgView>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1 FOR UPDATE"
    )))
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(org_of).transpose()
}

pub struct OrgFilter {
    pub kind: Option<OrgKind>,
    pub region: Option<RegionCode>,
    pub q: Option<String>,
}

pub async fn list_orgs(
    conn: &mut PgConnection,
    f: &OrgFilter,
    scope: &Scope,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OrgView>, i64), sqlx::Error> {
    let (lo, hi) = f.region.map(region_range).unwrap_or((0, 999_999));
    let q = f.q.as_ref().map(|q| format!("%{}%", q.replace('%', "\\%")));
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORG_COLUMNS}, count(*) OVER () AS total FROM orgs \
         WHERE ($1::text IS NULL OR kind = $1) AND region BETWEEN $2 AND $3 \
         AND ($4::text IS NULL OR name LIKE $4 OR nhsa_code LIKE $4 OR uscc LIKE $4) \
         AND ($5 = 'all' OR ($5 = 'region' AND region BETWEEN $6 AND $7) OR id = $8 \
              OR ($5 = 'integrator' AND id = ANY (SELECT unnest(acts_for) FROM orgs WHERE id = $8))) \
         ORDER BY region, name, id LIMIT $9 OFFSET $10"
    )))
    .bind(f.kind.map(|k| k.as_str()))
    .bind(lo)
    .bind(hi)
    .bind(q)
    .bind(scope.kind)
    .bind(scope.lo)
    .bind(scope.hi)
    .bind(scope.org)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let total = rows
        .first()
        .map(|r| r.try_get::<i64, _>("total"))
        .transpose()?
        .unwrap_or(0);
    let items = rows.iter().map(org_of).collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Registered manufacturers by USCC: (id, name).
pub async fn manufacturers_by_uscc(
    conn: &mut PgConnection,
) -> Result<HashMap<String, (OrgId, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, uscc FROM orgs WHERE is_manufacturer AND active AND uscc IS NOT NULL",
    )
    .fetch_all(conn)
    .await?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(
            r.try_get::<String, _>("uscc")?,
            (OrgId::from_uuid(r.try_get("id")?), r.try_get("name")?),
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Projects and periods
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ProjectRow {
    pub id: ProjectId,
    pub code: String,
    pub name: String,
    pub organiser: String,
    pub category: CodeKind,
    pub provinces: Vec<RegionCode>,
    pub product_groups: Vec<ProductGroup>,
    pub registered_at: DateTime<Utc>,
}

fn project_of(r: &sqlx::postgres::PgRow) -> Result<ProjectRow, sqlx::Error> {
    let provinces: Vec<i32> = r.try_get("provinces")?;
    let groups: Json<Vec<ProductGroup>> = r.try_get("product_groups")?;
    let category: String = r.try_get("category")?;
    Ok(ProjectRow {
        id: ProjectId::from_uuid(r.try_get("id")?),
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        organiser: r.try_get("organiser")?,
        category: if category == "drug" {
            CodeKind::Drug
        } else {
            CodeKind::Consumable
        },
        provinces: provinces.into_iter().map(region_from_i32).collect(),
        product_groups: groups.0,
        registered_at: r.try_get("registered_at")?,
    })
}

pub async fn insert_project(conn: &mut PgConnection, p: &ProjectRow) -> Result<(), sqlx::Error> {
    let provinces: Vec<i32> = p.provinces.iter().map(|r| r.as_u32() as i32).collect();
    sqlx::query(
        "INSERT INTO projects (id, code, name, organiser, category, provinces, product_groups, registered_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    )
    .bind(p.id.as_uuid())
    .bind(&p.code)
    .bind(&p.name)
    .bind(&p.organiser)
    .bind(match p.category {
        CodeKind::Consumable => "consumable",
        CodeKind::Drug => "drug",
    })
    .bind(&provinces)
    .bind(Json(&p.product_groups))
    .bind(p.registered_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_project(
    conn: &mut PgConnection,
    id: ProjectId,
) -> Result<Option<ProjectRow>, sqlx::Error> {
    let r = sqlx::query("SELECT * FROM projects WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?;
    r.as_ref().map(project_of).transpose()
}

pub async fn project_by_code(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<ProjectRow>, sqlx::Error> {
    let r = sqlx::query("SELECT * FROM projects WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await?;
    r.as_ref().map(project_of).transpose()
}

pub async fn list_projects(
    conn: &mut PgConnection,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ProjectRow>, i64), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT *, count(*) OVER () AS total FROM projects ORDER BY registered_at, code LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let total = rows
        .first()
        .map(|r| r.try_get::<i64, _>("total"))
        .transpose()?
        .unwrap_or(0);
    Ok((
        rows.iter().map(project_of).collect::<Result<_, _>>()?,
        total,
    ))
}

#[derive(Debug, Clone)]
pub struct PeriodRow {
    pub id: PeriodId,
    pub project: ProjectId,
    pub project_code: String,
    pub number: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub paper_deadline: Option<DateTime<Utc>>,
    pub carried_over_from: Option<PeriodId>,
    pub supply_revision: i32,
    pub supply_published_at: Option<DateTime<Utc>>,
    pub window_opened_at: Option<DateTime<Utc>>,
    pub window_closes_at: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
}

impl PeriodRow {
    pub fn window_open(&self, now: DateTime<Utc>) -> bool {
        matches!((self.window_opened_at, self.window_closes_at), (Some(o), Some(c)) if o <= now && now < c)
    }

    pub fn view(&self, now: DateTime<Utc>) -> PeriodView {
        PeriodView {
            period: self.id,
            project: self.project,
            project_code: self.project_code.clone(),
            number: self.number,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            first_day: self.first_day,
            last_day: self.last_day,
            paper_deadline: self.paper_deadline,
            carried_over_from: self.carried_over_from,
            supply_list_revision: self.supply_revision,
            volume_window_open: self.window_open(now),
            opened_at: self.opened_at,
        }
    }
}

fn period_of(r: &sqlx::postgres::PgRow) -> Result<PeriodRow, sqlx::Error> {
    Ok(PeriodRow {
        id: PeriodId::from_uuid(r.try_get("id")?),
        project: ProjectId::from_uuid(r.try_get("project")?),
        project_code: r.try_get("project_code")?,
        number: r.try_get("number")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        first_day: r.try_get("first_day")?,
        last_day: r.try_get("last_day")?,
        paper_deadline: r.try_get("paper_deadline")?,
        carried_over_from: r
            .try_get::<Option<uuid::Uuid>, _>("carried_over_from")?
            .map(PeriodId::from_uuid),
        supply_revision: r.try_get("supply_revision")?,
        supply_published_at: r.try_get("supply_published_at")?,
        window_opened_at: r.try_get("window_opened_at")?,
        window_closes_at: r.try_get("window_closes_at")?,
        opened_at: r.try_get("opened_at")?,
    })
}

const PERIOD_SELECT: &str =
    "SELECT p.*, j.code AS project_code FROM periods p JOIN projects j ON j.id = p.project";

pub async fn insert_period(conn: &mut PgConnection, p: &PeriodRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO periods (id, project, number, starts_at, ends_at, first_day, last_day, \
         paper_deadline, carried_over_from, opened_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
    )
    .bind(p.id.as_uuid())
    .bind(p.project.as_uuid())
    .bind(p.number)
    .bind(p.starts_at)
    .bind(p.ends_at)
    .bind(p.first_day)
    .bind(p.last_day)
    .bind(p.paper_deadline)
    .bind(p.carried_over_from.map(|x| x.as_uuid()))
    .bind(p.opened_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_period(
    conn: &mut PgConnection,
    id: PeriodId,
) -> Result<Option<PeriodRow>, sqlx::Error> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PERIOD_SELECT} WHERE p.id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    r.as_ref().map(period_of).transpose()
}

/// The period row locked for the rest of the transaction (serialises list
/// publication and window changes of one period).
pub async fn lock_period(
    conn: &mut PgConnection,
    id: PeriodId,
) -> Result<Option<PeriodRow>, sqlx::Error> {
    sqlx::query("SELECT 1 FROM periods WHERE id = $1 FOR UPDATE")
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    get_period(conn, id).await
}

pub async fn period_by_number(
    conn: &mut PgConnection,
    project: ProjectId,
    number: i32,
) -> Result<Option<PeriodRow>, sqlx::Error> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PERIOD_SELECT} WHERE p.project = $1 AND p.number = $2"
    )))
    .bind(project.as_uuid())
    .bind(number)
    .fetch_optional(conn)
    .await?;
    r.as_ref().map(period_of).transpose()
}

pub async fn periods_of(
    conn: &mut PgConnection,
    project: ProjectId,
) -> Result<Vec<PeriodRow>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PERIOD_SELECT} WHERE p.project = $1 ORDER BY p.number"
    )))
    .bind(project.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.iter().map(period_of).collect()
}

pub async fn set_window(
    conn: &mut PgConnection,
    period: PeriodId,
    opened_at: Option<DateTime<Utc>>,
    closes_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE periods SET window_opened_at = $2, window_closes_at = $3 WHERE id = $1")
        .bind(period.as_uuid())
        .bind(opened_at)
        .bind(closes_at)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Supply lists
// ---------------------------------------------------------------------------

pub async fn replace_items(
    conn: &mut PgConnection,
    period: PeriodId,
    status: &str,
    items: &[SupplyItem],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM supply_items WHERE period = $1 AND status = $2")
        .bind(period.as_uuid())
        .bind(status)
        .execute(&mut *conn)
        .await?;
    let mut codes = Vec::new();
    let mut names = Vec::new();
    let mut specs = Vec::new();
    let mut units = Vec::new();
    let mut makers = Vec::new();
    let mut prices = Vec::new();
    let mut groups = Vec::new();
    let mut positions = Vec::new();
    for (i, it) in items.iter().enumerate() {
        codes.push(it.national_code.as_str().to_owned());
        names.push(it.generic_name.clone());
        specs.push(it.spec_model.clone());
        units.push(it.unit.clone());
        makers.push(it.manufacturer.as_uuid());
        prices.push(it.winning_price_fen.fen());
        groups.push(it.product_group.clone());
        positions.push(i as i32);
    }
    sqlx::query(
        "INSERT INTO supply_items (period, status, national_code, generic_name, spec_model, unit, \
         manufacturer, winning_price_fen, product_group, position) \
         SELECT $1, $2, * FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[], \
         $8::bigint[], $9::text[], $10::int[])",
    )
    .bind(period.as_uuid())
    .bind(status)
    .bind(&codes)
    .bind(&names)
    .bind(&specs)
    .bind(&units)
    .bind(&makers)
    .bind(&prices)
    .bind(&groups)
    .bind(&positions)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn items(
    conn: &mut PgConnection,
    period: PeriodId,
    status: &str,
) -> Result<Vec<SupplyItem>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT s.*, o.name AS manufacturer_name FROM supply_items s JOIN orgs o ON o.id = s.manufacturer \
         WHERE s.period = $1 AND s.status = $2 ORDER BY s.position",
    )
    .bind(period.as_uuid())
    .bind(status)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let code: String = r.try_get("national_code")?;
            Ok(SupplyItem {
                national_code: NationalCode::parse(&code)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                generic_name: r.try_get("generic_name")?,
                spec_model: r.try_get("spec_model")?,
                unit: r.try_get("unit")?,
                manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
                manufacturer_name: r.try_get("manufacturer_name")?,
                winning_price_fen: Money::from_fen(r.try_get("winning_price_fen")?),
                product_group: r.try_get("product_group")?,
            })
        })
        .collect()
}

/// The published list becomes `items`; returns the new revision.
pub async fn publish_items(
    conn: &mut PgConnection,
    period: PeriodId,
    items: &[SupplyItem],
    at: DateTime<Utc>,
) -> Result<i32, sqlx::Error> {
    replace_items(conn, period, "published", items).await?;
    sqlx::query_scalar(
        "UPDATE periods SET supply_revision = supply_revision + 1, supply_published_at = $2 \
         WHERE id = $1 RETURNING supply_revision",
    )
    .bind(period.as_uuid())
    .bind(at)
    .fetch_one(conn)
    .await
}

// ---------------------------------------------------------------------------
// Volume reports and agreed volumes
// ---------------------------------------------------------------------------

pub async fn upsert_report(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    group: &str,
    lines: &[QuantityLine],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let total: i64 = lines.iter().map(|l| l.quantity).sum();
    sqlx::query(
        "INSERT INTO volume_reports (period, hospital, product_group, lines, quantity, reported_at) \
         VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (period, hospital, product_group) \
         DO UPDATE SET lines = $4, quantity = $5, reported_at = $6",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(group)
    .bind(Json(lines))
    .bind(total)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

fn report_of(r: &sqlx::postgres::PgRow) -> Result<VolumeReportView, sqlx::Error> {
    let lines: Json<Vec<QuantityLine>> = r.try_get("lines")?;
    Ok(VolumeReportView {
        period: PeriodId::from_uuid(r.try_get("period")?),
        hospital: OrgId::from_uuid(r.try_get("hospital")?),
        hospital_name: r.try_get("hospital_name")?,
        hospital_region: region_from_i32(r.try_get("hospital_region")?),
        product_group: r.try_get("product_group")?,
        lines: lines.0,
        quantity: r.try_get("quantity")?,
        reported_at: r.try_get("reported_at")?,
    })
}

pub async fn get_report(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    group: &str,
) -> Result<Option<VolumeReportView>, sqlx::Error> {
    let r = sqlx::query(
        "SELECT v.*, o.name AS hospital_name, o.region AS hospital_region FROM volume_reports v \
         JOIN orgs o ON o.id = v.hospital WHERE v.period = $1 AND v.hospital = $2 AND v.product_group = $3",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(group)
    .fetch_optional(conn)
    .await?;
    r.as_ref().map(report_of).transpose()
}

pub async fn list_reports(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: Option<OrgId>,
    region: Option<RegionCode>,
    scope: &Scope,
    limit: i64,
    offset: i64,
) -> Result<(Vec<VolumeReportView>, i64), sqlx::Error> {
    let (lo, hi) = region.map(region_range).unwrap_or((0, 999_999));
    let rows = sqlx::query(
        "SELECT v.*, o.name AS hospital_name, o.region AS hospital_region, count(*) OVER () AS total \
         FROM volume_reports v JOIN orgs o ON o.id = v.hospital \
         WHERE v.period = $1 AND ($2::uuid IS NULL OR v.hospital = $2) AND o.region BETWEEN $3 AND $4 \
         AND ($5 = 'all' OR ($5 = 'region' AND o.region BETWEEN $6 AND $7) OR ($5 = 'hospital' AND v.hospital = $8)) \
         ORDER BY o.region, o.name, v.product_group LIMIT $9 OFFSET $10",
    )
    .bind(period.as_uuid())
    .bind(hospital.map(|h| h.as_uuid()))
    .bind(lo)
    .bind(hi)
    .bind(scope.kind)
    .bind(scope.lo)
    .bind(scope.hi)
    .bind(scope.org)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let total = rows
        .first()
        .map(|r| r.try_get::<i64, _>("total"))
        .transpose()?
        .unwrap_or(0);
    Ok((rows.iter().map(report_of).collect::<Result<_, _>>()?, total))
}

/// Reported quantity per (hospital, product group) of a period.
pub async fn reported_totals(
    conn: &mut PgConnection,
    period: PeriodId,
) -> Result<HashMap<(OrgId, String), i64>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT hospital, product_group, quantity FROM volume_reports WHERE period = $1",
    )
    .bind(period.as_uuid())
    .fetch_all(conn)
    .await?;
    Ok(by_hospital_and_group(rows))
}

fn by_hospital_and_group(rows: Vec<(uuid::Uuid, String, i64)>) -> HashMap<(OrgId, String), i64> {
    rows.into_iter()
        .map(|(hospital, group, quantity)| ((OrgId::from_uuid(hospital), group), quantity))
        .collect()
}

/// Accepted quantity per (hospital, product group) of a period, by the
/// period's published supply list.
pub async fn accepted_by_group(
    conn: &mut PgConnection,
    period: PeriodId,
) -> Result<HashMap<(OrgId, String), i64>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT p.hospital, s.product_group, sum(p.accepted_quantity)::bigint AS q FROM progress p \
         JOIN supply_items s ON s.period = p.period AND s.status = 'published' AND s.national_code = p.national_code \
         WHERE p.period = $1 GROUP BY p.hospital, s.product_group",
    )
    .bind(period.as_uuid())
    .fetch_all(conn)
    .await?;
    Ok(by_hospital_and_group(rows))
}

pub async fn upsert_agreed(
    conn: &mut PgConnection,
    v: &AgreedVolumeView,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agreed_volumes (period, hospital, product_group, quantity, amount_fen, revision, reason, set_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (period, hospital, product_group) \
         DO UPDATE SET quantity = $4, amount_fen = $5, revision = $6, reason = $7, set_at = $8",
    )
    .bind(v.period.as_uuid())
    .bind(v.hospital.as_uuid())
    .bind(&v.product_group)
    .bind(v.quantity)
    .bind(v.amount_fen.fen())
    .bind(v.revision)
    .bind(&v.reason)
    .bind(v.set_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM agreed_volume_lines WHERE period = $1 AND hospital = $2 AND product_group = $3",
    )
    .bind(v.period.as_uuid())
    .bind(v.hospital.as_uuid())
    .bind(&v.product_group)
    .execute(&mut *conn)
    .await?;
    for l in &v.lines {
        sqlx::query(
            "INSERT INTO agreed_volume_lines (period, hospital, product_group, national_code, manufacturer, \
             quantity, unit_price_fen, amount_fen) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(v.period.as_uuid())
        .bind(v.hospital.as_uuid())
        .bind(&v.product_group)
        .bind(l.national_code.as_str())
        .bind(l.manufacturer.as_uuid())
        .bind(l.quantity)
        .bind(l.unit_price_fen.fen())
        .bind(l.amount_fen.fen())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn list_agreed(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: Option<OrgId>,
    group: Option<&str>,
    region: Option<RegionCode>,
    scope: &Scope,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AgreedVolumeView>, i64), sqlx::Error> {
    let (lo, hi) = region.map(region_range).unwrap_or((0, 999_999));
    let rows = sqlx::query(
        // An enterprise sees only its own lines and their sums: the group's
        // other lines are its competitors' volumes.
        "SELECT a.period, a.hospital, a.product_group, a.revision, a.reason, a.set_at, \
         o.name AS hospital_name, o.region AS hospital_region, count(*) OVER () AS total, \
         coalesce(m.lines, '[]') AS lines, \
         CASE WHEN $6 = 'enterprise' THEN coalesce(m.quantity, 0) ELSE a.quantity END AS quantity, \
         CASE WHEN $6 = 'enterprise' THEN coalesce(m.amount_fen, 0) ELSE a.amount_fen END AS amount_fen \
         FROM agreed_volumes a JOIN orgs o ON o.id = a.hospital \
         CROSS JOIN LATERAL (SELECT jsonb_agg(jsonb_build_object('national_code', l.national_code, 'manufacturer', l.manufacturer, \
            'quantity', l.quantity, 'unit_price_fen', l.unit_price_fen, 'amount_fen', l.amount_fen) ORDER BY l.national_code) AS lines, \
            sum(l.quantity)::bigint AS quantity, sum(l.amount_fen)::bigint AS amount_fen \
          FROM agreed_volume_lines l WHERE l.period = a.period AND l.hospital = a.hospital AND l.product_group = a.product_group \
          AND ($6 <> 'enterprise' OR l.manufacturer = $9)) m \
         WHERE a.period = $1 AND ($2::uuid IS NULL OR a.hospital = $2) AND ($3::text IS NULL OR a.product_group = $3) \
         AND o.region BETWEEN $4 AND $5 \
         AND ($6 = 'all' OR ($6 = 'region' AND o.region BETWEEN $7 AND $8) OR ($6 = 'hospital' AND a.hospital = $9) \
              OR ($6 = 'enterprise' AND EXISTS (SELECT 1 FROM agreed_volume_lines l WHERE l.period = a.period \
                  AND l.hospital = a.hospital AND l.product_group = a.product_group AND l.manufacturer = $9))) \
         ORDER BY o.region, o.name, a.product_group LIMIT $10 OFFSET $11",
    )
    .bind(period.as_uuid())
    .bind(hospital.map(|h| h.as_uuid()))
    .bind(group)
    .bind(lo)
    .bind(hi)
    .bind(scope.kind)
    .bind(scope.lo)
    .bind(scope.hi)
    .bind(scope.org)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let total = rows
        .first()
        .map(|r| r.try_get::<i64, _>("total"))
        .transpose()?
        .unwrap_or(0);
    let items = rows
        .iter()
        .map(|r| {
            let lines: Json<Vec<AgreedVolumeLine>> = r.try_get("lines")?;
            Ok(AgreedVolumeView {
                period: PeriodId::from_uuid(r.try_get("period")?),
                hospital: OrgId::from_uuid(r.try_get("hospital")?),
                hospital_name: r.try_get("hospital_name")?,
                hospital_region: region_from_i32(r.try_get("hospital_region")?),
                product_group: r.try_get("product_group")?,
                lines: lines.0,
                quantity: r.try_get("quantity")?,
                amount_fen: Money::from_fen(r.try_get("amount_fen")?),
                revision: r.try_get("revision")?,
                reason: r.try_get("reason")?,
                set_at: r.try_get("set_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((items, total))
}

/// Agreed lines of a hospital in a period for one manufacturer's products.
pub async fn agreed_lines_for(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    manufacturer: OrgId,
) -> Result<Vec<(NationalCode, String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT national_code, product_group, quantity FROM agreed_volume_lines \
         WHERE period = $1 AND hospital = $2 AND manufacturer = $3 ORDER BY national_code",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(manufacturer.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let code: String = r.try_get("national_code")?;
            Ok((
                NationalCode::parse(&code).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                r.try_get("product_group")?,
                r.try_get("quantity")?,
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Agreements
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct AgreementRow {
    pub id: AgreementId,
    pub version: i32,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub manufacturer: OrgId,
    pub state: AgreementState,
    pub lines: Vec<AgreementLine>,
    pub amount_fen: Money,
    pub amends_version: Option<i32>,
    pub amendment_reason: Option<String>,
    pub hospital_confirmed_at: Option<DateTime<Utc>>,
    pub manufacturer_confirmed_at: Option<DateTime<Utc>>,
    pub effective_at: Option<DateTime<Utc>>,
    pub rejected_reason: Option<String>,
    pub rejected_by: Option<OrgId>,
    pub paper: Option<PaperSigning>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub distributors: Vec<DistributorConfirmation>,
}

pub async fn insert_agreement(
    conn: &mut PgConnection,
    a: &AgreementRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agreements (id, version, period, hospital, manufacturer, state, lines, amount_fen, \
         amends_version, amendment_reason, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$11)",
    )
    .bind(a.id.as_uuid())
    .bind(a.version)
    .bind(a.period.as_uuid())
    .bind(a.hospital.as_uuid())
    .bind(a.manufacturer.as_uuid())
    .bind(a.state.as_str())
    .bind(Json(&a.lines))
    .bind(a.amount_fen.fen())
    .bind(a.amends_version)
    .bind(&a.amendment_reason)
    .bind(a.created_at)
    .execute(&mut *conn)
    .await?;
    for d in &a.distributors {
        sqlx::query(
            "INSERT INTO agreement_distributors (agreement, version, distributor, confirmed_at) VALUES ($1,$2,$3,$4)",
        )
        .bind(a.id.as_uuid())
        .bind(a.version)
        .bind(d.distributor.as_uuid())
        .bind(d.confirmed_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Saves the mutable fields of a version (state, confirmations, paper).
pub async fn save_agreement(conn: &mut PgConnection, a: &AgreementRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE agreements SET state = $3, hospital_confirmed_at = $4, manufacturer_confirmed_at = $5, \
         effective_at = $6, rejected_reason = $7, rejected_by = $8, paper_signed_at = $9, paper_sha256 = $10, \
         paper_late = $11, paper_recorded_at = $12, updated_at = $13 WHERE id = $1 AND version = $2",
    )
    .bind(a.id.as_uuid())
    .bind(a.version)
    .bind(a.state.as_str())
    .bind(a.hospital_confirmed_at)
    .bind(a.manufacturer_confirmed_at)
    .bind(a.effective_at)
    .bind(&a.rejected_reason)
    .bind(a.rejected_by.map(|o| o.as_uuid()))
    .bind(a.paper.as_ref().map(|p| p.signed_at))
    .bind(a.paper.as_ref().map(|p| p.document_sha256.clone()))
    .bind(a.paper.as_ref().map(|p| p.late))
    .bind(a.paper.as_ref().map(|p| p.recorded_at))
    .bind(a.updated_at)
    .execute(&mut *conn)
    .await?;
    for d in &a.distributors {
        sqlx::query(
            "UPDATE agreement_distributors SET confirmed_at = $4 WHERE agreement = $1 AND version = $2 AND distributor = $3",
        )
        .bind(a.id.as_uuid())
        .bind(a.version)
        .bind(d.distributor.as_uuid())
        .bind(d.confirmed_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn agreement_of(r: &sqlx::postgres::PgRow) -> Result<AgreementRow, sqlx::Error> {
    let lines: Json<Vec<AgreementLine>> = r.try_get("lines")?;
    let dists: Json<Vec<DistributorConfirmation>> = r.try_get("distributors")?;
    let state: String = r.try_get("state")?;
    let paper_signed_at: Option<DateTime<Utc>> = r.try_get("paper_signed_at")?;
    let paper = match paper_signed_at {
        Some(signed_at) => Some(PaperSigning {
            signed_at,
            document_sha256: r
                .try_get::<Option<String>, _>("paper_sha256")?
                .unwrap_or_default(),
            late: r.try_get::<Option<bool>, _>("paper_late")?.unwrap_or(false),
            recorded_at: r
                .try_get::<Option<DateTime<Utc>>, _>("paper_recorded_at")?
                .unwrap_or(signed_at),
        }),
        None => None,
    };
    Ok(AgreementRow {
        id: AgreementId::from_uuid(r.try_get("id")?),
        version: r.try_get("version")?,
        period: PeriodId::from_uuid(r.try_get("period")?),
        hospital: OrgId::from_uuid(r.try_get("hospital")?),
        manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
        state: AgreementState::parse(&state).unwrap_or(AgreementState::Draft),
        lines: lines.0,
        amount_fen: Money::from_fen(r.try_get("amount_fen")?),
        amends_version: r.try_get("amends_version")?,
        amendment_reason: r.try_get("amendment_reason")?,
        hospital_confirmed_at: r.try_get("hospital_confirmed_at")?,
        manufacturer_confirmed_at: r.try_get("manufacturer_confirmed_at")?,
        effective_at: r.try_get("effective_at")?,
        rejected_reason: r.try_get("rejected_reason")?,
        rejected_by: r
            .try_get::<Option<uuid::Uuid>, _>("rejected_by")?
            .map(OrgId::from_uuid),
        paper,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        distributors: dists.0,
    })
}

const AGREEMENT_SELECT: &str = "SELECT a.*, \
    (SELECT coalesce(jsonb_agg(jsonb_build_object('distributor', d.distributor, 'confirmed_at', d.confirmed_at) \
        ORDER BY d.distributor), '[]') FROM agreement_distributors d WHERE d.agreement = a.id AND d.version = a.version) AS distributors \
    FROM agreements a";

/// One version (the latest when `version` is None), optionally locking all
/// versions of the agreement for the transaction.
pub async fn get_agreement(
    conn: &mut PgConnection,
    id: AgreementId,
    version: Option<i32>,
    lock: bool,
) -> Result<Option<AgreementRow>, sqlx::Error> {
    if lock {
        sqlx::query("SELECT 1 FROM agreements WHERE id = $1 FOR UPDATE")
            .bind(id.as_uuid())
            .fetch_all(&mut *conn)
            .await?;
    }
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{AGREEMENT_SELECT} WHERE a.id = $1 AND ($2::int IS NULL OR a.version = $2) ORDER BY a.version DESC LIMIT 1"
    )))
    .bind(id.as_uuid())
    .bind(version)
    .fetch_optional(conn)
    .await?;
    r.as_ref().map(agreement_of).transpose()
}

pub async fn latest_version(conn: &mut PgConnection, id: AgreementId) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM agreements WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(conn)
        .await
}

/// A live (not rejected/superseded) agreement of the hospital with the
/// manufacturer in the period, if any.
pub async fn live_agreement_between(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    manufacturer: OrgId,
) -> Result<Option<AgreementId>, sqlx::Error> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM agreements WHERE period = $1 AND hospital = $2 AND manufacturer = $3 \
         AND state NOT IN ('rejected', 'superseded') LIMIT 1",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(manufacturer.as_uuid())
    .fetch_optional(conn)
    .await?;
    Ok(id.map(AgreementId::from_uuid))
}

pub struct AgreementFilter {
    pub period: Option<PeriodId>,
    pub hospital: Option<OrgId>,
    pub region: Option<RegionCode>,
    pub state: Option<AgreementState>,
}

/// Agreement versions visible in `scope` (for bureaus via the hospital's
/// region), newest first. Rows carry (row, hospital name, hospital region,
/// manufacturer name, latest version).
pub async fn list_agreements(
    conn: &mut PgConnection,
    f: &AgreementFilter,
    scope: &Scope,
    limit: i64,
    offset: i64,
) -> Result<(Vec<(AgreementRow, String, RegionCode, String, i32)>, i64), sqlx::Error> {
    let (lo, hi) = f.region.map(region_range).unwrap_or((0, 999_999));
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM ({AGREEMENT_SELECT}) a \
         JOIN LATERAL (SELECT h.name AS hospital_name, h.region AS hospital_region FROM orgs h WHERE h.id = a.hospital) h ON true \
         JOIN LATERAL (SELECT m.name AS manufacturer_name FROM orgs m WHERE m.id = a.manufacturer) m ON true \
         JOIN LATERAL (SELECT max(v.version) AS latest FROM agreements v WHERE v.id = a.id) lv ON true \
         WHERE ($1::uuid IS NULL OR a.period = $1) AND ($2::uuid IS NULL OR a.hospital = $2) \
         AND h.hospital_region BETWEEN $3 AND $4 AND ($5::text IS NULL OR a.state = $5) \
         AND ($6 = 'all' OR ($6 = 'region' AND h.hospital_region BETWEEN $7 AND $8) OR ($6 = 'hospital' AND a.hospital = $9) \
              OR ($6 = 'enterprise' AND (a.manufacturer = $9 OR EXISTS (SELECT 1 FROM agreement_distributors d \
                  WHERE d.agreement = a.id AND d.version = a.version AND d.distributor = $9)))) \
         ORDER BY h.hospital_region, a.created_at, a.id, a.version DESC"
    )))
    .bind(f.period.map(|p| p.as_uuid()))
    .bind(f.hospital.map(|h| h.as_uuid()))
    .bind(lo)
    .bind(hi)
    .bind(f.state.map(|s| s.as_str()))
    .bind(scope.kind)
    .bind(scope.lo)
    .bind(scope.hi)
    .bind(scope.org)
    .fetch_all(conn)
    .await?;
    let total = rows.len() as i64;
    let mut out = Vec::new();
    for r in rows
        .iter()
        .skip(offset.max(0) as usize)
        .take(limit.max(0) as usize)
    {
        out.push((
            agreement_of(r)?,
            r.try_get("hospital_name")?,
            region_from_i32(r.try_get("hospital_region")?),
            r.try_get("manufacturer_name")?,
            r.try_get("latest")?,
        ));
    }
    Ok((out, total))
}

pub fn agreement_view(
    a: &AgreementRow,
    project: ProjectId,
    hospital_name: String,
    hospital_region: RegionCode,
    manufacturer_name: String,
    latest_version: i32,
) -> AgreementView {
    AgreementView {
        agreement: a.id,
        version: a.version,
        latest_version,
        period: a.period,
        project,
        hospital: a.hospital,
        hospital_name,
        hospital_region,
        manufacturer: a.manufacturer,
        manufacturer_name,
        distributors: a.distributors.clone(),
        state: a.state,
        lines: a.lines.clone(),
        amount_fen: a.amount_fen,
        hospital_confirmed_at: a.hospital_confirmed_at,
        manufacturer_confirmed_at: a.manufacturer_confirmed_at,
        effective_at: a.effective_at,
        rejected_reason: a.rejected_reason.clone(),
        amendment_reason: a.amendment_reason.clone(),
        paper: a.paper.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

// ---------------------------------------------------------------------------
// Distribution relations (projection)
// ---------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub async fn upsert_relation(
    conn: &mut PgConnection,
    id: uuid::Uuid,
    period: PeriodId,
    hospital: OrgId,
    code: &NationalCode,
    manufacturer: OrgId,
    distributor: OrgId,
    valid_from: DateTime<Utc>,
    valid_to: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relations (id, period, hospital, national_code, manufacturer, distributor, valid_from, valid_to) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (id) DO UPDATE SET valid_from = $7, \
         valid_to = CASE WHEN relations.valid_to IS NOT NULL AND $8::timestamptz IS NULL THEN relations.valid_to ELSE $8 END",
    )
    .bind(id)
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(code.as_str())
    .bind(manufacturer.as_uuid())
    .bind(distributor.as_uuid())
    .bind(valid_from)
    .bind(valid_to)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `distributor` delivers any product of `manufacturer` to
/// `hospital` at `at`.
pub async fn has_active_relation(
    conn: &mut PgConnection,
    hospital: OrgId,
    manufacturer: OrgId,
    distributor: OrgId,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM relations WHERE hospital = $1 AND manufacturer = $2 AND distributor = $3 \
         AND valid_from <= $4 AND (valid_to IS NULL OR valid_to > $4))",
    )
    .bind(hospital.as_uuid())
    .bind(manufacturer.as_uuid())
    .bind(distributor.as_uuid())
    .bind(at)
    .fetch_one(conn)
    .await
}

// ---------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------

/// One accepted line of an `orders.receipt.accepted` event.
#[derive(Debug, Clone)]
pub struct AcceptedRow {
    pub acceptance: uuid::Uuid,
    pub line_no: i32,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub code: NationalCode,
    pub accepted: i64,
    pub rejected: i64,
    pub amount: Money,
    pub accepted_at: DateTime<Utc>,
    pub month: NaiveDate,
}

/// What a batch adds to one progress row.
struct ProgressSum {
    region: i32,
    accepted: i64,
    rejected: i64,
    amount: i64,
    /// Earliest and latest times of lines that accepted something.
    counted: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Counts accepted lines into progress, each (acceptance, line) once: the
/// lines not recorded before are summed per progress row and per month, and
/// each row is written once (sorted, so concurrent writers lock in one
/// order). Returns how many lines were new.
pub async fn apply_accepted_lines(
    conn: &mut PgConnection,
    lines: &[AcceptedRow],
) -> Result<usize, sqlx::Error> {
    if lines.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&AcceptedRow) -> uuid::Uuid| lines.iter().map(f).collect::<Vec<_>>();
    let fresh: Vec<(uuid::Uuid, i32)> = sqlx::query_as(
        "INSERT INTO accepted_lines (acceptance, line_no, period, hospital, national_code, \
         quantity, amount_fen, accepted_at) \
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::uuid[], $5::text[], \
         $6::bigint[], $7::bigint[], $8::timestamptz[]) \
         ON CONFLICT DO NOTHING RETURNING acceptance, line_no",
    )
    .bind(col(|l| l.acceptance))
    .bind(lines.iter().map(|l| l.line_no).collect::<Vec<_>>())
    .bind(col(|l| l.period.as_uuid()))
    .bind(col(|l| l.hospital.as_uuid()))
    .bind(lines.iter().map(|l| l.code.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.accepted).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.amount.fen()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.accepted_at).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let fresh: HashSet<(uuid::Uuid, i32)> = fresh.into_iter().collect();
    let mut progress: BTreeMap<(uuid::Uuid, uuid::Uuid, String), ProgressSum> = BTreeMap::new();
    let mut monthly: BTreeMap<(uuid::Uuid, uuid::Uuid, String, NaiveDate), (i64, i64)> =
        BTreeMap::new();
    let mut seen = HashSet::new();
    for l in lines {
        // Twice in one batch (an event re-emitted) counts once, like twice
        // in two batches.
        if !fresh.contains(&(l.acceptance, l.line_no)) || !seen.insert((l.acceptance, l.line_no)) {
            continue;
        }
        let key = (
            l.period.as_uuid(),
            l.hospital.as_uuid(),
            l.code.as_str().to_owned(),
        );
        let p = progress.entry(key.clone()).or_insert(ProgressSum {
            region: l.hospital_region.as_u32() as i32,
            accepted: 0,
            rejected: 0,
            amount: 0,
            counted: None,
        });
        p.accepted += l.accepted;
        p.rejected += l.rejected;
        p.amount += l.amount.fen();
        if l.accepted > 0 {
            p.counted = Some(match p.counted {
                None => (l.accepted_at, l.accepted_at),
                Some((lo, hi)) => (lo.min(l.accepted_at), hi.max(l.accepted_at)),
            });
        }
        let m = monthly.entry((key.0, key.1, key.2, l.month)).or_default();
        m.0 += l.accepted;
        m.1 += l.amount.fen();
    }
    if progress.is_empty() {
        return Ok(0);
    }
    let keys: Vec<&(uuid::Uuid, uuid::Uuid, String)> = progress.keys().collect();
    let sums: Vec<&ProgressSum> = progress.values().collect();
    // First and last times count only lines that accepted something: a
    // product only ever rejected has none.
    sqlx::query(
        "INSERT INTO progress AS p (period, hospital, national_code, hospital_region, \
         accepted_quantity, rejected_quantity, accepted_amount_fen, first_accepted_at, \
         last_accepted_at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::bigint[], \
         $6::bigint[], $7::bigint[], $8::timestamptz[], $9::timestamptz[]) \
         ON CONFLICT (period, hospital, national_code) DO UPDATE SET \
         accepted_quantity = p.accepted_quantity + EXCLUDED.accepted_quantity, \
         rejected_quantity = p.rejected_quantity + EXCLUDED.rejected_quantity, \
         accepted_amount_fen = p.accepted_amount_fen + EXCLUDED.accepted_amount_fen, \
         first_accepted_at = least(p.first_accepted_at, EXCLUDED.first_accepted_at), \
         last_accepted_at = greatest(p.last_accepted_at, EXCLUDED.last_accepted_at)",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2.as_str()).collect::<Vec<_>>())
    .bind(sums.iter().map(|p| p.region).collect::<Vec<_>>())
    .bind(sums.iter().map(|p| p.accepted).collect::<Vec<_>>())
    .bind(sums.iter().map(|p| p.rejected).collect::<Vec<_>>())
    .bind(sums.iter().map(|p| p.amount).collect::<Vec<_>>())
    .bind(
        sums.iter()
            .map(|p| p.counted.map(|c| c.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        sums.iter()
            .map(|p| p.counted.map(|c| c.1))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    let mkeys: Vec<_> = monthly.keys().collect();
    let msums: Vec<_> = monthly.values().collect();
    sqlx::query(
        "INSERT INTO progress_monthly AS m (period, hospital, national_code, month, \
         accepted_quantity, accepted_amount_fen) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::date[], $5::bigint[], \
         $6::bigint[]) \
         ON CONFLICT (period, hospital, national_code, month) DO UPDATE SET \
         accepted_quantity = m.accepted_quantity + EXCLUDED.accepted_quantity, \
         accepted_amount_fen = m.accepted_amount_fen + EXCLUDED.accepted_amount_fen",
    )
    .bind(mkeys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(mkeys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(mkeys.iter().map(|k| k.2.as_str()).collect::<Vec<_>>())
    .bind(mkeys.iter().map(|k| k.3).collect::<Vec<_>>())
    .bind(msums.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(msums.iter().map(|s| s.1).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(seen.len())
}

/// One hospital × product line of a period: agreed and accepted.
#[derive(Debug, Clone)]
pub struct ProgressFact {
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub product_group: String,
    pub manufacturer: OrgId,
    pub agreed: i64,
    pub accepted: i64,
    pub accepted_amount: Money,
    pub last_accepted_at: Option<DateTime<Utc>>,
}

pub async fn progress_facts(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: Option<OrgId>,
    region: Option<RegionCode>,
    code: Option<&NationalCode>,
    scope: &Scope,
) -> Result<Vec<ProgressFact>, sqlx::Error> {
    let (lo, hi) = region.map(region_range).unwrap_or((0, 999_999));
    let rows = sqlx::query(
        "WITH lines AS ( \
           SELECT coalesce(a.hospital, p.hospital) AS hospital, coalesce(a.national_code, p.national_code) AS national_code, \
                  coalesce(a.quantity, 0) AS agreed, coalesce(p.accepted_quantity, 0) AS accepted, \
                  coalesce(p.accepted_amount_fen, 0) AS amount, p.last_accepted_at, p.hospital_region AS p_region, \
                  a.product_group AS a_group, a.manufacturer AS a_manufacturer \
           FROM (SELECT * FROM agreed_volume_lines WHERE period = $1) a \
           FULL OUTER JOIN (SELECT * FROM progress WHERE period = $1) p \
             ON a.hospital = p.hospital AND a.national_code = p.national_code) \
         SELECT l.*, coalesce(o.name, '') AS hospital_name, coalesce(o.region, l.p_region) AS hospital_region, \
                coalesce(l.a_group, s.product_group, '') AS product_group, \
                coalesce(l.a_manufacturer, s.manufacturer, '00000000-0000-0000-0000-000000000000'::uuid) AS manufacturer \
         FROM lines l LEFT JOIN orgs o ON o.id = l.hospital \
         LEFT JOIN supply_items s ON s.period = $1 AND s.status = 'published' AND s.national_code = l.national_code \
         WHERE ($2::uuid IS NULL OR l.hospital = $2) AND coalesce(o.region, l.p_region) BETWEEN $3 AND $4 \
         AND ($5::text IS NULL OR l.national_code = $5) \
         AND ($6 = 'all' OR ($6 = 'region' AND coalesce(o.region, l.p_region) BETWEEN $7 AND $8) \
              OR ($6 = 'hospital' AND l.hospital = $9) \
              OR ($6 = 'enterprise' AND (coalesce(l.a_manufacturer, s.manufacturer) = $9 OR EXISTS ( \
                   SELECT 1 FROM agreements g JOIN agreement_distributors d ON d.agreement = g.id AND d.version = g.version \
                   WHERE g.period = $1 AND g.hospital = l.hospital AND g.manufacturer = coalesce(l.a_manufacturer, s.manufacturer) \
                   AND g.state NOT IN ('rejected') AND d.distributor = $9)))) \
         ORDER BY hospital_region, hospital_name, l.hospital, l.national_code",
    )
    .bind(period.as_uuid())
    .bind(hospital.map(|h| h.as_uuid()))
    .bind(lo)
    .bind(hi)
    .bind(code.map(|c| c.as_str()))
    .bind(scope.kind)
    .bind(scope.lo)
    .bind(scope.hi)
    .bind(scope.org)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let code: String = r.try_get("national_code")?;
            Ok(ProgressFact {
                hospital: OrgId::from_uuid(r.try_get("hospital")?),
                hospital_name: r.try_get("hospital_name")?,
                hospital_region: region_from_i32(r.try_get("hospital_region")?),
                national_code: NationalCode::parse(&code)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                product_group: r.try_get("product_group")?,
                manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
                agreed: r.try_get("agreed")?,
                accepted: r.try_get("accepted")?,
                accepted_amount: Money::from_fen(r.try_get("amount")?),
                last_accepted_at: r.try_get("last_accepted_at")?,
            })
        })
        .collect()
}

pub async fn monthly(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    code: &NationalCode,
) -> Result<HashMap<NaiveDate, i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT month, accepted_quantity FROM progress_monthly WHERE period = $1 AND hospital = $2 AND national_code = $3",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(code.as_str())
    .fetch_all(conn)
    .await?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(r.try_get("month")?, r.try_get("accepted_quantity")?);
    }
    Ok(out)
}

/// Records that the snapshot of `week_start` was taken; false if it already was.
pub async fn mark_snapshot(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    week_start: NaiveDate,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO progress_snapshots (period, hospital, week_start, taken_at) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(week_start)
    .bind(at)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

pub async fn mark_demo(
    conn: &mut PgConnection,
    name: &str,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO demo_loads (name, loaded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(at)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

// ---------------------------------------------------------------------------
// Weekly snapshot timers
// ---------------------------------------------------------------------------

/// Timer kind of the weekly progress snapshot of a period.
pub const WEEKLY_SNAPSHOT_TIMER: &str = "agreements.weekly_snapshot";

/// Payload of a weekly snapshot timer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotDue {
    pub period: PeriodId,
}

/// One timer per period and week: `{period}/{Monday}`. A handler cannot
/// re-arm the key it is firing (the scheduler marks that key fired after the
/// handler returns), so each week has its own key.
pub fn snapshot_timer_key(period: PeriodId, due: DateTime<Utc>) -> String {
    format!("{period}/{}", vbp_kernel::beijing_date(due))
}

/// Arms the period's next weekly snapshot (the first Monday 00:00 Beijing
/// after `after` and the period's start), if it falls inside the period.
/// Returns when it is due.
pub async fn arm_weekly_snapshot(
    conn: &mut PgConnection,
    period: &PeriodRow,
    after: DateTime<Utc>,
    correlation: Option<vbp_kernel::CorrelationId>,
) -> Result<Option<DateTime<Utc>>, vbp_bus::BusError> {
    let Some(due) = crate::domain::next_snapshot_at(period.starts_at, period.ends_at, after) else {
        return Ok(None);
    };
    vbp_bus::timers::schedule(
        conn,
        WEEKLY_SNAPSHOT_TIMER,
        &snapshot_timer_key(period.id, due),
        due,
        correlation,
        &SnapshotDue { period: period.id },
    )
    .await?;
    Ok(Some(due))
}

/// Periods still running at `now` without an armed weekly snapshot timer
/// (opened before the timer existed, or whose chain was broken by hand).
pub async fn periods_without_snapshot_timer(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<PeriodId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT p.id FROM periods p WHERE p.ends_at > $1 AND NOT EXISTS ( \
           SELECT 1 FROM timers t WHERE t.kind = $2 AND t.fired_at IS NULL \
           AND t.payload->>'period' = p.id::text)",
    )
    .bind(now)
    .bind(WEEKLY_SNAPSHOT_TIMER)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(PeriodId::from_uuid).collect())
}
