//! Sizes: `64M`, `2G`, `4096`, `1.5GiB` on the command line; bytes everywhere inside.

/// Parses a size with an optional binary unit (K, M, G, T; `KiB`/`KB`/`k` all mean 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
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
    }
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
