//! Events of the distribution service (配送关系): authorisations by area,
//! hospital selections, distributor confirmations and bureau-approved
//! changes. The orders service (prices and who may deliver), the issues
//! service (who delivered at the occurrence time) and the agreements service
//! (a distributor named in a tripartite agreement must hold an active
//! relation) project them.
//!
//! Subjects: `{ns}.evt.distribution.{aggregate}.{event}`. Consumers ignore
//! unknown fields; within version 1 fields are only added.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{NationalCode, OrgId, OrgKind, RegionCode};

use crate::agreements::PeriodId;
use crate::event::Event;
use crate::service::Service;

vbp_kernel::define_id! {
    /// A manufacturer's authorisation of a distributor (配送授权).
    pub AuthorisationId
}

vbp_kernel::define_id! {
    /// One distribution relation: (hospital, product, distributor) over a validity interval.
    pub RelationId
}

vbp_kernel::define_id! {
    /// A change request (更换/调整) of a relation.
    pub ChangeId
}

/// A manufacturer authorised a distributor to deliver `products` in `areas`
/// (region codes; a city covers its counties) for a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthorisationGranted {
    pub authorisation: AuthorisationId,
    pub period: PeriodId,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub products: Vec<NationalCode>,
    pub areas: Vec<RegionCode>,
    pub granted_at: DateTime<Utc>,
}

impl Event for AuthorisationGranted {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "authorisation";
    const NAME: &'static str = "granted";
}

/// The distributor accepted an authorisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthorisationConfirmed {
    pub authorisation: AuthorisationId,
    pub period: PeriodId,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub products: Vec<NationalCode>,
    pub areas: Vec<RegionCode>,
    pub confirmed_at: DateTime<Utc>,
}

impl Event for AuthorisationConfirmed {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "authorisation";
    const NAME: &'static str = "confirmed";
}

/// The distributor refused an authorisation, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthorisationRefused {
    pub authorisation: AuthorisationId,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub reason: String,
    pub refused_at: DateTime<Utc>,
}

impl Event for AuthorisationRefused {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "authorisation";
    const NAME: &'static str = "refused";
}

/// The manufacturer withdrew an authorisation (relations under it end by
/// their own `relation.ended` events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthorisationRevoked {
    pub authorisation: AuthorisationId,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    #[serde(default)]
    pub products: Vec<NationalCode>,
    #[serde(default)]
    pub areas: Vec<RegionCode>,
    pub reason: String,
    pub revoked_at: DateTime<Utc>,
}

impl Event for AuthorisationRevoked {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "authorisation";
    const NAME: &'static str = "revoked";
}

/// A relation became active: `distributor` delivers `national_code` of
/// `manufacturer` to `hospital` from `valid_from` (inclusive) until
/// `valid_to` (exclusive; open when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RelationActivated {
    pub relation: RelationId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub valid_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<DateTime<Utc>>,
    /// The relation this one replaces after an approved change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<RelationId>,
    pub activated_at: DateTime<Utc>,
}

impl Event for RelationActivated {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "relation";
    const NAME: &'static str = "activated";
}

/// A distributor refused a hospital's selection. `remote_area` is set when
/// the hospital's county is marked remote by its bureau (a violation bureaus
/// must see).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RelationRefused {
    pub relation: RelationId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub reason: String,
    #[serde(default)]
    pub remote_area: bool,
    pub refused_at: DateTime<Utc>,
}

impl Event for RelationRefused {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "relation";
    const NAME: &'static str = "refused";
}

/// A relation stopped at `valid_to` (exclusive), e.g. replaced by a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RelationEnded {
    pub relation: RelationId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub valid_from: DateTime<Utc>,
    pub valid_to: DateTime<Utc>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<RelationId>,
    pub ended_at: DateTime<Utc>,
}

impl Event for RelationEnded {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "relation";
    const NAME: &'static str = "ended";
}

