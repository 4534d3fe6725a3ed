//! Gateway integration tests: a gateway on a random port, real NATS and
//! Postgres from `deploy/local/test`, real backend services or test RPC
//! handlers on the test's own namespace.

mod agreements;
mod auth;
mod common;
mod distribution;
mod flows;
mod forwarding;
mod health;
mod ingest;
mod issues;
mod liaoning;
mod limits;
mod orders;
mod policy;
mod prepayment;
mod reconcile;
mod supervision;
mod trace;
