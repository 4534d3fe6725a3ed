//! Pure rules: configuration, terms (weeks, months, quarters in Beijing
//! time), ratios and scoping ranges.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_contracts::supervision::Thresholds;
use vbp_kernel::{RegionCode, RegionLevel, beijing_date, beijing_midnight};

/// `[supervision]` in the config file, `VBP_SUPERVISION__*` in the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Progress may lag time progress by this much before it is slow (0:
    /// Guigang, "不低于序时进度").
    pub slow_progress_tolerance_bp: i64,
    /// Online purchase share below which a hospital is reminded (Guigang:
    /// consumables 80 %).
    pub online_rate_min_bp: i64,
    /// Paid share of what fell due below which a hospital is named.
    pub settlement_rate_min_bp: i64,
    /// Progress below this share of time progress counts as a false volume
    /// report (报而不用), once time progress reaches `false_report_after_bp`.
    pub false_report_progress_share_bp: i64,
    pub false_report_after_bp: i64,
    /// Working days an enterprise has to rectify at each level.
    pub rectify_working_days: u32,
    /// Escalation levels of a credit record, lowest first; a record starts
    /// at the first and moves up one per missed deadline.
    pub credit_levels: Vec<String>,
    /// Days of orders looked at when judging selective delivery.
    pub selective_window_days: u32,
    /// Hospitals of the area the distributor must have served in the window
    /// for a refusal or delay elsewhere to count as selective.
    pub selective_min_served: i64,
    /// Calendar days after placement without a shipment that make an order
    /// delayed.
    pub delivery_delay_days: u32,
    /// File an issue in issue direct reporting for each finding.
    pub file_issues: bool,
    /// File a credit record for each finding and repeated-issue signal.
    pub file_credit_records: bool,
    /// Generate each month's reminders and each quarter's notices for the
    /// whole deployment when the month (quarter) is over.
    pub auto_generate: bool,
    /// Largest base64 `.xlsx` export returned over RPC.
    pub max_export_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            slow_progress_tolerance_bp: 0,
            online_rate_min_bp: 8_000,
            settlement_rate_min_bp: 9_000,
            false_report_progress_share_bp: 5_000,
            false_report_after_bp: 2_500,
            rectify_working_days: 10,
            credit_levels: vec![
                "限期整改 rectification notice".to_owned(),
                "约谈 interview".to_owned(),
                "信用评价降级 credit rating lowered".to_owned(),
                "取消中选资格并公开 disqualification and public record".to_owned(),
            ],
            selective_window_days: 30,
            selective_min_served: 1,
            delivery_delay_days: 3,
            file_issues: true,
            file_credit_records: true,
            auto_generate: true,
            max_export_bytes: 960 * 1024,
        }
    }
}

