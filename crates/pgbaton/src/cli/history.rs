//! `pgbaton history`: every promotion, with its timeline, switch point and reason.

use super::list::Format;
use pgbaton_core::model::{HistoryEntry, KEY_HISTORY};
use std::path::Path;

/// Print the history as a table or JSON.
pub async fn history(config: &Path, format: Format) -> anyhow::Result<()> {
    let (_, store) = super::open(config).await?;
    let entries: Vec<HistoryEntry> = match store.get(KEY_HISTORY).await? {
        Some(e) => serde_json::from_str(&e.value)?,
        None => Vec::new(),
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        Format::Table => {
            println!(
                "{:<4} {:<12} {:<24} {:<10} {:<10} Reason",
                "TL", "Switch LSN", "Time (UTC)", "Old", "New"
            );
            for h in &entries {
                let time = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(h.time_ms),
                );
                println!(
                    "{:<4} {:<12} {:<24} {:<10} {:<10} {}",
                    h.timeline,
                    h.switch_lsn
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "-".into()),
                    time.to_string(),
                    h.old_primary.as_deref().unwrap_or("-"),
                    h.new_primary,
                    h.reason
                );
            }
        }
    }
    Ok(())
}
