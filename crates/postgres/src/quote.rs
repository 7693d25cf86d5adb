//! Quoting for every text format we write: postgresql.conf values, libpq conninfo, .pgpass, SQL.
//!
//! All functions are pure so they can be tested on nasty inputs.

use crate::error::{Error, Result};

/// Formats a value for `postgresql.conf` syntax: always single-quoted, `'` doubled, `\` doubled,
/// and newline/tab/CR written as `\n`, `\t`, `\r` (the config lexer decodes those escapes).
///
/// Quoting every value is valid for all parameter types (`port = '5432'` works).
pub fn format_conf_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Checks a parameter name for `postgresql.conf` (`[A-Za-z_][A-Za-z0-9_.]*`, e.g. `auto_explain.log_min_duration`).
pub fn check_conf_key(key: &str) -> Result<()> {
    let mut chars = key.chars();
    let ok_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if ok_first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        Ok(())
    } else {
        Err(Error::invalid(
            "configuration parameter name",
            key,
            "must match [A-Za-z_][A-Za-z0-9_.]*",
        ))
    }
}

/// Quotes one libpq conninfo value: single quotes around it, `\` and `'` escaped with a backslash.
pub fn quote_conninfo_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Builds a libpq conninfo string `key='value' key='value'` from pairs, in the given order.
///
/// Keys are libpq keywords chosen by this crate, so they are not quoted; they are checked to be
/// plain lowercase words.
pub fn build_conninfo(pairs: &[(&str, String)]) -> Result<String> {
    let mut parts = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(Error::invalid(
                "conninfo keyword",
                k,
                "must be a lowercase word",
            ));
        }
        parts.push(format!("{k}={}", quote_conninfo_value(v)));
    }
    Ok(parts.join(" "))
}

/// Escapes one field of a `.pgpass` line: `\` and `:` get a backslash. Newlines are refused.
pub fn escape_passfile_field(field: &str) -> Result<String> {
    if field.contains(['\n', '\r']) {
        return Err(Error::invalid(
            "password file field",
            "<hidden>",
            "must not contain a newline",
        ));
    }
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c == '\\' || c == ':' {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// Quotes an SQL identifier (role name): always double-quoted, `"` doubled.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Quotes an SQL string literal the way libpq's `PQescapeLiteral` does: `'` doubled, and when the
/// text has a backslash, the `E'...'` form with `\` doubled, so it is safe whatever
/// `standard_conforming_strings` is.
pub fn quote_literal(text: &str) -> String {
    let body = text.replace('\'', "''");
    if text.contains('\\') {
        format!(" E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// Checks a replication slot name: 1..=63 characters of `[a-z0-9_]` (PostgreSQL's own rule).
pub fn check_slot_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 {
        return Err(Error::invalid(
            "replication slot name",
            name,
            "must be 1 to 63 characters",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(Error::invalid(
            "replication slot name",
            name,
            "may contain only a-z, 0-9 and _",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_values() {
        assert_eq!(format_conf_value("5432"), "'5432'");
        assert_eq!(format_conf_value(""), "''");
        assert_eq!(format_conf_value("it's"), "'it''s'");
        assert_eq!(format_conf_value(r"a\b"), r"'a\\b'");
        assert_eq!(format_conf_value("a\nb"), r"'a\nb'");
        assert_eq!(
            format_conf_value("host='x' passfile='/p/a b'"),
            "'host=''x'' passfile=''/p/a b'''"
        );
    }

    #[test]
    fn conf_keys() {
        assert!(check_conf_key("port").is_ok());
        assert!(check_conf_key("auto_explain.log_min_duration").is_ok());
        assert!(check_conf_key("_x1").is_ok());
        for bad in ["", "1port", "port = 1", "a-b", "a\nb", "x'"] {
            assert!(check_conf_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conninfo_values() {
        assert_eq!(quote_conninfo_value("h"), "'h'");
        assert_eq!(quote_conninfo_value(""), "''");
        assert_eq!(quote_conninfo_value("a b"), "'a b'");
        assert_eq!(quote_conninfo_value(r"it's\x"), r"'it\'s\\x'");
        let ci =
            build_conninfo(&[("host", "10.0.0.1".into()), ("user", "o'brien".into())]).unwrap();
        assert_eq!(ci, r"host='10.0.0.1' user='o\'brien'");
        assert!(build_conninfo(&[("host x", "a".into())]).is_err());
    }

    #[test]
    fn conninfo_inside_conf() {
        let ci = build_conninfo(&[("passfile", "/p/it's".into())]).unwrap();
        assert_eq!(format_conf_value(&ci), r"'passfile=''/p/it\\''s'''");
    }

    #[test]
    fn passfile_fields() {
        assert_eq!(escape_passfile_field("a:b\\c").unwrap(), r"a\:b\\c");
        assert_eq!(escape_passfile_field("*").unwrap(), "*");
        assert!(escape_passfile_field("a\nb").is_err());
    }

    #[test]
    fn sql_quoting() {
        assert_eq!(quote_ident("replicator"), "\"replicator\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("pa'ss"), "'pa''ss'");
        assert_eq!(quote_literal(r"a\'b"), r" E'a\\''b'");
    }

    #[test]
    fn slot_names() {
        assert!(check_slot_name("node_1").is_ok());
        for bad in ["", "Node", "a-b", "a b", &"x".repeat(64)] {
            assert!(check_slot_name(bad).is_err(), "{bad:?}");
        }
    }
}
