//! The route table: every HTTP route of `/api/v1`, declared as data. One entry
//! says which service operation the route reaches, who may call it, and what
//! the OpenAPI document says about it; the generic forwarder
//! ([`crate::forward`]) and the document ([`crate::openapi`]) are both built
//! from it, so a route cannot be served undocumented or documented unserved.
//!
//! Adding a route (Steps 3–7) is one expression in the service's module, e.g.
//! in `routes/orders.rs`:
//!
//! ```text
//! pub fn routes() -> Vec<Route> {
//!     vec![
//!         Route::post("/orders", Service::Orders, "place_order")
//!             .allow([OrgKind::Hospital])
//!             .roles(["order.write"])
//!             .summary("下单", "Place an order")
//!             .request::<PlaceOrder>()
//!             .response::<OrderView>()
//!             .status(StatusCode::CREATED)
//!             .error(StatusCode::CONFLICT, "the price differs from the winning price"),
//!         // or, from a typed operation of `vbp_contracts`:
//!         Route::op::<GetOrder>(Method::GET, "/orders/{id}").allow([OrgKind::Hospital, OrgKind::Bureau]),
//!     ]
//! }
//! ```
//!
//! and one line in [`RouteTable::standard`]: `.with(orders::routes())`.

pub mod agreements;
pub mod distribution;
pub mod issues;
pub mod orders;
pub mod prepayment;
pub mod supervision;
pub mod system;

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use vbp_contracts::{RpcOp, Service};
use vbp_kernel::OrgKind;

use crate::input;
use crate::policy::Policy;
use crate::problem::Problem;

/// Every route below lives under this prefix.
pub const API_PREFIX: &str = "/api/v1";

/// What a route reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One RPC operation of one service, through the generic forwarder.
    Rpc { service: Service, operation: String },
    /// The integrator ingest endpoint ([`crate::ingest`]).
    Ingest,
    /// The flow timeline fan-out ([`crate::flows`]).
    Flow,
    /// The reconciliation report fan-out ([`crate::reconcile`]).
    Reconcile,
    /// A caller's table as `.xlsx` ([`crate::export`]).
    Export,
}

/// A request type: its schema for the document, and a check that a merged
/// request reads as it (so a bad field is named before any RPC is sent).
#[derive(Clone, Copy)]
pub struct RequestType {
    pub(crate) schema: fn(&mut SchemaGenerator) -> schemars::Schema,
    pub(crate) validate: fn(&serde_json::Value) -> Result<(), Problem>,
    /// The type's whole schema (with its definitions), for the checks serde
    /// does not make: ranges, lengths, item counts.
    pub(crate) root: fn() -> serde_json::Value,
}

impl RequestType {
    pub fn of<T: JsonSchema + DeserializeOwned>() -> Self {
        Self {
            schema: |g| g.subschema_for::<T>(),
            validate: input::validate_as::<T>,
            root: || serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default(),
        }
    }
}

/// A response type, for the document.
#[derive(Clone, Copy)]
pub struct ResponseType {
    pub(crate) schema: fn(&mut SchemaGenerator) -> schemars::Schema,
}

impl ResponseType {
    pub fn of<T: JsonSchema>() -> Self {
        Self {
            schema: |g| g.subschema_for::<T>(),
        }
    }
}

/// One declared route. Build it with [`Route::get`] and friends, then the
/// chained setters; [`RouteTable`] refuses a route without a policy.
#[derive(Clone)]
pub struct Route {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) target: Target,
    pub(crate) policy: Option<Policy>,
    pub(crate) summary_zh: String,
    pub(crate) summary_en: String,
    pub(crate) description: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) operation_id: Option<String>,
    pub(crate) request: Option<RequestType>,
    pub(crate) response: Option<ResponseType>,
    pub(crate) success: StatusCode,
    pub(crate) errors: Vec<(StatusCode, String)>,
    /// How long the service may take, when longer than the gateway's RPC
    /// timeout (a province-wide batch operation).
    pub(crate) timeout: Option<std::time::Duration>,
}

