//! Pure rules of distribution relations (配送关系): settings, state
//! transitions, area coverage, the territorial bureau of a hospital, the
//! change limit and the listing rule's deadlines. No I/O.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_contracts::distribution::{AuthorisationState, ChangeState, RelationState};
use vbp_kernel::{RegionCode, RegionLevel, beijing_date, beijing_midnight};

/// `[distribution]` in the config file, `VBP_DISTRIBUTION__*` in the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Approved changes allowed per (hospital, product) per period.
    pub max_changes_per_relation: u32,
    /// County codes (or city codes, meaning all their counties) whose county
    /// bureau, not the city bureau, decides changes of its hospitals.
    pub county_approval_regions: Vec<RegionCode>,
    /// Jiangxi-style listing rule; off by default.
    pub listing_rule_enabled: bool,
    /// Days after the period starts after which a supply-list product with
    /// no active relation is reported at risk.
    pub listing_at_risk_days: i64,
    /// Days after the period starts after which such a product is suspended
    /// (3 months in Jiangxi).
    pub listing_suspend_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_changes_per_relation: 2,
            county_approval_regions: Vec::new(),
            listing_rule_enabled: false,
            listing_at_risk_days: 60,
            listing_suspend_days: 90,
        }
    }
}

impl Settings {
    /// Rejects settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.listing_at_risk_days < 0 {
            return Err(Invalid::new(
                "distribution.listing_at_risk_days",
                "must not be negative",
            ));
        }
        if self.listing_suspend_days < self.listing_at_risk_days {
            return Err(Invalid::new(
                "distribution.listing_suspend_days",
                "must not be before listing_at_risk_days",
            ));
        }
        for r in &self.county_approval_regions {
            if !matches!(r.level(), RegionLevel::City | RegionLevel::County) {
                return Err(Invalid::new(
                    "distribution.county_approval_regions",
                    format!("{r} is not a city or county code"),
                ));
            }
        }
        Ok(())
    }
}

/// A rule broken by input: the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    pub field: String,
    pub rule: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {from}; only a {allowed} {what} can be {action}")]
pub struct Disallowed {
    pub what: &'static str,
    pub from: &'static str,
    pub action: &'static str,
    pub allowed: &'static str,
}

// ---------------------------------------------------------------------------
// Regions
// ---------------------------------------------------------------------------

/// A region's subtree as an integer range (city 210900 → 210900..=210999).
pub fn region_range(region: RegionCode) -> (i32, i32) {
    let v = region.as_u32() as i32;
    match region.level() {
        RegionLevel::National => (0, 999_999),
        RegionLevel::Province => (v, v + 9_999),
        RegionLevel::City => (v, v + 99),
        RegionLevel::County => (v, v),
    }
}

pub fn region_from_i32(v: i32) -> RegionCode {
    RegionCode::parse(&format!("{v:06}")).unwrap_or(RegionCode::NATIONAL)
}

/// Whether an authorisation's areas cover a hospital's region (a province
/// covers its cities and counties, a city its counties).
pub fn areas_cover(areas: &[RegionCode], region: RegionCode) -> bool {
    areas.iter().any(|a| a.contains(region))
}

/// Validates authorisation areas: at least one, each a province, city or
/// county code, no repeats (an area inside another listed one is redundant
/// and refused so the list says what it means).
pub fn validate_areas(areas: &[RegionCode]) -> Result<Vec<RegionCode>, Invalid> {
    if areas.is_empty() {
        return Err(Invalid::new("areas", "name at least one region code"));
    }
    if areas.len() > 500 {
        return Err(Invalid::new("areas", "at most 500 region codes"));
    }
    for (i, a) in areas.iter().enumerate() {
        if a.level() == RegionLevel::National {
            return Err(Invalid::new(
                format!("areas[{i}]"),
                "an area is a province, city or county code, not the whole country",
            ));
        }
        for (j, b) in areas.iter().enumerate() {
            if i != j && b.contains(*a) && (b != a || j < i) {
                return Err(Invalid::new(
                    format!("areas[{i}]"),
                    format!("{a} is already covered by areas[{j}] ({b})"),
                ));
            }
        }
    }
    Ok(areas.to_vec())
}

