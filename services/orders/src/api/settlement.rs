//! Invoices, payments and declared offline purchases.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vbp_bus::{Context, RpcError};
use vbp_contracts::orders::*;
use vbp_contracts::page::Window;
use vbp_kernel::{Actor, Money, OrgKind};

use super::{R, Shared, Svc, actor, begin, invalid, not_found, require_kind, scope_of, transition};
use crate::{domain, store};

/// Where an item's error points: the bare field for a single call,
/// `list[i].field` for an item of a run.
#[derive(Debug, Clone, Copy)]
enum At {
    One,
    Item(&'static str, usize),
}

impl At {
    fn of(list: &'static str, many: bool, i: usize) -> At {
        if many { At::Item(list, i) } else { At::One }
    }

    fn err(self, e: RpcError) -> RpcError {
        let At::Item(list, i) = self else {
            return e;
        };
        let mut body = e.0;
        body.field = Some(match body.field {
            Some(f) => format!("{list}[{i}].{f}"),
            None => format!("{list}[{i}]"),
        });
        body.message = format!("{list}[{i}]: {}", body.message);
        RpcError(body)
    }
}

fn run_size(list: &'static str, n: usize) -> R<()> {
    if n == 0 || n > RUN_MAX_ITEMS {
        return Err(RpcError::invalid(
            list,
            format!("a run has 1 to {RUN_MAX_ITEMS} items (this one has {n})"),
        ));
    }
    Ok(())
}

/// The acceptances of `ids`, locked; the error names the first one missing.
async fn lock_all(
    tx: &mut PgConnection,
    ids: &[AcceptanceId],
    at: impl Fn(usize) -> At,
) -> R<HashMap<AcceptanceId, store::AcceptanceRow>> {
    let uuids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let found: HashMap<_, _> = store::lock_acceptances(tx, &uuids)
        .await?
        .into_iter()
        .map(|r| (r.view.acceptance, r))
        .collect();
    if let Some(i) = ids.iter().position(|id| !found.contains_key(id)) {
        return Err(at(i).err(not_found("acceptance", ids[i]).with_field("acceptance")));
    }
    Ok(found)
}

/// The first item naming an acceptance an earlier item named.
fn repeated(ids: &[AcceptanceId]) -> Option<usize> {
    let mut seen = HashSet::new();
    ids.iter().position(|id| !seen.insert(*id))
}

pub async fn invoice_issue(svc: Shared, ctx: Context, req: IssueInvoice) -> R<AcceptanceView> {
    let acceptance = req.acceptance;
    let mut tx = begin(&svc).await?;
    issue(&svc, &mut tx, &ctx, &[req], false).await?;
    let v = store::get_acceptance(&mut tx, acceptance, false)
        .await?
        .ok_or_else(|| not_found("acceptance", acceptance))?;
    tx.commit().await?;
    Ok(v.view)
}

/// How often a run is tried when it meets a concurrent transaction: a run
/// locks many acceptances, and the overdue timers lock theirs in due order,
/// so the two can deadlock; the one chosen as victim applied nothing.
const RUN_ATTEMPTS: usize = 3;

/// Runs `$run` in a transaction `$tx` and commits, again while it meets
/// contention. (A macro: a closure over the transaction would make the
/// handler's future not `Send`.)
macro_rules! retried {
    ($svc:expr, $tx:ident => $run:expr) => {{
        let mut attempt = 1;
        loop {
            let mut $tx = begin($svc).await?;
            let done = match $run {
                Ok(v) => $tx.commit().await.map(|()| v).map_err(RpcError::from),
                Err(e) => Err(e),
            };
            match done {
                Err(e) if e.is_contention() && attempt < RUN_ATTEMPTS => attempt += 1,
                done => break done,
            }
        }
    }};
}

pub async fn invoice_issue_batch(svc: Shared, ctx: Context, req: IssueInvoices) -> R<InvoiceRun> {
    let items = retried!(&svc, tx => issue(&svc, &mut tx, &ctx, &req.invoices, true).await)?;
    let amount_fen = Money::from_fen(items.iter().map(|i| i.amount_fen.fen()).sum());
    Ok(InvoiceRun { items, amount_fen })
}

/// Records the invoices of `reqs` in `tx`, all or none.
async fn issue(
    svc: &Svc,
    tx: &mut PgConnection,
    ctx: &Context,
    reqs: &[IssueInvoice],
    many: bool,
) -> R<Vec<InvoicedItem>> {
    let a = actor(ctx)?;
    require_kind(a, &[OrgKind::Distributor], "issue an invoice")?;
    if many {
        run_size("invoices", reqs.len())?;
    }
    let at = |i| At::of("invoices", many, i);
    let now = svc.clock.now();
    let ids: Vec<AcceptanceId> = reqs.iter().map(|r| r.acceptance).collect();
    if let Some(i) = repeated(&ids) {
        return Err(at(i).err(RpcError::invalid(
            "acceptance",
            "an acceptance is invoiced once; it appears earlier in this upload",
        )));
    }
    let accs = lock_all(tx, &ids, at).await?;
    let mut rows = Vec::with_capacity(reqs.len());
    let mut numbers = HashSet::new();
    for (i, req) in reqs.iter().enumerate() {
        let acc = &accs[&req.acceptance];
        let row = invoice_of(a, acc, req).map_err(|e| at(i).err(e))?;
        if !numbers.insert((row.code, row.number)) {
            return Err(at(i).err(duplicate_invoice(row.code, row.number)));
        }
        rows.push(row);
    }
    let wanted: Vec<(&str, &str)> = rows.iter().map(|r| (r.code, r.number)).collect();
    let taken = store::invoice_numbers_taken(tx, &wanted).await?;
    if let Some(i) = rows
        .iter()
        .position(|r| taken.iter().any(|(c, n)| c == r.code && n == r.number))
    {
        return Err(at(i).err(duplicate_invoice(rows[i].code, rows[i].number)));
    }
    store::insert_invoices(tx, &rows, now).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let acc = &accs[&row.acceptance].view;
        events.push(svc.outbox.stage(
            ctx,
            &InvoiceIssued {
                invoice: row.id,
                order: acc.order,
                acceptance: Some(row.acceptance),
                hospital: acc.hospital,
                distributor: acc.distributor,
                invoice_code: row.code.to_owned(),
                invoice_number: row.number.to_owned(),
                amount_fen: row.amount,
                tax_fen: row.tax,
                issued_on: row.issued_on,
                recorded_at: now,
            },
        )?);
    }
    svc.outbox.append_staged(tx, &events).await?;
    Ok(rows
        .iter()
        .map(|r| InvoicedItem {
            acceptance: r.acceptance,
            invoice: r.id,
            amount_fen: r.amount,
        })
        .collect())
}

