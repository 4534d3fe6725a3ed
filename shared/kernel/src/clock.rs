//! Time as a dependency, and the business time zone.
//!
//! Deadlines, timers and period bounds must be testable without sleeping (DESIGN §5), so logic
//! reads "now" from a [`Clock`] it was given; tests hand it a [`ManualClock`] and move time.
//! Business dates are Beijing dates: an agreement period "2024年8月1日零时" starts at
//! 2024-08-01T00:00+08:00, whatever the server's zone.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, Utc};

/// Source of the current instant.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The clock services share; cheap to clone into every task.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock, for production.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// A [`SharedClock`] reading the system time.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to. Clones share the same time, so a test keeps one
/// handle and gives [`ManualClock::shared`] to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(at)),
        }
    }

    /// Jumps to `at` (backwards too, to test clock skew).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.lock() = at;
    }

    /// Moves the time by `by` (negative moves it back).
    ///
    /// # Panics
    /// If the result is outside chrono's representable range (about ±262,000 years).
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now = now
            .checked_add_signed(by)
            .expect("ManualClock advanced beyond chrono's representable range");
    }

    /// This clock as a [`SharedClock`], sharing its time with `self`.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A panic while holding the lock cannot leave a half-written `DateTime`, so the value
        // is still valid and the poison can be ignored.
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

/// China Standard Time, UTC+08:00, the zone of every business date and deadline. China has not
/// observed daylight saving time since 1991, so a fixed offset is exact for all dates the
/// platform handles and needs no time-zone database.
pub const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+08:00 is a valid offset"),
};

/// The calendar date in Beijing at instant `at`.
pub fn beijing_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&BEIJING).date_naive()
}

/// The instant Beijing's `date` begins (00:00+08:00), i.e. the previous day 16:00 UTC.
///
/// # Panics
/// Only for `NaiveDate::MIN`, whose Beijing midnight precedes chrono's earliest instant.
pub fn beijing_midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN)
        .and_local_timezone(BEIJING)
        .single()
        .expect("Beijing midnight is representable for every date after NaiveDate::MIN")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::new(utc(2026, 2, 12, 2, 0));
        let shared: SharedClock = clock.shared();
        assert_eq!(shared.now(), utc(2026, 2, 12, 2, 0));

        clock.advance(Duration::hours(30));
        assert_eq!(shared.now(), utc(2026, 2, 13, 8, 0));

        clock.set(utc(2025, 1, 1, 0, 0));
        assert_eq!(shared.now(), utc(2025, 1, 1, 0, 0));

        clock.advance(Duration::minutes(-1));
        assert_eq!(clock.now(), utc(2024, 12, 31, 23, 59));
    }

    #[test]
    fn system_clock_reads_the_current_time() {
        let before = Utc::now();
        let now = SystemClock::shared().now();
        assert!(now >= before && now - before < Duration::seconds(5));
    }

    #[test]
    fn beijing_date_changes_at_16_utc() {
        let date = NaiveDate::from_ymd_opt(2024, 8, 1).unwrap();
        assert_eq!(
            beijing_date(utc(2024, 7, 31, 15, 59)),
            NaiveDate::from_ymd_opt(2024, 7, 31).unwrap()
        );
        assert_eq!(beijing_date(utc(2024, 7, 31, 16, 0)), date);
        assert_eq!(beijing_date(utc(2024, 8, 1, 15, 59)), date);
    }

    #[test]
    fn beijing_midnight_is_the_start_of_the_agreement_period() {
        // "2024年8月1日零时" = 2024-08-01T00:00+08:00 = 2024-07-31T16:00Z.
        let start = beijing_midnight(NaiveDate::from_ymd_opt(2024, 8, 1).unwrap());
        assert_eq!(start, utc(2024, 7, 31, 16, 0));
        assert_eq!(
            start,
            DateTime::parse_from_rfc3339("2024-08-01T00:00:00+08:00").unwrap()
        );
        assert_eq!(
            beijing_date(start),
            NaiveDate::from_ymd_opt(2024, 8, 1).unwrap()
        );
        assert_eq!(BEIJING.local_minus_utc(), 8 * 3600);
    }
}
