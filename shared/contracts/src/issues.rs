//! Events of the issues service (集采问题直报, Jiangxi 2026): filing,
//! dispatch, enterprise response, bureau handling and escalation, feedback,
//! hospital confirmation, SLA overdue flags and the ledger's credit signals.
//!
//! Subjects: `{ns}.evt.issues.issue.{event}`. Consumers ignore unknown fields.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{NationalCode, OrgId, RegionCode};

use crate::event::Event;
use crate::page::{default_page, default_page_size};
use crate::service::Service;

pub use crate::page::Page;

vbp_kernel::define_id! {
    /// One direct report (直报).
    pub IssueId
}

vbp_kernel::define_id! {
    /// One evidence file (证明材料).
    pub EvidenceId
}

/// Content types an evidence file may have, each recognised by its leading
/// bytes: PDF `%PDF-`, JPEG `FF D8 FF`, PNG `89 50 4E 47 0D 0A 1A 0A`.
pub const EVIDENCE_CONTENT_TYPES: [&str; 3] = ["application/pdf", "image/jpeg", "image/png"];

/// The JetStream object-store bucket holding evidence files of namespace
/// `ns`. Files never travel inside an RPC message (NATS limits those to
/// 1 MiB by default): the edge streams them into this bucket and the service
/// verifies what it finds there.
pub fn evidence_bucket(ns: &crate::subjects::Namespace) -> String {
    format!("{ns}_issues_evidence")
}

/// The eight issue types of the notice.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IssueType {
    /// 供应不足
    InsufficientSupply,
    /// 配送不及时
    LateDelivery,
    /// 选择性配送
    SelectiveDelivery,
    /// 约定采购量完成后停止配送
    StoppedAfterAgreedVolume,
    /// 剂型规格不适宜
    UnsuitableSpec,
    /// 包装不合理
    UnreasonablePackaging,
    /// 批号印刷不清
    UnclearBatchPrinting,
    /// 沟通响应缺位
    NoResponse,
}

impl IssueType {
    /// Delivery-type issues are dispatched to the distributor(s) too.
    pub fn is_delivery(self) -> bool {
        matches!(
            self,
            IssueType::InsufficientSupply
                | IssueType::LateDelivery
                | IssueType::SelectiveDelivery
                | IssueType::StoppedAfterAgreedVolume
        )
    }
}

/// Why a party received an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecipientRole {
    Manufacturer,
    Distributor,
    Bureau,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Recipient {
    pub org: OrgId,
    pub role: RecipientRole,
}

/// The SLA stage a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssueStage {
    /// Enterprise response, 3 working days.
    EnterpriseResponse,
    /// City/county bureau handling, 7 working days.
    BureauHandling,
    /// Province handling after escalation, 10 working days.
    ProvinceHandling,
    /// Hospital confirmation, 30 days after feedback.
    HospitalConfirmation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueFiled {
    pub issue: IssueId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub product_name: String,
    pub spec: String,
    pub quantity: i64,
    pub issue_type: IssueType,
    pub occurred_at: DateTime<Utc>,
    pub impact_scope: String,
    pub statement: String,
    /// SHA-256 of each evidence file, hex.
    #[serde(default)]
    pub evidence_sha256: Vec<String>,
    pub filed_at: DateTime<Utc>,
}

