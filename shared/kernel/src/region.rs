//! Administrative regions (GB/T 2260 codes).
//!
//! A bureau's jurisdiction is its region's subtree (DOMAIN "Codes and regions"), distributors are
//! authorised per region, and issues are dispatched to the territorial bureau, so region codes
//! are validated once and answer "which level" and "does A contain B" without a lookup table.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// First two digits of every province-level division in GB/T 2260: 11–15, 21–23, 31–37, 41–46,
/// 50–54, 61–65, 71 (Taiwan), 81 (Hong Kong), 82 (Macao).
const PROVINCE_PREFIXES: &[u32] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// A six-digit GB/T 2260 code `PPCCXX`, or [`RegionCode::NATIONAL`].
///
/// Province `PP0000` (Liaoning `210000`), city `PPCC00` (Fuxin `210900`), county `PPCCXX`
/// (`210921`). Serialised as the six-digit string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(u32);

/// How far down the administrative tree a region code sits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    /// The whole country ([`RegionCode::NATIONAL`]), e.g. the national bureau or the operator.
    National,
    /// Province, autonomous region or municipality (`PP0000`).
    Province,
    /// Prefecture-level city (`PPCC00`).
    City,
    /// County, district or county-level city (`PPCCXX`).
    County,
}

impl RegionCode {
    /// `000000`: the whole country. GB/T 2260 has no such code; it is this platform's one
    /// extension, so that the national bureau, operators and machine actors have a region that
    /// contains every other. It is the only accepted code whose prefix is not a province.
    pub const NATIONAL: RegionCode = RegionCode(0);

    /// Validates a six-digit code.
    pub fn parse(code: &str) -> Result<RegionCode, RegionCodeError> {
        let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        if !well_formed {
            return Err(RegionCodeError::Shape(code.to_owned()));
        }
        let value: u32 = code
            .parse()
            .map_err(|_| RegionCodeError::Shape(code.to_owned()))?;
        if value == 0 {
            return Ok(RegionCode::NATIONAL);
        }
        let province = value / 10_000;
        if !PROVINCE_PREFIXES.contains(&province) {
            return Err(RegionCodeError::UnknownProvince {
                code: code.to_owned(),
                prefix: province,
            });
        }
        let city = (value / 100) % 100;
        let county = value % 100;
        if city == 0 && county != 0 {
            return Err(RegionCodeError::CountyWithoutCity(code.to_owned()));
        }
        Ok(RegionCode(value))
    }

    /// Level implied by the trailing zeros.
    pub const fn level(self) -> RegionLevel {
        if self.0 == 0 {
            RegionLevel::National
        } else if self.0.is_multiple_of(10_000) {
            RegionLevel::Province
        } else if self.0.is_multiple_of(100) {
            RegionLevel::City
        } else {
            RegionLevel::County
        }
    }

    /// The province this region lies in (itself for a province); `None` for the nation.
    pub const fn province(self) -> Option<RegionCode> {
        match self.level() {
            RegionLevel::National => None,
            _ => Some(RegionCode(self.0 / 10_000 * 10_000)),
        }
    }

    /// The city this region lies in (itself for a city); `None` for a province or the nation.
    ///
    /// For a county-level unit administered directly by its province (e.g. Jiyuan `419001`),
    /// this is the grouping code `419000`, which GB/T 2260 does not list as a city; containment
    /// still works because the province contains both.
    pub const fn city(self) -> Option<RegionCode> {
        match self.level() {
            RegionLevel::National | RegionLevel::Province => None,
            _ => Some(RegionCode(self.0 / 100 * 100)),
        }
    }

    /// The next level up: county → city, city → province, province → nation; `None` for the
    /// nation. This is the escalation path of an issue a bureau cannot resolve.
    pub const fn parent(self) -> Option<RegionCode> {
        match self.level() {
            RegionLevel::National => None,
            RegionLevel::Province => Some(RegionCode::NATIONAL),
            RegionLevel::City => self.province(),
            RegionLevel::County => self.city(),
        }
    }

    /// Whether `other` lies in this region's subtree. A code contains itself; the nation
    /// contains everything; a province its cities and counties; a city its counties; a county
    /// only itself.
    pub const fn contains(self, other: RegionCode) -> bool {
        match self.level() {
            RegionLevel::National => true,
            RegionLevel::Province => other.0 / 10_000 == self.0 / 10_000,
            RegionLevel::City => other.0 / 100 == self.0 / 100,
            RegionLevel::County => other.0 == self.0,
        }
    }

