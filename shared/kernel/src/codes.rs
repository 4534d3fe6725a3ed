//! National medical-insurance codes (医保编码) of consumables and drugs.
//!
//! Supply lists, orders, integrator payloads and issue filings all name products by national
//! code, and every join between services goes through it, so a code is validated once, at the
//! edge, and is a distinct type afterwards. Validation is deliberately strict (no trimming, no
//! case folding): a code that only matches after cleanup came from a mangled column, and the
//! sender must be told instead of silently matching some other product.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Length of a consumable code: `C` + 19-digit base + 7-digit SKU serial.
pub const CONSUMABLE_CODE_LEN: usize = 27;
/// Length of a drug code.
pub const DRUG_CODE_LEN: usize = 23;
/// Length of a consumable code's product base (`C` + 19 digits), which identifies the family.
pub const PRODUCT_BASE_LEN: usize = 20;

/// Which catalogue a national code belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    /// 医用耗材, 27 characters starting with `C`.
    Consumable,
    /// 药品, 23 characters starting with `X`.
    Drug,
}

/// A validated national code: a consumable code such as `C15011121200000107660000016` or a drug
/// code such as `XA01ABD075A002010100483`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalCode(String);

/// The fixed-width fields of a consumable code (all digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumableCodeParts<'a> {
    /// Three two-digit classification levels (一级/二级/三级分类), e.g. `150111`.
    pub classification: &'a str,
    /// Generic-name class (通用名), 3 digits.
    pub generic_name: &'a str,
    /// Material (材质), 2 digits.
    pub material: &'a str,
    /// Feature / specification (特征/规格), 3 digits.
    pub feature: &'a str,
    /// Enterprise (企业), 5 digits.
    pub enterprise: &'a str,
    /// SKU serial within the product family (规格型号流水号), 7 digits.
    pub sku_serial: &'a str,
}

impl NationalCode {
    /// Validates `code` as a consumable or drug code.
    pub fn parse(code: &str) -> Result<NationalCode, NationalCodeError> {
        validate(code)?;
        Ok(NationalCode(code.to_owned()))
    }

    /// The code as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumable or drug, from the first character.
    pub fn kind(&self) -> CodeKind {
        if self.0.starts_with('C') {
            CodeKind::Consumable
        } else {
            CodeKind::Drug
        }
    }

    /// True for a medical-consumable code.
    pub fn is_consumable(&self) -> bool {
        self.kind() == CodeKind::Consumable
    }

    /// The product family of a consumable: its first 20 characters (`C` + 19-digit base),
    /// shared by every spec/model (SKU) of one product of one enterprise. `None` for drugs,
    /// whose codes have no such split.
    ///
    /// Supply lists sometimes name a family rather than each SKU, so agreements and progress
    /// match an order's SKU code against the family through this.
    pub fn product_base(&self) -> Option<&str> {
        self.is_consumable().then(|| &self.0[..PRODUCT_BASE_LEN])
    }

    /// The fields of a consumable code; `None` for drugs.
    pub fn consumable_parts(&self) -> Option<ConsumableCodeParts<'_>> {
        if !self.is_consumable() {
            return None;
        }
        let c = &self.0;
        Some(ConsumableCodeParts {
            classification: &c[1..7],
            generic_name: &c[7..10],
            material: &c[10..12],
            feature: &c[12..15],
            enterprise: &c[15..20],
            sku_serial: &c[20..27],
        })
    }
}

/// Why a text is not a national code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NationalCodeError {
    #[error("national code must not contain whitespace, got {0:?}")]
    Whitespace(String),
    #[error("national code must be 27 characters (consumable) or 23 (drug), got {0}")]
    Length(usize),
    #[error("a 27-character national code is a consumable code and must start with 'C', got {0:?}")]
    ConsumablePrefix(char),
    #[error("a 23-character national code is a drug code and must start with 'X', got {0:?}")]
    DrugPrefix(char),
    #[error(
        "consumable national code must be 'C' followed by 26 digits, got {ch:?} at position {position}"
    )]
    ConsumableNonDigit { position: usize, ch: char },
    #[error(
        "drug national code must be uppercase ASCII letters and digits, got {ch:?} at position {position}"
    )]
    DrugCharacter { position: usize, ch: char },
}

fn validate(code: &str) -> Result<(), NationalCodeError> {
    use NationalCodeError as E;
    if code.chars().any(char::is_whitespace) {
        return Err(E::Whitespace(code.to_owned()));
    }
    let len = code.chars().count();
    let first = code.chars().next();
    match (len, first) {
        (CONSUMABLE_CODE_LEN, Some('C')) => {
            // 1-based positions, as a person counting characters in the code would.
            match code
                .chars()
                .enumerate()
                .skip(1)
                .find(|(_, c)| !c.is_ascii_digit())
            {
                Some((i, ch)) => Err(E::ConsumableNonDigit {
                    position: i + 1,
                    ch,
                }),
                None => Ok(()),
            }
        }
        (CONSUMABLE_CODE_LEN, Some(other)) => Err(E::ConsumablePrefix(other)),
        (DRUG_CODE_LEN, Some('X')) => {
            let bad = code
                .chars()
                .enumerate()
                .find(|(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit()));
            match bad {
                Some((i, ch)) => Err(E::DrugCharacter {
                    position: i + 1,
                    ch,
                }),
                None => Ok(()),
            }
        }
        (DRUG_CODE_LEN, Some(other)) => Err(E::DrugPrefix(other)),
        _ => Err(E::Length(len)),
    }
}