/// The region of the only bureau that may decide a change for a hospital in
/// `hospital_region`: its city bureau, or its county bureau where the county
/// (or its whole city) is configured for county approval.
pub fn territorial_bureau(hospital_region: RegionCode, settings: &Settings) -> RegionCode {
    let city = hospital_region.city().unwrap_or(hospital_region);
    if hospital_region.level() == RegionLevel::County
        && settings
            .county_approval_regions
            .iter()
            .any(|r| *r == hospital_region || (r.level() == RegionLevel::City && *r == city))
    {
        hospital_region
    } else {
        city
    }
}

// ---------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------

/// A reason: 1 to 500 characters after trimming.
pub fn reason(field: &str, text: &str) -> Result<String, Invalid> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Invalid::new(field, "a reason is required"));
    }
    if t.chars().count() > 500 {
        return Err(Invalid::new(field, "a reason is at most 500 characters"));
    }
    Ok(t.to_owned())
}

// ---------------------------------------------------------------------------
// State machines
// ---------------------------------------------------------------------------

/// What a distributor or manufacturer does to an authorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorisationAction {
    Confirm,
    Refuse,
    Revoke,
}

pub fn authorisation_transition(
    from: AuthorisationState,
    action: AuthorisationAction,
) -> Result<AuthorisationState, Disallowed> {
    use AuthorisationAction as A;
    use AuthorisationState as S;
    match (from, action) {
        (S::Pending, A::Confirm) => Ok(S::Confirmed),
        (S::Pending, A::Refuse) => Ok(S::Refused),
        (S::Pending | S::Confirmed, A::Revoke) => Ok(S::Revoked),
        (_, A::Confirm) => Err(Disallowed {
            what: "authorisation",
            from: from.as_str(),
            action: "confirmed",
            allowed: "pending",
        }),
        (_, A::Refuse) => Err(Disallowed {
            what: "authorisation",
            from: from.as_str(),
            action: "refused",
            allowed: "pending",
        }),
        (_, A::Revoke) => Err(Disallowed {
            what: "authorisation",
            from: from.as_str(),
            action: "revoked",
            allowed: "pending or confirmed",
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationAction {
    Confirm,
    Refuse,
    /// Replaced by an approved change, or its authorisation was revoked.
    End,
    /// A pending selection whose authorisation was revoked.
    Cancel,
}

pub fn relation_transition(
    from: RelationState,
    action: RelationAction,
) -> Result<RelationState, Disallowed> {
    use RelationAction as A;
    use RelationState as S;
    match (from, action) {
        (S::Pending, A::Confirm) => Ok(S::Active),
        (S::Pending, A::Refuse) => Ok(S::Refused),
        (S::Pending, A::Cancel) => Ok(S::Cancelled),
        (S::Active, A::End) => Ok(S::Ended),
        (_, A::Confirm) => Err(Disallowed {
            what: "relation",
            from: from.as_str(),
            action: "confirmed",
            allowed: "pending",
        }),
        (_, A::Refuse) => Err(Disallowed {
            what: "relation",
            from: from.as_str(),
            action: "refused",
            allowed: "pending",
        }),
        (_, A::Cancel) => Err(Disallowed {
            what: "relation",
            from: from.as_str(),
            action: "cancelled",
            allowed: "pending",
        }),
        (_, A::End) => Err(Disallowed {
            what: "relation",
            from: from.as_str(),
            action: "ended or changed",
            allowed: "active",
        }),
    }
}

pub fn change_decision(from: ChangeState, approve: bool) -> Result<ChangeState, Disallowed> {
    match from {
        ChangeState::Pending if approve => Ok(ChangeState::Approved),
        ChangeState::Pending => Ok(ChangeState::Rejected),
        _ => Err(Disallowed {
            what: "change",
            from: from.as_str(),
            action: if approve { "approved" } else { "rejected" },
            allowed: "pending",
        }),
    }
}

// ---------------------------------------------------------------------------
// Time rules
// ---------------------------------------------------------------------------

/// A confirmed relation delivers from the confirmation, or from the period's
/// start when confirmed before it.
pub fn activation_start(now: DateTime<Utc>, period_start: DateTime<Utc>) -> DateTime<Utc> {
    now.max(period_start)
}

/// The instant a change takes effect: 00:00 Beijing of `date`, which must be
/// today or later, inside the period, and after the replaced relation began.
pub fn change_effective_from(
    date: NaiveDate,
    now: DateTime<Utc>,
    period: (DateTime<Utc>, DateTime<Utc>),
    old_valid_from: DateTime<Utc>,
) -> Result<DateTime<Utc>, Invalid> {
    let at = beijing_midnight(date);
    if date < beijing_date(now) {
        return Err(Invalid::new(
            "effective_from",
            format!(
                "a change cannot take effect in the past (today is {})",
                beijing_date(now)
            ),
        ));
    }
    if at < period.0 || at >= period.1 {
        return Err(Invalid::new(
            "effective_from",
            format!(
                "must fall within the period ({} to {})",
                beijing_date(period.0),
                beijing_date(period.1 - Duration::seconds(1))
            ),
        ));
    }
    if at <= old_valid_from {
        return Err(Invalid::new(
            "effective_from",
            format!(
                "must be after the replaced relation began ({})",
                beijing_date(old_valid_from)
            ),
        ));
    }
    Ok(at)
}

/// The change limit per (hospital, product) per period: `approved` changes
/// already made plus `pending` ones must leave room for one more.
pub fn check_change_limit(approved: i64, pending: i64, max: u32) -> Result<(), String> {
    if approved + pending >= i64::from(max) {
        Err(format!(
            "at most {max} change(s) per relation per period: {approved} approved, {pending} pending"
        ))
    } else {
        Ok(())
    }
}

/// When the listing rule reports at risk and suspends, from the period's start.
pub fn listing_deadlines(
    period_start: DateTime<Utc>,
    settings: &Settings,
) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        period_start + Duration::days(settings.listing_at_risk_days),
        period_start + Duration::days(settings.listing_suspend_days),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RegionCode {
        s.parse().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_city_area_covers_its_counties_only() {
        let areas = [r("210900")];
        assert!(areas_cover(&areas, r("210922")));
        assert!(areas_cover(&areas, r("210900")));
        assert!(!areas_cover(&areas, r("210102")));
        assert!(areas_cover(&[r("210000")], r("210102")));
        assert!(!areas_cover(&[r("210922")], r("210902")));
    }

    #[test]
    fn areas_must_be_non_empty_sub_national_and_not_redundant() {
        assert_eq!(validate_areas(&[]).unwrap_err().field, "areas");
        assert_eq!(
            validate_areas(&[RegionCode::NATIONAL]).unwrap_err().field,
            "areas[0]"
        );
        assert_eq!(
            validate_areas(&[r("210900"), r("210922")])
                .unwrap_err()
                .field,
            "areas[1]"
        );
        assert_eq!(
            validate_areas(&[r("210900"), r("210900")])
                .unwrap_err()
                .field,
            "areas[1]"
        );
        assert!(validate_areas(&[r("210900"), r("210100")]).is_ok());
    }

    #[test]
    fn territorial_bureau_is_the_city_unless_the_county_is_configured() {
        let mut s = Settings::default();
        assert_eq!(territorial_bureau(r("210922"), &s), r("210900"));
        assert_eq!(territorial_bureau(r("210900"), &s), r("210900"));
        s.county_approval_regions = vec![r("210922")];
        assert_eq!(territorial_bureau(r("210922"), &s), r("210922"));
        assert_eq!(territorial_bureau(r("210921"), &s), r("210900"));
        s.county_approval_regions = vec![r("210900")];
        assert_eq!(territorial_bureau(r("210921"), &s), r("210921"));
        assert_eq!(territorial_bureau(r("210102"), &s), r("210100"));
    }

    #[test]
    fn state_machines_allow_only_their_transitions() {
        use AuthorisationAction as A;
        use AuthorisationState as S;
        assert_eq!(
            authorisation_transition(S::Pending, A::Confirm),
            Ok(S::Confirmed)
        );
        assert!(authorisation_transition(S::Confirmed, A::Confirm).is_err());
        assert!(authorisation_transition(S::Refused, A::Revoke).is_err());
        assert_eq!(
            authorisation_transition(S::Confirmed, A::Revoke),
            Ok(S::Revoked)
        );
        let e = authorisation_transition(S::Confirmed, A::Refuse).unwrap_err();
        assert_eq!(
            e.to_string(),
            "authorisation is confirmed; only a pending authorisation can be refused"
        );
        use RelationAction as RA;
        use RelationState as RS;
        assert_eq!(
            relation_transition(RS::Pending, RA::Confirm),
            Ok(RS::Active)
        );
        assert!(relation_transition(RS::Active, RA::Refuse).is_err());
        assert!(relation_transition(RS::Refused, RA::Confirm).is_err());
        assert!(relation_transition(RS::Ended, RA::End).is_err());
        assert_eq!(relation_transition(RS::Active, RA::End), Ok(RS::Ended));
        assert!(change_decision(ChangeState::Approved, false).is_err());
        assert_eq!(
            change_decision(ChangeState::Pending, true),
            Ok(ChangeState::Approved)
        );
    }

    #[test]
    fn change_limit_counts_approved_and_pending() {
        assert!(check_change_limit(0, 0, 1).is_ok());
        assert!(check_change_limit(1, 0, 1).is_err());
        assert!(check_change_limit(0, 1, 1).is_err());
        assert!(check_change_limit(1, 0, 2).is_ok());
        assert!(check_change_limit(0, 0, 0).is_err());
    }

    #[test]
    fn change_dates_are_beijing_midnights_inside_the_period() {
        let period = (
            at("2024-08-01T00:00:00+08:00"),
            at("2025-08-01T00:00:00+08:00"),
        );
        let now = at("2024-10-10T09:00:00+08:00");
        let from = at("2024-08-01T00:00:00+08:00");
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            change_effective_from(d("2024-11-01"), now, period, from).unwrap(),
            at("2024-11-01T00:00:00+08:00")
        );
        assert!(change_effective_from(d("2024-10-10"), now, period, from).is_ok());
        assert!(change_effective_from(d("2024-10-09"), now, period, from).is_err());
        assert!(change_effective_from(d("2025-08-01"), now, period, from).is_err());
        assert!(
            change_effective_from(
                d("2024-11-01"),
                now,
                period,
                at("2024-11-01T00:00:00+08:00")
            )
            .is_err()
        );
    }

    #[test]
    fn listing_deadlines_count_from_the_period_start() {
        let s = Settings {
            listing_rule_enabled: true,
            ..Settings::default()
        };
        let (risk, suspend) = listing_deadlines(at("2024-08-01T00:00:00+08:00"), &s);
        assert_eq!(risk, at("2024-09-30T00:00:00+08:00"));
        assert_eq!(suspend, at("2024-10-30T00:00:00+08:00"));
        assert!(s.validate().is_ok());
        let bad = Settings {
            listing_suspend_days: 10,
            ..Settings::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "distribution.listing_suspend_days"
        );
        assert!(!Settings::default().listing_rule_enabled);
    }
}