impl Route {
    /// `method path` (under `/api/v1`, `{name}` for path parameters) forwarded
    /// to `operation` of `service`.
    pub fn new(
        method: Method,
        path: impl Into<String>,
        service: Service,
        operation: impl Into<String>,
    ) -> Self {
        Self::with_target(
            method,
            path,
            Target::Rpc {
                service,
                operation: operation.into(),
            },
        )
    }

    pub(crate) fn with_target(method: Method, path: impl Into<String>, target: Target) -> Self {
        Self {
            method,
            path: path.into(),
            target,
            policy: None,
            summary_zh: String::new(),
            summary_en: String::new(),
            description: None,
            tag: None,
            operation_id: None,
            request: None,
            response: None,
            success: StatusCode::OK,
            errors: Vec::new(),
            timeout: None,
        }
    }

    pub fn get(path: impl Into<String>, service: Service, operation: impl Into<String>) -> Self {
        Self::new(Method::GET, path, service, operation)
    }

    pub fn post(path: impl Into<String>, service: Service, operation: impl Into<String>) -> Self {
        Self::new(Method::POST, path, service, operation)
    }

    pub fn put(path: impl Into<String>, service: Service, operation: impl Into<String>) -> Self {
        Self::new(Method::PUT, path, service, operation)
    }

