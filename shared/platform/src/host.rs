//! Runs one service: its schema and migrations, its outbox relay, its
//! consumers and its RPC endpoints (with the operations every service
//! answers: ping, flow, dead letters), until shutdown.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use vbp_bus::inbox::Consumer;
use vbp_bus::timers::{Scheduler, TimerHandler};
use vbp_bus::{
    ConsumerSpec, Context, Handler, Outbox, Relay, RelaySettings, RpcError, RpcRequest, RpcServer,
};
use vbp_contracts::Service;
use vbp_contracts::system::{self, FlowRequest, FlowResponse, PingResponse};
use vbp_kernel::OrgKind;

use crate::health::PgCheck;
use crate::runtime::Platform;

pub struct ServiceHost {
    platform: Platform,
    service: Service,
    pool: PgPool,
    outbox: Outbox,
    rpc: RpcServer,
    consumers: Vec<Consumer>,
    scheduler: Scheduler,
    relays: usize,
}

impl ServiceHost {
    /// Prepares the service's database (bootstrap, migrations) and its
    /// streams, waiting for Postgres and NATS as long as it takes.
    pub async fn start(
        platform: &Platform,
        service: Service,
        migrator: sqlx::migrate::Migrator,
    ) -> anyhow::Result<Self> {
        let pool =
            crate::db::prepare(&platform.config, service, &migrator, &platform.shutdown).await?;
        platform.readiness.add(Arc::new(PgCheck {
            name: format!("postgres:{service}"),
            pool: pool.clone(),
        }));
        platform.ensure_event_stream(service).await?;
        platform.ensure_dlq_stream().await?;
        let outbox = Outbox::new(platform.ns.clone(), platform.clock.clone());
        let rpc = standard_operations(
            RpcServer::new(platform.nats.clone(), platform.ns.clone(), service),
            service,
            pool.clone(),
            platform.clock.clone(),
        );
        Ok(Self {
            platform: platform.clone(),
            service,
            scheduler: Scheduler::new(pool.clone(), platform.clock.clone(), service),
            pool,
            outbox,
            rpc,
            consumers: Vec::new(),
            relays: 1,
        })
    }

    pub fn service(&self) -> Service {
        self.service
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Adds the service's own operations.
    pub fn rpc(mut self, add: impl FnOnce(RpcServer) -> RpcServer) -> Self {
        self.rpc = add(self.rpc);
        self
    }

    /// Adds a consumer of `spec.stream` (ensured by the caller, e.g. with
    /// [`Platform::ensure_event_stream`]).
    pub fn consumer(mut self, spec: ConsumerSpec, handler: impl Handler) -> Self {
        self.consumers.push(Consumer::new(
            self.pool.clone(),
            self.platform.js.clone(),
            self.platform.ns.clone(),
            self.service,
            spec,
            Arc::new(handler),
            self.platform.clock.clone(),
        ));
        self
    }

    /// Fires timers of `kind` (see `vbp_bus::timers::schedule`) when the
    /// clock passes their due time.
    pub fn timer(mut self, kind: &str, handler: impl TimerHandler) -> Self {
        self.scheduler = self.scheduler.handler(kind, Arc::new(handler));
        self
    }

    /// Relay tasks in this process (replicas across processes add more).
    pub fn relays(mut self, n: usize) -> Self {
        self.relays = n.max(1);
        self
    }

    /// Runs until the platform's shutdown. Consumers and RPC stop first; the
    /// relay stops last, after flushing what they committed.
    pub async fn run(self) -> anyhow::Result<()> {
        let shutdown = self.platform.shutdown.clone();
        let relay_stop = CancellationToken::new();
        let mut relays = tokio::task::JoinSet::new();
        for _ in 0..self.relays {
            let relay = Relay::new(
                self.pool.clone(),
                self.platform.js.clone(),
                self.service,
                RelaySettings {
                    batch: self.platform.config.relay_batch,
                    retention: Duration::from_secs(
                        self.platform.config.outbox_retention_hours * 3600,
                    ),
                    ..RelaySettings::default()
                },
            );
            relays.spawn(relay.run(relay_stop.clone()));
        }
        let mut workers = tokio::task::JoinSet::new();
        for consumer in self.consumers {
            workers.spawn(consumer.run(shutdown.clone()));
        }
        if !self.scheduler.is_empty() {
            workers.spawn(self.scheduler.run(shutdown.clone()));
        }
        let service = self.service;
        let rpc = self.rpc;
        let rpc_shutdown = shutdown.clone();
        workers.spawn(async move {
            // The RPC server needs a live connection to register; keep trying
            // across broker outages until shutdown.
            let mut pause = Duration::from_millis(200);
            loop {
                match rpc.serve(rpc_shutdown.clone()).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(%service, error = %e, "RPC endpoints not registered yet");
                        tokio::select! {
                            _ = rpc_shutdown.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        tracing::info!(%service, "service running");
        while workers.join_next().await.is_some() {}
        relay_stop.cancel();
        while relays.join_next().await.is_some() {}
        self.pool.close().await;
        tracing::info!(%service, "service stopped");
        Ok(())
    }
}

fn require_operator(ctx: &Context) -> Result<(), RpcError> {
    match &ctx.actor {
        Some(actor) if actor.org_kind == OrgKind::Operator => Ok(()),
        _ => Err(RpcError::forbidden(
            "only operators may inspect or replay dead letters",
        )),
    }
}

fn standard_operations(
    rpc: RpcServer,
    service: Service,
    pool: PgPool,
    clock: vbp_kernel::SharedClock,
) -> RpcServer {
    let flow_pool = pool.clone();
    let list_pool = pool.clone();
    let replay_pool = pool;
    rpc.route_raw(system::PING, move |_req: RpcRequest| {
        let clock = clock.clone();
        async move {
            let pong = PingResponse {
                service,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                at: clock.now(),
            };
            Ok(serde_json::to_vec(&pong).unwrap_or_default().into())
        }
    })
    .route_raw(system::FLOW, move |req: RpcRequest| {
        let pool = flow_pool.clone();
        async move {
            let input: FlowRequest = req.json()?;
            let entries = vbp_bus::flow::entries(&pool, service, input.correlation).await?;
            Ok(serde_json::to_vec(&FlowResponse { entries })
                .unwrap_or_default()
                .into())
        }
    })
    .route_raw(system::DLQ_LIST, move |req: RpcRequest| {
        let pool = list_pool.clone();
        async move {
            require_operator(&req.ctx)?;
            let input: system::DlqListRequest = req.json()?;
            if !(1..=1000).contains(&input.limit) {
                return Err(RpcError::invalid(
                    "limit",
                    "limit must be between 1 and 1000",
                ));
            }
            let letters = vbp_bus::dlq::list(&pool, service, input.limit).await?;
            Ok(serde_json::to_vec(&system::DlqListResponse { letters })
                .unwrap_or_default()
                .into())
        }
    })
    .route_raw(system::DLQ_REPLAY, move |req: RpcRequest| {
        let pool = replay_pool.clone();
        async move {
            require_operator(&req.ctx)?;
            let input: system::DlqReplayRequest = req.json()?;
            let requested = vbp_bus::dlq::request_replay(&pool, input.id).await?;
            Ok(serde_json::to_vec(&system::DlqReplayResponse { requested })
                .unwrap_or_default()
                .into())
        }
    })
}
