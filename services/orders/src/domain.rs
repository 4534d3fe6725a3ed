//! Pure rules: payment deadlines, month bounds in Asia/Shanghai, rates, and
//! the settings of `[orders]`.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{RegionCode, RegionLevel};

/// `[orders]` configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Payment terms by region code (province, city or county; the most
    /// specific wins): a number of calendar days after acceptance instead of
    /// the national default (end of the month following acceptance).
    pub payment_days: BTreeMap<String, u32>,
    /// How far in the future an integrator's business time may lie (clock
    /// skew), in seconds; default 300.
    pub max_future_skew_secs: Option<i64>,
    /// Shortage mode: the most one order line may carry of a product a
    /// bureau flagged short, when the flag names no cap of its own. Unset:
    /// every flag must name its cap.
    pub shortage_line_cap: Option<i64>,
    /// Largest base64 text of an exported file (an RPC reply must fit the
    /// broker's max payload); default 960 KiB.
    pub max_export_bytes: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub rule: String,
}

impl Settings {
    pub fn validate(&self) -> Result<(), Invalid> {
        for (k, v) in &self.payment_days {
            if RegionCode::parse(k).is_err() {
                return Err(Invalid {
                    field: format!("orders.payment_days.{k}"),
                    rule: "keys are 6-digit region codes".into(),
                });
            }
            if *v == 0 || *v > 366 {
                return Err(Invalid {
                    field: format!("orders.payment_days.{k}"),
                    rule: "payment days must be between 1 and 366".into(),
                });
            }
        }
        if self.shortage_line_cap.is_some_and(|c| c < 1) {
            return Err(Invalid {
                field: "orders.shortage_line_cap".into(),
                rule: "a cap per order line is at least 1".into(),
            });
        }
        Ok(())
    }

    pub fn export_limit(&self) -> usize {
        self.max_export_bytes.unwrap_or(960 * 1024)
    }

    pub fn skew(&self) -> Duration {
        Duration::seconds(self.max_future_skew_secs.unwrap_or(300))
    }

    /// Days of payment terms for a hospital in `region`, if configured.
    pub fn days_for(&self, region: RegionCode) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for (k, v) in &self.payment_days {
            let Ok(r) = RegionCode::parse(k) else {
                continue;
            };
            if r.contains(region) {
                let depth = match r.level() {
                    RegionLevel::National => 0,
                    RegionLevel::Province => 1,
                    RegionLevel::City => 2,
                    RegionLevel::County => 3,
                };
                if best.is_none_or(|(d, _)| depth > d) {
                    best = Some((depth, *v));
                }
            }
        }
        best.map(|(_, v)| v)
    }
}

pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8")
}

/// 00:00 Asia/Shanghai of `day`, as an instant.
pub fn start_of_day(day: NaiveDate) -> DateTime<Utc> {
    shanghai()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("fixed offset")
        .with_timezone(&Utc)
}

/// The business date of an instant in Asia/Shanghai.
pub fn local_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&shanghai()).date_naive()
}

/// First day of the month `n` months after the month of `day`.
pub fn add_months(day: NaiveDate, n: u32) -> NaiveDate {
    let m0 = day.month0() + n;
    NaiveDate::from_ymd_opt(day.year() + (m0 / 12) as i32, m0 % 12 + 1, 1).expect("valid month")
}

/// When payment of an acceptance is due (exclusive instant): by default the
/// end (24:00 Asia/Shanghai) of the month following acceptance; with `days`
/// configured, the end of the day `days` calendar days after acceptance.
pub fn payment_due(accepted_at: DateTime<Utc>, days: Option<u32>) -> DateTime<Utc> {
    let d = local_date(accepted_at);
    match days {
        None => start_of_day(add_months(d, 2)),
        Some(n) => start_of_day(d + Duration::days(n as i64 + 1)),
    }
}

/// `[start, end)` of a month in Asia/Shanghai; `month` must be a 1st.
pub fn month_bounds(month: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    (start_of_day(month), start_of_day(add_months(month, 1)))
}

