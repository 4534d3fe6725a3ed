//! Who is acting.
//!
//! The gateway turns a verified JWT into an [`Actor`] and every service scopes its queries by it
//! (DESIGN §6: authorisation happens twice). The same value travels in the `vbp-actor` header
//! for audit, so machine-initiated work (timers, relays, ingest) needs an actor too:
//! [`Actor::system`].

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::OrgId;
use crate::region::{RegionCode, RegionLevel};

/// Prefix of the `sub` of every machine actor, so audit trails can tell a timer from a person
/// and no user subject can collide with one.
pub const SYSTEM_SUB_PREFIX: &str = "system:";

/// The kind of organisation an actor belongs to (每个组织一个 org).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// 医疗机构: places orders, accepts deliveries, files issues.
    Hospital,
    /// 生产企业 / 中选企业: winning manufacturer.
    Manufacturer,
    /// 配送企业: delivers to hospitals.
    Distributor,
    /// 医保部门 at county, city, province or national level.
    Bureau,
    /// A hospital SPD/HIS/ERP platform publishing order events by machine.
    Integrator,
    /// Runs the platform.
    Operator,
}

impl OrgKind {
    /// Every kind, in declaration order.
    pub const ALL: [OrgKind; 6] = [
        OrgKind::Hospital,
        OrgKind::Manufacturer,
        OrgKind::Distributor,
        OrgKind::Bureau,
        OrgKind::Integrator,
        OrgKind::Operator,
    ];

    /// The wire name, identical to the serde form (`"hospital"`, ...), as used in the JWT
    /// `org_kind` claim.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrgKind::Hospital => "hospital",
            OrgKind::Manufacturer => "manufacturer",
            OrgKind::Distributor => "distributor",
            OrgKind::Bureau => "bureau",
            OrgKind::Integrator => "integrator",
            OrgKind::Operator => "operator",
        }
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgKind {
    type Err = OrgKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrgKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| OrgKindError(s.to_owned()))
    }
}

/// Why a text is not an organisation kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "org kind must be one of hospital, manufacturer, distributor, bureau, integrator, operator; got {0:?}"
)]
pub struct OrgKindError(pub String);

