use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use vbp_contracts::Service;

use crate::{bench, ops, serve};

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
    /// The reconciliation report: orders against agreements' progress and
    /// prepayment's settlements, every difference listed; exits 1 unless
    /// clean. Needs the services running.
    Reconcile {
        /// One period's id.
        #[arg(long)]
        period: Option<uuid::Uuid>,
        /// A region's subtree, e.g. 210900.
        #[arg(long)]
        region: Option<vbp_kernel::RegionCode>,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prints the JSON Schema of every payload.
    Schemas,
    Asyncapi(crate::asyncapi::Args),
    /// Mints a dev token (HS256 with the dev secret; dev mode only).
    Token {
        #[arg(long)]
        org_kind: vbp_kernel::OrgKind,
        /// The organisation's directory id.
        #[arg(long)]
        org: vbp_kernel::OrgId,
        /// GB/T 2260 region code, e.g. 210900.
        #[arg(long)]
        region: vbp_kernel::RegionCode,
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Subject (user id); defaults to the org id.
        #[arg(long)]
        sub: Option<String>,
        #[arg(long, default_value_t = 12 * 3600)]
        ttl_secs: i64,
    },
    /// Prints a dev token for each demo organisation of the Liaoning scenario.
    DemoTokens,
    /// The end-to-end load benchmark: runs `vbp-bench` (found next to this
    /// executable, then on PATH) with these arguments; `vbp bench --help`
    /// lists them.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
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
        Command::Token {
            org_kind,
            org,
            region,
            roles,
            sub,
            ttl_secs,
        } => {
            let config = vbp_platform::Config::load()?;
            let secret = vbp_gateway::token::dev_secret(&config)?;
            let sub = sub.unwrap_or_else(|| org.to_string());
            let token = vbp_gateway::token::mint_dev(
                &secret,
                &sub,
                org,
                org_kind,
                region,
                &roles,
                std::time::Duration::from_secs(ttl_secs.max(60) as u64),
                Utc::now(),
            )?;
            println!("{token}");
            Ok(())
        }
        Command::DemoTokens => {
            let config = vbp_platform::Config::load()?;
            print!("{}", serve::demo_tokens(&config)?);
            Ok(())
        }
        Command::Asyncapi(args) => crate::asyncapi::run(args),
        Command::Bench { args } => bench::run(args),
        Command::Reconcile {
            period,
            region,
            json,
        } => ops::reconcile(period, region, json).await,
        Command::Schemas => {
            println!(
                "{}",
                serde_json::to_string_pretty(&vbp_contracts::schema::all())?
            );
            Ok(())
        }
    }
}
