//! Whole-system tests of the platform: every service and the gateway in one
//! process on the real Postgres and NATS of `deploy/local/test`, driven over
//! HTTP and NATS as organisations and integrators would.
//!
//! - [`cast`]: the demo organisations the tests act as.
//! - [`system`]: starts the platform and talks to it.
//! - [`seed`]: the Liaoning demo plus orders, issues and an integrator order.
//! - [`fingerprint`]: the business state, to prove a refusal changed nothing.
//! - [`tenancy`]: which rows of an answer belong to someone else.
//! - [`routes`]: the route table and the OpenAPI document, as test input.
//! - [`samples`]: ids of existing rows, for path parameters.
//! - [`corpus`]: invalid inputs derived from a JSON schema.
//! - [`values`]: valid-looking values for a schema, to reach the rule under test.
//! - [`load`]: what the load generators share: durable ceilings and process memory.

pub mod cast;
pub mod corpus;
pub mod fingerprint;
pub mod load;
pub mod procs;
pub mod routes;
pub mod samples;
pub mod seed;
pub mod system;
pub mod tenancy;
pub mod values;
