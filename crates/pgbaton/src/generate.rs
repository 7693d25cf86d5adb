//! `pgbaton generate man|completions DIR` (hidden): man pages and shell completions made
//! from the command-line definitions, for packaging (`scripts/package.sh`).

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// One man page per command: pgbaton.1, pgbaton-list.1, ...
    Man,
    /// Completions for bash (pgbaton.bash), zsh (_pgbaton) and fish (pgbaton.fish).
    Completions,
}

/// Write `what` into `dir`, creating it if needed.
pub fn run(what: What, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = crate::args::Cli::command();
    match what {
        What::Man => clap_mangen::generate_to(cmd, dir)
            .with_context(|| format!("writing man pages into {}", dir.display()))?,
        What::Completions => {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let mut cmd = cmd.clone();
                clap_complete::generate_to(shell, &mut cmd, "pgbaton", dir).with_context(|| {
                    format!("writing {shell} completions into {}", dir.display())
                })?;
            }
        }
    }
    Ok(())
}
