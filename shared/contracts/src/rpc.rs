use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::service::Service;

/// One request/reply operation on `{ns}.rpc.{service}.{name}`.
pub trait RpcOp: Send + Sync + 'static {
    const SERVICE: Service;
    const NAME: &'static str;
    type Request: Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync;
    type Response: Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync;
}

/// The body of an RPC error reply. `code` is stable (clients branch on it);
/// `status` is the HTTP status the gateway answers with; `field` names the
/// offending input for validation errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RpcErrorBody {
    pub code: String,
    pub status: u16,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// Declares a service's RPC operations once: a unit type per operation
/// implementing [`RpcOp`], `OPERATIONS` (every name) and `rpc_schemas()`
/// (`{service}.{op}.request|response` schemas for the documentation).
///
/// ```ignore
/// rpc_operations! { Service::Orders, "orders";
///     /// Place an order.
///     OrderPlace = "order_place" (PlaceOrder) -> OrderView;
/// }
/// ```
#[macro_export]
macro_rules! rpc_operations {
    ($service:expr, $prefix:literal; $( $(#[$m:meta])* $name:ident = $op:literal ($req:ty) -> $resp:ty; )*) => {
        $(
            $(#[$m])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl $crate::RpcOp for $name {
                const SERVICE: $crate::Service = $service;
                const NAME: &'static str = $op;
                type Request = $req;
                type Response = $resp;
            }
        )*

        /// Every operation name of the service.
        pub const OPERATIONS: &[&str] = &[$($op),*];

        /// `({service}.{op}.request|response, schema)` of every operation.
        pub fn rpc_schemas() -> Vec<(&'static str, schemars::Schema)> {
            vec![$(
                (concat!($prefix, ".", $op, ".request"), schemars::schema_for!($req)),
                (concat!($prefix, ".", $op, ".response"), schemars::schema_for!($resp)),
            )*]
        }
    };
}
