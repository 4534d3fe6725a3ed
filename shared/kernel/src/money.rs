//! Money in fen (分) and ratios in basis points.
//!
//! Prepayments, settlements and price × quantity must be exact to the fen and traceable (DOMAIN
//! "Prepayment"), so amounts are integers of fen and every operation that can overflow is checked.
//! There is deliberately no float conversion and no `Add`/`Mul` operator: an overflow must be
//! a visible `None`, never a wrap or a panic in production.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Fen per yuan.
const FEN_PER_YUAN: i128 = 100;

/// An amount of money in fen (分, 1/100 yuan), positive or negative.
///
/// On the wire it is a plain JSON integer of fen (`123456` is 1234.56 yuan), so no client can
/// lose precision through a decimal-to-float conversion.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    /// Zero yuan.
    pub const ZERO: Money = Money(0);

    /// An amount of `fen` fen.
    pub const fn from_fen(fen: i64) -> Self {
        Money(fen)
    }

    /// The amount in fen, e.g. to store in a `BIGINT` column.
    pub const fn fen(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub const fn checked_add(self, other: Money) -> Option<Money> {
        match self.0.checked_add(other.0) {
            Some(fen) => Some(Money(fen)),
            None => None,
        }
    }

    /// `self - other`, or `None` on overflow.
    pub const fn checked_sub(self, other: Money) -> Option<Money> {
        match self.0.checked_sub(other.0) {
            Some(fen) => Some(Money(fen)),
            None => None,
        }
    }

    /// `self × factor`, or `None` on overflow.
    pub const fn checked_mul(self, factor: i64) -> Option<Money> {
        match self.0.checked_mul(factor) {
            Some(fen) => Some(Money(fen)),
            None => None,
        }
    }

    /// `-self`, or `None` for the one amount whose negation does not fit (`i64::MIN` fen).
    pub const fn checked_neg(self) -> Option<Money> {
        match self.0.checked_neg() {
            Some(fen) => Some(Money(fen)),
            None => None,
        }
    }

    /// Line amount of `qty` units at unit price `self` (price × quantity), or `None` on overflow.
    ///
    /// Same arithmetic as [`Money::checked_mul`]; the name says which business rule is applied
    /// where it is called.
    pub const fn mul_quantity(self, qty: i64) -> Option<Money> {
        self.checked_mul(qty)
    }

    /// Sum of `amounts`, or `None` if any partial sum overflows.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(amounts: I) -> Option<Money> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
    }

    /// `self × ratio`, rounded half-up to the fen (half away from zero for negative amounts),
    /// or `None` if the result does not fit.
    ///
    /// This is the one place a fraction of a fen is rounded, e.g. the 30 % prepayment of an
    /// annual agreed amount. The product is formed in `i128`, so only the final result can
    /// overflow.
    pub fn apply_ratio(self, ratio: BasisPoints) -> Option<Money> {
        let scaled = i128::from(self.0) * i128::from(ratio.0);
        let rounded = div_round_half_away(scaled, i128::from(BasisPoints::SCALE));
        i64::try_from(rounded).ok().map(Money)
    }

    /// True when the amount is below zero, e.g. a credit or an over-recovered prepayment.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// True when the amount is exactly zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses a yuan amount written as `-?\d+(\.\d{1,2})?`, e.g. `"1234.56"`, `"-0.05"`, `"12"`.
    ///
    /// Deliberately strict: this reads prices from notices, spreadsheets and integrator
    /// payloads, where `"1,234.5"`, `"1e3"`, `" 12"` or `"12.345"` usually mean a column was
    /// mangled, and guessing would put a wrong amount into a settlement.
    pub fn parse_yuan(text: &str) -> Result<Money, MoneyParseError> {
        parse_yuan(text)
    }
}

