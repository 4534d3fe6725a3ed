//! The agreements service's contract: the events other services project
//! (organisation directory, projects, periods, supply lists, agreed volumes,
//! tripartite agreements, progress) and its RPC operations, which the gateway
//! forwards as JSON to `{ns}.rpc.agreements.{operation}`.
//!
//! Subjects: `{ns}.evt.agreements.{aggregate}.{event}`. Snapshot events
//! (`org.*`, `supply_list.published`, `agreed_volume.set`,
//! `agreement.state_changed`) carry the whole current state plus a
//! monotonically increasing `revision`/`version`, so a projection keeps the
//! highest and ignores stale or duplicate deliveries. Consumers ignore
//! unknown fields; within version 1 fields are only added.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{BasisPoints, CodeKind, Money, NationalCode, OrgId, OrgKind, RegionCode};

use crate::event::Event;
use crate::service::Service;

vbp_kernel::define_id! {
    /// A procurement project (集采项目), e.g. ZJHCCG-2022-01.
    pub ProjectId
}

vbp_kernel::define_id! {
    /// One numbered agreement period (协议期) of a project.
    pub PeriodId
}

vbp_kernel::define_id! {
    /// A tripartite agreement (三方协议); stable across its versions.
    pub AgreementId
}

// ---------------------------------------------------------------------------
// Shared value types
// ---------------------------------------------------------------------------

/// 医院等级.
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
pub enum HospitalLevel {
    /// 三级
    Tertiary,
    /// 二级
    Secondary,
    /// 一级
    Primary,
    /// 未定级
    Ungraded,
}

impl HospitalLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            HospitalLevel::Tertiary => "tertiary",
            HospitalLevel::Secondary => "secondary",
            HospitalLevel::Primary => "primary",
            HospitalLevel::Ungraded => "ungraded",
        }
    }
}

/// An organisation as the directory knows it. Which optional fields are set
/// depends on `kind`: hospitals have `nhsa_code` (`H` + 6-digit region +
/// 5-digit serial) and `level`; manufacturers and distributors have `uscc`
/// (18-character unified social credit code) and the two role flags (an
/// enterprise may be both; `kind` is then `manufacturer`); integrators list
/// the hospitals they may act for in `acts_for`; bureaus have only a region,
/// which is their jurisdiction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrgRecord {
    pub org: OrgId,
    pub kind: OrgKind,
    pub name: String,
    pub region: RegionCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nhsa_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<HospitalLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uscc: Option<String>,
    #[serde(default)]
    pub is_manufacturer: bool,
    #[serde(default)]
    pub is_distributor: bool,
    #[serde(default)]
    pub acts_for: Vec<OrgId>,
    pub active: bool,
    /// 1 at registration, +1 per update.
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProductGroup {
    /// Short stable code, e.g. `G1`.
    pub code: String,
    pub name: String,
}

/// One winning product of a supply list (中选产品供应清单).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SupplyItem {
    pub national_code: NationalCode,
    /// 通用名
    pub generic_name: String,
    /// 规格型号
    pub spec_model: String,
    pub unit: String,
    pub manufacturer: OrgId,
    pub manufacturer_name: String,
    pub winning_price_fen: Money,
    pub product_group: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgreedVolumeLine {
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub quantity: i64,
    pub unit_price_fen: Money,
    /// quantity × unit price.
    pub amount_fen: Money,
}

/// Tripartite agreement states. `draft → hospital_confirmed →
/// manufacturer_confirmed → distributor_confirmed → effective`; any party may
/// reject a non-final version (`rejected`); an effective version is
/// `superseded` when an amendment of it takes effect.
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
pub enum AgreementState {
    Draft,
    HospitalConfirmed,
    ManufacturerConfirmed,
    DistributorConfirmed,
    Effective,
    Rejected,
    Superseded,
}