    /// The code as a number, e.g. `210900`.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The inclusive range of codes, as numbers, in this region's subtree
    /// (what [`RegionCode::contains`] admits), for `BETWEEN` in SQL over
    /// codes stored as integers.
    pub const fn subtree_range(self) -> (i32, i32) {
        let v = self.0 as i32;
        match self.level() {
            RegionLevel::National => (0, 999_999),
            RegionLevel::Province => (v, v + 9_999),
            RegionLevel::City => (v, v + 99),
            RegionLevel::County => (v, v),
        }
    }
}

/// Why a text is not a region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    #[error("region code must be 6 ASCII digits (GB/T 2260 PPCCXX), got {0:?}")]
    Shape(String),
    #[error(
        "region code must start with a GB/T 2260 province (11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81, 82) or be 000000 for the nation, got {prefix:02} in {code:?}"
    )]
    UnknownProvince { code: String, prefix: u32 },
    #[error(
        "region code must be PP0000, PPCC00 or PPCCXX with CC != 00 (a county needs a city), got {0:?}"
    )]
    CountyWithoutCity(String),
}

impl FromStr for RegionCode {
    type Err = RegionCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionCode::parse(s)
    }
}

impl TryFrom<String> for RegionCode {
    type Error = RegionCodeError;

    fn try_from(code: String) -> Result<Self, Self::Error> {
        RegionCode::parse(&code)
    }
}

impl TryFrom<&str> for RegionCode {
    type Error = RegionCodeError;

    fn try_from(code: &str) -> Result<Self, Self::Error> {
        RegionCode::parse(code)
    }
}

impl From<RegionCode> for String {
    fn from(code: RegionCode) -> String {
        code.to_string()
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({:06})", self.0)
    }
}

impl JsonSchema for RegionCode {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("RegionCode")
    }

    fn schema_id() -> Cow<'static, str> {
        Cow::Borrowed(concat!(module_path!(), "::RegionCode"))
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": REGION_CODE_PATTERN,
            "description": "GB/T 2260 region code PPCCXX: province PP0000, city PPCC00, county PPCCXX; 000000 is the whole country.",
            "examples": ["210000", "210900", "210921", "000000"],
        })
    }
}

