//! Finds every unknown key in a config file in one pass, with its line and column.
//!
//! serde stops at the first unknown key and silently ignores unknown keys in sections
//! without `deny_unknown_fields` (e.g. `tags`, which lives in pgbaton-core). This pass
//! reads the file as a plain tree of mappings and checks every key against the field
//! lists of the config types, taken from their own `Deserialize` impls.

use crate::error::Problem;
use crate::types::{
    ApiConfig, ApiTls, Credentials, EtcdConfig, LogConfig, NodeConfig, PostgresConfig, StoreConfig,
    TlsConfig, WatchdogConfig,
};
use pgbaton_core::model::{ClusterConfig, Tags};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::cell::Cell;
use std::fmt;

/// The known keys of the mapping at dotted `path`; `None` for free-form sections
/// (e.g. `postgres.parameters`) and for values that are not mappings.
pub(crate) fn known_keys(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => fields_of::<NodeConfig>(),
        "store" => fields_of::<StoreConfig>(),
        "store.etcd" => fields_of::<EtcdConfig>(),
        "store.etcd.tls" => fields_of::<TlsConfig>(),
        "postgres" => fields_of::<PostgresConfig>(),
        "postgres.superuser" | "postgres.replication" | "postgres.rewind" | "api.auth" => {
            fields_of::<Credentials>()
        }
        "api" => fields_of::<ApiConfig>(),
        "api.tls" => fields_of::<ApiTls>(),
        "tags" => fields_of::<Tags>(),
        "bootstrap" => fields_of::<ClusterConfig>(),
        "log" => fields_of::<LogConfig>(),
        "watchdog" => fields_of::<WatchdogConfig>(),
        _ => return None,
    })
}

/// Checks every key of `text` against [`known_keys`]. Returns no problems when the text
/// is not even a YAML mapping: the typed parse reports that with a better message.
pub(crate) fn unknown_keys(text: &str) -> Vec<Problem> {
    let Ok(tree) = serde_saphyr::from_str::<Tree>(text) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    walk(&tree, "", &mut problems);
    problems
}

fn walk(tree: &Tree, path: &str, out: &mut Vec<Problem>) {
    let Tree::Map(entries) = tree else { return };
    let Some(known) = known_keys(path) else {
        return;
    };
    for (key, value) in entries {
        let full = if path.is_empty() {
            key.value.clone()
        } else {
            format!("{path}.{}", key.value)
        };
        if known.contains(&key.value.as_str()) {
            walk(value, &full, out);
            continue;
        }
        let mut msg = format!(
            "unknown key {full:?} (expected one of: {})",
            known.join(", ")
        );
        if let Some(near) = closest(&key.value, known) {
            msg.push_str(&format!("; did you mean {near:?}?"));
        }
        let mut problem = Problem::raw(full, msg);
        let loc = key.referenced;
        if loc.line() > 0 {
            problem = problem.with_location(loc.line() as usize, loc.column() as usize);
        }
        out.push(problem);
    }
}

/// The known key closest to a misspelt one, if it is close enough to be a likely typo.
fn closest(word: &str, known: &[&'static str]) -> Option<&'static str> {
    let limit = (word.len() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A YAML document reduced to what key checking needs: mappings with located keys.
enum Tree {
    Map(Vec<(Spanned<String>, Tree)>),
    Other,
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

macro_rules! scalar_other {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $ty) -> Result<Tree, E> { Ok(Tree::Other) })*
    };
}

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    scalar_other!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64,
        visit_i128: i128, visit_u128: u128, visit_str: &str, visit_bytes: &[u8]);

    fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        Tree::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Tree::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Tree>()?;
            entries.push((key, value));
        }
        Ok(Tree::Map(entries))
    }
}

/// The field names a derived `Deserialize` passes to `deserialize_struct`.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let probe = FieldProbe {
        fields: Cell::new(&[]),
    };
    // The probe always fails on purpose, after recording the field list.
    let _ = T::deserialize(&probe);
    probe.fields.get()
}

struct FieldProbe {
    fields: Cell<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for &FieldProbe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.fields.set(fields);
        Err(de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_the_types() {
        assert_eq!(
            known_keys("postgres.superuser"),
            Some(&["username", "password"][..])
        );
        let top = known_keys("").unwrap_or_default();
        assert!(top.contains(&"bootstrap") && top.contains(&"postgres"));
        assert!(known_keys("tags")
            .unwrap_or_default()
            .contains(&"nofailover"));
        assert!(known_keys("bootstrap").unwrap_or_default().contains(&"ttl"));
        assert_eq!(known_keys("postgres.parameters"), None);
    }

    #[test]
    fn finds_all_unknown_keys_with_locations() {
        let text = "cluster: a\npostgress: {}\ntags:\n  nofailvoer: true\npostgres:\n  parameters: {anything: 1}\n  superuser: {usrname: x}\n";
        let problems = unknown_keys(text);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["postgress", "tags.nofailvoer", "postgres.superuser.usrname"]
        );
        assert_eq!(problems[0].location, Some((2, 1)));
        assert_eq!(problems[1].location, Some((4, 3)));
        assert!(problems[1].message.contains("did you mean \"nofailover\"?"));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("postgress", "postgres"), 1);
        assert_eq!(edit_distance("usrname", "username"), 1);
        assert_eq!(edit_distance("abc", "xyz"), 3);
        assert_eq!(closest("zzz", &["cluster"]), None);
    }
}
