//! `POST /api/v1/exports/xlsx`: a table the caller already holds, as an
//! `.xlsx` workbook. Lists that have no export operation of their own (the
//! console's filtered views of orders, relations, issues…) are downloaded
//! through it. The gateway reads no data for it: the caller sends the rows it
//! was allowed to see, so the route is open to every authenticated caller
//! and cannot widen anyone's view. Answered like every other export, as an
//! [`ExportedFile`] with the workbook in base64.

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vbp_contracts::files::ExportedFile;
use vbp_platform::sheets::{self, Cell};

use crate::problem::Problem;
use crate::routes::{Route, Target};
use crate::{CompiledRoute, Gateway, forward};

pub const TAG: &str = "exports";

/// Most columns of one exported table.
pub const MAX_COLUMNS: usize = 64;
/// Most data rows of one exported table; more is a report a service should
/// produce, not a list a person filtered.
pub const MAX_ROWS: usize = 5_000;
/// Excel keeps at most this many characters in one cell.
pub const MAX_CELL_CHARS: usize = 32_767;

/// A table to turn into a one-sheet workbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableExport {
    /// The suggested file name; `.xlsx` is appended when missing. No path
    /// separators or control characters.
    #[schemars(length(min = 1, max = 120))]
    pub file_name: String,
    /// The worksheet's name: at most 31 characters, none of `[]:*?/\`.
    #[schemars(length(min = 1, max = 31))]
    pub sheet: String,
    #[schemars(length(min = 1, max = 64))]
    pub columns: Vec<TableColumn>,
    /// Each row has one cell per column: text, a whole number (written as an
    /// Excel number) or `null` (an empty cell).
    #[schemars(length(max = 5000))]
    pub rows: Vec<Vec<Option<TableCell>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableColumn {
    #[schemars(length(min = 1, max = 100))]
    pub header: String,
    /// Width in characters; 14 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4, max = 100))]
    pub width: Option<u8>,
}

/// One cell: amounts are sent as the text the reader should see (e.g.
/// `"1234.50"` yuan), so no figure is ever rounded through a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TableCell {
    Int(i64),
    Text(String),
}

pub fn routes() -> Vec<Route> {
    vec![
        Route::with_target(Method::POST, "/exports/xlsx", Target::Export)
            .allow_any()
            .summary("将列表导出为Excel（.xlsx）", "Export a table as .xlsx")
            .describe(
                "Turns the table in the body (columns and rows the caller already holds, e.g. a \
                 filtered list of the console) into a one-sheet workbook with a bold, frozen \
                 header row. Text cells stay text (codes and yuan amounts are not converted); \
                 whole numbers become Excel numbers; `null` is an empty cell. Every row must \
                 have one cell per column. The gateway adds no data, so any authenticated \
                 caller may use it. Answered as the other exports: the file in base64.",
            )
            .tag(TAG)
            .operation_id("export_table_xlsx")
            .request::<TableExport>()
            .response::<ExportedFile>(),
    ]
}

pub(crate) async fn handle(
    gateway: &Gateway,
    compiled: &CompiledRoute,
    request: Request,
) -> Result<Response, Problem> {
    let admitted = forward::admit(gateway, compiled, request).await?;
    let table: TableExport =
        serde_json::from_value(admitted.input).map_err(|e| Problem::invalid("", e.to_string()))?;
    Ok(axum::Json(build(&table)?).into_response())
}

/// The workbook for `table`, or the first rule it breaks.
pub fn build(table: &TableExport) -> Result<ExportedFile, Problem> {
    let file_name = file_name(&table.file_name)?;
    check_sheet_name(&table.sheet)?;
    if table.columns.is_empty() || table.columns.len() > MAX_COLUMNS {
        return Err(Problem::invalid(
            "columns",
            format!("a table has 1 to {MAX_COLUMNS} columns"),
        ));
    }
    for (j, c) in table.columns.iter().enumerate() {
        if c.header.trim().is_empty() || c.header.chars().count() > 100 {
            return Err(Problem::invalid(
                format!("columns[{j}].header"),
                "a header is 1 to 100 characters and not blank",
            ));
        }
        if c.width.is_some_and(|w| !(4..=100).contains(&w)) {
            return Err(Problem::invalid(
                format!("columns[{j}].width"),
                "a width is 4 to 100 characters",
            ));
        }
    }
    if table.rows.len() > MAX_ROWS {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::problem::codes::PAYLOAD_TOO_LARGE,
            format!(
                "{} rows are more than the {MAX_ROWS} one export holds; narrow the list with its filters",
                table.rows.len()
            ),
        )
        .with_field("rows"));
    }
    let mut rows = Vec::with_capacity(table.rows.len());
    for (i, row) in table.rows.iter().enumerate() {
        if row.len() != table.columns.len() {
            return Err(Problem::invalid(
                format!("rows[{i}]"),
                format!(
                    "the row has {} cells, the table {} columns",
                    row.len(),
                    table.columns.len()
                ),
            ));
        }
        let mut cells = Vec::with_capacity(row.len());
        for (j, cell) in row.iter().enumerate() {
            cells.push(match cell {
                None => Cell::Empty,
                Some(TableCell::Int(n)) => Cell::Int(*n),
                Some(TableCell::Text(s)) if s.chars().count() > MAX_CELL_CHARS => {
                    return Err(Problem::invalid(
                        format!("rows[{i}][{j}]"),
                        format!("a cell holds at most {MAX_CELL_CHARS} characters"),
                    ));
                }
                Some(TableCell::Text(s)) => Cell::Text(s.clone()),
            });
        }
        rows.push(cells);
    }
    let heads: Vec<(&str, f64)> = table
        .columns
        .iter()
        .map(|c| (c.header.as_str(), f64::from(c.width.unwrap_or(14))))
        .collect();
    let bytes = sheets::write_sheet(&table.sheet, &heads, &rows)
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "export_failed", e))?;
    Ok(ExportedFile {
        file_name,
        content_type: vbp_contracts::files::XLSX_CONTENT_TYPE.to_owned(),
        content_base64: sheets::encode_base64(&bytes),
        rows: rows.len() as u32,
    })
}

