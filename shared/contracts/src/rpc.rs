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
