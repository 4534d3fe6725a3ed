//! Distribution relations through RPC on real Postgres and NATS, with the
//! manual clock; the agreements side arrives as published events.

mod common;

use chrono::NaiveDate;
use common::{Cast, P1, P2, P3, World, at, code, operator};
use vbp_contracts::agreements::SupplyListPublished;
use vbp_contracts::distribution::*;
use vbp_kernel::{Actor, EventId};

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn who(
    w: &World,
    asker: &Actor,
    hospital: &Actor,
    product: &str,
    on: &str,
) -> Vec<RelationView> {
    w.ok::<RelationAt>(
        asker,
        &WhoDelivered {
            hospital: hospital.org,
            national_code: code(product),
            on: day(on),
        },
    )
    .await
    .relations
}

fn list_all() -> ListRelations {
    ListRelations {
        period: None,
        national_code: None,
        hospital: None,
        distributor: None,
        state: None,
        remote_area_only: false,
        page: 1,
        page_size: 100,
    }
}

#[tokio::test]
async fn authorise_select_confirm_makes_an_active_relation_and_publishes_it() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;

    // A duplicate delivery of the same supply list (another event id, same
    // revision) leaves one projection row per product.
    let dup: SupplyListPublished = cast.list.clone();
    w.publish(EventId::new(), &dup).await;
    // 12 orgs, the period and the list, then the duplicate.
    w.wait_count("SELECT count(*) FROM inbox", 12 + 2 + 1).await;
    assert_eq!(w.count("SELECT count(*) FROM supply_items").await, 3);

    let granted = w
        .ok::<AuthorisationGrant>(
            &cast.maker_a,
            &GrantAuthorisation {
                period: cast.period,
                distributor: cast.d1.org,
                products: vec![code(P1), code(P2)],
                areas: vec!["210900".parse().unwrap()],
            },
        )
        .await;
    assert_eq!(granted.state, AuthorisationState::Pending);
    assert_eq!(granted.distributor_name, "辽宁示例医药物流");
    let work = w.ok::<WorkListOp>(&cast.d1, &QueryWorkList {}).await;
    assert_eq!(work.authorisations.len(), 1);
    let confirmed = w
        .ok::<AuthorisationConfirm>(
            &cast.d1,
            &ConfirmAuthorisation {
                authorisation: granted.authorisation,
            },
        )
        .await;
    assert_eq!(confirmed.state, AuthorisationState::Confirmed);
    w.published("distribution.authorisation.confirmed", |v| {
        v["authorisation"] == granted.authorisation.to_string()
    })
    .await;

    // The hospital sees the confirmed authorisation covering its county.
    let visible = w
        .ok::<AuthorisationList>(
            &cast.hospital,
            &ListAuthorisations {
                period: Some(cast.period),
                state: None,
                national_code: Some(code(P1)),
                page: 1,
                page_size: 10,
            },
        )
        .await;
    assert_eq!(visible.total, 1);

    let sel = cast.select(&w, &cast.hospital, P1, &[&cast.d1]).await;
    assert_eq!(sel[0].state, RelationState::Pending);
    assert_eq!(sel[0].hospital_region, "210902".parse().unwrap());
    let work = w.ok::<WorkListOp>(&cast.d1, &QueryWorkList {}).await;
    assert_eq!(work.relations.len(), 1);
    assert!(work.authorisations.is_empty());

    w.set_clock("2024-08-05T10:00:00+08:00");
    let active = w
        .ok::<RelationConfirm>(
            &cast.d1,
            &ConfirmRelation {
                relation: sel[0].relation,
            },
        )
        .await;
    assert_eq!(active.state, RelationState::Active);
    assert_eq!(active.valid_from, Some(at("2024-08-05T10:00:00+08:00")));
    let ev = w
        .published("distribution.relation.activated", |v| {
            v["relation"] == sel[0].relation.to_string()
        })
        .await;
    let ev: RelationActivated = serde_json::from_value(ev).unwrap();
    assert_eq!(ev.hospital, cast.hospital.org);
    assert_eq!(ev.distributor, cast.d1.org);
    assert_eq!(ev.manufacturer, cast.maker_a.org);
    assert_eq!(ev.national_code, code(P1));
    assert_eq!(ev.valid_to, None);

    let now = who(&w, &cast.hospital, &cast.hospital, P1, "2024-08-05").await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].distributor, cast.d1.org);
    assert!(
        who(&w, &cast.hospital, &cast.hospital, P1, "2024-08-04")
            .await
            .is_empty()
    );
    // Listing rule off by default: no timers armed.
    assert_eq!(w.count("SELECT count(*) FROM timers").await, 0);
    // Every relation transition is in the append-only log.
    assert_eq!(w.count("SELECT count(*) FROM relation_log").await, 2);
}

