//! `vbp`: one binary for every service (DESIGN §2). `vbp serve all` runs the
//! whole system in one process; `vbp serve orders` runs one service, as a
//! container per service does in Kubernetes. Same code, same subjects.

mod asyncapi;
mod bench;
mod cli;
mod demo;
mod demo_flow;
mod demo_issues;
mod demo_orders;
mod demo_prepayment;
mod demo_supervision;
mod ops;
mod serve;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::dispatch(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vbp: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
