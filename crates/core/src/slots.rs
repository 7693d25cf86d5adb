//! Physical replication slot names derived from member names.
//!
//! PostgreSQL allows only lower-case letters, digits and underscores in slot names, at
//! most 63 bytes. Member names are freer (`node-1`, `DB.East`), so they are mapped:
//! lower-cased, every other character becomes `_`, and when that mapping lost
//! information or the name is too long, a short hash of the original name is appended so
//! that two different members never share a slot.

/// The physical replication slot name used for `member`.
pub fn slot_name(member: &str) -> String {
    let mapped: String = member
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if mapped == member && mapped.len() <= 63 {
        return mapped;
    }
    let hash = fnv1a(member.as_bytes());
    let suffix = format!("_{:08x}", hash as u32);
    let keep = 63 - suffix.len();
    let mut base: String = mapped.chars().take(keep).collect();
    base.push_str(&suffix);
    base
}

/// True if `name` is a valid PostgreSQL replication slot name.
pub fn is_valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_names_are_kept() {
        assert_eq!(slot_name("node1"), "node1");
        assert_eq!(slot_name("pg_east_2"), "pg_east_2");
    }

    #[test]
    fn other_names_are_mapped_and_disambiguated() {
        let a = slot_name("node-1");
        let b = slot_name("node_1");
        let c = slot_name("Node-1");
        assert!(is_valid_slot_name(&a) && is_valid_slot_name(&c));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("node_1_"));
    }

    #[test]
    fn long_names_fit() {
        let long = "x".repeat(100);
        let s = slot_name(&long);
        assert!(is_valid_slot_name(&s), "{s}");
        assert_ne!(slot_name(&"x".repeat(99)), s);
    }
}
