//! Invoices, payments and declared offline purchases.

use vbp_bus::{Context, RpcError};
use vbp_contracts::orders::*;
use vbp_kernel::{Money, OrgKind};

use super::{R, Shared, actor, begin, invalid, not_found, require_kind, transition};
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
    let reason = match req.channel {
        SettlementChannel::Online => {
            require_kind(a, &[OrgKind::Hospital], "pay online")?;
            None
        }
        SettlementChannel::Offline => {
            require_kind(a, &[OrgKind::Hospital], "record an offline settlement")?;
            Some(domain::reason("reason", req.reason.as_deref()).map_err(invalid)?)
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
            None
        }
    };
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
    let on_time = now < acc.view.due_at;
    let id = SettlementId::new();
    store::insert_settlement(
        &mut tx,
        id,
        req.acceptance,
        req.amount_fen,
        req.channel,
        reason.as_deref(),
        &a.sub,
        now,
        on_time,
    )
    .await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &SettlementPaid {
                settlement: id,
                order: acc.view.order,
                acceptance: Some(req.acceptance),
                offline_reason: reason,
                invoice: Some(invoice),
                period: acc.period,
                hospital: acc.view.hospital,
                hospital_region: acc.hospital_region,
                payee: acc.view.distributor,
                amount_fen: req.amount_fen,
                channel: req.channel,
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
