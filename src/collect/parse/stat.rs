//! `/proc/PID/stat`: the start time, which orders holders when choosing an owner.

use super::maps::dec;

/// The fields of `/proc/PID/stat` shmwho uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The command (field 2), without its parentheses.
    pub comm: String,
    /// Parent pid (field 4).
    pub ppid: i32,
    /// Field 22: clock ticks after boot.
    pub start_ticks: u64,
}

/// The command sits in parentheses and may itself contain `)` and spaces, so the fields are
/// counted from the *last* `)`.
pub fn parse(text: &[u8]) -> Option<Stat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&text[open + 1..close]).into_owned();
    // After ")": state(3) ppid(4) ... starttime(22).
    let mut fields = text[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let _state = fields.next()?;
    let ppid = i32::try_from(dec(fields.next()?)?).ok()?;
    let start_ticks = dec(fields.nth(22 - 5)?)?;
    Some(Stat {
        comm,
        ppid,
        start_ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_fixture() {
        let st = parse(include_bytes!("../../../tests/fixtures/stat_lab.txt")).unwrap();
        assert_eq!(st.comm, "python3");
        assert!(st.start_ticks > 0);
    }

    #[test]
    fn comm_with_parens_and_spaces() {
        let line = b"42 (a) b (c) S 7 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0";
        let st = parse(line).unwrap();
        assert_eq!(st.comm, "a) b (c");
        assert_eq!(st.ppid, 7);
        assert_eq!(st.start_ticks, 999);
    }

    #[test]
    fn truncated() {
        assert_eq!(parse(b"42 (a) S 7 42 42 0"), None);
        assert_eq!(parse(b"42 (a"), None);
        assert_eq!(parse(b""), None);
    }
}
