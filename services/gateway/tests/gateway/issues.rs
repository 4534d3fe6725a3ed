//! The issue routes against the real issues service: the working-day
//! deadline preview across the 2026 Spring Festival, and who may file.

use chrono::{DateTime, Utc};
use serde_json::json;
use vbp_contracts::Service;
use vbp_kernel::OrgKind;

use crate::common::{Harness, json_ok, problem};

#[tokio::test]
async fn the_deadline_preview_counts_working_days_across_the_spring_festival() {
    let h = Harness::start().await;
    h.start_backend(Service::Issues, vbp_issues::run).await;
    let hospital = h.token(OrgKind::Hospital);
    let preview = json_ok(
        h.get(
            "/api/v1/issues/deadline-preview?dispatched_at=2026-02-12T10:00:00%2B08:00",
            &hospital,
        )
        .await,
    )
    .await;
    let due = |field: &str| {
        preview[field]
            .as_str()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
            .unwrap_or_else(|| panic!("{field} in {preview}"))
    };
    // 2/13 Fri, 2/14 make-up Sat, 2/15–2/23 holidays, 2/24 Tue: the end of 2/24.
    assert_eq!(
        due("enterprise_due_at"),
        "2026-02-25T00:00:00+08:00"
            .parse::<DateTime<Utc>>()
            .unwrap()
    );
    assert_eq!(preview["enterprise_last_day"], "2026-02-24");

    let bad = problem(
        h.get(
            "/api/v1/issues/deadline-preview?dispatched_at=yesterday",
            &hospital,
        )
        .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "dispatched_at");
    let manufacturer = h.token(OrgKind::Manufacturer);
    problem(
        h.post("/api/v1/issues", &manufacturer, &json!({})).await,
        403,
    )
    .await;
}
