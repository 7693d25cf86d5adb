//! PostgreSQL write-ahead-log positions (`0/3000148`) as plain integers.

use std::fmt;
use std::str::FromStr;

/// A WAL position. Ordered; the difference of two is a byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Bytes from `other` up to `self`, zero when `other` is ahead.
    pub fn bytes_after(self, other: Lsn) -> u64 {
        self.0.saturating_sub(other.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// The text was not of the form `HIGH/LOW` in hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLsn(pub String);

impl fmt::Display for BadLsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a WAL position (expected e.g. 0/3000148): {:?}",
            self.0
        )
    }
}

impl std::error::Error for BadLsn {}

impl FromStr for Lsn {
    type Err = BadLsn;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadLsn(s.to_string());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        if hi > 0xffff_ffff || lo > 0xffff_ffff {
            return Err(bad());
        }
        Ok(Lsn((hi << 32) | lo))
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "0/0",
            "0/3000148",
            "1/0",
            "FFFFFFFF/FFFFFFFF",
            "16/B374D848",
        ] {
            let l: Lsn = s.parse().unwrap();
            assert_eq!(l.to_string(), s);
        }
        assert_eq!("0/10".parse::<Lsn>().unwrap().0, 16);
        assert_eq!("1/0".parse::<Lsn>().unwrap().0, 1 << 32);
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "0", "x/1", "1/", "/1", "100000000/0"] {
            assert!(s.parse::<Lsn>().is_err(), "{s}");
        }
    }

    #[test]
    fn byte_distance() {
        assert_eq!(Lsn(100).bytes_after(Lsn(40)), 60);
        assert_eq!(Lsn(40).bytes_after(Lsn(100)), 0);
    }
}
