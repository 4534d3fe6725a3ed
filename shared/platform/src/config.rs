//! Configuration: defaults, then the TOML file named by `VBP_CONFIG`, then
//! `VBP_*` environment variables (`__` separates sections:
//! `VBP_STREAMS__REPLICAS=3`). Services read their own sections with
//! [`Config::section`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use vbp_bus::streams::StreamSettings;
use vbp_contracts::Namespace;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Subject namespace; a regional deployment or a test sets its own.
    pub ns: String,
    pub nats_url: String,
    /// Administrative URL (owner of the database). With `db_bootstrap` the
    /// platform creates each service's role and schema through it; each
    /// service then connects as its own role.
    pub database_url: String,
    /// Per-service URLs that replace the derived ones (production: one
    /// secret per role, e.g. from CloudNativePG).
    pub service_database_urls: BTreeMap<String, String>,
    pub db_bootstrap: bool,
    /// Password given to per-service roles created by bootstrap.
    pub db_role_password: String,
    pub db_max_connections: u32,
    /// Gateway listen address.
    pub http_addr: String,
    /// Health and metrics listen address of this process.
    pub metrics_addr: String,
    /// Dev mode: HS256 tokens, `vbp token`, demo data.
    pub dev: bool,
    pub log_format: LogFormat,
    pub rpc_timeout_ms: u64,
    pub streams: StreamSettings,
    pub relay_batch: i64,
    pub outbox_retention_hours: u64,
    /// Where local state lives (demo markers, keys).
    pub state_dir: PathBuf,
    /// Operator's calendar overlay (holidays of years the built-in data lacks).
    pub calendar_file: Option<PathBuf>,
    /// Seconds to finish in-flight work after SIGTERM.
    pub shutdown_grace_secs: u64,
    #[serde(skip)]
    figment: Option<Figment>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ns: "vbp".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            database_url: "postgres://vbp@127.0.0.1:5432/vbp".into(),
            service_database_urls: BTreeMap::new(),
            db_bootstrap: true,
            db_role_password: "vbp-dev-only".into(),
            db_max_connections: 16,
            http_addr: "127.0.0.1:8080".into(),
            metrics_addr: "127.0.0.1:9464".into(),
            dev: false,
            log_format: LogFormat::Json,
            rpc_timeout_ms: 5000,
            streams: StreamSettings::default(),
            relay_batch: 500,
            outbox_retention_hours: 24 * 7,
            state_dir: PathBuf::from(".vbp"),
            calendar_file: None,
            shutdown_grace_secs: 10,
            figment: None,
        }
    }
}

impl Config {
    /// Defaults < `VBP_CONFIG` file < `VBP_*` environment.
    pub fn load() -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Ok(path) = std::env::var("VBP_CONFIG") {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed("VBP_").split("__"));
        Self::from_figment(figment)
    }

    pub fn from_figment(figment: Figment) -> anyhow::Result<Self> {
        let mut config: Config = figment.extract()?;
        config.namespace()?;
        config.figment = Some(figment);
        Ok(config)
    }

    pub fn namespace(&self) -> anyhow::Result<Namespace> {
        Namespace::new(self.ns.clone()).map_err(|e| anyhow::anyhow!("config ns: {e}"))
    }

    /// A service's own section (`[orders]` in the file, `VBP_ORDERS__*`),
    /// its defaults where absent.
    pub fn section<T: DeserializeOwned + Default + Serialize>(
        &self,
        name: &str,
    ) -> anyhow::Result<T> {
        let base = Figment::from(Serialized::defaults(T::default()));
        match &self.figment {
            Some(f) if f.find_value(name).is_ok() => Ok(base.merge(f.focus(name)).extract()?),
            _ => Ok(base.extract()?),
        }
    }

    /// Replaces whole-config values (tests, CLI flags) while keeping sections.
    pub fn with_figment_overrides(mut self, overrides: impl Serialize) -> anyhow::Result<Self> {
        let figment = self
            .figment
            .take()
            .unwrap_or_else(|| Figment::from(Serialized::defaults(&self)))
            .merge(Serialized::defaults(overrides));
        Self::from_figment(figment)
    }
}
