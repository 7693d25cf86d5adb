//! The `pgbaton` binary: parses the command line and hands over to one subcommand.

use pgbaton::{agent, args, cli, demo, exit, fence, generate, sdnotify};

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    // Everything pgbaton creates (store, logs, configs, pid and temp files) is private
    // to its owner unless a caller sets a mode explicitly (PostgreSQL's own files are
    // PostgreSQL's business). Inherited by every child process.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    // Few malloc arenas: the agent and the fence process are long-lived and small; one
    // arena per thread would multiply their resident memory for nothing.
    // SAFETY: mallopt only tunes the allocator, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // Take systemd's notification socket out of the environment while this process is
    // still single-threaded, so PostgreSQL and the fence process never inherit it.
    sdnotify::take_from_env();
    // The fence process needs no async runtime (and no idle worker threads).
    let command = match cli.command {
        Command::FenceWatchdog(args) => {
            return finish(fence::run_watchdog(args));
        }
        Command::Generate { what, dir } => return finish(generate::run(what, &dir)),
        other => other,
    };
    // One thread runs everything async: the HA loop, the lease keeper, the HTTP API
    // and the SQL connection. Every wake-up (a SQL answer, a timer, a store change)
    // then lands on the thread that handles it; with a worker thread beside the loop,
    // each one crossed between two threads and cost two. The keeper loses nothing by
    // sharing the thread: the loop's synchronous steps are file reads of microseconds,
    // and a leader's lease is only worth renewing while the loop confirms it to the
    // fence anyway. Blocking threads (the local store's writes) are kept a minute
    // between uses instead of being re-created.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .thread_keep_alive(Duration::from_secs(60))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgbaton: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Check {
        config,
        lag_warning,
        lag_critical,
        format,
    } = &command
    {
        let limits = cli::CheckLimits {
            warning: *lag_warning,
            critical: *lag_critical,
        };
        return ExitCode::from(runtime.block_on(cli::check(&config.config, limits, *format)));
    }
    finish(runtime.block_on(dispatch(command)))
}

/// Print the error, if any, and turn it into the documented exit code.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgbaton: {e:#}");
            let unreadable = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<pgbaton_config::ConfigError>(),
                    Some(pgbaton_config::ConfigError::Read { .. })
                )
            });
            if unreadable {
                eprintln!(
                    "pgbaton: the config file is -c FILE, else $PGBATON_CONFIG, else {}",
                    args::DEFAULT_CONFIG
                );
            }
            ExitCode::from(exit::classify(&e).code())
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    let secs = Duration::from_secs;
    match command {
        Command::Agent { config } => agent::run(&config.config).await,
        Command::CheckConfig { config, format } => cli::check_config(&config.config, format),
        Command::ShowConfig { config, format } => cli::show_config(&config.config, format).await,
        Command::EditConfig {
            config,
            set,
            format,
        } => cli::edit_config(&config.config, &set, format).await,
        Command::List { config, format } => cli::list(&config.config, format).await,
        Command::Dsn {
            config,
            role,
            dbname,
            user,
            format,
        } => {
            let ask = cli::DsnArgs {
                role,
                dbname,
                user,
                format,
            };
            cli::dsn(&config.config, &ask).await
        }
        Command::Remove { config, name } => cli::remove(&config.config, &name).await,
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
                timeout: secs(timeout),
            };
            cli::switchover(&config.config, args).await
        }
        Command::Failover {
            config,
            to,
            force,
            timeout,
        } => cli::failover(&config.config, &to, force, secs(timeout)).await,
        Command::Pause { config } => cli::set_paused(&config.config, true).await,
        Command::Resume { config } => cli::set_paused(&config.config, false).await,
        Command::History { config, format } => cli::history(&config.config, format).await,
        Command::Restart {
            config,
            name,
            timeout,
        } => cli::restart(&config.config, &name, secs(timeout)).await,
        Command::Reload { config, name } => cli::reload(&config.config, &name).await,
        Command::Reinit {
            config,
            name,
            force,
            timeout,
        } => cli::reinit(&config.config, &name, force, secs(timeout)).await,
        Command::Demo {
            dir,
            nodes,
            store,
            etcd_endpoints,
            writer,
        } => {
            let opts = demo::Options {
                dir,
                nodes,
                store,
                etcd_endpoints,
                writer,
            };
            // The demo is a foreground tool for people: every error it reports exits 2,
            // as before the exit codes were split.
            demo::run(&opts)
                .await
                .map_err(|e| exit::usage(format!("{e:#}")))
        }
        // Dispatched before the runtime starts.
        Command::Check { .. } | Command::Generate { .. } | Command::FenceWatchdog(_) => Ok(()),
    }
}
