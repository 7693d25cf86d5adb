//! Reading a config file: YAML text to a validated [`NodeConfig`], or every problem found.

use crate::error::{ConfigError, Problem};
use crate::keys::unknown_keys;
use crate::types::NodeConfig;
use serde_saphyr::{Error as YamlError, MessageFormatter, UserMessageFormatter};
use std::path::Path;

/// Reads, parses and validates the config file at `path`.
///
/// Nothing else is touched. Error messages start with `path` as given.
pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        origin: origin.clone(),
        error,
    })?;
    parse(&text, &origin)
}

/// Parses and validates config `text`; `origin` (usually the file name) starts every
/// error line.
///
/// Reports every unknown key, then the first structural error (missing key, wrong
/// type, YAML syntax), or else every validation problem.
pub fn parse(text: &str, origin: &str) -> Result<NodeConfig, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        origin: origin.to_string(),
        problems,
    };
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
    {
        return Err(invalid(vec![Problem::raw(
            "",
            "the file is empty; see docs/configuration.md for an example",
        )]));
    }
    let mut problems = unknown_keys(text);
    let mut path = String::new();
    let typed: Result<NodeConfig, YamlError> =
        serde_saphyr::with_deserializer_from_str(text, |d| {
            serde_path_to_error::deserialize(d).map_err(|e| {
                path = dotted(e.path());
                e.into_inner()
            })
        });
    match typed {
        Ok(cfg) => {
            problems.extend(cfg.problems());
            if problems.is_empty() {
                Ok(cfg)
            } else {
                Err(invalid(problems))
            }
        }
        Err(e) => {
            let p = yaml_problem(&e, &path);
            // An unknown key the tree pass already reported is not repeated.
            if !problems
                .iter()
                .any(|q| q.key == p.key && q.message.starts_with("unknown key"))
            {
                problems.push(p);
            }
            Err(invalid(problems))
        }
    }
}

fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Strips serde-saphyr's wrappers (snippet, alias) down to the error itself.
fn original(mut e: &YamlError) -> &YamlError {
    loop {
        match e.without_snippet() {
            YamlError::AliasError { error, .. } => e = error,
            other => return other,
        }
    }
}

/// One typed-parse error as a problem naming the key and the fix.
fn yaml_problem(err: &YamlError, path: &str) -> Problem {
    let e = original(err);
    let join = |field: &str| {
        if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    let problem = match e {
        YamlError::SerdeMissingField { field, .. } => {
            let key = join(field);
            return Problem::raw(
                key.clone(),
                format!("missing required key {key:?}; see docs/configuration.md"),
            );
        }
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let key = if path.ends_with(field.as_str()) {
                path.to_string()
            } else {
                join(field)
            };
            Problem::raw(
                key.clone(),
                format!(
                    "unknown key {key:?} (expected one of: {})",
                    expected.join(", ")
                ),
            )
        }
        YamlError::DuplicateMappingKey { key, .. } => {
            let name = key.clone().unwrap_or_default();
            Problem::raw(
                join(&name),
                format!("duplicate key {:?}; keep only one of them", join(&name)),
            )
        }
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => Problem::at(
            path,
            format!("expected {expected}, found {unexpected}; see docs/configuration.md"),
        ),
        YamlError::InvalidScalar { ty, .. } => Problem::at(
            path,
            format!("is not {}; see docs/configuration.md", friendly_type(ty)),
        ),
        YamlError::Unexpected { .. } if path.is_empty() => Problem::raw(
            "",
            "the file must be a mapping of keys (cluster: ..., name: ..., ...), not a list or a single value",
        ),
        YamlError::Unexpected { expected, .. } => Problem::at(
            path,
            format!(
                "expected {}; see docs/configuration.md",
                friendly_expected(expected)
            ),
        ),
        YamlError::ExternalMessage { .. } | YamlError::Eof { .. } => Problem::raw(
            "",
            format!(
                "YAML syntax error: {}; check the quotes, brackets and indentation here",
                message_text(e)
            ),
        ),
        _ => {
            let text = message_text(e);
            if path.is_empty() {
                Problem::raw("", format!("{text}; fix the YAML at this position"))
            } else {
                Problem::at(path, format!("{text}; see docs/configuration.md"))
            }
        }
    };
    match e.location() {
        Some(loc) if loc.line() > 0 => {
            problem.with_location(loc.line() as usize, loc.column() as usize)
        }
        _ => problem,
    }
}

fn message_text(e: &YamlError) -> String {
    UserMessageFormatter
        .format_message(e)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What a Rust scalar type means to someone writing YAML.
fn friendly_type(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".to_string(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "bool" | "boolean" => "true or false".to_string(),
        "char" => "a single character".to_string(),
        other => format!("a valid {other}"),
    }
}

/// What serde-saphyr's structural expectation means to someone writing YAML.
fn friendly_expected(expected: &str) -> String {
    if expected.contains("mapping") {
        "a mapping (key: value lines, or {key: value, ...})".to_string()
    } else if expected.contains("sequence") {
        "a list (- item lines, or [a, b])".to_string()
    } else if expected.contains("scalar") {
        "a single value, not a list or mapping".to_string()
    } else {
        expected.to_string()
    }
}
