//! Builds a [`ClusterView`] from the raw keys of a store snapshot.
//!
//! The store is untrusted input: anyone with write access to it can put anything
//! there. Bad values (a member key that is not valid JSON, a host pg_hba.conf cannot
//! hold, a ttl that would overflow) are skipped and reported, so that one broken key
//! cannot stop every agent of the cluster. A bad `config` key never reverts the cluster
//! to a file's `bootstrap` section: the caller's last good config stays in force and the
//! problem is reported in [`ClusterView::config_error`].

use crate::limits::{
    check_host, check_member, check_name, config_problems, is_parameter_name, is_restricted,
};
use crate::model::{
    ClusterConfig, HistoryEntry, Initialize, MemberStatus, PrimaryStatus, SwitchoverRequest,
    SyncState, KEY_CONFIG, KEY_HISTORY, KEY_INITIALIZE, KEY_LEADER, KEY_STATUS, KEY_SWITCHOVER,
    KEY_SYNC, MEMBERS_PREFIX,
};
use crate::observation::ClusterView;

/// One raw key of the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct RawEntry<'a> {
    /// Key relative to the cluster namespace.
    pub key: &'a str,
    /// Its value.
    pub value: &'a str,
    /// Its mod revision.
    pub mod_revision: i64,
    /// Its lease, if attached to one.
    pub lease: Option<i64>,
}

/// Parse the snapshot. Returns the view and one message per key that could not be read
/// (or was read only in part). `last_good_config` is what `config` becomes when the
/// store's `config` key is missing or unusable: pass the config the agent runs with.
pub fn cluster_view<'a>(
    entries: impl IntoIterator<Item = RawEntry<'a>>,
    last_good_config: &ClusterConfig,
) -> (ClusterView, Vec<String>) {
    let mut view = ClusterView {
        config: last_good_config.clone(),
        ..ClusterView::default()
    };
    let mut problems = Vec::new();
    for e in entries {
        let bad = |what: &str, err: serde_json::Error| {
            format!("store key {:?} holds an unreadable {what}: {err}", e.key)
        };
        match e.key {
            KEY_INITIALIZE => match serde_json::from_str::<Initialize>(e.value) {
                Ok(i) => view.initialize = Some((i, e.mod_revision)),
                Err(err) => problems.push(bad("bootstrap claim", err)),
            },
            KEY_LEADER => {
                view.leader = Some(e.value.to_string());
                view.leader_lease = e.lease;
            }
            KEY_STATUS => match serde_json::from_str::<PrimaryStatus>(e.value) {
                Ok(mut s) => {
                    // These hosts end up in pg_hba.conf: keep only real hosts.
                    s.hosts.retain(|name, host| {
                        let ok = check_name(name).is_ok() && check_host(host).is_ok();
                        if !ok {
                            problems.push(format!(
                                "store key \"status\" names host {host:?} for member {name:?}, which is not a usable host; ignored"
                            ));
                        }
                        ok
                    });
                    view.status = Some(s);
                    view.status_revision = Some(e.mod_revision);
                }
                Err(err) => problems.push(bad("primary status", err)),
            },
            KEY_SWITCHOVER => match serde_json::from_str::<SwitchoverRequest>(e.value) {
                Ok(r) => view.switchover = Some((r, e.mod_revision)),
                Err(err) => problems.push(bad("switchover request", err)),
            },
            KEY_HISTORY => match serde_json::from_str::<Vec<HistoryEntry>>(e.value) {
                Ok(h) => view.history = h,
                Err(err) => problems.push(bad("history", err)),
            },
            KEY_SYNC => match serde_json::from_str::<SyncState>(e.value) {
                Ok(s) => view.sync = Some((s, e.mod_revision)),
                Err(err) => problems.push(bad("synchronous-standby set", err)),
            },
            KEY_CONFIG => match read_config(e.value) {
                Ok((c, warnings)) => {
                    view.config = c;
                    problems.extend(
                        warnings
                            .into_iter()
                            .map(|w| format!("store key \"config\": {w}")),
                    );
                }
                Err(err) => {
                    let msg = format!(
                        "store key \"config\" is unusable ({err}); keeping the last good cluster config; fix it with pgbaton edit-config"
                    );
                    problems.push(msg.clone());
                    view.config_error = Some(msg);
                }
            },
            key => {
                if let Some(name) = key.strip_prefix(MEMBERS_PREFIX) {
                    match serde_json::from_str::<MemberStatus>(e.value) {
                        Ok(m) => match check_member(name, &m) {
                            Ok(()) => {
                                view.members.insert(name.to_string(), m);
                            }
                            Err(why) => problems.push(format!(
                                "store key {key:?} is not a usable member status ({why}); ignored"
                            )),
                        },
                        Err(err) => problems.push(bad("member status", err)),
                    }
                }
            }
        }
    }
    (view, problems)
}

/// Reads the store's `config` value: unknown fields and parameters that may not come
/// from the store (restricted, badly named, not scalar) are dropped with a warning
/// each; a value that is not a JSON object, has a wrongly typed field or breaks a bound
/// is an error (the caller keeps its last good config).
pub fn read_config(text: &str) -> Result<(ClusterConfig, Vec<String>), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err("not a JSON object".into());
    };
    let mut warnings = Vec::new();
    let known = match serde_json::to_value(ClusterConfig::default()) {
        Ok(serde_json::Value::Object(k)) => k,
        _ => serde_json::Map::new(),
    };
    map.retain(|k, _| {
        let keep = known.contains_key(k);
        if !keep {
            warnings.push(format!("unknown field {k:?} ignored"));
        }
        keep
    });
    if let Some(serde_json::Value::Object(params)) = map.get_mut("parameters") {
        params.retain(|name, v| {
            let why = if is_restricted(name) {
                Some(crate::limits::restricted_message(name))
            } else if !is_parameter_name(name) {
                Some("not a PostgreSQL setting name".to_string())
            } else if v.is_object() || v.is_array() || v.is_null() {
                Some("not a string, number or boolean".to_string())
            } else {
                None
            };
            if let Some(why) = &why {
                warnings.push(format!("parameter {name:?} not applied: {why}"));
            }
            why.is_none()
        });
    }
    let config: ClusterConfig = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| format!("a field has the wrong type: {e}"))?;
    let bounds = config_problems(&config);
    if !bounds.is_empty() {
        let text: Vec<String> = bounds.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        return Err(text.join("; "));
    }
    Ok((config, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_reports_bad_ones() {
        let init = r#"{"owner":"a","system_identifier":"42"}"#;
        let entries = [
            RawEntry {
                key: "initialize",
                value: init,
                mod_revision: 3,
                lease: None,
            },
            RawEntry {
                key: "leader",
                value: "a",
                mod_revision: 4,
                lease: Some(9),
            },
            RawEntry {
                key: "members/b",
                value: "{not json",
                mod_revision: 5,
                lease: Some(1),
            },
        ];
        let (view, problems) = cluster_view(entries, &ClusterConfig::default());
        assert_eq!(view.leader.as_deref(), Some("a"));
        assert_eq!(view.leader_lease, Some(9));
        assert_eq!(
            view.initialize
                .as_ref()
                .map(|(i, r)| (i.owner.as_str(), *r)),
            Some(("a", 3))
        );
        assert!(view.members.is_empty());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("members/b"));
    }
}
