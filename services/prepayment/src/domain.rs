//! Pure rules: configuration, the ratio that applies, the prepayment figure,
//! offsets and who may approve. No I/O; money is integer fen throughout.

use serde::{Deserialize, Serialize};
use vbp_contracts::prepayment::OffsetRule;
use vbp_kernel::{BasisPoints, Money, RegionCode, RegionLevel};

/// A broken rule, naming the field (or configuration key) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub rule: String,
}

pub fn invalid(field: &str, rule: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_owned(),
        rule: rule.into(),
    }
}

/// One configured ratio: for hospitals in `region`'s subtree and, when set,
/// only for the project with code `project`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatioRule {
    pub region: RegionCode,
    #[serde(default)]
    pub project: Option<String>,
    pub ratio_bp: u32,
}

/// Which bureau level approves a hospital's prepayment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalLevel {
    /// Any bureau whose region contains the hospital's.
    Any,
    Province,
    City,
    County,
}

/// `[prepayment]` in the config file, `VBP_PREPAYMENT__*` in the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Ratio when no rule matches (3000 = 30%).
    pub default_ratio_bp: u32,
    /// Per region (and optionally project) ratios; the most specific wins
    /// (project-specific before region-only, then the deepest region).
    pub ratios: Vec<RatioRule>,
    /// Which bureau level approves.
    pub approval_level: ApprovalLevel,
    /// Working days from approval to disbursement before it is late
    /// (Sichuan: 15); `0` disables the check.
    pub disburse_within_working_days: u32,
    /// How settlements recover the prepayment.
    pub offset_rule: OffsetRule,
    /// A hospital that left an unrecovered balance at a period's close gets
    /// no prepayment in the next period.
    pub block_after_unrecovered: bool,
    /// Largest base64 text of an exported file; an RPC reply must fit the
    /// broker's max payload (1 MiB by default).
    pub max_export_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_ratio_bp: 3000,
            ratios: Vec::new(),
            approval_level: ApprovalLevel::Any,
            disburse_within_working_days: 15,
            offset_rule: OffsetRule::Proportional,
            block_after_unrecovered: true,
            max_export_bytes: 960 * 1024,
        }
    }
}

impl Settings {
    /// Rejects settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.default_ratio_bp == 0 || self.default_ratio_bp > BasisPoints::SCALE {
            return Err(invalid(
                "prepayment.default_ratio_bp",
                "must be between 1 and 10000 basis points",
            ));
        }
        for (i, r) in self.ratios.iter().enumerate() {
            if r.ratio_bp == 0 || r.ratio_bp > BasisPoints::SCALE {
                return Err(invalid(
                    &format!("prepayment.ratios[{i}].ratio_bp"),
                    "must be between 1 and 10000 basis points",
                ));
            }
            if r.project.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(invalid(
                    &format!("prepayment.ratios[{i}].project"),
                    "must be a project code when present",
                ));
            }
        }
        Ok(())
    }

    /// The ratio for a hospital in `region` on the project `project_code`,
    /// with the rule that chose it (e.g. `region:510000/project:X`).
    pub fn ratio_for(&self, region: RegionCode, project_code: &str) -> (BasisPoints, String) {
        let best = self
            .ratios
            .iter()
            .filter(|r| r.region.contains(region))
            .filter(|r| r.project.as_deref().is_none_or(|p| p == project_code))
            .max_by_key(|r| (r.project.is_some(), depth(r.region.level())));
        match best {
            Some(r) => {
                let rule = match &r.project {
                    Some(p) => format!("region:{}/project:{p}", r.region),
                    None => format!("region:{}", r.region),
                };
                (bp(r.ratio_bp), rule)
            }
            None => (bp(self.default_ratio_bp), "default".to_owned()),
        }
    }
}

fn bp(v: u32) -> BasisPoints {
    BasisPoints::new(v).unwrap_or(BasisPoints::ZERO)
}

fn depth(level: RegionLevel) -> u8 {
    match level {
        RegionLevel::National => 0,
        RegionLevel::Province => 1,
        RegionLevel::City => 2,
        RegionLevel::County => 3,
    }
}

/// The prepayment: agreed amount × ratio, half-up to the fen
/// (`Money::apply_ratio`).
pub fn prepayment(agreed: Money, ratio: BasisPoints) -> Result<Money, Invalid> {
    agreed
        .apply_ratio(ratio)
        .ok_or_else(|| invalid("agreed_amount_fen", "agreed amount × ratio overflows"))
}

/// What a settlement of `settled` recovers from a positive `balance`:
/// proportional = settled × ratio (half-up), one-to-one = settled; never
/// more than the balance, never negative.
pub fn offset(rule: OffsetRule, settled: Money, ratio: BasisPoints, balance: Money) -> Money {
    if balance.fen() <= 0 || settled.fen() <= 0 {
        return Money::ZERO;
    }
    let want = match rule {
        OffsetRule::Proportional => settled.apply_ratio(ratio).unwrap_or(balance),
        OffsetRule::OneToOne => settled,
    };
    Money::from_fen(want.fen().min(balance.fen()))
}

