//! The authorisation matrix, generated from the gateway's route table: every
//! route × every organisation of the Liaoning cast (each kind, a province and
//! two city bureaus, hospitals and enterprises of different cities), over the
//! demo data.
//!
//! - The gateway answers 403 problem+json exactly when the route's policy
//!   refuses the caller's kind, and never refuses for policy reasons
//!   otherwise; without a token every route answers 401.
//! - No answer is a 5xx.
//! - No read answer of a non-public route carries a row of another tenant
//!   ([`vbp_tests::tenancy`]): not in lists, not when a foreign row's id is
//!   asked for directly, not when a foreign party is named as a filter.
//! - A write on another tenant's row, with a body that reads as valid, is
//!   refused by the service (4xx problem), never carried out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use vbp_kernel::OrgKind;
use vbp_tests::cast::{self, CAST, CastOrg};
use vbp_tests::routes::{self, RouteInfo, query_string};
use vbp_tests::samples::{self, required_query};
use vbp_tests::system::{Answer, Body, System};
use vbp_tests::{tenancy, values};

/// Known defects in services, each (route, caller, what is wrong): the
/// matrix reports them but does not fail on them. Empty: every probe holds.
const KNOWN_DEFECTS: &[(&str, &str, &str)] = &[];

/// One request of the matrix.
#[derive(Debug, Clone)]
struct Probe {
    route: RouteInfo,
    org: Option<&'static CastOrg>,
    path: String,
    /// What the probe asks beyond the route itself (`own`, `id=…`, `hospital=…`).
    variant: String,
    /// The JSON body of a write; `{}` when none is given.
    body: Option<Value>,
}

struct Outcome {
    probe: Probe,
    answer: Answer,
}

