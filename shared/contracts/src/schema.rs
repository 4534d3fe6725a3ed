//! JSON Schemas of every payload, for documentation (AsyncAPI, the
//! integrator guide) and for validating what arrives from outside.

use std::collections::BTreeMap;

use crate::{
    agreements, distribution, ingest, issues, meta, orders, prepayment, reconcile, rpc,
    supervision, system,
};

/// Every payload type by a stable name.
pub fn all() -> BTreeMap<&'static str, schemars::Schema> {
    let mut out = BTreeMap::new();
    out.insert("MessageMeta", schemars::schema_for!(meta::MessageMeta));
    out.insert("RpcErrorBody", schemars::schema_for!(rpc::RpcErrorBody));
    out.insert("PingRequest", schemars::schema_for!(system::PingRequest));
    out.insert("PingResponse", schemars::schema_for!(system::PingResponse));
    out.insert("FlowRequest", schemars::schema_for!(system::FlowRequest));
    out.insert("FlowResponse", schemars::schema_for!(system::FlowResponse));
    out.insert("DeadLetter", schemars::schema_for!(system::DeadLetter));
    out.insert(
        "ReconcileFiguresRequest",
        schemars::schema_for!(reconcile::FiguresRequest),
    );
    out.insert(
        "ReconcileFiguresResponse",
        schemars::schema_for!(reconcile::FiguresResponse),
    );
    for event in ingest::EVENTS {
        if let Some(schema) = ingest::schema_of(event) {
            out.insert(event, schema);
        }
    }
    let events = agreements::event_schemas()
        .into_iter()
        .chain(distribution::event_schemas())
        .chain(orders::event_schemas())
        .chain(prepayment::event_schemas())
        .chain(issues::event_schemas())
        .chain(supervision::event_schemas());
    for (event_type, schema) in events {
        out.insert(event_type, schema);
    }
    for (name, schema) in agreements::rpc_schemas()
        .into_iter()
        .chain(distribution::rpc_schemas())
        .chain(orders::rpc_schemas())
        .chain(prepayment::rpc_schemas())
        .chain(issues::rpc_schemas())
        .chain(supervision::rpc_schemas())
    {
        out.insert(name, schema);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_ingest_event_has_a_schema_that_names_its_fields() {
        for event in crate::ingest::EVENTS {
            let schema = crate::ingest::schema_of(event).expect(event);
            let text = serde_json::to_string(&schema).unwrap();
            assert!(text.contains("external_id"), "{event}: {text}");
        }
        let order =
            serde_json::to_value(crate::ingest::schema_of("order_placed").unwrap()).unwrap();
        let line = &order["$defs"]["IngestOrderLine"]["properties"];
        assert_eq!(line["quantity"]["minimum"], 1);
        assert!(line["national_code"].is_object());
    }

    #[test]
    fn every_service_declares_unique_operations_each_with_request_and_response_schemas() {
        use crate::{agreements, distribution, issues, orders, prepayment, supervision};
        let declared: [(&str, &[&str]); 6] = [
            ("agreements", agreements::OPERATIONS),
            ("distribution", distribution::OPERATIONS),
            ("orders", orders::OPERATIONS),
            ("prepayment", prepayment::OPERATIONS),
            ("issues", issues::OPERATIONS),
            ("supervision", supervision::OPERATIONS),
        ];
        let all = super::all();
        for (service, operations) in declared {
            let mut seen = std::collections::BTreeSet::new();
            for op in operations {
                assert!(crate::subjects::valid_token(op), "{service}.{op}");
                assert!(seen.insert(*op), "{service}.{op} declared twice");
                for side in ["request", "response"] {
                    let name = format!("{service}.{op}.{side}");
                    assert!(all.keys().any(|k| *k == name), "{name} has no schema");
                }
            }
        }
        use crate::RpcOp;
        assert_eq!(
            crate::Namespace::default().rpc(
                agreements::AgreementConfirm::SERVICE,
                agreements::AgreementConfirm::NAME
            ),
            "vbp.rpc.agreements.agreement_confirm"
        );
    }

    #[test]
    fn all_lists_system_and_ingest_payloads() {
        let all = super::all();
        for name in [
            "PingResponse",
            "FlowResponse",
            "RpcErrorBody",
            "order_placed",
            "agreements.supply_list.published",
            "agreements.agreement.state_changed",
            "distribution.relation.activated",
            "orders.receipt.accepted",
            "orders.settlement.paid",
            "prepayment.ledger.calculated",
            "issues.issue.filed",
            "agreements.period_open.request",
            "distribution.relation_select.request",
            "distribution.change_approve.response",
        ] {
            assert!(all.contains_key(name), "{name} missing");
        }
    }
}
