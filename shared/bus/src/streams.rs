//! Idempotent stream provisioning: every process that produces or consumes
//! ensures the streams it relies on, so start-up order never matters.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};
use vbp_contracts::{Namespace, Service};

use crate::error::BusError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// 3 in a cluster, 1 on a single server.
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id`; beyond it the inbox
    /// still de-duplicates, at the cost of a transaction.
    #[serde(with = "secs")]
    pub duplicate_window: Duration,
    /// How long events stay in a stream (projections rebuild by replay).
    #[serde(with = "secs")]
    pub max_age: Duration,
    /// Memory storage only for throwaway test servers.
    pub memory: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(365 * 24 * 3600),
            memory: false,
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

fn config(name: String, subjects: Vec<String>, settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name,
        subjects,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        max_age: settings.max_age,
        storage: if settings.memory {
            stream::StorageType::Memory
        } else {
            stream::StorageType::File
        },
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    }
}

async fn ensure(js: &jetstream::Context, cfg: stream::Config) -> Result<(), BusError> {
    // Two processes may race to create the same stream; the loser's create
    // fails while the winner's lands, so one retry settles it.
    let mut last = None;
    for _ in 0..3 {
        match js.create_or_update_stream(cfg.clone()).await {
            Ok(_) => return Ok(()),
            Err(err) => {
                last = Some(err);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Err(BusError::nats(format!(
        "ensuring stream {}: {}",
        cfg.name,
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// `{NS}_EVT_{SERVICE}` holding `{ns}.evt.{service}.>`.
pub async fn ensure_event_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    service: Service,
    settings: &StreamSettings,
) -> Result<String, BusError> {
    let name = ns.event_stream(service);
    ensure(
        js,
        config(name.clone(), vec![ns.events_of(service)], settings),
    )
    .await?;
    Ok(name)
}

pub async fn ensure_ingest_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    settings: &StreamSettings,
) -> Result<String, BusError> {
    let name = ns.ingest_stream();
    ensure(js, config(name.clone(), vec![ns.ingest_all()], settings)).await?;
    Ok(name)
}

pub async fn ensure_dlq_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    settings: &StreamSettings,
) -> Result<String, BusError> {
    let name = ns.dlq_stream();
    ensure(js, config(name.clone(), vec![ns.dlq_all()], settings)).await?;
    Ok(name)
}
