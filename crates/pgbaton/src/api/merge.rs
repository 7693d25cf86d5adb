//! `PATCH /config` semantics: an RFC 7396 JSON merge patch applied to the cluster-wide
//! config, then typed and validated, all without touching the store.

use super::error::ApiError;
use pgbaton_core::model::ClusterConfig;
use serde_json::Value;

/// Apply `patch` to `target` per RFC 7396: objects merge key by key, `null` removes a
/// key (so it falls back to its default), anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in changes {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Parse a request body as a JSON object (the only shape a config patch may have).
pub fn parse_patch(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object of config keys, e.g. {\"loop_wait\": 2}",
        ));
    }
    Ok(value)
}

/// Merge `patch` into `current` and check the result: unknown keys, wrong types and
/// unsafe settings (see [`pgbaton_config::check_cluster_config_with_margin`], with this
/// member's `watchdog.safety_margin`) are a 400 that lists every problem.
pub fn patched_config(
    mut current: Value,
    patch: &Value,
    safety_margin: u64,
) -> Result<ClusterConfig, ApiError> {
    merge_patch(&mut current, patch);
    let config: ClusterConfig = serde_json::from_value(current).map_err(|e| {
        ApiError::bad_request(format!(
            "the patched config is not valid: {e}; see docs/configuration.md (bootstrap section) for the keys"
        ))
    })?;
    let problems = pgbaton_config::check_cluster_config_with_margin(&config, "", safety_margin);
    if !problems.is_empty() {
        return Err(ApiError::BadRequest {
            message: format!(
                "the patched config is not safe to use: {}",
                problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            problems: problems.into_iter().map(|p| p.message).collect(),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        serde_json::to_value(ClusterConfig::default()).unwrap()
    }

    #[test]
    fn merge_follows_rfc_7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut t,
            &json!({"a": null, "b": {"c": 5, "x": 1}, "e": [2, 3]}),
        );
        assert_eq!(t, json!({"b": {"c": 5, "d": 3, "x": 1}, "e": [2, 3]}));
    }

    #[test]
    fn a_good_patch_gives_the_typed_config() {
        let c = patched_config(
            base(),
            &json!({"loop_wait": 2, "parameters": {"work_mem": "8MB"}}),
            2,
        )
        .unwrap();
        assert_eq!(c.loop_wait, 2);
        assert_eq!(c.ttl, ClusterConfig::default().ttl);
        assert_eq!(c.parameters["work_mem"], json!("8MB"));
        // null resets to the default
        let c = patched_config(
            serde_json::to_value(&c).unwrap(),
            &json!({"loop_wait": null}),
            2,
        )
        .unwrap();
        assert_eq!(c.loop_wait, ClusterConfig::default().loop_wait);
    }

    #[test]
    fn unknown_keys_wrong_types_and_unsafe_timing_are_400() {
        let e = patched_config(base(), &json!({"loop_wiat": 2}), 2).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("loop_wiat"), "{e}");
        let e = patched_config(base(), &json!({"ttl": "ten"}), 2).unwrap_err();
        assert_eq!(e.status(), 400);
        let e = patched_config(
            base(),
            &json!({"ttl": 3, "loop_wait": 2, "retry_timeout": 2}),
            2,
        )
        .unwrap_err();
        assert_eq!(e.status(), 400);
        // The member's fencing margin counts: 1 + 2 + 3 > 5.
        let tight = json!({"ttl": 5, "loop_wait": 1, "retry_timeout": 2});
        assert!(patched_config(base(), &tight, 1).is_ok());
        let e = patched_config(base(), &tight, 3).unwrap_err();
        assert!(e.to_string().contains("safety_margin (3)"), "{e}");
        match e {
            ApiError::BadRequest { problems, .. } => {
                assert!(!problems.is_empty());
                assert!(problems[0].contains("ttl"), "{problems:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(parse_patch(b"{")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        assert!(parse_patch(b"[1]")
            .unwrap_err()
            .to_string()
            .contains("JSON object"));
        assert!(parse_patch(br#"{"ttl": 20}"#).is_ok());
    }
}
