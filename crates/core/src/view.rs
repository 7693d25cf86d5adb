//! Builds a [`ClusterView`] from the raw keys of a store snapshot.
//!
//! Bad values (a member key that is not valid JSON, say) are skipped and reported, so
//! that one broken key cannot stop every agent of the cluster.

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

/// Parse the snapshot. Returns the view and one message per key that could not be read.
pub fn cluster_view<'a>(
    entries: impl IntoIterator<Item = RawEntry<'a>>,
    fallback_config: &ClusterConfig,
) -> (ClusterView, Vec<String>) {
    let mut view = ClusterView {
        config: fallback_config.clone(),
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
                Ok(s) => {
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
            KEY_CONFIG => match serde_json::from_str::<ClusterConfig>(e.value) {
                Ok(c) => view.config = c,
                Err(err) => problems.push(bad("cluster config", err)),
            },
            key => {
                if let Some(name) = key.strip_prefix(MEMBERS_PREFIX) {
                    match serde_json::from_str::<MemberStatus>(e.value) {
                        Ok(m) if m.name == name => {
                            view.members.insert(name.to_string(), m);
                        }
                        Ok(m) => problems.push(format!(
                            "store key {key:?} describes member {:?}; ignored",
                            m.name
                        )),
                        Err(err) => problems.push(bad("member status", err)),
                    }
                }
            }
        }
    }
    (view, problems)
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