impl AgreementState {
    pub const ALL: [AgreementState; 7] = [
        AgreementState::Draft,
        AgreementState::HospitalConfirmed,
        AgreementState::ManufacturerConfirmed,
        AgreementState::DistributorConfirmed,
        AgreementState::Effective,
        AgreementState::Rejected,
        AgreementState::Superseded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AgreementState::Draft => "draft",
            AgreementState::HospitalConfirmed => "hospital_confirmed",
            AgreementState::ManufacturerConfirmed => "manufacturer_confirmed",
            AgreementState::DistributorConfirmed => "distributor_confirmed",
            AgreementState::Effective => "effective",
            AgreementState::Rejected => "rejected",
            AgreementState::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<AgreementState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgreementLine {
    pub national_code: NationalCode,
    pub product_group: String,
    pub quantity: i64,
    pub unit_price_fen: Money,
    /// quantity × unit price.
    pub amount_fen: Money,
}

/// Procurement progress class of a hospital × product × period, measured
/// against time progress (序时进度) at an instant.
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
pub enum ProgressClass {
    /// Nothing accepted yet.
    Zero,
    /// Below time progress.
    Slow,
    /// At or above time progress, below the agreed volume.
    Normal,
    /// Exactly the agreed volume.
    Completed,
    /// Beyond the agreed volume (valid, flagged).
    OverVolume,
}

impl ProgressClass {
    pub const ALL: [ProgressClass; 5] = [
        ProgressClass::Zero,
        ProgressClass::Slow,
        ProgressClass::Normal,
        ProgressClass::Completed,
        ProgressClass::OverVolume,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ProgressClass::Zero => "zero",
            ProgressClass::Slow => "slow",
            ProgressClass::Normal => "normal",
            ProgressClass::Completed => "completed",
            ProgressClass::OverVolume => "over_volume",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProgressLine {
    pub national_code: NationalCode,
    pub product_group: String,
    pub agreed_quantity: i64,
    pub accepted_quantity: i64,
    pub accepted_amount_fen: Money,
    /// accepted ÷ agreed in basis points (10000 = 100 %); absent without an
    /// agreed volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_bp: Option<BasisPoints>,
    pub class: ProgressClass,
}

/// What a supervision flag is about.
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
pub enum FlagKind {
    /// 用而不报: bought in the previous period, reported zero.
    UsedNotReported,
    /// 报而不用: reported, then bought less than the configured share.
    ReportedNotUsed,
    /// Purchases beyond the agreed volume (valid; for supervision).
    OverVolume,
    /// Purchases stopped after completion while the period runs (一刀切).
    SuddenStop,
    /// Below time progress.
    Slow,
}

impl FlagKind {
    pub const ALL: [FlagKind; 5] = [
        FlagKind::UsedNotReported,
        FlagKind::ReportedNotUsed,
        FlagKind::OverVolume,
        FlagKind::SuddenStop,
        FlagKind::Slow,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FlagKind::UsedNotReported => "used_not_reported",
            FlagKind::ReportedNotUsed => "reported_not_used",
            FlagKind::OverVolume => "over_volume",
            FlagKind::SuddenStop => "sudden_stop",
            FlagKind::Slow => "slow",
        }
    }

    pub fn parse(s: &str) -> Option<FlagKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// An organisation entered the directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrgRegistered {
    #[serde(flatten)]
    pub record: OrgRecord,
    pub registered_at: DateTime<Utc>,
}

impl Event for OrgRegistered {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "org";
    const NAME: &'static str = "registered";
}

/// An organisation changed; carries the whole record (keep the highest
/// `revision`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrgUpdated {
    #[serde(flatten)]
    pub record: OrgRecord,
    pub updated_at: DateTime<Utc>,
}

impl Event for OrgUpdated {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "org";
    const NAME: &'static str = "updated";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProjectRegistered {
    pub project: ProjectId,
    /// e.g. `ZJHCCG-2022-01`.
    pub code: String,
    pub name: String,
    /// The organising alliance, e.g. 浙江等16省(自治区)联盟.
    pub organiser: String,
    pub category: CodeKind,
    pub provinces: Vec<RegionCode>,
    pub product_groups: Vec<ProductGroup>,
    pub registered_at: DateTime<Utc>,
}

impl Event for ProjectRegistered {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "project";
    const NAME: &'static str = "registered";
}

/// A period opened. Its bounds are the half-open interval
/// `[starts_at, ends_at)`: "2024年8月1日零时—2025年7月31日24时" is
/// `[2024-08-01T00:00+08:00, 2025-08-01T00:00+08:00)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PeriodOpened {
    pub period: PeriodId,
    pub project: ProjectId,
    pub project_code: String,
    pub number: i32,
    pub starts_at: DateTime<Utc>,
    /// Exclusive.
    pub ends_at: DateTime<Utc>,
    /// Paper agreements must be signed before this instant (Liaoning:
    /// 2024-09-18T17:00+08:00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_deadline: Option<DateTime<Utc>>,
    /// The period whose supply list was carried over unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_over_from: Option<PeriodId>,
    pub opened_at: DateTime<Utc>,
}

impl Event for PeriodOpened {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "period";
    const NAME: &'static str = "opened";
}

/// A period's supply list was published; `items` is the complete list and
/// replaces any earlier revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SupplyListPublished {
    pub period: PeriodId,
    pub project: ProjectId,
    pub project_code: String,
    pub period_number: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub revision: i32,
    pub items: Vec<SupplyItem>,
    pub published_at: DateTime<Utc>,
}