fn duplicate_invoice(code: &str, number: &str) -> RpcError {
    RpcError::conflict(
        "duplicate_invoice",
        format!("invoice {code} {number} is already recorded"),
    )
    .with_field("invoice_number")
}

/// The invoice `a` may record for `acc`, or the rule `req` breaks.
fn invoice_of<'r>(
    a: &Actor,
    acc: &store::AcceptanceRow,
    req: &'r IssueInvoice,
) -> R<store::NewInvoice<'r>> {
    if acc.view.distributor != a.org {
        return Err(RpcError::forbidden(format!(
            "acceptance {} bills another distributor",
            req.acceptance
        )));
    }
    if let Some(inv) = acc.view.invoice {
        return Err(transition(format!(
            "acceptance {} is already invoiced ({inv})",
            req.acceptance
        )));
    }
    let code = req.invoice_code.trim();
    let number = req.invoice_number.trim();
    if code.is_empty() || code.len() > 32 {
        return Err(RpcError::invalid(
            "invoice_code",
            "an invoice code has 1 to 32 characters",
        ));
    }
    if number.is_empty() || number.len() > 32 {
        return Err(RpcError::invalid(
            "invoice_number",
            "an invoice number has 1 to 32 characters",
        ));
    }
    if req.amount_fen != acc.view.amount_fen {
        return Err(RpcError::invalid(
            "amount_fen",
            format!(
                "the invoice amount {} fen must equal the accepted amount {} fen",
                req.amount_fen.fen(),
                acc.view.amount_fen.fen()
            ),
        ));
    }
    if req.tax_fen.is_negative() || req.tax_fen.fen() > req.amount_fen.fen() {
        return Err(RpcError::invalid(
            "tax_fen",
            "tax must be between 0 and the invoice amount",
        ));
    }
    Ok(store::NewInvoice {
        id: InvoiceId::new(),
        acceptance: req.acceptance,
        code,
        number,
        amount: req.amount_fen,
        tax: req.tax_fen,
        issued_on: req.issued_on,
    })
}