/// An authenticated actor: a person or machine acting for one organisation.
///
/// Mirrors the JWT claims `sub, org, org_kind, region, roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    /// Subject: the user or machine identity, unique within the identity provider.
    pub sub: String,
    /// The organisation acted for.
    pub org: OrgId,
    /// What kind of organisation that is.
    pub org_kind: OrgKind,
    /// Where the organisation sits; for a bureau, its jurisdiction.
    pub region: RegionCode,
    /// Roles granted, checked by the gateway per route. Absent in JSON means none, so a token
    /// or header without the claim grants nothing rather than failing to parse.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Actor {
    /// A machine actor (scheduler, outbox relay, default confirmation) named `name`: an
    /// operator with the nil organisation ([`OrgId::SYSTEM`]) and national jurisdiction, so
    /// audit shows which job acted and scoping lets it see what it must process.
    pub fn system(name: impl AsRef<str>) -> Actor {
        Actor {
            sub: format!("{SYSTEM_SUB_PREFIX}{}", name.as_ref()),
            org: OrgId::SYSTEM,
            org_kind: OrgKind::Operator,
            region: RegionCode::NATIONAL,
            roles: Vec::new(),
        }
    }

    /// True for actors made by [`Actor::system`].
    pub fn is_system(&self) -> bool {
        self.org == OrgId::SYSTEM
            && self.org_kind == OrgKind::Operator
            && self.sub.starts_with(SYSTEM_SUB_PREFIX)
    }

    /// The bureau's level (county, city, province, national), from its region; `None` for any
    /// other kind of organisation. Decides, e.g., who verifies an issue and who it escalates to.
    pub fn bureau_level(&self) -> Option<RegionLevel> {
        (self.org_kind == OrgKind::Bureau).then(|| self.region.level())
    }

    /// Whether `region` is within this actor's supervisory jurisdiction: a bureau sees its
    /// region's subtree, an operator sees the whole country. Hospitals, enterprises and
    /// integrators have no jurisdiction (they are scoped by their own `org`), so this is `false`
    /// for them even for their own region.
    pub fn jurisdiction_contains(&self, region: &RegionCode) -> bool {
        match self.org_kind {
            OrgKind::Operator => true,
            OrgKind::Bureau => self.region.contains(*region),
            OrgKind::Hospital
            | OrgKind::Manufacturer
            | OrgKind::Distributor
            | OrgKind::Integrator => false,
        }
    }

    /// Whether the actor holds `role` (exact, case-sensitive match).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(kind: OrgKind, region: &str) -> Actor {
        Actor {
            sub: "u-1".into(),
            org: OrgId::new(),
            org_kind: kind,
            region: region.parse().unwrap(),
            roles: vec!["order.write".into()],
        }
    }

    fn region(code: &str) -> RegionCode {
        code.parse().unwrap()
    }

    #[test]
    fn org_kind_text_forms_agree_with_serde() {
        for kind in OrgKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(kind.to_string().parse::<OrgKind>(), Ok(kind));
        }
        let err = "Hospital".parse::<OrgKind>().unwrap_err();
        assert!(
            err.to_string().starts_with("org kind must be one of"),
            "{err}"
        );
    }

    #[test]
    fn bureau_jurisdiction_is_its_subtree() {
        let fuxin_bureau = actor(OrgKind::Bureau, "210900");
        assert_eq!(fuxin_bureau.bureau_level(), Some(RegionLevel::City));
        assert!(fuxin_bureau.jurisdiction_contains(&region("210900")));
        assert!(fuxin_bureau.jurisdiction_contains(&region("210921")));
        assert!(!fuxin_bureau.jurisdiction_contains(&region("210100")));
        assert!(!fuxin_bureau.jurisdiction_contains(&region("210000")));

        let province = actor(OrgKind::Bureau, "210000");
        assert_eq!(province.bureau_level(), Some(RegionLevel::Province));
        assert!(province.jurisdiction_contains(&region("210921")));
        assert!(!province.jurisdiction_contains(&region("110101")));

        let national = actor(OrgKind::Bureau, "000000");
        assert_eq!(national.bureau_level(), Some(RegionLevel::National));
        assert!(national.jurisdiction_contains(&region("110101")));
    }

    #[test]
    fn operators_see_everything_and_others_nothing() {
        assert!(actor(OrgKind::Operator, "210000").jurisdiction_contains(&region("110101")));
        for kind in [
            OrgKind::Hospital,
            OrgKind::Manufacturer,
            OrgKind::Distributor,
            OrgKind::Integrator,
        ] {
            let a = actor(kind, "210921");
            assert!(!a.jurisdiction_contains(&region("210921")), "{kind}");
            assert_eq!(a.bureau_level(), None, "{kind}");
        }
    }

    #[test]
    fn roles_match_exactly() {
        let a = actor(OrgKind::Hospital, "210921");
        assert!(a.has_role("order.write"));
        assert!(!a.has_role("order"));
        assert!(!a.has_role("ORDER.WRITE"));
    }

    #[test]
    fn system_actor_is_a_national_operator_with_the_nil_org() {
        let sys = Actor::system("issues-sla-timer");
        assert_eq!(sys.sub, "system:issues-sla-timer");
        assert!(sys.org.as_uuid().is_nil());
        assert_eq!(sys.org_kind, OrgKind::Operator);
        assert_eq!(sys.region, RegionCode::NATIONAL);
        assert!(sys.is_system());
        assert!(sys.jurisdiction_contains(&region("210921")));
        assert!(
            !actor(OrgKind::Operator, "000000").is_system(),
            "a real operator"
        );
    }

    #[test]
    fn json_matches_the_jwt_claim_names_and_validates_region() {
        let a = actor(OrgKind::Bureau, "210900");
        let value = serde_json::to_value(&a).unwrap();
        assert_eq!(value["org_kind"], "bureau");
        assert_eq!(value["region"], "210900");
        assert_eq!(value["org"], a.org.to_string());
        assert_eq!(serde_json::from_value::<Actor>(value.clone()).unwrap(), a);

        let mut without_roles = value.clone();
        without_roles.as_object_mut().unwrap().remove("roles");
        let parsed = serde_json::from_value::<Actor>(without_roles).unwrap();
        assert!(parsed.roles.is_empty() && !parsed.has_role("order.write"));

        let mut bad = value;
        bad["region"] = "219900x".into();
        assert!(serde_json::from_value::<Actor>(bad).is_err());
    }

    #[test]
    fn schema_requires_identity_claims_and_references_kernel_types() {
        let schema = schemars::schema_for!(Actor);
        let value = schema.as_value();
        let required: Vec<&str> = value["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["sub", "org", "org_kind", "region"]);
        assert_eq!(value["$defs"]["RegionCode"]["type"], "string");
        let kinds: Vec<&str> = value["$defs"]["OrgKind"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["const"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, OrgKind::ALL.map(OrgKind::as_str));
    }
}
