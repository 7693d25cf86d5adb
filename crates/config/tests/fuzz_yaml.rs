//! Fuzzing of the config parser (proptest; stable Rust): any text, and any mutation of
//! a valid config, is parsed or refused with an error that names the file, never a
//! panic; an accepted config passes its own validation.
//!
//! A short run is part of `cargo test`; run longer with
//! `PROPTEST_CASES=100000 cargo test -p pgbaton-config --test fuzz_yaml`.

use pgbaton_config::parse;
use proptest::prelude::*;

const VALID: &str = r#"cluster: acme
name: node1
data_dir: /srv/pg/node1
store:
  local: /srv/pgbaton-store
postgres:
  listen: 127.0.0.1:55001
  superuser:   {username: postgres,   password: secret1}
  replication: {username: replicator, password: secret2}
  parameters: {max_connections: 100}
api:
  listen: 127.0.0.1:58001
bootstrap:
  ttl: 10
  loop_wait: 1
  parameters: {work_mem: 8MB}
"#;

/// Edits of the valid config: replace a byte range with YAML-ish noise.
fn mutated() -> impl Strategy<Value = String> {
    let noise = prop::sample::select(vec![
        "",
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "&a ",
        "*a",
        "!!binary ",
        "\n",
        "  ",
        "\t",
        "'",
        "\"",
        "#",
        "|",
        ">",
        "0.0.0.0:1",
        "99999999999999999999",
        "-1",
        "~",
        "null",
        "archive_command: x",
        "include: /etc/shadow",
        "<<: *a",
        "\u{0}",
        "\u{feff}",
    ]);
    (
        0..VALID.len(),
        0..40usize,
        prop::collection::vec(noise, 0..6),
    )
        .prop_map(|(at, len, parts)| {
            let mut s = VALID.to_string();
            let at = (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
            let end = (at + len).min(s.len());
            let end = (end..=s.len())
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(s.len());
            s.replace_range(at..end, &parts.concat());
            s
        })
}

proptest! {
    #[test]
    fn any_text_is_parsed_or_refused_with_the_file_name(
        text in prop_oneof![mutated(), any::<String>(), "[ -~\n]{0,300}"]
    ) {
        match parse(&text, "fuzz.yaml") {
            Ok(c) => prop_assert!(c.problems().is_empty()),
            Err(e) => prop_assert!(e.to_string().contains("fuzz.yaml"), "{e}"),
        }
    }
}
