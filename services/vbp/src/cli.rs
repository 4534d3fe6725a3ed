use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use vbp_contracts::Service;

use crate::{ops, serve};

/// VBP execution platform (集中带量采购执行平台).
///
/// Configuration comes from the TOML file named by VBP_CONFIG and from VBP_*
/// environment variables (VBP_NATS_URL, VBP_DATABASE_URL, VBP_NS, ...).
#[derive(Debug, Parser)]
#[command(name = "vbp", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs services until SIGTERM / Ctrl-C: `all`, or any of gateway,
    /// agreements, distribution, orders, prepayment, issues.
    Serve {
        #[arg(required = true, num_args = 1..)]
        services: Vec<String>,
        /// Loads the Liaoning demo scenario on first start and prints a dev
        /// token per demo organisation (dev mode only).
        #[arg(long)]
        demo: bool,
    },
    /// Creates roles and schemas and applies migrations, then exits.
    Migrate {
        /// Services to migrate (default: every backend service).
        #[arg(long = "service")]
        services: Vec<Service>,
    },
    /// Outbox operations.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Dead-letter queue operations.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Prints the JSON Schema of every payload.
    Schemas,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Publishes again every event recorded since a time: the recovery path
    /// after the broker lost acknowledged messages. Consumers de-duplicate.
    Republish {
        #[arg(long)]
        service: Service,
        /// RFC 3339 time, e.g. 2026-11-23T08:00:00+08:00
        #[arg(long)]
        since: DateTime<Utc>,
    },
    /// Rows not yet published, per service.
    Backlog,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Lists dead letters of a service, newest first.
    List {
        #[arg(long)]
        service: Service,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Asks the running service to apply dead letters again.
    Replay {
        #[arg(long)]
        service: Service,
        /// One dead letter's id.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<uuid::Uuid>,
        /// Every dead letter not yet applied.
        #[arg(long)]
        all: bool,
    },
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { services, demo } => serve::serve(&services, demo).await,
        Command::Migrate { services } => ops::migrate(services).await,
        Command::Outbox {
            command: OutboxCommand::Republish { service, since },
        } => ops::republish(service, since).await,
        Command::Outbox {
            command: OutboxCommand::Backlog,
        } => ops::backlog().await,
        Command::Dlq {
            command: DlqCommand::List { service, limit },
        } => ops::dlq_list(service, limit).await,
        Command::Dlq {
            command:
                DlqCommand::Replay {
                    service,
                    id,
                    all: _,
                },
        } => ops::dlq_replay(service, id).await,
        Command::Schemas => {
            println!(
                "{}",
                serde_json::to_string_pretty(&vbp_contracts::schema::all())?
            );
            Ok(())
        }
    }
}
