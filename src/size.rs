//! Sizes (`64M`, `2G`, `4096`, `1.5GiB`) and durations (`2`, `2s`, `500ms`, `1m`) on the
//! command line; bytes and [`Duration`]s everywhere inside.

use std::time::Duration;

/// Parses a size with an optional binary unit (K, M, G, T, or KiB, MiB, GiB, TiB: all powers of
/// 1024). `KB`, `MB`... are refused with a hint rather than read either way: `1MB` means 10^6
/// to some people and 2^20 to others.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        u @ ("kb" | "mb" | "gb" | "tb") => {
            let bin = u[..1].to_ascii_uppercase();
            return Err(format!(
                "invalid size '{s}': units are binary, write {num}{bin} (or {num}{bin}iB) for {num} x 1024{}; decimal {} is not accepted",
                match bin.as_str() { "K" => "", "M" => "^2", "G" => "^3", _ => "^4" },
                u.to_ascii_uppercase()
            ));
        }
        _ => {
            return Err(format!(
                "invalid size '{s}': use a number with K, M, G or T (e.g. 64M)"
            ))
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size '{s}': use a number with K, M, G or T (e.g. 64M)"))?;
    let bytes = value * mult as f64;
    if !(0.0..=(u64::MAX as f64)).contains(&bytes) {
        return Err(format!("size '{s}' is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1M").is_err());
        let e = parse_size("1MB").unwrap_err();
        assert!(e.contains("write 1M"), "{e}");
        assert!(parse_size("10kb").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "-1s", "1x", "nan", "inf", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

/// Parses a duration: a number of seconds with an optional unit, `500ms`, `2s`, `2` (seconds),
/// `1m`, `1h`. Every duration option takes this one syntax.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 2, 2s, 500ms, 1m)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("'{s}' is not a duration >= 0"));
    }
    Duration::try_from_secs_f64(v * scale).map_err(|_| format!("'{s}' is too long"))
}

/// Sum of byte figures that stops at `u64::MAX` instead of wrapping: figures come from the
/// kernel (or a file) and are bounded where they are read (`collect::bounds`), so a sum this
/// large only follows an absurd input that already carries a note.
pub fn sum_bytes(figures: impl IntoIterator<Item = u64>) -> u64 {
    figures.into_iter().fold(0, u64::saturating_add)
}

/// `to - from` as a signed figure, saturating at the ends of `i64` instead of wrapping.
pub fn signed_delta(from: u64, to: u64) -> i64 {
    let d = i128::from(to) - i128::from(from);
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod arithmetic_tests {
    use super::*;

    #[test]
    fn sums_and_deltas_never_wrap() {
        assert_eq!(sum_bytes([u64::MAX, 1]), u64::MAX);
        assert_eq!(sum_bytes([1, 2]), 3);
        assert_eq!(signed_delta(0, u64::MAX), i64::MAX);
        assert_eq!(signed_delta(u64::MAX, 0), i64::MIN);
        assert_eq!(signed_delta(5, 3), -2);
    }
}