impl fmt::Display for Money {
    /// Yuan with exactly two decimals: `1234.56`, `-0.05`, `0.00`. [`Money::parse_yuan`]
    /// reads this back to the same amount.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl JsonSchema for Money {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Money")
    }

    fn schema_id() -> Cow<'static, str> {
        Cow::Borrowed(concat!(module_path!(), "::Money"))
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "format": "int64",
            "description": "Amount in fen (分): 1 yuan = 100 fen; 123456 is 1234.56 yuan. Never a float.",
        })
    }
}

/// Why a text is not a yuan amount. Each variant names the rule of `-?\d+(\.\d{1,2})?`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyParseError {
    #[error("yuan amount must not be empty")]
    Empty,
    #[error("yuan amount must not contain whitespace, got {0:?}")]
    Whitespace(String),
    #[error("yuan amount must not have a leading '+', got {0:?}")]
    LeadingPlus(String),
    #[error("yuan amount must not use digit group separators, got {0:?}")]
    GroupSeparator(String),
    #[error("yuan amount must not use exponent notation, got {0:?}")]
    Exponent(String),
    #[error("yuan amount must have at least one digit before the decimal point, got {0:?}")]
    MissingIntegerDigits(String),
    #[error("yuan amount must have 1 or 2 digits after the decimal point, got {0:?}")]
    MissingFractionDigits(String),
    #[error("yuan amount must have at most 2 decimals (fen), got {decimals} in {input:?}")]
    TooManyDecimals { input: String, decimals: usize },
    #[error(
        "yuan amount must match -?digits[.d[d]] (ASCII digits, optional '-', optional '.'), got {ch:?} in {input:?}"
    )]
    InvalidCharacter { input: String, ch: char },
    #[error(
        "yuan amount must fit in i64 fen (-92233720368547758.08 to 92233720368547758.07), got {0:?}"
    )]
    OutOfRange(String),
}

fn parse_yuan(text: &str) -> Result<Money, MoneyParseError> {
    use MoneyParseError as E;
    let owned = || text.to_owned();

    if text.is_empty() {
        return Err(E::Empty);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(E::Whitespace(owned()));
    }
    if text.starts_with('+') {
        return Err(E::LeadingPlus(owned()));
    }
    if text.contains([',', '_', '\'', '，']) {
        return Err(E::GroupSeparator(owned()));
    }
    if text.contains(['e', 'E']) {
        return Err(E::Exponent(owned()));
    }

    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((int_part, frac_part)) => (int_part, Some(frac_part)),
        None => (unsigned, None),
    };
    let bad_char = int_part
        .chars()
        .chain(frac_part.unwrap_or("").chars())
        .find(|c| !c.is_ascii_digit());
    if let Some(ch) = bad_char {
        return Err(E::InvalidCharacter { input: owned(), ch });
    }
    if int_part.is_empty() {
        return Err(E::MissingIntegerDigits(owned()));
    }
    let frac_fen = match frac_part {
        None => 0,
        Some("") => return Err(E::MissingFractionDigits(owned())),
        Some(f) if f.len() > 2 => {
            return Err(E::TooManyDecimals {
                input: owned(),
                decimals: f.len(),
            });
        }
        Some(f) => {
            let digits: i128 = digits_value(f).ok_or_else(|| E::OutOfRange(owned()))?;
            if f.len() == 1 { digits * 10 } else { digits }
        }
    };

    // Leading zeros keep the value at zero, so a long run of them cannot overflow i128;
    // anything that does overflow i128 certainly overflows i64.
    let yuan = digits_value(int_part).ok_or_else(|| E::OutOfRange(owned()))?;
    let magnitude = yuan
        .checked_mul(FEN_PER_YUAN)
        .and_then(|fen| fen.checked_add(frac_fen))
        .ok_or_else(|| E::OutOfRange(owned()))?;
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed)
        .map(Money)
        .map_err(|_| E::OutOfRange(owned()))
}