pub async fn settlement_pay(svc: Shared, ctx: Context, req: PaySettlement) -> R<AcceptanceView> {
    let acceptance = req.acceptance;
    let mut tx = begin(&svc).await?;
    pay(&svc, &mut tx, &ctx, &[req], false).await?;
    let v = store::get_acceptance(&mut tx, acceptance, false)
        .await?
        .ok_or_else(|| not_found("acceptance", acceptance))?;
    tx.commit().await?;
    Ok(v.view)
}

pub async fn settlement_pay_batch(svc: Shared, ctx: Context, req: PaySettlements) -> R<PaymentRun> {
    let items = retried!(&svc, tx => pay(&svc, &mut tx, &ctx, &req.payments, true).await)?;
    let amount_fen = Money::from_fen(items.iter().map(|i| i.amount_fen.fen()).sum());
    Ok(PaymentRun { items, amount_fen })
}

/// Records the payments of `reqs` in `tx`, all or none.
async fn pay(
    svc: &Svc,
    tx: &mut PgConnection,
    ctx: &Context,
    reqs: &[PaySettlement],
    many: bool,
) -> R<Vec<PaidItem>> {
    let a = actor(ctx)?;
    if many {
        run_size("payments", reqs.len())?;
    }
    let at = |i| At::of("payments", many, i);
    let now = svc.clock.now();
    let ids: Vec<AcceptanceId> = reqs.iter().map(|r| r.acceptance).collect();
    if let Some(i) = repeated(&ids) {
        return Err(at(i).err(RpcError::invalid(
            "acceptance",
            "an acceptance is paid at most once per run; it appears earlier in this one",
        )));
    }
    let accs = lock_all(tx, &ids, at).await?;
    let rows = reqs
        .iter()
        .enumerate()
        .map(|(i, req)| payment_of(a, &accs[&req.acceptance], req, now).map_err(|e| at(i).err(e)))
        .collect::<R<Vec<_>>>()?;
    store::insert_payments(tx, &rows, &a.sub, a.org, now).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let acc = &accs[&row.acceptance];
        events.push(svc.outbox.stage(
            ctx,
            &SettlementPaid {
                settlement: row.id,
                order: acc.view.order,
                acceptance: Some(row.acceptance),
                offline_reason: None,
                invoice: acc.view.invoice,
                period: acc.period,
                hospital: acc.view.hospital,
                hospital_region: acc.hospital_region,
                payee: acc.view.distributor,
                amount_fen: row.amount,
                channel: row.channel,
                due_at: acc.view.due_at,
                paid_at: row.paid_at,
                on_time: row.on_time,
            },
        )?);
    }
    svc.outbox.append_staged(tx, &events).await?;
    Ok(rows
        .iter()
        .map(|r| PaidItem {
            acceptance: r.acceptance,
            settlement: r.id,
            amount_fen: r.amount,
            paid_at: r.paid_at,
            on_time: r.on_time,
        })
        .collect())
}