impl Event for SupplyListPublished {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "supply_list";
    const NAME: &'static str = "published";
}

/// A hospital's agreed volume (协议采购量) for one product group of a period;
/// replaces earlier revisions. amount = Σ quantity × winning price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgreedVolumeSet {
    pub period: PeriodId,
    pub project: ProjectId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub product_group: String,
    pub lines: Vec<AgreedVolumeLine>,
    pub quantity: i64,
    pub amount_fen: Money,
    pub revision: i32,
    /// Why the bureau deviated from the report, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub set_at: DateTime<Utc>,
}

impl Event for AgreedVolumeSet {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "agreed_volume";
    const NAME: &'static str = "set";
}

/// A tripartite agreement version moved from `from` to `state`. Every
/// change carries the version's lines and amount; the prepayment service
/// acts on `effective` (and `superseded`, when an amendment replaces a
/// version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgreementStateChanged {
    pub agreement: AgreementId,
    pub version: i32,
    pub period: PeriodId,
    pub project: ProjectId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub manufacturer: OrgId,
    pub distributors: Vec<OrgId>,
    /// Absent when the version was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<AgreementState>,
    pub state: AgreementState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub lines: Vec<AgreementLine>,
    pub amount_fen: Money,
    /// The version this one amends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amends_version: Option<i32>,
    pub changed_at: DateTime<Utc>,
}

impl Event for AgreementStateChanged {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "agreement";
    const NAME: &'static str = "state_changed";
}

/// The paper agreement was signed (网下签订纸质版协议).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgreementPaperSigned {
    pub agreement: AgreementId,
    pub version: i32,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub signed_at: DateTime<Utc>,
    /// Hex SHA-256 of the scanned document.
    pub document_sha256: String,
    /// After the period's paper deadline.
    pub late: bool,
    pub recorded_at: DateTime<Utc>,
}

impl Event for AgreementPaperSigned {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "agreement";
    const NAME: &'static str = "paper_signed";
}

/// Weekly progress monitoring: one snapshot per hospital × period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProgressSnapshot {
    pub period: PeriodId,
    pub project: ProjectId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    /// Monday (Beijing) of the week the snapshot describes.
    pub week_start: NaiveDate,
    pub as_of: DateTime<Utc>,
    /// Elapsed share of the period at `as_of` (序时进度).
    pub time_progress_bp: BasisPoints,
    pub lines: Vec<ProgressLine>,
    pub agreed_amount_fen: Money,
    pub accepted_amount_fen: Money,
}

impl Event for ProgressSnapshot {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "progress";
    const NAME: &'static str = "weekly_snapshot";
}

/// A supervision flag was raised for a hospital.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlagRaised {
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub kind: FlagKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    pub detail: String,
    pub raised_at: DateTime<Utc>,
}

impl Event for FlagRaised {
    const SERVICE: Service = Service::Agreements;
    const AGGREGATE: &'static str = "flag";
    const NAME: &'static str = "raised";
}