/// Value of an all-ASCII-digit string, or `None` if it exceeds `i128`.
fn digits_value(digits: &str) -> Option<i128> {
    digits.bytes().try_fold(0i128, |acc, b| {
        acc.checked_mul(10)?.checked_add(i128::from(b - b'0'))
    })
}

/// `n / d` rounded to the nearest integer, ties away from zero. `d` must be positive.
fn div_round_half_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if r.abs() * 2 >= d { q + n.signum() } else { q }
}

/// A ratio in basis points: 10000 = 100 %, 3000 = 30 %, 1 = 0.01 %.
///
/// Used for prepayment shares, online-rate targets and progress (DESIGN §4: "ratios are basis
/// points"), so configuration and arithmetic stay integral.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u32", into = "u32")]
pub struct BasisPoints(u32);

impl BasisPoints {
    /// Basis points in one whole (100 %).
    pub const SCALE: u32 = 10_000;
    /// 0 %.
    pub const ZERO: BasisPoints = BasisPoints(0);
    /// 100 %: [`Money::apply_ratio`] with this is the identity.
    pub const ONE_HUNDRED_PERCENT: BasisPoints = BasisPoints(Self::SCALE);
    /// Largest accepted ratio, 10000 %. Progress can exceed 100 % (over-volume orders are valid),
    /// but anything beyond a hundredfold is a configuration or data error.
    pub const MAX: BasisPoints = BasisPoints(1_000_000);

    /// `bp` basis points, rejected above [`BasisPoints::MAX`].
    pub const fn new(bp: u32) -> Result<BasisPoints, BasisPointsError> {
        if bp > Self::MAX.0 {
            Err(BasisPointsError::AboveCap(bp))
        } else {
            Ok(BasisPoints(bp))
        }
    }

    /// The ratio in basis points.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// `part / whole` in basis points, rounded half-up; `None` if `whole` is zero or the ratio
    /// exceeds [`BasisPoints::MAX`].
    ///
    /// For the rates the bureaus monitor (procurement progress, online rate, settlement rate),
    /// where the rounding must be the same in every service.
    pub fn from_ratio(part: u64, whole: u64) -> Option<BasisPoints> {
        if whole == 0 {
            return None;
        }
        // floor(x + ½) with x = part·10000/whole, kept integral: floor((2·part·10000 + whole) / 2·whole).
        let twice_scaled = u128::from(part) * u128::from(Self::SCALE) * 2;
        let whole = u128::from(whole);
        let rounded = (twice_scaled + whole) / (2 * whole);
        u32::try_from(rounded)
            .ok()
            .and_then(|bp| BasisPoints::new(bp).ok())
    }
}

impl TryFrom<u32> for BasisPoints {
    type Error = BasisPointsError;

    fn try_from(bp: u32) -> Result<Self, Self::Error> {
        BasisPoints::new(bp)
    }
}

impl From<BasisPoints> for u32 {
    fn from(bp: BasisPoints) -> u32 {
        bp.0
    }
}

impl fmt::Display for BasisPoints {
    /// As a percentage with two decimals, exact: 3000 → `30.00%`, 1 → `0.01%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

impl JsonSchema for BasisPoints {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("BasisPoints")
    }

    fn schema_id() -> Cow<'static, str> {
        Cow::Borrowed(concat!(module_path!(), "::BasisPoints"))
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "format": "uint32",
            "minimum": 0,
            "maximum": BasisPoints::MAX.0,
            "description": "Ratio in basis points: 10000 = 100%, 3000 = 30%.",
        })
    }
}

