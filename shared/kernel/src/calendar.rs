//! China's working-day calendar.
//!
//! SLA deadlines such as "the enterprise responds within 3 working days" (DOMAIN "Issue direct
//! reporting") count working days, and China moves them every year: statutory holidays fall on
//! weekdays and weekend days become working days (调休). The dates are announced by the State
//! Council each November, so they are data, not code: embedded for the years known at build time
//! and extendable by an operator file. A year without data is an error, never a guess, because
//! a guessed deadline is a wrong overdue flag on somebody's credit record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use serde::Deserialize;

use crate::clock::{beijing_date, beijing_midnight};

/// The embedded data (2024–2026), see the file's header for its format.
const BUILTIN_TOML: &str = include_str!("../data/calendar-cn.toml");

static BUILTIN: LazyLock<BusinessCalendar> = LazyLock::new(|| {
    BusinessCalendar::from_toml_str(BUILTIN_TOML)
        .unwrap_or_else(|e| panic!("embedded data/calendar-cn.toml is invalid: {e}"))
});

/// Which days are working days in mainland China, for the years it has data for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    years: BTreeMap<i32, YearDays>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct YearDays {
    /// Days off regardless of weekday.
    holidays: BTreeSet<NaiveDate>,
    /// Weekend days that are working days.
    workdays: BTreeSet<NaiveDate>,
}

/// Why a calendar could not be loaded or a calculation could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error(
        "business calendar has no data for year {0}; an operator must add its holidays and make-up working days before working days in it can be counted"
    )]
    YearNotCovered(i32),
    #[error("business calendar must be valid TOML of [years.YYYY] tables: {0}")]
    Toml(toml::de::Error),
    #[error("cannot read business calendar overlay {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("business calendar year key must be a 4-digit year, got {0:?}")]
    YearKey(String),
    #[error(
        "business calendar entry must be a real date YYYY-MM-DD or a range YYYY-MM-DD..YYYY-MM-DD, got {entry:?} in [years.{year}]"
    )]
    DateFormat { year: i32, entry: String },
    #[error(
        "business calendar entry {entry:?} must lie in its own year, but is under [years.{year}]"
    )]
    DateOutsideYear { year: i32, entry: String },
    #[error("business calendar range {entry:?} must not end before it starts")]
    ReversedRange { entry: String },
    #[error("business calendar date {date} must not be listed twice in {list}")]
    Duplicate { date: NaiveDate, list: &'static str },
    #[error(
        "make-up working day {date} falls on {weekday}; only a Saturday or Sunday can be made a working day"
    )]
    MakeUpNotWeekend { date: NaiveDate, weekday: Weekday },
    #[error("business calendar date {date} must not be both a holiday and a make-up working day")]
    HolidayAndWorkday { date: NaiveDate },
    #[error("counting working days from {from} to {to} needs from <= to")]
    ReversedQuery { from: NaiveDate, to: NaiveDate },
}

/// File format: `[years.YYYY]` tables of `holidays` and `workdays`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    #[serde(default)]
    years: BTreeMap<String, RawYear>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    holidays: Vec<String>,
    workdays: Vec<String>,
}

impl BusinessCalendar {
    /// The calendar embedded at build time (2024–2026).
    pub fn builtin() -> BusinessCalendar {
        BUILTIN.clone()
    }

    /// Parses and validates a calendar in the `data/calendar-cn.toml` format.
    pub fn from_toml_str(text: &str) -> Result<BusinessCalendar, CalendarError> {
        let raw: RawCalendar = toml::from_str(text).map_err(CalendarError::Toml)?;
        let mut years = BTreeMap::new();
        for (key, raw_year) in raw.years {
            let year = parse_year_key(&key)?;
            years.insert(year, YearDays::from_raw(year, &raw_year)?);
        }
        Ok(BusinessCalendar { years })
    }

    /// This calendar with the years of `overlay` laid over it: every year the overlay lists
    /// replaces that year entirely, other years are kept. Whole-year replacement keeps each
    /// year exactly as one State Council notice states it, never a mix of two sources.
    pub fn merge(mut self, overlay: BusinessCalendar) -> BusinessCalendar {
        self.years.extend(overlay.years);
        self
    }

