#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("serialising a payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("{0}")]
    Codec(#[from] crate::codec::CodecError),
}

impl BusError {
    pub fn nats(err: impl std::fmt::Display) -> Self {
        BusError::Nats(err.to_string())
    }
}
