//! The platform as operating-system processes: the `vbp` binary started as
//! `vbp serve <service>` against a database and subject namespace of the
//! test's own, waited for until it answers, killed with SIGKILL and started
//! again, the way a supervisor and an operator handle it. Every process
//! started here is killed when its [`Cluster`] is dropped, panics included.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vbp_bus::{Context, RpcClient};
use vbp_contracts::Service;
use vbp_kernel::{Actor, SystemClock};
use vbp_platform::testkit::{TestEnv, free_port};
use vbp_platform::{Config, Platform};

/// Dev secret the processes sign and check dev tokens with, so a test can
/// mint tokens the gateway accepts.
pub const DEV_SECRET: &str = "vbp-process-tests-dev-secret-0123456789abcdef";

/// Where a cluster keeps its data: a database (superuser URL), a broker and
/// a subject namespace.
#[derive(Debug, Clone)]
pub struct Target {
    pub database_url: String,
    pub nats_url: String,
    pub ns: String,
}

impl From<&TestEnv> for Target {
    fn from(env: &TestEnv) -> Self {
        Self {
            database_url: env.database_url.clone(),
            nats_url: env.nats_url.clone(),
            ns: env.ns.clone(),
        }
    }
}

/// The `vbp` binary: `VBP_BIN` if set, else built once per test binary
/// with the cargo running the tests, in the workspace's target directory.
pub fn vbp_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("VBP_BIN") {
            return PathBuf::from(bin);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests crate lives in the workspace")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = Command::new(&cargo)
            .args(["build", "-p", "vbp", "--bin", "vbp"])
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {cargo} build -p vbp: {e}"));
        assert!(
            out.status.success(),
            "cargo build -p vbp --bin vbp failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let target = if target.is_absolute() {
            target
        } else {
            root.join(target)
        };
        target.join("debug").join("vbp")
    })
    .clone()
}

/// One running `vbp serve` process.
struct Proc {
    args: Vec<String>,
    child: Option<Child>,
    metrics_addr: String,
}

/// The processes of one test and a client of its own on the same broker.
pub struct Cluster {
    pub target: Target,
    /// A platform in the test process (system clock) on the same broker and
    /// namespace: RPC calls and integrator publishing.
    pub platform: Platform,
    pub http_addr: String,
    pub log_dir: PathBuf,
    bin: PathBuf,
    procs: BTreeMap<String, Proc>,
    /// `VBP_*` settings every later process gets on top of the defaults.
    env: Vec<(String, String)>,
    shutdown: CancellationToken,
}

/// The services a `vbp serve` name runs.
fn services_of(name: &str) -> Vec<Service> {
    if name == "all" {
        Service::ALL.to_vec()
    } else {
        vec![name.parse().unwrap_or_else(|_| panic!("no service {name}"))]
    }
}

impl Cluster {
    pub async fn new(target: Target) -> Self {
        let bin = vbp_bin();
        let log_dir = std::env::temp_dir().join(format!("vbp-procs-{}", target.ns));
        std::fs::create_dir_all(&log_dir).expect("log directory");
        let shutdown = CancellationToken::new();
        let config = Config::default()
            .with_figment_overrides(json!({
                "ns": target.ns,
                "nats_url": target.nats_url,
                "database_url": target.database_url,
                "dev": true,
                "rpc_timeout_ms": 3000,
            }))
            .expect("client config");
        let platform = Platform::connect(config, SystemClock::shared(), shutdown.clone())
            .await
            .expect("the test's own NATS client");
        Self {
            http_addr: format!("127.0.0.1:{}", free_port()),
            target,
            platform,
            log_dir,
            bin,
            procs: BTreeMap::new(),
            env: Vec::new(),
            shutdown,
        }
    }

    pub fn rpc(&self) -> RpcClient {
        self.platform.rpc_client()
    }

    /// The environment every `vbp` command of this cluster runs with; any
    /// `VBP_*` of the test's own environment is left out.
    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("VBP_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("VBP_NS", &self.target.ns)
            .env("VBP_NATS_URL", &self.target.nats_url)
            .env("VBP_DATABASE_URL", &self.target.database_url)
            .env("VBP_DB_BOOTSTRAP", "true")
            .env("VBP_DB_MAX_CONNECTIONS", "8")
            .env("VBP_DEV", "true")
            .env("VBP_LOG_FORMAT", "json")
            .env("VBP_RPC_TIMEOUT_MS", "3000")
            .env("VBP_SHUTDOWN_GRACE_SECS", "2")
            .env("VBP_HTTP_ADDR", &self.http_addr)
            .env("VBP_STATE_DIR", self.log_dir.join("state"))
            .env("VBP_GATEWAY__DEV_SECRET", DEV_SECRET)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Overrides a setting (e.g. `VBP_DB_MAX_CONNECTIONS`) for every process
    /// started from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// The operating-system process id of a running process, to read its
    /// memory from `/proc`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.get(name)?.child.as_ref().map(Child::id)
    }

    /// Starts `vbp serve <name>` (a service, `gateway` or `all`) and waits
    /// until it answers.
    pub async fn start(&mut self, name: &str) {
        self.spawn(name, &[]);
        self.wait_ready(name, Duration::from_secs(60)).await;
    }

