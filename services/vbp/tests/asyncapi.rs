//! The committed AsyncAPI document (docs/asyncapi.yaml) and payload schemas (docs/schemas/) are
//! exactly what `vbp asyncapi` generates from shared/contracts, cover every subject, and pass
//! the reference AsyncAPI parser (@asyncapi/parser, run by deploy/validate/asyncapi.cjs).
//!
//! The parser runs when deploy/local/test has installed it: it exports VBP_VALIDATE_NODE_PATH
//! (the node_modules holding @asyncapi/parser) and VBP_REQUIRE_VALIDATORS=1. Without them the
//! parser check is skipped with a note, unless VBP_REQUIRE_VALIDATORS is set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const REGENERATE: &str = "cargo run -p vbp -- asyncapi --out docs";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vbp-asyncapi-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn generate(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let out = Command::new(env!("CARGO_BIN_EXE_vbp"))
        .args(["asyncapi", "--out"])
        .arg(&dir.0)
        .output()
        .expect("run vbp asyncapi");
    assert!(
        out.status.success(),
        "vbp asyncapi failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Relative paths of every file under `dir`.
fn files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel);
            }
        }
    }
    out
}

#[test]
fn committed_document_and_schemas_equal_the_generated_ones() {
    let generated = generate("compare");
    let docs = root().join("docs");
    let want = files(&generated.0);
    let mut stale = vec![];
    for rel in &want {
        let fresh = std::fs::read(generated.0.join(rel)).unwrap();
        match std::fs::read(docs.join(rel)) {
            Ok(committed) if committed == fresh => {}
            Ok(_) => stale.push(format!("docs/{rel} differs")),
            Err(_) => stale.push(format!("docs/{rel} is missing")),
        }
    }
    let committed_schemas: BTreeSet<String> = files(&docs.join("schemas"))
        .into_iter()
        .map(|f| format!("schemas/{f}"))
        .collect();
    for extra in committed_schemas.difference(&want) {
        stale.push(format!("docs/{extra} is not generated any more"));
    }
    assert!(
        stale.is_empty(),
        "the committed AsyncAPI document is out of date with shared/contracts:\n  {}\nregenerate with `{REGENERATE}` and commit docs/asyncapi.yaml and docs/schemas/",
        stale.join("\n  ")
    );
}

fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap()
}

#[test]
fn every_contract_subject_has_a_channel_and_every_payload_a_schema() {
    let dir = generate("cover");
    let doc = yaml(&dir.0.join("asyncapi.yaml"));
    assert_eq!(doc["asyncapi"], "3.0.0");
    let channels = doc["channels"].as_object().unwrap();
    let addresses: BTreeSet<&str> = channels
        .values()
        .filter_map(|c| c["address"].as_str())
        .collect();
    let all = vbp_contracts::schema::all();
    for name in all.keys() {
        assert!(
            dir.0.join(format!("schemas/{name}.json")).is_file(),
            "no schema file for {name}"
        );
    }
    // every event type of every service, on its contract subject
    let mut events = 0;
    for name in all.keys() {
        let parts: Vec<&str> = name.split('.').collect();
        let is_event = parts.len() == 3
            && parts[0].parse::<vbp_contracts::Service>().is_ok()
            && !matches!(parts[2], "request" | "response");
        if is_event {
            events += 1;
            let address = format!("{{ns}}.evt.{name}");
            assert!(addresses.contains(address.as_str()), "no channel {address}");
        }
    }
    assert!(events > 30, "only {events} event types found");
    for event in vbp_contracts::ingest::EVENTS {
        let address = format!("{{ns}}.ingest.{{integrator}}.{event}");
        assert!(addresses.contains(address.as_str()), "no channel {address}");
    }
    use vbp_contracts::{agreements, distribution, issues, orders, prepayment, supervision};
    for (service, ops) in [
        ("agreements", agreements::OPERATIONS),
        ("distribution", distribution::OPERATIONS),
        ("orders", orders::OPERATIONS),
        ("prepayment", prepayment::OPERATIONS),
        ("issues", issues::OPERATIONS),
        ("supervision", supervision::OPERATIONS),
    ] {
        for op in ops
            .iter()
            .chain(&["ping", "flow", "dlq_list", "dlq_replay"])
        {
            let address = format!("{{ns}}.rpc.{service}.{op}");
            assert!(addresses.contains(address.as_str()), "no channel {address}");
        }
        let dlq = format!("{{ns}}.dlq.{service}.{{consumer}}");
        assert!(addresses.contains(dlq.as_str()), "no channel {dlq}");
    }
    // every channel lives under the namespace, and every message's payload file exists
    for (id, channel) in channels {
        if let Some(address) = channel["address"].as_str() {
            assert!(address.starts_with("{ns}."), "{id}: {address}");
        }
    }
    for (id, message) in doc["components"]["messages"].as_object().unwrap() {
        let payload = message["payload"]["$ref"].as_str().unwrap();
        let file = dir.0.join(payload.trim_start_matches("./"));
        assert!(file.is_file(), "{id}: payload {payload} missing");
    }
}

/// `Some((node, NODE_PATH))` when the AsyncAPI parser is installed.
fn parser() -> Option<(String, String)> {
    let node_path = std::env::var("VBP_VALIDATE_NODE_PATH")
        .ok()
        .filter(|p| !p.is_empty());
    match node_path {
        Some(p) => Some((
            std::env::var("VBP_VALIDATE_NODE").unwrap_or_else(|_| "node".into()),
            p,
        )),
        None if std::env::var_os("VBP_REQUIRE_VALIDATORS").is_some() => {
            panic!("VBP_REQUIRE_VALIDATORS is set but VBP_VALIDATE_NODE_PATH is not")
        }
        None => {
            eprintln!(
                "@asyncapi/parser not installed (VBP_VALIDATE_NODE_PATH unset): run through deploy/local/test to validate"
            );
            None
        }
    }
}

fn parse(node: &str, node_path: &str, file: &Path) -> (bool, String) {
    let out = Command::new(node)
        .arg(root().join("deploy/validate/asyncapi.cjs"))
        .arg(file)
        .env("NODE_PATH", node_path)
        .output()
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "the validator itself failed: {text}"
    );
    (out.status.success(), text)
}

#[test]
fn the_reference_parser_accepts_the_committed_document_and_rejects_a_broken_one() {
    let Some((node, node_path)) = parser() else {
        return;
    };
    let (ok, text) = parse(&node, &node_path, &root().join("docs/asyncapi.yaml"));
    assert!(ok, "docs/asyncapi.yaml is not valid AsyncAPI:\n{text}");
    assert!(text.contains("valid AsyncAPI 3.0.0"), "{text}");

    // the same document with one operation's action misspelt, and one payload file missing
    let broken = generate("broken");
    let doc = broken.0.join("asyncapi.yaml");
    let text = std::fs::read_to_string(&doc).unwrap();
    std::fs::write(&doc, text.replacen("action: send", "action: publish", 1)).unwrap();
    let (ok, out) = parse(&node, &node_path, &doc);
    assert!(!ok, "a misspelt action passed:\n{out}");
    assert!(out.contains("action"), "{out}");

    let missing = generate("missing");
    std::fs::remove_file(missing.0.join("schemas/order_placed.json")).unwrap();
    let (ok, out) = parse(&node, &node_path, &missing.0.join("asyncapi.yaml"));
    assert!(!ok, "a missing payload schema passed:\n{out}");
    assert!(out.contains("order_placed.json"), "{out}");
}