fn file_name(name: &str) -> Result<String, Problem> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > 120
        || name.starts_with('.')
        || name.chars().any(|c| {
            c.is_control() || matches!(c, '/' | '\\' | '"' | ':' | '*' | '?' | '<' | '>' | '|')
        })
    {
        return Err(Problem::invalid(
            "file_name",
            "a file name is 1 to 120 characters, does not start with '.', and has no path \
             separators, control characters or any of \" : * ? < > |",
        ));
    }
    if name.to_ascii_lowercase().ends_with(".xlsx") {
        Ok(name.to_owned())
    } else {
        Ok(format!("{name}.xlsx"))
    }
}

fn check_sheet_name(sheet: &str) -> Result<(), Problem> {
    let n = sheet.chars().count();
    if sheet.trim().is_empty()
        || n > 31
        || sheet.starts_with('\'')
        || sheet.ends_with('\'')
        || sheet
            .chars()
            .any(|c| c.is_control() || matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
    {
        return Err(Problem::invalid(
            "sheet",
            "a sheet name is 1 to 31 characters, not blank, not quoted, without any of [ ] : * ? / \\",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(value: serde_json::Value) -> TableExport {
        serde_json::from_value(value).expect("a table")
    }

    #[test]
    fn a_table_becomes_a_workbook_that_reads_back_cell_for_cell() {
        let t = table(json!({
            "file_name": "订单列表",
            "sheet": "订单",
            "columns": [{"header": "订单号", "width": 30}, {"header": "数量"}, {"header": "金额（元）"}],
            "rows": [["A-1", 12, "1234.50"], ["=HYPERLINK(\"x\")", null, "0.10"]]
        }));
        let file = build(&t).unwrap();
        assert_eq!(file.file_name, "订单列表.xlsx");
        assert_eq!(file.rows, 2);
        let bytes = sheets::decode_base64(&file.content_base64).unwrap();
        let back = sheets::read_xlsx(&bytes).unwrap();
        assert_eq!(back[0], ["订单号", "数量", "金额（元）"]);
        assert_eq!(back[1], ["A-1", "12", "1234.50"]);
        // A formula-looking text stays text: a shared list cannot run code
        // in the reader's spreadsheet.
        assert_eq!(back[2], ["=HYPERLINK(\"x\")", "", "0.10"]);
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let base = json!({"file_name": "x.xlsx", "sheet": "s", "columns": [{"header": "a"}], "rows": [["1"]]});
        let cases = [
            ("file_name", json!("../etc/passwd")),
            ("file_name", json!(".hidden")),
            ("sheet", json!("a/b")),
            ("sheet", json!("0123456789012345678901234567890123")),
            ("columns", json!([])),
            ("columns[0].header", json!([{"header": "  "}])),
            ("columns[0].width", json!([{"header": "a", "width": 2}])),
            ("rows[0]", json!([["1", "2"]])),
        ];
        for (field, value) in cases {
            let mut v = base.clone();
            let key = field.split(['[', '.']).next().unwrap();
            v[key] = value;
            let err = build(&table(v)).unwrap_err();
            assert_eq!(err.status, 422, "{field}");
            assert_eq!(err.field.as_deref(), Some(field), "{}", err.detail);
        }
    }

    #[test]
    fn too_many_rows_is_refused_with_a_hint_to_filter() {
        let rows: Vec<_> = (0..=MAX_ROWS).map(|i| json!([i])).collect();
        let t = table(
            json!({"file_name": "x", "sheet": "s", "columns": [{"header": "n"}], "rows": rows}),
        );
        let err = build(&t).unwrap_err();
        assert_eq!(err.status, 413);
        assert!(err.detail.contains("filters"), "{}", err.detail);
    }
}
