//! The `pgbaton` binary: parses the command line and hands over to one subcommand.

mod agent;
mod api;
mod cli;
mod demo;
mod logging;
mod storeconn;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// PostgreSQL replication and failover manager.
#[derive(Parser)]
#[command(name = "pgbaton", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run this member's agent in the foreground.
    Agent {
        /// The member's config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a config file and print the effective config (passwords masked).
    CheckConfig {
        /// The member's config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show the cluster's members.
    List {
        /// Any member's config file (it names the store and the cluster).
        #[arg(short, long)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = cli::Format::Table)]
        format: cli::Format,
    },
    /// Forget a member that is gone for good: the primary drops its replication slot.
    Remove {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The member to forget.
        name: String,
    },
    /// Run a local demo cluster on the embedded store, in the foreground.
    Demo {
        /// Where the configs, data and logs live (reused when run again).
        #[arg(long, default_value = "/var/tmp/pgbaton-demo")]
        dir: PathBuf,
        /// Number of members.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgbaton: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Agent { config } => agent::run(&config).await,
            Command::CheckConfig { config } => cli::check_config(&config),
            Command::List { config, format } => cli::list(&config, format).await,
            Command::Remove { config, name } => cli::remove(&config, &name).await,
            Command::Demo { dir, nodes } => demo::run(&dir, nodes).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgbaton: {e:#}");
            ExitCode::from(2)
        }
    }
}
