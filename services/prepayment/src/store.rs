//! Persistence in the `prepayment` schema. Every function takes the caller's
//! connection, so a state change and its outbox event commit in one
//! transaction.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{FromRow, PgConnection, Row as _};
use uuid::Uuid;
use vbp_contracts::agreements::{AgreementId, PeriodId, ProjectId};
use vbp_contracts::prepayment::{
    CalculationInput, CalculationView, EntryId, EntryKind, EntryView, LedgerId, LedgerState,
    LedgerView, RegionSummaryRow,
};
use vbp_kernel::{BasisPoints, Money, OrgId};

use crate::domain::region_from_i32;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PeriodRow {
    pub id: Uuid,
    pub project: Uuid,
    pub project_code: String,
    pub number: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

pub async fn upsert_period(conn: &mut PgConnection, p: &PeriodRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO periods (id, project, project_code, number, starts_at, ends_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
         project_code = EXCLUDED.project_code, number = EXCLUDED.number, \
         starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at",
    )
    .bind(p.id)
    .bind(p.project)
    .bind(&p.project_code)
    .bind(p.number)
    .bind(p.starts_at)
    .bind(p.ends_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_period(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<PeriodRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM periods WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The period of the same project numbered `number`.
pub async fn period_numbered(
    conn: &mut PgConnection,
    project: Uuid,
    number: i32,
) -> Result<Option<PeriodRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM periods WHERE project = $1 AND number = $2")
        .bind(project)
        .bind(number)
        .fetch_optional(conn)
        .await
}

/// Records an agreement version as effective or superseded unless a newer
/// version (or the same version in a later state) is held. Returns whether
/// anything changed.
#[allow(clippy::too_many_arguments)]
pub async fn apply_agreement(
    conn: &mut PgConnection,
    id: AgreementId,
    version: i32,
    superseded: bool,
    period: PeriodId,
    project: ProjectId,
    hospital: OrgId,
    hospital_region: i32,
    amount: Money,
    changed_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let state = if superseded {
        "superseded"
    } else {
        "effective"
    };
    let done = sqlx::query(
        "INSERT INTO agreements AS a (id, version, state, period, project, hospital, hospital_region, amount_fen, changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state, \
         amount_fen = EXCLUDED.amount_fen, changed_at = EXCLUDED.changed_at \
         WHERE a.version < EXCLUDED.version \
            OR (a.version = EXCLUDED.version AND a.state = 'effective' AND EXCLUDED.state = 'superseded')",
    )
    .bind(id.as_uuid())
    .bind(version)
    .bind(state)
    .bind(period.as_uuid())
    .bind(project.as_uuid())
    .bind(hospital.as_uuid())
    .bind(hospital_region)
    .bind(amount.fen())
    .bind(changed_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Effective agreement versions of a hospital × project × period, by id.
pub async fn effective_inputs(
    conn: &mut PgConnection,
    hospital: OrgId,
    project: ProjectId,
    period: PeriodId,
) -> Result<Vec<CalculationInput>, sqlx::Error> {
    let rows: Vec<(Uuid, i32, i64)> = sqlx::query_as(
        "SELECT id, version, amount_fen FROM agreements \
         WHERE hospital = $1 AND project = $2 AND period = $3 AND state = 'effective' ORDER BY id",
    )
    .bind(hospital.as_uuid())
    .bind(project.as_uuid())
    .bind(period.as_uuid())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, version, amount)| CalculationInput {
            agreement: AgreementId::from_uuid(id),
            version,
            agreed_amount_fen: Money::from_fen(amount),
        })
        .collect())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerRow {
    pub id: Uuid,
    pub hospital: Uuid,
    pub hospital_region: i32,
    pub project: Uuid,
    pub period: Uuid,
    pub state: String,
    pub agreed_amount_fen: i64,
    pub ratio_bp: i32,
    pub amount_fen: i64,
    pub rule: String,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTime<Utc>>,
    pub disburse_by: Option<DateTime<Utc>>,
    pub payment_reference: Option<String>,
    pub disbursed_on: Option<NaiveDate>,
    pub late: bool,
    pub blocked_reason: Option<String>,
    pub deducted_fen: i64,
    pub balance_fen: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub approved_on: Option<NaiveDate>,
}

impl LedgerRow {
    pub fn state(&self) -> LedgerState {
        LedgerState::parse(&self.state).unwrap_or(LedgerState::Calculated)
    }
    pub fn ledger(&self) -> LedgerId {
        LedgerId::from_uuid(self.id)
    }
    pub fn ratio(&self) -> BasisPoints {
        BasisPoints::new(self.ratio_bp as u32).unwrap_or(BasisPoints::ZERO)
    }
}

pub async fn lock_ledger(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<LedgerRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM ledgers WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn lock_ledger_by_key(
    conn: &mut PgConnection,
    hospital: Uuid,
    project: Uuid,
    period: Uuid,
) -> Result<Option<LedgerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM ledgers WHERE hospital = $1 AND project = $2 AND period = $3 FOR UPDATE",
    )
    .bind(hospital)
    .bind(project)
    .bind(period)
    .fetch_optional(conn)
    .await
}

/// Ledgers of a period, locked, oldest first.
pub async fn lock_period_ledgers(
    conn: &mut PgConnection,
    period: Uuid,
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM ledgers WHERE period = $1 ORDER BY created_at, id FOR UPDATE")
        .bind(period)
        .fetch_all(conn)
        .await
}

/// Creates the ledger unless one exists for the key; returns whether it did.
pub async fn insert_ledger(conn: &mut PgConnection, l: &LedgerRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO ledgers (id, hospital, hospital_region, project, period, state, agreed_amount_fen, \
         ratio_bp, amount_fen, rule, blocked_reason, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
         ON CONFLICT (hospital, project, period) DO NOTHING",
    )
    .bind(l.id)
    .bind(l.hospital)
    .bind(l.hospital_region)
    .bind(l.project)
    .bind(l.period)
    .bind(&l.state)
    .bind(l.agreed_amount_fen)
    .bind(l.ratio_bp)
    .bind(l.amount_fen)
    .bind(&l.rule)
    .bind(&l.blocked_reason)
    .bind(l.created_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes the mutable columns of a locked ledger (figures, state, approval,
/// disbursement, flags). Entries and the balance move only through
/// [`append_entry`].
pub async fn save_ledger(
    conn: &mut PgConnection,
    l: &LedgerRow,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ledgers SET state = $2, agreed_amount_fen = $3, ratio_bp = $4, amount_fen = $5, rule = $6, \
         approved_by = $7, approved_at = $8, disburse_by = $9, payment_reference = $10, disbursed_on = $11, \
         late = $12, blocked_reason = $13, deducted_fen = $14, updated_at = $15, approved_on = $16 WHERE id = $1",
    )
    .bind(l.id)
    .bind(&l.state)
    .bind(l.agreed_amount_fen)
    .bind(l.ratio_bp)
    .bind(l.amount_fen)
    .bind(&l.rule)
    .bind(l.approved_by)
    .bind(l.approved_at)
    .bind(l.disburse_by)
    .bind(&l.payment_reference)
    .bind(l.disbursed_on)
    .bind(l.late)
    .bind(&l.blocked_reason)
    .bind(l.deducted_fen)
    .bind(now)
    .bind(l.approved_on)
    .execute(conn)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_calculation(
    conn: &mut PgConnection,
    ledger: Uuid,
    agreed: Money,
    ratio: BasisPoints,
    amount: Money,
    adjustment: Money,
    inputs: &[CalculationInput],
    rule: &str,
    cause: &str,
    at: DateTime<Utc>,
) -> Result<i32, sqlx::Error> {
    let seq: i32 = sqlx::query_scalar(
        "INSERT INTO calculations (ledger, seq, agreed_amount_fen, ratio_bp, amount_fen, adjustment_fen, inputs, rule, cause, calculated_at) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9 FROM calculations WHERE ledger = $1 \
         RETURNING seq",
    )
    .bind(ledger)
    .bind(agreed.fen())
    .bind(ratio.value() as i32)
    .bind(amount.fen())
    .bind(adjustment.fen())
    .bind(sqlx::types::Json(inputs))
    .bind(rule)
    .bind(cause)
    .bind(at)
    .fetch_one(conn)
    .await?;
    Ok(seq)
}

/// Appends an entry to a locked ledger and moves its balance by `amount`.
/// `None` when an offset for `settlement` is already there.
pub async fn append_entry(
    conn: &mut PgConnection,
    ledger: Uuid,
    kind: EntryKind,
    amount: Money,
    settlement: Option<Uuid>,
    cause: &str,
    at: DateTime<Utc>,
) -> Result<Option<(EntryId, Money)>, sqlx::Error> {
    let id = EntryId::new();
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO entries (id, ledger, seq, kind, amount_fen, balance_fen, settlement, cause, recorded_at) \
         SELECT $1, $2, COALESCE((SELECT MAX(seq) FROM entries WHERE ledger = $2), 0) + 1, $3, $4, \
                l.balance_fen + $4, $5, $6, $7 FROM ledgers l WHERE l.id = $2 \
         ON CONFLICT DO NOTHING RETURNING balance_fen",
    )
    .bind(id.as_uuid())
    .bind(ledger)
    .bind(kind_str(kind))
    .bind(amount.fen())
    .bind(settlement)
    .bind(cause)
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((balance,)) = row else {
        return Ok(None);
    };
    sqlx::query("UPDATE ledgers SET balance_fen = $2, updated_at = $3 WHERE id = $1")
        .bind(ledger)
        .bind(balance)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(Some((id, Money::from_fen(balance))))
}

pub fn kind_str(k: EntryKind) -> &'static str {
    match k {
        EntryKind::Disbursed => "disbursed",
        EntryKind::Offset => "offset",
        EntryKind::Deduction => "deduction",
        EntryKind::Adjustment => "adjustment",
    }
}

fn kind_of(s: &str) -> EntryKind {
    match s {
        "disbursed" => EntryKind::Disbursed,
        "offset" => EntryKind::Offset,
        "deduction" => EntryKind::Deduction,
        _ => EntryKind::Adjustment,
    }
}

/// Who may see which ledgers, as `($1 kind, $2 lo, $3 hi, $4 org)`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub kind: &'static str,
    pub lo: i32,
    pub hi: i32,
    pub org: Uuid,
}

const SCOPE_SQL: &str = "($1 = 'all' OR ($1 = 'region' AND l.hospital_region BETWEEN $2 AND $3) \
     OR ($1 = 'hospital' AND l.hospital = $4))";

impl Scope {
    pub fn admits(&self, l: &LedgerRow) -> bool {
        match self.kind {
            "all" => true,
            "region" => (self.lo..=self.hi).contains(&l.hospital_region),
            "hospital" => l.hospital == self.org,
            _ => false,
        }
    }
}

pub async fn get_ledger(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<LedgerRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM ledgers WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn list_ledgers(
    conn: &mut PgConnection,
    scope: &Scope,
    period: Option<Uuid>,
    hospital: Option<Uuid>,
    state: Option<&str>,
    page: Option<(i64, i64)>,
) -> Result<(Vec<LedgerRow>, i64), sqlx::Error> {
    const FILTER: &str = "($5::uuid IS NULL OR l.period = $5) \
         AND ($6::uuid IS NULL OR l.hospital = $6) AND ($7::text IS NULL OR l.state = $7)";
    // LIMIT NULL is no limit: an export takes every ledger in scope.
    let (limit, offset) = page.map_or((None, 0), |(l, o)| (Some(l), o));
    let filtered = |sql: String| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope.kind)
            .bind(scope.lo)
            .bind(scope.hi)
            .bind(scope.org)
            .bind(period)
            .bind(hospital)
            .bind(state)
    };
    let rows = filtered(format!(
        "SELECT l.* FROM ledgers l WHERE {SCOPE_SQL} AND {FILTER} \
         ORDER BY l.hospital_region, l.created_at, l.id LIMIT $8 OFFSET $9"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(LedgerRow::from_row)
    .collect::<Result<_, _>>()?;
    let total = filtered(format!(
        "SELECT count(*) FROM ledgers l WHERE {SCOPE_SQL} AND {FILTER}"
    ))
    .fetch_one(conn)
    .await?
    .try_get(0)?;
    Ok((rows, total))
}

pub async fn view(conn: &mut PgConnection, l: &LedgerRow) -> Result<LedgerView, sqlx::Error> {
    let entries: Vec<(Uuid, String, i64, i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, kind, amount_fen, balance_fen, cause, recorded_at FROM entries WHERE ledger = $1 ORDER BY seq",
    )
    .bind(l.id)
    .fetch_all(&mut *conn)
    .await?;
    #[allow(clippy::type_complexity)]
    let calcs: Vec<(i32, i64, i32, i64, i64, sqlx::types::Json<Vec<CalculationInput>>, String, String, DateTime<Utc>)> =
        sqlx::query_as(
            "SELECT seq, agreed_amount_fen, ratio_bp, amount_fen, adjustment_fen, inputs, rule, cause, calculated_at \
             FROM calculations WHERE ledger = $1 ORDER BY seq",
        )
        .bind(l.id)
        .fetch_all(conn)
        .await?;
    Ok(LedgerView {
        ledger: l.ledger(),
        hospital: OrgId::from_uuid(l.hospital),
        hospital_region: region_from_i32(l.hospital_region),
        project: ProjectId::from_uuid(l.project),
        period: PeriodId::from_uuid(l.period),
        state: l.state(),
        agreed_amount_fen: Money::from_fen(l.agreed_amount_fen),
        ratio: l.ratio(),
        amount_fen: Money::from_fen(l.amount_fen),
        rule: l.rule.clone(),
        approved_by: l.approved_by.map(OrgId::from_uuid),
        approved_at: l.approved_at,
        approved_on: l.approved_on,
        disburse_by: l.disburse_by,
        payment_reference: l.payment_reference.clone(),
        disbursed_on: l.disbursed_on,
        late: l.late,
        blocked_reason: l.blocked_reason.clone(),
        deducted_fen: Money::from_fen(l.deducted_fen),
        balance_fen: Money::from_fen(l.balance_fen),
        entries: entries
            .into_iter()
            .map(|(id, kind, amount, balance, cause, at)| EntryView {
                entry: EntryId::from_uuid(id),
                kind: kind_of(&kind),
                amount_fen: Money::from_fen(amount),
                balance_fen: Money::from_fen(balance),
                cause,
                recorded_at: at,
            })
            .collect(),
        calculations: calcs
            .into_iter()
            .map(
                |(seq, agreed, ratio, amount, adj, inputs, rule, cause, at)| CalculationView {
                    seq,
                    agreed_amount_fen: Money::from_fen(agreed),
                    ratio: BasisPoints::new(ratio as u32).unwrap_or(BasisPoints::ZERO),
                    amount_fen: Money::from_fen(amount),
                    adjustment_fen: Money::from_fen(adj),
                    inputs: inputs.0,
                    rule,
                    cause,
                    calculated_at: at,
                },
            )
            .collect(),
    })
}

pub async fn summary(
    conn: &mut PgConnection,
    scope: &Scope,
    period: Option<Uuid>,
) -> Result<Vec<RegionSummaryRow>, sqlx::Error> {
    let sql = format!(
        "SELECT l.hospital_region, l.project, l.period, count(*)::bigint, \
           count(*) FILTER (WHERE l.state = 'blocked')::bigint, \
           COALESCE(SUM(l.agreed_amount_fen), 0)::bigint, COALESCE(SUM(l.amount_fen), 0)::bigint, \
           COALESCE(SUM(e.disbursed), 0)::bigint, COALESCE(SUM(e.offset_), 0)::bigint, \
           COALESCE(SUM(e.deduction), 0)::bigint, COALESCE(SUM(e.adjustment), 0)::bigint, \
           COALESCE(SUM(l.balance_fen), 0)::bigint \
         FROM ledgers l LEFT JOIN LATERAL ( \
           SELECT SUM(amount_fen) FILTER (WHERE kind = 'disbursed') AS disbursed, \
                  -SUM(amount_fen) FILTER (WHERE kind = 'offset') AS offset_, \
                  -SUM(amount_fen) FILTER (WHERE kind = 'deduction') AS deduction, \
                  SUM(amount_fen) FILTER (WHERE kind = 'adjustment') AS adjustment \
           FROM entries WHERE ledger = l.id) e ON true \
         WHERE {SCOPE_SQL} AND ($5::uuid IS NULL OR l.period = $5) \
         GROUP BY l.hospital_region, l.project, l.period ORDER BY 1, 2, 3"
    );
    #[allow(clippy::type_complexity)]
    let rows: Vec<(i32, Uuid, Uuid, i64, i64, i64, i64, i64, i64, i64, i64, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(scope.kind)
            .bind(scope.lo)
            .bind(scope.hi)
            .bind(scope.org)
            .bind(period)
            .fetch_all(conn)
            .await?;
    let m = Money::from_fen;
    Ok(rows
        .into_iter()
        .map(|r| RegionSummaryRow {
            region: region_from_i32(r.0),
            project: ProjectId::from_uuid(r.1),
            period: PeriodId::from_uuid(r.2),
            ledgers: r.3,
            blocked: r.4,
            agreed_amount_fen: m(r.5),
            amount_fen: m(r.6),
            disbursed_fen: m(r.7),
            offset_fen: m(r.8),
            deducted_fen: m(r.9),
            adjustment_fen: m(r.10),
            balance_fen: m(r.11),
        })
        .collect())
}

/// How many not-closed ledgers hospitals in `lo..=hi` have.
pub async fn count_open_ledgers(
    conn: &mut PgConnection,
    lo: i32,
    hi: i32,
    period: Option<Uuid>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM ledgers WHERE hospital_region BETWEEN $1 AND $2 AND state <> 'closed' \
         AND ($3::uuid IS NULL OR period = $3)",
    )
    .bind(lo)
    .bind(hi)
    .bind(period)
    .fetch_one(conn)
    .await
}

/// Ledgers in scope whose balance differs from what their own entries say:
/// Σ disbursed − Σ offsets − Σ deductions + Σ adjustments, each kind with
/// the sign its kind requires.
pub async fn unreconciled(
    conn: &mut PgConnection,
    scope: &Scope,
    period: Option<Uuid>,
) -> Result<Vec<LedgerId>, sqlx::Error> {
    let sql = format!(
        "SELECT l.id FROM ledgers l LEFT JOIN LATERAL ( \
           SELECT COALESCE(SUM(amount_fen) FILTER (WHERE kind = 'disbursed'), 0) AS disbursed, \
                  COALESCE(-SUM(amount_fen) FILTER (WHERE kind = 'offset'), 0) AS offset_, \
                  COALESCE(-SUM(amount_fen) FILTER (WHERE kind = 'deduction'), 0) AS deduction, \
                  COALESCE(SUM(amount_fen) FILTER (WHERE kind = 'adjustment'), 0) AS adjustment, \
                  count(*) FILTER (WHERE (kind = 'disbursed' AND amount_fen < 0) \
                     OR (kind IN ('offset', 'deduction') AND amount_fen > 0)) AS wrong_sign \
           FROM entries WHERE ledger = l.id) e ON true \
         WHERE {SCOPE_SQL} AND ($5::uuid IS NULL OR l.period = $5) \
           AND (e.wrong_sign > 0 OR l.balance_fen <> e.disbursed - e.offset_ - e.deduction + e.adjustment) \
         ORDER BY l.id"
    );
    let rows: Vec<(Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(scope.kind)
        .bind(scope.lo)
        .bind(scope.hi)
        .bind(scope.org)
        .bind(period)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id,)| LedgerId::from_uuid(id))
        .collect())
}

/// An open ledger with the effective agreement versions it is calculated
/// from, for a set-based recalculation.
#[derive(Debug, sqlx::FromRow)]
pub struct RecalcRow {
    pub id: Uuid,
    pub hospital: Uuid,
    pub hospital_region: i32,
    pub project: Uuid,
    pub period: Uuid,
    pub state: String,
    pub agreed_amount_fen: i64,
    pub ratio_bp: i32,
    pub amount_fen: i64,
    pub project_code: String,
    pub agreement_ids: Vec<Uuid>,
    pub versions: Vec<i32>,
    pub amounts: Vec<i64>,
}

/// The not-closed ledgers of hospitals in `lo..=hi` (optionally of one
/// period), locked, each with its effective agreement versions by id.
pub async fn lock_for_recalculation(
    conn: &mut PgConnection,
    lo: i32,
    hi: i32,
    period: Option<Uuid>,
) -> Result<Vec<RecalcRow>, sqlx::Error> {
    sqlx::query_as(
        "WITH a AS ( \
           SELECT hospital, project, period, array_agg(id ORDER BY id) AS agreement_ids, \
                  array_agg(version ORDER BY id) AS versions, array_agg(amount_fen ORDER BY id) AS amounts \
           FROM agreements WHERE state = 'effective' AND hospital_region BETWEEN $1 AND $2 \
             AND ($3::uuid IS NULL OR period = $3) \
           GROUP BY hospital, project, period) \
         SELECT l.id, l.hospital, l.hospital_region, l.project, l.period, l.state, l.agreed_amount_fen, \
                l.ratio_bp, l.amount_fen, p.project_code, \
                COALESCE(a.agreement_ids, '{}') AS agreement_ids, COALESCE(a.versions, '{}') AS versions, \
                COALESCE(a.amounts, '{}') AS amounts \
         FROM ledgers l JOIN periods p ON p.id = l.period \
         LEFT JOIN a ON a.hospital = l.hospital AND a.project = l.project AND a.period = l.period \
         WHERE l.hospital_region BETWEEN $1 AND $2 AND l.state <> 'closed' \
           AND ($3::uuid IS NULL OR l.period = $3) \
         ORDER BY l.hospital_region, l.hospital, l.period \
         FOR UPDATE OF l",
    )
    .bind(lo)
    .bind(hi)
    .bind(period)
    .fetch_all(conn)
    .await
}

/// New figures for many ledgers at once.
#[derive(Debug, Default)]
pub struct Recalculated {
    pub ids: Vec<Uuid>,
    pub agreed: Vec<i64>,
    pub ratio_bp: Vec<i32>,
    pub amount: Vec<i64>,
    pub adjustment: Vec<i64>,
    pub rule: Vec<String>,
    /// The calculation inputs as JSON text.
    pub inputs: Vec<String>,
    /// Whether an approval of the old figure is withdrawn.
    pub unapprove: Vec<bool>,
}

/// Writes the new figures, withdraws approvals of changed figures and
/// records one calculation per ledger.
pub async fn save_recalculated(
    conn: &mut PgConnection,
    r: &Recalculated,
    cause: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ledgers l SET agreed_amount_fen = u.agreed, ratio_bp = u.ratio_bp, amount_fen = u.amount, \
           rule = u.rule, updated_at = $9, \
           state = CASE WHEN u.unapprove THEN 'calculated' ELSE l.state END, \
           approved_by = CASE WHEN u.unapprove THEN NULL ELSE l.approved_by END, \
           approved_at = CASE WHEN u.unapprove THEN NULL ELSE l.approved_at END, \
           approved_on = CASE WHEN u.unapprove THEN NULL ELSE l.approved_on END, \
           disburse_by = CASE WHEN u.unapprove THEN NULL ELSE l.disburse_by END, \
           late = CASE WHEN u.unapprove THEN false ELSE l.late END \
         FROM UNNEST($1::uuid[], $2::bigint[], $3::int[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bool[]) \
              AS u(id, agreed, ratio_bp, amount, adjustment, rule, inputs, unapprove) \
         WHERE l.id = u.id",
    )
    .bind(&r.ids)
    .bind(&r.agreed)
    .bind(&r.ratio_bp)
    .bind(&r.amount)
    .bind(&r.adjustment)
    .bind(&r.rule)
    .bind(&r.inputs)
    .bind(&r.unapprove)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO calculations (ledger, seq, agreed_amount_fen, ratio_bp, amount_fen, adjustment_fen, \
           inputs, rule, cause, calculated_at) \
         SELECT u.id, COALESCE((SELECT MAX(c.seq) FROM calculations c WHERE c.ledger = u.id), 0) + 1, \
                u.agreed, u.ratio_bp, u.amount, u.adjustment, u.inputs::jsonb, u.rule, $8, $9 \
         FROM UNNEST($1::uuid[], $2::bigint[], $3::int[], $4::bigint[], $5::bigint[], $6::text[], $7::text[]) \
              AS u(id, agreed, ratio_bp, amount, adjustment, rule, inputs)",
    )
    .bind(&r.ids)
    .bind(&r.agreed)
    .bind(&r.ratio_bp)
    .bind(&r.amount)
    .bind(&r.adjustment)
    .bind(&r.rule)
    .bind(&r.inputs)
    .bind(cause)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends one adjustment entry to each of many locked ledgers (each at
/// most once) and moves their balances; returns the entry ids, in order.
pub async fn append_adjustments(
    conn: &mut PgConnection,
    ledgers: &[Uuid],
    amounts: &[i64],
    cause: &str,
    at: DateTime<Utc>,
) -> Result<Vec<EntryId>, sqlx::Error> {
    let ids: Vec<Uuid> = ledgers.iter().map(|_| EntryId::new().as_uuid()).collect();
    sqlx::query(
        "INSERT INTO entries (id, ledger, seq, kind, amount_fen, balance_fen, settlement, cause, recorded_at) \
         SELECT u.id, u.ledger, COALESCE((SELECT MAX(e.seq) FROM entries e WHERE e.ledger = u.ledger), 0) + 1, \
                'adjustment', u.amount, l.balance_fen + u.amount, NULL, $4, $5 \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[]) AS u(id, ledger, amount) \
         JOIN ledgers l ON l.id = u.ledger",
    )
    .bind(&ids)
    .bind(ledgers)
    .bind(amounts)
    .bind(cause)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE ledgers l SET balance_fen = l.balance_fen + u.amount, updated_at = $3 \
         FROM UNNEST($1::uuid[], $2::bigint[]) AS u(ledger, amount) WHERE l.id = u.ledger",
    )
    .bind(ledgers)
    .bind(amounts)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(ids.into_iter().map(EntryId::from_uuid).collect())
}

/// Cancels the pending disbursement-deadline timers of many ledgers: the
/// rows `vbp_bus::timers::cancel` deletes one at a time.
pub async fn cancel_timers(
    conn: &mut PgConnection,
    kind: &str,
    ledgers: &[Uuid],
) -> Result<(), sqlx::Error> {
    let keys: Vec<String> = ledgers.iter().map(Uuid::to_string).collect();
    sqlx::query("DELETE FROM timers WHERE kind = $1 AND key = ANY($2) AND fired_at IS NULL")
        .bind(kind)
        .bind(&keys)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records paid settlements (the basis reconciliation compares with orders);
/// one already recorded is left as it is.
pub async fn record_settlements<'e>(
    conn: &mut PgConnection,
    paid: impl Iterator<
        Item = (
            &'e vbp_contracts::orders::SettlementPaid,
            vbp_kernel::EventId,
        ),
    >,
) -> Result<(), sqlx::Error> {
    let (mut ids, mut periods, mut hospitals, mut regions, mut amounts, mut paid_at, mut events) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (ev, event) in paid {
        ids.push(ev.settlement.as_uuid());
        periods.push(ev.period.as_uuid());
        hospitals.push(ev.hospital.as_uuid());
        regions.push(ev.hospital_region.as_u32() as i32);
        amounts.push(ev.amount_fen.fen());
        paid_at.push(ev.paid_at);
        events.push(event.as_uuid());
    }
    sqlx::query(
        "INSERT INTO settlements (settlement, period, hospital, hospital_region, amount_fen, paid_at, event) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::bigint[], \
         $6::timestamptz[], $7::uuid[]) ON CONFLICT (settlement) DO NOTHING",
    )
    .bind(ids)
    .bind(periods)
    .bind(hospitals)
    .bind(regions)
    .bind(amounts)
    .bind(paid_at)
    .bind(events)
    .execute(conn)
    .await?;
    Ok(())
}

/// The ledgers of (hospital, project, period) keys that exist, locked in id
/// order so that transactions over overlapping sets do not deadlock.
pub async fn lock_ledgers_by_keys(
    conn: &mut PgConnection,
    keys: &[(Uuid, Uuid, Uuid)],
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM ledgers WHERE (hospital, project, period) IN \
         (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[])) ORDER BY id FOR UPDATE",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

/// Which of `settlements` already have their offset entry in one of `ledgers`.
pub async fn offset_settlements(
    conn: &mut PgConnection,
    ledgers: &[Uuid],
    settlements: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
    let done: Vec<Uuid> = sqlx::query_scalar(
        "SELECT settlement FROM entries WHERE kind = 'offset' AND ledger = ANY($1) \
         AND settlement = ANY($2)",
    )
    .bind(ledgers)
    .bind(settlements)
    .fetch_all(conn)
    .await?;
    Ok(done.into_iter().collect())
}

/// The last entry number of each of `ledgers` that has entries.
pub async fn last_entry_seqs(
    conn: &mut PgConnection,
    ledgers: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, i32>, sqlx::Error> {
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT ledger, MAX(seq) FROM entries WHERE ledger = ANY($1) GROUP BY ledger",
    )
    .bind(ledgers)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// A ledger entry numbered and balanced by its writer, which holds the
/// ledger's lock.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub id: EntryId,
    pub ledger: Uuid,
    pub seq: i32,
    pub kind: EntryKind,
    pub amount: Money,
    pub balance: Money,
    pub settlement: Option<Uuid>,
    pub cause: String,
}

pub async fn insert_entries(
    conn: &mut PgConnection,
    entries: &[NewEntry],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO entries (id, ledger, seq, kind, amount_fen, balance_fen, settlement, cause, recorded_at) \
         SELECT *, $9 FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::bigint[], \
         $6::bigint[], $7::uuid[], $8::text[])",
    )
    .bind(entries.iter().map(|e| e.id.as_uuid()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.ledger).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.seq).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| kind_str(e.kind)).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.amount.fen()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.balance.fen()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.settlement).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.cause.as_str()).collect::<Vec<_>>())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets ledgers' balances to what their writer folded in.
pub async fn set_balances(
    conn: &mut PgConnection,
    balances: &[(Uuid, i64)],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ledgers l SET balance_fen = b.balance, updated_at = $3 \
         FROM unnest($1::uuid[], $2::bigint[]) AS b(id, balance) WHERE l.id = b.id",
    )
    .bind(balances.iter().map(|b| b.0).collect::<Vec<_>>())
    .bind(balances.iter().map(|b| b.1).collect::<Vec<_>>())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