/// The payment `a` may record for `acc`, or the rule `req` breaks.
fn payment_of(
    a: &Actor,
    acc: &store::AcceptanceRow,
    req: &PaySettlement,
    now: DateTime<Utc>,
) -> R<store::NewPayment> {
    match req.channel {
        SettlementChannel::Online => {
            require_kind(a, &[OrgKind::Hospital], "pay online")?;
        }
        SettlementChannel::Offline => {
            return Err(RpcError::invalid(
                "channel",
                "an item is moved to offline settlement with settlement_move_offline (a reason is required and audited), not paid offline",
            ));
        }
        SettlementChannel::Direct => {
            require_kind(
                a,
                &[OrgKind::Bureau, OrgKind::Operator],
                "record a direct settlement by the fund",
            )?;
            if a.org_kind == OrgKind::Bureau && !a.region.contains(acc.hospital_region) {
                return Err(RpcError::forbidden(format!(
                    "the hospital's region {} is outside your jurisdiction {}",
                    acc.hospital_region, a.region
                )));
            }
        }
    }
    if a.org_kind == OrgKind::Hospital && acc.view.hospital != a.org {
        return Err(RpcError::forbidden(format!(
            "acceptance {} belongs to another hospital",
            req.acceptance
        )));
    }
    if acc.view.invoice.is_none() {
        return Err(transition(format!(
            "acceptance {} has no invoice yet; it is paid against its invoice",
            req.acceptance
        )));
    }
    let open = acc.view.amount_fen.fen() - acc.view.paid_fen.fen();
    if open <= 0 {
        return Err(transition(format!(
            "acceptance {} is already settled in full",
            req.acceptance
        )));
    }
    if req.amount_fen.fen() < 1 || req.amount_fen.fen() > open {
        return Err(RpcError::invalid(
            "amount_fen",
            format!("the payment must be between 1 and the {open} fen still due"),
        ));
    }
    let paid_at = match req.paid_on {
        None => now,
        Some(day) => {
            let today = domain::local_date(now);
            let accepted_on = domain::local_date(acc.view.accepted_at);
            if day > today {
                return Err(RpcError::invalid(
                    "paid_on",
                    format!("a payment on {day} lies after today {today}"),
                ));
            }
            if day < accepted_on {
                return Err(RpcError::invalid(
                    "paid_on",
                    format!("a payment on {day} precedes the acceptance on {accepted_on}"),
                ));
            }
            if day == today {
                now
            } else {
                domain::start_of_day(day)
            }
        }
    };
    Ok(store::NewPayment {
        id: SettlementId::new(),
        acceptance: req.acceptance,
        amount: req.amount_fen,
        channel: req.channel,
        reason: None,
        paid_at,
        on_time: paid_at < acc.view.due_at,
    })
}

/// Moves what is still open of an acceptance to offline settlement: the
/// hospital attests it is settled outside the platform (e.g. the uploaded
/// invoice is wrong). It counts as settled (on time when moved before the
/// deadline) and shows separately in the rates; who, when and why are kept
/// and listed by `offline_settlement_list`. No invoice is required, since a
/// wrong invoice is a common reason.
pub async fn settlement_move_offline(
    svc: Shared,
    ctx: Context,
    req: MoveOffline,
) -> R<AcceptanceView> {
    let a = actor(&ctx)?;
    require_kind(
        a,
        &[OrgKind::Hospital],
        "move an item to offline settlement",
    )?;
    let reason = domain::reason("reason", Some(&req.reason)).map_err(invalid)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let acc = store::get_acceptance(&mut tx, req.acceptance, true)
        .await?
        .ok_or_else(|| not_found("acceptance", req.acceptance))?;
    if acc.view.hospital != a.org {
        return Err(RpcError::forbidden(format!(
            "acceptance {} belongs to another hospital",
            req.acceptance
        )));
    }
    let open = acc.view.amount_fen.fen() - acc.view.paid_fen.fen();
    if open <= 0 {
        return Err(transition(format!(
            "acceptance {} is already settled in full; nothing is left to move offline",
            req.acceptance
        )));
    }
    let on_time = now < acc.view.due_at;
    let id = SettlementId::new();
    let amount = Money::from_fen(open);
    let moved = store::NewPayment {
        id,
        acceptance: req.acceptance,
        amount,
        channel: SettlementChannel::Offline,
        reason: Some(reason.clone()),
        paid_at: now,
        on_time,
    };
    store::insert_payments(&mut tx, &[moved], &a.sub, a.org, now).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &SettlementPaid {
                settlement: id,
                order: acc.view.order,
                acceptance: Some(req.acceptance),
                offline_reason: Some(reason),
                invoice: acc.view.invoice,
                period: acc.period,
                hospital: acc.view.hospital,
                hospital_region: acc.hospital_region,
                payee: acc.view.distributor,
                amount_fen: amount,
                channel: SettlementChannel::Offline,
                due_at: acc.view.due_at,
                paid_at: now,
                on_time,
            },
        )
        .await?;
    let v = store::get_acceptance(&mut tx, req.acceptance, false)
        .await?
        .ok_or_else(|| not_found("acceptance", req.acceptance))?;
    tx.commit().await?;
    Ok(v.view)
}

