//! Median, minimum and maximum of a series of durations, and how they are printed.

use std::time::Duration;

/// Median, minimum and maximum of a non-empty series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median (mean of the two middle values for an even count).
    pub median: Duration,
    /// The smallest value.
    pub min: Duration,
    /// The largest value.
    pub max: Duration,
    /// How many values.
    pub count: usize,
}

/// The summary of `values`, or None when it is empty.
pub fn summarize(values: &[Duration]) -> Option<Summary> {
    let mut v = values.to_vec();
    v.sort();
    let n = v.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2,
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
        count: n,
    })
}

/// A duration in seconds with three decimals, e.g. `0.184 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Like [`secs`], or `—` for None.
pub fn secs_opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".to_string(), secs)
}

/// A signed difference `a - b` in seconds, e.g. `+0.412 s` or `-0.300 s`.
pub fn signed_secs(a: Duration, b: Duration) -> String {
    let diff = a.as_secs_f64() - b.as_secs_f64();
    format!("{diff:+.3} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        let s = summarize(&[ms(30), ms(10), ms(20)]).expect("summary");
        assert_eq!(
            (s.median, s.min, s.max, s.count),
            (ms(20), ms(10), ms(30), 3)
        );
        let s = summarize(&[ms(40), ms(10), ms(20), ms(30)]).expect("summary");
        assert_eq!(s.median, ms(25));
        assert!(summarize(&[]).is_none());
        assert_eq!(secs(ms(1234)), "1.234 s");
        assert_eq!(signed_secs(ms(10_400), ms(10_000)), "+0.400 s");
        assert_eq!(signed_secs(ms(9_700), ms(10_000)), "-0.300 s");
    }
}
