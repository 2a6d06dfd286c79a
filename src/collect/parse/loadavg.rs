//! `/proc/loadavg`: `0.00 0.01 0.05 1/345 6789`, of which the host's tasks (threads), the
//! number after the slash.

/// The tasks (threads) on the host, from `/proc/loadavg` text.
pub fn tasks(text: &str) -> Option<u64> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_after_the_slash() {
        assert_eq!(tasks("0.00 0.01 0.05 3/345 6789\n"), Some(345));
        assert_eq!(tasks("0.00 0.01 0.05 3/ 6789\n"), None);
        assert_eq!(tasks("0.00 0.01 0.05"), None);
        assert_eq!(tasks("garbage"), None);
    }
}