impl FromStr for NationalCode {
    type Err = NationalCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NationalCode::parse(s)
    }
}

impl TryFrom<String> for NationalCode {
    type Error = NationalCodeError;

    fn try_from(code: String) -> Result<Self, Self::Error> {
        validate(&code)?;
        Ok(NationalCode(code))
    }
}

impl TryFrom<&str> for NationalCode {
    type Error = NationalCodeError;

    fn try_from(code: &str) -> Result<Self, Self::Error> {
        NationalCode::parse(code)
    }
}

impl From<NationalCode> for String {
    fn from(code: NationalCode) -> String {
        code.0
    }
}

impl AsRef<str> for NationalCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NationalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for NationalCode {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("NationalCode")
    }

    fn schema_id() -> Cow<'static, str> {
        Cow::Borrowed(concat!(module_path!(), "::NationalCode"))
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(C[0-9]{26}|X[0-9A-Z]{22})$",
            "description": "National medical-insurance code: consumable = 'C' + 19-digit base + 7-digit SKU serial (27 chars); drug = 23 uppercase letters/digits starting with 'X'.",
            "examples": ["C15011121200000107660000016", "XA01ABD075A002010100483"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSUMABLE: &str = "C15011121200000107660000016";
    const DRUG: &str = "XA01ABD075A002010100483";

    #[test]
    fn accepts_the_documented_examples() {
        let consumable = NationalCode::parse(CONSUMABLE).unwrap();
        assert_eq!(consumable.kind(), CodeKind::Consumable);
        assert_eq!(consumable.as_str(), CONSUMABLE);
        assert_eq!(consumable.to_string(), CONSUMABLE);

        let drug = NationalCode::parse(DRUG).unwrap();
        assert_eq!(drug.kind(), CodeKind::Drug);
        assert!(!drug.is_consumable());
    }

    #[test]
    fn product_base_groups_the_skus_of_one_family() {
        let a = NationalCode::parse(CONSUMABLE).unwrap();
        let b = NationalCode::parse("C15011121200000107660000017").unwrap();
        let other_enterprise = NationalCode::parse("C15011121200000107670000016").unwrap();
        assert_eq!(a.product_base(), Some("C1501112120000010766"));
        assert_eq!(a.product_base(), b.product_base());
        assert_ne!(a.product_base(), other_enterprise.product_base());
        assert_eq!(NationalCode::parse(DRUG).unwrap().product_base(), None);
    }

    #[test]
    fn consumable_parts_follow_the_field_widths() {
        let code = NationalCode::parse(CONSUMABLE).unwrap();
        let parts = code.consumable_parts().unwrap();
        assert_eq!(
            parts,
            ConsumableCodeParts {
                classification: "150111",
                generic_name: "212",
                material: "00",
                feature: "000",
                enterprise: "10766",
                sku_serial: "0000016",
            }
        );
        assert!(
            NationalCode::parse(DRUG)
                .unwrap()
                .consumable_parts()
                .is_none()
        );
    }

    #[test]
    fn rejects_malformed_codes_naming_the_rule() {
        use NationalCodeError as E;
        let cases: &[(&str, E, &str)] = &[
            (
                "C1501112120",
                E::Length(11),
                "must be 27 characters (consumable) or 23 (drug), got 11",
            ),
            ("", E::Length(0), "got 0"),
            (
                " C15011121200000107660000016",
                E::Whitespace(" C15011121200000107660000016".into()),
                "whitespace",
            ),
            (
                "C15011121200000107660000016\n",
                E::Whitespace("C15011121200000107660000016\n".into()),
                "whitespace",
            ),
            (
                "c15011121200000107660000016",
                E::ConsumablePrefix('c'),
                "must start with 'C'",
            ),
            (
                "X15011121200000107660000016",
                E::ConsumablePrefix('X'),
                "consumable code",
            ),
            (
                "C1501112120000010766000001A",
                E::ConsumableNonDigit {
                    position: 27,
                    ch: 'A',
                },
                "position 27",
            ),
            (
                "xA01ABD075A002010100483",
                E::DrugPrefix('x'),
                "must start with 'X'",
            ),
            (
                "XA01aBD075A002010100483",
                E::DrugCharacter {
                    position: 5,
                    ch: 'a',
                },
                "uppercase",
            ),
            (
                "XA01AB-075A002010100483",
                E::DrugCharacter {
                    position: 7,
                    ch: '-',
                },
                "position 7",
            ),
            (
                "C1501112120000010766000001１",
                E::ConsumableNonDigit {
                    position: 27,
                    ch: '１',
                },
                "digits",
            ),
        ];
        for (input, expected, message_part) in cases {
            let err = NationalCode::parse(input).expect_err(input);
            assert_eq!(&err, expected, "{input:?}");
            assert!(err.to_string().contains(message_part), "{input:?}: {err}");
        }
    }

    #[test]
    fn serde_validates_on_the_way_in() {
        let code = NationalCode::parse(CONSUMABLE).unwrap();
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{CONSUMABLE}\""));
        assert_eq!(serde_json::from_str::<NationalCode>(&json).unwrap(), code);

        let err = serde_json::from_str::<NationalCode>("\"C123\"").unwrap_err();
        assert!(err.to_string().contains("got 4"), "{err}");
    }

    #[test]
    fn schema_is_a_string_with_the_code_pattern() {
        let schema = schemars::schema_for!(NationalCode);
        let value = schema.as_value();
        assert_eq!(value["type"], "string");
        assert_eq!(value["pattern"], "^(C[0-9]{26}|X[0-9A-Z]{22})$");
    }
}
