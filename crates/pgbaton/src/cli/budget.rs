//! The "failover budget" `pgbaton check-config` prints: what the timing settings mean
//! for detection, fencing and failover, in plain sentences.

use pgbaton_core::model::ClusterConfig;

/// Roughly how long a promotion takes once a member has the leader key (pg_promote and
/// the first write), in seconds.
const PROMOTION_S: f64 = 0.5;

/// The budget of `c` for a member whose fence fires `safety_margin` seconds before its
/// lease can expire, one sentence per line. Meant for a config that passed validation
/// (for others the slack line says the timing is unsafe).
pub fn budget(c: &ClusterConfig, safety_margin: u64) -> Vec<String> {
    let ttl = c.ttl as f64;
    let renew = ttl / 4.0;
    let fence = c.ttl.saturating_sub(safety_margin);
    let grace = c.failover_grace.max(1);
    let gap = renew.max(c.loop_wait as f64) + c.retry_timeout as f64;
    let slack = fence as f64 - gap;
    let mut out = vec![
        format!(
            "Failover budget (ttl {} s, loop_wait {} s, retry_timeout {} s, watchdog.safety_margin {safety_margin} s, failover_grace {grace} s, primary_start_timeout {} s):",
            c.ttl, c.loop_wait, c.retry_timeout, c.primary_start_timeout
        ),
        format!(
            "  Detection: the primary renews its lease every {} s. If its host dies, its leader key expires at most {} s after the last renewal, so {}-{} s after the crash; the replicas are woken the moment it expires.",
            secs(renew),
            c.ttl,
            secs(ttl - renew),
            c.ttl
        ),
        format!(
            "  Fencing: a primary that cannot renew (store down, agent hung or frozen) stops PostgreSQL {fence} s after its last renewal (ttl - safety_margin), {safety_margin} s before its key can expire and another member can be promoted."
        ),
    ];
    out.push(if slack >= 0.0 {
        format!(
            "  Slack: a healthy primary renews every {} s and confirms its leadership every {} s, and each store call may take up to {} s; that leaves {} s to spare before its fence ({fence} s after the older of the two) could stop it.",
            secs(renew),
            c.loop_wait,
            c.retry_timeout,
            secs(slack)
        )
    } else {
        format!(
            "  Slack: NONE: a store call of {} s would fence a healthy primary; raise ttl to at least {}.",
            c.retry_timeout,
            pgbaton_config::min_safe_ttl(c.loop_wait, c.retry_timeout, safety_margin)
        )
    });
    out.push(format!(
        "  Failover after a node crash: about {} s at worst (ttl + ~{} s to promote) when the best replica takes over; each better-ranked replica that does not take the key adds failover_grace ({grace} s): with N replicas at most ttl + (N-1) x {grace} + {} s (2 replicas: {} s).",
        secs(ttl + PROMOTION_S),
        secs(PROMOTION_S),
        secs(PROMOTION_S),
        secs(ttl + grace as f64 + PROMOTION_S)
    ));
    out.push(format!(
        "  Killed postmaster, agent alive: noticed within loop_wait ({} s) and restarted in place within primary_start_timeout ({} s); if it is not up by then, the leader key is released at once and a replica promotes: at most about {} s without writes.",
        c.loop_wait,
        c.primary_start_timeout,
        secs(c.loop_wait as f64 + c.primary_start_timeout as f64 + PROMOTION_S)
    ));
    out
}

/// Below this many seconds of slack, `check-config` warns: a store call only slightly
/// slower than retry_timeout, or a loop that runs a little late, would fence a healthy
/// primary.
pub const MIN_SLACK_S: f64 = 1.0;

/// Seconds a healthy primary has to spare before its own fence could stop it: the fence
/// fires `ttl - safety_margin` after the last renewal, and the next renewal comes after
/// the longer of the renew period (ttl / 4) and loop_wait, plus one store call of up to
/// retry_timeout.
fn slack_s(ttl: u64, loop_wait: u64, retry_timeout: u64, safety_margin: u64) -> f64 {
    let fence = ttl.saturating_sub(safety_margin) as f64;
    fence - ((ttl as f64 / 4.0).max(loop_wait as f64) + retry_timeout as f64)
}