/// Whether a bureau in `bureau` may approve for a hospital in `hospital`.
pub fn may_approve(level: ApprovalLevel, bureau: RegionCode, hospital: RegionCode) -> bool {
    if !bureau.contains(hospital) {
        return false;
    }
    match level {
        ApprovalLevel::Any => true,
        ApprovalLevel::Province => bureau.level() == RegionLevel::Province,
        ApprovalLevel::City => bureau.level() == RegionLevel::City,
        ApprovalLevel::County => bureau.level() == RegionLevel::County,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RegionCode {
        s.parse().unwrap()
    }

    #[test]
    fn half_fen_rounds_up() {
        // 1 234 567 fen × 30% = 370 370.1 → 370 370; 1 fen × 50% = 0.5 → 1
        let b30 = BasisPoints::new(3000).unwrap();
        let b50 = BasisPoints::new(5000).unwrap();
        assert_eq!(
            prepayment(Money::from_fen(1_234_567), b30).unwrap().fen(),
            370_370
        );
        assert_eq!(prepayment(Money::from_fen(1), b50).unwrap().fen(), 1);
        assert_eq!(
            prepayment(Money::from_fen(12_345), b50).unwrap().fen(),
            6_173
        );
    }

    #[test]
    fn most_specific_ratio_wins() {
        let s = Settings {
            ratios: vec![
                RatioRule {
                    region: r("510000"),
                    project: None,
                    ratio_bp: 5000,
                },
                RatioRule {
                    region: r("210900"),
                    project: None,
                    ratio_bp: 4000,
                },
                RatioRule {
                    region: r("210000"),
                    project: Some("P".into()),
                    ratio_bp: 3500,
                },
            ],
            ..Settings::default()
        };
        assert_eq!(s.ratio_for(r("510104"), "X").0.value(), 5000);
        assert_eq!(
            s.ratio_for(r("210902"), "X"),
            (BasisPoints::new(4000).unwrap(), "region:210900".into())
        );
        assert_eq!(s.ratio_for(r("210902"), "P").1, "region:210000/project:P");
        assert_eq!(
            s.ratio_for(r("110000"), "P"),
            (BasisPoints::new(3000).unwrap(), "default".into())
        );
    }

    #[test]
    fn offsets_never_exceed_the_balance() {
        let b = BasisPoints::new(3000).unwrap();
        let m = Money::from_fen;
        assert_eq!(
            offset(OffsetRule::Proportional, m(10_001), b, m(100_000)),
            m(3_000)
        );
        assert_eq!(
            offset(OffsetRule::OneToOne, m(10_001), b, m(5_000)),
            m(5_000)
        );
        assert_eq!(offset(OffsetRule::OneToOne, m(10_001), b, m(0)), m(0));
    }

    proptest::proptest! {
        /// Under either rule an offset never overdraws the balance, and
        /// disbursed − Σ offsets = balance; the prepayment is the exact
        /// half-up rounding of agreed × ratio.
        #[test]
        fn settlement_sequences_never_overdraw(
            one_to_one in proptest::bool::ANY,
            ratio_bp in 1u32..=10_000,
            agreed in 0i64..50_000_000_000,
            settled in proptest::collection::vec(0i64..5_000_000_000, 0..40),
        ) {
            let rule = if one_to_one { OffsetRule::OneToOne } else { OffsetRule::Proportional };
            let ratio = BasisPoints::new(ratio_bp).unwrap();
            let disbursed = prepayment(Money::from_fen(agreed), ratio).unwrap();
            let exact = agreed as i128 * ratio_bp as i128;
            proptest::prop_assert_eq!(disbursed.fen() as i128, (exact + 5_000) / 10_000);
            let mut balance = disbursed;
            let mut recovered = 0i64;
            let mut wanted = 0i64;
            for s in settled {
                let o = offset(rule, Money::from_fen(s), ratio, balance);
                proptest::prop_assert!(o.fen() >= 0 && o.fen() <= balance.fen());
                balance = Money::from_fen(balance.fen() - o.fen());
                recovered += o.fen();
                wanted += match rule {
                    OffsetRule::OneToOne => s,
                    OffsetRule::Proportional => Money::from_fen(s).apply_ratio(ratio).unwrap().fen(),
                };
            }
            proptest::prop_assert_eq!(disbursed.fen() - recovered, balance.fen());
            proptest::prop_assert_eq!(recovered, wanted.min(disbursed.fen()));
        }
    }

    #[test]
    fn approval_level() {
        assert!(may_approve(ApprovalLevel::City, r("210900"), r("210922")));
        assert!(!may_approve(ApprovalLevel::City, r("210000"), r("210922")));
        assert!(!may_approve(ApprovalLevel::Any, r("210100"), r("210922")));
        assert!(may_approve(
            ApprovalLevel::Province,
            r("210000"),
            r("210922")
        ));
    }

    #[test]
    fn settings_name_the_key() {
        let s = Settings {
            default_ratio_bp: 0,
            ..Settings::default()
        };
        assert_eq!(
            s.validate().unwrap_err().field,
            "prepayment.default_ratio_bp"
        );
    }
}
