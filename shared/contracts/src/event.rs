use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::service::Service;
use crate::subjects::Namespace;

/// A domain event: published by `SERVICE` on
/// `{ns}.evt.{service}.{aggregate}.{name}` through its outbox.
pub trait Event:
    Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    const SERVICE: Service;
    const AGGREGATE: &'static str;
    const NAME: &'static str;
    const VERSION: u32 = 1;

    /// `{service}.{aggregate}.{name}`, the `vbp-type` header.
    fn event_type() -> String {
        format!("{}.{}.{}", Self::SERVICE, Self::AGGREGATE, Self::NAME)
    }

    fn subject(ns: &Namespace) -> String {
        ns.event(Self::SERVICE, Self::AGGREGATE, Self::NAME)
    }
}
