//! Spreadsheets in and out, for every service's imports and exports: the
//! first worksheet of an `.xlsx` as a table of cell text (calamine), a
//! one-sheet `.xlsx` from typed cells (rust_xlsxwriter), and the base64 an
//! RPC reply carries a file in. No rules about what the cells mean (those
//! are each service's domain).

use std::io::Cursor;

use base64::Engine as _;
use calamine::{Data, Reader, Xlsx};
use rust_xlsxwriter::{Format, Workbook};
use vbp_bus::RpcError;
use vbp_contracts::files::{ExportedFile, XLSX_CONTENT_TYPE};

/// Standard base64 with padding.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64, padded or not; whitespace (line breaks of a pasted
/// file) is ignored.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
    .decode(clean)
    .map_err(|e| format!("content_base64 is not valid base64 ({e})"))
}

/// A one-sheet `.xlsx` export as an RPC reply. An RPC reply must fit the
/// broker's max payload, so an export whose base64 exceeds `max_bytes` is
/// refused (413 `export_too_large`) with a hint to narrow it by `filters`.
pub fn xlsx_export(
    file_name: String,
    sheet: &str,
    columns: &[Column],
    rows: Vec<Vec<Cell>>,
    max_bytes: usize,
    filters: &str,
) -> Result<ExportedFile, RpcError> {
    let n = rows.len();
    let bytes = write_xlsx(sheet, columns, &rows).map_err(RpcError::internal)?;
    let content_base64 = encode_base64(&bytes);
    if content_base64.len() > max_bytes {
        return Err(RpcError::new(
            413,
            "export_too_large",
            format!(
                "the export of {n} rows is {} bytes encoded, above the limit of {max_bytes}; narrow it with filters ({filters})",
                content_base64.len(),
            ),
        ));
    }
    Ok(ExportedFile {
        file_name,
        content_type: XLSX_CONTENT_TYPE.to_owned(),
        content_base64,
        rows: n as u32,
    })
}

/// The first worksheet as rows of cell text, positioned as Excel shows it:
/// `table[i][j]` is row `i + 1`, column `j` (A = 0), so row numbers in errors
/// are the ones the user sees even when the used range does not start at A1.
/// Trailing blank rows are dropped.
///
/// Numbers become their shortest exact decimal text (720.5 → `"720.5"`,
/// 720 → `"720"`); a number that is not what it displays (e.g. a computed
/// 792.0000000000001) keeps all its digits, so a strict reader such as
/// `Money::parse_yuan` rejects it instead of rounding silently.
pub fn read_xlsx(bytes: &[u8]) -> Result<Vec<Vec<String>>, String> {
    let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| format!("not a readable .xlsx workbook: {e}"))?;
    let range = wb
        .worksheet_range_at(0)
        .ok_or_else(|| "the workbook has no worksheet".to_owned())?
        .map_err(|e| format!("the first worksheet cannot be read: {e}"))?;
    let Some((r0, c0)) = range.start() else {
        return Ok(Vec::new());
    };
    let mut table: Vec<Vec<String>> = vec![Vec::new(); r0 as usize];
    for row in range.rows() {
        let mut cells = vec![String::new(); c0 as usize];
        cells.extend(row.iter().map(cell_text));
        table.push(cells);
    }
    while table
        .last()
        .is_some_and(|r| r.iter().all(|c| c.trim().is_empty()))
    {
        table.pop();
    }
    Ok(table)
}

/// One cell's text.
pub fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        // Rust's float formatting is the shortest text that reads back to
        // the same f64, without exponent notation.
        Data::Float(f) => format!("{f}"),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        other => other.to_string(),
    }
}

/// A typed cell of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// Written as an Excel number (exact up to 2^53, far beyond any quantity).
    Int(i64),
    Empty,
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

/// A column of an export: header text and width in characters.
pub struct Column {
    pub header: &'static str,
    pub width: f64,
}

/// A column, for `const` sheet layouts.
pub const fn col(header: &'static str, width: f64) -> Column {
    Column { header, width }
}

