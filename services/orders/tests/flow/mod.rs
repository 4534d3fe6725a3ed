//! The order lifecycle driven through RPC as its parties would: place,
//! confirm, ship, receive, accept and invoice.

#![allow(dead_code)]

use chrono::NaiveDate;
use vbp_contracts::orders::*;
use vbp_kernel::{Actor, Money};

use crate::common::{World, code};

pub async fn place(w: &World, h: &Actor, d: &Actor, lines: &[(&str, i64, i64)]) -> OrderView {
    w.ok::<OrderPlace>(h, &order(d, lines)).await
}

pub fn order(d: &Actor, lines: &[(&str, i64, i64)]) -> PlaceOrder {
    PlaceOrder {
        distributor: d.org,
        lines: lines
            .iter()
            .map(|(c, q, p)| PlaceOrderLine {
                national_code: code(c),
                quantity: *q,
                unit_price_fen: Money::from_fen(*p),
            })
            .collect(),
    }
}

pub async fn confirm(w: &World, d: &Actor, o: &OrderView) -> OrderView {
    w.ok::<OrderRespond>(
        d,
        &RespondOrder {
            order: o.order,
            response: OrderResponse::Accepted,
            lines: vec![],
            reason: None,
        },
    )
    .await
}

/// Confirms, ships everything in one shipment, receives and accepts it all
/// at the current clock.
pub async fn deliver(w: &World, h: &Actor, d: &Actor, o: &OrderView) -> AcceptanceView {
    confirm(w, d, o).await;
    let shipped = w
        .ok::<ShipmentDispatch>(
            d,
            &DispatchShipment {
                order: o.order,
                shipment_no: format!("S-{}", o.order),
                lines: o
                    .lines
                    .iter()
                    .map(|l| DispatchLine {
                        line_no: l.line_no,
                        batch_no: "B2409".into(),
                        expiry_date: NaiveDate::from_ymd_opt(2029, 12, 31).unwrap(),
                        quantity: l.quantity,
                    })
                    .collect(),
            },
        )
        .await;
    w.ok::<ShipmentReceive>(
        h,
        &ReceiveShipment {
            shipment: shipped.shipments[0].shipment,
        },
    )
    .await;
    w.ok::<ReceiptAccept>(
        h,
        &AcceptReceipt {
            order: o.order,
            shipment: None,
            lines: o
                .lines
                .iter()
                .map(|l| AcceptLine {
                    line_no: l.line_no,
                    accepted_quantity: l.quantity,
                    rejected_quantity: 0,
                    rejection_reason: None,
                })
                .collect(),
        },
    )
    .await
}

pub async fn invoice(w: &World, d: &Actor, a: &AcceptanceView, number: &str) -> AcceptanceView {
    w.ok::<InvoiceIssue>(
        d,
        &IssueInvoice {
            acceptance: a.acceptance,
            invoice_code: "021002400111".into(),
            invoice_number: number.into(),
            amount_fen: a.amount_fen,
            tax_fen: Money::from_fen(a.amount_fen.fen() * 13 / 113),
            issued_on: NaiveDate::from_ymd_opt(2024, 9, 20).unwrap(),
        },
    )
    .await
}

pub fn month(y: i32, m: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, 1).unwrap()
}
