//! Subject and stream names (DESIGN §3). Everything a service publishes or
//! subscribes to is built here, so a namespace change reaches every subject.

use std::fmt;

use crate::service::Service;

/// The subject namespace (`vbp` by default). Tests and regional deployments
/// set their own so several can share one NATS server without seeing each
/// other. It becomes the first subject token and the stream-name prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NamespaceError {
    #[error("namespace must be 1 to 32 characters, got {0}")]
    Length(usize),
    #[error(
        "namespace must start with a lowercase letter and hold only a-z, 0-9 and '_', got {0:?}"
    )]
    Charset(String),
}

impl Namespace {
    pub fn new(ns: impl Into<String>) -> Result<Self, NamespaceError> {
        let ns = ns.into();
        if ns.is_empty() || ns.len() > 32 {
            return Err(NamespaceError::Length(ns.len()));
        }
        let mut chars = ns.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        if !first_ok
            || !ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(NamespaceError::Charset(ns));
        }
        Ok(Self(ns))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn upper(&self) -> String {
        self.0.to_ascii_uppercase()
    }

    /// `{ns}.evt.{service}.{aggregate}.{event}`
    pub fn event(&self, service: Service, aggregate: &str, event: &str) -> String {
        format!("{}.evt.{service}.{aggregate}.{event}", self.0)
    }

    /// Every event one service produces: `{ns}.evt.{service}.>`
    pub fn events_of(&self, service: Service) -> String {
        format!("{}.evt.{service}.>", self.0)
    }

    /// `{NS}_EVT_{SERVICE}`: one stream per producing service.
    pub fn event_stream(&self, service: Service) -> String {
        format!(
            "{}_EVT_{}",
            self.upper(),
            service.as_str().to_ascii_uppercase()
        )
    }

    /// `{ns}.ingest.{integrator}.{event}`
    pub fn ingest(&self, integrator: &str, event: &str) -> String {
        format!("{}.ingest.{integrator}.{event}", self.0)
    }

    /// Everything one integrator may publish: `{ns}.ingest.{integrator}.>`
    pub fn ingest_of(&self, integrator: &str) -> String {
        format!("{}.ingest.{integrator}.>", self.0)
    }

    pub fn ingest_all(&self) -> String {
        format!("{}.ingest.>", self.0)
    }

    pub fn ingest_stream(&self) -> String {
        format!("{}_INGEST", self.upper())
    }

    /// `{ns}.rpc.{service}.{operation}`
    pub fn rpc(&self, service: Service, operation: &str) -> String {
        format!("{}.rpc.{service}.{operation}", self.0)
    }

    /// The prefix a service's RPC endpoints are grouped under.
    pub fn rpc_group(&self, service: Service) -> String {
        format!("{}.rpc.{service}", self.0)
    }

    /// `{ns}.dlq.{service}.{consumer}`
    pub fn dlq(&self, service: Service, consumer: &str) -> String {
        format!("{}.dlq.{service}.{consumer}", self.0)
    }

    pub fn dlq_all(&self) -> String {
        format!("{}.dlq.>", self.0)
    }

    pub fn dlq_stream(&self) -> String {
        format!("{}_DLQ", self.upper())
    }

    /// Durable consumer names are stream-scoped; prefixing the service keeps
    /// two services' consumers of one stream apart.
    pub fn durable(&self, service: Service, consumer: &str) -> String {
        format!("{service}_{consumer}")
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self("vbp".to_owned())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one subject token (integrator id, event name, consumer name): no
/// separators or wildcards, so a caller cannot widen a subject it builds.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 64
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_contract() {
        let ns = Namespace::new("ln").unwrap();
        assert_eq!(
            ns.event(Service::Orders, "receipt", "accepted"),
            "ln.evt.orders.receipt.accepted"
        );
        assert_eq!(ns.event_stream(Service::Orders), "LN_EVT_ORDERS");
        assert_eq!(
            ns.ingest("his01", "order_placed"),
            "ln.ingest.his01.order_placed"
        );
        assert_eq!(ns.ingest_stream(), "LN_INGEST");
        assert_eq!(ns.rpc(Service::Issues, "file"), "ln.rpc.issues.file");
        assert_eq!(
            ns.dlq(Service::Prepayment, "settlements"),
            "ln.dlq.prepayment.settlements"
        );
        assert_eq!(ns.dlq_stream(), "LN_DLQ");
    }

    #[test]
    fn namespace_rejects_subject_syntax() {
        assert!(Namespace::new("vbp").is_ok());
        assert!(Namespace::new("t_0193").is_ok());
        for bad in [
            "",
            "a.b",
            "a*",
            "a>",
            "Upper",
            "1abc",
            "a b",
            &"x".repeat(33),
        ] {
            assert!(Namespace::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tokens_cannot_widen_subjects() {
        assert!(valid_token("his-01"));
        for bad in ["", "a.b", "*", ">", "a b"] {
            assert!(!valid_token(bad), "{bad:?} accepted");
        }
    }
}