#[tokio::test]
async fn refusals_keep_their_reason_and_remote_counties_are_recorded() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    // Only a bureau whose jurisdiction holds the county may mark it.
    let e = w
        .err::<RemoteAreaMark>(
            &cast.shenyang,
            &MarkRemoteArea {
                region: "210922".parse().unwrap(),
                remote: true,
                note: None,
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    let e = w
        .err::<RemoteAreaMark>(
            &cast.fuxin,
            &MarkRemoteArea {
                region: "210900".parse().unwrap(),
                remote: true,
                note: None,
            },
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("region"));
    w.ok::<RemoteAreaMark>(
        &cast.fuxin,
        &MarkRemoteArea {
            region: "210922".parse().unwrap(),
            remote: true,
            note: Some("彰武县北部山区".into()),
        },
    )
    .await;
    cast.authorise(&w, &cast.maker_a, &cast.d1, &[P1], &["210900"])
        .await;
    cast.authorise(&w, &cast.maker_a, &cast.d2, &[P1], &["210900"])
        .await;

    let sel = cast
        .select(&w, &cast.county_hospital, P1, &[&cast.d1, &cast.d2])
        .await;
    assert_eq!(sel.len(), 2);
    w.ok::<RelationConfirm>(
        &cast.d1,
        &ConfirmRelation {
            relation: sel[0].relation,
        },
    )
    .await;
    // A refusal needs a reason; without one nothing changes.
    let before = w.outbox_count().await;
    let e = w
        .err::<RelationRefuse>(
            &cast.d2,
            &RefuseRelation {
                relation: sel[1].relation,
                reason: "  ".into(),
            },
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("reason"));
    assert_eq!(w.outbox_count().await, before);
    let refused = w
        .ok::<RelationRefuse>(
            &cast.d2,
            &RefuseRelation {
                relation: sel[1].relation,
                reason: "路途遥远, 无法保障时效".into(),
            },
        )
        .await;
    assert_eq!(refused.state, RelationState::Refused);
    assert_eq!(refused.reason.as_deref(), Some("路途遥远, 无法保障时效"));
    assert!(refused.remote_area);
    let ev = w
        .published("distribution.relation.refused", |v| {
            v["relation"] == sel[1].relation.to_string()
        })
        .await;
    assert_eq!(ev["remote_area"], true);
    assert_eq!(ev["reason"], "路途遥远, 无法保障时效");

    // The same refusal for a hospital in a county not marked remote is not one.
    let sel = cast.select(&w, &cast.hospital, P1, &[&cast.d2]).await;
    let plain = w
        .ok::<RelationRefuse>(
            &cast.d2,
            &RefuseRelation {
                relation: sel[0].relation,
                reason: "库存不足".into(),
            },
        )
        .await;
    assert!(!plain.remote_area);

    // Bureaus see remote-area refusals in their jurisdiction only.
    let mut q = list_all();
    q.remote_area_only = true;
    let fuxin = w.ok::<RelationList>(&cast.fuxin, &q).await;
    assert_eq!(fuxin.total, 1);
    assert_eq!(fuxin.items[0].distributor, cast.d2.org);
    let shenyang = w.ok::<RelationList>(&cast.shenyang, &q).await;
    assert_eq!(shenyang.total, 0);
    let province = w.ok::<RelationList>(&cast.province, &q).await;
    assert_eq!(province.total, 1);
}

#[tokio::test]
async fn changes_are_decided_by_the_territorial_bureau_within_the_limit_and_keep_history() {
    let w = World::start_with(serde_json::json!({
        "max_changes_per_relation": 1,
        "county_approval_regions": ["210922"],
    }))
    .await;
    let cast = Cast::new();
    cast.publish(&w).await;
    cast.authorise(&w, &cast.maker_a, &cast.d1, &[P1, P2], &["210900"])
        .await;
    cast.authorise(&w, &cast.maker_a, &cast.d2, &[P1, P2], &["210900"])
        .await;
    let old = cast.relate(&w, &cast.hospital, P1, &cast.d1).await;
    assert_eq!(old.valid_from, Some(at("2024-08-01T09:00:00+08:00")));
    w.set_clock("2024-08-20T10:00:00+08:00");

    // Another manufacturer may not ask; a past date is refused.
    let req = RequestChange {
        period: cast.period,
        hospital: Some(cast.hospital.org),
        national_code: code(P1),
        from_distributor: cast.d1.org,
        to_distributor: cast.d2.org,
        effective_from: day("2024-09-01"),
        reason: "原配送企业配送不及时".into(),
    };
    assert_eq!(
        w.err::<ChangeRequest>(&cast.maker_b, &req).await.0.status,
        403
    );
    let mut past = req.clone();
    past.effective_from = day("2024-08-19");
    assert_eq!(
        w.err::<ChangeRequest>(&cast.hospital, &past)
            .await
            .0
            .field
            .as_deref(),
        Some("effective_from")
    );
    let change = w.ok::<ChangeRequest>(&cast.maker_a, &req).await;
    assert_eq!(change.state, ChangeState::Pending);
    assert_eq!(change.approver_region, "210900".parse().unwrap());
    let work = w.ok::<WorkListOp>(&cast.fuxin, &QueryWorkList {}).await;
    assert_eq!(work.changes.len(), 1);
    assert!(
        w.ok::<WorkListOp>(&cast.shenyang, &QueryWorkList {})
            .await
            .changes
            .is_empty()
    );

    // Another city's bureau, the province and the county: 403, nothing changes.
    let before = w.outbox_count().await;
    let decide = DecideChange {
        change: change.change,
        reason: None,
    };
    for other in [&cast.shenyang, &cast.province, &cast.zhangwu] {
        let e = w.err::<ChangeApprove>(other, &decide).await;
        assert_eq!(e.0.status, 403, "{e:?}");
        assert!(e.0.message.contains("territorial bureau"), "{e:?}");
    }
    assert_eq!(
        w.err::<ChangeApprove>(&cast.hospital, &decide)
            .await
            .0
            .status,
        403
    );
    assert_eq!(w.outbox_count().await, before);
    assert_eq!(
        w.count("SELECT count(*) FROM changes WHERE state = 'pending'")
            .await,
        1
    );

    let approved = w.ok::<ChangeApprove>(&cast.fuxin, &decide).await;
    assert_eq!(approved.state, ChangeState::Approved);
    assert_eq!(approved.decided_by, Some(cast.fuxin.org));
    let new_rel = approved.new_relation.unwrap();
    let changed = w
        .published("distribution.relation.changed", |v| {
            v["change"] == change.change.to_string()
        })
        .await;
    assert_eq!(changed["approved_by"], cast.fuxin.org.to_string());
    let ended = w
        .published("distribution.relation.ended", |v| {
            v["relation"] == old.relation.to_string()
        })
        .await;
    assert_eq!(ended["replaced_by"], new_rel.to_string());
    let activated = w
        .published("distribution.relation.activated", |v| {
            v["relation"] == new_rel.to_string()
        })
        .await;
    assert_eq!(activated["replaces"], old.relation.to_string());

    // Who delivered then: D1 up to 31 August, D2 from 1 September.
    for (on, expect) in [
        ("2024-08-15", cast.d1.org),
        ("2024-08-31", cast.d1.org),
        ("2024-09-01", cast.d2.org),
        ("2025-03-01", cast.d2.org),
    ] {
        let got = who(&w, &cast.fuxin, &cast.hospital, P1, on).await;
        assert_eq!(got.len(), 1, "{on}: {got:?}");
        assert_eq!(got[0].distributor, expect, "{on}");
    }
    assert!(
        who(&w, &cast.fuxin, &cast.hospital, P1, "2024-07-31")
            .await
            .is_empty()
    );
    // The old row is kept as it was, closed at the change date.
    let kept = w
        .ok::<RelationGet>(
            &cast.hospital,
            &GetRelation {
                relation: old.relation,
            },
        )
        .await;
    assert_eq!(kept.state, RelationState::Ended);
    assert_eq!(kept.distributor, cast.d1.org);
    assert_eq!(kept.valid_from, old.valid_from);
    assert_eq!(kept.valid_to, Some(at("2024-09-01T00:00:00+08:00")));
    assert_eq!(kept.replaced_by, Some(new_rel));
    w.set_clock("2024-10-01T10:00:00+08:00");
    let got = who(&w, &cast.hospital, &cast.hospital, P1, "2024-08-31").await;
    assert_eq!(got[0].distributor, cast.d1.org);

    // Past the limit (1 per relation per period): a clear error, nothing changes.
    let before = w.outbox_count().await;
    let again = RequestChange {
        from_distributor: cast.d2.org,
        to_distributor: cast.d1.org,
        effective_from: day("2024-11-01"),
        ..req.clone()
    };
    let e = w.err::<ChangeRequest>(&cast.hospital, &again).await;
    assert_eq!(e.0.code, "change_limit_reached");
    assert!(e.0.message.contains("at most 1"), "{e:?}");
    assert_eq!(w.outbox_count().await, before);

    // A county configured for county approval: the county bureau decides,
    // the city bureau may not; a rejection needs a reason.
    let county_rel = cast.relate(&w, &cast.county_hospital, P2, &cast.d1).await;
    let change = w
        .ok::<ChangeRequest>(
            &cast.county_hospital,
            &RequestChange {
                period: cast.period,
                hospital: None,
                national_code: code(P2),
                from_distributor: county_rel.distributor,
                to_distributor: cast.d2.org,
                effective_from: day("2024-10-15"),
                reason: "调整配送企业".into(),
            },
        )
        .await;
    assert_eq!(change.approver_region, "210922".parse().unwrap());
    let decide = DecideChange {
        change: change.change,
        reason: None,
    };
    assert_eq!(
        w.err::<ChangeReject>(&cast.fuxin, &decide).await.0.status,
        403
    );
    assert_eq!(
        w.err::<ChangeReject>(&cast.zhangwu, &decide)
            .await
            .0
            .field
            .as_deref(),
        Some("reason")
    );
    let rejected = w
        .ok::<ChangeReject>(
            &cast.zhangwu,
            &DecideChange {
                change: change.change,
                reason: Some("新配送企业无冷链能力".into()),
            },
        )
        .await;
    assert_eq!(rejected.state, ChangeState::Rejected);
    let e = w
        .err::<ChangeApprove>(
            &cast.zhangwu,
            &DecideChange {
                change: change.change,
                reason: None,
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    let still = who(&w, &cast.zhangwu, &cast.county_hospital, P2, "2024-10-20").await;
    assert_eq!(still[0].distributor, cast.d1.org);
}

#[tokio::test]
async fn listing_rule_reports_at_risk_then_suspends_by_timer() {
    let w = World::start_with(serde_json::json!({
        "listing_rule_enabled": true,
        "listing_at_risk_days": 30,
        "listing_suspend_days": 60,
    }))
    .await;
    let cast = Cast::new();
    cast.publish(&w).await;
    w.wait_count("SELECT count(*) FROM timers WHERE fired_at IS NULL", 2)
        .await;
    cast.authorise(&w, &cast.maker_a, &cast.d1, &[P1, P2], &["210900"])
        .await;
    cast.relate(&w, &cast.hospital, P1, &cast.d1).await;

    // Day 29: nothing yet.
    w.set_clock("2024-08-30T12:00:00+08:00");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(w.events("distribution.listing.at_risk").await.is_empty());

    // Day 30: P2 and P3 have no active relation.
    w.set_clock("2024-08-31T00:30:00+08:00");
    w.published("distribution.listing.at_risk", |v| v["national_code"] == P3)
        .await;
    let risk = w.events("distribution.listing.at_risk").await;
    let codes: Vec<&str> = risk
        .iter()
        .map(|v| v["national_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec![P2, P3]);
    assert_eq!(risk[0]["suspend_at"], "2024-09-29T16:00:00Z");

    // A relation for P2 clears it at once.
    w.set_clock("2024-09-02T10:00:00+08:00");
    cast.relate(&w, &cast.hospital, P2, &cast.d1).await;
    let a = w
        .ok::<ListingList>(
            &cast.maker_a,
            &ListListings {
                period: Some(cast.period),
                state: None,
                page: 1,
                page_size: 10,
            },
        )
        .await;
    assert_eq!(a.items[0].state, ListingState::Cleared);
    assert_eq!(a.items[0].cleared_at, Some(at("2024-09-02T10:00:00+08:00")));

    // Day 60: only P3 is suspended.
    w.set_clock("2024-09-30T00:30:00+08:00");
    let ev = w
        .published("distribution.listing.suspended", |v| {
            v["national_code"] == P3
        })
        .await;
    assert_eq!(ev["manufacturer"], cast.maker_b.org.to_string());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(w.events("distribution.listing.suspended").await.len(), 1);
    let a = w
        .ok::<ListingList>(
            &cast.maker_a,
            &ListListings {
                period: None,
                state: None,
                page: 1,
                page_size: 10,
            },
        )
        .await;
    assert_eq!(a.total, 1);
    assert_eq!(a.items[0].state, ListingState::Cleared);
    let b = w
        .ok::<ListingList>(
            &cast.province,
            &ListListings {
                period: Some(cast.period),
                state: Some(ListingState::Suspended),
                page: 1,
                page_size: 10,
            },
        )
        .await;
    assert_eq!(b.total, 1);
    assert_eq!(b.items[0].national_code, code(P3));
    assert_eq!(
        w.err::<ListingList>(
            &cast.hospital,
            &ListListings {
                period: None,
                state: None,
                page: 1,
                page_size: 10
            }
        )
        .await
        .0
        .status,
        403
    );
}

#[tokio::test]
async fn queries_are_scoped_by_org_kind() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    cast.authorise(&w, &cast.maker_a, &cast.d1, &[P1], &["210900"])
        .await;
    cast.authorise(&w, &cast.maker_b, &cast.d3, &[P3], &["210100"])
        .await;
    let fx = cast.relate(&w, &cast.hospital, P1, &cast.d1).await;
    let sy = cast.relate(&w, &cast.shenyang_hospital, P3, &cast.d3).await;

    let ids = |p: &Page<RelationView>| -> Vec<RelationId> {
        p.items.iter().map(|r| r.relation).collect()
    };
    for (who_, expect) in [
        (&cast.hospital, vec![fx.relation]),
        (&cast.shenyang_hospital, vec![sy.relation]),
        (&cast.d1, vec![fx.relation]),
        (&cast.d3, vec![sy.relation]),
        (&cast.d2, vec![]),
        (&cast.maker_a, vec![fx.relation]),
        (&cast.maker_b, vec![sy.relation]),
        (&cast.fuxin, vec![fx.relation]),
        (&cast.shenyang, vec![sy.relation]),
        (&cast.zhangwu, vec![]),
        (&cast.province, vec![fx.relation, sy.relation]),
        (&cast.integrator, vec![]),
    ] {
        let page = w.ok::<RelationList>(who_, &list_all()).await;
        assert_eq!(ids(&page), expect, "{:?}", who_.org_kind);
        assert_eq!(page.total, expect.len() as i64);
    }
    // Single reads and "who delivered" follow the same scope.
    let e = w
        .err::<RelationGet>(
            &cast.hospital,
            &GetRelation {
                relation: sy.relation,
            },
        )
        .await;
    assert_eq!(e.0.status, 404);
    let e = w
        .err::<RelationGet>(
            &cast.fuxin,
            &GetRelation {
                relation: sy.relation,
            },
        )
        .await;
    assert_eq!(e.0.status, 404);
    w.ok::<RelationGet>(
        &cast.province,
        &GetRelation {
            relation: sy.relation,
        },
    )
    .await;
    let e = w
        .err::<RelationAt>(
            &cast.hospital,
            &WhoDelivered {
                hospital: cast.shenyang_hospital.org,
                national_code: code(P3),
                on: day("2024-08-01"),
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    let e = w
        .err::<RelationAt>(
            &cast.fuxin,
            &WhoDelivered {
                hospital: cast.shenyang_hospital.org,
                national_code: code(P3),
                on: day("2024-08-01"),
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    assert!(
        who(&w, &cast.d1, &cast.shenyang_hospital, P3, "2024-08-01")
            .await
            .is_empty()
    );
    assert_eq!(
        who(&w, &cast.d3, &cast.shenyang_hospital, P3, "2024-08-01")
            .await
            .len(),
        1
    );

    // Authorisations: a manufacturer its own, a distributor those naming it,
    // a bureau those with an area in its jurisdiction.
    let auths = |a: &Actor| {
        let a = a.clone();
        let w = &w;
        async move {
            w.ok::<AuthorisationList>(
                &a,
                &ListAuthorisations {
                    period: None,
                    state: None,
                    national_code: None,
                    page: 1,
                    page_size: 10,
                },
            )
            .await
            .total
        }
    };
    assert_eq!(auths(&cast.maker_a).await, 1);
    assert_eq!(auths(&cast.d3).await, 1);
    assert_eq!(auths(&cast.d2).await, 0);
    assert_eq!(auths(&cast.fuxin).await, 1);
    assert_eq!(auths(&cast.province).await, 2);
    assert_eq!(auths(&cast.shenyang_hospital).await, 1);
    assert_eq!(auths(&cast.county_hospital).await, 1);
}

#[tokio::test]
async fn disallowed_transitions_fail_with_a_clear_error_and_change_nothing() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    let before = w.outbox_count().await;
    assert_eq!(before, 0);

    // Authorising another manufacturer's product, a non-distributor, no area.
    let grant = |products: Vec<&str>, dist: &Actor, areas: Vec<&str>| GrantAuthorisation {
        period: cast.period,
        distributor: dist.org,
        products: products.into_iter().map(code).collect(),
        areas: areas.into_iter().map(|r| r.parse().unwrap()).collect(),
    };
    let e = w
        .err::<AuthorisationGrant>(
            &cast.maker_a,
            &grant(vec![P1, P3], &cast.d1, vec!["210900"]),
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("products[1]"));
    assert!(e.0.message.contains("only its own"), "{e:?}");
    let e = w
        .err::<AuthorisationGrant>(
            &cast.maker_a,
            &grant(vec![P1], &cast.hospital, vec!["210900"]),
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("distributor"));
    let e = w
        .err::<AuthorisationGrant>(&cast.maker_a, &grant(vec![P1], &cast.d1, vec![]))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("areas"));
    let e = w
        .err::<AuthorisationGrant>(&cast.d1, &grant(vec![P1], &cast.d1, vec!["210900"]))
        .await;
    assert_eq!(e.0.status, 403);
    assert_eq!(w.outbox_count().await, 0);
    assert_eq!(w.count("SELECT count(*) FROM authorisations").await, 0);

    // Authorised for Shenyang only; a Fuxin hospital may not select it, nor
    // one not authorised at all, nor one whose authorisation is pending.
    let sy_only = cast
        .authorise(&w, &cast.maker_a, &cast.d1, &[P1], &["210100"])
        .await;
    let pending = w
        .ok::<AuthorisationGrant>(&cast.maker_a, &grant(vec![P1], &cast.d2, vec!["210900"]))
        .await;
    let n = w.outbox_count().await;
    for dist in [&cast.d1, &cast.d3, &cast.d2] {
        let e = w
            .err::<RelationSelect>(
                &cast.hospital,
                &SelectDistributors {
                    period: cast.period,
                    national_code: code(P1),
                    distributors: vec![dist.org],
                },
            )
            .await;
        assert_eq!(e.0.field.as_deref(), Some("distributors[0]"));
        assert!(e.0.message.contains("authorised for its area"), "{e:?}");
    }
    assert_eq!(w.count("SELECT count(*) FROM relations").await, 0);
    assert_eq!(w.outbox_count().await, n);

    // Authorisation decisions: only the named distributor, only once.
    let e = w
        .err::<AuthorisationConfirm>(
            &cast.d3,
            &ConfirmAuthorisation {
                authorisation: pending.authorisation,
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    let e = w
        .err::<AuthorisationConfirm>(
            &cast.d1,
            &ConfirmAuthorisation {
                authorisation: sy_only.authorisation,
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    assert!(e.0.message.contains("authorisation is confirmed"), "{e:?}");
    let e = w
        .err::<AuthorisationRefuse>(
            &cast.d1,
            &AuthorisationDecision {
                authorisation: sy_only.authorisation,
                reason: "不配送".into(),
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    w.ok::<AuthorisationRefuse>(
        &cast.d2,
        &AuthorisationDecision {
            authorisation: pending.authorisation,
            reason: "无阜新仓库".into(),
        },
    )
    .await;
    let e = w
        .err::<AuthorisationConfirm>(
            &cast.d2,
            &ConfirmAuthorisation {
                authorisation: pending.authorisation,
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    assert_eq!(
        w.ok::<AuthorisationGet>(
            &cast.maker_a,
            &GetAuthorisation {
                authorisation: pending.authorisation
            }
        )
        .await
        .state,
        AuthorisationState::Refused
    );

    // Relation decisions: only the selected distributor, only while pending.
    cast.authorise(&w, &cast.maker_a, &cast.d3, &[P1], &["210900"])
        .await;
    let rel = cast
        .select(&w, &cast.hospital, P1, &[&cast.d3])
        .await
        .remove(0);
    let n = w.outbox_count().await;
    let e = w
        .err::<RelationConfirm>(
            &cast.hospital,
            &ConfirmRelation {
                relation: rel.relation,
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    let e = w
        .err::<RelationConfirm>(
            &cast.d1,
            &ConfirmRelation {
                relation: rel.relation,
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    assert_eq!(w.outbox_count().await, n);
    w.ok::<RelationConfirm>(
        &cast.d3,
        &ConfirmRelation {
            relation: rel.relation,
        },
    )
    .await;
    let n = w.outbox_count().await;
    let e = w
        .err::<RelationConfirm>(
            &cast.d3,
            &ConfirmRelation {
                relation: rel.relation,
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    let e = w
        .err::<RelationRefuse>(
            &cast.d3,
            &RefuseRelation {
                relation: rel.relation,
                reason: "改变主意".into(),
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    assert!(e.0.message.contains("relation is active"), "{e:?}");
    // Selecting the same distributor again while the relation is open.
    let e = w
        .err::<RelationSelect>(
            &cast.hospital,
            &SelectDistributors {
                period: cast.period,
                national_code: code(P1),
                distributors: vec![cast.d3.org],
            },
        )
        .await;
    assert_eq!(e.0.code, "already_selected");
    assert_eq!(w.outbox_count().await, n);
    let got = w
        .ok::<RelationGet>(
            &cast.hospital,
            &GetRelation {
                relation: rel.relation,
            },
        )
        .await;
    assert_eq!(got.state, RelationState::Active);
    assert_eq!(got.reason, None);
    // A change to a distributor not authorised for the hospital's area.
    let e = w
        .err::<ChangeRequest>(
            &cast.hospital,
            &RequestChange {
                period: cast.period,
                hospital: None,
                national_code: code(P1),
                from_distributor: cast.d3.org,
                to_distributor: cast.d1.org,
                effective_from: day("2024-09-01"),
                reason: "更换".into(),
            },
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("to_distributor"));
    assert_eq!(w.outbox_count().await, n);
}

#[tokio::test]
async fn demo_loads_once_after_the_agreements_demo_is_projected() {
    use vbp_contracts::agreements::{
        OrgRecord, OrgRegistered, PeriodOpened, ProjectId, SupplyItem,
    };
    use vbp_distribution::demo;
    use vbp_kernel::{Money, OrgId, OrgKind};

    let w = World::start().await;
    let op = operator();
    let e = w.err::<DemoLoad>(&op, &LoadDemo {}).await;
    assert_eq!(e.0.code, "projection_pending");
    let e = w
        .err::<DemoLoad>(
            &common::actor(OrgKind::Hospital, OrgId::new(), "210902"),
            &LoadDemo {},
        )
        .await;
    assert_eq!(e.0.status, 403);

    let orgs: &[(&str, OrgKind, &str)] = &[
        (demo::SHENYANG_HOSPITAL, OrgKind::Hospital, "210102"),
        (demo::FUXIN_HOSPITAL, OrgKind::Hospital, "210902"),
        (demo::COUNTY_HOSPITAL, OrgKind::Hospital, "210922"),
        (demo::MANUFACTURER_A, OrgKind::Manufacturer, "330100"),
        (demo::MANUFACTURER_B, OrgKind::Manufacturer, "310100"),
        (demo::DISTRIBUTOR_SHENYANG, OrgKind::Distributor, "210100"),
        (demo::DISTRIBUTOR_FUXIN, OrgKind::Distributor, "210900"),
    ];
    for (id, kind, region) in orgs {
        w.publish(
            EventId::new(),
            &OrgRegistered {
                record: OrgRecord {
                    org: id.parse().unwrap(),
                    kind: *kind,
                    name: format!("demo {id}"),
                    region: region.parse().unwrap(),
                    nhsa_code: None,
                    level: None,
                    uscc: None,
                    is_manufacturer: *kind == OrgKind::Manufacturer,
                    is_distributor: *kind == OrgKind::Distributor,
                    acts_for: vec![],
                    active: true,
                    revision: 1,
                },
                registered_at: at("2024-07-01T00:00:00Z"),
            },
        )
        .await;
    }
    let period = demo::PERIOD_2.parse().unwrap();
    let project = ProjectId::new();
    w.publish(
        EventId::new(),
        &PeriodOpened {
            period,
            project,
            project_code: "ZJHCCG-2022-01".into(),
            number: 2,
            starts_at: at("2024-08-01T00:00:00+08:00"),
            ends_at: at("2025-08-01T00:00:00+08:00"),
            paper_deadline: None,
            carried_over_from: None,
            opened_at: at("2024-07-31T00:00:00+08:00"),
        },
    )
    .await;
    let items = demo::A_PRODUCTS
        .iter()
        .map(|c| (c, demo::MANUFACTURER_A))
        .chain(demo::B_PRODUCTS.iter().map(|c| (c, demo::MANUFACTURER_B)))
        .map(|(c, m)| SupplyItem {
            national_code: code(c),
            generic_name: "冠脉导引导管".into(),
            spec_model: "6F".into(),
            unit: "根".into(),
            manufacturer: m.parse().unwrap(),
            manufacturer_name: "demo".into(),
            winning_price_fen: Money::from_fen(72_000),
            product_group: "G1".into(),
        })
        .collect();
    w.publish(
        EventId::new(),
        &SupplyListPublished {
            period,
            project,
            project_code: "ZJHCCG-2022-01".into(),
            period_number: 2,
            starts_at: at("2024-08-01T00:00:00+08:00"),
            ends_at: at("2025-08-01T00:00:00+08:00"),
            revision: 1,
            items,
            published_at: at("2024-07-31T00:00:00+08:00"),
        },
    )
    .await;
    w.wait_count("SELECT count(*) FROM supply_items", 6).await;
    w.wait_count("SELECT count(*) FROM orgs", 7).await;

    assert!(w.ok::<DemoLoad>(&op, &LoadDemo {}).await.created);
    let outbox = w.outbox_count().await;
    assert!(!w.ok::<DemoLoad>(&op, &LoadDemo {}).await.created);
    assert_eq!(w.outbox_count().await, outbox);
    assert_eq!(
        w.count("SELECT count(*) FROM authorisations WHERE state = 'confirmed'")
            .await,
        demo::AUTHORISATIONS.len() as i64
    );
    assert_eq!(
        w.count("SELECT count(*) FROM relations WHERE state = 'active'")
            .await,
        demo::RELATIONS.len() as i64
    );
    assert_eq!(
        w.events("distribution.relation.activated").await.len(),
        demo::RELATIONS.len()
    );
    let county = common::actor(
        OrgKind::Hospital,
        demo::COUNTY_HOSPITAL.parse().unwrap(),
        "210922",
    );
    let got = who(&w, &county, &county, demo::A_PRODUCTS[0], "2024-08-02").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].distributor, demo::DISTRIBUTOR_FUXIN.parse().unwrap());
    let remote = w.ok::<RemoteAreaListOp>(&op, &ListRemoteAreas {}).await;
    assert_eq!(remote.items.len(), 1);
}
