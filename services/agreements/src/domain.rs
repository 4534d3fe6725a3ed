//! Pure rules of the agreements service: code validation, period bounds,
//! supply-list import validation, the tripartite agreement state machine and
//! progress classification. No I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_contracts::agreements::{
    AgreementState, HospitalLevel, ImportError, ProgressClass, RegisterOrg, SupplyItem, SupplyRow,
};
use vbp_kernel::{BasisPoints, Money, NationalCode, OrgId, OrgKind, RegionCode, beijing_midnight};

/// Configuration (`[agreements]` in the config file, `VBP_AGREEMENTS__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// 报而不用: a hospital that reported volume is flagged when its
    /// accepted quantity is below this share of the report, pro rata to
    /// time progress.
    pub reported_not_used_share_bp: u32,
    /// A completed line with no acceptance for this many days while the
    /// period runs is flagged as a sudden stop (一刀切).
    pub sudden_stop_days: i64,
    /// Distributors must hold an active distribution relation with the
    /// hospital to confirm an agreement.
    pub require_distribution_relation: bool,
    /// Largest number of rows one supply-list import may hold.
    pub max_import_rows: usize,
    /// Largest base64 text of an exported file; an RPC reply must fit the
    /// broker's max payload (1 MiB by default), so larger exports are
    /// refused with a hint to filter.
    pub max_export_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            reported_not_used_share_bp: 5000,
            sudden_stop_days: 60,
            require_distribution_relation: true,
            max_import_rows: 20_000,
            max_export_bytes: 960 * 1024,
        }
    }
}

/// A rule broken by input: the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    pub field: String,
    pub rule: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Regions
// ---------------------------------------------------------------------------

/// The inclusive integer range of region codes in `region`'s subtree.
pub fn region_range(region: RegionCode) -> (i32, i32) {
    region.subtree_range()
}

pub fn region_from_i32(v: i32) -> RegionCode {
    RegionCode::parse(&format!("{v:06}")).unwrap_or(RegionCode::NATIONAL)
}

// ---------------------------------------------------------------------------
// Codes
// ---------------------------------------------------------------------------

/// NHSA medical institution code: `H` + 6-digit region + 5-digit serial,
/// whose region part is the hospital's region.
pub fn validate_nhsa_code(code: &str, region: RegionCode) -> Result<(), String> {
    if code.len() != 12 || !code.starts_with('H') {
        return Err(format!(
            "NHSA institution code must be 'H' + 6-digit region + 5-digit serial (12 characters), got {code:?}"
        ));
    }
    if !code[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "NHSA institution code must have 11 digits after 'H', got {code:?}"
        ));
    }
    let embedded = RegionCode::parse(&code[1..7])
        .map_err(|e| format!("NHSA institution code region part: {e}"))?;
    if embedded != region {
        return Err(format!(
            "NHSA institution code region part {embedded} must equal the hospital's region {region}"
        ));
    }
    Ok(())
}

const USCC_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// The check character of the first 17 characters of a unified social
/// credit code (GB 32100-2015), or `None` if one is not in its alphabet.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (i, b) in first17.bytes().enumerate() {
        let v = USCC_CHARS.iter().position(|c| *c == b)? as u32;
        sum += v * USCC_WEIGHTS[i];
    }
    let check = (31 - sum % 31) % 31;
    Some(USCC_CHARS[check as usize] as char)
}

/// Unified social credit code (统一社会信用代码): 18 characters of
/// `0-9A-HJ-NP-RTUWXY`, the last a check character (GB 32100-2015).
pub fn validate_uscc(code: &str) -> Result<(), String> {
    if code.len() != 18 {
        return Err(format!(
            "unified social credit code must be 18 characters, got {}",
            code.chars().count()
        ));
    }
    if let Some((i, c)) = code
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii() || !USCC_CHARS.contains(&(*c as u8)))
    {
        return Err(format!(
            "unified social credit code may hold only 0-9 and A-Z without I, O, S, V, Z; got {c:?} at position {}",
            i + 1
        ));
    }
    let expected = uscc_check_char(&code[..17]).unwrap_or('?');
    let actual = code.as_bytes()[17] as char;
    if expected != actual {
        return Err(format!(
            "unified social credit code check character must be {expected:?} for {}, got {actual:?}",
            &code[..17]
        ));
    }
    Ok(())
}

/// Hex SHA-256 (64 lowercase or uppercase hex digits), normalised to lowercase.
pub fn normalise_sha256(text: &str) -> Result<String, String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("document SHA-256 must be 64 hex digits".into())
    }
}

// ---------------------------------------------------------------------------
// Periods
// ---------------------------------------------------------------------------