impl Settings {
    /// Rejects settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in [
            (
                "supervision.slow_progress_tolerance_bp",
                self.slow_progress_tolerance_bp,
            ),
            ("supervision.online_rate_min_bp", self.online_rate_min_bp),
            (
                "supervision.settlement_rate_min_bp",
                self.settlement_rate_min_bp,
            ),
            (
                "supervision.false_report_progress_share_bp",
                self.false_report_progress_share_bp,
            ),
            (
                "supervision.false_report_after_bp",
                self.false_report_after_bp,
            ),
        ] {
            if !(0..=10_000).contains(&v) {
                return Err(format!("{k}: must be between 0 and 10000 (got {v})"));
            }
        }
        for (k, v) in [
            (
                "supervision.rectify_working_days",
                self.rectify_working_days,
            ),
            (
                "supervision.selective_window_days",
                self.selective_window_days,
            ),
            ("supervision.delivery_delay_days", self.delivery_delay_days),
        ] {
            if v == 0 || v > 366 {
                return Err(format!("{k}: must be between 1 and 366 (got {v})"));
            }
        }
        if self.selective_min_served < 1 {
            return Err(format!(
                "supervision.selective_min_served: must be at least 1 (got {})",
                self.selective_min_served
            ));
        }
        if self.credit_levels.is_empty() || self.credit_levels.iter().any(|l| l.trim().is_empty()) {
            return Err(
                "supervision.credit_levels: must name at least one level, none blank".into(),
            );
        }
        Ok(())
    }

    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            slow_progress_tolerance_bp: self.slow_progress_tolerance_bp,
            online_rate_min_bp: self.online_rate_min_bp,
            settlement_rate_min_bp: self.settlement_rate_min_bp,
            false_report_progress_share_bp: self.false_report_progress_share_bp,
            false_report_after_bp: self.false_report_after_bp,
            rectify_working_days: self.rectify_working_days,
            credit_levels: self.credit_levels.clone(),
            selective_window_days: self.selective_window_days,
            selective_min_served: self.selective_min_served,
            delivery_delay_days: self.delivery_delay_days,
            file_issues: self.file_issues,
            file_credit_records: self.file_credit_records,
            auto_generate: self.auto_generate,
        }
    }

    pub fn level_name(&self, level: u32) -> String {
        self.credit_levels
            .get(level as usize)
            .or(self.credit_levels.last())
            .cloned()
            .unwrap_or_default()
    }

    pub fn last_level(&self) -> u32 {
        self.credit_levels.len().saturating_sub(1) as u32
    }

    /// Progress below time progress by more than the tolerance.
    pub fn is_slow(&self, progress_bp: i64, time_progress_bp: i64) -> bool {
        progress_bp + self.slow_progress_tolerance_bp < time_progress_bp
    }

    /// 报而不用: far below what time progress implies.
    pub fn is_false_report(&self, progress_bp: i64, time_progress_bp: i64) -> bool {
        time_progress_bp >= self.false_report_after_bp
            && progress_bp * 10_000 < time_progress_bp * self.false_report_progress_share_bp
    }
}

/// `n / d` in basis points, rounded half-up; `None` when `d` is zero.
pub fn bp(n: i64, d: i64) -> Option<i64> {
    if d <= 0 {
        return None;
    }
    Some((2 * n as i128 * 10_000 + d as i128).div_euclid(2 * d as i128) as i64)
}

/// Elapsed share of `[start, end)` at `at`, clamped to 0..=10000.
pub fn time_progress_bp(start: DateTime<Utc>, end: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    let total = (end - start).num_seconds();
    let done = (at - start).num_seconds().clamp(0, total.max(0));
    bp(done, total).unwrap_or(0)
}

/// Monday of the Beijing week containing `day`.
pub fn week_start(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// `[start, end)` of the Beijing week containing `day`.
pub fn week_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let m = week_start(day);
    (beijing_midnight(m), beijing_midnight(m + Duration::days(7)))
}

/// The Beijing date of an instant.
pub fn date_of(t: DateTime<Utc>) -> NaiveDate {
    beijing_date(t)
}

/// A reminder month or notice quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    Month(i32, u32),
    Quarter(i32, u32),
}

impl Term {
    /// Parses `2026-03` or `2026Q1`.
    pub fn parse(s: &str) -> Option<Term> {
        if let Some((y, q)) = s.split_once('Q') {
            let (y, q) = (y.parse().ok()?, q.parse().ok()?);
            return Term::quarter(y, q);
        }
        let (y, m) = s.split_once('-')?;
        if m.len() != 2 {
            return None;
        }
        Term::month(y.parse().ok()?, m.parse().ok()?)
    }

    pub fn month(year: i32, month: u32) -> Option<Term> {
        ((1..=12).contains(&month) && (2000..=2100).contains(&year))
            .then_some(Term::Month(year, month))
    }

    pub fn quarter(year: i32, quarter: u32) -> Option<Term> {
        ((1..=4).contains(&quarter) && (2000..=2100).contains(&year))
            .then_some(Term::Quarter(year, quarter))
    }

    pub fn label(self) -> String {
        match self {
            Term::Month(y, m) => format!("{y}-{m:02}"),
            Term::Quarter(y, q) => format!("{y}Q{q}"),
        }
    }