    /// Starts `vbp serve <name> <extra>...` without waiting.
    pub fn spawn(&mut self, name: &str, extra: &[&str]) {
        let mut args = vec!["serve".to_owned(), name.to_owned()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let proc = self.procs.entry(name.to_owned()).or_insert(Proc {
            args: Vec::new(),
            child: None,
            metrics_addr: String::new(),
        });
        assert!(proc.child.is_none(), "{name} is already running");
        proc.args = args;
        proc.metrics_addr = format!("127.0.0.1:{}", free_port());
        let log = |kind: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_dir.join(format!("{name}.{kind}")))
                .expect("process log file")
        };
        let (stdout, stderr) = (log("out"), log("err"));
        let args = proc.args.clone();
        let metrics_addr = proc.metrics_addr.clone();
        let mut cmd = self.command(&args);
        cmd.env("VBP_METRICS_ADDR", &metrics_addr)
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {} {args:?}: {e}", self.bin.display()));
        self.procs.get_mut(name).expect("registered").child = Some(child);
    }

    /// Waits until the process's `/readyz` answers 200 and each of its
    /// backend services answers a ping over NATS (its consumers and relay
    /// start with its RPC endpoints); the gateway, until it serves HTTP.
    pub async fn wait_ready(&mut self, name: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let http = reqwest::Client::new();
        let metrics_addr = self.procs[name].metrics_addr.clone();
        let rpc = self.rpc().with_timeout(Duration::from_millis(500));
        let ctx = Context::new(Some(Actor::system("process-tests")));
        loop {
            if let Some(status) = self.exited(name) {
                panic!(
                    "{name} exited ({status}) while starting\n{}",
                    self.log_tail(name, 30)
                );
            }
            let mut waiting: Vec<String> = Vec::new();
            let ready = http
                .get(format!("http://{metrics_addr}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ready {
                waiting.push("readyz".into());
            }
            for service in services_of(name) {
                let answers = if service == Service::Gateway {
                    http.get(format!("http://{}/healthz", self.http_addr))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                        .is_ok()
                } else {
                    rpc.call_raw(service, "ping", &ctx, bytes::Bytes::from_static(b"{}"))
                        .await
                        .is_ok()
                };
                if !answers {
                    waiting.push(service.to_string());
                }
            }
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready within {limit:?} (waiting for {waiting:?})\n{}",
                self.log_tail(name, 30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exit status of a process that stopped on its own.
    fn exited(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        let child = self.procs.get_mut(name)?.child.as_mut()?;
        child.try_wait().ok().flatten()
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is cut.
    pub fn kill(&mut self, name: &str) {
        let proc = self
            .procs
            .get_mut(name)
            .unwrap_or_else(|| panic!("{name} was never started"));
        if let Some(mut child) = proc.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed process again with the same arguments.
    pub async fn restart(&mut self, name: &str) {
        let extra: Vec<String> = self.procs[name].args[2..].to_vec();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        self.spawn(name, &extra);
        self.wait_ready(name, Duration::from_secs(60)).await;
    }

    /// Starts again every process that ended on its own, as a supervisor
    /// (systemd, Kubernetes) would; returns their names.
    pub async fn revive_exited(&mut self) -> Vec<String> {
        let names: Vec<String> = self.procs.keys().cloned().collect();
        let mut revived = Vec::new();
        for name in names {
            if self.exited(&name).is_some() {
                self.procs.get_mut(&name).expect("known").child = None;
                self.restart(&name).await;
                revived.push(name);
            }
        }
        revived
    }

    /// Runs an operator command (`vbp outbox republish ...`) to completion.
    pub fn vbp(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let out = self
            .command(&args)
            .env("VBP_METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap_or_else(|e| panic!("running vbp {args:?}: {e}"));
        assert!(
            out.status.success(),
            "vbp {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The last lines a process wrote on stderr and stdout, for failure messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let mut out = String::new();
        for kind in ["err", "out"] {
            let path = self.log_dir.join(format!("{name}.{kind}"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let _ = writeln!(out, "---- {} (last {lines} lines) ----", path.display());
            for line in &all[all.len().saturating_sub(lines)..] {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    /// A superuser pool in the cluster's database whose search_path is
    /// `schema`, for assertions on a service's tables.
    pub async fn pool_in(&self, schema: &str) -> sqlx::PgPool {
        let opts = self
            .target
            .database_url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .expect("database URL")
            .options([("search_path", schema)]);
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .expect("assertion pool")
    }

    /// The gateway's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let names: Vec<String> = self.procs.keys().cloned().collect();
        for name in names {
            self.kill(&name);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// A PostgreSQL cluster of the test's own (`deploy/local/pg-cluster`), which
/// it may crash and start again without disturbing other tests' database.
/// Removed, data and all, when dropped.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
}

impl PrivatePostgres {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("deploy/local/pg-cluster")
    }

    fn run(args: &[&str]) {
        let out = Command::new(Self::script())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running deploy/local/pg-cluster {args:?}: {e}"));
        assert!(
            out.status.success(),
            "deploy/local/pg-cluster {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vbp-pg-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ));
        let pg = Self {
            port: free_port(),
            dir,
        };
        pg.restart();
        pg
    }

    /// The superuser URL of its database `vbp`.
    pub fn url(&self) -> String {
        format!("postgres://vbp@127.0.0.1:{}/vbp", self.port)
    }

    /// Stops it the way a crash does: no checkpoint, connections cut.
    pub fn crash(&self) {
        Self::run(&["crash", &self.dir.to_string_lossy()]);
    }

    /// Starts it again on the same data and port (crash recovery runs first).
    pub fn restart(&self) {
        Self::run(&["start", &self.dir.to_string_lossy(), &self.port.to_string()]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .args(["remove", &self.dir.to_string_lossy()])
            .stdin(Stdio::null())
            .output();
    }
}