/// Warnings about timing that validation accepts but that leaves less than
/// [`MIN_SLACK_S`] before a healthy primary could be fenced, each naming the fix.
pub fn warnings(c: &ClusterConfig, safety_margin: u64) -> Vec<String> {
    let slack = slack_s(c.ttl, c.loop_wait, c.retry_timeout, safety_margin);
    if slack >= MIN_SLACK_S {
        return Vec::new();
    }
    let ttl_ok = (c.ttl..c.ttl.saturating_add(1000))
        .find(|&t| slack_s(t, c.loop_wait, c.retry_timeout, safety_margin) >= MIN_SLACK_S)
        .unwrap_or(c.ttl);
    let spare = if slack <= 0.0 {
        "no time".to_string()
    } else {
        format!("only {} s", secs(slack))
    };
    vec![format!(
        "bootstrap timing (ttl {} s, loop_wait {} s, retry_timeout {} s, watchdog.safety_margin {safety_margin} s) leaves {spare} to spare before a healthy primary could be fenced: one store call slower than retry_timeout, or a loop that runs late, stops PostgreSQL on a healthy primary; raise bootstrap.ttl to at least {ttl_ok} (or lower retry_timeout or loop_wait)",
        c.ttl, c.loop_wait, c.retry_timeout
    )]
}

/// Seconds with at most two decimals, without trailing zeros (`2.5`, `10`).
fn secs(s: f64) -> String {
    let t = format!("{s:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_in_plain_words() {
        let lines = budget(&ClusterConfig::default(), 2);
        let text = lines.join("\n");
        for needle in [
            "ttl 10 s, loop_wait 1 s, retry_timeout 3 s, watchdog.safety_margin 2 s",
            "renews its lease every 2.5 s",
            "at most 10 s after the last renewal, so 7.5-10 s after the crash",
            "stops PostgreSQL 8 s after its last renewal",
            "2 s before its key can expire",
            "leaves 2.5 s to spare",
            "about 10.5 s at worst",
            "(2 replicas: 12.5 s)",
            "within primary_start_timeout (5 s)",
            "at most about 6.5 s without writes",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
    }

    #[test]
    fn warns_when_the_timing_leaves_less_than_a_second_of_slack() {
        let t = |ttl, loop_wait, retry_timeout| ClusterConfig {
            ttl,
            loop_wait,
            retry_timeout,
            ..ClusterConfig::default()
        };
        // (timing, safety_margin) → the warning says this, or no warning at all.
        let cases: Vec<(ClusterConfig, u64, Option<&str>)> = vec![
            (ClusterConfig::default(), 2, None),
            (t(3, 1, 1), 1, Some("leaves no time to spare")),
            (t(4, 1, 1), 1, None),
            (t(6, 1, 3), 1, Some("leaves only 0.5 s to spare")),
            (t(5, 1, 3), 1, Some("raise bootstrap.ttl to at least 7")),
            (t(30, 10, 10), 5, None),
        ];
        for (c, margin, want) in cases {
            let w = warnings(&c, margin);
            match want {
                None => assert!(w.is_empty(), "ttl {} margin {margin}: {w:?}", c.ttl),
                Some(needle) => {
                    assert_eq!(w.len(), 1, "ttl {} margin {margin}: {w:?}", c.ttl);
                    assert!(w[0].contains(needle), "{needle:?} not in {w:?}");
                }
            }
        }
    }

    #[test]
    fn unsafe_timing_has_no_slack() {
        let c = ClusterConfig {
            ttl: 5,
            loop_wait: 2,
            retry_timeout: 3,
            ..ClusterConfig::default()
        };
        let text = budget(&c, 2).join("\n");
        assert!(
            text.contains("Slack: NONE") && text.contains("at least 7"),
            "{text}"
        );
    }
}