    /// This calendar overlaid ([`BusinessCalendar::merge`]) with the operator's file at `path`.
    pub fn with_overlay_file(
        self,
        path: impl AsRef<Path>,
    ) -> Result<BusinessCalendar, CalendarError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(self.merge(BusinessCalendar::from_toml_str(&text)?))
    }

    /// Whether the calendar has data for `year`.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// The years with data, ascending; for start-up checks such as "next year is loaded".
    pub fn covered_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    /// Whether `date` is a working day: holidays are off, make-up days are on, otherwise
    /// Monday–Friday. Fails for a year without data.
    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        let days = self
            .years
            .get(&date.year())
            .ok_or(CalendarError::YearNotCovered(date.year()))?;
        Ok(if days.holidays.contains(&date) {
            false
        } else if days.workdays.contains(&date) {
            true
        } else {
            !is_weekend(date)
        })
    }

    /// The `n`-th working day strictly after `date` (`date` itself for `n = 0`).
    ///
    /// `date` need not be a working day: 1 working day after a Saturday is (usually) Monday.
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> Result<NaiveDate, CalendarError> {
        let mut day = date;
        let mut left = n;
        while left > 0 {
            day = next_day(day)?;
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
    }

    /// The instant a deadline of `n` working days from `start` expires: the end of the `n`-th
    /// working day after `start`'s Beijing date, i.e. the following Beijing midnight.
    ///
    /// Deadlines are half-open: something done at any instant before the returned one is on
    /// time. With `n = 0` the deadline is the end of `start`'s own Beijing day.
    pub fn deadline(&self, start: DateTime<Utc>, n: u32) -> Result<DateTime<Utc>, CalendarError> {
        let last_day = self.add_working_days(beijing_date(start), n)?;
        Ok(beijing_midnight(next_day(last_day)?))
    }

    /// How many working days lie in `(from, to]`, so that
    /// `working_days_between(d, add_working_days(d, n)?) == n`. Fails if `to < from`.
    pub fn working_days_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<u32, CalendarError> {
        if to < from {
            return Err(CalendarError::ReversedQuery { from, to });
        }
        let mut count = 0;
        let mut day = from;
        while day < to {
            day = next_day(day)?;
            if self.is_working_day(day)? {
                count += 1;
            }
        }
        Ok(count)
    }
}

impl YearDays {
    fn from_raw(year: i32, raw: &RawYear) -> Result<YearDays, CalendarError> {
        let holidays = expand_list(year, &raw.holidays, "holidays")?;
        let workdays = expand_list(year, &raw.workdays, "workdays")?;
        if let Some(&date) = holidays.intersection(&workdays).next() {
            return Err(CalendarError::HolidayAndWorkday { date });
        }
        if let Some(&date) = workdays.iter().find(|d| !is_weekend(**d)) {
            return Err(CalendarError::MakeUpNotWeekend {
                date,
                weekday: date.weekday(),
            });
        }
        Ok(YearDays { holidays, workdays })
    }
}

fn parse_year_key(key: &str) -> Result<i32, CalendarError> {
    if key.len() == 4 && key.bytes().all(|b| b.is_ascii_digit()) {
        key.parse()
            .map_err(|_| CalendarError::YearKey(key.to_owned()))
    } else {
        Err(CalendarError::YearKey(key.to_owned()))
    }
}

/// Expands dates and inclusive ranges, rejecting any date outside `year` or listed twice.
fn expand_list(
    year: i32,
    entries: &[String],
    list: &'static str,
) -> Result<BTreeSet<NaiveDate>, CalendarError> {
    let mut dates = BTreeSet::new();
    for entry in entries {
        let (first, last) = match entry.split_once("..") {
            Some((a, b)) => (parse_date(year, entry, a)?, parse_date(year, entry, b)?),
            None => {
                let d = parse_date(year, entry, entry)?;
                (d, d)
            }
        };
        if last < first {
            return Err(CalendarError::ReversedRange {
                entry: entry.clone(),
            });
        }
        for date in first.iter_days().take_while(|d| *d <= last) {
            if !dates.insert(date) {
                return Err(CalendarError::Duplicate { date, list });
            }
        }
    }
    Ok(dates)
}