/// Why a number is not an acceptable ratio.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasisPointsError {
    #[error("basis points must be at most 1000000 (10000%), got {0}")]
    AboveCap(u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn yuan(text: &str) -> Money {
        Money::parse_yuan(text).unwrap()
    }

    #[test]
    fn display_is_yuan_with_two_decimals() {
        assert_eq!(Money::from_fen(123_456).to_string(), "1234.56");
        assert_eq!(Money::from_fen(-5).to_string(), "-0.05");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(Money::from_fen(100).to_string(), "1.00");
        assert_eq!(Money::from_fen(-120).to_string(), "-1.20");
        assert_eq!(
            Money::from_fen(i64::MIN).to_string(),
            "-92233720368547758.08"
        );
    }

    #[test]
    fn parse_accepts_the_documented_shapes() {
        assert_eq!(yuan("1234.56"), Money::from_fen(123_456));
        assert_eq!(yuan("1234.5"), Money::from_fen(123_450));
        assert_eq!(yuan("1234"), Money::from_fen(123_400));
        assert_eq!(yuan("-0.05"), Money::from_fen(-5));
        assert_eq!(yuan("-0"), Money::ZERO);
        assert_eq!(yuan("007.10"), Money::from_fen(710));
        assert_eq!(yuan("92233720368547758.07"), Money::from_fen(i64::MAX));
        assert_eq!(yuan("-92233720368547758.08"), Money::from_fen(i64::MIN));
    }

    #[test]
    fn parse_rejects_everything_else_naming_the_rule() {
        use MoneyParseError as E;
        type IsExpected = fn(&MoneyParseError) -> bool;
        let cases: &[(&str, IsExpected, &str)] = &[
            ("", |e| matches!(e, E::Empty), "must not be empty"),
            (" 12", |e| matches!(e, E::Whitespace(_)), "whitespace"),
            ("12 ", |e| matches!(e, E::Whitespace(_)), "whitespace"),
            ("+12", |e| matches!(e, E::LeadingPlus(_)), "leading '+'"),
            (
                "1,234.56",
                |e| matches!(e, E::GroupSeparator(_)),
                "separators",
            ),
            ("1e3", |e| matches!(e, E::Exponent(_)), "exponent"),
            ("1.5E2", |e| matches!(e, E::Exponent(_)), "exponent"),
            (
                ".5",
                |e| matches!(e, E::MissingIntegerDigits(_)),
                "before the decimal point",
            ),
            (
                "-.5",
                |e| matches!(e, E::MissingIntegerDigits(_)),
                "before the decimal point",
            ),
            (
                "-",
                |e| matches!(e, E::MissingIntegerDigits(_)),
                "before the decimal point",
            ),
            (
                "12.",
                |e| matches!(e, E::MissingFractionDigits(_)),
                "after the decimal point",
            ),
            (
                "1.234",
                |e| matches!(e, E::TooManyDecimals { decimals: 3, .. }),
                "at most 2 decimals",
            ),
            (
                "1.2.3",
                |e| matches!(e, E::InvalidCharacter { ch: '.', .. }),
                "got '.'",
            ),
            (
                "--1",
                |e| matches!(e, E::InvalidCharacter { ch: '-', .. }),
                "got '-'",
            ),
            (
                "１２",
                |e| matches!(e, E::InvalidCharacter { .. }),
                "ASCII digits",
            ),
            (
                "¥12",
                |e| matches!(e, E::InvalidCharacter { ch: '¥', .. }),
                "got '¥'",
            ),
            (
                "NaN",
                |e| matches!(e, E::InvalidCharacter { .. }),
                "got 'N'",
            ),
            (
                "92233720368547758.08",
                |e| matches!(e, E::OutOfRange(_)),
                "fit in i64 fen",
            ),
            (
                "-92233720368547758.09",
                |e| matches!(e, E::OutOfRange(_)),
                "fit in i64 fen",
            ),
            (
                "999999999999999999999999999999999999999999",
                |e| matches!(e, E::OutOfRange(_)),
                "fit in i64 fen",
            ),
        ];
        for (input, is_expected, message_part) in cases {
            let err = Money::parse_yuan(input).expect_err(input);
            assert!(is_expected(&err), "{input:?} gave {err:?}");
            assert!(err.to_string().contains(message_part), "{input:?}: {err}");
        }
    }

    #[test]
    fn serde_is_a_plain_integer_of_fen() {
        let json = serde_json::to_string(&Money::from_fen(123_456)).unwrap();
        assert_eq!(json, "123456");
        assert_eq!(
            serde_json::from_str::<Money>("-5").unwrap(),
            Money::from_fen(-5)
        );
        assert!(serde_json::from_str::<Money>("12.5").is_err(), "no floats");
        assert!(serde_json::from_str::<Money>("\"12.50\"").is_err());
        assert_eq!(schemars::schema_for!(Money).as_value()["type"], "integer");
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        let max = Money::from_fen(i64::MAX);
        assert_eq!(max.checked_add(Money::from_fen(1)), None);
        assert_eq!(
            Money::from_fen(i64::MIN).checked_sub(Money::from_fen(1)),
            None
        );
        assert_eq!(Money::from_fen(i64::MIN).checked_neg(), None);
        assert_eq!(Money::from_fen(5).checked_neg(), Some(Money::from_fen(-5)));
        assert_eq!(max.mul_quantity(2), None);
        assert_eq!(
            yuan("1280.00").mul_quantity(3),
            Some(yuan("3840.00")),
            "price × quantity"
        );
        assert_eq!(
            Money::checked_sum([yuan("0.10"), yuan("0.20"), yuan("-0.05")]),
            Some(yuan("0.25"))
        );
        assert_eq!(Money::checked_sum([max, Money::from_fen(1)]), None);
        assert!(yuan("-0.01").is_negative());
        assert!(!Money::ZERO.is_negative());
        assert!(Money::ZERO.is_zero());
    }

    #[test]
    fn apply_ratio_rounds_half_away_from_zero_at_the_fen() {
        let thirty = BasisPoints::new(3000).unwrap();
        // 30 % of an annual agreed amount of 1234.57 yuan = 370.371 → 370.37.
        assert_eq!(yuan("1234.57").apply_ratio(thirty), Some(yuan("370.37")));
        // 0.05 yuan × 50 % = 2.5 fen: the half goes up, and away from zero when negative.
        let half = BasisPoints::new(5000).unwrap();
        assert_eq!(
            Money::from_fen(5).apply_ratio(half),
            Some(Money::from_fen(3))
        );
        assert_eq!(
            Money::from_fen(-5).apply_ratio(half),
            Some(Money::from_fen(-3))
        );
        // 2.4999 fen rounds down.
        assert_eq!(
            Money::from_fen(24_999).apply_ratio(BasisPoints::new(1).unwrap()),
            Some(Money::from_fen(2))
        );
        assert_eq!(
            Money::from_fen(i64::MAX).apply_ratio(BasisPoints::MAX),
            None
        );
        assert_eq!(
            Money::from_fen(i64::MAX).apply_ratio(BasisPoints::ZERO),
            Some(Money::ZERO)
        );
    }

    #[test]
    fn basis_points_validation_display_and_serde() {
        assert_eq!(BasisPoints::new(1_000_000), Ok(BasisPoints::MAX));
        let err = BasisPoints::new(1_000_001).unwrap_err();
        assert_eq!(
            err.to_string(),
            "basis points must be at most 1000000 (10000%), got 1000001"
        );
        assert_eq!(BasisPoints::new(3000).unwrap().to_string(), "30.00%");
        assert_eq!(BasisPoints::new(1).unwrap().to_string(), "0.01%");
        assert_eq!(BasisPoints::ONE_HUNDRED_PERCENT.to_string(), "100.00%");
        assert_eq!(
            serde_json::from_str::<BasisPoints>("9000").unwrap(),
            BasisPoints::new(9000).unwrap()
        );
        let bad = serde_json::from_str::<BasisPoints>("2000000").unwrap_err();
        assert!(bad.to_string().contains("at most 1000000"), "{bad}");
        assert_eq!(
            serde_json::to_string(&BasisPoints::new(8000).unwrap()).unwrap(),
            "8000"
        );
    }

    #[test]
    fn from_ratio_rounds_half_up() {
        let bp = |p, w| BasisPoints::from_ratio(p, w).map(BasisPoints::value);
        assert_eq!(bp(1, 3), Some(3333));
        assert_eq!(bp(2, 3), Some(6667));
        assert_eq!(bp(1, 20_000), Some(1), "0.5 bp rounds up");
        assert_eq!(bp(1, 20_001), Some(0));
        assert_eq!(bp(150, 100), Some(15_000), "over-volume is above 100 %");
        assert_eq!(bp(1, 0), None);
        assert_eq!(bp(101, 1), None, "beyond the cap");
        assert_eq!(bp(u64::MAX, u64::MAX), Some(10_000));
    }

    /// Exact rational rounding of `fen × bp / 10000`, half away from zero, written independently
    /// of the implementation (via floor division of the magnitude).
    fn reference_ratio(fen: i64, bp: u32) -> i128 {
        let n = i128::from(fen) * i128::from(bp);
        let magnitude = (n.abs() * 2 + 10_000) / 20_000;
        if n < 0 { -magnitude } else { magnitude }
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(fen in any::<i64>()) {
            let money = Money::from_fen(fen);
            prop_assert_eq!(Money::parse_yuan(&money.to_string()), Ok(money));
        }

        #[test]
        fn checked_add_and_sub_agree_with_i128(a in any::<i64>(), b in any::<i64>()) {
            let (ma, mb) = (Money::from_fen(a), Money::from_fen(b));
            let sum = i128::from(a) + i128::from(b);
            let diff = i128::from(a) - i128::from(b);
            prop_assert_eq!(ma.checked_add(mb).map(|m| i128::from(m.fen())),
                i64::try_from(sum).ok().map(i128::from));
            prop_assert_eq!(ma.checked_sub(mb).map(|m| i128::from(m.fen())),
                i64::try_from(diff).ok().map(i128::from));
        }

        #[test]
        fn checked_mul_agrees_with_i128(a in any::<i64>(), q in any::<i64>()) {
            let exact = i128::from(a) * i128::from(q);
            prop_assert_eq!(Money::from_fen(a).mul_quantity(q).map(Money::fen),
                i64::try_from(exact).ok());
        }

        #[test]
        fn apply_ratio_is_exact_rational_rounding(
            fen in any::<i64>(),
            // Quarter and half ratios make exact half-fen ties common instead of vanishingly rare.
            bp in prop_oneof![0u32..=1_000_000, Just(2_500u32), Just(5_000), Just(7_500), Just(15_000)],
        ) {
            let ratio = BasisPoints::new(bp).unwrap();
            let expected = i64::try_from(reference_ratio(fen, bp)).ok();
            prop_assert_eq!(Money::from_fen(fen).apply_ratio(ratio).map(Money::fen), expected);
        }

        #[test]
        fn ratio_of_one_hundred_percent_is_identity(fen in any::<i64>()) {
            let money = Money::from_fen(fen);
            prop_assert_eq!(money.apply_ratio(BasisPoints::ONE_HUNDRED_PERCENT), Some(money));
        }

        #[test]
        fn from_ratio_is_nearest_basis_point(part in 0u64..1_000_000_000, whole in 1u64..1_000_000_000) {
            let exact_times_two = u128::from(part) * 20_000;
            match BasisPoints::from_ratio(part, whole) {
                Some(bp) => {
                    // bp − ½ ≤ part·10000/whole < bp + ½: nearest, ties going up.
                    let bp2 = u128::from(bp.value()) * 2 * u128::from(whole);
                    let w = u128::from(whole);
                    prop_assert!(bp2 <= exact_times_two + w && exact_times_two < bp2 + w);
                }
                // Only ratios that round above the cap (≥ 1000000.5 bp) are refused.
                None => prop_assert!(exact_times_two >= 2_000_001 * u128::from(whole)),
            }
        }
    }
}
