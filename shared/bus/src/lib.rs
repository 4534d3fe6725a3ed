//! NATS plumbing with the delivery guarantees of DESIGN §3, used the same way
//! by every service: at-least-once delivery, exactly-once effects.
//!
//! - [`outbox`]: events are rows written in the producer's transaction and
//!   relayed to JetStream afterwards; nothing is published that did not commit.
//! - [`inbox`]: a durable pull consumer whose handler writes, inbox row and new
//!   outbox rows commit together before the ack; redeliveries have no effect.
//! - [`dlq`]: poison messages are parked with their reason and can be replayed.
//! - [`rpc`]: request/reply over the NATS micro service API.

pub mod codec;
pub mod context;
pub mod dlq;
pub mod error;
pub mod flow;
pub mod inbox;
pub mod metrics;
pub mod outbox;
pub mod rpc;
pub mod streams;
pub mod timers;
pub mod trace;

pub use context::Context;
pub use error::BusError;
pub use inbox::{ConsumerSpec, Handler, HandlerError, Incoming};
pub use outbox::{Outbox, Relay, RelaySettings};
pub use rpc::{CallError, RpcClient, RpcError, RpcRequest, RpcServer};

/// Migrations of the delivery tables (outbox, inbox, dlq), applied in each
/// service's schema before the service's own. They keep their own history
/// table so the two migration sets never see each other's versions.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_bus_migrations");
    migrator
}
