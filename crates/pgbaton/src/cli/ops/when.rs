//! When a scheduled switchover should happen: `+5m` or RFC 3339 on the command line,
//! RFC 3339 with an explicit time zone over HTTP.

use super::{now_ms, RequestError};
use std::time::{Duration, UNIX_EPOCH};

/// `--at`: an RFC 3339 time (`2026-11-25T21:00:00Z`, UTC when no zone is given) or a
/// delay from now (`+30s`, `+5m`). Returns milliseconds since the Unix epoch.
pub fn parse_at(at: &str) -> Result<u64, RequestError> {
    if let Some(rel) = at.strip_prefix('+') {
        let d = humantime::parse_duration(rel).map_err(|e| {
            RequestError::Invalid(format!("--at {at:?}: expected e.g. +30s or +5m ({e})"))
        })?;
        return Ok(now_ms() + d.as_millis() as u64);
    }
    if let Ok(ms) = parse_rfc3339(at) {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(at).map_err(|e| {
        RequestError::Invalid(format!(
            "--at {at:?}: expected e.g. 2026-11-25T21:00:00Z or +5m ({e})"
        ))
    })?;
    Ok(epoch_ms(t))
}

/// An RFC 3339 time with an explicit zone: `Z` or an offset such as `+01:00`
/// (`2026-11-25T21:00:00Z`, `2026-11-25T22:00:00.5+01:00`). Returns milliseconds since
/// the Unix epoch; the error says what was expected.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not an RFC 3339 time with a time zone; write e.g. 2026-11-25T21:00:00Z or 2026-11-25T22:00:00+01:00"
        )
    };
    let t = text.trim();
    let (local, offset_s): (&str, i64) = if let Some(l) = t.strip_suffix(['Z', 'z']) {
        (l, 0)
    } else {
        // The offset is the last '+' or '-' after the time part (the date has '-' too).
        let tpos = t.find(['T', 't', ' ']).ok_or_else(bad)?;
        let rel = t[tpos..].rfind(['+', '-']).ok_or_else(bad)?;
        let (l, off) = t.split_at(tpos + rel);
        (l, parse_offset(off).ok_or_else(bad)?)
    };
    let utc = humantime::parse_rfc3339_weak(local).map_err(|_| bad())?;
    let ms = epoch_ms(utc) as i64 - offset_s * 1000;
    u64::try_from(ms).map_err(|_| bad())
}

/// `+HH:MM`, `-HH:MM` or `+HHMM` in seconds east of UTC.
fn parse_offset(off: &str) -> Option<i64> {
    let sign = match off.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// `ms` since the Unix epoch as RFC 3339 in UTC, to the second.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn epoch_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