/// Reads exactly `YYYY-MM-DD` (chrono's `%m`/`%d` would also take `2024-1-1`).
fn parse_date(year: i32, entry: &str, text: &str) -> Result<NaiveDate, CalendarError> {
    let bad = || CalendarError::DateFormat {
        year,
        entry: entry.to_owned(),
    };
    let b = text.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(bad());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad())?;
    if date.year() != year {
        return Err(CalendarError::DateOutsideYear {
            year,
            entry: entry.to_owned(),
        });
    }
    Ok(date)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The day after `date`; the only date without one is chrono's maximum, whose next year is by
/// definition not covered.
fn next_day(date: NaiveDate) -> Result<NaiveDate, CalendarError> {
    date.succ_opt()
        .ok_or(CalendarError::YearNotCovered(date.year().saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::BEIJING;
    use chrono::{NaiveTime, TimeZone};
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn beijing(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        BEIJING
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn cal() -> BusinessCalendar {
        BusinessCalendar::builtin()
    }

    #[test]
    fn three_working_days_across_the_2026_spring_festival() {
        // 2/13 Fri, 2/14 make-up Saturday, 2/15–2/23 holidays, then 2/24.
        assert_eq!(
            cal().add_working_days(date(2026, 2, 12), 3).unwrap(),
            date(2026, 2, 24)
        );
        assert_eq!(
            cal().deadline(beijing(2026, 2, 12, 10), 3).unwrap(),
            beijing(2026, 2, 25, 0)
        );
    }

    #[test]
    fn make_up_days_and_holidays_from_domain_md() {
        let c = cal();
        assert!(
            c.is_working_day(date(2024, 10, 12)).unwrap(),
            "2024-10-12 Sat is make-up"
        );
        assert!(
            !c.is_working_day(date(2025, 10, 8)).unwrap(),
            "2025-10-08 Wed is a holiday"
        );
        assert!(
            c.is_working_day(date(2026, 9, 20)).unwrap(),
            "2026-09-20 Sun is make-up"
        );
        assert!(
            !c.is_working_day(date(2026, 9, 19)).unwrap(),
            "ordinary Saturday"
        );
        assert!(
            c.is_working_day(date(2026, 9, 24)).unwrap(),
            "ordinary Thursday"
        );
        assert!(
            !c.is_working_day(date(2024, 2, 16)).unwrap(),
            "Spring Festival Friday"
        );
    }

    #[test]
    fn yearly_totals_match_a_hand_count() {
        // Weekdays − holidays falling on weekdays + make-up days, counted by hand from the
        // notices: 2024 = 262 − 19 + 8, 2025 = 261 − 18 + 5, 2026 = 261 − 19 + 6. A dropped or
        // mistyped entry in the data file (or a broken range expansion) changes these.
        let c = cal();
        // (Dec 31 of the year before, Dec 31] is exactly the year; the excluded start day
        // needs no data.
        let in_year = |y| {
            c.working_days_between(date(y - 1, 12, 31), date(y, 12, 31))
                .unwrap()
        };
        assert_eq!(in_year(2024), 251);
        assert_eq!(in_year(2025), 248);
        assert_eq!(in_year(2026), 248);
    }

    #[test]
    fn uncovered_years_fail_instead_of_guessing() {
        let c = cal();
        assert!(c.covers(2026) && !c.covers(2027) && !c.covers(2023));
        assert_eq!(
            c.covered_years().collect::<Vec<_>>(),
            vec![2024, 2025, 2026]
        );
        assert!(matches!(
            c.is_working_day(date(2027, 1, 4)),
            Err(CalendarError::YearNotCovered(2027))
        ));
        // Walking off the end of the data is caught too, not just a start date outside it.
        assert!(matches!(
            c.add_working_days(date(2026, 12, 30), 5),
            Err(CalendarError::YearNotCovered(2027))
        ));
        let err = c.deadline(beijing(2026, 12, 31, 9), 1).unwrap_err();
        assert!(err.to_string().contains("no data for year 2027"), "{err}");
    }

    #[test]
    fn zero_working_days_is_the_same_day_and_deadline_is_its_end() {
        let c = cal();
        assert_eq!(
            c.add_working_days(date(2026, 2, 15), 0).unwrap(),
            date(2026, 2, 15)
        );
        assert_eq!(
            c.deadline(beijing(2026, 2, 15, 23), 0).unwrap(),
            beijing(2026, 2, 16, 0)
        );
    }

    #[test]
    fn deadline_uses_the_beijing_date_of_start() {
        // 2026-02-12T17:00Z is already Friday 2/13 01:00 in Beijing, so counting starts a day
        // later than for a UTC reading of the date.
        let start = Utc.with_ymd_and_hms(2026, 2, 12, 17, 0, 0).unwrap();
        assert_eq!(cal().deadline(start, 1).unwrap(), beijing(2026, 2, 15, 0));
        assert_eq!(cal().deadline(start, 2).unwrap(), beijing(2026, 2, 25, 0));
    }

    #[test]
    fn working_days_between_counts_the_half_open_interval() {
        let c = cal();
        assert_eq!(
            c.working_days_between(date(2026, 2, 12), date(2026, 2, 24))
                .unwrap(),
            3
        );
        assert_eq!(
            c.working_days_between(date(2026, 2, 12), date(2026, 2, 12))
                .unwrap(),
            0
        );
        // Across a year boundary: 2024-12-31 Tue → 2025-01-02 Thu (1/1 holiday).
        assert_eq!(
            c.working_days_between(date(2024, 12, 31), date(2025, 1, 2))
                .unwrap(),
            1
        );
        assert!(matches!(
            c.working_days_between(date(2026, 2, 24), date(2026, 2, 12)),
            Err(CalendarError::ReversedQuery { .. })
        ));
    }

    #[test]
    fn builtin_data_is_the_embedded_file() {
        assert_eq!(
            BusinessCalendar::from_toml_str(BUILTIN_TOML).unwrap(),
            cal()
        );
    }

    const OVERLAY_2027: &str = r#"
        [years.2027]
        holidays = ["2027-01-01"]
        workdays = []
    "#;

    #[test]
    fn overlay_adds_and_replaces_whole_years() {
        let overlay = BusinessCalendar::from_toml_str(OVERLAY_2027).unwrap();
        let c = cal().merge(overlay);
        assert!(c.covers(2026) && c.covers(2027));
        assert!(!c.is_working_day(date(2027, 1, 1)).unwrap());
        assert!(c.is_working_day(date(2027, 1, 4)).unwrap());

        // Replacing 2026 with a year that has no holidays makes 2026-02-16 a working Monday.
        let replace =
            BusinessCalendar::from_toml_str("[years.2026]\nholidays = []\nworkdays = []\n")
                .unwrap();
        let c = cal().merge(replace);
        assert!(c.is_working_day(date(2026, 2, 16)).unwrap());
        assert!(
            !c.is_working_day(date(2026, 2, 14)).unwrap(),
            "make-up day replaced too"
        );
        assert!(
            !c.is_working_day(date(2025, 10, 8)).unwrap(),
            "other years kept"
        );
    }

    #[test]
    fn overlay_file_is_read_and_missing_file_names_the_path() {
        let path = std::env::temp_dir().join(format!("vbp-calendar-{}.toml", uuid::Uuid::now_v7()));
        std::fs::write(&path, OVERLAY_2027).unwrap();
        let loaded = cal().with_overlay_file(&path);
        std::fs::remove_file(&path).unwrap();
        assert!(loaded.unwrap().covers(2027));

        let err = cal().with_overlay_file(&path).unwrap_err();
        assert!(matches!(err, CalendarError::Io { .. }));
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn invalid_data_is_rejected_naming_the_rule() {
        let load = |body: &str| BusinessCalendar::from_toml_str(body).unwrap_err();
        let year = |h: &str, w: &str| format!("[years.2026]\nholidays = [{h}]\nworkdays = [{w}]\n");

        assert!(
            matches!(load("[years.26]\nholidays=[]\nworkdays=[]"), CalendarError::YearKey(k) if k == "26")
        );
        assert!(
            matches!(load("[years.2026]\nholidays=[]"), CalendarError::Toml(_)),
            "workdays required"
        );
        assert!(matches!(
            load("[years.2026]\nholidays=[]\nworkdays=[]\nextra=1"),
            CalendarError::Toml(_)
        ));
        assert!(matches!(
            load("[year.2026]\nholidays=[]\nworkdays=[]"),
            CalendarError::Toml(_)
        ));
        for bad in [
            "\"2026-1-1\"",
            "\"2026/01/01\"",
            "\"2026-02-30\"",
            "\" 2026-01-01\"",
            "\"2026-01-01..\"",
        ] {
            let err = load(&year(bad, ""));
            assert!(
                matches!(err, CalendarError::DateFormat { year: 2026, .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        }
        assert!(matches!(
            load(&year("\"2025-12-31\"", "")),
            CalendarError::DateOutsideYear { year: 2026, .. }
        ));
        assert!(matches!(
            load(&year("\"2026-12-31..2027-01-02\"", "")),
            CalendarError::DateOutsideYear { .. }
        ));
        assert!(matches!(
            load(&year("\"2026-02-23..2026-02-15\"", "")),
            CalendarError::ReversedRange { .. }
        ));
        assert!(matches!(
            load(&year("\"2026-02-15..2026-02-23\", \"2026-02-20\"", "")),
            CalendarError::Duplicate {
                list: "holidays",
                ..
            }
        ));
        let err = load(&year("", "\"2026-02-16\""));
        assert!(matches!(
            err,
            CalendarError::MakeUpNotWeekend {
                weekday: Weekday::Mon,
                ..
            }
        ));
        assert!(
            err.to_string().contains("only a Saturday or Sunday"),
            "{err}"
        );
        assert!(matches!(
            load(&year("\"2026-02-14\"", "\"2026-02-14\"")),
            CalendarError::HolidayAndWorkday { .. }
        ));
    }

    fn covered_date() -> impl Strategy<Value = NaiveDate> {
        // Up to 2026-10-31, so 30 working days later is still inside the data.
        let first = date(2024, 1, 1);
        let span = (date(2026, 10, 31) - first).num_days();
        (0..=span).prop_map(move |offset| first + chrono::Duration::days(offset))
    }

    proptest! {
        #[test]
        fn add_working_days_lands_on_the_nth_working_day(d in covered_date(), n in 1u32..=30) {
            let c = cal();
            let result = c.add_working_days(d, n).unwrap();
            prop_assert!(c.is_working_day(result).unwrap());
            prop_assert!(result > d);
            let counted = d.iter_days().skip(1).take_while(|x| *x <= result)
                .filter(|x| c.is_working_day(*x).unwrap()).count();
            prop_assert_eq!(counted, n as usize);
            prop_assert_eq!(c.working_days_between(d, result).unwrap(), n);
        }

        #[test]
        fn add_working_days_is_strictly_increasing_in_n(d in covered_date(), n in 0u32..30) {
            let c = cal();
            prop_assert!(c.add_working_days(d, n + 1).unwrap() > c.add_working_days(d, n).unwrap());
        }

        #[test]
        fn deadline_is_a_beijing_midnight_after_start(
            d in covered_date(), secs in 0i64..86_400, n in 0u32..=30,
        ) {
            let start = beijing_midnight(d) + chrono::Duration::seconds(secs);
            let due = cal().deadline(start, n).unwrap();
            prop_assert_eq!(due.with_timezone(&BEIJING).time(), NaiveTime::MIN);
            prop_assert!(due > start);
            prop_assert_eq!(beijing_date(due - chrono::Duration::seconds(1)),
                cal().add_working_days(d, n).unwrap());
        }
    }
}
