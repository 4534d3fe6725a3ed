//! Which rows of an answer belong to someone else. The rule is the second
//! authorisation check of DESIGN §6 seen from outside: a hospital sees its
//! own rows, an enterprise the rows it is a party to, an integrator its own
//! messages, a bureau the hospitals of its region (a province all its cities,
//! a city its counties), the operator everything.
//!
//! The answer is walked as JSON, so it needs no knowledge of each view: any
//! object carrying a party field (`hospital`, `manufacturer`, `distributor`,
//! `distributors`, `integrator`, `hospital_region`) is a row of that party.

use serde_json::Value;
use vbp_kernel::OrgKind;

use crate::cast::{self, CastOrg};

/// The region prefix a bureau of `region` governs: `210000` → `21`,
/// `210900` → `2109`, `210922` → `210922`.
pub fn jurisdiction(region: &str) -> &str {
    let mut prefix = region;
    while prefix.len() > 2 && prefix.ends_with("00") {
        prefix = &prefix[..prefix.len() - 2];
    }
    prefix
}

/// One row the caller should not have seen.
#[derive(Debug, Clone)]
pub struct Foreign {
    /// JSON path of the object, e.g. `items[3]`.
    pub at: String,
    pub field: &'static str,
    pub value: String,
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} = {}", self.at, self.field, self.value)
    }
}

/// Every foreign row in `answer` for `viewer`.
pub fn foreign_rows(viewer: &CastOrg, answer: &Value) -> Vec<Foreign> {
    let mut out = Vec::new();
    walk(viewer, answer, "$".to_owned(), &mut out);
    out
}

fn walk(viewer: &CastOrg, value: &Value, at: String, out: &mut Vec<Foreign>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(viewer, item, format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            check_object(viewer, map, &at, out);
            let among = viewer.kind == OrgKind::Distributor && lists_distributor(map, viewer.id);
            for (key, item) in map {
                // The co-distributors of a row the caller is party to are
                // part of that row, not rows of their own.
                if among && key == "distributors" {
                    continue;
                }
                walk(viewer, item, format!("{at}.{key}"), out);
            }
        }
        _ => {}
    }
}

fn check_object(
    viewer: &CastOrg,
    map: &serde_json::Map<String, Value>,
    at: &str,
    out: &mut Vec<Foreign>,
) {
    let mut flag = |field: &'static str, value: &str| {
        out.push(Foreign {
            at: at.to_owned(),
            field,
            value: value.to_owned(),
        })
    };
    let own = |field: &str| {
        map.get(field)
            .and_then(Value::as_str)
            .filter(|v| *v != viewer.id)
    };
    match viewer.kind {
        OrgKind::Hospital => {
            if let Some(v) = own("hospital") {
                flag("hospital", v);
            }
        }
        OrgKind::Manufacturer => {
            if let Some(v) = own("manufacturer") {
                flag("manufacturer", v);
            }
        }
        OrgKind::Distributor => {
            let listed = map
                .get("distributors")
                .and_then(Value::as_array)
                .map(|_| lists_distributor(map, viewer.id));
            match listed {
                Some(false) => flag("distributors", "(the caller is not among them)"),
                // A row with several distributors is the caller's when it is
                // one of them, whichever `distributor` the row leads with.
                Some(true) => {}
                None => {
                    if let Some(v) = own("distributor") {
                        flag("distributor", v);
                    }
                }
            }
        }
        OrgKind::Integrator => {
            if let Some(v) = own("integrator") {
                flag("integrator", v);
            }
        }
        OrgKind::Bureau => {
            let governs = jurisdiction(viewer.region);
            if let Some(hospital) = map.get("hospital").and_then(Value::as_str)
                && let Some(org) = cast::by_id(hospital)
                && !org.region.starts_with(governs)
            {
                flag("hospital", hospital);
            }
            if let Some(region) = map.get("hospital_region").and_then(Value::as_str)
                && !region.starts_with(governs)
            {
                flag("hospital_region", region);
            }
        }
        OrgKind::Operator => {}
    }
}

/// Whether the row's `distributors` (ids, or objects with a `distributor`)
/// include `id`.
fn lists_distributor(map: &serde_json::Map<String, Value>, id: &str) -> bool {
    map.get("distributors")
        .and_then(Value::as_array)
        .is_some_and(|ds| {
            ds.iter().any(|d| {
                d.as_str() == Some(id) || d.get("distributor").and_then(Value::as_str) == Some(id)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bureaus_govern_their_region_prefix() {
        assert_eq!(jurisdiction("210000"), "21");
        assert_eq!(jurisdiction("210900"), "2109");
        assert_eq!(jurisdiction("210922"), "210922");
        assert_eq!(jurisdiction("000000"), "00");
    }

    #[test]
    fn foreign_rows_are_found_at_any_depth() {
        let fuxin = cast::by_name("hospital-fuxin");
        let shenyang = cast::by_name("hospital-shenyang");
        let answer = json!({"items": [{"hospital": fuxin.id}, {"x": {"hospital": shenyang.id}}]});
        let found = foreign_rows(fuxin, &answer);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].at, "$.items[1].x");
        let city = cast::by_name("bureau-fuxin");
        assert_eq!(foreign_rows(city, &answer).len(), 1);
        let province = cast::by_name("bureau-liaoning");
        assert!(foreign_rows(province, &answer).is_empty());
        let dist = cast::by_name("distributor-fuxin");
        let shared = json!({"distributor": "x", "distributors": [dist.id, "x"]});
        assert!(foreign_rows(dist, &shared).is_empty());
        assert_eq!(foreign_rows(dist, &json!({"distributor": "x"})).len(), 1);
        let confirmations =
            json!({"distributors": [{"distributor": dist.id}, {"distributor": "x"}]});
        assert!(foreign_rows(dist, &confirmations).is_empty());
        let others = json!({"distributors": [{"distributor": "x"}]});
        assert_eq!(
            foreign_rows(dist, &others).len(),
            2,
            "the row and its entry"
        );
    }
}
