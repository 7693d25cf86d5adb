//! The `pgbaton` binary: parses the command line and hands over to one subcommand.

use pgbaton::{agent, cli, demo, fence};

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
    /// Print the cluster-wide config the store holds (YAML or JSON).
    ShowConfig {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = cli::ConfigFormat::Yaml)]
        format: cli::ConfigFormat,
    },
    /// Change the cluster-wide config in the store: checked, compare-and-set, diff printed.
    EditConfig {
        /// Any member's config file (its watchdog.safety_margin is used for the timing check).
        #[arg(short, long)]
        config: PathBuf,
        /// KEY=VALUE, e.g. loop_wait=2, paused=true, parameters.work_mem=8MB; KEY=null resets it.
        #[arg(short, long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
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
    /// Hand the primary role to a replica, with no data loss.
    Switchover {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The member to promote (default: the best streaming replica).
        #[arg(long)]
        to: Option<String>,
        /// When: an RFC 3339 time (2026-11-25T21:00:00Z) or +30s / +5m from now.
        #[arg(long)]
        at: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
        /// Cancel a pending (scheduled) switchover.
        #[arg(long)]
        cancel: bool,
        /// Seconds to wait for the new primary.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Promote a chosen member when there is no healthy primary.
    Failover {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The member to promote.
        #[arg(long)]
        to: String,
        /// Accept losing commits the member has not received (logged in history).
        #[arg(long)]
        force: bool,
        /// Seconds to wait for the new primary.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Maintenance mode: no automatic failover, restart or rejoin.
    Pause {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Leave maintenance mode.
    Resume {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show every promotion: timeline, switch point, reason.
    History {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = cli::Format::Table)]
        format: cli::Format,
    },
    /// Restart a member's PostgreSQL in its current role.
    Restart {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The member whose PostgreSQL restarts.
        name: String,
        /// Seconds to wait for it to run again.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Make a member's agent re-read its config file (tags, parameters, pg_hba lines).
    Reload {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The member to reload.
        name: String,
    },
    /// Re-clone a replica from the primary.
    Reinit {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The member to rebuild.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
        /// Seconds to wait for it to stream again.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Forget a member that is gone for good: the primary drops its replication slot.
    Remove {
        /// Any member's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The member to forget.
        name: String,
    },
    /// Run a local demo cluster in the foreground, on the embedded store or on etcd.
    Demo {
        /// Where the configs, data and logs live (reused when run again).
        #[arg(long, default_value = "/var/tmp/pgbaton-demo")]
        dir: PathBuf,
        /// Number of members.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// The store the members share.
        #[arg(long, value_enum, default_value_t = demo::StoreArg::Local)]
        store: demo::StoreArg,
        /// Client URLs of a running etcd, comma-separated (with `--store etcd`). Without
        /// them the demo starts its own etcd on 127.0.0.1:52379.
        #[arg(long, value_delimiter = ',', value_name = "URL,...")]
        etcd_endpoints: Vec<String>,
    },
    /// Internal: the fence process the agent starts to enforce its lease deadline.
    #[command(hide = true)]
    FenceWatchdog(fence::WatchdogArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Few malloc arenas: the agent and the fence process are long-lived and small; one
    // arena per thread would multiply their resident memory for nothing.
    // SAFETY: mallopt only tunes the allocator, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // The fence process needs no async runtime (and no idle worker threads).
    let command = match cli.command {
        Command::FenceWatchdog(args) => {
            return match fence::run_watchdog(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pgbaton: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
        other => other,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
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
        match command {
            Command::Agent { config } => agent::run(&config).await,
            Command::CheckConfig { config } => cli::check_config(&config),
            Command::ShowConfig { config, format } => cli::show_config(&config, format).await,
            Command::EditConfig { config, set } => cli::edit_config(&config, &set).await,
            Command::List { config, format } => cli::list(&config, format).await,
            Command::Remove { config, name } => cli::remove(&config, &name).await,
            Command::Switchover {
                config,
                to,
                at,
                force,
                cancel,
                timeout,
            } => {
                let args = cli::SwitchoverArgs {
                    to,
                    at,
                    force,
                    cancel,
                    timeout: std::time::Duration::from_secs(timeout),
                };
                cli::switchover(&config, args).await
            }
            Command::Failover {
                config,
                to,
                force,
                timeout,
            } => cli::failover(&config, &to, force, std::time::Duration::from_secs(timeout)).await,
            Command::Pause { config } => cli::set_paused(&config, true).await,
            Command::Resume { config } => cli::set_paused(&config, false).await,
            Command::History { config, format } => cli::history(&config, format).await,
            Command::Restart {
                config,
                name,
                timeout,
            } => cli::restart(&config, &name, std::time::Duration::from_secs(timeout)).await,
            Command::Reload { config, name } => cli::reload(&config, &name).await,
            Command::Reinit {
                config,
                name,
                force,
                timeout,
            } => {
                cli::reinit(
                    &config,
                    &name,
                    force,
                    std::time::Duration::from_secs(timeout),
                )
                .await
            }
            Command::Demo {
                dir,
                nodes,
                store,
                etcd_endpoints,
            } => {
                let opts = demo::Options {
                    dir,
                    nodes,
                    store,
                    etcd_endpoints,
                };
                demo::run(&opts).await
            }
            // Dispatched before the runtime starts.
            Command::FenceWatchdog(_) => Ok(()),
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
