//! The service runtime every process shares: configuration, one Postgres
//! pool per service (own schema, own login role, own migrations), telemetry,
//! `/healthz` `/readyz` `/metrics`, graceful shutdown, and the [`ServiceHost`]
//! that wires a service's RPC handlers and consumers to the bus.

pub mod config;
pub mod db;
pub mod directory;
pub mod health;
pub mod host;
pub mod reconcile;
pub mod runtime;
pub mod sheets;
pub mod shutdown;
pub mod telemetry;
pub mod testkit;

pub use config::Config;
pub use host::ServiceHost;
pub use runtime::Platform;
