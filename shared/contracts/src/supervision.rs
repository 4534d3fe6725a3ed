//! The supervision service's contract (Guigang 2024, Fuxin 2020, Hunan 2024):
//! weekly progress monitoring, monthly reminders and quarterly notices to
//! hospitals, the annual assessment, credit records of enterprises
//! (医药价格和招采信用评价) with rectification deadlines and escalation, and
//! findings detected from delivery data (selective delivery, stopping after
//! the agreed volume).
//!
//! Subjects: `{ns}.evt.supervision.{aggregate}.{event}`. Consumers ignore
//! unknown fields; within version 1 fields are only added. Ratios are basis
//! points (10000 = 100 %).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{EventId, Money, NationalCode, OrgId, RegionCode};

use crate::agreements::PeriodId;
use crate::event::Event;
use crate::issues::IssueId;
use crate::page::{default_page, default_page_size};
use crate::service::Service;

pub use crate::page::Page;

vbp_kernel::define_id! {
    /// One generated reminder or notice (督办事项).
    pub WorkItemId
}

vbp_kernel::define_id! {
    /// One credit record (信用记录) of an enterprise.
    pub CreditRecordId
}

vbp_kernel::define_id! {
    /// One violation detected from delivery data.
    pub FindingId
}

/// Monthly reminder (每月提醒) or quarterly notice (每季度通报或约谈).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkItemKind {
    MonthlyReminder,
    QuarterlyNotice,
}

/// Why a hospital is reminded or named in a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkItemReason {
    /// 采购进度缓慢: accepted share of the agreed volume below time progress.
    SlowProgress,
    /// 网采率低: online share of purchases below the target.
    LowOnlineRate,
    /// 不按要求参加集中带量采购: no agreed volume in a running period.
    NotParticipating,
    /// 不如实报量: reported-but-not-used or used-but-not-reported.
    FalseVolumeReport,
    /// 结算率低: paid share of what fell due below the target.
    LowSettlementRate,
}

/// What a credit record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    /// 线下销售
    OfflineSales,
    /// 供应不足 / 断供
    ShortSupply,
    /// 拒绝配送偏远地区
    RefusingRemoteAreas,
    /// 选择性配送
    SelectiveDelivery,
    /// 同类问题反复发生
    RepeatedIssues,
    /// 完成约定采购量后停止供应
    StoppingAfterAgreedVolume,
    /// 恶意涨价
    MaliciousPriceRise,
}

/// Where a credit record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditState {
    /// Waiting for rectification before `rectify_due_at`.
    Open,
    /// The bureau confirmed the rectification.
    Rectified,
    /// Closed by the bureau without rectification (e.g. unfounded).
    Closed,
}

/// Who started a credit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditOrigin {
    /// Filed by a bureau.
    Bureau,
    /// Filed from a finding or a repeated-issue signal.
    Detection,
}

/// What detection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A distributor serves some hospitals of an area while refusing or
    /// delaying others.
    SelectiveDelivery,
    /// Deliveries to a hospital stopped once its agreed volume was met,
    /// while the period runs.
    StopAfterVolume,
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkItemGenerated {
    pub item: WorkItemId,
    pub kind: WorkItemKind,
    pub reason: WorkItemReason,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    /// `2026-03` for a month, `2026Q1` for a quarter.
    pub term: String,
    pub detail: String,
    pub generated_at: DateTime<Utc>,
}

impl Event for WorkItemGenerated {
    const SERVICE: Service = Service::Supervision;
    const AGGREGATE: &'static str = "work_item";
    const NAME: &'static str = "generated";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreditRecordFiled {
    pub record: CreditRecordId,
    pub enterprise: OrgId,
    pub kind: CreditKind,
    pub origin: CreditOrigin,
    pub region: RegionCode,
    pub level: u32,
    pub level_name: String,
    pub rectify_due_at: DateTime<Utc>,
    /// Ids of the events that caused the record.
    pub source_events: Vec<EventId>,
    pub filed_at: DateTime<Utc>,
}

