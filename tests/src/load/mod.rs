//! What the load generators (`tests/src/bin`) share: the ceilings a pipeline
//! is compared with, measured on the same servers in the same run, and the
//! memory of the processes under load.
//!
//! - [`ceiling`]: raw durable single-row INSERTs and JetStream publishes.
//! - [`memory`]: resident set sizes read from `/proc/<pid>/status`.
//! - [`statements`]: where the database time went, from `pg_stat_statements`.

pub mod ceiling;
pub mod memory;
pub mod statements;
