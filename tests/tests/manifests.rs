//! The deployment files validate offline: every kustomize build of k8s/ renders and each object
//! passes the Kubernetes or CRD schema (deploy/validate/k8s.py), the NATS Helm values pass their
//! schema and configure a real nats-server, the compose file passes the compose-spec schema,
//! and the rendered objects keep the platform's rules (probes, non-root, network policies,
//! one namespace per region). Each validator is also shown a broken file and must reject it.
//!
//! The validators come from deploy/local/test, which installs them (deploy/local/lib.sh
//! `ensure_validators`) and exports VBP_VALIDATE_VENV and VBP_REQUIRE_VALIDATORS=1. Without
//! them these tests are skipped with a note, unless VBP_REQUIRE_VALIDATORS is set.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use serde_json::Value;

const SERVICES: [&str; 7] = [
    "gateway",
    "agreements",
    "distribution",
    "orders",
    "prepayment",
    "issues",
    "supervision",
];

/// (overlay directory, Kubernetes namespace, subject namespace)
const REGIONS: [(&str, &str, &str); 2] = [
    ("k8s/regions/liaoning", "vbp-liaoning", "ln"),
    ("k8s/regions/jiangxi", "vbp-jiangxi", "jx"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv holding kubectl, check-jsonschema and the Python validator's libraries.
fn venv() -> Option<PathBuf> {
    match std::env::var("VBP_VALIDATE_VENV") {
        Ok(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ if std::env::var_os("VBP_REQUIRE_VALIDATORS").is_some() => {
            panic!("VBP_REQUIRE_VALIDATORS is set but VBP_VALIDATE_VENV is not")
        }
        _ => {
            eprintln!(
                "deployment validators not installed (VBP_VALIDATE_VENV unset): run through deploy/local/test"
            );
            None
        }
    }
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kustomize(venv: &Path, dir: &Path) -> Output {
    run(
        Command::new(venv.join("bin/kubectl"))
            .arg("kustomize")
            .arg(dir),
        None,
    )
}

fn render(venv: &Path, rel: &str) -> String {
    let out = kustomize(venv, &root().join(rel));
    assert!(
        out.status.success(),
        "kubectl kustomize {rel} failed:\n{}",
        output_text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs deploy/validate/k8s.py on a YAML stream: (valid, output).
fn validate_k8s(venv: &Path, yaml: &str) -> (bool, String) {
    let out = run(
        Command::new(venv.join("bin/python"))
            .arg(root().join("deploy/validate/k8s.py"))
            .arg("-"),
        Some(yaml),
    );
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "the validator itself failed:\n{}",
        output_text(&out)
    );
    (out.status.success(), output_text(&out))
}

fn check_jsonschema(venv: &Path, schema: &[&str], file: &Path) -> (bool, String) {
    let out = run(
        Command::new(venv.join("bin/check-jsonschema"))
            .args(schema)
            .arg(file),
        None,
    );
    (out.status.success(), output_text(&out))
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vbp-manifests-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_kustomize_build_renders_and_validates() {
    let Some(venv) = venv() else { return };
    for rel in [
        "k8s/base",
        "k8s/regions/liaoning",
        "k8s/regions/jiangxi",
        "k8s/national",
    ] {
        let yaml = render(&venv, rel);
        let (ok, out) = validate_k8s(&venv, &yaml);
        assert!(ok, "{rel} does not validate:\n{out}");
        assert!(out.contains("valid"), "{out}");
    }
}

#[test]
fn the_manifest_validator_rejects_broken_objects() {
    let Some(venv) = venv() else { return };
    let good = render(&venv, "k8s/regions/liaoning");
    let breakages = [
        // a misspelt field the API server would drop silently
        ("runAsNonRoot: true", "runAsNonRot: true", "runAsNonRot"),
        // a wrong type
        ("minAvailable: 1", "minAvailable: [1]", "minAvailable"),
        // a KEDA trigger without its lag threshold
        (
            "lagThreshold: \"1000\"",
            "lagThresold: \"1000\"",
            "lagThreshold",
        ),
        // a CloudNativePG volume size that is no quantity
        ("size: 50Gi", "size: fifty", "size"),
        // a kind nobody has a schema for
        (
            "kind: ScheduledBackup",
            "kind: ScheduledBackupp",
            "no schema",
        ),
    ];
    for (from, to, expect) in breakages {
        assert!(good.contains(from), "the rendered overlay has no {from:?}");
        let broken = good.replacen(from, to, 1);
        let (ok, out) = validate_k8s(&venv, &broken);
        assert!(!ok, "{to:?} passed the validator:\n{out}");
        assert!(out.contains(expect), "{to:?}: {out}");
    }
    // a kustomization that names a missing file does not render
    let dir = temp_dir("kustomize");
    std::fs::write(
        dir.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - missing.yaml\n",
    )
    .unwrap();
    let out = kustomize(&venv, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "a missing resource rendered");
}

#[test]
fn regional_deployments_keep_the_platform_rules() {
    let Some(venv) = venv() else { return };
    for (rel, namespace, ns) in REGIONS {
        let objects = docs(&render(&venv, rel));
        // one namespace per region, holding everything
        find(&objects, "Namespace", namespace);
        for o in &objects {
            if o["kind"] != "Namespace" {
                assert_eq!(o["metadata"]["namespace"], namespace, "{rel}: {o}");
            }
        }
        let common = find(&objects, "ConfigMap", "vbp-common");
        assert_eq!(common["data"]["VBP_NS"], ns, "{rel}");
        assert_eq!(common["data"]["VBP_STREAMS__REPLICAS"], "3", "{rel}");
        let config = objects
            .iter()
            .find(|o| {
                o["kind"] == "ConfigMap"
                    && o["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("vbp-config-"))
            })
            .expect("vbp-config");
        let toml = config["data"]["config.toml"].as_str().unwrap();
        assert!(toml.contains("[prepayment]"), "{rel}: {toml}");

        for svc in SERVICES {
            let name = format!("vbp-{svc}");
            let deployment = find(&objects, "Deployment", &name);
            let pod = &deployment["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
            let container = &pod["containers"][0];
            assert_eq!(
                container["args"],
                serde_json::json!(["serve", svc]),
                "{name}"
            );
            assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
            assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
            assert_eq!(
                container["securityContext"]["allowPrivilegeEscalation"], false,
                "{name}"
            );
            assert_eq!(
                container["securityContext"]["readOnlyRootFilesystem"], true,
                "{name}"
            );
            find(&objects, "Service", &name);
            find(&objects, "ConfigMap", &name);
            find(&objects, "PodDisruptionBudget", &name);
            let policy = find(&objects, "NetworkPolicy", &name);
            // only the gateway takes ingress from anywhere; backends only metrics scrapes
            let open = policy["spec"]["ingress"]
                .as_array()
                .unwrap()
                .iter()
                .any(|rule| rule.get("from").is_none());
            assert_eq!(open, svc == "gateway", "{name}: {policy}");
            // egress only to NATS, Postgres (backends), the OTLP collector and DNS
            let mut ports = BTreeSet::new();
            for rule in policy["spec"]["egress"].as_array().unwrap() {
                assert!(rule.get("to").is_some(), "{name}: egress to anywhere");
                for p in rule["ports"].as_array().unwrap() {
                    ports.insert(p["port"].as_u64().unwrap());
                }
            }
            let want: BTreeSet<u64> = if svc == "gateway" {
                [53, 4222, 4317].into()
            } else {
                [53, 4222, 4317, 5432].into()
            };
            assert_eq!(ports, want, "{name}");
        }
        let deny = find(&objects, "NetworkPolicy", "vbp-default-deny");
        assert_eq!(deny["spec"]["podSelector"], serde_json::json!({}));

        // autoscaling: an HPA for the gateway, KEDA on this region's streams for the rest
        let hpa = find(&objects, "HorizontalPodAutoscaler", "vbp-gateway");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "vbp-gateway");
        let prefix = format!("{}_", ns.to_ascii_uppercase());
        let mut scaled = 0;
        for o in objects.iter().filter(|o| o["kind"] == "ScaledObject") {
            scaled += 1;
            for trigger in o["spec"]["triggers"].as_array().unwrap() {
                assert_eq!(trigger["type"], "nats-jetstream");
                let stream = trigger["metadata"]["stream"].as_str().unwrap();
                assert!(stream.starts_with(&prefix), "{rel}: stream {stream}");
                let consumer = trigger["metadata"]["consumer"].as_str().unwrap();
                let target = o["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
                assert_eq!(
                    format!("vbp-{}", consumer.split('_').next().unwrap()),
                    target,
                    "{rel}: consumer {consumer} scales {target}"
                );
            }
        }
        assert!(scaled >= 2, "{rel}: {scaled} ScaledObjects");

        // one role and one schema per backend service
        let cluster = find(&objects, "Cluster", "vbp-pg");
        let roles: Vec<&str> = cluster["spec"]["managed"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        let sql = cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"].to_string();
        for svc in &SERVICES[1..] {
            let role = format!("vbp_{svc}");
            assert!(roles.contains(&role.as_str()), "{rel}: role {role}");
            assert!(
                sql.contains(&format!("CREATE SCHEMA {svc} AUTHORIZATION {role}")),
                "{rel}: schema {svc}"
            );
        }
    }
    // the national view sources every province's event stream of every service
    let national = docs(&render(&venv, "k8s/national"));
    for svc in &SERVICES[1..] {
        let name = format!("national-evt-{svc}");
        let stream = find(&national, "Stream", &name);
        let sources: BTreeSet<&str> = stream["spec"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for (_, _, ns) in REGIONS {
            let want = format!(
                "{}_EVT_{}",
                ns.to_ascii_uppercase(),
                svc.to_ascii_uppercase()
            );
            assert!(sources.contains(want.as_str()), "{name} lacks {want}");
        }
    }
}

/// The nats-server configuration the Helm chart renders from `config.merge`, as JSON (a subset
/// of NATS' configuration syntax); `<< $VAR >>` (the chart's raw-value syntax) becomes `$VAR`.
fn nats_conf(values: &Value, store_dir: &Path, port: u16) -> String {
    let mut merge = values["config"]["merge"].clone();
    merge["jetstream"]["store_dir"] = Value::String(store_dir.display().to_string());
    merge["port"] = port.into();
    merge["host"] = "127.0.0.1".into();
    let text = serde_json::to_string_pretty(&merge).unwrap();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("\"<< $") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find(" >>\"").expect("closing >>") + start;
        out.push_str(&rest[start + 4..end]);
        rest = &rest[end + 4..];
    }
    out.push_str(rest);
    out
}

/// Environment variables the values file reads its passwords from.
fn password_env(values: &Value) -> BTreeMap<String, String> {
    values["container"]["env"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), format!("pw-{}", k.to_ascii_lowercase())))
        .collect()
}

#[test]
fn nats_values_validate_and_give_each_integrator_only_its_own_subjects() {
    let Some(venv) = venv() else { return };
    let file = root().join("k8s/nats/values.yaml");
    let schema = root().join("deploy/validate/schemas/nats-helm-values.json");
    let schema_arg = ["--schemafile", schema.to_str().unwrap()];
    let (ok, out) = check_jsonschema(&venv, &schema_arg, &file);
    assert!(ok, "k8s/nats/values.yaml:\n{out}");

    let text = std::fs::read_to_string(&file).unwrap();
    let values: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(values["config"]["cluster"]["replicas"], 3);
    assert_eq!(values["config"]["jetstream"]["fileStore"]["enabled"], true);
    assert_eq!(values["config"]["monitor"]["enabled"], true);
    let accounts = values["config"]["merge"]["accounts"].as_object().unwrap();
    for (account, ns) in [("LIAONING", "ln"), ("JIANGXI", "jx")] {
        let users = accounts[account]["users"].as_array().unwrap();
        let integrators: Vec<&Value> = users
            .iter()
            .filter(|u| !u["permissions"].is_null())
            .collect();
        assert!(!integrators.is_empty(), "{account} has no integrator");
        for user in integrators {
            let id = user["user"].as_str().unwrap();
            assert_eq!(
                user["permissions"]["publish"]["allow"],
                serde_json::json!([format!("{ns}.ingest.{id}.>")]),
                "{account}/{id}"
            );
        }
    }

    // a misspelt key is rejected
    let dir = temp_dir("nats");
    let broken = dir.join("values.yaml");
    std::fs::write(&broken, text.replacen("replicas: 3", "replica: 3", 1)).unwrap();
    let (ok, out) = check_jsonschema(&venv, &schema_arg, &broken);
    assert!(!ok, "a misspelt key passed:\n{out}");

    // nats-server itself accepts the accounts, users, exports and imports...
    let Ok(nats) = std::env::var("VBP_NATS_SERVER_BIN") else {
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            std::env::var_os("VBP_REQUIRE_VALIDATORS").is_none(),
            "VBP_NATS_SERVER_BIN unset"
        );
        return;
    };
    let env = password_env(&values);
    let test_conf = |conf: &str| {
        let path = dir.join("nats.conf");
        std::fs::write(&path, conf).unwrap();
        let out = run(
            Command::new(&nats)
                .arg("-t")
                .arg("-c")
                .arg(&path)
                .envs(&env),
            None,
        );
        (out.status.success(), output_text(&out))
    };
    let conf = nats_conf(&values, &dir.join("js"), 4222);
    let (ok, out) = test_conf(&conf);
    assert!(
        ok,
        "nats-server rejects the values' configuration:\n{out}\n{conf}"
    );
    // ...and rejects an import that maps onto an invalid subject
    let bad = conf.replacen("\"$JS.FC.ln.>\"", "\"$JS.FC.ln.*.x\"", 1);
    assert_ne!(bad, conf);
    let (ok, out) = test_conf(&bad);
    assert!(!ok, "nats-server accepted a broken import:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_compose_file_validates_and_runs_every_service() {
    let Some(venv) = venv() else { return };
    let file = root().join("deploy/docker/compose.yaml");
    let schema = ["--builtin-schema", "vendor.compose-spec"];
    let (ok, out) = check_jsonschema(&venv, &schema, &file);
    assert!(ok, "deploy/docker/compose.yaml:\n{out}");

    let text = std::fs::read_to_string(&file).unwrap();
    let mut doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    doc.apply_merge().unwrap();
    let compose: Value = serde_json::to_value(&doc).unwrap();
    let services = compose["services"].as_object().unwrap();
    for n in ["nats-1", "nats-2", "nats-3"] {
        let cmd = services[n]["command"].to_string();
        assert!(
            cmd.contains("--jetstream") && cmd.contains("--routes"),
            "{n}: {cmd}"
        );
    }
    for n in ["postgres", "jaeger", "prometheus"] {
        assert!(services.contains_key(n), "no {n}");
    }
    let prometheus =
        std::fs::read_to_string(root().join("deploy/docker/prometheus/prometheus.yml")).unwrap();
    for svc in SERVICES {
        let s = &services[svc];
        assert_eq!(s["command"], serde_json::json!(["serve", svc]), "{svc}");
        assert_eq!(s["image"], "vbp:dev", "{svc}");
        assert_eq!(
            s["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://jaeger:4317",
            "{svc}"
        );
        assert_eq!(s["environment"]["VBP_STREAMS__REPLICAS"], "3", "{svc}");
        assert!(
            prometheus.contains(&format!("{svc}:9464")),
            "Prometheus does not scrape {svc}"
        );
    }
    let demo = services["demo"]["command"].to_string();
    assert!(demo.contains("--demo"), "{demo}");

    // a misspelt service key is rejected
    let dir = temp_dir("compose");
    let broken = dir.join("compose.yaml");
    std::fs::write(
        &broken,
        text.replacen("    hostname: nats-1", "    hostnme: nats-1", 1),
    )
    .unwrap();
    let (ok, out) = check_jsonschema(&venv, &schema, &broken);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok, "a misspelt compose key passed:\n{out}");
}

#[test]
fn the_image_builds_dependencies_first_and_runs_as_non_root() {
    let text = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("Dockerfile has no {needle:?}"))
    };
    // the builder cooks the dependencies from the recipe, then copies the sources in
    let cook = at("cargo chef cook");
    let sources = lines.iter().rposition(|l| *l == "COPY . .").unwrap();
    assert!(
        at("recipe.json recipe.json") < cook,
        "no recipe before cooking"
    );
    assert!(
        cook < sources,
        "the dependency layer comes after the sources"
    );
    assert!(
        lines[sources..]
            .iter()
            .any(|l| l.contains("cargo build --release")),
        "no build after the sources"
    );
    let runtime = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        lines[runtime].contains("debian:${DEBIAN_RELEASE}-slim")
            && text.contains("DEBIAN_RELEASE=bookworm"),
        "runtime base: {}",
        lines[runtime]
    );
    let user = lines[runtime..]
        .iter()
        .find(|l| l.starts_with("USER "))
        .expect("the runtime stage sets USER");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    assert!(text.contains("ENTRYPOINT [\"vbp\"]"));
    let ignore =
        std::fs::read_to_string(root().join("deploy/docker/Dockerfile.dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target/"),
        "target/ is sent to the build"
    );
}

/// A nats-server running the values' configuration; killed on drop.
struct Server {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn an_integrator_can_publish_only_on_its_own_ingest_subjects() {
    let nats = match std::env::var("VBP_NATS_SERVER_BIN") {
        Ok(bin) => bin,
        Err(_) if std::env::var_os("VBP_REQUIRE_VALIDATORS").is_some() => {
            panic!("VBP_NATS_SERVER_BIN unset")
        }
        Err(_) => {
            eprintln!("VBP_NATS_SERVER_BIN unset: run through deploy/local/test");
            return;
        }
    };
    let text = std::fs::read_to_string(root().join("k8s/nats/values.yaml")).unwrap();
    let values: Value = serde_norway::from_str(&text).unwrap();
    let env = password_env(&values);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("nats-run");
    let conf = dir.join("nats.conf");
    std::fs::write(&conf, nats_conf(&values, &dir.join("js"), port)).unwrap();
    let child = Command::new(&nats)
        .arg("-c")
        .arg(&conf)
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server { child, dir };
    let url = format!("nats://127.0.0.1:{port}");
    let connect = |user: &str, password: String| {
        let url = url.clone();
        let user = user.to_owned();
        async move {
            for _ in 0..100 {
                let options = async_nats::ConnectOptions::with_user_and_password(
                    user.clone(),
                    password.clone(),
                );
                if let Ok(client) = options.connect(&url).await {
                    return client;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("cannot connect to {url} as {user}");
        }
    };
    // the services' user of Liaoning sets up the ingest stream, as the platform does
    let service = connect("vbp-ln", env["LIAONING_SERVICE_PASSWORD"].clone()).await;
    let js = async_nats::jetstream::new(service);
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "LN_INGEST".into(),
            subjects: vec!["ln.ingest.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    let me = "01930000-0000-7000-8000-000000000401";
    let other = "01930000-0000-7000-8000-000000000402";
    let integrator = connect(me, env["LN_INTEGRATOR_0401_PASSWORD"].clone()).await;
    let mut ijs = async_nats::jetstream::new(integrator);
    ijs.set_timeout(std::time::Duration::from_secs(2));
    let own = ijs
        .publish(format!("ln.ingest.{me}.order_placed"), "{}".into())
        .await
        .unwrap()
        .await;
    assert!(own.is_ok(), "publishing on its own subject: {own:?}");
    for subject in [
        format!("ln.ingest.{other}.order_placed"),
        "ln.evt.orders.order.placed".to_owned(),
        format!("jx.ingest.{me}.order_placed"),
    ] {
        let ack = match ijs.publish(subject.clone(), "{}".into()).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        assert!(ack.is_err(), "{subject} was accepted");
    }
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, 1,
        "only the integrator's own message is stored"
    );
}

/// The first fenced block of `lang` in a Markdown file.
fn code_block(markdown: &str, lang: &str) -> String {
    let fence = format!("```{lang}\n");
    let start = markdown.find(&fence).expect("code block") + fence.len();
    let end = markdown[start..].find("```").expect("closing fence") + start;
    markdown[start..end].to_owned()
}

#[tokio::test]
async fn the_integrator_guides_example_client_publishes_once_and_is_deduplicated() {
    let Some(venv) = venv() else { return };
    let Ok(url) = std::env::var("VBP_TEST_NATS_URL") else {
        assert!(
            std::env::var_os("VBP_REQUIRE_VALIDATORS").is_none(),
            "VBP_TEST_NATS_URL unset"
        );
        return;
    };
    let guide = std::fs::read_to_string(root().join("docs/INTEGRATORS.md")).unwrap();
    let client = code_block(&guide, "python");
    let dir = temp_dir("client");
    std::fs::write(dir.join("ingest_client.py"), &client).unwrap();

    // a namespace of its own on the shared test server, with its ingest stream
    let ns = format!("t_{}", uuid::Uuid::now_v7().simple());
    let stream_name = format!("{}_INGEST", ns.to_ascii_uppercase());
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{ns}.ingest.>")],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();

    let out = tokio::process::Command::new(venv.join("bin/python"))
        .arg(dir.join("ingest_client.py"))
        .env("NATS_URL", &url)
        .env("VBP_NS", &ns)
        .output()
        .await
        .unwrap();
    let printed = output_text(&out);
    assert!(
        out.status.success(),
        "the example client failed:\n{printed}"
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    assert!(lines[0].contains("stored"), "{printed}");
    assert!(lines[1].contains("duplicate"), "{printed}");

    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 1, "a resend was stored twice");
    let message = stream.get_raw_message(1).await.unwrap();
    let integrator = "01930000-0000-7000-8000-000000000401";
    assert_eq!(
        message.subject.as_str(),
        format!("{ns}.ingest.{integrator}.order_placed")
    );
    let msg_id = message
        .headers
        .get("Nats-Msg-Id")
        .map(|v| v.as_str().to_owned());
    assert_eq!(
        msg_id.as_deref(),
        Some(format!("ingest:{integrator}:SPD-2025-000123").as_str())
    );
    // what it sent is valid against the committed payload schema
    std::fs::write(dir.join("payload.json"), &message.payload).unwrap();
    let schema = root().join("docs/schemas/order_placed.json");
    let (ok, text) = check_jsonschema(
        &venv,
        &["--schemafile", schema.to_str().unwrap()],
        &dir.join("payload.json"),
    );
    assert!(
        ok,
        "the example's payload does not match its schema:\n{text}"
    );
    js.delete_stream(&stream_name).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
