//! Pure rules: configuration, scoping ranges and response validation.

use serde::{Deserialize, Serialize};
use vbp_contracts::issues::CauseKind;
use vbp_kernel::{RegionCode, RegionLevel};

/// `[issues]` in the config file, `VBP_ISSUES__*` in the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Working days for the enterprise response after dispatch (3).
    pub enterprise_response_working_days: u32,
    /// Working days for the territorial bureau after it receives the case (7).
    pub bureau_handling_working_days: u32,
    /// Working days for the province after escalation (10).
    pub province_handling_working_days: u32,
    /// Calendar days after feedback until it counts as resolved (30).
    pub auto_resolve_days: u32,
    /// Escalate to the province automatically when the bureau is overdue.
    pub auto_escalate_when_overdue: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enterprise_response_working_days: 3,
            bureau_handling_working_days: 7,
            province_handling_working_days: 10,
            auto_resolve_days: 30,
            auto_escalate_when_overdue: true,
        }
    }
}

impl Settings {
    /// Rejects settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in [
            (
                "issues.enterprise_response_working_days",
                self.enterprise_response_working_days,
            ),
            (
                "issues.bureau_handling_working_days",
                self.bureau_handling_working_days,
            ),
            (
                "issues.province_handling_working_days",
                self.province_handling_working_days,
            ),
            ("issues.auto_resolve_days", self.auto_resolve_days),
        ] {
            if v == 0 || v > 366 {
                return Err(format!("{k}: must be between 1 and 366 (got {v})"));
            }
        }
        Ok(())
    }
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

/// Objective causes need a written statement.
pub fn needs_written_statement(kind: CauseKind) -> bool {
    matches!(
        kind,
        CauseKind::Capacity | CauseKind::RawMaterial | CauseKind::Logistics
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_notice_and_validate() {
        let s = Settings::default();
        assert_eq!(s.enterprise_response_working_days, 3);
        assert_eq!(s.bureau_handling_working_days, 7);
        assert_eq!(s.province_handling_working_days, 10);
        assert_eq!(s.auto_resolve_days, 30);
        assert!(s.validate().is_ok());
        let bad = Settings {
            bureau_handling_working_days: 0,
            ..s
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("issues.bureau_handling_working_days")
        );
        assert!(needs_written_statement(CauseKind::Logistics));
        assert!(!needs_written_statement(CauseKind::Other));
        let city: RegionCode = "360100".parse().unwrap();
        assert_eq!(region_range(city), (360100, 360199));
    }
}
