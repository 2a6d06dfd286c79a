//! `/proc/stat`: only `btime` is kept.

/// `btime` (boot time, seconds since the epoch).
pub fn parse_btime(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btime() {
        assert_eq!(
            parse_btime(b"cpu 1 2\nbtime 1795748280\n"),
            Some(1795748280)
        );
        assert_eq!(parse_btime(b"cpu 1 2\n"), None);
    }
}