/// `(vbp-type, schema)` of every event of this service.
pub fn event_schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        (
            "agreements.org.registered",
            schemars::schema_for!(OrgRegistered),
        ),
        ("agreements.org.updated", schemars::schema_for!(OrgUpdated)),
        (
            "agreements.project.registered",
            schemars::schema_for!(ProjectRegistered),
        ),
        (
            "agreements.period.opened",
            schemars::schema_for!(PeriodOpened),
        ),
        (
            "agreements.supply_list.published",
            schemars::schema_for!(SupplyListPublished),
        ),
        (
            "agreements.agreed_volume.set",
            schemars::schema_for!(AgreedVolumeSet),
        ),
        (
            "agreements.agreement.state_changed",
            schemars::schema_for!(AgreementStateChanged),
        ),
        (
            "agreements.agreement.paper_signed",
            schemars::schema_for!(AgreementPaperSigned),
        ),
        (
            "agreements.progress.weekly_snapshot",
            schemars::schema_for!(ProgressSnapshot),
        ),
        ("agreements.flag.raised", schemars::schema_for!(FlagRaised)),
    ]
}

// ---------------------------------------------------------------------------
// RPC: requests and responses
// ---------------------------------------------------------------------------

pub use crate::page::{MAX_PAGE_SIZE, Page};
use crate::page::{default_page, default_page_size};

/// Register an organisation. Province and city bureaus register orgs in
/// their region; operators anywhere. `id` may be given (directory import,
/// demo data) and is otherwise a new UUIDv7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegisterOrg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<OrgId>,
    pub kind: OrgKind,
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    pub region: RegionCode,
    /// Hospitals: NHSA institution code `H` + 6-digit region + 5-digit serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nhsa_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<HospitalLevel>,
    /// Enterprises: 18-character unified social credit code (check digit validated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uscc: Option<String>,
    #[serde(default)]
    pub is_manufacturer: bool,
    #[serde(default)]
    pub is_distributor: bool,
    /// Integrators: the hospitals they may publish for.
    #[serde(default)]
    pub acts_for: Vec<OrgId>,
}