impl Event for IssueFiled {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "filed";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueDispatched {
    pub issue: IssueId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub issue_type: IssueType,
    pub national_code: NationalCode,
    pub recipients: Vec<Recipient>,
    /// The territorial bureau's region (county where configured, else city).
    pub bureau_region: RegionCode,
    pub enterprise_due_at: DateTime<Utc>,
    pub dispatched_at: DateTime<Utc>,
}

impl Event for IssueDispatched {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "dispatched";
}

/// Cause categories; objective causes need a written statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    Capacity,
    RawMaterial,
    Logistics,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueResponded {
    pub issue: IssueId,
    pub enterprise: OrgId,
    pub cause_kind: CauseKind,
    pub cause: String,
    pub solution: String,
    pub completion_date: NaiveDate,
    pub on_time: bool,
    pub responded_at: DateTime<Utc>,
}

impl Event for IssueResponded {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "responded";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueEscalated {
    pub issue: IssueId,
    pub from_region: RegionCode,
    pub to_region: RegionCode,
    /// True when escalated by the overdue timer rather than by the bureau.
    pub automatic: bool,
    pub due_at: DateTime<Utc>,
    pub escalated_at: DateTime<Utc>,
}

impl Event for IssueEscalated {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "escalated";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueFeedbackGiven {
    pub issue: IssueId,
    pub bureau: OrgId,
    pub bureau_region: RegionCode,
    pub feedback: String,
    /// Counts as resolved at this instant unless the hospital acts first.
    pub auto_resolve_at: DateTime<Utc>,
    pub given_at: DateTime<Utc>,
}

impl Event for IssueFeedbackGiven {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "feedback_given";
}

/// The hospital confirmed the resolution (`resolved`), or the 30-day default
/// confirmation applied (`auto_resolved`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueResolved {
    pub issue: IssueId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub resolved_at: DateTime<Utc>,
}

impl Event for IssueResolved {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "confirmed";
}

/// The 30-day default confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueAutoResolved {
    pub issue: IssueId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub feedback_at: DateTime<Utc>,
    pub resolved_at: DateTime<Utc>,
}

impl Event for IssueAutoResolved {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "auto_resolved";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueReopened {
    pub issue: IssueId,
    pub hospital: OrgId,
    pub reason: String,
    pub reopened_at: DateTime<Utc>,
}

impl Event for IssueReopened {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "reopened";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueOverdue {
    pub issue: IssueId,
    pub stage: IssueStage,
    /// Who missed the deadline.
    pub party: OrgId,
    pub due_at: DateTime<Utc>,
    pub flagged_at: DateTime<Utc>,
}

impl Event for IssueOverdue {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "overdue";
}

/// Same enterprise and type at least N times in a window: input for credit
/// evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueRepeated {
    pub enterprise: OrgId,
    pub issue_type: IssueType,
    pub count: i64,
    pub window_days: i64,
    pub issues: Vec<IssueId>,
    pub detected_at: DateTime<Utc>,
}

impl Event for IssueRepeated {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "repeated";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueFalseReport {
    pub issue: IssueId,
    pub hospital: OrgId,
    pub bureau: OrgId,
    pub reason: String,
    /// Reports of this hospital marked false so far, this one included: the
    /// count its reminders go by.
    #[serde(default)]
    pub false_reports: i64,
    pub marked_at: DateTime<Utc>,
}

impl Event for IssueFalseReport {
    const SERVICE: Service = Service::Issues;
    const AGGREGATE: &'static str = "issue";
    const NAME: &'static str = "false_report";
}

/// `(vbp-type, schema)` of every event of this service.
pub fn event_schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("issues.issue.filed", schemars::schema_for!(IssueFiled)),
        (
            "issues.issue.dispatched",
            schemars::schema_for!(IssueDispatched),
        ),
        (
            "issues.issue.responded",
            schemars::schema_for!(IssueResponded),
        ),
        (
            "issues.issue.escalated",
            schemars::schema_for!(IssueEscalated),
        ),
        (
            "issues.issue.feedback_given",
            schemars::schema_for!(IssueFeedbackGiven),
        ),
        (
            "issues.issue.confirmed",
            schemars::schema_for!(IssueResolved),
        ),
        (
            "issues.issue.auto_resolved",
            schemars::schema_for!(IssueAutoResolved),
        ),
        (
            "issues.issue.reopened",
            schemars::schema_for!(IssueReopened),
        ),
        ("issues.issue.overdue", schemars::schema_for!(IssueOverdue)),
        (
            "issues.issue.repeated",
            schemars::schema_for!(IssueRepeated),
        ),
        (
            "issues.issue.false_report",
            schemars::schema_for!(IssueFalseReport),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------

/// Where an issue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssueState {
    /// Waiting for the enterprise's response (the bureau clock runs too).
    Dispatched,
    /// The enterprise responded; the bureau handles.
    Responded,
    /// Escalated to the province, which handles.
    Escalated,
    /// Feedback given; waiting for the hospital to confirm or reopen.
    FeedbackGiven,
    /// Confirmed by the hospital or by the 30-day default.
    Resolved,
    /// The bureau found the report false; closed with a reminder to the
    /// hospital.
    FalseReport,
}

/// A hospital files a direct report. Name and spec come from the supply
/// list; evidence files are uploaded first (`POST /issues/evidence`) and
/// named here by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileIssue {
    pub national_code: NationalCode,
    #[schemars(range(min = 1, max = crate::ingest::MAX_LINE_QUANTITY))]
    pub quantity: i64,
    pub issue_type: IssueType,
    pub occurred_at: DateTime<Utc>,
    pub impact_scope: String,
    pub statement: String,
    /// The statement bears the hospital's seal (盖章).
    #[serde(default)]
    pub statement_sealed: bool,
    /// Evidence files this hospital uploaded and has not attached elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceId>,
}

/// Asks for a place to upload one evidence file. The edge calls this before
/// reading the file, so a wrong name or type is refused before any byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BeginEvidence {
    pub file_name: String,
    /// One of `application/pdf`, `image/jpeg`, `image/png`.
    pub content_type: String,
}

/// Where the edge writes the file, and the most bytes it may hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvidenceSlot {
    pub object: String,
    pub max_bytes: u64,
}

