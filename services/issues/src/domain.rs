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
    /// Largest evidence file accepted, in bytes (10 MiB).
    pub evidence_max_bytes: u64,
    /// Issues of one type against one enterprise that make a repeat (3).
    pub repeat_threshold: u32,
    /// Days the repeats are counted over (90).
    pub repeat_window_days: u32,
    /// Largest base64 `.xlsx` export returned over RPC.
    pub max_export_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enterprise_response_working_days: 3,
            bureau_handling_working_days: 7,
            province_handling_working_days: 10,
            auto_resolve_days: 30,
            auto_escalate_when_overdue: true,
            evidence_max_bytes: 10 * 1024 * 1024,
            repeat_threshold: 3,
            repeat_window_days: 90,
            max_export_bytes: 960 * 1024,
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
            ("issues.repeat_window_days", self.repeat_window_days),
        ] {
            if v == 0 || v > 366 {
                return Err(format!("{k}: must be between 1 and 366 (got {v})"));
            }
        }
        if self.repeat_threshold < 2 {
            return Err(format!(
                "issues.repeat_threshold: must be at least 2 (got {})",
                self.repeat_threshold
            ));
        }
        if self.evidence_max_bytes == 0 {
            return Err("issues.evidence_max_bytes: must be positive".to_owned());
        }
        Ok(())
    }
}

/// The evidence content type recognised from a file's leading bytes.
pub fn sniff_content_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else {
        None
    }
}

/// A file name as shown to people: 1 to 200 characters, no path, no
/// control characters.
pub fn valid_file_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=200).contains(&n)
        && name.trim() == name
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
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
        assert_eq!(sniff_content_type(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(
            sniff_content_type(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some("image/jpeg")
        );
        assert_eq!(
            sniff_content_type(b"\x89PNG\r\n\x1a\n...."),
            Some("image/png")
        );
        assert_eq!(sniff_content_type(b"GIF89a"), None);
        assert!(valid_file_name("情况说明.pdf"));
        assert!(!valid_file_name("../a.pdf"));
        assert!(!valid_file_name(""));
        let city: RegionCode = "360100".parse().unwrap();
        assert_eq!(region_range(city), (360100, 360199));
    }
}