/// Change an organisation; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpdateOrg {
    pub org: OrgId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<HospitalLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_manufacturer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_distributor: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acts_for: Option<Vec<OrgId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Optimistic concurrency: fail with 409 when the record moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrgView {
    #[serde(flatten)]
    pub record: OrgRecord,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetOrg {
    pub org: OrgId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListOrgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<OrgKind>,
    /// Only orgs in this region's subtree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    /// Substring of the name or code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// Register many organisations at once: all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportOrgs {
    pub rows: Vec<RegisterOrg>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportOrgsResult {
    pub imported: Vec<OrgId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegisterProject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ProjectId>,
    #[schemars(length(min = 1, max = 64))]
    pub code: String,
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    pub organiser: String,
    pub category: CodeKind,
    pub provinces: Vec<RegionCode>,
    pub product_groups: Vec<ProductGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProjectView {
    pub project: ProjectId,
    pub code: String,
    pub name: String,
    pub organiser: String,
    pub category: CodeKind,
    pub provinces: Vec<RegionCode>,
    pub product_groups: Vec<ProductGroup>,
    pub registered_at: DateTime<Utc>,
    pub periods: Vec<PeriodView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetProject {
    pub project: ProjectId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListProjects {
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// Open period `number` of a project. Bounds are given as Beijing business
/// dates: `first_day` 00:00 to `last_day` 24:00, stored as the half-open
/// interval `[first_day 00:00+08, last_day+1 00:00+08)`. With `carry_over`,
/// period `number − 1`'s published supply list becomes this period's
/// published list unchanged, in the same transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenPeriod {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<PeriodId>,
    pub project: ProjectId,
    #[schemars(range(min = 1, max = 99))]
    pub number: i32,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    pub carry_over: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PeriodView {
    pub period: PeriodId,
    pub project: ProjectId,
    pub project_code: String,
    pub number: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_deadline: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_over_from: Option<PeriodId>,
    /// Revision of the published supply list (0 = none yet).
    pub supply_list_revision: i32,
    pub volume_window_open: bool,
    pub opened_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetPeriod {
    pub period: PeriodId,
}

/// One supply-list row as a spreadsheet holds it: every cell is text and is
/// validated on import, so every bad cell is reported with its column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SupplyRow {
    /// 国家医保编码 (27 characters).
    #[serde(default)]
    pub national_code: String,
    /// 通用名
    #[serde(default)]
    pub generic_name: String,
    /// 规格型号
    #[serde(default)]
    pub spec_model: String,
    /// 单位
    #[serde(default)]
    pub unit: String,
    /// 生产企业统一社会信用代码 (must be a registered manufacturer).
    #[serde(default)]
    pub manufacturer_uscc: String,
    /// 中选价格(元), e.g. `720.00`.
    #[serde(default)]
    pub winning_price_yuan: String,
    /// 产品组 code of the project.
    #[serde(default)]
    pub product_group: String,
}

/// Replace the period's draft supply list with `rows`: all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportSupplyList {
    pub period: PeriodId,
    pub rows: Vec<SupplyRow>,
}

/// The same from a file: `.csv` (UTF-8, header row) or `.xlsx` (first sheet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportSupplyListFile {
    pub period: PeriodId,
    pub file_name: String,
    pub content_base64: String,
}

/// One rejected cell of an import. Rows are numbered as in the file (the
/// header is row 1, so data starts at row 2, unless an `.xlsx` sheet has
/// title rows above its header: rows are then still numbered as Excel shows
/// them); JSON rows likewise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportError {
    pub row: u32,
    /// The field the rule is about, e.g. `winning_price_yuan`.
    pub column: String,
    pub rule: String,
    /// The column's header as written in the file, e.g. `中选价格(元)`
    /// (file imports only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The cell as a spreadsheet names it, e.g. `F5` (file imports only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
}

/// The `details` of a rejected import (RPC error code `import_rejected`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportRejected {
    pub errors: Vec<ImportError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportSupplyListResult {
    pub period: PeriodId,
    pub rows: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PublishSupplyList {
    pub period: PeriodId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SupplyListStatus {
    Draft,
    Published,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetSupplyList {
    pub period: PeriodId,
    /// The draft instead of the published list.
    #[serde(default)]
    pub draft: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SupplyListView {
    pub period: PeriodId,
    pub status: SupplyListStatus,
    /// Published revision (0 for a draft never published).
    pub revision: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    pub items: Vec<SupplyItem>,
}

/// Export a period's supply list as `.xlsx` (the published list, or the
/// draft for list managers). The sheet's header row uses the import's
/// column names, so an exported file imports back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportSupplyList {
    pub period: PeriodId,
    #[serde(default)]
    pub draft: bool,
}

/// Export progress lines (hospital × product) of a period as `.xlsx`, with the
/// filters and scoping of `progress_query` (no paging: every visible line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportProgress {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ProgressClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
}

pub use crate::files::{ExportedFile, XLSX_CONTENT_TYPE};

/// Register organisations from a `.csv` or `.xlsx` file (first sheet, header
/// row matched by name), all or nothing, like `org_import`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportOrgsFile {
    pub file_name: String,
    pub content_base64: String,
}

/// Open (or re-open) the volume-report window of a period until `closes_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenVolumeWindow {
    pub period: PeriodId,
    pub closes_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CloseVolumeWindow {
    pub period: PeriodId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VolumeWindowView {
    pub period: PeriodId,
    pub open: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuantityLine {
    pub national_code: NationalCode,
    #[schemars(range(min = 0, max = 100_000_000))]
    pub quantity: i64,
}

/// A hospital's volume report (报量) for one product group; replaces its
/// earlier report while the window is open. `hospital` is the caller's own
/// org for hospitals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SubmitVolumeReport {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    pub product_group: String,
    pub lines: Vec<QuantityLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VolumeReportView {
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub product_group: String,
    pub lines: Vec<QuantityLine>,
    pub quantity: i64,
    pub reported_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListVolumeReports {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// Set a hospital's agreed volume for a product group. Without `lines`, the
/// hospital's volume report is taken as it is; with lines that differ from
/// the report, `reason` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SetAgreedVolume {
    pub period: PeriodId,
    pub hospital: OrgId,
    pub product_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<QuantityLine>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgreedVolumeView {
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub product_group: String,
    pub lines: Vec<AgreedVolumeLine>,
    pub quantity: i64,
    pub amount_fen: Money,
    pub revision: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub set_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListAgreedVolumes {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// Draft a tripartite agreement between a hospital, a winning manufacturer
/// and distributor(s). Without `lines`, they are the hospital's agreed
/// volumes of that manufacturer's products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreateAgreement {
    pub period: PeriodId,
    pub hospital: OrgId,
    pub manufacturer: OrgId,
    pub distributors: Vec<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<QuantityLine>>,
}

/// The caller's party confirms version `version` (hospital, then
/// manufacturer, then each distributor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfirmAgreement {
    pub agreement: AgreementId,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RejectAgreement {
    pub agreement: AgreementId,
    pub version: i32,
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
}

/// Amend an agreement: a new version (draft) with new lines and/or
/// distributors; the current version is kept and stays in force until the
/// new one is effective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AmendAgreement {
    pub agreement: AgreementId,
    /// The version being amended (must be the latest).
    pub version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<QuantityLine>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributors: Option<Vec<OrgId>>,
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
}

/// Record the paper agreement's signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecordPaperSigning {
    pub agreement: AgreementId,
    pub version: i32,
    pub signed_at: DateTime<Utc>,
    /// 64 hex digits.
    pub document_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetAgreement {
    pub agreement: AgreementId,
    /// Latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DistributorConfirmation {
    pub distributor: OrgId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaperSigning {
    pub signed_at: DateTime<Utc>,
    pub document_sha256: String,
    pub late: bool,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgreementView {
    pub agreement: AgreementId,
    pub version: i32,
    /// The highest version of this agreement.
    pub latest_version: i32,
    pub period: PeriodId,
    pub project: ProjectId,
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub manufacturer: OrgId,
    pub manufacturer_name: String,
    pub distributors: Vec<DistributorConfirmation>,
    pub state: AgreementState,
    pub lines: Vec<AgreementLine>,
    pub amount_fen: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital_confirmed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer_confirmed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amendment_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<PaperSigning>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListAgreements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AgreementState>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// Agreements (latest effective or pending versions) without a paper
/// signing record, for the period's paper deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaperDeadlineQuery {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UnsignedAgreement {
    pub agreement: AgreementId,
    pub version: i32,
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub manufacturer: OrgId,
    pub state: AgreementState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegionCount {
    pub region: RegionCode,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaperDeadlineReport {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    pub as_of: DateTime<Utc>,
    pub past_deadline: bool,
    /// Unsigned agreements, still within the deadline.
    pub pending: i64,
    /// Unsigned past the deadline (empty before it).
    pub overdue: Vec<UnsignedAgreement>,
    /// `overdue` counted per hospital region (county or city).
    pub overdue_by_region: Vec<RegionCount>,
}

/// Progress of hospital × product lines of a period at the service clock's
/// instant (or `as_of`, if given and not in the future).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueryProgress {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ProgressClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProgressRow {
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub product_group: String,
    pub manufacturer: OrgId,
    pub agreed_quantity: i64,
    pub accepted_quantity: i64,
    pub accepted_amount_fen: Money,
    /// Accepted beyond the agreed volume (counted, valid, flagged).
    pub over_volume_quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_bp: Option<BasisPoints>,
    pub class: ProgressClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accepted_at: Option<DateTime<Utc>>,
    /// Stopped buying after completion while the period runs.
    pub sudden_stop: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProgressReport {
    pub period: PeriodId,
    pub as_of: DateTime<Utc>,
    /// 序时进度 at `as_of`.
    pub time_progress_bp: BasisPoints,
    pub items: Vec<ProgressRow>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
}

/// Month-by-month purchases of a hospital against agreed ÷ months (按月均衡).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueryMonthlyBalance {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    pub national_code: NationalCode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MonthBalance {
    /// First day of the month (Beijing).
    pub month: NaiveDate,
    pub accepted_quantity: i64,
    /// agreed ÷ months of the period, rounded half-up.
    pub expected_quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MonthlyBalance {
    pub period: PeriodId,
    pub hospital: OrgId,
    pub national_code: NationalCode,
    pub agreed_quantity: i64,
    pub months: Vec<MonthBalance>,
}

/// Emit weekly progress snapshots for a period (operator or scheduler).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TakeProgressSnapshot {
    pub period: PeriodId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SnapshotTaken {
    pub period: PeriodId,
    pub week_start: NaiveDate,
    pub hospitals: i64,
}

/// Supervision flags of a period (computed at the service clock's instant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListFlags {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FlagKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlagView {
    pub kind: FlagKind,
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlagList {
    pub period: PeriodId,
    pub as_of: DateTime<Utc>,
    pub flags: Vec<FlagView>,
}

/// Load the Liaoning demo (idempotent; operators only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LoadDemo {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DemoLoaded {
    pub created: bool,
}

crate::rpc_operations! { Service::Agreements, "agreements";
    /// Register an organisation (bureau of the region, operator).
    OrgRegister = "org_register" (RegisterOrg) -> OrgView;
    /// Change an organisation (bureau of the region, operator).
    OrgUpdate = "org_update" (UpdateOrg) -> OrgView;
    OrgGet = "org_get" (GetOrg) -> OrgView;
    OrgList = "org_list" (ListOrgs) -> Page<OrgView>;
    /// Register many organisations, all or nothing.
    OrgImport = "org_import" (ImportOrgs) -> ImportOrgsResult;
    /// The same from a `.csv`/`.xlsx` file, all or nothing.
    OrgImportFile = "org_import_file" (ImportOrgsFile) -> ImportOrgsResult;
    /// Register a project (province bureau, operator).
    ProjectRegister = "project_register" (RegisterProject) -> ProjectView;
    ProjectGet = "project_get" (GetProject) -> ProjectView;
    ProjectList = "project_list" (ListProjects) -> Page<ProjectView>;
    /// Open a period, optionally carrying the previous list over.
    PeriodOpen = "period_open" (OpenPeriod) -> PeriodView;
    PeriodGet = "period_get" (GetPeriod) -> PeriodView;
    /// Replace the draft supply list (JSON rows), all or nothing.
    SupplyListImport = "supply_list_import" (ImportSupplyList) -> ImportSupplyListResult;
    /// Replace the draft supply list from a `.csv`/`.xlsx` file, all or nothing.
    SupplyListImportFile = "supply_list_import_file" (ImportSupplyListFile) -> ImportSupplyListResult;
    /// Publish the draft as the period's list (emits `supply_list.published`).
    SupplyListPublish = "supply_list_publish" (PublishSupplyList) -> SupplyListView;
    SupplyListGet = "supply_list_get" (GetSupplyList) -> SupplyListView;
    /// The supply list as an `.xlsx` file (base64), re-importable.
    SupplyListExport = "supply_list_export" (ExportSupplyList) -> ExportedFile;
    VolumeWindowOpen = "volume_window_open" (OpenVolumeWindow) -> VolumeWindowView;
    VolumeWindowClose = "volume_window_close" (CloseVolumeWindow) -> VolumeWindowView;
    VolumeReportSubmit = "volume_report_submit" (SubmitVolumeReport) -> VolumeReportView;
    VolumeReportList = "volume_report_list" (ListVolumeReports) -> Page<VolumeReportView>;
    AgreedVolumeSetOp = "agreed_volume_set" (SetAgreedVolume) -> AgreedVolumeView;
    AgreedVolumeList = "agreed_volume_list" (ListAgreedVolumes) -> Page<AgreedVolumeView>;
    AgreementCreate = "agreement_create" (CreateAgreement) -> AgreementView;
    AgreementConfirm = "agreement_confirm" (ConfirmAgreement) -> AgreementView;
    AgreementReject = "agreement_reject" (RejectAgreement) -> AgreementView;
    AgreementAmend = "agreement_amend" (AmendAgreement) -> AgreementView;
    AgreementPaperSign = "agreement_paper_sign" (RecordPaperSigning) -> AgreementView;
    AgreementGet = "agreement_get" (GetAgreement) -> AgreementView;
    AgreementList = "agreement_list" (ListAgreements) -> Page<AgreementView>;
    /// Unsigned paper agreements against the period's deadline, per region.
    AgreementPaperDeadline = "agreement_paper_deadline" (PaperDeadlineQuery) -> PaperDeadlineReport;
    ProgressQuery = "progress_query" (QueryProgress) -> ProgressReport;
    ProgressMonthly = "progress_monthly" (QueryMonthlyBalance) -> MonthlyBalance;
    /// Progress lines as an `.xlsx` file (base64), scoped like `progress_query`.
    ProgressExport = "progress_export" (ExportProgress) -> ExportedFile;
    /// Emit weekly snapshots (operator, scheduler).
    ProgressSnapshotOp = "progress_snapshot" (TakeProgressSnapshot) -> SnapshotTaken;
    FlagListOp = "flag_list" (ListFlags) -> FlagList;
    /// Load the Liaoning demo data (operator).
    DemoLoad = "demo_load" (LoadDemo) -> DemoLoaded;
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::event::Event;
    use crate::subjects::Namespace;

    /// The subject and `vbp-type` of `E` are as the contract says.
    pub fn assert_event<E: Event>(ns: &Namespace, event_type: &str) {
        assert_eq!(E::event_type(), event_type);
        assert_eq!(E::subject(ns), format!("{ns}.evt.{event_type}"));
        assert_eq!(E::VERSION, 1, "{event_type}");
    }

    /// The top-level property names of a schema.
    pub fn props(schema: &schemars::Schema) -> Vec<String> {
        schema.as_value()["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{assert_event, props};
    use super::*;
    use crate::subjects::Namespace;

    #[test]
    fn subjects_and_types_follow_the_contract() {
        let ns = Namespace::new("ln").unwrap();
        assert_event::<OrgRegistered>(&ns, "agreements.org.registered");
        assert_event::<OrgUpdated>(&ns, "agreements.org.updated");
        assert_event::<ProjectRegistered>(&ns, "agreements.project.registered");
        assert_event::<PeriodOpened>(&ns, "agreements.period.opened");
        assert_event::<SupplyListPublished>(&ns, "agreements.supply_list.published");
        assert_event::<AgreedVolumeSet>(&ns, "agreements.agreed_volume.set");
        assert_event::<AgreementStateChanged>(&ns, "agreements.agreement.state_changed");
        assert_event::<AgreementPaperSigned>(&ns, "agreements.agreement.paper_signed");
        assert_event::<ProgressSnapshot>(&ns, "agreements.progress.weekly_snapshot");
        assert_event::<FlagRaised>(&ns, "agreements.flag.raised");
        assert_eq!(event_schemas().len(), 10);
    }

    #[test]
    fn schemas_name_the_fields_projections_need() {
        let p = props(&schemars::schema_for!(OrgRegistered));
        for f in [
            "org",
            "kind",
            "name",
            "region",
            "nhsa_code",
            "level",
            "uscc",
            "is_manufacturer",
            "is_distributor",
            "acts_for",
            "revision",
        ] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
        let p = props(&schemars::schema_for!(PeriodOpened));
        for f in ["number", "starts_at", "ends_at", "paper_deadline"] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
        let schema = schemars::schema_for!(SupplyListPublished);
        let item = &schema.as_value()["$defs"]["SupplyItem"]["properties"];
        for f in [
            "national_code",
            "generic_name",
            "spec_model",
            "unit",
            "manufacturer",
            "winning_price_fen",
            "product_group",
        ] {
            assert!(item[f].is_object(), "supply item field {f} missing");
        }
        let p = props(&schemars::schema_for!(AgreementStateChanged));
        for f in ["agreement", "version", "state", "lines", "amount_fen"] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
    }

    #[test]
    fn flattened_records_read_back_and_ignore_unknown_fields() {
        let event = OrgRegistered {
            record: OrgRecord {
                org: OrgId::new(),
                kind: OrgKind::Hospital,
                name: "阜新市中心医院".into(),
                region: "210902".parse().unwrap(),
                nhsa_code: Some("H21090200001".into()),
                level: Some(HospitalLevel::Tertiary),
                uscc: None,
                is_manufacturer: false,
                is_distributor: false,
                acts_for: vec![],
                active: true,
                revision: 1,
            },
            registered_at: "2024-08-01T00:00:00Z".parse().unwrap(),
        };
        let mut v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["nhsa_code"], "H21090200001");
        assert_eq!(v["level"], "tertiary");
        v["added_later"] = serde_json::json!({"x": 1});
        assert_eq!(serde_json::from_value::<OrgRegistered>(v).unwrap(), event);
    }

    #[test]
    fn state_and_class_names_round_trip() {
        for s in AgreementState::ALL {
            assert_eq!(AgreementState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for c in ProgressClass::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for k in FlagKind::ALL {
            assert_eq!(FlagKind::parse(k.as_str()), Some(k));
        }
    }
}
