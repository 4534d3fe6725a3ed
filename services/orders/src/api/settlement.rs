//! Invoices, payments and declared offline purchases.

use vbp_bus::{Context, RpcError};
use vbp_contracts::orders::*;
use vbp_kernel::{Money, OrgKind};

use super::{R, Shared, actor, begin, invalid, not_found, require_kind, scope_of, transition};
use crate::{domain, store};

pub async fn invoice_issue(svc: Shared, ctx: Context, req: IssueInvoice) -> R<AcceptanceView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Distributor], "issue an invoice")?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let acc = store::get_acceptance(&mut tx, req.acceptance, true)
        .await?
        .ok_or_else(|| not_found("acceptance", req.acceptance))?;
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
    if store::invoice_number_taken(&mut tx, code, number).await? {
        return Err(RpcError::conflict(
            "duplicate_invoice",
            format!("invoice {code} {number} is already recorded"),
        )
        .with_field("invoice_number"));
    }
    let id = InvoiceId::new();
    store::insert_invoice(
        &mut tx,
        id,
        req.acceptance,
        code,
        number,
        req.amount_fen,
        req.tax_fen,
        req.issued_on,
        now,
    )
    .await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &InvoiceIssued {
                invoice: id,
                order: acc.view.order,
                acceptance: Some(req.acceptance),
                hospital: acc.view.hospital,
                distributor: acc.view.distributor,
                invoice_code: code.to_owned(),
                invoice_number: number.to_owned(),
                amount_fen: req.amount_fen,
                tax_fen: req.tax_fen,
                issued_on: req.issued_on,
                recorded_at: now,
            },
        )
        .await?;
    let v = store::get_acceptance(&mut tx, req.acceptance, false)
        .await?
        .ok_or_else(|| not_found("acceptance", req.acceptance))?;
    tx.commit().await?;
    Ok(v.view)
}

pub async fn settlement_pay(svc: Shared, ctx: Context, req: PaySettlement) -> R<AcceptanceView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let acc = store::get_acceptance(&mut tx, req.acceptance, true)
        .await?
        .ok_or_else(|| not_found("acceptance", req.acceptance))?;
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
    let Some(invoice) = acc.view.invoice else {
        return Err(transition(format!(
            "acceptance {} has no invoice yet; it is paid against its invoice",
            req.acceptance
        )));
    };
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
    let on_time = paid_at < acc.view.due_at;
    let id = SettlementId::new();
    store::insert_settlement(
        &mut tx,
        id,
        req.acceptance,
        req.amount_fen,
        req.channel,
        None,
        &a.sub,
        paid_at,
        on_time,
    )
    .await?;
    store::set_settlement_audit(&mut tx, id, a.org, now).await?;
    // Recorded after the fact but paid in time: the deadline was kept, so
    // the flag the timer raised meanwhile no longer holds.
    store::clear_overdue_if_paid_on_time(&mut tx, req.acceptance).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &SettlementPaid {
                settlement: id,
                order: acc.view.order,
                acceptance: Some(req.acceptance),
                offline_reason: None,
                invoice: Some(invoice),
                period: acc.period,
                hospital: acc.view.hospital,
                hospital_region: acc.hospital_region,
                payee: acc.view.distributor,
                amount_fen: req.amount_fen,
                channel: req.channel,
                due_at: acc.view.due_at,
                paid_at,
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
    store::insert_settlement(
        &mut tx,
        id,
        req.acceptance,
        amount,
        SettlementChannel::Offline,
        Some(&reason),
        &a.sub,
        now,
        on_time,
    )
    .await?;
    store::set_settlement_audit(&mut tx, id, a.org, now).await?;
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
) -> R<OfflineSettlementList> {
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
    if req.limit == 0 || req.limit > 500 {
        return Err(RpcError::invalid(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
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
    let items = store::list_offline_settlements(
        &mut conn,
        &scope_of(a),
        req.hospital,
        lo,
        hi,
        req.limit as i64,
    )
    .await?;
    Ok(OfflineSettlementList { items })
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
