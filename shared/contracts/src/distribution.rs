//! Events of the distribution service (配送关系): authorisations by area,
//! hospital selections, distributor confirmations and bureau-approved
//! changes. The orders service (prices and who may deliver), the issues
//! service (who delivered at the occurrence time) and the agreements service
//! (a distributor named in a tripartite agreement must hold an active
//! relation) project them.
//!
//! Subjects: `{ns}.evt.distribution.{aggregate}.{event}`. Consumers ignore
//! unknown fields; within version 1 fields are only added.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{NationalCode, OrgId, RegionCode};

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
    ]
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
        assert_eq!(event_schemas().len(), 10);
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
}
