//! `/proc/PID/stat`: the start time, which orders holders when choosing an owner, the state
//! (a zombie leader may have live threads) and the flags (kernel threads).

use super::maps::dec;

/// The fields of `/proc/PID/stat` shmwho uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The command (field 2), without its parentheses.
    pub comm: String,
    /// Parent pid (field 4).
    pub ppid: i32,
    /// Field 3: `R`, `S`, `Z` (zombie), ...
    pub state: u8,
    /// Field 9: the task's `PF_*` flags.
    pub flags: u64,
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
    let state = *fields.next()?.first()?;
    let ppid = i32::try_from(dec(fields.next()?)?).ok()?;
    let flags = dec(fields.nth(9 - 5)?)?;
    let start_ticks = dec(fields.nth(22 - 10)?)?;
    Some(Stat {
        comm,
        ppid,
        state,
        flags,
        start_ticks,
    })
}

/// `PF_KTHREAD` in include/linux/sched.h.
const PF_KTHREAD: u64 = 0x0020_0000;

impl Stat {
    /// Kernel threads have `PF_KTHREAD` set. A missing `VmRSS` does not tell them: a process
    /// whose leader thread exited has none either.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// State `Z`: exited, not yet reaped (for a leader: possibly with other threads running on).
    pub fn is_zombie(&self) -> bool {
        self.state == b'Z'
    }
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
        assert_eq!(st.state, b'S');
        assert_eq!(st.flags, 4194304);
        assert!(!st.is_kernel_thread());
        assert_eq!(st.start_ticks, 999);
    }

    #[test]
    fn kernel_thread_by_flags() {
        // kthreadd as 6.18 prints it: PF_KTHREAD | PF_NOFREEZE | ... = 0x208040.
        let line = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0";
        let st = parse(line).unwrap();
        assert!(st.is_kernel_thread());
        let zombie = b"9 (x) Z 1 9 9 0 -1 4194308 0 0 0 0 0 0 0 0 20 0 2 0 50 0 0";
        let st = parse(zombie).unwrap();
        assert!(st.is_zombie() && !st.is_kernel_thread());
        assert_eq!(st.start_ticks, 50);
    }

    #[test]
    fn truncated() {
        assert_eq!(parse(b"42 (a) S 7 42 42 0"), None);
        assert_eq!(parse(b"42 (a"), None);
        assert_eq!(parse(b""), None);
    }
}
