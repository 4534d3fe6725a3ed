//! The web console in a real browser: the whole platform with the demo
//! loaded, and `tests/browser/console.mjs` driving headless Chromium through
//! it (sign-in per role, own data only, an issue filed with evidence whose
//! SLA countdown runs out on the test clock, .xlsx exports). The script asks
//! for clock moves on stdout; this side makes them and checks the files it
//! downloaded. Screenshots and downloads stay in
//! `target/browser-artifacts/`.
//!
//! Needs Chromium and playwright-core, which `deploy/local/test` installs
//! (`ensure_browser`) and names in `VBP_CHROMIUM`, `VBP_BROWSER_NODE` and
//! `VBP_BROWSER_NODE_PATH`. Without them the test says so and passes, unless
//! `VBP_REQUIRE_BROWSER=1` (which `deploy/local/test` sets): then it fails.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use vbp_platform::sheets;
use vbp_tests::cast::{self, CAST};
use vbp_tests::system::{Body, System};

struct Browser {
    chromium: String,
    node: String,
    node_path: String,
}

fn browser() -> Option<Browser> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("VBP_CHROMIUM"),
        var("VBP_BROWSER_NODE_PATH"),
        var("VBP_BROWSER_NODE").or_else(|| Some("node".to_owned())),
    ) {
        (Some(chromium), Some(node_path), Some(node)) => Some(Browser {
            chromium,
            node,
            node_path,
        }),
        _ => {
            assert!(
                std::env::var("VBP_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "VBP_REQUIRE_BROWSER=1 but VBP_CHROMIUM / VBP_BROWSER_NODE_PATH are not set: \
                 run the tests with deploy/local/test, which installs chromium and playwright-core"
            );
            eprintln!(
                "skipping the browser test: VBP_CHROMIUM and VBP_BROWSER_NODE_PATH are not set \
                 (deploy/local/test sets them)"
            );
            None
        }
    }
}

fn artifacts() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("browser-artifacts");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

