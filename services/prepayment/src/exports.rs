//! `.xlsx` reports: a hospital's statement (对账单) and the totals per
//! region × project × period with the reconciliation. Money is written as
//! yuan text with two decimals, so a spreadsheet never rounds a fen away.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use vbp_bus::{Context, RpcError};
use vbp_contracts::files::ExportedFile;
use vbp_contracts::prepayment::*;
use vbp_kernel::{BEIJING, Money, OrgKind};
use vbp_platform::sheets::{self, Cell, Column, col};

use crate::api::{R, Shared, actor, beijing_date, scope_of, summarise};
use crate::store::{self, PeriodRow};

const STATEMENT_SHEET: [Column; 21] = [
    col("医疗机构 hospital", 38.0),
    col("行政区划 region", 10.0),
    col("项目 project", 18.0),
    col("协议期 period", 8.0),
    col("台账 ledger", 38.0),
    col("状态 state", 11.0),
    col("约定金额(元) agreed_yuan", 16.0),
    col("比例(基点) ratio_bp", 10.0),
    col("预付金(元) amount_yuan", 16.0),
    col("比例规则 rule", 24.0),
    col("审核日期 approved_on", 12.0),
    col("划拨期限 disburse_by", 12.0),
    col("支付凭证号 payment_reference", 20.0),
    col("划拨日期 disbursed_on", 12.0),
    col("逾期 late", 6.0),
    col("分录 seq", 6.0),
    col("类型 kind", 11.0),
    col("分录金额(元) entry_amount_yuan", 16.0),
    col("余额(元) balance_yuan", 16.0),
    col("记录时间 recorded_at", 17.0),
    col("依据 cause", 60.0),
];

const SUMMARY_SHEET: [Column; 14] = [
    col("行政区划 region", 10.0),
    col("项目 project", 18.0),
    col("协议期 period", 8.0),
    col("台账数 ledgers", 8.0),
    col("不予预付 blocked", 8.0),
    col("约定金额(元) agreed_yuan", 16.0),
    col("预付金(元) amount_yuan", 16.0),
    col("已划拨(元) disbursed_yuan", 16.0),
    col("已冲抵(元) offset_yuan", 16.0),
    col("冲减(元) deducted_yuan", 16.0),
    col("调整(元) adjustment_yuan", 16.0),
    col("余额(元) balance_yuan", 16.0),
    col("对账 reconciled", 8.0),
    col("核对式 check", 44.0),
];

fn yuan(m: Money) -> Cell {
    m.to_string().into()
}

fn opt<T: ToString>(v: Option<T>) -> Cell {
    v.map_or(Cell::Empty, |v| v.to_string().into())
}

fn yes_no(b: bool) -> Cell {
    (if b { "是" } else { "否" }).into()
}

fn minute(t: DateTime<Utc>) -> Cell {
    t.with_timezone(&BEIJING)
        .format("%Y-%m-%d %H:%M")
        .to_string()
        .into()
}

/// ASCII only, so any client can use the name as is.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn export(
    svc: &Shared,
    file_name: String,
    sheet: &str,
    columns: &[Column],
    rows: Vec<Vec<Cell>>,
) -> R<ExportedFile> {
    sheets::xlsx_export(
        file_name,
        sheet,
        columns,
        rows,
        svc.settings.max_export_bytes,
        "period",
    )
}

async fn periods(
    conn: &mut sqlx::PgConnection,
    ids: impl Iterator<Item = Uuid>,
) -> R<HashMap<Uuid, PeriodRow>> {
    let mut out = HashMap::new();
    for id in ids {
        if out.contains_key(&id) {
            continue;
        }
        if let Some(p) = store::get_period(conn, id).await? {
            out.insert(id, p);
        }
    }
    Ok(out)
}

fn period_cells(p: Option<&PeriodRow>, project: Uuid) -> (Cell, Cell) {
    match p {
        Some(p) => (p.project_code.as_str().into(), Cell::Int(p.number.into())),
        None => (project.to_string().into(), Cell::Empty),
    }
}