/// part ÷ whole in basis points, half-up; `None` when whole is zero.
pub fn rate_bp(part: i64, whole: i64) -> Option<u32> {
    if whole <= 0 {
        return None;
    }
    let part = part.max(0) as i128;
    let whole = whole as i128;
    Some(((part * 10_000 * 2 + whole) / (2 * whole)) as u32)
}

/// Range of region integers a region covers (`lo..=hi`).
pub fn region_range(region: RegionCode) -> (i32, i32) {
    region.subtree_range()
}

pub fn region_from_i32(v: i32) -> RegionCode {
    RegionCode::parse(&format!("{v:06}")).unwrap_or(RegionCode::NATIONAL)
}

/// Shortage mode's rule for one order line: a line above the cap is
/// capped (not split): the order carries `cap` and remembers what was asked,
/// so no single large order empties a short product and the hospital may
/// order again once others are served. Returns (quantity, requested).
pub fn cap_line(quantity: i64, cap: Option<i64>) -> (i64, Option<i64>) {
    match cap {
        Some(c) if quantity > c => (c, Some(quantity)),
        _ => (quantity, None),
    }
}

/// A non-empty reason of at most 500 characters.
pub fn reason(field: &str, text: Option<&str>) -> Result<String, Invalid> {
    let t = text.map(str::trim).unwrap_or_default();
    if t.is_empty() {
        return Err(Invalid {
            field: field.into(),
            rule: "a reason is required".into(),
        });
    }
    if t.chars().count() > 500 {
        return Err(Invalid {
            field: field.into(),
            rule: "a reason has at most 500 characters".into(),
        });
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn due_dates_are_the_end_of_the_following_month_in_shanghai() {
        assert_eq!(
            payment_due(at("2025-01-31T10:00:00+08:00"), None),
            at("2025-03-01T00:00:00+08:00")
        );
        assert_eq!(
            payment_due(at("2025-02-28T23:59:00+08:00"), None),
            at("2025-04-01T00:00:00+08:00")
        );
        assert_eq!(
            payment_due(at("2024-12-15T09:00:00+08:00"), None),
            at("2025-02-01T00:00:00+08:00")
        );
        // 2025-01-31T20:00Z is already 1 February in Shanghai.
        assert_eq!(
            payment_due(at("2025-01-31T20:00:00Z"), None),
            at("2025-04-01T00:00:00+08:00")
        );
        // 30 days: due by the end of day 30.
        assert_eq!(
            payment_due(at("2025-01-31T10:00:00+08:00"), Some(30)),
            at("2025-03-03T00:00:00+08:00")
        );
    }

    #[test]
    fn most_specific_region_terms_win() {
        let s = Settings {
            payment_days: [("430000".to_owned(), 30), ("430100".to_owned(), 20)].into(),
            ..Settings::default()
        };
        assert_eq!(s.days_for("430102".parse().unwrap()), Some(20));
        assert_eq!(s.days_for("430900".parse().unwrap()), Some(30));
        assert_eq!(s.days_for("210902".parse().unwrap()), None);
        assert!(s.validate().is_ok());
        let zero_cap = Settings {
            shortage_line_cap: Some(0),
            ..Settings::default()
        };
        assert_eq!(
            zero_cap.validate().unwrap_err().field,
            "orders.shortage_line_cap"
        );
    }

    #[test]
    fn shortage_caps_large_lines_and_keeps_what_was_asked() {
        assert_eq!(cap_line(500, Some(50)), (50, Some(500)));
        assert_eq!(cap_line(50, Some(50)), (50, None));
        assert_eq!(cap_line(7, None), (7, None));
    }

    #[test]
    fn rates_round_half_up() {
        assert_eq!(rate_bp(1, 3), Some(3333));
        assert_eq!(rate_bp(2, 3), Some(6667));
        assert_eq!(rate_bp(5, 0), None);
        assert_eq!(rate_bp(10, 10), Some(10_000));
    }
}