impl Event for CreditRecordFiled {
    const SERVICE: Service = Service::Supervision;
    const AGGREGATE: &'static str = "credit_record";
    const NAME: &'static str = "filed";
}

/// Not rectified by the deadline: moved one configured level up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreditRecordEscalated {
    pub record: CreditRecordId,
    pub enterprise: OrgId,
    pub region: RegionCode,
    pub from_level: u32,
    pub level: u32,
    pub level_name: String,
    /// The next deadline; none at the last level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectify_due_at: Option<DateTime<Utc>>,
    pub escalated_at: DateTime<Utc>,
}

impl Event for CreditRecordEscalated {
    const SERVICE: Service = Service::Supervision;
    const AGGREGATE: &'static str = "credit_record";
    const NAME: &'static str = "escalated";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreditRecordRectified {
    pub record: CreditRecordId,
    pub enterprise: OrgId,
    pub region: RegionCode,
    pub level: u32,
    pub note: String,
    pub rectified_at: DateTime<Utc>,
}

impl Event for CreditRecordRectified {
    const SERVICE: Service = Service::Supervision;
    const AGGREGATE: &'static str = "credit_record";
    const NAME: &'static str = "rectified";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreditRecordClosed {
    pub record: CreditRecordId,
    pub enterprise: OrgId,
    pub region: RegionCode,
    pub reason: String,
    pub closed_at: DateTime<Utc>,
}

impl Event for CreditRecordClosed {
    const SERVICE: Service = Service::Supervision;
    const AGGREGATE: &'static str = "credit_record";
    const NAME: &'static str = "closed";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FindingDetected {
    pub finding: FindingId,
    pub kind: FindingKind,
    /// The distributor whose deliveries the finding is about.
    pub enterprise: OrgId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    pub detail: String,
    pub source_events: Vec<EventId>,
    pub detected_at: DateTime<Utc>,
}

impl Event for FindingDetected {
    const SERVICE: Service = Service::Supervision;
    const AGGREGATE: &'static str = "finding";
    const NAME: &'static str = "detected";
}

/// The finding was filed in issue direct reporting on the hospital's behalf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FindingIssueFiled {
    pub finding: FindingId,
    pub issue: IssueId,
    pub filed_at: DateTime<Utc>,
}

impl Event for FindingIssueFiled {
    const SERVICE: Service = Service::Supervision;
    const AGGREGATE: &'static str = "finding";
    const NAME: &'static str = "issue_filed";
}

/// `(vbp-type, schema)` of every event of this service.
pub fn event_schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        (
            "supervision.work_item.generated",
            schemars::schema_for!(WorkItemGenerated),
        ),
        (
            "supervision.credit_record.filed",
            schemars::schema_for!(CreditRecordFiled),
        ),
        (
            "supervision.credit_record.escalated",
            schemars::schema_for!(CreditRecordEscalated),
        ),
        (
            "supervision.credit_record.rectified",
            schemars::schema_for!(CreditRecordRectified),
        ),
        (
            "supervision.credit_record.closed",
            schemars::schema_for!(CreditRecordClosed),
        ),
        (
            "supervision.finding.detected",
            schemars::schema_for!(FindingDetected),
        ),
        (
            "supervision.finding.issue_filed",
            schemars::schema_for!(FindingIssueFiled),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------

/// How weekly progress is grouped.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProgressGrouping {
    #[default]
    Hospital,
    /// By the hospital's region (county, or city without counties).
    Region,
}

/// Progress at the end of one week (Monday 00:00 to Monday 00:00 Beijing),
/// or now if the week is not over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WeeklyProgressQuery {
    /// Any day of the week; the current week when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub week_of: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
    #[serde(default)]
    pub by: ProgressGrouping,
}