/// Registers a file written to its slot; the service reads it back and
/// checks size, type (from its leading bytes) and computes its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UploadEvidence {
    pub object: String,
    pub file_name: String,
    pub content_type: String,
    /// The file bears the hospital's seal (盖章).
    #[serde(default)]
    pub sealed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetEvidence {
    pub evidence: EvidenceId,
}

/// One stored evidence file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvidenceView {
    pub evidence: EvidenceId,
    /// The issue it is attached to; none until filed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<IssueId>,
    pub file_name: String,
    /// Detected from the leading bytes; equal to the declared type.
    pub content_type: String,
    pub size_bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    pub sealed: bool,
    pub uploaded_by: OrgId,
    pub uploader: String,
    pub uploaded_at: DateTime<Utc>,
    /// Object name in the evidence bucket.
    pub object: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetIssue {
    pub issue: IssueId,
}

/// Issues the caller may see, oldest filed first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListIssues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<IssueState>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// The enterprise's response: cause, solution, completion date; a written
/// statement when the cause is capacity, raw material or logistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RespondIssue {
    pub issue: IssueId,
    pub cause_kind: CauseKind,
    pub cause: String,
    pub solution: String,
    pub completion_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_statement: Option<String>,
}

/// The territorial bureau escalates to the province.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EscalateIssue {
    pub issue: IssueId,
    pub reason: String,
}

/// The handling bureau (territorial, or the province after escalation)
/// gives feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GiveFeedback {
    pub issue: IssueId,
    pub feedback: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfirmIssue {
    pub issue: IssueId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReopenIssue {
    pub issue: IssueId,
    pub reason: String,
}

/// The bureau handling the issue finds the report false (虚假上报).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MarkFalseReport {
    pub issue: IssueId,
    pub reason: String,
}

/// What the caller must do next, soonest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkListQuery {}

/// One thing due: the stage the caller owes and when it is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkItem {
    pub issue: IssueId,
    pub stage: IssueStage,
    pub due_at: DateTime<Utc>,
    /// Already past due at the time of asking.
    pub overdue: bool,
    pub state: IssueState,
    pub hospital: OrgId,
    pub national_code: NationalCode,
    pub product_name: String,
    pub issue_type: IssueType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkList {
    pub items: Vec<WorkItem>,
}

/// One audited transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub action: String,
    pub actor: String,
    pub org: OrgId,
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueView {
    pub issue: IssueId,
    pub state: IssueState,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub product_name: String,
    pub spec: String,
    pub quantity: i64,
    pub issue_type: IssueType,
    pub occurred_at: DateTime<Utc>,
    pub impact_scope: String,
    pub statement: String,
    pub statement_sealed: bool,
    pub evidence: Vec<EvidenceView>,
    pub recipients: Vec<Recipient>,
    pub bureau_region: RegionCode,
    pub filed_at: DateTime<Utc>,
    pub enterprise_due_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responded_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_on_time: Option<bool>,
    /// Due time of the current handling stage (bureau or province).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handling_due_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province_region: Option<RegionCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resolve_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Stages flagged overdue.
    pub overdue: Vec<IssueStage>,
    pub audit: Vec<AuditEntry>,
}

/// What-if: the due instants of each stage for a dispatch at `dispatched_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PreviewDeadlines {
    pub dispatched_at: DateTime<Utc>,
}

/// Each due instant is exclusive (the start of the Beijing day after the
/// last allowed day); `*_last_day` is that last day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeadlinePreview {
    pub dispatched_at: DateTime<Utc>,
    pub enterprise_due_at: DateTime<Utc>,
    pub enterprise_last_day: NaiveDate,
    pub bureau_due_at: DateTime<Utc>,
    pub bureau_last_day: NaiveDate,
    /// Province handling if escalated at the bureau deadline.
    pub province_due_at: DateTime<Utc>,
    pub province_last_day: NaiveDate,
}

/// How the ledger groups issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerGrouping {
    /// By manufacturer (the responsible enterprise).
    Enterprise,
    Hospital,
    /// By the hospital's region.
    Region,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerQuery {
    pub by: LedgerGrouping,
    /// Only issues filed at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Only issues filed before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
}

/// The quarterly ledger report (季度台账) as `.xlsx`: issues filed in the
/// quarter (Beijing time), by enterprise, hospital and region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerExport {
    pub year: i32,
    /// 1 to 4.
    pub quarter: u32,
}