    pub fn patch(path: impl Into<String>, service: Service, operation: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path, service, operation)
    }

    pub fn delete(path: impl Into<String>, service: Service, operation: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path, service, operation)
    }

    /// A route for a typed operation: service, name, request and response
    /// types all come from `Op`.
    pub fn op<Op: RpcOp>(method: Method, path: impl Into<String>) -> Self {
        Self::new(method, path, Op::SERVICE, Op::NAME)
            .request::<Op::Request>()
            .response::<Op::Response>()
    }

    /// Callers of these organisation kinds may call the route.
    pub fn allow(mut self, kinds: impl IntoIterator<Item = OrgKind>) -> Self {
        let roles = self
            .policy
            .take()
            .map(|p| p.required_roles().to_vec())
            .unwrap_or_default();
        self.policy = Some(Policy::kinds(kinds).with_roles(roles));
        self
    }

    /// Any authenticated caller may call the route.
    pub fn allow_any(mut self) -> Self {
        let roles = self
            .policy
            .take()
            .map(|p| p.required_roles().to_vec())
            .unwrap_or_default();
        self.policy = Some(Policy::authenticated().with_roles(roles));
        self
    }

    /// The caller must also hold one of these roles.
    pub fn roles(mut self, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let policy = self.policy.take().unwrap_or_else(Policy::authenticated);
        self.policy = Some(policy.with_roles(roles));
        self
    }

    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The summary in Chinese (the domain's own terms) and English.
    pub fn summary(mut self, zh: impl Into<String>, en: impl Into<String>) -> Self {
        self.summary_zh = zh.into();
        self.summary_en = en.into();
        self
    }

    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Allows the service this long to answer instead of the gateway's RPC
    /// timeout.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The OpenAPI tag; defaults to the target service's name.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// The OpenAPI operation id; defaults to `{service}_{operation}`.
    pub fn operation_id(mut self, id: impl Into<String>) -> Self {
        self.operation_id = Some(id.into());
        self
    }

    pub fn request<T: JsonSchema + DeserializeOwned>(mut self) -> Self {
        self.request = Some(RequestType::of::<T>());
        self
    }

    pub fn response<T: JsonSchema>(mut self) -> Self {
        self.response = Some(ResponseType::of::<T>());
        self
    }

    /// The status of a successful answer (200 unless set).
    pub fn status(mut self, status: StatusCode) -> Self {
        self.success = status;
        self
    }

    /// An error the route's service answers beyond the ones every route has
    /// (400, 401, 403, 413, 415, 422, 429, 503, 504).
    pub fn error(mut self, status: StatusCode, when: impl Into<String>) -> Self {
        self.errors.push((status, when.into()));
        self
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path under [`API_PREFIX`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full path as served.
    pub fn full_path(&self) -> String {
        format!("{API_PREFIX}{}", self.path)
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn policy_of(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    pub fn operation_id_or_default(&self) -> String {
        if let Some(id) = &self.operation_id {
            return id.clone();
        }
        match &self.target {
            Target::Rpc { service, operation } => format!("{service}_{operation}"),
            Target::Ingest => "ingest".to_owned(),
            Target::Flow => "flow".to_owned(),
            Target::Reconcile => "reconciliation".to_owned(),
            Target::Export => "export".to_owned(),
        }
    }

    /// Names of the `{param}` segments of the path.
    pub fn path_params(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect()
    }
}

/// The routes a gateway serves.
#[derive(Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// What the platform serves: the gateway's own routes, then each
    /// service's (Steps 3–7 add theirs here).
    pub fn standard() -> Self {
        Self::new()
            .with(system::routes())
            .with(agreements::routes())
            .with(distribution::routes())
            .with(orders::routes())
            .with(prepayment::routes())
            .with(issues::routes())
            .with(supervision::routes())
            .with(crate::export::routes())
    }

    pub fn with(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        self.routes.extend(routes);
        self
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Refuses a table a gateway must not serve: a route without a policy, a
    /// duplicate, a malformed path or an operation id used twice.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut seen = HashSet::new();
        let mut ids = HashSet::new();
        for route in &self.routes {
            let name = format!("{} {}", route.method, route.full_path());
            anyhow::ensure!(route.policy.is_some(), "route {name} declares no policy");
            anyhow::ensure!(
                route.path.starts_with('/') && !route.path.ends_with('/') || route.path == "/",
                "route {name}: the path must start with '/' and not end with one"
            );
            for param in route.path_params() {
                anyhow::ensure!(
                    !param.is_empty()
                        && param.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "route {name}: bad path parameter {{{param}}}"
                );
            }
            if let Target::Rpc { operation, .. } = &route.target {
                anyhow::ensure!(
                    vbp_contracts::subjects::valid_token(operation),
                    "route {name}: operation {operation:?} is not a subject token"
                );
            }
            anyhow::ensure!(seen.insert(name.clone()), "route {name} is declared twice");
            let id = route.operation_id_or_default();
            anyhow::ensure!(
                ids.insert(id.clone()),
                "route {name}: operation id {id} is used twice"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_table_is_valid() {
        RouteTable::standard().validate().unwrap();
    }

    #[test]
    fn routes_without_policy_or_twice_are_refused() {
        let bare = RouteTable::new().with([Route::get("/x", Service::Orders, "x")]);
        assert!(
            bare.validate()
                .unwrap_err()
                .to_string()
                .contains("no policy")
        );
        let r = Route::get("/x", Service::Orders, "x").allow_any();
        let twice = RouteTable::new().with([r.clone(), r.operation_id("other")]);
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        let bad =
            RouteTable::new().with([Route::get("/x/{a.b}", Service::Orders, "x").allow_any()]);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn allow_and_roles_compose_in_either_order() {
        let a = Route::get("/x", Service::Orders, "x")
            .roles(["r"])
            .allow([OrgKind::Hospital]);
        let b = Route::get("/x", Service::Orders, "x")
            .allow([OrgKind::Hospital])
            .roles(["r"]);
        assert_eq!(a.policy, b.policy);
        assert_eq!(a.policy.unwrap().required_roles(), ["r"]);
        assert_eq!(b.path_params(), Vec::<String>::new());
        assert_eq!(
            Route::get("/a/{id}/b/{line}", Service::Orders, "x").path_params(),
            ["id", "line"]
        );
    }
}
