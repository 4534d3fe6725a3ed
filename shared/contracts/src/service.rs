use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The services of the platform. A service name is a subject token, a stream
/// name part, a Postgres schema name and a `vbp serve` argument, so it is
/// lowercase ASCII without separators.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Gateway,
    Agreements,
    Distribution,
    Orders,
    Prepayment,
    Issues,
    Supervision,
}

impl Service {
    /// Services that own a schema and answer RPCs (the gateway owns neither).
    pub const BACKENDS: [Service; 6] = [
        Service::Agreements,
        Service::Distribution,
        Service::Orders,
        Service::Prepayment,
        Service::Issues,
        Service::Supervision,
    ];

    pub const ALL: [Service; 7] = [
        Service::Gateway,
        Service::Agreements,
        Service::Distribution,
        Service::Orders,
        Service::Prepayment,
        Service::Issues,
        Service::Supervision,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Agreements => "agreements",
            Service::Distribution => "distribution",
            Service::Orders => "orders",
            Service::Prepayment => "prepayment",
            Service::Issues => "issues",
            Service::Supervision => "supervision",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown service {0:?}: expected one of gateway, agreements, distribution, orders, prepayment, issues, supervision"
)]
pub struct UnknownService(pub String);

impl FromStr for Service {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|svc| svc.as_str() == s)
            .ok_or_else(|| UnknownService(s.to_owned()))
    }
}