/// The JSON-schema pattern; kept next to [`RegionCode::parse`] so the two rules are read together.
const REGION_CODE_PATTERN: &str = "^(000000|(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|81|82)(0000|(0[1-9]|[1-9][0-9])[0-9]{2}))$";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    #[test]
    fn levels_follow_the_trailing_zeros() {
        assert_eq!(code("210000").level(), RegionLevel::Province);
        assert_eq!(code("210900").level(), RegionLevel::City);
        assert_eq!(code("210100").level(), RegionLevel::City);
        assert_eq!(code("210921").level(), RegionLevel::County);
        assert_eq!(code("000000").level(), RegionLevel::National);
        assert_eq!(code("000000"), RegionCode::NATIONAL);
    }

    #[test]
    fn province_city_and_parent() {
        let county = code("210921");
        assert_eq!(county.province(), Some(code("210000")));
        assert_eq!(county.city(), Some(code("210900")));
        assert_eq!(county.parent(), Some(code("210900")));
        assert_eq!(code("210900").city(), Some(code("210900")));
        assert_eq!(code("210900").parent(), Some(code("210000")));
        assert_eq!(code("210000").city(), None);
        assert_eq!(code("210000").province(), Some(code("210000")));
        assert_eq!(code("210000").parent(), Some(RegionCode::NATIONAL));
        assert_eq!(RegionCode::NATIONAL.province(), None);
        assert_eq!(RegionCode::NATIONAL.parent(), None);
    }

    #[test]
    fn containment_is_the_subtree() {
        let liaoning = code("210000");
        let shenyang = code("210100");
        let fuxin = code("210900");
        let fuxin_county = code("210921");
        let beijing = code("110000");

        assert!(liaoning.contains(liaoning));
        assert!(liaoning.contains(fuxin));
        assert!(liaoning.contains(fuxin_county));
        assert!(fuxin.contains(fuxin_county));
        assert!(fuxin.contains(fuxin));
        assert!(fuxin_county.contains(fuxin_county));

        assert!(!shenyang.contains(fuxin_county), "sibling city");
        assert!(!fuxin.contains(liaoning), "child does not contain parent");
        assert!(!fuxin_county.contains(fuxin));
        assert!(!beijing.contains(fuxin));
        assert!(!liaoning.contains(RegionCode::NATIONAL));

        assert!(RegionCode::NATIONAL.contains(fuxin_county));
        assert!(RegionCode::NATIONAL.contains(beijing));
    }

    #[test]
    fn rejects_invalid_codes_naming_the_rule() {
        for bad in [
            "21090",
            "2109000",
            "21O900",
            " 210900",
            "+21090",
            "２１０９００",
            "",
        ] {
            let err = RegionCode::parse(bad).unwrap_err();
            assert_eq!(err, RegionCodeError::Shape(bad.to_owned()));
            assert!(err.to_string().contains("6 ASCII digits"), "{err}");
        }
        for (bad, prefix) in [
            ("100000", 10),
            ("160000", 16),
            ("010100", 1),
            ("990000", 99),
            ("720000", 72),
        ] {
            let err = RegionCode::parse(bad).unwrap_err();
            assert_eq!(
                err,
                RegionCodeError::UnknownProvince {
                    code: bad.to_owned(),
                    prefix
                }
            );
            assert!(err.to_string().contains("GB/T 2260 province"), "{err}");
        }
        let err = RegionCode::parse("210021").unwrap_err();
        assert_eq!(err, RegionCodeError::CountyWithoutCity("210021".into()));
        assert!(err.to_string().contains("a county needs a city"), "{err}");
    }

    #[test]
    fn accepts_every_province_prefix() {
        for prefix in PROVINCE_PREFIXES {
            let c = code(&format!("{prefix}0000"));
            assert_eq!(c.level(), RegionLevel::Province);
        }
        assert_eq!(code("820000").to_string(), "820000");
    }

    #[test]
    fn serde_is_the_six_digit_string_with_validation() {
        assert_eq!(
            serde_json::to_string(&code("210921")).unwrap(),
            "\"210921\""
        );
        assert_eq!(
            serde_json::to_string(&RegionCode::NATIONAL).unwrap(),
            "\"000000\""
        );
        assert_eq!(
            serde_json::from_str::<RegionCode>("\"210900\"").unwrap(),
            code("210900")
        );
        let err = serde_json::from_str::<RegionCode>("\"100000\"").unwrap_err();
        assert!(err.to_string().contains("GB/T 2260 province"), "{err}");
        assert!(
            serde_json::from_str::<RegionCode>("210900").is_err(),
            "numbers lose leading zeros"
        );
        assert_eq!(
            serde_json::to_string(&RegionLevel::County).unwrap(),
            "\"county\""
        );
    }

    #[test]
    fn schema_pattern_is_published() {
        let schema = schemars::schema_for!(RegionCode);
        assert_eq!(schema.as_value()["type"], "string");
        assert_eq!(schema.as_value()["pattern"], REGION_CODE_PATTERN);
    }

    /// Any valid code: a province prefix followed by a province, city or county suffix.
    fn valid_code() -> impl Strategy<Value = RegionCode> {
        let prefix = proptest::sample::select(PROVINCE_PREFIXES);
        let suffix = prop_oneof![
            Just(0u32),
            (1u32..100).prop_map(|c| c * 100),
            (1u32..100, 1u32..100).prop_map(|(c, x)| c * 100 + x)
        ];
        prop_oneof![
            Just(RegionCode::NATIONAL),
            (prefix, suffix).prop_map(|(p, s)| code(&format!("{:06}", p * 10_000 + s))),
        ]
    }

    proptest! {
        #[test]
        fn display_parse_round_trips(c in valid_code()) {
            prop_assert_eq!(RegionCode::parse(&c.to_string()), Ok(c));
        }

        #[test]
        fn containment_agrees_with_the_ancestor_chain(a in valid_code(), b in valid_code()) {
            // a contains b exactly when a is b or one of b's ancestors.
            let mut ancestors = vec![b];
            let mut cur = b;
            while let Some(p) = cur.parent() {
                ancestors.push(p);
                cur = p;
            }
            prop_assert_eq!(a.contains(b), ancestors.contains(&a));
        }

        #[test]
        fn every_ancestor_contains_the_code(b in valid_code()) {
            let mut cur = b;
            while let Some(p) = cur.parent() {
                prop_assert!(p.contains(b), "{:?} should contain {:?}", p, b);
                prop_assert!(p.level() < cur.level());
                cur = p;
            }
            prop_assert_eq!(cur, RegionCode::NATIONAL);
        }

        #[test]
        fn containment_is_antisymmetric(a in valid_code(), b in valid_code()) {
            if a.contains(b) && b.contains(a) {
                prop_assert_eq!(a, b);
            }
        }
    }
}
