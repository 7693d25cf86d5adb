//! The cluster-wide config (the store's `config` key) as people read and edit it:
//! YAML, flat `key: value` lines for a diff, and `--set key=value` edits.

use pgbaton_core::model::ClusterConfig;
use serde_json::{Map, Value};

/// The config as YAML, keys in their documented order.
pub fn to_yaml(c: &ClusterConfig) -> Result<String, String> {
    serde_saphyr::to_string(c).map_err(|e| format!("cannot render the config as YAML: {e}"))
}

/// Every setting as `(key, value)`, `parameters.NAME` for each PostgreSQL parameter, in
/// the documented order. Values are JSON text (`10`, `true`, `"8MB"`).
pub fn flatten(c: &ClusterConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(Value::Object(map)) = serde_json::to_value(c) else {
        return out;
    };
    for (key, value) in map {
        match (key.as_str(), value) {
            ("parameters", Value::Object(params)) => {
                for (name, v) in params {
                    out.push((format!("parameters.{name}"), v.to_string()));
                }
            }
            (_, v) => out.push((key, v.to_string())),
        }
    }
    out
}

/// The lines that differ between `old` and `new`: `-key: old` then `+key: new`.
pub fn diff(old: &ClusterConfig, new: &ClusterConfig) -> Vec<String> {
    let (a, b) = (flatten(old), flatten(new));
    let find = |list: &[(String, String)], k: &str| {
        list.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let mut keys: Vec<String> = a.iter().map(|(k, _)| k.clone()).collect();
    for (k, _) in &b {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    let mut out = Vec::new();
    for k in keys {
        let (before, after) = (find(&a, &k), find(&b, &k));
        if before == after {
            continue;
        }
        if let Some(v) = before {
            out.push(format!("-{k}: {v}"));
        }
        if let Some(v) = after {
            out.push(format!("+{k}: {v}"));
        }
    }
    out
}

/// The keys `--set` accepts at the top level (the fields of [`ClusterConfig`]).
pub fn known_keys() -> Vec<String> {
    match serde_json::to_value(ClusterConfig::default()) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// One `--set KEY=VALUE`, checked: the key exists (`parameters.NAME` for PostgreSQL
/// settings) and the value has the key's type. `VALUE` is read as JSON when it is
/// (numbers, `true`, `"text"`), otherwise as text; `null` resets the key to its default.
/// Returns the merge patch for it, or a message naming the `--set` and the fix.
pub fn parse_set(arg: &str) -> Result<Value, String> {
    let Some((key, raw)) = arg.split_once('=') else {
        return Err(format!(
            "--set {arg:?}: expected KEY=VALUE, e.g. --set loop_wait=2 or --set parameters.work_mem=8MB"
        ));
    };
    let key = key.trim();
    let value: Value =
        serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.to_string()));
    let path: Vec<&str> = key.split('.').collect();
    let known = known_keys();
    let patch = match path.as_slice() {
        ["parameters", name] if !name.is_empty() => {
            let mut params = Map::new();
            params.insert(name.to_string(), value.clone());
            let mut m = Map::new();
            m.insert("parameters".into(), Value::Object(params));
            Value::Object(m)
        }
        [top] if known.iter().any(|k| k == top) && *top != "parameters" => {
            let mut m = Map::new();
            m.insert(top.to_string(), value.clone());
            Value::Object(m)
        }
        _ => {
            let hint = closest(key, &known)
                .map(|k| format!("did you mean {k:?}? "))
                .unwrap_or_default();
            return Err(format!(
                "--set {arg}: unknown key {key:?}; {hint}the keys are: {}, and parameters.NAME for PostgreSQL settings (see docs/configuration.md)",
                known.iter().filter(|k| *k != "parameters").cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    };
    // The type check: this one edit on the defaults must still be a config.
    let mut probe = serde_json::to_value(ClusterConfig::default()).map_err(|e| e.to_string())?;
    crate::api::merge_patch(&mut probe, &patch);
    if let Err(e) = serde_json::from_value::<ClusterConfig>(probe) {
        return Err(format!(
            "--set {arg}: {key} cannot be {}: {e}; see docs/configuration.md for its type",
            value
        ));
    }
    Ok(patch)
}

/// The known key closest to `key` (a typo within two edits), if any.
fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a String> {
    known
        .iter()
        .map(|k| (edits(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_are_checked_and_become_patches() {
        assert_eq!(parse_set("loop_wait=2"), Ok(json!({"loop_wait": 2})));
        assert_eq!(parse_set("paused=true"), Ok(json!({"paused": true})));
        assert_eq!(parse_set("ttl=null"), Ok(json!({"ttl": null})));
        assert_eq!(
            parse_set("parameters.work_mem=8MB"),
            Ok(json!({"parameters": {"work_mem": "8MB"}}))
        );
        let e = parse_set("loop_wiat=2").unwrap_err();
        assert!(
            e.contains("unknown key \"loop_wiat\"") && e.contains("did you mean \"loop_wait\""),
            "{e}"
        );
        let e = parse_set("ttl=ten").unwrap_err();
        assert!(e.contains("--set ttl=ten: ttl cannot be \"ten\""), "{e}");
        assert!(parse_set("ttl").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_set("parameters=1").is_err());
        assert!(parse_set("parameters.a.b=1").is_err());
    }

    #[test]
    fn diffs_and_yaml() {
        let old = ClusterConfig::default();
        let mut new = old.clone();
        new.loop_wait = 2;
        new.parameters.insert("work_mem".into(), json!("8MB"));
        assert_eq!(
            diff(&old, &new),
            vec![
                "-loop_wait: 1",
                "+loop_wait: 2",
                "+parameters.work_mem: \"8MB\""
            ]
        );
        assert!(diff(&old, &old).is_empty());
        let yaml = to_yaml(&new).expect("yaml");
        assert!(
            yaml.contains("loop_wait: 2") && yaml.contains("work_mem: 8MB"),
            "{yaml}"
        );
    }
}