/// One hospital × period, or one region × period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WeeklyProgressRow {
    /// Hospital id or region code.
    pub key: String,
    pub name: String,
    pub region: RegionCode,
    pub period: PeriodId,
    pub hospitals: i64,
    /// Hospitals below time progress.
    pub slow_hospitals: i64,
    pub agreed_quantity: i64,
    pub accepted_quantity: i64,
    pub agreed_amount_fen: Money,
    pub accepted_amount_fen: Money,
    /// accepted ÷ agreed quantity.
    pub progress_bp: i64,
    /// Elapsed share of the period at `as_of` (序时进度).
    pub time_progress_bp: i64,
    /// `progress_bp` below `time_progress_bp`.
    pub slow: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WeeklyProgress {
    /// Monday of the week (Beijing).
    pub week_start: NaiveDate,
    pub as_of: DateTime<Utc>,
    pub by: ProgressGrouping,
    pub rows: Vec<WeeklyProgressRow>,
}

/// Generates the reminders of a month or the notices of a quarter for the
/// caller's region (idempotent: an item already generated is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GenerateWorkItems {
    pub kind: WorkItemKind,
    pub year: i32,
    /// 1 to 12, for monthly reminders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<u32>,
    /// 1 to 4, for quarterly notices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarter: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkItemView {
    pub item: WorkItemId,
    pub kind: WorkItemKind,
    pub reason: WorkItemReason,
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub term: String,
    /// The measured ratio, when the reason is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_bp: Option<i64>,
    /// The threshold it was measured against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_bp: Option<i64>,
    pub detail: String,
    pub generated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkItemList {
    pub items: Vec<WorkItemView>,
}

/// Generated items visible to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListWorkItems {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkItemKind>,
    /// `2026-03` or `2026Q1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// The items of one term as `.xlsx`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportWorkItems {
    /// `2026-03` or `2026Q1`.
    pub term: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AnnualAssessmentQuery {
    pub year: i32,
}

/// One hospital's figures for the annual assessment (年度考核).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AssessmentRow {
    pub hospital: OrgId,
    pub name: String,
    pub region: RegionCode,
    pub agreed_quantity: i64,
    /// Accepted within the year.
    pub accepted_quantity: i64,
    pub accepted_amount_fen: Money,
    /// Accepted ÷ agreed of the periods running in the year.
    pub completion_bp: i64,
    pub offline_amount_fen: Money,
    /// Online ÷ (online + declared offline); none without purchases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_rate_bp: Option<i64>,
    pub due_amount_fen: Money,
    pub paid_amount_fen: Money,
    /// Paid ÷ due of what fell due in the year; none when nothing fell due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_rate_bp: Option<i64>,
    /// Paid by the deadline ÷ due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timely_rate_bp: Option<i64>,
    pub reminders: i64,
    pub notices: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AnnualAssessment {
    pub year: i32,
    pub rows: Vec<AssessmentRow>,
}