async fn run(system: &System, probes: Vec<Probe>) -> Vec<Outcome> {
    futures::stream::iter(probes)
        .map(|probe| async move {
            let body = if probe.route.has_body() {
                Body::Json(probe.body.clone().unwrap_or_else(|| serde_json::json!({})))
            } else {
                Body::None
            };
            let answer = system
                .send(probe.route.method.clone(), &probe.path, probe.org, body)
                .await;
            Outcome { probe, answer }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

fn known(route: &RouteInfo, org: Option<&CastOrg>, problem: &str) -> bool {
    KNOWN_DEFECTS.iter().any(|(r, o, what)| {
        *r == route.name() && org.is_some_and(|org| org.name == *o) && problem.contains(what)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_for_every_kind_of_organisation() {
    let system = System::with_demo().await;
    let doc = system.openapi().await;
    let table = routes::table();
    let operator = cast::by_name("operator");
    let fresh = || uuid::Uuid::now_v7().to_string();

    // Ids of real rows, from every list the operator may read.
    let samples = samples::gather(&system, &doc, &table, operator).await;

    // Reads: every route × every organisation, over real ids and foreign filters.
    let mut probes = Vec::new();
    for route in table.iter().filter(|r| r.method == Method::GET) {
        for org in CAST {
            let mut id_sets: Vec<(String, HashMap<String, String>)> = vec![(
                "own".into(),
                route
                    .params
                    .iter()
                    .map(|p| {
                        let v = values::for_name(p, org)
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_else(fresh);
                        (p.clone(), v)
                    })
                    .collect(),
            )];
            if let [param] = route.params.as_slice() {
                for id in samples.get(param).into_iter().flatten().take(12) {
                    id_sets.push((
                        format!("{param}={id}"),
                        HashMap::from([(param.clone(), id.clone())]),
                    ));
                }
            }
            let mut filters: Vec<(String, String)> = Vec::new();
            for param in routes::query_params(&doc, route) {
                let of_kind = match param.name.as_str() {
                    "hospital" => Some(OrgKind::Hospital),
                    "manufacturer" => Some(OrgKind::Manufacturer),
                    "distributor" => Some(OrgKind::Distributor),
                    _ => None,
                };
                if let Some(kind) = of_kind {
                    for other in CAST.iter().filter(|o| o.kind == kind) {
                        filters.push((param.name.clone(), other.id.to_owned()));
                    }
                }
                if param.name == "region" {
                    for region in ["210000", "210100", "210900", "210922"] {
                        filters.push(("region".into(), region.into()));
                    }
                }
            }
            for (variant, ids) in &id_sets {
                let base = route.fill(ids);
                probes.push(Probe {
                    route: route.clone(),
                    org: Some(org),
                    path: format!(
                        "{base}{}",
                        query_string(&required_query(&doc, route, org, &[]))
                    ),
                    variant: variant.clone(),
                    body: None,
                });
                if variant != "own" {
                    continue;
                }
                for (name, value) in &filters {
                    let q = required_query(&doc, route, org, &[(name.clone(), value.clone())]);
                    probes.push(Probe {
                        route: route.clone(),
                        org: Some(org),
                        path: format!("{base}{}", query_string(&q)),
                        variant: format!("{name}={value}"),
                        body: None,
                    });
                }
            }
        }
    }
    let reads = run(&system, probes).await;

    // Writes: every route × every organisation, on rows that do not exist and
    // with an empty body, so an admitted caller meets the service's rules and
    // not the policy; after the reads, as a write may change the demo.
    let mut probes = Vec::new();
    for route in table.iter().filter(|r| r.method != Method::GET) {
        for org in CAST {
            let ids: HashMap<String, String> = route
                .params
                .iter()
                .map(|p| {
                    let v = if p == "region" {
                        "210900".to_owned()
                    } else {
                        fresh()
                    };
                    (p.clone(), v)
                })
                .collect();
            probes.push(Probe {
                route: route.clone(),
                org: Some(org),
                path: route.fill(&ids),
                variant: "absent".into(),
                body: None,
            });
        }
    }
    let writes = run(&system, probes).await;

    // Writes on another tenant's rows, with bodies that read as valid: the
    // parties of each row come from what the operator sees of it.
    let mut rows: HashMap<String, Value> = HashMap::new();
    let mut probes = Vec::new();
    for route in table.iter().filter(|r| r.method != Method::GET) {
        let [param] = route.params.as_slice() else {
            continue;
        };
        let marker = format!("{{{param}}}");
        let Some(row_route) = samples::row_route(&table, route, param) else {
            continue;
        };
        for id in samples.get(param).into_iter().flatten().take(12) {
            let row_path = row_route.replace(&marker, id);
            if !rows.contains_key(&row_path) {
                let answer = system.get(&row_path, operator).await;
                rows.insert(row_path.clone(), answer.json);
            }
            let row = &rows[&row_path];
            if !row.is_object() {
                continue;
            }
            for org in CAST.iter().filter(|o| route.permits(o)) {
                if tenancy::foreign_rows(org, row).is_empty() {
                    continue;
                }
                let mut body = routes::body_schema(&doc, route)
                    .map(|schema| values::for_schema(&doc, schema, org, 0))
                    .unwrap_or_else(|| serde_json::json!({}));
                if let Some(map) = body.as_object_mut() {
                    map.remove(param);
                }
                probes.push(Probe {
                    route: route.clone(),
                    org: Some(org),
                    path: route.path.replace(&marker, id),
                    variant: format!("foreign {param}={id}"),
                    body: Some(body),
                });
            }
        }
    }
    let foreign_writes = run(&system, probes).await;

    // Anonymous: every route.
    let probes = table
        .iter()
        .map(|route| {
            let ids: HashMap<String, String> =
                route.params.iter().map(|p| (p.clone(), fresh())).collect();
            Probe {
                route: route.clone(),
                org: None,
                path: route.fill(&ids),
                variant: "anonymous".into(),
                body: None,
            }
        })
        .collect();
    let anonymous = run(&system, probes).await;

    let mut failures = Vec::new();
    let mut known_seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut checked_rows = 0usize;
    let mut ok_reads = 0usize;
    let mut report = |outcome: &Outcome, problem: String| {
        let line = format!(
            "{} as {} [{}] {}: {} — {}",
            outcome.probe.route.name(),
            outcome.probe.org.map_or("anonymous", |o| o.name),
            outcome.probe.variant,
            outcome.probe.path,
            problem,
            outcome.answer.text.chars().take(300).collect::<String>()
        );
        if known(&outcome.probe.route, outcome.probe.org, &problem) {
            let key = format!(
                "{} as {}",
                outcome.probe.route.name(),
                outcome.probe.org.map_or("anonymous", |o| o.name)
            );
            known_seen.entry(key).or_default().push(line);
        } else {
            failures.push(line);
        }
    };
    for outcome in anonymous.iter() {
        let a = &outcome.answer;
        if a.status != 401 || !a.is_problem() {
            report(outcome, format!("anonymous call answered {}", a.status));
        }
    }
    for outcome in foreign_writes.iter() {
        let a = &outcome.answer;
        if a.status < 400 || a.status >= 500 || !a.is_problem() || a.is_policy_refusal() {
            report(
                outcome,
                format!(
                    "a write on another tenant's row answered {} (a 4xx refusal by the service was expected)",
                    a.status
                ),
            );
        }
    }
    for outcome in reads.iter().chain(writes.iter()) {
        let a = &outcome.answer;
        let org = outcome.probe.org.expect("signed in");
        let route = &outcome.probe.route;
        if a.status >= 500 {
            report(outcome, format!("answered {}", a.status));
            continue;
        }
        if !route.permits(org) {
            if !(a.is_policy_refusal() && a.is_problem()) {
                report(
                    outcome,
                    format!(
                        "the policy refuses {} but the answer is {}",
                        org.kind, a.status
                    ),
                );
            }
            continue;
        }
        if a.status == 401 || a.is_policy_refusal() {
            report(
                outcome,
                format!(
                    "the policy admits {} but the answer is {}",
                    org.kind, a.status
                ),
            );
            continue;
        }
        if a.status >= 400 && !(a.is_problem() && a.code().is_some()) {
            report(
                outcome,
                format!("error {} is not problem+json with a code", a.status),
            );
        }
        if route.method == Method::GET && a.status == 200 {
            ok_reads += 1;
            if route.is_public() {
                continue;
            }
            checked_rows += 1;
            let foreign = tenancy::foreign_rows(org, &a.json);
            if !foreign.is_empty() {
                let shown: Vec<String> = foreign.iter().take(3).map(|f| f.to_string()).collect();
                report(
                    outcome,
                    format!(
                        "{} foreign rows returned, e.g. {}",
                        foreign.len(),
                        shown.join("; ")
                    ),
                );
            }
        }
    }

    print_matrix(&table, &reads, &writes);
    println!(
        "authz matrix: {} routes × {} organisations ({} kinds); {} reads ({} answered 200, {} scoped answers checked for foreign rows), {} writes, {} writes on other tenants' rows, {} anonymous",
        table.len(),
        CAST.len(),
        OrgKind::ALL.len(),
        reads.len(),
        ok_reads,
        checked_rows,
        writes.len(),
        foreign_writes.len(),
        anonymous.len()
    );
    for (who, lines) in &known_seen {
        println!(
            "known defect: {who}, {} probes, e.g. {}",
            lines.len(),
            lines[0].chars().take(400).collect::<String>()
        );
    }
    assert!(
        ok_reads > 0 && checked_rows > 0,
        "no read was answered: the matrix proved nothing"
    );
    assert!(
        failures.is_empty(),
        "{} authorisation failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One line per route: the kinds its policy admits, then per organisation
/// the statuses seen (`2`xx, `4`xx other than 403, `F` policy refusal).
fn print_matrix(table: &[RouteInfo], reads: &[Outcome], writes: &[Outcome]) {
    let mut seen: BTreeMap<(String, &str), BTreeSet<char>> = BTreeMap::new();
    for outcome in reads.iter().chain(writes) {
        let Some(org) = outcome.probe.org else {
            continue;
        };
        let a = &outcome.answer;
        let mark = if a.is_policy_refusal() {
            'F'
        } else {
            char::from_digit(u32::from(a.status / 100), 10).unwrap_or('?')
        };
        seen.entry((outcome.probe.route.name(), org.name))
            .or_default()
            .insert(mark);
    }
    // `hospital-fuxin` → `hos-fu`: the kind, then the place.
    let header: Vec<String> = CAST
        .iter()
        .map(|o| {
            let (kind, place) = o.name.split_once('-').unwrap_or((o.name, ""));
            format!("{:.3}-{:.2}", kind, place)
        })
        .collect();
    println!("{:<60} {}", "route \\ organisation", header.join(" "));
    for route in table {
        let cells: Vec<String> = CAST
            .iter()
            .map(|o| {
                let marks: String = seen
                    .get(&(route.name(), o.name))
                    .map(|m| m.iter().collect())
                    .unwrap_or_default();
                format!("{marks:<6}")
            })
            .collect();
        println!("{:<60} {}", route.name(), cells.join(" "));
    }
}
