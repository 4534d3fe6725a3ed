//! Files handed out through the RPC API (exports), carried as base64 so a
//! reply stays JSON; the gateway offers them as downloads.

use serde::{Deserialize, Serialize};

/// `Content-Type` of an `.xlsx` workbook.
pub const XLSX_CONTENT_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A generated file, for the gateway to hand out as a download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportedFile {
    /// Suggested file name, e.g. `ZJHCCG-2022-01_第2协议期_供应清单.xlsx`.
    pub file_name: String,
    pub content_type: String,
    /// The file's bytes, standard base64 with padding.
    pub content_base64: String,
    /// Data rows in the file (the header not counted).
    pub rows: u32,
}