/// A change (X replaced by Y for hospital × product from a date) approved by
/// the territorial bureau. The old relation's `ended` and the new one's
/// `activated` events follow in the same transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RelationChanged {
    pub change: ChangeId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub from_distributor: OrgId,
    pub to_distributor: OrgId,
    pub old_relation: RelationId,
    pub new_relation: RelationId,
    pub effective_from: DateTime<Utc>,
    pub approved_by: OrgId,
    pub reason: String,
    pub approved_at: DateTime<Utc>,
}

impl Event for RelationChanged {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "relation";
    const NAME: &'static str = "changed";
}

/// Listing rule (Jiangxi style, configurable): a supply-list product without
/// an active relation some time after its period opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListingAtRisk {
    pub period: PeriodId,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    /// Since when the product has had no active relation (or was listed).
    pub since: DateTime<Utc>,
    /// When it is suspended unless a relation becomes active.
    pub suspend_at: DateTime<Utc>,
    pub reason: String,
    pub flagged_at: DateTime<Utc>,
}

impl Event for ListingAtRisk {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "listing";
    const NAME: &'static str = "at_risk";
}

/// The product's listing is suspended; restoring it needs an application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListingSuspended {
    pub period: PeriodId,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub reason: String,
    pub suspended_at: DateTime<Utc>,
}

impl Event for ListingSuspended {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "listing";
    const NAME: &'static str = "suspended";
}

/// A hospital selected a distributor for a product (点配送); the selection
/// waits for the distributor's confirmation (`relation.activated`) or
/// refusal (`relation.refused`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RelationSelected {
    pub relation: RelationId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub authorisation: AuthorisationId,
    pub selected_at: DateTime<Utc>,
}

impl Event for RelationSelected {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "relation";
    const NAME: &'static str = "selected";
}

/// A change (更换/调整) was requested and waits for the territorial bureau
/// (`approver_region`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeRequested {
    pub change: ChangeId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub from_distributor: OrgId,
    pub to_distributor: OrgId,
    pub old_relation: RelationId,
    pub effective_from: DateTime<Utc>,
    pub requested_by: OrgId,
    pub approver_region: RegionCode,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
}

impl Event for ChangeRequested {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "change";
    const NAME: &'static str = "requested";
}

/// The territorial bureau rejected a change; the relation stays as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeRejected {
    pub change: ChangeId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub national_code: NationalCode,
    pub old_relation: RelationId,
    pub rejected_by: OrgId,
    pub reason: String,
    pub rejected_at: DateTime<Utc>,
}

impl Event for ChangeRejected {
    const SERVICE: Service = Service::Distribution;
    const AGGREGATE: &'static str = "change";
    const NAME: &'static str = "rejected";
}

/// `(vbp-type, schema)` of every event of this service.
pub fn event_schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        (
            "distribution.authorisation.granted",
            schemars::schema_for!(AuthorisationGranted),
        ),
        (
            "distribution.authorisation.confirmed",
            schemars::schema_for!(AuthorisationConfirmed),
        ),
        (
            "distribution.authorisation.refused",
            schemars::schema_for!(AuthorisationRefused),
        ),
        (
            "distribution.authorisation.revoked",
            schemars::schema_for!(AuthorisationRevoked),
        ),
        (
            "distribution.relation.activated",
            schemars::schema_for!(RelationActivated),
        ),
        (
            "distribution.relation.refused",
            schemars::schema_for!(RelationRefused),
        ),
        (
            "distribution.relation.ended",
            schemars::schema_for!(RelationEnded),
        ),
        (
            "distribution.relation.changed",
            schemars::schema_for!(RelationChanged),
        ),
        (
            "distribution.listing.at_risk",
            schemars::schema_for!(ListingAtRisk),
        ),
        (
            "distribution.listing.suspended",
            schemars::schema_for!(ListingSuspended),
        ),
        (
            "distribution.relation.selected",
            schemars::schema_for!(RelationSelected),
        ),
        (
            "distribution.change.requested",
            schemars::schema_for!(ChangeRequested),
        ),
        (
            "distribution.change.rejected",
            schemars::schema_for!(ChangeRejected),
        ),
    ]
}