/// One ledger row (台账). Rates are basis points of `filed` (0 when none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerRow {
    /// Org id or region code.
    pub key: String,
    /// Organisation name (empty for a region or an unknown org).
    pub name: String,
    pub filed: i64,
    pub responded: i64,
    pub responded_on_time: i64,
    pub resolved: i64,
    pub response_rate_bp: i64,
    pub resolution_rate_bp: i64,
    pub overdue_enterprise: i64,
    pub overdue_bureau: i64,
    pub overdue_province: i64,
    /// Reports marked false by a bureau.
    pub false_reports: i64,
    /// Mean minutes from filing to the enterprise response (none when no
    /// response yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_response_minutes: Option<i64>,
    /// Mean minutes from filing to feedback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_feedback_minutes: Option<i64>,
    /// Mean minutes from filing to resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_resolution_minutes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerReport {
    pub by: LedgerGrouping,
    pub rows: Vec<LedgerRow>,
}

crate::rpc_operations! { Service::Issues, "issues";
    /// A hospital files a direct report; auto-dispatched in the same transaction.
    IssueFile = "issue_file" (FileIssue) -> IssueView;
    /// One issue (scoped by actor).
    IssueGet = "issue_get" (GetIssue) -> IssueView;
    /// Issues in the actor's scope.
    IssueListOp = "issue_list" (ListIssues) -> Page<IssueView>;
    /// An enterprise recipient responds.
    IssueRespond = "issue_respond" (RespondIssue) -> IssueView;
    /// The territorial bureau escalates to the province.
    IssueEscalate = "issue_escalate" (EscalateIssue) -> IssueView;
    /// The handling bureau gives feedback.
    IssueFeedback = "issue_feedback" (GiveFeedback) -> IssueView;
    /// The hospital confirms the resolution.
    IssueConfirm = "issue_confirm" (ConfirmIssue) -> IssueView;
    /// The hospital reopens after feedback.
    IssueReopen = "issue_reopen" (ReopenIssue) -> IssueView;
    /// Due instants of each stage for a given dispatch time.
    DeadlinePreviewOp = "deadline_preview" (PreviewDeadlines) -> DeadlinePreview;
    /// Ledger (台账) per enterprise, hospital or region, scoped by actor.
    LedgerOp = "ledger" (LedgerQuery) -> LedgerReport;
    /// The quarterly ledger report as `.xlsx`, scoped by actor.
    LedgerExportOp = "ledger_export" (LedgerExport) -> crate::files::ExportedFile;
    /// The handling bureau marks a report false.
    IssueMarkFalse = "issue_mark_false" (MarkFalseReport) -> IssueView;
    /// What the caller must do next, soonest first.
    WorkListOp = "work_list" (WorkListQuery) -> WorkList;
    /// A hospital asks where to upload an evidence file.
    EvidenceBegin = "evidence_begin" (BeginEvidence) -> EvidenceSlot;
    /// Registers an uploaded evidence file after checking it.
    EvidenceUpload = "evidence_upload" (UploadEvidence) -> EvidenceView;
    /// One evidence file's metadata, scoped like its issue.
    EvidenceGet = "evidence_get" (GetEvidence) -> EvidenceView;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreements::testutil::{assert_event, props};
    use crate::subjects::Namespace;

    #[test]
    fn subjects_and_types_follow_the_contract() {
        let ns = Namespace::new("ln").unwrap();
        assert_event::<IssueFiled>(&ns, "issues.issue.filed");
        assert_event::<IssueDispatched>(&ns, "issues.issue.dispatched");
        assert_event::<IssueResponded>(&ns, "issues.issue.responded");
        assert_event::<IssueEscalated>(&ns, "issues.issue.escalated");
        assert_event::<IssueFeedbackGiven>(&ns, "issues.issue.feedback_given");
        assert_event::<IssueResolved>(&ns, "issues.issue.confirmed");
        assert_event::<IssueAutoResolved>(&ns, "issues.issue.auto_resolved");
        assert_event::<IssueReopened>(&ns, "issues.issue.reopened");
        assert_event::<IssueOverdue>(&ns, "issues.issue.overdue");
        assert_event::<IssueRepeated>(&ns, "issues.issue.repeated");
        assert_event::<IssueFalseReport>(&ns, "issues.issue.false_report");
        assert_eq!(event_schemas().len(), 11);
    }

    #[test]
    fn filing_and_dispatch_name_their_fields() {
        let p = props(&schemars::schema_for!(IssueFiled));
        for f in [
            "hospital",
            "national_code",
            "issue_type",
            "occurred_at",
            "quantity",
            "impact_scope",
        ] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
        let p = props(&schemars::schema_for!(IssueDispatched));
        for f in ["recipients", "bureau_region", "enterprise_due_at"] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
        assert!(IssueType::LateDelivery.is_delivery());
        assert!(!IssueType::UnclearBatchPrinting.is_delivery());
        assert_eq!(
            serde_json::to_value(IssueType::StoppedAfterAgreedVolume).unwrap(),
            "stopped_after_agreed_volume"
        );
    }
}