/// The rows of a downloaded workbook.
fn workbook(path: &str) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    sheets::read_xlsx(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_in_headless_chromium() {
    let Some(browser) = browser() else {
        return;
    };
    let system = System::with_demo().await;
    let dir = artifacts();
    let tokens: serde_json::Map<String, Value> = CAST
        .iter()
        .map(|org| (org.name.to_owned(), Value::from(system.token(org))))
        .collect();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/console.mjs");
    let mut child = tokio::process::Command::new(&browser.node)
        .arg(&script)
        .env("NODE_PATH", &browser.node_path)
        .env("VBP_BROWSER_NODE_PATH", &browser.node_path)
        .env("VBP_CONSOLE_URL", &system.base)
        .env("VBP_CONSOLE_TOKENS", Value::Object(tokens).to_string())
        .env("VBP_CONSOLE_ARTIFACTS", &dir)
        .env("VBP_CHROMIUM", &browser.chromium)
        .current_dir(script.parent().expect("tests/browser"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut files: Vec<(String, String)> = Vec::new();
    let run = async {
        while let Some(line) = out.next_line().await.expect("script output") {
            if let Some(secs) = line.strip_prefix("CLOCK ") {
                let secs: u64 = secs.trim().parse().expect("CLOCK seconds");
                system
                    .env
                    .clock
                    .advance(chrono::Duration::seconds(secs as i64));
                stdin.write_all(b"ok\n").await.expect("answer the script");
                stdin.flush().await.expect("answer the script");
            } else if let Some(rest) = line.strip_prefix("FILE ") {
                let (what, path) = rest.split_once(' ').expect("FILE what path");
                files.push((what.to_owned(), path.to_owned()));
            } else {
                println!("{line}");
            }
        }
        child.wait().await.expect("node exits")
    };
    let status = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser scenarios finish within 5 minutes");
    assert!(
        status.success(),
        "the browser scenarios failed ({status}); screenshots in {}",
        dir.display()
    );

    let file = |what: &str| {
        files
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, p)| workbook(p))
            .unwrap_or_else(|| {
                panic!("the script downloaded no {what} file; it downloaded {files:?}")
            })
    };
    // The lists as shown, filtered to the issue the hospital filed.
    let issues = file("hospital-issues");
    assert_eq!(issues[0][0], "问题类型", "{issues:?}");
    assert_eq!(
        issues.len(),
        2,
        "one header and the one filtered issue: {issues:?}"
    );
    assert!(issues[1].iter().any(|c| c == "送货单.png"), "{issues:?}");
    assert!(issues[1].iter().any(|c| c == "配送不及时"), "{issues:?}");
    let orders = file("hospital-orders");
    assert!(orders.len() >= 2, "the Fuxin hospital's orders: {orders:?}");
    let relations = file("distributor-relations");
    assert!(relations.len() >= 2, "{relations:?}");
    assert!(
        relations[1..]
            .iter()
            .all(|r| r.iter().any(|c| c == "阜新示例医药有限公司")),
        "only the distributor's own relations: {relations:?}"
    );
    // The agreements service's own report, with its own header.
    let progress = file("bureau-progress");
    assert!(
        progress.len() >= 2,
        "a header and the region's lines: {progress:?}"
    );
    assert!(
        !progress
            .iter()
            .any(|r| r.iter().any(|c| c.contains("中国医科大学附属第一医院"))),
        "Fuxin's report holds no Shenyang hospital: {progress:?}"
    );

    // What the browser filed is what the service holds: the evidence is
    // attached, and the hospital's own bureau sees it.
    let hospital = cast::by_name("hospital-fuxin");
    let mine = system.get("/api/v1/issues", hospital).await;
    let filed = mine.json["items"]
        .as_array()
        .expect("issues")
        .iter()
        .find(|i| i["evidence"][0]["file_name"] == "送货单.png")
        .unwrap_or_else(|| panic!("the filed issue: {}", mine.text));
    assert_eq!(filed["quantity"], 3);
    assert_eq!(filed["statement_sealed"], true);
    assert_eq!(filed["evidence"][0]["content_type"], "image/png");
    let other = system
        .get("/api/v1/issues", cast::by_name("hospital-shenyang"))
        .await;
    assert!(!other.text.contains(filed["issue"].as_str().unwrap()));
}

/// The console is served from the binary: compressed, cached by version,
/// with a content security policy; the dev sign-in mints tokens only for
/// directory organisations.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_is_served_compressed_cached_and_locked_down() {
    let system = System::start().await;
    // Without reqwest's gzip feature the body arrives as sent.
    let client = reqwest::Client::new();
    let page = client
        .get(system.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["cache-control"], "no-cache");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let etag = h["etag"].clone();
    let again = client
        .get(system.url("/"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("GET / again");
    assert_eq!(again.status(), 304);

    let html = reqwest::get(system.url("/"))
        .await
        .expect("GET /")
        .text()
        .await
        .expect("html");
    assert!(html.contains("<html lang=\"zh-CN\">"));
    let version = html
        .split("app.js?v=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("versioned app.js");
    let asset = client
        .get(system.url(&format!("/console/assets/app.js?v={version}")))
        .send()
        .await
        .expect("asset");
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let stale = client
        .get(system.url("/console/assets/app.js?v=old"))
        .send()
        .await
        .expect("asset");
    assert_eq!(stale.headers()["cache-control"], "no-cache");
    let missing = client
        .get(system.url("/console/assets/nope.js"))
        .send()
        .await
        .expect("asset");
    assert_eq!(missing.status(), 404);

    // The sign-in page's configuration carries the platform's clock.
    let config: Value = reqwest::get(system.url("/console/config"))
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["dev"], true);
    assert_eq!(
        config["now"].as_str().unwrap(),
        system
            .platform
            .clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );

    // Dev sign-in: a directory organisation gets a token the API accepts…
    system
        .call(
            vbp_contracts::Service::Agreements,
            "demo_load",
            &vbp_kernel::Actor::system("proof"),
            json!({}),
        )
        .await
        .expect("the directory of the demo");
    let hospital = cast::by_name("hospital-fuxin");
    let minted: Value = client
        .post(system.url("/console/dev/token"))
        .json(&json!({ "org": hospital.id }))
        .send()
        .await
        .expect("dev token")
        .json()
        .await
        .expect("json");
    let token = minted["token"].as_str().expect("a token");
    let me = client
        .get(system.url("/api/v1/issues"))
        .bearer_auth(token)
        .send()
        .await
        .expect("issues");
    assert_eq!(me.status(), 200);
    // …an unknown one none, with the field named.
    let refused = client
        .post(system.url("/console/dev/token"))
        .json(&json!({ "org": uuid::Uuid::now_v7() }))
        .send()
        .await
        .expect("dev token");
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.expect("problem");
    assert_eq!(problem["field"], "org");
}

/// `POST /api/v1/exports/xlsx` over HTTP: any signed-in caller gets its table
/// back as a workbook; a bad table is refused naming the field; anonymous
/// callers are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_is_exported_as_xlsx_through_the_gateway() {
    let system = System::start().await;
    let hospital = cast::by_name("hospital-zhangwu");
    let table = json!({
        "file_name": "订单",
        "sheet": "订单",
        "columns": [{"header": "订单号", "width": 30}, {"header": "数量"}, {"header": "金额（元）"}],
        "rows": [["Z-1", 2, "1440.00"], ["Z-2", null, "0.50"]],
    });
    let a = system
        .send(
            Method::POST,
            "/api/v1/exports/xlsx",
            Some(hospital),
            Body::Json(table.clone()),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["file_name"], "订单.xlsx");
    assert_eq!(a.json["rows"], 2);
    let bytes = sheets::decode_base64(a.json["content_base64"].as_str().unwrap()).unwrap();
    let rows = sheets::read_xlsx(&bytes).unwrap();
    assert_eq!(rows[0], ["订单号", "数量", "金额（元）"]);
    assert_eq!(rows[1], ["Z-1", "2", "1440.00"]);
    assert_eq!(rows[2], ["Z-2", "", "0.50"]);

    let mut ragged = table.clone();
    ragged["rows"] = json!([["Z-1", 2]]);
    let bad = system
        .send(
            Method::POST,
            "/api/v1/exports/xlsx",
            Some(hospital),
            Body::Json(ragged),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.is_problem());
    assert_eq!(bad.field(), Some("rows[0]"));

    let mut unknown = table.clone();
    unknown["formula"] = json!(true);
    let bad = system
        .send(
            Method::POST,
            "/api/v1/exports/xlsx",
            Some(hospital),
            Body::Json(unknown),
        )
        .await;
    assert!(bad.status == 400 || bad.status == 422, "{}", bad.text);
    assert!(bad.is_problem());

    let anonymous = system
        .send(
            Method::POST,
            "/api/v1/exports/xlsx",
            None,
            Body::Json(table),
        )
        .await;
    assert_eq!(anonymous.status, 401);

    let doc = system.openapi().await;
    let op = &doc["paths"]["/api/v1/exports/xlsx"]["post"];
    assert_eq!(op["operationId"], "export_table_xlsx", "{op}");
    assert!(op["requestBody"].is_object(), "{op}");
}