/// A workbook of one sheet: a bold, frozen header row and the rows below.
/// Text cells are stored as text (with the text number format `@`, so
/// codes and yuan amounts stay text when edited and re-imported).
pub fn write_xlsx(sheet: &str, columns: &[Column], rows: &[Vec<Cell>]) -> Result<Vec<u8>, String> {
    let heads: Vec<(&str, f64)> = columns.iter().map(|c| (c.header, c.width)).collect();
    write_sheet(sheet, &heads, rows)
}

/// [`write_xlsx`] for headers known only at run time (a table a caller
/// describes): `(header, width in characters)` per column.
pub fn write_sheet(
    sheet: &str,
    columns: &[(&str, f64)],
    rows: &[Vec<Cell>],
) -> Result<Vec<u8>, String> {
    let err = |e: rust_xlsxwriter::XlsxError| format!("writing the workbook failed: {e}");
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    let ws = wb.add_worksheet();
    ws.set_name(sheet).map_err(err)?;
    for (j, (header, width)) in columns.iter().enumerate() {
        let col = j as u16;
        ws.set_column_width(col, *width).map_err(err)?;
        ws.write_string_with_format(0, col, *header, &bold)
            .map_err(err)?;
    }
    ws.set_freeze_panes(1, 0).map_err(err)?;
    for (i, r) in rows.iter().enumerate() {
        let row = u32::try_from(i + 1).map_err(|_| "too many rows for one sheet".to_owned())?;
        for (j, c) in r.iter().enumerate() {
            let col = j as u16;
            match c {
                Cell::Text(s) => {
                    ws.write_string_with_format(row, col, s, &text)
                        .map_err(err)?;
                }
                Cell::Int(n) => {
                    ws.write_number(row, col, *n as f64).map_err(err)?;
                }
                Cell::Empty => {}
            }
        }
    }
    wb.save_to_buffer().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_their_exact_decimal_text() {
        assert_eq!(cell_text(&Data::Float(720.5)), "720.5");
        assert_eq!(cell_text(&Data::Float(720.0)), "720");
        assert_eq!(cell_text(&Data::Float(0.1 + 0.2)), "0.30000000000000004");
        assert_eq!(cell_text(&Data::Float(1e17)), "100000000000000000");
        assert_eq!(cell_text(&Data::Int(12)), "12");
        assert_eq!(cell_text(&Data::Empty), "");
    }

    #[test]
    fn a_written_sheet_reads_back_in_place() {
        let bytes = write_xlsx(
            "清单",
            &[
                Column {
                    header: "编码",
                    width: 10.0,
                },
                Column {
                    header: "数量",
                    width: 10.0,
                },
            ],
            &[
                vec!["C1".into(), Cell::Int(5)],
                vec![Cell::Empty, "720.00".into()],
            ],
        )
        .unwrap();
        let table = read_xlsx(&bytes).unwrap();
        assert_eq!(
            table,
            vec![vec!["编码", "数量"], vec!["C1", "5"], vec!["", "720.00"]]
        );
        assert!(read_xlsx(b"PK\x03\x04 not a zip").is_err());
    }

    #[test]
    fn base64_round_trips_padded_or_not() {
        assert_eq!(decode_base64("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(decode_base64("aGVsbG8gd29ybGQ").unwrap(), b"hello world");
        assert_eq!(decode_base64("5Lit\n5paH").unwrap(), "中文".as_bytes());
        assert!(decode_base64("a$==").is_err());
        assert_eq!(encode_base64(b"hello world"), "aGVsbG8gd29ybGQ=");
    }

    #[test]
    fn an_export_above_the_limit_is_refused_with_a_hint() {
        let cols = [col("a", 4.0)];
        let rows = vec![vec![Cell::Int(1)]; 100];
        let ok = xlsx_export("a.xlsx".into(), "s", &cols, rows.clone(), 1 << 20, "region").unwrap();
        assert_eq!(ok.rows, 100);
        assert_eq!(decode_base64(&ok.content_base64).unwrap()[..2], *b"PK");
        let err = xlsx_export("a.xlsx".into(), "s", &cols, rows, 100, "region").unwrap_err();
        assert_eq!(err.0.code, "export_too_large");
    }
}