/// `[first_day 00:00+08, last_day+1 00:00+08)`: "2024年8月1日零时—2025年7月31日24时".
pub fn period_bounds(
    first_day: NaiveDate,
    last_day: NaiveDate,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Invalid> {
    if last_day < first_day {
        return Err(Invalid::new(
            "last_day",
            format!("last_day {last_day} must not be before first_day {first_day}"),
        ));
    }
    let next = last_day
        .succ_opt()
        .ok_or_else(|| Invalid::new("last_day", "last_day is out of range"))?;
    Ok((beijing_midnight(first_day), beijing_midnight(next)))
}

/// 序时进度: whole days elapsed since the period start ÷ days of the period,
/// clamped to [0, 100 %]. Returns (elapsed days, period days).
pub fn elapsed_days(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> (i64, i64) {
    let total = (ends_at - starts_at).num_days().max(1);
    let elapsed = if as_of <= starts_at {
        0
    } else {
        ((as_of - starts_at).num_days()).min(total)
    };
    (elapsed, total)
}

pub fn time_progress_bp(elapsed: i64, total: i64) -> BasisPoints {
    BasisPoints::from_ratio(elapsed.max(0) as u64, total.max(1) as u64).unwrap_or(BasisPoints::ZERO)
}

/// Classifies a line against time progress. Comparisons are exact
/// (accepted × total < agreed × elapsed), so no rounding decides a class.
pub fn classify(agreed: i64, accepted: i64, elapsed: i64, total: i64) -> ProgressClass {
    if accepted <= 0 {
        return ProgressClass::Zero;
    }
    if accepted > agreed {
        return ProgressClass::OverVolume;
    }
    if accepted == agreed {
        return ProgressClass::Completed;
    }
    let lhs = i128::from(accepted) * i128::from(total);
    let rhs = i128::from(agreed) * i128::from(elapsed);
    if lhs < rhs {
        ProgressClass::Slow
    } else {
        ProgressClass::Normal
    }
}

pub fn progress_bp(agreed: i64, accepted: i64) -> Option<BasisPoints> {
    if agreed <= 0 {
        return None;
    }
    BasisPoints::from_ratio(accepted.max(0) as u64, agreed as u64)
}

/// A completed (or over-volume) line with no acceptance for
/// `sudden_stop_days` while the period still runs.
pub fn is_sudden_stop(
    class: ProgressClass,
    last_accepted_at: Option<DateTime<Utc>>,
    as_of: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    sudden_stop_days: i64,
) -> bool {
    matches!(class, ProgressClass::Completed | ProgressClass::OverVolume)
        && as_of < ends_at
        && last_accepted_at.is_some_and(|t| as_of - t >= Duration::days(sudden_stop_days))
}

/// 报而不用: reported > 0 and accepted < reported × share × time progress.
pub fn reported_not_used(
    reported: i64,
    accepted: i64,
    share_bp: u32,
    elapsed: i64,
    total: i64,
) -> bool {
    if reported <= 0 || elapsed <= 0 {
        return false;
    }
    let lhs = i128::from(accepted) * 10_000 * i128::from(total);
    let rhs = i128::from(reported) * i128::from(share_bp) * i128::from(elapsed);
    lhs < rhs
}

/// The first day of each Beijing month the period touches.
pub fn months_of(first_day: NaiveDate, last_day: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut m = first_day.with_day(1).unwrap_or(first_day);
    while m <= last_day {
        out.push(m);
        m = if m.month() == 12 {
            NaiveDate::from_ymd_opt(m.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(m.year(), m.month() + 1, 1)
        }
        .unwrap_or(NaiveDate::MAX);
    }
    out
}

/// agreed ÷ months, half-up.
pub fn expected_per_month(agreed: i64, months: usize) -> i64 {
    if months == 0 {
        return 0;
    }
    let m = months as i64;
    (2 * agreed + m) / (2 * m)
}

// ---------------------------------------------------------------------------
// Supply-list import
// ---------------------------------------------------------------------------

/// What row validation needs to know: the project's product groups and the
/// registered manufacturers by USCC.
pub struct SupplyContext {
    pub product_groups: BTreeSet<String>,
    pub manufacturers: HashMap<String, (OrgId, String)>,
}

/// Columns in file order, with the header names accepted for each.
pub const SUPPLY_COLUMNS: [(&str, &[&str]); 7] = [
    (
        "national_code",
        &[
            "national_code",
            "国家医保耗材编码",
            "国家医保编码",
            "医保耗材编码",
            "国家编码",
        ],
    ),
    ("generic_name", &["generic_name", "通用名", "产品名称"]),
    ("spec_model", &["spec_model", "规格型号", "规格"]),
    ("unit", &["unit", "单位"]),
    (
        "manufacturer_uscc",
        &[
            "manufacturer_uscc",
            "生产企业统一社会信用代码",
            "统一社会信用代码",
            "生产企业",
            "manufacturer",
        ],
    ),
    (
        "winning_price_yuan",
        &[
            "winning_price_yuan",
            "中选价格(元)",
            "中选价格（元）",
            "中选价格",
            "winning_price",
        ],
    ),
    ("product_group", &["product_group", "产品组"]),
];

/// 序时进度 is weekly monitored: the first Monday 00:00 Beijing strictly
/// after `t` (Monday 00:00 +08:00 is Sunday 16:00 UTC).
pub fn next_monday_midnight_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let d = vbp_kernel::beijing_date(t);
    let days = 7 - i64::from(d.weekday().num_days_from_monday());
    // `t` lies before the midnight ending its own Beijing date, so before this.
    beijing_midnight(d + Duration::days(days))
}

/// When the weekly snapshot timer of a period `[starts_at, ends_at)` fires
/// next after `t`: the first Monday 00:00 Beijing after both `t` and the
/// start, if it lies before the end.
pub fn next_snapshot_at(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    t: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let due = next_monday_midnight_after(t.max(starts_at));
    (due < ends_at).then_some(due)
}

/// 进度分类 in Chinese, for spreadsheets.
pub fn class_zh(class: ProgressClass) -> &'static str {
    match class {
        ProgressClass::Zero => "零采购",
        ProgressClass::Slow => "低于序时进度",
        ProgressClass::Normal => "正常",
        ProgressClass::Completed => "已完成",
        ProgressClass::OverVolume => "超量采购",
    }
}

/// Informational columns an import skips (an export writes them, so an
/// exported list imports back unchanged).
pub const SUPPLY_IGNORED_COLUMNS: &[&str] = &[
    "序号",
    "no",
    "生产企业名称",
    "manufacturer_name",
    "中选价格(分)",
    "winning_price_fen",
];

/// Validates every row, reporting every bad cell (row numbers start at
/// `first_row`, the header being `first_row - 1`). All or nothing: any error
/// means no items.
pub fn validate_supply_rows(
    rows: &[SupplyRow],
    ctx: &SupplyContext,
    first_row: u32,
) -> Result<Vec<SupplyItem>, Vec<ImportError>> {
    let mut errors = Vec::new();
    let mut items = Vec::with_capacity(rows.len());
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    if rows.is_empty() {
        errors.push(ImportError {
            row: first_row,
            column: "national_code".into(),
            rule: "a supply list must hold at least one product".into(),
            ..ImportError::default()
        });
    }
    for (i, r) in rows.iter().enumerate() {
        let row = first_row + i as u32;
        let mut err = |column: &str, rule: String| {
            errors.push(ImportError {
                row,
                column: column.into(),
                rule,
                ..ImportError::default()
            })
        };
        let code = match NationalCode::parse(&r.national_code) {
            Ok(c) => {
                if let Some(prev) = seen.insert(c.as_str().to_owned(), row) {
                    err(
                        "national_code",
                        format!("national code {c} repeats row {prev}; each product once"),
                    );
                }
                Some(c)
            }
            Err(e) => {
                err("national_code", e.to_string());
                None
            }
        };
        let mut text = |column: &str, value: &str| -> Option<String> {
            let v = value.trim();
            if v.is_empty() {
                err(column, format!("{column} must not be empty"));
                None
            } else if v.chars().count() > 200 {
                err(column, format!("{column} must be at most 200 characters"));
                None
            } else {
                Some(v.to_owned())
            }
        };
        let generic_name = text("generic_name", &r.generic_name);
        let spec_model = text("spec_model", &r.spec_model);
        let unit = text("unit", &r.unit);
        // The manufacturer by its credit code or, failing that, its directory id.
        let given = r.manufacturer_uscc.trim();
        let as_id = given.parse::<OrgId>().ok();
        let found = ctx
            .manufacturers
            .get(given)
            .or_else(|| as_id.and_then(|id| ctx.manufacturers.values().find(|(m, _)| *m == id)));
        let manufacturer = match found {
            Some(m) => Some(m.clone()),
            None => {
                let rule = match (as_id, validate_uscc(given)) {
                    (Some(id), _) => {
                        format!("no registered active manufacturer has org id {id}")
                    }
                    (None, Err(e)) => e,
                    (None, Ok(())) => {
                        format!("no registered manufacturer has unified social credit code {given}")
                    }
                };
                err("manufacturer_uscc", rule);
                None
            }
        };
        let price = match Money::parse_yuan(r.winning_price_yuan.trim()) {
            Ok(m) if m.fen() > 0 => Some(m),
            Ok(_) => {
                err(
                    "winning_price_yuan",
                    "winning price must be greater than zero".into(),
                );
                None
            }
            Err(e) => {
                err("winning_price_yuan", e.to_string());
                None
            }
        };
        let group = r.product_group.trim();
        let group = if ctx.product_groups.contains(group) {
            Some(group.to_owned())
        } else {
            err(
                "product_group",
                format!(
                    "product group {group:?} is not one of the project's groups ({})",
                    ctx.product_groups
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            None
        };
        if let (
            Some(national_code),
            Some(generic_name),
            Some(spec_model),
            Some(unit),
            Some((manufacturer, manufacturer_name)),
            Some(winning_price_fen),
            Some(product_group),
        ) = (
            code,
            generic_name,
            spec_model,
            unit,
            manufacturer,
            price,
            group,
        ) {
            items.push(SupplyItem {
                national_code,
                generic_name,
                spec_model,
                unit,
                manufacturer,
                manufacturer_name,
                winning_price_fen,
                product_group,
            });
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

/// Where a file's columns are: the header's row (1-based, as a spreadsheet
/// numbers it) and, per field, its column index and header text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SheetLayout {
    pub header_row: u32,
    pub columns: HashMap<String, (usize, String)>,
}

impl SheetLayout {
    /// The row number of the first data row.
    pub fn first_data_row(&self) -> u32 {
        self.header_row + 1
    }

    /// Adds the header text and cell reference (`F5`) to errors about a
    /// known field.
    pub fn annotate(&self, errors: &mut [ImportError]) {
        for e in errors {
            if let Some((i, header)) = self.columns.get(&e.column) {
                e.header = Some(header.clone());
                if e.row > self.header_row {
                    e.cell = Some(format!("{}{}", column_letters(*i), e.row));
                }
            }
        }
    }
}

/// `0` → `A`, `25` → `Z`, `26` → `AA`.
pub fn column_letters(index: usize) -> String {
    let mut n = index + 1;
    let mut out = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        out.push(b'A' + r as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn header_name(cell: &str) -> &str {
    cell.trim().trim_start_matches('\u{feff}').trim()
}

/// The header row of a table whose row `i` is the file's row `i + 1`: the
/// first row naming at least one known column (title rows above it are
/// skipped), else the first non-blank row.
pub fn find_header_row(table: &[Vec<String>], columns: &[(&str, &[&str])]) -> Option<usize> {
    let known = |c: &String| {
        let n = header_name(c);
        columns.iter().any(|(_, names)| names.contains(&n))
    };
    table.iter().position(|r| r.iter().any(known)).or_else(|| {
        table
            .iter()
            .position(|r| r.iter().any(|c| !c.trim().is_empty()))
    })
}

/// Matches a header row against `columns` (each field with its accepted
/// names); `ignored` names are skipped. Every unknown or missing column is an
/// error on the header row.
pub fn match_header(
    table: &[Vec<String>],
    columns: &[(&str, &[&str])],
    required: &[&str],
    ignored: &[&str],
) -> Result<SheetLayout, Vec<ImportError>> {
    let Some(h) = find_header_row(table, columns) else {
        return Err(vec![ImportError {
            row: 1,
            rule: "the file is empty; the first row must be the header".into(),
            ..ImportError::default()
        }]);
    };
    let header_row = h as u32 + 1;
    let mut layout = SheetLayout {
        header_row,
        columns: HashMap::new(),
    };
    let mut errors = Vec::new();
    for (i, cell) in table[h].iter().enumerate() {
        let name = header_name(cell);
        if name.is_empty() || ignored.contains(&name) {
            continue;
        }
        match columns.iter().find(|(_, names)| names.contains(&name)) {
            Some((col, _)) => {
                if let Some((prev, _)) = layout.columns.get(*col) {
                    errors.push(ImportError {
                        row: header_row,
                        column: (*col).to_owned(),
                        rule: format!(
                            "column {col} appears twice (columns {} and {})",
                            column_letters(*prev),
                            column_letters(i)
                        ),
                        header: Some(name.to_owned()),
                        cell: Some(format!("{}{header_row}", column_letters(i))),
                    });
                } else {
                    layout
                        .columns
                        .insert((*col).to_owned(), (i, name.to_owned()));
                }
            }
            None => errors.push(ImportError {
                row: header_row,
                column: name.to_owned(),
                rule: format!(
                    "unknown column {name:?}; expected {}",
                    columns
                        .iter()
                        .map(|(c, n)| format!("{c} ({})", n[1]))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                header: Some(name.to_owned()),
                cell: Some(format!("{}{header_row}", column_letters(i))),
            }),
        }
    }
    for (col, names) in columns {
        if required.contains(col) && !layout.columns.contains_key(*col) {
            errors.push(ImportError {
                row: header_row,
                column: (*col).to_owned(),
                rule: format!(
                    "column {col} ({}) is missing from the header",
                    names[1..].join(" / ")
                ),
                ..ImportError::default()
            });
        }
    }
    if errors.is_empty() {
        Ok(layout)
    } else {
        Err(errors)
    }
}

/// The cell of `field` in row `r` ("" if absent).
pub fn cell_of(layout: &SheetLayout, r: &[String], field: &str) -> String {
    layout
        .columns
        .get(field)
        .and_then(|(i, _)| r.get(*i))
        .cloned()
        .unwrap_or_default()
}

/// A table → supply rows, and where its columns are. The header row is
/// matched by name (title rows above it are skipped); unknown names and
/// missing required columns are errors on the header row.
pub fn supply_rows_from_table(
    table: &[Vec<String>],
) -> Result<(Vec<SupplyRow>, SheetLayout), Vec<ImportError>> {
    let required: Vec<&str> = SUPPLY_COLUMNS.iter().map(|(c, _)| *c).collect();
    let layout = match_header(table, &SUPPLY_COLUMNS, &required, SUPPLY_IGNORED_COLUMNS)?;
    let cell = |r: &Vec<String>, col: &str| cell_of(&layout, r, col);
    let rows = table[layout.header_row as usize..]
        .iter()
        .map(|r| SupplyRow {
            national_code: cell(r, "national_code").trim().to_owned(),
            generic_name: cell(r, "generic_name"),
            spec_model: cell(r, "spec_model"),
            unit: cell(r, "unit"),
            manufacturer_uscc: cell(r, "manufacturer_uscc"),
            winning_price_yuan: cell(r, "winning_price_yuan"),
            product_group: cell(r, "product_group"),
        })
        .collect();
    Ok((rows, layout))
}

/// Organisation-directory columns, with the header names accepted for each.
pub const ORG_COLUMNS: [(&str, &[&str]); 8] = [
    ("kind", &["kind", "机构类型", "类型"]),
    ("name", &["name", "机构名称", "名称"]),
    ("region", &["region", "行政区划代码", "行政区划"]),
    (
        "nhsa_code",
        &[
            "nhsa_code",
            "医保医疗机构编码",
            "医疗机构编码",
            "医保机构编码",
        ],
    ),
    ("level", &["level", "医院等级", "等级"]),
    ("uscc", &["uscc", "统一社会信用代码"]),
    ("is_manufacturer", &["is_manufacturer", "是否生产企业"]),
    ("is_distributor", &["is_distributor", "是否配送企业"]),
];

fn parse_org_kind(s: &str) -> Option<OrgKind> {
    Some(match s {
        "医院" | "医疗机构" | "hospital" => OrgKind::Hospital,
        "生产企业" | "中选企业" | "manufacturer" => OrgKind::Manufacturer,
        "配送企业" | "distributor" => OrgKind::Distributor,
        "医保局" | "医保部门" | "医疗保障局" | "bureau" => OrgKind::Bureau,
        "集成商" | "integrator" => OrgKind::Integrator,
        _ => return None,
    })
}

fn parse_level(s: &str) -> Option<HospitalLevel> {
    Some(match s {
        "三级" | "tertiary" => HospitalLevel::Tertiary,
        "二级" | "secondary" => HospitalLevel::Secondary,
        "一级" | "primary" => HospitalLevel::Primary,
        "未定级" | "ungraded" => HospitalLevel::Ungraded,
        _ => return None,
    })
}

fn parse_flag(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "" | "否" | "no" | "n" | "false" | "0" => Some(false),
        "是" | "yes" | "y" | "true" | "1" => Some(true),
        _ => None,
    }
}

/// A registration and the file row it came from.
pub type NumberedOrg = (u32, RegisterOrg);

/// A table → registrations, each with its file row number; every cell that
/// does not parse is an error (registration rules are checked later, by the
/// same code as the JSON import). Blank rows are skipped.
pub fn org_rows_from_table(
    table: &[Vec<String>],
) -> Result<(Vec<NumberedOrg>, SheetLayout), Vec<ImportError>> {
    let layout = match_header(
        table,
        &ORG_COLUMNS,
        &["kind", "name", "region"],
        &["序号", "no"],
    )?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in table.iter().enumerate().skip(layout.header_row as usize) {
        if r.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let row = i as u32 + 1;
        let cell = |f: &str| cell_of(&layout, r, f).trim().to_owned();
        let mut err = |column: &str, rule: String| {
            errors.push(ImportError {
                row,
                column: column.into(),
                rule,
                ..ImportError::default()
            })
        };
        let kind = parse_org_kind(&cell("kind"));
        if kind.is_none() {
            err(
                "kind",
                format!(
                    "kind {:?} must be one of 医院/hospital, 生产企业/manufacturer, 配送企业/distributor, 医保局/bureau, 集成商/integrator",
                    cell("kind")
                ),
            );
        }
        let region = match RegionCode::parse(&cell("region")) {
            Ok(r) => Some(r),
            Err(e) => {
                err("region", e.to_string());
                None
            }
        };
        let level = match cell("level").as_str() {
            "" => None,
            l => match parse_level(l) {
                Some(l) => Some(l),
                None => {
                    err(
                        "level",
                        format!("level {l:?} must be 三级, 二级, 一级 or 未定级"),
                    );
                    None
                }
            },
        };
        let mut flag = |f: &str| match parse_flag(&cell(f)) {
            Some(b) => b,
            None => {
                err(f, format!("{f} must be 是 or 否, got {:?}", cell(f)));
                false
            }
        };
        let is_manufacturer = flag("is_manufacturer");
        let is_distributor = flag("is_distributor");
        let opt = |f: &str| Some(cell(f)).filter(|v| !v.is_empty());
        if let (Some(kind), Some(region)) = (kind, region) {
            rows.push((
                row,
                RegisterOrg {
                    id: None,
                    kind,
                    name: cell("name"),
                    region,
                    nhsa_code: opt("nhsa_code"),
                    level,
                    uscc: opt("uscc"),
                    is_manufacturer,
                    is_distributor,
                    acts_for: Vec::new(),
                },
            ));
        }
    }
    if errors.is_empty() {
        Ok((rows, layout))
    } else {
        layout.annotate(&mut errors);
        Err(errors)
    }
}

/// RFC 4180 CSV (quoted fields, doubled quotes, CRLF or LF). Fully blank
/// lines at the end are dropped.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c)
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                line += 1;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(format!(
            "unterminated quoted field starting before line {line}"
        ));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    while rows
        .last()
        .is_some_and(|r| r.iter().all(|c| c.trim().is_empty()))
    {
        rows.pop();
    }
    Ok(rows)
}

/// Which reader a file name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Csv,
    Xlsx,
}

pub fn file_kind(name: &str) -> Result<FileKind, String> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        Ok(FileKind::Csv)
    } else if lower.ends_with(".xlsx") {
        Ok(FileKind::Xlsx)
    } else {
        Err(format!("file_name must end in .csv or .xlsx, got {name:?}"))
    }
}

// ---------------------------------------------------------------------------
// Tripartite agreement state machine
// ---------------------------------------------------------------------------

/// Which party of an agreement is acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Hospital,
    Manufacturer,
    Distributor(OrgId),
}

/// The result of a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The version moved to `to`.
    Moved(AgreementState),
    /// A distributor confirmed; others still have to.
    DistributorRecorded,
    /// The last distributor confirmed: `distributor_confirmed`, then `effective`.
    AllConfirmed,
}

/// Why a transition is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransitionError(pub String);

/// The transition a party's confirmation makes from `state`.
/// `pending_distributors` are the distributors that have not confirmed yet.
pub fn confirm(
    state: AgreementState,
    party: Party,
    pending_distributors: &[OrgId],
) -> Result<Confirmation, TransitionError> {
    use AgreementState as S;
    match (state, party) {
        (S::Draft, Party::Hospital) => Ok(Confirmation::Moved(S::HospitalConfirmed)),
        (S::HospitalConfirmed, Party::Manufacturer) => {
            Ok(Confirmation::Moved(S::ManufacturerConfirmed))
        }
        (S::ManufacturerConfirmed, Party::Distributor(d)) => {
            if !pending_distributors.contains(&d) {
                return Err(TransitionError(format!(
                    "distributor {d} has already confirmed this version"
                )));
            }
            if pending_distributors.len() == 1 {
                Ok(Confirmation::AllConfirmed)
            } else {
                Ok(Confirmation::DistributorRecorded)
            }
        }
        (S::Effective | S::Rejected | S::Superseded | S::DistributorConfirmed, _) => {
            Err(TransitionError(format!(
                "an agreement version in state {} cannot be confirmed",
                state.as_str()
            )))
        }
        (_, party) => Err(TransitionError(format!(
            "the {} cannot confirm an agreement in state {}: the order is hospital, then manufacturer, then each distributor",
            party_name(party),
            state.as_str()
        ))),
    }
}

/// Any party may reject a version that is not yet final.
pub fn reject(state: AgreementState) -> Result<(), TransitionError> {
    use AgreementState as S;
    match state {
        S::Draft | S::HospitalConfirmed | S::ManufacturerConfirmed => Ok(()),
        _ => Err(TransitionError(format!(
            "an agreement version in state {} cannot be rejected; amend it instead",
            state.as_str()
        ))),
    }
}

/// Only an effective version (the latest) may be amended; a pending
/// amendment must be finished or rejected first.
pub fn amend(state: AgreementState) -> Result<(), TransitionError> {
    match state {
        AgreementState::Effective => Ok(()),
        s => Err(TransitionError(format!(
            "only the effective version of an agreement can be amended; version is {}",
            s.as_str()
        ))),
    }
}

pub fn party_name(party: Party) -> &'static str {
    match party {
        Party::Hospital => "hospital",
        Party::Manufacturer => "manufacturer",
        Party::Distributor(_) => "distributor",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liaoning_period_two_bounds_are_half_open_beijing() {
        let (s, e) = period_bounds(
            NaiveDate::from_ymd_opt(2024, 8, 1).unwrap(),
            NaiveDate::from_ymd_opt(2025, 7, 31).unwrap(),
        )
        .unwrap();
        assert_eq!(s.to_rfc3339(), "2024-07-31T16:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2025-07-31T16:00:00+00:00");
        assert_eq!((e - s).num_days(), 365);
        assert!(
            period_bounds(
                NaiveDate::from_ymd_opt(2025, 8, 1).unwrap(),
                NaiveDate::from_ymd_opt(2025, 7, 31).unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn uscc_check_digit_follows_gb32100() {
        // A published example code.
        assert_eq!(uscc_check_char("91350100M000100Y4"), Some('3'));
        assert!(validate_uscc("91350100M000100Y43").is_ok());
        let e = validate_uscc("91350100M000100Y44").unwrap_err();
        assert!(e.contains("check character must be '3'"), "{e}");
        assert!(
            validate_uscc("91350100M000100Y4")
                .unwrap_err()
                .contains("18")
        );
        assert!(
            validate_uscc("91350100I000100Y43")
                .unwrap_err()
                .contains("position 9")
        );
    }

    #[test]
    fn nhsa_code_shape_and_region() {
        let fuxin: RegionCode = "210902".parse().unwrap();
        assert!(validate_nhsa_code("H21090200001", fuxin).is_ok());
        assert!(
            validate_nhsa_code("H21010200001", fuxin)
                .unwrap_err()
                .contains("must equal")
        );
        assert!(validate_nhsa_code("X21090200001", fuxin).is_err());
        assert!(validate_nhsa_code("H2109020001", fuxin).is_err());
        assert!(validate_nhsa_code("H2109020000A", fuxin).is_err());
    }

    #[test]
    fn classes_against_time_progress() {
        // Half the period elapsed.
        assert_eq!(classify(100, 0, 50, 100), ProgressClass::Zero);
        assert_eq!(classify(100, 49, 50, 100), ProgressClass::Slow);
        assert_eq!(classify(100, 50, 50, 100), ProgressClass::Normal);
        assert_eq!(classify(100, 100, 50, 100), ProgressClass::Completed);
        assert_eq!(classify(100, 101, 50, 100), ProgressClass::OverVolume);
        assert_eq!(classify(0, 1, 50, 100), ProgressClass::OverVolume);
        assert_eq!(classify(0, 0, 50, 100), ProgressClass::Zero);
        assert_eq!(progress_bp(200, 50), Some(BasisPoints::new(2500).unwrap()));
    }

    #[test]
    fn time_progress_counts_whole_days() {
        let (s, e) = period_bounds(
            NaiveDate::from_ymd_opt(2024, 8, 1).unwrap(),
            NaiveDate::from_ymd_opt(2025, 7, 31).unwrap(),
        )
        .unwrap();
        assert_eq!(elapsed_days(s, e, s - Duration::days(3)), (0, 365));
        assert_eq!(elapsed_days(s, e, s + Duration::hours(23)), (0, 365));
        assert_eq!(elapsed_days(s, e, s + Duration::days(73)), (73, 365));
        assert_eq!(elapsed_days(s, e, e + Duration::days(10)), (365, 365));
        assert_eq!(time_progress_bp(73, 365).value(), 2000);
    }

    #[test]
    fn state_machine_orders_the_parties() {
        use AgreementState as S;
        let d1 = OrgId::new();
        let d2 = OrgId::new();
        assert_eq!(
            confirm(S::Draft, Party::Hospital, &[d1]),
            Ok(Confirmation::Moved(S::HospitalConfirmed))
        );
        assert!(confirm(S::Draft, Party::Manufacturer, &[d1]).is_err());
        assert!(confirm(S::Draft, Party::Distributor(d1), &[d1]).is_err());
        assert_eq!(
            confirm(S::HospitalConfirmed, Party::Manufacturer, &[d1]),
            Ok(Confirmation::Moved(S::ManufacturerConfirmed))
        );
        assert_eq!(
            confirm(S::ManufacturerConfirmed, Party::Distributor(d1), &[d1, d2]),
            Ok(Confirmation::DistributorRecorded)
        );
        assert_eq!(
            confirm(S::ManufacturerConfirmed, Party::Distributor(d2), &[d2]),
            Ok(Confirmation::AllConfirmed)
        );
        assert!(confirm(S::ManufacturerConfirmed, Party::Distributor(d1), &[d2]).is_err());
        assert!(confirm(S::Effective, Party::Hospital, &[]).is_err());
        assert!(reject(S::Effective).is_err());
        assert!(reject(S::HospitalConfirmed).is_ok());
        assert!(amend(S::Draft).is_err());
        assert!(amend(S::Effective).is_ok());
    }

    #[test]
    fn csv_handles_quotes_and_crlf() {
        let rows = parse_csv("a,b,c\r\n\"x, y\",\"he said \"\"hi\"\"\",3\r\n\r\n").unwrap();
        assert_eq!(
            rows,
            vec![vec!["a", "b", "c"], vec!["x, y", "he said \"hi\"", "3"]]
        );
        assert!(parse_csv("a,\"b\n").is_err());
    }

    #[test]
    fn monthly_expectation_rounds_half_up() {
        let months = months_of(
            NaiveDate::from_ymd_opt(2024, 8, 1).unwrap(),
            NaiveDate::from_ymd_opt(2025, 7, 31).unwrap(),
        );
        assert_eq!(months.len(), 12);
        assert_eq!(expected_per_month(120, 12), 10);
        assert_eq!(expected_per_month(126, 12), 11);
        assert_eq!(expected_per_month(125, 12), 10);
    }

    #[test]
    fn weekly_snapshot_is_monday_midnight_beijing() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // Thursday 2024-08-01 09:00 +08 → Monday 2024-08-05 00:00 +08.
        assert_eq!(
            next_monday_midnight_after(t("2024-08-01T09:00:00+08:00")),
            t("2024-08-04T16:00:00Z")
        );
        // Exactly Monday 00:00 → the next Monday; Sunday 23:59 → the coming Monday.
        assert_eq!(
            next_monday_midnight_after(t("2024-08-05T00:00:00+08:00")),
            t("2024-08-12T00:00:00+08:00")
        );
        assert_eq!(
            next_monday_midnight_after(t("2024-08-11T23:59:59+08:00")),
            t("2024-08-12T00:00:00+08:00")
        );
        let (s, e) = period_bounds(
            NaiveDate::from_ymd_opt(2024, 8, 1).unwrap(),
            NaiveDate::from_ymd_opt(2025, 7, 31).unwrap(),
        )
        .unwrap();
        // Opened before the start: the first Monday after the start.
        assert_eq!(
            next_snapshot_at(s, e, t("2024-06-01T00:00:00Z")),
            Some(t("2024-08-05T00:00:00+08:00"))
        );
        // The last Monday inside the period is 2025-07-28; none after it.
        assert_eq!(
            next_snapshot_at(s, e, t("2025-07-21T00:00:00+08:00")),
            Some(t("2025-07-28T00:00:00+08:00"))
        );
        assert_eq!(next_snapshot_at(s, e, t("2025-07-28T00:00:00+08:00")), None);
    }

    #[test]
    fn header_row_is_found_by_name_below_title_rows() {
        let table: Vec<Vec<String>> = vec![
            vec!["辽宁省冠脉导引导管中选产品供应清单".into()],
            vec![],
            [
                "序号",
                "国家医保耗材编码",
                "通用名",
                "规格型号",
                "单位",
                "生产企业",
                "中选价格(元)",
                "产品组",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            ["1", "C1", "n", "s", "u", "m", "1.00", "G1"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ];
        let (rows, layout) = supply_rows_from_table(&table).unwrap();
        assert_eq!(layout.header_row, 3);
        assert_eq!(layout.first_data_row(), 4);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].manufacturer_uscc, "m");
        let mut errs = vec![ImportError {
            row: 4,
            column: "winning_price_yuan".into(),
            rule: "x".into(),
            ..ImportError::default()
        }];
        layout.annotate(&mut errs);
        assert_eq!(errs[0].cell.as_deref(), Some("G4"));
        assert_eq!(errs[0].header.as_deref(), Some("中选价格(元)"));
        assert_eq!(column_letters(26), "AA");
        let e =
            supply_rows_from_table(&[vec!["national_code".into(), "price".into()]]).unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.column == "price" && e.rule.contains("unknown"))
        );
        assert!(
            e.iter()
                .any(|e| e.column == "unit" && e.rule.contains("missing"))
        );
    }

    #[test]
    fn region_ranges() {
        assert_eq!(region_range("210000".parse().unwrap()), (210000, 219999));
        assert_eq!(region_range("210900".parse().unwrap()), (210900, 210999));
        assert_eq!(region_range("210922".parse().unwrap()), (210922, 210922));
    }
}