pub async fn statement_export(svc: Shared, ctx: Context, req: ExportStatement) -> R<ExportedFile> {
    let a = actor(&ctx)?;
    let hospital = match (a.org_kind, req.hospital) {
        (OrgKind::Hospital, None) => a.org,
        (OrgKind::Hospital, Some(h)) if h != a.org => {
            return Err(RpcError::forbidden(
                "a hospital can export only its own statement",
            ));
        }
        (_, Some(h)) => h,
        (_, None) => {
            return Err(RpcError::invalid(
                "hospital",
                "name the hospital whose statement to export",
            ));
        }
    };
    let mut conn = svc.pool.acquire().await?;
    let (ledgers, _) = store::list_ledgers(
        &mut conn,
        &scope_of(a),
        req.period.map(|p| p.as_uuid()),
        Some(hospital.as_uuid()),
        None,
        None,
    )
    .await?;
    let periods = periods(&mut conn, ledgers.iter().map(|l| l.period)).await?;
    let mut rows = Vec::new();
    for l in &ledgers {
        let v = store::view(&mut conn, l).await?;
        let (project, number) = period_cells(periods.get(&l.period), l.project);
        let head: Vec<Cell> = vec![
            v.hospital.to_string().into(),
            v.hospital_region.to_string().into(),
            project,
            number,
            v.ledger.to_string().into(),
            v.state.as_str().into(),
            yuan(v.agreed_amount_fen),
            Cell::Int(v.ratio.value().into()),
            yuan(v.amount_fen),
            v.rule.as_str().into(),
            opt(v.approved_on),
            opt(v
                .disburse_by
                .map(|d| beijing_date(d).pred_opt().unwrap_or_default())),
            opt(v.payment_reference.as_deref()),
            opt(v.disbursed_on),
            yes_no(v.late),
        ];
        if v.entries.is_empty() {
            let mut row = head;
            row.extend([Cell::Empty, Cell::Empty, Cell::Empty, yuan(v.balance_fen)]);
            row.extend([Cell::Empty, opt(v.blocked_reason.as_deref())]);
            rows.push(row);
            continue;
        }
        for (i, e) in v.entries.iter().enumerate() {
            let mut row = head.clone();
            row.extend([
                Cell::Int(i as i64 + 1),
                entry_kind(e.kind).into(),
                yuan(e.amount_fen),
                yuan(e.balance_fen),
                minute(e.recorded_at),
                e.cause.as_str().into(),
            ]);
            rows.push(row);
        }
    }
    let name = format!(
        "prepayment_statement_{}_{}.xlsx",
        ascii(&hospital.to_string()),
        beijing_date(svc.clock.now()).format("%Y%m%d")
    );
    export(&svc, name, "预付金对账单", &STATEMENT_SHEET, rows)
}

fn entry_kind(k: EntryKind) -> &'static str {
    match k {
        EntryKind::Disbursed => "划拨 disbursed",
        EntryKind::Offset => "冲抵 offset",
        EntryKind::Deduction => "冲减 deduction",
        EntryKind::Adjustment => "调整 adjustment",
    }
}

pub async fn summary_export(svc: Shared, ctx: Context, req: SummariseRegions) -> R<ExportedFile> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let s = summarise(&mut conn, a, req.period).await?;
    let periods = periods(&mut conn, s.rows.iter().map(|r| r.period.as_uuid())).await?;
    let check = |d: Money, o: Money, x: Money, adj: Money, b: Money| -> (Cell, Cell) {
        let holds = d.fen() - o.fen() - x.fen() + adj.fen() == b.fen();
        (
            yes_no(holds),
            format!("{d} − {o} − {x} + ({adj}) = {b}").into(),
        )
    };
    let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(s.rows.len() + 1);
    for r in &s.rows {
        let (project, number) = period_cells(periods.get(&r.period.as_uuid()), r.project.as_uuid());
        let (ok, formula) = check(
            r.disbursed_fen,
            r.offset_fen,
            r.deducted_fen,
            r.adjustment_fen,
            r.balance_fen,
        );
        rows.push(vec![
            r.region.to_string().into(),
            project,
            number,
            Cell::Int(r.ledgers),
            Cell::Int(r.blocked),
            yuan(r.agreed_amount_fen),
            yuan(r.amount_fen),
            yuan(r.disbursed_fen),
            yuan(r.offset_fen),
            yuan(r.deducted_fen),
            yuan(r.adjustment_fen),
            yuan(r.balance_fen),
            ok,
            formula,
        ]);
    }
    let t = &s.total;
    let (_, formula) = check(
        t.disbursed_fen,
        t.offset_fen,
        t.deducted_fen,
        t.adjustment_fen,
        t.balance_fen,
    );
    rows.push(vec![
        "合计 total".into(),
        Cell::Empty,
        Cell::Empty,
        Cell::Int(t.ledgers),
        Cell::Int(t.blocked),
        yuan(t.agreed_amount_fen),
        yuan(t.amount_fen),
        yuan(t.disbursed_fen),
        yuan(t.offset_fen),
        yuan(t.deducted_fen),
        yuan(t.adjustment_fen),
        yuan(t.balance_fen),
        yes_no(s.reconciled),
        formula,
    ]);
    let name = format!(
        "prepayment_summary_{}_{}.xlsx",
        ascii(&a.region.to_string()),
        beijing_date(svc.clock.now()).format("%Y%m%d")
    );
    export(&svc, name, "预付金汇总对账", &SUMMARY_SHEET, rows)
}
