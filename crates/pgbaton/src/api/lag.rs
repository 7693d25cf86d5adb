//! Parsing the `?lag=` limit of the replica health checks (`1048576`, `10MB`, `1GB`).

/// Parse a byte count: a whole number, optionally followed by a unit `B`, `kB`, `MB`,
/// `GB` or `TB` (powers of 1024, as in PostgreSQL; case-insensitive, spaces allowed
/// between number and unit). The error names the value and shows valid forms.
pub fn parse_lag(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || {
        format!("lag={text:?} is not a byte count; use a whole number of bytes or a number with a unit, e.g. lag=1048576, lag=10MB or lag=1GB")
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("lag={text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_lag;

    #[test]
    fn plain_bytes_and_units() {
        assert_eq!(parse_lag("0"), Ok(0));
        assert_eq!(parse_lag("1048576"), Ok(1_048_576));
        assert_eq!(parse_lag("16B"), Ok(16));
        assert_eq!(parse_lag("10kB"), Ok(10 * 1024));
        assert_eq!(parse_lag("10MB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_lag("10mb"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_lag("10 MB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_lag("1GB"), Ok(1 << 30));
        assert_eq!(parse_lag("2TB"), Ok(2 << 40));
    }

    #[test]
    fn garbage_is_rejected_with_a_message() {
        for bad in ["", "abc", "MB", "-1", "1.5MB", "10XB", "10 M B", "1e6"] {
            let err = parse_lag(bad).unwrap_err();
            assert!(err.contains("not a byte count"), "{bad}: {err}");
        }
        assert!(parse_lag("99999999999999999999").is_err());
        assert!(parse_lag("99999999999TB")
            .unwrap_err()
            .contains("too large"));
    }
}