    /// First day of the term and of the term after (Beijing dates).
    pub fn dates(self) -> (NaiveDate, NaiveDate) {
        let first = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, 1).expect("valid month");
        let (y, m, months) = match self {
            Term::Month(y, m) => (y, m, 1),
            Term::Quarter(y, q) => (y, (q - 1) * 3 + 1, 3),
        };
        let end_m = m + months;
        let end = if end_m > 12 {
            first(y + 1, end_m - 12)
        } else {
            first(y, end_m)
        };
        (first(y, m), end)
    }

    /// `[start, end)` in Beijing time.
    pub fn bounds(self) -> (DateTime<Utc>, DateTime<Utc>) {
        let (a, b) = self.dates();
        (beijing_midnight(a), beijing_midnight(b))
    }
}

/// `[start, end)` of a Beijing calendar year.
pub fn year_bounds(year: i32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if !(2000..=2100).contains(&year) {
        return None;
    }
    let a = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let b = NaiveDate::from_ymd_opt(year + 1, 1, 1)?;
    Some((beijing_midnight(a), beijing_midnight(b)))
}

/// Inclusive integer range of a region's subtree.
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

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn defaults_follow_the_notices_and_validate() {
        let s = Settings::default();
        assert_eq!(s.online_rate_min_bp, 8_000);
        assert!(s.validate().is_ok());
        let bad = Settings {
            online_rate_min_bp: 12_000,
            ..s.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("supervision.online_rate_min_bp")
        );
        let bad = Settings {
            credit_levels: vec![],
            ..s.clone()
        };
        assert!(bad.validate().unwrap_err().contains("credit_levels"));
        assert_eq!(s.level_name(0), s.credit_levels[0]);
        assert_eq!(s.level_name(99), s.credit_levels[3]);
        assert_eq!(s.last_level(), 3);
    }

    #[test]
    fn slow_is_below_time_progress_and_false_report_far_below() {
        let s = Settings::default();
        assert!(s.is_slow(4_999, 5_000));
        assert!(!s.is_slow(5_000, 5_000));
        assert!(s.is_false_report(2_499, 5_000));
        assert!(!s.is_false_report(2_500, 5_000));
        // Too early in the period to judge.
        assert!(!s.is_false_report(0, 2_000));
    }

    #[test]
    fn ratios_round_half_up() {
        assert_eq!(bp(1, 3), Some(3_333));
        assert_eq!(bp(2, 3), Some(6_667));
        assert_eq!(bp(1, 0), None);
        let p = time_progress_bp(
            at("2024-08-01T00:00:00+08:00"),
            at("2025-08-01T00:00:00+08:00"),
            at("2025-02-01T00:00:00+08:00"),
        );
        // 184 of 365 days.
        assert_eq!(p, 5_041);
        assert_eq!(
            time_progress_bp(
                at("2024-08-01T00:00:00+08:00"),
                at("2025-08-01T00:00:00+08:00"),
                at("2026-01-01T00:00:00+08:00"),
            ),
            10_000
        );
    }

    #[test]
    fn weeks_and_terms_are_beijing_time() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(); // a Sunday
        assert_eq!(week_start(d), NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        let (a, b) = week_bounds(d);
        assert_eq!(a.to_rfc3339(), "2026-03-01T16:00:00+00:00");
        assert_eq!(b.to_rfc3339(), "2026-03-08T16:00:00+00:00");
        assert_eq!(Term::parse("2026-03"), Some(Term::Month(2026, 3)));
        assert_eq!(Term::parse("2026Q4"), Some(Term::Quarter(2026, 4)));
        assert_eq!(Term::parse("2026-13"), None);
        assert_eq!(Term::parse("2026Q5"), None);
        assert_eq!(Term::parse("March"), None);
        let (a, b) = Term::Quarter(2026, 4).bounds();
        assert_eq!(a.to_rfc3339(), "2026-09-30T16:00:00+00:00");
        assert_eq!(b.to_rfc3339(), "2026-12-31T16:00:00+00:00");
        assert_eq!(Term::Month(2026, 12).label(), "2026-12");
        let city: RegionCode = "210900".parse().unwrap();
        assert_eq!(region_range(city), (210900, 210999));
    }
}