/// A bureau files a credit record against an enterprise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileCreditRecord {
    pub enterprise: OrgId,
    pub kind: CreditKind,
    pub description: String,
    /// Ids of the events the record rests on (orders, issues, ...).
    #[serde(default)]
    pub source_events: Vec<EventId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetCreditRecord {
    pub record: CreditRecordId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListCreditRecords {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CreditState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise: Option<OrgId>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// The bureau confirms the enterprise rectified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RectifyCreditRecord {
    pub record: CreditRecordId,
    pub note: String,
}

/// The bureau closes a record without rectification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CloseCreditRecord {
    pub record: CreditRecordId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreditHistoryEntry {
    pub action: String,
    pub actor: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreditRecordView {
    pub record: CreditRecordId,
    pub enterprise: OrgId,
    pub enterprise_name: String,
    pub kind: CreditKind,
    pub origin: CreditOrigin,
    pub state: CreditState,
    /// The region the record belongs to (filing bureau, or the hospital's).
    pub region: RegionCode,
    pub description: String,
    pub level: u32,
    pub level_name: String,
    /// Deadline of the current level; none once rectified, closed, or at the
    /// last level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectify_due_at: Option<DateTime<Utc>>,
    pub source_events: Vec<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<FindingId>,
    pub filed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    pub history: Vec<CreditHistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListFindings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FindingKind>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FindingView {
    pub finding: FindingId,
    pub kind: FindingKind,
    pub enterprise: OrgId,
    pub enterprise_name: String,
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    pub detail: String,
    pub source_events: Vec<EventId>,
    pub detected_at: DateTime<Utc>,
    /// The issue filed for it, once filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<IssueId>,
    /// Why filing the issue was refused, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_record: Option<CreditRecordId>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetThresholds {}

/// The configured thresholds, as the service applies them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Thresholds {
    pub slow_progress_tolerance_bp: i64,
    pub online_rate_min_bp: i64,
    pub settlement_rate_min_bp: i64,
    pub false_report_progress_share_bp: i64,
    pub false_report_after_bp: i64,
    pub rectify_working_days: u32,
    pub credit_levels: Vec<String>,
    pub selective_window_days: u32,
    pub selective_min_served: i64,
    pub delivery_delay_days: u32,
    pub file_issues: bool,
    pub file_credit_records: bool,
    pub auto_generate: bool,
}

crate::rpc_operations! { Service::Supervision, "supervision";
    /// Weekly progress per hospital or region, scoped by actor.
    ProgressWeekly = "progress_weekly" (WeeklyProgressQuery) -> WeeklyProgress;
    /// Generates a month's reminders or a quarter's notices in the caller's region.
    WorkItemsGenerate = "work_items_generate" (GenerateWorkItems) -> WorkItemList;
    /// Generated reminders and notices, scoped by actor.
    WorkItemsList = "work_items_list" (ListWorkItems) -> Page<WorkItemView>;
    /// One term's reminders or notices as `.xlsx`.
    WorkItemsExport = "work_items_export" (ExportWorkItems) -> crate::files::ExportedFile;
    /// Annual assessment figures per hospital, scoped by actor.
    Assessment = "assessment" (AnnualAssessmentQuery) -> AnnualAssessment;
    /// A bureau files a credit record.
    CreditFile = "credit_file" (FileCreditRecord) -> CreditRecordView;
    /// One credit record (scoped by actor).
    CreditGet = "credit_get" (GetCreditRecord) -> CreditRecordView;
    /// Credit records in the actor's scope.
    CreditList = "credit_list" (ListCreditRecords) -> Page<CreditRecordView>;
    /// The bureau confirms rectification.
    CreditRectify = "credit_rectify" (RectifyCreditRecord) -> CreditRecordView;
    /// The bureau closes a record.
    CreditClose = "credit_close" (CloseCreditRecord) -> CreditRecordView;
    /// Detected findings in the actor's scope.
    FindingsList = "findings_list" (ListFindings) -> Page<FindingView>;
    /// The configured thresholds.
    ThresholdsGet = "thresholds" (GetThresholds) -> Thresholds;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreements::testutil::assert_event;
    use crate::subjects::Namespace;

    #[test]
    fn subjects_and_types_follow_the_contract() {
        let ns = Namespace::new("ln").unwrap();
        assert_event::<WorkItemGenerated>(&ns, "supervision.work_item.generated");
        assert_event::<CreditRecordFiled>(&ns, "supervision.credit_record.filed");
        assert_event::<CreditRecordEscalated>(&ns, "supervision.credit_record.escalated");
        assert_event::<CreditRecordRectified>(&ns, "supervision.credit_record.rectified");
        assert_event::<CreditRecordClosed>(&ns, "supervision.credit_record.closed");
        assert_event::<FindingDetected>(&ns, "supervision.finding.detected");
        assert_event::<FindingIssueFiled>(&ns, "supervision.finding.issue_filed");
        assert_eq!(event_schemas().len(), 7);
        assert_eq!(
            serde_json::to_value(CreditKind::StoppingAfterAgreedVolume).unwrap(),
            "stopping_after_agreed_volume"
        );
    }
}
