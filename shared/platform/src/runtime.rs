use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;
use vbp_bus::RpcClient;
use vbp_bus::streams::{self, StreamSettings};
use vbp_contracts::{Namespace, Service};
use vbp_kernel::{BusinessCalendar, SharedClock};

use crate::config::Config;
use crate::health::{NatsCheck, Readiness};

/// What every service in a process shares: configuration, the NATS
/// connection, the clock, the calendar, readiness checks and the shutdown
/// signal. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    pub config: Arc<Config>,
    pub ns: Namespace,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub clock: SharedClock,
    pub calendar: Arc<BusinessCalendar>,
    pub readiness: Readiness,
    pub shutdown: CancellationToken,
    /// Streams this process relies on, kept present by [`Platform::guard_streams`].
    streams: Arc<std::sync::Mutex<BTreeSet<Needed>>>,
}

/// A stream a service publishes to or consumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Needed {
    Events(Service),
    Ingest,
    Dlq,
}

/// How often the streams a process relies on are checked. A broker that
/// lost its store (or an operator who deleted a stream) gets them back
/// within this time, so publishers and consumers resume without a restart;
/// `vbp outbox republish` then restores the lost messages.
const STREAM_GUARD_INTERVAL: Duration = Duration::from_secs(5);

impl Platform {
    /// Connects to NATS; if the server is not up yet the client keeps
    /// trying in the background (never a crash loop), and reconnects forever.
    pub async fn connect(
        config: Config,
        clock: SharedClock,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let ns = config.namespace()?;
        let mut calendar = BusinessCalendar::builtin();
        if let Some(path) = &config.calendar_file {
            calendar = calendar
                .with_overlay_file(path)
                .map_err(|e| anyhow::anyhow!("calendar file {}: {e}", path.display()))?;
        }
        let nats = async_nats::ConnectOptions::new()
            .name(format!("vbp-{}", ns))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::warn!("NATS disconnected; reconnecting")
                    }
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            })
            .connect(&config.nats_url)
            .await?;
        let js = jetstream::new(nats.clone());
        let readiness = Readiness::default();
        readiness.add(Arc::new(NatsCheck(nats.clone())));
        let platform = Self {
            config: Arc::new(config),
            ns,
            nats,
            js,
            clock,
            calendar: Arc::new(calendar),
            readiness,
            shutdown,
            streams: Arc::default(),
        };
        tokio::spawn(platform.clone().guard_streams());
        Ok(platform)
    }

    /// Recreates, until shutdown, any stream ensured through this platform
    /// that has gone missing.
    async fn guard_streams(self) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(STREAM_GUARD_INTERVAL) => {}
            }
            let needed: Vec<Needed> = self
                .streams
                .lock()
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for stream in needed {
                let name = match stream {
                    Needed::Events(service) => self.ns.event_stream(service),
                    Needed::Ingest => self.ns.ingest_stream(),
                    Needed::Dlq => self.ns.dlq_stream(),
                };
                if self.js.get_stream(&name).await.is_ok() {
                    continue;
                }
                let settings = &self.config.streams;
                let made = match stream {
                    Needed::Events(service) => {
                        streams::ensure_event_stream(&self.js, &self.ns, service, settings).await
                    }
                    Needed::Ingest => {
                        streams::ensure_ingest_stream(&self.js, &self.ns, settings).await
                    }
                    Needed::Dlq => streams::ensure_dlq_stream(&self.js, &self.ns, settings).await,
                };
                match made {
                    Ok(_) => tracing::warn!(stream = %name, "stream was missing; created it again"),
                    Err(e) => tracing::debug!(stream = %name, error = %e, "stream check failed"),
                }
            }
        }
    }

    fn need(&self, stream: Needed) {
        if let Ok(mut set) = self.streams.lock() {
            set.insert(stream);
        }
    }

    pub fn rpc_client(&self) -> RpcClient {
        RpcClient::new(
            self.nats.clone(),
            self.ns.clone(),
            Duration::from_millis(self.config.rpc_timeout_ms),
        )
    }

    pub fn stream_settings(&self) -> &StreamSettings {
        &self.config.streams
    }

    /// Ensures a stream, retrying while the broker is unreachable.
    pub async fn ensure_event_stream(&self, service: Service) -> anyhow::Result<String> {
        self.need(Needed::Events(service));
        retry(&self.shutdown, || {
            streams::ensure_event_stream(&self.js, &self.ns, service, &self.config.streams)
        })
        .await
    }

    pub async fn ensure_ingest_stream(&self) -> anyhow::Result<String> {
        self.need(Needed::Ingest);
        retry(&self.shutdown, || {
            streams::ensure_ingest_stream(&self.js, &self.ns, &self.config.streams)
        })
        .await
    }

    pub async fn ensure_dlq_stream(&self) -> anyhow::Result<String> {
        self.need(Needed::Dlq);
        retry(&self.shutdown, || {
            streams::ensure_dlq_stream(&self.js, &self.ns, &self.config.streams)
        })
        .await
    }
}

async fn retry<F, Fut>(shutdown: &CancellationToken, mut f: F) -> anyhow::Result<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, vbp_bus::BusError>>,
{
    let mut pause = Duration::from_millis(200);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "broker not ready");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("shut down while waiting for NATS"),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}