/// The audit of offline moves: hospitals and distributors see their own,
/// bureaus their region, operators all.
pub async fn offline_settlement_list(
    svc: Shared,
    ctx: Context,
    req: ListOfflineSettlements,
) -> R<Page<OfflineSettlementView>> {
    let a = actor(&ctx)?;
    require_kind(
        a,
        &[
            OrgKind::Hospital,
            OrgKind::Distributor,
            OrgKind::Bureau,
            OrgKind::Operator,
        ],
        "read the offline settlement audit",
    )?;
    let w = Window::new(req.page, req.page_size)?;
    let region = req.region.unwrap_or(vbp_kernel::RegionCode::NATIONAL);
    if a.org_kind == OrgKind::Bureau && req.region.is_some_and(|r| !a.region.contains(r)) {
        return Err(RpcError::forbidden(format!(
            "region {region} is outside your jurisdiction {}",
            a.region
        ))
        .with_field("region"));
    }
    let (lo, hi) = domain::region_range(region);
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = store::list_offline_settlements(
        &mut conn,
        &scope_of(a),
        req.hospital,
        lo,
        hi,
        (w.limit(), w.offset()),
    )
    .await?;
    Ok(w.page(items, total))
}

pub async fn offline_purchase_declare(
    svc: Shared,
    ctx: Context,
    req: DeclareOfflinePurchase,
) -> R<OfflinePurchaseView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Hospital], "declare offline purchases")?;
    use chrono::Datelike;
    if req.month.day() != 1 {
        return Err(RpcError::invalid(
            "month",
            "a month is given as its first day",
        ));
    }
    if req.amount_fen.is_negative() || req.amount_fen == Money::from_fen(0) {
        return Err(RpcError::invalid(
            "amount_fen",
            "the amount must be positive",
        ));
    }
    if req.amount_fen.fen() > MAX_DECLARED_FEN {
        return Err(RpcError::invalid(
            "amount_fen",
            format!("one month's declaration is at most {MAX_DECLARED_FEN} fen"),
        ));
    }
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let h = store::get_org(&mut tx, a.org).await?.ok_or_else(|| {
        RpcError::invalid("hospital", format!("{} is not in the directory", a.org))
    })?;
    store::insert_offline(
        &mut tx,
        a.org,
        h.region,
        req.month,
        req.national_code.as_ref().map(|c| c.as_str()),
        req.amount_fen,
        now,
    )
    .await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &OfflinePurchaseDeclared {
                hospital: a.org,
                hospital_region: h.region,
                month: req.month,
                national_code: req.national_code.clone(),
                amount_fen: req.amount_fen,
                declared_at: now,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(OfflinePurchaseView {
        hospital: a.org,
        month: req.month,
        amount_fen: req.amount_fen,
        declared_at: now,
    })
}
