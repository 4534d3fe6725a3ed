//! The `[gateway]` section of the configuration file (`VBP_GATEWAY__*` in the
//! environment). Every limit has a default an operator can live with; the
//! authentication keys have none, because production must name its own.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vbp_contracts::Service;

/// Clock skew tolerated on `exp` / `nbf`. More than this would let a stolen,
/// expired token live on, so larger configured values are refused.
pub const MAX_LEEWAY_SECS: u64 = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// PEM file with the RS256 public key of the identity provider.
    pub jwt_public_key_file: Option<PathBuf>,
    /// JWKS file (RFC 7517) with the identity provider's RS256 keys, chosen by
    /// the token's `kid`. May be given beside `jwt_public_key_file`.
    pub jwks_file: Option<PathBuf>,
    /// When set, tokens must carry this `iss`.
    pub jwt_issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub jwt_audience: Option<String>,
    /// HS256 secret for dev tokens; honoured only when `dev = true`. Absent,
    /// the secret lives in `{state_dir}/dev-jwt-secret` (created on first use).
    pub dev_secret: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, at most [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
    /// Largest request body of an ordinary route.
    pub body_limit_bytes: usize,
    /// Largest request body of the ingest endpoint.
    pub ingest_body_limit_bytes: usize,
    /// Most items in one ingest batch.
    pub ingest_max_batch: usize,
    /// How far in the future an ingested event's own timestamp may lie
    /// (integrator clocks drift; orders from tomorrow are mistakes).
    pub ingest_max_future_skew_secs: u64,
    /// Deepest nesting of arrays and objects accepted in a JSON body.
    pub json_max_depth: usize,
    /// Most elements in one JSON array or object.
    pub json_max_items: usize,
    /// Longest JSON string (bytes, as sent).
    pub json_max_string_bytes: usize,
    /// Whole-request deadline; the answer is 504 when it passes.
    pub request_timeout_ms: u64,
    /// Deadline of one RPC to a service; defaults to the platform's
    /// `rpc_timeout_ms`, capped by `request_timeout_ms`.
    pub rpc_timeout_ms: Option<u64>,
    /// Deadline of each service's answer to a flow or readiness query.
    pub fanout_timeout_ms: u64,
    /// Requests in flight at once; beyond it the answer is 503 at once
    /// rather than a queue that only adds latency.
    pub concurrency_limit: usize,
    /// Sustained requests per second per organisation; 0 turns the limit off.
    pub rate_limit_per_sec: f64,
    /// Requests an organisation may make in a burst above the sustained rate.
    pub rate_limit_burst: u32,
    /// Origins allowed by CORS (e.g. the web console); `["*"]` allows any,
    /// empty disables CORS.
    pub cors_origins: Vec<String>,
    /// Services `/readyz` pings; a deployment that runs fewer lists them.
    pub readiness_services: Vec<Service>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            jwt_public_key_file: None,
            jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            dev_secret: None,
            leeway_secs: 30,
            body_limit_bytes: 256 * 1024,
            ingest_body_limit_bytes: 4 * 1024 * 1024,
            ingest_max_batch: 500,
            ingest_max_future_skew_secs: 300,
            json_max_depth: 32,
            json_max_items: 10_000,
            json_max_string_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            rpc_timeout_ms: None,
            fanout_timeout_ms: 2_000,
            concurrency_limit: 2_048,
            rate_limit_per_sec: 200.0,
            rate_limit_burst: 400,
            cors_origins: Vec::new(),
            readiness_services: Service::BACKENDS.to_vec(),
        }
    }
}

impl GatewayConfig {
    /// Refuses settings that would weaken the edge or cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.leeway_secs <= MAX_LEEWAY_SECS,
            "gateway.leeway_secs is {}, at most {MAX_LEEWAY_SECS} is allowed",
            self.leeway_secs
        );
        anyhow::ensure!(
            self.body_limit_bytes > 0,
            "gateway.body_limit_bytes must be positive"
        );
        anyhow::ensure!(
            self.ingest_max_batch > 0,
            "gateway.ingest_max_batch must be positive"
        );
        anyhow::ensure!(
            self.json_max_depth > 0,
            "gateway.json_max_depth must be positive"
        );
        anyhow::ensure!(
            self.request_timeout_ms > 0,
            "gateway.request_timeout_ms must be positive"
        );
        anyhow::ensure!(
            self.concurrency_limit > 0,
            "gateway.concurrency_limit must be positive"
        );
        anyhow::ensure!(
            self.rate_limit_per_sec >= 0.0 && self.rate_limit_per_sec.is_finite(),
            "gateway.rate_limit_per_sec must be a non-negative number"
        );
        anyhow::ensure!(
            self.rate_limit_per_sec == 0.0 || self.rate_limit_burst > 0,
            "gateway.rate_limit_burst must be positive when rate limiting is on"
        );
        Ok(())
    }

    /// The RPC deadline: configured, else the platform's, never past the
    /// request deadline (so the RPC's 504 wins over the generic one).
    pub fn rpc_timeout(&self, platform_rpc_timeout_ms: u64) -> std::time::Duration {
        let ms = self
            .rpc_timeout_ms
            .unwrap_or(platform_rpc_timeout_ms)
            .min(self.request_timeout_ms);
        std::time::Duration::from_millis(ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_leeway_is_bounded() {
        GatewayConfig::default().validate().unwrap();
        let loose = GatewayConfig {
            leeway_secs: MAX_LEEWAY_SECS + 1,
            ..GatewayConfig::default()
        };
        let err = loose.validate().unwrap_err().to_string();
        assert!(err.contains("leeway_secs"), "{err}");
    }

    #[test]
    fn rpc_timeout_never_outlives_the_request() {
        let config = GatewayConfig {
            request_timeout_ms: 800,
            ..GatewayConfig::default()
        };
        assert_eq!(config.rpc_timeout(5_000).as_millis(), 800);
        assert_eq!(config.rpc_timeout(300).as_millis(), 300);
        let explicit = GatewayConfig {
            rpc_timeout_ms: Some(100),
            ..config
        };
        assert_eq!(explicit.rpc_timeout(5_000).as_millis(), 100);
    }
}