// ---------------------------------------------------------------------------
// RPC: requests and responses
// ---------------------------------------------------------------------------

pub use crate::agreements::{DemoLoaded, LoadDemo};
pub use crate::page::{MAX_PAGE_SIZE, Page};
use crate::page::{default_page, default_page_size};

/// Where an authorisation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorisationState {
    /// Granted by the manufacturer, waiting for the distributor.
    Pending,
    Confirmed,
    Refused,
    /// Withdrawn by the manufacturer.
    Revoked,
}

impl AuthorisationState {
    pub const ALL: [AuthorisationState; 4] = [
        AuthorisationState::Pending,
        AuthorisationState::Confirmed,
        AuthorisationState::Refused,
        AuthorisationState::Revoked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AuthorisationState::Pending => "pending",
            AuthorisationState::Confirmed => "confirmed",
            AuthorisationState::Refused => "refused",
            AuthorisationState::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where a relation stands. `ended` relations keep their validity interval:
/// they answer "who delivered then".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelationState {
    /// Selected by the hospital, waiting for the distributor.
    Pending,
    Active,
    /// Refused by the distributor (with its reason).
    Refused,
    /// Stopped at `valid_to` (replaced by a change, or its authorisation revoked).
    Ended,
    /// A pending selection whose authorisation was revoked.
    Cancelled,
}

impl RelationState {
    pub const ALL: [RelationState; 5] = [
        RelationState::Pending,
        RelationState::Active,
        RelationState::Refused,
        RelationState::Ended,
        RelationState::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RelationState::Pending => "pending",
            RelationState::Active => "active",
            RelationState::Refused => "refused",
            RelationState::Ended => "ended",
            RelationState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    Pending,
    Approved,
    Rejected,
}

impl ChangeState {
    pub const ALL: [ChangeState; 3] = [
        ChangeState::Pending,
        ChangeState::Approved,
        ChangeState::Rejected,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeState::Pending => "pending",
            ChangeState::Approved => "approved",
            ChangeState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Listing-rule state of a supply-list product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListingState {
    AtRisk,
    Suspended,
    /// Was at risk; a relation became active before the suspension.
    Cleared,
}

impl ListingState {
    pub const ALL: [ListingState; 3] = [
        ListingState::AtRisk,
        ListingState::Suspended,
        ListingState::Cleared,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ListingState::AtRisk => "at_risk",
            ListingState::Suspended => "suspended",
            ListingState::Cleared => "cleared",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A manufacturer authorises a distributor for some of its own supply-list
/// products in some areas (province, city or county codes; a city covers
/// its counties) for one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrantAuthorisation {
    pub period: PeriodId,
    pub distributor: OrgId,
    pub products: Vec<NationalCode>,
    pub areas: Vec<RegionCode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthorisationView {
    pub authorisation: AuthorisationId,
    pub period: PeriodId,
    pub manufacturer: OrgId,
    pub manufacturer_name: String,
    pub distributor: OrgId,
    pub distributor_name: String,
    pub products: Vec<NationalCode>,
    pub areas: Vec<RegionCode>,
    pub state: AuthorisationState,
    /// The distributor's refusal or the manufacturer's revocation reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub granted_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The distributor confirms a pending authorisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfirmAuthorisation {
    pub authorisation: AuthorisationId,
}

/// The distributor refuses a pending authorisation, or the manufacturer
/// revokes one; `reason` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthorisationDecision {
    pub authorisation: AuthorisationId,
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetAuthorisation {
    pub authorisation: AuthorisationId,
}

/// Authorisations the actor may see: a manufacturer its own, a distributor
/// those naming it, a hospital the confirmed ones covering its region, a
/// bureau those with an area in its jurisdiction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListAuthorisations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AuthorisationState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// A hospital selects one or more distributors for a product (点配送).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SelectDistributors {
    pub period: PeriodId,
    pub national_code: NationalCode,
    pub distributors: Vec<OrgId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RelationView {
    pub relation: RelationId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_name: String,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub distributor_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorisation: Option<AuthorisationId>,
    pub state: RelationState,
    pub selected_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Refusal reason, or why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Refused for a county its bureau marks remote (a violation).
    #[serde(default)]
    pub remote_area: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// Exclusive; open (bounded by the period) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<RelationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<RelationId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Selection {
    pub relations: Vec<RelationView>,
}

/// The distributor confirms a pending selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfirmRelation {
    pub relation: RelationId,
}

/// The distributor refuses a pending selection with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RefuseRelation {
    pub relation: RelationId,
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetRelation {
    pub relation: RelationId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListRelations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributor: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RelationState>,
    /// Only refusals for counties marked remote.
    #[serde(default)]
    pub remote_area_only: bool,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// Who delivered (or delivers) `national_code` to `hospital` on the Beijing
/// calendar day `on`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WhoDelivered {
    pub hospital: OrgId,
    pub national_code: NationalCode,
    pub on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delivering {
    pub hospital: OrgId,
    pub national_code: NationalCode,
    pub on: NaiveDate,
    pub relations: Vec<RelationView>,
}

/// Replace `from_distributor` by `to_distributor` for (hospital, product)
/// from the Beijing day `effective_from` (更换/调整). A hospital asks for
/// itself; a manufacturer names the hospital.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RequestChange {
    pub period: PeriodId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    pub national_code: NationalCode,
    pub from_distributor: OrgId,
    pub to_distributor: OrgId,
    pub effective_from: NaiveDate,
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeView {
    pub change: ChangeId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub from_distributor: OrgId,
    pub to_distributor: OrgId,
    pub old_relation: RelationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_relation: Option<RelationId>,
    pub effective_from: DateTime<Utc>,
    pub reason: String,
    pub requested_by: OrgId,
    pub requested_by_kind: OrgKind,
    pub requested_at: DateTime<Utc>,
    /// The only bureau region that may decide (the hospital's city, or its
    /// county where configured).
    pub approver_region: RegionCode,
    pub state: ChangeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

/// The territorial bureau approves (reason optional) or rejects (reason
/// required) a pending change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DecideChange {
    pub change: ChangeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ChangeState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// What waits for the actor: a distributor's pending authorisations and
/// selections, a territorial bureau's pending changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueryWorkList {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkList {
    pub authorisations: Vec<AuthorisationView>,
    pub relations: Vec<RelationView>,
    pub changes: Vec<ChangeView>,
}

/// A bureau marks (or unmarks) a county of its jurisdiction as remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MarkRemoteArea {
    pub region: RegionCode,
    pub remote: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemoteAreaView {
    pub region: RegionCode,
    pub remote: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub marked_by: OrgId,
    pub marked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListRemoteAreas {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemoteAreas {
    pub items: Vec<RemoteAreaView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListingView {
    pub period: PeriodId,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub state: ListingState,
    pub since: DateTime<Utc>,
    pub suspend_at: DateTime<Utc>,
    pub flagged_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListListings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ListingState>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

crate::rpc_operations! { Service::Distribution, "distribution";
    /// A manufacturer authorises a distributor (products, areas, period).
    AuthorisationGrant = "authorisation_grant" (GrantAuthorisation) -> AuthorisationView;
    /// The distributor accepts a pending authorisation.
    AuthorisationConfirm = "authorisation_confirm" (ConfirmAuthorisation) -> AuthorisationView;
    /// The distributor refuses a pending authorisation with a reason.
    AuthorisationRefuse = "authorisation_refuse" (AuthorisationDecision) -> AuthorisationView;
    /// The manufacturer withdraws an authorisation; relations under it end.
    AuthorisationRevoke = "authorisation_revoke" (AuthorisationDecision) -> AuthorisationView;
    AuthorisationGet = "authorisation_get" (GetAuthorisation) -> AuthorisationView;
    AuthorisationList = "authorisation_list" (ListAuthorisations) -> Page<AuthorisationView>;
    /// A hospital selects distributors for a product (点配送).
    RelationSelect = "relation_select" (SelectDistributors) -> Selection;
    /// The distributor confirms a selection: the relation is active.
    RelationConfirm = "relation_confirm" (ConfirmRelation) -> RelationView;
    /// The distributor refuses a selection with a reason.
    RelationRefuse = "relation_refuse" (RefuseRelation) -> RelationView;
    RelationGet = "relation_get" (GetRelation) -> RelationView;
    RelationList = "relation_list" (ListRelations) -> Page<RelationView>;
    /// Who delivered a product to a hospital on a day (history across changes).
    RelationAt = "relation_at" (WhoDelivered) -> Delivering;
    /// A hospital or manufacturer asks to replace a distributor from a date.
    ChangeRequest = "change_request" (RequestChange) -> ChangeView;
    /// The territorial bureau approves a change.
    ChangeApprove = "change_approve" (DecideChange) -> ChangeView;
    /// The territorial bureau rejects a change (reason required).
    ChangeReject = "change_reject" (DecideChange) -> ChangeView;
    ChangeList = "change_list" (ListChanges) -> Page<ChangeView>;
    /// Pending confirmations and approvals waiting for the actor.
    WorkListOp = "work_list" (QueryWorkList) -> WorkList;
    /// A bureau marks a county of its jurisdiction remote (or not).
    RemoteAreaMark = "remote_area_mark" (MarkRemoteArea) -> RemoteAreaView;
    RemoteAreaListOp = "remote_area_list" (ListRemoteAreas) -> RemoteAreas;
    /// Listing-rule states (at risk, suspended, cleared).
    ListingList = "listing_list" (ListListings) -> Page<ListingView>;
    /// Load this service's part of the Liaoning demo (operator).
    DemoLoad = "demo_load" (LoadDemo) -> DemoLoaded;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreements::testutil::{assert_event, props};
    use crate::subjects::Namespace;

    #[test]
    fn subjects_and_types_follow_the_contract() {
        let ns = Namespace::new("ln").unwrap();
        assert_event::<AuthorisationGranted>(&ns, "distribution.authorisation.granted");
        assert_event::<AuthorisationConfirmed>(&ns, "distribution.authorisation.confirmed");
        assert_event::<AuthorisationRefused>(&ns, "distribution.authorisation.refused");
        assert_event::<AuthorisationRevoked>(&ns, "distribution.authorisation.revoked");
        assert_event::<RelationActivated>(&ns, "distribution.relation.activated");
        assert_event::<RelationRefused>(&ns, "distribution.relation.refused");
        assert_event::<RelationEnded>(&ns, "distribution.relation.ended");
        assert_event::<RelationChanged>(&ns, "distribution.relation.changed");
        assert_event::<ListingAtRisk>(&ns, "distribution.listing.at_risk");
        assert_event::<ListingSuspended>(&ns, "distribution.listing.suspended");
        assert_event::<RelationSelected>(&ns, "distribution.relation.selected");
        assert_event::<ChangeRequested>(&ns, "distribution.change.requested");
        assert_event::<ChangeRejected>(&ns, "distribution.change.rejected");
        assert_eq!(event_schemas().len(), 13);
    }

    #[test]
    fn schemas_name_the_fields_projections_need() {
        let p = props(&schemars::schema_for!(RelationActivated));
        for f in [
            "hospital",
            "national_code",
            "distributor",
            "manufacturer",
            "valid_from",
            "valid_to",
        ] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
        let p = props(&schemars::schema_for!(AuthorisationGranted));
        for f in ["manufacturer", "distributor", "products", "areas"] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
    }

    #[test]
    fn state_names_round_trip() {
        for s in AuthorisationState::ALL {
            assert_eq!(AuthorisationState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in RelationState::ALL {
            assert_eq!(RelationState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in ChangeState::ALL {
            assert_eq!(ChangeState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in ListingState::ALL {
            assert_eq!(ListingState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
