//! Turning etcd key-values into store entries. An entry under the cluster prefix whose
//! key or value is not UTF-8 was not written by pgbaton: it is skipped, so that one
//! stray `etcdctl put` cannot make every member's snapshot fail (and fence the
//! primary), and reported once per key and write instead of on every read.

use super::proto::KeyValue;
use crate::{Entry, LeaseId};
use std::collections::HashMap;
use std::sync::Mutex;

/// The undecodable entries already reported, by full key, with the mod revision seen.
#[derive(Default)]
pub(crate) struct Skipped {
    reported: Mutex<HashMap<Vec<u8>, i64>>,
}

impl Skipped {
    /// Decode the entries of one read under `namespace`. `complete` says the read
    /// covered the whole namespace, so entries no longer present are forgotten (and
    /// reported again if they come back). Keys outside `namespace` are skipped too.
    pub(crate) fn decode(&self, namespace: &str, kvs: Vec<KeyValue>, complete: bool) -> Vec<Entry> {
        let mut entries = Vec::with_capacity(kvs.len());
        let mut bad = Vec::new();
        for kv in kvs {
            match entry(namespace, &kv) {
                Ok(e) => entries.push(e),
                Err(why) => bad.push((kv, why)),
            }
        }
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        if complete {
            reported.retain(|key, _| bad.iter().any(|(kv, _)| kv.key == *key));
        }
        for (kv, why) in bad {
            if reported.get(&kv.key) != Some(&kv.mod_revision) {
                tracing::warn!(
                    "ignoring etcd key $'{key}' (written at revision {}): {why}; pgbaton never \
                     writes such an entry: unless another program owns it, delete it with \
                     `etcdctl del $'{key}'`",
                    kv.mod_revision,
                    key = kv.key.escape_ascii(),
                );
                reported.insert(kv.key, kv.mod_revision);
            }
        }
        entries
    }
}

/// The store entry of `kv`, or why it cannot be one.
fn entry(namespace: &str, kv: &KeyValue) -> Result<Entry, &'static str> {
    let key = std::str::from_utf8(&kv.key).map_err(|_| "its key is not UTF-8")?;
    let rel = key
        .strip_prefix(namespace)
        .filter(|r| !r.is_empty())
        .ok_or("it is outside the cluster's namespace")?;
    let value = std::str::from_utf8(&kv.value).map_err(|_| "its value is not UTF-8")?;
    Ok(Entry {
        key: rel.to_string(),
        value: value.to_string(),
        mod_revision: kv.mod_revision,
        lease: (kv.lease != 0).then_some(LeaseId(kv.lease)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &[u8], value: &[u8], rev: i64) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            mod_revision: rev,
            lease: 0,
        }
    }

    #[test]
    fn bad_entries_are_skipped_and_remembered_until_they_go() {
        let s = Skipped::default();
        let ns = "/pgbaton/main/";
        let read = |rev| {
            vec![
                kv(b"/pgbaton/main/leader", b"n1", 1),
                kv(b"/pgbaton/main/junk", b"\xff", rev),
                kv(b"/pgbaton/main/bad\xfe", b"{}", 3),
            ]
        };
        let got = s.decode(ns, read(2), true);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].key.as_str(), got[0].value.as_str()),
            ("leader", "n1")
        );
        assert_eq!(s.reported.lock().unwrap().len(), 2);
        // A rewrite of the junk is a new entry to report; a read without it forgets it.
        s.decode(ns, read(5), true);
        assert_eq!(
            s.reported.lock().unwrap()[&b"/pgbaton/main/junk".to_vec()],
            5
        );
        s.decode(ns, vec![kv(b"/pgbaton/main/bad\xfe", b"{}", 3)], true);
        assert_eq!(s.reported.lock().unwrap().len(), 1);
        // A partial read (one key) adds, never forgets.
        s.decode(ns, vec![kv(b"/pgbaton/main/junk", b"\xff", 6)], false);
        assert_eq!(s.reported.lock().unwrap().len(), 2);
    }
}
