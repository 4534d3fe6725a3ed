//! The contract between services: subjects, headers, message metadata, and
//! every payload that crosses a service boundary. Services share nothing else.
//!
//! Versioning rule: within a version only additive changes; a breaking change
//! is a new event name (or a new `VERSION` with a new type beside the old one).

pub mod agreements;
pub mod distribution;
pub mod event;
pub mod files;
pub mod headers;
pub mod ingest;
pub mod issues;
pub mod meta;
pub mod orders;
pub mod page;
pub mod prepayment;
pub mod reconcile;
pub mod rpc;
pub mod schema;
pub mod service;
pub mod subjects;
pub mod supervision;
pub mod system;

pub use event::Event;
pub use meta::MessageMeta;
pub use rpc::{RpcErrorBody, RpcOp};
pub use service::Service;
pub use subjects::{Namespace, NamespaceError};
